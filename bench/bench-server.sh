#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# bench-server.sh: raw drive (fio, io_uring, O_DIRECT) vs keel-server +
# keel-bench on a second file of the same size on the same filesystem, 4 KiB
# random writes and reads at QD1 and QD32, in one run. Prints a Markdown table.
#
# This VM's disk has a volatile write cache, so a durable write costs a
# flush. keel-server acknowledges a write only when durable:
#   - keel flush_mode=always is compared with raw+flush (fio --fdatasync=1),
#   - keel flush_mode=none  is compared with raw (no flush: not durable on a
#     drive with a volatile cache; the fair "no flush" reference).
# Reads are compared with raw reads.
#
# Usage: bench/bench-server.sh [--runtime SECONDS] [--size SIZE] [--out FILE] [--poll-us N]
#                              [--dir DIR] [--cpus LIST] [--repeat N]
# --cpus LIST runs everything (fio, keel-server, keel-bench) under taskset -c
# LIST, e.g. the CPU that takes the disk's interrupts (/proc/interrupts):
# see docs/benchmarks.md on why placement matters on a VM.
# --repeat N measures every reference/keel pair N times (each keel case
# still right after its reference) and prints, per row, the median pair
# (QD1 rows by latency difference, QD32 rows by IOPS ratio) and the range
# over the N pairs.
# Binaries come only from $BUILD (default ./build): $BUILD/server/keel-server
# and $BUILD/bench/keel-bench. fio and /usr/bin/python3 from the system.
set -euo pipefail

RUNTIME=15
POLL_US=0
SIZE=2G
OUT=
CPUS=
DIR=
REPEAT=1
BUILD=${BUILD:-./build}

usage() {
	sed -n '3,25p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--runtime) RUNTIME=$2; shift 2 ;;
	--poll-us) POLL_US=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--cpus) CPUS=$2; shift 2 ;;
	--repeat) REPEAT=$2; shift 2 ;;
	-h|--help) usage 0 ;;
	*) echo "bench-server.sh: unknown option $1" >&2; usage 2 ;;
	esac
done

SERVER=$BUILD/server/keel-server
BENCH=$BUILD/bench/keel-bench
PY=/usr/bin/python3
for b in "$SERVER" "$BENCH"; do
	[ -x "$b" ] || { echo "bench-server.sh: $b not built (BUILD=$BUILD)" >&2; exit 2; }
done
command -v fio >/dev/null || { echo "bench-server.sh: fio not installed" >&2; exit 2; }
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "bench-server.sh: --repeat needs a count >= 1" >&2; exit 2; }

. "$(dirname "$0")/lib.sh"
[ -z "$CPUS" ] || pin_cpus "$CPUS" bench-server.sh
BYTES=$(to_bytes "$SIZE")
# keel's data area is the drive minus journal and metadata: use 3/4 of the
# drive as the span for both, rounded to 4 MiB objects.
SPAN=$(((BYTES * 3 / 4) / (4 << 20) * (4 << 20)))

MADE_DIR=
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d "${PWD}/keel-bench.XXXXXX")
	MADE_DIR=$DIR
fi
mkdir -p "$DIR"
RAW=$DIR/raw.img
DRV=$DIR/keel.img
KEY=$DIR/bench.key
LOG=$DIR/server.log
SRV_PID=

cleanup() {
	if [ -n "$SRV_PID" ] && kill -0 "$SRV_PID" 2>/dev/null; then
		kill -TERM "$SRV_PID"
		wait "$SRV_PID" || true
	fi
	rm -f "$RAW" "$DRV" "$KEY" "$LOG"
	[ -z "$MADE_DIR" ] || rmdir "$MADE_DIR" 2>/dev/null || true
}
trap cleanup EXIT

start_server() {
	"$SERVER" run --device "$DRV" --key "$KEY" --listen 127.0.0.1:0 \
		--set "server.flush_mode=$1" --set "server.poll_us=$POLL_US" >>"$LOG" 2>&1 &
	SRV_PID=$!
	for _ in $(seq 100); do
		ADDR=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$LOG" | tail -1 | cut -d' ' -f3) || true
		[ -n "$ADDR" ] && grep -q "flush mode $1" "$LOG" && return 0
		kill -0 "$SRV_PID" 2>/dev/null || { cat "$LOG" >&2; exit 1; }
		sleep 0.1
	done
	echo "bench-server.sh: keel-server did not start" >&2
	exit 1
}

stop_server() {
	kill -TERM "$SRV_PID"
	wait "$SRV_PID"
	SRV_PID=
	: >"$LOG"
}

# keel-bench: prints "iops mean_us p99_us".
keel_bench() {
	local rw=$1 qd=$2
	"$BENCH" --server "$ADDR" --key "$KEY" --rw "$rw" --bs 4k --iodepth "$qd" --poll-us "$POLL_US" \
		--size "$SPAN" --runtime "$RUNTIME" --json | bench_summary
}

prefill "$RAW" "$BYTES"
prefill "$DRV" "$BYTES"
"$SERVER" keygen "$KEY" >/dev/null
"$SERVER" format --device "$DRV" --force >/dev/null

declare -A R
# Each keel case runs right after its raw reference (fio on the other file
# while keel-server idles), so a change in machine load between the two
# halves of the run cannot skew a ratio.
start_server always
echo "keel: filling the span so reads hit stored data" >&2
"$BENCH" --server "$ADDR" --key "$KEY" --rw write --bs 1M --iodepth 8 \
	--size "$SPAN" --ios $((SPAN >> 20)) --json >/dev/null
for n in $(seq "$REPEAT"); do
	for qd in 1 32; do
		measure_pair randwrite "$qd" "$n" rawf_w keelf_w --fdatasync=1
		measure_pair randread "$qd" "$n" raw_r keel_r
	done
done
stop_server
start_server none
for n in $(seq "$REPEAT"); do
	for qd in 1 32; do
		measure_pair randwrite "$qd" "$n" raw_w keel_w
	done
done
stop_server

{
	echo "## keel-server vs raw drive ($(date -u +%Y-%m-%dT%H:%MZ), 4 KiB, ${RUNTIME}s per case, span $((SPAN >> 20)) MiB, poll_us=$POLL_US${CPUS:+, all on CPUs $CPUS})"
	echo
	echo "Raw: fio ioengine=io_uring direct=1 on a prefilled file. raw+flush: the same with"
	echo "fdatasync after every write (durable, like keel's acks on this volatile-cache disk);"
	echo "its latency is write + fdatasync (p99: sum of the two p99s, an upper bound)."
	echo "Latency in µs: mean / p99."
	[ "$REPEAT" = 1 ] || repeat_note "latency difference"
	echo
	echo "| case | keel vs reference | ref IOPS | keel IOPS | IOPS ratio | ref mean / p99 | keel mean / p99 | keel - ref mean latency |$(repeat_col head)"
	echo "|---|---|---:|---:|---:|---:|---:|---:|$(repeat_col rule)"
	for qd in 1 32; do
		repeat_row "randwrite QD$qd, keel flush_mode=always" "raw+flush (fdatasync=1)" rawf_w keelf_w "$qd" "" lat
		repeat_row "randwrite QD$qd, keel flush_mode=none" "raw (no flush)" raw_w keel_w "$qd" "" lat
		repeat_row "randread QD$qd" "raw" raw_r keel_r "$qd" "" lat
	done
} | tee ${OUT:+"$OUT"}
