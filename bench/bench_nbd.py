#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Disk paths through NBD, measured side by side in one run on the same
random image in /dev/shm: nbdcopy read and write through
  (a) nbdkit `file` (plaintext, the baseline),
  (b) nbdkit + the vmcrypt filter,
  (c) nbdkit's luks filter on a LUKS copy of the image,
and (d) QEMU's own LUKS driver (qemu-img convert from/to a LUKS image,
aes-256-xts-plain64). Prints each path's best and median time over the
repetitions and its ratio of throughput to (a).

usage: bench_nbd.py [--mib N] [--reps N] [--build DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, **kw)


def timed(cmd, reps, before=None):
    times = []
    for _ in range(reps):
        if before:
            before()
        t = time.perf_counter()
        run(cmd)
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def nbd(server_args, client):
    """nbdkit serving on a private unix socket, running client with $uri."""
    return ["nbdkit", "-U", "-"] + server_args + ["--run", client]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()

    vmcrypt = os.path.join(a.build, "cli", "vmcrypt")
    filt = os.path.abspath(os.path.join(a.build, "filter", "nbdkit-vmcrypt-filter.so"))
    for tool in ("nbdkit", "nbdcopy", "qemu-img"):
        if not shutil.which(tool):
            sys.exit(f"bench_nbd: {tool} is missing (scripts/install-deps.sh installs it)")

    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    w = tempfile.mkdtemp(prefix="vmcrypt-bench-", dir=base)
    try:
        os.chmod(w, 0o700)
        kek, pw = os.path.join(w, "kek"), os.path.join(w, "pw")
        with open(os.open(kek, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
            f.write(os.urandom(32))
        with open(os.open(pw, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("bench-passphrase")
        plain, src = os.path.join(w, "plain.raw"), os.path.join(w, "src.raw")
        enc, luks = os.path.join(w, "disk.vcd"), os.path.join(w, "disk.luks")
        size = a.mib << 20
        with open(src, "wb") as f:
            for _ in range(a.mib):
                f.write(os.urandom(1 << 20))
        shutil.copyfile(src, plain)
        run([vmcrypt, "disk", "import", src, enc, "--kek-file", kek, "--quiet"])
        secret = f"secret,id=s0,file={pw}"
        out = os.path.join(w, "out.luks")
        for path in (luks, out):
            make_luks(secret, src, path)

        file_srv = ["file", plain]
        ours = ["--filter=" + filt, "file", enc, "kek-file=" + kek]
        luks_srv = ["--filter=luks", "file", luks, "passphrase=+" + pw]
        results = []

        def both(name, server):
            r = timed(nbd(server, "nbdcopy $uri null:"), a.reps)
            wr = timed(nbd(server, f"nbdcopy {src} $uri"), a.reps)
            results.append((name, r, wr))

        both("(a) nbdkit file, plaintext", file_srv)
        both("(b) nbdkit + vmcrypt filter", ours)
        both("(c) nbdkit luks filter", luks_srv)
        qr = timed(["qemu-img", "convert", "--object", secret, "-n", "--image-opts",
                    f"driver=luks,key-secret=s0,file.filename={luks}",
                    "--target-image-opts", "driver=null-co,size=%d" % size], a.reps)
        # Into an existing LUKS image (-n): no key-slot creation is timed.
        qw = timed(["qemu-img", "convert", "--object", secret, "-n", src, "--target-image-opts",
                    f"driver=luks,key-secret=s0,file.filename={out}"], a.reps)
        results.append(("(d) QEMU LUKS driver (qemu-img convert)", qr, qw))

        # Correctness guard: the filter's read-back equals the source.
        check = os.path.join(w, "check.raw")
        run(nbd(ours, f"nbdcopy $uri {check}"))
        if not filecmp_same(src, check):
            sys.exit("bench_nbd: the filter read back different data")

        mb = size / 1e6
        print(f"{a.mib} MiB random image in {w.split('/vmcrypt')[0]}, best of {a.reps} "
              "(median in brackets); ratio = throughput / plaintext nbdkit file")
        print(f"{'path':42} {'read s':>14} {'MB/s':>6} {'ratio':>6}   {'write s':>14} {'MB/s':>6} {'ratio':>6}")
        (_, (rb, _), (wb, _)) = results[0]
        for name, (r1, r2), (w1, w2) in results:
            print(f"{name:42} {r1:6.2f} ({r2:5.2f}) {mb / r1:6.0f} {rb / r1:6.2f}   "
                  f"{w1:6.2f} ({w2:5.2f}) {mb / w1:6.0f} {wb / w1:6.2f}")
        ours_r, ours_w = rb / results[1][1][0], wb / results[1][2][0]
        print(f"vmcrypt filter: {ours_r:.2f}x plaintext read (target >= 0.80), "
              f"{ours_w:.2f}x plaintext write (target >= 0.70)")
    finally:
        shutil.rmtree(w, ignore_errors=True)


def make_luks(secret, src, path):
    """qemu-img times PBKDF2 with getrusage and now and then fails with
    "Unable to get accurate CPU usage" on a loaded machine: retry."""
    for attempt in range(5):
        if os.path.exists(path):
            os.unlink(path)
        r = subprocess.run(["qemu-img", "convert", "--object", secret, "-O", "luks", "-o",
                            "key-secret=s0,cipher-alg=aes-256,cipher-mode=xts,"
                            "ivgen-alg=plain64,iter-time=100", src, path],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            return
    sys.exit("bench_nbd: cannot create a LUKS image: " + r.stderr.strip())


def filecmp_same(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


if __name__ == "__main__":
    main()
