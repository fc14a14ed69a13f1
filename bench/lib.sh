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

# Write zeroes over a whole file so no run of the benchmark pays for
# unwritten extents (the file system's first-write metadata commits).
prefill() {
	local file=$1 bytes=$2
	echo "prefilling $file ($((bytes >> 20)) MiB)" >&2
	dd if=/dev/zero of="$file" bs=1M count=$((bytes >> 20)) oflag=direct status=none
	sync "$file"
}

# fio on the raw file: prints "iops mean_us p99_us".
raw_fio() {
	local rw=$1 qd=$2 extra=${3:-}
	# shellcheck disable=SC2086
	fio --name=raw --filename="$RAW" --ioengine=io_uring --direct=1 --rw="$rw" --bs=4k \
		--iodepth="$qd" --size="$SPAN" --time_based --runtime="$RUNTIME" \
		--randrepeat=0 --norandommap --lat_percentiles=1 $extra \
		--output-format=json 2>/dev/null |
		$PY -c '
import json, sys
j = json.load(sys.stdin)["jobs"][0]
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
print("%.0f %.1f %.1f" % (side["iops"], mean / 1e3, p99 / 1e3))'
}

# keel-bench --json on stdin: prints "iops mean_us p99_us", fails on errors.
bench_summary() {
	$PY -c '
import json, sys
r = json.load(sys.stdin)
if not r["ok"]:
    sys.exit("keel-bench reported errors")
t = r["total"]
print("%.0f %.1f %.1f" % (t["iops"], t["lat_us"]["mean"], t["lat_us"]["p99"]))'
}

# One Markdown table row: name, reference name, "iops mean p99" of the
# reference and of keel.
bench_row() {
	local name=$1 ref=$2 raw=$3 keel=$4 ri rm rp ki km kp
	read -r ri rm rp <<<"$raw"
	read -r ki km kp <<<"$keel"
	$PY -c '
import sys
name, ref, ri, rm, rp, ki, km, kp = sys.argv[1:]
ri, rm, rp, ki, km, kp = map(float, (ri, rm, rp, ki, km, kp))
ratio = ki / ri if ri else 0
lat = km / rm if rm else 0
print("| %s | %s | %.0f | %.0f | %.2f | %.1f / %.1f | %.1f / %.1f | %+.1f µs (%.2fx) |" %
      (name, ref, ri, ki, ratio, rm, rp, km, kp, km - rm, lat))' \
		"$name" "$ref" "$ri" "$rm" "$rp" "$ki" "$km" "$kp"
}
