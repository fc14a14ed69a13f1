# SPDX-License-Identifier: Apache-2.0
"""vfront_keel: keel-export's vhost-user-blk backend under keel-vfront.

The same checks as vfront_qsd (info, two verify runs checked against the
image file, a 2 s randrw bench), a verify run that drops and resumes the
connection with requests in flight every 50 requests (inflight
resubmission), then the whole malicious-guest corpus
(`keel-vfront corpus --pid`): every case must end in one of its accepted
outcomes with the backend alive, still serving good I/O and the canary
intact. keel-export must then stop cleanly on SIGTERM, with the corpus
visible in its counters (protocol errors and bad requests).

usage: /usr/bin/python3 tests/vfront/t_vfront_keel.py BUILD_DIR
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vflib  # noqa: E402

SIZE = 128 << 20


def run_reconnect(build, backend, sock, image):
    """Drop the connection with requests in flight every 50 requests and
    resume it through the inflight region: every request completes once,
    the data stay right (the image check), nothing is replayed later."""
    res = vflib.vfront(build, ["verify", "--socket", sock, "--json", "--queues", "2",
                               "--iodepth", "16", "--count", "3000", "--seed", "13",
                               "--reconnect", "50"])
    if not res["ok"] or res["reconnects"] < 10:
        vflib.fail("verify --reconnect: %s" % res)
    backend.check_alive()
    vflib.check_image(image, SIZE, res)
    vflib.log("reconnect: %d reconnects with requests in flight" % res["reconnects"])


def run_corpus(build, backend, sock):
    res = vflib.vfront(build, ["corpus", "--socket", sock, "--pid", str(backend.proc.pid),
                               "--timeout", "3000", "--json"], timeout=900, expect_rc=None)
    failed = [c for c in res["cases"] if not c["pass"]]
    vflib.log("corpus: %d cases run, %d failed, %d skipped"
              % (res["ran"], res["failed"], res["skipped"]))
    for c in failed:
        vflib.log("  FAIL %s: %s %s" % (c["name"], c["outcome"], c["note"]))
    backend.check_alive()
    if failed or not res["ok"] or res["ran"] == 0:
        vflib.fail("%d corpus cases failed" % len(failed))


def main():
    if len(sys.argv) != 2:
        vflib.fail("usage: t_vfront_keel.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    with vflib.TempDir("keel-vfront-keel-") as tmp:
        image = os.path.join(tmp, "disk.img")
        sock = os.path.join(tmp, "vhost.sock")
        backend = vflib.start_keel_export(build, tmp, image, SIZE, sock)
        try:
            vflib.run_data_checks(build, backend, sock, image, SIZE)
            run_reconnect(build, backend, sock, image)
            run_corpus(build, backend, sock)
        finally:
            rc = backend.stop()
        out = backend.output()
        if rc != 0:
            vflib.fail("keel-export exited %d:\n%s" % (rc, out))
        m = re.search(r"bad_requests (\d+) .*protocol_errors (\d+) resubmitted (\d+)", out)
        if not m or 0 in (int(m.group(1)), int(m.group(2)), int(m.group(3))):
            vflib.fail("keel-export counters do not show the corpus and the "
                       "resubmissions:\n%s" % out)
        vflib.log("keel-export: bad_requests %s, protocol_errors %s, resubmitted %s"
                  % m.groups())
    vflib.log("PASS")


if __name__ == "__main__":
    main()
