#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""t_fence: attachment generations fence detached hosts on the servers
(docs/volumes.md "Attachments and fencing").

A 3-server cluster; the data client is the raw wire client of t_layers.py
(each request to its PG's primary, with an explicit attachment generation
in the header), so every refusal seen is the servers':

  1. a volume attached to hosts hA and hB (live migration): writes of both
     generations, and of a made-up one, go (no host was detached yet);
  2. detach hA: the call returns once servers have the fence; writes of
     hA's generation get EPERM, hB's and generation 0 (tools) go, reads of
     hA's generation go;
  3. attach hA again (a new generation): it writes, the old one stays
     fenced; detach hB (a migration rolled back): hB is fenced, hA not;
  4. a snapshot moves the volume to a new top layer: the fence follows it;
  5. a write of the live generation held in flight (its replica SIGSTOPped)
     when its host is detached: the detach returns only after that write
     completed;
  6. keel-client, the real writer: the volume attached to this host over
     NBD, qemu-io writes; keel-client SIGSTOPped, the volume detached from
     this host (and attached to another), keel-client resumed: a write
     through its still-open NBD connection fails and the block keeps its
     data.

Usage: t_fence.py BUILD_DIR.
"""
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Checks, Cluster, TestFailure, keeltest, log  # noqa: E402
from t_layers import Data, blk  # noqa: E402

B = 4096
S_OK, S_EPERM = 0, 6


def attach(c, vol, host, ro=False):
    return c.api("/v1/volumes/%s/attachments" % vol, "POST",
                 {"host": host, "read_only": ro}, timeout=40)


def detach(c, vol, host):
    st, _, body = c.api_raw("/v1/volumes/%s/attachments/%s" % (vol, host), "DELETE",
                            timeout=40)
    if st != 204:
        raise TestFailure("detach %s from %s: %d %s" % (vol, host, st, body[:200]))


def write(d, inode, gen, ch, objno=0):
    h, _ = d.call(keeltest.OP_WRITE, inode, objno=objno, data=blk(ch), gen=gen)
    return h.status


def read(d, inode, objno=0, gen=0):
    h, data = d.call(keeltest.OP_READ, inode, objno=objno, length=B, gen=gen)
    return h.status, data


def test(tools, tmp, box):
    ck = Checks()
    c = Cluster(tools, tmp, servers=3, mgmt_set=["heartbeat_timeout_ms=2000"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    vol = c.create_volume("fv", "64M")
    d = Data(c)
    d.pool = vol["pool"]
    top = vol["inode"]

    # ---- 1: two hosts attached, nobody detached yet ----
    ga = attach(c, "fv", "hA")["generation"]
    gb = attach(c, "fv", "hB")["generation"]
    ck.check(write(d, top, ga, "a") == S_OK and write(d, top, gb, "b") == S_OK and
             write(d, top, 999999, "x") == S_OK,
             "before any detach: writes of hA (%d), hB (%d) and a made-up generation go" %
             (ga, gb))

    # ---- 2: detach hA ----
    detach(c, "fv", "hA")
    ck.check(write(d, top, ga, "A") == S_EPERM, "after detaching hA: its writes get EPERM")
    ck.check(write(d, top, 999999, "X") == S_EPERM, "an unknown generation gets EPERM too")
    ck.check(write(d, top, gb, "b") == S_OK, "hB (still attached) writes")
    ck.check(write(d, top, 0, "b", objno=1) == S_OK, "generation 0 (tools) writes")
    st, data = read(d, top, gen=ga)
    ck.check(st == S_OK and data == blk("b"), "reads of the fenced generation go (data 'b')")

    # ---- 3: hA back, hB away ----
    ga2 = attach(c, "fv", "hA")["generation"]
    ck.check(ga2 not in (ga, gb), "re-attach: a new generation %d" % ga2)
    ck.check(write(d, top, ga2, "c") == S_OK, "hA's new generation writes")
    ck.check(write(d, top, ga, "A") == S_EPERM, "hA's old generation stays fenced")
    detach(c, "fv", "hB")
    ck.check(write(d, top, gb, "B") == S_EPERM, "detach hB (migration rolled back): fenced")
    ck.check(write(d, top, ga2, "c") == S_OK, "hA still writes")

    # ---- 4: snapshot: a new top ----
    c.api("/v1/volumes/fv/snapshots", "POST", {"name": "s1"}, timeout=40)
    top2 = c.api("/v1/volumes/fv")["inode"]
    ck.check(top2 != top, "snapshot: new top %x" % top2)
    ck.check(write(d, top2, ga2, "d") == S_OK and write(d, top2, gb, "B") == S_EPERM,
             "on the new top: hA writes, hB is fenced")

    # ---- 5: a write in flight when its host is detached ----
    pool = [p for p in c.api("/v1/pools") if p["name"] == vol["pool"]][0]
    objno = 5
    pg = clusterlib.object_pg(top2, objno, pool["pg_count"])
    prim = [p for p in c.pgs() if p["pool"] == pool["id"] and p["pg"] == pg][0]
    victim = [m for m in prim["members"] if m != prim["primary"]][0]
    node = [i for i in range(1, 4) if c.server_id(i) == victim][0]
    res = {}

    def slow_write():
        res["status"] = write(d2, top2, ga2, "e", objno=objno)
        res["t"] = time.monotonic()

    d2 = Data(c)
    d2.pool = vol["pool"]
    c.signal(node, "STOP")
    try:
        w = threading.Thread(target=slow_write)
        w.start()
        time.sleep(0.5)
        ck.check("status" not in res, "the write waits for the stopped replica (server %d)" %
                 victim)
        t0 = time.monotonic()
        detach(c, "fv", "hA")
        t_detach = time.monotonic()
        w.join(30)
    finally:
        c.signal(node, "CONT")
    ck.check(res.get("status") == S_OK,
             "the in-flight write completed (status %s)" % res.get("status"))
    # The server completes the write before it answers mgmt's map (the
    # drain), so the detach cannot return before the write is done; the two
    # replies then race to this process (a 0.3 s allowance for that).
    ck.check("t" in res and res["t"] <= t_detach + 0.3 and t_detach - t0 > 0.5,
             "the detach waited %.2f s, until the write completed (%.2f s after the "
             "detach started)" % (t_detach - t0, res.get("t", 0) - t0))
    ck.check(write(d, top2, ga2, "E") == S_EPERM, "and hA is fenced afterwards")
    c.wait_health_ok(60)

    # ---- 6: keel-client, SIGSTOPped while detached ----
    host = socket.gethostname()
    a = c.api("/v1/volumes/fv/attachments", "POST", {"host": host, "nbd": True}, timeout=40)
    t0 = time.monotonic()
    while a.get("state") != "attached" and time.monotonic() - t0 < 30:
        time.sleep(0.2)
        a = c.api("/v1/volumes/fv/attachments/" + host)
    ck.check(a.get("state") == "attached", "attached to this host's keel-client")
    uri = a["nbd_uri"]
    p = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4k", uri],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    ck.check(p.returncode == 0 and "error" not in p.stdout.lower(),
             "qemu-io writes through keel-client (generation %d)" % a["generation"])
    q = subprocess.Popen(["qemu-io", "-f", "raw", uri], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    q.stdin.write("read -P 0x11 0 4k\n")
    q.stdin.flush()
    time.sleep(1)
    pid = c.pid("client")
    os.kill(pid, 19)  # SIGSTOP
    try:
        detach(c, "fv", host)
        attach(c, "fv", "hC")
    finally:
        os.kill(pid, 18)  # SIGCONT
    out = q.communicate(input="write -P 0x22 0 4k\n", timeout=60)[0]
    log("qemu-io after the resume: %s" % out.strip().replace("\n", " | ")[-300:])
    ck.check("0x22" not in out and ("error" in out.lower() or "fail" in out.lower() or
                                    "not permitted" in out.lower()),
             "the zombie's write through its open NBD connection failed")
    st, data = read(d, top2, objno=0)
    ck.check(st == S_OK and data == b"\x11" * B, "the block keeps the data written before")
    with open(c.log_path("client")) as f:
        text = f.read()
    log("keel-client saw EPERM: %s" % ("Operation not permitted" in text))
    ck.done()


if __name__ == "__main__":
    clusterlib.main(test)
