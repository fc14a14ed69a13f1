#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_coalesce: write coalescing on the primary, under a verified load and a
server kill.

A client write holds its object on the primary until every member has it,
so the primary lets the client writes queued behind one that continue its
extent join it (docs/cluster.md, "Write coalescing"). This test drives the
two loads that make such runs and checks that nothing is lost or mixed up:

1. keel-bench --rw randrw --bs 4k --iodepth 32 --verify --history on a
   64 KiB span (16 blocks of one object: every write waits for the object
   and neighbours often queue together) for KEEL_RUNTIME seconds (default
   20); a server is SIGKILLed a quarter of the way in and restarted
   KEEL_KILL_DOWN seconds (default 2) later, so merged writes meet failed
   replica sends, retries and a new map.
2. keel-bench --rw write (sequential, QD32: the pattern coalescing is for)
   once over a 192 MiB span, then keel-bench --rw randread --verify over it.

Pass: both runs exit 0 with zero I/O errors and zero verify mismatches;
keel-histcheck passes on run 1's history (no lost acknowledged write, no
stale read) and on phase 2's (every read returns the fill's write); the servers report coalesced writes in both phases (STAT
writes_coalesced), in phase 2 at least half the fill's writes; HEALTH_OK
and byte-identical replicas per PG at the end.
"""
import os
import re
import threading
import time

import clusterlib as cl
from clusterlib import check, log

FILL_SPAN = 192 << 20


def coalesced(c, ids=(1, 2, 3)):
    return sum(c.store_stat(i)["writes_coalesced"] for i in ids)


def test(tools, tmp, box):
    runtime = int(os.environ.get("KEEL_RUNTIME", "20"))
    down_s = float(os.environ.get("KEEL_KILL_DOWN", "2"))
    c = cl.Cluster(tools, tmp, servers=3, size="1G")
    box.append(c)
    c.up()
    vol = c.create_volume("vseq", "512M")

    # Phase 1: one hot object, a kill in the middle.
    b = cl.Bench(c, "vseq", tmp, name="hot", segment=None, extra=["--size", "64K"])
    victim = 2

    def killer():
        time.sleep(runtime / 4)
        log("SIGKILL server %d" % victim)
        c.kill(victim)
        time.sleep(down_s)
        log("restart server %d" % victim)
        c.start(victim)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    rc, js = b.run_one(0, runtime=runtime, timeout=runtime + 180)
    t.join(120)
    cl.check_verified_run(rc, js, "hot object")
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    check(hrc == 0, "hot object: keel-histcheck passes")
    c.wait_health_ok(90)
    n1 = coalesced(c)
    check(n1 > 0, "hot object: the primaries coalesced writes (%d of %d)" %
          (n1, js["write"]["ios"]))

    # Phase 2: a sequential fill at QD32, then verified random reads of it.
    fill_writes = FILL_SPAN // 4096
    w = cl.Bench(c, "vseq", tmp, name="fill", rw="write", segment=None,
                 extra=["--size", str(FILL_SPAN)])
    rc, js = w.run_one(0, ios=fill_writes, timeout=600)
    log("sequential fill: rc %s, %s" % (rc, js and {k: js[k] for k in ("errors", "retries")}))
    check(rc == 0 and js is not None and js["errors"] == 0 and
          js["write"]["ios"] == fill_writes,
          "sequential fill: exit 0, %d writes, no error" % fill_writes)
    r = cl.Bench(c, "vseq", tmp, name="reads", rw="randread", segment=None,
                 extra=["--size", str(FILL_SPAN)])
    rc, js = r.run_one(0, ios=20000, timeout=600)
    log("reads: rc %s, %s" % (rc, js and {k: js[k] for k in (
        "errors", "verify_mismatches", "verified_blocks")}))
    check(rc == 0 and js is not None and js["errors"] == 0 and js["verify_mismatches"] == 0
          and js["verified_blocks"] >= 20000,
          "random reads of the fill: exit 0, no error, no mismatch")
    hrc, hout = cl.histcheck(tools, w.histories + r.histories)
    print(hout)
    m = re.search(r"reads ok: .* (\d+) initial content", hout)
    check(hrc == 0 and m is not None and m.group(1) == "0",
          "fill and reads: keel-histcheck passes, every read returned the fill's write")
    n2 = coalesced(c) - n1
    check(n2 >= fill_writes // 2,
          "sequential fill: at least half its %d writes rode on an earlier one (%d)" %
          (fill_writes, n2))

    cl.check_end_state(c, tmp, vol, 90)


if __name__ == "__main__":
    cl.main(test)
