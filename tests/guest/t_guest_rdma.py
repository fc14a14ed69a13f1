#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_guest_rdma.py BUILD_DIR: the RDMA transport's acceptance test (issue 6).

No RDMA device on this host: a QEMU/TCG guest with Debian's kernel runs
software RoCE (rdma_rxe over the guest's virtio-net interface, one IP per
daemon) and rdma-core's rxe provider (tests/guest/build-rdma-guest.sh);
tests/guest/rdma-init starts
keel-mgmt and three keel-servers with server.transport=rdma on three virtio
disks, creates a 3-replica volume and runs keel-bench --transport rdma
--verify (randrw 4k QD16) while keel-server 2 is SIGKILLed and restarted,
then a large-block verified run whose payloads go by RDMA READ, stops every
daemon and prints their per-transport counters. docs/rdma.md.

Asserts: the guest finished; both keel-bench runs exited 0 (no I/O error, no
verify mismatch, no hang); every keel-server stopped cleanly on SIGTERM;
every server moved >= 1 MiB each way over RDMA and over 20 times its TCP
bytes (TCP carries only the mgmt session); keel-bench's RDMA bytes out cover
what it wrote and its TCP bytes are the mgmt session only; RDMA READ
carried data on the servers and in keel-bench; zero copy: at least 90 % of
what keel-bench sent in the 256 KiB run was read by the servers straight from
its registered buffers, and the servers' own large sends (replica writes,
read replies) from their registered buffer pools carried >= 1 MiB;
keel-client (client.transport=rdma) serves the volume over vhost-user to
keel-vfront: a verified 64 KiB run and a write load exit 0, and at least 80 %
of what keel-client sent was read by the servers from the guest's memory in
place. Knobs: KEEL_RDMA_RUNTIME
(fault run seconds, 20), KEEL_KEEP_TMP=1.
"""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

RUNTIME = int(os.environ.get("KEEL_RDMA_RUNTIME", "20"))
TIMEOUT = 900
COUNTERS = re.compile(r"KEEL-COUNTERS: (\S+) .*transport (\w+): conns (\d+), in (\d+) bytes / "
                      r"(\d+) msgs, out (\d+) bytes / (\d+) msgs, rdma_read (\d+) bytes, "
                      r"zero_copy (\d+) bytes")


def boot(build, tmp):
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(os.path.abspath(build), "guest")
    r = subprocess.run([os.path.join(here, "build-rdma-guest.sh"), out, build])
    if r.returncode != 0:
        raise g.GuestError("build-rdma-guest.sh failed (exit %d)" % r.returncode)
    disks = []
    for i in (1, 2, 3):
        d = os.path.join(tmp, "disk%d" % i)
        with open(d, "wb") as f:
            f.truncate(256 << 20)
        disks += ["-drive", "file=%s,if=virtio,format=raw,cache=unsafe" % d]
    argv = ["qemu-system-x86_64", "-M", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
            "-smp", "2", "-m", "3072", "-kernel", os.path.join(out, "vmlinux"),
            "-initrd", os.path.join(out, "rdma-initramfs.cpio"),
            "-append", "console=ttyS0 quiet panic=-1 keel.runtime=%d" % RUNTIME] + disks + [
            "-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0", "-display", "none", "-serial", "stdio", "-monitor", "none",
            "-no-reboot"]
    console_path = os.path.join(tmp, "console.log")
    t0 = time.monotonic()
    with open(console_path, "wb") as con:
        p = subprocess.Popen(argv, stdout=con, stderr=subprocess.STDOUT,
                             preexec_fn=g._die_with_parent)
        try:
            p.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with open(console_path, "rb") as f:
        console = f.read().decode("utf-8", "replace")
    g.log("guest ran %.0f s (console %s)" % (time.monotonic() - t0, console_path))
    return console


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: t_guest_rdma.py BUILD_DIR\n")
        return 2
    g.need_tools("qemu-system-x86_64", "/usr/sbin/ip", "/usr/bin/rdma")
    tmp = g.make_tmp("keel-guest-rdma.")
    c = g.Checks()
    console = boot(sys.argv[1], tmp)
    for line in console.splitlines():
        if line.startswith(("KEEL-STEP", "KEEL-BENCH", "KEEL-COUNTERS", "KEEL-RESULT")):
            g.log(line)
    res = [l for l in console.splitlines() if l.startswith("KEEL-RESULT:")]
    if not c.check(bool(res), "the guest finished (KEEL-RESULT line)"):
        print("\n".join(console.splitlines()[-60:]))
        return c.finish(tmp)
    c.check(res[-1].split()[1] == "ok", "guest result ok: %s" % res[-1])
    c.check("KEEL-BENCH: fault rc=0" in console,
            "keel-bench --verify through a keel-server SIGKILL and restart exited 0")
    c.check("KEEL-BENCH: big rc=0" in console, "the 256 KiB verified run exited 0")
    c.check("KEEL-VFRONT: rc=0" in console,
            "keel-vfront verify (64 KiB) and a write load through keel-client over RDMA "
            "exited 0")
    c.check("exited" not in " ".join(l for l in console.splitlines() if "KEEL-STEP" in l),
            "every keel-server stopped cleanly on SIGTERM")
    ctr = {}
    for m in COUNTERS.finditer(console):
        ctr[(m.group(1), m.group(2))] = [int(x) for x in m.groups()[2:]]
    # conns, in, msgs_in, out, msgs_out, rdma_read, zero_copy
    for s in ("server1", "server2", "server3"):
        r = ctr.get((s, "rdma"), [0] * 7)
        t = ctr.get((s, "tcp"), [0] * 7)
        c.check(r[1] >= 1 << 20 and r[3] >= 1 << 20,
                "%s moved >= 1 MiB each way over RDMA (in %d, out %d)" % (s, r[1], r[3]))
        c.check(r[1] + r[3] > 20 * (t[1] + t[3]),
                "%s: RDMA bytes %d > 20 x TCP bytes %d (mgmt only)" % (s, r[1] + r[3],
                                                                      t[1] + t[3]))
    c.check(sum(ctr.get((s, "rdma"), [0] * 7)[5] for s in ("server1", "server2", "server3"))
            >= 1 << 20, "the servers pulled >= 1 MiB by RDMA READ (256 KiB writes)")
    for b in ("bench-fault", "bench-big"):
        r = ctr.get((b, "rdma"), [0] * 7)
        t = ctr.get((b, "tcp"), [0] * 7)
        c.check(r[0] >= 1 and r[3] > 100 * max(t[3], 1) // 10,
                "%s: data over RDMA (out %d bytes) and TCP only for mgmt (out %d bytes)"
                % (b, r[3], t[3]))
    rb = ctr.get(("bench-big", "rdma"), [0] * 7)
    c.check(rb[5] > 0, "keel-bench read 256 KiB replies by RDMA READ (%d bytes)" % rb[5])
    # Zero copy: keel-bench registers its I/O buffers (keel_mem_register), so
    # the servers read its 256 KiB write payloads in place: nearly all it
    # sent (the rest is headers, crcs and read requests, inline).
    c.check(rb[6] >= 0.9 * rb[3],
            "bench-big: %d of %d bytes out read in place by the servers (zero copy)"
            % (rb[6], rb[3]))
    # The servers send read replies and replica writes from their registered
    # buffer pools: the peers read those in place too.
    zs = sum(ctr.get((s, "rdma"), [0] * 7)[6] for s in ("server1", "server2", "server3"))
    c.check(zs >= 1 << 20, "the servers' large payloads went zero copy (%d bytes)" % zs)
    # keel-client registers the vhost-user guest memory: the servers read
    # the guest's 64 KiB writes from it in place.
    rc = ctr.get(("client", "rdma"), [0] * 7)
    c.check(rc[0] >= 1 and rc[6] >= 0.8 * rc[3],
            "keel-client: %d of %d bytes out read in place from guest memory (zero copy)"
            % (rc[6], rc[3]))
    return c.finish(tmp)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except g.GuestError as e:
        print("FAIL %s" % e)
        sys.exit(1)
