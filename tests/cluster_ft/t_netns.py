#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_netns: a cluster over network namespaces, load from the client's.

local-cluster.sh up --netns --servers 5: mgmt, 5 servers and a client node
each in its own namespace on a bridge. A volume in pool default (3
replicas); keel-bench --rw randrw --verify --history for KEEL_RUNTIME
seconds (default 15) run in the client namespace (local-cluster.sh exec
client -- ...).

Pass: keel-bench exits 0 (no I/O error, no verify mismatch), the servers
saw the bench connect from the client node's address, keel-histcheck
passes, every PG has 3 members on 3 distinct servers, and the replicas are
byte-identical per PG.
"""
import os
import re

import clusterlib as cl
from clusterlib import check


def test(tools, tmp, box):
    runtime = int(os.environ.get("KEEL_RUNTIME", "15"))
    c = cl.Cluster(tools, tmp, servers=5, netns=True, size="1G")
    box.append(c)
    c.up()
    check(c.url.startswith("http://10."), "mgmt listens in its namespace (%s)" % c.url)
    vol = c.create_volume("vnet", "512M")
    pgs = c.pgs()
    bad = [p for p in pgs if len(set(p["members"])) != 3]
    check(not bad, "every PG has 3 distinct members (%d do not)" % len(bad))
    b = cl.Bench(c, "vnet", tmp, name="netns", segment=None)
    rc, js = b.run_one(0, runtime=runtime, timeout=runtime + 120)
    cl.check_verified_run(rc, js, "load from the client namespace")
    subnet = open(os.path.join(c.dir, "subnet")).read().strip()
    client_ip = subnet + ".2"
    seen = 0
    for i in range(1, 6):
        with open(c.log_path(i), errors="replace") as f:
            seen += len(re.findall(r"authenticated client 'keel-bench' from %s:" %
                                   re.escape(client_ip), f.read()))
    check(seen >= 1, "servers saw keel-bench connect from the client node %s (%d times)" % (
        client_ip, seen))
    hrc, hout = cl.histcheck(tools, b.histories)
    print(hout)
    check(hrc == 0, "keel-histcheck passes")
    cl.check_end_state(c, tmp, vol, 60)


if __name__ == "__main__":
    cl.main(test)
