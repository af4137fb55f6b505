# SPDX-License-Identifier: Apache-2.0
# Bad input to the real vmcryptd: malformed JSON, wrong types, unknown and
# duplicate fields, oversized bodies, wrong content types, bad tokens
# (missing, garbage, logged out, expired in the database), bad targets and
# methods, and raw garbage on the TLS port. Each gets the documented 4xx
# JSON error with a one-line message, and the daemon keeps serving: alive,
# no sanitizer report, the next valid call works.
import os
import socket
import ssl
import time

import pytest

from vc_manager import ADMIN, PASSWORD, add_user, assert_error, loads
from vc_manager import admin, manager  # noqa: F401 (pytest fixtures)

ROLE_OK = b'{"name": "%s", "privileges": ["System.View"]}'
_n = [0]


def fresh(prefix="bad"):
    _n[0] += 1
    return f"{prefix}-{_n[0]}"


def still_serving(mgr, admin_api):
    mgr.assert_alive()
    name = fresh("alive")
    admin_api.ok("POST", "roles", {"name": name, "privileges": ["System.View"]}, ok=(201,))
    admin_api.ok("GET", f"roles/{name}", ok=(200,))


def raw(admin_api, data, path="roles", method="POST", ctype="application/json", **kw):
    return admin_api.request(method, path, raw=data, content_type=ctype, **kw)


BAD_BODIES = [
    ("truncated JSON", b'{"name": "x", "privileges": ['),
    ("not JSON", b"name=x&privileges=System.View"),
    ("trailing garbage", b'{"name": "x", "privileges": []} xyz'),
    ("two objects", b'{"name": "x", "privileges": []}{"name": "y", "privileges": []}'),
    ("array, not object", b'[{"name": "x", "privileges": []}]'),
    ("string, not object", b'"x"'),
    ("null", b"null"),
    ("name of wrong type", b'{"name": 5, "privileges": []}'),
    ("privileges of wrong type", b'{"name": "x", "privileges": "System.View"}'),
    ("privilege of wrong type", b'{"name": "x", "privileges": [1]}'),
    ("unknown field", b'{"name": "x", "privileges": [], "colour": "red"}'),
    ("missing field", b'{"privileges": ["System.View"]}'),
    ("duplicate key", b'{"name": "x", "name": "y", "privileges": []}'),
    ("duplicate key, same value", b'{"name": "x", "privileges": [], "privileges": []}'),
    ("empty name", b'{"name": "", "privileges": []}'),
    ("name with slash", b'{"name": "a/b", "privileges": []}'),
    ("name with control char", b'{"name": "a\\u0001b", "privileges": []}'),
    ("name with NUL", b'{"name": "a\\u0000b", "privileges": []}'),
    ("name of 129 bytes", b'{"name": "' + b"n" * 129 + b'", "privileges": []}'),
    ("name not ASCII", '{"name": "r\u00f4le", "privileges": []}'.encode()),
    ("invalid UTF-8", b'{"name": "a\xff\xfeb", "privileges": []}'),
    ("lone surrogate", b'{"name": "a\\ud800b", "privileges": []}'),
    ("unknown privilege", b'{"name": "x", "privileges": ["Nope.Nothing"]}'),
    ("deep nesting", b'{"name": "x", "privileges": ' + b"[" * 20000 + b"]" * 20000 + b"}"),
    ("huge number", b'{"name": "x", "privileges": [], "n": 1e999999}'),
    ("empty body", b""),
]


@pytest.mark.parametrize("what,body", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_body(manager, admin, what, body):
    r = raw(admin, body)
    assert_error(r, 400, "bad_request")
    assert_error(admin.request("GET", "roles/x"), 404, "not_found")
    still_serving(manager, admin)


def test_wrong_types_elsewhere(manager, admin):
    add_user(admin, "bi-user")
    cases = [
        ("users", {"name": "u1", "password": 12345678}),
        ("users", {"name": "u1", "password": "short"}),
        ("users", {"name": "u1", "password": PASSWORD, "groups": "ops"}),
        ("users", {"name": "u1", "password": PASSWORD, "groups": [""]}),
        ("users", {"name": "u1", "password": "p" * 1025}),
        ("permissions", {"principal": "bi-user", "role": "Admin", "object": "root",
                         "propagate": "yes"}),
        ("permissions", {"principal": "bi-user", "role": "Admin", "object": "root",
                         "group": 1}),
        ("permissions", {"principal": "bi-user", "role": "NoSuchRole", "object": "root"}),
        ("inventory", {"parent": "root", "kind": "galaxy", "name": "x"}),
        ("inventory", {"parent": "root", "kind": "vm", "name": "vm-under-root"}),
        ("inventory", {"parent": "root", "kind": "folder", "name": None}),
        ("key-providers", {"name": "p", "kind": "hsm"}),
        ("key-providers", {"name": "p", "kind": "kmip", "servers": [], "ca_pem": "x",
                           "client_cert_pem": "x", "client_key_pem": "x"}),
        ("key-providers", {"name": "p", "kind": "kmip", "servers": ["h:1"] * 17,
                           "ca_pem": "x", "client_cert_pem": "x", "client_key_pem": "x"}),
        ("key-providers", {"name": "p", "kind": "kmip", "servers": ["127.0.0.1:1"],
                           "ca_pem": "x", "client_cert_pem": "x", "client_key_pem": "x",
                           "timeout_ms": 5}),
        ("policies", {"name": "p", "encrypt": "yes", "migration": "required", "provider": None}),
        ("policies", {"name": "p", "encrypt": True, "migration": "sometimes"}),
        ("policies", {"name": "p", "encrypt": True, "migration": "required",
                      "provider": "no-such-provider"}),
        ("session/password", {"old_password": ADMIN, "new_password": 1}),
    ]
    for path, body in cases:
        r = admin.request("POST", path, body)
        assert_error(r, 400, "bad_request")
    still_serving(manager, admin)


def test_body_size_limit(manager, admin):
    limit = 64 * 1024
    head = ROLE_OK % fresh("big").encode()
    # Exactly the limit (JSON allows trailing whitespace): accepted.
    r = raw(admin, head + b" " * (limit - len(head)))
    assert r.status == 201, r
    r = raw(admin, head + b" " * (limit + 1 - len(head)))
    assert_error(r, 413, "payload_too_large")
    r = raw(admin, b'{"name": "' + b"x" * (900 << 10) + b'"}')
    assert_error(r, 413, "payload_too_large")
    # Over 1 MiB the HTTP layer (libevent) refuses the body itself, with
    # its own plain 413 page (docs/API.md, "Errors").
    r = raw(admin, b'{"name": "' + b"x" * (4 << 20) + b'"}')
    assert r.status == 413, r
    still_serving(manager, admin)


def test_declared_length_too_big_answered_early(manager, admin):
    """A Content-Length over the limit is refused without waiting for the
    body (a server that buffered it first could be made to hold memory)."""
    ctx = ssl.create_default_context(cafile=manager.ca)
    with socket.create_connection(("127.0.0.1", manager.port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="127.0.0.1") as t:
            t.sendall((f"POST /api/v1/roles HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       f"Authorization: Bearer {admin.token}\r\n"
                       f"Content-Type: application/json\r\n"
                       f"Content-Length: {1 << 30}\r\n\r\n").encode())
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = t.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except socket.timeout:
                pass
    assert data.startswith(b"HTTP/1.1 413 ") or data.startswith(b"HTTP/1.0 413 "), data[:200]
    still_serving(manager, admin)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "application/jsonx", "multipart/form-data; boundary=x"])
def test_content_type(manager, admin, ctype):
    r = raw(admin, ROLE_OK % fresh("ct").encode(), ctype=ctype)
    assert_error(r, 415, "unsupported_media_type")
    still_serving(manager, admin)


def test_content_type_with_charset(admin):
    r = raw(admin, ROLE_OK % fresh("cs").encode(), ctype="application/json; charset=utf-8")
    assert r.status == 201, r


def test_tokens(manager, admin):
    cases = [
        ("no header", None),
        ("garbage", "Bearer not-a-token"),
        ("empty bearer", "Bearer "),
        ("basic scheme", "Basic YWRtaW46YWRtaW4="),
        ("right length, unknown", "Bearer " + "A" * 43),
        ("token twice", f"Bearer {admin.token} {admin.token}"),
        ("no scheme", admin.token),
        ("control chars", "Bearer \x01\x02\x03"),
        ("very long", "Bearer " + "x" * 8000),
    ]
    for what, auth in cases:
        headers = {} if auth is None else {"Authorization": auth}
        r = admin.request("GET", "session", token=None, headers=headers)
        err = assert_error(r, 401, "unauthorized")
        assert admin.token not in err["message"], what
    still_serving(manager, admin)


def test_logged_out_and_expired_tokens(manager, admin):
    add_user(admin, "tok-user", role="ReadOnly")
    c = manager.login("tok-user", PASSWORD)
    c.ok("GET", "session", ok=(200,))
    c.ok("DELETE", "session", ok=(204,))
    assert_error(c.request("GET", "session"), 401, "unauthorized")
    assert_error(c.request("DELETE", "session"), 401, "unauthorized")

    c = manager.login("tok-user", PASSWORD)
    c.ok("GET", "inventory", ok=(200,))
    n = manager.sql("UPDATE sessions SET expires = 0 WHERE user_name = ?", ("tok-user",))
    assert n == []
    left = manager.sql("SELECT count(*) FROM sessions WHERE user_name = ? AND expires > 0",
                       ("tok-user",))
    assert left == [(0,)], left
    assert_error(c.request("GET", "inventory"), 401, "unauthorized")
    assert_error(c.request("GET", "session"), 401, "unauthorized")
    # The next login sweeps expired sessions out of the table.
    assert manager.sql("SELECT count(*) FROM sessions WHERE user_name = ?",
                       ("tok-user",)) == [(1,)]
    manager.login("tok-user", PASSWORD)
    assert manager.sql("SELECT count(*) FROM sessions WHERE user_name = ? AND expires = 0",
                       ("tok-user",)) == [(0,)]
    # A user removed: its sessions end.
    d = manager.login("tok-user", PASSWORD)
    admin.ok("DELETE", "users/tok-user", ok=(204,))
    assert_error(d.request("GET", "session"), 401, "unauthorized")
    still_serving(manager, admin)


def test_login_errors_do_not_tell_users_apart(manager, admin):
    anon = manager.api()
    wrong_pw = anon.request("POST", "session", {"user": ADMIN, "password": "not the password"})
    no_user = anon.request("POST", "session", {"user": "no-such-user", "password": "whatever!"})
    e1 = assert_error(wrong_pw, 401, "unauthorized")
    e2 = assert_error(no_user, 401, "unauthorized")
    assert e1 == e2, (e1, e2)
    assert "no-such-user" not in e2["message"]
    assert_error(anon.request("POST", "session", {"user": ADMIN}), 400, "bad_request")
    assert_error(anon.request("POST", "session", {"user": ADMIN, "password": 1}), 400,
                 "bad_request")
    still_serving(manager, admin)


def test_bad_targets_and_methods(manager, admin):
    cases = [
        ("GET", "/api/v1/nothing-here", 404),
        ("GET", "/api/v2/roles", 404),
        ("GET", "/", 404),
        ("GET", "/api/v1/roles/no-such-role", 404),
        ("GET", "/api/v1/inventory/folder-000000000000", 404),
        ("GET", "/api/v1/tasks/no-such-task", 404),
        ("PUT", "/api/v1/roles", 405),
        ("PATCH", "/api/v1/session", 405),
        ("DELETE", "/api/v1/privileges", 405),
        ("GET", "/api/v1/roles?colour=red", 400),
        ("GET", "/api/v1/permissions?object=root&object=root", 400),
        ("GET", "/api/v1/roles/%00", 400),
        ("GET", "/api/v1/roles/%zz", 400),
        ("GET", "/api/v1//roles", 400),
        ("GET", "/api/v1/roles/../users", 400),
        ("GET", "/api/v1/" + "a/" * 40, 400),
        ("GET", "/api/v1/roles/" + "r" * 300, 400),
    ]
    for method, path, status in cases:
        body = {} if method in ("PUT", "PATCH") else None
        r = admin.request(method, path, **({"body": body} if body is not None else {}))
        if status == 400 and "?" not in path:
            # A malformed target: refused either as a bad request or as
            # no such route.
            assert r.status in (400, 404), (method, path, r)
            assert_error(r, r.status)
        else:
            assert_error(r, status)
    still_serving(manager, admin)


def test_conflicts(manager, admin):
    name = fresh("dup")
    admin.ok("POST", "roles", {"name": name, "privileges": []}, ok=(201,))
    assert_error(admin.request("POST", "roles", {"name": name, "privileges": []}), 409,
                 "conflict")
    assert_error(admin.request("DELETE", "roles/Admin"), 409, "conflict")
    assert_error(admin.request("DELETE", f"users/{ADMIN}"), 409, "conflict")
    fid = admin.ok("POST", "inventory", {"parent": "root", "kind": "folder", "name": "c-f"},
                   ok=(201,))["id"]
    admin.ok("POST", "inventory", {"parent": fid, "kind": "vm", "name": "c-vm"}, ok=(201,))
    assert_error(admin.request("DELETE", f"inventory/{fid}"), 409, "conflict")
    assert_error(admin.request("DELETE", "inventory/root"), 409)
    still_serving(manager, admin)


def _tls(manager):
    ctx = ssl.create_default_context(cafile=manager.ca)
    s = socket.create_connection(("127.0.0.1", manager.port), timeout=10)
    return ctx.wrap_socket(s, server_hostname="127.0.0.1")


def _drain(sock, limit=1 << 20):
    """Read until the peer closes or stays silent for the socket timeout."""
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ssl.SSLError, ConnectionError):
        pass
    return data


def test_raw_garbage(manager, admin):
    rng = __import__("random").Random(1234)
    # Garbage inside TLS.
    for blob in (os.urandom(4096), b"\r\n" * 1000, b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 5000,
                 b"GET /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"POST /api/v1/roles HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"fffffffffffffffff\r\n", bytes(rng.randrange(256) for _ in range(20000))):
        with _tls(manager) as t:
            t.settimeout(5)
            try:
                t.sendall(blob)
            except (ConnectionError, ssl.SSLError):
                pass
            _drain(t)
        manager.assert_alive()
    # Plain HTTP and garbage on the TLS port; a TLS record cut short.
    for blob in (b"GET /api/v1/session HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                 os.urandom(2048), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                 b"\x16\x03\x01\xff\xff" + os.urandom(100)):
        with socket.create_connection(("127.0.0.1", manager.port), timeout=5) as s:
            try:
                s.sendall(blob)
                s.shutdown(socket.SHUT_WR)
            except OSError:
                pass      # the daemon may have hung up already
            _drain(s)
        manager.assert_alive()
    still_serving(manager, admin)


def test_idle_connections_do_not_block_others(manager, admin):
    """Silent clients (TCP only, and TLS without a request) do not stop the
    daemon from serving another client."""
    idle = [socket.create_connection(("127.0.0.1", manager.port), timeout=5) for _ in range(8)]
    half = [_tls(manager) for _ in range(4)]
    slow = _tls(manager)
    slow.sendall(b"POST /api/v1/roles HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    try:
        t0 = time.monotonic()
        still_serving(manager, admin)
        assert time.monotonic() - t0 < 10
    finally:
        for s in idle + half + [slow]:
            s.close()
    still_serving(manager, admin)


def test_malformed_header_is_4xx(manager, admin):
    """A request libevent cannot parse (here a bad Content-Length) is
    answered by libevent itself: a plain 400 page, not JSON (documented
    in docs/API.md, "Errors"), and the daemon keeps serving."""
    r = admin.request("GET", "/api/v1/roles", headers={"Content-Length": "abc"})
    assert r.status == 400, r
    still_serving(manager, admin)
