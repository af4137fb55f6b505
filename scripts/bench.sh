#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `make bench`: every benchmark, each printing its own baseline measured in
# the same run and the ratios against it. Numbers, not pass/fail.
set -eu
cd "$(dirname "$0")/.."
echo "=== XTS sector cipher and disk layer (bench/bench_xts)"
build/bench/bench_xts "$@"
echo
echo "=== Native key provider: KEK derivations per second (bench/bench_native)"
build/bench/bench_native
echo
echo "=== Disk paths through NBD: plaintext, vmcrypt filter, nbdkit luks, QEMU LUKS (bench/bench_nbd.py)"
/usr/bin/python3 bench/bench_nbd.py --build build ${BENCH_NBD_MIB:+--mib "$BENCH_NBD_MIB"}
echo
echo "=== Deep rekey: offline vs online through the I/O filter, idle and with a writing client (bench/bench_rekey.py)"
/usr/bin/python3 bench/bench_rekey.py --build build ${BENCH_REKEY_MIB:+--mib "$BENCH_REKEY_MIB"}
echo
echo "=== KMIP client: create+get pairs per second, vmcrypt vs PyKMIP's client (bench/bench_kmip.py)"
/usr/bin/python3 bench/bench_kmip.py --build build
echo
echo "=== Manager API: authenticated inventory and login latency vs the 404 floor and scrypt (bench/bench_api.py)"
/usr/bin/python3 bench/bench_api.py --build build
echo
echo "=== VMs through the manager: encrypt, shallow rekey and unlock after an agent restart vs the offline disk tool and the 1 s reconciliation (bench/bench_vms.py)"
/usr/bin/python3 bench/bench_vms.py --build build ${BENCH_VMS:+--vms "$BENCH_VMS"}
