#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Layers end to end through keel-mgmt (docs/volumes.md): snapshots freeze
layers on every server, reads resolve through the chain, revert deletes the
old top and every server garbage-collects it until mgmt drops the layer.

Against a real cluster (deploy/local-cluster.sh, 3 servers) with keel-mgmt's
REST API; the data client is the raw wire client (tests/functional/
keeltest.py), routing each request to its PG's primary from /v1/pgs, so it
does not depend on libkeel's ReadChain support:

  1. a volume's top is written; snapshot s1 (the call returns once every
     server answered the map, "fenced" not false): the old top refuses
     WRITE with EROFS, the new top's chain read shows s1's blocks;
  2. snapshot s2, a write to the new top: the chain read resolves block by
     block over three layers (top, s2, s1, zeroes);
  3. revert to s1: the old top is deleting (EROFS for reads while it is
     listed), every server frees its objects, mgmt drops the layer
     (/v1/layers), and the new top reads s1's data through its chain.

Usage: t_layers.py BUILD_DIR.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Checks, Cluster, TestFailure, keeltest  # noqa: E402

B = 4096
S_OK, S_EROFS = 0, 14


def chain_meta(parents):
    body = b"".join(keeltest._varint(p) for p in parents)
    return keeltest._varint(1 << 3 | 2) + keeltest._varint(len(body)) + body


class Data:
    """Raw wire client: each request goes to its PG's primary, with the
    cluster's current epoch."""

    def __init__(self, cluster):
        self.c = cluster
        self.key = keeltest.load_key(cluster.key)
        self.conns = {}

    def _conn(self, addr):
        if addr not in self.conns:
            cl = keeltest.Client(addr)
            cl.handshake(self.key, "t_layers")
            self.conns[addr] = cl
        return self.conns[addr]

    def call(self, op, inode, objno=0, offset=0, length=0, data=b"", meta=b"", gen=0):
        # Reads look at layers directly, as a snapshot view does (KP_F_SNAP).
        flags = 4 if op == keeltest.OP_READ else 0
        pool = [p for p in self.c.api("/v1/pools")
                if p["name"] == self.pool or p["id"] == self.pool][0]
        vol_pool = pool["id"]
        pgc = pool["pg_count"]
        pg = clusterlib.object_pg(inode, objno, pgc)
        for _ in range(50):
            epoch = self.c.status()["epoch"]
            prim = [p for p in self.c.pgs() if p["pool"] == vol_pool and p["pg"] == pg][0]
            addr = [s["addr"] for s in self.c.servers() if s["id"] == prim["primary"]][0]
            h, _, d, crcs = self._conn(addr).call(op, meta=meta, data=data, inode=inode,
                                                  objno=objno, offset=offset,
                                                  length=length or len(data), epoch=epoch,
                                                  pgid=vol_pool << 20 | pg, flags=flags,
                                                  gen=gen)
            if h.status == 5:  # ESTALE: a map is on its way
                time.sleep(0.1)
                continue
            for i in range(0, len(d), B):
                if keeltest.crc32c(d[i:i + B]) != crcs[i // B]:
                    raise TestFailure("read data does not match its crc")
            return h, d
        raise TestFailure("ESTALE for 5 s")


def blk(ch):
    return ch.encode() * B


def test(tools, tmp, box):
    ck = Checks()
    c = Cluster(tools, tmp, servers=3, mgmt_set=["layer_drop_grace_s=1"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    vol = c.create_volume("lv", "64M")
    d = Data(c)
    d.pool = vol["pool"]
    l0 = vol["inode"]
    ck.check(vol["parents"] == [], "new volume: top %x, no parents" % l0)
    h, _ = d.call(keeltest.OP_WRITE, l0, data=blk("A") * 4)
    ck.check(h.status == S_OK, "write the base layer")
    for objno in range(1, 9):
        d.call(keeltest.OP_WRITE, l0, objno=objno, data=blk("a"))

    # ---- 1: snapshot s1 ----
    r = c.api("/v1/volumes/lv/snapshots", "POST", {"name": "s1"}, timeout=40)
    ck.check(r.get("fenced") is not False, "snapshot s1 returns fenced: %s" % r)
    vol = c.api("/v1/volumes/lv")
    l1 = vol["inode"]
    ck.check(l1 != l0 and vol["parents"] == [l0], "new top %x over s1 %x" % (l1, l0))
    h, _ = d.call(keeltest.OP_WRITE, l0, offset=B, data=blk("X"))
    ck.check(h.status == S_EROFS, "write to the snapshot's layer: EROFS (%d)" % h.status)
    h, _ = d.call(keeltest.OP_WRITE, l1, offset=B, data=blk("B"))
    ck.check(h.status == S_OK, "write to the new top")
    h, data = d.call(keeltest.OP_READ, l1, length=4 * B, meta=chain_meta(vol["parents"]))
    ck.check(h.status == S_OK and data == blk("A") + blk("B") + blk("A") * 2,
             "chain read: the top's block over s1's")

    # ---- 2: snapshot s2 ----
    r = c.api("/v1/volumes/lv/snapshots", "POST", {"name": "s2"}, timeout=40)
    ck.check(r.get("fenced") is not False, "snapshot s2 fenced")
    vol = c.api("/v1/volumes/lv")
    l2 = vol["inode"]
    ck.check(vol["parents"] == [l1, l0], "chain of the top: %s" % vol["parents"])
    h, _ = d.call(keeltest.OP_WRITE, l2, offset=2 * B, data=blk("C"))
    ck.check(h.status == S_OK, "write to the newest top")
    h, data = d.call(keeltest.OP_READ, l2, length=5 * B, meta=chain_meta(vol["parents"]))
    ck.check(h.status == S_OK and
             data == blk("A") + blk("B") + blk("C") + blk("A") + bytes(B),
             "chain read over three layers: s1, s2, top, zeroes")

    # ---- 3: revert to s1: the old top l2 is deleted ----
    vol = c.api("/v1/volumes/lv/revert", "POST", {"snapshot": "s1"}, timeout=40)
    l3 = vol["inode"]
    ck.check(vol["parents"] == [l0], "revert: new top %x over s1" % l3)
    h, data = d.call(keeltest.OP_READ, l3, length=4 * B, meta=chain_meta(vol["parents"]))
    ck.check(h.status == S_OK and data == blk("A") * 4, "the reverted volume reads s1")
    t0 = time.monotonic()
    gone = False
    while time.monotonic() - t0 < 30:
        layers = {x["inode"]: x for x in c.api("/v1/layers")}
        if l2 not in layers:
            gone = True
            break
        if layers[l2]["state"] == "deleting":
            h, _ = d.call(keeltest.OP_READ, l2, length=B)
            ck.check(h.status in (S_EROFS, S_OK), "read of the deleting top: %d" % h.status)
        time.sleep(0.5)
    ck.check(gone, "mgmt dropped the old top %x once every server freed it (%.1f s)" %
             (l2, time.monotonic() - t0))
    for i in range(1, 4):
        cl = keeltest.Client(c.server_addr(i))
        cl.handshake(keeltest.load_key(c.key), "t_layers")
        h, m, _, _ = cl.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=l2))
        ck.check(h.status == S_OK and not keeltest.pb_decode(m).get(1),
                 "server %d holds no object of %x" % (i, l2))
        h, m, _, _ = cl.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=l0))
        ck.check(len(keeltest.pb_decode(m).get(1, [])) == 9,
                 "server %d keeps the 9 objects of s1" % i)
        cl.close()
    ck.done()


if __name__ == "__main__":
    clusterlib.main(test)
