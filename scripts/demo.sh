#!/bin/bash
# Keel main job: a local cluster on files (keel-mgmt + 3 keel-servers +
# keel-client for this host), a 3-replica volume created through keelctl, a
# verified random read/write workload through libkeel (keel-bench --volume)
# during which one server is SIGKILLed and restarted, a block-history check
# of every I/O, the cluster back to HEALTH_OK with the returning server
# resynced; then the volume attached to this host (keelctl volume attach
# --nbd), a verified fio job through keel-client's NBD export, and the QEMU
# command line for its vhost-user-blk socket.
#
#   BUILD=build DIR=/tmp/keel-demo RUNTIME=20 scripts/demo.sh
set -euo pipefail

TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
BUILD=$(cd "$BUILD" && pwd)
MADE_DIR=
if [ -z "${DIR:-}" ]; then
	DIR=$(mktemp -d /tmp/keel-demo.XXXXXX)
	MADE_DIR=$DIR
fi
RUNTIME=${RUNTIME:-20}
LC="$TOP/deploy/local-cluster.sh"
KEELCTL=$BUILD/mgmt/keelctl
BENCH=$BUILD/bench/keel-bench
HISTCHECK=$BUILD/tests/keel-histcheck

for b in "$KEELCTL" "$BENCH" "$HISTCHECK" "$BUILD/client/keel-client"; do
	[ -x "$b" ] || { echo "demo: $b not built (run: make build)" >&2; exit 1; }
done

cleanup() {
	local rc=$?
	"$LC" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true
	# A directory the demo made itself goes away on success (6 GiB of drive
	# files); on failure it stays for the logs.
	if [ -n "$MADE_DIR" ] && [ "$rc" = 0 ]; then
		rm -rf "$MADE_DIR"
	elif [ "$rc" != 0 ]; then
		echo "demo: logs kept in $DIR" >&2
	fi
}
trap cleanup EXIT

echo "== starting a local cluster in $DIR: keel-mgmt + 3 keel-servers on 2 GiB drive files + keel-client"
URL=$("$LC" up --dir "$DIR" --servers 3 --size 2G --build "$BUILD" ${PORT_BASE:+--port-base "$PORT_BASE"} | tail -1)
export KEEL_MGMT_URL=$URL KEEL_KEY_FILE=$DIR/keel.key KEEL_TOKEN_FILE=$DIR/api.token
echo "== mgmt at $URL"
"$KEELCTL" server list
"$KEELCTL" volume create demo --size 1G
"$KEELCTL" volume show demo

echo "== verified 4 KiB random read/write, QD32, ${RUNTIME}s; server 2 is killed (SIGKILL) after 5 s"
"$BENCH" --volume demo --rw randrw --bs 4k --iodepth 32 --runtime "$RUNTIME" \
	--verify --history "$DIR/history.bin" >"$DIR/bench.out" 2>&1 &
bench=$!
sleep 5
"$LC" stop-server 2 --dir "$DIR" --signal KILL
echo "   server 2 killed at $(date +%T)"
sleep 3
"$KEELCTL" cluster status || true
"$LC" start-server 2 --dir "$DIR" --build "$BUILD"
echo "   server 2 restarted at $(date +%T)"
rc=0
wait "$bench" || rc=$?
cat "$DIR/bench.out"
[ "$rc" = 0 ] || { echo "demo: keel-bench failed (exit $rc)" >&2; exit 1; }

echo "== block-history check of every I/O (lost writes, stale reads, torn blocks)"
"$HISTCHECK" "$DIR/history.bin"

echo "== waiting for recovery to finish"
for _ in $(seq 300); do
	"$KEELCTL" -f json cluster status | grep -q '"HEALTH_OK"' && break
	sleep 0.2
done
"$KEELCTL" cluster status

echo "== attaching the volume to this host (keel-client serves it over vhost-user and NBD)"
"$KEELCTL" volume attach demo --nbd
NBD_URI=$("$KEELCTL" -f json volume attach demo --nbd | sed -n 's/.*"nbd_uri": "\(.*\)".*/\1/p')
VHOST=$("$KEELCTL" -f json volume attach demo --nbd | sed -n 's/.*"vhost_socket": "\(.*\)".*/\1/p')
[ -n "$NBD_URI" ] && [ -n "$VHOST" ] || { echo "demo: attach printed no sockets" >&2; exit 1; }

echo "== fio over NBD ($NBD_URI): 4 KiB random writes, QD16, 128 MiB, then every block verified (crc32c)"
fio --name=demo-nbd --ioengine=nbd --uri="$NBD_URI" --rw=randwrite --bs=4k --iodepth=16 \
	--size=128M --verify=crc32c --verify_fatal=1 --do_verify=1 --verify_state_save=0 --output-format=normal \
	>"$DIR/fio.out" 2>&1 || { cat "$DIR/fio.out"; echo "demo: fio failed" >&2; exit 1; }
grep -E "err=|(read|write): IOPS|^ +lat \((u|m)sec\): min=" "$DIR/fio.out" | sed 's/^ */   /'

echo "== a KVM guest uses the same volume through $VHOST:"
cat <<EOF
   qemu-system-x86_64 -machine q35,accel=kvm -m 2G -smp 2 \\
       -object memory-backend-memfd,id=mem,size=2G,share=on -numa node,memdev=mem \\
       -chardev socket,id=disk0,path=$VHOST,reconnect=1 \\
       -device vhost-user-blk-pci,chardev=disk0,num-queues=2 ...
EOF
"$KEELCTL" volume detach demo
echo "== demo passed: volume served through a server crash, every read verified, fio verified over NBD"
