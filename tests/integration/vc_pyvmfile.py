# SPDX-License-Identifier: Apache-2.0
"""An independent reader and writer of the vmcrypt encrypted VM file format.

Written from docs/FORMAT.md (second part, "The vmcrypt encrypted VM file
format, version 1", sections V1-V6) with python3-cryptography (OpenSSL
underneath) only, so that the C library (lib/vc_vmfile.c) and this module
check each other. Nothing here calls or reads the C code.

Command line (for people, and to regenerate the fuzz seed corpus):
    vc_pyvmfile.py info FILE [--json]
    vc_pyvmfile.py seal IN OUT --key-hex HEX --purpose P [--chunk-shift N]
    vc_pyvmfile.py open IN OUT --key-hex HEX --purpose P
    vc_pyvmfile.py make-corpus DIR      # fuzz/corpus/vmfile
"""

import argparse
import builtins
import json
import os
import random
import struct
import sys
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# ---- constants (V2, V3, V4, V6) ----------------------------------------------

MAGIC = b"VCVMFILE"
VERSION = 1
HEADER_LEN = 64
TAG_LEN = 16
KEY_LEN = 32
SALT_LEN = 16
PURPOSE_MAX = 32
SHIFT_MIN = 12
SHIFT_MAX = 20
SHIFT_DEFAULT = 16
MAX_CHUNKS = 1 << 32
PURPOSE_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
KDF_INFO_PREFIX = b"vmcrypt-vmfile-v1\x00"
FLAG_FINAL = 0x01

# Header field offsets (V2).
OFF_MAGIC = 0
OFF_VERSION = 8
OFF_SHIFT = 10
OFF_PURPOSE_LEN = 11
OFF_RESERVED = 12
OFF_SALT = 16
OFF_PURPOSE = 32


class VmfileError(Exception):
    """Anything a reader must refuse. field names the header field for
    header refusals ("magic", "version", ...), chunk the chunk index for a
    tag failure."""

    def __init__(self, msg, field=None, chunk=None):
        super().__init__(msg)
        self.field = field
        self.chunk = chunk


class UnsupportedVersion(VmfileError):
    """A well-formed magic with another version (the C code's -ENOTSUP)."""


@dataclass
class Header:
    version: int
    chunk_shift: int
    purpose: str
    salt: bytes
    raw: bytes

    @property
    def chunk_size(self):
        return 1 << self.chunk_shift


def purpose_valid(purpose):
    b = purpose.encode() if isinstance(purpose, str) else bytes(purpose)
    return 1 <= len(b) <= PURPOSE_MAX and all(c in PURPOSE_CHARS for c in b)


def _purpose_bytes(purpose):
    b = purpose.encode("ascii") if isinstance(purpose, str) else bytes(purpose)
    if not purpose_valid(b):
        raise ValueError(f"invalid purpose {purpose!r}: 1..32 bytes of [a-z0-9._-]")
    return b


def build_header(chunk_shift, purpose, salt, version=VERSION):
    """The 64 header bytes (V2). No validation of chunk_shift or version,
    so that tests can build headers a reader must refuse."""
    p = purpose.encode("ascii") if isinstance(purpose, str) else bytes(purpose)
    if len(salt) != SALT_LEN or len(p) > PURPOSE_MAX:
        raise ValueError("salt must be 16 bytes and purpose at most 32")
    h = (MAGIC + struct.pack("<HBB", version, chunk_shift, len(p)) + bytes(4) +
         bytes(salt) + p + bytes(PURPOSE_MAX - len(p)))
    assert len(h) == HEADER_LEN
    return h


def parse_header(hdr):
    """Check a header as V2 says a reader must; returns a Header."""
    hdr = bytes(hdr)
    if len(hdr) < HEADER_LEN:
        raise VmfileError(f"file too short for a header ({len(hdr)} of {HEADER_LEN} bytes)",
                          field="length")
    hdr = hdr[:HEADER_LEN]
    if hdr[OFF_MAGIC:OFF_MAGIC + 8] != MAGIC:
        raise VmfileError("bad magic: not a vmcrypt VM file", field="magic")
    version, shift, plen = struct.unpack_from("<HBB", hdr, OFF_VERSION)
    if version != VERSION:
        raise UnsupportedVersion(f"unsupported version {version}", field="version")
    if not SHIFT_MIN <= shift <= SHIFT_MAX:
        raise VmfileError(f"chunk_shift {shift} outside {SHIFT_MIN}..{SHIFT_MAX}",
                          field="chunk_shift")
    if not 1 <= plen <= PURPOSE_MAX:
        raise VmfileError(f"purpose_len {plen} outside 1..{PURPOSE_MAX}", field="purpose_len")
    if hdr[OFF_RESERVED:OFF_RESERVED + 4] != bytes(4):
        raise VmfileError("reserved field not zero", field="reserved")
    purpose = hdr[OFF_PURPOSE:OFF_PURPOSE + plen]
    if any(c not in PURPOSE_CHARS for c in purpose):
        raise VmfileError("purpose holds a byte outside [a-z0-9._-]", field="purpose")
    if hdr[OFF_PURPOSE + plen:HEADER_LEN] != bytes(PURPOSE_MAX - plen):
        raise VmfileError("purpose padding not zero", field="purpose_padding")
    return Header(version=version, chunk_shift=shift, purpose=purpose.decode("ascii"),
                  salt=hdr[OFF_SALT:OFF_SALT + SALT_LEN], raw=hdr)


def file_key(key, salt, purpose):
    """V3."""
    return file_key_unchecked(key, salt, _purpose_bytes(purpose))


def file_key_unchecked(key, salt, purpose_bytes):
    """V3 for any purpose bytes, even those a reader refuses: for tests
    that need chunks which authenticate under a bad header."""
    if len(key) != KEY_LEN:
        raise ValueError("the key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(salt),
                info=KDF_INFO_PREFIX + bytes(purpose_bytes)).derive(bytes(key))


def nonce(index, final):
    """V4: flag || 00 00 00 || index as 8 bytes big-endian."""
    if not 0 <= index < MAX_CHUNKS:
        raise ValueError("chunk index out of range")
    return bytes([FLAG_FINAL if final else 0]) + bytes(3) + struct.pack(">Q", index)


def chunk_layout(body_len, chunk_size):
    """V5 step 2: the (offset in the body, stored length) of every chunk of
    a body of body_len bytes; raises VmfileError when the body cannot be a
    valid chunk sequence."""
    full = chunk_size + TAG_LEN
    if body_len < TAG_LEN:
        raise VmfileError(f"body of {body_len} bytes is shorter than one tag", field="length")
    n = -(-body_len // full)
    if n > MAX_CHUNKS:
        raise VmfileError(f"{n} chunks: more than 2^32", field="length")
    last = body_len - (n - 1) * full
    if last < TAG_LEN:
        raise VmfileError(f"final chunk of {last} bytes is shorter than a tag",
                          field="length")
    return [(i * full, full if i < n - 1 else last) for i in range(n)]


def plaintext_len(body_len, chunk_size):
    """What the plaintext of a valid body of body_len bytes must be."""
    return sum(length - TAG_LEN for _, length in chunk_layout(body_len, chunk_size))


def sealed_len(plain_len, chunk_size):
    """The size of the file seal() makes from plain_len bytes."""
    n = max(1, -(-plain_len // chunk_size))
    return HEADER_LEN + plain_len + n * TAG_LEN


def seal(key, purpose, plaintext, chunk_shift=SHIFT_DEFAULT, salt=None):
    """A whole encrypted file (header + chunks) holding plaintext."""
    if not SHIFT_MIN <= chunk_shift <= SHIFT_MAX:
        raise ValueError(f"chunk_shift must be {SHIFT_MIN}..{SHIFT_MAX}")
    pb = _purpose_bytes(purpose)
    salt = os.urandom(SALT_LEN) if salt is None else bytes(salt)
    hdr = build_header(chunk_shift, pb, salt)
    aead = AESGCM(file_key(key, salt, pb))
    c = 1 << chunk_shift
    plaintext = bytes(plaintext)
    # V4: at least one chunk; a multiple of C ends with a full final chunk.
    n = max(1, -(-len(plaintext) // c))
    if n > MAX_CHUNKS:
        raise ValueError("plaintext needs more than 2^32 chunks")
    out = [hdr]
    for i in range(n):
        out.append(aead.encrypt(nonce(i, i == n - 1), plaintext[i * c:(i + 1) * c], hdr))
    return b"".join(out)


def open(key, purpose, data):  # noqa: A001 - the name the tests use
    """The plaintext of a whole encrypted file; VmfileError on anything a
    reader must refuse (V2, V5)."""
    data = bytes(data)
    h = parse_header(data)
    expected = _purpose_bytes(purpose).decode("ascii")
    if h.purpose != expected:
        raise VmfileError(f"file purpose is {h.purpose!r}, expected {expected!r}",
                          field="purpose")
    body = data[HEADER_LEN:]
    layout = chunk_layout(len(body), h.chunk_size)
    aead = AESGCM(file_key(key, h.salt, expected))
    out = []
    for i, (off, length) in enumerate(layout):
        try:
            out.append(aead.decrypt(nonce(i, i == len(layout) - 1), body[off:off + length],
                                    h.raw))
        except InvalidTag:
            raise VmfileError(f"chunk {i} does not authenticate: the file is damaged, "
                              f"altered or truncated", chunk=i) from None
    return b"".join(out)


def info_dict(h):
    """The header fields as `vmcrypt vmfile info --json` is expected to
    name them."""
    return {"version": h.version, "chunk_size": h.chunk_size, "chunk_shift": h.chunk_shift,
            "purpose": h.purpose, "salt": h.salt.hex()}


# ---- the fuzz seed corpus -------------------------------------------------------

def fuzz_key():
    """fuzz/fuzz.h fuzz_kek_fill(): the fixed key of the fuzz harnesses."""
    return bytes((0x5A ^ (i * 37)) & 0xFF for i in range(KEY_LEN))


FUZZ_PURPOSE = "nvram"


def make_corpus(dest):
    """Seeds for fuzz/fuzz_vmfile.c: valid files of the fuzz key and purpose
    (several sizes and shifts), then broken ones. Deterministic (salts and
    data from a fixed seed), so regenerating changes nothing."""
    rng = random.Random(0x766D66)
    key = fuzz_key()
    seeds = {}

    def sealed(size, shift, purpose=FUZZ_PURPOSE, k=key):
        return seal(k, purpose, rng.randbytes(size), chunk_shift=shift, salt=rng.randbytes(16))

    c12 = 1 << 12
    for name, size, shift in [("empty-12", 0, 12), ("one-12", 1, 12),
                              ("c-minus-1-12", c12 - 1, 12), ("c-12", c12, 12),
                              ("c-plus-1-12", c12 + 1, 12), ("3c-12", 3 * c12, 12),
                              ("3c-plus-100-12", 3 * c12 + 100, 12), ("small-13", 5000, 13),
                              ("small-16", 100, 16), ("empty-20", 0, 20),
                              ("small-20", 33, 20)]:
        seeds[f"valid-{name}"] = sealed(size, shift)
    good = sealed(2 * c12 + 10, 12)
    seeds["bad-truncated-boundary"] = good[:HEADER_LEN + c12 + TAG_LEN]
    seeds["bad-truncated-short-final"] = good[:HEADER_LEN + 2 * (c12 + TAG_LEN) + 7]
    seeds["bad-appended-byte"] = good + b"\x00"
    flipped = bytearray(good)
    flipped[HEADER_LEN + c12 + TAG_LEN + 5] ^= 0x01
    seeds["bad-flipped-chunk1"] = bytes(flipped)
    chunks = [good[HEADER_LEN + i * (c12 + TAG_LEN):HEADER_LEN + (i + 1) * (c12 + TAG_LEN)]
              for i in range(2)]
    seeds["bad-swapped-chunks"] = good[:HEADER_LEN] + chunks[1] + chunks[0] + \
        good[HEADER_LEN + 2 * (c12 + TAG_LEN):]
    seeds["bad-other-purpose"] = sealed(300, 12, purpose="vtpm")
    seeds["bad-other-key"] = sealed(300, 12, k=bytes(range(32)))
    h = bytearray(sealed(10, 12))
    h[OFF_VERSION] = 2
    seeds["bad-version-2"] = bytes(h)
    h = bytearray(sealed(10, 12))
    h[OFF_SHIFT] = 21
    seeds["bad-shift-21"] = bytes(h)
    h = bytearray(sealed(10, 12))
    h[OFF_RESERVED + 2] = 1
    seeds["bad-reserved"] = bytes(h)
    h = bytearray(sealed(10, 12))
    h[OFF_PURPOSE + 1] = ord("V")
    seeds["bad-purpose-char"] = bytes(h)
    # A NUL inside purpose_len: "nvram\0" is not "nvram" (V2: a byte outside
    # the set), and its chunks authenticate under the key those 6 bytes give.
    salt = rng.randbytes(16)
    hdr = bytearray(build_header(12, FUZZ_PURPOSE, salt))
    hdr[OFF_PURPOSE_LEN] = 6
    hdr = bytes(hdr)
    seeds["bad-purpose-nul"] = hdr + AESGCM(file_key_unchecked(key, salt, b"nvram\0")).encrypt(
        nonce(0, True), b"plaintext", hdr)
    seeds["bad-header-only"] = sealed(0, 12)[:HEADER_LEN]
    seeds["bad-short-header"] = sealed(0, 12)[:40]
    os.makedirs(dest, exist_ok=True)
    for name, data in seeds.items():
        with builtins.open(os.path.join(dest, name), "wb") as f:
            f.write(data)
    return sorted(seeds)


# ---- command line --------------------------------------------------------------

def _read(path):
    if path == "-":
        return sys.stdin.buffer.read()
    with builtins.open(path, "rb") as f:
        return f.read()


def _write(path, data):
    if path == "-":
        sys.stdout.buffer.write(data)
        return
    with builtins.open(path, "xb") as f:
        f.write(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("file")
    p.add_argument("--json", action="store_true")
    for name in ("seal", "open"):
        p = sub.add_parser(name)
        p.add_argument("input")
        p.add_argument("output")
        p.add_argument("--key-hex", required=True)
        p.add_argument("--purpose", required=True)
        if name == "seal":
            p.add_argument("--chunk-shift", type=int, default=SHIFT_DEFAULT)
    p = sub.add_parser("make-corpus")
    p.add_argument("dir")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "info":
            d = info_dict(parse_header(_read(a.file)[:HEADER_LEN]))
            print(json.dumps(d) if a.json else
                  "\n".join(f"{k}: {v}" for k, v in d.items()))
        elif a.cmd == "seal":
            _write(a.output, seal(bytes.fromhex(a.key_hex), a.purpose, _read(a.input),
                                  chunk_shift=a.chunk_shift))
        elif a.cmd == "open":
            _write(a.output, open(bytes.fromhex(a.key_hex), a.purpose, _read(a.input)))
        else:
            for n in make_corpus(a.dir):
                print(n)
    except (VmfileError, ValueError, OSError) as e:
        print(f"vc_pyvmfile: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
