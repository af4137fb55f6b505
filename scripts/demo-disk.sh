#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make demo`: a short guided tour of `vmcrypt disk` in a temporary
# directory, on the embedded defaults (a local key file as the KEK).
set -eu
cd "$(dirname "$0")/.."
V=$PWD/build/cli/vmcrypt
F=$PWD/build/filter/nbdkit-vmcrypt-filter.so
dir=$(mktemp -d /tmp/vmcrypt-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cd "$dir"

run() { printf '\n$ %s\n' "$*"; "$@"; }

echo "vmcrypt demo in $dir (removed at the end)"
echo "A key-encryption key (KEK) is 32 bytes in a file only its owner can read."
echo "(Later issues fetch KEKs from KMIP servers or the native key provider.)"
umask 077
run sh -c 'head -c 32 /dev/urandom > kek.key; head -c 32 /dev/urandom > kek2.key'

echo; echo "A raw image with a recognisable marker:"
run sh -c 'printf "hello from the guest: SECRET-MARKER-42\n" > guest.raw; truncate -s 64M guest.raw'

run "$V" disk import guest.raw disk.vcd --kek-file kek.key --key-id demo-kek-1
run "$V" disk info disk.vcd
run ls -ls guest.raw disk.vcd
printf '\n$ grep -c SECRET-MARKER-42 disk.vcd   # the ciphertext never holds the plaintext\n'
grep -c SECRET-MARKER-42 disk.vcd || true

run "$V" disk verify disk.vcd --kek-file kek.key
run "$V" disk rekey disk.vcd --shallow --kek-file kek.key --new-kek-file kek2.key --key-id demo-kek-2
run "$V" disk rekey disk.vcd --deep --kek-file kek2.key
run "$V" disk export disk.vcd back.raw --kek-file kek2.key
run cmp guest.raw back.raw
echo "round trip: identical"
printf '\n$ vmcrypt disk export disk.vcd - --kek-file kek.key   # the old KEK no longer opens it\n'
"$V" disk export disk.vcd - --kek-file kek.key >/dev/null || true

echo
echo "The I/O filter serves the plaintext to NBD clients (QEMU, qemu-img, nbdcopy);"
echo "the key reaches nbdkit through a file descriptor, never the command line:"
printf '\n$ nbdkit -U - --filter=vmcrypt file disk.vcd kek-fd=3 --run "nbdinfo --map \$uri; nbdcopy \$uri served.raw" 3<kek2.key\n'
nbdkit -U - --filter="$F" file disk.vcd kek-fd=3 --run 'nbdinfo --map "$uri"; nbdcopy "$uri" served.raw' 3<kek2.key
run cmp guest.raw served.raw
echo "served through NBD: identical"
echo
echo "Next: README.md (quick start), docs/vmcrypt-disk.md, docs/nbdkit-vmcrypt-filter.md."
