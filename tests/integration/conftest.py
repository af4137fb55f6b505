# SPDX-License-Identifier: Apache-2.0
# Fixtures for the integration tests: the vmcrypt binary under test and a
# private directory of KEK files.
import os
import shutil
import tempfile

import pytest

from vc_util import Kek, Vmcrypt, kek_file, write_private


def build_dir():
    return os.environ.get("VMCRYPT_BUILD", "/work/main/build")


@pytest.fixture(scope="session")
def vmcrypt():
    """The CLI under test. A missing binary is a broken build, so it fails
    the tests instead of skipping them."""
    path = os.path.join(build_dir(), "cli", "vmcrypt")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing or not executable: build it with "
                    f"`ninja -C {build_dir()}` (or set VMCRYPT_BUILD)", pytrace=False)
    return Vmcrypt(path)


class Keks:
    """KEK files in a 0700 directory, each created with mode 0600.

    a: 32 raw bytes; b: 64 hex digits and a newline; c: 64 hex digits
    without a newline; new(): more on demand."""

    def __init__(self, root):
        self.dir = root
        os.mkdir(root, 0o700)
        self.a = kek_file(os.path.join(root, "a.kek"), form="raw")
        self.b = kek_file(os.path.join(root, "b.kek"), form="hex")
        self.c = kek_file(os.path.join(root, "c.kek"), form="hex-nonl")

    def new(self, name, key=None, form="raw", mode=0o600):
        return kek_file(os.path.join(self.dir, name), key=key, form=form, mode=mode)

    def raw(self, name, data, mode=0o600):
        """A file with arbitrary content, for malformed KEK files."""
        p = os.path.join(self.dir, name)
        write_private(p, data, mode)
        return Kek(p, None)


@pytest.fixture
def keks(tmp_path):
    return Keks(str(tmp_path / "keks"))


@pytest.fixture
def shm_dir(tmp_path):
    """A scratch directory in memory (/dev/shm) for big disks, so that the
    fsyncs of a long rekey do not dominate the run; tmp_path otherwise."""
    if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK):
        d = tempfile.mkdtemp(prefix="vmcrypt-test-", dir="/dev/shm")
        yield d
        shutil.rmtree(d, ignore_errors=True)
    else:
        yield str(tmp_path)
