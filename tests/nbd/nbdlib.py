# SPDX-License-Identifier: Apache-2.0
"""Helpers for the NBD functional tests (stdlib only, /usr/bin/python3).

Servers: keel-export (the product) and qemu-storage-daemon (the reference),
both serving a local file as export "vol" on a unix socket and optionally
TCP. Client: a raw-socket NBD client that can send anything, well-formed or
not.
"""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

GIB = 1 << 30
INIT_MAGIC = 0x4E42444D41474943
OPTS_MAGIC = 0x49484156454F5054
REP_MAGIC = 0x0003E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_STARTTLS = 1, 2, 3, 5
OPT_INFO, OPT_GO, OPT_STRUCTURED_REPLY = 6, 7, 8
REP_ACK, REP_SERVER, REP_INFO = 1, 2, 3
REP_ERR_UNSUP = (1 << 31) | 1
REP_ERR_INVALID = (1 << 31) | 3
REP_ERR_UNKNOWN = (1 << 31) | 6
REP_ERR_TOO_BIG = (1 << 31) | 9
INFO_EXPORT, INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 0, 1, 2, 3

CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WRITE_ZEROES = 6
FLAG_FUA, FLAG_NO_HOLE, FLAG_DF = 1, 2, 4
FLAG_READ_ONLY = 1 << 1

EPERM, EIO, EINVAL, ENOSPC, ESHUTDOWN = 1, 5, 22, 28, 108

REQUIRED_TOOLS = ["fio", "qemu-img", "qemu-io", "nbdinfo", "nbdcopy", "qemu-storage-daemon",
                  "cmp"]


def need_tools(tools=REQUIRED_TOOLS):
    """A missing tool is a failure, never a skip."""
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        print("FAIL: missing tools: %s (install-deps)" % " ".join(missing))
        sys.exit(1)


def free_tcp_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_unix(path, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early with %s" % proc.returncode)
        if os.path.exists(path):
            s = socket.socket(socket.AF_UNIX)
            try:
                s.connect(path)
                s.close()
                return
            except OSError:
                pass
            finally:
                s.close()
        time.sleep(0.05)
    raise RuntimeError("socket %s did not appear" % path)


def wait_tcp(port, proc, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited early with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not open" % port)


class Server:
    """One export of FILE as "vol": kind "keel" (keel-export) or "qsd"."""

    def __init__(self, kind, build_dir, workdir, path, sock, size=GIB, ro=False,
                 tcp_port=None, tag="srv"):
        self.kind, self.path, self.sock, self.ro = kind, path, sock, ro
        self.tcp_port = tcp_port
        self.size = size
        self.log = os.path.join(workdir, "%s-%s.log" % (tag, kind))
        self.out = os.path.join(workdir, "%s-%s.out" % (tag, kind))
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.truncate(size)
        if kind == "keel":
            cmd = [os.path.join(build_dir, "tests", "keel-export"), "--file", path,
                   "--size", str(size), "--name", "vol"]
            if sock:
                cmd += ["--nbd-unix", sock]
            if tcp_port:
                cmd += ["--nbd-tcp", "127.0.0.1:%d" % tcp_port]
            if ro:
                cmd += ["--ro"]
        else:
            cmd = ["qemu-storage-daemon",
                   "--blockdev", "driver=file,node-name=file0,filename=%s,discard=unmap%s"
                   % (path, ",read-only=on" if ro else "")]
            # The NBD server must exist before the export.
            if sock:
                cmd += ["--nbd-server", "addr.type=unix,addr.path=%s" % sock]
            else:
                cmd += ["--nbd-server",
                        "addr.type=inet,addr.host=127.0.0.1,addr.port=%d" % tcp_port]
            cmd += ["--export", "type=nbd,id=exp0,node-name=file0,name=vol,writable=%s"
                    % ("off" if ro else "on")]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=open(self.out, "w"),
                                     stderr=open(self.log, "w"), stdin=subprocess.DEVNULL)
        try:
            if sock:
                wait_unix(sock, self.proc)
            if tcp_port:
                wait_tcp(tcp_port, self.proc)
        except Exception:
            self.stop()
            raise

    def uri(self, tcp=False):
        if tcp:
            return "nbd://127.0.0.1:%d/vol" % self.tcp_port
        return "nbd+unix:///vol?socket=%s" % self.sock

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None

    def stats(self):
        try:
            with open(self.out) as f:
                for line in f:
                    if line.startswith("nbd:"):
                        w = line.split()[1:]
                        return {w[i]: int(w[i + 1]) for i in range(0, len(w) - 1, 2)}
        except OSError:
            pass
        return {}

    def log_tail(self, n=20):
        try:
            with open(self.log) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Closed(Exception):
    pass


class Client:
    """A raw NBD client over a unix socket or TCP."""

    def __init__(self, sock_path=None, tcp_port=None, timeout=10):
        if sock_path:
            self.s = socket.socket(socket.AF_UNIX)
            self.s.settimeout(timeout)
            self.s.connect(sock_path)
        else:
            self.s = socket.create_connection(("127.0.0.1", tcp_port), timeout=timeout)
        self.size = None
        self.tflags = None

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    def send(self, data):
        self.s.sendall(data)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def is_closed(self, timeout=5):
        """True when the server closed the connection (anything it still
        sends before closing is read and dropped)."""
        self.s.settimeout(timeout)
        end = time.time() + timeout
        try:
            while time.time() < end:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False

    # --- handshake ---
    def greeting(self):
        g = self.recv_exact(18)
        magic, opts, hflags = struct.unpack(">QQH", g)
        assert magic == INIT_MAGIC and opts == OPTS_MAGIC, "bad greeting %r" % g
        return hflags

    def start(self, cflags=3):
        hflags = self.greeting()
        self.send(struct.pack(">I", cflags))
        return hflags

    def opt(self, option, data=b""):
        self.send(struct.pack(">QII", OPTS_MAGIC, option, len(data)) + data)

    def opt_reply(self):
        magic, option, rtype, length = struct.unpack(">QIII", self.recv_exact(20))
        assert magic == REP_MAGIC, "bad option reply magic %#x" % magic
        return option, rtype, self.recv_exact(length) if length else b""

    def opt_replies(self):
        """Replies up to and including ACK or an error."""
        out = []
        while True:
            r = self.opt_reply()
            out.append(r)
            if r[1] == REP_ACK or r[1] & (1 << 31):
                return out

    def go(self, name="vol", infos=(), option=OPT_GO):
        data = struct.pack(">I", len(name)) + name.encode() + struct.pack(">H", len(infos))
        data += b"".join(struct.pack(">H", i) for i in infos)
        self.opt(option, data)
        reps = self.opt_replies()
        info = {}
        for _, rtype, d in reps:
            if rtype == REP_INFO:
                t = struct.unpack(">H", d[:2])[0]
                info[t] = d[2:]
        if INFO_EXPORT in info:
            self.size, self.tflags = struct.unpack(">QH", info[INFO_EXPORT])
        return reps, info

    def connect_export(self, name="vol"):
        self.start()
        reps, info = self.go(name)
        assert reps[-1][1] == REP_ACK, "GO failed: %r" % (reps,)
        return info

    # --- transmission ---
    def request(self, cmd, handle, offset=0, length=0, flags=0, payload=b""):
        self.send(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, handle, offset, length) + payload)

    def reply(self, read_len=0):
        """(error, handle, data); data is read only for a successful READ of read_len."""
        magic, err, handle = struct.unpack(">IIQ", self.recv_exact(16))
        assert magic == SIMPLE_REPLY_MAGIC, "bad reply magic %#x" % magic
        data = self.recv_exact(read_len) if (read_len and err == 0) else b""
        return err, handle, data

    def cmd(self, cmd, offset=0, length=0, flags=0, payload=b"", handle=0x1234):
        self.request(cmd, handle, offset, length, flags, payload)
        err, h, data = self.reply(length if cmd == CMD_READ else 0)
        assert h == handle, "handle %#x != %#x" % (h, handle)
        return err, data

    def read(self, offset, length):
        err, data = self.cmd(CMD_READ, offset, length)
        assert err == 0, "read %d+%d: error %d" % (offset, length, err)
        return data

    def write(self, offset, data, flags=0):
        err, _ = self.cmd(CMD_WRITE, offset, len(data), flags, data)
        assert err == 0, "write %d+%d: error %d" % (offset, len(data), err)

    def disc(self):
        self.request(CMD_DISC, 0xD15C)


def run(cmd, timeout=300, check=True, cwd=None):
    """Run a tool; returns (rc, output). A timeout is a failure."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("timeout after %ds: %s" % (timeout, " ".join(cmd))) from e
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError("exit %d: %s\n%s" % (p.returncode, " ".join(cmd), out[-3000:]))
    return p.returncode, out


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, name, fn, *args):
        t0 = time.time()
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            self.failed.append(name)
            print("FAIL %-55s %s: %s" % (name, type(e).__name__, e), flush=True)
            return False
        self.passed += 1
        print("ok   %-55s %.1fs" % (name, time.time() - t0), flush=True)
        return True

    def finish(self):
        print("%d passed, %d failed" % (self.passed, len(self.failed)))
        if self.failed:
            print("failed: " + ", ".join(self.failed))
        sys.exit(1 if self.failed else 0)
