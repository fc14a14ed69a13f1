#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_client: keel-client serves attached volumes; attach/detach, restarts, faults.

3 servers (local-cluster.sh starts keel-client for this host). A 3-replica
volume is attached with --nbd through keelctl; then, through keel-client's
NBD export with real clients (qemu-io, nbdinfo, fio's nbd engine):

  1. attach prints the vhost-user socket (a socket, mode 0660) and the NBD
     URI; nbdinfo shows the volume's size and a 4 KiB minimum block size;
  2. qemu-io writes a pattern, reads it back, write-zeroes reads as zeroes;
  3. fio --verify=crc32c (random writes, then every block read back) passes
     while keel-server 2 is SIGKILLed and restarted in the middle;
  4. keel-client stopped (SIGTERM) and started again, then SIGKILLed and
     started again: the attachment is served again at the same paths and
     the pattern of step 2 reads back;
  5. a read-only attachment refuses writes (qemu-io write fails) and reads;
  6. detach removes both sockets; an attached volume cannot be deleted, a
     detached one can;
  7. qemu-img convert of a 1 GiB image (seeded data all over, holes
     between) into a second volume (NBD on the unix socket) and back out
     (NBD over TCP: attached with --nbd-tcp) compares equal;
  8. a malicious guest on one volume (keel-vfront's corpus on cv3's
     vhost-user socket: bad descriptors, loops, overflows, bad requests,
     bad vhost-user messages) neither crashes keel-client nor disturbs
     another volume (cv2) served meanwhile; afterwards cv3 serves a
     verified workload on a new connection.

    t_client.py BUILD_DIR
"""
import json
import os
import random
import socket
import stat
import subprocess
import threading
import time

import clusterlib as cl
from clusterlib import TestFailure, check, log


def run(cmd, timeout=120, ok=True):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=timeout)
    if ok and p.returncode != 0:
        raise TestFailure("%s exited %d:\n%s" % (" ".join(cmd), p.returncode, p.stdout[-3000:]))
    return p


def attach(c, vol, *opts):
    out = c.keelctl("-f", "json", "volume", "attach", vol, *opts)
    return json.loads(out)


def wait_gone(path, timeout):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not os.path.exists(path):
            return True
        time.sleep(0.1)
    return False


def qemu_io(uri, *cmds, ok=True, ro=False):
    args = ["qemu-io", "-f", "raw"] + (["-r"] if ro else [])
    for cmd in cmds:
        args += ["-c", cmd]
    p = run(args + [uri], ok=False)
    failed = p.returncode != 0 or "error" in p.stdout.lower() or "fail" in p.stdout.lower()
    if ok and failed:
        raise TestFailure("qemu-io %s on %s:\n%s" % (cmds, uri, p.stdout[-2000:]))
    return not failed, p.stdout


def make_image(path, size, seed=7):
    """A sparse raw image with seeded data: 1 MiB runs at random MiB
    offsets, short runs at random 4 KiB offsets, and the last block."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for _ in range(128):
            f.seek(rnd.randrange(size >> 20) << 20)
            f.write(rnd.randbytes(1 << 20))
        for _ in range(128):
            off = rnd.randrange(size >> 12) << 12
            f.seek(off)
            f.write(rnd.randbytes(min(4096 * rnd.randint(1, 8), size - off)))
        f.seek(size - 4096)
        f.write(b"\xee" * 4096)


def test(tools, tmp, box):
    for t in ("qemu-io", "nbdinfo", "fio"):
        if subprocess.run(["which", t], stdout=subprocess.DEVNULL).returncode != 0:
            raise TestFailure("required tool missing: " + t)
    c = cl.Cluster(tools, tmp, servers=3, size="2G")
    box.append(c)
    c.up()
    c.create_volume("cv1", "512M")

    # 1. attach
    a = attach(c, "cv1", "--nbd")
    vh, uri = a.get("vhost_socket"), a.get("nbd_uri")
    check(a["state"] == "attached" and vh and uri, "attach --nbd: state attached, %s, %s"
          % (vh, uri))
    st = os.stat(vh)
    check(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660,
          "vhost-user socket %s is a socket, mode 0660 (%o)" % (vh, stat.S_IMODE(st.st_mode)))
    info = run(["nbdinfo", "--json", uri]).stdout
    j = json.loads(info)
    ex = j["exports"][0]
    check(ex["export-size"] == 512 << 20, "nbdinfo: size 512 MiB (%d)" % ex["export-size"])
    check(ex.get("block_size_minimum") == 4096, "nbdinfo: minimum block size 4096 (%s)"
          % ex.get("block_size_minimum"))
    again = attach(c, "cv1", "--nbd")
    check(again["generation"] == a["generation"], "attach again: same generation (idempotent)")

    # 2. qemu-io
    qemu_io(uri, "write -P 0xab 256M 1M", "read -P 0xab 256M 1M", "write -z 300M 64k",
            "read -P 0 300M 64k")
    log("qemu-io pattern write/read and write-zeroes: ok")

    # 3. fio verify while a server dies
    fio = ["fio", "--name=kill", "--ioengine=nbd", "--uri=" + uri, "--rw=randwrite",
           "--bs=4k", "--iodepth=16", "--size=64M", "--verify=crc32c", "--verify_fatal=1",
           "--do_verify=1", "--verify_state_save=0", "--output-format=json"]
    res = {}
    th = threading.Thread(target=lambda: res.update(p=run(fio, timeout=600, ok=False)))
    th.start()
    time.sleep(3)
    c.kill(2)
    log("keel-server 2 killed under fio")
    time.sleep(2)
    c.start(2)
    th.join(600)
    p = res.get("p")
    check(p is not None and p.returncode == 0, "fio verify over NBD across a server kill "
          "(exit %s)" % (p.returncode if p else "hang"))
    j = json.loads(p.stdout[p.stdout.index("{"):])
    job = j["jobs"][0]
    check(job["error"] == 0 and job["write"]["total_ios"] == 16384,
          "fio: 0 errors, %d writes, %d verify reads" % (job["write"]["total_ios"],
                                                         job["read"]["total_ios"]))
    c.wait_health_ok(120)

    # 4. keel-client restarts
    for sig in ("TERM", "KILL"):
        c.lc("stop-client", "--signal", sig)
        if sig == "TERM":
            check(not os.path.exists(vh), "keel-client stopped by SIGTERM removed its sockets")
        c.lc("start-client")
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15:
            got = json.loads(c.keelctl("-f", "json", "attachment", "list"))
            if got and got[0]["state"] == "attached" and os.path.exists(vh):
                break
            time.sleep(0.2)
        check(os.path.exists(vh) and os.path.exists(uri.split("socket=")[1]),
              "after SIG%s and restart keel-client serves cv1 again (%.1f s)"
              % (sig, time.monotonic() - t0))
        qemu_io(uri, "read -P 0xab 256M 1M")
        log("pattern reads back after keel-client SIG%s + restart" % sig)

    # 5. read-only
    c.keelctl("volume", "detach", "cv1")
    check(wait_gone(vh, 10), "detach: vhost socket removed")
    check(wait_gone(uri.split("socket=")[1], 10), "detach: NBD socket removed")
    ro = attach(c, "cv1", "--nbd", "--ro")
    check(ro["read_only"] and ro["generation"] > a["generation"],
          "read-only attach: new generation %d" % ro["generation"])
    ok, out = qemu_io(ro["nbd_uri"], "write -P 0xcd 256M 4k", ok=False)
    check(not ok and ("read-only" in out.lower() or "permission denied" in out.lower()),
          "a read-only attachment cannot be opened for writing (%s)" % out.strip()[-80:])
    qemu_io(ro["nbd_uri"], "read -P 0xab 256M 1M", ro=True)
    log("read-only attachment: writes refused, reads served")

    # 6. delete only when detached
    p = subprocess.run([tools.keelctl, "--mgmt", c.url, "volume", "delete", "cv1"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(p.returncode == 1 and "detach it first" in p.stderr,
          "delete of an attached volume refused: %s" % p.stderr.strip())
    c.keelctl("volume", "detach", "cv1")
    check(wait_gone(ro["vhost_socket"], 10), "detach: sockets removed")
    c.keelctl("volume", "delete", "cv1")
    log("detached volume deleted")

    # 7. qemu-img convert in and out
    gib = 1 << 30
    src, out = os.path.join(tmp, "src.img"), os.path.join(tmp, "out.img")
    make_image(src, gib)
    c.create_volume("cv2", "1G")
    with socket.socket() as sk:  # a free port for the TCP export
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    a2 = attach(c, "cv2", "--nbd-tcp", "127.0.0.1:%d" % port)
    tcp_uri = a2.get("nbd_tcp_uri")
    check(tcp_uri == "nbd://127.0.0.1:%d/cv2" % port and a2["nbd_uri"],
          "attach --nbd-tcp: %s and %s" % (tcp_uri, a2["nbd_uri"]))
    j = json.loads(run(["nbdinfo", "--json", tcp_uri]).stdout)
    check(j["exports"][0]["export-size"] == gib, "nbdinfo over TCP: 1 GiB")
    t0 = time.monotonic()
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, a2["nbd_uri"]],
        timeout=600)
    t1 = time.monotonic()
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", tcp_uri, out], timeout=600)
    t2 = time.monotonic()
    p = run(["cmp", src, out], ok=False)
    check(p.returncode == 0, "qemu-img convert 1 GiB into the volume (unix socket, %.1f s) and "
          "back (TCP, %.1f s): equal" % (t1 - t0, t2 - t1))

    # 8. a hostile guest next to a well-behaved one
    vfront = os.path.join(tools.build, "tests", "keel-vfront")
    c.create_volume("cv3", "256M")
    a3 = attach(c, "cv3")
    pid = c.pid("client")
    res = {}
    th = threading.Thread(target=lambda: res.update(p=subprocess.run(
        [vfront, "corpus", "--socket", a3["vhost_socket"], "--pid", str(pid), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=900)))
    th.start()
    busy = 0
    while th.is_alive():
        qemu_io(a2["nbd_uri"], "read -P 0xee %d 4k" % (gib - 4096))
        busy += 1
    th.join()
    p = res["p"]
    try:
        j = json.loads(p.stdout)
    except ValueError:
        raise TestFailure("keel-vfront corpus exited %d without its JSON:\n%s"
                          % (p.returncode, p.stderr[-3000:]))
    check(p.returncode == 0 and j["ok"] and j["failed"] == 0 and j["ran"] > 50,
          "malicious-guest corpus against keel-client: %d cases, %d failed"
          % (j["ran"], j["failed"]))
    check(c.pid("client") == pid, "keel-client survived the corpus (pid %d)" % pid)
    check(busy > 0, "another volume served %d reads meanwhile" % busy)
    p = run([vfront, "verify", "--socket", a3["vhost_socket"], "--count", "2000"])
    log("cv3 after the corpus: %s" % p.stdout.strip().splitlines()[0])
    out = open(c.log_path("client")).read()
    check("protocol error" in out or "closing the connection" in out,
          "keel-client logged the protocol violations")


if __name__ == "__main__":
    cl.main(test)
