#!/bin/bash
# Keel main job (issue #2 stage): format a drive file, start keel-server on
# it, run a verified random read/write workload through the wire protocol,
# print the result, stop the server cleanly and check the data survives a
# restart.
#
#   BUILD=build DIR=/tmp/keel-demo SIZE=1G RUNTIME=5 scripts/demo.sh
set -euo pipefail

BUILD=${BUILD:-build}
DIR=${DIR:-$(mktemp -d /tmp/keel-demo.XXXXXX)}
SIZE=${SIZE:-1G}
RUNTIME=${RUNTIME:-5}
PORT=${PORT:-7400}
SRV=$BUILD/server/keel-server
BENCH=$BUILD/bench/keel-bench

for b in "$SRV" "$BENCH"; do
	[ -x "$b" ] || { echo "demo: $b not built (run: make build)" >&2; exit 1; }
done
mkdir -p "$DIR"
pid=""
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	return 0
}
trap cleanup EXIT

start_server() {
	"$SRV" run --device "$DIR/drive0" --listen "127.0.0.1:$PORT" --key "$DIR/key" \
		>>"$DIR/server.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do
		if grep -q "listening on" "$DIR/server.log" 2>/dev/null; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$DIR/server.log"; exit 1; }
		sleep 0.1
	done
	echo "demo: server did not start" >&2
	cat "$DIR/server.log" >&2
	exit 1
}

stop_server() {
	kill -TERM "$pid"
	wait "$pid"
	pid=""
}

echo "== keel demo in $DIR"
[ -f "$DIR/key" ] || "$SRV" keygen "$DIR/key"
"$SRV" format --device "$DIR/drive0" --size "$SIZE" --force
start_server
echo "== server up on 127.0.0.1:$PORT (log: $DIR/server.log)"

SPAN_MB=256
bench() {
	"$BENCH" --server "127.0.0.1:$PORT" --key "$DIR/key" --bs 4k --size ${SPAN_MB}M --seed 7 \
		--verify --state "$DIR/verify.state" "$@"
}
rm -f "$DIR/verify.state"
echo "== verified random write, QD32, ${RUNTIME}s"
bench --rw randwrite --iodepth 32 --runtime "$RUNTIME"
echo "== verified random read/write mix, QD32, ${RUNTIME}s"
bench --rw randrw --iodepth 32 --runtime "$RUNTIME"

echo "== restart: stop (SIGTERM), start again, read back and verify the whole span"
stop_server
start_server
bench --rw read --iodepth 32 --ios $((SPAN_MB * 256))
stop_server
echo "== demo passed: data written, verified, survived a restart"
