# SPDX-License-Identifier: Apache-2.0
# Helpers shared by the `vmcrypt disk` integration tests: running the CLI,
# KEK files, plaintext images with markers, and checks on CLI errors.
import hashlib
import json
import os
import random
import signal
import subprocess

# The hook is only for the crash tests; no other run may inherit it.
CRASH_ENV = "VMCRYPT_TEST_CRASH_AT_WRITE"


class Vmcrypt:
    """The CLI binary under test."""

    def __init__(self, path):
        self.path = path

    def env(self, extra=None):
        env = dict(os.environ)
        env.pop(CRASH_ENV, None)
        env["LC_ALL"] = "C"
        if extra:
            env.update(extra)
        return env

    def run(self, *args, input=None, env=None, pass_fds=(), timeout=120,
            cwd=None):
        """Run `vmcrypt ARGS...`; stdout and stderr are captured as bytes.
        stdin is /dev/null unless input is given, so nothing can hang on a
        terminal."""
        argv = [self.path] + [str(a) for a in args]
        return subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(env),
            pass_fds=pass_fds,
            close_fds=True,
            timeout=timeout,
            cwd=cwd,
        )

    def popen(self, *args, env=None):
        argv = [self.path] + [str(a) for a in args]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env(env),
            close_fds=True,
        )

    def ok(self, *args, **kw):
        """Run and require exit status 0."""
        r = self.run(*args, **kw)
        assert r.returncode == 0, describe(r)
        return r

    def info(self, disk):
        r = self.ok("disk", "info", disk, "--json")
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError(f"info --json printed invalid JSON ({e}): {r.stdout[:400]!r}")

    def export_bytes(self, disk, kek):
        """Export to stdout and return the plaintext."""
        return self.ok("disk", "export", disk, "-", "--kek-file", kek).stdout


def describe(r):
    """One readable summary of a finished process for assertion messages."""
    rc = r.returncode
    if rc is not None and rc < 0:
        try:
            rc = f"{rc} ({signal.Signals(-rc).name})"
        except ValueError:
            pass
    args = " ".join(str(a) for a in r.args)
    return (f"`{args}` exited {rc}\n  stdout: {r.stdout[:300]!r}"
            f"\n  stderr: {r.stderr[:600]!r}")


def assert_cli_error(r, codes):
    """The error contract: a non-zero status from `codes`, exactly one line
    on stderr starting with "vmcrypt: ", and nothing on stdout."""
    if isinstance(codes, int):
        codes = {codes}
    assert r.returncode in codes, f"expected exit status {sorted(codes)}: " + describe(r)
    assert r.stdout == b"", "an error must print nothing on stdout: " + describe(r)
    text = r.stderr.decode("utf-8", "replace")
    lines = text.split("\n")
    assert len(lines) == 2 and lines[1] == "" and lines[0].strip(), \
        "an error must be exactly one newline-terminated line on stderr: " + describe(r)
    assert lines[0].startswith("vmcrypt: "), \
        "the error line must start with 'vmcrypt: ': " + describe(r)
    return lines[0]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def snapshot(root):
    """Every path under root with its type and content digest, so a test can
    prove that a failed command changed nothing and left nothing behind."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = os.path.join(dirpath, d)
            out[os.path.relpath(p, root)] = ("dir", os.lstat(p).st_mode)
        for n in filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p):
                out[os.path.relpath(p, root)] = ("file", st.st_mode, st.st_size,
                                                 sha256_file(p))
            else:
                out[os.path.relpath(p, root)] = ("other", st.st_mode)
    return out


def assert_same_snapshot(before, after):
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in before if k in after and before[k] != after[k])
    assert not (added or removed or changed), \
        f"files changed by a failed command: added {added}, removed {removed}, modified {changed}"


def write_private(path, data, mode=0o600):
    """Create a file with exactly this mode, whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(path, mode)


class Kek:
    def __init__(self, path, key):
        self.path = str(path)
        self.key = key

    def __str__(self):
        return self.path

    def __fspath__(self):
        return self.path


def kek_file(path, key=None, form="raw", mode=0o600):
    """A KEK file holding key (random when None) as raw bytes, "hex" (64
    lower-case digits and a newline), "hex-nonl" or "HEX" (upper case)."""
    key = key if key is not None else os.urandom(32)
    if form == "raw":
        data = key
    elif form == "hex":
        data = key.hex().encode() + b"\n"
    elif form == "hex-nonl":
        data = key.hex().encode()
    elif form == "HEX":
        data = key.hex().upper().encode() + b"\n"
    else:
        raise ValueError(form)
    write_private(path, data, mode)
    return Kek(path, key)


def make_markers(rng, count):
    """Distinct marker strings that cannot occur by chance."""
    return [b"VMCRYPT-PLAINTEXT-%02d-%s-END" % (i, rng.randbytes(12).hex().encode())
            for i in range(count)]


def make_image(size, seed, markers=(), marker_offsets=(), holes=(),
               zero_fraction=0.0, sector=4096):
    """size bytes of seeded random data with markers written at the given
    byte offsets and zeroed byte ranges (holes), plus a fraction of zeroed
    sectors."""
    rng = random.Random(seed)
    buf = bytearray(rng.randbytes(size))
    if zero_fraction:
        for s in range(size // sector):
            if rng.random() < zero_fraction:
                buf[s * sector:(s + 1) * sector] = bytes(sector)
    for start, end in holes:
        buf[start:end] = bytes(end - start)
    for m, off in zip(markers, marker_offsets):
        assert off + len(m) <= size
        buf[off:off + len(m)] = m
    return bytes(buf)


def pad(data, sector):
    """The image as the disk holds it: rounded up to whole sectors with
    zeros."""
    rem = len(data) % sector
    return data if rem == 0 else data + bytes(sector - rem)


def sector_digests(data, sector, skip_zero=True):
    zero = bytes(sector)
    out = set()
    for off in range(0, len(data) - sector + 1, sector):
        chunk = data[off:off + sector]
        if skip_zero and chunk == zero:
            continue
        out.add(hashlib.sha256(chunk).digest())
    return out
