# SPDX-License-Identifier: Apache-2.0
# vmcryptd's life cycle: a restart keeps every kind of state (users, roles,
# permissions, inventory, providers with their keys, policies, tasks, the
# event chain, sessions); the first start's one-time password; clean exits
# on SIGTERM and SIGINT; one daemon per data directory; start-up errors as
# one line; no password or token in stderr, in the data directory (tokens
# only as SHA-256) or in /proc/PID/cmdline and environ.
import hashlib
import json
import os
import signal
import socket
import ssl
import stat
import subprocess

import pytest

from vc_manager import (ADMIN, PASSWORD, Manager, add_object, add_role, add_user,
                        assert_error, daemon_env, find_secrets, grant, user_client,
                        vmcryptd_path, wait_task)
from vc_util import describe

BACKUP_PASSWORD = "lifecycle-backup-pw"
NEW_PASSWORD = "a-new-admin-password-9"


def snapshot(api):
    """Everything the API shows, minus what may change on its own (health)."""
    provs = api.ok("GET", "key-providers", ok=(200,))["providers"]
    for p in provs:
        p.pop("health", None)
    return {
        "users": api.ok("GET", "users", ok=(200,)),
        "roles": api.ok("GET", "roles", ok=(200,)),
        "permissions": api.ok("GET", "permissions", ok=(200,)),
        "inventory": api.ok("GET", "inventory", ok=(200,)),
        "providers": provs,
        "policies": api.ok("GET", "policies", ok=(200,)),
        "tasks": api.ok("GET", "tasks", ok=(200,)),
    }


def proc_text(pid, what):
    with open(f"/proc/{pid}/{what}", "rb") as f:
        return f.read()


def assert_private(path, mode):
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == mode, f"{path}: mode {oct(stat.S_IMODE(st.st_mode))}"


def test_restart_keeps_everything(tmp_path):
    mgr = Manager(tmp_path / "data")
    mgr.start()
    try:
        admin = mgr.login()
        add_role(admin, "lc-role", ["System.View", "Folder.Create", "Folder.Rename"])
        f = add_object(admin, "root", "folder", "lc-folder")
        c = add_object(admin, f, "cluster", "lc-cluster")
        h = add_object(admin, c, "host", "lc-host")
        add_object(admin, h, "vm", "lc-vm")
        alice = user_client(mgr, admin, "lc-alice", role="lc-role", groups=["lc-g"], obj=f,
                            propagate=False)
        grant(admin, "lc-g", "ReadOnly", "root", group=True)
        admin.ok("POST", "key-providers", {"name": "lc-nat", "kind": "native"}, ok=(201,))
        admin.ok("POST", "key-providers/lc-nat/backup", {"password": BACKUP_PASSWORD}, ok=(200,))
        key = admin.ok("POST", "key-providers/lc-nat/keys", {}, ok=(201,))
        admin.ok("POST", "policies", {"name": "lc-pol", "encrypt": True,
                                      "migration": "required", "provider": "lc-nat"}, ok=(201,))
        wait_task(admin, admin.ok("POST", "key-providers/lc-nat/check", ok=(202,))["task"])
        before = snapshot(admin)
        events = admin.ok("GET", "events", ok=(200,))["events"]
        fpr, cert = mgr.fingerprint, open(mgr.ca, "rb").read()
        tokens = {"admin": admin.token, "alice": alice.token}
        # On later starts the password file is ignored.
        os.chmod(mgr.pwfile, 0o600)
        with open(mgr.pwfile, "w") as pf:
            pf.write("another-password-entirely\n")

        mgr.restart()
        assert_error(mgr.api().login(ADMIN, "another-password-entirely"), 401, "unauthorized")
        assert mgr.api().login(ADMIN, mgr.admin_password).status == 201
        assert mgr.fingerprint == fpr and open(mgr.ca, "rb").read() == cert, \
            "the TLS certificate must survive a restart"
        # Sessions survive; the admin password file is ignored now.
        assert admin.ok("GET", "session", ok=(200,))["user"] == ADMIN
        assert alice.ok("GET", "session", ok=(200,))["user"] == "lc-alice"
        assert snapshot(admin) == before
        after = admin.ok("GET", "events", ok=(200,))["events"]
        assert after[:len(events)] == events, "the event log changed across the restart"
        v = admin.ok("GET", "events/verify", ok=(200,))
        assert v["ok"] is True, v
        got = admin.ok("GET", f"key-providers/lc-nat/keys/{key['key_id']}", ok=(200,))
        assert got["check_value"] == key["check_value"], (got, key)
        admin.ok("POST", "key-providers/lc-nat/keys", {}, ok=(201,))
        # Permissions behave as before: alice may rename her folder only.
        alice.ok("PATCH", f"inventory/{f}", {"name": "lc-folder-2"}, ok=(200,))
        assert_error(alice.request("PATCH", f"inventory/{c}", {"name": "x"}), 403, "forbidden")
        assert not any("one-time password" in ln for ln in mgr.all_lines())

        # What must not be anywhere: passwords and tokens.
        secrets = {"admin password": mgr.admin_password, "user password": PASSWORD,
                   "backup password": BACKUP_PASSWORD}
        secrets.update({f"{k} token": v for k, v in tokens.items()})
        text = "\n".join(mgr.all_lines())
        for name, s in secrets.items():
            assert s not in text, f"{name} on stderr"
            for what in ("cmdline", "environ"):
                assert s.encode() not in proc_text(mgr.pid, what), f"{name} in /proc/PID/{what}"
        hits = find_secrets(mgr.dir, secrets)
        assert not hits, f"secrets in the data directory: {hits}"
        hashes = {bytes(r[0]) for r in mgr.sql("SELECT token_hash FROM sessions")}
        for name, t in tokens.items():
            assert hashlib.sha256(t.encode()).digest() in hashes, f"{name}: no SHA-256 row"
        for (ph,) in mgr.sql("SELECT password_hash FROM users"):
            assert ph.startswith("$scrypt$"), ph
        assert_private(mgr.dir, 0o700)
        assert_private(mgr.db, 0o600)
        assert_private(os.path.join(mgr.dir, "tls", "manager.key"), 0o600)
        mgr.stop()
    finally:
        mgr.kill()


def test_fingerprint_line_matches_certificate(tmp_path):
    with Manager(tmp_path / "data") as mgr:
        with open(mgr.ca) as f:
            der = ssl.PEM_cert_to_DER_cert(f.read())
        want = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
        assert mgr.fingerprint == want, (mgr.fingerprint, want)
        lines = mgr.run_lines()
        fi = [i for i, ln in enumerate(lines) if ln.startswith("vmcryptd: certificate SHA-256")]
        li = [i for i, ln in enumerate(lines) if ln.startswith("vmcryptd: listening on")]
        assert fi and li and fi[0] < li[0], lines


def test_one_time_password(tmp_path):
    mgr = Manager(tmp_path / "data", admin_password=None)
    mgr.start()
    try:
        otp = mgr.otp
        assert otp and len(otp) == 20, mgr.run_lines()
        assert sum("one-time password" in ln for ln in mgr.all_lines()) == 1
        anon = mgr.api()
        r = anon.login(ADMIN, otp)
        assert r.status == 201 and r.json["password_change_required"] is True, r
        for method, path in (("GET", "users"), ("GET", "inventory"), ("GET", "roles"),
                             ("POST", "roles")):
            body = {"name": "x", "privileges": []} if method == "POST" else None
            rr = anon.request(method, path, **({"body": body} if body else {}))
            assert_error(rr, 403, "password_change_required")
        s = anon.ok("GET", "session", ok=(200,))
        assert s["user"] == ADMIN and s["password_change_required"] is True, s
        assert_error(anon.request("POST", "session/password",
                                  {"old_password": otp, "new_password": "short"}), 400)
        rr = anon.request("POST", "session/password",
                          {"old_password": "not-the-otp-at-all", "new_password": NEW_PASSWORD})
        assert_error(rr, 403, "forbidden")
        anon.ok("POST", "session/password", {"old_password": otp, "new_password": NEW_PASSWORD},
                ok=(204,))
        # The one-time password is spent; the new one needs no change.
        assert_error(mgr.api().login(ADMIN, otp), 401, "unauthorized")
        c = mgr.login(ADMIN, NEW_PASSWORD)
        c.ok("GET", "users", ok=(200,))
        for what in ("cmdline", "environ"):
            assert otp.encode() not in proc_text(mgr.pid, what)
        assert not find_secrets(mgr.dir, {"otp": otp, "new": NEW_PASSWORD})
        mgr.restart()
        assert not any("one-time password" in ln for ln in mgr.run_lines()), mgr.run_lines()
        assert_error(mgr.api().login(ADMIN, otp), 401, "unauthorized")
        r = mgr.api().login(ADMIN, NEW_PASSWORD)
        assert r.status == 201 and r.json["password_change_required"] is False, r
        mgr.stop()
    finally:
        mgr.kill()


def test_otp_change_still_required_after_restart(tmp_path):
    """The one-time password stays valid, and its change required, across
    a restart (and is not printed again)."""
    mgr = Manager(tmp_path / "data", admin_password=None)
    mgr.start()
    try:
        otp = mgr.otp
        mgr.restart()
        c = mgr.api()
        r = c.login(ADMIN, otp)
        assert r.status == 201 and r.json["password_change_required"] is True, r
        assert_error(c.request("GET", "users"), 403, "password_change_required")
        mgr.stop()
    finally:
        mgr.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(tmp_path, sig):
    mgr = Manager(tmp_path / "data")
    mgr.start()
    try:
        admin = mgr.login()
        admin.ok("POST", "key-providers", {"name": "n", "kind": "native"}, ok=(201,))
        task = admin.ok("POST", "key-providers/n/check", ok=(202,))["task"]
        assert mgr.stop(sig) == 0
        mgr.start()
        # Running tasks are finished (or failed), not left running.
        t = admin.ok("GET", f"tasks/{task}", ok=(200,))
        assert t["state"] in ("success", "error"), t
        mgr.stop()
    finally:
        mgr.kill()


def run_daemon(*args, timeout=30):
    r = subprocess.run([vmcryptd_path(), *map(str, args)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=daemon_env(),
                       timeout=timeout)
    return r


def assert_start_error(r):
    assert r.returncode == 1, describe(r)
    lines = r.stderr.decode().splitlines()
    errors = [ln for ln in lines if ln.startswith("vmcryptd: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], describe(r)
    assert not any("listening on" in ln for ln in lines), describe(r)
    return errors[0]


def test_second_instance_on_same_dir_refused(tmp_path):
    with Manager(tmp_path / "data") as mgr:
        admin = mgr.login()
        add_user(admin, "still-here")
        r = run_daemon("--data-dir", mgr.dir, "--listen", "127.0.0.1:0")
        line = assert_start_error(r)
        assert mgr.dir in line or "data" in line, line
        mgr.assert_alive()
        names = [u["name"] for u in admin.ok("GET", "users", ok=(200,))["users"]]
        assert "still-here" in names
        assert admin.ok("GET", "events/verify", ok=(200,))["ok"] is True


def test_start_errors(tmp_path):
    line = assert_start_error(run_daemon("--data-dir", tmp_path / "no" / "such" / "dir",
                                         "--listen", "127.0.0.1:0"))
    assert "no" in line
    assert_start_error(run_daemon("--data-dir", tmp_path / "d1", "--listen", "127.0.0.1:99999"))
    assert_start_error(run_daemon("--data-dir", tmp_path / "d2", "--listen", "nonsense"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert_start_error(run_daemon("--data-dir", tmp_path / "d3", "--listen",
                                      f"127.0.0.1:{port}"))
    assert_start_error(run_daemon("--data-dir", tmp_path / "d4", "--listen", "127.0.0.1:0",
                                  "--admin-password-file", tmp_path / "missing"))
    bad = tmp_path / "notadb"
    os.makedirs(bad, mode=0o700)
    with open(bad / "vmcryptd.db", "wb") as f:
        f.write(b"this is not a SQLite database" * 100)
    os.chmod(bad / "vmcryptd.db", 0o600)
    assert_start_error(run_daemon("--data-dir", bad, "--listen", "127.0.0.1:0"))


def test_print_routes():
    r = run_daemon("--print-routes")
    assert r.returncode == 0 and r.stderr == b"", describe(r)
    routes = json.loads(r.stdout)
    assert all({"method", "path", "privilege", "object"} <= set(x) for x in routes), routes[:2]
