#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""03 ENOSPC: fill a small store until a write gets ENOSPC over the wire; the
server stays up; discarding objects makes room; every acknowledged write that
was not discarded still reads back exactly."""
import os

import keeltest as kt

OBJ = 64 * 1024  # what we format with; the test uses what STAT reports
INODE = 3


def payload(objno, gen):
    block = (b"enospc inode %d objno %d gen %d " % (INODE, objno, gen)).ljust(64, b".")
    return (block * (OBJ // 64))[:OBJ]


def test(env):
    dev = os.path.join(env.dir, "small")
    env.format(dev, size="20M", object_size="64K", journal_size="2M")
    srv = env.server(dev)
    srv.start()
    key = kt.load_key(env.key)
    c = kt.Client(srv.addr)
    c.handshake(key)
    global OBJ
    st = c.store_stat()
    total = st["objects_total"]
    OBJ = min(st["object_size"], 1 << 20)
    kt.check(0 < total < 400, "small store: %d object slots of %d KiB" % (total, OBJ // 1024))

    acked = {}
    objno = 0
    enospc_at = None
    while objno < total + 64:
        h = c.write(INODE, objno, 0, payload(objno, 1))
        if h.status == kt.S_ENOSPC:
            enospc_at = objno
            break
        if h.status != kt.S_OK:
            raise kt.TestFailure("write objno %d: %s" % (objno,
                                                          kt.STATUS_NAMES.get(h.status)))
        acked[objno] = 1
        objno += 1
    kt.check(enospc_at is not None, "a write got ENOSPC after %d objects" % len(acked))
    kt.check(len(acked) >= total * 3 // 4, "ENOSPC came only when the store was nearly full")
    h = c.write(INODE, enospc_at + 1, 0, payload(enospc_at + 1, 1))
    kt.check(h.status == kt.S_ENOSPC, "the next new object also gets ENOSPC")
    h = c.write(INODE, 0, 0, payload(0, 2))
    kt.check(h.status in (kt.S_OK, kt.S_ENOSPC), "overwrite of an existing object: %s" %
             kt.STATUS_NAMES.get(h.status))
    if h.status == kt.S_OK:
        acked[0] = 2
    h, _, _, _ = c.call(kt.OP_PING)
    kt.check(h.status == kt.S_OK and srv.alive(), "server up and serving after ENOSPC")

    # Free every fourth object (whole-object discard frees its slot).
    freed = [o for o in sorted(acked) if o % 4 == 1]
    for o in freed:
        h = c.discard(INODE, o, 0, OBJ)
        if h.status != kt.S_OK:
            raise kt.TestFailure("discard objno %d: %s" % (o, kt.STATUS_NAMES.get(h.status)))
        del acked[o]
    kt.check(True, "discarded %d objects" % len(freed))
    new = list(range(10000, 10000 + len(freed) // 2))
    for o in new:
        h = c.write(INODE, o, 0, payload(o, 1))
        if h.status != kt.S_OK:
            raise kt.TestFailure("write after discard, objno %d: %s" %
                                 (o, kt.STATUS_NAMES.get(h.status)))
        acked[o] = 1
    kt.check(True, "%d new objects written after the discards" % len(new))

    bad = 0
    for o, gen in sorted(acked.items()):
        h, d = c.read(INODE, o, 0, OBJ)
        if h.status != kt.S_OK or d != payload(o, gen):
            bad += 1
    kt.check(bad == 0, "all %d acknowledged objects read back exactly" % len(acked))
    for o in freed[:8]:
        h, d = c.read(INODE, o, 0, OBJ)
        if h.status != kt.S_OK or d != bytes(OBJ):
            raise kt.TestFailure("discarded objno %d does not read as zeroes" % o)
    kt.check(True, "discarded objects read as zeroes")
    c.close()
    kt.check(srv.stop() == 0, "server exits 0 on SIGTERM")


kt.main(test)
