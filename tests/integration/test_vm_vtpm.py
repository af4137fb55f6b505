# SPDX-License-Identifier: Apache-2.0
# A VM's vTPM: made by swtpm_setup (TPM 2.0 with its endorsement keys) when
# an encrypted VM is created with one, kept as the VM file vtpm.vcf under
# the VM key, served by swtpm while the VM is on and sealed back when it
# goes off. A marker written into a TPM NV index with tpm2-tools is never
# in the clear in any file, comes back after a power cycle and after an
# agent crash, and is in the clone's own vTPM; a plaintext VM cannot have
# a vTPM and a VM with one cannot be decrypted.
import base64
import glob
import json
import os
import struct
import subprocess
import uuid as uuidlib

import pytest

import vc_pyvmfile
from vc_manager import find_secrets
from vc_nbd import require_tools
from vc_pydisk import AD_TAG, unwrap_key
from vc_util import describe
from test_vm_lifecycle import POLICY, cli_task, events, poll
from test_vm_power import live, power, stack  # noqa: F401 (pytest fixture)

NV_INDEX = "0x1500016"
SWTPM_PLAIN_HEADER = bytes.fromhex("0201000a0000")   # swtpm state blob, not encrypted
VM_KEY_FORMAT = b"vmcrypt-vm-key/1"


@pytest.fixture(scope="module", autouse=True)
def tools():
    require_tools("swtpm", "swtpm_setup", "tpm2_nvdefine", "socat")


def vm_json(s, vm_uuid):
    with open(os.path.join(s.datastore, vm_uuid, "vm.json"), "rb") as f:
        return json.loads(f.read())


def vtpm_state(s, vm_uuid):
    """The vTPM state, opened from outside vmcrypt: the KEK from the
    provider, the VM key unwrapped (FORMAT.md), the VM file opened with
    the independent Python implementation."""
    cfg = vm_json(s, vm_uuid)
    kek = s.kek(cfg["key_id"])
    ad = bytearray(AD_TAG)
    for f in (VM_KEY_FORMAT, uuidlib.UUID(vm_uuid).bytes, cfg["provider"].encode(),
              cfg["key_id"].encode()):
        ad += struct.pack("<H", len(f)) + f
    ad += struct.pack("<Q", 0)
    vmkey = unwrap_key(kek, bytes(ad), base64.b64decode(cfg["wrapped_vm_key"]))
    with open(os.path.join(s.datastore, vm_uuid, cfg["vtpm"]), "rb") as f:
        return vc_pyvmfile.open(vmkey, "vtpm", f.read())


def tpm(sock, *args, stdin=None):
    env = dict(os.environ, TPM2TOOLS_TCTI=f"cmd:socat - UNIX-CONNECT:{sock}")
    r = subprocess.run(list(args), input=stdin, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env, timeout=60)
    assert r.returncode == 0, describe(r)
    return r.stdout


def tpm_sock(s, vm_uuid):
    t = live(s, vm_uuid).get("tpm") or {}
    assert t.get("serving") is True and os.path.exists(t["socket"]), t
    return t["socket"]


def no_marker_at_rest(s, marker, vm_on=False):
    """Nowhere on disk; in tmpfs (memory, like the guest's) only while the
    VM is on."""
    roots = [s.agent.dir, s.agent.run_dir, s.mgr.dir]
    if not vm_on:
        roots += glob.glob("/dev/shm/vmcrypt-vtpm-*")
    for root in roots:
        hits = find_secrets(root, {"vTPM NV marker": marker})
        assert not hits, f"the vTPM's secret in the clear under {root}: {hits}"


def create_vtpm_vm(s, name):
    t = cli_task(s.cli, "vm", "create", name, "--host", s.host_id, "--disk", "1M",
                 "--policy", POLICY, "--vtpm")
    return t["result"]["vm"], t["result"]["uuid"], t["result"]["key_id"]


def test_vtpm_needs_an_encrypted_vm(stack):  # noqa: F811
    s = stack
    r = s.cli.run("vm", "create", "plain-tpm", "--host", s.host_id, "--disk", "1M", "--vtpm")
    assert r.returncode != 0 and b"a vTPM needs an encrypted VM" in r.stderr, describe(r)


def test_vtpm_life(stack):  # noqa: F811
    s = stack
    vid, vuuid, kid = create_vtpm_vm(s, "tpm-vm")
    cfg = vm_json(s, vuuid)
    assert cfg["vtpm"] == "vtpm.vcf" and cfg["encrypted"] is True, cfg
    made = vtpm_state(s, vuuid)
    assert made[:6] == SWTPM_PLAIN_HEADER and len(made) > 1000, made[:16].hex()
    assert s.cli.json("vm", "show", vid)["vtpm"] is True
    ev = [e for e in events(s.cli, "vm.create") if e["object"] == vid]
    assert ev and "vTPM" in ev[0]["message"] and ev[0]["key_id"] == kid, ev

    # A secret the guest keeps in its TPM.
    marker = b"VTPM-NV-MARKER-" + os.urandom(8).hex().encode()
    marker = marker[:32].ljust(32, b"x")
    power(s, vid, True)
    sock = tpm_sock(s, vuuid)
    tpm(sock, "tpm2_nvdefine", NV_INDEX, "-C", "o", "-s", "32", "-a", "ownerread|ownerwrite")
    tpm(sock, "tpm2_nvwrite", NV_INDEX, "-C", "o", "-i", "-", stdin=marker)
    assert tpm(sock, "tpm2_nvread", NV_INDEX, "-C", "o", "-s", "32") == marker
    before = os.path.getmtime(os.path.join(s.datastore, vuuid, "vtpm.vcf"))
    no_marker_at_rest(s, marker, vm_on=True)

    # Off: sealed back (the marker is in the state, under the VM key).
    power(s, vid, False)
    assert marker in vtpm_state(s, vuuid), "the NV write did not reach the sealed state"
    assert os.path.getmtime(os.path.join(s.datastore, vuuid, "vtpm.vcf")) >= before
    assert not glob.glob(f"/dev/shm/vmcrypt-vtpm-*{vuuid}"), "the tmpfs copy must be wiped"
    no_marker_at_rest(s, marker)

    # On again: the TPM remembers.
    power(s, vid, True)
    assert tpm(tpm_sock(s, vuuid), "tpm2_nvread", NV_INDEX, "-C", "o", "-s", "32") == marker

    # The agent crashes: swtpm keeps serving, the restarted agent adopts
    # it, and once the manager has pushed the key, power-off seals.
    pid = live(s, vuuid)["tpm"]["pid"]
    s.agent.kill()
    assert tpm(sock, "tpm2_nvread", NV_INDEX, "-C", "o", "-s", "32") == marker
    s.agent.start()
    poll("the VM unlocked", lambda: live(s, vuuid)["state"] == "ready", 30)
    t = live(s, vuuid)
    assert t["power"] == "on" and t["tpm"]["pid"] == pid, t
    power(s, vid, False)
    assert marker in vtpm_state(s, vuuid)

    # Decrypting would put the TPM's secrets in the clear: refused.
    r = s.cli.run("vm", "decrypt", vid)
    assert r.returncode != 0 and b"vTPM" in r.stderr, describe(r)
    assert vm_json(s, vuuid)["encrypted"] is True

    # A clone gets the same TPM contents under its own keys.
    t = cli_task(s.cli, "vm", "clone", vid, "--name", "tpm-clone")
    cuuid = t["result"]["uuid"]
    ccfg = vm_json(s, cuuid)
    assert ccfg["vtpm"] == "vtpm.vcf" and ccfg["key_id"] != kid, ccfg
    assert vtpm_state(s, cuuid) == vtpm_state(s, vuuid)
    with open(os.path.join(s.datastore, cuuid, "vtpm.vcf"), "rb") as a, \
            open(os.path.join(s.datastore, vuuid, "vtpm.vcf"), "rb") as b:
        assert a.read() != b.read(), "the clone's vTPM file is sealed under its own key"
