#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_cinder: the stock cinder and openstack clients against keel-mgmt's
OpenStack Block Storage v3 API (docs/api.md), with data checks.

3 servers and keel-client for this host (local-cluster.sh). Debian's
/usr/bin/cinder (python3-cinderclient) with OS_AUTH_TYPE=noauth, and
/usr/bin/openstack (python3-openstackclient):

  1. versions document at / (300) and /v3 (200), Cinder-shaped 404 for an
     unknown route;
  2. cinder create/show/list (--name filter)/extend, on /v3/{project} and
     on /v3 (no project id in the endpoint);
  3. cinder attachment-create --connect (host = this host's keel-client):
     the attachment reaches "attached" with an NBD URI in connection_info;
     qemu-io writes patterns through it; the volume is in-use and cannot
     be deleted;
  4. snapshot-create (attached, --force), then new data on the volume;
     create --snapshot-id reads the snapshot's data, create --source-volid
     reads the volume's current data (both through Cinder attachments);
  5. attachment-delete, revert-to-snapshot: the volume reads the
     snapshot's data again; snapshot-list/snapshot-delete;
  6. openstack volume create/list/show/delete (auth type none; list, show
     and delete also with noauth);
  7. bad input through the REST API: malformed JSON, wrong types, negative
     and huge sizes, unknown ids, odd names, bad microversions and filters
     get the right 4xx with a Cinder error body and change nothing;
     concurrent deletes of one volume and of one attachment: exactly one
     wins, the others get 404.

    t_cinder.py BUILD_DIR
"""
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

import clusterlib as cl
from clusterlib import TestFailure, log

CINDER = "/usr/bin/cinder"
OPENSTACK = "/usr/bin/openstack"
PROJECT = "0123456789abcdef0123456789abcdef"


def run(cmd, env, timeout=120):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


class Clients:
    def __init__(self, url, ck):
        base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CINDER_"))}
        base["HOME"] = os.environ.get("HOME", "/tmp")
        self.ck = ck
        self.env_project = dict(base, OS_AUTH_TYPE="noauth", OS_USER_ID="keel-test",
                                OS_PROJECT_ID=PROJECT, CINDER_ENDPOINT=url + "/v3/" + PROJECT)
        self.env_noproject = dict(self.env_project, CINDER_ENDPOINT=url + "/v3")
        self.env_osc_none = dict(base, OS_AUTH_TYPE="none", OS_ENDPOINT=url + "/v3")
        self.env_osc_noauth = dict(base, OS_AUTH_TYPE="noauth", OS_USER_ID="keel-test",
                                   OS_PROJECT_ID=PROJECT, OS_ENDPOINT=url + "/v3")

    def cinder(self, *args, ok=True, env=None):
        rc, out, err = run([CINDER] + list(args), env or self.env_project)
        if ok and rc != 0:
            raise TestFailure("cinder %s exited %d: %s" % (" ".join(args), rc, err.strip()))
        return rc, out, err

    def props(self, *args):
        """cinder's "| Property | Value |" table as a dict."""
        _, out, _ = self.cinder(*args)
        d = {}
        for line in out.splitlines():
            m = re.match(r"^\|\s*(\S+)\s*\|\s*(.*?)\s*\|$", line)
            if m and m.group(1) != "Property":
                d[m.group(1)] = m.group(2)
        return d

    def rows(self, *args, env=None):
        """A cinder list table as a list of dicts."""
        _, out, _ = self.cinder(*args, env=env)
        lines = [x for x in out.splitlines() if x.startswith("|")]
        if not lines:
            return []
        head = [h.strip() for h in lines[0].strip("|").split("|")]
        return [dict(zip(head, (c.strip() for c in x.strip("|").split("|")))) for x in lines[1:]]

    def osc(self, *args, env=None, ok=True):
        rc, out, err = run([OPENSTACK] + list(args), env or self.env_osc_none)
        if ok and rc != 0:
            raise TestFailure("openstack %s exited %d: %s" % (" ".join(args), rc, err.strip()))
        return rc, out, err


# ---- REST helpers (the bad-input checks) ----

def http(url, method="GET", body=None, raw=None, headers=None):
    """(status, parsed JSON or None, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read()
            return r.status, json.loads(text) if text else None, r.headers
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            js = json.loads(text) if text else None
        except ValueError:
            js = {"unparsable": text[:200].decode(errors="replace")}
        return e.code, js, e.headers


FAULTS = {400: "badRequest", 404: "itemNotFound", 405: "badMethod", 406: "notAcceptable",
          409: "conflictingRequest", 413: "overLimit"}


def is_fault(js, code):
    """A Cinder error body: {"<fault>": {"code": N, "message": "..."}}."""
    return (isinstance(js, dict) and len(js) == 1 and FAULTS.get(code) in js and
            js[FAULTS[code]].get("code") == code and isinstance(js[FAULTS[code]].get("message"),
                                                                str))


# ---- data through Cinder attachments ----

def qemu_io(uri, *cmds):
    args = ["qemu-io", "-f", "raw"]
    for c in cmds:
        args += ["-c", c]
    p = subprocess.run(args + [uri], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=120)
    bad = p.returncode != 0 or "error" in p.stdout.lower() or "fail" in p.stdout.lower() or \
        "pattern verification failed" in p.stdout.lower()
    return not bad, p.stdout


def attach(cl_, vol, host):
    """cinder attachment-create --connect; waits until keel-client serves it.
    (attachment id, nbd uri)."""
    inst = str(uuid.uuid4())
    a = cl_.props("attachment-create", "--connect", "True", "--host", host, "--ip",
                  "127.0.0.1", "--initiator", "iqn.2024-01.keel:test", vol, inst)
    aid = a.get("id")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        s = cl_.props("attachment-show", aid)
        if s.get("status") == "attached" and s.get("nbd_uri", "None") != "None":
            return aid, s["nbd_uri"], inst
        time.sleep(0.3)
    raise TestFailure("attachment %s of %s not attached within 30 s: %s" % (aid, vol, s))


def detach(cl_, aid, vol):
    cl_.cinder("attachment-delete", aid)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        if cl_.props("show", vol).get("status") == "available":
            return
        time.sleep(0.2)
    raise TestFailure("volume %s not available after attachment-delete" % vol)


def test(tools, tmp, box):
    for t in (CINDER, OPENSTACK):
        if not os.access(t, os.X_OK):
            raise TestFailure("required tool missing: %s (scripts/install-deps.sh installs it)"
                              % t)
    if subprocess.run(["which", "qemu-io"], stdout=subprocess.DEVNULL).returncode != 0:
        raise TestFailure("required tool missing: qemu-io")
    ck = cl.Checks()
    check = ck.check
    # The stock clients run with OS_AUTH_TYPE=noauth: mgmt must accept
    # requests without a token (auth = noauth, docs/api.md).
    c = cl.Cluster(tools, tmp, servers=3, size="2G", mgmt_set=["auth=noauth"])
    box.append(c)
    c.up()
    c.wait_health_ok(120)
    url = c.url
    v3 = url + "/v3/" + PROJECT
    cc = Clients(url, ck)
    host = socket.gethostname()

    # 1. versions, unknown routes
    st, js, hd = http(url + "/")
    ver = (js or {}).get("versions", [{}])[0]
    check(st == 300 and ver.get("id") == "v3.0" and ver.get("min_version") == "3.0" and
          ver.get("version", "").startswith("3.") and ver.get("status") == "CURRENT",
          "GET / is the versions document (300, v3.0, 3.0..%s)" % ver.get("version"))
    st, js, _ = http(url + "/v3")
    check(st == 200 and js["versions"][0]["id"] == "v3.0", "GET /v3: 200, versions")
    for path in ("/v3/" + PROJECT + "/bogus", "/v3/bogus/x/y", "/v3/volumes/x/y/z"):
        st, js, _ = http(url + path)
        check(st == 404 and is_fault(js, 404), "GET %s: JSON 404 itemNotFound" % path)
    st, js, _ = http(url + "/v1/volumes")
    check(st == 200 and isinstance(js, list), "/v1 stays the native API")

    # 2. volumes
    v = cc.props("create", "--name", "cv1", "--description", "first volume", "1")
    vid = v.get("id", "")
    check(re.match(r"^[0-9a-f-]{36}$", vid) is not None and v.get("size") == "1" and
          v.get("status") == "available", "cinder create: id %s, 1 GiB, available" % vid)
    s = cc.props("show", "cv1")
    check(s.get("id") == vid and s.get("description") == "first volume" and
          s.get("volume_type") == "default", "cinder show by name (id, description, type)")
    native = c.api("/v1/volumes/cv1")
    check(native["uuid"] == vid and native["size"] == 1 << 30,
          "the Cinder volume is Keel volume cv1 (uuid %s, %d bytes)" % (native["uuid"],
                                                                      native["size"]))
    cc.cinder("create", "--name", "cv-other", "1")
    rows = cc.rows("list", "--name", "cv1")
    check([r["ID"] for r in rows] == [vid], "cinder list --name cv1: only cv1 (%s)" % rows)
    rows = cc.rows("list", env=cc.env_noproject)
    check(sorted(r["Name"] for r in rows) == ["cv-other", "cv1"],
          "cinder list on /v3 without a project id: both volumes")
    s = cc.props("show", vid)
    check(s.get("name") == "cv1", "cinder show by id")
    cc.cinder("extend", "cv1", "2")
    check(cc.props("show", "cv1").get("size") == "2" and
          c.api("/v1/volumes/cv1")["size"] == 2 << 30, "cinder extend cv1 2: 2 GiB")
    rc, _, err = cc.cinder("extend", "cv1", "1", ok=False)
    check(rc != 0 and "400" in err and cc.props("show", "cv1").get("size") == "2",
          "cinder extend to a smaller size: refused (400), size unchanged")
    cc.cinder("delete", "cv-other")
    rc, _, _ = cc.cinder("show", "cv-other", ok=False)
    check(rc != 0, "cinder delete cv-other: gone")

    # 3. attachment + data
    aid, uri, inst = attach(cc, "cv1", host)
    check(True, "cinder attachment-create --connect --host %s: attached, %s" % (host, uri))
    ok, out = qemu_io(uri, "write -P 0xa1 0 1M", "write -P 0xa2 4M 64k", "read -P 0xa1 0 1M",
                      "read -P 0xa2 4M 64k")
    check(ok, "qemu-io writes and reads patterns through the Cinder attachment" +
          ("" if ok else ":\n" + out))
    s = cc.props("show", "cv1")
    check(s.get("status") == "in-use" and inst in s.get("attached_servers", ""),
          "cv1 in-use, attached to instance %s" % inst)
    rows = cc.rows("attachment-list")
    check([r["ID"] for r in rows] == [aid] and rows[0]["Server ID"] == inst,
          "cinder attachment-list: the attachment and its instance")
    rc, _, err = cc.cinder("delete", "cv1", ok=False)
    check(rc != 0 and cc.props("show", "cv1").get("status") == "in-use",
          "cinder delete of an in-use volume: refused, volume kept")

    # 4. snapshot (attached: force), then new data; clones read back
    sn = cc.props("snapshot-create", "--force", "True", "--name", "snap1", "cv1")
    sid = sn.get("id", "")
    check(sn.get("status") == "available" and sn.get("volume_id") == vid and
          sn.get("size") == "2", "cinder snapshot-create: %s, available, of cv1, 2 GiB" % sid)
    ok, out = qemu_io(uri, "write -P 0xb1 0 1M", "read -P 0xb1 0 1M")
    check(ok, "new data on cv1 after the snapshot" + ("" if ok else ":\n" + out))
    fs = cc.props("create", "--snapshot-id", sid, "--name", "fromsnap")
    check(fs.get("snapshot_id") == sid and fs.get("size") == "2",
          "cinder create --snapshot-id: snapshot_id %s, size 2" % fs.get("snapshot_id"))
    cl_ = cc.props("create", "--source-volid", vid, "--name", "clone1")
    check(cl_.get("status") == "available" and cl_.get("size") == "2",
          "cinder create --source-volid cv1: clone1, 2 GiB")
    check(cl_.get("source_volid") == vid and cl_.get("snapshot_id") in (None, "None"),
          "cinder show of the clone: source_volid %s, no snapshot_id" % cl_.get("source_volid"))
    a2, uri2, _ = attach(cc, "fromsnap", host)
    ok, out = qemu_io(uri2, "read -P 0xa1 0 1M", "read -P 0xa2 4M 64k")
    check(ok, "the volume created from the snapshot reads the snapshot's data" +
          ("" if ok else ":\n" + out))
    a3, uri3, _ = attach(cc, "clone1", host)
    ok, out = qemu_io(uri3, "read -P 0xb1 0 1M", "read -P 0xa2 4M 64k")
    check(ok, "the clone of cv1 reads cv1's data at clone time" + ("" if ok else ":\n" + out))
    ok, out = qemu_io(uri3, "write -P 0xc1 0 64k")
    ok2, out2 = qemu_io(uri, "read -P 0xb1 0 1M")
    check(ok and ok2, "writes to the clone do not reach cv1")

    # 5. detach, revert, snapshots
    for a, vol in ((aid, "cv1"), (a2, "fromsnap"), (a3, "clone1")):
        detach(cc, a, vol)
    check(cc.rows("attachment-list") == [], "cinder attachment-delete: no attachments left")
    rc, _, err = cc.cinder("revert-to-snapshot", "snap1", ok=False)
    check(rc == 0, "cinder revert-to-snapshot snap1" + ("" if rc == 0 else ": " + err))
    aid, uri, _ = attach(cc, "cv1", host)
    ok, out = qemu_io(uri, "read -P 0xa1 0 1M", "read -P 0xa2 4M 64k")
    check(ok, "after revert cv1 reads the snapshot's data" + ("" if ok else ":\n" + out))
    detach(cc, aid, "cv1")
    rows = cc.rows("snapshot-list")
    check([r["ID"] for r in rows] == [sid] and rows[0]["Name"] == "snap1",
          "cinder snapshot-list: snap1")
    rows = cc.rows("snapshot-list", "--volume-id", str(uuid.uuid4()))
    check(rows == [], "cinder snapshot-list --volume-id of another volume: empty")
    rc, _, _ = cc.cinder("delete", "cv1", ok=False)
    check(rc != 0 and cc.props("show", "cv1").get("id") == vid,
          "a volume with snapshots cannot be deleted (refused, kept)")
    cc.cinder("snapshot-delete", "snap1")
    check(cc.rows("snapshot-list") == [], "cinder snapshot-delete: gone")
    ok, out = qemu_io(attach(cc, "fromsnap", host)[1], "read -P 0xa1 0 1M")
    check(ok, "fromsnap still reads the data of the deleted snapshot")
    for a in cc.rows("attachment-list"):
        cc.cinder("attachment-delete", a["ID"])
    rc, _, err = cc.cinder("rename", "clone1", "clone2", "--description", "renamed", ok=False)
    sh = cc.props("show", "clone2") if rc == 0 else {}
    check(rc == 0 and sh.get("name") == "clone2" and sh.get("description") == "renamed",
          "cinder rename clone1 clone2 --description renamed" + ("" if rc == 0 else ": " + err))
    rc, _, err = cc.cinder("rename", "clone2", "bad name", ok=False)
    check(rc != 0 and cc.props("show", "clone2").get("name") == "clone2",
          "cinder rename to a name with a space: refused, unchanged")
    rc, _, err = cc.osc("volume", "set", "--name", "clone1", "clone2", ok=False)
    check(rc == 0 and cc.props("show", "clone1").get("description") == "renamed",
          "openstack volume set --name clone1" + ("" if rc == 0 else ": " + err))
    for vol in ("cv1", "fromsnap", "clone1"):
        rc, _, err = cc.cinder("delete", vol, ok=False)
        check(rc == 0, "cinder delete %s" % vol + ("" if rc == 0 else ": " + err))
    check(cc.rows("list") == [], "cinder list: empty")

    # 6. openstack
    rc, out, err = cc.osc("volume", "create", "--size", "1", "--description", "osc",
                          "ov1", "-f", "json", ok=False)
    ov = json.loads(out) if rc == 0 else {}
    check(rc == 0 and ov.get("size") == 1 and ov.get("name") == "ov1",
          "openstack volume create --size 1 ov1" + ("" if rc == 0 else ": " + err))
    for env, what in ((cc.env_osc_none, "none"), (cc.env_osc_noauth, "noauth")):
        rc, out, err = cc.osc("volume", "list", "-f", "json", env=env, ok=False)
        lst = json.loads(out) if rc == 0 else []
        check(rc == 0 and [x["Name"] for x in lst] == ["ov1"],
              "openstack volume list (auth %s): ov1" % what + ("" if rc == 0 else ": " + err))
        rc, out, err = cc.osc("volume", "list", "--name", "nope", "-f", "json", env=env,
                              ok=False)
        check(rc == 0 and json.loads(out) == [], "openstack volume list --name nope: empty")
        rc, out, err = cc.osc("volume", "show", "ov1", "-f", "json", env=env, ok=False)
        sh = json.loads(out) if rc == 0 else {}
        check(rc == 0 and sh.get("id") == ov.get("id") and sh.get("status") == "available" and
              sh.get("description") == "osc", "openstack volume show ov1 (auth %s)" % what)
    rc, _, err = cc.osc("volume", "delete", "ov1", env=cc.env_osc_noauth, ok=False)
    check(rc == 0, "openstack volume delete ov1" + ("" if rc == 0 else ": " + err))
    rc, _, _ = cc.osc("volume", "show", "ov1", ok=False)
    check(rc != 0, "openstack volume show ov1 after delete: not found")

    # 7. bad input: right 4xx, Cinder error body, nothing changed
    cc.cinder("create", "--name", "keep", "1")
    keep = cc.props("show", "keep")
    before = http(v3 + "/volumes/detail")[1]

    def bad(method, path, code, what, body=None, raw=None, headers=None):
        st, js, _ = http(v3 + path if path.startswith("/") else path, method, body, raw,
                         headers)
        check(st == code and is_fault(js, code), "%s: %d with a Cinder error body (got %d %s)"
              % (what, code, st, json.dumps(js)[:160]))

    bad("POST", "/volumes", 400, "malformed JSON", raw=b'{"volume": {"size": 1')
    bad("POST", "/volumes", 400, "body not an object", raw=b'[1]')
    bad("POST", "/volumes", 400, "no volume object", body={"size": 1})
    bad("POST", "/volumes", 400, "size missing", body={"volume": {"name": "x1"}})
    for size in ("abc", 1.5, True, None, [], -1, 0, 1 << 21, 1 << 62, "-3", "1e3"):
        bad("POST", "/volumes", 400, "size %r" % (size,), body={"volume": {"size": size,
                                                                            "name": "x2"}})
    for name in ("a b", "ü", "../etc", "x" * 64, "-lead", "a/b", "a\u0000b", 7, ["a"]):
        bad("POST", "/volumes", 400, "name %r" % (name,), body={"volume": {"size": 1,
                                                                            "name": name}})
    bad("POST", "/volumes", 400, "unknown field", body={"volume": {"size": 1, "colour": "red"}})
    bad("POST", "/volumes", 400, "imageRef (unsupported)",
        body={"volume": {"size": 1, "imageRef": str(uuid.uuid4())}})
    bad("POST", "/volumes", 400, "unknown volume type", body={"volume": {"size": 1,
                                                                          "volume_type": "gold"}})
    bad("POST", "/volumes", 400, "unknown snapshot_id",
        body={"volume": {"size": 1, "snapshot_id": str(uuid.uuid4())}})
    bad("POST", "/volumes", 400, "unknown source_volid",
        body={"volume": {"size": 1, "source_volid": "not-a-uuid"}})
    bad("POST", "/volumes", 409, "name taken", body={"volume": {"size": 1, "name": "keep"}})
    bad("GET", "/volumes/" + str(uuid.uuid4()), 404, "unknown volume id")
    bad("GET", "/volumes/keep", 404, "a name is not an id")
    bad("DELETE", "/volumes/" + str(uuid.uuid4()), 404, "delete of an unknown volume")
    bad("POST", "/volumes/" + keep["id"] + "/action", 400, "unknown action",
        body={"os-frobnicate": {}})
    for ns in (-1, 0, "x", None, 1 << 40, 1):
        bad("POST", "/volumes/" + keep["id"] + "/action", 400, "os-extend new_size %r" % (ns,),
            body={"os-extend": {"new_size": ns}})
    bad("POST", "/volumes/" + keep["id"] + "/action", 400, "revert to an unknown snapshot",
        body={"revert": {"snapshot_id": str(uuid.uuid4())}},
        headers={"OpenStack-API-Version": "volume 3.40"})
    bad("POST", "/snapshots", 400, "snapshot of an unknown volume",
        body={"snapshot": {"volume_id": str(uuid.uuid4()), "name": "s"}})
    bad("POST", "/snapshots", 400, "snapshot name with odd characters",
        body={"snapshot": {"volume_id": keep["id"], "name": "s p a c e"}})
    bad("GET", "/snapshots/" + str(uuid.uuid4()), 404, "unknown snapshot id")
    hdr = {"OpenStack-API-Version": "volume 3.27"}
    bad("POST", "/attachments", 400, "attachment without a connector",
        body={"attachment": {"volume_uuid": keep["id"]}}, headers=hdr)
    bad("POST", "/attachments", 400, "attachment to an odd host name",
        body={"attachment": {"volume_uuid": keep["id"], "connector": {"host": "a b"}}},
        headers=hdr)
    bad("POST", "/attachments", 400, "attachment of an unknown volume",
        body={"attachment": {"volume_uuid": str(uuid.uuid4()), "connector": {"host": "h"}}},
        headers=hdr)
    bad("DELETE", "/attachments/" + str(uuid.uuid4()), 404, "unknown attachment id",
        headers=hdr)
    bad("GET", "/attachments", 404, "attachments below microversion 3.27")
    bad("GET", "/volumes", 406, "microversion 3.99", headers={"OpenStack-API-Version":
                                                              "volume 3.99"})
    bad("GET", "/volumes", 400, "malformed microversion",
        headers={"OpenStack-API-Version": "volume three"})
    bad("GET", "/volumes?colour=red", 400, "unknown filter")
    bad("GET", "/volumes?limit=-1", 400, "negative limit")
    bad("PATCH", "/volumes", 405, "PATCH /volumes")
    bad("POST", "/volumes", 413, "a body over 64 KiB",
        raw=b'{"volume": {"size": 1, "description": "' + b"x" * 70000 + b'"}}')
    after = http(v3 + "/volumes/detail")[1]
    check(after == before, "no bad request changed any volume")

    # concurrent deletes: one wins, the rest get 404
    vol = http(v3 + "/volumes", "POST", {"volume": {"size": 1, "name": "race"}})[1]["volume"]
    results = []

    def delete(path, h=None):
        results.append(http(v3 + path, "DELETE", headers=h)[0])
    ths = [threading.Thread(target=delete, args=("/volumes/" + vol["id"],)) for _ in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check(sorted(results) == [202] + [404] * 7,
          "8 concurrent deletes of one volume: one 202, seven 404 (%s)" % sorted(results))
    check(http(v3 + "/volumes/" + vol["id"])[0] == 404, "the raced volume is gone")
    st, js, _ = http(v3 + "/attachments", "POST", {"attachment": {
        "volume_uuid": keep["id"], "connector": {"host": "racehost"}}}, headers=hdr)
    results = []
    ths = [threading.Thread(target=delete, args=("/attachments/" + js["attachment"]["id"], hdr))
           for _ in range(8)]
    for t in ths:
        t.start()
    for t in ths:
        t.join()
    check(sorted(results) == [200] + [404] * 7,
          "8 concurrent deletes of one attachment: one 200, seven 404 (%s)" % sorted(results))
    check(cc.props("show", "keep").get("status") == "available", "keep is available again")
    cc.cinder("delete", "keep")
    ck.done()
    log("t_cinder: all checks passed")


if __name__ == "__main__":
    cl.main(test)
