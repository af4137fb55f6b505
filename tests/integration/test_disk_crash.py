# SPDX-License-Identifier: Apache-2.0
# Crash safety of `vmcrypt disk rekey --deep`: a power cut at every write
# (VMCRYPT_TEST_CRASH_AT_WRITE), repeated cuts on one disk, and a real
# SIGKILL of a long rekey; every time the disk must stay readable and the
# resumed rekey must give back the original plaintext.
import json
import os
import shutil
import signal

import pytest

from vc_util import (CRASH_ENV, assert_cli_error, describe, make_image, pad,
                     sha256, sha256_file)

MiB = 1 << 20
MAX_CRASH_POINTS = 400


def make_disk(vmcrypt, tmp_path, kek, size, sector, seed, key_id="gen-1",
              chunk_holes=True):
    """Random data with holes: scattered empty sectors, optionally two
    whole empty MiB (a rekey step skips empty chunks), and data up to the
    last sector (so the final rekey step has a journaled chunk)."""
    holes = [(3 * MiB, 5 * MiB)] if chunk_holes else []
    holes.append((5 * MiB + 4096, 5 * MiB + 3 * 4096))
    data = make_image(size, seed, holes=holes, zero_fraction=0.05, sector=sector)
    data = data[:-100] + b"LAST-SECTOR-DATA".ljust(100, b"!")
    src = tmp_path / "plain.raw"
    src.write_bytes(data)
    disk = tmp_path / "base.vmc"
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", kek, "--sector-size", sector,
               "--key-id", key_id)
    src.unlink()
    return disk, pad(data, sector)


def check_crashed_info(vmcrypt, disk, base_info, target_key_id, seen):
    """info must work on a disk cut at any write; while a rekey is on,
    its progress and target must make sense."""
    info = vmcrypt.info(disk)
    rk = info["rekey"]
    total = info["virtual_size"] // info["sector_size"]
    assert info["uuid"] == base_info["uuid"]
    assert rk["total_sectors"] == total
    if rk["active"]:
        assert 0 <= rk["progress_sectors"] <= total, rk
        assert 0.0 <= rk["percent"] <= 100.0, rk
        t = rk["target"]
        assert t is not None and t["key_id"] == target_key_id, rk
        assert t["generation"] == info["key"]["generation"] + 1, info
        assert info["key"]["generation"] == base_info["key"]["generation"], \
            (f"a rekey is running from generation {info['key']['generation']} "
             f"(key id {info['key']['key_id']}): a second rekey was started")
        assert info["key"]["key_id"] == base_info["key"]["key_id"], info["key"]
        seen["active"] += 1
        if rk["progress_sectors"] > 0:
            seen["progress"] += 1
        if rk["journal_pending"]:
            seen["journal"] += 1
    else:
        assert rk["journal_pending"] is False and rk["target"] is None, rk
        if info["key"]["generation"] > base_info["key"]["generation"]:
            seen["finished"] += 1
    if not all(c["ok"] for c in info["header_copies"]):
        seen["torn"] += 1
    assert any(c["ok"] for c in info["header_copies"]), info["header_copies"]
    return info


def export_keys(info, base_info, old_kek, new_kek):
    """The KEK options that open a cut disk in the state info shows: both
    during a rekey, the new one once the rekey has committed."""
    if info["rekey"]["active"]:
        return ["--kek-file", old_kek] + (["--new-kek-file", new_kek] if new_kek != old_kek else [])
    if info["key"]["generation"] > base_info["key"]["generation"]:
        return ["--kek-file", new_kek]
    return ["--kek-file", old_kek]


def check_done(vmcrypt, disk, base_info, new_kek, old_kek, key_id, plain,
               generations=None):
    """The rekey is complete: new key in force at the next generation (or
    one of `generations`), both header copies fine, plaintext intact."""
    info = vmcrypt.info(disk)
    gens = generations or {base_info["key"]["generation"] + 1}
    assert info["rekey"]["active"] is False, info["rekey"]
    assert info["key"]["key_id"] == key_id
    assert info["key"]["generation"] in gens, \
        f"generation {info['key']['generation']} after the resume, expected {sorted(gens)}"
    assert all(c["ok"] for c in info["header_copies"]), info["header_copies"]
    got = vmcrypt.export_bytes(disk, new_kek)
    assert sha256(got) == sha256(plain), "plaintext changed across the interrupted rekey"
    if old_kek is not None:
        r = vmcrypt.run("disk", "export", disk, "-", "--kek-file", old_kek)
        assert_cli_error(r, 1)


def first_line(e):
    s = str(e).strip()
    return s.splitlines()[0][:300] if s else type(e).__name__


def check_cut(vmcrypt, work, rekey, base_info, plain, old_kek, new_kek, key_id, seen):
    """Everything that must hold after one cut; returns the problems."""
    problems = []
    try:
        info = check_crashed_info(vmcrypt, work, base_info, key_id, seen)
    except AssertionError as e:
        return [f"info fails: {first_line(e)}"]
    committed = (not info["rekey"]["active"] and
                 info["key"]["generation"] > base_info["key"]["generation"])
    # Reading a cut disk (read-only, with the KEKs its state needs) gives
    # the plaintext and writes nothing.
    before = sha256_file(work)
    r = vmcrypt.run("disk", "export", work, "-",
                    *export_keys(info, base_info, old_kek, new_kek))
    if r.returncode != 0:
        problems.append("export fails: " + first_line(describe(r)) +
                        " / " + r.stderr.decode(errors="replace").strip())
    elif sha256(r.stdout) != sha256(plain):
        problems.append("export exits 0 but returns WRONG DATA")
    if sha256_file(work) != before:
        problems.append("export wrote to the disk")
    # The same command again finishes the job. When the cut came after
    # the rekey committed, running it again may legitimately start another
    # rekey (same KEK) and so bump the generation once more.
    r = vmcrypt.run(*rekey)
    if r.returncode != 0:
        problems.append(f"resume {'(rekey had already committed) ' if committed else ''}"
                        "with the same command fails: " + r.stderr.decode(errors="replace").strip())
        return problems
    g = base_info["key"]["generation"]
    try:
        check_done(vmcrypt, work, base_info, new_kek,
                   old_kek if old_kek != new_kek else None, key_id, plain,
                   {g + 1, g + 2} if committed else {g + 1})
    except AssertionError as e:
        problems.append(f"after the resume: {first_line(e)}")
    return problems


def crash_loop(vmcrypt, tmp_path, disk, plain, old_kek, new_kek, key_id, extra):
    """For N = 1, 2, ...: a fresh copy of the disk, cut at write N, then
    inspected, read, resumed with the same command and checked. Goes on
    past a failing N so that one run reports every bad crash point."""
    base_info = vmcrypt.info(disk)
    work = tmp_path / "work.vmc"
    rekey = ["disk", "rekey", work, "--deep", "--kek-file", old_kek] + extra
    seen = dict(active=0, progress=0, journal=0, torn=0, finished=0)
    problems = []
    completed_at = None
    for n in range(1, MAX_CRASH_POINTS + 1):
        shutil.copyfile(disk, work)
        r = vmcrypt.run(*rekey, env={CRASH_ENV: str(n)})
        if r.returncode == 0:
            completed_at = n
            break
        if r.returncode != -signal.SIGKILL:
            problems.append(f"cut at write {n}: not killed: {describe(r)}")
            continue
        problems += [f"cut at write {n}: {p}" for p in
                     check_cut(vmcrypt, work, rekey, base_info, plain, old_kek, new_kek,
                               key_id, seen)]
    assert completed_at is not None, \
        f"rekey --deep was still cut after {MAX_CRASH_POINTS} crash points"
    assert not problems, f"{len(problems)} problems in {completed_at - 1} crash points:\n" + \
        "\n".join(problems[:16]) + ("\n..." if len(problems) > 16 else "")
    check_done(vmcrypt, work, base_info, new_kek,
               old_kek if old_kek != new_kek else None, key_id, plain)
    return completed_at, seen


@pytest.mark.parametrize("chunk_holes", [False, True], ids=["no-empty-chunks", "empty-chunks"])
def test_crash_at_every_write(vmcrypt, keks, tmp_path, chunk_holes):
    """Deep rekey to a new KEK cut at every single write."""
    disk, plain = make_disk(vmcrypt, tmp_path, keks.a, 10 * MiB, 4096, seed=101,
                            chunk_holes=chunk_holes)
    new = keks.new("new.kek", form="hex")
    n, seen = crash_loop(vmcrypt, tmp_path, disk, plain, keks.a, new, "gen-2",
                         ["--new-kek-file", new, "--key-id", "gen-2"])
    assert n > 10, f"only {n - 1} writes for a 10 MiB deep rekey: is the hook counting writes?"
    # The cuts landed in every phase: torn header copies, an active rekey
    # with progress, an interrupted (journaled) step, a committed rekey.
    assert all(seen.values()), seen


def test_crash_same_kek(vmcrypt, keks, tmp_path):
    """Deep rekey under the same KEK (resume needs no second KEK), 512-byte
    sectors, cut at every write."""
    disk, plain = make_disk(vmcrypt, tmp_path, keks.b, 6 * MiB, 512, seed=303,
                            chunk_holes=False)
    key_id = vmcrypt.info(disk)["key"]["key_id"]
    crash_loop(vmcrypt, tmp_path, disk, plain, keks.b, keks.b, key_id, [])


@pytest.mark.parametrize("chunk_holes", [False, True], ids=["no-empty-chunks", "empty-chunks"])
def test_repeated_crashes_same_disk(vmcrypt, keks, tmp_path, chunk_holes):
    """One disk cut again and again, each resume cut a little later, until a
    run finishes. A resume with a missing or wrong new KEK fails cleanly."""
    disk, plain = make_disk(vmcrypt, tmp_path, keks.a, 8 * MiB, 512, seed=202,
                            chunk_holes=chunk_holes)
    base_info = vmcrypt.info(disk)
    new = keks.new("new.kek")
    wrong = keks.new("wrong.kek")
    rekey = ["disk", "rekey", disk, "--deep", "--kek-file", keks.a, "--new-kek-file", new,
             "--key-id", "gen-2"]
    seen = dict(active=0, progress=0, journal=0, torn=0, finished=0)
    tried_bad_resume = False
    last_progress = 0
    for n in range(1, MAX_CRASH_POINTS + 1):
        r = vmcrypt.run(*rekey, env={CRASH_ENV: str(n)})
        if r.returncode == 0:
            break
        assert r.returncode == -signal.SIGKILL, f"run {n}: " + describe(r)
        info = check_crashed_info(vmcrypt, disk, base_info, "gen-2", seen)
        if info["rekey"]["active"]:
            # Progress never goes backwards across resumes.
            p = info["rekey"]["progress_sectors"]
            assert p >= last_progress, (p, last_progress)
            last_progress = p
        if info["rekey"]["active"] and info["rekey"]["journal_pending"] and not tried_bad_resume:
            tried_bad_resume = True
            before = sha256_file(disk)
            for bad in (["disk", "rekey", disk, "--deep", "--kek-file", keks.a],
                        ["disk", "rekey", disk, "--deep", "--kek-file", keks.a,
                         "--new-kek-file", wrong],
                        ["disk", "rekey", disk, "--deep", "--kek-file", wrong,
                         "--new-kek-file", new]):
                assert_cli_error(vmcrypt.run(*bad), 1)
                assert sha256_file(disk) == before, "a failed resume modified the disk"
    else:
        pytest.fail(f"rekey --deep was still cut after {MAX_CRASH_POINTS} runs")
    assert n > 3, "the disk was never cut"
    assert tried_bad_resume, "no cut left a pending journal step"
    assert seen["active"] and seen["progress"], seen
    check_done(vmcrypt, disk, base_info, new, keks.a, "gen-2", plain)


def test_real_sigkill_during_rekey(vmcrypt, keks, shm_dir):
    """Kill a running deep rekey of a 256 MiB disk from outside as soon as
    info shows progress, then resume it."""
    d = shm_dir
    size = 256 * MiB
    plain = os.urandom(size)
    src = os.path.join(d, "plain.raw")
    with open(src, "wb") as f:
        f.write(plain)
    disk = os.path.join(d, "big.vmc")
    new = keks.new("new.kek")
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", keks.a)
    os.unlink(src)
    base_info = vmcrypt.info(disk)
    rekey = ["disk", "rekey", disk, "--deep", "--kek-file", keks.a, "--new-kek-file", new,
             "--key-id", "gen-2"]
    proc = vmcrypt.popen(*rekey)
    killed_at = None
    try:
        polls = 0
        while proc.poll() is None:
            polls += 1
            r = vmcrypt.run("disk", "info", disk, "--json")
            assert r.returncode == 0, "info while a rekey runs: " + describe(r)
            rk = json.loads(r.stdout)["rekey"]
            if rk["active"] and rk["progress_sectors"] > 0:
                proc.kill()
                killed_at = rk["progress_sectors"]
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=60)
    assert killed_at is not None, \
        f"the rekey finished (status {proc.returncode}, {polls} polls) before it showed progress"
    if proc.returncode == 0:
        pytest.fail("the rekey completed between the progress poll and the kill; "
                    "use a bigger disk")
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err)
    seen = dict(active=0, progress=0, journal=0, torn=0, finished=0)
    info = check_crashed_info(vmcrypt, disk, base_info, "gen-2", seen)
    assert info["rekey"]["active"] and info["rekey"]["progress_sectors"] >= killed_at
    assert info["rekey"]["progress_sectors"] < info["rekey"]["total_sectors"]
    vmcrypt.ok(*rekey)
    check_done(vmcrypt, disk, base_info, new, keks.a, "gen-2", plain)
