# SPDX-License-Identifier: Apache-2.0
# Harness for the KMIP integration tests: a test PKI made with openssl, real
# PyKMIP servers (alone or as a two-node cluster over one SQLite file) on
# loopback with mutual TLS, a silent "black hole" listener, and PyKMIP's
# own client as the interop peer.
import atexit
import datetime
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
import warnings
from dataclasses import dataclass

import pytest

PYTHON = "/usr/bin/python3"          # Debian's: the only one with kmip
PYKMIP_SERVER = "/usr/bin/pykmip-server"
PYKMIP_PACKAGE = "python3-pykmip"

CLIENT_CN = "vmcrypt-test-client"
CLIENT2_CN = "vmcrypt-test-client-2"
SERVER_CN = "127.0.0.1"

START_TIMEOUT = 30.0     # a start takes ~0.5 s here; generous for loaded machines
STOP_TIMEOUT = 4.0       # after SIGINT, before SIGKILL (a clean stop takes ~1 s)
PROBE_TIMEOUT = 2.0
POLL = 0.05
PORT_ATTEMPTS = 5


def require_pykmip():
    """Skip, naming the Debian package, unless PyKMIP is installed for
    Debian's python3."""
    if not (os.path.isfile(PYKMIP_SERVER) and os.path.isfile(PYTHON)):
        pytest.skip(f"{PYKMIP_SERVER} not found: install the Debian package {PYKMIP_PACKAGE}")
    try:
        _kmip()
    except ImportError as e:
        pytest.skip(f"cannot import kmip ({e}): install the Debian package {PYKMIP_PACKAGE}")


def require_openssl():
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: install the Debian package openssl")


def unique_name(prefix="vmcrypt-test"):
    """A key name no other test (or earlier run on a shared database) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- PKI

@dataclass(frozen=True)
class CertKey:
    cert: str
    key: str


@dataclass(frozen=True)
class Pki:
    """Paths of the test PKI made by make_pki().

    Every client certificate except client2 has the subject CN
    vmcrypt-test-client, so a negative one differs from `client` only in
    the property it is named after (issuer, validity, EKU); PyKMIP uses the
    CN as the owner of the keys a client creates. Keys are unencrypted PEM,
    mode 0600 (PyKMIP cannot take a passphrase)."""
    dir: str
    kind: str
    ca: str                       # trust anchor of servers and clients
    ca_key: str
    server: CertKey               # CN 127.0.0.1, SAN IP 127.0.0.1-3 + localhost
    client: CertKey               # CN vmcrypt-test-client, EKU clientAuth
    client2: CertKey              # a second identity (CN vmcrypt-test-client-2)
    wrong_ca: str                 # an unrelated CA
    wrong_ca_key: str
    wrong_ca_client: CertKey      # like client, but issued by wrong_ca
    expired_client: CertKey       # like client, expired yesterday
    noeku_client: CertKey         # like client, without extendedKeyUsage
    expired_server: CertKey       # like server, expired yesterday
    future_server: CertKey        # like server, valid only from tomorrow
    mismatch_server: CertKey      # valid, but no SAN/CN for 127.0.0.1-3 or localhost
    client_conf: str              # PyKMIP client config (keeps ~/.pykmip out)


_CA_CNF = """\
# Minimal `openssl ca` configuration: the only way in OpenSSL 3.0 to give
# a certificate an arbitrary validity window (x509 -req has only -days).
[ca]
default_ca = test_ca
[test_ca]
database = {db}/index.txt
new_certs_dir = {db}
serial = {db}/serial
default_md = sha256
policy = policy_cn
unique_subject = no
copy_extensions = none
email_in_dn = no
[policy_cn]
commonName = supplied
"""


def _run(argv, cwd=None):
    r = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` exited {r.returncode}: "
                           f"{r.stderr.decode(errors='replace')[-800:]}")
    return r


def _asn1_time(t):
    return t.strftime("%Y%m%d%H%M%SZ")


class _Ca:
    def __init__(self, directory, name, cn, newkey):
        self.dir = directory
        self.cert = os.path.join(directory, f"{name}.crt")
        self.key = os.path.join(directory, f"{name}.key")
        self.newkey = newkey
        work = os.path.join(directory, "ca-state", name)
        os.makedirs(work, mode=0o700)
        os.chmod(os.path.dirname(work), 0o700)
        with open(os.path.join(work, "index.txt"), "w"):
            pass
        with open(os.path.join(work, "serial"), "w") as f:
            f.write("%016X\n" % (int.from_bytes(os.urandom(8), "big") >> 1))
        self.cnf = os.path.join(work, "ca.cnf")
        with open(self.cnf, "w") as f:
            f.write(_CA_CNF.format(db=work))
        _run(["openssl", "req", "-x509", *newkey, "-nodes",
              "-keyout", self.key, "-out", self.cert, "-days", "3650",
              "-subj", f"/CN={cn}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        os.chmod(self.key, 0o600)

    def issue(self, name, cn, ext, not_before=None, not_after=None):
        """A leaf key and certificate signed by this CA; ext is the text of
        an openssl extension section."""
        key = os.path.join(self.dir, f"{name}.key")
        crt = os.path.join(self.dir, f"{name}.crt")
        csr = os.path.join(self.dir, "ca-state", f"{name}.csr")
        extf = os.path.join(self.dir, "ca-state", f"{name}.ext")
        with open(extf, "w") as f:
            f.write(ext)
        _run(["openssl", "req", "-new", *self.newkey, "-nodes",
              "-keyout", key, "-out", csr, "-subj", f"/CN={cn}"])
        os.chmod(key, 0o600)
        now = datetime.datetime.now(datetime.timezone.utc)
        nb = not_before if not_before is not None else now - datetime.timedelta(minutes=5)
        na = not_after if not_after is not None else now + datetime.timedelta(days=3650)
        _run(["openssl", "ca", "-batch", "-config", self.cnf,
              "-cert", self.cert, "-keyfile", self.key, "-in", csr, "-out", crt,
              "-notext", "-extfile", extf,
              "-startdate", _asn1_time(nb), "-enddate", _asn1_time(na)])
        return CertKey(crt, key)


def make_pki(directory, kind="ec"):
    """Generate the test PKI in `directory` (created 0700 if missing) with
    the openssl command. kind "ec" (P-256, the default: with an EC server
    certificate PyKMIP offers the AES-GCM suites) or "rsa" (2048 bits: only
    CBC-SHA2 suites). Returns a Pki."""
    if kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        ku = "critical,digitalSignature"
    elif kind == "rsa":
        newkey = ["-newkey", "rsa:2048"]
        ku = "critical,digitalSignature,keyEncipherment"
    else:
        raise ValueError(f"kind must be 'ec' or 'rsa', not {kind!r}")
    directory = os.path.abspath(str(directory))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)

    server_ext = ("basicConstraints=CA:FALSE\n"
                  f"keyUsage={ku}\n"
                  "extendedKeyUsage=serverAuth\n"
                  "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost\n")
    # The name-mismatch server still has a SAN (so the CN is not consulted)
    # and is otherwise valid: only the identity check can reject it.
    mismatch_ext = ("basicConstraints=CA:FALSE\n"
                    f"keyUsage={ku}\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=IP:127.0.0.9,DNS:kmip.invalid\n")
    client_ext = ("basicConstraints=CA:FALSE\n"
                  f"keyUsage={ku}\n"
                  "extendedKeyUsage=clientAuth\n")
    noeku_ext = ("basicConstraints=CA:FALSE\n"
                 f"keyUsage={ku}\n")

    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    ca = _Ca(directory, "ca", "vmcrypt test KMIP CA", newkey)
    wrong = _Ca(directory, "wrong-ca", "vmcrypt test KMIP wrong CA", newkey)

    conf = os.path.join(directory, "pykmip-client.conf")
    with open(conf, "w") as f:
        f.write("# Exists so that PyKMIP's client reads no ~/.pykmip or /etc/pykmip file;\n"
                "# the harness passes every setting explicitly.\n[client]\n")

    return Pki(
        dir=directory,
        kind=kind,
        ca=ca.cert,
        ca_key=ca.key,
        server=ca.issue("server", SERVER_CN, server_ext),
        client=ca.issue("client", CLIENT_CN, client_ext),
        client2=ca.issue("client2", CLIENT2_CN, client_ext),
        wrong_ca=wrong.cert,
        wrong_ca_key=wrong.key,
        wrong_ca_client=wrong.issue("wrong-ca-client", CLIENT_CN, client_ext),
        expired_client=ca.issue("expired-client", CLIENT_CN, client_ext,
                                now - 30 * day, now - day),
        noeku_client=ca.issue("noeku-client", CLIENT_CN, noeku_ext),
        expired_server=ca.issue("expired-server", SERVER_CN, server_ext,
                                now - 30 * day, now - day),
        future_server=ca.issue("future-server", SERVER_CN, server_ext,
                               now + day, now + 30 * day),
        mismatch_server=ca.issue("mismatch-server", "kmip.invalid", mismatch_ext),
        client_conf=conf,
    )


# ---------------------------------------------------------------- TLS

def client_context(pki, identity=None, verify=True, check_hostname=True):
    """A TLS 1.2 client context presenting `identity` (a CertKey, default
    pki.client) and trusting pki.ca; verify=False accepts any server
    certificate."""
    identity = identity or pki.client
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if verify:
        ctx.load_verify_locations(pki.ca)
        ctx.check_hostname = check_hostname
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(identity.cert, identity.key)
    return ctx


def tls_connect(host, port, ctx, timeout=PROBE_TIMEOUT, server_hostname=None):
    """Connect and complete a TLS handshake; returns the SSLSocket (the
    caller closes it). Handshake failures raise ssl.SSLError/OSError."""
    raw = socket.create_connection((host, port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname=server_hostname or host)
    except BaseException:
        raw.close()
        raise


def free_port(host="127.0.0.1"):
    """A TCP port that was free on host a moment ago. Another process may
    take it before it is used: callers retry."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _pem_cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ------------------------------------------------------- process groups

def _group_members(pgid):
    """PIDs of the live processes in process group pgid (zombies count as
    gone)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after it.
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _kill_group_members(pgid, timeout=5.0):
    """SIGKILL, one PID at a time, what is left of a server's process group
    (PyKMIP's Manager and policy-monitor children outlive a killed main
    process), and wait until they are gone."""
    deadline = time.monotonic() + timeout
    while True:
        pids = _group_members(pgid)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} of group {pgid} survive SIGKILL")
        time.sleep(POLL)


_live_servers = set()


@atexit.register
def _kill_leftovers():
    for srv in list(_live_servers):
        try:
            srv.kill()
        except Exception:
            pass


# ------------------------------------------------------------- server

class KmipServerError(RuntimeError):
    pass


class KmipServer:
    """One PyKMIP server (`pykmip-server -f CONF -l LOG`) on host:port with
    mutual TLS 1.2, as a context manager.

    Its files live in root/name/: server.conf, server.log (PyKMIP's log),
    stdout.log, policies/ (empty: the built-in default policy applies) and,
    unless `database` names a shared file, pykmip.db. The port is picked
    free on first start and kept across stop()/kill() and start(), so a
    restarted server is the same endpoint with the same keys.

    cert/ca: the server certificate (a CertKey, default pki.server) and the
    CA its clients must chain to (default pki.ca). logging_level DEBUG makes
    PyKMIP log every request and response in hex, key material included."""

    def __init__(self, pki, root, name="kmip", host="127.0.0.1", port=None,
                 database=None, cert=None, ca=None, client_auth=True,
                 cipher_suites=None, logging_level="INFO"):
        self.pki = pki
        self.name = name
        self.host = host
        self.port = port
        self._repick_port = False
        self.attempts = 0             # launches in the last start() (port retries)
        self.cert = cert or pki.server
        self.ca = ca or pki.ca
        self.client_auth = client_auth
        self.cipher_suites = cipher_suites
        self.logging_level = logging_level
        self.dir = os.path.join(os.path.abspath(str(root)), name)
        os.makedirs(os.path.join(self.dir, "policies"), exist_ok=True)
        self.conf = os.path.join(self.dir, "server.conf")
        self.log = os.path.join(self.dir, "server.log")
        self.stdout_log = os.path.join(self.dir, "stdout.log")
        self.database = os.path.abspath(database) if database else os.path.join(self.dir, "pykmip.db")
        self.proc = None
        self.start_seconds = None     # wall time of the last start()
        self.last_stop = None         # "signal" or "killed"

    # -- configuration

    def _write_conf(self):
        lines = [
            "[server]",
            f"hostname={self.host}",
            f"port={self.port}",
            f"certificate_path={self.cert.cert}",
            f"key_path={self.cert.key}",
            f"ca_path={self.ca}",
            "auth_suite=TLS1.2",
            f"policy_path={os.path.join(self.dir, 'policies')}",
            f"enable_tls_client_auth={self.client_auth}",
            f"logging_level={self.logging_level}",
            f"database_path={self.database}",
        ]
        if self.cipher_suites:
            # Whitespace-separated in the file (comma-separated on the command line).
            lines.append("tls_cipher_suites=" + " ".join(self.cipher_suites))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- life cycle

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def address(self):
        return (self.host, self.port)

    @property
    def endpoint(self):
        return f"{self.host}:{self.port}"

    def start(self, timeout=START_TIMEOUT):
        """Start the server and return once it completes TLS handshakes."""
        self.spawn()
        self.wait_ready(timeout)
        return self

    def spawn(self):
        """Start the process without waiting (see wait_ready)."""
        if self.running:
            raise KmipServerError(f"{self.name} is already running")
        self.attempts = 0
        self._t0 = time.monotonic()
        # Only a first start picks the port; a restart keeps its endpoint.
        self._repick_port = self.port is None
        self._launch()

    def _launch(self):
        self.attempts += 1
        if self._repick_port:
            self.port = free_port(self.host)
        self._write_conf()
        # A fresh log per attempt, so the readiness check reads this run only.
        for p in (self.log, self.stdout_log):
            if os.path.exists(p):
                os.unlink(p)
        with open(self.stdout_log, "wb") as out:
            # A process group of its own: PyKMIP forks two children that a
            # SIGKILL of the main process would orphan; the group finds them.
            self.proc = subprocess.Popen(
                [PYTHON, "-W", "ignore", PYKMIP_SERVER, "-f", self.conf, "-l", self.log],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=self.dir, start_new_session=True, close_fds=True)
        _live_servers.add(self)

    def _log_text(self):
        return self._read(self.log)

    def describe(self, lines=25):
        """The tail of the server's logs, for assertion messages."""
        def tail(p):
            try:
                with open(p, errors="replace") as f:
                    return "".join(f.readlines()[-lines:])
            except FileNotFoundError:
                return "(missing)\n"
        rc = self.proc.poll() if self.proc else None
        return (f"pykmip-server {self.name} on {self.endpoint} (pid "
                f"{self.proc.pid if self.proc else None}, exit {rc})\n"
                f"--- {self.log}\n{tail(self.log)}--- {self.stdout_log}\n{tail(self.stdout_log)}")

    def _read(self, path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _failed(self):
        """True when this start attempt is over: the process exited, or its
        main thread died with a traceback. (PyKMIP does not exit when it
        cannot bind its port: its non-daemon policy-monitor child keeps the
        process alive after the main thread's exception. stdout stays empty
        while the server runs, whatever its log says.)"""
        return (self.proc.poll() is not None
                or "Traceback (most recent call last)" in self._read(self.stdout_log))

    def wait_ready(self, timeout=START_TIMEOUT):
        """Wait until this process has bound its port and completes a TLS
        handshake with the client certificate. Retries on a new port when
        another process took the picked one first. On failure the server is
        killed and KmipServerError carries the tail of its logs."""
        try:
            self._wait_ready(timeout)
        except BaseException:
            if self.proc is not None:
                self.kill()
            raise

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        # Readiness, not identity checking: the server may run a deliberately
        # bad certificate. Comparing it with the one configured proves the
        # handshake reached this server.
        ctx = client_context(self.pki, verify=False)
        want_der = None
        while True:
            if self._failed():
                self.kill()
                text = self._log_text() + self._read(self.stdout_log)
                if (self._repick_port and "failed to bind" in text
                        and self.attempts < PORT_ATTEMPTS):
                    self._launch()
                    continue
                raise KmipServerError("the server failed during start-up:\n" + self.describe())
            if time.monotonic() > deadline:
                raise KmipServerError(f"not ready after {timeout:.0f} s:\n" + self.describe())
            bound = f"Server successfully bound socket handler to {self.host}:{self.port}"
            if bound in self._log_text():
                if want_der is None:
                    want_der = _pem_cert_der(self.cert.cert)
                try:
                    with tls_connect(self.host, self.port, ctx) as s:
                        if s.getpeercert(binary_form=True) == want_der:
                            self.start_seconds = time.monotonic() - self._t0
                            self._repick_port = False
                            return
                except (OSError, ssl.SSLError):
                    pass
            time.sleep(POLL)

    def stop(self, timeout=STOP_TIMEOUT):
        """Clean shutdown: SIGINT, then SIGKILL if the server has not exited
        within timeout. (PyKMIP handles SIGTERM too, but only notices it
        when its 10 s accept() timeout expires; SIGINT interrupts accept.)
        Any processes left in the server's group are killed."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(timeout)
                self.last_stop = "signal"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.last_stop = "killed"
        _kill_group_members(pgid)
        _live_servers.discard(self)

    def kill(self):
        """Crash the server: SIGKILL the main process and its children."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.kill()
            self.last_stop = "killed"
        self.proc.wait()
        _kill_group_members(pgid)
        _live_servers.discard(self)

    def processes(self):
        """PIDs of the server's live processes (main and children)."""
        return _group_members(self.proc.pid) if self.proc else []

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def client(self, identity=None, **kw):
        """A PyKmip client for this server (not yet connected)."""
        return PyKmip(self.pki, self.host, self.port, identity=identity, **kw)


class KmipCluster:
    """Servers that share one SQLite database file: what one creates, the
    others serve (PyKMIP opens a new database session per request, so there
    is no stale cache). Server i listens on hosts[i] (default 127.0.0.1 and
    127.0.0.2, both in the server certificate) on its own port."""

    def __init__(self, pki, root, hosts=("127.0.0.1", "127.0.0.2"), name="cluster", **kw):
        self.dir = os.path.join(os.path.abspath(str(root)), name)
        os.makedirs(self.dir, exist_ok=True)
        self.database = os.path.join(self.dir, "shared.db")
        self.servers = [KmipServer(pki, self.dir, name=f"node{i}", host=h,
                                   database=self.database, **kw)
                        for i, h in enumerate(hosts)]

    def start(self, timeout=START_TIMEOUT):
        # One after the other: each server creates the tables at start-up,
        # and two doing it at once on a fresh file could collide.
        for s in self.servers:
            s.start(timeout)
        return self

    def stop(self):
        for s in self.servers:
            s.stop()

    def endpoints(self):
        return [s.endpoint for s in self.servers]

    def __getitem__(self, i):
        return self.servers[i]

    def __iter__(self):
        return iter(self.servers)

    def __len__(self):
        return len(self.servers)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --------------------------------------------------------- black hole

class BlackHole:
    """A TCP listener on host that accepts every connection and never sends
    a byte or closes one, for client timeout tests. It reads (and keeps the
    first bytes of) what clients send, so a test can see that a client got
    as far as sending its TLS ClientHello."""

    def __init__(self, host="127.0.0.1"):
        self.host = host
        self.port = None
        self._cond = threading.Condition()
        self._conns = []
        self.first_bytes = []      # per accepted connection, up to 64 bytes
        self.received = 0
        self._sel = None
        self._stop_r = self._stop_w = None
        self._thread = None
        self._listener = None

    @property
    def accepted(self):
        with self._cond:
            return len(self._conns)

    @property
    def address(self):
        return (self.host, self.port)

    def __enter__(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((self.host, 0))
        self._listener.listen(64)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._stop_r, self._stop_w = os.pipe()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._stop_r, selectors.EVENT_READ, "stop")
        self._thread = threading.Thread(target=self._loop, name="black-hole", daemon=True)
        self._thread.start()
        return self

    def _loop(self):
        while True:
            for key, _ in self._sel.select():
                if key.data == "stop":
                    return
                if key.data == "listen":
                    try:
                        conn, _ = self._listener.accept()
                    except BlockingIOError:
                        continue
                    conn.setblocking(False)
                    with self._cond:
                        idx = len(self._conns)
                        self._conns.append(conn)
                        self.first_bytes.append(b"")
                        self._cond.notify_all()
                    self._sel.register(conn, selectors.EVENT_READ, idx)
                else:
                    idx = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except (BlockingIOError, ConnectionError):
                        data = None
                    if not data:
                        # The peer gave up: stop watching, but keep the
                        # socket (closing it would be an answer of sorts).
                        self._sel.unregister(key.fileobj)
                        continue
                    with self._cond:
                        self.received += len(data)
                        if len(self.first_bytes[idx]) < 64:
                            self.first_bytes[idx] = (self.first_bytes[idx] + data)[:64]
                        self._cond.notify_all()

    def wait_for(self, connections=1, timeout=5.0):
        """Wait until at least `connections` were accepted; returns the
        number accepted."""
        with self._cond:
            self._cond.wait_for(lambda: len(self._conns) >= connections, timeout)
            return len(self._conns)

    def wait_received(self, index, nbytes, timeout=5.0):
        """Wait until connection number `index` (0-based) has sent at least
        nbytes (at most 64 are kept); returns its first bytes."""
        def have():
            return len(self._conns) > index and len(self.first_bytes[index]) >= nbytes
        with self._cond:
            self._cond.wait_for(have, timeout)
            return self.first_bytes[index] if len(self._conns) > index else b""

    def __exit__(self, *exc):
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        self._sel.close()
        for c in self._conns:
            c.close()
        self._listener.close()
        os.close(self._stop_r)
        os.close(self._stop_w)


# ------------------------------------------------------- PyKMIP client

_kmip_modules = None


def _kmip():
    """Import PyKMIP lazily (a missing package is a skip, not a collection
    error) and quietly (it imports deprecated ciphers)."""
    global _kmip_modules
    if _kmip_modules is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from kmip.core import enums
            from kmip.core.factories import attributes
            from kmip.pie import client, exceptions, objects
        _kmip_modules = (enums, attributes, client, exceptions, objects)
    return _kmip_modules


def kmip_failure(exc):
    """(status, reason, message) of a KmipOperationFailure, as enum names,
    or None for any other exception."""
    enums, _, _, exceptions, _ = _kmip()
    if isinstance(exc, exceptions.KmipOperationFailure):
        return (exc.status.name, exc.reason.name if exc.reason else None,
                exc.message)
    return None


class PyKmip:
    """PyKMIP's ProxyKmipClient (the interop peer of vmcrypt's own client)
    with the harness's certificates, TLS 1.2 and KMIP 1.2. Use as a context
    manager: the block is one TLS connection, one server session.

    hosts: a comma-separated list for PyKMIP's own fail-over (tried in order
    at open(), all on the same port). timeout: seconds per socket
    operation."""

    def __init__(self, pki, host, port, identity=None, timeout=10, kmip_version="1.2"):
        enums, _, client, _, _ = _kmip()
        identity = identity or pki.client
        versions = {"1.0": enums.KMIPVersion.KMIP_1_0, "1.1": enums.KMIPVersion.KMIP_1_1,
                    "1.2": enums.KMIPVersion.KMIP_1_2, "1.3": enums.KMIPVersion.KMIP_1_3,
                    "1.4": enums.KMIPVersion.KMIP_1_4, "2.0": enums.KMIPVersion.KMIP_2_0}
        self.client = client.ProxyKmipClient(
            hostname=host, port=port, cert=identity.cert, key=identity.key,
            ca=pki.ca, ssl_version="PROTOCOL_TLSv1_2",
            config="client", config_file=pki.client_conf,
            kmip_version=versions[kmip_version])
        # Not a constructor argument of ProxyKmipClient; read at open().
        self.client.proxy.timeout = timeout

    def open(self):
        with warnings.catch_warnings():
            # ssl.wrap_socket and PROTOCOL_TLSv1_2 are deprecated in 3.11.
            warnings.simplefilter("ignore", DeprecationWarning)
            self.client.open()
        return self

    def close(self):
        self.client.close()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        try:
            self.close()
        except Exception:
            if exc[0] is None:
                raise

    @property
    def peer(self):
        """(host, port) of the server this connection reached."""
        return self.client.proxy.socket.getpeername()

    def create_key(self, name=None, length=256):
        """Create an AES key (Pre-Active, usage Encrypt|Decrypt); returns
        its unique identifier."""
        enums = _kmip()[0]
        return self.client.create(
            enums.CryptographicAlgorithm.AES, length, name=name,
            cryptographic_usage_mask=[enums.CryptographicUsageMask.ENCRYPT,
                                      enums.CryptographicUsageMask.DECRYPT])

    def register_key(self, key, name=None):
        """Register known AES key bytes; returns the unique identifier."""
        enums, _, _, _, objects = _kmip()
        obj = objects.SymmetricKey(
            enums.CryptographicAlgorithm.AES, len(key) * 8, key,
            masks=[enums.CryptographicUsageMask.ENCRYPT,
                   enums.CryptographicUsageMask.DECRYPT],
            name=name)
        return self.client.register(obj)

    def get_key(self, uid):
        """The raw key bytes of a symmetric key."""
        return bytes(self.client.get(uid).value)

    def locate(self, name):
        """Unique identifiers of the objects with this Name."""
        enums, attributes, _, _, _ = _kmip()
        attr = attributes.AttributeFactory().create_attribute(enums.AttributeType.NAME, name)
        return list(self.client.locate(attributes=[attr]))

    def activate(self, uid):
        self.client.activate(uid)

    def revoke(self, uid):
        enums = _kmip()[0]
        self.client.revoke(enums.RevocationReasonCode.CESSATION_OF_OPERATION, uid)

    def state(self, uid):
        """The State attribute's name: PRE_ACTIVE, ACTIVE, DEACTIVATED..."""
        _, attrs = self.client.get_attributes(uid, ["State"])
        for a in attrs:
            if a.attribute_name.value == "State":
                return a.attribute_value.value.name
        raise KeyError(f"no State attribute for {uid}")

    def destroy(self, uid):
        """Destroy a key; an Active key is revoked first (PyKMIP refuses to
        destroy an Active key)."""
        if self.state(uid) == "ACTIVE":
            self.revoke(uid)
        self.client.destroy(uid)


# ------------------------------------------------------------ fixtures

@pytest.fixture(scope="session")
def kmip_pki(tmp_path_factory):
    """The EC P-256 test PKI, shared by the session."""
    require_openssl()
    return make_pki(tmp_path_factory.mktemp("kmip-pki"), "ec")


@pytest.fixture(scope="module")
def kmip_server(kmip_pki, tmp_path_factory):
    """A PyKMIP server with its own fresh database, shared by the tests of
    a module: use unique_name() for key names. Do not stop or kill it: use
    kmip_servers for that."""
    require_pykmip()
    srv = KmipServer(kmip_pki, tmp_path_factory.mktemp("kmip-server"))
    with srv:
        yield srv


@pytest.fixture(scope="module")
def kmip_cluster(kmip_pki, tmp_path_factory):
    """Two PyKMIP servers (127.0.0.1 and 127.0.0.2) sharing one SQLite
    database, shared by the tests of a module. A test that stops or kills
    a node must start() it again before it returns."""
    require_pykmip()
    cluster = KmipCluster(kmip_pki, tmp_path_factory.mktemp("kmip-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


class KmipServers:
    """Factory for servers and clusters owned by one test, all stopped at
    its end."""

    def __init__(self, pki, root):
        self.pki = pki
        self.root = root
        self._owned = []
        self._n = 0

    def server(self, start=True, **kw):
        self._n += 1
        kw.setdefault("name", f"kmip{self._n}")
        srv = KmipServer(kw.pop("pki", self.pki), self.root, **kw)
        self._owned.append(srv)
        return srv.start() if start else srv

    def cluster(self, start=True, **kw):
        self._n += 1
        kw.setdefault("name", f"cluster{self._n}")
        c = KmipCluster(kw.pop("pki", self.pki), self.root, **kw)
        self._owned.append(c)
        return c.start() if start else c

    def stop_all(self):
        for o in reversed(self._owned):
            o.stop()


@pytest.fixture
def kmip_servers(kmip_pki, tmp_path):
    """Start servers private to the test: kmip_servers.server(**KmipServer
    options) and kmip_servers.cluster(...)."""
    require_pykmip()
    f = KmipServers(kmip_pki, str(tmp_path / "kmip"))
    try:
        yield f
    finally:
        f.stop_all()


@pytest.fixture
def black_hole():
    with BlackHole() as bh:
        yield bh
