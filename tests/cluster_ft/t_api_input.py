#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_api_input: bad input to every mutating native REST route (docs/api.md)
gets the right 4xx with a JSON error body and changes nothing.

3 servers (snapshots, clones and reverts are fenced by real servers).
Setup: volume a (64 MiB) with snapshots s1, s2; volume b with snapshot t1;
clone c of a@s1; volume d attached to host h1 (no keel-client serves it).
Then, for every bad request below: the status, a JSON body
{"error": {"code": STATUS, "message": "..."}} (405s with an Allow header),
and the full state (GET /v1/volumes, /v1/snapshots, /v1/layers, /v1/pools,
/v1/attachments and the map epoch) identical before and after:

- snapshot create: missing/empty/odd/long/non-string names, '@' in names,
  duplicates, unknown volume, a VOL@SNAP path, unknown fields, bad
  descriptions;
- snapshot GET/DELETE: unknown snapshot or volume, a snapshot of another
  volume under this volume's path (by name, by VOL@SNAP and by uuid),
  malformed VOL@SNAP forms;
- resize: negative, 0, 2^63, 2^64, 1e30, "10G", null, true, unaligned, over
  2^50, a shrink without allow_shrink, a non-boolean allow_shrink;
- rename: empty, spaces, '/', '@', unicode, 64 and 300 characters, a
  non-string, a taken name, an unknown volume;
- revert: unknown snapshot, another volume's snapshot (name, VOL@SNAP,
  uuid), an attached volume (409);
- flatten: a volume without parent, a wrong parent (409), negative or
  string parents;
- clone create: unknown snapshot or volume, smaller than the origin, both
  origins at once, another pool or object size, a taken name;
- unknown ids on every GET/DELETE route, NUL and '/' smuggled in as %00,
  %2F, ids that are not UTF-8 (%FF; also on a Cinder route);
- wrong methods (405 + Allow), wrong Content-Type (415; Cinder's
  badMediaType too), bodies over
  64 KiB (413), empty bodies, trailing garbage, duplicate keys, NUL bytes,
  JSON nesting bombs, non-object bodies.

Then concurrency: 8 threads delete one snapshot (by both of its paths),
then its volume; 8 threads create one volume name: exactly one success,
the others 404 (deletes) or 409 (creates), never 5xx, keel-mgmt alive and
the state consistent. Finally a rename moves the volume's snapshots with it.
"""
import http.client
import json
import os
import threading
import urllib.parse

import clusterlib as cl
from clusterlib import Checks, log

MiB = 1 << 20


class Api:
    def __init__(self, cluster):
        u = urllib.parse.urlparse(cluster.url)
        self.host, self.port = u.hostname, u.port
        self.token = cluster.token

    def call(self, method, path, body=None, raw=None, headers=None, ctype="application/json"):
        """(status, headers dict (lower-case names), parsed JSON or raw text)."""
        data = raw if raw is not None else (json.dumps(body).encode()
                                            if body is not None else None)
        h = {"X-Auth-Token": self.token}
        if data is not None and ctype:
            h["Content-Type"] = ctype
        h.update(headers or {})
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=data, headers=h)
            r = conn.getresponse()
            text = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
            status = r.status
        finally:
            conn.close()
        try:
            js = json.loads(text) if text else None
        except ValueError:
            js = text
        return status, hdrs, js

    def get(self, path):
        s, _, js = self.call("GET", path)
        if s != 200:
            raise cl.TestFailure("GET %s: %d %s" % (path, s, js))
        return js


def state(api):
    st = {p: api.get(p) for p in ("/v1/volumes", "/v1/snapshots", "/v1/layers", "/v1/pools",
                                  "/v1/attachments")}
    st["epoch"] = api.get("/v1/cluster/info")["epoch"]
    return st


def is_error(status, js, code):
    return (status == code and isinstance(js, dict) and list(js) == ["error"]
            and js["error"].get("code") == code
            and isinstance(js["error"].get("message"), str) and js["error"]["message"] != "")


def test(tools, tmp, box):
    ck = Checks()
    c = cl.Cluster(tools, tmp, servers=3, size="1G")
    box.append(c)
    c.up()
    api = Api(c)

    def ok(method, path, want, body=None):
        s, _, js = api.call(method, path, body)
        if s != want:
            raise cl.TestFailure("%s %s: %d (want %d): %s" % (method, path, s, want, js))
        return js

    # ---- setup ----
    ok("POST", "/v1/volumes", 201, {"name": "a", "size": 64 * MiB})
    ok("POST", "/v1/volumes/a/snapshots", 201, {"name": "s1"})
    ok("POST", "/v1/volumes/a/snapshots", 201, {"name": "s2"})
    ok("POST", "/v1/volumes", 201, {"name": "b", "size": 32 * MiB})
    t1 = ok("POST", "/v1/volumes/b/snapshots", 201, {"name": "t1"})
    ok("POST", "/v1/volumes", 201, {"name": "c", "snapshot": "a@s1"})
    ok("POST", "/v1/volumes", 201, {"name": "d", "size": 16 * MiB})
    ok("POST", "/v1/volumes/d/attachments", 201, {"host": "h1"})
    s1 = ok("GET", "/v1/snapshots/a@s1", 200)
    top_a = ok("GET", "/v1/volumes/a", 200)
    c_vol = ok("GET", "/v1/volumes/c", 200)
    d_vol = ok("GET", "/v1/volumes/d", 200)
    before = state(api)
    log("setup: %d volumes, %d snapshots, %d layers, epoch %d" % (
        len(before["/v1/volumes"]), len(before["/v1/snapshots"]), len(before["/v1/layers"]),
        before["epoch"]))
    nbad = [0]

    def bad(method, path, code, what, body=None, raw=None, headers=None,
            ctype="application/json", allow=None):
        nbad[0] += 1
        s, h, js = api.call(method, path, body, raw, headers, ctype)
        after = state(api)
        good = is_error(s, js, code)
        if code == 405:
            good = good and h.get("allow") == allow
        unchanged = after == before
        msg = "%s: %s %s -> %d %s" % (what, method, path[:80], s, str(js)[:160])
        if not unchanged:
            changed = [k for k in before if before[k] != after[k]]
            msg += " STATE CHANGED: %s" % changed
            before.clear()
            before.update(after)  # so the next checks stand on their own
        ck.check(good and unchanged, msg)

    # ---- snapshot create ----
    sp = "/v1/volumes/a/snapshots"
    for name, why in [("", "empty"), ("bad name", "space"), ("a@b", "'@'"), ("-x", "leading -"),
                      (".x", "leading ."), ("x/y", "'/'"), ("x" * 64, "64 characters"),
                      ("x" * 300, "300 characters"), ("\u00e9t\u00e9", "unicode"),
                      ("x\ty", "tab"), ("\u202eevil", "RTL override")]:
        bad("POST", sp, 400, "snapshot name %s" % why, {"name": name})
    bad("POST", sp, 400, "snapshot name not a string", {"name": 5})
    bad("POST", sp, 400, "snapshot name null", {"name": None})
    bad("POST", sp, 400, "snapshot without a name", {})
    bad("POST", sp, 400, "snapshot with an unknown field", {"name": "ok1", "bogus": 1})
    bad("POST", sp, 400, "snapshot description not a string", {"name": "ok1", "description": 1})
    bad("POST", sp, 400, "snapshot description of 300 bytes",
        {"name": "ok1", "description": "d" * 300})
    bad("POST", sp, 409, "duplicate snapshot name", {"name": "s1"})
    bad("POST", "/v1/volumes/nosuch/snapshots", 404, "snapshot of an unknown volume",
        {"name": "x"})
    bad("POST", "/v1/volumes/a@s1/snapshots", 404, "snapshot of a snapshot (VOL@SNAP path)",
        {"name": "x"})
    bad("POST", "/v1/volumes/%s/snapshots" % s1["id"], 404,
        "snapshot of a snapshot uuid", {"name": "x"})

    # ---- snapshot GET / DELETE with unknown or foreign ids ----
    for path, why in [("/v1/volumes/a/snapshots/nosuch", "unknown snapshot"),
                      ("/v1/volumes/nosuch/snapshots/s1", "unknown volume"),
                      ("/v1/volumes/a/snapshots/t1", "another volume's snapshot by name"),
                      ("/v1/volumes/a/snapshots/b@t1", "another volume's snapshot as VOL@SNAP"),
                      ("/v1/volumes/a/snapshots/" + t1["id"], "another volume's snapshot uuid"),
                      ("/v1/snapshots/nosuch", "unknown snapshot"),
                      ("/v1/snapshots/a@nosuch", "unknown VOL@SNAP"),
                      ("/v1/snapshots/nosuch@s1", "VOL@SNAP of an unknown volume"),
                      ("/v1/snapshots/a", "a volume name"),
                      ("/v1/snapshots/a@", "VOL@ without a snapshot"),
                      ("/v1/snapshots/@s1", "@SNAP without a volume"),
                      ("/v1/snapshots/a@s1@s1", "VOL@SNAP@SNAP"),
                      ("/v1/snapshots/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12,
                       "unknown uuid"),
                      ("/v1/snapshots/" + "x" * 200, "200-character id")]:
        for m in ("GET", "DELETE"):
            bad(m, path, 404, why)

    # ---- resize ----
    rp = "/v1/volumes/a/resize"
    for val, why in [(-4096, "negative"), (0, "zero"), (2 ** 63, "2^63"), (2 ** 64, "2^64"),
                     (1e30, "1e30"), ("10G", "a string"), (None, "null"), (True, "true"),
                     (64 * MiB + 1, "unaligned"), (2 ** 50 + 4096, "over 2^50"),
                     (32 * MiB, "a shrink without allow_shrink"), (64.0 * MiB, "a float")]:
        bad("POST", rp, 400, "resize to %s" % why, {"size": val})
    bad("POST", rp, 400, "resize without a size", {})
    bad("POST", rp, 400, "resize with allow_shrink 'yes'",
        {"size": 32 * MiB, "allow_shrink": "yes"})
    bad("POST", rp, 400, "resize with an unknown field", {"size": 128 * MiB, "force": True})
    bad("POST", "/v1/volumes/nosuch/resize", 404, "resize of an unknown volume",
        {"size": 128 * MiB})
    bad("POST", "/v1/volumes/a@s1/resize", 404, "resize of a snapshot", {"size": 128 * MiB})

    # ---- rename ----
    np_ = "/v1/volumes/a/rename"
    for name, why in [("", "empty"), ("has space", "a space"), ("x/y", "'/'"),
                      ("a@s9", "'@'"), ("\u00fcml\u00e4ut", "unicode"), ("x" * 64, "64 chars"),
                      ("x" * 300, "300 chars"), ("_x", "leading _"), ("x\u0000y", "NUL")]:
        bad("POST", np_, 400, "rename to %s" % why, {"name": name})
    bad("POST", np_, 400, "rename to a number", {"name": 17})
    bad("POST", np_, 400, "rename with an unknown field", {"name": "ok", "pool": "x"})
    bad("POST", np_, 409, "rename to a taken name", {"name": "b"})
    # A good name with a bad description: neither is applied.
    bad("POST", np_, 400, "rename with a good name and a bad description",
        {"name": "ok2", "description": 5})
    bad("POST", np_, 400, "rename with a good name and a 300-byte description",
        {"name": "ok2", "description": "d" * 300})
    bad("POST", np_, 409, "rename to a taken name with a new description",
        {"name": "b", "description": "new"})
    bad("POST", "/v1/volumes/nosuch/rename", 404, "rename of an unknown volume", {"name": "z"})

    # ---- revert ----
    vp = "/v1/volumes/a/revert"
    bad("POST", vp, 404, "revert to an unknown snapshot", {"snapshot": "nosuch"})
    bad("POST", vp, 404, "revert to another volume's snapshot (name)", {"snapshot": "t1"})
    bad("POST", vp, 404, "revert to another volume's snapshot (VOL@SNAP)",
        {"snapshot": "b@t1"})
    bad("POST", vp, 404, "revert to another volume's snapshot (uuid)", {"snapshot": t1["id"]})
    bad("POST", vp, 400, "revert without a snapshot", {})
    bad("POST", vp, 400, "revert to a number", {"snapshot": 1})
    bad("POST", "/v1/volumes/nosuch/revert", 404, "revert of an unknown volume",
        {"snapshot": "s1"})
    ok("POST", "/v1/volumes/d/snapshots", 201, {"name": "ds"})
    before = state(api)
    bad("POST", "/v1/volumes/d/revert", 409, "revert of an attached volume", {"snapshot": "ds"})

    # ---- flatten ----
    fp = "/v1/volumes/c/flatten"
    bad("POST", fp, 409, "flatten with a wrong parent", {"parent": top_a["inode"]})
    bad("POST", fp, 409, "flatten with parent 0", {"parent": 0})
    bad("POST", fp, 400, "flatten with a negative parent", {"parent": -1})
    bad("POST", fp, 400, "flatten with a string parent", {"parent": str(c_vol["parents"][0])})
    bad("POST", fp, 400, "flatten without a parent", {})
    bad("POST", "/v1/volumes/b/flatten", 409, "flatten of a volume's own snapshot chain "
        "with a foreign parent", {"parent": c_vol["parents"][0]})
    bad("POST", "/v1/volumes/nosuch/flatten", 404, "flatten of an unknown volume",
        {"parent": 1})

    # ---- clone create ----
    vv = "/v1/volumes"
    bad("POST", vv, 404, "clone of an unknown snapshot", {"name": "k", "snapshot": "a@nosuch"})
    bad("POST", vv, 404, "clone of a snapshot of an unknown volume",
        {"name": "k", "snapshot": "nosuch@s1"})
    bad("POST", vv, 404, "clone of an unknown snapshot uuid",
        {"name": "k", "snapshot": "00000000-0000-4000-8000-000000000000"})
    bad("POST", vv, 404, "clone of a bare snapshot name", {"name": "k", "snapshot": "s1"})
    bad("POST", vv, 404, "clone of an unknown volume", {"name": "k", "source_volume": "nosuch"})
    bad("POST", vv, 400, "clone smaller than its origin",
        {"name": "k", "snapshot": "a@s1", "size": 32 * MiB})
    bad("POST", vv, 400, "clone of a live volume smaller than it",
        {"name": "k", "source_volume": "a", "size": 4096})
    bad("POST", vv, 400, "clone with both origins",
        {"name": "k", "snapshot": "a@s1", "source_volume": "a"})
    bad("POST", vv, 400, "clone with another object size",
        {"name": "k", "snapshot": "a@s1", "object_size": 65536})
    bad("POST", vv, 409, "clone with a taken name", {"name": "b", "snapshot": "a@s1"})
    bad("POST", vv, 400, "clone with a non-string snapshot", {"name": "k", "snapshot": 3})

    # ---- unknown ids on every GET/DELETE route ----
    for m, path in [("GET", "/v1/volumes/nosuch"), ("DELETE", "/v1/volumes/nosuch"),
                    ("GET", "/v1/volumes/" + "0" * 8 + "-0000-4000-8000-" + "0" * 12),
                    ("GET", "/v1/volumes/nosuch/snapshots"),
                    ("GET", "/v1/volumes/nosuch/attachments"),
                    ("GET", "/v1/volumes/a/attachments/nohost"),
                    ("DELETE", "/v1/volumes/a/attachments/nohost"),
                    ("DELETE", "/v1/volumes/nosuch/attachments/h1"),
                    ("GET", "/v1/servers/999"), ("GET", "/v1/servers/0"),
                    ("GET", "/v1/servers/1x"), ("GET", "/v1/servers/-1"),
                    ("GET", "/v1/nosuch"), ("DELETE", "/v1/volumes/a/nosuch"),
                    ("GET", "/v1/volumes/" + "v" * 300)]:
        bad(m, path, 404, "unknown id")
    # Percent-encoded NUL and '/' must not reach another resource.
    bad("DELETE", "/v1/volumes/b%00x", 404, "volume name with %00")
    bad("DELETE", "/v1/volumes/b%00", 404, "volume name ending in %00")
    bad("DELETE", "/v1/snapshots/a@s1%00", 404, "snapshot name ending in %00")
    bad("POST", "/v1/volumes/b%00/resize", 404, "resize path with %00", {"size": 64 * MiB})
    bad("DELETE", "/v1/volumes/a%2Fsnapshots%2Fs1", 404, "volume name with %2F")
    # Bytes that are not UTF-8 still get a JSON error (the message quotes them).
    for m, path in [("GET", "/v1/volumes/%FF"), ("DELETE", "/v1/volumes/%C3"),
                    ("GET", "/v1/snapshots/a@%FF"), ("DELETE", "/v1/volumes/a/snapshots/%FE"),
                    ("GET", "/v1/servers/%FF"), ("GET", "/v1/%FF"),
                    ("GET", "/v1/volumes/" + "%C3%A9" * 60)]:
        bad(m, path, 404, "an id that is not UTF-8")
    s, _, js = api.call("GET", "/v3/volumes/%FF")
    ck.check(s == 404 and isinstance(js, dict) and js.get("itemNotFound", {}).get("code") == 404,
             "Cinder: GET /v3/volumes/%%FF -> 404 with an itemNotFound body (%d %s)" % (s, js))
    s, _, js = api.call("POST", "/v3/volumes", raw=b'{"volume": {"size": 1}}',
                        ctype="text/plain")
    ck.check(s == 415 and isinstance(js, dict) and js.get("badMediaType", {}).get("code") == 415,
             "Cinder: POST /v3/volumes as text/plain -> 415 badMediaType (%d %s)" % (s, js))
    ck.check(state(api) == before, "the Cinder requests changed nothing")

    # ---- methods ----
    for m, path, allow in [("PUT", "/v1/volumes", "GET, POST"),
                           ("PATCH", "/v1/volumes/a", "GET, DELETE"),
                           ("POST", "/v1/volumes/a", "GET, DELETE"),
                           ("GET", "/v1/volumes/a/resize", "POST"),
                           ("DELETE", "/v1/volumes/a/rename", "POST"),
                           ("PUT", "/v1/volumes/a/revert", "POST"),
                           ("GET", "/v1/volumes/a/flatten", "POST"),
                           ("DELETE", "/v1/volumes/a/snapshots", "GET, POST"),
                           ("POST", "/v1/volumes/a/snapshots/s1", "GET, DELETE"),
                           ("DELETE", "/v1/snapshots", "GET"),
                           ("POST", "/v1/snapshots/a@s1", "GET, DELETE"),
                           ("POST", "/v1/layers", "GET"),
                           ("DELETE", "/v1/pools", "GET, POST"),
                           ("POST", "/v1/cluster/info", "GET")]:
        body = {"name": "zz", "size": 4096} if m in ("POST", "PUT", "PATCH") else None
        bad(m, path, 405, "wrong method", body=body, allow=allow)

    # ---- bodies ----
    good_vol = json.dumps({"name": "zz", "size": 4 * MiB}).encode()
    for ct in ("text/plain", "application/x-www-form-urlencoded", "application/xml",
               "multipart/form-data; boundary=x", "application/jsonx"):
        bad("POST", vv, 415, "Content-Type %s" % ct, raw=good_vol, ctype=ct)
        bad("POST", sp, 415, "snapshot with Content-Type %s" % ct,
            raw=b'{"name": "zz"}', ctype=ct)
    bad("POST", vv, 413, "a body over 64 KiB",
        raw=json.dumps({"name": "zz", "size": 4096, "description": "d" * 70000}).encode())
    bad("POST", sp, 413, "a snapshot body over 64 KiB",
        raw=b'{"name": "zz", "description": "' + b"d" * 70000 + b'"}')
    bad("POST", vv, 400, "an empty body", raw=b"")
    bad("POST", rp, 400, "no body", raw=None)
    for raw, why in [(good_vol + b"garbage", "trailing garbage"),
                     (good_vol + b"{}", "a second object"),
                     (b'{"name": "zz", "size": 4096,}', "a trailing comma"),
                     (b'{"name": "zz", "name": "yy", "size": 4096}', "duplicate keys"),
                     (b'{"name": "z\x00z", "size": 4096}', "a raw NUL"),
                     (b'{"name": "z\\u0000z", "size": 4096}', "an escaped NUL"),
                     (b'{"name": "\xff\xfe", "size": 4096}', "invalid UTF-8"),
                     (b"[" * 20000 + b"]" * 20000, "an array nesting bomb"),
                     (b'{"a":' * 10000 + b"1" + b"}" * 10000, "an object nesting bomb"),
                     (b'{"name": "zz", "size": 4096, "description": ' + b"[" * 5000 +
                      b"]" * 5000 + b"}", "a nested member"),
                     (b'["zz", 4096]', "an array"), (b'"zz"', "a string"), (b"null", "null"),
                     (b"4096", "a number"), (b"{", "a truncated object")]:
        bad("POST", vv, 400, "volume create with %s" % why, raw=raw)
    bad("POST", sp, 400, "snapshot create with trailing garbage", raw=b'{"name": "zz"} x')
    bad("POST", rp, 400, "resize with a nesting bomb", raw=b"[" * 20000 + b"]" * 20000)

    # ---- concurrency ----
    def race(n, method, paths, body=None):
        res = []
        lock = threading.Lock()

        def one(p):
            try:
                s, _, js = api.call(method, p, body)
            except Exception as e:  # noqa: BLE001  (a dropped connection is a result too)
                s, js = repr(e), None
            with lock:
                res.append(s)
        ths = [threading.Thread(target=one, args=(paths[i % len(paths)],)) for i in range(n)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        return sorted(res, key=str)

    ok("POST", vv, 201, {"name": "x", "size": 8 * MiB})
    ok("POST", "/v1/volumes/x/snapshots", 201, {"name": "xs"})
    # A snapshot delete answers 204, or 202 with the job merging it into its
    # child (docs/volumes.md "Merging a deleted snapshot").
    r = race(8, "DELETE", ["/v1/snapshots/x@xs", "/v1/volumes/x/snapshots/xs"])
    ck.check(r.count(204) + r.count(202) == 1 and r.count(404) == 7,
             "8 concurrent deletes of one snapshot (both paths): one 204/202, seven 404 (%s)" %
             r)
    r = race(8, "DELETE", ["/v1/volumes/x"])
    ck.check(r.count(204) == 1 and r.count(404) == 7,
             "8 concurrent deletes of one volume: one 204, seven 404 (%s)" % r)
    r = race(8, "POST", [vv], {"name": "y", "size": 8 * MiB})
    ck.check(r.count(201) == 1 and r.count(409) == 7,
             "8 concurrent creates of one name: one 201, seven 409 (%s)" % r)
    ok("POST", "/v1/volumes/y/snapshots", 201, {"name": "ys"})
    r = race(8, "POST", ["/v1/volumes/y/snapshots"], {"name": "ys2"})
    ck.check(r.count(201) == 1 and r.count(409) == 7,
             "8 concurrent snapshots of one name: one 201, seven 409 (%s)" % r)
    # Snapshot and volume deletes racing: the volume delete must not win
    # while a snapshot exists (409), whatever the order.
    r = race(8, "DELETE", ["/v1/snapshots/y@ys", "/v1/volumes/y", "/v1/snapshots/y@ys2",
                           "/v1/volumes/y/snapshots/ys"])
    ck.check(all(isinstance(s, int) and s < 500 for s in r),
             "deletes of a volume and its snapshots racing: no 5xx, no dropped connection (%s)"
             % r)
    vols = [v["name"] for v in api.get("/v1/volumes")]
    snaps = [s["full_name"] for s in api.get("/v1/snapshots")]
    y_left = "y" in vols
    ck.check(r.count(204) + r.count(202) == 2 + (0 if y_left else 1) and
             not any(s.startswith("y@") for s in snaps) and
             (y_left or not any(s.startswith("y@") for s in snaps)),
             "after the race: both snapshots gone (%s), volume y %s" %
             (snaps, "left (its deletes raced the snapshots')" if y_left else "deleted"))
    if y_left:
        ok("DELETE", "/v1/volumes/y", 204)
    ck.check(api.get("/v1/cluster/info")["epoch"] > 0, "keel-mgmt answers after the races")

    # ---- a rename carries the snapshots ----
    ok("POST", "/v1/volumes/b/rename", 200, {"name": "b2"})
    tsnap = ok("GET", "/v1/snapshots/" + t1["id"], 200)
    ck.check(tsnap["volume"] == "b2" and tsnap["full_name"] == "b2@t1",
             "after renaming b to b2, its snapshot is b2@t1 (%s)" % tsnap["full_name"])
    s, _, js = api.call("GET", "/v1/snapshots/b2@t1")
    ck.check(s == 200, "GET /v1/snapshots/b2@t1 after the rename: %d" % s)
    s, _, js = api.call("GET", "/v1/volumes/b2/snapshots/t1")
    ck.check(s == 200, "GET /v1/volumes/b2/snapshots/t1 after the rename: %d" % s)
    ok("DELETE", "/v1/volumes/d/attachments/h1", 204)
    log("%d bad requests checked; d was %s" % (nbad[0], d_vol["name"]))
    ck.done()


if __name__ == "__main__":
    cl.main(test)
