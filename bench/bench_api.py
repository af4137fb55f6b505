#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""vmcryptd's API under load, with its baselines measured in the same run
against one vmcryptd on a private data directory (loopback, TLS, ~50
inventory objects):
  (a) GET /api/v1/inventory with a bearer token: wrk's requests/s and
      p50/p99 latency (keep-alive connections),
  (b) the transport floor: GET of an unknown path without a token (404 from
      the same TLS + HTTP stack, before any authentication or store access),
      interleaved round by round with (a); prints (a)/(b).
Logins: N sequential POST /api/v1/session, each on a new TLS connection
(as the CLI does), median and p90, against scrypt itself (hashlib.scrypt
with vc_passwd_hash's default cost, N=2^15 r=8 p=1, 16-byte salt) and a
new-connection 404 round trip; prints login/scrypt.

usage: bench_api.py [--seconds S] [--reps N] [--threads T] [--connections C]
                    [--logins N] [--objects N] [--build DIR]
"""
import argparse
import http.client
import json
import math
import os
import re
import select
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

ADMIN_PASSWORD = "bench-admin-pw-7Qx!not-a-real-one"
LISTEN_RE = re.compile(r"^vmcryptd: listening on https://127\.0\.0\.1:(\d+)$")
SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "runtime error:")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# Sets the bearer token from the environment (not on wrk's command line)
# and prints one machine-readable line when wrk is done.
WRK_LUA = r"""
local token = os.getenv("VC_BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("VCBENCH requests=%d duration_us=%d connect=%d read=%d write=%d "
                         .. "status=%d timeout=%d p50_us=%d p99_us=%d\n",
                         summary.requests, summary.duration, e.connect, e.read, e.write,
                         e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def fail(msg):
    # Named after the script that runs (bench_vms uses Client too).
    sys.exit(f"{os.path.basename(sys.argv[0]).removesuffix('.py')}: {msg}")


class Daemon:
    """vmcryptd on data_dir, 127.0.0.1 and a port the kernel picks; stderr
    read up to the "listening on" line, then drained by a thread."""

    def __init__(self, exe, work):
        self.data = os.path.join(work, "data")
        self.pwfile = os.path.join(work, "admin-password")
        fd = os.open(self.pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(ADMIN_PASSWORD + "\n")
        self.argv = [exe, "--data-dir", self.data, "--listen", "127.0.0.1:0",
                     "--admin-password-file", self.pwfile]
        self.lines = []
        self.proc = None
        self.port = None
        self.drain = None

    @property
    def ca(self):
        return os.path.join(self.data, "tls", "manager.crt")

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TMPDIR")}
        env["LC_ALL"] = "C"
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, close_fds=True)
        fd = self.proc.stderr.fileno()
        buf = b""
        deadline = time.monotonic() + START_TIMEOUT
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                fail("no 'listening on' line from vmcryptd:\n" + self.text())
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                fail(f"vmcryptd exited {self.proc.returncode} before listening:\n" + self.text())
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(line.decode("utf-8", "replace"))
                m = LISTEN_RE.match(self.lines[-1])
                if m:
                    self.port = int(m.group(1))
        self.drain = threading.Thread(target=self._drain, args=(fd, buf), daemon=True)
        self.drain.start()

    def _drain(self, fd, buf):
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if buf:
                    self.lines.append(buf.decode("utf-8", "replace"))
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(line.decode("utf-8", "replace"))

    def text(self):
        return "\n".join(self.lines[-40:])

    def alive(self):
        if self.proc.poll() is not None:
            fail(f"vmcryptd died (exit {self.proc.returncode}):\n" + self.text())

    def stop(self):
        """SIGTERM; a clean stop is part of the run (exit 0, no sanitizer
        report)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            fail("vmcryptd did not stop on SIGTERM:\n" + self.text())
        if self.drain:
            self.drain.join(10)
        self.proc.stderr.close()
        bad = [ln for ln in self.lines if any(m in ln for m in SANITIZER_MARKS)]
        if self.proc.returncode != 0 or bad:
            fail(f"vmcryptd exited {self.proc.returncode}:\n" + self.text())
        return 0

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Client:
    """HTTPS+JSON on one kept-alive connection (reopened when the server
    closed it), verifying the manager's own certificate. Paths are taken
    after prefix."""

    def __init__(self, port, ca, token=None, prefix="", timeout=30):
        self.port = port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.token = token
        self.conn = None
        self.prefix = prefix
        self.timeout = timeout

    def connect(self):
        return http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                           timeout=self.timeout)

    def request(self, method, path, body=None, token=True):
        hdrs = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        if token and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = self.connect()
            try:
                self.conn.request(method, self.prefix + path, body=data, headers=hdrs)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return r.status, (json.loads(raw) if raw else None)

    def ok(self, method, path, body=None, want=(200,)):
        status, j = self.request(method, path, body)
        if status not in want:
            fail(f"{method} {self.prefix}{path}: HTTP {status} {j}")
        return j

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def login_once(port, ctx):
    """One login on a new TLS connection: (seconds, token, TLS version)."""
    body = json.dumps({"user": "admin", "password": ADMIN_PASSWORD}).encode()
    t = time.perf_counter()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        conn.request("POST", "/api/v1/session", body=body,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        raw = r.read()
        secs = time.perf_counter() - t
        version = conn.sock.version() if conn.sock else "?"
    finally:
        conn.close()
    if r.status != 201:
        fail(f"login: HTTP {r.status} {raw[:300]!r}")
    return secs, json.loads(raw)["token"], version


def notfound_once(port, ctx, path):
    """One unauthenticated GET of an unknown path on a new connection."""
    t = time.perf_counter()
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        secs = time.perf_counter() - t
    finally:
        conn.close()
    if r.status != 404:
        fail(f"GET {path} without a token: HTTP {r.status}, not 404")
    return secs


def scrypt_once():
    import hashlib
    pw, salt = ADMIN_PASSWORD.encode(), os.urandom(16)
    t = time.perf_counter()
    hashlib.scrypt(pw, salt=salt, n=1 << 15, r=8, p=1, maxmem=64 << 20, dklen=32)
    return time.perf_counter() - t


def make_inventory(c, count):
    """count objects: folders under root, clusters in folders, hosts in
    clusters and folders, VMs on the hosts."""
    made = 0

    def add(parent, kind, name):
        nonlocal made
        made += 1
        return c.ok("POST", "/api/v1/inventory", {"parent": parent, "kind": kind, "name": name},
                    want=(201,))["id"]

    folders = [add("root", "folder", f"dc-{i}") for i in range(4)]
    clusters = [add(folders[i % 4], "cluster", f"cl-{i}") for i in range(2)]
    parents = clusters + folders
    hosts = [add(parents[i % len(parents)], "host", f"esx-{i}") for i in range(6)]
    i = 0
    while made < count:
        add(hosts[i % len(hosts)], "vm", f"vm-{i:03d}")
        i += 1
    return made


def pct(values, q):
    """The q-th percentile (nearest rank)."""
    v = sorted(values)
    return v[min(len(v), max(1, math.ceil(q / 100 * len(v)))) - 1]


class Wrk:
    def __init__(self, lua, threads, conns, seconds):
        self.lua = lua
        self.threads = threads
        self.conns = conns
        self.seconds = seconds

    def run(self, url, token, seconds=None):
        env = dict(os.environ)
        env["VC_BENCH_TOKEN"] = token or ""
        r = subprocess.run(["wrk", f"-t{self.threads}", f"-c{self.conns}",
                            f"-d{seconds or self.seconds}s", "--latency", "--timeout", "10s",
                            "-s", self.lua, url],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env)
        out = r.stdout.decode(errors="replace")
        line = [ln for ln in out.splitlines() if ln.startswith("VCBENCH ")]
        if r.returncode != 0 or not line:
            fail(f"wrk failed (exit {r.returncode}):\n{out}{r.stderr.decode(errors='replace')}")
        f = {k: int(v) for k, v in (kv.split("=") for kv in line[-1].split()[1:])}
        if f["requests"] == 0:
            fail(f"wrk made no request to {url}:\n{out}")
        sock = f["connect"] + f["read"] + f["write"] + f["timeout"]
        return {"rps": f["requests"] / (f["duration_us"] / 1e6), "p50": f["p50_us"] / 1000,
                "p99": f["p99_us"] / 1000, "requests": f["requests"], "status": f["status"],
                "sock": sock}


class Sample:
    def __init__(self):
        self.runs = []

    def add(self, r):
        self.runs.append(r)

    def med(self, key):
        return statistics.median(r[key] for r in self.runs)

    def row(self, label):
        return (f"{label:<46} {max(r['rps'] for r in self.runs):9.0f} {self.med('rps'):9.0f}"
                f" {self.med('p50'):8.2f} {self.med('p99'):8.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5, help="wrk run length")
    ap.add_argument("--reps", type=int, default=2, help="interleaved rounds of (a) and (b)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--logins", type=int, default=20)
    ap.add_argument("--objects", type=int, default=50)
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()

    exe = os.path.abspath(os.path.join(a.build, "manager", "vmcryptd"))
    if not os.access(exe, os.X_OK):
        fail(f"{exe} is missing: build it first (ninja -C {a.build})")
    if not shutil.which("wrk"):
        fail("wrk is missing (Debian package wrk; scripts/install-deps.sh installs it)")

    with tempfile.TemporaryDirectory(prefix="vmcrypt-bench-api-") as w:
        lua = os.path.join(w, "auth.lua")
        with open(lua, "w") as f:
            f.write(WRK_LUA)
        d = Daemon(exe, w)
        d.start()
        try:
            ctx = ssl.create_default_context(cafile=d.ca)
            _, token, tls = login_once(d.port, ctx)
            c = Client(d.port, d.ca, token)
            made = make_inventory(c, a.objects)
            inv = c.ok("GET", "/api/v1/inventory")["objects"]
            if len(inv) != made + 1:        # and root
                fail(f"GET /api/v1/inventory lists {len(inv)} objects, not {made} + root")
            c.close()
            base = f"https://127.0.0.1:{d.port}"
            unknown = "/api/v1/no-such-call"
            notfound_once(d.port, ctx, unknown)

            wrk = Wrk(lua, a.threads, a.connections, a.seconds)
            # Warm-up: the store's caches and the first connections.
            wrk.run(base + "/api/v1/inventory", token, 1)
            wrk.run(base + unknown, None, 1)
            inv_s, nf_s = Sample(), Sample()
            for _ in range(a.reps):
                r = wrk.run(base + "/api/v1/inventory", token)
                if r["status"] or r["sock"]:
                    fail(f"GET /api/v1/inventory under load: {r['status']} non-2xx answers, "
                         f"{r['sock']} socket errors of {r['requests']}")
                inv_s.add(r)
                r = wrk.run(base + unknown, None)
                if r["status"] != r["requests"] or r["sock"]:
                    fail(f"GET {unknown} under load: {r['requests'] - r['status']} non-error "
                         f"answers, {r['sock']} socket errors of {r['requests']}")
                nf_s.add(r)
                d.alive()

            # Interleaved, so that all three see the same machine.
            logins, conns, scrypts = [], [], []
            for i in range(a.logins):
                logins.append(login_once(d.port, ctx)[0])
                conns.append(notfound_once(d.port, ctx, unknown))
                if i % max(1, a.logins // 5) == 0:
                    scrypts.append(scrypt_once())
            d.alive()
        except BaseException:
            d.kill()
            raise
        d.stop()

    print(f"vmcryptd on loopback, {tls}, {os.cpu_count()} CPUs shared with the client; "
          f"{made} inventory objects; wrk -t{a.threads} -c{a.connections} (keep-alive), "
          f"{a.reps} interleaved rounds of {a.seconds} s")
    print(f"{'':<46} {'req/s':>9} {'':>9} {'latency':>8} {'ms':>8}")
    print(f"{'path':<46} {'best':>9} {'median':>9} {'p50':>8} {'p99':>8}")
    print(inv_s.row("(a) GET /api/v1/inventory, bearer token"))
    print(nf_s.row("(b) GET unknown path, no token (404): floor"))
    print(f"ratio (a)/(b), medians: {inv_s.med('rps') / nf_s.med('rps'):.2f} "
          "(token check, store reads, per-object System.View and JSON of the listing)")
    if nf_s.med("p50") >= 20:
        # A 404 takes microseconds to make: tens of milliseconds on
        # loopback is the server's second TCP segment of a response
        # waiting for the client's delayed ACK (Nagle, no TCP_NODELAY).
        print(f"note: the floor's p50 of {nf_s.med('p50'):.1f} ms is probably waiting, not work: "
              "responses stalling on delayed ACKs (is TCP_NODELAY set?)")
    lm, sm, cm = statistics.median(logins), statistics.median(scrypts), statistics.median(conns)
    print(f"login: {a.logins} sequential POST /api/v1/session, a new TLS connection each: "
          f"median {lm * 1000:.1f} ms, p90 {pct(logins, 90) * 1000:.1f} ms")
    print(f"baseline: scrypt N=2^15 r=8 p=1 (hashlib.scrypt, OpenSSL), median of "
          f"{len(scrypts)}: {sm * 1000:.1f} ms; new-connection 404 round trip, median of "
          f"{len(conns)}: {cm * 1000:.1f} ms")
    print(f"ratio login/scrypt, medians: {lm / sm:.2f}; login - scrypt - connection: "
          f"{(lm - sm - cm) * 1000:.1f} ms (store writes, event, JSON)")


if __name__ == "__main__":
    main()
