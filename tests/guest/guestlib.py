# SPDX-License-Identifier: Apache-2.0
"""Real-guest tests of a vhost-user-blk export (/usr/bin/python3, stdlib only).

A Debian 12 kernel and a busybox/fio initramfs (tests/guest/build-guest.sh)
boot under QEMU/TCG with one vhost-user-blk-pci disk on a unix socket; the
guest's /init (tests/guest/init) runs the job named on the kernel command
line against /dev/vda and prints `KEEL-RESULT: ok|fail JOB key=value...`
on the serial console, then powers off.

- build_image(build_dir): the cached guest image, (vmlinux, initramfs).
- boot_guest(...): one guest run; returns a GuestRun (result line parsed,
  console kept) or raises GuestError (QEMU died, timeout, no result line)
  with the console's tail. `events` run callbacks at given times after the
  guest found its disk: the fault injection hook (kill or restart the
  backend while job fio-verify runs).
- Backend: a process serving one volume as vhost-user-blk on one socket and
  NBD on another; qsd_backend() and keel_export_backend() make one, any
  callable (tmp, vhost_sock, nbd_sock, num_queues) -> argv does too;
  restart() is the "kill and start again" fault.
- nbd_sha256() / nbd_read() / nbd_size(): the same disk seen on the host
  over NBD (qemu-img dd, nbdinfo against an nbd+unix URI).
- pattern_sha256(): what job write-verify writes, computed on the host.
- check_write_read_fio(), check_multiqueue(), check_fio_with_fault(): the
  checks every backend must pass, shared by t_guest_qsd.py and
  t_guest_keel.py; Checks collects them.
"""
import ctypes
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = "qemu-system-x86_64"
GUEST_MEM_MB = 512
MIB = 1 << 20


class GuestError(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """Children (QEMU, backends) get SIGKILL when the test dies, e.g. when
    ctest kills it at its timeout: no orphan QEMU spinning on 2 cores."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _sigterm(signum, frame):
    raise SystemExit("killed by signal %d" % signum)


signal.signal(signal.SIGTERM, _sigterm)


def log(msg):
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


def need_tools(*tools):
    """A missing tool is a failure, never a skip."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise GuestError("missing tools: %s (scripts/install-deps.sh)" % " ".join(missing))


def build_image(build_dir):
    """Build (or reuse) BUILD_DIR/guest/{vmlinux,initramfs.cpio}."""
    out = os.path.join(os.path.abspath(build_dir), "guest")
    r = subprocess.run([os.path.join(HERE, "build-guest.sh"), out])
    if r.returncode != 0:
        raise GuestError("build-guest.sh failed (exit %d)" % r.returncode)
    return os.path.join(out, "vmlinux"), os.path.join(out, "initramfs.cpio")


class GuestRun:
    """One guest's outcome: ok, job, fields (key=value of the result line),
    words (the rest), console text, boot_s (kernel start to /init, guest
    clock), wall_s (QEMU start to exit)."""

    def __init__(self, line, console, boot_s, wall_s):
        self.line = line
        self.console = console
        self.boot_s = boot_s
        self.wall_s = wall_s
        parts = line.split()
        self.ok = parts[0] == "ok"
        self.job = parts[1] if len(parts) > 1 else ""
        self.fields = {}
        self.words = []
        self.disk_sectors = None
        for l in console.splitlines():
            if l.startswith("KEEL-DISK:") and "sectors=" in l:
                self.disk_sectors = int(l.split("sectors=")[1].split()[0])
        for p in parts[2:]:
            if "=" in p:
                k, v = p.split("=", 1)
                self.fields[k] = v
            else:
                self.words.append(p)

    def __str__(self):
        return "KEEL-RESULT: " + self.line


def _tail(lines, n=40):
    return "\n".join(lines[-n:])


def boot_guest(vmlinux, initramfs, vhost_socket, job, timeout, num_queues=1,
               reconnect=False, params=None, events=(), console_path=None,
               machine="q35", cpus=1):
    """Boot the guest on vhost_socket and run `job`.

    params: extra keel.* kernel parameters ({"mib": 64, "seed": ...}).
    events: [(seconds, callable)]: each callable runs once, `seconds` after
    the guest printed KEEL-DISK (its disk is up and the job starts), in the
    order given; an exception in one is raised after QEMU is stopped.
    reconnect: QEMU's chardev reconnects (reconnect=1) when the backend
    goes away, so a restarted backend gets the same guest back.
    cpus: 1 boots -smp 1,maxcpus=2, 2 boots -smp 2 (a multi-queue guest:
    blk-mq maps each CPU to its own virtqueue when num_queues >= 2).
    Returns a GuestRun; raises GuestError on timeout or without a result.
    """
    need_tools(QEMU)
    append = ["console=ttyS0", "quiet", "panic=-1", "keel.job=%s" % job]
    for k, v in sorted((params or {}).items()):
        append.append("keel.%s=%s" % (k, v))
    chardev = "socket,id=c0,path=%s" % vhost_socket
    if reconnect:
        chardev += ",reconnect=1"
    argv = [QEMU, "-M", machine, "-accel", "tcg,thread=multi",
            # QEMU 7.2/TCG with one vCPU drops the guest's barriers (see
            # shared/TESTING-NOTES.md): maxcpus=2 keeps them.
            "-smp", "1,maxcpus=2" if cpus == 1 else str(cpus), "-m", str(GUEST_MEM_MB),
            "-object", "memory-backend-memfd,id=mem,size=%dM,share=on" % GUEST_MEM_MB,
            "-numa", "node,memdev=mem",
            "-chardev", chardev,
            "-device", "vhost-user-blk-pci,chardev=c0,num-queues=%d" % num_queues,
            "-kernel", vmlinux, "-initrd", initramfs,
            "-append", " ".join(append),
            "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot"]
    lines = []
    disk_at = []
    cf = open(console_path, "w") if console_path else None
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def reader():
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            if cf:
                cf.write(line + "\n")
                cf.flush()
            if line.startswith("KEEL-DISK:") and not disk_at:
                disk_at.append(time.monotonic())

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    pending = list(events)
    err = None
    timed_out = False
    try:
        while p.poll() is None:
            now = time.monotonic()
            if now - t0 > timeout:
                timed_out = True
                break
            while pending and disk_at and now - disk_at[0] >= pending[0][0]:
                t, fn = pending.pop(0)
                log("event at +%.1f s: %s" % (t, getattr(fn, "__name__", fn)))
                try:
                    fn()
                except Exception as e:  # reported after QEMU is stopped
                    err = err or e
                    pending = []
            time.sleep(0.05)
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        th.join(5)
        if cf:
            cf.close()
    wall = time.monotonic() - t0
    if err:
        raise GuestError("event failed: %r\nconsole tail:\n%s" % (err, _tail(lines)))
    if timed_out:
        raise GuestError("guest job %s timed out after %d s\nconsole tail:\n%s"
                         % (job, timeout, _tail(lines)))
    if pending:
        raise GuestError("guest ended before %d event(s) ran\nconsole tail:\n%s"
                         % (len(pending), _tail(lines)))
    results = [l.split("KEEL-RESULT:", 1)[1].strip() for l in lines if "KEEL-RESULT:" in l]
    if len(results) != 1:
        raise GuestError("QEMU exit %d with %d result lines\nconsole tail:\n%s"
                         % (p.returncode, len(results), _tail(lines)))
    boot_s = None
    for l in lines:
        if l.startswith("KEEL-BOOT:") and "uptime=" in l:
            boot_s = float(l.split("uptime=")[1].split()[0])
    return GuestRun(results[0], "\n".join(lines), boot_s, wall)


# --- the backend: one volume as vhost-user-blk + NBD -----------------------

def qsd_backend(image, size=None, driver="file"):
    """qemu-storage-daemon serving `image` (driver file), or nothing at all
    (driver null-co: reads zeros, drops writes: the negative control), or
    the qcow2 image `image` (driver qcow2: its cluster mappings stay in
    qsd's memory until the guest flushes, so a SIGKILL loses recent
    writes: the negative control of the restart check)."""

    def argv(tmp, vhost_sock, nbd_sock, num_queues=1):
        if driver == "qcow2":
            blockdev = ("driver=qcow2,node-name=disk0,file.driver=file,file.filename=%s"
                        % image)
        elif driver == "null-co":
            # read-zeroes: else reads leave the guest's buffer as it was,
            # which may hold the very data a verify looks for.
            blockdev = "driver=null-co,node-name=disk0,size=%d,read-zeroes=on" % size
        else:
            blockdev = "driver=file,node-name=disk0,filename=%s" % image
        return ["qemu-storage-daemon",
                "--blockdev", blockdev,
                "--nbd-server", "addr.type=unix,addr.path=%s" % nbd_sock,
                "--export", "type=nbd,id=nbd0,node-name=disk0,name=vol,writable=on",
                "--export", "type=vhost-user-blk,id=vhost0,node-name=disk0,"
                "addr.type=unix,addr.path=%s,writable=on,num-queues=%d"
                % (vhost_sock, num_queues)]
    argv.__name__ = "qemu-storage-daemon(%s)" % driver
    return argv


def keel_export_backend(build_dir, image, size="256M"):
    """build/tests/keel-export serving the local file `image`."""
    exe = os.path.join(os.path.abspath(build_dir), "tests", "keel-export")

    def argv(tmp, vhost_sock, nbd_sock, num_queues=1):
        return [exe, "--file", image, "--size", str(size), "--vhost", vhost_sock,
                "--queues", str(num_queues), "--nbd-unix", nbd_sock, "--name", "vol"]
    argv.__name__ = "keel-export"
    return argv


class Backend:
    """A running backend process. argv_fn(tmp, vhost_sock, nbd_sock,
    num_queues) -> argv. The export name on NBD must be "vol"."""

    def __init__(self, argv_fn, tmp, num_queues=1, name="backend"):
        self.argv_fn = argv_fn
        self.tmp = tmp
        self.num_queues = num_queues
        self.name = name
        self.vhost_sock = os.path.join(tmp, name + "-vhost.sock")
        self.nbd_sock = os.path.join(tmp, name + "-nbd.sock")
        self.proc = None
        self.starts = 0

    @property
    def nbd_uri(self):
        return "nbd+unix:///vol?socket=%s" % self.nbd_sock

    def start(self, wait=15.0):
        for s in (self.vhost_sock, self.nbd_sock):
            if os.path.exists(s):
                os.unlink(s)
        argv = self.argv_fn(self.tmp, self.vhost_sock, self.nbd_sock, self.num_queues)
        exe = argv[0]
        if shutil.which(exe) is None and not os.access(exe, os.X_OK):
            raise GuestError("backend binary %s missing" % exe)
        self.starts += 1
        logf = open(os.path.join(self.tmp, "%s.%d.log" % (self.name, self.starts)), "w")
        log("start %s: %s" % (self.name, " ".join(argv)))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        logf.close()
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise GuestError("%s exited %d at start; log:\n%s"
                                 % (self.name, self.proc.returncode, self.log_text()))
            if os.path.exists(self.vhost_sock) and os.path.exists(self.nbd_sock):
                return
            time.sleep(0.05)
        raise GuestError("%s: sockets not there after %.0f s; log:\n%s"
                         % (self.name, wait, self.log_text()))

    def log_text(self, n=40):
        path = os.path.join(self.tmp, "%s.%d.log" % (self.name, self.starts))
        try:
            with open(path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        """SIGTERM (clean stop), SIGKILL after 30 s. Returns the exit code."""
        if self.proc is None:
            return None
        self.kill(signal.SIGTERM)
        return self.proc.returncode

    def restart(self, down_s=1.0):
        """The fault: SIGKILL the process, wait, start it again."""
        self.kill(signal.SIGKILL)
        time.sleep(down_s)
        self.start()


# --- host-side reads -------------------------------------------------------

def nbd_read(uri, path, offset_mib, length_mib):
    need_tools("qemu-img")
    r = subprocess.run(["qemu-img", "dd", "-f", "raw", "-O", "raw", "bs=1M",
                        "skip=%d" % offset_mib, "count=%d" % length_mib,
                        "if=%s" % uri, "of=%s" % path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        raise GuestError("qemu-img dd from %s failed: %s" % (uri, r.stdout.decode(errors="replace")))


def nbd_size(uri):
    """The export's size as nbdinfo reports it (None when it cannot)."""
    need_tools("nbdinfo")
    r = subprocess.run(["nbdinfo", "--size", uri], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode != 0 or not out.isdigit():
        log("nbdinfo --size %s: exit %d: %s" % (uri, r.returncode, out))
        return None
    return int(out)


def file_sha256(path, length=None):
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as f:
        while left is None or left > 0:
            n = MIB if left is None else min(MIB, left)
            b = f.read(n)
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def nbd_sha256(uri, tmp, offset_mib, length_mib):
    """sha256 of [offset, offset+length) MiB of the NBD export `uri`."""
    path = os.path.join(tmp, "nbd-read.raw")
    nbd_read(uri, path, offset_mib, length_mib)
    try:
        if os.path.getsize(path) != length_mib * MIB:
            raise GuestError("short NBD read: %d bytes" % os.path.getsize(path))
        return file_sha256(path)
    finally:
        os.unlink(path)


def pattern_sha256(seed, mib):
    """The write-verify job's data: a 512-byte line per sector, "%15d"
    (SEED, SEED + 1, ...), 496 bytes "keelkeel...", "\n"."""
    h = hashlib.sha256()
    filler = b"keel" * 124
    per_mib = MIB // 512
    for m in range(mib):
        base = seed + m * per_mib
        h.update(b"".join(b"%15d%s\n" % (i, filler) for i in range(base, base + per_mib)))
    return h.hexdigest()


def random_seed():
    """A write-verify seed: busybox nl counts in a C int, so the pattern
    (2^21 lines for 1 GiB) stays below 2^31."""
    return 10 ** 9 + int.from_bytes(os.urandom(4), "little") % (2 ** 31 - 10 ** 9 - 2 ** 22)


def make_tmp(prefix):
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


class Checks:
    """Collect every assertion of a test (one failure does not hide others)."""

    def __init__(self):
        self.failures = []
        self.passed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            log("PASS %s" % what)
        else:
            self.failures.append(what)
            log("FAIL %s" % what)
        return cond

    def finish(self, tmp, keep=False):
        keep = keep or bool(self.failures) or os.environ.get("KEEL_KEEP_TMP") == "1"
        print("%d passed, %d failed" % (self.passed, len(self.failures)))
        if keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        return 1 if self.failures else 0


# --- the checks every backend must pass ------------------------------------

def check_write_read_fio(c, vmlinux, initrd, be, tmp, mib, fio_s, image=None,
                         timeout=120, tag="", size_mib=None):
    """write-verify over MiB [0, mib) (pattern sha256 == guest == NBD
    [== backing file]), read-check of it in a second guest, fio-verify for
    fio_s seconds over MiB [mib, 2 * mib). With size_mib, the disk's size
    in the guest and over NBD must be that. Returns the pattern's sha256."""
    seed = random_seed()
    want = pattern_sha256(seed, mib)
    run = boot_guest(vmlinux, initrd, be.vhost_sock, "write-verify", timeout,
                     num_queues=be.num_queues, params={"mib": mib, "seed": seed},
                     console_path=os.path.join(tmp, "console%s-write.log" % tag))
    log("%s (boot to /init %.2f s, wall %.1f s)" % (run, run.boot_s or -1, run.wall_s))
    c.check(run.ok, "write-verify in the guest")
    if size_mib:
        c.check(run.disk_sectors == size_mib * 2048,
                "guest's /dev/vda has %s sectors (%d MiB)" % (run.disk_sectors, size_mib))
        sz = nbd_size(be.nbd_uri)
        c.check(sz == size_mib * MIB, "NBD export size %s == %d MiB" % (sz, size_mib))
    got = run.fields.get("sha256")
    c.check(got == want, "guest sha256 %s == host pattern sha256 %s" % (got, want))
    nbd = nbd_sha256(be.nbd_uri, tmp, 0, mib)
    c.check(nbd == want, "NBD read-back sha256 %s == pattern" % nbd)
    if image:
        c.check(file_sha256(image, mib * MIB) == want, "backing file holds the pattern")

    run = boot_guest(vmlinux, initrd, be.vhost_sock, "read-check", timeout,
                     num_queues=be.num_queues, params={"mib": mib, "sha": want},
                     console_path=os.path.join(tmp, "console%s-read.log" % tag))
    log("%s (wall %.1f s)" % (run, run.wall_s))
    c.check(run.ok, "read-check in a second guest")

    run = boot_guest(vmlinux, initrd, be.vhost_sock, "fio-verify", timeout + fio_s,
                     num_queues=be.num_queues, params={"mib": mib, "off": mib, "runtime": fio_s},
                     console_path=os.path.join(tmp, "console%s-fio.log" % tag))
    log("%s (wall %.1f s)" % (run, run.wall_s))
    c.check(run.ok, "fio randwrite verify=crc32c in the guest")
    return want


def check_multiqueue(c, vmlinux, initrd, be, tmp, mib, fio_s, timeout=120):
    """fio-verify with 2 vCPUs, 2 virtqueues and a fio job per CPU over
    MiB [mib, 2 * mib): both queues carry verified I/O. The backend must
    have been started with num_queues 2."""
    run = boot_guest(vmlinux, initrd, be.vhost_sock, "fio-verify", timeout + fio_s,
                     num_queues=2, cpus=2,
                     params={"mib": mib, "off": mib, "runtime": fio_s, "jobs": 2},
                     console_path=os.path.join(tmp, "console-mq.log"))
    log("%s (wall %.1f s)" % (run, run.wall_s))
    disk = [l for l in run.console.splitlines() if l.startswith("KEEL-DISK:")]
    c.check(bool(disk) and "queues=2" in disk[0],
            "guest sees 2 virtqueues (%s)" % (disk[0] if disk else "no KEEL-DISK line"))
    c.check(run.ok and run.fields.get("jobs") == "2",
            "fio verify, 2 jobs on 2 vCPUs over 2 virtqueues")
    return run


def check_fio_with_fault(c, vmlinux, initrd, be, tmp, mib, fio_s, faults, what,
                         reconnect=True, timeout=180, tag="-fault", min_stall_ms=None):
    """fio-verify for fio_s seconds over MiB [mib, 2 * mib) while faults
    [(seconds, callable)] run (seconds after the guest's disk came up). The
    guest must finish with no I/O error and no verify mismatch. With
    min_stall_ms, fio's longest completion latency must be at least that:
    the guest had I/O outstanding through the outage (the fault was not
    vacuous)."""
    run = boot_guest(vmlinux, initrd, be.vhost_sock, "fio-verify", timeout + fio_s,
                     num_queues=be.num_queues, reconnect=reconnect,
                     params={"mib": mib, "off": mib, "runtime": fio_s}, events=faults,
                     console_path=os.path.join(tmp, "console%s.log" % tag))
    log("%s (wall %.1f s)" % (run, run.wall_s))
    c.check(run.ok, "fio randwrite verify=crc32c through %s" % what)
    stall = fio_max_clat_ms(run.console)
    if stall is not None:
        log("longest fio completion latency (read or write) through the fault: %.0f ms"
            % stall)
    if min_stall_ms is not None:
        c.check(stall is not None and stall >= min_stall_ms,
                "the guest's I/O waited through the outage (longest latency %s ms >= %d ms)"
                % ("%.0f" % stall if stall is not None else "?", min_stall_ms))
    return run


def fio_max_clat_ms(console):
    """The longest completion latency in fio's normal output (the I/O stall
    a fault caused), in ms; None when fio printed none."""
    unit_ms = {"nsec": 1e-6, "usec": 1e-3, "msec": 1.0}
    best = None
    for l in console.splitlines():
        l = l.strip()
        if l.startswith("lat (") and ":" in l and "max=" not in l:
            # The latency distribution ("lat (msec) : 2=25.75%, ...,
            # >=2000=0.03%"): its highest non-empty bucket counts too.
            # fio's clat max can miss a request that waited through a
            # backend restart (seen: max 48.8 ms with >=2000 ms at 0.03 %).
            unit = l.split("(")[1].split(")")[0]
            for b in l.split(":", 1)[1].split(","):
                k, _, pct = b.strip().rpartition("=")
                try:
                    if float(pct.rstrip("%")) > 0:
                        ms = float(k.lstrip(">=")) * unit_ms.get(unit, 1e-3)
                        best = ms if best is None else max(best, ms)
                except ValueError:
                    continue
            continue
        if not l.startswith("clat (") or "max=" not in l:
            continue
        unit = l.split("(")[1].split(")")[0]
        v = l.split("max=")[1].split(",")[0].strip()
        mult = 1.0
        if v[-1:] in ("k", "M"):
            mult = 1e3 if v[-1] == "k" else 1e6
            v = v[:-1]
        try:
            ms = float(v) * mult * unit_ms.get(unit, 1e-3)
        except ValueError:
            continue
        best = ms if best is None else max(best, ms)
    return best
