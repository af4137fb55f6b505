#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""KMIP client throughput: create+get pairs per second against one PyKMIP
server (started with the test harness, mutual TLS on loopback), measured
in one run, interleaved round by round so that both clients see the same
machine and the same database:
  (a) PyKMIP's own client (ProxyKmipClient, one connection): the baseline,
  (b) vmcrypt's client library on one connection (`vmcrypt kmip bench N`),
  (c) the vmcrypt CLI, one process and one TLS connection per operation.
Prints each path's best and median pairs/s, the client's and the server's
CPU time per pair, and the ratios to (a).

usage: bench_kmip.py [--pairs N] [--cli-pairs N] [--reps N] [--build DIR]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

TARGET = 1.2       # (b) / (a)


def fail(msg):
    sys.exit(f"bench_kmip: {msg}")


def server_cpu(srv):
    """CPU seconds used so far by the server's processes (all threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in srv.processes():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])     # utime, stime
    return total / tick


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class Sample:
    def __init__(self):
        self.rates = []
        self.client_ms = []
        self.server_ms = []

    def add(self, pairs, seconds, client_s, server_s):
        self.rates.append(pairs / seconds)
        self.client_ms.append(1000 * client_s / pairs)
        self.server_ms.append(1000 * server_s / pairs)

    def row(self, label):
        return (f"{label:<46} {max(self.rates):8.1f} {statistics.median(self.rates):8.1f}"
                f" {statistics.median(self.client_ms):9.2f} {statistics.median(self.server_ms):9.2f}")


def pykmip_pairs(srv, n):
    """n create+get pairs on one connection; (seconds, client CPU s)."""
    with srv.client(kmip_version="1.4") as c:
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            if len(c.get_key(c.create_key())) != 32:
                fail("PyKMIP's client read a key that is not 32 bytes")
        return time.perf_counter() - t, time.process_time() - cpu


def lib_pairs(vmcrypt, opts, n, batched=False):
    """`vmcrypt kmip bench n`: its own timing of the pairs (connection set
    up before the clock starts, as for PyKMIP); client CPU of the process."""
    cpu = children_cpu()
    r = subprocess.run([vmcrypt, "kmip", "bench", str(n), "--json",
                        *(["--batched"] if batched else []), *opts],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cpu = children_cpu() - cpu
    if r.returncode != 0:
        fail(f"vmcrypt kmip bench failed: {r.stderr.decode(errors='replace').strip()}")
    j = json.loads(r.stdout)
    if j.get("pairs") != n:
        fail(f"vmcrypt kmip bench reported {j.get('pairs')} pairs, not {n}")
    return j["seconds"], cpu


def cli_pairs(vmcrypt, opts, n):
    """n times `vmcrypt kmip create` then `vmcrypt kmip get --to-fd`."""
    cpu = children_cpu()
    t = time.perf_counter()
    for _ in range(n):
        r = subprocess.run([vmcrypt, "kmip", "create", "--json", *opts],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, check=True)
        uid = json.loads(r.stdout)["uid"]
        rfd, wfd = os.pipe()
        try:
            subprocess.run([vmcrypt, "kmip", "get", uid, "--to-fd", str(wfd), *opts],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           pass_fds=(wfd,), check=True)
            os.close(wfd)
            wfd = -1
            if len(os.read(rfd, 64)) != 32:
                fail("vmcrypt kmip get wrote a key that is not 32 bytes")
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
    return time.perf_counter() - t, children_cpu() - cpu


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=100, help="pairs per round, one connection")
    ap.add_argument("--cli-pairs", type=int, default=30, help="pairs per round, CLI")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()

    vmcrypt = os.path.abspath(os.path.join(a.build, "cli", "vmcrypt"))
    if not os.access(vmcrypt, os.X_OK):
        fail(f"{vmcrypt} is missing: build it first (ninja -C {a.build})")
    import vc_kmip
    if not os.path.isfile(vc_kmip.PYKMIP_SERVER):
        fail(f"{vc_kmip.PYKMIP_SERVER} is missing: install the Debian package "
             f"{vc_kmip.PYKMIP_PACKAGE}")
    helptext = subprocess.run([vmcrypt, "kmip", "--help"], stdout=subprocess.PIPE,
                              check=True).stdout.decode()
    has_bench = any(line.split()[:1] == ["bench"] for line in helptext.splitlines())

    with tempfile.TemporaryDirectory(prefix="vmcrypt-bench-kmip-") as w:
        pki = vc_kmip.make_pki(os.path.join(w, "pki"))
        with vc_kmip.KmipServer(pki, w) as srv:
            opts = ["--server", srv.endpoint, "--ca", pki.ca,
                    "--cert", pki.client.cert, "--key", pki.client.key]
            # Warm-up: the server's first requests set up its database.
            pykmip_pairs(srv, 10)
            if has_bench:
                lib_pairs(vmcrypt, opts, 10)
            cli_pairs(vmcrypt, opts, 3)

            py, lib, bat, cli = Sample(), Sample(), Sample(), Sample()
            for _ in range(a.reps):
                s = server_cpu(srv)
                secs, cpu = pykmip_pairs(srv, a.pairs)
                py.add(a.pairs, secs, cpu, server_cpu(srv) - s)
                if has_bench:
                    s = server_cpu(srv)
                    secs, cpu = lib_pairs(vmcrypt, opts, a.pairs)
                    lib.add(a.pairs, secs, cpu, server_cpu(srv) - s)
                    s = server_cpu(srv)
                    secs, cpu = lib_pairs(vmcrypt, opts, a.pairs, batched=True)
                    bat.add(a.pairs, secs, cpu, server_cpu(srv) - s)
                s = server_cpu(srv)
                secs, cpu = cli_pairs(vmcrypt, opts, a.cli_pairs)
                cli.add(a.cli_pairs, secs, cpu, server_cpu(srv) - s)

    print(f"PyKMIP server on loopback, mutual TLS 1.2, KMIP 1.4; AES-256 Create + Get per pair;"
          f" {a.reps} interleaved rounds of {a.pairs} pairs ({a.cli_pairs} for the CLI)")
    print(f"{'':<46} {'pairs/s':>8} {'':>8} {'client':>9} {'server':>9}")
    print(f"{'path':<46} {'best':>8} {'median':>8} {'CPU ms/p':>9} {'CPU ms/p':>9}")
    print(py.row("(a) PyKMIP ProxyKmipClient, one connection"))
    if has_bench:
        print(lib.row("(b) vmcrypt library, one connection"))
        print(bat.row("(b') same, Create+Get batched in one request"))
    print(cli.row("(c) vmcrypt CLI, one process per operation"))
    base = statistics.median(py.rates)
    if has_bench:
        ratio = statistics.median(lib.rates) / base
        print(f"ratio (b)/(a), medians: {ratio:.2f} (target >= {TARGET}: "
              f"{'met' if ratio >= TARGET else 'NOT met'})")
        ratio = statistics.median(bat.rates) / base
        print(f"ratio (b')/(a), medians: {ratio:.2f} (target >= {TARGET}: "
              f"{'met' if ratio >= TARGET else 'NOT met'})")
    else:
        print("(b) not measured: this vmcrypt has no `kmip bench`; a library-level number "
              "needs a long-lived client (one connection for all pairs)")
    print(f"ratio (c)/(a), medians: {statistics.median(cli.rates) / base:.2f} "
          "(process start, TLS handshake and Discover Versions on every operation)")
    # A sequential client waits for the server on every request, so the
    # server's share of each pair limits how far any client can pull ahead.
    print(f"server CPU per pair {statistics.median(py.server_ms):.1f} ms, PyKMIP's client "
          f"{statistics.median(py.client_ms):.2f} ms: the server's time dominates every pair")
    if has_bench:
        print(f"client CPU per pair, (a)/(b), medians: "
              f"{statistics.median(py.client_ms) / statistics.median(lib.client_ms):.1f}x")


if __name__ == "__main__":
    main()
