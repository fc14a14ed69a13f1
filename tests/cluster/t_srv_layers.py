#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""keel-server's side of layers (docs/cluster.md "Layers on the server"),
end to end against three real keel-servers that a fake mgmt
(tests/cluster/fake_mgmt.c) feeds maps with layer lists:

  1. reads through a ReadChain resolve block by block (top, parent,
     grandparent, zeroes), with the top's object version;
  2. mutations of read-only layers get EROFS, writes to the top go on;
  3. malformed ReadChains get EINVAL and the server keeps serving;
  4. a map push that freezes a layer is answered only after a write that
     started before it completed (a stopped replica holds the write);
  5. a deleting layer refuses reads (also through a chain), every server
     frees its copies, and usage reports stop listing it while the other
     layers keep their figures;
  6. an mgmt that refuses MG_USAGE is logged once, not every 2 s;
  7. a merge of a deleted snapshot S into its child C (docs/volumes.md
     "Merging a deleted snapshot"): blocks only in S appear in C, blocks
     C held before the merge and writes racing it are never overwritten,
     C's objects have the same versions and blocks on all three servers,
     a second walk writes nothing, and a read-only C takes the merge's
     copy-ups while clients still get EROFS.

Usage: t_srv_layers.py BUILD_DIR. /usr/bin/python3, standard library only.
"""
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "functional"))
import keeltest  # noqa: E402
from keeltest import TestFailure, check, crc32c  # noqa: E402

B = 4096
S_OK, S_EINVAL, S_EROFS = 0, 3, 14
OP_WRITE_ZEROES = 19
FAM = 0x1234
L1, L2, L3 = FAM << 16 | 1, FAM << 16 | 2, FAM << 16 | 3
PGID = 1 << 20  # pool 1, PG 0 (one PG)


def chain_meta(parents):
    body = b"".join(keeltest._varint(p) for p in parents)
    return keeltest._varint(1 << 3 | 2) + keeltest._varint(len(body)) + body


class FakeMgmt:
    def __init__(self, binary, key, nservers):
        self.proc = subprocess.Popen([binary, "127.0.0.1:0", key, str(nservers), "1", "2"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.lines = []
        self.cv = threading.Condition()
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.proc.stdout:
            with self.cv:
                self.lines.append((time.time(), line.rstrip("\n")))
                self.cv.notify_all()

    def send(self, cmd):
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def wait(self, pattern, timeout=20.0, start=0):
        """The first line at index >= start matching pattern: (index, match)."""
        deadline = time.time() + timeout
        with self.cv:
            while True:
                for i in range(start, len(self.lines)):
                    m = re.search(pattern, self.lines[i][1])
                    if m:
                        return i, m
                left = deadline - time.time()
                if left <= 0:
                    raise TestFailure("fake mgmt: no line matching %r in %.0f s; last lines:\n%s"
                                      % (pattern, timeout,
                                         "\n".join(l for _, l in self.lines[-30:])))
                self.cv.wait(left)

    def find(self, pattern, start=0):
        with self.cv:
            return [re.search(pattern, l) for _, l in self.lines[start:]
                    if re.search(pattern, l)]

    def mark(self):
        with self.cv:
            return len(self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main():
    build = os.path.abspath(sys.argv[1])
    server_bin = os.path.join(build, "server", "keel-server")
    fake_bin = os.path.join(build, "tests", "keel-fake-mgmt")
    for b in (server_bin, fake_bin):
        if not os.access(b, os.X_OK):
            raise TestFailure("required binary missing: " + b)
    tmp = tempfile.mkdtemp(prefix="keel-layers-")
    key = os.path.join(tmp, "cluster.key")
    subprocess.run([server_bin, "keygen", key], check=True, stdout=subprocess.DEVNULL)
    fm = FakeMgmt(fake_bin, key, 3)
    servers = []
    ok = False
    try:
        _, m = fm.wait(r"^listening \S+:(\d+)")
        port = int(m.group(1))
        for i in range(3):
            dev = os.path.join(tmp, "drive%d" % (i + 1))
            subprocess.run([server_bin, "format", "--device", dev, "--size", "256M",
                            "--object-size", "1M", "--journal-size", "16M"], check=True,
                           stdout=subprocess.DEVNULL)
            s = keeltest.Server(server_bin, tmp, dev, key, "server%d" % (i + 1),
                                extra=["--mgmt", "127.0.0.1:%d" % port,
                                       "--host", "node%d" % (i + 1)])
            servers.append(s)
            s.start()
        _, m = fm.wait(r"^map epoch=1 primary=(\d+)")
        primary = int(m.group(1))
        addrs = {}
        for m in fm.find(r"^registered id=(\d+) addr=(\S+)"):
            addrs[int(m.group(1))] = m.group(2)
        check(len(addrs) == 3 and primary in addrs, "3 servers registered, primary %d" % primary)
        for sid in addrs:
            fm.wait(r"^reply id=%d epoch=1 status=0" % sid)
        by_addr = {s.addr: s for s in servers}
        psrv = by_addr[addrs[primary]]
        replica = [by_addr[addrs[i]] for i in addrs if i != primary][0]

        c = keeltest.Client(addrs[primary])
        c.handshake(keeltest.load_key(key))
        epoch = [1]

        # Reads here look at layers directly, as a snapshot view does
        # (KP_F_SNAP, bit 2); snap=False reads as a volume's top would.
        def call(op, inode, objno=0, offset=0, length=0, data=b"", meta=b"", snap=True):
            flags = 4 if op == keeltest.OP_READ and snap else 0
            h, _, d, crcs = c.call(op, meta=meta, data=data, inode=inode, objno=objno,
                                   offset=offset, length=length or len(data),
                                   epoch=epoch[0], pgid=PGID, flags=flags)
            if h.status == S_OK and d:
                for i in range(0, len(d), B):
                    if crc32c(d[i:i + B]) != crcs[i // B]:
                        raise TestFailure("read data does not match its crc")
            return h, d

        def blk(ch):
            return ch.encode() * B

        def push_layers(ro, dele, merges=()):
            e = epoch[0] + 1
            fm.send("layers %s %s %s" % (",".join(hex(x) for x in ro) or "-",
                                         ",".join(hex(x) for x in dele) or "-",
                                         ",".join("%d:%d" % m for m in merges)))
            fm.wait(r"^map epoch=%d " % e)
            return e

        def wait_replies(e, ids=None):
            for sid in (ids or addrs):
                _, m = fm.wait(r"^reply id=%d epoch=%d status=(\d+)" % (sid, e))
                check(m.group(1) == "0", "server %d answered the map of epoch %d OK" % (sid, e))
            epoch[0] = e

        # ---- data: grandparent L1, parent L2, top L3 ----
        check(call(keeltest.OP_WRITE, L1, data=blk("A") * 4)[0].status == S_OK, "write L1")
        st = [call(keeltest.OP_WRITE, L1, objno=o, data=blk("a"))[0].status
              for o in range(1, 41)]
        check(st == [S_OK] * 40, "write 40 more objects of L1")
        check(call(keeltest.OP_WRITE, L2, offset=B, data=blk("B") * 2)[0].status == S_OK,
              "write L2")
        h, _ = call(keeltest.OP_WRITE, L3, offset=2 * B, data=blk("C"))
        check(h.status == S_OK, "write L3")

        # ---- 1-2: freeze L1 and L2 ----
        e = push_layers([L1, L2], [])
        wait_replies(e)
        for op, name in ((keeltest.OP_WRITE, "WRITE"), (keeltest.OP_DISCARD, "DISCARD"),
                         (OP_WRITE_ZEROES, "WRITE_ZEROES")):
            for layer in (L1, L2):
                data = blk("X") if op == keeltest.OP_WRITE else b""
                h, _ = call(op, layer, offset=0, length=B, data=data)
                check(h.status == S_EROFS, "%s of read-only layer %x: EROFS (got %d)" %
                      (name, layer, h.status))
        h, _ = call(keeltest.OP_WRITE, L3, offset=4 * B, data=blk("D"))
        check(h.status == S_OK, "write to the top L3 after the freeze")
        top_ver = h.obj_ver
        h, d = call(keeltest.OP_READ, L3, length=6 * B, meta=chain_meta([L2, L1]))
        check(h.status == S_OK, "chain read of L3 through L2, L1")
        want = blk("A") + blk("B") + blk("C") + blk("A") + blk("D") + bytes(B)
        check(d == want, "chain read resolves block by block: top, parent, grandparent, zeroes")
        check(h.obj_ver == top_ver, "chain read carries the top's object version (%x)" % top_ver)
        h, d = call(keeltest.OP_READ, L3, length=6 * B)
        check(h.status == S_OK and d == bytes(2 * B) + blk("C") + bytes(B) + blk("D") + bytes(B),
              "read of L3 without a chain: the top alone")
        h, d = call(keeltest.OP_READ, L2, length=4 * B, meta=chain_meta([L1]))
        check(h.status == S_OK and d == blk("A") + blk("B") * 2 + blk("A"),
              "chain read of the read-only L2 through L1 (a snapshot view)")
        h, d = call(keeltest.OP_READ, L2, length=B, meta=chain_meta([L1]), snap=False)
        check(h.status == 14,
              "a read of the read-only L2 as a volume's top (no KP_F_SNAP): EROFS, the "
              "client must reopen (status %d)" % h.status)
        h, d = call(keeltest.OP_READ, L3, offset=5 * B, length=B, meta=chain_meta([L2, L1]))
        check(h.status == S_OK and d == bytes(B), "a block no layer holds reads as zeroes")
        h, d = call(keeltest.OP_READ, L3, length=B, meta=chain_meta([]))
        check(h.status == S_OK and d == bytes(B), "an empty ReadChain is no chain")

        # ---- 3: hostile chains ----
        bad = [
            ("65 parents", chain_meta([FAM << 16 | (100 + i) for i in range(65)])),
            ("parent 0", chain_meta([L2, 0])),
            ("parent of another family", chain_meta([L2, (FAM + 1) << 16 | 1])),
            ("the inode as its own parent", chain_meta([L3])),
            ("garbage", b"\xff\xff\xff\xff\xff"),
            ("truncated length", b"\x0a\x50\x01"),
            ("60000 bytes of parents",
             chain_meta([FAM << 16 | 5] * 20000)[:60000]),
        ]
        for name, meta in bad:
            h, _ = call(keeltest.OP_READ, L3, length=B, meta=meta)
            check(h.status == S_EINVAL, "ReadChain with %s: EINVAL (got %d)" % (name, h.status))
        h, _, _, _ = c.call(keeltest.OP_PING)
        check(h.status == S_OK and psrv.alive(), "the primary still serves")

        # ---- 4: the drain before a map reply ----
        replica.proc.send_signal(signal.SIGSTOP)
        try:
            c.req_id += 1
            wid = c.req_id
            c.send(keeltest.frame(keeltest.OP_WRITE, data=blk("E"), req_id=wid, inode=L3,
                                  objno=0, offset=0, length=B, epoch=epoch[0], pgid=PGID))
            time.sleep(0.3)
            mark = fm.mark()
            e = push_layers([L1, L2, L3], [])
            time.sleep(1.0)
            early = fm.find(r"^reply id=%d epoch=%d " % (primary, e), mark)
            check(not early, "the primary holds its reply to the map freezing L3 while a "
                  "write to L3 that started before is in flight")
        finally:
            replica.proc.send_signal(signal.SIGCONT)
        h, _, _, _ = c.recv()
        check(h.req_id == wid and h.status == S_OK,
              "the write started before the freeze is acknowledged (status %d)" % h.status)
        wait_replies(e)
        h, _ = call(keeltest.OP_WRITE, L3, offset=0, data=blk("F"))
        check(h.status == S_EROFS, "a write to L3 after its freeze: EROFS")
        h, d = call(keeltest.OP_READ, L3, length=B)
        check(h.status == S_OK and d == blk("E"), "the snapshot L3 holds the drained write")

        # usage before the delete: L1 has 41 objects everywhere
        mark = fm.mark()
        for sid in addrs:
            _, m = fm.wait(r"^usage id=%d epoch=%d layers=(\S*)" % (sid, epoch[0]), 10, mark)
            lay = {int(a): (int(o), int(b)) for a, o, b in
                   (x.split(":") for x in m.group(1).split(",") if x)}
            check(lay.get(L1) == (41, 44 * B) and lay.get(L2) == (1, 2 * B) and
                  lay.get(L3) == (1, 3 * B),
                  "server %d reports L1 41 objects / 44 blocks, L2 1/2, L3 1/3: %s"
                  % (sid, lay))

        # ---- 5: delete L1 ----
        e = push_layers([L2, L3], [L1])
        wait_replies(e)
        for name, inode, meta in (("L1", L1, b""), ("L3 through L2, L1", L3, chain_meta([L2, L1])),
                                  ("L2 through L1", L2, chain_meta([L1]))):
            h, _ = call(keeltest.OP_READ, inode, length=B, meta=meta)
            check(h.status == S_EROFS, "read of %s with L1 deleting: EROFS" % name)
        h, _ = call(keeltest.OP_WRITE, L1, data=blk("G"))
        check(h.status == S_EROFS, "write to deleting L1: EROFS")
        h, d = call(keeltest.OP_READ, L2, offset=B, length=B)
        check(h.status == S_OK and d == blk("B"), "L2 alone still reads")
        mark = fm.mark()
        for sid in addrs:
            deadline = time.time() + 20
            while True:
                _, m = fm.wait(r"^usage id=%d epoch=%d layers=(\S*)" % (sid, e), 20, mark)
                lay = {int(a): (int(o), int(b)) for a, o, b in
                       (x.split(":") for x in m.group(1).split(",") if x)}
                if L1 not in lay or time.time() > deadline:
                    break
                mark = fm.mark()
            check(L1 not in lay, "server %d: GC freed every object of L1 (usage %s)" % (sid, lay))
            check(lay.get(L2) == (1, 2 * B) and lay.get(L3) == (1, 3 * B),
                  "server %d: L2 and L3 keep their objects" % sid)
        for s in servers:
            sc = keeltest.Client(s.addr)
            sc.handshake(keeltest.load_key(key))
            h, m, _, _ = sc.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=L1))
            objs = keeltest.pb_decode(m).get(1, [])
            check(h.status == S_OK and not objs, "%s lists no object of L1" % s.addr)
            h, m, _, _ = sc.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=L2))
            check(len(keeltest.pb_decode(m).get(1, [])) == 1, "%s still has L2" % s.addr)
            sc.close()
        for s in servers:
            check(re.search(r"gc: layer %d: 41 objects freed, none left" % L1, s.log_text()),
                  "%s logged freeing 41 objects of L1" % s.log)

        # ---- 7: merges ----
        M1, M2, M3, M4 = (FAM << 16 | x for x in (10, 11, 12, 13))
        NOBJ = 24

        def sdata(o, b):
            return bytes([0x40 + (o * 7 + b) % 61]) * B

        for o in range(NOBJ):
            d = b"".join(sdata(o, b) for b in range(8))
            check(call(keeltest.OP_WRITE, M1, objno=o, data=d)[0].status == S_OK, "write M1")
            d = b"".join(sdata(o, b) for b in range(100, 104))
            check(call(keeltest.OP_WRITE, M1, objno=o, offset=100 * B, data=d)[0].status == S_OK,
                  "write M1 blocks 100..103")
        check(call(keeltest.OP_WRITE, M2, objno=0, offset=2 * B, data=blk("W"))[0].status == S_OK,
              "write M2 before the merge")
        check(call(keeltest.OP_WRITE, M2, objno=5, data=blk("V") * 10)[0].status == S_OK,
              "write M2 object 5 before the merge")
        check(call(keeltest.OP_WRITE, M3, objno=1, offset=3 * B, data=blk("Q"))[0].status == S_OK,
              "write M3")
        base_ro, base_del = [L2, L3], [L1]
        e = push_layers(base_ro + [M1, M3, M4], base_del)
        wait_replies(e)

        def merge_status(e, pairs, start):
            # {(server, S, C): (done, total, finished)} from the usage lines of epoch e
            out = {}
            for m in fm.find(r"^usage id=(\d+) epoch=%d layers=\S* merges=(\S*)" % e, start):
                for x in m.group(2).split(","):
                    if x:
                        a, b, dn, tot, fin = (int(v) for v in x.split(":"))
                        if (a, b) in pairs:
                            out[(int(m.group(1)), a, b)] = (dn, tot, fin)
            return out

        def wait_merged(e, pairs, start):
            deadline = time.time() + 30
            while True:
                st = merge_status(e, pairs, start)
                if all(st.get((sid, a, b), (0, 0, 0))[2] for sid in addrs for a, b in pairs):
                    return st
                if time.time() > deadline:
                    raise TestFailure("merges %s not reported done by every server: %s"
                                      % (pairs, st))
                time.sleep(0.2)

        # a writer racing the copy-ups on its own connection: block 4 of
        # every object of M2, again and again
        wc = keeltest.Client(addrs[primary])
        wc.handshake(keeltest.load_key(key))
        stop = threading.Event()
        werr = []

        def writer():
            n = 0
            while not stop.is_set() or n < 2 * NOBJ:
                o = n % NOBJ
                h, _, _, _ = wc.call(keeltest.OP_WRITE, data=blk("R"), inode=M2, objno=o,
                                     offset=4 * B, length=B, epoch=epoch[0], pgid=PGID)
                if h.status != S_OK:
                    werr.append((o, h.status))
                    return
                n += 1

        mark = fm.mark()
        wt = threading.Thread(target=writer)
        wt.start()
        e = push_layers(base_ro + [M1, M3, M4], base_del, [(M1, M2), (M3, M4)])
        wait_replies(e)
        try:
            st = wait_merged(e, [(M1, M2), (M3, M4)], mark)
        finally:
            stop.set()
            wt.join()
        check(not werr, "the racing writes to M2 succeeded: %s" % werr)
        tot = sum(st[(sid, M1, M2)][1] for sid in addrs)
        dn = sum(st[(sid, M1, M2)][0] for sid in addrs)
        check(tot == NOBJ and dn == NOBJ and st[(primary, M1, M2)][1] == NOBJ,
              "the primary walked the %d objects of M1, the others none: %s" % (NOBJ, st))
        for o in range(NOBJ):
            h, d = call(keeltest.OP_READ, M2, objno=o, length=104 * B)
            check(h.status == S_OK, "read M2 object %d" % o)
            want = [sdata(o, b) if b < 8 or b >= 100 else bytes(B) for b in range(104)]
            if o == 0:
                want[2] = blk("W")
            if o == 5:
                want[:10] = [blk("V")] * 10
            want[4] = blk("R")
            for b in range(104):
                if d[b * B:(b + 1) * B] != want[b]:
                    raise TestFailure("M2 object %d block %d after the merge: %r, want %r"
                                      % (o, b, d[b * B:b * B + 1], want[b][:1]))
        lists = {}
        for s in servers:
            sc = keeltest.Client(s.addr)
            sc.handshake(keeltest.load_key(key))
            h, m, _, _ = sc.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=M2))
            objs = [keeltest.pb_decode(x) for x in keeltest.pb_decode(m).get(1, [])]
            lists[s.addr] = sorted((x.get(2, [0])[0], x.get(3, [0])[0], x.get(4, [0])[0]) for x in objs)
            sc.close()
        first = lists[servers[0].addr]
        check(len(first) == NOBJ and all(v == first for v in lists.values()),
              "M2 has %d objects with the same versions and blocks on every server" % NOBJ)
        check(all(bm == (14 if o == 5 else 12) for o, _, bm in first),
              "M2's objects map exactly their own blocks plus M1's (12, 14 for object 5): %s"
              % [bm for _, _, bm in first])
        h, d = call(keeltest.OP_READ, M4, objno=1, offset=3 * B, length=B)
        check(h.status == S_OK and d == blk("Q"), "the read-only M4 took M3's block")
        h, _ = call(keeltest.OP_WRITE, M4, objno=1, data=blk("Z"))
        check(h.status == S_EROFS, "clients still get EROFS writing the merging-into M4")

        # the walk again (the merge leaves the map and comes back): nothing written
        e = push_layers(base_ro + [M1, M3, M4], base_del)
        wait_replies(e)
        mark = fm.mark()
        e = push_layers(base_ro + [M1, M3, M4], base_del, [(M1, M2)])
        wait_replies(e)
        wait_merged(e, [(M1, M2)], mark)
        sc = keeltest.Client(psrv.addr)
        sc.handshake(keeltest.load_key(key))
        h, m, _, _ = sc.call(keeltest.OP_LIST, meta=keeltest.list_request(inode=M2))
        objs = [keeltest.pb_decode(x) for x in keeltest.pb_decode(m).get(1, [])]
        again = sorted((x.get(2, [0])[0], x.get(3, [0])[0], x.get(4, [0])[0]) for x in objs)
        sc.close()
        check(again == first, "a second walk changes no object version of M2")
        # the merged layer goes: M1 deleting, C reads alone
        e = push_layers(base_ro + [M3, M4], base_del + [M1])
        wait_replies(e)
        h, d = call(keeltest.OP_READ, M2, objno=3, offset=100 * B, length=B)
        check(h.status == S_OK and d == sdata(3, 100), "M2 reads M1's block without M1")

        # ---- 6: an mgmt without MG_USAGE ----
        fm.send("usage_status 95")
        time.sleep(6.5)
        for s in servers:
            n = len(re.findall(r"usage report refused", s.log_text()))
            check(n == 1, "%s logs a refused usage report once (%d times)" % (s.log, n))
        for s in servers:
            check(s.alive(), "%s is alive" % s.log)
        ok = True
    except TestFailure as ex:
        print("FAIL: %s" % ex, flush=True)
    except Exception as ex:  # a crash of the test (e.g. a server died) fails too
        import traceback
        traceback.print_exc()
        print("FAIL: test error: %r" % ex, flush=True)
    finally:
        for s in servers:
            if s.proc and s.alive():
                s.proc.send_signal(signal.SIGCONT)
                s.kill()
        fm.stop()
        if ok and not os.environ.get("KEEL_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("test files kept in " + tmp)
            for s in servers:
                print("---- %s (last 60 lines) ----" % s.log)
                with open(s.log, errors="replace") as f:
                    print("".join(f.readlines()[-60:]))
            print("---- fake mgmt ----")
            print("\n".join(l for _, l in fm.lines[-40:]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
