# SPDX-License-Identifier: Apache-2.0
"""The disk format as documented (docs/FORMAT.md) against the C code:
disks made by the C CLI are read by the independent Python implementation
(vc_pydisk.py) and disks made by vc_pydisk are read by the C CLI; the
committed worked example (tests/vectors/) stays reproducible and in step
with the document.

Run: /usr/bin/python3 -m pytest tests/integration/test_format_independent.py
VMCRYPT_BUILD names the meson build directory holding cli/vmcrypt
(default: the build/ directory of this source tree)."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VECTORS = os.path.join(ROOT, "tests", "vectors")
FORMAT_MD = os.path.join(ROOT, "docs", "FORMAT.md")
sys.path.insert(0, HERE)

import vc_pydisk as vp  # noqa: E402

BUILD = os.environ.get("VMCRYPT_BUILD", os.path.join(ROOT, "build"))
VMCRYPT = os.path.join(BUILD, "cli", "vmcrypt")


@pytest.fixture
def cli_built():
    """As in conftest.py: a missing binary is a broken build, a failure."""
    if not os.access(VMCRYPT, os.X_OK):
        pytest.fail("no vmcrypt CLI at %s: build it, or set VMCRYPT_BUILD" % VMCRYPT,
                    pytrace=False)


need_cli = pytest.mark.usefixtures("cli_built")


KEK_A = bytes(range(0x10, 0x30))
KEK_B = bytes(range(0x80, 0xa0))
MIB = 1 << 20


# ---- helpers ------------------------------------------------------------------


def kek_file(tmp_path, name, kek):
    p = tmp_path / name
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(kek.hex() + "\n")
    return str(p)


def cli(*args, env=None, check=True):
    p = subprocess.run([VMCRYPT, *map(str, args)], capture_output=True,
                       env=dict(os.environ, **(env or {})), timeout=300)
    if check and p.returncode != 0:
        raise AssertionError("vmcrypt %s failed (%d): %s"
                             % (" ".join(map(str, args)), p.returncode,
                                p.stderr.decode(errors="replace")))
    return p


def info_json(path):
    return json.loads(cli("disk", "info", path, "--json").stdout)


def c_export(path, kek_path, new_kek_path=None):
    """Plaintext as the C CLI reads it, or None when it refuses."""
    args = ["disk", "export", path, "-", "--kek-file", kek_path]
    if new_kek_path:
        args += ["--new-kek-file", new_kek_path]
    p = cli(*args, check=False)
    return p.stdout if p.returncode == 0 else None


def py_read(path, kek, next_kek=None):
    with vp.Disk(path, kek, next_kek) as d:
        return d.read_all()


def source_image(size, ss, seed):
    """Random data with whole-sector zero runs (holes), a zero 1 MiB chunk
    when the image is large enough, and a sector with one non-zero byte."""
    import random
    rnd = random.Random(seed)
    b = bytearray(rnd.randbytes(size))
    nsec = size // ss
    for s in range(1, nsec, 7):
        b[s * ss:(s + 1) * ss] = bytes(ss)
    if size >= 3 * MIB:
        b[MIB:2 * MIB] = bytes(MIB)
    if nsec > 4:
        b[4 * ss:5 * ss] = bytes(ss)
        b[4 * ss + 100] = 1
    return bytes(b)


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


# ---- (1) disks made by the C CLI, read by vc_pydisk -----------------------------


@need_cli
@pytest.mark.parametrize("ss", [512, 4096])
def test_c_import_read_by_python(tmp_path, ss):
    size = 3 * MIB + 5 * ss
    src = source_image(size, ss, seed=ss)
    srcf, disk = tmp_path / "src.raw", str(tmp_path / "d.vmcd")
    # A source that is not a whole number of sectors is zero-padded.
    write_file(srcf, src + b"\x7f" * 100)
    expect = src + b"\x7f" * 100 + bytes(ss - 100)
    ka = kek_file(tmp_path, "a.kek", KEK_A)
    cli("disk", "import", srcf, disk, "--kek-file", ka, "--sector-size", ss,
        "--provider", "prov-x", "--key-id", "kid-123")

    with vp.Disk(disk, KEK_A) as d:
        h = d.h
        assert (h.version, h.vsize, h.ss, h.cipher) == (1, len(expect), ss, 1)
        assert (h.payload, h.joff, h.jsize) == (2 * MIB, MIB, MIB)
        assert h.flags == 0 and h.slots[1].state == 0
        s0 = h.slots[0]
        assert (s0.provider, s0.key_id, s0.generation) == ("prov-x", "kid-123", 1)
        assert all(c.ok for c in d.copies) and d.copies[0].header.seq == d.copies[1].header.seq
        assert os.path.getsize(disk) == h.payload + h.vsize
        assert d.read_all() == expect
        # Hole rule: zero plaintext sectors are stored as zeros; no other
        # sector is stored in the clear.
        for s in range(h.nsectors):
            stored, _ = d.stored_sector(s)
            plain = expect[s * ss:(s + 1) * ss]
            if vp.all_zero(plain):
                assert vp.all_zero(stored), "sector %d: zero plaintext not a hole" % s
            else:
                assert stored != plain and not vp.all_zero(stored)
    with pytest.raises(vp.WrongKey):
        vp.Disk(disk, KEK_B)


@need_cli
@pytest.mark.parametrize("new_kek", [False, True], ids=["same-kek", "new-kek"])
def test_c_deep_rekey_read_by_python(tmp_path, new_kek):
    ss = 4096
    src = source_image(3 * MIB + 8 * ss, ss, seed=7)
    write_file(tmp_path / "src.raw", src)
    disk = str(tmp_path / "d.vmcd")
    ka, kb = kek_file(tmp_path, "a.kek", KEK_A), kek_file(tmp_path, "b.kek", KEK_B)
    cli("disk", "import", tmp_path / "src.raw", disk, "--kek-file", ka,
        "--sector-size", ss, "--key-id", "old")
    with vp.Disk(disk, KEK_A) as d:
        before = d.h
    args = ["disk", "rekey", disk, "--deep", "--kek-file", ka, "--quiet"]
    if new_kek:
        args += ["--new-kek-file", kb, "--key-id", "new"]
    cli(*args)
    kek = KEK_B if new_kek else KEK_A
    with vp.Disk(disk, kek) as d:
        h = d.h
        assert h.flags == 0 and h.progress == 0 and h.slots[1].state == 0
        assert h.slots[0].generation == 2
        assert h.slots[0].key_id == ("new" if new_kek else "old")
        assert h.seq > before.seq and h.uuid == before.uuid
        assert d.read_all() == src
        # The journal held old-key ciphertext; it is cleared at the end.
        assert vp.all_zero(os.pread(d.fd, h.jsize, h.joff))
    if new_kek:
        with pytest.raises(vp.WrongKey):
            vp.Disk(disk, KEK_A)


@need_cli
def test_c_shallow_rekey_read_by_python(tmp_path):
    ss = 512
    src = source_image(64 * ss, ss, seed=3)
    write_file(tmp_path / "src.raw", src)
    disk = str(tmp_path / "d.vmcd")
    ka, kb = kek_file(tmp_path, "a.kek", KEK_A), kek_file(tmp_path, "b.kek", KEK_B)
    cli("disk", "import", tmp_path / "src.raw", disk, "--kek-file", ka, "--sector-size", ss)
    with vp.Disk(disk, KEK_A) as d:
        dek, payload = d.dek[0], os.pread(d.fd, d.h.vsize, d.h.payload)
    cli("disk", "rekey", disk, "--shallow", "--kek-file", ka, "--new-kek-file", kb,
        "--provider", "p2", "--key-id", "k2")
    with vp.Disk(disk, KEK_B) as d:
        assert (d.h.slots[0].provider, d.h.slots[0].key_id) == ("p2", "k2")
        assert d.h.slots[0].generation == 1
        # Same DEK and untouched payload: only the wrapping changed.
        assert d.dek[0] == dek
        assert os.pread(d.fd, d.h.vsize, d.h.payload) == payload
        assert d.read_all() == src
    with pytest.raises(vp.WrongKey):
        vp.Disk(disk, KEK_A)


def _crash_states(tmp_path, src, ss):
    """Import src, then for N = 1, 2, ... run a deep rekey (to KEK_B) on a
    fresh copy killed at its N-th write, until one run completes. Yields
    (N, disk path, KEK file, new KEK file, killed) for each state."""
    base = str(tmp_path / "base.vmcd")
    write_file(tmp_path / "src.raw", src)
    ka, kb = kek_file(tmp_path, "a.kek", KEK_A), kek_file(tmp_path, "b.kek", KEK_B)
    cli("disk", "import", tmp_path / "src.raw", base, "--kek-file", ka, "--sector-size", ss)
    disk = str(tmp_path / "k.vmcd")
    for n in range(1, 200):
        shutil.copyfile(base, disk)
        p = cli("disk", "rekey", disk, "--deep", "--kek-file", ka, "--new-kek-file", kb,
                "--key-id", "target", "--quiet",
                env={"VMCRYPT_TEST_CRASH_AT_WRITE": str(n)}, check=False)
        assert p.returncode in (0, -9), p.stderr
        yield n, disk, ka, kb, p.returncode != 0
        if p.returncode == 0:
            return
    raise AssertionError("deep rekey never completed")


def _read_state(path):
    """Plaintext by vc_pydisk, whichever KEK the state needs."""
    with vp.Disk(path) as d:
        h = d.h
    if h.flags & vp.FLAG_REKEY:
        return py_read(path, KEK_A, KEK_B), h
    try:
        return py_read(path, KEK_A), h
    except vp.WrongKey:
        return py_read(path, KEK_B), h


@need_cli
@pytest.mark.parametrize("layout", ["dense", "hole-chunk"])
def test_crash_during_deep_rekey_every_state_readable(tmp_path, layout):
    """After a crash at any write of a deep rekey, both implementations read
    the original plaintext (from the journal where a step is pending) and
    running the command again finishes the rekey. 'hole-chunk' has an
    all-zero 1 MiB chunk before a data chunk, which a rekey step skips."""
    ss = 4096
    src = bytearray(os.urandom(3 * MIB + MIB // 2))
    if layout == "hole-chunk":
        src[MIB:2 * MIB] = bytes(MIB)
    src = bytes(src)
    problems, saw_journal = [], False
    for n, disk, ka, kb, killed in _crash_states(tmp_path, src, ss):
        finished = False
        try:
            got, h = _read_state(disk)
            saw_journal |= bool(h.flags & vp.FLAG_JOURNAL)
            finished = h.slots[0].generation == 2
            if got != src:
                problems.append("N=%d: vc_pydisk reads other data" % n)
        except Exception as e:  # noqa: BLE001 - reported below
            problems.append("N=%d: vc_pydisk: %r" % (n, e))
        if finished:
            # Killed after the final header reached one copy: done, and
            # the old KEK no longer opens it (so no resume).
            if c_export(disk, kb) != src:
                problems.append("N=%d: C does not read the finished rekey" % n)
        elif killed:
            c = c_export(disk, ka, kb)
            if c is not None and c != src:
                problems.append("N=%d: C export returned wrong data (exit 0)" % n)
            p = cli("disk", "rekey", disk, "--deep", "--kek-file", ka,
                    "--new-kek-file", kb, "--quiet", check=False)
            if p.returncode != 0:
                problems.append("N=%d: resume failed: %s" % (n, p.stderr.decode().strip()))
            elif py_read(disk, KEK_B) != src:
                problems.append("N=%d: wrong data after resume" % n)
    assert saw_journal, "no crash state had a pending journal"
    assert not problems, "\n".join(problems)


@need_cli
def test_resume_of_journaled_last_chunk_finishes_the_same_rekey(tmp_path):
    """A crash while the last chunk is journaled: running the command again
    completes that rekey (target generation 2, key id 'target') rather than
    starting another one."""
    ss = 4096
    src = os.urandom(2 * MIB + 64 * ss)
    found = False
    for n, disk, ka, kb, killed in _crash_states(tmp_path, src, ss):
        if not killed:
            break
        with vp.Disk(disk) as d:
            h = d.h
        if not (h.flags & vp.FLAG_JOURNAL and h.jstart + h.jcount == h.nsectors):
            continue
        found = True
        cli("disk", "rekey", disk, "--deep", "--kek-file", ka, "--new-kek-file", kb, "--quiet")
        with vp.Disk(disk, KEK_B) as d:
            s0 = d.h.slots[0]
            assert (s0.generation, s0.key_id, d.h.flags) == (2, "target", 0), \
                "N=%d: the resumed command ran another rekey" % n
            assert d.read_all() == src
        break
    assert found, "no crash left the last chunk journaled"


# ---- (2) disks made by vc_pydisk, read by the C CLI -----------------------------


@pytest.fixture
def example_disk(tmp_path):
    path = str(tmp_path / "example.vmcd")
    vp.assemble_example(VECTORS, path)
    return path


def vector():
    with open(os.path.join(VECTORS, "disk-example.json")) as f:
        return json.load(f)


def vector_plain():
    with open(os.path.join(VECTORS, "disk-example.plain"), "rb") as f:
        return f.read()


@need_cli
def test_example_vector_read_by_c(tmp_path, example_disk):
    v = vector()
    k = tmp_path / "example.kek"
    k.write_text(v["kek"] + "\n")
    k.chmod(0o600)
    out = tmp_path / "out.raw"
    cli("disk", "export", example_disk, out, "--kek-file", k)
    assert out.read_bytes() == vector_plain()
    cli("disk", "verify", example_disk, "--kek-file", k)

    j = info_json(example_disk)
    assert j["format_version"] == 1
    assert j["uuid"] == v["uuid"]
    assert j["virtual_size"] == v["virtual_size"]
    assert j["sector_size"] == v["sector_size"]
    assert j["cipher"] == "aes-256-xts-plain64"
    assert j["payload_offset"] == v["payload_offset"]
    assert j["sequence"] == v["sequence"]
    assert j["key"] == {"provider": v["provider"], "key_id": v["key_id"],
                        "generation": v["generation"]}
    r = j["rekey"]
    assert (r["active"], r["journal_pending"], r["target"]) == (False, False, None)
    assert r["total_sectors"] == v["virtual_size"] // v["sector_size"]
    assert [(c["copy"], c["ok"], c["problem"]) for c in j["header_copies"]] == \
        [(0, True, None), (1, True, None)]

    wrong = kek_file(tmp_path, "wrong.kek", KEK_B)
    assert cli("disk", "export", example_disk, "-", "--kek-file", wrong,
               check=False).returncode == 1


def test_example_vector_read_by_python(example_disk):
    v = vector()
    with vp.Disk(example_disk, bytes.fromhex(v["kek"])) as d:
        assert d.read_all() == vector_plain()
        assert d.dek[0].hex() == v["dek"]


def _py_rekey_disk(tmp_path, name, plain, ss, progress, journal=None,
                   kek1=KEK_A, torn=True):
    uuid = bytes.fromhex("0f1e2d3c4b5a49788796a5b4c3d2e1f0")
    slots = [vp.SlotSpec(KEK_A, bytes(range(64)), b"\x01" * 12, "local", "old", 4),
             vp.SlotSpec(kek1, bytes(range(64, 128)), b"\x02" * 12, "local", "new", 5)]
    path = str(tmp_path / name)
    vp.write_disk(path, uuid=uuid, ss=ss, plaintext=plain, slots=slots, seq=9,
                  progress=progress, journal=journal, torn=torn)
    return path


@need_cli
@pytest.mark.parametrize("case", ["progress", "journal", "journal-other-kek"])
def test_python_rekey_in_progress_read_by_c(tmp_path, case):
    ss = 512
    plain = source_image(64 * ss, ss, seed=11)
    other = case == "journal-other-kek"
    path = _py_rekey_disk(tmp_path, "r.vmcd", plain, ss, progress=24,
                          journal=None if case == "progress" else 16,
                          kek1=KEK_B if other else KEK_A)
    ka, kb = kek_file(tmp_path, "a.kek", KEK_A), kek_file(tmp_path, "b.kek", KEK_B)
    nk = kb if other else None
    assert py_read(path, KEK_A, KEK_B if other else None) == plain
    assert c_export(path, ka, nk) == plain

    r = info_json(path)["rekey"]
    assert (r["active"], r["progress_sectors"], r["total_sectors"]) == (True, 24, 64)
    assert r["journal_pending"] == (case != "progress")
    assert r["target"] == {"provider": "local", "key_id": "new", "generation": 5}

    # The C writer finishes the rekey this module started (redoing the
    # journaled step first); vc_pydisk reads the result.
    args = ["disk", "rekey", path, "--deep", "--kek-file", ka, "--quiet"]
    if nk:
        args += ["--new-kek-file", nk]
    cli(*args)
    with vp.Disk(path, KEK_B if other else KEK_A) as d:
        assert (d.h.flags, d.h.slots[0].generation, d.h.slots[0].key_id) == (0, 5, "new")
        assert d.dek[0] == bytes(range(64, 128))
        assert d.read_all() == plain


def _rewrite_copy(path, i, mutate, mac_key=None):
    """Apply mutate(bytearray) to header copy i, then fix its checksum (and
    its MAC when mac_key is given)."""
    with open(path, "r+b") as f:
        f.seek(i * vp.HEADER_SIZE)
        b = bytearray(f.read(vp.HEADER_SIZE))
        mutate(b)
        if mac_key:
            b[vp.OFF_MAC:vp.OFF_CHECKSUM] = vp.header_mac(mac_key, b)
        b[vp.OFF_CHECKSUM:] = hashlib.sha256(b[:vp.OFF_CHECKSUM]).digest()
        f.seek(i * vp.HEADER_SIZE)
        f.write(b)


@need_cli
@pytest.mark.parametrize("case", ["copy0-damaged", "copy1-damaged", "copy1-newer",
                                  "copy0-newer", "same-sequence"])
def test_copy_selection_agrees(tmp_path, example_disk, case):
    """Both readers pick the same copy: valid checksum, highest sequence,
    copy 0 on a tie."""
    v = vector()
    mk = bytes.fromhex(v["mac_key"])

    def seq(n):
        return lambda b: struct.pack_into("<Q", b, vp.OFF_SEQ, n)

    def key_id(s):
        def m(b):
            # A different key id needs a rewrap: give the copy another
            # sequence and the same DEK wrapped under the new binding.
            o = vp.OFF_SLOTS + vp.SL_KEY_ID
            b[o:o + vp.KEY_ID_FIELD] = s.encode().ljust(vp.KEY_ID_FIELD, b"\0")
            ad = vp.binding_ad(bytes.fromhex(v["uuid"].replace("-", "")), v["provider"], s, 1)
            w = vp.wrap_key(bytes.fromhex(v["kek"]), ad, bytes.fromhex(v["dek"]), b"\x05" * 12)
            b[vp.OFF_SLOTS + vp.SL_WRAPPED:vp.OFF_SLOTS + vp.SL_END] = w
        return m

    want_copy, want_kid = 0, v["key_id"]
    if case.endswith("damaged"):
        i = int(case[4])
        with open(example_disk, "r+b") as f:
            f.seek(i * vp.HEADER_SIZE + 200)
            f.write(b"\xff")
        want_copy = 1 - i
    elif case.endswith("newer"):
        i = int(case[4])
        _rewrite_copy(example_disk, i, lambda b: (seq(2)(b), key_id("newer-%d" % i)(b)), mk)
        want_copy, want_kid = i, "newer-%d" % i
    else:
        _rewrite_copy(example_disk, 1, key_id("copy-1"), mk)

    with vp.Disk(example_disk, bytes.fromhex(v["kek"])) as d:
        assert d.copy_used == want_copy
        assert d.h.slots[0].key_id == want_kid
        assert d.read_all() == vector_plain()
    j = info_json(example_disk)
    assert j["key"]["key_id"] == want_kid
    copies = j["header_copies"]
    if case.endswith("damaged"):
        assert [c["ok"] for c in copies] == [want_copy == 0, want_copy == 1]
        assert "checksum" in copies[1 - want_copy]["problem"]
    elif case.endswith("newer"):
        # The CLI reports the lagging copy as not ok: stale, not damaged.
        assert copies[want_copy]["ok"] and not copies[1 - want_copy]["ok"]
        assert "stale" in copies[1 - want_copy]["problem"]
    else:
        assert [c["ok"] for c in copies] == [True, True]
    k = tmp_path / "k"
    k.write_text(v["kek"])
    k.chmod(0o600)
    assert c_export(example_disk, str(k)) == vector_plain()


@need_cli
@pytest.mark.parametrize("case", ["mac", "version", "reserved", "flags"])
def test_rejections_agree(tmp_path, example_disk, case):
    """A header changed without the key passes the checksum but not the MAC;
    an unknown version, non-zero reserved bytes or unknown flags make a copy
    invalid. Both readers refuse, and the C CLI leaves the file alone."""
    v = vector()
    kek = bytes.fromhex(v["kek"])
    mutate = {
        # Another valid journal size: only the MAC can tell.
        "mac": lambda b: struct.pack_into("<Q", b, vp.OFF_JSIZE, vp.MIB - 4096),
        "version": lambda b: struct.pack_into("<H", b, vp.OFF_VERSION, 2),
        "reserved": lambda b: b.__setitem__(1000, 1),
        "flags": lambda b: struct.pack_into("<I", b, vp.OFF_FLAGS, 4),
    }[case]
    for i in range(2):
        _rewrite_copy(example_disk, i, mutate)
    with open(example_disk, "rb") as f:
        before = f.read()
    with pytest.raises(vp.AuthError if case == "mac" else vp.FormatError):
        vp.Disk(example_disk, kek)
    k = tmp_path / "k"
    k.write_text(v["kek"])
    k.chmod(0o600)
    p = cli("disk", "export", example_disk, "-", "--kek-file", k, check=False)
    assert p.returncode == 1 and p.stdout == b""
    if case == "version":
        assert b"version" in p.stderr
    p = cli("disk", "rekey", example_disk, "--deep", "--kek-file", k, "--quiet", check=False)
    assert p.returncode == 1
    with open(example_disk, "rb") as f:
        assert f.read() == before


# ---- (3) the committed vector and the document ----------------------------------


def test_vector_files_reproduced(tmp_path):
    vp.make_example(str(tmp_path))
    for name in ("disk-example.header", "disk-example.payload", "disk-example.plain",
                 "disk-example.json"):
        with open(os.path.join(VECTORS, name), "rb") as f:
            committed = f.read()
        assert (tmp_path / name).read_bytes() == committed, name


def test_vector_header_fields():
    v = vector()
    with open(os.path.join(VECTORS, "disk-example.header"), "rb") as f:
        raw = f.read()
    h, st = vp.pick_copy(raw)
    assert [c.ok for c in st] == [True, True]
    assert vp.uuid_str(h.uuid) == v["uuid"]
    assert (h.seq, h.vsize, h.ss, h.payload, h.joff, h.jsize) == (
        v["sequence"], v["virtual_size"], v["sector_size"], v["payload_offset"],
        v["journal_offset"], v["journal_size"])
    s = h.slots[0]
    assert (s.provider, s.key_id, s.generation) == (v["provider"], v["key_id"], v["generation"])
    assert s.wrapped.hex() == v["wrapped_dek"]
    assert raw[vp.OFF_SLOTS + vp.SL_WRAPPED:vp.OFF_SLOTS + vp.SL_WRAPPED + 12].hex() == v["nonce"]
    # Copies differ only in the copy index, checksum and MAC.
    c0, c1 = bytearray(raw[:4096]), bytearray(raw[4096:])
    assert (c0[vp.OFF_COPY], c1[vp.OFF_COPY]) == (0, 1)
    for b in (c0, c1):
        b[vp.OFF_COPY] = 0
        b[vp.OFF_MAC:] = bytes(64)
    assert c0 == c1


def test_format_md_worked_example_is_current():
    with open(FORMAT_MD) as f:
        doc = f.read()
    assert vp.example_markdown() in doc, \
        "docs/FORMAT.md worked example differs from vc_pydisk.example_markdown()"


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl command")
def test_openssl_command_recomputes_checksum_mac_key_and_mac():
    """A third implementation: the openssl commands FORMAT.md shows."""
    v = vector()
    with open(os.path.join(VECTORS, "disk-example.header"), "rb") as f:
        copy0 = f.read(vp.HEADER_SIZE)
    def run(*a, data=None):
        return subprocess.run(["openssl", *a], input=data, capture_output=True,
                              check=True).stdout.decode()

    assert run("dgst", "-sha256", "-r", data=copy0[:vp.OFF_CHECKSUM]).split()[0] == \
        copy0[vp.OFF_CHECKSUM:].hex()
    mk = run("kdf", "-keylen", "32", "-kdfopt", "digest:SHA256",
             "-kdfopt", "hexkey:" + v["dek"],
             "-kdfopt", "hexsalt:" + v["uuid"].replace("-", ""),
             "-kdfopt", "info:vmcrypt disk header mac v1", "HKDF")
    assert mk.strip().replace(":", "").lower() == v["mac_key"]
    mac = run("dgst", "-sha256", "-r", "-mac", "HMAC", "-macopt", "hexkey:" + v["mac_key"],
              data=copy0[:vp.OFF_MAC])
    assert mac.split()[0] == copy0[vp.OFF_MAC:vp.OFF_CHECKSUM].hex()
