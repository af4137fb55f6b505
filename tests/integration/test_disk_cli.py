# SPDX-License-Identifier: Apache-2.0
# `vmcrypt disk` end to end: create/info/import/export round trips, what
# the encrypted file may never contain, verify, and shallow/deep rekey.
import hashlib
import json
import os
import random
import re
import shutil

import pytest

from vc_util import (assert_cli_error, describe, make_image, make_markers,
                     pad, sector_digests, sha256, sha256_file)

MiB = 1 << 20
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def marker_offsets(size, count, rng):
    """Marker positions: some cross sector boundaries or sit at odd
    offsets, the rest are random."""
    fixed = [1, 511 - 10, 4096 - 17, 4096 + 4093, 3 * 512 + 7]
    offs = [o for o in fixed if o + 64 < size][:count]
    while len(offs) < count:
        offs.append(rng.randrange(0, size - 64))
    return offs


def build_image(size, seed, nmarkers=6, **kw):
    rng = random.Random(seed ^ 0x5a5a)
    markers = make_markers(rng, nmarkers)
    offs = marker_offsets(size, nmarkers, rng)
    return make_image(size, seed, markers, offs, **kw), markers


def import_image(vmcrypt, tmp_path, data, kek, name="disk.vmc", extra=()):
    src = tmp_path / (name + ".raw")
    src.write_bytes(data)
    disk = tmp_path / name
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", kek, *extra)
    return disk


def assert_never_in(blob, secrets, what):
    for s in secrets:
        assert s not in blob, f"{what}: found {s[:40]!r} in the encrypted disk file"


def scan_disk(disk, markers, keks, plain, sector):
    """The whole encrypted file holds none of the markers, none of the KEKs
    (raw, hex, HEX) and no plaintext sector verbatim."""
    blob = open(disk, "rb").read()
    assert_never_in(blob, markers, "plaintext marker")
    for k in keks:
        assert_never_in(blob, [k.key, k.key.hex().encode(), k.key.hex().upper().encode()],
                        "KEK")
    leaked = sector_digests(plain, sector) & sector_digests(blob, sector)
    assert not leaked, f"{len(leaked)} plaintext sectors appear verbatim in the disk file"


# ---- create / info ---------------------------------------------------------

@pytest.mark.parametrize("size,expect", [
    ("1048576", MiB), ("4K", 4096), ("1M", MiB), ("3MiB", 3 * MiB),
    ("64KiB", 64 * 1024), ("1G", 1 << 30), ("1GiB", 1 << 30), ("2T", 2 << 40),
])
def test_create_size_suffixes(vmcrypt, keks, tmp_path, size, expect):
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "create", disk, "--size", size, "--kek-file", keks.a)
    info = vmcrypt.info(disk)
    assert info["virtual_size"] == expect
    # Sparse: even a 2 TiB disk costs almost nothing until written.
    assert os.stat(disk).st_blocks * 512 < 8 * MiB
    assert os.stat(disk).st_size >= expect


@pytest.mark.parametrize("sector", [512, 4096])
def test_info_json_matches_create(vmcrypt, keks, tmp_path, sector):
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "create", disk, "--size", "5M", "--sector-size", sector,
               "--kek-file", keks.b, "--provider", "kmip-east", "--key-id",
               "tenant7/vm-42/kek")
    info = vmcrypt.info(disk)
    assert info["virtual_size"] == 5 * MiB
    assert info["sector_size"] == sector
    assert info["format_version"] == 1
    assert info["cipher"] == "aes-256-xts-plain64"
    assert UUID_RE.match(info["uuid"]), info["uuid"]
    assert os.path.basename(info["file"]) == "d.vmc"
    assert info["key"]["provider"] == "kmip-east"
    assert info["key"]["key_id"] == "tenant7/vm-42/kek"
    assert isinstance(info["key"]["generation"], int) and info["key"]["generation"] >= 1
    assert isinstance(info["sequence"], int)
    assert info["payload_offset"] % 4096 == 0 and info["payload_offset"] >= 8192
    assert os.stat(disk).st_size >= info["payload_offset"] + 5 * MiB
    rk = info["rekey"]
    assert rk["active"] is False and rk["journal_pending"] is False and rk["target"] is None
    assert rk["total_sectors"] == 5 * MiB // sector
    copies = info["header_copies"]
    assert [c["copy"] for c in copies] == [0, 1]
    assert all(c["ok"] is True and c["problem"] is None for c in copies)


def test_create_defaults(vmcrypt, keks, tmp_path):
    infos = []
    for n in ("d1", "d2"):
        vmcrypt.ok("disk", "create", tmp_path / n, "--size", "1M", "--kek-file", keks.a)
        infos.append(vmcrypt.info(tmp_path / n))
    for info in infos:
        assert info["sector_size"] == 4096
        assert info["key"]["provider"] == "local"
        assert UUID_RE.match(info["key"]["key_id"]), info["key"]["key_id"]
    assert infos[0]["key"]["key_id"] != infos[1]["key"]["key_id"]
    assert infos[0]["uuid"] != infos[1]["uuid"]


def test_new_disk_reads_zeros(vmcrypt, keks, tmp_path):
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "create", disk, "--size", "256K", "--sector-size", "512",
               "--kek-file", keks.c)
    assert vmcrypt.export_bytes(disk, keks.c) == bytes(256 * 1024)


def test_info_text_and_help(vmcrypt, keks, tmp_path):
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "create", disk, "--size", "1M", "--kek-file", keks.a,
               "--key-id", "visible-key-id")
    r = vmcrypt.ok("disk", "info", disk)
    assert b"visible-key-id" in r.stdout
    r = vmcrypt.ok("--version")
    assert r.stdout.strip()
    for cmd in ("create", "info", "import", "export", "verify", "rekey"):
        for opt in ("-h", "--help"):
            r = vmcrypt.run("disk", cmd, opt)
            assert r.returncode == 0, describe(r)
            assert r.stdout.strip(), "help goes to stdout: " + describe(r)


# ---- import / export ---------------------------------------------------------

@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("size", [3 * MiB + 1234, 777, 4096 * 5, 1])
def test_import_export_round_trip(vmcrypt, keks, tmp_path, sector, size):
    data, markers = build_image(size, seed=size * 31 + sector, nmarkers=6 if size > 4096 else 0)
    disk = import_image(vmcrypt, tmp_path, data, keks.a, extra=("--sector-size", sector))
    info = vmcrypt.info(disk)
    padded = pad(data, sector)
    assert info["virtual_size"] == len(padded), "size is rounded up to the sector size"
    assert info["sector_size"] == sector
    out = tmp_path / "out.raw"
    vmcrypt.ok("disk", "export", disk, out, "--kek-file", keks.a)
    assert os.path.getsize(out) == len(padded)
    assert sha256_file(out) == sha256(padded)
    assert open(out, "rb").read()[size:] == bytes(len(padded) - size), "tail is zeros"
    scan_disk(disk, markers, [keks.a], padded, sector)


def test_import_stdin_export_stdout(vmcrypt, keks, tmp_path):
    data, markers = build_image(2 * MiB + 100, seed=7)
    disk = tmp_path / "d.vmc"
    size = len(pad(data, 4096))
    vmcrypt.ok("disk", "import", "-", disk, "--kek-file", keks.b, "--size", size,
               input=data)
    assert vmcrypt.info(disk)["virtual_size"] == size
    r = vmcrypt.ok("disk", "export", disk, "-", "--kek-file", keks.b)
    assert sha256(r.stdout) == sha256(pad(data, 4096))
    assert r.stderr == b"", "no progress output when stderr is not a terminal"
    scan_disk(disk, markers, [keks.b], pad(data, 4096), 4096)


def test_import_shorter_than_size_is_zero_filled(vmcrypt, keks, tmp_path):
    data, _ = build_image(100_000, seed=8, nmarkers=2)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    for name, source, inp in (("f.vmc", src, None), ("s.vmc", "-", data)):
        disk = tmp_path / name
        vmcrypt.ok("disk", "import", source, disk, "--kek-file", keks.a, "--size", "1M",
                   "--sector-size", "512", input=inp)
        assert vmcrypt.info(disk)["virtual_size"] == MiB
        assert vmcrypt.export_bytes(disk, keks.a) == data + bytes(MiB - len(data))


def test_import_size_exactly_input(vmcrypt, keks, tmp_path):
    data, _ = build_image(8192, seed=9, nmarkers=1)
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "import", "-", disk, "--kek-file", keks.a, "--size", "8K",
               input=data)
    assert vmcrypt.export_bytes(disk, keks.a) == data


def test_success_is_quiet_on_stderr(vmcrypt, keks, tmp_path):
    data, _ = build_image(64 * 1024, seed=10, nmarkers=1)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    d = tmp_path / "d.vmc"
    cmds = [
        ("disk", "create", tmp_path / "c.vmc", "--size", "1M", "--kek-file", keks.a),
        ("disk", "import", src, d, "--kek-file", keks.a),
        ("disk", "info", d),
        ("disk", "export", d, tmp_path / "o.raw", "--kek-file", keks.a),
        ("disk", "verify", d, "--kek-file", keks.a),
        ("disk", "rekey", d, "--shallow", "--kek-file", keks.a, "--new-kek-file", keks.b),
        ("disk", "rekey", d, "--deep", "--kek-file", keks.b),
    ]
    for c in cmds:
        r = vmcrypt.ok(*c)
        assert r.stderr == b"", "stderr must stay empty on success without a terminal: " + describe(r)


def sparse_round_trip(vmcrypt, keks, tmp_path):
    size = 64 * MiB
    buf = bytearray(size)
    rng = random.Random(11)
    spots = [0, 5 * MiB + 4096, 17 * MiB, 40 * MiB + 512, size - 4096]
    for off in spots:
        buf[off:off + 4096] = rng.randbytes(4096)
    data = bytes(buf)
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:  # the source itself sparse: only write data
        f.truncate(size)
        for off in spots:
            f.seek(off)
            f.write(data[off:off + 4096])
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", keks.a)
    st = os.stat(disk)
    assert st.st_size >= size
    assert st.st_blocks * 512 < 4 * MiB, \
        f"imported disk allocates {st.st_blocks * 512} bytes for a mostly-zero {size}-byte image"
    out = tmp_path / "out.raw"
    vmcrypt.ok("disk", "export", disk, out, "--kek-file", keks.a)
    assert sha256_file(out) == sha256(data)
    return out


def test_sparse_import_and_export(vmcrypt, keks, tmp_path):
    sparse_round_trip(vmcrypt, keks, tmp_path)


def test_export_is_sparse(vmcrypt, keks, tmp_path):
    """"written sparse": zero sectors of the disk are not allocated in DEST
    (here five 4 KiB islands of data in 64 MiB)."""
    out = sparse_round_trip(vmcrypt, keks, tmp_path)
    used = os.stat(out).st_blocks * 512
    assert used < 4 * MiB, f"export allocates {used} bytes for 20 KiB of data"


@pytest.mark.parametrize("form", ["raw", "hex", "hex-nonl", "HEX"])
def test_kek_file_forms(vmcrypt, keks, tmp_path, form):
    key = os.urandom(32)
    k1 = keks.new("k1", key=key, form=form)
    k2 = keks.new("k2", key=key, form="raw" if form != "raw" else "hex")
    data, _ = build_image(10_000, seed=12, nmarkers=1)
    disk = import_image(vmcrypt, tmp_path, data, k1)
    # The same key in another encoding opens the disk.
    assert vmcrypt.export_bytes(disk, k2) == pad(data, 4096)


def test_kek_file_read_only_mode(vmcrypt, keks, tmp_path):
    """0400 has no group or other bits: accepted like 0600."""
    k = keks.new("ro.kek", mode=0o400)
    disk = tmp_path / "d.vmc"
    vmcrypt.ok("disk", "create", disk, "--size", "64K", "--kek-file", k)
    vmcrypt.ok("disk", "verify", disk, "--kek-file", k)


def test_kek_fd(vmcrypt, keks, tmp_path):
    data, _ = build_image(20_000, seed=13, nmarkers=1)
    disk = import_image(vmcrypt, tmp_path, data, keks.a)
    fd = os.open(keks.a.path, os.O_RDONLY)
    try:
        r = vmcrypt.ok("disk", "export", disk, "-", "--kek-fd", fd, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.stdout == pad(data, 4096)
    # A pipe works too (the usual way a parent hands a key over).
    rfd, wfd = os.pipe()
    os.write(wfd, keks.a.key)
    os.close(wfd)
    try:
        r = vmcrypt.ok("disk", "export", disk, "-", "--kek-fd", rfd, pass_fds=(rfd,))
    finally:
        os.close(rfd)
    assert r.stdout == pad(data, 4096)


def test_key_never_on_command_line(vmcrypt, keks, tmp_path):
    """There is no option that takes key bytes."""
    r = vmcrypt.run("disk", "create", tmp_path / "d", "--size", "1M", "--kek",
                    keks.a.key.hex())
    assert_cli_error(r, 2)
    assert not (tmp_path / "d").exists()


# ---- verify ------------------------------------------------------------------

def test_verify(vmcrypt, keks, tmp_path):
    data, _ = build_image(300_000, seed=14)
    disk = import_image(vmcrypt, tmp_path, data, keks.a)
    before = sha256_file(disk)
    vmcrypt.ok("disk", "verify", disk, "--kek-file", keks.a)
    r = vmcrypt.ok("disk", "verify", disk, "--kek-file", keks.a, "--json")
    json.loads(r.stdout)
    wrong = keks.new("wrong")
    r = vmcrypt.run("disk", "verify", disk, "--kek-file", wrong)
    assert r.returncode == 1, describe(r)
    assert r.stderr.startswith(b"vmcrypt: "), describe(r)
    assert sha256_file(disk) == before, "verify never writes"


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0x40]))


def test_one_damaged_header_copy(vmcrypt, keks, tmp_path):
    data, markers = build_image(1 * MiB + 5000, seed=15)
    disk = import_image(vmcrypt, tmp_path, data, keks.a)
    for copy in (1, 0):
        bad = tmp_path / f"bad{copy}.vmc"
        shutil.copyfile(disk, bad)
        flip(bad, copy * 4096 + 100)
        before = sha256_file(bad)
        r = vmcrypt.run("disk", "verify", bad, "--kek-file", keks.a)
        assert r.returncode == 1, "a damaged header copy fails verify: " + describe(r)
        assert f"copy {copy}".encode() in r.stderr, "verify names the damaged copy: " + describe(r)
        info = vmcrypt.info(bad)
        copies = {c["copy"]: c for c in info["header_copies"]}
        assert copies[copy]["ok"] is False and copies[copy]["problem"]
        assert copies[1 - copy]["ok"] is True
        # The other copy still serves the data, and reading repairs nothing.
        assert vmcrypt.export_bytes(bad, keks.a) == pad(data, 4096)
        assert sha256_file(bad) == before, "export must not write to the disk"


def test_both_header_copies_damaged(vmcrypt, keks, tmp_path):
    data, _ = build_image(100_000, seed=16)
    disk = import_image(vmcrypt, tmp_path, data, keks.a)
    flip(disk, 100)
    flip(disk, 4096 + 100)
    before = sha256_file(disk)
    for args in (("export", disk, "-", "--kek-file", keks.a),
                 ("export", disk, tmp_path / "out.raw", "--kek-file", keks.a),
                 ("verify", disk, "--kek-file", keks.a),
                 ("info", disk), ("info", disk, "--json")):
        r = vmcrypt.run("disk", *args)
        assert_cli_error(r, 1)
    assert not (tmp_path / "out.raw").exists()
    assert sha256_file(disk) == before


def test_header_tamper_detected_by_mac(vmcrypt, keks, tmp_path):
    """Change the key id in both copies and fix their checksums: without
    the key the header looks fine, with it the MAC must fail."""
    data, _ = build_image(50_000, seed=17)
    disk = import_image(vmcrypt, tmp_path, data, keks.a, extra=("--key-id", "AAAA"))
    raw = bytearray(open(disk, "rb").read(8192))
    for copy in (0, 1):
        base = copy * 4096
        hdr = raw[base:base + 4096]
        i = hdr.find(b"AAAA")
        assert i > 0, "key id is stored in the header"
        hdr[i:i + 4] = b"AAAB"
        hdr[4064:4096] = hashlib.sha256(bytes(hdr[:4064])).digest()
        raw[base:base + 4096] = hdr
    with open(disk, "r+b") as f:
        f.write(raw)
    # Whether the self-checksum layout is as assumed is not the point:
    # either way no key-holding command may accept the header.
    r = vmcrypt.run("disk", "export", disk, "-", "--kek-file", keks.a)
    assert_cli_error(r, 1)
    r = vmcrypt.run("disk", "verify", disk, "--kek-file", keks.a)
    assert r.returncode == 1, describe(r)


# ---- rekey -------------------------------------------------------------------

def test_rekey_shallow(vmcrypt, keks, tmp_path):
    data, markers = build_image(2 * MiB + 300, seed=18)
    disk = import_image(vmcrypt, tmp_path, data, keks.a, extra=("--key-id", "old-id"))
    old_info = vmcrypt.info(disk)
    payload = old_info["payload_offset"]
    old_payload = open(disk, "rb").read()[payload:]
    new = keks.new("new", form="hex")
    vmcrypt.ok("disk", "rekey", disk, "--shallow", "--kek-file", keks.a,
               "--new-kek-file", new, "--key-id", "new-id", "--provider", "kmip-b")
    info = vmcrypt.info(disk)
    assert info["key"]["key_id"] == "new-id"
    assert info["key"]["provider"] == "kmip-b"
    assert info["uuid"] == old_info["uuid"]
    assert info["rekey"]["active"] is False
    r = vmcrypt.run("disk", "export", disk, "-", "--kek-file", keks.a)
    assert_cli_error(r, 1)
    r = vmcrypt.run("disk", "verify", disk, "--kek-file", keks.a)
    assert r.returncode == 1, "the old KEK no longer opens the disk: " + describe(r)
    vmcrypt.ok("disk", "verify", disk, "--kek-file", new)
    assert vmcrypt.export_bytes(disk, new) == pad(data, 4096)
    # Shallow: the data key is the same, so the payload is untouched.
    assert open(disk, "rb").read()[payload:] == old_payload
    scan_disk(disk, markers, [keks.a, new], pad(data, 4096), 4096)


@pytest.mark.parametrize("sector", [512, 4096])
@pytest.mark.parametrize("to_new_kek", [False, True])
def test_rekey_deep(vmcrypt, keks, tmp_path, sector, to_new_kek):
    size = 5 * MiB + 3 * 512
    holes = [(MiB, 2 * MiB + 4096)]
    data, markers = build_image(size, seed=19 + sector, holes=holes, zero_fraction=0.1,
                                sector=sector)
    disk = import_image(vmcrypt, tmp_path, data, keks.a,
                        extra=("--sector-size", sector, "--key-id", "gen-a"))
    before = vmcrypt.info(disk)
    payload = before["payload_offset"]
    old_sectors = sector_digests(open(disk, "rb").read()[payload:], sector)
    args = ["disk", "rekey", disk, "--deep", "--kek-file", keks.a]
    if to_new_kek:
        new = keks.new("new")
        args += ["--new-kek-file", new, "--key-id", "gen-b"]
    else:
        new = keks.a
    vmcrypt.ok(*args)
    info = vmcrypt.info(disk)
    assert info["key"]["generation"] > before["key"]["generation"]
    assert info["key"]["key_id"] == ("gen-b" if to_new_kek else "gen-a")
    assert info["rekey"]["active"] is False and info["rekey"]["target"] is None
    assert info["uuid"] == before["uuid"]
    assert vmcrypt.export_bytes(disk, new) == pad(data, sector)
    vmcrypt.ok("disk", "verify", disk, "--kek-file", new)
    if to_new_kek:
        r = vmcrypt.run("disk", "export", disk, "-", "--kek-file", keks.a)
        assert_cli_error(r, 1)
    blob = open(disk, "rb").read()
    # Every stored sector was re-encrypted under the new data key.
    reused = old_sectors & sector_digests(blob[payload:], sector)
    assert not reused, f"{len(reused)} sectors still hold the old ciphertext"
    # Holes stay holes.
    pd = pad(data, sector)
    for s in range(len(pd) // sector):
        if pd[s * sector:(s + 1) * sector] == bytes(sector):
            assert blob[payload + s * sector:payload + (s + 1) * sector] == bytes(sector), \
                f"hole at sector {s} was filled"
    scan_disk(disk, markers, [keks.a, new], pd, sector)
    # A second deep rekey works too and bumps the generation again.
    vmcrypt.ok("disk", "rekey", disk, "--deep", "--kek-file", new)
    assert vmcrypt.info(disk)["key"]["generation"] > info["key"]["generation"]
    assert vmcrypt.export_bytes(disk, new) == pd
