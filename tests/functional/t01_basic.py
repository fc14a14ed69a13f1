#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""01 basic: format, run, keel-bench --verify randwrite then randread, a
format without --force refused without writing the drive, a
format --force of the running server's drive refused, SIGTERM exits 0,
restart, everything acknowledged before still verifies."""
import hashlib
import os

import keeltest as kt


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def bench(env, addr, state, rw, ios):
    return env.verified_bench(addr, state, rw, ios, size="32M", iodepth=32, seed=7)


def test(env):
    dev = os.path.join(env.dir, "drive0")
    env.format(dev, size="128M", object_size="1M", journal_size="8M")
    before = file_digest(dev)
    p = env.run([env.server_bin, "format", "--device", dev, "--size", "128M"])
    kt.check(p.returncode == 1 and "already holds a Keel blockstore" in p.stderr,
             "format refuses a formatted device without --force")
    kt.check(file_digest(dev) == before, "a refused format writes nothing to the drive")

    srv = env.server(dev)
    addr = srv.start()
    state = os.path.join(env.dir, "bench.state")
    # A sequential pass first, so the model knows every block of the span.
    bench(env, addr, state, "write", 8192)
    bench(env, addr, state, "randwrite", 20000)
    r = bench(env, addr, state, "randread", 20000)
    kt.check(r["verified_blocks"] > 10000, "randread verified what randwrite wrote")
    r = bench(env, addr, state, "randrw", 10000)

    # The drive is locked while the server runs: format waits for the lock,
    # gives up and leaves the live blockstore alone.
    p = env.run([env.server_bin, "format", "--device", dev, "--force"])
    kt.check(p.returncode == 1 and "in use" in p.stderr,
             "format --force of a drive in use is refused (exit 1, 'in use')")
    r = bench(env, addr, state, "randread", 4000)

    rc = srv.stop()
    kt.check(rc == 0, "SIGTERM: keel-server exits 0")
    kt.check("blockstore closed" in srv.log_text(), "SIGTERM: blockstore closed cleanly")

    addr = srv.start()
    r = bench(env, addr, state, "read", 8192)
    kt.check(r["verified_blocks"] == 8192 and r["unchecked_blocks"] == 0,
             "after restart every block of the span verifies (sequential read)")
    rc = srv.stop(sig=kt.signal.SIGINT)
    kt.check(rc == 0, "SIGINT: keel-server exits 0")


kt.main(test)
