# SPDX-License-Identifier: Apache-2.0
# Thin wrapper over meson; see README.md.
.PHONY: all build check bench fuzz run demo deps clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@[ -f build/build.ninja ] || meson setup build
	ninja -C build

check:
	scripts/check.sh

bench: build
	scripts/bench.sh

fuzz:
	scripts/fuzz.sh

run: build
	scripts/run.sh

demo: build
	scripts/demo-disk.sh

clean:
	rm -rf build build-asan build-fuzz
