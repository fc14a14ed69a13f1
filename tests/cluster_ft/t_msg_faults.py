#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_msg_faults: a replicated volume under in-process message faults.

3 servers, pool default (3 replicas, min_replicas 2), every server started
with the [fault] settings (keel-server run --help): on its client and peer
connections it drops every Nth frame it receives (the sender's request
timeout must notice, reconnect and resend), flips a byte of every Mth (the
header or payload crc must catch it: the connection is closed and the
requests resent) and holds its output for D ms at every Kth frame it sends.
A verified 4 KiB randrw load at QD32 runs KEEL_RUNTIME seconds (default 30).

Pass: keel-bench exits 0 (no I/O error, no verify mismatch), keel-histcheck
(no lost write, no stale read), every kind of fault was injected on every
server, the crc checks caught at least as many frames as were corrupted,
the cluster is HEALTH_OK afterwards and the replicas are byte-identical
per PG.

Knobs: KEEL_RUNTIME, KEEL_DROP_EVERY (default 10000), KEEL_CORRUPT_EVERY
(5000), KEEL_DELAY_EVERY (2000), KEEL_DELAY_MS (50).
"""
import os

import clusterlib as cl
from clusterlib import check, log


def test(tools, tmp, box):
    runtime = int(os.environ.get("KEEL_RUNTIME", "30"))
    drop = int(os.environ.get("KEEL_DROP_EVERY", "10000"))
    corrupt = int(os.environ.get("KEEL_CORRUPT_EVERY", "5000"))
    delay_every = int(os.environ.get("KEEL_DELAY_EVERY", "2000"))
    delay_ms = int(os.environ.get("KEEL_DELAY_MS", "50"))
    faults = ["fault.msg_drop_every=%d" % drop, "fault.msg_corrupt_every=%d" % corrupt,
              "fault.msg_delay_every=%d" % delay_every, "fault.msg_delay_ms=%d" % delay_ms]
    c = cl.Cluster(tools, tmp, servers=3, size="1G", server_set=faults)
    box.append(c)
    c.up()
    for i in (1, 2, 3):
        with open(c.log_path(i), errors="replace") as f:
            check("message fault injection on" in f.read(),
                  "server %d announces message fault injection" % i)
    vol = c.create_volume("vfault", "512M")
    b = cl.Bench(c, "vfault", tmp, name="faults", segment=None)
    log("load for %d s: drop every %d, corrupt every %d, delay every %d by %d ms" % (
        runtime, drop, corrupt, delay_every, delay_ms))
    rc, js = b.run_one(0, runtime=runtime, timeout=runtime + 180)
    cl.check_verified_run(rc, js, "load under message faults")
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    check(hrc == 0, "keel-histcheck passes")

    stats = {i: c.store_stat(i) for i in (1, 2, 3)}
    print("\n server  dropped  corrupted  delayed  hdr_crc_caught  data_crc_caught")
    for i in (1, 2, 3):
        s = stats[i]
        print(" %6d  %7d  %9d  %7d  %14d  %15d" % (
            i, s["fault_msgs_dropped"], s["fault_msgs_corrupted"], s["fault_msgs_delayed"],
            s["msg_hdr_crc_errors"], s["msg_data_crc_errors"]))
    print()
    for i in (1, 2, 3):
        s = stats[i]
        check(s["fault_msgs_dropped"] > 0 and s["fault_msgs_corrupted"] > 0 and
              s["fault_msgs_delayed"] > 0,
              "server %d injected every kind of fault (%d dropped, %d corrupted, %d delayed)" %
              (i, s["fault_msgs_dropped"], s["fault_msgs_corrupted"], s["fault_msgs_delayed"]))
        caught = s["msg_hdr_crc_errors"] + s["msg_data_crc_errors"]
        check(caught >= s["fault_msgs_corrupted"],
              "server %d: the crc checks caught every corrupted frame (%d caught, %d "
              "corrupted)" % (i, caught, s["fault_msgs_corrupted"]))
    cl.check_end_state(c, tmp, vol, 90)


if __name__ == "__main__":
    cl.main(test)
