#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""06 block device: keel-server on a real block device (a loop device over a
file, direct I/O), as on an NVMe partition: format sizes it from the device,
keel-bench --verify passes across a restart, and the device has one opener at
a time: format --force while the server runs is refused, and so is a server
start while another process holds the device open O_EXCL (as a mount or
mkfs does)."""
import os

import keeltest as kt


def bench(env, addr, state, rw, ios):
    return env.verified_bench(addr, state, rw, ios, size="64M", iodepth=16, seed=6,
                              what=" on the block device")


def test(env):
    backing = os.path.join(env.dir, "loop.img")
    with open(backing, "wb") as f:
        f.truncate(256 << 20)
    # Needs the loop driver (util-linux losetup, root): fail loudly without it.
    p = env.run(["losetup", "--find", "--show", "--direct-io=on", backing])
    if p.returncode != 0:
        raise kt.TestFailure("losetup failed (exit %d): %s" % (p.returncode, p.stderr))
    dev = p.stdout.strip()
    try:
        run_on(env, dev)
    finally:
        for s in env.servers:
            s.kill()
        env.run(["losetup", "--detach", dev])


def run_on(env, dev):
    p = env.run_ok([env.server_bin, "format", "--device", dev, "--object-size", "1M",
                    "--journal-size", "8M"])
    kt.check("268435456 bytes" in p.stdout,
             "format takes the block device's size (256 MiB): " + p.stdout.strip())

    srv = env.server(dev)
    addr = srv.start()
    state = os.path.join(env.dir, "bench.state")
    bench(env, addr, state, "write", 16384)
    bench(env, addr, state, "randwrite", 8000)

    p = env.run([env.server_bin, "format", "--device", dev, "--force"])
    kt.check(p.returncode == 1 and "in use" in p.stderr,
             "format --force of the block device in use is refused (exit 1, 'in use')")
    bench(env, addr, state, "randread", 4000)
    kt.check(srv.stop() == 0, "SIGTERM: keel-server exits 0")

    # Another exclusive opener (what a mount or mkfs holds) keeps the server
    # from starting; once it lets go, the server starts and all data is there.
    # The stopped server has let go of the device: no wait needed.
    fd = os.open(dev, os.O_RDONLY | os.O_EXCL)
    try:
        p = env.run([env.server_bin, "run", "--device", dev, "--key", env.key,
                     "--listen", "127.0.0.1:0"], timeout=30)
        kt.check(p.returncode == 1 and "in use" in p.stderr,
                 "run on a block device another process holds O_EXCL is refused (exit 1)")
    finally:
        os.close(fd)
    addr = srv.start()
    r = bench(env, addr, state, "read", 16384)
    kt.check(r["verified_blocks"] == 16384 and r["unchecked_blocks"] == 0,
             "after the restart every block of the span verifies")
    kt.check(srv.stop() == 0, "SIGTERM: keel-server exits 0")


if __name__ == "__main__":
    kt.main(test)
