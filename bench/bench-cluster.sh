#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# bench-cluster.sh: a 3-replica Keel cluster on this machine (keel-mgmt + N
# keel-servers on drive files, libkeel through keel-bench --volume) vs fio
# on a raw file on the same file system, 4 KiB random write and read at QD1
# and QD32, and 4 KiB sequential writes at QD32, in one run. Prints a
# Markdown table with the ratios.
#
# All servers share one disk and the machine's cores, so a 3-replica write
# costs three journal writes, three applies and the CPU of three servers
# plus the client: the targets are ratios against one raw file, not against
# three disks. flush_mode is the servers' (default none: compared with raw
# fio without flushes; with always, writes are compared with fio
# --fdatasync=1).
#
# Usage: bench/bench-cluster.sh [--runtime SECONDS] [--size SIZE] [--servers N]
#                               [--flush-mode none|always] [--out FILE] [--dir DIR]
#                               [--port-base PORT] [--transport tcp|rdma --ip ADDR]
#                               [--cpus LIST] [--repeat N]
#
# --cpus LIST runs everything (fio, keel-mgmt, the servers, keel-bench) under
# taskset -c LIST. On a VM whose idle vCPUs halt, "--cpus N" with N the CPU
# of the disk's interrupt takes the vCPU wakeups out of QD1 latency, and
# leaves QD32 one vCPU: see docs/benchmarks.md, "Placement".
# --repeat N measures every reference/keel pair N times (each keel case
# still right after its reference) and prints, per row, the median pair
# (QD1 rows by latency ratio, QD32 rows by IOPS ratio) and the ranges over
# the N.
# --transport rdma runs the servers with server.transport=rdma and keel-bench
# with --transport rdma; it needs an RDMA device and --ip, an address of its
# netdev (rdma_cm cannot use 127.0.0.1), see docs/rdma.md.
# Binaries come from $BUILD (default ./build).
set -euo pipefail

RUNTIME=15
SIZE=2G
SERVERS=3
FLUSH=none
OUT=
DIR=
PORT_BASE=9400
TRANSPORT=tcp
IP=
CPUS=
REPEAT=1
BUILD=${BUILD:-./build}
BUILD=$(cd "$BUILD" && pwd)
TOP=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
. "$TOP/bench/lib.sh"

usage() {
	sed -n '3,33p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--runtime) RUNTIME=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--servers) SERVERS=$2; shift 2 ;;
	--flush-mode) FLUSH=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--port-base) PORT_BASE=$2; shift 2 ;;
	--transport) TRANSPORT=$2; shift 2 ;;
	--ip) IP=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	--repeat) REPEAT=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	*) echo "bench-cluster.sh: unknown option $1" >&2; usage 2 ;;
	esac
done
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench-cluster.sh: --repeat needs a count >= 1" >&2; exit 2; }
case "$FLUSH" in
none|always) ;;
*) echo "bench-cluster.sh: --flush-mode is none or always" >&2; exit 2 ;;
esac

case "$TRANSPORT" in
tcp) ;;
rdma) [ -n "$IP" ] || { echo "bench-cluster.sh: --transport rdma needs --ip" >&2; exit 2; } ;;
*) echo "bench-cluster.sh: --transport is tcp or rdma" >&2; exit 2 ;;
esac
LC=$TOP/deploy/local-cluster.sh
SERVER=$BUILD/server/keel-server
BENCH=$BUILD/bench/keel-bench
KEELCTL=$BUILD/mgmt/keelctl
for b in "$SERVER" "$BENCH" "$KEELCTL"; do
	[ -x "$b" ] || { echo "bench-cluster.sh: $b not built (BUILD=$BUILD)" >&2; exit 2; }
done
command -v fio >/dev/null || { echo "bench-cluster.sh: fio not installed" >&2; exit 2; }
[ -z "$CPUS" ] || pin_cpus "$CPUS" bench-cluster.sh

BYTES=$(to_bytes "$SIZE")
# The volume spans half a drive (every server holds a copy of everything
# with 3 servers and 3 replicas; the rest is journal, metadata and slack).
SPAN=$(((BYTES / 2) / (4 << 20) * (4 << 20)))

MADE_DIR=
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d "${PWD}/keel-bench-cluster.XXXXXX")
	MADE_DIR=$DIR
fi
mkdir -p "$DIR"
RAW=$DIR/raw.img

cleanup() {
	"$LC" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true
	rm -f "$RAW" "$DIR"/drive* 2>/dev/null || true
	[ -z "$MADE_DIR" ] || rm -rf "$MADE_DIR"
}
trap cleanup EXIT

prefill "$RAW" "$BYTES"
for i in $(seq 1 "$SERVERS"); do
	prefill "$DIR/drive$i" "$BYTES"
	"$SERVER" format --device "$DIR/drive$i" --force >/dev/null
done
URL=$("$LC" up --dir "$DIR" --servers "$SERVERS" --build "$BUILD" --port-base "$PORT_BASE" \
	--server-set "flush_mode=$FLUSH" --server-set "transport=$TRANSPORT" \
	--client-set "transport=$TRANSPORT" ${IP:+--ip "$IP"} |
	tail -1)
export KEEL_TRANSPORT=$TRANSPORT
export KEEL_MGMT_URL=$URL KEEL_KEY_FILE=$DIR/keel.key KEEL_TOKEN_FILE=$DIR/api.token
"$KEELCTL" volume create bench --size "$SPAN" >/dev/null

# keel-bench on the volume; CPU = the servers' (from /proc) + keel-bench's own.
keel_bench() {
	local rw=$1 qd=$2 t0 t1 out
	out=$DIR/bench.json
	t0=$(cpu_ticks "$DIR"/server*.pid)
	"$BENCH" --volume bench --rw "$rw" --bs 4k --iodepth "$qd" --runtime "$RUNTIME" \
		--json >"$out" 2>/dev/null
	t1=$(cpu_ticks "$DIR"/server*.pid)
	bench_summary "$($PY -c 'import sys; print((int(sys.argv[2]) - int(sys.argv[1])) / int(sys.argv[3]))' \
		"$t0" "$t1" "$(getconf CLK_TCK)")" <"$out"
}

echo "keel: filling the volume so reads hit stored data" >&2
"$BENCH" --volume bench --rw write --bs 1M --iodepth 8 --ios $((SPAN >> 20)) --json \
	>/dev/null 2>&1

declare -A R
wref=
[ "$FLUSH" = always ] && wref=--fdatasync=1
# Each keel case right after its raw reference: a load change between the
# two cannot skew a ratio.
for n in $(seq "$REPEAT"); do
	for qd in 1 32; do
		measure_pair randwrite "$qd" "$n" raw_w keel_w "$wref"
		measure_pair randread "$qd" "$n" raw_r keel_r
	done
	# Not an issue target: sequential 4 KiB writes at QD32 queue behind each
	# other on one object, the case write coalescing (docs/cluster.md) is for.
	measure_pair write 32 "$n" raw_sw keel_sw "$wref"
done

{
	echo "## ${SERVERS}-server, 3-replica cluster vs raw file ($(date -u +%Y-%m-%dT%H:%MZ), 4 KiB, ${RUNTIME}s per case, volume $((SPAN >> 20)) MiB, flush_mode=$FLUSH${CPUS:+, all on CPUs $CPUS})"
	echo
	echo "Raw: fio ioengine=io_uring direct=1 on a prefilled file on the same file system"
	[ "$FLUSH" = always ] && echo "(writes with --fdatasync=1, latency = write + fdatasync)."
	echo "Keel: keel-bench --volume through libkeel, every write on 3 servers sharing that disk."
	echo "Latency in µs: mean / p99. CPU: seconds of CPU (user + system) per 100k I/Os:"
	echo "fio's own; keel-bench's plus every keel-server's (mgmt idles)."
	[ "$REPEAT" = 1 ] || repeat_note "latency ratio"
	echo
	echo "| case | reference | ref IOPS | keel IOPS | IOPS ratio | ref mean / p99 | keel mean / p99 | keel - ref mean latency | CPU s / 100k I/Os ref / keel |$(repeat_col head)"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|$(repeat_col rule)"
	for qd in 1 32; do
		repeat_row "randwrite QD$qd" "raw${wref:+ +fdatasync}" raw_w keel_w "$qd" cpu latx
		repeat_row "randread QD$qd" "raw" raw_r keel_r "$qd" cpu latx
	done
	repeat_row "write QD32 (sequential)" "raw${wref:+ +fdatasync}" raw_sw keel_sw 32 cpu latx
} | tee ${OUT:+"$OUT"}
