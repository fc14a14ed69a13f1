#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# bench-qos.sh: how closely keel-client holds a volume to its QoS limits.
#
#   3 keel-servers and keel-client (deploy/local-cluster.sh), a 3-replica
#   volume attached with --nbd and filled; for each limit the volume gets it
#   (keelctl volume qos), keel-client applies it (its log says so), then:
#     NBD: fio's nbd engine, random reads, QD16 (1 s ramp not counted);
#     vhost-user: the test frontend (tests/vfront, keel-vfront bench,
#       1 queue), random reads, QD16 (its first 100 ms burst counted);
#   IOPS limits 500, 2000, 8000 with 4 KiB reads and bandwidth limits 10 and
#   50 MiB/s with 64 KiB reads, plus the same loads without a limit (what
#   the cluster does here when nothing holds it back: a limit above that
#   cannot be reached). Prints a Markdown table with measured / limit.
#
# Usage: bench/bench-qos.sh [--runtime SECONDS] [--size SIZE] [--out FILE]
#                           [--dir DIR] [--port-base PORT] [--no-vhost]
# Binaries come from $BUILD (default ./build).
set -euo pipefail

RUNTIME=10
SIZE=1G
OUT=
DIR=
PORT_BASE=9600
VHOST=1
BUILD=${BUILD:-./build}
BUILD=$(cd "$BUILD" && pwd)
TOP=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
. "$TOP/bench/lib.sh"

usage() {
	sed -n '3,20p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--runtime) RUNTIME=$2; shift 2 ;;
	--size) SIZE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--port-base) PORT_BASE=$2; shift 2 ;;
	--no-vhost) VHOST=; shift ;;
	-h|--help) usage 0 ;;
	*) echo "bench-qos.sh: unknown option $1" >&2; usage 2 ;;
	esac
done

LC=$TOP/deploy/local-cluster.sh
SERVER=$BUILD/server/keel-server
KEELCTL=$BUILD/mgmt/keelctl
VFRONT=$BUILD/tests/keel-vfront
for b in "$SERVER" "$KEELCTL" "$VFRONT" "$BUILD/client/keel-client"; do
	[ -x "$b" ] || { echo "bench-qos.sh: $b not built (BUILD=$BUILD)" >&2; exit 2; }
done
command -v fio >/dev/null || { echo "bench-qos.sh: fio not installed" >&2; exit 2; }

BYTES=$(to_bytes "$SIZE")
SPAN=$(((BYTES / 2) / (4 << 20) * (4 << 20)))

MADE_DIR=
if [ -z "$DIR" ]; then
	DIR=$(mktemp -d "${PWD}/keel-bench-qos.XXXXXX")
	MADE_DIR=$DIR
fi
mkdir -p "$DIR"

cleanup() {
	"$LC" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true
	rm -f "$DIR"/drive* 2>/dev/null || true
	[ -z "$MADE_DIR" ] || rm -rf "$MADE_DIR"
}
trap cleanup EXIT

keel_bench_volume

# Set the volume's limits and wait until keel-client logged them (it logs
# a change only: the same limits again need no wait).
set_limits() {
	local iops=$1 bps=$2 from i before after
	from=$(stat -c %s "$DIR/client.log")
	effective() {
		"$KEELCTL" -f json volume show bench |
			$PY -c 'import json,sys; v=json.load(sys.stdin); print(v["effective_qos_iops"], v["effective_qos_bps"])'
	}
	before=$(effective)
	"$KEELCTL" volume qos bench --iops "$iops" --bps "$bps" >/dev/null
	after=$(effective)
	[ "$before" != "$after" ] || return 0
	read -r iops bps <<<"$after"
	for i in $(seq 100); do
		if tail -c +"$((from + 1))" "$DIR/client.log" |
			grep -q "volume bench: QoS limits .*-> $iops IOPS, .*-> $bps bytes/s"; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench-qos.sh: keel-client did not apply $iops IOPS, $bps bytes/s" >&2
	return 1
}

# Random reads of $1 at QD16: prints "iops bytes_per_s".
nbd_read() {
	fio --name=qos --ioengine=nbd --uri="$KEEL_NBD" --rw=randread --bs="$1" --iodepth=16 \
		--size="$SPAN" --time_based --runtime="$RUNTIME" --ramp_time=1 --randrepeat=0 \
		--norandommap --output-format=json 2>/dev/null |
		$PY -c '
import json, sys
t = sys.stdin.read()
j = json.loads(t[t.index("{"):])["jobs"][0]
if j.get("error"):
    sys.exit("fio error %d" % j["error"])
print("%.1f %.0f" % (j["read"]["iops"], j["read"]["bw_bytes"]))'
}

vhost_read() {
	"$VFRONT" bench --socket "$KEEL_VHOST" --rw randread --bs "$1" --iodepth 16 \
		--runtime "$RUNTIME" --json 2>"$DIR/vf.err" |
		$PY -c '
import json, sys
r = json.load(sys.stdin)
if not r["ok"]:
    sys.exit("keel-vfront reported errors")
t = r["total"]
print("%.1f %.0f" % (t["iops"], t["iops"] * int(sys.argv[1])))' "$(to_bytes "$1")"
}

# One table row: export, limit text, limit value (0: none), which column
# of "iops bytes_per_s" it limits, the measurement.
row() {
	local exp=$1 text=$2 limit=$3 col=$4 meas=$5
	$PY -c '
import sys
exp, text, limit, col, iops, bps = sys.argv[1:]
limit = float(limit)
got = float(iops) if col == "iops" else float(bps) / 1048576
unit = "IOPS" if col == "iops" else "MiB/s"
ratio = "%.3f" % (got / limit) if limit else "-"
print("| %s | %s | %.1f %s | %s |" % (exp, text, got, unit, ratio))' \
		"$exp" "$text" "$limit" "$col" $meas
}

EXPORTS="nbd${VHOST:+ vhost}"
ROWS=()
run_case() {
	local iops=$1 bps=$2 bs=$3 text=$4 limit=$5 col=$6 e m
	set_limits "$iops" "$bps"
	for e in $EXPORTS; do
		echo "$e: $text, random reads of $bs, QD16, ${RUNTIME}s" >&2
		m=$("${e}_read" "$bs")
		ROWS+=("$(row "$([ "$e" = nbd ] && echo NBD || echo vhost-user)" "$text" "$limit" \
			"$col" "$m")")
	done
}

run_case unlimited unlimited 4k "none (4 KiB)" 0 iops
for n in 500 2000 8000; do
	run_case "$n" unlimited 4k "$n IOPS" "$n" iops
done
run_case unlimited unlimited 64k "none (64 KiB)" 0 bps
for n in 10 50; do
	run_case unlimited "${n}M" 64k "$n MiB/s" "$n" bps
done

{
	echo "## keel-client QoS limits ($(date -u +%Y-%m-%dT%H:%MZ), random reads QD16, ${RUNTIME}s per case, $((SPAN >> 20)) MiB volume)"
	echo
	echo "A 3-replica volume of 3 keel-servers (flush_mode=none) served by keel-client;"
	echo "NBD: fio --ioengine=nbd (1 s ramp not counted); vhost-user: tests/vfront's"
	echo "keel-vfront bench (1 queue; the first 100 ms burst is counted). 4 KiB reads"
	echo "for the IOPS limits, 64 KiB for the bandwidth limits; \"none\" is the same load"
	echo "without a limit."
	echo
	echo "| export | limit | measured | measured / limit |"
	echo "|---|---|---:|---:|"
	for r in "${ROWS[@]}"; do
		echo "$r"
	done
} | tee ${OUT:+"$OUT"}
