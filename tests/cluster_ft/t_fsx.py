#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_fsx: volumes, snapshots and clones against a model, with server kills.

3 servers (pool default: 3 replicas, min_replicas 2). keel-fsx runs a
seeded random stream of KEEL_FSX_OPS operations (default 100000) per seed
(KEEL_FSX_SEEDS, default "1"): write, read, discard, write-zeroes, flush,
resize, snapshot, clone (of a snapshot or of a live volume), revert,
delete snapshot, flatten (keelctl), read of a snapshot view, delete
volume, on volumes of 8-16 MiB with 256 KiB objects, every read compared
with an in-memory model. Deleted layers leave the map 5 s after every
server freed them (layer_drop_grace_s). A random server is SIGKILLed every
KEEL_FSX_KILL_EVERY operations (default 3000) and restarted a third of
that later.

Pass: keel-fsx exits 0 for every seed (zero divergences, no operation
failed); then HEALTH_OK within 300 s.
"""
import os
import subprocess

import clusterlib as cl
from clusterlib import check, log


def test(tools, tmp, box):
    seeds = os.environ.get("KEEL_FSX_SEEDS", "1").split()
    ops = os.environ.get("KEEL_FSX_OPS", "100000")
    kill_every = os.environ.get("KEEL_FSX_KILL_EVERY", "3000")
    fsx = os.path.join(tools.build, "tests", "keel-fsx")
    if not os.access(fsx, os.X_OK):
        raise cl.TestFailure("required tool missing: " + fsx)
    # Servers store 256 KiB objects, the volumes' object size: many object
    # boundaries in small volumes, and no 4 MiB slot per 256 KiB object.
    c = cl.Cluster(tools, tmp, servers=3, size="2G", object_size="256K",
                   mgmt_set=["layer_drop_grace_s=5"])
    box.append(c)
    c.up()
    for seed in seeds:
        cmd = [fsx, "--mgmt", c.url, "--key-file", c.key, "--seed", seed, "--ops", ops,
               "--prefix", "fsx%s" % seed, "--keelctl", tools.keelctl,
               "--cluster-dir", c.dir, "--local-cluster", cl.LOCAL_CLUSTER,
               "--servers", "3", "--kill-every", kill_every]
        if os.environ.get("KEEL_FSX_MAX_CHAIN"):
            # the longest chain a volume may reach: merges of deleted
            # snapshots keep it near the live snapshots (11 in 20000
            # operations of seed 1; 50 without merges)
            cmd += ["--max-chain", os.environ["KEEL_FSX_MAX_CHAIN"]]
        log("seed %s: %s" % (seed, " ".join(cmd)))
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=c.env, timeout=3000)
        print(p.stdout[-6000:], flush=True)
        check(p.returncode == 0, "keel-fsx seed %s: %s operations, zero divergences (exit %d)"
              % (seed, ops, p.returncode))
    secs = c.wait_health_ok(300)
    log("HEALTH_OK %.1f s after the last operation" % secs)


if __name__ == "__main__":
    cl.main(test)
