# SPDX-License-Identifier: Apache-2.0
"""Cluster functional-test helpers (tests/cluster_ft/, docs/testing.md).

/usr/bin/python3, standard library only. A Cluster wraps
deploy/local-cluster.sh (its own temp dir, port base and subnet, sparse
drive files unless sparse=False; torn down on exit; on failure the logs
are kept and the drive files removed unless KEEL_KEEP_TMP=1); Bench runs
keel-bench in volume mode in back-to-back segments until told to stop,
each with its own --history; history helpers compute I/O stalls;
compare_replicas() checks that every PG's members hold byte-identical
objects by reading each drive in single-server mode after the cluster is
stopped.

Usage: tNN.py BUILD_DIR (the CMake build tree holding keel-server,
keel-mgmt, keelctl, keel-bench and keel-histcheck).
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import calendar

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "functional"))
import keeltest  # noqa: E402  (wire client: framing, crc32c, HMAC handshake)
from keeltest import TestFailure, check  # noqa: E402,F401

LOCAL_CLUSTER = os.path.join(TOP, "deploy", "local-cluster.sh")


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# CLOCK_MONOTONIC (keel-bench histories) to wall clock (daemon logs).
MONO_TO_WALL = time.time() - time.monotonic()


def wall(mono_s):
    t = mono_s + MONO_TO_WALL
    return time.strftime("%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)


class Checks:
    """Assertions that all run (so one failure does not hide the others'
    evidence); done() fails the test if any failed."""

    def __init__(self):
        self.failed = []

    def check(self, cond, msg):
        if cond:
            print("ok: " + msg, flush=True)
        else:
            print("FAIL: " + msg, flush=True)
            self.failed.append(msg)
        return cond

    def done(self):
        if self.failed:
            raise TestFailure("%d assertion(s) failed: %s" % (
                len(self.failed), " | ".join(m.splitlines()[0] for m in self.failed)))


# ---- build tree ----

class Tools:
    def __init__(self, build):
        build = os.path.abspath(build)
        self.build = build
        self.server = os.path.join(build, "server", "keel-server")
        self.mgmt = os.path.join(build, "mgmt", "keel-mgmt")
        self.keelctl = os.path.join(build, "mgmt", "keelctl")
        self.bench = os.path.join(build, "bench", "keel-bench")
        self.histcheck = os.path.join(build, "tests", "keel-histcheck")
        for t in (self.server, self.mgmt, self.keelctl, self.bench, self.histcheck,
                  LOCAL_CLUSTER):
            if not os.access(t, os.X_OK):
                # A missing tool is an error, never a skip.
                raise TestFailure("required tool missing or not executable: " + t)


class KeelCtl:
    """keelctl against a Cluster, with its URL, API token and cluster key in
    the environment (the data commands, import/export/flatten, need the key)."""

    def __init__(self, cluster):
        self.c = cluster
        self.env = dict(os.environ, KEEL_KEY_FILE=cluster.key,
                        KEEL_TOKEN_FILE=cluster.token_file, KEEL_MGMT_URL=cluster.url)

    def cmd(self, *args):
        return [self.c.t.keelctl] + list(args)

    def run(self, *args, timeout=120):
        return subprocess.run(self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=self.env, timeout=timeout)

    def popen(self, *args):
        return subprocess.Popen(self.cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=self.env)

    def ok(self, *args, timeout=300):
        """stdout; TestFailure with stderr on a non-zero exit."""
        p = self.run(*args, timeout=timeout)
        if p.returncode != 0:
            raise TestFailure("keelctl %s exited %d: %s" % (" ".join(args), p.returncode,
                                                            p.stderr.strip()))
        return p.stdout


# ---- cluster mgmt/servers through local-cluster.sh ----

def _port_base():
    """A random-ish port base so tests can run in parallel (ctest -j), below
    the kernel's ephemeral range (32768-60999): a daemon killed and started
    again binds its port anew, and an outgoing connection's local port may
    have taken it meanwhile (seen: guest_client's restarted keel-server 2,
    EADDRINUSE). 300 bases of 40 ports in 20000-31999."""
    seed = (os.getpid() * 7919 + int(time.time() * 1000)) % 300
    return 20000 + seed * 40


class Cluster:
    def __init__(self, tools, tmp, servers=3, netns=False, size="1G", mgmt_set=(),
                 server_set=(), client_set=(), object_size=None, sparse=True):
        self.t = tools
        self.sparse = sparse
        self.dir = os.path.join(tmp, "cluster")
        self.nservers = servers
        self.netns = netns
        self.size = size
        self.object_size = object_size
        self.mgmt_set = list(mgmt_set)
        self.server_set = list(server_set)
        self.client_set = list(client_set)
        if os.environ.get("KEEL_SERVER_LOG"):
            self.server_set.append("log_level=" + os.environ["KEEL_SERVER_LOG"])
        self.url = None
        self.key = None
        self.token_file = None
        self.token = None
        self.running = False
        self.env = dict(os.environ, BUILD=tools.build)

    def lc(self, *args, check_rc=True, timeout=120):
        cmd = [LOCAL_CLUSTER] + list(args[:1]) + ["--dir", self.dir] + list(args[1:])
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=self.env, timeout=timeout)
        if check_rc and p.returncode != 0:
            raise TestFailure("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout))
        return p.stdout

    def up(self):
        """Start the cluster. A port base another process holds (another
        test's or session's cluster) fails a daemon's bind; then the
        cluster is torn down and started again on another base (3 tries)."""
        for attempt in range(3):
            try:
                return self._up()
            except (TestFailure, subprocess.TimeoutExpired):
                if attempt == 2 or not self._port_in_use():
                    raise
                log("a port of base %d was in use; starting again on another" % self.port_base)
                self.lc("down", check_rc=False)
                shutil.rmtree(self.dir, ignore_errors=True)
                time.sleep(0.5)

    def _port_in_use(self):
        for f in os.listdir(self.dir) if os.path.isdir(self.dir) else []:
            if f.endswith(".log"):
                with open(os.path.join(self.dir, f), errors="replace") as fh:
                    if "already in use" in fh.read().lower():
                        return True
        return False

    def _up(self):
        self.port_base = _port_base()
        args = ["up", "--servers", str(self.nservers), "--size", self.size,
                "--port-base", str(self.port_base)]
        if self.netns:
            args.append("--netns")
        if self.sparse:
            args.append("--sparse")
        if self.object_size:
            args += ["--object-size", self.object_size]
        for kv in self.mgmt_set:
            args += ["--mgmt-set", kv]
        for kv in self.server_set:
            args += ["--server-set", kv]
        for kv in self.client_set:
            args += ["--client-set", kv]
        self.running = True
        out = self.lc(*args, timeout=180)
        self.url = out.strip().splitlines()[-1]
        self.key = os.path.join(self.dir, "keel.key")
        self.token_file = os.path.join(self.dir, "api.token")
        with open(self.token_file) as f:
            self.token = f.read().split()[0]
        # Every tool the test runs (keelctl, keel-bench's REST lookup, ad-hoc
        # commands) finds the REST API token here.
        os.environ["KEEL_TOKEN_FILE"] = self.token_file
        self.env["KEEL_TOKEN_FILE"] = self.token_file
        log("cluster up: %d servers%s, mgmt %s, dir %s" %
            (self.nservers, " (netns)" if self.netns else "", self.url, self.dir))

    def down(self):
        if self.running:
            self.lc("down", check_rc=False)
            self.running = False

    def kill(self, i, sig="KILL"):
        self.lc("stop-server", str(i), "--signal", sig)

    def signal(self, i, sig):
        self.lc("signal", str(i), "--signal", sig)

    def start(self, i):
        self.lc("start-server", str(i), timeout=120)

    def link(self, node, state):
        self.lc("link", node, state)

    def pid(self, node):
        return int(self.lc("pid", node).strip())

    def client_cmd(self, args):
        """Command line running @args on the client node (its namespace with --netns)."""
        if self.netns:
            return [LOCAL_CLUSTER, "exec", "client", "--dir", self.dir, "--"] + list(args)
        return list(args)

    # REST
    def api_raw(self, path, method="GET", body=None, timeout=5.0, token=True, headers=None):
        """(status, content type, body bytes) of a REST call; @token: True
        (the cluster's as X-Auth-Token), False (none) or a string to send
        instead; @headers: more headers."""
        data = json.dumps(body).encode() if body is not None else None
        headers = dict(headers or {}, **{"Content-Type": "application/json"})
        if token is True:
            headers["X-Auth-Token"] = self.token
        elif token:
            headers["X-Auth-Token"] = token
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def api(self, path, method="GET", body=None, timeout=5.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "X-Auth-Token": self.token})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return json.loads(raw) if raw else None

    def status(self):
        return self.api("/v1/cluster/status")

    def keelctl(self, *args):
        p = subprocess.run([self.t.keelctl, "--mgmt", self.url, "--token-file",
                            self.token_file] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        if p.returncode != 0:
            raise TestFailure("keelctl %s exited %d: %s" % (" ".join(args), p.returncode,
                                                            p.stderr.strip()))
        return p.stdout

    def create_volume(self, name, size):
        self.keelctl("volume", "create", name, "--size", size)
        return self.api("/v1/volumes/" + name)

    def wait_health_ok(self, timeout):
        """Seconds until HEALTH_OK with every server up and no recovery left;
        TestFailure with the last status after @timeout."""
        t0 = time.monotonic()
        st = None
        while time.monotonic() - t0 < timeout:
            try:
                st = self.status()
                if (st["health"] == "HEALTH_OK" and st["servers"]["up"] == self.nservers and
                        st["pgs"]["active"] == st["pgs"]["total"]):
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.1)
        raise TestFailure("cluster not HEALTH_OK after %.0f s: %s" % (timeout, json.dumps(st)))

    def pgs(self):
        return self.api("/v1/pgs")

    def servers(self):
        return self.api("/v1/servers")

    def server_addr(self, i):
        for s in self.servers():
            if s["host"] == "node%d" % i:
                return s["addr"]
        raise TestFailure("server node%d unknown to mgmt" % i)

    def server_id(self, i):
        for s in self.servers():
            if s["host"] == "node%d" % i:
                return s["id"]
        raise TestFailure("server node%d unknown to mgmt" % i)

    def log_path(self, node):
        if node in ("mgmt", "client"):
            return os.path.join(self.dir, node + ".log")
        return os.path.join(self.dir, "server%s.log" % str(node).lstrip("s"))

    def store_stat(self, i):
        """StoreStat of server i over the wire (STAT, inode 0), with the
        cluster fields (recovery_bytes_copied, ...)."""
        c = keeltest.Client(self.server_addr(i))
        try:
            c.handshake(keeltest.load_key(self.key), "cluster-ft")
            h, m, _, _ = c.call(keeltest.OP_STAT)
            if h.status != keeltest.S_OK:
                raise TestFailure("STAT on server %d: status %d" % (i, h.status))
            f = keeltest.pb_decode(m)
        finally:
            c.close()
        names = {7: "reads", 8: "writes", 9: "crc_errors", 18: "recovery_bytes_copied",
                 19: "recovery_objects_copied", 20: "map_epoch", 21: "server_id",
                 22: "msg_hdr_crc_errors", 23: "msg_data_crc_errors",
                 24: "fault_msgs_dropped", 25: "fault_msgs_corrupted",
                 26: "fault_msgs_delayed", 27: "writes_coalesced"}
        return {n: f.get(k, [0])[0] for k, n in names.items()}


# ---- mgmt log: failure detection ----

_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{6})Z")


def log_time(line):
    m = _TS.match(line)
    if not m:
        return None
    y, mo, d, hh, mm, ss, us = (int(x) for x in m.groups())
    return calendar.timegm((y, mo, d, hh, mm, ss)) + us / 1e6


def find_log_line(path, pattern, after_wall, timeout=0.0):
    """(wall time, line) of the first line matching @pattern logged at or
    after @after_wall (time.time()); waits up to @timeout seconds."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        with open(path, errors="replace") as f:
            for line in f:
                if rx.search(line):
                    t = log_time(line)
                    if t is not None and t >= after_wall - 0.001:
                        return t, line.rstrip()
        if time.monotonic() >= deadline:
            return None, None
        time.sleep(0.1)


# ---- one writer per PG per interval ----

_WROTE = re.compile(r"primary writes acknowledged \(pg@interval\):(.*)$")


def writers_per_interval(cluster):
    """{(pg, interval): set of server numbers} from every server's log (all
    incarnations: logs are appended across restarts). Servers log each
    (PG, interval) in which they acknowledged a client write as primary."""
    seen = {}
    for i in range(1, cluster.nservers + 1):
        with open(cluster.log_path(i), errors="replace") as f:
            for line in f:
                m = _WROTE.search(line)
                if not m:
                    continue
                for tok in m.group(1).split():
                    pg, _, interval = tok.partition("@")
                    seen.setdefault((pg, int(interval)), set()).add(i)
    return seen


def one_writer(cluster):
    """(ok, message) for "at most one server acknowledged writes per PG per
    interval" (the epoch the PG's primary or acting set last changed);
    vacuous (no pair logged at all) counts as a failure."""
    seen = writers_per_interval(cluster)
    bad = sorted((k, sorted(v)) for k, v in seen.items() if len(v) > 1)
    for (pg, iv), who in bad[:10]:
        print("  pg %s interval %d: writes acknowledged by servers %s" % (pg, iv, who))
    return (bool(seen) and not bad,
            "at most one writer per PG per interval (%d (PG, interval) pairs with "
            "acknowledged writes, %d with more than one writer)" % (len(seen), len(bad)))


# ---- keel-bench ----

class Bench:
    """keel-bench --volume in back-to-back segments of @segment seconds
    until stop(); or one run of @runtime seconds when segment is None.
    Each segment writes DIR/hist.N and DIR/bench.N.json."""

    def __init__(self, cluster, volume, outdir, name="bench", rw="randrw", bs="4k",
                 iodepth=32, segment=15, extra=(), seed=None):
        self.c = cluster
        self.volume = volume
        self.dir = outdir
        self.name = name
        self.rw, self.bs, self.iodepth = rw, bs, iodepth
        self.segment = segment
        self.extra = list(extra)
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.results = []   # (rc, json or None, stderr tail, history path)
        self.histories = []
        self.proc = None
        self._stop = threading.Event()
        self.thread = None
        self.lock = threading.Lock()

    def cmd(self, n, runtime=None, ios=None):
        hist = os.path.join(self.dir, "%s.hist.%d" % (self.name, n))
        args = [self.c.t.bench, "--volume", self.volume, "--mgmt", self.c.url,
                "--key", self.c.key, "--rw", self.rw, "--bs", self.bs,
                "--iodepth", str(self.iodepth), "--verify", "--history", hist, "--json",
                "--seed", str(self.seed + n)]
        if ios:
            args += ["--ios", str(ios)]
        else:
            args += ["--runtime", str(runtime)]
        return self.c.client_cmd(args + self.extra), hist

    def run_one(self, n, runtime=None, ios=None, timeout=None):
        args, hist = self.cmd(n, runtime, ios)
        jpath = os.path.join(self.dir, "%s.%d.json" % (self.name, n))
        epath = os.path.join(self.dir, "%s.%d.err" % (self.name, n))
        with open(jpath, "w") as out, open(epath, "w") as err:
            p = subprocess.Popen(args, stdout=out, stderr=err, start_new_session=True)
            with self.lock:
                self.proc = p
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = "timeout"
            with self.lock:
                self.proc = None
        with open(jpath) as f:
            text = f.read().strip()
        try:
            js = json.loads(text.splitlines()[-1]) if text else None
        except ValueError:
            js = None
        with open(epath, errors="replace") as f:
            errtail = f.read()[-3000:]
        self.results.append((rc, js, errtail, hist))
        if os.path.exists(hist):
            self.histories.append(hist)
        return rc, js

    def _loop(self):
        n = 0
        while not self._stop.is_set():
            # A segment must end on its own: a hang (no completion at all) is
            # caught by the watchdog timeout and reported as such.
            self.run_one(n, runtime=self.segment, timeout=self.segment + 120)
            n += 1

    def start(self):
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def stop(self, timeout=200):
        self._stop.set()
        if self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                self.kill()
                self.thread.join(10)
                raise TestFailure("keel-bench did not finish its segment within %d s" %
                                  timeout)

    def kill(self):
        with self.lock:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)

    def summary(self):
        tot = {"ios": 0, "errors": 0, "verify_mismatches": 0, "retries": 0, "reconnects": 0,
               "max_stall_ms": 0.0, "write_ios": 0, "read_ios": 0, "segments": 0}
        bad = []
        for i, (rc, js, err, _) in enumerate(self.results):
            tot["segments"] += 1
            if rc != 0 or js is None:
                bad.append("segment %d: exit %s, json %s, stderr:\n%s" % (i, rc, js is not None,
                                                                         err))
            if js:
                tot["ios"] += js["total"]["ios"]
                tot["write_ios"] += js["write"]["ios"]
                tot["read_ios"] += js["read"]["ios"]
                for k in ("errors", "verify_mismatches", "retries", "reconnects"):
                    tot[k] += js.get(k, 0)
                tot["max_stall_ms"] = max(tot["max_stall_ms"], js.get("max_stall_ms", 0.0))
        return tot, bad


def histcheck(tools, files, max_report=20):
    """keel-histcheck over @files as one history: (exit status, output with
    each violation's read interval also given in wall-clock UTC, to match
    against the daemons' logs)."""
    if not files:
        raise TestFailure("no history files to check")
    p = subprocess.run([tools.histcheck, "--max-report", str(max_report)] + list(files),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def annotate(m):
        a, b = int(m.group(1)), int(m.group(2))
        return "%s (%s-%s UTC)" % (m.group(0), wall(a / 1e9), wall(b / 1e9))
    return p.returncode, re.sub(r"\[(\d+), (\d+)\] ns", annotate, p.stdout)


def write_completion(files, block, wid):
    """(start, end) monotonic seconds of the write @wid of @block, or None."""
    for path in files:
        for r in read_history(path):
            if r[4] == 1 and r[2] == block and r[3] == wid:
                return r[0] / 1e9, r[1] / 1e9
    return None


# ---- history analysis ----

KH_REC = struct.Struct("<QQQQBBhI")
KH_HDR = struct.Struct("<QIIQQQ")


def read_history(path):
    """List of (start_ns, end_ns, block, wid, op, found, result)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < KH_HDR.size:
        return []
    body = data[KH_HDR.size:]
    body = body[:len(body) - len(body) % KH_REC.size]
    return list(KH_REC.iter_unpack(body))


def completion_times(files):
    """Sorted completion times (seconds, CLOCK_MONOTONIC) of successful I/Os
    (one per request: records of one request share start and end)."""
    ends = set()
    for path in files:
        for r in read_history(path):
            if r[6] == 0:
                ends.add((r[0], r[1]))
    return sorted(e / 1e9 for _, e in ends)


def longest_gap(ends, t0, t1):
    """Longest interval without any completion that overlaps [t0, t1]:
    (gap seconds, gap start, gap end)."""
    import bisect
    i = max(bisect.bisect_left(ends, t0) - 1, 0)
    j = min(bisect.bisect_right(ends, t1) + 1, len(ends))
    best = (0.0, t0, t0)
    for k in range(i, j - 1):
        g = ends[k + 1] - ends[k]
        if g > best[0]:
            best = (g, ends[k], ends[k + 1])
    return best


# ---- replica comparison (offline, single-server mode) ----

def cmap_hash64(a, b, c):
    M = (1 << 64) - 1

    def mix(x):
        x &= M
        x ^= x >> 30
        x = (x * 0xbf58476d1ce4e5b9) & M
        x ^= x >> 27
        x = (x * 0x94d049bb133111eb) & M
        x ^= x >> 31
        return x
    h = mix(a + 0x9e3779b97f4a7c15)
    h = mix(h ^ ((b + 0xc2b2ae3d27d4eb4f) & M))
    h = mix(h ^ ((c + 0x165667b19e3779f9) & M))
    return h


def object_pg(inode, objno, pg_count):
    return cmap_hash64(inode >> 16, objno, 0) % pg_count


def dump_drive(tools, drive, key, workdir, name):
    """{(inode, objno): (version, sha256 of the object's data)} of a drive,
    read by a single-server keel-server (no --mgmt) on it."""
    srv = keeltest.Server(tools.server, workdir, drive, key, name=name)
    srv.start(timeout=60)
    out = {}
    try:
        c = keeltest.Client(srv.addr, timeout=60)
        c.handshake(keeltest.load_key(key), "cluster-ft-compare")
        objs = []
        cur = (0, 0)
        while True:
            h, m, _, _ = c.call(keeltest.OP_LIST, meta=keeltest.list_request(
                all_inodes=True, cursor_inode=cur[0], cursor_objno=cur[1], max_=1024))
            if h.status != keeltest.S_OK:
                raise TestFailure("%s: LIST failed: %d" % (name, h.status))
            f = keeltest.pb_decode(m)
            for e in f.get(1, []):
                o = keeltest.pb_decode(e)
                objs.append((o.get(1, [0])[0], o.get(2, [0])[0], o.get(3, [0])[0]))
            if not f.get(2, [0])[0]:
                break
            cur = (f.get(3, [0])[0], f.get(4, [0])[0])
        st = c.store_stat()
        osize = st["object_size"]
        chunk = 1 << 20
        for inode, objno, ver in objs:
            hs = hashlib.sha256()
            for off in range(0, osize, chunk):
                h, _, d, _ = c.call(keeltest.OP_READ, inode=inode, objno=objno, offset=off,
                                    length=min(chunk, osize - off))
                if h.status != keeltest.S_OK:
                    raise TestFailure("%s: READ %d:%d+%d failed: %s" % (
                        name, inode, objno, off, keeltest.STATUS_NAMES.get(h.status)))
                hs.update(d)
            out[(inode, objno)] = (ver, hs.hexdigest())
        c.close()
    finally:
        srv.stop()
    return out


def compare_replicas(cluster, pgs, workdir):
    """Stop the cluster (after HEALTH_OK) and check every PG's members hold
    the same objects with the same versions and bytes. Returns a list of
    problems (empty: identical; the first 20 are printed) and a summary line."""
    ids = {s["id"]: int(s["host"][4:]) for s in cluster.servers()}
    pg_count = {p["id"]: p["pg_count"] for p in cluster.api("/v1/pools")}
    cluster.down()
    dumps = {}
    for sid, i in sorted(ids.items()):
        dumps[sid] = dump_drive(cluster.t, os.path.join(cluster.dir, "drive%d" % i),
                                cluster.key, workdir, "compare-s%d" % i)
    members = {(p["pool"], p["pg"]): p["members"] for p in pgs}
    problems = []
    strays = 0
    nobj = 0
    allobjs = set()
    for d in dumps.values():
        allobjs.update(d)
    # Objects of volumes of the pools listed (all pools here share pg_count keys).
    for key in sorted(allobjs):
        inode, objno = key
        found = False
        for pool, cnt in pg_count.items():
            mem = members.get((pool, object_pg(inode, objno, cnt)))
            if mem is None:
                continue
            found = True
            nobj += 1
            vals = {sid: dumps[sid].get(key) for sid in mem}
            if len(set(vals.values())) != 1:
                problems.append("object %#x:%d (pg %d.%d, members %s): %s" % (
                    inode, objno, pool, object_pg(inode, objno, cnt), mem,
                    ", ".join("s%d=%s" % (s, ("v%#x %s" % (v[0], v[1][:12])) if v else
                                          "missing") for s, v in vals.items())))
            for sid in ids:
                if sid not in mem and key in dumps[sid]:
                    strays += 1
        if not found:
            problems.append("object %#x:%d belongs to no known PG" % key)
    summary = "%d objects compared across PG members, %d stray copies on non-members" % (
        nobj, strays)
    for p in problems[:20]:
        print("  " + p)
    return problems, summary


def check_verified_run(rc, js, what):
    """A keel-bench --verify run (Bench.run_one()'s result) that is clean:
    exit 0, writes and verified reads, no I/O error, no mismatch."""
    log("%s: rc %s, %s" % (what, rc, js and {k: js[k] for k in (
        "errors", "verify_mismatches", "verified_blocks", "retries")}))
    check(rc == 0 and js is not None and js["errors"] == 0 and js["verify_mismatches"] == 0
          and js["write"]["ios"] > 0 and js["verified_blocks"] > 0,
          "%s: keel-bench exit 0 with writes and verified reads, no error, no mismatch" %
          what)


def check_end_state(cluster, workdir, vol, health_timeout):
    """The end of a loaded run: HEALTH_OK within @health_timeout seconds,
    at most one writer per PG per interval, and every PG's members holding
    byte-identical objects (this stops the cluster)."""
    cluster.wait_health_ok(health_timeout)
    check(*one_writer(cluster))
    problems, summary = compare_replicas(cluster, cluster.pgs(), workdir)
    check(not problems, "replicas byte-identical per PG (%s, volume inode %#x)" % (
        summary, vol["inode"]))


# ---- test driver ----

def main(test, argv=None):
    argv = argv if argv is not None else sys.argv
    if len(argv) < 2:
        sys.exit("usage: %s BUILD_DIR" % argv[0])
    tmp = tempfile.mkdtemp(prefix="keel-cft-%s-" % os.path.basename(argv[0]).split(".")[0])
    ok = False
    cluster_box = []
    try:
        tools = Tools(argv[1])
        test(tools, tmp, cluster_box)
        ok = True
    except TestFailure as e:
        print("FAIL: %s" % e, flush=True)
    except Exception as e:  # a crash of the test itself is a failure too
        import traceback
        traceback.print_exc()
        print("FAIL: test error: %r" % e, flush=True)
    finally:
        for c in cluster_box:
            try:
                c.down()
            except Exception as e:  # noqa
                print("teardown: %r" % e)
        if ok and not os.environ.get("KEEL_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            _report_failure(tmp, cluster_box)
    print("PASS" if ok else "FAILED", flush=True)
    sys.exit(0 if ok else 1)


def _report_failure(tmp, cluster_box):
    """Name the logs a failed run leaves, and the space left. Drive files
    go (up to GiBs each: kept, they would starve the tests that run next);
    KEEL_KEEP_TMP=1 keeps them for a look at the blockstore."""
    keep = bool(os.environ.get("KEEL_KEEP_TMP"))
    if not keep:
        for c in cluster_box:
            for f in os.listdir(c.dir) if os.path.isdir(c.dir) else []:
                if re.fullmatch(r"drive\d+", f):
                    os.unlink(os.path.join(c.dir, f))
    st = os.statvfs(tmp)
    print("logs%s kept in %s (%.1f GiB free there; KEEL_KEEP_TMP=1 keeps the drives too)" % (
        " and drives" if keep else "", tmp, st.f_bavail * st.f_frsize / 2**30), flush=True)
    for c in cluster_box:
        for f in sorted(os.listdir(c.dir)) if os.path.isdir(c.dir) else []:
            if f.endswith(".log") or f.startswith("core"):
                print("  %s" % os.path.join(c.dir, f))
