#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# local-cluster.sh: a Keel cluster on one machine, on files.
#
#   local-cluster.sh up [--servers N] [--dir DIR] [--netns] [--size SIZE]
#                       [--build DIR] [--object-size SIZE] [--journal-size SIZE]
#   local-cluster.sh down [--dir DIR]
#   local-cluster.sh status [--dir DIR]
#   local-cluster.sh stop-server ID [--dir DIR] [--signal SIG]
#   local-cluster.sh start-server ID [--dir DIR]
#   local-cluster.sh exec NODE [--dir DIR] -- COMMAND...   (--netns: run in a node's namespace)
#
# `up` starts keel-mgmt and N keel-servers (default 3) on drive files under DIR
# (default /tmp/keel-local), each server in its own failure domain (host
# nodeI), waits until the cluster reports HEALTH_OK and prints the mgmt URL
# as its last line. With --netns, mgmt, every server and a client node each
# get their own network namespace, joined by veth pairs to a bridge
# (10.77.0.0/24); the host reaches them through the bridge address.
# DIR/cluster.env holds KEEL_MGMT_URL and KEEL_KEY_FILE for other tools.
# `down` stops everything `up` started (SIGTERM, then SIGKILL after 10 s),
# and removes the namespaces; the drive files stay in DIR.
set -euo pipefail

SELF=$(readlink -f "$0")
TOP=$(dirname "$(dirname "$SELF")")
CMD=${1:-}
[ $# -gt 0 ] && shift

DIR=/tmp/keel-local
SERVERS=3
NETNS=0
SIZE=1G
OBJSIZE=
JSIZE=
BUILD=${BUILD:-$TOP/build}
SIG=TERM
ARG=
EXEC=()

usage() {
	sed -n '4,23p' "$SELF" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--servers) SERVERS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--netns) NETNS=1; shift ;;
	--size) SIZE=$2; shift 2 ;;
	--object-size) OBJSIZE=$2; shift 2 ;;
	--journal-size) JSIZE=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--signal) SIG=$2; shift 2 ;;
	--) shift; EXEC=("$@"); break ;;
	-h|--help) usage 0 ;;
	-*) echo "local-cluster.sh: unknown option $1" >&2; usage 2 ;;
	*) ARG=$1; shift ;;
	esac
done

MGMT=$BUILD/mgmt/keel-mgmt
SRV=$BUILD/server/keel-server
KEELCTL=$BUILD/mgmt/keelctl
API_PORT=8776
CLUSTER_PORT=7000
SRV_PORT0=7400
NS_PREFIX=keel$(echo -n "$DIR" | cksum | cut -c1-5)
BRIDGE=${NS_PREFIX}br
NET=10.77.0

die() {
	echo "local-cluster.sh: $*" >&2
	exit 1
}

# Address a node listens on: loopback, or its namespace's veth address.
node_ip() {
	local node=$1
	if [ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ]; then
		case "$node" in
		mgmt) echo "$NET.1" ;;
		client) echo "$NET.2" ;;
		s*) echo "$NET.$((10 + ${node#s}))" ;;
		esac
	else
		echo 127.0.0.1
	fi
}

in_node() {
	local node=$1
	shift
	if [ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ]; then
		ip netns exec "$NS_PREFIX-$node" "$@"
	else
		"$@"
	fi
}

netns_up() {
	local nodes=(mgmt client) i node
	for i in $(seq 1 "$SERVERS"); do nodes+=("s$i"); done
	ip link add "$BRIDGE" type bridge 2>/dev/null || true
	ip addr add "$NET.254/24" dev "$BRIDGE" 2>/dev/null || true
	ip link set "$BRIDGE" up
	for node in "${nodes[@]}"; do
		local ns=$NS_PREFIX-$node veth=${NS_PREFIX}${node}
		ip netns add "$ns" 2>/dev/null || true
		ip link add "$veth" type veth peer name eth0 netns "$ns" 2>/dev/null || true
		ip link set "$veth" master "$BRIDGE" up
		ip -n "$ns" addr add "$(node_ip "$node")/24" dev eth0 2>/dev/null || true
		ip -n "$ns" link set eth0 up
		ip -n "$ns" link set lo up
	done
}

netns_down() {
	local ns
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^$NS_PREFIX-" || true); do
		ip netns delete "$ns" 2>/dev/null || true
	done
	ip link delete "$BRIDGE" 2>/dev/null || true
}

wait_log() {
	local file=$1 pattern=$2 pid=$3 i
	for i in $(seq 200); do
		grep -q "$pattern" "$file" 2>/dev/null && return 0
		kill -0 "$pid" 2>/dev/null || { tail -20 "$file" >&2; return 1; }
		sleep 0.05
	done
	tail -20 "$file" >&2
	return 1
}

start_mgmt() {
	local ip
	ip=$(node_ip mgmt)
	in_node mgmt "$MGMT" run --db "$DIR/mgmt.db" --listen-api "$ip:$API_PORT" \
		--listen-cluster "$ip:$CLUSTER_PORT" --key "$DIR/keel.key" \
		>>"$DIR/mgmt.log" 2>&1 &
	echo $! >"$DIR/mgmt.pid"
	wait_log "$DIR/mgmt.log" "listening" "$!" || die "keel-mgmt did not start (log: $DIR/mgmt.log)"
}

start_server() {
	local i=$1 ip
	ip=$(node_ip "s$i")
	[ -f "$DIR/drive$i" ] || die "no drive $DIR/drive$i"
	in_node "s$i" "$SRV" run --device "$DIR/drive$i" --listen "$ip:$((SRV_PORT0 + i))" \
		--key "$DIR/keel.key" --mgmt "$(node_ip mgmt):$CLUSTER_PORT" --host "node$i" \
		>>"$DIR/server$i.log" 2>&1 &
	echo $! >"$DIR/server$i.pid"
	wait_log "$DIR/server$i.log" "listening on" "$!" ||
		die "keel-server $i did not start (log: $DIR/server$i.log)"
}

stop_pid() {
	local pidfile=$1 sig=${2:-TERM} pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if kill -0 "$pid" 2>/dev/null; then
		kill "-$sig" "$pid" 2>/dev/null || true
		for i in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	fi
	rm -f "$pidfile"
}

api() {
	curl -sf --max-time 2 "$(cat "$DIR/mgmt.url")$1"
}

wait_healthy() {
	local i status
	for i in $(seq 300); do
		status=$(api /v1/cluster/status 2>/dev/null || true)
		case "$status" in
		*'"HEALTH_OK"'*) return 0 ;;
		esac
		sleep 0.1
	done
	echo "$status" >&2
	return 1
}

cmd_up() {
	local i
	for b in "$MGMT" "$SRV" "$KEELCTL"; do
		[ -x "$b" ] || die "$b not built (make build, or --build DIR)"
	done
	mkdir -p "$DIR"
	[ -f "$DIR/mgmt.pid" ] && kill -0 "$(cat "$DIR/mgmt.pid")" 2>/dev/null &&
		die "a cluster is already running in $DIR (local-cluster.sh down --dir $DIR)"
	echo "$NETNS" >"$DIR/netns"
	echo "$SERVERS" >"$DIR/servers"
	[ "$NETNS" = 1 ] && netns_up
	[ -f "$DIR/keel.key" ] || "$SRV" keygen "$DIR/keel.key" >/dev/null
	echo "http://$(node_ip mgmt):$API_PORT" >"$DIR/mgmt.url"
	start_mgmt
	for i in $(seq 1 "$SERVERS"); do
		if [ ! -f "$DIR/drive$i" ]; then
			"$SRV" format --device "$DIR/drive$i" --size "$SIZE" \
				${OBJSIZE:+--object-size "$OBJSIZE"} \
				${JSIZE:+--journal-size "$JSIZE"} >>"$DIR/server$i.log" 2>&1 ||
				die "format of $DIR/drive$i failed (log: $DIR/server$i.log)"
		fi
		start_server "$i"
	done
	cat >"$DIR/cluster.env" <<EOF
KEEL_MGMT_URL=$(cat "$DIR/mgmt.url")
KEEL_KEY_FILE=$DIR/keel.key
EOF
	wait_healthy || die "cluster did not become healthy (logs in $DIR)"
	cat "$DIR/mgmt.url"
}

cmd_down() {
	local f
	for f in "$DIR"/server*.pid; do
		[ -e "$f" ] && stop_pid "$f" TERM
	done
	[ -e "$DIR/client.pid" ] && stop_pid "$DIR/client.pid" TERM
	stop_pid "$DIR/mgmt.pid" TERM
	[ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ] && netns_down
	return 0
}

case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
status) KEEL_MGMT_URL=$(cat "$DIR/mgmt.url") "$KEELCTL" cluster status ;;
stop-server) [ -n "$ARG" ] || usage 2; stop_pid "$DIR/server$ARG.pid" "$SIG" ;;
start-server) [ -n "$ARG" ] || usage 2; SERVERS=$(cat "$DIR/servers"); start_server "$ARG" ;;
exec) [ -n "$ARG" ] && [ ${#EXEC[@]} -gt 0 ] || usage 2; in_node "$ARG" "${EXEC[@]}" ;;
-h|--help|help|"") usage 0 ;;
*) echo "local-cluster.sh: unknown command $CMD" >&2; usage 2 ;;
esac
