#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Merging deleted snapshots into their child, end to end (docs/volumes.md
"Merging a deleted snapshot"), against a real 3-server cluster with
keel-mgmt's REST API. Writes go through the raw wire client to the
volume's top (known data, so a model of the volume is exact); every read
back goes through libkeel (`keelctl volume export`, which follows the
chain mgmt gives it):

  1. a volume with a verified pattern, snapshots s1..s5 with overwrites
     between them (5 parents);
  2. s2, s3, s4 deleted while a writer keeps writing to the volume: the
     first delete answers 202 with a merge job, /v1/jobs shows the merges
     going to done (percent 100), the chain comes back to 2 parents (s5,
     s1), mgmt drops the merged layers once freed and the family's stored
     bytes drop;
  3. the volume (with every write of the writer) and the snapshots s1 and
     s5 read back exactly;
  4. snapshot s6, overwrites, s5 deleted and a keel-server SIGKILLed at
     once: the merge still completes on the other two, the volume and the
     snapshots read back exactly, with the server back too; the family's
     stored bytes drop once s5 is freed;
  5. `keelctl snapshot delete --wait` returns with the merge done,
     `keelctl job list` shows it;
  6. a 96 MiB volume whose snapshot b1 is full and whose top holds one
     block per object: b1 deleted, keel-mgmt SIGKILLed right after the 202
     and restarted: the merge is planned again from the layer table, its
     job shows again and completes (progress seen moving when the polls
     catch it), the volume reads back exactly;
  7. online flatten: the first volume attached (keel-client serves it),
     a writer running, `keelctl volume flatten` merges s7 and s1 into the
     top on the servers (job flatten-<top>, 2 steps): no parents left,
     the volume (every write included) and both snapshots, which stay,
     read back exactly.

Usage: t_merge.py BUILD_DIR.
"""
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import json

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterlib  # noqa: E402
from clusterlib import Checks, Cluster, TestFailure, keeltest  # noqa: E402
from t_layers import Data  # noqa: E402

B = 4096
OBJ = 1 << 20
SIZE = 16 << 20
S_OK = 0


class Model:
    """The volume's expected content and the writes that made it."""

    def __init__(self, d, top, size=SIZE):
        self.d = d
        self.top = top
        self.size = size
        self.img = bytearray(size)
        self.rng = random.Random(7)
        self.lock = threading.Lock()
        self.n = 0
        self.runs = []  # (first block, blocks) of every write, in order

    def write(self, blk, nblk):
        with self.lock:
            self.n += 1
            tag = self.n
            self.runs.append((blk, nblk))
        data = b"".join(bytes([(tag * 31 + b) % 251 + 1]) * 8 + os.urandom(8) * 511
                        for b in range(nblk))
        off = blk * B
        while data:
            objno, o = divmod(off, OBJ)
            n = min(len(data), OBJ - o)
            h, _ = self.d.call(keeltest.OP_WRITE, self.top, objno=objno, offset=o,
                               data=data[:n])
            if h.status != S_OK:
                raise TestFailure("write %d+%d: status %d" % (off, n, h.status))
            with self.lock:
                self.img[off:off + n] = data[:n]
            off += n
            data = data[n:]

    def scribble(self, runs):
        for _ in range(runs):
            nblk = self.rng.randint(1, 8)
            self.write(self.rng.randrange(self.size // B - nblk), nblk)


def api_status(c, path, method):
    req = urllib.request.Request(c.url + path, method=method,
                                 headers={"X-Auth-Token": c.token})
    try:
        with urllib.request.urlopen(req, timeout=40) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def export(c, tmp, what):
    path = os.path.join(tmp, what.replace("@", "_") + ".img")
    c.keelctl("volume", "export", what, path, "--key-file", c.key)
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data


def first_diff(a, b):
    for i in range(0, min(len(a), len(b)), B):
        if a[i:i + B] != b[i:i + B]:
            return "block %d (byte %d): %r vs %r" % (i // B, i, a[i:i + 16], b[i:i + 16])
    return "lengths %d vs %d" % (len(a), len(b))


def wait_merges(c, ck, timeout, what):
    """Until no layer merges; returns the jobs seen (id -> list of states)."""
    t0 = time.monotonic()
    seen = {}
    while True:
        for j in c.api("/v1/jobs"):
            st = seen.setdefault(j["id"], [])
            if not st or st[-1] != j["state"]:
                st.append(j["state"])
        layers = c.api("/v1/layers")
        if not any(x.get("merging_into") for x in layers):
            return seen
        if time.monotonic() - t0 > timeout:
            raise TestFailure("%s: merges still running after %d s: %s" %
                              (what, timeout, [x for x in layers if x.get("merging_into")]))
        time.sleep(0.3)


def test(tools, tmp, box):
    ck = Checks()
    # 2 GiB drives: scattered writes into 4 MiB objects fill 1 GiB ones past
    # mgmt's full_percent (writes then get ENOSPC, which the raw client here
    # does not retry).
    c = Cluster(tools, tmp, servers=3, size="2G", mgmt_set=["layer_drop_grace_s=1"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    c.keelctl("volume", "create", "mv", "--size", "16M", "--object-size", "1M")
    vol = c.api("/v1/volumes/mv")
    d = Data(c)
    d.pool = vol["pool"]
    m = Model(d, vol["inode"])

    # ---- 1: pattern, s1..s5 with overwrites ----
    for objno in range(SIZE // OBJ):
        m.write(objno * OBJ // B, 64)
    m.scribble(40)
    snaps = {}
    nruns = len(m.runs)
    for k in range(1, 6):
        r = c.api("/v1/volumes/mv/snapshots", "POST", {"name": "s%d" % k}, timeout=40)
        snaps["s%d" % k] = (r["inode"], bytes(m.img))
        m.top = c.api("/v1/volumes/mv")["inode"]
        m.scribble(60)
    vol = c.api("/v1/volumes/mv")
    ck.check(len(vol["parents"]) == 5, "5 snapshots: 5 parents (%s)" % vol["parents"])
    fam = vol["inode"] >> 16

    def stored():
        return sum(x["stored_bytes"] for x in c.api("/v1/layers") if x["family"] == fam)

    after_s1 = m.runs[nruns:nruns + 30]  # in s2, merged into s5 below

    # ---- 2: delete s2, s3, s4 with a writer running ----
    stop = threading.Event()
    werr = []

    def writer():
        try:
            while not stop.is_set():
                m.scribble(1)
        except Exception as e:  # noqa
            werr.append(repr(e))

    wt = threading.Thread(target=writer, daemon=True)
    wt.start()
    try:
        st, body = api_status(c, "/v1/volumes/mv/snapshots/s2", "DELETE")
        ck.check(st == 202 and body and body.get("type") == "merge" and
                 body.get("layer") == snaps["s2"][0] and body.get("into") == snaps["s3"][0] and
                 body.get("snapshot") == "s2" and body.get("volume") == "mv" and
                 body.get("state") in ("queued", "running", "done"),
                 "delete s2: 202 with its merge job into s3 (%s %s)" % (st, body))
        job_id = body.get("id") if isinstance(body, dict) else None
        for s in ("s3", "s4"):
            st, body = api_status(c, "/v1/volumes/mv/snapshots/" + s, "DELETE")
            ck.check(st in (202, 204), "delete %s: %d" % (s, st))
        time.sleep(1)
        seen = wait_merges(c, ck, 120, "s2..s4")
    finally:
        stop.set()
        wt.join(60)
    ck.check(not werr, "the writer ran through the merges: %s" % werr)
    merged = {snaps[s][0] for s in ("s2", "s3", "s4")}
    jobs = {j["layer"]: j for j in c.api("/v1/jobs")}
    ck.check(all(l in jobs and jobs[l]["state"] == "done" and jobs[l]["percent"] == 100
                 and jobs[l]["finished_at"] for l in merged),
             "a merge job per deleted snapshot, each done at 100%%: %s" % jobs)
    j = c.api("/v1/jobs/" + job_id) if job_id else {}
    ck.check(j.get("state") == "done" and j.get("objects_done") == j.get("objects_total") and
             j["objects_total"] > 0, "GET /v1/jobs/%s: done, %s of %s objects" %
             (job_id, j.get("objects_done"), j.get("objects_total")))
    ck.check(api_status(c, "/v1/jobs/merge-1", "GET")[0] == 404, "an unknown job: 404")
    clusterlib.log("job states seen: %s" % seen)
    vol = c.api("/v1/volumes/mv")
    ck.check(vol["parents"] == [snaps["s5"][0], snaps["s1"][0]],
             "the chain is s5, s1 again: %s" % vol["parents"])
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        left = merged & {x["inode"] for x in c.api("/v1/layers")}
        if not left:
            break
        time.sleep(0.5)
    ck.check(not left, "mgmt dropped the merged layers once freed: %s left" % left)

    # ---- 3: read back through libkeel ----
    got = export(c, tmp, "mv")
    ck.check(got == bytes(m.img), "the volume reads back exactly: %s" %
             ("ok" if got == bytes(m.img) else first_diff(got, m.img)))
    for s in ("s1", "s5"):
        got = export(c, tmp, "mv@" + s)
        ck.check(got == snaps[s][1], "snapshot %s reads back exactly: %s" %
                 (s, "ok" if got == snaps[s][1] else first_diff(got, snaps[s][1])))

    # ---- 4: a server SIGKILLed as a merge starts ----
    for blk, nblk in after_s1:  # blocks s5 holds: the merge frees s5's copies
        m.write(blk, nblk)
    r = c.api("/v1/volumes/mv/snapshots", "POST", {"name": "s6"}, timeout=40)
    snaps["s6"] = (r["inode"], bytes(m.img))
    m.top = c.api("/v1/volumes/mv")["inode"]
    m.scribble(60)
    time.sleep(4.5)  # usage reports with every layer
    before = stored()
    st, body = api_status(c, "/v1/volumes/mv/snapshots/s5", "DELETE")
    c.kill(2)
    ck.check(st == 202, "delete s5: 202 (%s)" % st)
    clusterlib.log("merge of s5 at the kill: %s" % body)
    wait_merges(c, ck, 120, "s5 with server 2 killed")
    j = c.api("/v1/jobs/" + body["id"])
    ck.check(j["state"] == "done", "the merge of s5 completed without server 2: %s" % j)

    vol = c.api("/v1/volumes/mv")
    ck.check(vol["parents"] == [snaps["s6"][0], snaps["s1"][0]],
             "the chain is s6, s1: %s" % vol["parents"])
    for what, want in (("mv", bytes(m.img)), ("mv@s1", snaps["s1"][1]),
                       ("mv@s6", snaps["s6"][1])):
        got = export(c, tmp, what)
        ck.check(got == want, "%s reads back exactly without server 2: %s" %
                 (what, "ok" if got == want else first_diff(got, want)))
    c.start(2)
    c.wait_health_ok(120)
    d.conns = {}  # the connection to server 2 died with it
    got = export(c, tmp, "mv")
    ck.check(got == bytes(m.img), "the volume reads back exactly with server 2 back")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and body["layer"] in {x["inode"]
                                                          for x in c.api("/v1/layers")}:
        time.sleep(0.5)
    time.sleep(4.5)
    after = stored()
    ck.check(after < before, "the family stores fewer bytes once s5 is merged and freed "
             "everywhere: %d -> %d" % (before, after))

    # ---- 5: keelctl snapshot delete --wait, keelctl job list ----
    r = c.api("/v1/volumes/mv/snapshots", "POST", {"name": "s7"}, timeout=40)
    snaps["s7"] = (r["inode"], bytes(m.img))
    m.top = c.api("/v1/volumes/mv")["inode"]
    m.scribble(20)
    out = json.loads(c.keelctl("-f", "json", "snapshot", "delete", "mv@s6", "--wait"))
    j = c.api("/v1/jobs/" + out["id"])
    ck.check(out["layer"] == snaps["s6"][0] and j["state"] == "done",
             "keelctl snapshot delete --wait returns with the merge done: %s" % j)
    ck.check(c.api("/v1/volumes/mv")["parents"] == [snaps["s7"][0], snaps["s1"][0]],
             "the chain is s7, s1")
    listing = c.keelctl("job", "list")
    ck.check(out["id"] in listing and "done" in listing.split(out["id"])[1].split("\n")[0],
             "keelctl job list shows %s done:\n%s" % (out["id"], listing))
    got = export(c, tmp, "mv@s7")
    ck.check(got == snaps["s7"][1], "s7 reads back exactly")

    # ---- 6: keel-mgmt killed mid-merge ----
    bsize = 96 << 20
    c.keelctl("volume", "create", "mb", "--size", "96M", "--object-size", "1M")
    vb = c.api("/v1/volumes/mb")
    mb = Model(d, vb["inode"], bsize)
    for objno in range(bsize // OBJ):
        mb.write(objno * OBJ // B, OBJ // B)
    r = c.api("/v1/volumes/mb/snapshots", "POST", {"name": "b1"}, timeout=40)
    b1 = r["inode"]
    mb.top = c.api("/v1/volumes/mb")["inode"]
    for objno in range(bsize // OBJ):
        mb.write(objno * OBJ // B + 7, 1)
    st, body = api_status(c, "/v1/volumes/mb/snapshots/b1", "DELETE")
    c.lc("stop-mgmt", "--signal", "KILL")
    ck.check(st == 202, "delete b1: 202 (%s)" % st)
    c.lc("start-mgmt")
    t0 = time.monotonic()
    states, progress = [], []
    while time.monotonic() - t0 < 120:
        try:
            jst, j = api_status(c, "/v1/jobs/" + body["id"], "GET")
            layers = {x["inode"]: x for x in c.api("/v1/layers")}
        except OSError:
            time.sleep(0.2)
            continue
        if jst == 200:
            if not states or states[-1] != j["state"]:
                states.append(j["state"])
            progress.append((j["objects_done"], j["objects_total"]))
            if j["state"] in ("done", "failed"):
                break
        elif b1 not in layers or layers[b1]["state"] == "deleting":
            states.append("finished before the kill")
            break
        time.sleep(0.2)
    clusterlib.log("merge of b1 after mgmt's restart: states %s, progress %s" %
                   (states, sorted(set(progress))))
    ck.check(states and states[-1] in ("done", "finished before the kill"),
             "the merge of b1 completes after mgmt's restart: %s" % states)
    vb = c.api("/v1/volumes/mb")
    ck.check(vb["parents"] == [], "mb reads through nothing now: %s" % vb["parents"])
    got = export(c, tmp, "mb")
    ck.check(got == bytes(mb.img), "mb reads back exactly: %s" %
             ("ok" if got == bytes(mb.img) else first_diff(got, mb.img)))

    # ---- 7: online flatten of an attached volume, a writer running ----
    att = json.loads(c.keelctl("-f", "json", "volume", "attach", "mv"))
    ck.check(att.get("state") == "attached", "mv attached: %s" % att.get("state"))
    ck.check(c.api("/v1/volumes/mv")["status"] != "available", "mv is in use")
    top = c.api("/v1/volumes/mv")["inode"]
    stop.clear()
    werr.clear()
    wt = threading.Thread(target=writer, daemon=True)
    wt.start()
    try:
        out = c.keelctl("volume", "flatten", "mv")
    finally:
        stop.set()
        wt.join(60)
    ck.check(not werr, "the writer ran through the flatten: %s" % werr)
    j = c.api("/v1/jobs/flatten-%x" % top)
    ck.check(j["type"] == "flatten" and j["state"] == "done" and j["steps_done"] == 2 and
             j["volume"] == "mv", "the flatten job is done after 2 steps: %s" % j)
    vol = c.api("/v1/volumes/mv")
    ck.check(vol["parents"] == [] and vol["inode"] == top,
             "mv has no parent and the same top: %s (%s)" % (vol["parents"], out.strip()))
    names = {x["name"] for x in c.api("/v1/volumes/mv/snapshots")}
    ck.check(names == {"s1", "s7"}, "the snapshots stay: %s" % names)
    got = export(c, tmp, "mv")
    ck.check(got == bytes(m.img), "mv reads back exactly after the online flatten: %s" %
             ("ok" if got == bytes(m.img) else first_diff(got, m.img)))
    for sname in ("s1", "s7"):
        got = export(c, tmp, "mv@" + sname)
        ck.check(got == snaps[sname][1], "%s reads back exactly" % sname)
    c.keelctl("volume", "detach", "mv")
    ck.done()


if __name__ == "__main__":
    clusterlib.main(test)
