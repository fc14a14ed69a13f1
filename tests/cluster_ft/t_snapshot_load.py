#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_snapshot_load: snapshots taken every second under a verified write load
hold exactly the writes completed before them, across a server SIGKILL.

3 servers (pool default: 3 replicas, min_replicas 2), a 32 MiB volume with
256 KiB objects. keel-snapcheck (tests/tools/keel-snapcheck.c) runs a random
4 KiB write load at QD 32 (10% reads verified against its model; at most
one request in flight per block) through libkeel and, from a second
thread, POSTs /v1/volumes/VOL/snapshots every second, KEEL_SNAPLOAD_SNAPS
times (default 16). After snapshot 4 completes, server 2 is SIGKILLed;
after snapshot 9 it is started again (so snapshots are taken with a server
down, during its return and during recovery). With
KEEL_SNAPLOAD_KILL_IN_SNAPSHOT=1 (cluster_ft_t_snapshot_kill),
server 3 is also SIGKILLed by keel-snapcheck itself 2 ms after snapshot 13's
request started (a server dying while the map that freezes the layer is
being applied) and started again after snapshot 15; server 2 is then
started after snapshot 12 instead of 9, so it is being recovered when
server 3 dies. Then every block of every
snapshot view VOL@SNAP is read and checked: zero or one of the block's
writes, every write completed before the request visible or superseded by
a visible write issued before the reply, no write issued after the reply,
never older than in the previous snapshot; and the live volume equals the
model.

Pass: keel-snapcheck exits 0 (its summary is printed), the kill and the
restart happened while it ran, mgmt lists every snapshot, HEALTH_OK after.
Negative control: keel-snapcheck on another volume with --shift-ts-ms 300
(checks as if each snapshot had been requested 300 ms later) must report
lost writes and exit 1, so the check is known to bite on real snapshots.
"""
import os
import subprocess
import time

import clusterlib as cl
from clusterlib import Checks, log

VOL = "snapload"
KILL_AFTER, RESTART_AFTER, VICTIM = 4, 9, 2
# The second fault comes from inside keel-snapcheck, timed into a request.
KILL2_SNAP, KILL2_DELAY_MS, RESTART2_AFTER, VICTIM2 = 13, 2, 15, 3


def test(tools, tmp, box):
    nsnaps = int(os.environ.get("KEEL_SNAPLOAD_SNAPS", "16"))
    # The kill inside a snapshot request (docs/testing.md, "A server killed
    # inside a snapshot request"): cluster_ft_t_snapshot_kill runs it.
    kill_in_snap = os.environ.get("KEEL_SNAPLOAD_KILL_IN_SNAPSHOT", "0") == "1"
    # There, server 2 comes back just before the kill: it is still being
    # recovered when server 3 dies (the case that hangs).
    restart_after = 12 if kill_in_snap else RESTART_AFTER
    tool = os.path.join(tools.build, "tests", "keel-snapcheck")
    if not os.access(tool, os.X_OK):
        raise cl.TestFailure("required tool missing: " + tool)
    ck = Checks()
    # 256 KiB objects on the servers too (a volume object takes a whole slot of
    # the servers' object size): 17 layers of 32 MiB fit a 1 GiB drive. (2 GiB
    # drives made the teardown take minutes on a busy disk: freeing them.)
    c = cl.Cluster(tools, tmp, servers=3, size="1G", object_size="256K")
    box.append(c)
    c.up()
    c.api("/v1/volumes", "POST", {"name": VOL, "size": 32 << 20, "object_size": 256 << 10})
    cmd = [tool, "--mgmt", c.url, "--key-file", c.key, "--volume", VOL, "--iodepth", "32",
           "--snapshots", str(nsnaps), "--interval-ms", "1000", "--read-pct", "10"]
    if kill_in_snap and nsnaps >= RESTART2_AFTER:
        cmd += ["--fault-snap", str(KILL2_SNAP), "--fault-delay-ms", str(KILL2_DELAY_MS),
                "--fault-pid-file", os.path.join(c.dir, "server%d.pid" % VICTIM2)]
    log(" ".join(cmd))
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env=c.env)
    killed_at = restarted_at = killed2 = restarted2 = None
    out = []
    try:
        for line in p.stdout:
            out.append(line)
            print("  | " + line.rstrip(), flush=True)
            words = line.split()
            if len(words) > 1 and words[0] == "snapshot" and words[1].isdigit():
                n = int(words[1])
                if n == KILL_AFTER and killed_at is None:
                    c.kill(VICTIM)
                    killed_at = time.monotonic() - t0
                    log("server %d SIGKILLed after snapshot %d (%.1f s)"
                        % (VICTIM, n, killed_at))
                elif n == restart_after and killed_at is not None and restarted_at is None:
                    c.start(VICTIM)
                    restarted_at = time.monotonic() - t0
                    log("server %d started again after snapshot %d (%.1f s)"
                        % (VICTIM, n, restarted_at))
                elif n == RESTART2_AFTER and killed2 is not None and restarted2 is None:
                    c.start(VICTIM2)
                    restarted2 = time.monotonic() - t0
                    log("server %d started again after snapshot %d (%.1f s)"
                        % (VICTIM2, n, restarted2))
            elif words[:1] == ["fault"] and line.rstrip().endswith(": ok"):
                killed2 = time.monotonic() - t0
        rc = p.wait(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if killed_at is not None and restarted_at is None:
        c.start(VICTIM)
    if killed2 is not None and restarted2 is None:
        c.start(VICTIM2)
    log("keel-snapcheck exited %d after %.1f s" % (rc, time.monotonic() - t0))
    ck.check(rc == 0, "keel-snapcheck: %d snapshots under load, no violation (exit %d)"
             % (nsnaps, rc))
    ck.check(killed_at is not None and restarted_at is not None,
             "server %d was SIGKILLed and restarted during the run" % VICTIM)
    if kill_in_snap and nsnaps >= RESTART2_AFTER:
        ck.check(killed2 is not None and restarted2 is not None,
                 "server %d was SIGKILLed %d ms into snapshot %d's request and restarted"
                 % (VICTIM2, KILL2_DELAY_MS, KILL2_SNAP))
    snaps = [s["name"] for s in c.api("/v1/volumes/%s/snapshots" % VOL)]
    ck.check(len(snaps) == nsnaps, "mgmt lists %d snapshots of %s (%d)"
             % (nsnaps, VOL, len(snaps)))
    secs = c.wait_health_ok(120)
    log("HEALTH_OK %.1f s after the run" % secs)
    # Negative control: the same check, shifted as if each request had
    # started 300 ms later, must report the writes of those 300 ms as lost.
    c.api("/v1/volumes", "POST", {"name": VOL + "-neg", "size": 16 << 20,
                                  "object_size": 256 << 10})
    neg = [tool, "--mgmt", c.url, "--key-file", c.key, "--volume", VOL + "-neg",
           "--snapshots", "3", "--interval-ms", "1000", "--shift-ts-ms", "300"]
    q = subprocess.run(neg, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=c.env, timeout=120)
    tail = q.stdout.splitlines()[-3:]
    ck.check(q.returncode == 1 and "VIOLATION (lost)" in q.stdout,
             "negative control (--shift-ts-ms 300): lost writes reported, exit 1 (exit %d: %s)"
             % (q.returncode, " / ".join(tail)))
    ck.done()


if __name__ == "__main__":
    cl.main(test)
