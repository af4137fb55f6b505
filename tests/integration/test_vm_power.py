# SPDX-License-Identifier: Apache-2.0
# Powered-on VMs: the agent serves each disk over NBD (nbdkit, through the
# vmcrypt I/O filter when encrypted), and a deep rekey of a disk in use runs
# inside the filter while a client keeps writing. The agent killed with
# SIGKILL in the middle: its disk servers keep serving, the restarted agent
# adopts them and the rekey, run again through the manager, completes with
# every acknowledged write intact. The disk server itself killed in the
# middle: powering the VM on again resumes the rekey from its journal.
import json
import os
import random
import signal
import subprocess
import tempfile
import threading

import pytest

from vc_hostd import Hostd
from vc_manager import Cli, Manager, find_secrets
from vc_nbd import require_tools
from vc_util import describe
from test_vm_lifecycle import (POLICY, Stack, cli_task, events, last_seq, poll, setup_host,
                               setup_provider, stop_servers)

MiB = 1 << 20
SECTOR = 4096
DISK = 8 * MiB            # eight 1 MiB journal steps: a rekey holds between two
STEP_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_tools("nbdkit")
    root = tmp_path_factory.mktemp("vmpower")
    # Short: the disk servers' Unix socket paths must fit in 108 bytes.
    run_dir = tempfile.mkdtemp(prefix="vc-run-", dir="/tmp")
    s = Stack("native", root)
    s.hold = os.path.join(str(root), "rekey-hold")
    try:
        s.mgr = Manager(root / "manager")
        s.mgr.start()
        s.admin = s.mgr.login()
        s.cli = Cli(root / "cli-admin")
        s.cli.login(s.mgr)
        s.agent = Hostd(root / "agent", run_dir=run_dir)
        # The disk servers inherit it: their rekey waits between two steps
        # while this file exists (a test hook, like the crash points).
        s.agent.extra_env["VMCRYPT_TEST_REKEY_HOLD"] = s.hold
        s.agent.start()
        setup_provider(s)
        setup_host(s)
        yield s
    finally:
        errors = stop_servers(s)
        # Servers a failed test left behind.
        for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
            if name.endswith(".pid"):
                with open(os.path.join(run_dir, name)) as f:
                    try:
                        os.kill(int(f.read()), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
        assert not errors, "\n".join(errors)


def gone(pid):
    """Exited (a zombie counts: nobody may reap it soon in a container)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def live(s, vm_uuid):
    """The VM as the agent reports it to the manager (with rekey state)."""
    return s.agent_api().ok("GET", f"/api/v1/vms/{vm_uuid}")


def make_vm(s, name, encrypted=True, size=DISK):
    args = ["vm", "create", name, "--host", s.host_id, "--disk", str(size)]
    t = cli_task(s.cli, *args + (["--policy", POLICY] if encrypted else []))
    return t["result"]["vm"], t["result"]["uuid"]


def power(s, vid, on):
    t = cli_task(s.cli, "vm", "power-on" if on else "power-off", vid)
    assert t["result"]["live"]["power"] == ("on" if on else "off"), t
    return t["result"]["live"]


def nbd_handle(uri):
    nbd = pytest.importorskip("nbd")
    h = nbd.NBD()
    h.connect_uri(uri)
    return h


class Writer:
    """Random unaligned writes through NBD until stopped. An acknowledged
    write goes into the model (what the disk must hold); the one in flight
    when the server died is remembered: its bytes may or may not be there."""

    def __init__(self, uri, size, seed):
        self.uri = uri
        self.model = bytearray(size)
        self.rng = random.Random(seed)
        self.count = 0
        self.in_flight = None
        self.error = None
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self, initial=b""):
        self.model[:len(initial)] = initial
        self.thread.start()
        return self

    def run(self):
        try:
            h = nbd_handle(self.uri)
        except Exception as e:          # reported by the test
            self.error = e
            return
        try:
            while not self.stop.is_set():
                length = self.rng.randrange(1, 3 * SECTOR)
                off = self.rng.randrange(0, len(self.model) - length)
                data = self.rng.randbytes(length)
                self.in_flight = (off, data)
                h.pwrite(data, off)
                self.model[off:off + length] = data
                self.in_flight = None
                with self.cond:
                    self.count += 1
                    self.cond.notify_all()
        except Exception as e:
            self.error = e
        finally:
            with self.cond:
                self.cond.notify_all()
            try:
                h.shutdown()
            except Exception:
                pass

    def wait_more(self, n, timeout=STEP_TIMEOUT):
        """Block until n more writes are acknowledged (the disk serves)."""
        with self.cond:
            target = self.count + n
            ok = self.cond.wait_for(lambda: self.count >= target or self.error is not None,
                                    timeout)
        assert ok and self.error is None, \
            f"the client's writes stopped: {self.error!r} after {self.count} writes"

    def finish(self):
        self.stop.set()
        self.thread.join(STEP_TIMEOUT)
        assert not self.thread.is_alive(), "the writer did not stop"


def read_all(uri, size):
    h = nbd_handle(uri)
    try:
        return h.pread(size, 0)
    finally:
        h.shutdown()


def disk_of(s, vm_uuid, n=0):
    return live(s, vm_uuid)["disks"][n]


def wait_rekey(s, vm_uuid, pred, what, timeout=STEP_TIMEOUT):
    return poll(what, lambda: (lambda d: d if pred(d) else None)(disk_of(s, vm_uuid)), timeout)


def held_mid_rekey(d):
    rk = d.get("rekey") or {}
    return rk.get("state") == "running" and 0 < rk.get("progress", 0) < rk.get("total", 0)


def start_cli_rekey(s, vid):
    return subprocess.Popen([s.cli.path, "vm", "rekey", vid, "--deep", "--json"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=s.cli.env())


def hold(s, on):
    if on:
        open(s.hold, "wb").close()
    elif os.path.exists(s.hold):
        os.unlink(s.hold)


# ---------------------------------------------------------------- tests

def test_power_on_serves_disks(stack):
    s = stack
    vid, vuuid = make_vm(s, "served-enc")
    pid_, puuid = make_vm(s, "served-plain", encrypted=False, size=MiB)
    on = power(s, vid, True)
    d = on["disks"][0]
    assert d["serving"] is True and d["nbd"].startswith("nbd+unix:///?socket="), on
    power(s, pid_, True)
    show = s.cli.json("vm", "show", vid)
    assert show["power"] == "on" and show["disks"][0]["nbd"] == d["nbd"], show

    marker = b"VMCRYPT-POWER-MARKER-" + os.urandom(8).hex().encode()
    h = nbd_handle(d["nbd"])
    try:
        assert h.get_size() == DISK
        h.pwrite(marker, 3 * MiB + 100)
        h.flush()
        assert h.pread(len(marker), 3 * MiB + 100) == marker
    finally:
        h.shutdown()
    hits = find_secrets(os.path.join(s.datastore, vuuid), {"marker": marker})
    assert not hits, f"the guest's bytes reached the datastore in the clear: {hits}"
    plain_uri = disk_of(s, puuid)["nbd"]
    h = nbd_handle(plain_uri)
    try:
        h.pwrite(marker, 0)
        h.flush()
    finally:
        h.shutdown()
    with open(os.path.join(s.datastore, puuid, "disk0.raw"), "rb") as f:
        assert f.read(len(marker)) == marker, "a plaintext VM's disk is served as it is"

    # What would change the files of a running VM is refused, saying why.
    for args in (["vm", "decrypt", vid], ["vm", "delete", vid],
                 ["vm", "clone", vid, "--name", "c"], ["vm", "add-disk", vid, "--disk", "1M"]):
        r = s.cli.run(*args)
        assert r.returncode != 0 and "powered on" in (r.stderr + r.stdout).decode(), \
            describe(r)
    assert s.agent_api().request("GET", f"/api/v1/vms/{vuuid}/disks/0/data").status == 409

    seq = last_seq(s.admin)
    power(s, vid, False)
    power(s, pid_, False)
    offs = [e for e in events(s.cli, "vm.power-off") if e["seq"] > seq]
    assert {(e["object"], e["result"]) for e in offs} == {(vid, "success"), (pid_, "success")}
    assert any(e["key_id"] for e in offs if e["object"] == vid), offs
    r = s.agent_api().request("GET", f"/api/v1/vms/{vuuid}/disks/0/data", timeout=60)
    assert r.status == 200 and r.body[3 * MiB + 100:3 * MiB + 100 + len(marker)] == marker
    assert os.listdir(s.agent.run_dir) == [], "power-off leaves no socket, pid file or log"
    s.vms[vid] = {"uuid": vuuid}


def test_shallow_rekey_in_use(stack):
    """A shallow rekey of a powered-on VM: each served disk's filter
    rewraps its data key under the new KEK (the agent hands it over the
    control socket); the guest's data stays readable throughout and after
    a power cycle, which opens the disks with the new key."""
    s = stack
    vid, vuuid = make_vm(s, "shallow-live")
    uri = power(s, vid, True)["disks"][0]["nbd"]
    data = os.urandom(DISK)
    h = nbd_handle(uri)
    try:
        h.pwrite(data, 0)
        h.flush()
        old = s.cli.json("vm", "show", vid)["key_id"]
        t = cli_task(s.cli, "vm", "rekey", vid)
        new = t["result"]["key_id"]
        assert new != old and t["result"]["old_key_id"] == old, t
        disk = os.path.join(s.datastore, vuuid, "disk0.vcd")
        info = json.loads(s.cli.ok("disk", "info", disk, "--json").stdout)
        assert info["key"]["key_id"] == new, f"the served disk still names {info['key']}"
        assert h.pread(DISK, 0) == data
    finally:
        h.shutdown()
    power(s, vid, False)
    assert read_all(power(s, vid, True)["disks"][0]["nbd"], DISK) == data
    power(s, vid, False)


def test_deep_rekey_in_use_survives_agent_kill(stack):
    s = stack
    vid, vuuid = make_vm(s, "rekey-live")
    uri = power(s, vid, True)["disks"][0]["nbd"]
    before = disk_of(s, vuuid)
    gen0, server_pid = before["rekey"]["generation"], before["pid"]
    assert before["rekey"]["state"] == "idle", before
    w = Writer(uri, DISK, seed=1).start()
    w.wait_more(20)
    seq = last_seq(s.admin)

    hold(s, True)
    try:
        cli = start_cli_rekey(s, vid)
        d = wait_rekey(s, vuuid, held_mid_rekey, "the online rekey under way")
        assert d["rekey"]["generation"] == gen0, d
        w.wait_more(20)

        s.agent.kill()
        # The disk keeps serving the client without its agent.
        w.wait_more(50)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode != 0, "the task that lost its host cannot succeed:\n" + \
            out.decode() + err.decode()

        s.agent.start()
        d = disk_of(s, vuuid)
        assert live(s, vuuid)["power"] == "on" and d["serving"] is True, d
        assert d["pid"] == server_pid and d["nbd"] == uri, (d, server_pid, uri)
        assert held_mid_rekey(d), d
        w.wait_more(20)
        # The manager refills the restarted agent's key cache by itself.
        poll("the VM unlocked", lambda: live(s, vuuid)["state"] == "ready", STEP_TIMEOUT)
    finally:
        hold(s, False)

    # Run again through the manager: it follows the adopted rekey to its end.
    t = cli_task(s.cli, "vm", "rekey", vid, "--deep")
    assert t["result"]["online"] == 1 and t["result"]["disks"] == 1, t
    d = disk_of(s, vuuid)
    assert d["rekey"]["state"] == "done" and d["rekey"]["generation"] == gen0 + 1, \
        f"one rekey, resumed, not a second one: {d}"
    w.wait_more(20)
    w.finish()
    assert w.error is None, repr(w.error)
    assert read_all(uri, DISK) == bytes(w.model), "a write made during the rekey was lost"
    rk = [e for e in events(s.cli, "vm.rekey") if e["seq"] > seq and e["object"] == vid]
    assert [e["result"] for e in rk] == ["failure", "success"], rk
    assert all(e["key_id"] == t["result"]["key_id"] for e in rk), rk

    power(s, vid, False)
    r = s.agent_api().request("GET", f"/api/v1/vms/{vuuid}/disks/0/data", timeout=60)
    assert r.status == 200 and r.body == bytes(w.model), "the export differs from the writes"
    info = json.loads(s.cli.ok("disk", "info",
                               os.path.join(s.datastore, vuuid, "disk0.vcd"), "--json").stdout)
    assert info["rekey"]["active"] is False, info


def test_disk_server_killed_mid_rekey_resumes(stack):
    s = stack
    vid, vuuid = make_vm(s, "rekey-crash")
    uri = power(s, vid, True)["disks"][0]["nbd"]
    gen0 = disk_of(s, vuuid)["rekey"]["generation"]
    w = Writer(uri, DISK, seed=2).start()
    w.wait_more(20)

    hold(s, True)
    try:
        cli = start_cli_rekey(s, vid)
        d = wait_rekey(s, vuuid, held_mid_rekey, "the online rekey under way")
        os.kill(d["pid"], signal.SIGKILL)
        out, err = cli.communicate(timeout=60)
        assert cli.returncode != 0, out.decode() + err.decode()
        w.finish()
        assert w.error is not None, "the client's server was killed"
        d = disk_of(s, vuuid)
        assert d["serving"] is False and "exited" in d["reason"], d
        info = json.loads(s.cli.ok("disk", "info",
                                   os.path.join(s.datastore, vuuid, "disk0.vcd"),
                                   "--json").stdout)
        assert info["rekey"]["active"] is True, info
    finally:
        hold(s, False)

    # Powered on again, the server resumes the rekey from its journal.
    uri = power(s, vid, True)["disks"][0]["nbd"]
    d = wait_rekey(s, vuuid, lambda x: (x.get("rekey") or {}).get("state") in ("done", "failed"),
                   "the resumed rekey's end")
    assert d["rekey"]["state"] == "done" and d["rekey"]["generation"] == gen0 + 1, d
    got = read_all(uri, DISK)
    want = bytes(w.model)
    if w.in_flight is not None:
        # The write the kill interrupted: either state is fine there.
        off, data = w.in_flight
        lo, hi = off - off % SECTOR, -(-(off + len(data)) // SECTOR) * SECTOR
        got = got[:lo] + bytes(hi - lo) + got[hi:]
        want = want[:lo] + bytes(hi - lo) + want[hi:]
    assert got == want, "an acknowledged write was lost across the server's crash"
    power(s, vid, False)


def test_offline_deep_rekey_keeps_the_agent_answering(stack):
    """A powered-off VM's disk is rekeyed by a thread of the agent: the
    agent goes on answering meanwhile, and refuses what would touch that
    VM's files until the rekey is over."""
    s = stack
    vid, vuuid = make_vm(s, "rekey-off")
    # Data everywhere: a rekey skips what was never written.
    data = os.urandom(DISK)
    h = nbd_handle(power(s, vid, True)["disks"][0]["nbd"])
    try:
        h.pwrite(data, 0)
        h.flush()
    finally:
        h.shutdown()
    power(s, vid, False)
    gen0 = json.loads(s.cli.ok("disk", "info", os.path.join(s.datastore, vuuid, "disk0.vcd"),
                               "--json").stdout)["key"]["generation"]
    hold(s, True)
    try:
        cli = start_cli_rekey(s, vid)
        status = f"/api/v1/vms/{vuuid}/disks/0/rekey"

        def held():
            r = s.agent_api().request("GET", status)
            if r.status == 409:           # the task has not reached the agent yet
                return None
            st = r.json
            return st["state"] == "running" and 0 < st["progress"] < st["total"]
        poll("the offline rekey under way", held, STEP_TIMEOUT)
        # The manager runs other tasks meanwhile (tasks of one VM wait for
        # each other); the agent answers and refuses what would touch
        # this VM's files.
        make_vm(s, "while-rekeying", encrypted=False, size=MiB)
        r = s.agent_api().request("POST", f"/api/v1/vms/{vuuid}/power-on")
        assert r.status == 409 and r.json["error"]["code"] == "busy", r
        assert cli.poll() is None, "the rekey task cannot be over while held"
    finally:
        hold(s, False)
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, out.decode() + err.decode()
    t = json.loads(out)
    assert t["result"]["disks"] == 1 and t["result"]["online"] == 0, t
    st = s.agent_api().ok("GET", f"/api/v1/vms/{vuuid}/disks/0/rekey")
    assert st["state"] == "done" and st["generation"] == gen0 + 1, st
    assert read_all(power(s, vid, True)["disks"][0]["nbd"], DISK) == data
    power(s, vid, False)


def test_agent_stop_powers_vms_off(stack):
    s = stack
    vid, vuuid = make_vm(s, "stop-off", size=MiB)
    pid = power(s, vid, True)["disks"][0]["pid"]
    s.agent.stop()
    assert os.listdir(s.agent.run_dir) == [], "a clean agent stop leaves no disk server files"
    assert gone(pid), f"disk server {pid} still runs after the agent's clean stop"
    s.agent.start()
    assert live(s, vuuid)["power"] == "off"
