# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the keel-vfront tests (/usr/bin/python3, stdlib only).

- Backend: a vhost-user-blk backend process (qemu-storage-daemon or
  keel-export) on an image file in a temp dir, always torn down.
- vfront(): run keel-vfront with a timeout, parse its JSON.
- check_image(): read the backing file and check it holds exactly what
  `keel-vfront verify` reported (the block pattern of tests/vfront/vf.h and
  the digest of vf_verify.c).
"""
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

BLOCK = 4096
PAT_MAGIC = 0x31304B4C4246564B  # "KVFBLK01"
CRC_SAMPLE = 300  # pattern blocks whose crc32c is recomputed here (pure Python is slow)


def fail(msg):
    print("FAIL: " + msg, flush=True)
    raise SystemExit(1)


def log(msg):
    print(msg, flush=True)


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(crc, data):
    """CRC-32C, chaining like common/crc.h: crc32c(0, b"123456789") == 0xe3069283."""
    c = crc ^ 0xFFFFFFFF
    t = _CRC_TABLE
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(0, b"123456789") == 0xE3069283


def check_image(path, size, result):
    """The file must hold exactly the final contents keel-vfront verify
    reported in @result (its --json output): pattern_blocks blocks of this
    run's seed, each at its own offset, with the reported digest."""
    seed = result["seed"]
    zero = bytes(BLOCK)
    digest = 0
    blocks = 0
    crc_checked = 0
    with open(path, "rb") as f:
        for blk in range(size // BLOCK):
            data = f.read(BLOCK)
            if len(data) < BLOCK:
                data += bytes(BLOCK - len(data))  # sparse tail reads short
            if data == zero:
                continue
            magic, off, seq, bseed = struct.unpack_from("<QQQQ", data)
            if magic != PAT_MAGIC:
                continue  # foreign data
            if off != blk * BLOCK:
                # Any run's block: test images start empty.
                fail("%s: block %d holds a block written for offset %d (seed %d, write #%d)"
                     % (path, blk, off, bseed, seq))
            if bseed != seed:
                continue  # an earlier run's block
            if crc_checked < CRC_SAMPLE:
                (crc,) = struct.unpack_from("<I", data, BLOCK - 4)
                if crc != crc32c(0, data[: BLOCK - 4]):
                    fail("%s: block %d: bad crc32c" % (path, blk))
                crc_checked += 1
            digest = crc32c(digest, struct.pack("<QQ", blk, seq))
            blocks += 1
    if blocks != result["pattern_blocks"] or digest != result["digest"]:
        fail(
            "%s: %d pattern blocks with digest %d, verify reported %d with digest %d"
            % (path, blocks, digest, result["pattern_blocks"], result["digest"])
        )
    log("image check: %d pattern blocks, digest %d match verify" % (blocks, digest))


class Backend:
    """A backend process serving @image on a unix socket in @tmp."""

    def __init__(self, argv, sock, logpath):
        self.sock = sock
        self.logpath = logpath
        self.log = open(logpath, "wb")
        self.proc = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        while not os.path.exists(sock):
            if self.proc.poll() is not None:
                fail("backend exited with %d at start:\n%s" % (self.proc.returncode, self.output()))
            if time.time() > deadline:
                fail("backend did not create %s within 10 s" % sock)
            time.sleep(0.05)

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def check_alive(self):
        if self.proc.poll() is not None:
            fail("backend died (exit status %d):\n%s" % (self.proc.returncode, self.output()))

    def stop(self):
        """SIGTERM, wait; returns the exit status (kills after 10 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                fail("backend did not stop within 10 s of SIGTERM")
        self.log.close()
        return self.proc.returncode


def start_qsd(tmp, image, sock, queues=2):
    qsd = shutil.which("qemu-storage-daemon")
    if not qsd:
        fail("qemu-storage-daemon not installed")
    return Backend(
        [
            qsd,
            "--blockdev",
            "driver=file,node-name=f0,filename=%s" % image,
            "--export",
            "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=%s,"
            "writable=on,num-queues=%d" % (sock, queues),
        ],
        sock,
        os.path.join(tmp, "qsd.log"),
    )


def start_keel_export(build, tmp, image, size, sock, queues=2):
    exe = os.path.join(build, "tests", "keel-export")
    if not os.access(exe, os.X_OK):
        fail("%s not built" % exe)
    return Backend(
        [exe, "--file", image, "--size", str(size), "--vhost", sock, "--queues", str(queues)],
        sock,
        os.path.join(tmp, "keel-export.log"),
    )


def vfront(build, args, timeout=120, want_json=True, expect_rc=0):
    exe = os.path.join(build, "tests", "keel-vfront")
    if not os.access(exe, os.X_OK):
        fail("%s not built" % exe)
    cmd = [exe] + args
    log("$ " + " ".join(cmd))
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("keel-vfront %s did not finish within %d s" % (args[0], timeout))
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if expect_rc is not None and p.returncode != expect_rc:
        fail("keel-vfront %s exited %d (expected %d)\nstdout:\n%s\nstderr:\n%s"
             % (args[0], p.returncode, expect_rc, out, err))
    if err:
        sys.stdout.write(err)
    if not want_json:
        sys.stdout.write(out)
        return out
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        fail("keel-vfront %s printed no JSON:\n%s" % (args[0], out))


class TempDir:
    """mkdtemp; removed on success, kept (and printed) on failure or with
    KEEL_KEEP_TMP=1."""

    def __init__(self, prefix):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def __enter__(self):
        return self.path

    def __exit__(self, etype, value, tb):
        if etype is None and not os.environ.get("KEEL_KEEP_TMP"):
            shutil.rmtree(self.path, ignore_errors=True)
        else:
            log("temp dir kept: %s" % self.path)
        return False


def check_info(info, size, queues):
    cfg = info.get("config")
    if not cfg:
        fail("info: no config space (CONFIG protocol feature missing)")
    if cfg["size"] != size:
        fail("info: capacity %d bytes, expected %d" % (cfg["size"], size))
    if info["max_queues"] < queues:
        fail("info: backend offers %d queues, expected %d" % (info["max_queues"], queues))
    for f in ("version_1", "flush"):
        if f not in info["feature_names"]:
            fail("info: feature %s not negotiated" % f)
    log("info: %d bytes, %d queues, features %s, protocol features %s, serial %r"
        % (cfg["size"], info["max_queues"], ",".join(info["feature_names"]),
           ",".join(info["protocol_feature_names"]), info["serial"]))


def check_bench(res, rw):
    for key in ("rw", "bs", "iodepth", "queues", "runtime_s", "total", "read", "write",
                "errors", "ok"):
        if key not in res:
            fail("bench: no %r in the JSON report" % key)
    for key in ("ios", "iops", "mib_s", "lat_us"):
        if key not in res["total"]:
            fail("bench: no total.%s" % key)
    for key in ("mean", "p50", "p99", "p99_9", "max"):
        if key not in res["total"]["lat_us"]:
            fail("bench: no total.lat_us.%s" % key)
    if not res["ok"] or res["errors"]:
        fail("bench: %d errors" % res["errors"])
    if res["rw"] != rw or res["total"]["ios"] == 0:
        fail("bench: no I/O done")
    lat = res["total"]["lat_us"]
    if not (0 < lat["p50"] <= lat["p99"] <= lat["p99_9"] <= lat["max"]):
        fail("bench: latency percentiles out of order: %s" % lat)
    if rw == "randrw" and (res["read"]["ios"] == 0 or res["write"]["ios"] == 0):
        fail("bench: randrw did only one direction")
    log("bench %s: %.0f IOPS, p50 %.1f us, p99 %.1f us"
        % (rw, res["total"]["iops"], lat["p50"], lat["p99"]))


def run_data_checks(build, backend, sock, image, size):
    """info, two verify runs (each checked against the file: 2 queues with
    EVENT_IDX, then 16 KiB in one memory region through indirect tables,
    when offered), a 2 s randrw bench."""
    info = vfront(build, ["info", "--socket", sock])
    check_info(info, size, 2)
    backend.check_alive()
    runs = [
        ["--queues", "2", "--iodepth", "8", "--count", "3000", "--seed", "11"]
        + (["--event-idx"] if "event_idx" in info["device_feature_names"] else []),
        ["--queues", "2", "--iodepth", "4", "--bs", "16k", "--count", "1000", "--seed", "12",
         "--regions", "1"] + (["--indirect"] if "indirect_desc" in info["device_feature_names"]
                              else []),
    ]
    for extra in runs:
        res = vfront(build, ["verify", "--socket", sock, "--json"] + extra)
        if not res["ok"] or res["writes"] == 0 or res["checked_blocks"] < size // BLOCK:
            fail("verify: %s" % res)
        if "write_zeroes" in info["feature_names"] and res["write_zeroes"] == 0:
            fail("verify: write-zeroes offered but not exercised")
        backend.check_alive()
        check_image(image, size, res)
    res = vfront(build, ["bench", "--socket", sock, "--rw", "randrw", "--iodepth", "8",
                         "--queues", "2", "--runtime", "2", "--json"])
    check_bench(res, "randrw")
    backend.check_alive()
