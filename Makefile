# Front door. Quick start: `make demo` and `make test`.
SHELL := /bin/bash
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 20

.PHONY: all bootstrap web build release test test-unit lint fuzz fuzz-long bench demo demo-stop format clean

all: build

bootstrap:
	@scripts/bootstrap.sh

# The web console (web/ -> web/dist, served by rap-control): npm ci + tsc + vite, skipped when up
# to date.
web: bootstrap
	@scripts/web.sh

build: bootstrap web
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

release: bootstrap
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

# The whole suite: unit, integration, netns, e2e (debug build = ASan + UBSan), the clang-tidy
# check, and a short bounded libFuzzer run of every fuzz target.
test: build
	@ctest --preset debug -j $(JOBS)
	@$(MAKE) --no-print-directory lint
	@FUZZ_SEED=$${FUZZ_SEED:-1} $(MAKE) --no-print-directory fuzz

test-unit: build
	@ctest --preset debug -L unit -j $(JOBS)

lint: build
	@scripts/lint.sh build/debug

fuzz: bootstrap
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target fuzz_frame_decoder fuzz_session fuzz_config_artifact fuzz_route
	@scripts/fuzz.sh build/fuzz $(FUZZ_SECONDS)

fuzz-long: FUZZ_SECONDS=1800
fuzz-long: fuzz

bench: bootstrap
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target rap-fabric bench_codec bench_session
	@scripts/bench.sh build/release

demo: bootstrap web
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target rap-fabric
	@scripts/demo.sh build/release

demo-stop:
	@scripts/demo.sh --stop

format:
	@find src tests bench fuzz tools -name '*.cpp' -o -name '*.h' | xargs clang-format -i

clean:
	rm -rf build
