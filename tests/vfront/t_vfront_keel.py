# SPDX-License-Identifier: Apache-2.0
"""vfront_keel: keel-export's vhost-user-blk backend under keel-vfront.

The same checks as vfront_qsd (info, two verify runs checked against the
image file, a 2 s randrw bench), then the whole malicious-guest corpus
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
            run_corpus(build, backend, sock)
        finally:
            rc = backend.stop()
        out = backend.output()
        if rc != 0:
            vflib.fail("keel-export exited %d:\n%s" % (rc, out))
        m = re.search(r"bad_requests (\d+) .*protocol_errors (\d+)", out)
        if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            vflib.fail("keel-export counters do not show the corpus:\n%s" % out)
        vflib.log("keel-export: bad_requests %s, protocol_errors %s" % m.groups())
    vflib.log("PASS")


if __name__ == "__main__":
    main()
