#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""t_full: thin-provisioning accounting and a cluster that fills up
(docs/operations.md "When the cluster fills").

Three servers on 96 MiB drive files (about 32 MiB of object space each,
256 KiB objects), one 3-replica pool, keel-mgmt with nearfull_percent=30 and
full_percent=80 (the sizes make the outcome independent of timing: the
images of steps 1 and 2 do not fit together even in all of the space).
Data moves with `keelctl volume import/export` (libkeel):

  1. accounting: 12 MiB imported into a 16 MiB volume: the pool and the
     cluster show 16 MiB provisioned and 12 MiB allocated (each within 1%),
     the servers are nearfull: HEALTH_WARN with one check per server;
  2. full, policy wait: a 20 MiB import into a second volume passes
     full_percent (and would pass 100%): the pool turns full (HEALTH_ERR, `keelctl pool list` STATE full) and the import
     waits: still running, no error; meanwhile an overwrite of the first
     volume's existing data succeeds (overwrites need no new space);
  3. space returns: deleting the first volume frees its objects (GC), the
     pool is no longer full and the waiting import finishes by itself;
     both images read back exactly;
  4. overcommit limit: `keelctl pool overcommit default 150` (about 47 MiB
     of volume sizes on 31.75 MiB usable): creating, cloning or growing
     past it is refused (exit 1, nothing created or changed, the REST
     answer a JSON 507), within it allowed; `pool overcommit default
     none` lifts it;
  5. policy fail (mgmt restarted with full_policy=fail): a 12 MiB import
     into a third volume fills the pool and fails with ENOSPC (keelctl
     exits 1),
     the data written before reads back exactly, every server is still up.

Usage: t_full.py BUILD_DIR.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Checks, Cluster, TestFailure, log  # noqa: E402

MIB = 1 << 20


def image(path, mib, seed):
    """@mib MiB of incompressible, seed-dependent data (no zero blocks)."""
    rnd = clusterlib.random.Random(seed)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(rnd.randbytes(MIB))
    return path


def same_prefix(a, b, n):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read(n) == fb.read(n)


def pool(c):
    return [p for p in c.api("/v1/pools") if p["name"] == "default"][0]


def wait_for(what, fn, timeout):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = fn()
        if last:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TestFailure("%s: not within %.0f s" % (what, timeout))


def within(a, b, frac):
    return abs(a - b) <= frac * max(a, b, 1)


def test(tools, tmp, box):
    ck = Checks()
    c = Cluster(tools, tmp, servers=3, size="96M", object_size="256K",
                mgmt_set=["nearfull_percent=30", "full_percent=80", "layer_drop_grace_s=1"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    k = clusterlib.KeelCtl(c)
    a = image(os.path.join(tmp, "a.img"), 12, 1)
    a2 = image(os.path.join(tmp, "a2.img"), 12, 2)
    b = image(os.path.join(tmp, "b.img"), 20, 3)
    out = os.path.join(tmp, "out.img")
    cap = sum(s["capacity_bytes"] for s in c.servers())
    log("object space: %.1f MiB on 3 servers" % (cap / MIB))
    ck.check(cap >= 3 * 28 * MIB and cap <= 3 * 32 * MIB,
             "each server has 28-32 MiB of object space (%.1f MiB in all)" % (cap / MIB))

    # ---- 1: accounting, nearfull ----
    k.ok("volume", "create", "va", "--size", "16M", "--object-size", "256K")
    k.ok("volume", "import", a, "va")

    def settled():
        sp = pool(c)["space"]
        return sp["allocated_bytes"] == 12 * MIB and sp
    wait_for("usage reports show 12 MiB allocated", settled, 15)
    sp = pool(c)["space"]
    ck.check(sp["provisioned_bytes"] == 16 * MIB and sp["volumes"] == 1,
             "pool: 16 MiB provisioned in 1 volume (%d)" % sp["provisioned_bytes"])
    ck.check(within(sp["raw_used_bytes"], 3 * 12 * MIB, 0.01),
             "pool: raw used %.2f MiB = 3 copies of 12 MiB" % (sp["raw_used_bytes"] / MIB))
    ck.check(sp["usable_bytes"] == cap // 3, "pool: usable = capacity / 3 replicas")
    vol = c.api("/v1/volumes/va")
    ck.check(vol["allocated_bytes"] == 12 * MIB, "volume: 12 MiB allocated")
    wait_for("HEALTH_WARN for nearfull servers",
             lambda: c.status()["health"] == "HEALTH_WARN", 10)
    st = c.status()
    near = [x for x in st["checks"] if "nearfull_percent 30" in x]
    ck.check(len(near) == 3, "status: one nearfull check per server: %s" % st["checks"])
    ck.check(st["space"]["provisioned_bytes"] == 16 * MIB and
             st["space"]["allocated_bytes"] == 12 * MIB,
             "cluster status space: 16 MiB provisioned, 12 MiB allocated")
    ck.check("space:" in k.ok("cluster", "status"), "keelctl cluster status shows space")

    # ---- 2: full, policy wait ----
    k.ok("volume", "create", "vb", "--size", "24M", "--object-size", "256K")
    imp = k.popen("volume", "import", b, "vb")
    wait_for("pool full", lambda: pool(c)["full"], 30)
    st = c.status()
    ck.check(st["health"] == "HEALTH_ERR" and
             any("pool 'default' full" in x for x in st["checks"]),
             "status: HEALTH_ERR, pool 'default' full: %s" % st["checks"])
    ck.check(" full" in k.ok("pool", "list").splitlines()[1], "keelctl pool list: STATE full")
    time.sleep(3)
    ck.check(imp.poll() is None, "the import into vb waits while the pool is full (policy wait)")
    t0 = time.monotonic()
    k.ok("volume", "import", a2, "va", timeout=60)
    ck.check(True, "an overwrite of va's existing objects succeeds while full (%.1f s)" %
             (time.monotonic() - t0))
    ck.check(imp.poll() is None, "the import into vb is still waiting")

    # ---- 3: space returns ----
    k.ok("volume", "export", "va", out)
    ck.check(same_prefix(a2, out, 12 * MIB), "va reads back its overwrite")
    k.ok("volume", "delete", "va")
    t = wait_for("pool no longer full", lambda: not pool(c)["full"], 60)
    log("pool not full %.1f s after deleting va" % t)
    try:
        rc = imp.wait(timeout=60)
    except subprocess.TimeoutExpired:
        imp.kill()
        raise TestFailure("the waiting import did not finish after space returned")
    err = imp.stderr.read()
    ck.check(rc == 0, "the waiting import finished by itself (rc %d %s)" % (rc, err.strip()))
    k.ok("volume", "export", "vb", out)
    ck.check(same_prefix(b, out, 20 * MIB), "vb reads back its image")

    # ---- 4: overcommit limit (vb holds 24 MiB of size) ----
    out5 = k.ok("pool", "overcommit", "default", "150")
    ck.check("(max 150%)" in out5, "keelctl pool overcommit shows the limit: %s" %
             out5.splitlines()[-1])
    limit = pool(c)["space"]["usable_bytes"] // 100 * 150
    before = [v["name"] for v in c.api("/v1/volumes")]
    p = k.run("volume", "create", "big", "--size", "24M", "--object-size", "256K")
    ck.check(p.returncode == 1 and "overcommitted" in p.stderr,
             "a 24 MiB volume past the limit (%.1f MiB) is refused: %s" %
             (limit / MIB, p.stderr.strip()))
    st, _, body = c.api_raw("/v1/volumes", "POST", {"name": "big", "size": 24 * MIB,
                                                   "object_size": 256 << 10})
    ck.check(st == 507 and b'"error"' in body, "REST: 507 with a JSON error (%d)" % st)
    p = k.run("volume", "resize", "vb", "48M")
    ck.check(p.returncode == 1 and "overcommitted" in p.stderr, "growing vb past it: refused")
    p = k.run("volume", "copy", "vb", "vb2")
    ck.check(p.returncode == 1 and "overcommitted" in p.stderr,
             "a clone of vb (24 MiB more) is refused: %s" % p.stderr.strip())
    ck.check([v["name"] for v in c.api("/v1/volumes")] == before and
             c.api("/v1/volumes/vb")["size"] == 24 * MIB,
             "nothing was created or changed by the refused requests")
    k.ok("volume", "create", "small", "--size", "16M", "--object-size", "256K")
    ck.check(True, "a 16 MiB volume within the limit is created")
    k.ok("volume", "delete", "small")
    k.ok("pool", "overcommit", "default", "none")
    k.ok("volume", "create", "big", "--size", "24M", "--object-size", "256K")
    ck.check(True, "with the limit lifted, the 24 MiB volume is created")
    k.ok("volume", "delete", "big")
    k.ok("snapshot", "create", "vb@s")
    k.ok("volume", "clone", "vb@s", "vbc")
    k.ok("volume", "copy", "vb", "vbd")
    ck.check(c.api("/v1/volumes/vbc")["size"] == 24 * MIB and
             c.api("/v1/volumes/vbd")["size"] == 24 * MIB,
             "keelctl volume clone and copy (no limit now) create their volumes")
    for name in ("vbc", "vbd"):
        k.ok("volume", "delete", name)
    k.ok("snapshot", "delete", "vb@s")

    # ---- 5: policy fail ----
    with open(os.path.join(c.dir, "mgmt.set"), "a") as f:
        f.write("full_policy=fail\n")
    c.lc("stop-mgmt")
    c.lc("start-mgmt")
    k.ok("volume", "create", "vc", "--size", "16M", "--object-size", "256K")
    p = k.run("volume", "import", a, "vc", timeout=120)
    ck.check(p.returncode == 1 and "No space left on device" in p.stderr,
             "import into the full pool fails with ENOSPC (rc %d: %s)" %
             (p.returncode, p.stderr.strip().splitlines()[-1:]))
    k.ok("volume", "export", "vb", out)
    ck.check(same_prefix(b, out, 20 * MIB), "vb still reads back exactly")
    ck.check(all(s["up"] for s in c.servers()), "every server is up")
    k.ok("volume", "delete", "vc")
    k.ok("volume", "delete", "vb")
    wait_for("HEALTH_OK once the volumes are gone",
             lambda: c.status()["health"] == "HEALTH_OK", 60)
    sp = pool(c)["space"]
    ck.check(sp["provisioned_bytes"] == 0 and sp["allocated_bytes"] == 0 and
             sp["raw_used_bytes"] == 0,
             "nothing provisioned, allocated or used at the end: %s" % sp)
    ck.done()


if __name__ == "__main__":
    clusterlib.main(test)
