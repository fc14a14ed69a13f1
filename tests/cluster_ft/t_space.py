#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""t_space: allocated space follows the data still referenced, through
snapshots, overwrites, discards, snapshot deletes (merged into the child)
and volume deletes (issue "Volume management": within 1%).

Three servers, 256 KiB objects, one 3-replica pool. The test keeps its own
count of the 4 KiB blocks each live layer references and after every step
waits for the servers' usage reports to settle, then checks:

  - the pool's allocated_bytes (blocks the live layers hold, counted once)
    is within 1% of the referenced bytes, and nothing is left deleting;
  - the servers' raw used bytes are within 1% of 3 copies of the objects
    the referenced blocks occupy (space is freed, not just hidden).

Steps: v1 gets 32 MiB; snapshot s1 and 16 MiB of it overwritten (48 MiB
referenced); v2 gets 24 MiB; 8 MiB of v2 discarded through keel-client's
NBD export (qemu-io); s1 deleted (merged into v1's top: the 16 MiB v1 did
not overwrite move up, the rest is freed); v2 deleted. v1 reads back
exactly (keelctl export) at the end.

Usage: t_space.py BUILD_DIR.
"""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Checks, Cluster  # noqa: E402

MIB = 1 << 20
OBJ = 256 << 10


def image(path, size, runs):
    """A sparse image of @size bytes with data runs [(offset, length, seed)]."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, length, seed in runs:
            rnd = clusterlib.random.Random(seed)
            f.seek(off)
            f.write(rnd.randbytes(length))
    return path


def objects_of(extents):
    """Objects (per volume) the byte extents [(off, len)] touch."""
    objs = set()
    for off, length in extents:
        for o in range(off // OBJ, (off + length - 1) // OBJ + 1):
            objs.add(o)
    return len(objs)


def test(tools, tmp, box):
    ck = Checks()
    c = Cluster(tools, tmp, servers=3, size="1G", object_size="256K",
                mgmt_set=["layer_drop_grace_s=1"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    k = clusterlib.KeelCtl(c)

    def settle(what, ref_bytes, ref_objects, timeout=90):
        """Wait until the reports match the model; check both figures."""
        t0 = time.monotonic()
        last = None
        while time.monotonic() - t0 < timeout:
            sp = [p for p in c.api("/v1/pools") if p["name"] == "default"][0]["space"]
            used = sum(s["used_bytes"] for s in c.servers())
            last = (sp, used)
            if (abs(sp["allocated_bytes"] - ref_bytes) <= 0.01 * max(ref_bytes, MIB) and
                    abs(used - 3 * ref_objects * OBJ) <= 0.01 * max(3 * ref_objects * OBJ, MIB)
                    and sp["deleting_raw_bytes"] == 0):
                break
            time.sleep(0.5)
        sp, used = last
        ck.check(abs(sp["allocated_bytes"] - ref_bytes) <= 0.01 * max(ref_bytes, MIB),
                 "%s: allocated %.2f MiB, referenced %.2f MiB (%.1f s)" %
                 (what, sp["allocated_bytes"] / MIB, ref_bytes / MIB, time.monotonic() - t0))
        ck.check(abs(used - 3 * ref_objects * OBJ) <= 0.01 * max(3 * ref_objects * OBJ, MIB),
                 "%s: raw used %.2f MiB, 3 x %d referenced objects = %.2f MiB" %
                 (what, used / MIB, ref_objects, 3 * ref_objects * OBJ / MIB))
        ck.check(sp["deleting_raw_bytes"] == 0, "%s: nothing left to free" % what)

    # 1: v1 with 32 MiB
    a = image(os.path.join(tmp, "a.img"), 64 * MIB, [(0, 32 * MIB, 1)])
    k.ok("volume", "create", "v1", "--size", "64M", "--object-size", "256K")
    k.ok("volume", "import", a, "v1")
    settle("v1 with 32 MiB", 32 * MIB, objects_of([(0, 32 * MIB)]))

    # 2: snapshot, overwrite the first 16 MiB
    b = image(os.path.join(tmp, "b.img"), 64 * MIB, [(0, 16 * MIB, 2)])
    k.ok("snapshot", "create", "v1@s1")
    k.ok("volume", "import", b, "v1")
    settle("snapshot s1 and 16 MiB overwritten", 48 * MIB,
           objects_of([(0, 32 * MIB)]) + objects_of([(0, 16 * MIB)]))

    # 3: v2 with 24 MiB
    v2img = image(os.path.join(tmp, "v2.img"), 32 * MIB, [(0, 24 * MIB, 3)])
    k.ok("volume", "create", "v2", "--size", "32M", "--object-size", "256K")
    k.ok("volume", "import", v2img, "v2")
    settle("v2 with 24 MiB", 72 * MIB, 128 + 64 + 96)

    # 4: discard 8 MiB of v2 through keel-client's NBD export
    host = socket.gethostname()
    att = json.loads(k.ok("-f", "json", "volume", "attach", "v2", "--nbd"))
    p = subprocess.run(["qemu-io", "-f", "raw", "-c", "discard 0 8M", att["nbd_uri"]],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    ck.check(p.returncode == 0 and "error" not in p.stdout.lower(),
             "qemu-io discard 0 8M on v2: %s" % p.stdout.strip()[-200:])
    k.ok("volume", "detach", "v2", "--host", host)
    settle("8 MiB of v2 discarded", 64 * MIB, 128 + 64 + 64)

    # 5: delete s1: merged into v1's top
    k.ok("snapshot", "delete", "v1@s1", "--wait")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and c.api("/v1/volumes/v1")["parents"]:
        time.sleep(0.5)
    ck.check(c.api("/v1/volumes/v1")["parents"] == [], "v1 has no parent after the merge")
    settle("s1 deleted (merged into v1)", 48 * MIB, 128 + 64)

    # 6: delete v2
    k.ok("volume", "delete", "v2")
    settle("v2 deleted", 32 * MIB, 128)

    out = os.path.join(tmp, "out.img")
    k.ok("volume", "export", "v1", out)
    with open(out, "rb") as f:
        got = f.read()
    want = bytearray(open(a, "rb").read())
    want[0:16 * MIB] = open(b, "rb").read(16 * MIB)
    ck.check(got == bytes(want), "v1 reads back its data (16 MiB of b, then 16 MiB of a)")
    k.ok("volume", "delete", "v1")
    settle("every volume deleted", 0, 0)
    ck.done()


if __name__ == "__main__":
    clusterlib.main(test)
