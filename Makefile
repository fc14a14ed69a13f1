# Keel top-level entry points. See README.md.
#   make demo   - install deps, build, run the main job (scripts/demo.sh)
#   make check  - install deps, build (release + ASan/UBSan), run every test,
#                 and the fuzz targets briefly
#   make build  - build only (into ./build)
#   make bench  - run bench/bench-server.sh (fio vs keel, same run)
#   make bench-client - bench/bench-client.sh (keel-client vs qemu-storage-daemon)
#   make bench-qos - bench/bench-qos.sh (keel-client's QoS limits: measured / limit)

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)

.PHONY: deps build build-asan check check-release check-asan check-fuzz check-cluster demo bench \
	bench-client bench-qos \
	format clean

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWITH_ASAN=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)

# Every test except those labelled known-failing (open product bugs, listed
# in docs/testing.md; `make check-cluster` runs them).
check-release: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE known-failing

# Unit tests and the short single-server functional tests again under
# ASan/UBSan (the long crash run and most cluster tests run in release only).
# Then the cluster tests labelled asan (tests/cluster_ft/tests.cmake), one
# at a time, leak checks off.
check-asan: build-asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -j$(JOBS) -LE 'slow|cluster|known-failing'
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure -L asan -LE known-failing

# The libFuzzer targets (vhost-user messages, vrings, virtio-blk requests,
# the whole vhost-user-blk backend) built with clang and run briefly.
FUZZ_SECONDS ?= 15
check-fuzz: deps
	FUZZ_BUILD=$(CURDIR)/build-fuzz FUZZ_JOBS=$(JOBS) tests/run-fuzz.sh $(FUZZ_SECONDS)

# All cluster acceptance tests (known-failing ones included, if any).
check-cluster: build
	cd $(BUILD) && ctest --output-on-failure -L cluster

check: check-release check-asan check-fuzz

demo: build
	BUILD=$(BUILD) ./scripts/demo.sh

bench: build
	BUILD=$(BUILD) ./bench/bench-server.sh

bench-client: build
	BUILD=$(BUILD) ./bench/bench-client.sh

bench-qos: build
	BUILD=$(BUILD) ./bench/bench-qos.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
