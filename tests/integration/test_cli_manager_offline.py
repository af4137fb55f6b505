# SPDX-License-Identifier: Apache-2.0
# The manager commands of the vmcrypt CLI without a manager: help, usage
# errors (which must send nothing), the session file's checks, unreachable
# servers, and `events verify --file` against an event hash chain built
# here by an independent implementation of lib/vc_event.h's encoding. A
# small TLS peer with canned answers (not vmcryptd) checks login, trust,
# the session file it writes, and the mapping of HTTP errors to exit codes.
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time

import pytest

from vc_util import assert_cli_error, describe

EXIT_FAIL, EXIT_USAGE, EXIT_AUTH, EXIT_DENIED = 1, 2, 3, 4
EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_UNREACHABLE = 5, 6, 7

SUBCOMMANDS = {
    "login": [], "logout": [], "whoami": [], "passwd": [],
    "user": ["list", "add", "remove", "set-password"],
    "privilege": ["list"],
    "role": ["list", "show", "add", "remove"],
    "permission": ["list", "add", "remove"],
    "inventory": ["list", "show", "add", "rename", "remove"],
    "provider": ["list", "show", "add-kmip", "add-native", "remove", "set-default",
                 "check", "backup", "create-key", "key"],
    "policy": ["list", "show", "add", "remove"],
    "task": ["list", "show", "wait"],
    "events": ["list", "export", "verify"],
}

CLOSED_FD = 57  # the child inherits only 0-2 and pass_fds


def utc(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc) \
        .strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- fixtures

class Env:
    """A private XDG_CONFIG_HOME (and HOME) for one test, so no test sees
    the user's real session."""

    def __init__(self, vmcrypt, root):
        self.vmcrypt = vmcrypt
        self.root = root
        self.config = os.path.join(root, "config")
        self.home = os.path.join(root, "home")
        os.mkdir(self.home, 0o700)
        self.session_dir = os.path.join(self.config, "vmcrypt")
        self.session = os.path.join(self.session_dir, "session.json")

    def run(self, *args, **kw):
        env = {"XDG_CONFIG_HOME": self.config, "HOME": self.home}
        return self.vmcrypt.run(*args, env=env, **kw)

    def write_session(self, server, expires=None, mode=0o600, **fields):
        os.makedirs(self.session_dir, mode=0o700, exist_ok=True)
        s = {"server": server, "user": "admin", "token": "t" * 43,
             "expires": int(time.time()) + 3600 if expires is None else expires}
        s.update(fields or {"thumbprint": "00" * 32})
        write_file(self.session, json.dumps(s).encode(), mode)
        return s

    def private(self, name, data, mode=0o600):
        p = os.path.join(self.root, name)
        write_file(p, data, mode)
        return p


def write_file(path, data, mode):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


@pytest.fixture
def env(vmcrypt, tmp_path):
    return Env(vmcrypt, str(tmp_path))


class Listener:
    """A TCP port that accepts nothing by itself: after a command ran, it
    tells whether the command connected at all."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.url = f"https://127.0.0.1:{self.sock.getsockname()[1]}"

    def connected(self):
        try:
            conn, _ = self.sock.accept()
        except BlockingIOError:
            return False
        conn.close()
        return True

    def close(self):
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def closed_port_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"https://127.0.0.1:{port}"


# ---------------------------------------------------------------- help

def test_top_level_help_lists_commands_and_exit_codes(vmcrypt):
    r = vmcrypt.run("--help")
    assert r.returncode == 0, describe(r)
    text = r.stdout.decode()
    for cmd in SUBCOMMANDS:
        assert re.search(rf"^  {re.escape(cmd)} ", text, re.M), f"{cmd} missing from --help"
    for code in range(8):
        assert re.search(rf"^  {code}  \S", text, re.M), f"exit code {code} not described"


@pytest.mark.parametrize("cmd", sorted(SUBCOMMANDS))
def test_command_help(env, cmd):
    for args in [(cmd, "--help"), (cmd, "-h")] + [(cmd, s, "--help") for s in SUBCOMMANDS[cmd]]:
        r = env.run(*args)
        assert r.returncode == 0, describe(r)
        assert r.stderr == b"", describe(r)
        text = r.stdout.decode()
        assert "usage:" in text and f"vmcrypt {cmd}" in text, describe(r)
        for sub in SUBCOMMANDS[cmd]:
            assert f"vmcrypt {cmd} {sub}" in text, f"{sub} missing: " + describe(r)


# ---------------------------------------------------------------- usage errors

def usage_cases(f):
    """Bad command lines; f is a private file usable as any file option."""
    kmip = ["--ca-file", f, "--cert-file", f, "--key-file", f]
    login = ["--user", "admin", "--password-fd", "0"]
    tp = "ab" * 32
    return [
        ["user"],
        ["user", "frobnicate"],
        ["user", "list", "--bogus"],
        ["user", "list", "extra"],
        ["user", "remove"],
        ["user", "add", "bob"],                       # no password, no terminal
        ["user", "add", "bob", "--password-file", f, "--password-fd", "0"],
        ["user", "add", "bob", "--password-fd", str(CLOSED_FD)],
        ["user", "add", "bob", "--password-fd", "three"],
        ["user", "add", "bob", "--password-file"],
        ["user", "set-password", "bob"],
        ["login", "--server", "http://127.0.0.1:1"] + login + ["--thumbprint", tp],
        ["login", "--server", "127.0.0.1:1"] + login + ["--thumbprint", tp],
        ["login", "--server", "https://127.0.0.1:1"] + login,
        ["login", "--server", "https://127.0.0.1:1"] + login + ["--thumbprint", tp, "--ca-file", f],
        ["login", "--server", "https://127.0.0.1:1"] + login + ["--thumbprint", "zz" * 32],
        ["login", "--server", "https://127.0.0.1:1"] + login + ["--thumbprint", tp[:-2]],
        ["login", "--server", "https://127.0.0.1:1"] + login + ["--thumbprint", tp + "00"],
        ["login", "--server", "https://127.0.0.1:1", "--password-fd", "0", "--thumbprint", tp],
        ["login", "--user", "admin", "--password-fd", "0", "--thumbprint", tp],
        ["login", "--server", "https://127.0.0.1:1", "--server", "https://127.0.0.1:2"] + login
        + ["--thumbprint", tp],
        ["logout", "now"],
        ["whoami", "--user", "bob"],
        ["passwd", "--old-password-fd", "0"],
        ["passwd", "--new-password-fd", "0", "--new-password-file", f, "--old-password-fd", "0"],
        ["privilege", "list", "--object", "root"],
        ["role", "add", "auditor"],
        ["role", "show"],
        ["permission", "add", "--principal", "bob", "--role", "Admin"],
        ["permission", "add", "--principal", "bob", "--role", "Admin", "--object", "root",
         "--object", "root"],
        ["permission", "remove", "--object", "root"],
        ["permission", "list", "--group"],
        ["inventory", "add", "--parent", "root", "--kind", "disk", "--name", "x"],
        ["inventory", "add", "--parent", "root", "--kind", "vm"],
        ["inventory", "rename", "vm-000000000000"],
        ["inventory", "show", "a", "b"],
        ["policy", "add", "p"],
        ["policy", "add", "p", "--encrypt", "maybe"],
        ["policy", "add", "p", "--encrypt", "yes", "--migration", "always"],
        ["provider", "add-kmip", "k", "--server", "127.0.0.1:5696", "--ca-file", f,
         "--cert-file", f],
        ["provider", "add-kmip", "k"] + kmip,
        ["provider", "add-kmip", "k"] + kmip + ["--server", "127.0.0.1:1"] * 17,
        ["provider", "add-kmip", "k", "--server", "127.0.0.1:1", "--timeout-ms", "soon"] + kmip,
        ["provider", "add-native", "n", "--password-fd", "0"],
        ["provider", "add-native", "n", "--restore", f],
        ["provider", "backup", "n", "--password-fd", "0"],
        ["provider", "backup", "n", "--out", os.path.join(os.path.dirname(f), "b.bak")],
        ["provider", "key", "n"],
        ["provider", "check", "n", "--wait"],
        ["task", "wait"],
        ["events", "list", "--format", "xml"],
        ["events", "list", "--json", "--format", "csv"],
        ["events", "export"],
        ["events", "export", "--format", "table"],
        ["events", "verify", "--file"],
    ]


@pytest.mark.parametrize("logged_in", [False, True], ids=["no-session", "session"])
def test_usage_errors_exit_2_with_one_line_and_send_nothing(env, listener, logged_in):
    f = env.private("any.pem", b"not used\n")
    if logged_in:
        env.write_session(listener.url)
    for argv in usage_cases(f):
        r = env.run(*argv)
        assert_cli_error(r, EXIT_USAGE)
        assert not listener.connected(), f"a usage error connected to the server: {argv}"


# ---------------------------------------------------------------- session file

def test_not_logged_in_exits_3(env):
    for argv in (["whoami"], ["logout"], ["user", "list"], ["provider", "list"],
                 ["inventory", "add", "--parent", "root", "--kind", "folder", "--name", "f"],
                 ["events", "verify"], ["events", "list"], ["task", "wait", "t1"],
                 ["passwd", "--old-password-fd", "0", "--new-password-fd", "0"]):
        r = env.run(*argv)
        line = assert_cli_error(r, EXIT_AUTH)
        assert "not logged in" in line, describe(r)
    assert not os.path.exists(env.session)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o610])
def test_session_file_with_group_or_other_bits_is_refused(env, listener, mode):
    env.write_session(listener.url, mode=mode)
    for argv in (["whoami"], ["user", "list"], ["logout"]):
        r = env.run(*argv)
        line = assert_cli_error(r, EXIT_AUTH)
        assert env.session in line and "group or others" in line, describe(r)
    assert not listener.connected(), "the token was sent from a refused session file"
    assert os.path.exists(env.session), "a refused session file must be left alone"


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_private_session_file_is_used(env, listener, mode):
    """The counterpart of the refusals: a private file gets as far as
    connecting (the peer then hangs up: exit 7)."""
    env.write_session(listener.url, mode=mode)
    p = env.vmcrypt.popen("whoami", env={"XDG_CONFIG_HOME": env.config, "HOME": env.home})
    listener.sock.settimeout(60)
    conn, _ = listener.sock.accept()
    conn.close()
    out, err = p.communicate(timeout=60)
    assert p.returncode == EXIT_UNREACHABLE, (p.returncode, err)


def test_session_file_symlink_or_directory_is_refused(env, listener):
    env.write_session(listener.url)
    real = env.session + ".real"
    os.rename(env.session, real)
    os.symlink(real, env.session)
    assert_cli_error(env.run("whoami"), EXIT_AUTH)
    os.unlink(env.session)
    os.mkdir(env.session, 0o700)
    assert_cli_error(env.run("whoami"), EXIT_AUTH)
    assert not listener.connected()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_session_file_of_another_user_is_refused(env, listener):
    env.write_session(listener.url)
    os.chown(env.session, 65534, -1)
    line = assert_cli_error(env.run("whoami"), EXIT_AUTH)
    assert "not owned" in line
    assert not listener.connected()


@pytest.mark.parametrize("content", [
    b"garbage",
    b"[]",
    b'{"server": "https://127.0.0.1:1", "user": "a", "token": "t", "expires": 9999999999}',
    b'{"server": "https://127.0.0.1:1", "user": "a", "token": "t", "expires": 9999999999,'
    b' "thumbprint": "00", "ca_file": "/x"}',
    b'{"server": "http://127.0.0.1:1", "user": "a", "token": "t", "expires": 9999999999,'
    b' "ca_file": "/x"}',
    b'{"server": "https://127.0.0.1:1", "user": "a", "token": "", "expires": 9999999999,'
    b' "ca_file": "/x"}',
    b'{"server": "https://127.0.0.1:1", "user": "a", "token": "t", "expires": "soon",'
    b' "ca_file": "/x"}',
], ids=["garbage", "array", "no-trust", "two-trusts", "http", "empty-token", "expires-string"])
def test_damaged_session_file_exits_3(env, content):
    os.makedirs(env.session_dir, 0o700)
    write_file(env.session, content, 0o600)
    line = assert_cli_error(env.run("whoami"), EXIT_AUTH)
    assert "session" in line


def test_expired_session_is_refused_before_sending(env, listener):
    expires = int(time.time()) - 10
    env.write_session(listener.url, expires=expires)
    line = assert_cli_error(env.run("whoami"), EXIT_AUTH)
    assert "expired" in line and utc(expires) in line
    assert not listener.connected()
    # logout of an expired session just forgets it.
    r = env.run("logout")
    assert r.returncode == 0, describe(r)
    assert not os.path.exists(env.session)
    assert not listener.connected()


# ---------------------------------------------------------------- unreachable

@pytest.mark.parametrize("trust", ["thumbprint", "ca-file"])
def test_login_to_closed_port_exits_7(env, trust):
    pw = env.private("pw", b"password1\n")
    opt = ["--thumbprint", "cd" * 32] if trust == "thumbprint" else \
        ["--ca-file", env.private("ca.pem", b"-----BEGIN CERTIFICATE-----\n")]
    url = closed_port_url()
    r = env.run("login", "--server", url, "--user", "admin", "--password-file", pw, *opt)
    line = assert_cli_error(r, EXIT_UNREACHABLE)
    assert url in line, describe(r)
    assert not os.path.exists(env.session)


def test_logged_in_command_to_closed_port_exits_7(env):
    env.write_session(closed_port_url())
    for argv in (["whoami"], ["user", "list"], ["events", "verify"]):
        assert_cli_error(env.run(*argv), EXIT_UNREACHABLE)
    # The token still works on a server that comes back: keep it.
    assert_cli_error(env.run("logout"), EXIT_UNREACHABLE)
    assert os.path.exists(env.session)


def test_login_password_file_must_be_private(env, listener):
    pw = env.private("pw", b"password1\n", mode=0o644)
    r = env.run("login", "--server", listener.url, "--user", "admin", "--password-file", pw,
                "--thumbprint", "ab" * 32)
    line = assert_cli_error(r, EXIT_FAIL)
    assert pw in line and "group or others" in line
    assert not listener.connected()


# ---------------------------------------------------------------- event chain

LABEL = b"vmcrypt-event-v1"
STRINGS = ("user", "operation", "object", "provider", "key_id", "result", "message")


def encode_event(ev):
    """lib/vc_event.h's canonical encoding, written from its comment."""
    out = bytearray(LABEL)
    out += ev["seq"].to_bytes(8, "big", signed=True)
    out += ev["time_us"].to_bytes(8, "big", signed=True)
    for name in STRINGS:
        b = ev[name].encode("utf-8")
        out += len(b).to_bytes(4, "big") + b
    out += bytes.fromhex(ev["prev_hash"])
    return bytes(out)


def event_hash(ev, key=None):
    enc = encode_event(ev)
    if key:
        return hmac.new(key, enc, hashlib.sha256).hexdigest()
    return hashlib.sha256(enc).hexdigest()


def seal(events, genesis=bytes(32), key=None):
    prev = genesis.hex()
    for ev in events:
        ev["prev_hash"] = prev
        ev["hash"] = event_hash(ev, key)
        prev = ev["hash"]
    return events


def sample_events(n=12):
    t0 = 1795447702_000000
    ops = ["manager.init", "session.login", "provider.add", "key.create", "access.denied",
           "user.create", "policy.create", "key.get"]
    evs = []
    for i in range(n):
        evs.append({
            "seq": i + 1,
            "time_us": t0 + i * 1_234_567,
            "user": ["", "admin", "bob", "zoë"][i % 4],
            "operation": ops[i % len(ops)],
            "object": "root" if i % 3 else "",
            "provider": "kms1" if i % 2 else "",
            "key_id": f"{i:08x}-0000-4000-8000-000000000000" if i % 5 == 3 else "",
            "result": ["success", "failure", "denied"][i % 3],
            "message": ['created "x"', "back\\slash", "line\nbreak\ttab", "café ☕", ""][i % 5],
        })
    return seal(evs)


def write_jsonl(path, events, ensure_ascii=True, newline="\n"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        for ev in events:
            f.write(json.dumps(ev, ensure_ascii=ensure_ascii) + newline)
    return path


def verify_file(env, path, *extra):
    return env.run("events", "verify", "--file", path, *extra)


@pytest.mark.parametrize("style", ["ascii", "utf8", "crlf"])
def test_events_verify_intact_chain(env, style):
    evs = sample_events()
    path = write_jsonl(os.path.join(env.root, "ev.jsonl"), evs,
                       ensure_ascii=style == "ascii", newline="\r\n" if style == "crlf" else "\n")
    r = verify_file(env, path)
    assert r.returncode == 0, describe(r)
    assert r.stdout.decode() == \
        f"{len(evs)} events, chain intact (last seq {evs[-1]['seq']}, hash {evs[-1]['hash']})\n"
    assert r.stderr == b""


def test_events_verify_json_and_empty(env):
    evs = sample_events(3)
    r = verify_file(env, write_jsonl(os.path.join(env.root, "ev.jsonl"), evs), "--json")
    assert r.returncode == 0, describe(r)
    assert json.loads(r.stdout) == {"ok": True, "count": 3, "last_seq": 3,
                                    "last_hash": evs[-1]["hash"]}
    empty = env.private("empty.jsonl", b"")
    r = verify_file(env, empty)
    assert r.returncode == 0 and r.stdout.startswith(b"0 events, chain intact"), describe(r)


def test_events_verify_long_chain(env):
    evs = sample_events(3000)
    r = verify_file(env, write_jsonl(os.path.join(env.root, "ev.jsonl"), evs))
    assert r.returncode == 0, describe(r)
    assert evs[-1]["hash"] in r.stdout.decode()


def expect_broken(env, evs, seq, reason, edited=None):
    """Verification fails with one line naming event seq, the reason, and
    the operation, time and user of that event as the file has them."""
    path = write_jsonl(os.path.join(env.root, "bad.jsonl"), evs)
    r = verify_file(env, path)
    line = assert_cli_error(r, EXIT_FAIL)
    ev = edited or next(e for e in evs if e["seq"] == seq)
    expected = (f"vmcrypt: event {seq}: {reason}, operation {ev['operation']} "
                f"at {utc(ev['time_us'] // 1_000_000)} by {ev['user']}")
    assert line == expected, describe(r)
    r = verify_file(env, path, "--json")
    assert r.returncode == EXIT_FAIL
    report = json.loads(r.stdout)
    assert report["ok"] is False and report["seq"] == seq


EDITS = {
    **{name: (lambda ev, n=name: ev.__setitem__(n, ev[n] + "x")) for name in STRINGS},
    "time_us": lambda ev: ev.__setitem__("time_us", ev["time_us"] + 1),
    "prev_hash": lambda ev: ev.__setitem__("prev_hash", ev["prev_hash"][:-1] +
                                           ("0" if ev["prev_hash"][-1] != "0" else "1")),
    "hash": lambda ev: ev.__setitem__("hash", ev["hash"][:-1] +
                                      ("0" if ev["hash"][-1] != "0" else "1")),
}


@pytest.mark.parametrize("field", sorted(EDITS))
def test_events_verify_names_the_edited_event(env, field):
    evs = sample_events()
    victim = evs[6]
    EDITS[field](victim)
    expect_broken(env, evs, victim["seq"], "hash does not match its contents (edited?)")


def test_events_verify_edited_seq(env):
    evs = sample_events()
    evs[4]["seq"] = 50
    expect_broken(env, evs, 50, "hash does not match its contents (edited?)")


def test_events_verify_resealed_event_breaks_the_next_link(env):
    """An edit whose own hash was recomputed still breaks the chain at the
    following event."""
    evs = sample_events()
    evs[5]["message"] = "nothing happened here"
    evs[5]["hash"] = event_hash(evs[5])
    expect_broken(env, evs, evs[6]["seq"],
                  f"does not chain to event {evs[5]['seq']} (deleted or reordered?)")


def test_events_verify_deleted_and_reordered(env):
    evs = sample_events()
    gone = evs[:4] + evs[5:]
    expect_broken(env, gone, evs[5]["seq"], f"sequence gap after {evs[3]['seq']} (deleted?)")
    swapped = evs[:3] + [evs[4], evs[3]] + evs[5:]
    r = verify_file(env, write_jsonl(os.path.join(env.root, "sw.jsonl"), swapped))
    line = assert_cli_error(r, EXIT_FAIL)
    assert line.startswith(f"vmcrypt: event {evs[4]['seq']}: "), describe(r)
    headless = evs[2:]
    expect_broken(env, headless, evs[2]["seq"],
                  "does not chain to the genesis hash (earlier events deleted, or another log?)")


def test_events_verify_other_genesis_or_keyed_chain_fails_at_first_event(env):
    evs = seal(sample_events(), genesis=bytes([7]) * 32)
    expect_broken(env, evs, 1,
                  "does not chain to the genesis hash (earlier events deleted, or another log?)")
    evs = seal(sample_events(), key=b"log key")
    expect_broken(env, evs, 1, "hash does not match its contents (edited?)")


@pytest.mark.parametrize("bad", [
    "not json",
    '{"seq": "1"}',
    "missing-hash",
    "short-hash",
    "non-hex-hash",
    "number-user",
    "duplicate-key",
])
def test_events_verify_malformed_line(env, bad):
    evs = sample_events(4)
    lines = [json.dumps(ev) for ev in evs]
    ev = dict(evs[2])
    if bad == "missing-hash":
        del ev["hash"]
    elif bad == "short-hash":
        ev["hash"] = ev["hash"][:-2]
    elif bad == "non-hex-hash":
        ev["hash"] = "g" + ev["hash"][1:]
    elif bad == "number-user":
        ev["user"] = 5
    lines[2] = bad if bad in ("not json", '{"seq": "1"}') else json.dumps(ev)
    if bad == "duplicate-key":
        lines[2] = lines[2][:-1] + ', "user": "mallory"}'
    path = env.private("bad.jsonl", ("\n".join(lines) + "\n").encode())
    line = assert_cli_error(verify_file(env, path), EXIT_FAIL)
    assert line.startswith("vmcrypt: line 3: "), line


def test_events_verify_missing_file(env):
    line = assert_cli_error(verify_file(env, os.path.join(env.root, "nope.jsonl")), EXIT_FAIL)
    assert "nope.jsonl" in line


# ---------------------------------------------------------------- a canned TLS peer

def make_cert(directory, name):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: install the Debian package openssl")
    crt, key = os.path.join(directory, name + ".crt"), os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt,
                    "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    with open(crt) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return crt, key, hashlib.sha256(der).hexdigest()


class FakeManager:
    """HTTPS on loopback answering (method, path) from a table of canned
    (status, body) answers, and recording every request it got. Not
    vmcryptd: only enough to check what the CLI sends and how it reads
    answers."""

    def __init__(self, directory):
        self.cert, self.key, self.thumbprint = make_cert(directory, "fake")
        self.routes = {}
        self.requests = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                fake.requests.append((self.command, self.path, dict(self.headers), body))
                status, answer = fake.routes.get((self.command, self.path),
                                                 (404, {"error": {"code": "not_found",
                                                                  "message": "no such route"}}))
                data = answer if isinstance(answer, bytes) else \
                    json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def login_answer(self, token="T" * 43, change=False, expires=None):
        self.expires = expires or int(time.time()) + 3600
        self.token = token
        self.routes[("POST", "/api/v1/session")] = (201, {
            "token": token, "user": "admin", "expires": self.expires,
            "password_change_required": change})

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake(tmp_path):
    f = FakeManager(str(tmp_path))
    yield f
    f.stop()


def login(env, fake, *trust, password=b"s3cret pass\n"):
    pw = env.private("pw", password)
    return env.run("login", "--server", fake.url, "--user", "admin", "--password-file", pw,
                   *trust)


def colon_upper(hexstr):
    return ":".join(hexstr[i:i + 2] for i in range(0, len(hexstr), 2)).upper()


def test_login_with_thumbprint_writes_a_private_session(env, fake):
    fake.login_answer()
    r = login(env, fake, "--thumbprint", colon_upper(fake.thumbprint))
    assert r.returncode == 0, describe(r)
    assert r.stdout.decode() == \
        f"logged in to {fake.url} as admin (session expires {utc(fake.expires)})\n"
    method, path, headers, body = fake.requests[-1]
    assert (method, path) == ("POST", "/api/v1/session")
    assert headers.get("Content-Type") == "application/json"
    assert json.loads(body) == {"user": "admin", "password": "s3cret pass"}
    assert os.stat(env.session_dir).st_mode & 0o777 == 0o700
    assert os.stat(env.config).st_mode & 0o777 == 0o700
    assert os.stat(env.session).st_mode & 0o777 == 0o600
    with open(env.session) as f:
        s = json.load(f)
    assert s == {"server": fake.url, "user": "admin", "token": fake.token,
                 "expires": fake.expires, "thumbprint": fake.thumbprint}
    assert not [n for n in os.listdir(env.session_dir) if n != "session.json"], \
        "temporary files left behind"


def test_login_one_time_password_and_json_hides_token(env, fake):
    fake.login_answer(change=True)
    r = login(env, fake, "--thumbprint", fake.thumbprint)
    assert r.returncode == 0, describe(r)
    assert r.stdout.decode().splitlines()[1] == \
        "the password is a one-time password: change it with 'vmcrypt passwd'"
    r = login(env, fake, "--thumbprint", fake.thumbprint, "--json")
    assert r.returncode == 0, describe(r)
    out = json.loads(r.stdout)
    assert out["password_change_required"] is True and "token" not in out
    assert fake.token.encode() not in r.stdout + r.stderr


def test_login_thumbprint_mismatch_sends_nothing(env, fake):
    fake.login_answer()
    wrong = fake.thumbprint[:-1] + ("0" if fake.thumbprint[-1] != "0" else "1")
    r = login(env, fake, "--thumbprint", wrong)
    line = assert_cli_error(r, EXIT_UNREACHABLE)
    assert "thumbprint" in line and fake.thumbprint in line, describe(r)
    assert fake.requests == [], "the password went to an unpinned server"
    assert not os.path.exists(env.session)


def test_login_with_ca_file(env, fake, tmp_path):
    fake.login_answer()
    r = login(env, fake, "--ca-file", fake.cert)
    assert r.returncode == 0, describe(r)
    with open(env.session) as f:
        assert json.load(f)["ca_file"] == os.path.abspath(fake.cert)
    other, _, _ = make_cert(str(tmp_path), "other")
    os.unlink(env.session)
    before = len(fake.requests)
    r = login(env, fake, "--ca-file", other)
    assert_cli_error(r, EXIT_UNREACHABLE)
    assert len(fake.requests) == before and not os.path.exists(env.session)


def test_requests_carry_the_token(env, fake):
    fake.login_answer()
    assert login(env, fake, "--thumbprint", fake.thumbprint).returncode == 0
    fake.routes[("GET", "/api/v1/session")] = (200, {
        "user": "admin", "expires": fake.expires, "groups": ["ops"],
        "privileges": ["System.View"]})
    r = env.run("whoami", "--json")
    assert r.returncode == 0, describe(r)
    assert json.loads(r.stdout)["groups"] == ["ops"]
    _, path, headers, _ = fake.requests[-1]
    assert path == "/api/v1/session"
    assert headers.get("Authorization") == f"Bearer {fake.token}"


@pytest.mark.parametrize("status,code", [
    (400, EXIT_FAIL), (401, EXIT_AUTH), (403, EXIT_DENIED), (404, EXIT_NOT_FOUND),
    (409, EXIT_CONFLICT), (500, EXIT_FAIL), (502, EXIT_FAIL)])
def test_http_errors_map_to_exit_codes_and_print_the_message(env, fake, status, code):
    fake.login_answer()
    assert login(env, fake, "--thumbprint", fake.thumbprint).returncode == 0
    message = f"the manager says no ({status}), with \"quotes\""
    fake.routes[("DELETE", "/api/v1/users/a%20b%3F%23%2F")] = (
        status, {"error": {"code": "x", "message": message}})
    line = assert_cli_error(env.run("user", "remove", "a b?#/"), code)
    assert line == f"vmcrypt: {message}"
    assert fake.requests[-1][:2] == ("DELETE", "/api/v1/users/a%20b%3F%23%2F")


def test_error_without_json_body(env, fake):
    fake.login_answer()
    assert login(env, fake, "--thumbprint", fake.thumbprint).returncode == 0
    fake.routes[("GET", "/api/v1/users")] = (503, b"<html>busy</html>")
    line = assert_cli_error(env.run("user", "list"), EXIT_FAIL)
    assert "503" in line


def test_inventory_add_prints_the_id_alone(env, fake):
    fake.login_answer()
    assert login(env, fake, "--thumbprint", fake.thumbprint).returncode == 0
    oid = "folder-" + os.urandom(6).hex()
    fake.routes[("POST", "/api/v1/inventory")] = (201, {
        "id": oid, "parent": "root", "kind": "folder", "name": "dc1"})
    r = env.run("inventory", "add", "--parent", "root", "--kind", "folder", "--name", "dc1")
    assert r.returncode == 0, describe(r)
    assert r.stdout.decode() == oid + "\n"
    assert json.loads(fake.requests[-1][3]) == {"parent": "root", "kind": "folder", "name": "dc1"}


def test_logout_removes_the_session_even_on_401(env, fake):
    fake.login_answer()
    assert login(env, fake, "--thumbprint", fake.thumbprint).returncode == 0
    fake.routes[("DELETE", "/api/v1/session")] = (401, {"error": {
        "code": "unauthorized", "message": "session expired or unknown"}})
    r = env.run("logout")
    assert r.returncode == 0, describe(r)
    assert fake.requests[-1][:2] == ("DELETE", "/api/v1/session")
    assert not os.path.exists(env.session)
    assert_cli_error(env.run("whoami"), EXIT_AUTH)
