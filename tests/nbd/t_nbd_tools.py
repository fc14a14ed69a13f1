#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""NBD export against real clients: nbdinfo, qemu-io, fio's nbd engine
(random read/write with crc32c verify, two connections at once), qemu-img
convert of a 1 GiB image in and out, and a TCP export.

Every scenario runs first against qemu-storage-daemon serving a file (the
reference: a failure there is a harness bug), then against keel-export.

usage: t_nbd_tools.py BUILD_DIR
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nbdlib  # noqa: E402
from nbdlib import GIB, Server, run  # noqa: E402

MIB = 1 << 20


def check_nbdinfo(srv, tcp=False):
    _, out = run(["nbdinfo", "--json", srv.uri(tcp)], timeout=30)
    info = json.loads(out)
    exp = info["exports"][0]
    assert exp["export-size"] == srv.size, "size %r" % exp["export-size"]
    if srv.kind == "keel":
        assert exp["block_size_minimum"] == 4096, exp
        assert exp["block_size_preferred"] == 4096, exp
        assert exp["block_size_maximum"] == 32 * MIB, exp
        assert exp["can_multi_conn"] and exp["can_flush"] and exp["can_fua"], exp
        assert exp["can_trim"] and exp["can_zero"], exp
        assert exp["is_read_only"] == srv.ro, exp
        assert exp.get("export-name", exp.get("name")) in ("vol", None), exp
        if not tcp:
            mode = os.stat(srv.sock).st_mode & 0o777
            assert mode == 0o660, "unix socket mode %o" % mode


def qemu_io(srv, cmds, tcp=False):
    args = ["qemu-io", "-f", "raw", srv.uri(tcp)]
    for c in cmds:
        args += ["-c", c]
    _, out = run(args, timeout=120)
    low = out.lower()
    for bad in ("fail", "error", "mismatch", "pattern verification"):
        assert bad not in low, "qemu-io: %s" % out[-2000:]
    return out


def check_qemu_io(srv, tcp=False):
    qemu_io(srv, [
        "write -P 0xab 0 64k",
        "read -P 0xab 0 64k",
        "write -f -P 0xcd 64k 64k",  # FUA
        "read -P 0xcd 64k 64k",
        "flush",
        "write -P 0x11 1M 3M",
        "discard 1M 1M",
        "write -z 2M 1M",
        "read -P 0 2M 1M",
        "read -P 0x11 3M 1M",
        "write -z -u 4M 2M",  # may unmap
        "read -P 0 4M 2M",
        "write -P 0x22 8k 512",  # unaligned: qemu does read-modify-write
        "read -P 0xab 0 8k",
        "read -P 0x22 8k 512",
        "read -P 0xab 8704 7680",
        "read -P 0 %d 4k" % (srv.size - 4096),
    ], tcp=tcp)
    # The bytes reached the file, where the export put them.
    with open(srv.path, "rb") as f:
        assert f.read(8192) == b"\xab" * 8192
        f.seek(8192)
        assert f.read(512) == b"\x22" * 512
        f.seek(64 * 1024)
        assert f.read(65536) == b"\xcd" * 65536
        f.seek(2 * MIB)
        assert f.read(MIB) == bytes(MIB)


def fio(srv, extra, tcp=False):
    args = ["fio", "--name=nbd", "--ioengine=nbd", "--uri=" + srv.uri(tcp), "--rw=randrw",
            "--bs=4k", "--iodepth=16", "--verify=crc32c", "--verify_fatal=1",
            "--randrepeat=0", "--output-format=json"] + extra
    # fio leaves verify state files in its working directory: keep them in
    # the test's temp dir.
    _, out = run(args, timeout=300, cwd=os.path.dirname(srv.path))
    res = json.loads(out[out.index("{"):])
    jobs = res["jobs"]
    for j in jobs:
        assert j["error"] == 0, "fio job error %d" % j["error"]
        assert j["read"]["io_bytes"] > 0 and j["write"]["io_bytes"] > 0, j["jobname"]
    return jobs


def check_fio(srv):
    fio(srv, ["--size=48M", "--offset=64M"])


def check_fio_multiconn(srv):
    # Two jobs, each its own NBD connection, on disjoint ranges at once.
    jobs = fio(srv, ["--size=24M", "--offset=128M", "--offset_increment=32M", "--numjobs=2"])
    assert len(jobs) == 2, "expected 2 jobs, got %d" % len(jobs)


def make_image(path, seed=1234):
    """1 GiB sparse raw image with seeded data all over: 1 MiB chunks at
    random offsets plus small runs at odd 4k offsets."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(GIB)
        for _ in range(160):
            off = rnd.randrange(GIB // MIB) * MIB
            f.seek(off)
            f.write(rnd.randbytes(MIB))
        for _ in range(200):
            off = rnd.randrange(GIB // 4096) * 4096
            f.seek(off)
            f.write(rnd.randbytes(4096 * rnd.randint(1, 8))[: GIB - off])
        f.seek(GIB - 4096)
        f.write(b"\xee" * 4096)


def check_convert(srv, work, tcp=False):
    src = os.path.join(work, "convert-src.img")
    out = os.path.join(work, "convert-out-%s.img" % srv.kind)
    if not os.path.exists(src):
        make_image(src)
    # Into the export (-n: target exists; holes become write-zeroes) ...
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, srv.uri(tcp)], timeout=300)
    # ... and back out.
    if os.path.exists(out):
        os.unlink(out)
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", srv.uri(tcp), out], timeout=300)
    run(["cmp", src, out], timeout=120)
    run(["qemu-img", "compare", "-f", "raw", "-F", "raw", src, srv.uri(tcp)], timeout=300)
    os.unlink(out)


def check_nbdcopy(srv, work):
    """nbdcopy uses CAN_MULTI_CONN: 4 connections, 16 requests each, into
    the export with --flush and back out."""
    src = os.path.join(work, "convert-src.img")
    out = os.path.join(work, "nbdcopy-out-%s.img" % srv.kind)
    if not os.path.exists(src):
        make_image(src)
    run(["nbdcopy", "--connections=4", "--requests=16", "--flush", src, srv.uri()], timeout=300)
    with open(out, "wb"):
        pass
    run(["nbdcopy", "--connections=4", "--requests=16", srv.uri(), out], timeout=300)
    run(["cmp", src, out], timeout=120)
    os.unlink(out)


def scenarios(res, kind, build, work):
    tag = "ref" if kind == "qsd" else "keel"
    img = os.path.join(work, "%s.img" % tag)
    sock = os.path.join(work, "%s.sock" % tag)
    srv = Server(kind, build, work, img, sock, tag=tag)
    try:
        res.check("%s: nbdinfo size and block size" % tag, check_nbdinfo, srv)
        res.check("%s: qemu-io write/read/discard/zero" % tag, check_qemu_io, srv)
        res.check("%s: fio randrw iodepth 16 crc32c verify" % tag, check_fio, srv)
        res.check("%s: fio two connections at once" % tag, check_fio_multiconn, srv)
        res.check("%s: qemu-img convert 1 GiB in and out" % tag, check_convert, srv, work)
        res.check("%s: nbdcopy 4 connections in and out" % tag, check_nbdcopy, srv, work)
        res.check("%s: server alive after clients" % tag, lambda: srv.alive() or 1 / 0)
    finally:
        rc = srv.stop()
    if kind == "keel":
        def clean_stop():
            assert rc == 0, "keel-export exit %r\n%s" % (rc, srv.log_tail())
            st = srv.stats()
            assert st.get("connections", 0) >= 14, st
            assert st.get("io_errors", -1) == 0, st
            assert st.get("writes", 0) > 0 and st.get("trims", 0) > 0, st
            assert st.get("write_zeroes", 0) > 0 and st.get("flushes", 0) > 0, st
            assert not os.path.exists(sock), "unix socket left behind"
            log = open(srv.log).read()
            for bad in ("assertion", "AddressSanitizer", "runtime error", "LeakSanitizer"):
                assert bad not in log, "%s in the log:\n%s" % (bad, srv.log_tail())
        res.check("%s: clean stop, counters" % tag, clean_stop)
    os.unlink(img)

    # TCP (IPv4 loopback).
    port = nbdlib.free_tcp_port()
    img = os.path.join(work, "%s-tcp.img" % tag)
    srv = Server(kind, build, work, img, None, tcp_port=port, tag=tag + "-tcp")
    try:
        res.check("%s: tcp nbdinfo" % tag, check_nbdinfo, srv, True)
        res.check("%s: tcp qemu-io" % tag, check_qemu_io, srv, True)
        res.check("%s: tcp fio verify" % tag,
                  lambda: fio(srv, ["--size=16M"], tcp=True))
    finally:
        rc = srv.stop()
    res.check("%s: tcp clean stop" % tag, lambda: (rc == 0 or kind != "keel") or 1 / 0)
    os.unlink(img)


def negative_control(res, work):
    """A server that stores nothing (qemu's null-co) must fail the data
    checks: proof that fio's verify and the convert compare can fail."""
    sock = os.path.join(work, "null.sock")
    cmd = ["qemu-storage-daemon", "--blockdev",
           "driver=null-co,node-name=null0,size=%d,read-zeroes=on" % GIB,
           "--nbd-server", "addr.type=unix,addr.path=%s" % sock,
           "--export", "type=nbd,id=exp0,node-name=null0,name=vol,writable=on"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            stdin=subprocess.DEVNULL)
    try:
        nbdlib.wait_unix(sock, proc)
        srv = types.SimpleNamespace(kind="null", path=os.path.join(work, "null.img"),
                                    uri=lambda tcp=False:
                                    "nbd+unix:///vol?socket=%s" % sock, size=GIB)

        def must_fail(fn, *args):
            try:
                fn(*args)
            except AssertionError:
                return
            raise AssertionError("passed against a server that stores nothing")
        res.check("null: fio verify fails", must_fail, check_fio, srv)
        res.check("null: convert compare fails", must_fail, check_convert, srv, work)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = os.path.abspath(sys.argv[1])
    nbdlib.need_tools()
    work = tempfile.mkdtemp(prefix="keel-nbd-tools-")
    res = nbdlib.Results()
    try:
        scenarios(res, "qsd", build, work)  # reference first
        scenarios(res, "keel", build, work)
        negative_control(res, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res.finish()


if __name__ == "__main__":
    sys.exit(main())
