#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""02 bad input: while keel-bench --verify runs, raw connections send hostile
frames. Each must close only its own connection with its reason logged; the
workload must finish with zero errors and zero mismatches; the server stays up."""
import json
import os
import random
import socket
import struct
import subprocess
import time

import keeltest as kt


def local_peer(c):
    host, port = c.sock.getsockname()[:2]
    return "%s:%d" % (host, port)


def attack(env, srv, name, reason, fn):
    """Run fn(client) on a fresh connection; the server must close it and log
    'closing <our address>: <reason>'."""
    c = kt.Client(srv.addr)
    peer = local_peer(c)
    try:
        fn(c)
    except (BrokenPipeError, ConnectionResetError):
        pass
    closed = c.expect_closed(timeout=5.0)
    c.close()
    kt.check(closed, "%s: server closed the connection" % name)
    pat = r"closing %s: (%s)" % (kt.re.escape(peer), reason)  # reason is a regex
    kt.check(srv.wait_log(pat, 5.0), "%s: server logged '%s'" % (name, reason))
    kt.check(srv.alive(), "%s: server still running" % name)


def test(env):
    dev = os.path.join(env.dir, "drive0")
    env.format(dev, size="256M", object_size="1M", journal_size="16M")
    # A short authentication timeout so the silent-client case runs quickly.
    srv = env.server(dev, extra=["--set", "server.auth_timeout_ms=1500"])
    srv.start()
    key = kt.load_key(env.key)
    other_key = os.urandom(32)

    # Record a good client's handshake for the replay attack.
    good = kt.Client(srv.addr)
    good.handshake(key, "recorded")
    recorded_hello, recorded_auth = good.sent_frames[0], good.sent_frames[1]
    h, _, _, _ = good.call(kt.OP_PING)
    kt.check(h.status == kt.S_OK, "an authenticated client can PING")

    bench = subprocess.Popen(
        env.bench_args(srv.addr, "--rw", "randrw", "--bs", "4k", "--iodepth", "16",
                       "--size", "64M", "--runtime", "12", "--verify", "--json",
                       "--seed", "11"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    rnd = random.Random(1234)

    def send_hdr(**kw):
        return lambda c: c.send(kt.encode_hdr(kt.OP_HELLO, req_id=1, **kw))

    attack(env, srv, "wrong magic", "bad magic", send_hdr(magic=0x12345678))
    attack(env, srv, "wrong version", "unsupported version", send_hdr(version=7))
    attack(env, srv, "4 GiB meta_len", "meta_len exceeds KP_MAX_META",
           send_hdr(meta_len=0xFFFFF000))
    attack(env, srv, "4 GiB data_len", "data_len exceeds KP_MAX_DATA",
           lambda c: c.send(kt.encode_hdr(kt.OP_WRITE, req_id=5, inode=1, length=0xFFFFF000,
                                          data_len=0xFFFFF000)))
    attack(env, srv, "bad header crc", "header crc mismatch",
           send_hdr(meta_len=10, crc=0xDEADBEEF))

    def truncated(c):
        f = kt.frame(kt.OP_HELLO, meta=kt.auth_hello(os.urandom(32)), req_id=1)
        c.send(f[:len(f) - 7])
        time.sleep(0.2)
        c.sock.shutdown(socket.SHUT_WR)
    attack(env, srv, "truncated frame", "truncated frame at EOF", truncated)

    def bad_payload_crc(c):
        c.handshake(key)
        data = bytes(rnd.getrandbits(8) for _ in range(4096))
        good_crc = kt.crc32c(data)
        c.send(kt.frame(kt.OP_WRITE, data=data, crcs=[good_crc ^ 1], req_id=9, inode=77,
                        objno=0, offset=0, length=4096))
    attack(env, srv, "bad payload crc", "payload crc mismatch", bad_payload_crc)

    attack(env, srv, "object op before auth", "unauthenticated opcode",
           lambda c: c.send(kt.frame(kt.OP_READ, req_id=3, inode=1, objno=0, offset=0,
                                     length=4096)))

    def wrong_key(c):
        cn = os.urandom(32)
        c.send(kt.frame(kt.OP_HELLO, meta=kt.auth_hello(cn), req_id=1))
        h, meta, _, _ = c.recv()
        sn = kt.pb_decode(meta)[1][0]
        c.send(kt.frame(kt.OP_AUTH, meta=kt.auth_proof(kt.proof(other_key, "cli", cn, sn)),
                        req_id=2))
        h, _, _, _ = c.recv()
        kt.check(h.status == kt.S_EPERM, "wrong key: AUTH answered EPERM")
    attack(env, srv, "wrong key", "client failed authentication", wrong_key)

    def replay(c):
        c.send(recorded_hello)
        h, meta, _, _ = c.recv()
        kt.check(kt.pb_decode(meta)[1][0] != good.server_nonce,
                 "replay: the server chose a fresh nonce")
        c.send(recorded_auth)
        h, _, _, _ = c.recv()
        kt.check(h.status == kt.S_EPERM, "replay: recorded AUTH proof answered EPERM")
    attack(env, srv, "replayed handshake", "client failed authentication", replay)

    def second_handshake(c):
        c.handshake(key)
        c.send(recorded_hello)
    attack(env, srv, "handshake after auth", "repeated handshake|handshake after authentication",
           second_handshake)

    # Connects and never authenticates (silent, or half a HELLO header):
    # closed after auth_timeout_ms, not held forever.
    attack(env, srv, "silent client", "authentication timeout", lambda c: None)
    attack(env, srv, "half a header, then silence", "authentication timeout",
           lambda c: c.send(recorded_hello[:40]))

    attack(env, srv, "garbage bytes", "bad magic",
           lambda c: c.send(b"GET / HTTP/1.1\r\n" + bytes(rnd.getrandbits(8)
                                                        for _ in range(4000))))

    # A client that vanishes with requests in flight: the replies are
    # dropped, nothing else is affected.
    for round_ in range(5):
        c = kt.Client(srv.addr)
        c.handshake(key)
        burst = b"".join(
            kt.frame(kt.OP_WRITE if i % 2 else kt.OP_READ, req_id=1000 + i, inode=900 + round_,
                     objno=i % 8, offset=(i % 16) * 4096, length=4096,
                     data=bytes([i & 0xFF]) * 4096 if i % 2 else b"")
            for i in range(120))
        c.sock.sendall(burst)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
    time.sleep(0.5)
    kt.check(srv.alive(), "clients closing with 120 requests in flight: server still up")

    # Up to the documented queue depth (128) pipelined requests all succeed;
    # far beyond it the server answers EBUSY and then closes the connection
    # with "queue depth exceeded" (server/srv.h), never crashes.
    c = kt.Client(srv.addr)
    c.handshake(key)
    c.sock.sendall(b"".join(kt.frame(kt.OP_PING, req_id=5000 + i) for i in range(128)))
    ok = sum(1 for _ in range(128) if c.recv()[0].status == kt.S_OK)
    kt.check(ok == 128, "128 pipelined PINGs (the queue depth): all OK")
    peer = local_peer(c)
    c.sock.sendall(b"".join(kt.frame(kt.OP_PING, req_id=6000 + i) for i in range(1000)))
    statuses = {}
    try:
        for _ in range(1000):
            h, _, _, _ = c.recv()
            statuses[h.status] = statuses.get(h.status, 0) + 1
    except (kt.Closed, ConnectionResetError):
        pass
    c.close()
    kt.check(set(statuses) <= {kt.S_OK, kt.S_EBUSY}, "1000 pipelined PINGs: only OK/EBUSY "
             "replies (%s)" % statuses)
    if sum(statuses.values()) < 1000:
        kt.check(srv.wait_log(r"closing %s: queue depth exceeded" % kt.re.escape(peer)),
                 "overrunning client closed with 'queue depth exceeded'")
    kt.check(srv.alive(), "server up after the overrun")

    # Bad requests that are answered, not closed.
    c = kt.Client(srv.addr)
    c.handshake(key)
    h = c.write(1, 0, 1 << 20, bytes(4096))
    kt.check(h.status == kt.S_ERANGE, "WRITE past the object end: ERANGE, conn stays")
    h, _ = c.read(0, 0, 0, 4096)
    kt.check(h.status == kt.S_EINVAL, "READ of inode 0: EINVAL")
    h, _, _, _ = c.call(kt.OP_LIST, meta=b"\xff\xff\xff")
    kt.check(h.status == kt.S_EINVAL, "LIST with malformed ListRequest: EINVAL")
    h, _, _, _ = c.call(kt.OP_PING)
    kt.check(h.status == kt.S_OK, "connection still serves after bad requests")
    c.close()

    out, err = bench.communicate(timeout=120)
    kt.check(bench.returncode == 0, "keel-bench exited 0 (stderr: %s)" % err.strip())
    r = json.loads(out)
    kt.check(r["errors"] == 0 and r["verify_mismatches"] == 0,
             "concurrent workload: %d ios, 0 errors, 0 mismatches, %d blocks verified" %
             (r["total"]["ios"], r["verified_blocks"]))
    kt.check(r["verified_blocks"] > 0, "the workload verified data")
    h, _, _, _ = good.call(kt.OP_PING)
    kt.check(h.status == kt.S_OK, "the first client's connection is untouched")
    good.close()
    kt.check(srv.alive(), "server still up")
    kt.check(srv.stop() == 0, "server exits 0 on SIGTERM")


kt.main(test)
