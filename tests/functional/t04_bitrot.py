#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""04 bit rot: write known blocks, stop the server, flip one byte of one stored
data block in the device file, restart: that block reads EIO (never data),
every other block reads back exactly, the server stays up.

The block is found by content: the data area starts at the superblock's
data_off (server/bs_format.h, docs/on-disk-format.md), and each test block
begins with a unique tag, so no knowledge of the allocator is needed."""
import os
import struct

import keeltest as kt

INODE = 5
NBLK = 16
VICTIM = 3


def block(i):
    tag = b"BITROT-TEST-BLOCK-%04d|" % i
    return (tag * (4096 // len(tag) + 1))[:4096]


def test(env):
    dev = os.path.join(env.dir, "drive0")
    env.format(dev, size="64M", object_size="1M", journal_size="8M")
    srv = env.server(dev)
    srv.start()
    key = kt.load_key(env.key)
    c = kt.Client(srv.addr)
    c.handshake(key)
    data = b"".join(block(i) for i in range(NBLK))
    h = c.write(INODE, 0, 0, data)
    kt.check(h.status == kt.S_OK, "wrote %d known blocks" % NBLK)
    h, d = c.read(INODE, 0, 0, len(data))
    kt.check(h.status == kt.S_OK and d == data, "they read back before the damage")
    c.close()
    kt.check(srv.stop() == 0, "server stopped cleanly")

    with open(dev, "r+b") as f:
        sb = f.read(4096)
        kt.check(sb[:8] == b"KEELBS01", "device has a Keel superblock")
        data_off = struct.unpack_from("<Q", sb, 104)[0]
        f.seek(data_off)
        area = f.read()
    want = block(VICTIM)
    hits = [data_off + i for i in range(0, len(area), 4096) if area[i:i + 4096] == want]
    kt.check(len(hits) == 1, "found the victim block in the data area at %s" %
             [hex(x) for x in hits])
    with open(dev, "r+b") as f:
        f.seek(hits[0] + 1234)
        b = f.read(1)
        f.seek(hits[0] + 1234)
        f.write(bytes([b[0] ^ 0x40]))
        f.flush()
        os.fsync(f.fileno())

    srv.start()
    c = kt.Client(srv.addr)
    c.handshake(key)
    h, d = c.read(INODE, 0, VICTIM * 4096, 4096)
    kt.check(h.status == kt.S_EIO and d == b"", "the damaged block reads EIO, no data")
    h, d = c.read(INODE, 0, 0, len(data))
    kt.check(h.status == kt.S_EIO and d == b"", "an extent covering it reads EIO")
    for i in range(NBLK):
        if i == VICTIM:
            continue
        h, d = c.read(INODE, 0, i * 4096, 4096)
        if h.status != kt.S_OK or d != block(i):
            raise kt.TestFailure("intact block %d: %s" % (i, kt.STATUS_NAMES.get(h.status)))
    kt.check(True, "the other %d blocks read back exactly" % (NBLK - 1))
    st = c.store_stat()
    kt.check(st.get("crc_errors", 0) >= 1, "STAT counts the crc error (%d)" %
             st.get("crc_errors", 0))
    kt.check(st.get("errors", 0) == 2 and st.get("ops_read", 0) == NBLK + 1 and
             st.get("ops_other", 0) >= 1 and st.get("ops_write", 0) == 0,
             "STAT counts this run's requests: %d reads (2 answered EIO), the STAT (%s)" %
             (NBLK + 1, {k: st.get(k, 0) for k in ("ops_read", "ops_write", "ops_other",
                                                   "errors")}))
    h = c.write(INODE, 0, VICTIM * 4096, block(VICTIM))
    kt.check(h.status == kt.S_OK, "rewriting the damaged block succeeds")
    h, d = c.read(INODE, 0, VICTIM * 4096, 4096)
    kt.check(h.status == kt.S_OK and d == block(VICTIM), "and it reads back")
    c.close()
    kt.check(srv.alive(), "server still up")
    kt.check(srv.stop() == 0, "server exits 0 on SIGTERM")


kt.main(test)
