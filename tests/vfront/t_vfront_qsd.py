# SPDX-License-Identifier: Apache-2.0
"""vfront_qsd: keel-vfront against the reference backend, qemu-storage-daemon.

Validates the test frontend itself: info (features, config space), verify
(two runs: 2 queues, 4 KiB and EVENT_IDX, then 16 KiB with one memory
region and indirect descriptors; after each, the image file must hold exactly the
final contents verify reported), a 2 s randrw bench with sane JSON, and
qemu-storage-daemon alive throughout and stopping cleanly.

usage: /usr/bin/python3 tests/vfront/t_vfront_qsd.py BUILD_DIR
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vflib  # noqa: E402

SIZE = 128 << 20


def main():
    if len(sys.argv) != 2:
        vflib.fail("usage: t_vfront_qsd.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    with vflib.TempDir("keel-vfront-qsd-") as tmp:
        image = os.path.join(tmp, "disk.img")
        sock = os.path.join(tmp, "vhost.sock")
        with open(image, "wb") as f:
            f.truncate(SIZE)
        qsd = vflib.start_qsd(tmp, image, sock)
        try:
            vflib.run_data_checks(build, qsd, sock, image, SIZE)
        finally:
            rc = qsd.stop()
        if rc != 0:
            vflib.fail("qemu-storage-daemon exited %d:\n%s" % (rc, qsd.output()))
    vflib.log("PASS")


if __name__ == "__main__":
    main()
