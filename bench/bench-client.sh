#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# bench-client.sh: keel-client's exports vs qemu-storage-daemon, in one run.
#
#   vhost-user-blk: the test frontend (tests/vfront, keel-vfront bench) on
#     keel-client's socket for a 3-replica volume, and on qemu-storage-daemon
#     exporting a local file (O_DIRECT, io_uring; no network, no replication);
#   NBD: fio's nbd engine on keel-client's NBD export and on
#     qemu-storage-daemon's NBD export of the same local file.
#
# 4 KiB random write and read at QD1 and QD32; each keel case right after
# its reference. Prints a Markdown table with the ratios. Issue targets:
# keel QD1 read latency at most 1.5x qemu-storage-daemon's, QD1 write at
# most 2.5x, QD32 read IOPS at least 50 %.
#
# Usage: bench/bench-client.sh [--runtime SECONDS] [--size SIZE] [--out FILE]
#                              [--dir DIR] [--port-base PORT] [--cpus LIST]
# --cpus LIST runs everything (qemu-storage-daemon, fio, keel-mgmt, the
# servers, keel-client, keel-vfront) under taskset -c LIST (see
# bench-cluster.sh --help and docs/benchmarks.md, "Placement").
# Binaries come from $BUILD (default ./build).
set -euo pipefail

RUNTIME=10
SIZE=2G
OUT=
DIR=
PORT_BASE=9500
CPUS=
BUILD=${BUILD:-./build}
BUILD=$(cd "$BUILD" && pwd)
TOP=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
. "$TOP/bench/lib.sh"

usage() {
	sed -n '3,22p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--runtime) RUNTIME=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--port-base) PORT_BASE=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	*) echo "bench-client.sh: unknown option $1" >&2; usage 2 ;;
	esac
done

LC=$TOP/deploy/local-cluster.sh
SERVER=$BUILD/server/keel-server
KEELCTL=$BUILD/mgmt/keelctl
VFRONT=$BUILD/tests/keel-vfront
for b in "$SERVER" "$KEELCTL" "$VFRONT" "$BUILD/client/keel-client"; do
	[ -x "$b" ] || { echo "bench-client.sh: $b not built (BUILD=$BUILD)" >&2; exit 2; }
done
for t in fio qemu-storage-daemon; do
	command -v "$t" >/dev/null || { echo "bench-client.sh: $t not installed" >&2; exit 2; }
done

[ -z "$CPUS" ] || pin_cpus "$CPUS" bench-client.sh
BYTES=$(to_bytes "$SIZE")
SPAN=$(((BYTES / 2) / (4 << 20) * (4 << 20)))

MADE_DIR=
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d "${PWD}/keel-bench-client.XXXXXX")
	MADE_DIR=$DIR
fi
mkdir -p "$DIR"
REF=$DIR/ref.img
QSD_PID=

cleanup() {
	[ -z "$QSD_PID" ] || kill "$QSD_PID" 2>/dev/null || true
	"$LC" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true
	rm -f "$REF" "$DIR"/drive* 2>/dev/null || true
	[ -z "$MADE_DIR" ] || rm -rf "$MADE_DIR"
}
trap cleanup EXIT

wait_sock() {
	local i
	for i in $(seq 200); do
		[ -S "$1" ] && return 0
		sleep 0.05
	done
	echo "bench-client.sh: no socket $1" >&2
	return 1
}

# Reference: qemu-storage-daemon on a prefilled local file, O_DIRECT through
# io_uring, exported as vhost-user-blk and as NBD.
prefill "$REF" "$SPAN"
qemu-storage-daemon \
	--blockdev "driver=file,node-name=file0,filename=$REF,cache.direct=on,aio=io_uring" \
	--export "type=vhost-user-blk,id=vhost0,node-name=file0,addr.type=unix,addr.path=$DIR/ref.vhost,writable=on,num-queues=1" \
	--nbd-server "addr.type=unix,addr.path=$DIR/ref.nbd" \
	--export "type=nbd,id=nbd0,node-name=file0,name=ref,writable=on" \
	>"$DIR/qsd.log" 2>&1 &
QSD_PID=$!
echo "$QSD_PID" >"$DIR/qsd.pid"
wait_sock "$DIR/ref.vhost"
wait_sock "$DIR/ref.nbd"
REF_NBD="nbd+unix:///ref?socket=$DIR/ref.nbd"

# Keel: 3 servers, keel-client, a 3-replica volume attached with NBD.
# flush_mode=none: like qemu-storage-daemon (writeback, no flush per write),
# the servers acknowledge a write once it is in the page cache of the
# drive file, so both sides are compared without device flushes.
keel_bench_volume

# CPU seconds the serving processes (pid files) used while $@ ran, then
# the summary line: "iops mean p99 cpu_s_per_100k_ios" (client + servers).
serve_cpu() {
	local pids=$1 t0 t1
	shift
	t0=$(cpu_ticks $pids)
	"$@"
	t1=$(cpu_ticks $pids)
	$PY -c 'import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3]))' \
		"$t0" "$t1" "$(getconf CLK_TCK)" >"$DIR/cpu"
}

vfront() {
	local sock=$1 rw=$2 qd=$3 pids=$4
	serve_cpu "$pids" "$VFRONT" bench --socket "$sock" --rw "$rw" --bs 4k --iodepth "$qd" \
		--runtime "$RUNTIME" --json >"$DIR/vf.json" 2>"$DIR/vf.err" ||
		{ cat "$DIR/vf.err" >&2; return 1; }
	bench_summary "$(cat "$DIR/cpu")" <"$DIR/vf.json"
}

nbd_fio() {
	local uri=$1 rw=$2 qd=$3 pids=$4 i m p c
	serve_cpu "$pids" fio_job "$rw" "$qd" --ioengine=nbd --uri="$uri" --size="$SPAN" \
		>"$DIR/fio.line"
	read -r i m p c <"$DIR/fio.line"
	$PY -c 'import sys; i,m,p,c,s = sys.argv[1:6]; print("%s %s %s %.2f" % (i, m, p, float(c) + float(s) / max(float(i) * float(sys.argv[6]), 1) * 1e5))' \
		"$i" "$m" "$p" "$c" "$(cat "$DIR/cpu")" "$RUNTIME"
}

KEEL_PIDS="$DIR/client.pid $(echo "$DIR"/server*.pid)"
declare -A R
for qd in 1 32; do
	for rw in randwrite randread; do
		echo "vhost-user $rw QD$qd: qemu-storage-daemon, then keel-client" >&2
		R[vq_${rw}_$qd]=$(vfront "$DIR/ref.vhost" "$rw" "$qd" "$DIR/qsd.pid")
		R[vk_${rw}_$qd]=$(vfront "$KEEL_VHOST" "$rw" "$qd" "$KEEL_PIDS")
		echo "nbd $rw QD$qd: qemu-storage-daemon, then keel-client" >&2
		R[nq_${rw}_$qd]=$(nbd_fio "$REF_NBD" "$rw" "$qd" "$DIR/qsd.pid")
		R[nk_${rw}_$qd]=$(nbd_fio "$KEEL_NBD" "$rw" "$qd" "$KEEL_PIDS")
	done
done

{
	echo "## keel-client (3 replicas) vs qemu-storage-daemon (local file) ($(date -u +%Y-%m-%dT%H:%MZ), 4 KiB, ${RUNTIME}s per case, $((SPAN >> 20)) MiB${CPUS:+, all on CPUs $CPUS})"
	echo
	echo "Reference: qemu-storage-daemon, file blockdev (cache.direct=on, aio=io_uring) on a"
	echo "prefilled file. Keel: keel-client serving a 3-replica volume of 3 keel-servers on"
	echo "the same file system (flush_mode=none: neither side flushes the device per write)."
	echo "vhost-user: tests/vfront's keel-vfront bench (1 queue);"
	echo "NBD: fio --ioengine=nbd. Latency in µs: mean / p99. CPU: seconds per 100k I/Os of"
	echo "the load generator plus the serving processes (qemu-storage-daemon; keel-client"
	echo "and the 3 keel-servers)."
	echo
	echo "| case | reference | ref IOPS | keel IOPS | IOPS ratio | ref mean / p99 | keel mean / p99 | keel - ref mean latency | CPU s / 100k I/Os ref / keel |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
	for qd in 1 32; do
		for rw in randwrite randread; do
			bench_row "vhost-user $rw QD$qd" "qemu-storage-daemon" \
				"${R[vq_${rw}_$qd]}" "${R[vk_${rw}_$qd]}" cpu
			bench_row "NBD $rw QD$qd" "qemu-storage-daemon" \
				"${R[nq_${rw}_$qd]}" "${R[nk_${rw}_$qd]}" cpu
		done
	done
} | tee ${OUT:+"$OUT"}
