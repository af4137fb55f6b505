# SPDX-License-Identifier: Apache-2.0
# A VM's life end to end through the `vmcrypt` CLI, the real vmcryptd and a
# real vmcrypt-hostd, once with the native key provider and once with a
# standard provider on a two-node PyKMIP cluster: a plaintext VM with
# markers in its disks encrypted by policy (task progress, events naming
# the key, no marker nor KEK left in any file of the agent or the manager,
# the disks exported through the agent equal to the original plaintext);
# a VM encrypted from the start; an agent restart after which the manager
# unlocks the VMs by itself (and, with KMIP, only once the key servers are
# back, saying why meanwhile); what the No Cryptography Administrator may
# and may not do; a foreign folder with a garbage vm.json and a truncated
# encrypted disk in the datastore.
import base64
import json
import os
import random
import re
import signal
import subprocess
import time
import uuid

import pytest

from vc_hostd import Hostd, cert_thumbprint
from vc_kmip import KmipCluster, PyKmip, require_pykmip
from vc_kmip import kmip_pki  # noqa: F401 (pytest fixture)
from vc_manager import (PASSWORD, Cli, Manager, add_user, assert_error, check_value,
                        find_secrets, native_kek, open_backup)
from vc_util import assert_cli_error, describe, write_private

NATIVE = "nat"
KMS = "kms"
POLICY = "enc"
BACKUP_PASSWORD = "vm-lifecycle-backup-pw-41"
MiB = 1 << 20
DISK_SIZES = (2 * MiB, 3 * MiB)
UNLOCK_TIMEOUT = 10.0       # docs/API.md: locked VMs are reconciled once a second
KMIP_BACK_TIMEOUT = 15.0
POLL = 0.1

PRIV_ENCRYPT = "Cryptographer.Encrypt"
PRIV_ENCRYPT_NEW = "Cryptographer.EncryptNew"
PRIV_REGISTER_HOST = "Cryptographer.RegisterHost"


# ---------------------------------------------------------------- the stack

class Stack:
    """One manager, one agent added as a host, one provider (native or
    KMIP) and an encrypting policy, all made through the CLI where it can;
    the tests of one parameter share it and what they learnt."""

    def __init__(self, kind, root):
        self.kind = kind
        self.root = str(root)
        self.mgr = None
        self.agent = None
        self.cluster = None
        self.pki = None
        self.native = None          # (provider id bytes, master key) from the backup
        self.provider = NATIVE if kind == "native" else KMS
        self.host_id = None
        self.admin = None
        self.cli = None
        # VMs made by the tests: id -> {"uuid", "plain": [bytes per disk] | None,
        # "encrypted": bool, "key_id"}
        self.vms = {}

    @property
    def datastore(self):
        return os.path.join(self.agent.dir, "datastore")

    def vm_dir(self, vm_id):
        return os.path.join(self.datastore, self.vms[vm_id]["uuid"])

    def agent_api(self):
        """The agent's API as the manager: its certificate and key, the
        agent's thumbprint pinned."""
        return self.agent.as_manager(self.mgr)

    def kek(self, key_id):
        """The KEK bytes, from outside vmcrypt: PyKMIP's Get, or the
        native derivation from the backup envelope (docs/KEYS.md)."""
        if self.kind == "kmip":
            srv = next(s for s in self.cluster if s.running)
            with PyKmip(self.pki, srv.host, srv.port) as c:
                key = c.get_key(key_id)
        else:
            pid, master = self.native
            key = native_kek(master, pid, key_id)
        assert len(key) == 32, (key_id, len(key))
        # The manager's own check value says these are the bytes it uses.
        got = self.admin.ok("GET", f"key-providers/{self.provider}/keys/{key_id}", ok=(200,))
        assert got["check_value"] == check_value(key), \
            f"key {key_id}: the manager's check value {got['check_value']} is not that of " \
            f"the key bytes the provider hands out ({check_value(key)})"
        return key


@pytest.fixture(scope="module", params=["native", "kmip"])
def stack(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"vmlife-{kind}")
    s = Stack(kind, root)
    try:
        if kind == "kmip":
            require_pykmip()
            s.pki = request.getfixturevalue("kmip_pki")
            # Started first, stopped last: no manager connection is left to
            # delay the servers' clean stop.
            s.cluster = KmipCluster(s.pki, root / "kmip").start()
        s.mgr = Manager(root / "manager")
        s.mgr.start()
        s.admin = s.mgr.login()
        s.cli = Cli(root / "cli-admin")
        s.cli.login(s.mgr)
        s.agent = Hostd(root / "agent")
        s.agent.start()
        assert s.agent.token, "a first start prints a join token:\n" + s.agent.stderr_text()
        setup_provider(s)
        setup_host(s)
        yield s
    finally:
        errors = stop_servers(s)
        if s.cluster is not None:
            s.cluster.stop()
        assert not errors, "\n".join(errors)


def stop_servers(s):
    """Stop the agent and the manager; what went wrong with each, so that
    both are stopped whatever happens to the first."""
    errors = []
    for what, stop in (("agent", lambda: s.agent and s.agent.stop()),
                       ("manager", lambda: s.mgr and s.mgr.stop())):
        try:
            stop()
        except Exception as e:
            errors.append(f"{what}: {e}")
    return errors


def setup_provider(s):
    if s.kind == "native":
        s.admin.ok("POST", "key-providers", {"name": NATIVE, "kind": "native"}, ok=(201,))
        env = s.admin.ok("POST", f"key-providers/{NATIVE}/backup",
                         {"password": BACKUP_PASSWORD}, ok=(200,))["backup"]
        pid, _created, master = open_backup(base64.b64decode(env), BACKUP_PASSWORD)
        s.native = (pid, master)
    else:
        eps = s.cluster.endpoints()
        s.cli.ok("provider", "add-kmip", KMS, "--server", eps[0], "--server", eps[1],
                 "--ca-file", s.pki.ca, "--cert-file", s.pki.client.cert,
                 "--key-file", s.pki.client.key, "--timeout-ms", "3000")
    s.cli.ok("policy", "add", POLICY, "--encrypt", "yes", "--provider", s.provider)
    pol = s.cli.json("policy", "show", POLICY)
    assert pol["encrypt"] is True and pol["provider"] == s.provider, pol


def setup_host(s):
    token = os.path.join(s.cli.home, "join-token")
    write_private(token, s.agent.token.encode() + b"\n")
    tp = cert_thumbprint(s.agent.cert)
    assert tp == s.agent.fingerprint, (tp, s.agent.fingerprint)
    h = s.cli.json("host", "add", s.agent.address, "--join-token-file", token,
                   "--thumbprint", tp, "--name", f"kvm-{s.kind}")
    assert h["thumbprint"] == tp and h["address"] == s.agent.address, h
    s.host_id = h["id"]


# ---------------------------------------------------------------- helpers

def poll(what, fn, timeout, period=POLL):
    """Call fn until it returns something true, at most timeout seconds;
    the last value is in the failure message."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s (last: {v!r})"
        time.sleep(period)


def cli_task(cli, *args):
    """Run a CLI command that follows a task (--json prints the task)."""
    t = cli.json(*args)
    assert isinstance(t, dict) and t.get("state") == "success", t
    return t


def events(cli, operation):
    return cli.json("events", "list", "--operation", operation)["events"]


def last_seq(admin):
    return admin.ok("GET", "events/verify", ok=(200,))["last_seq"]


def make_disk_content(rng_seed, size, marker):
    """Where the markers go: the start, a sector interior, across the
    1 MiB copy chunk and a sector boundary, and the very end; plus a few
    random blocks, the rest stays zero (holes). Only what fits in size."""
    rng = random.Random(rng_seed)
    edits = []
    for off in (0, 5 * 4096 + 17, MiB - len(marker) // 2, size - len(marker)):
        edits.append((off, marker))
    for off in (9 * 4096, MiB + 3 * 4096, size - 8 * 4096):
        edits.append((off, rng.randbytes(3 * 4096 + 100)))
    return [(off, data) for off, data in edits if off + len(data) <= size]


def write_markers(path, size, edits):
    """Apply the edits in place (the file keeps its size) and return the
    disk's whole plaintext as read back."""
    fd = os.open(path, os.O_RDWR)
    try:
        for off, data in edits:
            assert off + len(data) <= size
            os.pwrite(fd, data, off)
        os.fsync(fd)
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        plain = f.read()
    assert len(plain) == size, (path, len(plain), size)
    return plain


def export_disk(s, vm_uuid, n):
    return s.agent_api().request("GET", f"/api/v1/vms/{vm_uuid}/disks/{n}/data", timeout=60)


def encrypted_vms(s):
    return [vid for vid, v in s.vms.items() if v["encrypted"]]


def require_encrypted_vm(s):
    """The tests after the first two need one encrypted VM: make one when
    those failed before making theirs."""
    if not encrypted_vms(s):
        t = cli_task(s.cli, "vm", "create", "fallback-enc", "--host", s.host_id,
                     "--disk", "1M", "--policy", POLICY)
        vid = t["result"]["vm"]
        s.vms[vid] = {"uuid": t["result"]["uuid"], "encrypted": True,
                      "key_id": t["result"]["key_id"], "plain": [bytes(MiB)]}
    return encrypted_vms(s)


def vm_states(s, ids):
    """{id: (state, reason)} as the manager reports them (GET /vms/{id})."""
    out = {}
    for vid in ids:
        j = s.admin.ok("GET", f"vms/{vid}", ok=(200,))
        out[vid] = (j.get("state"), j.get("reason"))
    return out


def host_keys_events_since(s, seq):
    return [e for e in events(s.cli, "host.keys") if e["seq"] > seq]


# ---------------------------------------------------------------- tests

def test_encrypt_plaintext_vm(stack):
    s = stack
    t = cli_task(s.cli, "vm", "create", "plain-vm", "--host", s.host_id,
                 "--disk", "2M", "--disk", "3M")
    vid, vuuid = t["result"]["vm"], t["result"]["uuid"]
    assert t["result"]["key_id"] is None, t
    show = s.cli.json("vm", "show", vid)
    assert show["uuid"] == vuuid and show["encrypted"] is False and show["state"] == "ready", show
    assert [(d["size"], d["encrypted"]) for d in show["disks"]] == \
        [(DISK_SIZES[0], False), (DISK_SIZES[1], False)], show
    vdir = os.path.join(s.datastore, vuuid)

    markers, plains = [], []
    for n, size in enumerate(DISK_SIZES):
        marker = b"VMCRYPT-LIFECYCLE-MARKER-%d-%s-END" % (n, os.urandom(12).hex().encode())
        markers.append(marker)
        raw = os.path.join(vdir, show["disks"][n]["file"])
        assert raw.endswith(f"disk{n}.raw") and os.path.getsize(raw) == size, show
        plains.append(write_markers(raw, size, make_disk_content(n, size, marker)))
    s.vms[vid] = {"uuid": vuuid, "encrypted": False, "key_id": None, "plain": plains}
    seq = last_seq(s.admin)

    r = s.cli.run("vm", "encrypt", vid, "--policy", POLICY, "--json")
    assert r.returncode == 0, describe(r)
    task = s.cli.json("task", "show", json.loads(r.stdout)["id"])
    kid = task["result"]["key_id"]
    assert task["state"] == "success" and task["progress"] == 100, task
    assert task["kind"] == "vm.encrypt" and task["result"]["vm"] == vid and kid, task
    s.vms[vid].update(encrypted=True, key_id=kid)
    listed = [x for x in s.admin.ok("GET", "tasks", ok=(200,))["tasks"] if x["id"] == task["id"]]
    assert len(listed) == 1 and listed[0]["state"] == "success" and \
        listed[0]["progress"] == 100 and listed[0]["error"] is None, listed

    # The events name the key, in the provider that made it.
    enc = [e for e in events(s.cli, "vm.encrypt") if e["seq"] > seq]
    assert [(e["object"], e["result"], e["key_id"], e["provider"]) for e in enc] == \
        [(vid, "success", kid, s.provider)], enc
    made = [e for e in events(s.cli, "key.create") if e["key_id"] == kid]
    assert [(e["result"], e["provider"]) for e in made] == [("success", s.provider)], made
    assert made[0]["seq"] < enc[0]["seq"], (made, enc)

    # The VM as the manager and the agent see it.
    show = s.cli.json("vm", "show", vid)
    assert show["encrypted"] is True and show["state"] == "ready", show
    assert show["key_id"] == kid and show["provider"] == s.provider, show
    assert len(show["disks"]) == 2 and all(d["encrypted"] for d in show["disks"]), show
    assert [d["file"] for d in show["disks"]] == ["disk0.vcd", "disk1.vcd"], show
    live = s.agent_api().ok("GET", f"/api/v1/vms/{vuuid}")
    assert live["nvram"] == "nvram.vcf" and live["encrypted"] is True, live
    assert sorted(os.listdir(vdir)) == ["disk0.vcd", "disk1.vcd", "nvram.vcf", "vm.json"], \
        sorted(os.listdir(vdir))

    # Nothing in the clear at rest: neither the markers nor the KEK, in any
    # spelling, in any file of the agent (datastore included) or manager.
    kek = s.kek(kid)
    secrets = {f"marker of disk {n}": m for n, m in enumerate(markers)}
    secrets["random block of disk 0"] = plains[0][9 * 4096:9 * 4096 + 64]
    secrets["KEK"] = kek
    for root in (s.agent.dir, s.mgr.dir):
        hits = find_secrets(root, secrets)
        assert not hits, f"plaintext or key material at rest under {root}: {hits}"

    # The plaintext comes back through the agent, byte for byte.
    for n, plain in enumerate(plains):
        r = export_disk(s, vuuid, n)
        assert r.status == 200, f"export of disk {n}: {r}"
        assert r.content_type == "application/octet-stream", r
        assert len(r.body) == len(plain), (n, len(r.body), len(plain))
        assert r.body == plain, f"disk {n}: the exported plaintext differs from the original"
    s.mgr.assert_alive()
    s.agent.assert_alive()


def test_create_encrypted_vm(stack):
    s = stack
    seq = last_seq(s.admin)
    t = cli_task(s.cli, "vm", "create", "enc-vm", "--host", s.host_id,
                 "--disk", "1M", "--disk", "2M", "--policy", POLICY)
    vid, vuuid, kid = t["result"]["vm"], t["result"]["uuid"], t["result"]["key_id"]
    assert kid, t
    s.vms[vid] = {"uuid": vuuid, "encrypted": True, "key_id": kid,
                  "plain": [bytes(MiB), bytes(2 * MiB)]}
    show = s.cli.json("vm", "show", vid)
    assert show["state"] == "ready" and show["encrypted"] is True, show
    assert show["key_id"] == kid and show["provider"] == s.provider, show
    assert [(d["file"], d["size"], d["encrypted"]) for d in show["disks"]] == \
        [("disk0.vcd", MiB, True), ("disk1.vcd", 2 * MiB, True)], show
    vdir = os.path.join(s.datastore, vuuid)
    assert sorted(os.listdir(vdir)) == ["disk0.vcd", "disk1.vcd", "nvram.vcf", "vm.json"], \
        sorted(os.listdir(vdir))
    live = s.agent_api().ok("GET", f"/api/v1/vms/{vuuid}")
    assert live["nvram"] == "nvram.vcf", live
    # The nvram (128 KiB of zeros) is sealed, not stored as it is.
    with open(os.path.join(vdir, "nvram.vcf"), "rb") as f:
        assert bytes(4096) not in f.read(), "nvram.vcf holds a zero page: not encrypted?"

    created = [e for e in events(s.cli, "vm.create") if e["seq"] > seq]
    assert [(e["object"], e["result"], e["key_id"], e["provider"]) for e in created] == \
        [(vid, "success", kid, s.provider)], created
    made = [e for e in events(s.cli, "key.create") if e["key_id"] == kid]
    assert [(e["result"], e["provider"]) for e in made] == [("success", s.provider)], made

    for n, size in enumerate((MiB, 2 * MiB)):
        r = export_disk(s, vuuid, n)
        assert r.status == 200 and r.body == bytes(size), f"disk {n} of a new VM: {r}"
    kek = s.kek(kid)
    for root in (s.agent.dir, s.mgr.dir):
        hits = find_secrets(root, {"KEK": kek})
        assert not hits, f"the KEK at rest under {root}: {hits}"


def test_agent_restart_unlocks_vms(stack):
    s = stack
    ids = require_encrypted_vm(s)
    seq = last_seq(s.admin)
    s.agent.restart()
    seen = {vid: [] for vid in ids}

    def all_ready():
        for vid, (state, reason) in vm_states(s, ids).items():
            seen[vid].append(state)
            assert state in ("locked", "ready"), \
                f"VM {vid} after an agent restart: state {state!r} ({reason})"
            if state == "locked":
                assert reason and "key" in reason, (vid, reason)
        return all(seen[vid][-1] == "ready" for vid in ids)

    poll("the VMs unlock by themselves after an agent restart", all_ready, UNLOCK_TIMEOUT)
    # Locked is not required (the manager may have been quicker than the
    # first look), but it is the only other state allowed above.
    pushed = host_keys_events_since(s, seq)
    assert pushed and all(e["object"] == s.host_id and e["result"] == "success"
                          for e in pushed), pushed
    text = " ".join(f"{e['key_id']} {e['message']}" for e in pushed)
    for vid in ids:
        assert s.vms[vid]["key_id"] in text, (vid, s.vms[vid]["key_id"], pushed)
    for vid in ids:
        v = s.vms[vid]
        r = export_disk(s, v["uuid"], 0)
        assert r.status == 200 and r.body == v["plain"][0], f"VM {vid} after unlock: {r}"

    if s.kind != "kmip":
        return
    # The key servers down: the VMs stay locked and the reason says why.
    for srv in s.cluster:
        srv.kill()
    try:
        s.agent.restart()

        def explained():
            out = {}
            for vid in ids:
                j = s.cli.json("vm", "show", vid)
                assert j["state"] == "locked", \
                    f"VM {vid} is {j['state']} with every key server down: {j}"
                out[vid] = j.get("reason") or ""
            # docs/API.md: the reason includes the key provider's error.
            return out if all(re.search(r"key (provider|server)", r, re.I) and KMS in r
                              and "cannot fetch" in r for r in out.values()) else None

        reasons = poll("locked VMs name the unreachable key provider", explained, 20.0)
        for vid, reason in reasons.items():
            assert "\n" not in reason and len(reason) < 1100, reason
        seq = last_seq(s.admin)
    finally:
        for srv in s.cluster:
            if not srv.running:
                srv.start()
    poll("the VMs unlock once the key servers are back",
         lambda: all(st == "ready" for st, _ in vm_states(s, ids).values()), KMIP_BACK_TIMEOUT)
    assert host_keys_events_since(s, seq), "no host.keys event after the servers came back"
    s.mgr.assert_alive()


def test_no_cryptography_administrator(stack):
    s = stack
    name = f"nca-{s.kind}"
    add_user(s.admin, name, role="NoCryptoAdmin", obj="root")
    c = Cli(os.path.join(s.root, f"cli-{name}"))
    c.login(s.mgr, name, PASSWORD)

    vms = {v["id"] for v in c.json("vm", "list")["vms"]}
    assert set(s.vms) <= vms, (vms, set(s.vms))
    assert s.host_id in {h["id"] for h in c.json("host", "list")["hosts"]}

    t = cli_task(c, "vm", "create", "nca-plain", "--host", s.host_id, "--disk", "1M")
    vid = t["result"]["vm"]
    assert t["result"]["key_id"] is None, t
    assert s.admin.ok("GET", f"vms/{vid}", ok=(200,))["encrypted"] is False

    line = assert_cli_error(c.run("vm", "encrypt", vid, "--policy", POLICY), 4)
    # Cryptographer.Encrypt itself, not EncryptNew.
    assert re.search(re.escape(PRIV_ENCRYPT) + r"\b", line) and f"'{name}'" in line, line
    j = s.admin.ok("GET", f"vms/{vid}", ok=(200,))
    assert j["encrypted"] is False and j["key_id"] is None, j

    before = {v["id"] for v in s.admin.ok("GET", "vms", ok=(200,))["vms"]}
    line = assert_cli_error(c.run("vm", "create", "nca-enc", "--host", s.host_id,
                                  "--disk", "1M", "--policy", POLICY), 4)
    assert PRIV_ENCRYPT_NEW in line, line
    after = s.admin.ok("GET", "vms", ok=(200,))["vms"]
    assert {v["id"] for v in after} == before, after
    assert "nca-enc" not in {v["name"] for v in after}, after

    line = assert_cli_error(c.run("host", "encryption-mode", s.host_id, "enable"), 4)
    assert PRIV_REGISTER_HOST in line, line
    denied = [e for e in events(s.cli, "access.denied") if e["user"] == name]
    assert len(denied) >= 3 and all(e["result"] == "denied" for e in denied), denied


def test_foreign_and_corrupt_files(stack):
    s = stack
    ids = require_encrypted_vm(s)
    stray = str(uuid.uuid4())
    os.mkdir(os.path.join(s.datastore, stray), 0o700)
    with open(os.path.join(s.datastore, stray, "vm.json"), "wb") as f:
        f.write(b'{"version": 1, "uuid": \x00\xff garbage')
    os.mkdir(os.path.join(s.datastore, "not-a-vm"), 0o700)
    with open(os.path.join(s.datastore, "not-a-vm", "vm.json"), "wb") as f:
        f.write(b"junk")
    s.agent.restart()
    api = s.agent_api()
    known = {v["uuid"] for v in s.vms.values()}

    listed = {v["uuid"]: v for v in api.ok("GET", "/api/v1/vms")["vms"]}
    assert set(listed) >= known | {stray}, sorted(listed)
    assert "not-a-vm" not in listed, sorted(listed)
    bad = listed[stray]
    assert bad["state"] == "error", bad
    assert isinstance(bad.get("reason"), str) and "vm.json" in bad["reason"] \
        and "\n" not in bad["reason"], bad
    assert api.ok("GET", f"/api/v1/vms/{stray}")["state"] == "error"
    assert_error(api.request("GET", f"/api/v1/vms/{stray}/disks/0/data"), 409)

    # The others unlock as after any restart.
    poll("the other VMs are ready next to a broken one",
         lambda: all(st == "ready" for st, _ in vm_states(s, list(s.vms)).values()),
         UNLOCK_TIMEOUT)

    # A truncated encrypted disk: a clear error, not a crash, and the
    # VM's other disk still reads.
    vid = ids[-1]
    v = s.vms[vid]
    os.truncate(os.path.join(s.vm_dir(vid), "disk0.vcd"), 4096)
    r = export_disk(s, v["uuid"], 0)
    assert 400 <= r.status <= 599, f"export of a truncated disk: {r}"
    # The agent's own error codes are not the manager's table: any code,
    # but the JSON error shape with one line that speaks of the disk.
    err = assert_error(r, r.status, r.error.get("code") if isinstance(r.error, dict) else None)
    assert "disk" in err["message"], r
    s.agent.assert_alive()
    assert api.request("GET", "/api/v1/host").status == 200
    if len(v["plain"]) > 1:
        r = export_disk(s, v["uuid"], 1)
        assert r.status == 200 and r.body == v["plain"][1], f"the untouched disk: {r}"
    j = s.cli.json("vm", "show", vid)
    assert j["state"] in ("ready", "error"), j
    s.mgr.assert_alive()


def test_short_plaintext_disk(stack):
    """A raw disk shorter than its VM's configuration says: encrypting the
    VM fails with a clear error and loses nothing (the disk done before
    stays readable, the key is kept for a retry), and exporting the short
    disk is a clear error, not the end of the agent."""
    s = stack
    t = cli_task(s.cli, "vm", "create", "short-vm", "--host", s.host_id,
                 "--disk", "1M", "--disk", "1M")
    vid, vuuid = t["result"]["vm"], t["result"]["uuid"]
    vdir = os.path.join(s.datastore, vuuid)
    marker = b"VMCRYPT-LIFECYCLE-SHORT-%s-END" % os.urandom(12).hex().encode()
    plain0 = write_markers(os.path.join(vdir, "disk0.raw"), MiB,
                           make_disk_content(7, MiB, marker))
    os.truncate(os.path.join(vdir, "disk1.raw"), 4096)
    seq = last_seq(s.admin)

    r = s.cli.run("vm", "encrypt", vid, "--policy", POLICY)
    line = assert_cli_error(r, 1)
    assert "disk1.raw" in line and "shorter" in line, line
    fails = [e for e in events(s.cli, "vm.encrypt") if e["seq"] > seq]
    assert [(e["object"], e["result"]) for e in fails] == [(vid, "failure")], fails
    kid = fails[0]["key_id"]
    assert kid, fails
    show = s.cli.json("vm", "show", vid)
    assert show["encrypted"] is False and show["key_id"] == kid, show
    assert [(d["file"], d["encrypted"]) for d in show["disks"]] == \
        [("disk0.vcd", True), ("disk1.raw", False)], show
    r = export_disk(s, vuuid, 0)
    assert r.status == 200 and r.body == plain0, f"disk 0 after a failed encrypt: {r}"
    hits = find_secrets(s.agent.dir, {"marker": marker})
    assert not hits, f"the marker of the encrypted disk is still at rest: {hits}"

    r = s.agent_api().attempt("GET", f"/api/v1/vms/{vuuid}/disks/1/data")
    # Whether the agent still answers (its process may not be reaped yet).
    probe = s.agent_api().attempt("GET", "/api/v1/host")
    alive = not isinstance(probe, Exception) and probe.status == 200 and s.agent.running
    rc = None
    if not alive:
        # Keep an agent for the module's teardown; the failure is below.
        rc = s.agent.stop(check=False)
        s.agent.start()
    assert alive, (f"exporting a raw disk shorter than its size killed the agent "
                   f"(exit {rc}); the client saw {r!r}")
    assert not isinstance(r, Exception), f"export of a short raw disk: {r!r}"
    assert 400 <= r.status <= 599, f"export of a short raw disk: {r}"
    err = assert_error(r, r.status, r.error.get("code") if isinstance(r.error, dict) else None)
    assert "disk" in err["message"], r


def test_rekey_clone_decrypt_keep_data(stack):
    """Recrypt, Clone and Decrypt through the CLI: the data stays the same
    through every step, the retired key leaves the host, the clone has its
    own key, and decrypting gives back plaintext files."""
    s = stack
    t = cli_task(s.cli, "vm", "create", "rk-vm", "--host", s.host_id, "--disk", "1M")
    vid, vuuid = t["result"]["vm"], t["result"]["uuid"]
    content = write_markers(os.path.join(s.datastore, vuuid, "disk0.raw"), MiB,
                            make_disk_content(77, MiB, b"REKEY-MARKER"))
    old = cli_task(s.cli, "vm", "encrypt", vid, "--policy", POLICY)["result"]["key_id"]

    new = cli_task(s.cli, "vm", "rekey", vid)["result"]["key_id"]
    assert new and new != old
    held = [k["key_id"] for k in s.agent_api().ok("GET", "/api/v1/host")["keys"]]
    assert new in held and old not in held, held
    assert export_disk(s, vuuid, 0).body == content

    c = cli_task(s.cli, "vm", "clone", vid, "--name", "rk-clone")["result"]
    assert c["key_id"] and c["key_id"] not in (old, new), c
    assert export_disk(s, c["uuid"], 0).body == content

    cli_task(s.cli, "vm", "decrypt", vid)
    show = s.cli.json("vm", "show", vid)
    assert show["encrypted"] is False and show["state"] == "ready", show
    with open(os.path.join(s.datastore, vuuid, "disk0.raw"), "rb") as f:
        assert f.read() == content
    assert sorted(os.listdir(os.path.join(s.datastore, vuuid))) == \
        ["disk0.raw", "nvram.raw", "vm.json"]


def test_encrypted_host_dump(stack):
    """A state dump of the agent is written encrypted under the host key
    (its KEK from the default provider); it opens through the manager for
    a user with Cryptographer.Access, not for the No Cryptography
    Administrator, and an altered dump is refused."""
    s = stack
    # The host key's KEK lives in the key cache: a host in encryption mode.
    assert s.cli.run("host", "encryption-mode", s.host_id, "enable").returncode == 0
    cli_task(s.cli, "vm", "create", "dump-vm", "--host", s.host_id, "--disk", "1M",
             "--policy", POLICY)
    out = os.path.join(s.root, f"dump-{s.provider}")
    r = s.cli.run("host", "dump", s.host_id, "--out", out)
    assert r.returncode == 0, r.stderr
    with open(out, "rb") as f:
        dump = f.read()
    assert dump.startswith(b"VCDUMP1\n")
    # The state lists the VMs, by UUID: none of them is in the clear.
    vms = s.admin.ok("GET", "vms")["vms"]
    assert vms and not any(v["uuid"].encode() in dump for v in vms)
    r = s.cli.run("host", "dump-decrypt", s.host_id, "--file", out)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    assert {v["uuid"] for v in vms if v["host"] == s.host_id} <= \
        {v["uuid"] for v in state["vms"]}, state

    bad = out + ".bad"
    with open(bad, "wb") as f:
        f.write(dump[:-20] + bytes(b ^ 1 for b in dump[-20:]))
    os.chmod(bad, 0o600)
    r = s.cli.run("host", "dump-decrypt", s.host_id, "--file", bad)
    assert r.returncode == 1 and b"authenticate" in r.stderr, (r.returncode, r.stderr)

    name = f"ncd-{s.kind}"
    add_user(s.admin, name, role="NoCryptoAdmin", obj="root")
    nc = Cli(os.path.join(s.root, f"cli-{name}"))
    nc.login(s.mgr, name, PASSWORD)
    r = nc.run("host", "dump-decrypt", s.host_id, "--file", out)
    assert r.returncode == 4 and b"Cryptographer.Access" in r.stderr, (r.returncode, r.stderr)


def test_deep_rekey_survives_kill_9(stack):
    """Deep rekey (new data keys, every sector re-encrypted): the agent is
    killed with SIGKILL in the middle of it (at its Nth write), restarted,
    and running the rekey again finishes it; every byte is intact."""
    s = stack
    size = 8 * MiB
    t = cli_task(s.cli, "vm", "create", "deep-vm", "--host", s.host_id, "--disk", "8M")
    vid, vuuid = t["result"]["vm"], t["result"]["uuid"]
    rng = random.Random(99)
    content = write_markers(os.path.join(s.datastore, vuuid, "disk0.raw"), size,
                            [(off, rng.randbytes(64 * 1024)) for off in range(0, size, MiB)])
    cli_task(s.cli, "vm", "encrypt", vid, "--policy", POLICY)
    disk = os.path.join(s.datastore, vuuid, "disk0.vcd")

    def info():
        r = subprocess.run([s.cli.path, "disk", "info", disk, "--json"], capture_output=True)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    gen = info()["key"]["generation"]

    # The 5th write of the rekey kills the agent: a journal and data
    # writes are under way.
    s.agent.stop()
    os.environ["VMCRYPT_TEST_CRASH_AT_WRITE"] = "5"
    try:
        s.agent.start()
        # Its key comes back from the manager first (the cache is memory).
        poll("the VM ready after the restart",
             lambda: s.admin.ok("GET", f"vms/{vid}")["state"] == "ready", 15)
        r = s.cli.run("vm", "rekey", vid, "--deep")
    finally:
        del os.environ["VMCRYPT_TEST_CRASH_AT_WRITE"]
    assert r.returncode == 1, (r.returncode, r.stderr)
    s.agent.proc.wait(30)
    assert s.agent.proc.returncode == -signal.SIGKILL, s.agent.proc.returncode
    s.agent.kill()
    assert info()["rekey"]["active"] is True, info()

    s.agent.start()
    poll("the VM ready again", lambda: s.admin.ok("GET", f"vms/{vid}")["state"] == "ready", 15)
    t = cli_task(s.cli, "vm", "rekey", vid, "--deep")
    assert t["result"]["deep"] is True
    after = info()
    assert after["rekey"]["active"] is False and after["key"]["generation"] > gen, after
    assert export_disk(s, vuuid, 0).body == content
