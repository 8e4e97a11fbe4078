# Thin entry points. Each installs what is missing (scripts/install-deps), builds, and runs.
#   make test   every target (benchmarks too) built under ASan+UBSan, then unit tests, corpus
#               replays and integration tests against that build
#   make demo   Ferry in front of example services, with scripted traffic explained step by step
#   make bench  Ferry vs HAProxy and nginx, interleaved (see docs/benchmarking.md)
#   make deps   just the Debian packages
#   make tidy   clang-tidy over src/ (not part of CI)
PYTEST := /usr/bin/python3 -m pytest
# ccache keys on paths relative to the checkout, so every clone shares the cache.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := true
JOBS ?= $(shell nproc)

.PHONY: deps build release test test-debug test-asan demo bench tidy fuzz format clean

deps:
	bash scripts/install-deps

build: deps
	cmake --preset debug >/dev/null
	cmake --build --preset debug -j $(JOBS)

release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release -j $(JOBS) --target ferry echo_service order_service

# One sanitizer build runs every test: it catches all a plain debug build does, and building
# twice took a fresh clone past its 20-minute budget on 2 cores. `make test-debug` runs the same
# suite on the -Og debug build (quicker to rebuild while working).
test: deps test-asan

# Runs the suite of one build preset: $(1) = preset name.
define run_suite
	cmake --preset $(1) >/dev/null
	cmake --build --preset $(1) -j $(JOBS)
	ctest --test-dir build/$(1) --output-on-failure -j 2
	FERRY_BIN=build/$(1)/src/app/ferry ECHO_BIN=build/$(1)/examples/echo_service \
	  $(PYTEST) -q -p no:cacheprovider tests/config tests/integration
endef

test-debug: deps
	$(call run_suite,debug)

test-asan: deps
	$(call run_suite,asan)

demo: release
	FERRY_BIN=build/release/src/app/ferry ECHO_BIN=build/release/examples/echo_service \
	  ORDER_BIN=build/release/examples/order_service bash scripts/demo.sh

bench: release
	FERRY_BIN=build/release/src/app/ferry bash bench/proxy/run.sh

tidy: deps
	cmake --preset debug >/dev/null
	run-clang-tidy -p build/debug -quiet 'src/.*\.cpp$$'

# A short libFuzzer session per target (clang): make fuzz FUZZ_SECONDS=300
FUZZ_SECONDS ?= 60
fuzz: deps
	cmake --preset fuzz >/dev/null
	cmake --build --preset fuzz -j $(JOBS)
	mkdir -p build/fuzz/fuzz-http1 build/fuzz/fuzz-http_client build/fuzz/fuzz-bus_segment \
	  build/fuzz/fuzz-bus_record build/fuzz/fuzz-bus_json_span build/fuzz/fuzz-idempotency_record
	build/fuzz/tests/http1_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  build/fuzz/fuzz-http1 tests/fuzz/corpus/http1
	build/fuzz/tests/http_client_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	  build/fuzz/fuzz-http_client tests/fuzz/corpus/http_client
	build/fuzz/tests/bus_segment_fuzz -max_total_time=$(FUZZ_SECONDS) \
	  build/fuzz/fuzz-bus_segment tests/fuzz/corpus/bus_segment
	build/fuzz/tests/bus_record_fuzz -max_total_time=$(FUZZ_SECONDS) \
	  build/fuzz/fuzz-bus_record tests/fuzz/corpus/bus_record
	build/fuzz/tests/bus_json_span_fuzz -max_total_time=$(FUZZ_SECONDS) \
	  build/fuzz/fuzz-bus_json_span tests/fuzz/corpus/bus_json_span
	build/fuzz/tests/idempotency_record_fuzz -max_total_time=$(FUZZ_SECONDS) \
	  build/fuzz/fuzz-idempotency_record tests/fuzz/corpus/idempotency_record

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf build
