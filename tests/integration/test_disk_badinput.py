# SPDX-License-Identifier: Apache-2.0
# Bad input to every `vmcrypt disk` subcommand: each case must exit 2
# (usage) or 1 (anything else), print exactly one "vmcrypt: " line on
# stderr and nothing on stdout, and change no file in its directory (an
# existing disk stays byte for byte the same, a failed create/import/export
# leaves no file behind).
import os
import shutil
from types import SimpleNamespace

import pytest

from vc_util import (Kek, assert_cli_error, assert_same_snapshot, describe,
                     make_image, snapshot)

USAGE = {2}
FAIL = {1}
EITHER = {1, 2}  # the contract does not say whether a bad value is "usage"

CLOSED_FD = 57  # the child inherits only 0-2 and pass_fds


@pytest.fixture
def env(vmcrypt, keks, tmp_path):
    """A victim disk and every kind of bad file next to it."""
    e = SimpleNamespace(root=tmp_path, keks=keks)
    e.data = make_image(128 * 1024, seed=77)
    e.src = tmp_path / "src.raw"
    e.src.write_bytes(e.data)
    e.disk = tmp_path / "disk.vmc"
    vmcrypt.ok("disk", "import", e.src, e.disk, "--kek-file", keks.a)
    e.new = tmp_path / "new.vmc"            # does not exist
    e.out = tmp_path / "out.raw"            # does not exist
    e.missing = tmp_path / "missing.vmc"
    e.nodir = tmp_path / "no-such-dir" / "x.vmc"
    e.random = tmp_path / "random.bin"
    e.random.write_bytes(os.urandom(3 * 1024 * 1024))
    e.tiny = tmp_path / "tiny.bin"
    e.tiny.write_bytes(os.urandom(100))
    e.empty = tmp_path / "empty.bin"
    e.empty.write_bytes(b"")
    e.dir = tmp_path / "adir"
    e.dir.mkdir()
    e.trunc = tmp_path / "trunc.vmc"
    shutil.copyfile(e.disk, e.trunc)
    os.truncate(e.trunc, os.path.getsize(e.disk) // 2)
    e.existing_out = tmp_path / "existing.raw"
    e.existing_out.write_bytes(b"precious data, not to be overwritten\n")
    k = keks
    key = os.urandom(32)
    e.bad_keks = {
        "short-raw": k.raw("short.kek", os.urandom(31)),
        "long-raw": k.raw("long.kek", os.urandom(32) + b"\x01"),
        "much-longer": k.raw("longer.kek", os.urandom(4096)),
        "empty": k.raw("empty.kek", b""),
        "bad-hex": k.raw("badhex.kek", (key.hex()[:-1] + "g").encode() + b"\n"),
        "short-hex": k.raw("shorthex.kek", key.hex()[:-2].encode() + b"\n"),
        "long-hex": k.raw("longhex.kek", key.hex().encode() + b"ab\n"),
        "hex-two-newlines": k.raw("hex2nl.kek", key.hex().encode() + b"\n\n"),
        "world-readable": k.new("world.kek", mode=0o644),
        "group-readable": k.new("group.kek", mode=0o640),
        "missing": Kek(os.path.join(k.dir, "missing.kek"), None),
        "directory": Kek(str(e.dir), None),
    }
    if os.geteuid() == 0:
        # Owned by someone else (only root can arrange that here).
        other = k.new("other-owner.kek")
        os.chown(other.path, 65534, 65534)
        e.bad_keks["other-owner"] = other
    e.wrong = k.new("wrong.kek")
    return e


# The valid form of each command; the cases below break one thing in it.
GOOD = {
    "create": lambda e: ["disk", "create", e.new, "--size", "1M", "--kek-file", e.keks.a],
    "info": lambda e: ["disk", "info", e.disk],
    "info-json": lambda e: ["disk", "info", e.disk, "--json"],
    "import": lambda e: ["disk", "import", e.src, e.new, "--kek-file", e.keks.a],
    "export": lambda e: ["disk", "export", e.disk, e.out, "--kek-file", e.keks.a],
    "export-stdout": lambda e: ["disk", "export", e.disk, "-", "--kek-file", e.keks.a],
    "verify": lambda e: ["disk", "verify", e.disk, "--kek-file", e.keks.a],
    "rekey-shallow": lambda e: ["disk", "rekey", e.disk, "--shallow", "--kek-file", e.keks.a,
                                "--new-kek-file", e.keks.b],
    "rekey-deep": lambda e: ["disk", "rekey", e.disk, "--deep", "--kek-file", e.keks.a],
    "rekey-deep-new": lambda e: ["disk", "rekey", e.disk, "--deep", "--kek-file", e.keks.a,
                                 "--new-kek-file", e.keks.b],
}
ALL = list(GOOD)
WITH_KEK = [c for c in ALL if not c.startswith("info")]
ON_DISK = [c for c in ALL if c not in ("create", "import")]   # first arg is the disk
OPENS_WITH_KEK = [c for c in ON_DISK if not c.startswith("info")]
WITH_NEW_KEK = ["rekey-shallow", "rekey-deep-new"]


def replace_pair(args, flag, value_obj, new):
    """args with [flag, value_obj] replaced by the list new."""
    for i in range(1, len(args)):
        if args[i] is value_obj and args[i - 1] == flag:
            return args[:i - 1] + list(new) + args[i + 1:]
    raise AssertionError(f"{flag} not in {args}")


def check(vmcrypt, e, args, codes, input=None, pass_fds=()):
    before = snapshot(e.root)
    r = vmcrypt.run(*args, input=input, pass_fds=pass_fds)
    assert_cli_error(r, codes)
    assert_same_snapshot(before, snapshot(e.root))
    return r


# ---- positive control: every base command works as given ------------------

@pytest.mark.parametrize("cmd", ALL)
def test_good_commands_succeed(vmcrypt, env, cmd):
    r = vmcrypt.run(*GOOD[cmd](env))
    assert r.returncode == 0, describe(r)


# ---- usage errors -----------------------------------------------------------

@pytest.mark.parametrize("cmd", ALL)
@pytest.mark.parametrize("extra", [["--bogus-option"], ["-Z"], ["extra-argument"],
                                   ["--kek-file"], ["--provider"]],
                         ids=["unknown-long", "unknown-short", "extra-arg",
                              "dangling-kek-file", "dangling-provider"])
def test_unknown_option_or_extra_argument(vmcrypt, env, cmd, extra):
    check(vmcrypt, env, GOOD[cmd](env) + extra, USAGE)


def _k(e):
    return ["--kek-file", e.keks.a]


MISSING = {
    "no-args": lambda e: [],
    "disk-only": lambda e: ["disk"],
    "unknown-command": lambda e: ["frobnicate"],
    "unknown-disk-command": lambda e: ["disk", "frobnicate", e.disk],
    "create-no-file": lambda e: ["disk", "create", "--size", "1M"] + _k(e),
    "create-no-size": lambda e: ["disk", "create", e.new] + _k(e),
    "create-no-kek": lambda e: ["disk", "create", e.new, "--size", "1M"],
    "info-no-file": lambda e: ["disk", "info"],
    "info-json-no-file": lambda e: ["disk", "info", "--json"],
    "import-no-args": lambda e: ["disk", "import"] + _k(e),
    "import-no-dest": lambda e: ["disk", "import", e.src] + _k(e),
    "import-no-kek": lambda e: ["disk", "import", e.src, e.new],
    "export-no-args": lambda e: ["disk", "export"] + _k(e),
    "export-no-dest": lambda e: ["disk", "export", e.disk] + _k(e),
    "export-no-kek": lambda e: ["disk", "export", e.disk, e.out],
    "verify-no-file": lambda e: ["disk", "verify"] + _k(e),
    "verify-no-kek": lambda e: ["disk", "verify", e.disk],
    "rekey-no-file": lambda e: ["disk", "rekey", "--deep"] + _k(e),
    "rekey-no-mode": lambda e: ["disk", "rekey", e.disk] + _k(e) + ["--new-kek-file", e.keks.b],
    "rekey-both-modes": lambda e: ["disk", "rekey", e.disk, "--shallow", "--deep"] + _k(e) +
    ["--new-kek-file", e.keks.b],
    "rekey-shallow-no-newkek": lambda e: ["disk", "rekey", e.disk, "--shallow"] + _k(e),
    "rekey-deep-no-kek": lambda e: ["disk", "rekey", e.disk, "--deep"],
    "rekey-shallow-no-kek": lambda e: ["disk", "rekey", e.disk, "--shallow",
                                       "--new-kek-file", e.keks.b],
    "two-keks": lambda e: ["disk", "export", e.disk, e.out, "--kek-file", e.keks.a,
                           "--kek-fd", "0"],
    "import-stdin-no-size": lambda e: ["disk", "import", "-", e.new] + _k(e),
}


@pytest.mark.parametrize("case", list(MISSING))
def test_missing_arguments(vmcrypt, env, case):
    inp = env.data if case == "import-stdin-no-size" else None
    check(vmcrypt, env, MISSING[case](env), USAGE, input=inp)


# ---- bad values ------------------------------------------------------------

BAD_SIZES = ["abc", "-1", "1Q", "0", "99999999P", "", "1.5M", "4097", " 1M", "1M ",
             "18446744073709551616", "16777216T", "70000T", "0x1000", "1MB?"]


@pytest.mark.parametrize("cmd", ["create", "import", "import-stdin"])
@pytest.mark.parametrize("size", BAD_SIZES)
def test_bad_size(vmcrypt, env, cmd, size):
    k = _k(env)
    if cmd == "create":
        args, inp = ["disk", "create", env.new, "--size", size] + k, None
    elif cmd == "import":
        args, inp = ["disk", "import", env.src, env.new, "--size", size] + k, None
    else:
        args, inp = ["disk", "import", "-", env.new, "--size", size] + k, env.data
    check(vmcrypt, env, args, EITHER, input=inp)


@pytest.mark.parametrize("cmd", ["create", "import"])
@pytest.mark.parametrize("ss", ["1024", "0", "abc", "-512", "4096x", "2048", "", "8192", "511"])
def test_bad_sector_size(vmcrypt, env, cmd, ss):
    args = GOOD[cmd](env) + ["--sector-size", ss]
    check(vmcrypt, env, args, EITHER)


@pytest.mark.parametrize("cmd", ["create", "import"])
@pytest.mark.parametrize("what", ["provider", "key-id"])
@pytest.mark.parametrize("value", ["", "x" * 200], ids=["empty", "too-long"])
def test_bad_names(vmcrypt, env, cmd, what, value):
    check(vmcrypt, env, GOOD[cmd](env) + [f"--{what}", value], EITHER)


# ---- files that are missing, foreign or damaged -----------------------------

@pytest.mark.parametrize("cmd", ON_DISK)
@pytest.mark.parametrize("kind", ["missing", "random", "tiny", "empty", "dir", "trunc"])
def test_not_a_disk(vmcrypt, env, cmd, kind):
    args = GOOD[cmd](env)
    args[2] = getattr(env, kind)  # ["disk", <sub>, FILE, ...]
    check(vmcrypt, env, args, FAIL)


@pytest.mark.parametrize("case", ["import-missing-src", "import-dir-src", "create-no-dir",
                                  "import-no-dir", "export-no-dir"])
def test_missing_paths(vmcrypt, env, case):
    args = {
        "import-missing-src": ["disk", "import", env.missing, env.new] + _k(env),
        "import-dir-src": ["disk", "import", env.dir, env.new] + _k(env),
        "create-no-dir": ["disk", "create", env.nodir, "--size", "1M"] + _k(env),
        "import-no-dir": ["disk", "import", env.src, env.nodir] + _k(env),
        "export-no-dir": ["disk", "export", env.disk, env.nodir] + _k(env),
    }[case]
    check(vmcrypt, env, args, FAIL)


@pytest.mark.parametrize("case", ["create-over-disk", "create-over-file", "create-over-dir",
                                  "import-over-disk", "import-over-file", "import-over-dir",
                                  "export-over-file", "export-over-disk", "export-over-dir",
                                  "import-onto-itself"])
def test_existing_destination(vmcrypt, env, case):
    k = _k(env)
    args = {
        "create-over-disk": ["disk", "create", env.disk, "--size", "1M"] + k,
        "create-over-file": ["disk", "create", env.existing_out, "--size", "1M"] + k,
        "create-over-dir": ["disk", "create", env.dir, "--size", "1M"] + k,
        "import-over-disk": ["disk", "import", env.src, env.disk] + k,
        "import-over-file": ["disk", "import", env.src, env.existing_out] + k,
        "import-over-dir": ["disk", "import", env.src, env.dir] + k,
        "export-over-file": ["disk", "export", env.disk, env.existing_out] + k,
        "export-over-disk": ["disk", "export", env.disk, env.trunc] + k,
        "export-over-dir": ["disk", "export", env.disk, env.dir] + k,
        "import-onto-itself": ["disk", "import", env.src, env.src] + k,
    }[case]
    check(vmcrypt, env, args, FAIL)


# ---- KEKs ---------------------------------------------------------------------

BAD_KEKS = ["short-raw", "long-raw", "much-longer", "empty", "bad-hex", "short-hex",
            "long-hex", "hex-two-newlines", "world-readable", "group-readable", "missing",
            "directory", "other-owner"]


@pytest.mark.parametrize("cmd", WITH_KEK)
@pytest.mark.parametrize("bad", BAD_KEKS)
def test_bad_kek_file(vmcrypt, env, cmd, bad):
    if bad not in env.bad_keks:
        pytest.skip("a file owned by another user needs root to set up")
    args = replace_pair(GOOD[cmd](env), "--kek-file", env.keks.a,
                        ["--kek-file", env.bad_keks[bad]])
    check(vmcrypt, env, args, FAIL)


@pytest.mark.parametrize("cmd", WITH_NEW_KEK)
@pytest.mark.parametrize("bad", BAD_KEKS)
def test_bad_new_kek_file(vmcrypt, env, cmd, bad):
    if bad not in env.bad_keks:
        pytest.skip("a file owned by another user needs root to set up")
    args = replace_pair(GOOD[cmd](env), "--new-kek-file", env.keks.b,
                        ["--new-kek-file", env.bad_keks[bad]])
    check(vmcrypt, env, args, FAIL)


@pytest.mark.parametrize("cmd", OPENS_WITH_KEK)
def test_wrong_kek(vmcrypt, env, cmd):
    args = replace_pair(GOOD[cmd](env), "--kek-file", env.keks.a, ["--kek-file", env.wrong])
    r = check(vmcrypt, env, args, FAIL)
    assert b"key" in r.stderr.lower(), "the error says the key is wrong: " + describe(r)


@pytest.mark.parametrize("cmd", WITH_KEK)
@pytest.mark.parametrize("fd", ["closed", "short-pipe", "empty-pipe", "abc", "-1",
                                "99999999999"])
def test_bad_kek_fd(vmcrypt, env, cmd, fd):
    pass_fds = ()
    codes = FAIL
    rfd = None
    if fd == "closed":
        val = str(CLOSED_FD)
    elif fd in ("short-pipe", "empty-pipe"):
        rfd, wfd = os.pipe()
        if fd == "short-pipe":
            os.write(wfd, env.keks.a.key[:16])
        os.close(wfd)
        val, pass_fds = str(rfd), (rfd,)
    else:
        val, codes = fd, EITHER
    try:
        args = replace_pair(GOOD[cmd](env), "--kek-file", env.keks.a, ["--kek-fd", val])
        check(vmcrypt, env, args, codes, pass_fds=pass_fds)
    finally:
        if rfd is not None:
            os.close(rfd)


@pytest.mark.parametrize("cmd", WITH_NEW_KEK)
def test_bad_new_kek_fd(vmcrypt, env, cmd):
    args = replace_pair(GOOD[cmd](env), "--new-kek-file", env.keks.b,
                        ["--new-kek-fd", str(CLOSED_FD)])
    check(vmcrypt, env, args, FAIL)


# ---- import input that does not fit --------------------------------------------

@pytest.mark.parametrize("case", ["file-64K", "file-by-one", "stdin-64K", "stdin-by-one",
                                  "empty-file-no-size"])
def test_import_input_too_long(vmcrypt, env, case):
    k = _k(env)
    if case == "file-64K":
        args, inp = ["disk", "import", env.src, env.new, "--size", "64K"] + k, None
    elif case == "file-by-one":
        src = env.root / "8193.raw"
        src.write_bytes(env.data[:8193])
        args, inp = ["disk", "import", src, env.new, "--size", "8K"] + k, None
    elif case == "stdin-64K":
        args, inp = ["disk", "import", "-", env.new, "--size", "64K"] + k, env.data
    elif case == "stdin-by-one":
        args, inp = ["disk", "import", "-", env.new, "--size", "8K"] + k, env.data[:8193]
    else:
        args, inp = ["disk", "import", env.empty, env.new] + k, None
    check(vmcrypt, env, args, FAIL if case != "empty-file-no-size" else EITHER, input=inp)
