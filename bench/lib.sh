# SPDX-License-Identifier: Apache-2.0
# Shared helpers for bench/*.sh (sourced). Expects RUNTIME, PY and, for
# raw_fio, RAW (file) and SPAN (bytes) to be set by the caller.

to_bytes() {
	local v=${1^^} n
	n=${v%[KMGT]}
	case "$v" in
	*K) echo $((n << 10)) ;;
	*M) echo $((n << 20)) ;;
	*G) echo $((n << 30)) ;;
	*T) echo $((n << 40)) ;;
	*) echo "$n" ;;
	esac
}

# pin_cpus LIST WHO: put this shell on CPUs LIST (taskset -c syntax), so
# every process it starts from now on (fio, servers, clients, load
# generators) inherits that affinity. Exits 2 on a list taskset refuses.
pin_cpus() {
	command -v taskset >/dev/null || { echo "$2: --cpus needs taskset (util-linux)" >&2; exit 2; }
	taskset -cp "$1" $$ >/dev/null 2>&1 ||
		{ echo "$2: --cpus $1: not a usable CPU list (see /proc/cpuinfo)" >&2; exit 2; }
}

# Write zeroes over a whole file so no run of the benchmark pays for
# unwritten extents (the file system's first-write metadata commits).
prefill() {
	local file=$1 bytes=$2
	echo "prefilling $file ($((bytes >> 20)) MiB)" >&2
	dd if=/dev/zero of="$file" bs=1M count=$((bytes >> 20)) oflag=direct status=none
	sync "$file"
}

# CPU clock ticks (user + system) used so far by the processes in pid files.
cpu_ticks() {
	local f t=0 u s
	for f in "$@"; do
		read -r u s < <(awk '{print $14, $15}' "/proc/$(cat "$f")/stat" 2>/dev/null || echo "0 0")
		t=$((t + u + s))
	done
	echo "$t"
}

# A fio job on any engine/target (the options in "$@" after rw and qd):
# prints "iops mean_us p99_us cpu_s_per_100k_ios" (fio's own CPU).
fio_job() {
	local rw=$1 qd=$2
	shift 2
	fio --name=job "$@" --rw="$rw" --bs=4k --iodepth="$qd" --time_based \
		--runtime="$RUNTIME" --randrepeat=0 --norandommap --lat_percentiles=1 \
		--output-format=json 2>/dev/null |
		$PY -c '
import json, sys
text = sys.stdin.read()
# Some engines (nbd) print a line before the JSON document.
j = json.loads(text[text.index("{"):])["jobs"][0]
if j.get("error"):
    sys.exit("fio error %d" % j["error"])
side = j["write"] if j["write"]["io_bytes"] else j["read"]
lat = side["lat_ns"]
mean = lat["mean"]
p99 = lat.get("percentile", {}).get("99.000000", 0)
# With fdatasync=1 a write is durable only after its sync: fio reports the
# sync latency separately, so add it (p99: sum of p99s, an upper bound).
sync = j.get("sync", {}).get("lat_ns", {})
if sync.get("N", 0):
    mean += sync["mean"]
    p99 += sync.get("percentile", {}).get("99.000000", 0)
cpu = (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * j["job_runtime"] / 1000.0
ios = side["total_ios"] or 1
print("%.0f %.1f %.1f %.2f" % (side["iops"], mean / 1e3, p99 / 1e3, cpu / ios * 1e5))'
}

# fio on the raw file: prints "iops mean_us p99_us cpu_s_per_100k_ios".
raw_fio() {
	local rw=$1 qd=$2 extra=${3:-}
	# shellcheck disable=SC2086
	fio_job "$rw" "$qd" --filename="$RAW" --ioengine=io_uring --direct=1 --size="$SPAN" $extra
}

# keel-bench --json on stdin: prints "iops mean_us p99_us", fails on errors.
# keel-bench --json on stdin: prints "iops mean_us p99_us cpu_s_per_100k_ios";
# $1 (optional): CPU seconds the servers used meanwhile, added to the
# client's own.
bench_summary() {
	$PY -c '
import json, sys
r = json.load(sys.stdin)
if not r["ok"]:
    sys.exit("keel-bench reported errors")
t = r["total"]
cpu = r.get("cpu_s", 0) + float(sys.argv[1])
print("%.0f %.1f %.1f %.2f" % (t["iops"], t["lat_us"]["mean"], t["lat_us"]["p99"],
                               cpu / max(t["ios"], 1) * 1e5))' "${1:-0}"
}

# One Markdown table row: name, reference name, "iops mean p99 cpu" of the
# reference and of keel.
# $5 = cpu: add a "CPU s per 100k I/Os, reference / keel" column.
bench_row() {
	bench_row_n "$1" "$2" "${5:-}" iops "$3" "$4"
}

# bench_row_n NAME REF CPU BY RAW1 KEEL1 [RAW2 KEEL2 ...]: the row of N
# reference/keel pairs, each pair measured back to back (bench --repeat).
# With one pair, bench_row's row. With more, the row of the median pair,
# ranked by the row's target (BY: "lat", keel - ref mean latency; "latx",
# keel / ref mean latency; "iops", the IOPS ratio), and a last column with
# the range of each over the pairs.
# CPU non-empty: a "CPU s per 100k I/Os, reference / keel" column.
bench_row_n() {
	local name=$1 ref=$2 cpu=$3 by=$4
	shift 4
	$PY -c '
import sys
name, ref, cpu, by = sys.argv[1:5]
pairs = []
rest = sys.argv[5:]
for i in range(0, len(rest), 2):
    r, k = rest[i].split(), rest[i + 1].split()
    ri, rm, rp = map(float, r[:3])
    ki, km, kp = map(float, k[:3])
    rc = r[3] if len(r) > 3 else "-"
    kc = k[3] if len(k) > 3 else "-"
    pairs.append({"ri": ri, "rm": rm, "rp": rp, "ki": ki, "km": km, "kp": kp,
                  "rc": rc, "kc": kc, "ratio": ki / ri if ri else 0.0,
                  "diff": km - rm, "lat": km / rm if rm else 0.0})
key = {"lat": "diff", "latx": "lat"}.get(by, "ratio")
ranked = sorted(pairs, key=lambda p: p[key])
# Of two middle pairs (even N), the one further from the target.
m = ranked[len(ranked) // 2] if by != "iops" else ranked[(len(ranked) - 1) // 2]
row = "| %s | %s | %.0f | %.0f | %.2f | %.1f / %.1f | %.1f / %.1f | %+.1f µs (%.2fx) |" % (
    name, ref, m["ri"], m["ki"], m["ratio"], m["rm"], m["rp"], m["km"], m["kp"],
    m["diff"], m["lat"])
if cpu:
    row += " %s / %s |" % (m["rc"], m["kc"])
if len(pairs) > 1:
    rs = [p["ratio"] for p in pairs]
    ds = [p["diff"] for p in pairs]
    ls = [p["lat"] for p in pairs]
    row += " %.2f-%.2f / %+.1f to %+.1f µs / %.2f-%.2fx |" % (
        min(rs), max(rs), min(ds), max(ds), min(ls), max(ls))
print(row)' "$name" "$ref" "$cpu" "$by" "$@"
}

# measure_pair RW QD N RAWKEY KEELKEY [FIO_OPTION]: fio on the raw file,
# then the caller's keel_bench right after it, into R[RAWKEY_QD_N] and
# R[KEELKEY_QD_N] (R: the caller's associative array).
measure_pair() {
	local rw=$1 qd=$2 n=$3
	echo "fio raw $rw QD$qd ${6:+$6 }($n/$REPEAT)" >&2
	R[${4}_${qd}_$n]=$(raw_fio "$rw" "$qd" "${6:-}")
	echo "keel $rw QD$qd ($n/$REPEAT)" >&2
	R[${5}_${qd}_$n]=$(keel_bench "$rw" "$qd")
}

# repeat_note QD1RANK: the lines above a --repeat table saying how its rows
# were chosen; repeat_col head|rule: the header cell (or rule) of its range
# column, nothing when $REPEAT is 1.
repeat_note() {
	echo "Each row: the median of $REPEAT reference/keel pairs (QD1 by $1,"
	echo "QD32 by IOPS ratio), and the ranges over the $REPEAT pairs."
}

repeat_col() {
	[ "$REPEAT" != 1 ] || return 0
	if [ "$1" = head ]; then
		echo " $REPEAT pairs: IOPS ratio / latency difference / latency ratio |"
	else
		echo "---:|"
	fi
}

# repeat_row NAME REF RAWKEY KEELKEY QD CPU QD1BY: bench_row_n over the
# $REPEAT pairs ${R[RAWKEY_QD_n]} / ${R[KEELKEY_QD_n]} (R: the caller's
# results, n = 1..REPEAT); QD1 rows ranked by QD1BY (lat or latx), the
# others by IOPS ratio.
repeat_row() {
	local pairs=() n by=iops
	[ "$5" != 1 ] || by=$7
	for n in $(seq "$REPEAT"); do
		pairs+=("${R[${3}_${5}_$n]}" "${R[${4}_${5}_$n]}")
	done
	bench_row_n "$1" "$2" "$6" "$by" "${pairs[@]}"
}

# A local cluster of 3 keel-servers on drive files under $DIR (each
# prefilled to $BYTES), flush_mode=none like the writeback references, and
# keel-client; a volume "bench" of $SPAN bytes attached with NBD and filled
# so reads hit stored data. Expects LC, BUILD, DIR, PORT_BASE, SERVER,
# KEELCTL, PY; sets URL, KEEL_VHOST (vhost-user socket), KEEL_NBD (NBD URI)
# and exports what keelctl needs.
keel_bench_volume() {
	local i att
	for i in 1 2 3; do
		prefill "$DIR/drive$i" "$BYTES"
		"$SERVER" format --device "$DIR/drive$i" --force >/dev/null
	done
	URL=$("$LC" up --dir "$DIR" --servers 3 --build "$BUILD" --port-base "$PORT_BASE" \
		--server-set flush_mode=none | tail -1)
	export KEEL_MGMT_URL=$URL KEEL_KEY_FILE=$DIR/keel.key KEEL_TOKEN_FILE=$DIR/api.token
	"$KEELCTL" volume create bench --size "$SPAN" >/dev/null
	att=$("$KEELCTL" -f json volume attach bench --nbd)
	KEEL_VHOST=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["vhost_socket"])' "$att")
	KEEL_NBD=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["nbd_uri"])' "$att")
	echo "keel: filling the volume so reads hit stored data" >&2
	fio --name=fill --ioengine=nbd --uri="$KEEL_NBD" --rw=write --bs=1M --iodepth=8 \
		--size="$SPAN" >/dev/null 2>&1
}
