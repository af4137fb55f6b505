# SPDX-License-Identifier: Apache-2.0
# The host agent with the real manager: adding a host (thumbprint confirmed,
# join token), certificate pinning on both sides, host encryption mode and
# its privilege, the key cache (all-or-nothing batches, memory only, its
# locked-memory limit), TLS session resumption, a removed host taken back,
# an unresponsive agent, the manager's restart, and bad input over the
# pinned channel.
import base64
import os
import shutil
import socket
import ssl
import threading

import pytest

from vc_hostd import (add_body, add_host, agents, cert_thumbprint,  # noqa: F401
                      key_ids, make_cert)
from vc_manager import (Manager, add_object, assert_error, find_secrets, secret_forms,
                        user_client)
from vc_manager import admin, manager  # noqa: F401 (pytest fixtures)

PROV = "prov-a"
REGISTER_HOST = "Cryptographer.RegisterHost"


def new_events(api, operation, since):
    """Events of this operation with seq > since."""
    evs = api.ok("GET", "events", query={"operation": operation}, ok=(200,))["events"]
    return [e for e in evs if e["seq"] > since]


def last_seq(api):
    return api.ok("GET", "events/verify", ok=(200,))["last_seq"]


def hosts_by_address(api):
    return {h["address"]: h for h in api.ok("GET", "hosts", ok=(200,))["hosts"]}


def other_thumbprint(tp):
    """The same thumbprint with its first byte changed."""
    first = (int(tp[:2], 16) ^ 0x01)
    return f"{first:02X}" + tp[2:]


@pytest.fixture(scope="module")
def folder(admin):  # noqa: F811
    return add_object(admin, "root", "folder", "hosts")


@pytest.fixture(scope="module")
def host(admin, agents, folder):  # noqa: F811
    """An agent added to the module's manager: (agent, host object)."""
    a = agents.new("shared")
    return a, add_host(admin, a, folder, "shared-host")


def test_add_host(manager, admin, agents, folder):  # noqa: F811
    a = agents.new("add")
    assert a.status.startswith("waiting"), a.status
    mgr_tp = cert_thumbprint(os.path.join(manager.dir, "tls", "manager.crt"))
    seq = last_seq(admin)

    # 1. No thumbprint: the manager shows what the agent presents.
    r = admin.request("POST", "hosts", add_body(a, folder, "h-add"))
    err = assert_error(r, 409, "thumbprint_required")
    assert err["thumbprint"] == a.fingerprint == cert_thumbprint(a.cert), err
    assert a.state()["manager_thumbprint"] is None

    # 2. A thumbprint other than the one presented: refused, failure event.
    r = admin.request("POST", "hosts", add_body(a, folder, "h-add",
                                                other_thumbprint(a.fingerprint)))
    err = assert_error(r, 409, "thumbprint_mismatch")
    assert err["thumbprint"] == a.fingerprint, err
    evs = new_events(admin, "host.add", seq)
    assert [e["result"] for e in evs] == ["failure"], evs
    assert evs[0]["user"] == "admin", evs
    assert a.state()["manager_thumbprint"] is None, "a refused add claimed the agent"

    # 3. The wrong join token: 403, the agent stays unclaimed.
    seq = last_seq(admin)
    r = admin.request("POST", "hosts", add_body(a, folder, "h-add", a.fingerprint,
                                                token=a.token + "x"))
    assert_error(r, 403, "forbidden")
    st = a.state()
    assert st["manager_thumbprint"] is None and st["join_token_sha256"], st
    assert [e["result"] for e in new_events(admin, "host.add", seq)] == ["failure"]
    assert a.address not in hosts_by_address(admin)
    # Lower-case hex without colons is the same thumbprint.
    tp = a.fingerprint.replace(":", "").lower()

    # 4. The right token: added, both sides pinned.
    seq = last_seq(admin)
    r = admin.request("POST", "hosts", add_body(a, folder, "h-add", tp))
    assert r.status == 201, r
    h = r.json
    assert (h["address"], h["thumbprint"], h["name"], h["parent"], h["encryption_mode"]) == \
        (a.address, a.fingerprint, "h-add", folder, False), h
    obj = admin.ok("GET", f"inventory/{h['id']}", ok=(200,))
    assert (obj["kind"], obj["parent"], obj["name"]) == ("host", folder, "h-add"), obj
    evs = new_events(admin, "host.add", seq)
    assert [(e["result"], e["object"]) for e in evs] == [("success", h["id"])], evs
    st = a.state()
    assert st["manager_thumbprint"] == mgr_tp.replace(":", "").lower(), (st, mgr_tp)
    assert st["join_token_sha256"] is None, "the spent token's hash is still kept"
    assert hosts_by_address(admin)[a.address]["id"] == h["id"]
    g = admin.ok("GET", f"hosts/{h['id']}", ok=(200,))
    assert g["connection"] == "connected", g
    ag = g["agent"]
    assert (ag["host_id"], ag["claimed"], ag["thumbprint"], ag["encryption_mode"], ag["keys"]) \
        == (a.host_id, True, a.fingerprint, False, []), ag

    # 5. The same address again: 409, nothing new in the inventory.
    before = admin.ok("GET", "inventory", ok=(200,))["objects"]
    r = admin.request("POST", "hosts", add_body(a, folder, "h-add-again", a.fingerprint))
    assert_error(r, 409)
    after = admin.ok("GET", "inventory", ok=(200,))["objects"]
    assert len(after) == len(before) and "h-add-again" not in [o["name"] for o in after]
    assert [x for x in hosts_by_address(admin).values() if x["address"] == a.address] == \
        [hosts_by_address(admin)[a.address]]
    a.assert_alive()
    manager.assert_alive()


def test_add_unreachable(admin, folder):  # noqa: F811
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    r = admin.request("POST", "hosts", {"address": f"127.0.0.1:{port}", "join_token": "x",
                                        "parent": folder, "name": "nowhere"})
    assert_error(r, 502, "host_unreachable")


def test_wrong_token_then_right_token(admin, agents, folder):  # noqa: F811
    """A refused token does not use the agent up: the right one works after."""
    a = agents.new("retry")
    for _ in range(2):
        r = admin.request("POST", "hosts", add_body(a, folder, "h-retry", a.fingerprint,
                                                    token="not-the-token"))
        assert_error(r, 403, "forbidden")
    r = admin.request("POST", "hosts", add_body(a, folder, "h-retry", a.fingerprint))
    assert r.status == 201, r


def test_agent_pins_the_manager(manager, admin, host, tmp_path):  # noqa: F811
    a, h = host
    other_cert, other_key = make_cert(str(tmp_path / "certs"), "intruder")
    for label, client in (("another certificate", a.client(other_cert, other_key)),
                          ("no certificate", a.client())):
        for method, path, body in (("GET", "/api/v1/host", None),
                                   ("PUT", "/api/v1/host/encryption-mode", {"enabled": True}),
                                   ("DELETE", "/api/v1/keys", None)):
            res = client.attempt(method, path, *(() if body is None else (body,)))
            assert isinstance(res, Exception), \
                f"{label}: {method} {path} got an answer from a claimed agent: {res}"
    a.assert_alive()
    info = a.as_manager(manager).info()
    assert info["claimed"] is True and info["thumbprint"] == a.fingerprint, info
    assert info["encryption_mode"] is False, "a refused client changed the mode"

    # A second manager with the right thumbprint and the (spent) token.
    m2 = Manager(tmp_path / "manager2")
    m2.start()
    try:
        api2 = m2.login()
        f2 = add_object(api2, "root", "folder", "m2")
        r = api2.request("POST", "hosts", add_body(a, f2, "stolen", a.fingerprint))
        # The agent refuses its certificate in the handshake (502), or the
        # spent token / the claim (403, 409): any is a refusal, 201 is not.
        assert r.status in (403, 409, 502), f"a second manager was not refused: {r}"
        assert_error(r, r.status, {403: "forbidden", 409: "conflict",
                                   502: "host_unreachable"}[r.status])
        assert api2.ok("GET", "hosts", ok=(200,))["hosts"] == []
    finally:
        m2.stop()
    st = a.state()
    mgr_tp = cert_thumbprint(os.path.join(manager.dir, "tls", "manager.crt"))
    assert st["manager_thumbprint"] == mgr_tp.replace(":", "").lower(), st
    g = admin.ok("GET", f"hosts/{h['id']}", ok=(200,))
    assert g["connection"] == "connected", g


def test_manager_pins_the_agent(manager, admin, agents, folder):  # noqa: F811
    """The agent comes back with a new certificate (same state): the
    manager sees a disconnected host naming the certificate and sends it
    nothing."""
    a = agents.new("repinned")
    h = add_host(admin, a, folder, "h-repinned")
    old = a.fingerprint
    a.stop()
    shutil.rmtree(a.tls_dir)
    a.start()
    assert a.fingerprint != old and a.status == "managed", (a.fingerprint, a.status)
    seq = last_seq(admin)
    g = admin.ok("GET", f"hosts/{h['id']}", ok=(200,))
    assert g["connection"] == "disconnected" and "agent" not in g, g
    assert "certificate" in g["reason"], g
    assert g["thumbprint"] == old, "the manager changed its pin by itself"
    r = admin.request("PUT", f"hosts/{h['id']}/encryption-mode", {"enabled": True})
    assert r.status >= 400, f"the manager talked to an agent with another certificate: {r}"
    assert r.error and "certificate" in r.error["message"], r
    evs = new_events(admin, "host.encryption-mode", seq)
    assert [(e["result"], e["object"]) for e in evs] == [("failure", h["id"])], evs
    assert admin.ok("GET", f"hosts/{h['id']}", ok=(200,))["encryption_mode"] is False
    # The agent served nothing: its run has no line after "listening on",
    # and the mode the refused call asked for is not set.
    run = a.run_lines()
    assert run[-1].startswith("vmcrypt-hostd: listening on"), run
    assert a.state()["encryption_mode"] is False
    assert a.as_manager(manager).info()["encryption_mode"] is False


def test_encryption_mode_and_keys(manager, admin, host):  # noqa: F811
    a, h = host
    hid = h["id"]
    d = a.as_manager(manager)
    crypto = user_client(manager, admin, "hostcrypto", privileges=[REGISTER_HOST,
                                                                   "System.View"],
                         obj=hid, propagate=False)
    nca = user_client(manager, admin, "hostnca", role="NoCryptoAdmin")
    k1, k2, k3 = os.urandom(32), os.urandom(32), os.urandom(32)

    # Off: the agent holds no keys.
    assert d.info()["encryption_mode"] is False
    r = d.push([(PROV, "k1", k1)])
    assert_error(r, 409, "conflict")
    assert d.info()["keys"] == []

    # The No Cryptography Administrator may not enable it.
    r = nca.request("PUT", f"hosts/{hid}/encryption-mode", {"enabled": True})
    err = assert_error(r, 403, "forbidden")
    assert err.get("privilege") == REGISTER_HOST and REGISTER_HOST in err["message"], err
    assert d.info()["encryption_mode"] is False and a.state()["encryption_mode"] is False

    # A user with Cryptographer.RegisterHost on this host may.
    seq = last_seq(admin)
    r = crypto.request("PUT", f"hosts/{hid}/encryption-mode", {"enabled": True})
    assert r.status == 200 and r.json["encryption_mode"] is True, r
    assert d.info()["encryption_mode"] is True and a.state()["encryption_mode"] is True
    g = admin.ok("GET", f"hosts/{hid}", ok=(200,))
    assert g["encryption_mode"] is True and g["agent"]["encryption_mode"] is True, g
    evs = new_events(admin, "host.encryption-mode", seq)
    assert [(e["result"], e["object"], e["user"]) for e in evs] == \
        [("success", hid, "hostcrypto")], evs

    # On: keys are taken, listed by id only.
    r = d.push([(PROV, "k1", k1), (PROV, "k2", k2)])
    assert r.status == 200 and r.json == {"added": 2, "cached": 2}, r
    r = d.push([(PROV, "k2", k2), ("prov-b", "k1", k3)])
    assert r.status == 200 and r.json == {"added": 1, "cached": 3}, r
    want = {(PROV, "k1"), (PROV, "k2"), ("prov-b", "k1")}
    r = admin.request("GET", f"hosts/{hid}")
    assert r.status == 200 and key_ids(r.json["agent"]) == want, r
    assert all(set(k) == {"provider", "key_id"} for k in r.json["agent"]["keys"]), r
    for k in (k1, k2, k3):
        assert not any(f in r.body for f in secret_forms(k)), "a key in the manager's answer"
    info = d.request("GET", "/api/v1/host")
    assert key_ids(info.json) == want
    assert not any(f in info.body for k in (k1, k2, k3) for f in secret_forms(k))

    # A batch with one bad key stores nothing (neither its good entries).
    b64_31 = base64.b64encode(os.urandom(31)).decode()     # 44 characters, 31 bytes
    bad_batches = [
        [{"provider": PROV, "key_id": "n1", "key": base64.b64encode(k1).decode()},
         {"provider": PROV, "key_id": "n2", "key": b64_31}],
        [{"provider": PROV, "key_id": "n1", "key": base64.b64encode(k1).decode()},
         {"provider": PROV, "key_id": "n2", "key": "!" * 44}],
        [{"provider": PROV, "key_id": "n1", "key": base64.b64encode(k1).decode()},
         {"provider": PROV, "key_id": "n2", "key": base64.b64encode(k2).decode() + "A"}],
        [{"provider": PROV, "key_id": "n1", "key": base64.b64encode(k1).decode()},
         {"provider": PROV, "key_id": "", "key": base64.b64encode(k2).decode()}],
        [{"provider": PROV, "key_id": "n1", "key": base64.b64encode(k1).decode()},
         {"provider": "bad name/x", "key_id": "n2", "key": base64.b64encode(k2).decode()}],
    ]
    for batch in bad_batches:
        r = d.request("PUT", "/api/v1/keys", {"keys": batch})
        assert 400 <= r.status < 500, f"{batch[1]}: {r}"
        assert_error(r, r.status)
        assert key_ids(d.info()) == want, f"a refused batch changed the cache: {batch[1]}"
    # A full batch (256) is taken whole; 257 is refused whole.
    many = [(PROV, f"m{i}", os.urandom(32)) for i in range(257)]
    assert_error(d.push(many), 400, "bad_request")
    assert key_ids(d.info()) == want
    r = d.push(many[:256])
    assert r.status == 200 and r.json == {"added": 256, "cached": 259}, r

    # DELETE /api/v1/keys empties the cache; the mode stays on.
    r = d.request("DELETE", "/api/v1/keys")
    assert r.status == 204, r
    info = d.info()
    assert info["keys"] == [] and info["encryption_mode"] is True, info

    # Disabling the mode empties the cache, and keys are refused again.
    assert d.push([(PROV, "k1", k1)]).status == 200
    r = crypto.request("PUT", f"hosts/{hid}/encryption-mode", {"enabled": False})
    assert r.status == 200 and r.json["encryption_mode"] is False, r
    info = d.info()
    assert info["keys"] == [] and info["encryption_mode"] is False, info
    assert_error(d.push([(PROV, "k1", k1)]), 409, "conflict")
    g = admin.ok("GET", f"hosts/{hid}", ok=(200,))
    assert g["encryption_mode"] is False and g["agent"]["keys"] == [], g
    a.assert_alive()


def test_key_cache_is_memory_only(manager, admin, agents, folder):  # noqa: F811
    a = agents.new("memonly")
    h = add_host(admin, a, folder, "h-memonly")
    admin.ok("PUT", f"hosts/{h['id']}/encryption-mode", {"enabled": True}, ok=(200,))
    d = a.as_manager(manager)
    secret = os.urandom(32)
    r = d.push([(PROV, "kept-nowhere", secret)] +
               [(PROV, f"other{i}", os.urandom(32)) for i in range(3)])
    assert r.status == 200 and r.json["cached"] == 4, r
    assert (PROV, "kept-nowhere") in key_ids(d.info())
    a.stop()
    hits = find_secrets(a.dir, {"key": secret})
    assert hits == [], f"the key is on the agent's disk: {hits}"
    log = "\n".join(a.all_lines()).encode("utf-8", "replace")
    assert not any(f in log for f in secret_forms(secret)), "the key is in the agent's log"
    a.start()
    assert a.status == "managed", a.status
    assert not [ln for ln in a.run_lines() if "join token" in ln], a.run_lines()
    info = d.info()
    assert (info["claimed"], info["encryption_mode"], info["keys"], info["host_id"]) == \
        (True, True, [], a.host_id), info
    g = admin.ok("GET", f"hosts/{h['id']}", ok=(200,))
    assert g["connection"] == "connected" and g["agent"]["keys"] == [], g
    assert g["agent"]["encryption_mode"] is True, g


def test_removed_host_is_taken_back_as_it_is(manager, admin, agents, folder):  # noqa: F811
    """docs/API.md: an agent this manager already claimed is taken back.
    The host record must then say what the agent is (its encryption mode),
    not a default."""
    a = agents.new("takeback")
    h = add_host(admin, a, folder, "h-takeback")
    admin.ok("PUT", f"hosts/{h['id']}/encryption-mode", {"enabled": True}, ok=(200,))
    admin.ok("DELETE", f"inventory/{h['id']}", ok=(204,))
    assert_error(admin.request("GET", f"hosts/{h['id']}"), 404, "not_found")
    assert a.address not in hosts_by_address(admin)
    # Still pinned to this manager: the same manager takes it back.
    assert a.state()["manager_thumbprint"] is not None
    h2 = add_host(admin, a, folder, "h-takeback-2")
    g = admin.ok("GET", f"hosts/{h2['id']}", ok=(200,))
    assert g["connection"] == "connected" and g["agent"]["encryption_mode"] is True, g
    assert h2["encryption_mode"] == g["encryption_mode"] == g["agent"]["encryption_mode"], \
        (f"the manager records encryption_mode {g['encryption_mode']} for a host whose agent "
         f"has it {g['agent']['encryption_mode']}")


def test_tls_session_resumption(manager, admin, agents, folder):  # noqa: F811
    """A client offering a TLS session to resume gets an answer (resumed or
    after a full handshake) when it is the manager, and none when it is a
    client whose session predates the claim."""
    a = agents.new("resume")
    failures = []
    early = {}
    for tls in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        early[tls] = a.client(tls=tls)
        r = early[tls].request("GET", "/api/v1/host")
        assert_error(r, 403, "forbidden")         # not managed yet: nobody may read it
        assert early[tls].session is not None
    add_host(admin, a, folder, "h-resume")
    for tls in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        res = early[tls].attempt("GET", "/api/v1/host", resume=True)
        if not isinstance(res, Exception):
            failures.append(f"{tls.name}: a session from before the claim got an answer: {res}")
        d = a.as_manager(manager, tls=tls)
        assert d.info()["claimed"] is True
        res = d.attempt("GET", "/api/v1/host", resume=True)
        if isinstance(res, Exception) or res.status != 200:
            failures.append(f"{tls.name}: the manager offering its session got no answer: "
                            f"{res!r}")
    a.assert_alive()
    assert not failures, "\n".join(failures)


def test_locked_memory_limit_is_not_bad_input(manager, admin, agents, folder):  # noqa: F811
    """Under a small RLIMIT_MEMLOCK (an agent run as an ordinary user) the
    cache fills up: valid keys must then be refused as a lack of resources
    (5xx), not as bad input, and the refused batch stores nothing."""
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is missing")
    wrapper = ["prlimit", "--memlock=1048576:1048576"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("setpriv (util-linux) is missing: root ignores RLIMIT_MEMLOCK")
        wrapper = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"] + wrapper
    a = agents.new("memlock", wrapper=wrapper)
    h = add_host(admin, a, folder, "h-memlock")
    admin.ok("PUT", f"hosts/{h['id']}/encryption-mode", {"enabled": True}, ok=(200,))
    d = a.as_manager(manager)
    refused = None
    for b in range(64):                      # 1 MiB locks at most 256 pages
        r = d.push([(PROV, f"b{b}-{i}", os.urandom(32)) for i in range(32)])
        if r.status != 200:
            refused = r
            break
        cached = key_ids(d.info())
    if refused is None:
        pytest.skip("the memory lock limit did not bite (sanitizer builds make mlock a no-op)")
    a.assert_alive()
    assert key_ids(d.info()) == cached, "a refused batch changed the cache"
    err = assert_error(refused, refused.status)
    assert refused.status >= 500, f"valid keys refused as bad input: {refused}"
    assert "base64" not in err["message"], refused


class Tarpit:
    """A TCP listener that takes connections and never answers; connected
    is set when the first client is in."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.connected = threading.Event()
        self.conns = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        self.conns.append(c)
        self.connected.set()

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_unresponsive_agent_does_not_stall_the_manager(manager, admin, folder):  # noqa: F811
    """While the manager waits for an agent that does not answer, other
    clients are still served."""
    pit = Tarpit()
    other = manager.login()
    results = {}

    def add():
        results["add"] = admin.request("POST", "hosts", {
            "address": f"127.0.0.1:{pit.port}", "join_token": "x", "parent": folder,
            "name": "h-tarpit"})

    def session():
        results["other"] = other.request("GET", "session")

    t_add = threading.Thread(target=add, daemon=True)
    t_add.start()
    try:
        assert pit.connected.wait(15), "the manager never connected to the address"
        t_other = threading.Thread(target=session, daemon=True)
        t_other.start()
        t_other.join(2.5)
        stalled = t_other.is_alive()
    finally:
        pit.close()
    t_add.join(30)
    t_other.join(30)
    assert not stalled, "another client's GET /api/v1/session waited for the agent's answer"
    assert results["other"].status == 200, results["other"]
    assert_error(results["add"], 502, "host_unreachable")


BAD_INPUT = [
    # (method, path, raw body, expected status or None for any 4xx)
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": tru', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'[true]', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": true, "extra": 1}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": "yes"}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": 1}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": null}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": true, "enabled": false}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": true}\x00', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'{"enabled": true} {}', 400),
    ("PUT", "/api/v1/host/encryption-mode", b'\xff\xfe{"enabled": true}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": "x"}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": []}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [1]}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [{}]}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [{"provider": 5, "key_id": "a", "key": "' +
     b"A" * 43 + b'="}]}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [{"provider": "p", "key_id": "a", "key": "' +
     b"A" * 43 + b'=", "extra": true}]}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [{"provider": "p", "key_id": "a\xc3", "key": "' +
     b"A" * 43 + b'="}]}', 400),
    ("PUT", "/api/v1/keys", b'{"keys": [{"provider": "p", "key_id": "' + b"i" * 128 +
     b'", "key": "' + b"A" * 43 + b'="}]}', 400),
    ("PUT", "/api/v1/keys", b"[" * 5000 + b"]" * 5000, 400),
    ("POST", "/api/v1/host/claim", b'{"join_token": "x"}', 409),
    ("GET", "/api/v1/host", b'{"x": 1}', 400),
    ("DELETE", "/api/v1/keys", b'{}', 400),
    ("GET", "/api/v1/host?x=1", None, 400),
    ("GET", "/api/v1/nothing", None, 404),
    ("GET", "/api/v1/host/../host", None, None),
    ("POST", "/api/v1/host", None, 405),
]


def test_bad_input_over_the_pinned_channel(manager, host):  # noqa: F811
    a, _ = host
    d = a.as_manager(manager)
    before = d.info()
    failures = []
    for method, path, raw, status in BAD_INPUT:
        r = d.request(method, path, raw=raw)
        try:
            if status is None:
                assert 400 <= r.status < 500, r
            assert_error(r, status or r.status)
        except AssertionError as e:
            failures.append(f"{method} {path} {raw[:60] if raw else raw!r}: {e}")
    # A method outside the agent's set is refused by the HTTP layer itself.
    r = d.request("PATCH", "/api/v1/keys", raw=b"{}")
    if r.status not in (405, 501):
        failures.append(f"PATCH /api/v1/keys: {r}")
    # Over the API's limit (64 KiB) but read by the transport: 413 in JSON.
    big = b'{"keys": [' + (b'{"provider": "p", "key_id": "k", "key": "' + b"A" * 43 +
                           b'="},') * 1200 + b'{}]}'
    assert 64 * 1024 < len(big) < 1024 * 1024
    r = d.request("PUT", "/api/v1/keys", raw=big)
    try:
        assert_error(r, 413, "payload_too_large")
    except AssertionError as e:
        failures.append(f"PUT /api/v1/keys with {len(big)} bytes: {e}")
    # Over the transport's limit: refused (libevent's own 413).
    r = d.attempt("PUT", "/api/v1/keys", raw=b" " * (2 * 1024 * 1024))
    if not isinstance(r, Exception) and r.status != 413:
        failures.append(f"PUT /api/v1/keys with 2 MiB: {r}")
    a.assert_alive()
    after = d.info()
    assert after == before, "bad input changed the agent's state"
    assert not failures, f"{len(failures)} bad inputs not refused as documented:\n" + \
        "\n".join(failures)


def test_manager_restart_keeps_the_host(manager, admin, host):  # noqa: F811
    a, h = host
    before = hosts_by_address(admin)
    manager.restart()
    admin.token = manager.login().token      # sessions need not survive a restart
    after = hosts_by_address(admin)
    assert after == before, (before, after)
    assert after[a.address]["thumbprint"] == a.fingerprint
    g = admin.ok("GET", f"hosts/{h['id']}", ok=(200,))
    assert g["connection"] == "connected" and g["agent"]["host_id"] == a.host_id, g
    # The agent still takes only this manager (same certificate after the restart).
    assert a.as_manager(manager).info()["claimed"] is True
