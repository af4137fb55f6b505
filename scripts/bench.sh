#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make bench`: every benchmark, each printing its own baseline measured in
# the same run and the ratios against it. Numbers, not pass/fail.
set -eu
cd "$(dirname "$0")/.."
echo "=== XTS sector cipher and disk layer (bench/bench_xts)"
build/bench/bench_xts "$@"
