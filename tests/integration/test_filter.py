# SPDX-License-Identifier: Apache-2.0
# The nbdkit vmcrypt filter against real NBD peers: qemu-img, qemu-io,
# nbdinfo, nbdcopy, libnbd and QEMU booting a guest from an encrypted
# disk; start-up refusals, trim/zero holes, concurrent writers, and a disk
# whose deep rekey was interrupted. Every container is checked for the
# plaintext the test wrote.
import json
import os
import random
import struct
import subprocess
import threading
import time

import pytest

from vc_nbd import (assert_no_markers, can_punch_holes, data_in, export_size,
                    filter_argv, parse_read_dumps, qemu_io, read_range,
                    require_tools, run_tool)
from vc_nbd import nbd_servers, vc_filter  # noqa: F401 (pytest fixtures)
from vc_util import (CRASH_ENV, make_image, make_markers, sha256, sha256_file)

KiB = 1 << 10
MiB = 1 << 20
HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_ASM = os.path.join(HERE, "..", "guest", "guest.asm")
BANNER = b"VMCRYPT-GUEST-BOOT\r\n"


def import_disk(vmcrypt, directory, data, kek, sector, name="disk.vcd", extra=()):
    src = os.path.join(str(directory), name + ".plain")
    with open(src, "wb") as f:
        f.write(data)
    disk = os.path.join(str(directory), name)
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", kek, "--sector-size", sector, *extra)
    os.unlink(src)
    return disk


def payload_offset(vmcrypt, disk):
    return vmcrypt.info(disk)["payload_offset"]


def convert_to_raw(uri, out):
    run_tool(["qemu-img", "convert", "-f", "raw", "-O", "raw", uri, out])
    with open(out, "rb") as f:
        return f.read()


# ---- qemu-img ---------------------------------------------------------------

@pytest.mark.parametrize("sector", [512, 4096])
def test_qemu_img_info_and_convert_both_ways(vmcrypt, keks, tmp_path, nbd_servers, sector):
    require_tools("qemu-img")
    rng = random.Random(f"qemu-img-{sector}")
    size = 24 * MiB + 3 * sector
    markers = make_markers(rng, 6)
    # Markers straddling sector boundaries and at odd offsets.
    offsets = [sector * k - 7 for k in (1, 97, 5000)] + [rng.randrange(0, size - 64) for _ in range(3)]
    data = make_image(size, rng.random(), markers, offsets, holes=[(4 * MiB, 12 * MiB)],
                      zero_fraction=0.1, sector=sector)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, sector)
    assert_no_markers(disk, markers)

    srv = nbd_servers.start(disk, kek=keks.a)
    info = json.loads(run_tool(["qemu-img", "info", "--output=json", srv.uri]).stdout)
    assert info["virtual-size"] == size, info

    got = convert_to_raw(srv.uri, tmp_path / "out.raw")
    assert len(got) == size
    assert sha256(got) == sha256(data), "qemu-img convert from the export differs from the imported image"

    markers2 = make_markers(rng, 6)
    offsets2 = [sector * k - 3 for k in (2, 300, 4000)] + [rng.randrange(0, size - 64) for _ in range(3)]
    data2 = make_image(size, rng.random(), markers2, offsets2, holes=[(1 * MiB, 3 * MiB)],
                       zero_fraction=0.05, sector=sector)
    src2 = tmp_path / "new.raw"
    src2.write_bytes(data2)
    run_tool(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src2, srv.uri])
    src2.unlink()
    srv.stop()

    assert sha256(vmcrypt.export_bytes(disk, keks.a)) == sha256(data2), \
        "the image written by qemu-img convert -n is not what the disk holds"
    assert_no_markers(disk, markers + markers2 + [keks.a.key])


# ---- qemu-io: random unaligned I/O against a reference ----------------------------

def random_length(rng, sector):
    k = rng.random()
    if k < 0.35:
        return rng.randint(1, 64)
    if k < 0.75:
        return rng.randint(65, 3 * sector + 77)
    if k < 0.92:
        return rng.randint(3 * sector, 300 * KiB)
    return sector * rng.randint(1, 8)   # whole sectors, maybe zeros: holes


def random_offset(rng, sector, size, length):
    if rng.random() < 0.4:
        # Start just before a sector boundary so the write spans two.
        off = sector * rng.randint(1, size // sector - 1) - rng.randint(0, 9)
    elif length % sector == 0 and rng.random() < 0.5:
        off = sector * rng.randint(0, size // sector - 1)
    else:
        off = rng.randint(0, size - 1)
    return max(0, min(off, size - length))


@pytest.mark.parametrize("sector", [512, 4096])
def test_qemu_io_random_unaligned_io(vmcrypt, keks, tmp_path, nbd_servers, sector):
    require_tools("qemu-io", "qemu-img")
    rng = random.Random(f"qemu-io-{sector}")
    size = 8 * MiB
    data = make_image(size, rng.random(), holes=[(2 * MiB, 5 * MiB)], zero_fraction=0.05,
                      sector=sector)
    disk = import_disk(vmcrypt, tmp_path, data, keks.b, sector)
    ref = bytearray(data)
    srv = nbd_servers.start(disk, kek=keks.b)

    cmds = []
    for _ in range(300):
        length = random_length(rng, sector)
        off = random_offset(rng, sector, size, length)
        pat = 0 if rng.random() < 0.08 else rng.randint(1, 255)
        cmds.append(f"write -q -P {pat:#04x} {off} {length}")
        cmds.append(f"read -q -P {pat:#04x} {off} {length}")
        ref[off:off + length] = bytes([pat]) * length
    # Markers from files, across sector boundaries.
    markers = make_markers(rng, 8)
    for i, m in enumerate(markers):
        p = tmp_path / f"marker{i}"
        p.write_bytes(m)
        off = sector * rng.randint(1, size // sector - 1) - len(m) // 2 if i % 2 else \
            rng.randint(0, size - len(m))
        cmds.append(f"write -q -s {p} {off} {len(m)}")
        ref[off:off + len(m)] = m
    qemu_io(srv.uri, cmds)

    # Reads at unaligned places, each spanning many earlier writes.
    reads = []
    for _ in range(60):
        length = rng.randint(1, 2 * sector + 300)
        off = rng.randint(0, size - length)
        reads.append((off, length))
    out = qemu_io(srv.uri, [f"read -v {o} {n}" for o, n in reads])
    dumps = parse_read_dumps(out)
    assert [(o, len(b)) for o, b in dumps] == reads, "qemu-io printed other reads than asked"
    for off, got in dumps:
        want = bytes(ref[off:off + len(got)])
        assert got == want, f"read -v at {off} (+{len(got)}) differs from the reference"

    got = convert_to_raw(srv.uri, tmp_path / "all.raw")
    assert sha256(got) == sha256(ref), "whole-disk read differs from the reference"
    srv.stop()
    assert sha256(vmcrypt.export_bytes(disk, keks.b)) == sha256(ref), \
        "vmcrypt disk export differs from the reference after the qemu-io writes"
    assert_no_markers(disk, markers)


# ---- nbdinfo / nbdcopy ----------------------------------------------------------

def extents_cover(extents, start, end):
    """The extents overlapping [start, end)."""
    return [e for e in extents if e["offset"] < end and e["offset"] + e["length"] > start]


def test_nbdinfo_size_and_map_show_holes(vmcrypt, keks, tmp_path, nbd_servers):
    require_tools("nbdinfo", "qemu-io", "qemu-img")
    if not can_punch_holes(str(tmp_path)):
        pytest.skip(f"the file system of {tmp_path} keeps no holes")
    rng = random.Random("nbdinfo")
    size = 64 * MiB
    data_ranges = [(0, 4 * MiB), (60 * MiB, 64 * MiB)]
    big_hole = (4 * MiB, 60 * MiB)
    data = make_image(size, rng.random(), holes=[big_hole], sector=4096)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, 4096)
    # The key arrives through a pipe (kek-fd=N), never a file here.
    srv = nbd_servers.start(disk, key_bytes=keks.a.key)

    assert export_size(srv.uri) == size
    extents = json.loads(run_tool(["nbdinfo", "--map", "--json", srv.uri]).stdout)
    pos = 0
    for e in extents:
        assert e["offset"] == pos, f"extents not contiguous at {pos}: {e}"
        pos += e["length"]
    assert pos == size, f"the map covers {pos} bytes of {size}"
    for e in extents_cover(extents, *big_hole):
        assert e["type"] & 1, f"the 56 MiB zero region shows data: {e}"
    for start, end in data_ranges:
        for e in extents_cover(extents, start, end):
            assert e["type"] == 0, f"data range [{start}, {end}) shows {e}"
    # The holes of the map really read as zeros, the data as imported.
    qemu_io(srv.uri, [f"read -q -P 0 {big_hole[0]} {big_hole[1] - big_hole[0]}"])
    assert sha256(convert_to_raw(srv.uri, tmp_path / "all.raw")) == sha256(data)


def test_nbdcopy_round_trip_256m(vmcrypt, keks, shm_dir, nbd_servers):
    require_tools("nbdcopy")
    size = 256 * MiB
    src = os.path.join(shm_dir, "src.raw")
    with open(src, "wb") as f:
        for _ in range(size // (16 * MiB)):
            f.write(os.urandom(16 * MiB))
    want = sha256_file(src)
    disk = os.path.join(shm_dir, "big.vcd")
    vmcrypt.ok("disk", "create", disk, "--size", "256M", "--sector-size", "4096",
               "--kek-file", keks.a)
    srv = nbd_servers.start(disk, kek=keks.a)
    run_tool(["nbdcopy", src, srv.uri], timeout=300)
    back = os.path.join(shm_dir, "back.raw")
    run_tool(["nbdcopy", srv.uri, back], timeout=300)
    assert os.path.getsize(back) == size
    assert sha256_file(back) == want, "nbdcopy raw -> export -> raw changed the data"
    srv.stop()
    os.unlink(back)
    exported = os.path.join(shm_dir, "exported.raw")
    vmcrypt.ok("disk", "export", disk, exported, "--kek-file", keks.a, timeout=300)
    assert sha256_file(exported) == want, "the container does not hold what nbdcopy wrote"
    # Ciphertext: no 4 KiB block of the source appears in the container.
    with open(src, "rb") as f:
        samples = [f.read(4096) for _ in range(4)]
    assert_no_markers(disk, samples)


# ---- QEMU boots a guest from the encrypted disk ------------------------------------

@pytest.fixture(scope="session")
def guest_bin(tmp_path_factory):
    (nasm,) = require_tools("nasm")
    out = tmp_path_factory.mktemp("guest") / "guest.bin"
    run_tool([nasm, "-f", "bin", "-o", out, GUEST_ASM])
    code = out.read_bytes()
    assert len(code) == 512 and code[510:] == b"\x55\xaa", "guest.asm must assemble to one boot sector"
    return code


@pytest.mark.parametrize("sector", [512, 4096])
def test_qemu_boots_guest_from_encrypted_disk(vmcrypt, keks, tmp_path, nbd_servers,
                                              guest_bin, sector):
    (qemu,) = require_tools("qemu-system-x86_64")
    marker = b"VMCRYPT-LBA1-MARKER-" + os.urandom(8).hex().encode()
    image = bytearray(4 * MiB)
    image[:512] = guest_bin
    image[512:512 + len(marker) + 1] = marker + b"\0"
    image[2 * MiB:3 * MiB] = os.urandom(MiB)
    disk = import_disk(vmcrypt, tmp_path, bytes(image), keks.a, sector)
    assert_no_markers(disk, [marker, BANNER.strip()])

    srv = nbd_servers.start(disk, kek=keks.a)
    log = tmp_path / "serial.log"
    argv = [qemu, "-machine", "accel=tcg", "-m", "64M", "-display", "none",
            "-no-user-config", "-nodefaults", "-serial", f"file:{log}",
            "-drive", f"file={srv.uri},format=raw,if=ide"]
    want = BANNER + b"DISK: " + marker + b"\r\n"
    vm = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    text = b""
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if log.exists():
                text = log.read_bytes()
                if want in text:
                    break
            if vm.poll() is not None:
                break
            time.sleep(0.05)
    finally:
        vm.terminate()
        try:
            _, err = vm.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            vm.kill()
            _, err = vm.communicate()
    assert want in text, (f"the guest did not print its banner and the LBA 1 marker within 30 s;"
                          f"\n  serial: {text[-500:]!r}\n  qemu stderr: {err[-500:]!r}"
                          f"\n  nbdkit: {srv.stderr()[-500:]}")
    srv.stop()
    assert_no_markers(disk, [marker, BANNER.strip()])


# ---- two clients writing interleaved bytes of the same sectors -------------------------

@pytest.mark.parametrize("sector", [512, 4096])
def test_two_connections_interleaved_writes(vmcrypt, keks, tmp_path, nbd_servers, sector):
    nbd = pytest.importorskip("nbd", reason="python3-libnbd is not installed "
                              "(apt-get install python3-libnbd)")
    rng = random.Random(f"concurrent-{sector}")
    size = 4 * MiB
    data = make_image(size, rng.random(), holes=[(2 * MiB, 3 * MiB)], sector=sector)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, sector)
    srv = nbd_servers.start(disk, kek=keks.a)

    # One region on data, one on holes; stripes of an odd width so that
    # some straddle two sectors.
    nsec = 24
    regions = [(5 * sector, (5 + nsec) * sector),
               (2 * MiB + 3 * sector, 2 * MiB + (3 + nsec) * sector)]
    width = sector // 16 - 3
    stripes = []   # (offset, length, writer)
    for start, end in regions:
        for i, off in enumerate(range(start, end, width)):
            stripes.append((off, min(width, end - off), i % 2))
    rounds = 25

    def content(writer, rnd, off, length):
        unit = struct.pack("<BHI", writer + 1, rnd, off)
        return (unit * (length // len(unit) + 1))[:length]

    def writer(h, w, rnd, errors):
        try:
            keep = []
            cookies = []
            for off, length, who in stripes:
                if who != w:
                    continue
                while h.aio_in_flight() >= 32:
                    h.poll(-1)
                buf = nbd.Buffer.from_bytearray(bytearray(content(w, rnd, off, length)))
                keep.append(buf)
                cookies.append(h.aio_pwrite(buf, off))
            while h.aio_in_flight() > 0:
                h.poll(-1)
            for c in cookies:
                h.aio_command_completed(c)
        except Exception as e:   # reported by the main thread
            errors.append(f"writer {w} round {rnd}: {e!r}")

    handles = []
    for _ in range(2):
        h = nbd.NBD()
        h.connect_uri(srv.uri)
        handles.append(h)
    ref = bytearray(data)
    try:
        for rnd in range(rounds):
            errors = []
            threads = [threading.Thread(target=writer, args=(handles[w], w, rnd, errors))
                       for w in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            for off, length, who in stripes:
                ref[off:off + length] = content(who, rnd, off, length)
            for start, end in regions:
                got = handles[rnd % 2].pread(end - start, start)
                if got != ref[start:end]:
                    bad = next(i for i in range(end - start) if got[i] != ref[start + i])
                    owner = next(s for s in stripes if s[0] <= start + bad < s[0] + s[1])
                    raise AssertionError(
                        f"round {rnd}: byte {start + bad} (sector {(start + bad) // sector}) "
                        f"is not what writer {owner[2]} wrote: a concurrent partial-sector "
                        f"write was lost")
        for h in handles:
            h.flush()
    finally:
        for h in handles:
            h.shutdown()
    srv.stop()
    assert sha256(vmcrypt.export_bytes(disk, keks.a)) == sha256(ref)


# ---- refusals at start-up --------------------------------------------------------

def crash_rekey(vmcrypt, disk, kek, new_kek, at):
    """A deep rekey killed at its at-th write (the crash hook)."""
    args = ["disk", "rekey", disk, "--deep", "--kek-file", kek]
    if new_kek is not None:
        args += ["--new-kek-file", new_kek]
    r = vmcrypt.run(*args, env={CRASH_ENV: str(at)})
    assert r.returncode == -9, f"the rekey was not cut by the crash hook: {r.returncode} {r.stderr!r}"
    return vmcrypt.info(disk)


REFUSALS = {
    # case: words the error line must contain (lower case)
    "wrong-kek": ["wrong key"],
    "not-vmcrypt": ["not a vmcrypt"],
    "corrupt-headers": ["damaged"],
    "truncated": ["truncated"],
    "no-kek": ["kek-fd", "kek-file"],
    "kek-on-command-line": ["command line"],
    "kek-file-readable-by-others": ["chmod 600"],
    "kek-fd-short-key": ["kek-fd"],
    "rekey-needs-new-kek": ["new key"],
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refuses_to_start(vmcrypt, keks, tmp_path, vc_filter, case):
    rng = random.Random(case)
    data = make_image(16 * MiB if case == "rekey-needs-new-kek" else 2 * MiB,
                      rng.random(), sector=512)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, 512)
    sock = str(tmp_path / "s.sock")
    kek = keks.a
    extra = []
    fds = ()
    secret = None
    if case == "wrong-kek":
        kek = keks.b
    elif case == "not-vmcrypt":
        with open(disk, "wb") as f:
            f.write(data)
    elif case == "corrupt-headers":
        with open(disk, "r+b") as f:
            for copy in (0, 1):
                f.seek(copy * 4096 + 300)
                b = f.read(1)
                f.seek(copy * 4096 + 300)
                f.write(bytes([b[0] ^ 0x40]))
    elif case == "truncated":
        os.truncate(disk, os.path.getsize(disk) - 512)
    elif case == "no-kek":
        kek = None
    elif case == "kek-on-command-line":
        kek = None
        secret = keks.a.key.hex()
        extra = [f"kek={secret}"]
    elif case == "kek-file-readable-by-others":
        kek = keks.new("loose.kek", key=keks.a.key, mode=0o644)
    elif case == "kek-fd-short-key":
        kek = None
        r, w = os.pipe()
        os.write(w, keks.a.key[:31])
        os.close(w)
        fds = (r,)
        extra = [f"kek-fd={r}"]
    elif case == "rekey-needs-new-kek":
        info = crash_rekey(vmcrypt, disk, keks.a, keks.b, 40)
        assert info["rekey"]["active"]
        extra = []   # kek-file only, no new-kek-file
    before = sha256_file(disk)

    argv = filter_argv(vc_filter, sock, disk, kek=kek, extra=extra)
    t0 = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, pass_fds=fds, timeout=30,
                           env=dict(os.environ, LC_ALL="C"))
    finally:
        for fd in fds:
            os.close(fd)
    elapsed = time.monotonic() - t0
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode != 0, f"nbdkit started on a bad configuration ({case}): {err}"
    assert elapsed < 10, f"nbdkit took {elapsed:.1f} s to refuse"
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected exactly one error line, got: {lines}"
    assert lines[0].startswith("nbdkit: error: vmcrypt: "), lines[0]
    for w in REFUSALS[case]:
        assert w in lines[0].lower(), f"the error does not say {w!r}: {lines[0]}"
    if case == "rekey-needs-new-kek":
        target = info["rekey"]["target"]["key_id"]
        assert target in lines[0], f"the error does not name the missing key {target}: {lines[0]}"
    if secret is not None:
        assert secret not in err and secret not in p.stdout.decode("utf-8", "replace")
    assert sha256_file(disk) == before, "a refused start changed the container"


# ---- trim and write-zeroes punch holes ----------------------------------------------

@pytest.mark.parametrize("sector", [512, 4096])
def test_trim_and_zero_make_holes(vmcrypt, keks, tmp_path, nbd_servers, sector):
    require_tools("qemu-io", "qemu-img", "nbdinfo")
    rng = random.Random(f"trim-{sector}")
    size = 8 * MiB
    data = make_image(size, rng.random(), sector=sector)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, sector)
    base = payload_offset(vmcrypt, disk)
    srv = nbd_servers.start(disk, kek=keks.a)

    ops = [("discard", 1 * MiB, 1 * MiB),
           ("discard", 3 * MiB + 100, 200 * KiB + 33),
           ("write -z", 5 * MiB - 7, 300 * KiB),
           ("write -z -u", 6 * MiB, 512 * KiB)]
    ref = bytearray(data)
    cmds = []
    for op, off, length in ops:
        cmds += [f"{op} {off} {length}", f"read -q -P 0 {off} {length}"]
        ref[off:off + length] = bytes(length)
    # The bytes around each range are untouched.
    for op, off, length in ops:
        for o in (off - 5, off + length):
            cmds.append(f"read -q -P {ref[o]:#04x} {o} 1")
    qemu_io(srv.uri, cmds)
    assert sha256(convert_to_raw(srv.uri, tmp_path / "all.raw")) == sha256(ref)

    punch = can_punch_holes(str(tmp_path))
    if punch:
        extents = json.loads(run_tool(["nbdinfo", "--map", "--json", srv.uri]).stdout)
        for e in extents_cover(extents, 1 * MiB, 2 * MiB):
            assert e["type"] & 1, f"the discarded MiB is not a hole in the map: {e}"
    srv.stop()

    for op, off, length in ops:
        first = -(-off // sector) * sector
        last = (off + length) // sector * sector
        stored = read_range(disk, base + first, last - first)
        assert stored == bytes(last - first), \
            f"{op} {off} {length}: whole sectors [{first}, {last}) are not zero in the container"
        if off % sector:
            edge = read_range(disk, base + off // sector * sector, sector)
            assert edge != bytes(sector) and edge != bytes(ref[off // sector * sector:][:sector]), \
                f"{op}: the partial sector before {off} is not stored encrypted"
        # Trim and write-zeroes with "may unmap" punch holes; plain
        # write-zeroes (NO_HOLE) need only read back as zeros.
        if punch and (op == "discard" or "-u" in op):
            lo = -(-(base + first) // 4096) * 4096
            hi = (base + last) // 4096 * 4096
            if hi > lo:
                assert not data_in(disk, lo, hi), \
                    f"{op} {off} {length}: container range [{lo}, {hi}) still allocated"
    assert sha256(vmcrypt.export_bytes(disk, keks.a)) == sha256(ref)


# ---- a disk in the middle of a deep rekey ----------------------------------------------

@pytest.mark.parametrize("sector,crash_at,new_key", [
    (512, 30, True),     # journal pending: the writable open replays it
    (4096, 40, True),    # between two steps
    (4096, 30, False),   # rekey under the same KEK
])
def test_interrupted_deep_rekey_is_served(vmcrypt, keks, tmp_path, nbd_servers,
                                          sector, crash_at, new_key):
    require_tools("qemu-io", "qemu-img")
    rng = random.Random(f"rekey-{sector}-{crash_at}-{new_key}")
    size = 16 * MiB
    markers = make_markers(rng, 4)
    offsets = [rng.randrange(0, size - 64) for _ in markers]
    data = make_image(size, rng.random(), markers, offsets,
                      holes=[(9 * MiB, 11 * MiB)], zero_fraction=0.05, sector=sector)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, sector)
    new_kek = keks.b if new_key else None
    info = crash_rekey(vmcrypt, disk, keks.a, new_kek, crash_at)
    rk = info["rekey"]
    assert rk["active"] and 0 < rk["progress_sectors"] < rk["total_sectors"], \
        f"the crash did not leave a rekey half done: {rk}"
    boundary = rk["progress_sectors"] * sector

    srv = nbd_servers.start(disk, kek=keks.a, new_kek=new_kek)
    assert sha256(convert_to_raw(srv.uri, tmp_path / "rw.raw")) == sha256(data), \
        "the filter does not read a half-rekeyed disk correctly"
    ref = bytearray(data)
    writes = [(boundary - 1000, 2500),          # across the rekey boundary
              (boundary // 2 + 3, 777),        # already re-encrypted part
              (boundary + 5 * sector + 11, 1),  # not yet re-encrypted part
              (size - 3 * sector - 1, 3 * sector + 1),
              (10 * MiB - 17, 4096 + 34)]      # a hole
    cmds = []
    for i, (off, length) in enumerate(writes):
        pat = 0x30 + i
        cmds += [f"write -q -P {pat:#04x} {off} {length}", f"read -q -P {pat:#04x} {off} {length}"]
        ref[off:off + length] = bytes([pat]) * length
    new_markers = make_markers(rng, 3)
    for i, m in enumerate(new_markers):
        p = tmp_path / f"m{i}"
        p.write_bytes(m)
        off = boundary - len(m) // 2 if i == 0 else rng.randrange(0, size - len(m))
        cmds.append(f"write -q -s {p} {off} {len(m)}")
        ref[off:off + len(m)] = m
    qemu_io(srv.uri, cmds)
    assert sha256(convert_to_raw(srv.uri, tmp_path / "rw2.raw")) == sha256(ref)
    srv.stop()

    args = ["disk", "rekey", disk, "--deep", "--kek-file", keks.a]
    if new_kek is not None:
        args += ["--new-kek-file", new_kek]
    vmcrypt.ok(*args)
    after = vmcrypt.info(disk)
    assert not after["rekey"]["active"], after["rekey"]
    assert after["key"]["generation"] == info["key"]["generation"] + 1
    final_kek = new_kek if new_kek is not None else keks.a
    assert sha256(vmcrypt.export_bytes(disk, final_kek)) == sha256(ref), \
        "writes made through the filter during the rekey did not survive its completion"
    assert_no_markers(disk, markers + new_markers)


# ---- nbdkit -r leaves the container alone ---------------------------------------------

@pytest.mark.parametrize("state", ["clean", "journal-pending", "torn-header-copy"])
def test_readonly_serve_never_writes_the_container(vmcrypt, keks, tmp_path, nbd_servers, state):
    """With nbdkit -r the container must stay byte for byte the same, even
    when a writable open would have something to repair (an interrupted
    rekey step in the journal, a torn header copy)."""
    require_tools("qemu-img", "qemu-io")
    rng = random.Random(f"ro-{state}")
    size = 16 * MiB
    data = make_image(size, rng.random(), zero_fraction=0.05, sector=4096)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, 4096)
    new_kek = None
    if state != "clean":
        new_kek = keks.b
        info = crash_rekey(vmcrypt, disk, keks.a, new_kek, 30 if state == "journal-pending" else 40)
        if state == "journal-pending":
            assert info["rekey"]["journal_pending"], info["rekey"]
        else:
            assert not all(c["ok"] for c in info["header_copies"]), info["header_copies"]
    before = sha256_file(disk)
    srv = nbd_servers.start(disk, kek=keks.a, new_kek=new_kek, readonly=True)
    assert sha256(convert_to_raw(srv.uri, tmp_path / "ro.raw")) == sha256(data)
    r = run_tool(["qemu-io", "-f", "raw", srv.uri, "-c", "write -P 0x55 0 512"], check=False)
    assert r.returncode != 0 or b"failed" in (r.stdout + r.stderr).lower(), \
        "a write to a read-only export succeeded"
    srv.stop()
    assert sha256_file(disk) == before, \
        f"serving with nbdkit -r changed the container ({state})"


# ---- the serving process keeps its keys out of dumps and swap ---------------------------

def test_serving_process_is_hardened(vmcrypt, keks, tmp_path, nbd_servers):
    data = make_image(1 * MiB, 7, sector=4096)
    disk = import_disk(vmcrypt, tmp_path, data, keks.a, 4096)
    srv = nbd_servers.start(disk, key_bytes=keks.a.key)
    pid = srv.proc.pid
    with open(f"/proc/{pid}/limits") as f:
        core = [ln for ln in f if ln.startswith("Max core file size")]
    assert core and core[0].split()[4:6] == ["0", "0"], \
        f"core dumps are not disabled in the serving process: {core}"
    if os.geteuid() == 0:
        # Root may always lock memory, so the filter must have done so.
        with open(f"/proc/{pid}/status") as f:
            vmlck = [int(ln.split()[1]) for ln in f if ln.startswith("VmLck:")]
        assert vmlck and vmlck[0] > 0, "the serving process holds no locked memory"
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = f.read()
    with open(f"/proc/{pid}/environ", "rb") as f:
        environ = f.read()
    for form in (keks.a.key, keks.a.key.hex().encode(), keks.a.key.hex().upper().encode()):
        assert form not in cmdline and form not in environ
    srv.stop()
