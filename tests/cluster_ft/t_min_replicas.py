#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_min_replicas: below min_replicas writes wait; they neither fail nor
complete, and resume when a member returns.

3 servers, pool default (3 replicas, min_replicas 2), so every PG has all
three. Under keel-bench --rw randrw --verify --history, SIGKILL 2 of the 3
servers (random, KEEL_SEED), keep them down KEEL_OUTAGE seconds (default 8),
then restart one; later the other, and wait for HEALTH_OK.

Pass:
  - no write issued after both kills completes successfully before the
    revival (it would be acknowledged with one copy: history);
  - a probe write on another volume during the outage neither completes
    nor fails within 3 s (timeout-based probe);
  - the first write completion after the revived server is ready comes
    within 5 s (KEEL_RESUME_MAX_S);
  - keel-bench exits 0 (no I/O error, no verify mismatch), keel-histcheck
    passes, replicas byte-identical per PG at the end.
"""
import os
import random
import subprocess
import threading
import time

import clusterlib as cl
from clusterlib import TestFailure, check, log


def test(tools, tmp, box):
    seed = int(os.environ.get("KEEL_SEED", str(random.randrange(1 << 30))))
    outage = float(os.environ.get("KEEL_OUTAGE", "8"))
    resume_max = float(os.environ.get("KEEL_RESUME_MAX_S", "5"))
    rng = random.Random(seed)
    c = cl.Cluster(tools, tmp, servers=3, size="1G", mgmt_set=["log_level=debug"])
    box.append(c)
    c.up()
    pool = [p for p in c.api("/v1/pools") if p["name"] == "default"][0]
    check(pool["replicas"] == 3 and pool["min_replicas"] == 2,
          "pool default: replicas 3, min_replicas 2 (%d, %d)" % (pool["replicas"],
                                                                pool["min_replicas"]))
    c.create_volume("vmin", "256M")
    c.create_volume("vprobe", "16M")
    victims = rng.sample([1, 2, 3], 2)
    log("seed %d: killing servers %s, reviving %d first" % (seed, victims, victims[0]))

    pre, post = 5.0, 12.0
    runtime = int(pre + outage + post + 10)
    b = cl.Bench(c, "vmin", tmp, name="min", seed=seed, segment=None)
    res = {}
    th = threading.Thread(target=lambda: res.setdefault(
        "r", b.run_one(0, runtime=runtime, timeout=runtime + 120)), daemon=True)
    th.start()
    time.sleep(pre)
    for v in victims:
        c.kill(v, "KILL")
    t_killed = time.monotonic()
    log("killed servers %s" % victims)
    time.sleep(3.0)
    st = c.status()
    log("status during outage: %s, pgs %s" % (st["health"], st["pgs"]))

    # Probe: one 4 KiB write on another volume must neither complete nor fail.
    probe = c.client_cmd([tools.bench, "--volume", "vprobe", "--mgmt", c.url, "--key", c.key,
                          "--rw", "randwrite", "--bs", "4k", "--iodepth", "1", "--ios", "1",
                          "--json"])
    pp = subprocess.Popen(probe, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          start_new_session=True)
    try:
        out, _ = pp.communicate(timeout=3.0)
        probe_rc = pp.returncode
    except subprocess.TimeoutExpired:
        os.killpg(pp.pid, 9)
        pp.communicate()
        probe_rc, out = "timeout", ""
    log("probe write below min_replicas: %s %s" % (probe_rc, out.strip()[-300:]))

    time.sleep(max(0.0, outage - (time.monotonic() - t_killed)))
    t_revive = time.monotonic()
    c.start(victims[0])
    t_ready = time.monotonic()
    log("server %d restarted (ready after %.2f s)" % (victims[0], t_ready - t_revive))
    th.join(runtime + 150)
    if th.is_alive():
        b.kill()
        raise TestFailure("keel-bench did not finish")
    rc, js = res["r"]

    recs = []
    for h in b.histories:
        recs += cl.read_history(h)
    ns = 1e9
    early = [r for r in recs if r[4] == 1 and r[6] == 0 and r[0] / ns > t_killed + 0.05 and
             r[1] / ns < t_revive]
    wfail = [r for r in recs if r[4] == 1 and r[6] != 0]
    reads_out = len({(r[0], r[1]) for r in recs if r[4] == 2 and r[6] == 0 and
                     t_killed + 1 < r[1] / ns < t_revive})
    after = sorted(r[1] / ns for r in recs if r[4] == 1 and r[6] == 0 and r[1] / ns >= t_revive)
    resume = (after[0] - t_ready) if after else None
    last_before = max([r[1] / ns for r in recs if r[4] == 1 and r[6] == 0 and
                       r[1] / ns < t_revive] or [0])
    log("last write completion before revival: %.2f s after the kills; first after: "
        "%s after the revived server was ready (%s after its start command); reads "
        "completed during the outage: %d" % (
            last_before - t_killed, "%.2f s" % resume if resume is not None else "never",
            "%.2f s" % (after[0] - t_revive) if after else "-", reads_out))
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    ck = cl.Checks()
    ck.check(probe_rc == "timeout",
          "probe write during the outage neither completed nor failed within 3 s (%s)" %
          probe_rc)
    ck.check(not early, "no write issued below min_replicas was acknowledged before the revival "
          "(%d were)" % len(early))
    ck.check(not wfail, "no write failed (%d did)" % len(wfail))
    ck.check(rc == 0 and js is not None and js["errors"] == 0 and js["verify_mismatches"] == 0,
          "keel-bench exit 0, no errors, no mismatches (rc %s, %s)" % (
              rc, js and {k: js[k] for k in ("errors", "verify_mismatches", "retries")}))
    ck.check(hrc == 0, "keel-histcheck: nothing lost")
    ck.check(resume is not None and resume <= resume_max,
          "writes resumed within %.0f s of the revived server being ready (%s)" % (
              resume_max, "%.2f s" % resume if resume is not None else "never"))
    healthy = False
    try:
        c.start(victims[1])
        rec = c.wait_health_ok(90)
        log("HEALTH_OK %.1f s after the second restart" % rec)
        healthy = True
    except TestFailure as e:
        ck.check(False, "second server back, HEALTH_OK: %s" % e)
    if healthy:
        ck.check(*cl.one_writer(c))
        problems, summary = cl.compare_replicas(c, c.pgs(), tmp)
        ck.check(not problems, "replicas byte-identical per PG (%s)" % summary)

    ck.done()

if __name__ == "__main__":
    cl.main(test)
