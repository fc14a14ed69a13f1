#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# local-cluster.sh: a Keel cluster on one machine, on files.
#
#   local-cluster.sh up [--servers N] [--dir DIR] [--netns] [--size SIZE] [--sparse]
#                       [--build DIR] [--object-size SIZE] [--journal-size SIZE]
#                       [--port-base PORT] [--subnet A.B.C] [--ip ADDR]
#                       [--mgmt-set KEY=VALUE]... [--server-set KEY=VALUE]...
#                       [--client-set KEY=VALUE]...
#   local-cluster.sh down [--dir DIR]
#   local-cluster.sh status [--dir DIR]
#   local-cluster.sh stop-server ID [--dir DIR] [--signal SIG]
#   local-cluster.sh start-server ID [--dir DIR]
#   local-cluster.sh stop-mgmt [--dir DIR] [--signal SIG]
#   local-cluster.sh start-mgmt [--dir DIR]
#   local-cluster.sh stop-client [--dir DIR] [--signal SIG]
#   local-cluster.sh start-client [--dir DIR]
#   local-cluster.sh signal ID --signal SIG [--dir DIR]   (send only: STOP, CONT...)
#   local-cluster.sh link NODE up|down [--dir DIR]        (--netns: host side veth)
#   local-cluster.sh pid NODE [--dir DIR]
#   local-cluster.sh exec NODE [--dir DIR] -- COMMAND...   (--netns: run in a node's namespace)
#
# `up` starts keel-mgmt and N keel-servers (default 3) on drive files under DIR
# (default /tmp/keel-local), each server in its own failure domain (host
# nodeI), and keel-client for this host (--host $(hostname), sockets in
# DIR/run: `keelctl volume attach NAME` serves NAME there), waits until the
# cluster reports HEALTH_OK and prints the mgmt URL as its last line. With --netns, mgmt, every server and a client node each
# get their own network namespace, joined by veth pairs to a bridge
# (10.77.C.0/24); the host reaches them through the bridge address.
# DIR/cluster.env holds KEEL_MGMT_URL, KEEL_KEY_FILE and KEEL_TOKEN_FILE for
# other tools (the REST API token is DIR/api.token, next to the cluster key
# DIR/keel.key; both mode 0600, made on the first `up`).
# `down` stops everything `up` started (SIGTERM, then SIGKILL after 10 s),
# and removes the namespaces; the drive files stay in DIR.
#
# Several clusters can run at once (tests under ctest -j): give each its own
# DIR and --port-base (mgmt API on PORT, cluster port PORT+1, server I on
# PORT+10+I; default: 8776, 7000, 7400+I). With --netns each DIR gets its own
# subnet (10.77.C.0/24, C derived from DIR unless --subnet) and namespace
# names. --mgmt-set KEY=VALUE passes `--set mgmt.KEY=VALUE` to keel-mgmt,
# --server-set KEY=VALUE passes `--set server.KEY=VALUE` to every keel-server
# (kept in DIR for start-server), --client-set KEY=VALUE `--set
# client.KEY=VALUE` to keel-client; a KEY with a dot names its own section
# (--server-set fault.msg_drop_every=5000). NODE is mgmt, client or sI.
# `stop-server` waits for the process to exit (SIGKILL after 10 s unless SIG
# is KILL); `signal` only sends (SIGSTOP/SIGCONT for pause tests); `link`
# takes a node's veth down or up on the bridge side (netns only); `pid`
# prints a node's pid. `stop-mgmt` / `start-mgmt` stop and restart keel-mgmt
# alone (its state stays in DIR/mgmt.db); `stop-client` / `start-client` do
# the same for keel-client (guests on its sockets reconnect).
# Drive files are preallocated (SIZE each, default 1G) so that the file
# system under DIR cannot fill up beneath a running server; --sparse creates
# them thin instead, taking only what the servers write (tests on a small
# disk). A drive whose format fails is removed again.
# --ip ADDR (without --netns): every daemon listens on ADDR instead of
# 127.0.0.1, e.g. the address of an RDMA NIC for --server-set transport=rdma
# (docs/rdma.md: rdma_cm cannot use the loopback address).
set -euo pipefail

SELF=$(readlink -f "$0")
TOP=$(dirname "$(dirname "$SELF")")
CMD=${1:-}
[ $# -gt 0 ] && shift

DIR=/tmp/keel-local
SERVERS=3
NETNS=0
SPARSE=0
SIZE=1G
OBJSIZE=
JSIZE=
BUILD=${BUILD:-$TOP/build}
SIG=TERM
ARG=
ARG2=
EXEC=()
PORT_BASE=
SUBNET=
IP=
MGMT_SET=()
SERVER_SET=()
CLIENT_SET=()

usage() {
	sed -n '4,55p' "$SELF" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	--servers) SERVERS=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--netns) NETNS=1; shift ;;
	--size) SIZE=$2; shift 2 ;;
	--sparse) SPARSE=1; shift ;;
	--object-size) OBJSIZE=$2; shift 2 ;;
	--journal-size) JSIZE=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	--signal) SIG=${2#SIG}; shift 2 ;;
	--port-base) PORT_BASE=$2; shift 2 ;;
	--subnet) SUBNET=$2; shift 2 ;;
	--ip) IP=$2; shift 2 ;;
	--mgmt-set) MGMT_SET+=("$2"); shift 2 ;;
	--server-set) SERVER_SET+=("$2"); shift 2 ;;
	--client-set) CLIENT_SET+=("$2"); shift 2 ;;
	--) shift; EXEC=("$@"); break ;;
	-h|--help) usage 0 ;;
	-*) echo "local-cluster.sh: unknown option $1" >&2; usage 2 ;;
	*) if [ -z "$ARG" ]; then ARG=$1; else ARG2=$1; fi; shift ;;
	esac
done

MGMT=$BUILD/mgmt/keel-mgmt
SRV=$BUILD/server/keel-server
KEELCTL=$BUILD/mgmt/keelctl
CLIENT=$BUILD/client/keel-client
DIR=$(realpath -m "$DIR")
DIR_SUM=$(echo -n "$DIR" | cksum | awk '{print $1}')
# Interface names are limited to 15 characters: keelNNNNNclient is 15.
NS_PREFIX=keel$(printf '%05d' $((DIR_SUM % 100000)))
BRIDGE=${NS_PREFIX}br

# Ports and subnet: chosen by `up`, remembered in DIR for later commands.
if [ "$CMD" != up ] && [ -f "$DIR/ports" ]; then
	read -r API_PORT CLUSTER_PORT SRV_PORT0 <"$DIR/ports"
elif [ -n "$PORT_BASE" ]; then
	[[ "$PORT_BASE" =~ ^[0-9]+$ ]] && [ "$PORT_BASE" -ge 1024 ] && [ "$PORT_BASE" -le 65000 ] ||
		{ echo "local-cluster.sh: --port-base expects 1024..65000" >&2; exit 2; }
	API_PORT=$PORT_BASE
	CLUSTER_PORT=$((PORT_BASE + 1))
	SRV_PORT0=$((PORT_BASE + 10))
else
	API_PORT=8776
	CLUSTER_PORT=7000
	SRV_PORT0=7400
fi
if [ "$CMD" != up ] && [ -f "$DIR/subnet" ]; then
	NET=$(cat "$DIR/subnet")
elif [ -n "$SUBNET" ]; then
	[[ "$SUBNET" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
		{ echo "local-cluster.sh: --subnet expects A.B.C" >&2; exit 2; }
	NET=$SUBNET
else
	NET=10.77.$((DIR_SUM % 250 + 1))
fi

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
		cat "$DIR/ip" 2>/dev/null || echo 127.0.0.1
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

# Like in_node, replacing the calling (sub)shell: `exec_in_node NODE CMD &`
# leaves $! the daemon's own pid (ip netns exec execs too), so the pid files
# name the daemon, not a subshell that a SIGKILL would leave it running under.
exec_in_node() {
	local node=$1
	shift
	cd "$DIR" # core files land next to the logs
	if [ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ]; then
		exec ip netns exec "$NS_PREFIX-$node" "$@"
	else
		exec "$@"
	fi
}

netns_up() {
	local nodes=(mgmt client) i node
	command -v ip >/dev/null || die "netns mode needs iproute2's ip"
	ip route show | grep -q "^$NET\.0/24 " && ! ip link show "$BRIDGE" >/dev/null 2>&1 &&
		die "subnet $NET.0/24 is already in use on this host (use --subnet)"
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

# Format DIR/driveI (SIZE; --sparse: a thin file), or remove it and fail.
format_drive() {
	local drive=$DIR/drive$1 log=$DIR/server$1.log

	if [ "$SPARSE" = 1 ]; then
		truncate -s "$SIZE" "$drive" 2>>"$log" ||
			{ rm -f "$drive"; die "cannot create $drive: $(tail -n 1 "$log")"; }
	fi
	"$SRV" format --device "$drive" --size "$SIZE" ${OBJSIZE:+--object-size "$OBJSIZE"} \
		${JSIZE:+--journal-size "$JSIZE"} >>"$log" 2>&1 ||
		{ rm -f "$drive"; die "format of $drive failed: $(tail -n 1 "$log") (free under" \
			"$DIR: $(df -h --output=avail "$DIR" | tail -n 1 | tr -d ' '))"; }
}

# Size of a log file before a start, so that wait_log only looks at what
# the new process writes (logs are appended across restarts).
log_size() {
	stat -c %s "$1" 2>/dev/null || echo 0
}

# A process is alive while it exists and is not a zombie (a killed process
# whose parent has not reaped it yet still answers kill -0), or while any of
# its threads still runs: after SIGKILL the main thread turns zombie at
# once, but io_uring workers (iou-wrk-*) finish their blocking I/O first
# (an fdatasync can take seconds), and the process keeps its files, its
# sockets and its drive until the last thread exits.
alive() {
	local pid=$1 state t
	kill -0 "$pid" 2>/dev/null || return 1
	state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || echo X)
	if [ "$state" = Z ] || [ "$state" = X ]; then
		for t in /proc/"$pid"/task/*; do
			[ "${t##*/}" = "$pid" ] && continue
			[ -e "$t" ] && return 0
		done
		return 1
	fi
	return 0
}

wait_log() {
	local file=$1 pattern=$2 pid=$3 from=$4 i
	for i in $(seq 400); do
		# not a pipe: under pipefail, tail's SIGPIPE when grep -q stops
		# early (a big debug log) would read as "not found"
		grep -q "$pattern" <(tail -c "+$((from + 1))" "$file" 2>/dev/null) && return 0
		alive "$pid" || { tail -20 "$file" >&2; return 1; }
		sleep 0.05
	done
	tail -20 "$file" >&2
	return 1
}

# --set arguments remembered in DIR/NAME.set, one KEY=VALUE a line.
set_args() {
	local file=$1 section=$2 kv
	[ -f "$file" ] || return 0
	while IFS= read -r kv; do
		case "${kv%%=*}" in
		"") ;;
		*.*) printf '%s\n' --set "$kv" ;; # names its own section
		*) printf '%s\n' --set "$section.$kv" ;;
		esac
	done <"$file"
}

start_mgmt() {
	local ip from extra=()
	ip=$(node_ip mgmt)
	from=$(log_size "$DIR/mgmt.log")
	mapfile -t extra < <(set_args "$DIR/mgmt.set" mgmt)
	exec_in_node mgmt "$MGMT" run --db "$DIR/mgmt.db" --listen-api "$ip:$API_PORT" \
		--listen-cluster "$ip:$CLUSTER_PORT" --key "$DIR/keel.key" \
		--token-file "$DIR/api.token" "${extra[@]}" \
		>>"$DIR/mgmt.log" 2>&1 &
	echo $! >"$DIR/mgmt.pid"
	wait_log "$DIR/mgmt.log" "listening" "$!" "$from" ||
		die "keel-mgmt did not start (log: $DIR/mgmt.log)"
}

start_server() {
	local i=$1 ip from extra=()
	ip=$(node_ip "s$i")
	[ -f "$DIR/drive$i" ] || die "no drive $DIR/drive$i"
	[ -f "$DIR/server$i.pid" ] && alive "$(cat "$DIR/server$i.pid")" &&
		die "keel-server $i is already running"
	from=$(log_size "$DIR/server$i.log")
	mapfile -t extra < <(set_args "$DIR/server.set" server)
	exec_in_node "s$i" "$SRV" run --device "$DIR/drive$i" --listen "$ip:$((SRV_PORT0 + i))" \
		--key "$DIR/keel.key" --mgmt "$(node_ip mgmt):$CLUSTER_PORT" --host "node$i" \
		"${extra[@]}" >>"$DIR/server$i.log" 2>&1 &
	echo $! >"$DIR/server$i.pid"
	# "ready" comes after the journal replay and the listen.
	wait_log "$DIR/server$i.log" "ready" "$!" "$from" ||
		die "keel-server $i did not start (log: $DIR/server$i.log)"
}

# keel-client for this host; in the client node's namespace with --netns.
start_client() {
	local from extra=()
	[ -f "$DIR/client.pid" ] && alive "$(cat "$DIR/client.pid")" &&
		die "keel-client is already running"
	from=$(log_size "$DIR/client.log")
	mkdir -p "$DIR/run"
	mapfile -t extra < <(set_args "$DIR/client.set" client)
	exec_in_node client "$CLIENT" --mgmt "$(cat "$DIR/mgmt.url")" --key "$DIR/keel.key" \
		--token-file "$DIR/api.token" --host "$(hostname)" --run-dir "$DIR/run" \
		${extra[@]+"${extra[@]}"} >>"$DIR/client.log" 2>&1 &
	echo $! >"$DIR/client.pid"
	wait_log "$DIR/client.log" "joined the cluster" "$!" "$from" ||
		die "keel-client did not start (log: $DIR/client.log)"
}

stop_pid() {
	local pidfile=$1 sig=${2:-TERM} pid i
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	if alive "$pid"; then
		kill "-$sig" "$pid" 2>/dev/null || true
		# A stopped process handles SIGTERM only once continued.
		kill -CONT "$pid" 2>/dev/null || true
		for i in $(seq 100); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			kill -KILL "$pid" 2>/dev/null || true
			for i in $(seq 50); do
				alive "$pid" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$pidfile"
}

signal_server() {
	local pidfile=$DIR/server$1.pid
	[ -f "$pidfile" ] && alive "$(cat "$pidfile")" || die "keel-server $1 is not running"
	kill "-$SIG" "$(cat "$pidfile")"
}

node_pid() {
	local f
	case "$1" in
	mgmt) f=$DIR/mgmt.pid ;;
	s*) f=$DIR/server${1#s}.pid ;;
	client) f=$DIR/client.pid ;;
	*) die "no pid for node $1" ;;
	esac
	[ -f "$f" ] && alive "$(cat "$f")" || die "$1 is not running"
	cat "$f"
}

set_link() {
	local node=$1 state=$2
	[ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ] || die "link needs a --netns cluster"
	case "$state" in up|down) ;; *) usage 2 ;; esac
	ip link set "${NS_PREFIX}${node}" "$state"
}

api() {
	# The token goes in a header read from stdin, not on the command line.
	printf 'X-Auth-Token: %s\n' "$(grep -v '^#' "$DIR/api.token" | head -1)" |
		curl -sf --max-time 2 -H @- "$(cat "$DIR/mgmt.url")$1"
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
	local i kv
	for b in "$MGMT" "$SRV" "$KEELCTL" "$CLIENT"; do
		[ -x "$b" ] || die "$b not built (make build, or --build DIR)"
	done
	mkdir -p "$DIR"
	[ -f "$DIR/mgmt.pid" ] && kill -0 "$(cat "$DIR/mgmt.pid")" 2>/dev/null &&
		die "a cluster is already running in $DIR (local-cluster.sh down --dir $DIR)"
	echo "$NETNS" >"$DIR/netns"
	echo "$SERVERS" >"$DIR/servers"
	echo "$API_PORT $CLUSTER_PORT $SRV_PORT0" >"$DIR/ports"
	echo "$NET" >"$DIR/subnet"
	if [ -n "$IP" ]; then echo "$IP" >"$DIR/ip"; else rm -f "$DIR/ip"; fi
	: >"$DIR/mgmt.set"
	: >"$DIR/server.set"
	: >"$DIR/client.set"
	for kv in ${MGMT_SET[@]+"${MGMT_SET[@]}"}; do echo "$kv" >>"$DIR/mgmt.set"; done
	for kv in ${SERVER_SET[@]+"${SERVER_SET[@]}"}; do echo "$kv" >>"$DIR/server.set"; done
	for kv in ${CLIENT_SET[@]+"${CLIENT_SET[@]}"}; do echo "$kv" >>"$DIR/client.set"; done
	[ "$NETNS" = 1 ] && netns_up
	[ -f "$DIR/keel.key" ] || "$SRV" keygen "$DIR/keel.key" >/dev/null
	[ -f "$DIR/api.token" ] || "$SRV" keygen "$DIR/api.token" >/dev/null
	echo "http://$(node_ip mgmt):$API_PORT" >"$DIR/mgmt.url"
	start_mgmt
	for i in $(seq 1 "$SERVERS"); do
		[ -f "$DIR/drive$i" ] || format_drive "$i"
		start_server "$i"
	done
	cat >"$DIR/cluster.env" <<EOF
KEEL_MGMT_URL=$(cat "$DIR/mgmt.url")
KEEL_KEY_FILE=$DIR/keel.key
KEEL_TOKEN_FILE=$DIR/api.token
EOF
	wait_healthy || die "cluster did not become healthy (logs in $DIR)"
	start_client
	cat "$DIR/mgmt.url"
}

cmd_down() {
	local f
	# keel-client first: it closes its exports while the servers still
	# answer the requests in flight.
	[ -e "$DIR/client.pid" ] && stop_pid "$DIR/client.pid" TERM
	for f in "$DIR"/server*.pid; do
		[ -e "$f" ] && stop_pid "$f" TERM
	done
	stop_pid "$DIR/mgmt.pid" TERM
	[ "$(cat "$DIR/netns" 2>/dev/null || echo 0)" = 1 ] && netns_down
	return 0
}

case "$CMD" in
up) cmd_up ;;
down) cmd_down ;;
status) KEEL_MGMT_URL=$(cat "$DIR/mgmt.url") KEEL_TOKEN_FILE=$DIR/api.token "$KEELCTL" cluster status ;;
stop-server) [ -n "$ARG" ] || usage 2; stop_pid "$DIR/server$ARG.pid" "$SIG" ;;
start-server) [ -n "$ARG" ] || usage 2; SERVERS=$(cat "$DIR/servers"); start_server "$ARG" ;;
stop-mgmt) stop_pid "$DIR/mgmt.pid" "$SIG" ;;
start-mgmt) start_mgmt ;;
stop-client) stop_pid "$DIR/client.pid" "$SIG" ;;
start-client) start_client ;;
signal) [ -n "$ARG" ] || usage 2; signal_server "$ARG" ;;
link) [ -n "$ARG" ] && [ -n "$ARG2" ] || usage 2; set_link "$ARG" "$ARG2" ;;
pid) [ -n "$ARG" ] || usage 2; node_pid "$ARG" ;;
exec) [ -n "$ARG" ] && [ ${#EXEC[@]} -gt 0 ] || usage 2; in_node "$ARG" "${EXEC[@]}" ;;
-h|--help|help|"") usage 0 ;;
*) echo "local-cluster.sh: unknown command $CMD" >&2; usage 2 ;;
esac
