#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_qos: per-volume QoS limits, set at mgmt and enforced by keel-client.

3 servers and keel-client (local-cluster.sh). A volume is created with
`keelctl volume create --iops 400` and attached with --nbd; fio's nbd engine
(random reads, QD16) measures through keel-client's NBD export:

  1. the REST API (and keelctl, exit 2) refuses bad limits (negative, not an integer, a bandwidth
     under 4 KiB/s, over the maxima, unknown fields) with 400 and changes
     nothing, not even the valid half of a request; the volume shows its
     own and its effective limits, the attachment the effective ones;
  2. IOPS limit 400: fio 4k QD16 measures 0.85..1.05 x 400;
  3. bandwidth limit 8 MiB/s (IOPS unlimited): fio 64k QD16 measures
     0.85..1.05 x 8 MiB/s;
  4. a live change: while fio runs at 400 IOPS the limit becomes 800; fio's
     per-interval log shows 400 before and 800 after (each within
     0.85..1.05);
  5. one limiter per volume: two NBD connections (fio numjobs=2) together
     measure 0.85..1.05 x 800; fio over NBD next to keel-vfront on the
     vhost-user socket (2 queues) gets well under the limit (they share it);
  6. the volume's own limits removed (`--iops pool --bps pool`, the pool
     has none): clearly faster than the last limit (over 2 x 800);
  7. the pool's default (`keelctl pool qos default --iops 300`) applies to
     the volume, and still after keel-client is restarted (SIGTERM, start).

The rates are what the test is about, so it asserts them; the band is wide
enough for a busy 2-core machine (a limiter can only make things slower:
the upper bound is the tight one).

    t_qos.py BUILD_DIR
"""
import json
import os
import subprocess
import tempfile
import threading
import time

import clusterlib as cl
from clusterlib import TestFailure, check, log

MIB = 1 << 20
LO, HI = 0.85, 1.05


def fio(uri, bs, runtime, extra=()):
    cmd = ["fio", "--name=qos", "--ioengine=nbd", "--uri=" + uri, "--rw=randread",
           "--bs=" + bs, "--iodepth=16", "--size=256M", "--time_based",
           "--runtime=%d" % runtime, "--ramp_time=1", "--output-format=json"] + list(extra)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=runtime + 60)
    if p.returncode != 0:
        raise TestFailure("fio exited %d:\n%s" % (p.returncode, p.stdout[-3000:]))
    job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
    check(job["error"] == 0, "fio: no I/O errors")
    return job["read"]["iops"], job["read"]["bw_bytes"]


def in_band(measured, limit, what):
    r = measured / limit
    check(LO <= r <= HI, "%s: %.1f measured, limit %d: %.3f x (%.2f..%.2f)"
          % (what, measured, limit, r, LO, HI))


def api_status(c, path, body):
    st, _, raw = c.api_raw(path, method="POST", body=body)
    return st, json.loads(raw) if raw else None


def wait_client_limits(c, vol, iops, bps, after, timeout=10):
    """Until keel-client logged that @vol's limits are @iops and @bps."""
    pat = "volume %s: QoS limits" % vol
    want = "-> %d IOPS" % iops
    want_b = "-> %d bytes/s" % bps
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(c.log_path("client")) as f:
            f.seek(after)
            for line in f:
                if pat in line and want in line and want_b in line:
                    return time.monotonic() - t0
        time.sleep(0.1)
    raise TestFailure("keel-client did not apply %s's limits %d IOPS, %d bytes/s within %d s"
                      % (vol, iops, bps, timeout))


def log_size(c):
    return os.path.getsize(c.log_path("client"))


def test(tools, tmp, box):
    if subprocess.run(["which", "fio"], stdout=subprocess.DEVNULL).returncode != 0:
        raise TestFailure("required tool missing: fio")
    c = cl.Cluster(tools, tmp, servers=3, size="1G")
    box.append(c)
    c.up()
    c.keelctl("volume", "create", "q1", "--size", "512M", "--iops", "400")
    v = c.api("/v1/volumes/q1")
    check(v["qos_iops"] == 400 and v["qos_bps"] is None and v["effective_qos_iops"] == 400
          and v["effective_qos_bps"] == 0,
          "volume create --iops 400: own 400 IOPS, bandwidth the pool's (unlimited)")

    # 1. validation: 400, nothing changed
    bad = [{"iops": -1}, {"iops": "5"}, {"iops": 1.5}, {"bps": 100}, {"bps": 1 << 41},
           {"iops": 10000001}, {"iops": 100, "bps": -5}, {"iops": 100, "burst": 1}]
    for body in bad:
        st, j = api_status(c, "/v1/volumes/q1/qos", body)
        check(st == 400 and j and j["error"]["code"] == 400,
              "POST qos %s: 400 (%s)" % (body, j and j["error"]["message"]))
    st, j = api_status(c, "/v1/pools/default/qos", {"iops": -3})
    check(st == 400, "pool qos with a negative limit: 400")
    st, j = api_status(c, "/v1/pools/nope/qos", {"iops": 3})
    check(st == 404, "pool qos of a missing pool: 404")
    st, j = api_status(c, "/v1/volumes", {"name": "q2", "size": 1 << 20, "qos_bps": -1})
    check(st == 400, "volume create with a negative limit: 400")
    v = c.api("/v1/volumes/q1")
    check(v["qos_iops"] == 400 and v["qos_bps"] is None,
          "after refused changes the limits are unchanged")
    check(c.api("/v1/pools")[0]["qos_iops"] == 0, "the pool's limits are unchanged")

    for args in (["volume", "qos", "q1", "--iops", "-5"], ["volume", "qos", "q1", "--bps", "12Q"],
                 ["volume", "create", "q3", "--size", "1G", "--iops", "pool"],
                 ["pool", "qos", "default"]):
        p = subprocess.run([tools.keelctl, "--mgmt", c.url, "--token-file", c.token_file] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
        check(p.returncode == 2 and p.stderr.startswith("keelctl: "),
              "keelctl %s: usage error, exit 2 (%s)" % (" ".join(args), p.stderr.strip()[:90]))
    a = json.loads(c.keelctl("-f", "json", "volume", "attach", "q1", "--nbd"))
    uri = a["nbd_uri"]
    check(a["qos_iops"] == 400 and a["qos_bps"] == 0, "attachment carries 400 IOPS, no "
          "bandwidth limit")

    # 2. IOPS
    iops, _ = fio(uri, "4k", 6)
    in_band(iops, 400, "IOPS limit 4k QD16")

    # 3. bandwidth
    at = log_size(c)
    c.keelctl("volume", "qos", "q1", "--iops", "unlimited", "--bps", "8M")
    wait_client_limits(c, "q1", 0, 8 * MIB, at)
    _, bw = fio(uri, "64k", 6)
    in_band(bw / MIB, 8, "bandwidth limit 64k QD16 (MiB/s)")

    # 4. a live change 400 -> 800 IOPS under fio
    at = log_size(c)
    c.keelctl("volume", "qos", "q1", "--iops", "400", "--bps", "unlimited")
    wait_client_limits(c, "q1", 400, 0, at)
    logdir = tempfile.mkdtemp(dir=tmp)
    prefix = os.path.join(logdir, "live")
    res = {}
    th = threading.Thread(target=lambda: res.update(r=fio(
        uri, "4k", 11, ["--write_iops_log=" + prefix, "--log_avg_msec=500"])))
    th.start()
    time.sleep(6)  # fio's start, its 1 s ramp, then at 400
    at = log_size(c)
    c.keelctl("volume", "qos", "q1", "--iops", "800")
    took = wait_client_limits(c, "q1", 800, 0, at)
    log("the new limit reached keel-client %.1f s after the change" % took)
    th.join()
    check("r" in res, "fio ran through the change")
    pts = []
    for fn in os.listdir(logdir):
        with open(os.path.join(logdir, fn)) as f:
            for line in f:
                t, val = line.split(",")[:2]
                pts.append((int(t) / 1000.0, float(val)))
    pts.sort()
    # fio's clock starts with the job (ramp included), up to a second or
    # two after the thread (a busy machine): the change came at most 6 s in
    # and applied within 'took'.
    before = [v for t, v in pts if 1.5 <= t <= 3.5]
    after = [v for t, v in pts if 6 + took + 0.5 <= t <= 11.5]
    check(before and after, "fio iops log has samples before and after (%d, %d)"
          % (len(before), len(after)))
    in_band(sum(before) / len(before), 400, "live change: before")
    in_band(sum(after) / len(after), 800, "live change: after")

    # 5. one limiter per volume: two NBD connections share it, and so do
    # NBD and vhost-user
    iops, _ = fio(uri, "4k", 5, ["--numjobs=2", "--group_reporting"])
    in_band(iops, 800, "two NBD connections together")
    vfront = os.path.join(tools.build, "tests", "keel-vfront")
    vf = subprocess.Popen([vfront, "bench", "--socket", a["vhost_socket"], "--rw", "randread",
                           "--bs", "4k", "--iodepth", "16", "--queues", "2", "--runtime", "9",
                           "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        iops, _ = fio(uri, "4k", 5)
        out, err = vf.communicate(timeout=60)
    finally:
        if vf.poll() is None:
            vf.kill()
            vf.wait()
    j = json.loads(out)
    check(vf.returncode == 0 and j["ok"], "keel-vfront bench on the vhost-user socket: ok")
    check(iops < 0.65 * 800 and j["total"]["iops"] < 0.8 * 800,
          "NBD (%.0f IOPS) and vhost-user with 2 queues (%.0f IOPS over its longer run) share "
          "the 800 IOPS limit" % (iops, j["total"]["iops"]))

    # 6. unlimited
    at = log_size(c)
    c.keelctl("volume", "qos", "q1", "--iops", "pool", "--bps", "pool")
    wait_client_limits(c, "q1", 0, 0, at)
    v = c.api("/v1/volumes/q1")
    check(v["qos_iops"] is None and v["effective_qos_iops"] == 0, "back to the pool's: none")
    iops, _ = fio(uri, "4k", 4)
    check(iops > 2 * 800, "without a limit: %.0f IOPS, clearly over the last limit 800" % iops)

    # 7. the pool's default, across a keel-client restart
    at = log_size(c)
    out = c.keelctl("pool", "qos", "default", "--iops", "300")
    check("300" in out, "keelctl pool qos shows the new limit")
    wait_client_limits(c, "q1", 300, 0, at)
    v = c.api("/v1/volumes/q1")
    check(v["qos_iops"] is None and v["effective_qos_iops"] == 300,
          "the volume follows its pool's default: 300")
    c.lc("stop-client", "--signal", "TERM")
    c.lc("start-client")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 15:
        got = json.loads(c.keelctl("-f", "json", "attachment", "list"))
        if got and got[0]["state"] == "attached" and os.path.exists(a["vhost_socket"]):
            break
        time.sleep(0.2)
    check(got and got[0]["qos_iops"] == 300, "served again after the restart, 300 IOPS")
    iops, _ = fio(uri, "4k", 5)
    in_band(iops, 300, "pool default after a keel-client restart")
    c.keelctl("volume", "detach", "q1")


if __name__ == "__main__":
    cl.main(test)
