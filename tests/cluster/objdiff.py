#!/usr/bin/env python3
"""objdiff.py KEY ADDR...: list every object on each server (LIST, all inodes)
and print the objects whose (version, blocks_mapped) differ between servers.
Exit 0 when all listings are identical. A smoke-test helper for clusters
where every server holds every PG (3 servers, 3 replicas)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "functional"))
import keeltest as kt  # noqa: E402


def listing(addr, key):
    c = kt.Client(addr)
    c.handshake(key)
    out, ci, co = {}, 0, 0
    while True:
        h, m, _, _ = c.call(kt.OP_LIST, meta=kt.list_request(all_inodes=True, cursor_inode=ci,
                                                               cursor_objno=co))
        if h.status != kt.S_OK:
            raise RuntimeError("LIST on %s: status %d" % (addr, h.status))
        f = kt.pb_decode(m)
        for raw in f.get(1, []):
            o = kt.pb_decode(raw)
            ino, obj = o.get(1, [0])[0], o.get(2, [0])[0]
            out[(ino, obj)] = (o.get(3, [0])[0], o.get(4, [0])[0])
            ci, co = ino, obj
        if not f.get(2, [0])[0]:
            break
    c.close()
    return out


def main():
    key = kt.load_key(sys.argv[1])
    lists = {a: listing(a, key) for a in sys.argv[2:]}
    keys = set()
    for lst in lists.values():
        keys |= set(lst)
    bad = 0
    for k in sorted(keys):
        vals = {a: lists[a].get(k) for a in lists}
        if len(set(vals.values())) > 1:
            bad += 1
            if bad <= 20:
                print("%d:%d %s" % (k[0], k[1], " ".join("%s=%s" % (a, v) for a, v in vals.items())))
    print("%d objects, %d differ" % (len(keys), bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
