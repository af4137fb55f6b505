# SPDX-License-Identifier: Apache-2.0
# Deep rekey while serving (nbdkit ... rekey=deep): clients keep reading and
# writing during the rekey and every write is intact afterwards; a server
# killed with SIGKILL in the middle resumes the rekey when started again.
import json
import os
import random
import signal
import threading
import time

import pytest

from vc_nbd import nbd_servers, vc_filter  # noqa: F401 (pytest fixtures)
from vc_util import make_image

MiB = 1 << 20
SECTOR = 4096


def import_disk(vmcrypt, directory, data, kek):
    src = os.path.join(str(directory), "disk.plain")
    with open(src, "wb") as f:
        f.write(data)
    disk = os.path.join(str(directory), "disk.vcd")
    vmcrypt.ok("disk", "import", src, disk, "--kek-file", kek)
    os.unlink(src)
    return disk


def info(vmcrypt, disk):
    return json.loads(vmcrypt.ok("disk", "info", disk, "--json").stdout)


def exported(vmcrypt, disk, kek, tmp_path):
    out = os.path.join(str(tmp_path), "export.raw")
    if os.path.exists(out):
        os.unlink(out)
    vmcrypt.ok("disk", "export", disk, out, "--kek-file", kek)
    with open(out, "rb") as f:
        return f.read()


def writer(uri, model, stop, errors, seed, first):
    """Random unaligned writes until told to stop; each acknowledged write
    goes into the model (the bytes the disk must hold)."""
    nbd = pytest.importorskip("nbd")
    rng = random.Random(seed)
    h = nbd.NBD()
    try:
        h.connect_uri(uri)
        first.append(time.monotonic())
        n = 0
        while not stop.is_set() or n < 50:
            length = rng.randrange(1, 3 * SECTOR)
            off = rng.randrange(0, len(model) - length)
            data = rng.randbytes(length)
            h.pwrite(data, off)
            model[off:off + length] = data
            n += 1
            if n % 64 == 0:
                h.flush()
        h.flush()
        h.shutdown()
    except Exception as e:   # reported by the test
        errors.append(repr(e))


def test_online_deep_rekey_with_writes(vmcrypt, keks, shm_dir, nbd_servers):  # noqa: F811
    pytest.importorskip("nbd", reason="python3-libnbd is not installed "
                        "(apt-get install python3-libnbd)")
    size = 48 * MiB
    data = make_image(size, 0.25, holes=[(8 * MiB, 12 * MiB)])
    disk = import_disk(vmcrypt, shm_dir, data, keks.a)
    gen = info(vmcrypt, disk)["key"]["generation"]
    model = bytearray(data)
    stop, errors, first = threading.Event(), [], []

    srv = nbd_servers.start(disk, kek=keks.a, extra=["rekey=deep"])
    t = threading.Thread(target=writer, args=(srv.uri, model, stop, errors, 1, first))
    t.start()
    # The rekey runs in the server; its header says when it is done.
    deadline = time.monotonic() + 120
    while info(vmcrypt, disk)["rekey"]["active"] or \
            info(vmcrypt, disk)["key"]["generation"] == gen:
        assert time.monotonic() < deadline, "the online rekey did not finish"
        time.sleep(0.05)
    finished = time.monotonic()
    stop.set()
    t.join(60)
    assert not errors, errors
    # The writes really ran during the rekey.
    assert first and first[0] < finished, (first, finished)
    srv.stop()
    assert info(vmcrypt, disk)["key"]["generation"] == gen + 1
    assert exported(vmcrypt, disk, keks.a, shm_dir) == bytes(model)


def test_online_deep_rekey_resumes_after_kill_9(vmcrypt, keks, shm_dir, nbd_servers):  # noqa: F811
    size = 24 * MiB
    data = make_image(size, 0.5)
    disk = import_disk(vmcrypt, shm_dir, data, keks.a)
    gen = info(vmcrypt, disk)["key"]["generation"]

    # SIGKILL after the 5th step: the rekey is half done.
    os.environ["VMCRYPT_TEST_CRASH_AT_STEP"] = "5"
    try:
        srv = nbd_servers.start(disk, kek=keks.a, extra=["rekey=deep"], wait=False)
    finally:
        del os.environ["VMCRYPT_TEST_CRASH_AT_STEP"]
    assert srv.proc.wait(60) == -signal.SIGKILL, srv.stderr()
    srv.stopped = True
    mid = info(vmcrypt, disk)["rekey"]
    assert mid["active"] is True and 0 < mid["progress_sectors"] < mid["total_sectors"], mid
    # Readable as it is (each sector under the key its progress says).
    assert exported(vmcrypt, disk, keks.a, shm_dir) == data

    srv = nbd_servers.start(disk, kek=keks.a, extra=["rekey=deep"])
    deadline = time.monotonic() + 120
    while info(vmcrypt, disk)["rekey"]["active"]:
        assert time.monotonic() < deadline, "the resumed rekey did not finish"
        time.sleep(0.05)
    srv.stop()
    after = info(vmcrypt, disk)
    assert after["key"]["generation"] == gen + 1 and after["rekey"]["active"] is False, after
    assert exported(vmcrypt, disk, keks.a, shm_dir) == data
