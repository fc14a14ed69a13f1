# SPDX-License-Identifier: Apache-2.0
"""Keel functional-test helpers: a raw wire client and server process control.

Standard library only (run with /usr/bin/python3). The wire format is
proto/frame.h: an 88-byte little-endian header, protobuf meta, data and one
crc32c per 4 KiB block. Protobuf messages (proto/keel.proto) are encoded by
hand: proto3 varints and length-delimited fields only.
"""
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

# ---- crc32c (Castagnoli), table-driven ----

_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
ZERO_BLOCK_CRC = crc32c(bytes(4096))

# ---- frame header ----

MAGIC = 0x4C45454B
VERSION = 1
HDR_SIZE = 88
HDR_FMT = "<IHHIiQQQQQQIIIIII"
assert struct.calcsize(HDR_FMT) == HDR_SIZE

OP_HELLO, OP_AUTH = 1, 2
OP_READ, OP_WRITE, OP_DISCARD, OP_WRITE_ZEROES, OP_SYNC, OP_LIST, OP_STAT, OP_PING = range(16, 24)
F_REPLY = 1

S_OK, S_EIO, S_ENOSPC, S_EINVAL, S_ENOENT = 0, 1, 2, 3, 4
S_EPERM, S_EBADMSG, S_EAGAIN, S_ERANGE, S_EBUSY = 6, 7, 8, 10, 12
STATUS_NAMES = {0: "OK", 1: "EIO", 2: "ENOSPC", 3: "EINVAL", 4: "ENOENT", 5: "ESTALE",
                6: "EPERM", 7: "EBADMSG", 8: "EAGAIN", 9: "ENOTSUP", 10: "ERANGE",
                11: "EPROTO", 12: "EBUSY", 13: "ETIMEDOUT"}


def encode_hdr(opcode, req_id=0, flags=0, status=0, inode=0, objno=0, obj_ver=0, offset=0,
               length=0, meta_len=0, data_len=0, magic=MAGIC, version=VERSION, epoch=0,
               gen=0, pgid=0, crc=None):
    fields = [magic, version, opcode, flags, status, req_id, epoch, inode, objno, obj_ver,
              gen, offset, length, meta_len, data_len, pgid, 0]
    raw = struct.pack(HDR_FMT, *fields)
    if crc is None:
        crc = crc32c(raw)
    return raw[:-4] + struct.pack("<I", crc)


class Hdr:
    def __init__(self, raw):
        (self.magic, self.version, self.opcode, self.flags, self.status, self.req_id,
         self.epoch, self.inode, self.objno, self.obj_ver, self.gen, self.offset,
         self.length, self.meta_len, self.data_len, self.pgid,
         self.hdr_crc) = struct.unpack(HDR_FMT, raw)

    def payload_len(self):
        return self.meta_len + self.data_len + (self.data_len // 4096) * 4


def frame(opcode, meta=b"", data=b"", crcs=None, **kw):
    if crcs is None:
        crcs = [crc32c(data[i:i + 4096]) for i in range(0, len(data), 4096)]
    hdr = encode_hdr(opcode, meta_len=len(meta), data_len=len(data), **kw)
    return hdr + meta + data + b"".join(struct.pack("<I", c) for c in crcs)

# ---- protobuf (proto3) by hand ----


def _varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field, v):
    return _varint(field << 3) + _varint(v) if v else b""


def pb_bytes(field, b):
    return _varint((field << 3) | 2) + _varint(len(b)) + b if b else b""


def pb_decode(buf):
    """Return {field: [values]}; varints as int, length-delimited as bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v, i = bytes(buf[i:i + n]), i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("bad wire type")
        out.setdefault(field, []).append(v)
    return out


def _read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def auth_hello(client_nonce, name="pytest", proto_version=VERSION):
    return pb_bytes(1, client_nonce) + pb_bytes(2, name.encode()) + pb_varint(3, proto_version)


def auth_proof(proof):
    return pb_bytes(1, proof)


def list_request(inode=0, all_inodes=False, cursor_inode=0, cursor_objno=0, max_=0):
    return (pb_varint(1, inode) + pb_varint(2, 1 if all_inodes else 0) +
            pb_varint(3, cursor_inode) + pb_varint(4, cursor_objno) + pb_varint(5, max_))


def proof(key, role, client_nonce, server_nonce):
    """HMAC-SHA256(key, label | nonce being answered | own nonce) (proto/auth.h)."""
    if role == "srv":
        msg = b"keel-srv" + client_nonce + server_nonce
    else:
        msg = b"keel-cli" + server_nonce + client_nonce
    return hmac.new(key, msg, hashlib.sha256).digest()


def load_key(path):
    with open(path) as f:
        return bytes.fromhex(f.read().strip())

# ---- raw client ----


class Closed(Exception):
    pass


class Client:
    def __init__(self, addr, timeout=10.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.req_id = 100
        self.server_nonce = None
        self.client_nonce = None
        self.sent_frames = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, b):
        self.sent_frames.append(b)
        self.sock.sendall(b)

    def _fill(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(1 << 20)
            if not d:
                raise Closed("server closed the connection")
            self.buf += d

    def recv(self):
        """One frame: (Hdr, meta, data, crcs). Raises Closed on EOF."""
        self._fill(HDR_SIZE)
        h = Hdr(self.buf[:HDR_SIZE])
        if h.magic != MAGIC:
            raise ValueError("bad magic from server")
        total = HDR_SIZE + h.payload_len()
        self._fill(total)
        p = self.buf[HDR_SIZE:total]
        self.buf = self.buf[total:]
        meta = p[:h.meta_len]
        data = p[h.meta_len:h.meta_len + h.data_len]
        crcb = p[h.meta_len + h.data_len:]
        crcs = list(struct.unpack("<%dI" % (len(crcb) // 4), crcb))
        return h, meta, data, crcs

    def expect_closed(self, timeout=5.0):
        """True when the server closes the connection (replies before it are
        read and dropped) within @timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.recv()
        except (Closed, ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def handshake(self, key, name="pytest"):
        self.client_nonce = os.urandom(32)
        self.send(frame(OP_HELLO, meta=auth_hello(self.client_nonce, name), req_id=1))
        h, meta, _, _ = self.recv()
        if h.status != S_OK:
            raise RuntimeError("HELLO refused: %s" % STATUS_NAMES.get(h.status))
        m = pb_decode(meta)
        self.server_nonce = m[1][0]
        if not hmac.compare_digest(m[2][0], proof(key, "srv", self.client_nonce,
                                                  self.server_nonce)):
            raise RuntimeError("server proof is wrong")
        self.send(frame(OP_AUTH, meta=auth_proof(proof(key, "cli", self.client_nonce,
                                                       self.server_nonce)), req_id=2))
        h, _, _, _ = self.recv()
        if h.status != S_OK:
            raise RuntimeError("AUTH refused: %s" % STATUS_NAMES.get(h.status))

    def call(self, opcode, meta=b"", data=b"", **kw):
        self.req_id += 1
        rid = self.req_id
        self.send(frame(opcode, meta=meta, data=data, req_id=rid, **kw))
        while True:
            h, m, d, c = self.recv()
            if h.req_id == rid:
                return h, m, d, c

    def write(self, inode, objno, offset, data, **kw):
        h, _, _, _ = self.call(OP_WRITE, data=data, inode=inode, objno=objno, offset=offset,
                               length=len(data), **kw)
        return h

    def read(self, inode, objno, offset, length):
        h, _, d, c = self.call(OP_READ, inode=inode, objno=objno, offset=offset,
                               length=length)
        if h.status == S_OK:
            for i in range(0, len(d), 4096):
                if crc32c(d[i:i + 4096]) != c[i // 4096]:
                    raise RuntimeError("read data does not match its crc")
        return h, d

    def discard(self, inode, objno, offset, length):
        h, _, _, _ = self.call(OP_DISCARD, inode=inode, objno=objno, offset=offset,
                               length=length)
        return h

    def store_stat(self):
        h, m, _, _ = self.call(OP_STAT)
        if h.status != S_OK:
            raise RuntimeError("STAT failed: %s" % STATUS_NAMES.get(h.status))
        f = pb_decode(m)
        names = {1: "object_size", 2: "objects_total", 3: "objects_used", 4: "journal_size",
                 5: "journal_used", 6: "index_bytes", 7: "reads", 8: "writes",
                 9: "crc_errors", 11: "ops_read", 12: "ops_write", 13: "ops_other",
                 14: "bytes_read", 15: "bytes_written", 16: "errors"}
        return {names[k]: v[0] for k, v in f.items() if k in names}

# ---- processes ----


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)
    print("ok: " + msg, flush=True)


class Server:
    """A keel-server process on a device file, logging into a file."""

    def __init__(self, binary, workdir, device, key, name="server", extra=()):
        self.binary = binary
        self.workdir = workdir
        self.device = device
        self.key = key
        self.log = os.path.join(workdir, name + ".log")
        self.extra = list(extra)
        self.proc = None
        self.addr = None
        self.log_pos = 0

    def start(self, timeout=20.0):
        logf = open(self.log, "ab")
        self.log_pos = os.path.getsize(self.log)
        self.proc = subprocess.Popen(
            [self.binary, "run", "--device", self.device, "--key", self.key,
             "--listen", "127.0.0.1:0"] + self.extra,
            stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log_text()
            m = re.search(r"listening on (127\.0\.0\.1:\d+)", text)
            if m and "ready" in text:
                self.addr = m.group(1)
                return self.addr
            if self.proc.poll() is not None:
                raise TestFailure("keel-server exited with %d during startup:\n%s" %
                                  (self.proc.returncode, text))
            time.sleep(0.05)
        raise TestFailure("keel-server did not become ready:\n" + self.log_text())

    def log_text(self):
        with open(self.log, "rb") as f:
            f.seek(self.log_pos)
            return f.read().decode(errors="replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("keel-server did not exit after %s" % sig)

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def wait_log(self, pattern, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if re.search(pattern, self.log_text()):
                return True
            time.sleep(0.05)
        return False


class Env:
    """A temp dir with a key and helpers; cleaned up unless KEEL_KEEP_TMP is set."""

    def __init__(self, argv):
        if len(argv) < 3:
            sys.exit("usage: %s KEEL_SERVER KEEL_BENCH" % argv[0])
        self.server_bin = os.path.abspath(argv[1])
        self.bench_bin = os.path.abspath(argv[2])
        self.dir = tempfile.mkdtemp(prefix="keel-ft-")
        self.key = os.path.join(self.dir, "cluster.key")
        self.run_ok([self.server_bin, "keygen", self.key])
        self.servers = []

    def run(self, args, **kw):
        return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, **kw)

    def run_ok(self, args, **kw):
        p = self.run(args, **kw)
        if p.returncode != 0:
            raise TestFailure("%s exited %d:\n%s%s" % (" ".join(args), p.returncode,
                                                       p.stdout, p.stderr))
        return p

    def format(self, device, size="64M", object_size="1M", journal_size="8M", extra=()):
        return self.run_ok([self.server_bin, "format", "--device", device, "--size", size,
                            "--object-size", object_size, "--journal-size", journal_size] +
                           list(extra))

    def server(self, device, name="server", extra=()):
        s = Server(self.server_bin, self.dir, device, self.key, name, extra)
        self.servers.append(s)
        return s

    def bench_args(self, addr, *args):
        return [self.bench_bin, "--server", addr, "--key", self.key] + list(args)

    def verified_bench(self, addr, state, rw, ios, size, iodepth, seed, what=""):
        """keel-bench --verify with a state file (the model of every block
        written); checks it exits 0 with no error and no mismatch and
        returns its JSON report."""
        p = self.run(self.bench_args(addr, "--rw", rw, "--bs", "4k", "--iodepth", str(iodepth),
                                     "--size", size, "--ios", str(ios), "--verify",
                                     "--state", state, "--json", "--seed", str(seed)))
        if p.returncode != 0:
            raise TestFailure("keel-bench %s exited %d:\n%s%s" % (rw, p.returncode, p.stdout,
                                                                  p.stderr))
        r = json.loads(p.stdout)
        check(r["errors"] == 0 and r["verify_mismatches"] == 0 and r["ok"],
              "%s%s: %d ios, 0 errors, 0 mismatches, %d blocks verified" %
              (rw, what, r["total"]["ios"], r["verified_blocks"]))
        return r

    def cleanup(self, ok):
        for s in self.servers:
            s.kill()
        if ok and not os.environ.get("KEEL_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("test files kept in " + self.dir)
            for s in self.servers:
                if os.path.exists(s.log):
                    print("---- %s ----" % s.log)
                    with open(s.log, errors="replace") as f:
                        print(f.read()[-20000:])


def main(test):
    """Run test(env); exit 0 on success, 1 on failure."""
    env = Env(sys.argv)
    ok = False
    try:
        test(env)
        ok = True
    except TestFailure as e:
        print("FAIL: %s" % e, flush=True)
    finally:
        env.cleanup(ok)
    sys.exit(0 if ok else 1)
