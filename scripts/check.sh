#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The whole test suite: installs what is missing, builds with gcc (-Werror)
# and runs every suite, builds with clang + ASan/UBSan and runs the unit and
# fuzz-corpus suites again, runs the integration tests against the real
# binaries, then prints one closing line "N passed, N failed, N skipped".
set -u
cd "$(dirname "$0")/.."
top=$PWD
PY=/usr/bin/python3

scripts/install-deps.sh || { echo "check: install-deps failed" >&2; exit 1; }

status=0
build_failures=0
logs=()

step() { printf '\n=== %s\n' "$*"; }

configure() { # dir, meson args...
	local dir=$1; shift
	if [ -f "$dir/build.ninja" ]; then
		meson setup --reconfigure "$dir" "$@" >/dev/null
	else
		meson setup "$dir" "$@" >/dev/null
	fi
}

step "gcc build (warnings are errors)"
if configure build && ninja -C build; then
	step "unit and fuzz-corpus tests (gcc build)"
	meson test -C build --no-rebuild --print-errorlogs || status=1
	logs+=(build/meson-logs/testlog.json)
else
	echo "check: gcc build failed" >&2
	status=1
	build_failures=$((build_failures + 1))
fi

step "clang build with ASan + UBSan"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
if CC=clang configure build-asan -Db_sanitize=address,undefined -Db_lundef=false \
	--buildtype=debug && ninja -C build-asan; then
	step "unit and fuzz-corpus tests (ASan + UBSan build)"
	meson test -C build-asan --no-rebuild --print-errorlogs || status=1
	logs+=(build-asan/meson-logs/testlog.json)
else
	echo "check: clang/ASan build failed" >&2
	status=1
	build_failures=$((build_failures + 1))
fi

step "integration tests (real binaries)"
rm -f build/pytest.xml
if [ -x build/cli/vmcrypt ]; then
	VMCRYPT_BUILD=$top/build $PY -m pytest tests/integration -q -p no:cacheprovider \
		--junitxml=build/pytest.xml || status=1
	logs+=(build/pytest.xml)
else
	status=1
fi

step "manager and CLI integration tests against the ASan + UBSan build"
# The daemons parse untrusted network input: their tests, the CLI's and
# the VM file format's run once more under the sanitizers (a report aborts
# the process, which the harnesses notice).
rm -f build-asan/pytest.xml
if [ -x build-asan/manager/vmcryptd ] && [ -x build-asan/cli/vmcrypt ]; then
	VMCRYPT_BUILD=$top/build-asan $PY -m pytest -q -p no:cacheprovider \
		tests/integration/test_manager_*.py \
		tests/integration/test_cli_manager_offline.py \
		tests/integration/test_hostd.py \
		tests/integration/test_vmfile.py \
		tests/integration/test_vm_lifecycle.py \
		--junitxml=build-asan/pytest.xml || status=1
	logs+=(build-asan/pytest.xml)
else
	status=1
fi

step "summary"
$PY scripts/summarize.py --failed-builds=$build_failures "${logs[@]}" || status=1
exit $status
