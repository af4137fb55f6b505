# SPDX-License-Identifier: Apache-2.0
"""The encrypted VM file format (docs/FORMAT.md, second part) through
`vmcrypt vmfile`, against the independent Python implementation
(vc_pyvmfile.py): files sealed by one open through the other, at edge sizes
and every chunk size; every kind of damage the format promises to detect
makes `vmcrypt vmfile open` fail with one line and leave no output behind.

Run: /usr/bin/python3 -m pytest -q tests/integration/test_vmfile.py
VMCRYPT_BUILD names the meson build directory holding cli/vmcrypt."""

import json
import os
import random
import select
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vc_pyvmfile as pv  # noqa: E402
from vc_util import assert_cli_error, describe, make_markers  # noqa: E402

HDR = pv.HEADER_LEN
TAG = pv.TAG_LEN
PURPOSE = "nvram"
SHIFTS = range(pv.SHIFT_MIN, pv.SHIFT_MAX + 1)


def edge_sizes(c):
    return [0, 1, c - 1, c, c + 1, 3 * c]


class Files:
    """Scratch files of one test, with unique names."""

    def __init__(self, root):
        self.root = root
        self.n = 0

    def path(self, stem):
        self.n += 1
        return os.path.join(self.root, f"{self.n:04d}-{stem}")

    def put(self, data, stem="in"):
        p = self.path(stem)
        with open(p, "wb") as f:
            f.write(data)
        return p


@pytest.fixture
def files(tmp_path):
    return Files(str(tmp_path))


def c_seal(vmcrypt, files, kek, data, purpose=PURPOSE, chunk_size=None):
    """Seal data with the CLI; returns the sealed bytes."""
    src = files.put(data, "plain")
    dst = files.path("sealed")
    args = ["vmfile", "seal", src, dst, "--key-file", kek, "--purpose", purpose]
    if chunk_size is not None:
        args += ["--chunk-size", chunk_size]
    r = vmcrypt.run(*args)
    assert r.returncode == 0, describe(r)
    assert r.stdout == b"" and r.stderr == b"", describe(r)
    with open(dst, "rb") as f:
        return f.read()


def c_open(vmcrypt, files, kek, sealed, purpose=PURPOSE):
    """Open sealed bytes with the CLI into a file; returns the plaintext."""
    src = files.put(sealed, "sealed")
    dst = files.path("opened")
    r = vmcrypt.run("vmfile", "open", src, dst, "--key-file", kek, "--purpose", purpose)
    assert r.returncode == 0, describe(r)
    assert r.stdout == b"", describe(r)
    with open(dst, "rb") as f:
        return f.read()


def expect_refused(vmcrypt, files, kek, sealed, what, purpose=PURPOSE, key=None):
    """Both readers refuse sealed: the CLI with status 1, one line, no
    output file left; the Python reader with VmfileError. Returns the CLI's
    error line."""
    with pytest.raises(pv.VmfileError):
        pv.open(key if key is not None else kek.key, purpose, sealed)
    src = files.put(sealed, "damaged")
    dst = files.path("out")
    r = vmcrypt.run("vmfile", "open", src, dst, "--key-file", kek, "--purpose", purpose)
    try:
        line = assert_cli_error(r, 1)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None
    assert not os.path.lexists(dst), f"{what}: a failed open left {dst} behind"
    return line


def split_chunks(sealed, c):
    body = sealed[HDR:]
    return sealed[:HDR], [body[o:o + n] for o, n in pv.chunk_layout(len(body), c)]


# ---- interoperability -----------------------------------------------------------


@pytest.mark.parametrize("shift", SHIFTS)
def test_python_sealed_opens_in_c(vmcrypt, keks, files, shift):
    c = 1 << shift
    rng = random.Random(shift)
    for size in edge_sizes(c):
        data = rng.randbytes(size)
        sealed = pv.seal(keks.a.key, PURPOSE, data, chunk_shift=shift)
        assert c_open(vmcrypt, files, keks.a, sealed) == data, f"shift {shift}, {size} bytes"


@pytest.mark.parametrize("shift", SHIFTS)
def test_c_sealed_opens_in_python(vmcrypt, keks, files, shift):
    c = 1 << shift
    rng = random.Random(100 + shift)
    # Both spellings of a size the CLI takes.
    spelled = str(c) if shift % 2 else f"{c >> 10}K"
    for size in edge_sizes(c):
        data = rng.randbytes(size)
        sealed = c_seal(vmcrypt, files, keks.a, data, chunk_size=spelled)
        what = f"shift {shift}, {size} bytes"
        h = pv.parse_header(sealed)
        assert (h.chunk_shift, h.purpose) == (shift, PURPOSE), what
        assert len(sealed) == pv.sealed_len(size, c), what
        assert pv.open(keks.a.key, PURPOSE, sealed) == data, what


def test_random_sizes_both_ways(vmcrypt, keks, files):
    rng = random.Random(7)
    for _ in range(12):
        shift = rng.choice([12, 13, 16])
        c = 1 << shift
        size = rng.randrange(0, 5 * c)
        data = rng.randbytes(size)
        what = f"shift {shift}, {size} bytes"
        sealed = c_seal(vmcrypt, files, keks.b, data, chunk_size=str(c))
        assert pv.open(keks.b.key, PURPOSE, sealed) == data, what
        sealed = pv.seal(keks.b.key, PURPOSE, data, chunk_shift=shift)
        assert c_open(vmcrypt, files, keks.b, sealed) == data, what


def test_default_chunk_size_and_purposes(vmcrypt, keks, files):
    data = random.Random(3).randbytes(200000)
    for purpose in ["nvram", "vtpm", "memory", "dump", "a", "x" * 32, "v1.2_3-b"]:
        sealed = c_seal(vmcrypt, files, keks.a, data, purpose=purpose)
        h = pv.parse_header(sealed)
        assert (h.chunk_shift, h.purpose) == (pv.SHIFT_DEFAULT, purpose)
        assert pv.open(keks.a.key, purpose, sealed) == data
        assert c_open(vmcrypt, files, keks.a, sealed, purpose=purpose) == data


def test_key_file_forms_are_the_same_key(vmcrypt, keks, files):
    """A raw key file and a hex one holding the same 32 bytes."""
    key = os.urandom(32)
    raw = keks.new("same.raw", key=key)
    hexed = keks.new("same.hex", key=key, form="hex")
    data = b"efi variables" * 100
    sealed = c_seal(vmcrypt, files, raw, data)
    assert c_open(vmcrypt, files, hexed, sealed) == data
    assert pv.open(key, PURPOSE, sealed) == data


def test_every_file_gets_a_new_salt(vmcrypt, keks, files):
    data = bytes(10000)
    a = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    b = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    ha, hb = pv.parse_header(a), pv.parse_header(b)
    assert ha.salt != hb.salt, "two files sealed with the same salt"
    assert a[HDR:HDR + 64] != b[HDR:HDR + 64]


def test_no_plaintext_in_sealed_file(vmcrypt, keks, files):
    rng = random.Random(11)
    markers = make_markers(rng, 8)
    size = 3 * 4096 + 500
    data = bytearray(rng.randbytes(size))
    offsets = [0, 4096 - 10, 4096, 5000, 8192 - 3, 3 * 4096, size - len(markers[6]) - 1]
    for m, off in zip(markers, offsets):
        data[off:off + len(m)] = m
    data = bytes(data) + markers[7]
    for chunk_size in ["4K", None]:
        sealed = c_seal(vmcrypt, files, keks.a, data, chunk_size=chunk_size)
        for m in markers:
            assert m not in sealed, f"plaintext marker {m!r} in the sealed file"
        assert pv.open(keks.a.key, PURPOSE, sealed) == data


# ---- tampering -------------------------------------------------------------------

C12 = 1 << 12


@pytest.fixture
def four_chunks(vmcrypt, keks, files):
    """A C-sealed file of 4 chunks of 4 KiB (the last one partial) and its
    plaintext."""
    data = random.Random(5).randbytes(3 * C12 + 100)
    sealed = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    assert pv.open(keks.a.key, PURPOSE, sealed) == data
    return sealed, data


def test_every_header_byte_flip_is_refused(vmcrypt, keks, files, four_chunks):
    sealed, _ = four_chunks
    for i in range(HDR):
        for mask in (0x01, 0x80):
            bad = bytearray(sealed)
            bad[i] ^= mask
            expect_refused(vmcrypt, files, keks.a, bytes(bad), f"header byte {i} ^ {mask:#x}")


def test_a_byte_flip_in_each_chunk_is_refused(vmcrypt, keks, files, four_chunks):
    sealed, _ = four_chunks
    _, chunks = split_chunks(sealed, C12)
    assert len(chunks) == 4
    rng = random.Random(9)
    start = HDR
    for i, ch in enumerate(chunks):
        # One byte of ciphertext, one of the tag.
        for off in (rng.randrange(len(ch) - TAG), len(ch) - TAG + rng.randrange(TAG)):
            bad = bytearray(sealed)
            bad[start + off] ^= 1 << rng.randrange(8)
            line = expect_refused(vmcrypt, files, keks.a, bytes(bad),
                                  f"chunk {i} byte {off}")
            assert f"chunk {i}" in line, f"the error does not name chunk {i}: {line}"
        start += len(ch)


def test_truncation_is_refused(vmcrypt, keks, files, four_chunks):
    sealed, _ = four_chunks
    full = C12 + TAG
    cuts = {0, 1, HDR - 1, HDR, HDR + 1, HDR + TAG - 1, HDR + TAG, len(sealed) - 1,
            len(sealed) - TAG, len(sealed) - TAG - 1}
    cuts |= {HDR + i * full for i in range(1, 4)}
    cuts |= {HDR + i * full + d for i in range(1, 4) for d in (-1, 1, TAG - 1, TAG)}
    rng = random.Random(13)
    cuts |= {rng.randrange(len(sealed)) for _ in range(6)}
    for cut in sorted(cuts):
        assert cut < len(sealed)
        expect_refused(vmcrypt, files, keks.a, sealed[:cut], f"truncated to {cut} bytes")


def test_extension_is_refused(vmcrypt, keks, files, four_chunks):
    sealed, _ = four_chunks
    hdr, chunks = split_chunks(sealed, C12)
    cases = {
        "one byte appended": sealed + b"\x00",
        "a tag's worth appended": sealed + bytes(TAG),
        "a copy of chunk 0 appended": sealed + chunks[0],
        "a copy of the final chunk appended": sealed + chunks[3],
        "a whole chunk of another file appended":
            sealed + split_chunks(pv.seal(keks.a.key, PURPOSE, bytes(C12 + 1),
                                          chunk_shift=12), C12)[1][0],
    }
    for what, bad in cases.items():
        expect_refused(vmcrypt, files, keks.a, bad, what)


def test_reordered_duplicated_removed_chunks_are_refused(vmcrypt, keks, files, four_chunks):
    sealed, _ = four_chunks
    hdr, ch = split_chunks(sealed, C12)
    cases = {
        "chunks 0 and 1 swapped": [ch[1], ch[0], ch[2], ch[3]],
        "chunks 1 and 2 swapped": [ch[0], ch[2], ch[1], ch[3]],
        "chunk 1 duplicated": [ch[0], ch[1], ch[1], ch[2], ch[3]],
        "chunk 0 removed": [ch[1], ch[2], ch[3]],
        "chunk 2 removed": [ch[0], ch[1], ch[3]],
        "final chunk moved first": [ch[3], ch[0], ch[1], ch[2]],
    }
    for what, parts in cases.items():
        expect_refused(vmcrypt, files, keks.a, hdr + b"".join(parts), what)


def test_full_final_chunk_cannot_be_dropped(vmcrypt, keks, files):
    """A plaintext that is a multiple of C ends with a full final chunk:
    cutting it off leaves a file whose last chunk was not sealed as final."""
    data = random.Random(21).randbytes(2 * C12)
    sealed = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    assert len(sealed) == HDR + 2 * (C12 + TAG)
    expect_refused(vmcrypt, files, keks.a, sealed[:HDR + C12 + TAG], "final chunk dropped")


def test_another_purpose_key_or_header_is_refused(vmcrypt, keks, files):
    data = random.Random(17).randbytes(C12 + 7)
    other = keks.new("other.kek")
    vtpm = c_seal(vmcrypt, files, keks.a, data, purpose="vtpm", chunk_size="4K")
    line = expect_refused(vmcrypt, files, keks.a, vtpm, "vtpm file opened as nvram")
    assert "vtpm" in line and "nvram" in line, f"the error must name both purposes: {line}"
    sealed = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    expect_refused(vmcrypt, files, other, sealed, "another key", key=other.key)
    # The header of another file of the same key and purpose: another salt,
    # so another file key and another AD.
    again = c_seal(vmcrypt, files, keks.a, data, chunk_size="4K")
    expect_refused(vmcrypt, files, keks.a, again[:HDR] + sealed[HDR:], "header of another file")
    # The purpose field edited to match what the reader expects.
    relabelled = bytearray(vtpm)
    relabelled[:HDR] = pv.build_header(12, PURPOSE, pv.parse_header(vtpm).salt)
    expect_refused(vmcrypt, files, keks.a, bytes(relabelled), "purpose rewritten")


def test_refused_headers_built_by_hand(vmcrypt, keks, files):
    """Each V2 refusal, with chunks that authenticate under the header the
    Python writer made, so nothing but the header check can refuse them."""
    salt = bytes(range(16))
    base = bytearray(pv.build_header(12, PURPOSE, salt))

    def variant(**edits):
        h = bytearray(base)
        for off, val in edits.get("set", []):
            h[off] = val
        return bytes(h)

    cases = {
        "version 2": variant(set=[(pv.OFF_VERSION, 2)]),
        "version 0": variant(set=[(pv.OFF_VERSION, 0)]),
        "version 256": variant(set=[(pv.OFF_VERSION, 0), (pv.OFF_VERSION + 1, 1)]),
        "shift 11": variant(set=[(pv.OFF_SHIFT, 11)]),
        "shift 21": variant(set=[(pv.OFF_SHIFT, 21)]),
        "shift 255": variant(set=[(pv.OFF_SHIFT, 255)]),
        "purpose_len 0": variant(set=[(pv.OFF_PURPOSE_LEN, 0)]),
        "purpose_len 33": variant(set=[(pv.OFF_PURPOSE_LEN, 33)]),
        "purpose_len 4": variant(set=[(pv.OFF_PURPOSE_LEN, 4)]),
        "reserved": variant(set=[(pv.OFF_RESERVED + 3, 0x10)]),
        "padding": variant(set=[(pv.OFF_PURPOSE + 31, 1)]),
        "upper case purpose": variant(set=[(pv.OFF_PURPOSE, ord("N"))]),
        "NUL in purpose": variant(set=[(pv.OFF_PURPOSE + 2, 0)]),
        "purpose_len 6, a NUL as its last byte": variant(set=[(pv.OFF_PURPOSE_LEN, 6)]),
        "magic": variant(set=[(7, ord("e"))]),
    }
    problems = []
    for what, hdr in cases.items():
        # Chunk bytes sealed by hand under the edited header as AD and the
        # key its purpose bytes give, so only the header checks stand in
        # the way.
        plen = min(hdr[pv.OFF_PURPOSE_LEN], pv.PURPOSE_MAX)
        aead = AESGCM(pv.file_key_unchecked(keks.a.key, salt,
                                            hdr[pv.OFF_PURPOSE:pv.OFF_PURPOSE + plen]))
        body = aead.encrypt(pv.nonce(0, True), b"secret", hdr)
        # Every case is tried and reported before the test fails.
        try:
            expect_refused(vmcrypt, files, keks.a, hdr + body, what)
        except AssertionError as e:
            problems.append(f"open of a header with {what}: {e}")
        r = vmcrypt.run("vmfile", "info", files.put(hdr + body))
        try:
            assert_cli_error(r, 1)
        except AssertionError as e:
            problems.append(f"info of a header with {what}: {e}")
    assert not problems, "\n".join(problems)


# ---- pipes ------------------------------------------------------------------------


def test_seal_from_stdin_open_to_stdout(vmcrypt, keks, files):
    # More than a pipe buffer, and not a multiple of the chunk size.
    data = random.Random(23).randbytes(300000 + 17)
    dst = files.path("sealed")
    r = vmcrypt.run("vmfile", "seal", "-", dst, "--key-file", keks.a, "--purpose", PURPOSE,
                    "--chunk-size", "16K", input=data)
    assert r.returncode == 0, describe(r)
    with open(dst, "rb") as f:
        sealed = f.read()
    assert pv.parse_header(sealed).chunk_shift == 14
    assert pv.open(keks.a.key, PURPOSE, sealed) == data
    r = vmcrypt.run("vmfile", "open", dst, "-", "--key-file", keks.a, "--purpose", PURPOSE)
    assert r.returncode == 0, describe(r)
    assert r.stdout == data
    # Both ends pipes.
    r = vmcrypt.run("vmfile", "open", "-", "-", "--key-file", keks.a, "--purpose", PURPOSE,
                    input=sealed)
    assert r.returncode == 0, describe(r)
    assert r.stdout == data


def test_empty_stdin(vmcrypt, keks, files):
    dst = files.path("sealed")
    r = vmcrypt.run("vmfile", "seal", "-", dst, "--key-file", keks.a, "--purpose", PURPOSE,
                    input=b"")
    assert r.returncode == 0, describe(r)
    with open(dst, "rb") as f:
        sealed = f.read()
    assert len(sealed) == HDR + TAG
    assert pv.open(keks.a.key, PURPOSE, sealed) == b""
    r = vmcrypt.run("vmfile", "open", "-", "-", "--key-file", keks.a, "--purpose", PURPOSE,
                    input=sealed)
    assert r.returncode == 0 and r.stdout == b"", describe(r)


def test_damage_through_pipes(vmcrypt, keks, files, four_chunks):
    """From stdin the reader cannot stat the file: it must still find the
    final chunk by reading ahead. On stdout it may have written the chunks
    before the bad one, but nothing of the bad one or after it."""
    sealed, data = four_chunks
    full = C12 + TAG
    cases = {
        # Chunk 1 is now last, and was not sealed as final.
        "cut at the chunk 2 boundary": (sealed[:HDR + 2 * full], 1),
        "cut inside the final tag": (sealed[:-3], 3),
        "byte appended": (sealed + b"x", 3),
        "chunk 1 flipped": (sealed[:HDR + full + 9] + bytes([sealed[HDR + full + 9] ^ 4]) +
                            sealed[HDR + full + 10:], 1),
        "header only": (sealed[:HDR], 0),
        "half a header": (sealed[:HDR // 2], 0),
    }
    for what, (bad, first_bad) in cases.items():
        r = vmcrypt.run("vmfile", "open", "-", "-", "--key-file", keks.a, "--purpose",
                        PURPOSE, input=bad)
        assert r.returncode == 1, f"{what}: " + describe(r)
        lines = r.stderr.decode("utf-8", "replace").split("\n")
        assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("vmcrypt: "), \
            f"{what}: " + describe(r)
        out = r.stdout
        assert len(out) % C12 == 0 and len(out) <= first_bad * C12 and \
            out == data[:len(out)], \
            f"{what}: {len(out)} bytes on stdout: more than the chunks before chunk {first_bad}"
        # The same into a file from stdin: removed.
        dst = files.path("out")
        r = vmcrypt.run("vmfile", "open", "-", dst, "--key-file", keks.a, "--purpose",
                        PURPOSE, input=bad)
        assert_cli_error(r, 1)
        assert not os.path.lexists(dst), f"{what}: {dst} left behind"


def test_streaming_open_does_not_wait_for_eof_to_write(vmcrypt, keks, files):
    """open writes plaintext as chunks authenticate: with the input still
    open, the first chunk arrives on stdout (so memory images of any size
    stream through a pipe)."""
    data = random.Random(29).randbytes(8 * C12)
    sealed = pv.seal(keks.a.key, PURPOSE, data, chunk_shift=12)
    p = subprocess.Popen([vmcrypt.path, "vmfile", "open", "-", "-", "--key-file", str(keks.a),
                          "--purpose", PURPOSE], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=vmcrypt.env())
    try:
        # Chunks 0..2 and part of chunk 3: chunk 0 is surely not final.
        p.stdin.write(sealed[:HDR + 3 * (C12 + TAG) + 10])
        p.stdin.flush()
        first = b""
        while len(first) < C12:
            ready, _, _ = select.select([p.stdout], [], [], 20)
            assert ready, "no plaintext on stdout 20 s after chunk 0 was complete"
            b = os.read(p.stdout.fileno(), C12 - len(first))
            assert b, "stdout closed early: " + p.stderr.read().decode("utf-8", "replace")
            first += b
        assert first == data[:C12]
        p.stdin.write(sealed[HDR + 3 * (C12 + TAG) + 10:])
        p.stdin.close()
        rest = p.stdout.read()  # EOF once the CLI exits
        assert p.wait(timeout=30) == 0, p.stderr.read()
        assert first + rest == data
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


# ---- info and the command line ------------------------------------------------------


def test_info_matches_the_python_parse(vmcrypt, keks, files):
    for shift, purpose in [(12, "nvram"), (16, "vtpm"), (20, "x" * 32)]:
        sealed = c_seal(vmcrypt, files, keks.a, b"abc", purpose=purpose,
                        chunk_size=str(1 << shift))
        p = files.put(sealed, "sealed")
        h = pv.parse_header(sealed)
        r = vmcrypt.run("vmfile", "info", p, "--json")
        assert r.returncode == 0, describe(r)
        try:
            got = json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError(f"info --json printed invalid JSON ({e}): {r.stdout[:300]!r}")
        want = pv.info_dict(h)
        for k in ("version", "chunk_size", "purpose", "salt"):
            assert got.get(k) == want[k], f"info --json {k}: {got.get(k)!r}, want {want[k]!r}"
        r = vmcrypt.run("vmfile", "info", p)
        assert r.returncode == 0, describe(r)
        text = r.stdout.decode()
        for v in (h.salt.hex(), purpose):
            assert v in text, f"info does not show {v}: {text!r}"
    # From a Python-sealed file too: info needs no key.
    salt = bytes(range(0xA0, 0xB0))
    p = files.put(pv.seal(os.urandom(32), "dump", b"", chunk_shift=13, salt=salt))
    r = vmcrypt.run("vmfile", "info", p, "--json")
    assert r.returncode == 0, describe(r)
    got = json.loads(r.stdout)
    assert (got.get("salt"), got.get("purpose"), got.get("chunk_size"), got.get("version")) \
        == (salt.hex(), "dump", 8192, 1)


def test_seal_refuses_an_existing_output(vmcrypt, keks, files):
    src = files.put(b"data")
    dst = files.put(b"precious", "existing")
    r = vmcrypt.run("vmfile", "seal", src, dst, "--key-file", keks.a, "--purpose", PURPOSE)
    assert_cli_error(r, {1, 2})
    with open(dst, "rb") as f:
        assert f.read() == b"precious"


@pytest.mark.parametrize("size", ["2K", "3000", "2M", "0", "8193", "abc", "-4K"])
def test_seal_refuses_bad_chunk_sizes(vmcrypt, keks, files, size):
    src = files.put(b"data")
    dst = files.path("sealed")
    r = vmcrypt.run("vmfile", "seal", src, dst, "--key-file", keks.a, "--purpose", PURPOSE,
                    "--chunk-size", size)
    assert_cli_error(r, {1, 2})
    assert not os.path.lexists(dst)


@pytest.mark.parametrize("purpose", ["", "NVRAM", "a b", "x" * 33, "nv/ram", "é"])
def test_bad_purposes_are_refused(vmcrypt, keks, files, purpose):
    src = files.put(b"data")
    dst = files.path("sealed")
    r = vmcrypt.run("vmfile", "seal", src, dst, "--key-file", keks.a, "--purpose", purpose)
    assert_cli_error(r, {1, 2})
    assert not os.path.lexists(dst)
    sealed = files.put(pv.seal(keks.a.key, PURPOSE, b"data"))
    dst = files.path("opened")
    r = vmcrypt.run("vmfile", "open", sealed, dst, "--key-file", keks.a, "--purpose", purpose)
    assert_cli_error(r, {1, 2})
    assert not os.path.lexists(dst)


def test_key_file_must_be_private(vmcrypt, keks, files):
    loose = keks.new("loose.kek", mode=0o644)
    src = files.put(b"data")
    dst = files.path("sealed")
    r = vmcrypt.run("vmfile", "seal", src, dst, "--key-file", loose, "--purpose", PURPOSE)
    assert_cli_error(r, {1, 2})
    assert not os.path.lexists(dst)
    short = keks.raw("short.kek", b"\x01" * 31)
    r = vmcrypt.run("vmfile", "seal", src, dst, "--key-file", short, "--purpose", PURPOSE)
    assert_cli_error(r, {1, 2})
    assert not os.path.lexists(dst)
