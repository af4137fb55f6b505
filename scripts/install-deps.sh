#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install the Debian 12 packages that vmcrypt's build, tests and benchmarks
# need, only when some are missing. Idempotent; run as root.
set -eu

PACKAGES="
  ca-certificates
  build-essential pkg-config meson ninja-build
  gcc clang libclang-rt-14-dev
  libssl-dev openssl
  libjansson-dev libsqlite3-dev libevent-dev libcurl4-openssl-dev
  libcmocka-dev wrk
  python3 python3-pytest python3-cryptography
  nbdkit nbdkit-plugin-dev libnbd-bin python3-libnbd python3-pykmip qemu-utils qemu-system-x86 nasm
  swtpm swtpm-tools tpm2-tools libtss2-tcti-cmd0 socat
"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

if [ -z "$missing" ]; then
	exit 0
fi

echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages:$missing; run this script as root" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-deps: done"
