#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_pause_partition: a paused primary and a cut link under a verified load.

--netns cluster, 4 servers, pool default (3 replicas, min_replicas 2).
keel-bench --rw randrw --bs 4k --iodepth 32 --verify --history runs
without pause while:
  1. the server that is primary of the most PGs is SIGSTOPped for
     KEEL_FAULT_S seconds (default 10), then SIGCONTed; wait HEALTH_OK;
  2. another server's veth is taken down on the bridge side (ip link set
     <veth> down) for KEEL_FAULT_S seconds, then up; wait HEALTH_OK.
  3. a third server is cut off from mgmt only (a blackhole route to
     mgmt's address in its namespace; client and peers still reach it)
     for KEEL_FAULT_S seconds: its primary lease must expire (its log:
     "primary lease expired") before mgmt marks it down and gives its PGs
     to others (docs/cluster.md "Primary lease").
In-process message faults (drop, corrupt, delay) are t_msg_faults.py.

Pass: every keel-bench segment exits 0 with zero errors and mismatches;
keel-histcheck passes; mgmt marks each faulted server down (heartbeat
timeout; docs/cluster.md: within 5 s) and the cluster returns to
HEALTH_OK; replicas byte-identical per PG; I/O resumes within
KEEL_STALL_MAX_S (default 2 s, 0: report only) of mgmt marking the server
down (before that a hung primary legitimately holds its PGs). Reported:
detection time and the longest I/O stall per fault.
"""
import os
import random
import time

import clusterlib as cl
from clusterlib import check, log


def test(tools, tmp, box):
    fault_s = float(os.environ.get("KEEL_FAULT_S", "10"))
    detect_max = float(os.environ.get("KEEL_DETECT_MAX_S", "5"))
    stall_max = float(os.environ.get("KEEL_STALL_MAX_S", "2"))
    seed = int(os.environ.get("KEEL_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    c = cl.Cluster(tools, tmp, servers=4, netns=True, size="1G",
                   mgmt_set=["log_level=debug"])
    box.append(c)
    c.up()
    c.create_volume("vpp", "512M")
    b = cl.Bench(c, "vpp", tmp, name="pp", segment=15, seed=seed)
    b.start()
    time.sleep(3)
    rows = []
    lease_rows = []
    failures = []
    try:
        # 1. SIGSTOP the busiest primary.
        prim = {}
        for p in c.pgs():
            prim[p["primary"]] = prim.get(p["primary"], 0) + 1
        ids = {s["id"]: int(s["host"][4:]) for s in c.servers()}
        sid = max(prim, key=lambda k: prim[k])
        victim = ids[sid]
        log("SIGSTOP server %d (id %d, primary of %d PGs) for %.0f s" % (
            victim, sid, prim[sid], fault_s))
        t_wall, t0 = time.time(), time.monotonic()
        c.signal(victim, "STOP")
        time.sleep(fault_s)
        c.signal(victim, "CONT")
        t_back = time.monotonic()
        try:
            c.wait_health_ok(90)
        except cl.TestFailure as e:
            failures.append("after SIGCONT of server %d: %s" % (victim, e))
        td, line = cl.find_log_line(c.log_path("mgmt"), r"server %d down" % sid, t_wall)
        rows.append(("SIGSTOP %.0fs" % fault_s, victim, sid, prim[sid],
                     td - t_wall if td else None, t0, time.monotonic(), t_back))

        # 2. Link down on another server.
        others = [i for i in ids.values() if i != victim]
        victim2 = rng.choice(others)
        sid2 = [k for k, v in ids.items() if v == victim2][0]
        prim2 = sum(1 for p in c.pgs() if p["primary"] == sid2)
        log("link of server %d (id %d, primary of %d PGs) down for %.0f s" % (
            victim2, sid2, prim2, fault_s))
        t_wall, t0 = time.time(), time.monotonic()
        c.link("s%d" % victim2, "down")
        time.sleep(fault_s)
        c.link("s%d" % victim2, "up")
        t_back = time.monotonic()
        try:
            c.wait_health_ok(90)
        except cl.TestFailure as e:
            failures.append("after link up of server %d: %s" % (victim2, e))
        td, line = cl.find_log_line(c.log_path("mgmt"), r"server %d down" % sid2, t_wall)
        rows.append(("link down %.0fs" % fault_s, victim2, sid2, prim2,
                     td - t_wall if td else None, t0, time.monotonic(), t_back))

        # 3. Cut a third server off from mgmt only (blackhole route in its
        # namespace): it still reaches the client and its peers, so only
        # its primary lease keeps it from serving after mgmt has given its
        # PGs away.
        third = [i for i in ids.values() if i not in (victim, victim2)]
        victim3 = rng.choice(third)
        sid3 = [k for k, v in ids.items() if v == victim3][0]
        prim3 = sum(1 for p in c.pgs() if p["primary"] == sid3)
        mgmt_ip = c.url.split("//")[1].rsplit(":", 1)[0]
        log("server %d (id %d, primary of %d PGs) cut off from mgmt %s for %.0f s" % (
            victim3, sid3, prim3, mgmt_ip, fault_s))
        t_wall, t0 = time.time(), time.monotonic()
        c.lc("exec", "s%d" % victim3, "--", "ip", "route", "add", "blackhole",
             mgmt_ip + "/32")
        time.sleep(fault_s)
        c.lc("exec", "s%d" % victim3, "--", "ip", "route", "del", "blackhole",
             mgmt_ip + "/32")
        t_back = time.monotonic()
        try:
            c.wait_health_ok(90)
        except cl.TestFailure as e:
            failures.append("after reconnecting server %d to mgmt: %s" % (victim3, e))
        td, line = cl.find_log_line(c.log_path("mgmt"), r"server %d down" % sid3, t_wall)
        tl, _ = cl.find_log_line(c.log_path(victim3), r"primary lease expired", t_wall)
        rows.append(("mgmt cut %.0fs" % fault_s, victim3, sid3, prim3,
                     td - t_wall if td else None, t0, time.monotonic(), t_back))
        lease_rows.append((victim3, tl - t_wall if tl else None, td - t_wall if td else None))
        time.sleep(2)
    finally:
        b.stop()

    tot, bad = b.summary()
    ends = cl.completion_times(b.histories)
    print("\n fault          server  id  primary_of  detect_s  stall_s  stall_after_detect_s  "
          "stall (UTC)")
    post = []
    for (what, v, sid, np, det, t0, t1, tb) in rows:
        g, gs, ge = cl.longest_gap(ends, t0, t1)
        # The part of the stall after mgmt marked the server down: failover.
        pd = max(0.0, ge - max(gs, t0 + det)) if det is not None else g
        post.append((what, pd))
        print(" %-13s  %6d  %2d  %10d  %8s  %7.3f  %20.3f  %s-%s" % (
            what, v, sid, np, "%.3f" % det if det is not None else "NEVER", g, pd,
            cl.wall(gs), cl.wall(ge)))
    print(" bench: %d segments, %d I/Os, errors %d, mismatches %d, retries %d, reconnects %d\n"
          % (tot["segments"], tot["ios"], tot["errors"], tot["verify_mismatches"],
             tot["retries"], tot["reconnects"]))
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    ck = cl.Checks()
    ck.check(not failures, "cluster back to HEALTH_OK after each fault " + "; ".join(failures))
    ck.check(not bad, "every keel-bench segment exited 0 without errors or mismatches" +
          ("" if not bad else ":\n" + "\n".join(bad)))
    ck.check(hrc == 0, "keel-histcheck: no lost acknowledged write, no stale read")
    ck.check(*cl.one_writer(c))
    problems, summary = cl.compare_replicas(c, c.pgs(), tmp)
    ck.check(not problems, "replicas byte-identical per PG (%s)" % summary)
    for (what, v, sid, np, det, t0, t1, tb) in rows:
        ck.check(det is not None and det <= detect_max,
              "%s: server %d marked down within %.0f s (%s)" % (
                  what, v, detect_max, "%.2f s" % det if det is not None else "never"))

    for (v, tl, td) in lease_rows:
        print(" server %d cut off from mgmt: lease expired after %s, marked down after %s" % (
            v, "%.2f s" % tl if tl is not None else "never",
            "%.2f s" % td if td is not None else "never"))
        ck.check(tl is not None and td is not None and tl < td,
                 "server %d stopped serving as primary (lease expired, %s) before mgmt "
                 "gave its PGs away (%s)" % (v, "%.2f s" % tl if tl is not None else "never",
                                              "%.2f s" % td if td is not None else "never"))
    for what, pd in post:
        if stall_max > 0:
            ck.check(pd <= stall_max, "%s: I/O resumed within %.1f s of the server being marked "
                     "down (%.2f s)" % (what, stall_max, pd))
    ck.done()

if __name__ == "__main__":
    cl.main(test)
