# SPDX-License-Identifier: Apache-2.0
# Key providers through the real vmcryptd: a standard provider on a
# two-node PyKMIP cluster added with the `vmcrypt` CLI, health checks,
# failover when one server stops, check values recomputed from the key
# bytes PyKMIP hands out, no key bytes or client private key anywhere in
# the manager's data directory; the native provider's backup gate, backup
# envelope (opened here with an independent implementation of
# docs/KEYS.md), removal and restore.
import base64
import json
import os
import stat
import uuid

import pytest

from vc_kmip import PyKmip
from vc_kmip import kmip_cluster, kmip_pki  # noqa: F401 (pytest fixtures)
from vc_manager import (PASSWORD, Cli, add_role, assert_error, check_value, find_secrets,
                        native_kek, open_backup, pem_body, user_client, wait_task)
from vc_manager import admin, manager  # noqa: F401 (pytest fixtures)
from vc_util import assert_cli_error, describe

KMS = "kms"
BACKUP_PASSWORD = "native-backup-pw-7f3a"

# docs/API.md: "The PEM files are kept in <data-dir>/providers/<name>/
# (0600)": the client key may live there, and nowhere else in the data
# directory (not in the database, its journal, the logs...).
CLIENT_KEY_HOME = os.path.join("providers", KMS)

# What the module learnt, for the scans at its end.
SEEN = {"keys": {}, "native": {}}


@pytest.fixture(scope="module")
def cli(manager, tmp_path_factory):
    c = Cli(tmp_path_factory.mktemp("cli-home"))
    c.login(manager)
    return c


def health_list(doc):
    """The health list in a `provider check --json` or `provider show
    --json` document: the provider's "health", a task's "result", or the
    list itself."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        for k in ("health", "result"):
            if k in doc:
                return health_list(doc[k])
    raise AssertionError(f"no health list in {json.dumps(doc)[:400]}")


def health_by_server(doc):
    out = {}
    for h in health_list(doc):
        assert isinstance(h["healthy"], bool) and isinstance(h["server"], str), h
        out[h["server"]] = h
    return out


def kmip_fetch(pki, server, key_ids):
    """{key id: key bytes} straight from a PyKMIP server."""
    with PyKmip(pki, server.host, server.port) as c:
        return {k: c.get_key(k) for k in key_ids}


def test_add_kmip_provider_with_cli(kmip_cluster, kmip_pki, manager, admin, cli):
    # kmip_cluster first: set up first, torn down after the manager, so
    # that no open manager connection delays the servers' clean stop.
    eps = kmip_cluster.endpoints()
    r = cli.run("provider", "add-kmip", KMS, "--server", eps[0], "--server", eps[1],
                "--ca-file", kmip_pki.ca, "--cert-file", kmip_pki.client.cert,
                "--key-file", kmip_pki.client.key)
    assert r.returncode == 0, describe(r)
    show = cli.json("provider", "show", KMS)
    assert show["name"] == KMS and show["kind"] == "kmip", show
    assert show["servers"] == eps, show
    assert show["default"] is True, "the first provider added becomes the default"
    assert show["native"] is None, show
    check = cli.json("provider", "check", KMS)
    h = health_by_server(check)
    assert set(h) == set(eps), check
    assert all(x["healthy"] for x in h.values()), check
    # The API says the same, and says nothing secret.
    r = admin.request("GET", f"key-providers/{KMS}")
    assert r.status == 200, r
    h = health_by_server(r.json)
    assert set(h) == set(eps) and all(x["healthy"] for x in h.values()), r
    body = r.body.decode()
    assert "PRIVATE KEY" not in body and pem_body(kmip_pki.client.key) not in body, r
    for k in ("ca_pem", "client_cert_pem", "client_key_pem", "password"):
        assert k not in r.json, r
    # The credentials the manager keeps are private.
    pdir = os.path.join(manager.dir, "providers", KMS)
    assert stat.S_IMODE(os.stat(pdir).st_mode) & 0o077 == 0, oct(os.stat(pdir).st_mode)
    for n in os.listdir(pdir):
        st = os.stat(os.path.join(pdir, n))
        assert stat.S_IMODE(st.st_mode) & 0o077 == 0, (n, oct(st.st_mode))


def test_kmip_add_refused_without_reachable_server(admin, kmip_pki, manager):
    """docs/API.md: none reachable is 502, and nothing is added."""
    def pem(p):
        with open(p) as f:
            return f.read()
    # A port nobody listens on: bind one, then close it.
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    r = admin.request("POST", "key-providers", {
        "name": "kms-dead", "kind": "kmip", "servers": [dead],
        "ca_pem": pem(kmip_pki.ca), "client_cert_pem": pem(kmip_pki.client.cert),
        "client_key_pem": pem(kmip_pki.client.key), "timeout_ms": 2000})
    assert_error(r, 502, "key_server")
    assert_error(admin.request("GET", "key-providers/kms-dead"), 404, "not_found")
    assert not os.path.exists(os.path.join(manager.dir, "providers", "kms-dead"))


def test_kmip_keys_and_failover(manager, admin, cli, kmip_cluster, kmip_pki):
    eps = kmip_cluster.endpoints()
    k1 = admin.ok("POST", f"key-providers/{KMS}/keys", {"label": "k1"}, ok=(201,))
    r = cli.ok("provider", "create-key", KMS)
    k2_id = r.stdout.decode().strip()
    assert k2_id and "\n" not in k2_id, describe(r)
    k2 = admin.ok("GET", f"key-providers/{KMS}/keys/{k2_id}", ok=(200,))
    assert k2["key_id"] == k2_id, k2
    again = admin.ok("GET", f"key-providers/{KMS}/keys/{k1['key_id']}", ok=(200,))
    assert (again["key_id"], again["check_value"]) == (k1["key_id"], k1["check_value"]), again

    # A crash (SIGKILL): a clean stop of PyKMIP waits for the manager's
    # open connection to end, and a crash is the case failover is for.
    kmip_cluster[0].kill()
    health_problems = []
    try:
        k3 = admin.ok("POST", f"key-providers/{KMS}/keys", {}, ok=(201,))
        got = admin.ok("GET", f"key-providers/{KMS}/keys/{k1['key_id']}", ok=(200,))
        assert got["check_value"] == k1["check_value"], got
        keys = {k["key_id"]: k["check_value"] for k in (k1, k2, k3)}
        assert len(keys) == 3
        fetched = kmip_fetch(kmip_pki, kmip_cluster[1], list(keys))
        for kid, cv in keys.items():
            key = fetched[kid]
            assert len(key) == 32, (kid, len(key))
            assert cv == check_value(key), f"check value of {kid}: API {cv}, key bytes give {check_value(key)}"
            SEEN["keys"][kid] = key

        # Health: checked last, so that the key checks above still run.
        r = cli.run("provider", "check", KMS, "--json")
        assert r.returncode == 0, "one healthy server is enough: " + describe(r)
        h = health_by_server(json.loads(r.stdout))
        if not (h[eps[0]]["healthy"] is False and h[eps[1]]["healthy"] is True):
            health_problems.append(f"`provider check` after {eps[0]} died: {h}")
        assert h[eps[0]]["last_error"], h
        h = health_by_server(admin.ok("GET", f"key-providers/{KMS}", ok=(200,)))
        if not (h[eps[0]]["healthy"] is False and h[eps[1]]["healthy"] is True):
            health_problems.append(f"GET provider after {eps[0]} died: {h}")

        # Both down: key creation is a key-server error, the check says so.
        kmip_cluster[1].kill()
        r = admin.request("POST", f"key-providers/{KMS}/keys", {})
        assert_error(r, 502, "key_server")
        t = admin.ok("POST", f"key-providers/{KMS}/check", ok=(202,))["task"]
        task = wait_task(admin, t)
        # Either the task fails or it succeeds reporting no healthy server.
        if task["state"] == "success":
            assert not any(h["healthy"] for h in health_list(task["result"])), task
        r = cli.run("provider", "check", KMS, "--json")
        assert r.returncode == 1, "no healthy server: exit 1: " + describe(r)
    finally:
        for s in kmip_cluster:
            if not s.running:
                s.start()
    manager.assert_alive()
    assert not health_problems, "a dead server shown healthy:\n" + "\n".join(health_problems)


def test_cli_permission_denied_is_exit_4(manager, admin, tmp_path):
    """A user who may read key servers but not create keys: the CLI exits
    4 with the server's message on one line."""
    add_role(admin, "viewer-crypto-read", ["System.View", "Cryptographer.ReadKeyServersInfo"])
    user_client(manager, admin, "kviewer", role="viewer-crypto-read")
    c = Cli(tmp_path / "home")
    c.login(manager, "kviewer", PASSWORD)
    line = assert_cli_error(c.run("provider", "create-key", KMS), 4)
    assert "lacks privilege Cryptographer." in line and "'kviewer'" in line, line


def test_native_provider_backup_restore(manager, admin):
    p = admin.ok("POST", "key-providers", {"name": "nat", "kind": "native"}, ok=(201,))
    assert p["kind"] == "native" and p["native"]["backup_taken"] is False, p
    pid = p["native"]["provider_id"]
    uuid.UUID(pid)
    r = admin.request("POST", "key-providers/nat/keys", {})
    assert_error(r, 409, "conflict")
    assert "backup" in r.error["message"], r
    assert_error(admin.request("POST", "key-providers/nat/backup", {"password": "short"}), 400)
    # A KMIP provider has no backup here (API.md names no status for it).
    r = admin.request("POST", f"key-providers/{KMS}/backup", {"password": BACKUP_PASSWORD})
    assert r.status in (400, 409), r
    assert_error(r, r.status)
    b = admin.ok("POST", "key-providers/nat/backup", {"password": BACKUP_PASSWORD}, ok=(200,))
    envelope = base64.b64decode(b["backup"], validate=True)
    assert len(envelope) == 196 and envelope[:8] == b"VCNKPBAK", envelope[:16]
    raw_id, _created, master = open_backup(envelope, BACKUP_PASSWORD)
    assert str(uuid.UUID(bytes=raw_id)) == pid.lower(), (raw_id.hex(), pid)
    p = admin.ok("GET", "key-providers/nat", ok=(200,))
    assert p["native"]["backup_taken"] is True and p["native"]["backup_time"], p

    k = admin.ok("POST", "key-providers/nat/keys", {"label": "vm-1"}, ok=(201,))
    kek = native_kek(master, raw_id, k["key_id"])
    assert k["check_value"] == check_value(kek), \
        f"check value {k['check_value']} does not match the KEK derived from the backup"
    got = admin.ok("GET", f"key-providers/nat/keys/{k['key_id']}", ok=(200,))
    assert (got["key_id"], got["check_value"]) == (k["key_id"], k["check_value"]), got
    SEEN["native"].update({"master": master, "kek": kek})

    # In use by a policy: 409; then removed.
    admin.ok("POST", "policies", {"name": "nat-pol", "encrypt": True,
                                  "migration": "opportunistic", "provider": "nat"}, ok=(201,))
    assert_error(admin.request("DELETE", "key-providers/nat"), 409, "conflict")
    admin.ok("DELETE", "policies/nat-pol", ok=(204,))
    admin.ok("DELETE", "key-providers/nat", ok=(204,))
    assert_error(admin.request("GET", "key-providers/nat"), 404, "not_found")
    assert_error(admin.request("GET", f"key-providers/nat/keys/{k['key_id']}"), 404, "not_found")

    # Wrong password, damaged envelope: refused, nothing added.
    r = admin.request("POST", "key-providers", {"name": "nat2", "kind": "native",
                                                "restore": {"backup": b["backup"],
                                                            "password": "wrong password!"}})
    assert 400 <= r.status < 500, r
    assert_error(r, r.status)
    assert "password" in r.error["message"], r
    bad = bytearray(envelope)
    bad[100] ^= 1
    r = admin.request("POST", "key-providers", {"name": "nat2", "kind": "native",
                                                "restore": {"backup": base64.b64encode(bad).decode(),
                                                            "password": BACKUP_PASSWORD}})
    assert_error(r, 400, "bad_request")
    r = admin.request("POST", "key-providers", {"name": "nat2", "kind": "native",
                                                "restore": {"backup": "not base64!",
                                                            "password": BACKUP_PASSWORD}})
    assert_error(r, 400, "bad_request")
    assert_error(admin.request("GET", "key-providers/nat2"), 404, "not_found")

    # Restored under another name: the same provider, the same keys.
    p2 = admin.ok("POST", "key-providers", {"name": "nat2", "kind": "native",
                                            "restore": {"backup": b["backup"],
                                                        "password": BACKUP_PASSWORD}},
                  ok=(201,))
    assert p2["native"]["provider_id"] == pid and p2["native"]["backup_taken"] is True, p2
    got = admin.ok("GET", f"key-providers/nat2/keys/{k['key_id']}", ok=(200,))
    assert got["check_value"] == k["check_value"], (got, k)
    k2 = admin.ok("POST", "key-providers/nat2/keys", {}, ok=(201,))
    assert k2["check_value"] == check_value(native_kek(master, raw_id, k2["key_id"])), k2
    manager.assert_alive()


def test_nothing_secret_at_rest(manager, kmip_pki):
    """Runs last: every file of the data directory (database, WAL, shm,
    TLS, provider folders...), and the daemon's stderr."""
    assert SEEN["keys"] or SEEN["native"], "the tests above must run first"
    secrets = {f"kmip key {k}": v for k, v in SEEN["keys"].items()}
    if SEEN["native"]:
        secrets["native master key"] = SEEN["native"]["master"]
        secrets["native KEK"] = SEEN["native"]["kek"]
    secrets["backup password"] = BACKUP_PASSWORD
    hits = find_secrets(manager.dir, secrets)
    assert not hits, f"secrets found at rest: {hits}"
    body = pem_body(kmip_pki.client.key)
    hits = find_secrets(manager.dir, {"client private key": body}, skip=(CLIENT_KEY_HOME,))
    assert not hits, f"the KMIP client private key outside {CLIENT_KEY_HOME}/: {hits}"
    text = "\n".join(manager.all_lines())
    for name, s in secrets.items():
        s = s if isinstance(s, bytes) else s.encode()
        assert s.hex() not in text.lower() and base64.b64encode(s).decode() not in text, name
    assert body[:40] not in text
