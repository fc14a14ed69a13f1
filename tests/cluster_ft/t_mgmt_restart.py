#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_mgmt_restart: keel-mgmt killed and restarted under a verified load.

3 servers, pool default (3 replicas). keel-bench --rw randrw --verify
--history runs in 15 s segments while keel-mgmt is SIGKILLed twice:
  1. down for 1 s (less than the primary lease, 2/3 of mgmt's heartbeat
     timeout = 2 s): the data path keeps going;
  2. down for KEEL_MGMT_DOWN seconds (default 5, more than the lease):
     primaries stop serving once their lease runs out (docs/cluster.md
     "Primary lease"), and I/O resumes by itself when mgmt is back.
mgmt restarts from its SQLite state (local-cluster.sh start-mgmt).

Pass: every keel-bench segment exits 0 (no I/O error, no verify mismatch);
keel-histcheck; the longest I/O stall during outage 1 stays under 1 s;
after outage 2 the first completion comes within KEEL_RESUME_MAX_S
(default 3 s) of mgmt listening again; HEALTH_OK; one writer per PG per
interval; replicas byte-identical per PG.
"""
import os
import time

import clusterlib as cl
from clusterlib import log


def test(tools, tmp, box):
    down2 = float(os.environ.get("KEEL_MGMT_DOWN", "5"))
    resume_max = float(os.environ.get("KEEL_RESUME_MAX_S", "3"))
    c = cl.Cluster(tools, tmp, servers=3, size="1G")
    box.append(c)
    c.up()
    c.create_volume("vmg", "512M")
    b = cl.Bench(c, "vmg", tmp, name="mg", segment=15)
    b.start()
    time.sleep(3)
    windows = []
    try:
        for down in (1.0, down2):
            log("SIGKILL keel-mgmt, down for %.0f s" % down)
            t0 = time.monotonic()
            c.lc("stop-mgmt", "--signal", "KILL")
            time.sleep(down)
            c.lc("start-mgmt")
            t_back = time.monotonic()
            log("keel-mgmt listening again")
            windows.append((down, t0, t_back))
            time.sleep(6)
    finally:
        b.stop()
    tot, bad = b.summary()
    ends = cl.completion_times(b.histories)
    ck = cl.Checks()
    ck.check(not bad, "every keel-bench segment exited 0 without errors or mismatches" +
             ("" if not bad else ":\n" + "\n".join(bad)))
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    ck.check(hrc == 0, "keel-histcheck: no lost acknowledged write, no stale read")
    import bisect
    (d1, a1, b1), (d2, a2, b2) = windows
    g1, s1, e1 = cl.longest_gap(ends, a1, b1 + 1)
    print(" outage 1 (%.0f s): longest stall %.3f s (%s-%s)" % (d1, g1, cl.wall(s1), cl.wall(e1)))
    ck.check(g1 < 1.0, "mgmt down %.0f s (within the lease): I/O went on (longest stall "
             "%.2f s)" % (d1, g1))
    i = bisect.bisect_left(ends, b2)
    first = ends[i] - b2 if i < len(ends) else None
    g2, s2, e2 = cl.longest_gap(ends, a2, b2 + 1)
    print(" outage 2 (%.0f s): longest stall %.3f s (%s-%s), first completion %s after mgmt "
          "was back" % (d2, g2, cl.wall(s2), cl.wall(e2),
                        "%.2f s" % first if first is not None else "never"))
    ck.check(first is not None and first <= resume_max,
             "mgmt down %.0f s (beyond the lease): I/O resumed within %.0f s of mgmt's "
             "return (%s)" % (d2, resume_max, "%.2f s" % first if first is not None else "never"))
    expired = 0
    for i in range(1, 4):
        with open(c.log_path(i), errors="replace") as f:
            expired += f.read().count("primary lease expired")
    ck.check(expired >= 1, "servers refused I/O once their lease ran out (%d said so)" % expired)
    try:
        c.wait_health_ok(60)
    except cl.TestFailure as e:
        ck.check(False, "HEALTH_OK after mgmt's restarts: %s" % e)
    ck.check(*cl.one_writer(c))
    problems, summary = cl.compare_replicas(c, c.pgs(), tmp)
    ck.check(not problems, "replicas byte-identical per PG (%s)" % summary)
    ck.done()


if __name__ == "__main__":
    cl.main(test)
