#!/bin/sh
# Build the libFuzzer targets (tests/CMakeLists.txt, WITH_FUZZ) with clang
# and run each for SECONDS seconds (default 30): the vhost-user and
# virtio-blk parsers and backend, the NBD handshake and request parsers,
# the data-path header decoder. Usage: tests/run-fuzz.sh [SECONDS]
# Environment: FUZZ_BUILD (build dir, default build-fuzz), FUZZ_JOBS (-j, 2).
# Exit status: non-zero when a build fails or a fuzzer finds a crash (the
# reproducer is left in $FUZZ_BUILD/fuzz-out/<target>/).
set -eu
secs=${1:-30}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
command -v clang >/dev/null || { echo "run-fuzz: clang not found" >&2; exit 1; }
CC=clang cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWITH_FUZZ=ON >/dev/null
targets="fuzz_vhost_user fuzz_vhost_vring fuzz_virtio_blk fuzz_vhost_blk fuzz_nbd_parse fuzz_frame"
cmake --build "$build" -j"${FUZZ_JOBS:-2}" --target $targets
rc=0
for t in $targets; do
	out=$build/fuzz-out/$t
	mkdir -p "$out/corpus"
	seeds=$src/tests/fuzz-seeds/${t#fuzz_}
	[ -d "$seeds" ] || seeds=
	echo "run-fuzz: $t for ${secs}s"
	maxlen=4096
	[ "$t" = fuzz_vhost_blk ] && maxlen=16384 # guest memory + messages
	if ! (cd "$out" && "$build/tests/$t" -max_total_time="$secs" -max_len=$maxlen \
		-print_final_stats=1 corpus $seeds >"$out/log" 2>&1); then
		echo "run-fuzz: $t FAILED, see $out/log" >&2
		tail -30 "$out/log" >&2
		rc=1
	else
		grep -E "^stat::number_of_executed_units" "$out/log" || true
	fi
done
exit $rc
