#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Deep rekey speed, measured side by side in one run on the same random
image in /dev/shm:
  (a) offline: `vmcrypt disk rekey --deep` (the baseline),
  (b) online, idle: nbdkit + the vmcrypt filter, the rekey started on the
      filter's control socket, no client,
  (c) online, in use: the same while one NBD client writes random 4 KiB
      blocks as fast as it can.
Prints MiB/s and the ratio of each online time to (a), and the client's
write rate during (c) against its rate on the same server with no rekey.

usage: bench_rekey.py [--mib N] [--reps N] [--build DIR]
"""
import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
POLL = 0.005


def ctl(path, cmd):
    """One control-socket exchange (docs/FORMAT.md part 3) as a dict."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(cmd.encode() + b"\n")
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(512)
        if not chunk:
            break
        line += chunk
    s.close()
    words = line.decode().split()
    if not words or words[0] != "ok":
        sys.exit(f"bench_rekey: the filter answered {line!r}")
    return dict(w.split("=", 1) for w in words[1:])


class Server:
    """nbdkit with the filter on a private socket, its control socket."""

    def __init__(self, w, filt, disk, kek):
        self.sock = os.path.join(w, "nbd.sock")
        self.ctl = os.path.join(w, "ctl.sock")
        for p in (self.sock, self.ctl):
            if os.path.exists(p):
                os.unlink(p)
        self.proc = subprocess.Popen(
            ["nbdkit", "-f", "-U", self.sock, f"--filter={filt}", "file", f"file={disk}",
             f"kek-file={kek}", f"control={self.ctl}"], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.ctl):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit("bench_rekey: nbdkit did not start")
            time.sleep(POLL)

    def rekey(self):
        """Start a deep rekey and wait for its end: seconds."""
        t = time.perf_counter()
        ctl(self.ctl, "rekey-deep")
        while True:
            st = ctl(self.ctl, "status")
            if st["state"] in ("done", "failed"):
                break
            time.sleep(POLL)
        if st["state"] != "done":
            sys.exit(f"bench_rekey: the online rekey failed: {st}")
        return time.perf_counter() - t

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


class Writer:
    """Random 4 KiB writes through NBD until stopped; counts them."""

    def __init__(self, uri, size):
        import nbd
        self.h = nbd.NBD()
        self.h.connect_uri(uri)
        self.size = size
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        rng = random.Random(7)
        buf = os.urandom(4096)
        blocks = self.size // 4096
        while not self.stop.is_set():
            self.h.pwrite(buf, rng.randrange(blocks) * 4096)
            self.count += 1

    def rate_during(self, fn):
        """Writes per second while fn() runs; fn's result."""
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.stop.clear()
        c0, t0 = self.count, time.perf_counter()
        self.thread.start()
        out = fn()
        self.stop.set()
        self.thread.join()
        return (self.count - c0) / (time.perf_counter() - t0), out

    def close(self):
        self.h.shutdown()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()
    vmcrypt = os.path.join(a.build, "cli", "vmcrypt")
    filt = os.path.abspath(os.path.join(a.build, "filter", "nbdkit-vmcrypt-filter.so"))
    if not shutil.which("nbdkit"):
        sys.exit("bench_rekey: nbdkit is missing (scripts/install-deps.sh installs it)")

    w = tempfile.mkdtemp(prefix="vmcrypt-bench-", dir="/dev/shm" if os.path.isdir("/dev/shm")
                         else None)
    try:
        kek = os.path.join(w, "kek")
        with open(os.open(kek, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(32))
        plain, disk = os.path.join(w, "plain"), os.path.join(w, "disk.vcd")
        with open(plain, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        subprocess.run([vmcrypt, "disk", "import", plain, disk, "--kek-file", kek],
                       check=True, stdout=subprocess.DEVNULL)
        os.unlink(plain)
        size = a.mib << 20

        offline, idle, busy, alone, during = [], [], [], [], []
        for _ in range(a.reps):
            t = time.perf_counter()
            subprocess.run([vmcrypt, "disk", "rekey", disk, "--deep", "--kek-file", kek],
                           check=True, stdout=subprocess.DEVNULL)
            offline.append(time.perf_counter() - t)

            srv = Server(w, filt, disk, kek)
            try:
                idle.append(srv.rekey())
                wr = Writer(f"nbd+unix:///?socket={srv.sock}", size)
                # The client alone for as long as an idle rekey takes.
                rate, _ = wr.rate_during(lambda: time.sleep(idle[-1]))
                alone.append(rate)
                rate, secs = wr.rate_during(srv.rekey)
                during.append(rate)
                busy.append(secs)
                wr.close()
            finally:
                srv.stop()

        med = statistics.median
        base = med(offline)
        print(f"deep rekey of a {a.mib} MiB disk (random data, /dev/shm), median of {a.reps}:")
        print(f"  (a) offline, vmcrypt disk rekey --deep: {base:.2f} s, "
              f"{a.mib / base:.0f} MiB/s (baseline)")
        print(f"  (b) online, idle (I/O filter, control socket): {med(idle):.2f} s, "
              f"{a.mib / med(idle):.0f} MiB/s; time ratio to (a): {med(idle) / base:.2f}")
        print(f"  (c) online, one client writing 4 KiB blocks: {med(busy):.2f} s, "
              f"{a.mib / med(busy):.0f} MiB/s; time ratio to (a): {med(busy) / base:.2f}")
        print(f"      the client: {med(during):.0f} writes/s during the rekey vs "
              f"{med(alone):.0f} writes/s without: ratio {med(during) / med(alone):.2f}")
    finally:
        shutil.rmtree(w, ignore_errors=True)


if __name__ == "__main__":
    main()
