#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_metrics: GET /metrics (Prometheus text format) and REST token auth on a real cluster.

3 servers and keel-client (local-cluster.sh, which makes DIR/api.token and
passes it to keel-mgmt, keel-client and keelctl); keel-client reports its
I/O counters every 500 ms (client.stats_ms):

  1. /metrics without a token, or with a wrong one: 401; with the token
     (Authorization: Bearer, as Prometheus sends it): 200, Content-Type
     text/plain; version=0.0.4;
  2. `promtool check metrics` accepts the document (the test fails when
     promtool is missing: Debian's prometheus package, scripts/install-deps.sh);
  3. the cluster gauges agree with the REST API: 3 servers up and in with
     their capacity, every PG active, the epoch, the volume and its size;
  4. a volume attached with --nbd, written and read through keel-client's NBD
     export with qemu-io: keel_volume_{read,write}_{ops,bytes}_total and
     ..._time_seconds_total for {volume, host} move by at least what qemu-io
     did, and only grow; promtool still accepts the document;
  5. detached: the volume's I/O series are gone.

    t_metrics.py BUILD_DIR
"""
import os
import re
import shutil
import socket
import subprocess
import time

import clusterlib as cl
from clusterlib import TestFailure, log

MIB = 1 << 20


def parse(text):
    """{(name, frozenset(labels.items())): float} of a text-format document."""
    out = {}
    rx = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
    lab = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
        if not m:
            raise TestFailure("not a sample line: %r" % line)
        labels = frozenset(lab.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def promtool_check(ck, promtool, text, path, what):
    with open(path, "w") as f:
        f.write(text)
    with open(path) as f:
        p = subprocess.run([promtool, "check", "metrics"], stdin=f, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
    ck.check(p.returncode == 0 and not p.stdout.strip(),
             "promtool check metrics accepts %s (exit %d%s)" %
             (what, p.returncode, (": " + p.stdout.strip()[:500]) if p.stdout.strip() else ""))


def metrics(c):
    s, ctype, body = c.api_raw("/metrics", headers={"Authorization": "Bearer " + c.token},
                               token=False)
    if s != 200:
        raise TestFailure("GET /metrics with the token: HTTP %d %s" % (s, body[:200]))
    return ctype, body.decode()


def test(tools, tmp, box):
    promtool = shutil.which("promtool")
    if not promtool:
        # Never a skip: a test whose tool is missing must not pass.
        raise TestFailure("promtool missing: install Debian's 'prometheus' package "
                          "(scripts/install-deps.sh)")
    for t in ("qemu-io",):
        if not shutil.which(t):
            raise TestFailure("required tool missing: " + t)
    ck = cl.Checks()
    c = cl.Cluster(tools, tmp, servers=3, size="1G", client_set=["stats_ms=500"])
    box.append(c)
    c.up()
    c.wait_health_ok(60)
    host = socket.gethostname()

    # 1. auth
    s, _, body = c.api_raw("/metrics", token=False)
    ck.check(s == 401, "/metrics without a token: %d" % s)
    s, _, body = c.api_raw("/metrics", token="w" * 64)
    ck.check(s == 401, "/metrics with a wrong token: %d" % s)
    s, _, body = c.api_raw("/v1/cluster/status", token=False)
    ck.check(s == 401 and b"X-Auth-Token" in body, "REST without a token: %d %s" % (s, body[:100]))
    s, ctype, body = c.api_raw("/metrics", headers={"Authorization": "Bearer " + c.token},
                               token=False)
    ck.check(s == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8",
             "/metrics with Authorization: Bearer: %d, %s" % (s, ctype))
    text = body.decode()

    # 2. promtool
    promtool_check(ck, promtool, text, os.path.join(tmp, "metrics.0.txt"), "the idle cluster")

    # 3. cluster gauges vs REST
    m = parse(text)
    st = c.status()
    servers = c.servers()
    ck.check(sample(m, "keel_cluster_epoch") == st["epoch"],
             "keel_cluster_epoch %s = status epoch %d" % (sample(m, "keel_cluster_epoch"),
                                                          st["epoch"]))
    ck.check(sample(m, "keel_cluster_health") == 0, "keel_cluster_health 0 (HEALTH_OK)")
    ck.check(sample(m, "keel_pgs", state="active") == st["pgs"]["total"] > 0,
             "keel_pgs{state=active} = %d PGs" % st["pgs"]["total"])
    for sv in servers:
        lab = {"server": str(sv["id"]), "addr": sv["addr"], "host": sv["host"]}
        ck.check(sample(m, "keel_server_up", **lab) == 1 and
                 sample(m, "keel_server_in", **lab) == 1 and
                 sample(m, "keel_server_capacity_bytes", **lab) == sv["capacity_bytes"] > 0 and
                 sample(m, "keel_server_used_bytes", **lab) == sv["used_bytes"],
                 "server %d (%s): up, in, capacity %d, used %d" %
                 (sv["id"], sv["host"], sv["capacity_bytes"], sv["used_bytes"]))
    ck.check(sample(m, "keel_servers") == 3, "keel_servers 3")

    # 4. I/O through keel-client
    c.create_volume("mv1", "256M")
    m = parse(metrics(c)[1])
    ck.check(sample(m, "keel_volume_size_bytes", volume="mv1") == 256 * MIB and
             sample(m, "keel_volumes") == 1 and
             sample(m, "keel_volumes_provisioned_bytes") == 256 * MIB,
             "keel_volumes 1, keel_volume_size_bytes{volume=mv1} 256 MiB")
    a = cl.json.loads(c.keelctl("-f", "json", "volume", "attach", "mv1", "--nbd"))
    uri = a["nbd_uri"]
    lab = {"volume": "mv1", "host": host}
    last = {}
    for rnd in range(2):
        p = subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 8M",
                            "-c", "read -P 0x5a 0 8M", "-c", "flush", uri],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=120)
        if p.returncode != 0 or "error" in p.stdout.lower():
            raise TestFailure("qemu-io on %s:\n%s" % (uri, p.stdout[-2000:]))
        want_bytes = 8 * MIB * (rnd + 1)
        t0 = time.monotonic()
        while True:
            ctype, text = metrics(c)
            m = parse(text)
            wb = sample(m, "keel_volume_write_bytes_total", **lab) or 0
            rb = sample(m, "keel_volume_read_bytes_total", **lab) or 0
            if (wb >= want_bytes and rb >= want_bytes) or time.monotonic() - t0 > 15:
                break
            time.sleep(0.2)
        log("after round %d (%.1f s): %s" % (rnd, time.monotonic() - t0, " ".join(
            "%s=%s" % (k[0], v) for k, v in sorted(m.items()) if dict(k[1]) == lab)))
        cur = {n: sample(m, n, **lab) for n in (
            "keel_volume_read_ops_total", "keel_volume_read_bytes_total",
            "keel_volume_read_time_seconds_total", "keel_volume_write_ops_total",
            "keel_volume_write_bytes_total", "keel_volume_write_time_seconds_total",
            "keel_volume_flush_ops_total")}
        ck.check(all(v is not None for v in cur.values()),
                 "round %d: every I/O series of {volume=mv1, host=%s} present" % (rnd, host))
        if any(v is None for v in cur.values()):
            break
        ck.check(cur["keel_volume_write_bytes_total"] >= want_bytes and
                 cur["keel_volume_read_bytes_total"] >= want_bytes,
                 "round %d: written %d, read %d bytes (qemu-io: %d each so far)" %
                 (rnd, cur["keel_volume_write_bytes_total"],
                  cur["keel_volume_read_bytes_total"], want_bytes))
        ck.check(cur["keel_volume_write_ops_total"] > 0 and cur["keel_volume_read_ops_total"] > 0
                 and cur["keel_volume_flush_ops_total"] >= rnd + 1,
                 "round %d: ops counted (%d reads, %d writes, %d flushes)" %
                 (rnd, cur["keel_volume_read_ops_total"], cur["keel_volume_write_ops_total"],
                  cur["keel_volume_flush_ops_total"]))
        ck.check(cur["keel_volume_read_time_seconds_total"] > 0 and
                 cur["keel_volume_write_time_seconds_total"] > 0,
                 "round %d: latency sums moved (read %.6f s, write %.6f s)" %
                 (rnd, cur["keel_volume_read_time_seconds_total"],
                  cur["keel_volume_write_time_seconds_total"]))
        if last:
            ck.check(all(cur[k] >= last[k] for k in cur) and
                     cur["keel_volume_write_bytes_total"] > last["keel_volume_write_bytes_total"],
                     "counters only grow between rounds")
        last = cur
        promtool_check(ck, promtool, text, os.path.join(tmp, "metrics.%d.txt" % (rnd + 1)),
                       "the document after I/O round %d" % rnd)
    ck.check(sample(m, "keel_attachments", state="attached") == 1, "keel_attachments attached 1")

    # 5. detach
    c.keelctl("volume", "detach", "mv1")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 10:
        text = metrics(c)[1]
        if 'volume="mv1",host=' not in text:
            break
        time.sleep(0.2)
    ck.check('volume="mv1",host=' not in text, "detached: the volume's I/O series are gone")
    with open(c.log_path("client")) as f:
        ck.check("does not take I/O counters" not in f.read(),
                 "keel-client never saw its counters refused")
    ck.done()


if __name__ == "__main__":
    cl.main(test)
