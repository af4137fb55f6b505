#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Build the fuzz harnesses with libFuzzer + ASan + UBSan (clang) in
# build-fuzz and run each for FUZZ_SECONDS (default 60).
#
#   scripts/fuzz.sh                 every harness with a seed corpus
#   scripts/fuzz.sh disk_header     only the named ones
#
# Each run starts from a scratch copy of fuzz/corpus/NAME in
# build-fuzz/corpus-NAME (new inputs stay there, the committed corpus is
# never written); crashes land in build-fuzz/artifacts-NAME/, logs in
# build-fuzz/fuzz-NAME.log. Exit status: 0 if no harness crashed.
set -eu

cd "$(dirname "$0")/.."
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
build="build-fuzz"

case $FUZZ_SECONDS in
'' | *[!0-9]*) echo "fuzz.sh: FUZZ_SECONDS must be a whole number of seconds" >&2; exit 2 ;;
esac
if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz.sh: clang is required (libFuzzer)" >&2
	exit 2
fi

# The library too is built with coverage instrumentation
# (fuzzer-no-link), or libFuzzer would only see the harness's own edges.
# UBSan findings must abort to count as crashes.
opts="-Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false -Dtests=false"
cflags="-fsanitize=fuzzer-no-link -fno-sanitize-recover=all"
if [ -d "$build/meson-private" ]; then
	# shellcheck disable=SC2086
	meson configure "$build" $opts "-Dc_args=$cflags" >/dev/null
else
	# shellcheck disable=SC2086
	CC=clang meson setup "$build" $opts "-Dc_args=$cflags" >/dev/null
fi

if [ $# -gt 0 ]; then
	names="$*"
else
	names=$(cd fuzz/corpus && ls)
fi
# Only the harnesses: the rest of the tree is not needed here.
targets=
for name in $names; do
	if [ ! -d "fuzz/corpus/$name" ]; then
		echo "fuzz.sh: no seed corpus fuzz/corpus/$name" >&2
		exit 2
	fi
	targets="$targets fuzz/fuzz_$name"
done
# shellcheck disable=SC2086
if ! ninja -C "$build" $targets >"$build/fuzz-build.log" 2>&1; then
	tail -n 30 "$build/fuzz-build.log" >&2
	echo "fuzz.sh: build failed (log: $build/fuzz-build.log)" >&2
	exit 2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=0
for name in $names; do
	exe=$build/fuzz/fuzz_$name
	if [ ! -x "$exe" ] || [ ! -d "fuzz/corpus/$name" ]; then
		echo "fuzz_$name: no harness or no seed corpus" >&2
		failed=1
		continue
	fi
	work=$build/corpus-$name
	artifacts=$build/artifacts-$name
	log=$build/fuzz-$name.log
	mkdir -p "$work" "$artifacts"
	cp fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true

	rc=0
	"$exe" -max_total_time="$FUZZ_SECONDS" -timeout=25 -print_final_stats=1 \
		-artifact_prefix="$artifacts/" "$work" >"$log" 2>&1 || rc=$?

	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -a -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
	files=$(find "$work" -type f | wc -l)
	if [ "$rc" -eq 0 ]; then
		echo "fuzz_$name: ok: ${runs:-?} runs in ${FUZZ_SECONDS}s, ${cov:-?} edges, corpus $files files"
	else
		crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
		what=$(grep -a -m 1 -E '^SUMMARY|check failed|ERROR: libFuzzer' "$log" || true)
		echo "fuzz_$name: CRASH (exit $rc) after ${runs:-?} runs: ${what:-see log}; input ${crash:-?}; log $log"
		failed=1
	fi
done
exit $failed
