# SPDX-License-Identifier: Apache-2.0
# vmcrypt's KMIP client, through the real `vmcrypt kmip` binary, against real
# PyKMIP servers (vc_kmip.py): every operation, interop with PyKMIP's own
# client in both directions, failover in a two-node cluster with bounded
# retries, every TLS refusal as one clear line, and key bytes kept off
# stdout, stderr and argv.
import json
import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from vc_kmip import unique_name
from vc_kmip import (black_hole, kmip_cluster, kmip_pki,  # noqa: F401 (pytest fixtures)
                     kmip_server, kmip_servers)
from vc_util import assert_cli_error, describe

# KMIP 1.4 section 9.1.3.2.17 (State) and 9.1.3.2.13 (Cryptographic Algorithm).
STATE = {1: "PRE_ACTIVE", 2: "ACTIVE", 3: "DEACTIVATED", 4: "COMPROMISED",
         5: "DESTROYED", 6: "DESTROYED_COMPROMISED"}
AES = 3
OUR_VERSIONS = ["1.4", "1.3", "1.2", "1.1", "1.0"]   # what the client offers


def endpoint(s):
    """HOST:PORT of a KmipServer or BlackHole."""
    return f"{s.host}:{s.port}"


class Cli:
    """`vmcrypt kmip CMD ... SERVER-OPTIONS` for one set of servers and one
    identity; trust is pki.ca unless ca= or pin= says otherwise. ca=False
    or identity=False leave those options out."""

    def __init__(self, vmcrypt, pki, *servers, identity=None, ca=None, pin=None,
                 key=None, extra=()):
        self.v = vmcrypt
        self.opts = [a for s in servers for a in ("--server", endpoint(s))]
        if identity is not False:
            ident = identity or pki.client
            self.opts += ["--cert", ident.cert, "--key", key or ident.key]
        if pin:
            self.opts += ["--pin", pin]
        elif ca is not False:
            self.opts += ["--ca", ca or pki.ca]
        self.opts += list(extra)
        self.transcript = []     # (argv, stdout, stderr) of every run

    def run(self, cmd, *args, pass_fds=(), input=None):
        argv = ["kmip", cmd, *[str(a) for a in args], *self.opts]
        t0 = time.monotonic()
        r = self.v.run(*argv, pass_fds=pass_fds, input=input, timeout=60)
        r.seconds = time.monotonic() - t0
        self.transcript.append((argv, r.stdout, r.stderr))
        return r

    def ok(self, cmd, *args, **kw):
        r = self.run(cmd, *args, **kw)
        assert r.returncode == 0 and r.stderr == b"", describe(r)
        return r

    def json(self, cmd, *args):
        r = self.ok(cmd, *args, "--json")
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError(f"--json printed invalid JSON ({e}): " + describe(r))

    def fail(self, cmd, *args, code=1, **kw):
        """Run a command that must fail: the one-line error."""
        return assert_cli_error(self.run(cmd, *args, **kw), code)

    def create(self, name=None):
        uid = self.json("create", *(["--name", name] if name else []))["uid"]
        assert isinstance(uid, str) and uid, uid
        return uid

    def get(self, uid, hex=False):
        """The bytes `get` writes to its --to-fd (a pipe); stdout must stay
        empty."""
        rfd, wfd = os.pipe()
        try:
            try:
                r = self.ok("get", uid, "--to-fd", wfd, *(["--hex"] if hex else []),
                            pass_fds=(wfd,))
            finally:
                os.close(wfd)
            assert r.stdout == b"", describe(r)
            return read_all(rfd)
        finally:
            os.close(rfd)

    def register(self, data, name=None):
        """Register key bytes given on a pipe (--key-fd)."""
        rfd, wfd = os.pipe()
        try:
            os.write(wfd, data)
            os.close(wfd)
            wfd = -1
            r = self.ok("register", "--key-fd", rfd, "--json",
                        *(["--name", name] if name else []), pass_fds=(rfd,))
        finally:
            os.close(rfd)
            if wfd >= 0:
                os.close(wfd)
        return json.loads(r.stdout)["uid"]

    def attrs(self, uid):
        return self.json("attributes", uid)


def read_all(fd):
    out = b""
    while True:
        b = os.read(fd, 4096)
        if not b:
            return out
        out += b


def sha256_pin_openssl(cert):
    """The certificate's SHA-256 as `openssl x509 -fingerprint` prints it
    (upper case, colons): what an administrator would paste."""
    r = subprocess.run(["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", cert],
                       stdout=subprocess.PIPE, check=True)
    m = re.search(rb"=([0-9A-F:]{95})\s*$", r.stdout)
    assert m, r.stdout
    return m.group(1).decode()


def refused(host, port):
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def cli(vmcrypt, kmip_server):
    return Cli(vmcrypt, kmip_server.pki, kmip_server)


# ------------------------------------------------------------ operations

def test_discover_versions(cli, kmip_server):
    got = cli.json("discover-versions")
    # PyKMIP's own client, offering the same versions, hears the same list.
    with kmip_server.client(kmip_version="1.4") as c:
        from kmip.core.messages.contents import ProtocolVersion
        offer = [ProtocolVersion(int(v[0]), int(v[2])) for v in OUR_VERSIONS]
        theirs = c.client.proxy.discover_versions(protocol_versions=offer)
        assert theirs.result_status.value.name == "SUCCESS"
        theirs = [f"{v.major}.{v.minor}" for v in theirs.protocol_versions]
    assert got["server_versions"] == theirs == OUR_VERSIONS, (got, theirs)
    assert got["negotiated"] == "1.4"
    text = cli.ok("discover-versions").stdout.decode()
    assert "negotiated: 1.4" in text.splitlines(), text


def test_query(cli, kmip_server):
    from kmip.core import enums
    got = cli.json("query")
    with kmip_server.client(kmip_version="1.4") as c:
        q = c.client.proxy.query(query_functions=[enums.QueryFunction.QUERY_OPERATIONS,
                                                  enums.QueryFunction.QUERY_SERVER_INFORMATION])
        assert q.result_status.value.name == "SUCCESS"
        theirs = {enums.Operation(o).name for o in q.operations}
        vendor = q.vendor_identification
    ours = {o.upper().replace(" ", "_") for o in got["operations"]}
    assert ours == theirs and len(got["operations"]) == len(theirs), (got, theirs)
    assert {"CREATE", "REGISTER", "GET", "LOCATE", "GET_ATTRIBUTES", "ACTIVATE", "REVOKE",
            "DESTROY", "QUERY", "DISCOVER_VERSIONS"} <= ours
    assert got["vendor"] == vendor and "PyKMIP" in vendor


def test_key_life_cycle(cli, kmip_server, tmp_path):
    name = unique_name("life")
    uid = cli.create(name)
    with kmip_server.client() as py:
        a = cli.attrs(uid)
        assert (a["uid"], a["name"], a["length"], a["algorithm"]) == (uid, name, 256, AES), a
        assert STATE[a["state"]] == py.state(uid) == "PRE_ACTIVE", a
        assert cli.json("locate", "--name", name)["uids"] == py.locate(name) == [uid]
        assert cli.ok("locate", "--name", name).stdout.decode().split() == [uid]

        cli.ok("activate", uid)
        assert STATE[cli.attrs(uid)["state"]] == py.state(uid) == "ACTIVE"

        key = cli.get(uid)
        assert len(key) == 32 and key == py.get_key(uid)
        assert cli.get(uid, hex=True) == key.hex().encode() + b"\n"
        path = tmp_path / "key.out"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            r = cli.ok("get", uid, "--to-fd", fd, pass_fds=(fd,))
        finally:
            os.close(fd)
        assert r.stdout == b"" and path.read_bytes() == key

        # PyKMIP refuses to destroy an active key: a clean error, nothing lost.
        line = cli.fail("destroy", uid)
        assert endpoint(kmip_server) in line, line
        assert cli.get(uid) == key

        cli.ok("revoke", uid)
        assert STATE[cli.attrs(uid)["state"]] == py.state(uid) == "DEACTIVATED"
        cli.ok("destroy", uid)

    line = cli.fail("get", uid, "--to-fd", 1)
    assert line.startswith(f"vmcrypt: key server {endpoint(kmip_server)}: Item Not Found"), line
    assert uid in line, line
    cli.fail("attributes", uid)
    assert cli.json("locate", "--name", name)["uids"] == []


def test_revoke_compromised(cli, kmip_server):
    uid = cli.create()
    cli.ok("activate", uid)
    cli.ok("revoke", uid, "--compromised")
    with kmip_server.client() as py:
        assert STATE[cli.attrs(uid)["state"]] == py.state(uid) == "COMPROMISED"
    cli.ok("destroy", uid)
    cli.fail("get", uid, "--to-fd", 1)


def test_register_and_get_back(cli, kmip_server):
    key = os.urandom(32)
    name = unique_name("reg")
    uid = cli.register(key, name)
    assert cli.get(uid) == key
    a = cli.attrs(uid)
    assert (a["name"], a["length"], a["algorithm"]) == (name, 256, AES), a
    assert cli.json("locate", "--name", name)["uids"] == [uid]
    # 64 hex digits on the fd are the same key.
    key2 = os.urandom(32)
    uid2 = cli.register(key2.hex().encode() + b"\n")
    assert uid2 != uid and cli.get(uid2) == key2
    # A key of the wrong size is refused before anything is registered.
    rfd, wfd = os.pipe()
    os.write(wfd, key[:31])
    os.close(wfd)
    try:
        line = cli.fail("register", "--key-fd", rfd, "--name", name, pass_fds=(rfd,))
    finally:
        os.close(rfd)
    assert "--key-fd" in line, line
    assert cli.json("locate", "--name", name)["uids"] == [uid]


def test_add_and_modify_attribute_report_the_servers_error(cli, kmip_server):
    uid = cli.create()
    # PyKMIP 0.10 cannot parse Add Attribute: it answers Invalid Message.
    line = cli.fail("add-attribute", uid, "x-vmcrypt-test", "value")
    assert line.startswith(f"vmcrypt: key server {endpoint(kmip_server)}: Invalid Message"), line
    line = cli.fail("modify-attribute", uid, "x-vmcrypt-test", "value")
    assert line.startswith(f"vmcrypt: key server {endpoint(kmip_server)}: "), line
    # The server and the key are unharmed.
    assert len(cli.get(uid)) == 32


# --------------------------------------------------------------- interop

def test_pykmip_creates_vmcrypt_reads(cli, kmip_server):
    name = unique_name("py")
    with kmip_server.client() as py:
        uid = py.create_key(name)
        key = py.get_key(uid)
        known = bytes(range(32))
        kuid = py.register_key(known, unique_name("pyreg"))
    assert cli.get(uid) == key
    assert cli.get(kuid) == known
    assert cli.json("locate", "--name", name)["uids"] == [uid]
    assert cli.attrs(uid)["name"] == name


def test_vmcrypt_creates_pykmip_reads(cli, kmip_server):
    name = unique_name("ours")
    uid = cli.create(name)
    key = cli.get(uid)
    known = os.urandom(32)
    kuid = cli.register(known, unique_name("ourreg"))
    with kmip_server.client() as py:
        assert py.get_key(uid) == key
        assert py.get_key(kuid) == known
        assert py.locate(name) == [uid]
    # And the key PyKMIP activates is the one we read as active.
    with kmip_server.client() as py:
        py.activate(uid)
    assert STATE[cli.attrs(uid)["state"]] == "ACTIVE"


# --------------------------------------------------------------- secrets

def test_key_bytes_never_on_stdout_stderr_or_argv(cli, kmip_server):
    key = os.urandom(32)
    name = unique_name("secret")
    uid = cli.register(key, name)
    assert cli.get(uid) == key and cli.get(uid, hex=True) == key.hex().encode() + b"\n"
    for cmd in (["attributes", uid], ["attributes", uid, "--json"], ["locate", "--name", name],
                ["activate", uid], ["discover-versions"], ["query"]):
        cli.ok(*cmd)
    # get without --to-fd is a usage error, and prints no key.
    assert_cli_error(cli.run("get", uid), 2)
    assert_cli_error(cli.run("get", uid, "--hex"), 2)
    cli.ok("revoke", uid)
    cli.ok("destroy", uid)
    cli.fail("get", uid, "--to-fd", 1)

    forms = [key, key.hex().encode(), key.hex().upper().encode()]
    assert len(cli.transcript) >= 12
    for argv, out, err in cli.transcript:
        joined = " ".join(argv).encode()
        for f in forms:
            assert f not in out and f not in err and f not in joined, \
                f"key material in the output of `vmcrypt {' '.join(argv)}`"


def test_usage_errors(cli, vmcrypt, kmip_server):
    pki = kmip_server.pki
    assert_cli_error(cli.run("get", "1"), 2)
    assert_cli_error(cli.run("register"), 2)
    assert_cli_error(cli.run("frobnicate"), 2)
    assert_cli_error(cli.run("create", "extra"), 2)
    assert_cli_error(Cli(vmcrypt, pki).run("create"), 2)                 # no --server
    assert_cli_error(Cli(vmcrypt, pki, kmip_server, ca=False).run("create"), 2)
    assert_cli_error(cli.run("create", "--timeout", "0"), 2)


# ------------------------------------------------------------------- TLS

def test_no_client_certificate_is_a_usage_error(vmcrypt, kmip_server):
    pki = kmip_server.pki
    line = assert_cli_error(Cli(vmcrypt, pki, kmip_server, identity=False).run("create"), 2)
    assert "--cert" in line, line
    only_cert = Cli(vmcrypt, pki, kmip_server, identity=False,
                    extra=["--cert", pki.client.cert])
    assert_cli_error(only_cert.run("create"), 2)


@pytest.mark.parametrize("case, expect", [
    ("wrong_ca", "server certificate not trusted"),
    ("wrong_ca_client", "unknown ca"),
    ("expired_client", "certificate expired"),
    ("noeku_client", "Authentication Not Successful"),
    ("wrong_pin", "does not match the pinned SHA-256"),
    ("malformed_pin", "64 hex digits"),
    ("key_mode_0644", "mode 644"),
])
def test_tls_refusals(vmcrypt, kmip_server, tmp_path, case, expect):
    srv, pki = kmip_server, kmip_server.pki
    # Positive control: the same server, the good options.
    good = Cli(vmcrypt, pki, srv)
    assert len(good.get(good.create())) == 32

    kw = {}
    if case == "wrong_ca":
        kw["ca"] = pki.wrong_ca
    elif case in ("wrong_ca_client", "expired_client", "noeku_client"):
        kw["identity"] = getattr(pki, case)
    elif case == "wrong_pin":
        kw["pin"] = sha256_pin_openssl(pki.mismatch_server.cert)
    elif case == "malformed_pin":
        kw["pin"] = sha256_pin_openssl(pki.server.cert)[:-3]
    elif case == "key_mode_0644":
        k = tmp_path / "client.key"
        shutil.copyfile(pki.client.key, k)
        os.chmod(k, 0o644)
        kw["key"] = str(k)
    bad = Cli(vmcrypt, pki, srv, **kw)
    name = unique_name("refused")
    line = bad.fail("create", "--name", name)
    assert expect in line and endpoint(srv) in line, line
    assert good.json("locate", "--name", name)["uids"] == []


def test_pin_replaces_the_ca(vmcrypt, kmip_server):
    srv, pki = kmip_server, kmip_server.pki
    for pin in (sha256_pin_openssl(pki.server.cert),
                sha256_pin_openssl(pki.server.cert).replace(":", "").lower()):
        c = Cli(vmcrypt, pki, srv, pin=pin)
        assert "--ca" not in c.opts
        uid = c.create()
        with srv.client() as py:
            assert c.get(uid) == py.get_key(uid)


def test_pin_refused_client_certificate_is_not_blamed_on_the_server(vmcrypt, kmip_server):
    """With --pin the chain of the server is not verified; when the server
    refuses our certificate the error must say so, not claim that the
    server's certificate is untrusted."""
    pki = kmip_server.pki
    c = Cli(vmcrypt, pki, kmip_server, identity=pki.wrong_ca_client,
            pin=sha256_pin_openssl(pki.server.cert))
    line = c.fail("create")
    assert "unknown ca" in line and "server certificate not trusted" not in line, line


def test_expired_server_certificate(vmcrypt, kmip_servers):
    pki = kmip_servers.pki
    srv = kmip_servers.server(cert=pki.expired_server)
    line = Cli(vmcrypt, pki, srv).fail("create")
    assert "certificate has expired" in line and endpoint(srv) in line, line


def test_server_name_mismatch(vmcrypt, kmip_servers, kmip_server):
    pki = kmip_servers.pki
    srv = kmip_servers.server(cert=pki.mismatch_server)
    line = Cli(vmcrypt, pki, srv).fail("create")
    assert "mismatch" in line and endpoint(srv) in line, line
    # Control: a name that is not in the SAN either still fails...
    Cli(vmcrypt, pki, srv, extra=["--server-name", "localhost"]).fail("create")
    # ...and the names the certificate has (SAN DNS and IP) pass.
    for sname in ("kmip.invalid", "127.0.0.9"):
        c = Cli(vmcrypt, pki, srv, extra=["--server-name", sname])
        assert len(c.get(c.create())) == 32
    # --server-name really replaces the host: the good server fails with it.
    line = Cli(vmcrypt, pki, kmip_server, extra=["--server-name", "kmip.invalid"]).fail("create")
    assert "mismatch" in line, line


def test_black_hole_times_out_within_the_bound(vmcrypt, kmip_pki, black_hole):
    c = Cli(vmcrypt, kmip_pki, black_hole, extra=["--timeout", "1000"])
    r = c.run("create")
    line = assert_cli_error(r, 1)
    assert "timed out" in line and endpoint(black_hole) in line, line
    assert 0.9 <= r.seconds < 2.5, f"{r.seconds:.2f} s: {line}"
    assert black_hole.accepted == 1
    assert black_hole.first_bytes[0][:1] == b"\x16"    # it got as far as a ClientHello


# ------------------------------------------------------------- failover

def health_lines(r, servers):
    """{endpoint: status text} from `health`, one line per server."""
    out = {}
    for line in r.stdout.decode().splitlines():
        for s in servers:
            if line.startswith(endpoint(s) + " "):
                assert endpoint(s) not in out, r.stdout
                out[endpoint(s)] = line[len(endpoint(s)):].strip()
    assert sorted(out) == sorted(endpoint(s) for s in servers), describe(r)
    return out


def test_health_reports_each_server(vmcrypt, kmip_cluster):
    a, b = kmip_cluster
    cli = Cli(vmcrypt, a.pki, a, b)
    r = cli.run("health")
    assert r.returncode == 0 and r.stderr == b"", describe(r)
    assert health_lines(r, (a, b)) == {a.endpoint: "ok", b.endpoint: "ok"}
    assert len(r.stdout.decode().splitlines()) == 2, \
        "health prints one line per server and nothing else: " + describe(r)
    j = cli.json("health")
    assert [(e["server"], e["ok"]) for e in j] == [(a.endpoint, True), (b.endpoint, True)], j


def test_failover_when_the_first_server_is_dead(vmcrypt, kmip_cluster):
    a, b = kmip_cluster
    cli = Cli(vmcrypt, a.pki, a, b, extra=["--timeout", "2000"])
    assert health_lines(cli.ok("health"), (a, b)) == {a.endpoint: "ok", b.endpoint: "ok"}
    try:
        a.kill()
        assert refused(a.host, a.port)
        name = unique_name("failover")
        r = cli.ok("create", "--name", name, "--json")
        uid = json.loads(r.stdout)["uid"]
        assert r.seconds < 1.5, f"create took {r.seconds:.2f} s with a refusing first server"
        t0 = time.monotonic()
        key = cli.get(uid)
        assert time.monotonic() - t0 < 1.5
        with b.client() as py:
            assert py.get_key(uid) == key and py.locate(name) == [uid]

        r = cli.run("health")
        assert r.returncode == 1, describe(r)
        h = health_lines(r, (a, b))
        assert h[b.endpoint] == "ok", h
        assert h[a.endpoint] != "ok" and "refused" in h[a.endpoint], h
    finally:
        if not a.running:
            a.start()
    assert len(cli.get(uid)) == 32


def test_failover_past_a_silent_server_costs_one_timeout(vmcrypt, kmip_cluster, black_hole):
    a, b = kmip_cluster
    cli = Cli(vmcrypt, a.pki, black_hole, b, extra=["--timeout", "1000"])
    r = cli.ok("create", "--json")
    uid = json.loads(r.stdout)["uid"]
    assert 0.9 <= r.seconds < 3.0, f"create took {r.seconds:.2f} s"
    assert black_hole.accepted == 1, "one attempt on the silent server, no more"
    t0 = time.monotonic()
    key = cli.get(uid)
    took = time.monotonic() - t0
    assert 0.9 <= took < 3.0, f"get took {took:.2f} s"
    assert black_hole.accepted == 2
    # Served by the second node: the first node (same database) agrees.
    with a.client() as py:
        assert py.get_key(uid) == key


def test_server_error_is_not_retried_on_the_next_server(vmcrypt, kmip_cluster):
    """Item Not Found comes from a server that answered: final, named after
    that server, not a failover."""
    a, b = kmip_cluster
    line = Cli(vmcrypt, a.pki, a, b).fail("get", "999999", "--to-fd", 1)
    assert line.startswith(f"vmcrypt: key server {a.endpoint}: Item Not Found"), line


def _creates_logged(server):
    with open(server.log, errors="replace") as f:
        return f.read().count("Processing operation: Create")


def test_failover_mid_run_costs_no_failed_operation(vmcrypt, kmip_cluster):
    """A long-lived client (the bench: create+get pairs on one kept
    connection) loses its first server in the middle of the run: it moves
    to the second within one bounded retry and no pair fails."""
    a, b = kmip_cluster
    cli = Cli(vmcrypt, a.pki, a, b, extra=["--timeout", "2000"])
    before, before_b = _creates_logged(a), _creates_logged(b)
    proc = vmcrypt.popen("kmip", "bench", "150", "--json", *cli.opts)
    try:
        # Wait (bounded, polling the server's own log) until the run is
        # well under way on the first server, then kill it.
        deadline = time.monotonic() + 30
        while _creates_logged(a) < before + 20:
            assert proc.poll() is None, "the bench ended before the first server was killed"
            assert time.monotonic() < deadline, "the bench never reached the first server"
            time.sleep(0.05)
        a.kill()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        if not a.running:
            a.start()
    assert proc.returncode == 0, (out, err)
    res = json.loads(out)
    assert res["pairs"] == 150
    # The pairs after the kill went to the second server.
    assert _creates_logged(b) > before_b


def test_batched_create_and_get(vmcrypt, kmip_cluster):
    """Create and Get in one batched request (ID Placeholder) work against
    the real server, and leave real keys behind."""
    a, _ = kmip_cluster
    cli = Cli(vmcrypt, a.pki, a)
    before = _creates_logged(a)
    res = cli.json("bench", "3", "--batched")
    assert res["pairs"] == 3 and res["seconds"] > 0
    assert _creates_logged(a) == before + 3


def test_provider_create_returns_an_active_key(vmcrypt, kmip_cluster):
    """`create --to-fd`: the key-provider path (Create and Get batched,
    then Activate) returns the id on stdout and the key on the fd; PyKMIP
    sees the same bytes and an Active key; the key is nowhere else."""
    a, b = kmip_cluster
    cli = Cli(vmcrypt, a.pki, a, b)
    name = unique_name("provider")
    rfd, wfd = os.pipe()
    try:
        try:
            r = cli.ok("create", "--name", name, "--to-fd", wfd, "--json", pass_fds=(wfd,))
        finally:
            os.close(wfd)
        key = read_all(rfd)
    finally:
        os.close(rfd)
    uid = json.loads(r.stdout)["uid"]
    assert len(key) == 32
    assert key not in r.stdout and key.hex().encode() not in r.stdout.lower()
    with b.client() as py:
        assert py.get_key(uid) == key
        assert py.locate(name) == [uid]
        assert STATE.get(py.state(uid), py.state(uid)) in ("ACTIVE", 2), py.state(uid)
    assert cli.get(uid) == key
