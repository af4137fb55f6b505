# SPDX-License-Identifier: Apache-2.0
# Harness for the host agent's integration tests: the real vmcrypt-hostd on
# a private data directory and loopback port, a pinned HTTPS client of its
# API (with the manager's certificate, another one or none), throw-away
# client certificates, and a pool of agents stopped at the end of a module.
import base64
import datetime
import hashlib
import http.client
import json
import os
import re
import ssl

import pytest

from vc_manager import NO_BODY, Daemon, Resp, assert_error, build_dir, loads

HTTP_TIMEOUT = 15.0

TOKEN_RE = re.compile(r"^vmcrypt-hostd: first start: join token: (\S+) \(.*\)$")
HOST_RE = re.compile(r"^vmcrypt-hostd: host ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                     r"[0-9a-f]{12}), certificate SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$")
LISTEN_RE = re.compile(r"^vmcrypt-hostd: listening on https://127\.0\.0\.1:(\d+) \((.+)\)$")


def hostd_path():
    """The agent under test; a missing binary is a broken build (fail)."""
    path = os.path.join(build_dir(), "host", "vmcrypt-hostd")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing or not executable: build it with "
                    f"`ninja -C {build_dir()}` (or set VMCRYPT_BUILD)", pytrace=False)
    return path


def pretty(digest):
    """32 bytes -> "AA:BB:..." (how both daemons print thumbprints)."""
    return ":".join(f"{b:02X}" for b in digest)


def cert_thumbprint(pem_path):
    """SHA-256 of a PEM certificate's DER encoding, computed here (not
    taken from what a daemon printed)."""
    with open(pem_path, "rb") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read().decode())
    return pretty(hashlib.sha256(der).digest())


def make_cert(directory, name="other"):
    """A fresh self-signed EC P-256 client certificate: (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"vmcrypt-test-{name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    cpath = os.path.join(directory, f"{name}.crt")
    kpath = os.path.join(directory, f"{name}.key")
    with open(cpath, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(kpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cpath, kpath


class HostdError(RuntimeError):
    pass


class PinError(AssertionError):
    pass


class Hostd(Daemon):
    """One vmcrypt-hostd on data_dir (created by the agent, 0700; its
    parent must exist), listening on 127.0.0.1 and a port the kernel picks
    on the first start, the same port on later ones.
    stderr is read with a deadline until the "listening on" line, then
    drained by a thread into self.lines (all runs; self.runs[i] is where
    run i starts)."""

    def __init__(self, data_dir, wrapper=(), datastore=None, run_dir=None):
        super().__init__(data_dir)
        self.run_dir = run_dir          # None: <data dir>/run
        self.wrapper = list(wrapper)    # a command that runs the agent (limits)
        self.datastore = datastore      # None: <data dir>/datastore
        self.last_port = None       # kept by restarts
        self.token = None           # printed on the first start only
        self.host_id = None
        self.status = None          # "managed" or "waiting ..." of the current run

    # -- paths and state

    @property
    def tls_dir(self):
        return os.path.join(self.dir, "tls")

    @property
    def cert(self):
        return os.path.join(self.tls_dir, "host.crt")

    @property
    def state_path(self):
        return os.path.join(self.dir, "host.json")

    def state(self):
        with open(self.state_path, "rb") as f:
            return loads(f.read())

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    # -- life cycle

    def argv(self):
        # A restart keeps the address the manager knows the host by.
        return self.wrapper + [hostd_path(), "--data-dir", self.dir, "--listen",
                               f"127.0.0.1:{self.last_port or 0}"] + (
                                   ["--datastore", self.datastore] if self.datastore else []) + (
                                   ["--run-dir", self.run_dir] if self.run_dir else [])

    NAME = "vmcrypt-hostd"
    Error = HostdError
    FORGET_PROC = True

    def reset(self):
        self.port = self.fingerprint = self.status = None

    def check_started(self):
        if self.fingerprint is None:
            self.kill()
            raise HostdError("no 'host ..., certificate SHA-256' line before 'listening on':\n"
                             + self.stderr_text())

    def parse(self, text):
        m = TOKEN_RE.match(text)
        if m:
            self.token = m.group(1)
        m = HOST_RE.match(text)
        if m:
            self.host_id, self.fingerprint = m.group(1), m.group(2)
        m = LISTEN_RE.match(text)
        if m:
            self.port, self.status = int(m.group(1)), m.group(2)
            self.last_port = self.port

    # -- clients

    def client(self, cert=None, key=None, pin=True, tls=None):
        return AgentClient(self, cert, key, pin, tls)

    def as_manager(self, mgr, tls=None):
        """A client presenting the manager's own TLS identity."""
        return self.client(os.path.join(mgr.dir, "tls", "manager.crt"),
                           os.path.join(mgr.dir, "tls", "manager.key"), tls=tls)


class _Connection(http.client.HTTPSConnection):
    """HTTPSConnection that can offer a TLS session to resume."""

    def __init__(self, *args, session=None, **kw):
        super().__init__(*args, **kw)
        self._session = session

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, session=self._session)


class AgentClient:
    """HTTPS+JSON client of one agent. The agent's certificate is pinned
    to the thumbprint it printed (pin=True); cert/key: the client identity
    (None: no client certificate); tls: one ssl.TLSVersion only. One
    connection per request; the TLS session of the last one is kept in
    self.session (and whether it was a resumption in self.reused)."""

    def __init__(self, agent, cert=None, key=None, pin=True, tls=None):
        self.agent = agent
        self.pin = pin
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # Trust is the pin, checked below after the handshake.
        self.ctx.check_hostname = False
        self.ctx.verify_mode = ssl.CERT_NONE
        if tls is not None:
            self.ctx.minimum_version = self.ctx.maximum_version = tls
        if cert:
            self.ctx.load_cert_chain(cert, key)
        self.session = None
        self.reused = None

    def request(self, method, path, body=NO_BODY, raw=None, content_type="application/json",
                timeout=HTTP_TIMEOUT, resume=False):
        """resume: offer the session of the previous request."""
        data = raw if raw is not None else (None if body is NO_BODY else json.dumps(body).encode())
        hdrs = {"Content-Type": content_type} if data is not None and content_type else {}
        conn = _Connection("127.0.0.1", self.agent.port, context=self.ctx, timeout=timeout,
                           session=self.session if resume else None)
        try:
            conn.connect()
            if self.pin:
                der = conn.sock.getpeercert(binary_form=True)
                seen = pretty(hashlib.sha256(der).digest())
                if seen != self.agent.fingerprint:
                    raise PinError(f"the agent presented {seen}, not {self.agent.fingerprint}")
            sock = conn.sock
            try:
                conn.request(method, path, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLEOFError):
                # It may answer (413) and close before reading it all.
                pass
            r = conn.getresponse()
            # TLS 1.3 tickets come after the handshake: take the session
            # once the answer has started.
            self.session, self.reused = sock.session, sock.session_reused
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def attempt(self, method, path, body=NO_BODY, **kw):
        """A Resp, or the exception that stopped the exchange (handshake
        refused, reset, closed without an answer)."""
        try:
            return self.request(method, path, body, **kw)
        except (ssl.SSLError, ConnectionError, http.client.HTTPException, OSError) as e:
            return e

    def ok(self, method, path, body=NO_BODY, ok=(200,), **kw):
        r = self.request(method, path, body, **kw)
        assert r.status in ok, f"{method} {path} to the agent: {r}"
        return r.json

    def info(self):
        return self.ok("GET", "/api/v1/host")

    def push(self, keys):
        """PUT /api/v1/keys with [(provider, key_id, 32 bytes)]: the Resp."""
        return self.request("PUT", "/api/v1/keys", {"keys": [
            {"provider": p, "key_id": i, "key": base64.b64encode(k).decode()}
            for p, i, k in keys]})


def key_ids(agent_json):
    """The (provider, key_id) pairs an agent reports."""
    return {(k["provider"], k["key_id"]) for k in agent_json["keys"]}


class Agents:
    """Agents started on demand under one directory; all stopped (exit 0
    required) by stop_all."""

    def __init__(self, root):
        self.root = str(root)
        self.all = []

    def new(self, name=None, wrapper=(), datastore=None):
        a = Hostd(os.path.join(self.root, name or f"agent{len(self.all) + 1}"), wrapper,
                  datastore)
        self.all.append(a)
        a.start()
        assert a.token, "a first start must print a join token:\n" + a.stderr_text()
        return a

    def stop_all(self):
        errors = []
        for a in self.all:
            try:
                if a.proc is not None:
                    a.stop()
            except (AssertionError, HostdError) as e:
                errors.append(f"{a.dir}: {e}")
        assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    pool = Agents(tmp_path_factory.mktemp("agents"))
    try:
        yield pool
    finally:
        pool.stop_all()


def add_body(agent, parent, name, thumbprint=None, token=None):
    body = {"address": agent.address, "join_token": token or agent.token, "parent": parent,
            "name": name}
    if thumbprint is not None:
        body["thumbprint"] = thumbprint
    return body


def add_host(api, agent, parent, name):
    """Add an agent the documented way (two calls, the thumbprint the first
    one shows confirmed in the second, after checking it is what the agent
    printed): the 201 host object."""
    r = api.request("POST", "hosts", add_body(agent, parent, name))
    err = assert_error(r, 409, "thumbprint_required")
    assert err.get("thumbprint") == agent.fingerprint, (err, agent.fingerprint)
    r = api.request("POST", "hosts", add_body(agent, parent, name, err["thumbprint"]))
    assert r.status == 201, f"adding {agent.address}: {r}"
    return r.json
