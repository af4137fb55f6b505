# SPDX-License-Identifier: Apache-2.0
# Helpers and fixtures for the I/O filter tests: nbdkit with the vmcrypt
# filter on a unix socket, readiness by an NBD handshake, and the real NBD
# clients (qemu-io, qemu-img, nbdinfo, nbdcopy) driven from Python.
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

# Debian package of each external program, for the skip messages.
PACKAGES = {
    "nbdkit": "nbdkit",
    "qemu-img": "qemu-utils",
    "qemu-io": "qemu-utils",
    "nbdinfo": "libnbd-bin",
    "nbdcopy": "libnbd-bin",
    "qemu-system-x86_64": "qemu-system-x86",
    "nasm": "nasm",
    "swtpm": "swtpm",
    "swtpm_setup": "swtpm-tools",
    "tpm2_nvdefine": "tpm2-tools",
    "socat": "socat",
}

START_TIMEOUT = 20.0   # seconds for nbdkit to open the disk and serve
POLL = 0.02

NBD_MAGIC = b"NBDMAGIC"
NBD_OPTS_MAGIC = b"IHAVEOPT"
NBD_FLAG_C_FIXED_NEWSTYLE = 1
NBD_FLAG_C_NO_ZEROES = 2
NBD_OPT_ABORT = 2


def build_dir():
    return os.environ.get("VMCRYPT_BUILD", "/work/main/build")


def require_tools(*names):
    """Skip (saying which Debian package is missing) unless every program
    is on PATH; returns their full paths."""
    paths = []
    for n in names:
        p = shutil.which(n)
        if p is None:
            pytest.skip(f"{n} not found: install the Debian package {PACKAGES.get(n, n)}")
        paths.append(p)
    return paths


@pytest.fixture(scope="session")
def vc_filter():
    """The filter under test. A missing .so is a broken build: fail."""
    path = os.path.join(build_dir(), "filter", "nbdkit-vmcrypt-filter.so")
    if not os.path.isfile(path):
        pytest.fail(f"{path} is missing: build it with `ninja -C {build_dir()}` "
                    f"(the filter needs nbdkit-plugin-dev at configure time)",
                    pytrace=False)
    require_tools("nbdkit")
    return path


def nbd_probe(path, timeout=2.0):
    """True when a server on the unix socket `path` completes the start of
    a fixed-newstyle handshake. nbdkit binds its socket before the filter
    has opened the disk, but greets clients only afterwards, so a greeting
    means the export is ready. The probe ends with NBD_OPT_ABORT so the
    server logs nothing."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        greeting = b""
        while len(greeting) < 18:
            chunk = s.recv(18 - len(greeting))
            if not chunk:
                return False
            greeting += chunk
        if greeting[:8] != NBD_MAGIC or greeting[8:16] != NBD_OPTS_MAGIC:
            raise AssertionError(f"not an NBD newstyle server on {path}: {greeting!r}")
        s.sendall(struct.pack(">I", NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) +
                  NBD_OPTS_MAGIC + struct.pack(">II", NBD_OPT_ABORT, 0))
        # Drain the optional reply until the server closes.
        while s.recv(4096):
            pass
        return True
    except (ConnectionRefusedError, FileNotFoundError, ConnectionResetError,
            BrokenPipeError, socket.timeout):
        return False
    finally:
        s.close()


def socket_dir(tmp_path):
    """A directory for sockets inside the test's tmp dir; a unix socket
    path must fit in 108 bytes, so fall back to a short private one."""
    d = os.path.join(str(tmp_path), "sock")
    os.makedirs(d, mode=0o700, exist_ok=True)
    if len(d) < 80:
        return d, None
    short = tempfile.mkdtemp(prefix="vcnbd-", dir="/tmp")
    return short, short


class NbdServer:
    """One `nbdkit -f --exit-with-parent -U SOCK --filter=vmcrypt file DISK`
    process. stderr goes to a file so that a failing test can show it."""

    def __init__(self, argv, sock, log, pass_fds=()):
        self.argv = argv
        self.sock = sock
        self.log = log
        self.uri = f"nbd+unix:///?socket={sock}"
        self.stopped = False
        self._logf = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf,
                                     pass_fds=pass_fds, close_fds=True,
                                     env=dict(os.environ, LC_ALL="C"))

    def stderr(self):
        self._logf.flush()
        with open(self.log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_ready(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(f"nbdkit exited {rc} before serving:\n"
                                     f"  argv: {' '.join(self.argv)}\n  stderr: {self.stderr()}")
            if os.path.exists(self.sock) and nbd_probe(self.sock):
                return self
            if time.monotonic() > deadline:
                raise AssertionError(f"nbdkit did not serve within {timeout} s: {self.stderr()}")
            time.sleep(POLL)

    def stop(self):
        """Stop the server (every write is on the container once it has
        exited) and fail if it had died on its own, a crash included."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        died = self.proc.poll()
        if died is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        text = self.stderr()
        self._logf.close()
        if died is not None:
            raise AssertionError(f"nbdkit exited {died} while serving: {text[-1500:]}")
        return self.proc.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def filter_argv(vc_filter, sock, disk, kek=None, new_kek=None, kek_fd=None,
                readonly=False, extra=()):
    argv = ["nbdkit", "-f", "--exit-with-parent", "-U", sock]
    if readonly:
        argv.append("-r")
    argv += [f"--filter={vc_filter}", "file", str(disk)]
    if kek is not None:
        argv.append(f"kek-file={kek}")
    if kek_fd is not None:
        argv.append(f"kek-fd={kek_fd}")
    if new_kek is not None:
        argv.append(f"new-kek-file={new_kek}")
    argv += list(extra)
    return argv


class Servers:
    """Factory for filter servers of one test; all are stopped at teardown."""

    def __init__(self, vc_filter, tmp_path):
        self.filter = vc_filter
        self.tmp = tmp_path
        self.dir, self._cleanup_dir = socket_dir(tmp_path)
        self.all = []

    def start(self, disk, kek=None, new_kek=None, key_bytes=None,
              readonly=False, extra=(), wait=True):
        """Serve `disk`. The KEK comes from kek (a file) or key_bytes (sent
        through a pipe as kek-fd=N); new_kek is a file."""
        n = len(self.all)
        sock = os.path.join(self.dir, f"nbd{n}.sock")
        log = os.path.join(str(self.tmp), f"nbdkit{n}.log")
        fds = ()
        kek_fd = None
        if key_bytes is not None:
            r, w = os.pipe()
            os.write(w, key_bytes)   # 32 bytes fit in any pipe buffer
            os.close(w)
            fds, kek_fd = (r,), r
        try:
            srv = NbdServer(filter_argv(self.filter, sock, disk, kek=kek, new_kek=new_kek,
                                        kek_fd=kek_fd, readonly=readonly, extra=extra),
                            sock, log, pass_fds=fds)
        finally:
            for fd in fds:
                os.close(fd)
        self.all.append(srv)
        if wait:
            srv.wait_ready()
        return srv

    def close(self):
        for s in self.all:
            s.stop()
        if self._cleanup_dir:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)


@pytest.fixture
def nbd_servers(vc_filter, tmp_path):
    s = Servers(vc_filter, tmp_path)
    yield s
    s.close()


# ---- clients ---------------------------------------------------------------

def run_tool(argv, timeout=120, check=True):
    r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=dict(os.environ, LC_ALL="C"))
    if check:
        assert r.returncode == 0, (f"`{' '.join(str(a) for a in argv)}` exited {r.returncode}\n"
                                   f"  stdout: {r.stdout[-1500:]!r}\n  stderr: {r.stderr[-1500:]!r}")
    return r


def qemu_io(uri, cmds, timeout=120):
    """Run qemu-io commands in one process on the raw export; fails on any
    error or pattern mismatch. Returns stdout as text."""
    argv = ["qemu-io", "-f", "raw", uri]
    for c in cmds:
        argv += ["-c", c]
    r = run_tool(argv, timeout=timeout, check=False)
    out = r.stdout.decode("utf-8", "replace")
    err = r.stderr.decode("utf-8", "replace")
    bad = [ln for ln in (out + err).splitlines()
           if not is_dump_line(ln) and ("failed" in ln.lower() or "error" in ln.lower())]
    assert r.returncode == 0 and not bad, \
        f"qemu-io exited {r.returncode}; problems: {bad[:10]}\n  stderr: {err[-1500:]}"
    return out


def is_dump_line(line):
    return (len(line) > 10 and line[8:11] == ":  " and
            all(c in "0123456789abcdef" for c in line[:8]))


def parse_read_dumps(out):
    """The data of every `read -v` in qemu-io output, as (offset, bytes) in
    command order. A dump line is "%08x:  " then up to 16 "%02x " groups,
    one more space and the ASCII column."""
    reads = []
    cur = bytearray()
    first = None
    for line in out.splitlines():
        if is_dump_line(line):
            if first is None:
                first = int(line[:8], 16)
            hexpart = line[11:]
            n = 0
            while n < 16 and len(hexpart) >= 3 * n + 2:
                tok = hexpart[3 * n:3 * n + 2]
                if not all(c in "0123456789abcdef" for c in tok):
                    break
                n += 1
            cur += bytes.fromhex(hexpart[:3 * n])
        elif line.startswith("read ") and " bytes at offset " in line:
            off = int(line.rsplit(" ", 1)[1])
            if cur:
                assert first == off, f"dump starts at {first:#x}, read was at {off}"
                reads.append((off, bytes(cur)))
            cur = bytearray()
            first = None
    return reads


def export_size(uri):
    r = run_tool(["nbdinfo", "--size", uri])
    return int(r.stdout.decode().strip())


# ---- container checks -----------------------------------------------------------

def find_markers(path, markers):
    """The markers that occur anywhere in the file (overlapping reads so a
    marker across a read boundary is found too)."""
    longest = max(len(m) for m in markers)
    found = set()
    with open(path, "rb") as f:
        tail = b""
        while True:
            block = f.read(4 << 20)
            if not block:
                break
            buf = tail + block
            for m in markers:
                if m in buf:
                    found.add(m)
            tail = buf[-(longest - 1):] if longest > 1 else b""
    return found


def assert_no_markers(path, markers):
    found = find_markers(path, markers)
    assert not found, f"plaintext markers stored in the clear in {path}: {sorted(found)[:5]}"


def read_range(path, offset, length):
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def can_punch_holes(directory):
    """Whether the file system of `directory` supports
    FALLOC_FL_PUNCH_HOLE (then SEEK_DATA/SEEK_HOLE are meaningful)."""
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fd, p = tempfile.mkstemp(dir=directory)
    try:
        os.write(fd, b"x" * (1 << 20))
        os.fsync(fd)
        flags = 0x01 | 0x02   # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
        rc = libc.fallocate(fd, flags, ctypes.c_long(0), ctypes.c_long(1 << 20))
        if rc != 0:
            return False
        try:
            return os.lseek(fd, 0, os.SEEK_DATA) >= (1 << 20)
        except OSError:
            return True   # ENXIO: no data at all past 0
    finally:
        os.close(fd)
        os.unlink(p)


def data_in(path, start, end):
    """True when the file has any allocated data in [start, end)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            d = os.lseek(fd, start, os.SEEK_DATA)
        except OSError:
            return False
        return d < end
    finally:
        os.close(fd)
