#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""t_guest_keel.py BUILD_DIR [--backend keel-export|qsd|keel-client]: the guest checks
against Keel's vhost-user-blk export.

Backend keel-export (default): BUILD_DIR/tests/keel-export serves a local
file as vhost-user-blk and NBD. Checks (guestlib):
  1. write-verify: a real guest writes a seeded pattern; its sha256 equals
     the host's, the NBD read-back's and the backing file's;
  2. read-check: a second guest reads the same data back;
  3. fio randwrite + verify=crc32c;
  4. faults while fio-verify runs: each backend lists its own (below). For
     keel-export: SIGKILL the export process and start it again while the
     guest keeps its disk (QEMU's chardev reconnect=1); the guest must end
     without an I/O error or a verify mismatch, and the pattern of step 1
     (fio writes after it) is still there (NBD);
  5. the backend stops cleanly on SIGTERM (exit 0; keel-export: its
     counters show no bad request, I/O or protocol error);
  6. multi-queue: the backend restarted with 2 queues, a 2-vCPU guest with
     num-queues=2 runs a verified fio job per CPU (both queues busy), and
     the pattern of step 1 is still intact.
Backend qsd runs the same checks against qemu-storage-daemon (the harness
proved on the reference). Backend keel-client: the product path, a
3-replica volume of a local cluster attached to this host through keelctl
and served by keel-client; its faults are a SIGKILL of keel-server 2 (back
5 s later) and a SIGKILL + restart of keel-client under the running guest.

To add a backend (e.g. keel-client in front of a 3-replica cluster): write
a make_* function returning (Backend, image path or None, faults, cleanup)
where faults is [(name, [(seconds, callable)], reconnect, min_stall_ms)],
e.g. ("SIGKILL one keel-server", [(5, cluster.kill_server)], False, None)
and ("keel-client killed and restarted", [(5, be.restart)], True, 500):
min_stall_ms asserts that the guest had I/O waiting through the outage.
Environment: KEEL_GUEST_MIB (64), KEEL_GUEST_FIO_S (10),
KEEL_GUEST_FAULT_FIO_S (20), KEEL_GUEST_FAULT_AT (5), KEEL_KEEP_TMP=1.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as g  # noqa: E402

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MIB = int(os.environ.get("KEEL_GUEST_MIB", "64"))
FIO_S = int(os.environ.get("KEEL_GUEST_FIO_S", "10"))
FAULT_FIO_S = int(os.environ.get("KEEL_GUEST_FAULT_FIO_S", "20"))
FAULT_AT = float(os.environ.get("KEEL_GUEST_FAULT_AT", "5"))
SIZE_MIB = 256


def new_image(tmp):
    image = os.path.join(tmp, "disk.img")
    with open(image, "wb") as f:
        f.truncate(SIZE_MIB * g.MIB)
    return image


def make_keel_export(build_dir, tmp):
    image = new_image(tmp)
    be = g.Backend(g.keel_export_backend(build_dir, image, "%dM" % SIZE_MIB), tmp,
                   name="keel-export")
    faults = [("keel-export SIGKILLed and restarted (reconnect=1)",
               [(FAULT_AT, be.restart)], True, 500)]
    return be, image, faults, None


def make_qsd(build_dir, tmp):
    image = new_image(tmp)
    be = g.Backend(g.qsd_backend(image), tmp, name="qsd")
    faults = [("qemu-storage-daemon SIGKILLed and restarted (reconnect=1)",
               [(FAULT_AT, be.restart)], True, 500)]
    return be, image, faults, None


class _ClientPid:
    """Popen-like view of the keel-client that local-cluster.sh runs."""

    def __init__(self, cluster):
        self.cluster = cluster

    def poll(self):
        try:
            os.kill(self.cluster.pid("client"), 0)
            return None
        except Exception:  # local-cluster.sh: not running
            return 1


class KeelClientBackend:
    """keel-client as the backend, the way an operator runs it: local-cluster.sh
    starts it for this host, the volume is attached with `keelctl volume attach
    --nbd`, and its sockets are the ones the attachment reports. start/stop/
    restart go through local-cluster.sh start-client / stop-client."""

    name = "keel-client"

    def __init__(self, cluster, volume):
        import json
        self.cluster = cluster
        self.num_queues = 1  # keel-client offers 4; QEMU asks for num_queues
        self.starts = 1
        att = json.loads(cluster.keelctl("-f", "json", "volume", "attach", volume, "--nbd"))
        self.vhost_sock = att["vhost_socket"]
        self.nbd_uri = att["nbd_uri"]
        self.nbd_sock = self.nbd_uri.split("socket=", 1)[1]
        self.proc = _ClientPid(cluster)

    def _wait_sockets(self, wait=20.0):
        end = time.monotonic() + wait
        while time.monotonic() < end:
            if os.path.exists(self.vhost_sock) and os.path.exists(self.nbd_sock):
                return
            time.sleep(0.05)
        raise g.GuestError("keel-client: sockets not back after %.0f s; log:\n%s"
                           % (wait, self.log_text()))

    def start(self, wait=20.0):
        if self.proc.poll() is not None:
            self.cluster.lc("start-client")
            self.starts += 1
        self._wait_sockets(wait)

    def log_text(self, n=40):
        try:
            with open(self.cluster.log_path("client"), errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def kill(self, sig=None):
        if self.proc.poll() is None:
            self.cluster.lc("stop-client", "--signal", "KILL" if sig is None else sig.name[3:])

    def stop(self):
        """SIGTERM; 0 when keel-client logged its clean stop."""
        import signal
        self.kill(signal.SIGTERM)
        return 0 if self.log_text(3).rstrip().endswith("info: stopped") else 1

    def restart(self, down_s=1.0):
        """The fault: SIGKILL keel-client, wait, start it again."""
        self.cluster.lc("stop-client", "--signal", "KILL")
        time.sleep(down_s)
        self.start()


def make_keel_client(build_dir, tmp):
    """keel-client in front of a 3-replica local cluster (tests/cluster_ft's
    clusterlib, local-cluster.sh). Faults: SIGKILL keel-server 2 mid-run
    (started again 5 s later; the guest needs no reconnect: libkeel rides it
    out), and SIGKILL + restart of keel-client itself (reconnect=1: the
    guest reconnects to the new process, in-flight requests are
    resubmitted)."""
    sys.path.insert(0, os.path.join(TOP, "tests", "cluster_ft"))
    import clusterlib as cl
    tools = cl.Tools(build_dir)
    cluster = cl.Cluster(tools, tmp, servers=3)
    cluster.up()
    try:
        cluster.create_volume("vol", "%dM" % SIZE_MIB)
        be = KeelClientBackend(cluster, "vol")
    except Exception:
        cluster.down()
        raise

    def kill_server_2():
        cluster.kill(2, "KILL")

    def start_server_2():
        cluster.start(2)

    faults = [("SIGKILL keel-server 2 mid-run (back 5 s later)",
               [(FAULT_AT, kill_server_2), (FAULT_AT + 5, start_server_2)], False, None),
              ("keel-client SIGKILLed and restarted (reconnect=1)",
               [(FAULT_AT, be.restart)], True, 500)]
    return be, None, faults, cluster.down


BACKENDS = {"keel-export": make_keel_export, "qsd": make_qsd,
            "keel-client": make_keel_client}


def export_counters(be):
    """keel-export prints its counters on a clean stop: {"vhost": {...},
    "nbd": {...}} from the log of its latest start ({} for other backends)."""
    out = {}
    for line in be.log_text(n=10).splitlines():
        word = line.split(":", 1)[0]
        if word in ("vhost", "nbd") and line.startswith(word + ": "):
            f = line.split()[1:]
            out[word] = {f[i]: int(f[i + 1]) for i in range(0, len(f) - 1, 2)
                         if f[i + 1].isdigit()}
    return out


def stop_and_check(c, be):
    rc = be.stop()
    c.check(rc == 0, "%s stopped cleanly on SIGTERM (exit %s)" % (be.name, rc))
    if rc != 0:
        g.log("backend log:\n%s" % be.log_text())
    if be.name != "keel-export":
        return
    n = export_counters(be)
    g.log("keel-export counters (start %d): %s" % (be.starts, n))
    v = n.get("vhost", {})
    # After the fault run this is the restarted process: writes here mean
    # the guest reconnected and went on through it.
    c.check(v.get("connections", 0) >= 1 and v.get("writes", 0) > 0,
            "keel-export start %d served the guest (connections %s, writes %s)"
            % (be.starts, v.get("connections"), v.get("writes")))
    c.check(bool(v) and all(v.get(k, 1) == 0 for k in
                            ("bad_requests", "io_errors", "protocol_errors")),
            "keel-export: no bad requests, I/O or protocol errors on vhost (%s)"
            % {k: v.get(k) for k in ("bad_requests", "io_errors", "protocol_errors",
                                     "resubmitted")})


def check_grow(c, vmlinux, initrd, be, tmp, want, timeout=120):
    """Online grow: `keelctl volume resize` under the running guest; the
    guest sees the new capacity (virtio config change) without a reboot and
    uses the space past the old end; new NBD connections see it too."""
    new_mib = SIZE_MIB + 64

    def resize():
        be.cluster.keelctl("volume", "resize", "vol", "%dM" % new_mib)

    run = g.boot_guest(vmlinux, initrd, be.vhost_sock, "grow", timeout,
                       num_queues=be.num_queues, params={"newmib": new_mib},
                       events=[(2, resize)], console_path=os.path.join(tmp, "console-grow.log"))
    g.log("%s (wall %.1f s)" % (run, run.wall_s))
    c.check(run.ok and run.fields.get("mib") == str(new_mib),
            "online grow: the guest saw %d MiB and wrote past the old end" % new_mib)
    c.check(g.nbd_size(be.nbd_uri) == new_mib * g.MIB, "a new NBD connection sees %d MiB"
            % new_mib)
    nbd = g.nbd_sha256(be.nbd_uri, tmp, 0, MIB)
    c.check(nbd == want, "pattern intact (NBD) after the grow")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build_dir")
    ap.add_argument("--backend", choices=sorted(BACKENDS), default="keel-export")
    args = ap.parse_args()
    t_start = time.monotonic()
    c = g.Checks()
    tmp = g.make_tmp("keel-guest-%s." % args.backend)
    be = None
    cleanup = None
    try:
        g.need_tools("qemu-system-x86_64", "qemu-img", "nbdinfo")
        vmlinux, initrd = g.build_image(args.build_dir)
        be, image, faults, cleanup = BACKENDS[args.backend](args.build_dir, tmp)
        be.start()
        want = g.check_write_read_fio(c, vmlinux, initrd, be, tmp, MIB, FIO_S,
                                      image=image, size_mib=SIZE_MIB)
        for i, (what, events, reconnect, min_stall_ms) in enumerate(faults):
            g.check_fio_with_fault(c, vmlinux, initrd, be, tmp, MIB, FAULT_FIO_S,
                                   events, what, reconnect=reconnect,
                                   tag="-fault%d" % i, min_stall_ms=min_stall_ms)
            c.check(be.proc is not None and be.proc.poll() is None,
                    "backend running after: %s" % what)
            # fio wrote MiB [MIB, 2 * MIB); the pattern before it is untouched.
            nbd = g.nbd_sha256(be.nbd_uri, tmp, 0, MIB)
            c.check(nbd == want, "pattern written before the fault intact (NBD) after: %s"
                    % what)
        stop_and_check(c, be)

        # Multi-queue: the backend again with 2 queues, a 2-vCPU guest.
        be.num_queues = 2
        be.start()
        g.check_multiqueue(c, vmlinux, initrd, be, tmp, MIB, FIO_S)
        nbd = g.nbd_sha256(be.nbd_uri, tmp, 0, MIB)
        c.check(nbd == want, "pattern intact (NBD) after the multi-queue run")
        if args.backend == "keel-client":
            check_grow(c, vmlinux, initrd, be, tmp, want)
        stop_and_check(c, be)
    except Exception as e:  # GuestError, clusterlib's TestFailure, a timeout
        c.check(False, "harness: %s: %s" % (type(e).__name__, e))
        if be is not None:
            g.log("backend log:\n%s" % be.log_text())
    finally:
        if be is not None:
            be.kill()
        if cleanup:
            cleanup()
    g.log("total %.1f s" % (time.monotonic() - t_start))
    return c.finish(tmp)


sys.exit(main())
