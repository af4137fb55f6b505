# SPDX-License-Identifier: Apache-2.0
# Proves the KMIP test harness (vc_kmip.py) before vmcrypt's own client
# relies on it: the PKI says what it claims, a PyKMIP server serves PyKMIP's
# client, a two-node cluster shares keys and survives a killed node, every
# negative certificate is refused where it should be, and the black hole
# never answers.
import datetime
import os
import socket
import ssl
import stat
import subprocess
import time

import pytest

from vc_kmip import (CLIENT2_CN, CLIENT_CN, BlackHole, KmipServer,
                     KmipServerError, PyKmip, client_context, free_port,
                     kmip_failure, make_pki, require_openssl, tls_connect,
                     unique_name)
from vc_kmip import (black_hole, kmip_cluster, kmip_pki,  # noqa: F401 (pytest fixtures)
                     kmip_server, kmip_servers)

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

CLIENT_CERTS = ("client", "client2", "wrong_ca_client", "expired_client", "noeku_client")
SERVER_CERTS = ("server", "expired_server", "future_server", "mismatch_server")


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def cn(cert):
    return [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def eku(cert):
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def san(cert):
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ({str(ip) for ip in ext.get_values_for_type(x509.IPAddress)},
            set(ext.get_values_for_type(x509.DNSName)))


def openssl_verify(ca, cert):
    """`openssl verify` of cert against ca: (ok, output)."""
    r = subprocess.run(["openssl", "verify", "-CAfile", ca, cert],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode == 0, r.stdout.decode(errors="replace")


def refused(host, port):
    """True when nothing listens on host:port any more."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def expect_failure(fn, reason):
    """Run fn, which must fail with a KMIP Operation Failed carrying
    `reason` (a ResultReason name)."""
    with pytest.raises(Exception) as ei:
        fn()
    f = kmip_failure(ei.value)
    assert f is not None, f"expected a KMIP failure, got {ei.value!r}"
    assert f[0] == "OPERATION_FAILED" and f[1] == reason, f
    return f


# ----------------------------------------------------------------- PKI

def check_key_file(path, kind):
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600, f"{path} has mode {oct(st.st_mode)}"
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    with open(path, "rb") as f:
        key = load_pem_private_key(f.read(), None)
    if kind == "ec":
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1", path
    else:
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048, path


def test_pki_material(kmip_pki):
    pki = kmip_pki
    now = datetime.datetime.utcnow()
    assert stat.S_IMODE(os.stat(pki.dir).st_mode) == 0o700
    for key in [pki.ca_key, pki.wrong_ca_key] + \
            [getattr(pki, n).key for n in CLIENT_CERTS + SERVER_CERTS]:
        check_key_file(key, "ec")

    # Chains, checked by openssl itself rather than by the code that made them.
    for n in ("server", "client", "client2", "noeku_client", "mismatch_server"):
        ok, out = openssl_verify(pki.ca, getattr(pki, n).cert)
        assert ok, f"{n}: {out}"
    ok, out = openssl_verify(pki.ca, pki.wrong_ca_client.cert)
    assert not ok and "unable to get local issuer certificate" in out, out
    ok, out = openssl_verify(pki.wrong_ca, pki.wrong_ca_client.cert)
    assert ok, out
    for n in ("expired_client", "expired_server"):
        ok, out = openssl_verify(pki.ca, getattr(pki, n).cert)
        assert not ok and "certificate has expired" in out, f"{n}: {out}"
    ok, out = openssl_verify(pki.ca, pki.future_server.cert)
    assert not ok and "certificate is not yet valid" in out, out

    server = load_cert(pki.server.cert)
    assert cn(server) == ["127.0.0.1"]
    assert san(server) == ({"127.0.0.1", "127.0.0.2", "127.0.0.3"}, {"localhost"})
    assert eku(server) == {ExtendedKeyUsageOID.SERVER_AUTH}
    for n in ("expired_server", "future_server"):
        c = load_cert(getattr(pki, n).cert)
        assert san(c) == san(server) and eku(c) == eku(server), n
    mismatch = load_cert(pki.mismatch_server.cert)
    ips, dns = san(mismatch)
    assert not ips & {"127.0.0.1", "127.0.0.2", "127.0.0.3"} and "localhost" not in dns
    assert "127.0.0.1" not in cn(mismatch)
    assert eku(mismatch) == {ExtendedKeyUsageOID.SERVER_AUTH}

    # Each negative client differs from `client` only by its defect.
    for n in ("client", "wrong_ca_client", "expired_client", "noeku_client"):
        assert cn(load_cert(getattr(pki, n).cert)) == [CLIENT_CN], n
    assert cn(load_cert(pki.client2.cert)) == [CLIENT2_CN]
    for n in ("client", "client2", "wrong_ca_client", "expired_client"):
        assert eku(load_cert(getattr(pki, n).cert)) == {ExtendedKeyUsageOID.CLIENT_AUTH}, n
    assert eku(load_cert(pki.noeku_client.cert)) is None

    for n in ("expired_client", "expired_server"):
        assert load_cert(getattr(pki, n).cert).not_valid_after < now, n
    assert load_cert(pki.future_server.cert).not_valid_before > now
    for n in ("server", "client", "mismatch_server"):
        c = load_cert(getattr(pki, n).cert)
        assert c.not_valid_before < now < c.not_valid_after, n


def test_pki_rsa(tmp_path):
    require_openssl()
    pki = make_pki(tmp_path / "rsa", kind="rsa")
    for n in ("server", "client", "expired_client"):
        check_key_file(getattr(pki, n).key, "rsa")
    ok, out = openssl_verify(pki.ca, pki.server.cert)
    assert ok, out
    with pytest.raises(ValueError):
        make_pki(tmp_path / "dsa", kind="dsa")


# -------------------------------------------------------- single server

def test_server_serves_pykmip_client(kmip_server):
    srv = kmip_server
    assert srv.running and srv.host == "127.0.0.1" and 0 < srv.port < 65535
    assert os.path.isfile(srv.log)
    name = unique_name()
    with srv.client() as c:
        assert c.peer == srv.address
        uid = c.create_key(name)
        key = c.get_key(uid)
        assert len(key) == 32
        assert c.get_key(uid) == key
        assert c.locate(name) == [uid]
        assert c.state(uid) == "PRE_ACTIVE"
        c.activate(uid)
        assert c.state(uid) == "ACTIVE"
        c.destroy(uid)
        expect_failure(lambda: c.get_key(uid), "ITEM_NOT_FOUND")
        assert c.locate(name) == []

        # A known answer: registered bytes come back unchanged.
        known = bytes(range(32))
        kname = unique_name("registered")
        kuid = c.register_key(known, kname)
        assert c.get_key(kuid) == known
        assert c.locate(kname) == [kuid]
        other = c.create_key(unique_name())
        assert other != kuid and c.get_key(other) != known

    # A fresh connection sees the same store; another identity does not
    # (PyKMIP's default policy: only the owner, i.e. the creator's CN).
    with srv.client() as c:
        assert c.get_key(kuid) == known
    with srv.client(srv.pki.client2) as c2:
        expect_failure(lambda: c2.get_key(kuid), "PERMISSION_DENIED")


def test_server_tls_facts(kmip_server):
    """What a C client may rely on: TLS 1.2 only, GCM with the EC PKI."""
    srv, pki = kmip_server, kmip_server.pki
    ctx = client_context(pki)
    ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    with tls_connect(srv.host, srv.port, ctx) as s:
        assert s.version() == "TLSv1.2"
        assert s.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
    ctx13 = client_context(pki)
    ctx13.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):
        tls_connect(srv.host, srv.port, ctx13).close()
    # localhost is in the SAN as well
    with tls_connect(srv.host, srv.port, client_context(pki), server_hostname="localhost"):
        pass


@pytest.mark.parametrize("cert, alert", [
    ("wrong_ca_client", "TLSV1_ALERT_UNKNOWN_CA"),
    ("expired_client", "SSLV3_ALERT_CERTIFICATE_EXPIRED"),
    (None, "SSLV3_ALERT_HANDSHAKE_FAILURE"),
])
def test_bad_client_certificate_fails_handshake(kmip_server, cert, alert):
    srv, pki = kmip_server, kmip_server.pki
    # Positive control through the same code path, so the failure below can
    # only come from the certificate.
    with tls_connect(srv.host, srv.port, client_context(pki)) as s:
        assert s.version() == "TLSv1.2"

    if cert is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(pki.ca)
    else:
        ctx = client_context(pki, getattr(pki, cert))
    with pytest.raises(ssl.SSLError) as ei:
        tls_connect(srv.host, srv.port, ctx).close()
    assert ei.value.reason == alert, repr(ei.value)

    if cert is not None:
        # PyKMIP's client is refused the same way.
        with pytest.raises(ssl.SSLError) as ei:
            with srv.client(getattr(pki, cert)) as c:
                c.create_key()
        assert ei.value.reason == alert, repr(ei.value)

    with srv.client() as c:     # and the server still serves
        assert len(c.get_key(c.create_key())) == 32


def test_client_certificate_without_eku_is_refused(kmip_server):
    srv, pki = kmip_server, kmip_server.pki
    # The TLS layer accepts it...
    with tls_connect(srv.host, srv.port, client_context(pki, pki.noeku_client)) as s:
        assert s.version() == "TLSv1.2"
    # ...but every KMIP request is refused.
    name = unique_name("noeku")
    with srv.client(pki.noeku_client) as c:
        f = expect_failure(lambda: c.create_key(name), "AUTHENTICATION_NOT_SUCCESSFUL")
        assert "client certificate" in f[2]
        expect_failure(lambda: c.locate(name), "AUTHENTICATION_NOT_SUCCESSFUL")
    with srv.client() as c:     # same CN with EKU: fine, and nothing was created
        assert c.locate(name) == []
        assert len(c.get_key(c.create_key(name))) == 32


@pytest.mark.parametrize("which, code, text", [
    ("expired_server", 10, "certificate has expired"),
    ("future_server", 9, "certificate is not yet valid"),
    ("mismatch_server", 64, "IP address mismatch"),
])
def test_bad_server_certificate_fails_verification(kmip_server, kmip_servers, which, code, text):
    pki = kmip_server.pki
    # The verifying client accepts the good server...
    with tls_connect(kmip_server.host, kmip_server.port, client_context(pki)):
        pass
    bad = kmip_servers.server(cert=getattr(pki, which))
    # ...and rejects this one, which otherwise works (no verification).
    with pytest.raises(ssl.SSLCertVerificationError) as ei:
        tls_connect(bad.host, bad.port, client_context(pki)).close()
    assert ei.value.verify_code == code and text in ei.value.verify_message, repr(ei.value)
    with tls_connect(bad.host, bad.port, client_context(pki, verify=False)) as s:
        assert s.version() == "TLSv1.2"
    # PyKMIP's client checks chain and dates but not the name.
    if which == "mismatch_server":
        with bad.client() as c:
            assert len(c.get_key(c.create_key())) == 32
    else:
        with pytest.raises(ssl.SSLCertVerificationError):
            bad.client().open()

    bad.stop()
    assert bad.last_stop == "signal", bad.describe()
    assert bad.processes() == [] and refused(bad.host, bad.port)


def test_server_retries_a_taken_port(kmip_servers, monkeypatch):
    import vc_kmip
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        # The picked port is taken before the server binds it: a retry.
        picks = iter([busy])
        real = vc_kmip.free_port
        monkeypatch.setattr(vc_kmip, "free_port", lambda host: next(picks, None) or real(host))
        srv = kmip_servers.server()
        assert srv.port != busy and srv.attempts == 2
        with srv.client() as c:
            assert len(c.get_key(c.create_key())) == 32
        # A port the caller fixed is not replaced: a clear error instead.
        t0 = time.monotonic()
        with pytest.raises(KmipServerError, match="failed during start-up"):
            kmip_servers.server(port=busy)
        assert time.monotonic() - t0 < 20
    finally:
        taken.close()


# ------------------------------------------------------------- cluster

def test_cluster_nodes_share_keys(kmip_cluster):
    a, b = kmip_cluster
    assert a.database == b.database and a.address != b.address
    assert (a.host, b.host) == ("127.0.0.1", "127.0.0.2")
    name_a, name_b = unique_name("on-a"), unique_name("on-b")
    with a.client() as ca, b.client() as cb:
        assert ca.peer == a.address and cb.peer == b.address
        uid_a = ca.create_key(name_a)
        assert cb.get_key(uid_a) == ca.get_key(uid_a)
        assert cb.locate(name_a) == [uid_a]
        cb.activate(uid_a)
        assert ca.state(uid_a) == "ACTIVE"

        uid_b = cb.create_key(name_b)
        assert uid_b != uid_a
        assert ca.get_key(uid_b) == cb.get_key(uid_b)
        assert ca.locate(name_b) == [uid_b]

        cb.destroy(uid_a)
        expect_failure(lambda: ca.get_key(uid_a), "ITEM_NOT_FOUND")
        assert ca.locate(name_a) == []


def test_cluster_survives_a_killed_node(kmip_cluster):
    a, b = kmip_cluster
    with a.client() as ca:
        uid = ca.create_key(unique_name())
        key = ca.get_key(uid)
    endpoint = a.address
    try:
        a.kill()
        assert not a.running and a.processes() == []
        assert refused(*endpoint)
        with pytest.raises(ConnectionRefusedError):
            a.client().open()
        with b.client() as cb:
            assert cb.get_key(uid) == key
            uid2 = cb.create_key(unique_name())
            key2 = cb.get_key(uid2)
    finally:
        if not a.running:
            a.start()
    # The restarted node is the same endpoint and sees what happened meanwhile.
    assert a.address == endpoint
    with a.client() as ca:
        assert ca.get_key(uid) == key and ca.get_key(uid2) == key2


# ---------------------------------------------------------- black hole

def test_black_hole_accepts_and_never_answers(black_hole, kmip_pki):
    bh = black_hole
    with socket.create_connection(bh.address, timeout=2) as s:
        assert bh.wait_for(1) == 1
        s.sendall(b"hello")
        assert bh.wait_received(0, 5) == b"hello"
        s.settimeout(0.3)
        with pytest.raises(TimeoutError):
            s.recv(1)     # b"" would mean closed; an answer would be data

        # A TLS client gets as far as its ClientHello, then waits.
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            tls_connect(bh.host, bh.port, client_context(kmip_pki), timeout=0.5)
        assert time.monotonic() - t0 >= 0.45
        first = bh.wait_received(1, 3)
        assert first[:3] in (b"\x16\x03\x01", b"\x16\x03\x03"), first

        # PyKMIP's client times out at open().
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            PyKmip(kmip_pki, bh.host, bh.port, timeout=1).open()
        assert time.monotonic() - t0 >= 0.9
        assert bh.wait_for(3) == 3
        # The first connection is still open: silence, not EOF.
        with pytest.raises(TimeoutError):
            s.recv(1)


def test_black_hole_closes_its_port():
    with BlackHole() as bh:
        port = bh.port
        socket.create_connection(bh.address, timeout=2).close()
        assert bh.wait_for(1) == 1
    assert refused("127.0.0.1", port)


def test_free_port_is_bindable():
    p = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", p))


def test_server_start_failure_is_reported(kmip_pki, tmp_path):
    """A server that cannot start (its certificate file is missing) is an
    error with the server's own log, not a hang."""
    from vc_kmip import CertKey, require_pykmip
    require_pykmip()
    srv = KmipServer(kmip_pki, tmp_path, cert=CertKey(str(tmp_path / "missing.crt"),
                                                      kmip_pki.server.key))
    t0 = time.monotonic()
    with pytest.raises(KmipServerError) as ei:
        srv.start()
    assert time.monotonic() - t0 < 20
    assert "ConfigurationError" in str(ei.value), str(ei.value)
    assert srv.processes() == []
