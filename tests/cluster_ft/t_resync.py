#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_resync: recovery copies the blocks that changed, not whole objects.

3 servers (every PG on all three) on sparse 2 GiB drives, a 1 GiB volume
prefilled sequentially with 1 MiB writes (so the stale member holds old
data everywhere; 3 GiB stored in all, the disk this test needs). SIGKILL
server 3, then write 1 GiB: keel-bench --rw randwrite --bs 64k --ios 16384
--iodepth 32 spread at random over the volume (64 KiB writes hit each
4 MiB object ~64 times over its 64 slots, leaving ~37% of every object
untouched: a whole-object copy would move ~1.6x the changed bytes, a
block-level one 1.0x; 64 KiB rather than 4 KiB keeps the phase to seconds
on 2 cores). Restart server 3 and wait for HEALTH_OK.

bytes changed = distinct 4 KiB blocks written successfully while it was
down (from the history) x 4096; bytes copied = increase of the servers'
StoreStat recovery_bytes_copied (STAT over the wire) across the recovery.

Pass: changed <= copied <= 1.2 x changed (KEEL_RESYNC_MAX_RATIO); every
bench run exits 0; a verified read pass plus keel-histcheck over all
runs passes; replicas byte-identical per PG.
"""
import os

import clusterlib as cl
from clusterlib import check, log


def test(tools, tmp, box):
    max_ratio = float(os.environ.get("KEEL_RESYNC_MAX_RATIO", "1.2"))
    c = cl.Cluster(tools, tmp, servers=3, size="2G")
    box.append(c)
    c.up()
    c.create_volume("vres", "1G")

    fill = cl.Bench(c, "vres", tmp, name="fill", rw="write", bs="1M", iodepth=16, segment=None)
    rc, js = fill.run_one(0, ios=1024, timeout=600)
    check(rc == 0 and js and js["errors"] == 0, "prefill of 1 GiB (1 MiB sequential) ok "
          "(rc %s, %.1f s)" % (rc, js["runtime_s"] if js else -1))

    c.kill(3, "KILL")
    log("server 3 killed")
    wr = cl.Bench(c, "vres", tmp, name="delta", rw="randwrite", bs="64k", iodepth=32,
                  segment=None)
    rc, js = wr.run_one(0, ios=16384, timeout=900)
    check(rc == 0 and js and js["errors"] == 0 and js["write"]["ios"] == 16384,
          "1 GiB of 64 KiB random writes with server 3 down ok (rc %s, %s I/Os in %.1f s)" % (
              rc, js and js["write"]["ios"], js["runtime_s"] if js else -1))
    blocks = set()
    for h in wr.histories:
        for r in cl.read_history(h):
            if r[4] == 1 and r[6] == 0:
                blocks.add(r[2])
    changed = len(blocks) * 4096

    before = {i: c.store_stat(i)["recovery_bytes_copied"] for i in (1, 2)}
    c.start(3)
    rec_s = c.wait_health_ok(600)
    after = {i: c.store_stat(i) for i in (1, 2, 3)}
    copied = sum(after[i]["recovery_bytes_copied"] - before[i] for i in (1, 2))
    copied += after[3]["recovery_bytes_copied"]
    mg = c.status()["recovery"]
    ratio = copied / changed if changed else float("inf")
    print("\n resync: written 1 GiB (16384 x 64 KiB), changed %d blocks = %.1f MiB, "
          "copied %.1f MiB (per server: %s), ratio %.3f, recovery took %.1f s; "
          "mgmt recovery.bytes_copied %d\n" % (
              len(blocks), changed / 2**20, copied / 2**20,
              ", ".join("s%d %d" % (i, after[i]["recovery_bytes_copied"] -
                                    before.get(i, 0)) for i in (1, 2, 3)),
              ratio, rec_s, mg.get("bytes_copied", -1)))

    rd = cl.Bench(c, "vres", tmp, name="read", rw="randread", bs="64k", iodepth=32,
                  segment=None)
    rrc, rjs = rd.run_one(0, ios=16384, timeout=600)
    hrc, hout = cl.histcheck(tools, fill.histories + wr.histories + rd.histories)
    print(hout)
    check(changed > 0, "the delta phase changed blocks")
    check(copied >= changed, "recovery copied at least the changed bytes (%d >= %d)" % (
        copied, changed))
    check(copied <= max_ratio * changed, "recovery copied <= %.2fx the changed bytes "
          "(ratio %.3f)" % (max_ratio, ratio))
    check(rrc == 0 and rjs and rjs["errors"] == 0 and rjs["verify_mismatches"] == 0,
          "verified read pass after the resync: exit 0, no mismatch (rc %s)" % rrc)
    check(hrc == 0, "keel-histcheck over prefill, delta and read pass")
    problems, summary = cl.compare_replicas(c, c.pgs(), tmp)
    check(not problems, "replicas byte-identical per PG (%s)" % summary)


if __name__ == "__main__":
    cl.main(test)
