# SPDX-License-Identifier: Apache-2.0
# Harness for the manager's integration tests: the real vmcryptd on a
# private data directory and loopback port, an HTTPS+JSON client of its
# API (docs/API.md), helpers for users and roles, the `vmcrypt` CLI bound
# to a private session directory, and checks shared by the test modules.
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import select
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
import urllib.parse

import pytest

from vc_util import describe, write_private

START_TIMEOUT = 30.0       # a start takes well under a second; generous for loaded machines
STOP_TIMEOUT = 15.0        # SIGTERM lets running tasks finish first
HTTP_TIMEOUT = 30.0

ADMIN = "admin"
ADMIN_PASSWORD = "admin-pw-Zq8#x1-not-a-real-one"
PASSWORD = "user-pw-Kd93!qq-long-enough"     # for the users tests create

# The error code each status must carry (docs/API.md "Errors").
STATUS_CODES = {
    400: {"bad_request"},
    401: {"unauthorized"},
    403: {"forbidden", "password_change_required"},
    404: {"not_found"},
    405: {"method_not_allowed"},
    409: {"conflict"},
    413: {"payload_too_large"},
    415: {"unsupported_media_type"},
    500: {"internal"},
    502: {"key_server"},
}

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "ThreadSanitizer", "runtime error:", "SUMMARY: ")

LISTEN_RE = re.compile(r"^vmcryptd: listening on https://127\.0\.0\.1:(\d+)$")
FPR_RE = re.compile(r"^vmcryptd: certificate SHA-256 ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})$")
OTP_RE = re.compile(r"^vmcryptd: first start: user '([^']+)', one-time password: (\S+)$")


def build_dir():
    return os.environ.get("VMCRYPT_BUILD", "/work/main/build")


def vmcryptd_path():
    """The daemon under test. A missing binary is a broken build, so the
    tests fail instead of skipping."""
    path = os.path.join(build_dir(), "manager", "vmcryptd")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing or not executable: build it with "
                    f"`ninja -C {build_dir()}` (or set VMCRYPT_BUILD)", pytrace=False)
    return path


def vmcrypt_path():
    path = os.path.join(build_dir(), "cli", "vmcrypt")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing or not executable", pytrace=False)
    return path


def daemon_env():
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TMPDIR",
                    "VMCRYPT_TEST_CRASH_AT_WRITE")}
    env["LC_ALL"] = "C"
    return env


def print_routes():
    r = subprocess.run([vmcryptd_path(), "--print-routes"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=daemon_env(), timeout=30)
    assert r.returncode == 0 and r.stderr == b"", describe(r)
    routes = json.loads(r.stdout, object_pairs_hook=no_duplicates)
    assert isinstance(routes, list) and routes, r.stdout[:300]
    return routes


def no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError(f"duplicate key {k!r} in a JSON object")
        d[k] = v
    return d


def loads(data):
    """Strict JSON: a response must not hold duplicate keys either."""
    return json.loads(data, object_pairs_hook=no_duplicates)


# ---------------------------------------------------------------- daemon

class ManagerError(RuntimeError):
    pass


class Daemon:
    """A daemon of ours (vmcryptd, vmcrypt-hostd) run by a test: started
    with its stderr read with a deadline until the "listening on" line
    (parse() picks what a line says), then drained by a thread into
    self.lines (every line of every run; self.runs[i] is where run i
    starts); stopped with a signal, requiring exit 0, the "stopped" line
    and no sanitizer report."""

    NAME = "daemon"
    Error = RuntimeError
    FORGET_PROC = False          # stop() drops self.proc

    def __init__(self, data_dir):
        self.dir = os.path.abspath(str(data_dir))
        self.proc = None
        self.port = None
        self.fingerprint = None
        self.lines = []
        self.runs = []
        self.exit_codes = []
        self._lock = threading.Lock()
        self._drain = None
        self.extra_env = {}          # added to daemon_env() for this daemon

    def argv(self):
        raise NotImplementedError

    def parse(self, text):
        """Read what a stderr line says (sets self.port when listening)."""

    def reset(self):
        """Before a start: forget what the previous run said."""
        self.port = None

    def check_started(self):
        """After the "listening on" line: anything else a start must say."""

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=START_TIMEOUT):
        if self.running:
            raise self.Error(f"{self.NAME} is already running")
        with self._lock:
            self.runs.append(len(self.lines))
        self.reset()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=dict(daemon_env(), **self.extra_env),
                                     close_fds=True)
        fd = self.proc.stderr.fileno()
        buf = b""
        deadline = time.monotonic() + timeout
        while self.port is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise self.Error(f"no 'listening on' line after {timeout:.0f} s:\n"
                                 + self.stderr_text())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                self.exit_codes.append(self.proc.returncode)
                self._add(buf)
                raise self.Error(f"{self.NAME} exited {self.proc.returncode} before "
                                 "listening:\n" + self.stderr_text())
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._line(line)
        self.check_started()
        self._drain = threading.Thread(target=self._drain_loop, args=(fd, buf),
                                       name=f"{self.NAME}-stderr", daemon=True)
        self._drain.start()
        return self

    def _add(self, raw):
        if raw:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace"))

    def _line(self, raw):
        text = raw.decode("utf-8", "replace")
        with self._lock:
            self.lines.append(text)
        self.parse(text)

    def _drain_loop(self, fd, buf):
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._add(buf)
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self._line(line)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, check=True):
        """Stop with sig and return the exit status; check: it must be 0,
        the run must end with "NAME: stopped" and no sanitizer may have
        reported."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise self.Error(f"{self.NAME} did not exit within {timeout} s of "
                                 f"{signal.Signals(sig).name}:\n" + self.stderr_text())
        self._join()
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        self.proc.stderr.close()
        if self.FORGET_PROC:
            self.proc = None
        if check:
            assert rc == 0, (f"{self.NAME} exited {rc} on {signal.Signals(sig).name}:\n"
                             + self.stderr_text())
            run = self.run_lines()
            assert run and run[-1] == f"{self.NAME}: stopped", \
                f"the last stderr line must be '{self.NAME}: stopped':\n" + self.stderr_text()
            self.assert_no_sanitizer()
        return rc

    def _join(self):
        if self._drain is not None:
            self._drain.join(10)
            self._drain = None

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._join()

    def restart(self):
        self.stop()
        return self.start()

    def stderr_text(self):
        with self._lock:
            return "\n".join(self.lines[-60:])

    def run_lines(self, i=-1):
        """stderr lines of run i (default: the last one)."""
        with self._lock:
            starts = self.runs + [len(self.lines)]
            if i < 0:
                i += len(self.runs)
            return list(self.lines[starts[i]:starts[i + 1]])

    def all_lines(self):
        with self._lock:
            return list(self.lines)

    def assert_no_sanitizer(self):
        bad = [ln for ln in self.all_lines() if any(mk in ln for mk in SANITIZER_MARKS)]
        assert not bad, (f"sanitizer report on {self.NAME}'s stderr:\n"
                         + "\n".join(self.all_lines()[-80:]))

    def assert_alive(self):
        rc = self.proc.returncode if self.proc is not None else "none: stopped"
        assert self.running, f"{self.NAME} died (exit {rc}):\n" + self.stderr_text()
        self.assert_no_sanitizer()


class Manager(Daemon):
    """One vmcryptd on data_dir, listening on 127.0.0.1 and a port the
    kernel picks. stderr is read with a deadline until the "listening on"
    line, then drained by a thread into self.lines (all lines of every
    start, in order; self.start_lines(i) are those of start i)."""

    def __init__(self, data_dir, admin_password=ADMIN_PASSWORD, token_ttl=None,
                 extra_args=()):
        super().__init__(data_dir)
        self.admin_password = admin_password
        self.token_ttl = token_ttl
        self.extra_args = list(extra_args)
        self.otp = None             # the one-time password printed on a first start
        self.pwfile = None
        if admin_password is not None:
            self.pwfile = self.dir + ".admin-password"
            if not os.path.exists(self.pwfile):
                write_private(self.pwfile, admin_password.encode() + b"\n")

    # -- life cycle

    def argv(self):
        argv = [vmcryptd_path(), "--data-dir", self.dir, "--listen", "127.0.0.1:0"]
        if self.pwfile:
            argv += ["--admin-password-file", self.pwfile]
        if self.token_ttl is not None:
            argv += ["--token-ttl", str(self.token_ttl)]
        return argv + self.extra_args

    @property
    def pid(self):
        return self.proc.pid

    @property
    def ca(self):
        return os.path.join(self.dir, "tls", "manager.crt")

    @property
    def db(self):
        return os.path.join(self.dir, "vmcryptd.db")

    @property
    def url(self):
        return f"https://127.0.0.1:{self.port}"

    NAME = "vmcryptd"
    Error = ManagerError

    def parse(self, text):
        m = LISTEN_RE.match(text)
        if m:
            self.port = int(m.group(1))
        m = FPR_RE.match(text)
        if m:
            self.fingerprint = m.group(1)
        m = OTP_RE.match(text)
        if m:
            self.otp = m.group(2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if exc[0] is None:
            self.stop()
        else:
            self.kill()

    # -- clients

    def api(self, token=None):
        return Api(self, token)

    def login(self, user=ADMIN, password=None):
        """A client logged in as user (the admin with its password by
        default); fails the test unless the login is 201."""
        if password is None:
            assert user == ADMIN, "a password is needed for " + user
            password = self.admin_password
        c = Api(self)
        r = c.login(user, password)
        assert r.status == 201, f"login as {user}: {r}"
        return c

    def sql(self, statement, params=()):
        """Run one statement on the daemon's SQLite file (WAL: the daemon
        may be running) and return the rows."""
        con = sqlite3.connect(self.db, timeout=15)
        try:
            with con:
                return con.execute(statement, params).fetchall()
        finally:
            con.close()


# ---------------------------------------------------------------- client

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # lower-case names
        self.body = body
        self._json = None
        self._parsed = False

    @property
    def json(self):
        if not self._parsed:
            self._parsed = True
            try:
                self._json = loads(self.body)
            except ValueError:
                self._json = None
        return self._json

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    @property
    def error(self):
        j = self.json
        return j.get("error") if isinstance(j, dict) else None

    def __repr__(self):
        return f"HTTP {self.status} {self.content_type!r} {self.body[:500]!r}"


NO_BODY = object()


class Api:
    """A client of the manager's API. Paths not starting with "/" are
    relative to /api/v1. One TLS connection per request, so that no test
    depends on keep-alive."""

    def __init__(self, mgr, token=None):
        self.mgr = mgr
        self.token = token
        self.user = None
        self.ctx = ssl.create_default_context(cafile=mgr.ca)

    def connect(self, timeout=HTTP_TIMEOUT):
        return http.client.HTTPSConnection("127.0.0.1", self.mgr.port, context=self.ctx,
                                           timeout=timeout)

    @staticmethod
    def full(path):
        return path if path.startswith("/") else "/api/v1/" + path

    def request(self, method, path, body=NO_BODY, raw=None, headers=None,
                content_type="application/json", token=NO_BODY, query=None,
                timeout=HTTP_TIMEOUT):
        """Send one request. body: a value sent as JSON; raw: bytes sent as
        they are; token: override (None sends no Authorization)."""
        url = self.full(path)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        hdrs = {}
        tok = self.token if token is NO_BODY else token
        if tok is not None:
            hdrs["Authorization"] = f"Bearer {tok}"
        data = None
        if raw is not None:
            data = raw
        elif body is not NO_BODY:
            data = json.dumps(body).encode()
        if data is not None and content_type is not None:
            hdrs["Content-Type"] = content_type
        if headers:
            hdrs.update(headers)
        conn = self.connect(timeout)
        try:
            try:
                conn.request(method, url, body=data, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                # The server may answer (413) and close before reading it
                # all; its answer is still there to read.
                pass
            r = conn.getresponse()
            body_bytes = r.read()
            return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, body_bytes)
        finally:
            conn.close()

    def call(self, method, path, body=NO_BODY, **kw):
        r = self.request(method, path, body, **kw)
        return r.status, r.json

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body=NO_BODY, **kw):
        return self.call("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.call("PUT", path, body, **kw)

    def patch(self, path, body, **kw):
        return self.call("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("DELETE", path, **kw)

    # -- checked shortcuts: the call must return one of ok

    def ok(self, method, path, body=NO_BODY, ok=(200, 201, 202, 204), **kw):
        r = self.request(method, path, body, **kw)
        assert r.status in ok, f"{method} {self.full(path)} as {self.user}: {r}"
        return r.json

    def login(self, user, password):
        r = self.request("POST", "session", {"user": user, "password": password}, token=None)
        if r.status == 201:
            self.token = r.json["token"]
            self.user = user
        return r

    def logout(self):
        return self.request("DELETE", "session")


# ---------------------------------------------------------------- helpers

def assert_error(r, status, code=None):
    """The error contract: this status, a JSON body {"error": {"code",
    "message", ...}} whose code fits the status, and a message that is one
    non-empty line. Returns the error object."""
    assert r.status == status, f"expected HTTP {status}: {r}"
    assert r.content_type.split(";")[0].strip() == "application/json", f"error not JSON: {r}"
    err = r.error
    assert isinstance(err, dict), f"no error object: {r}"
    assert isinstance(err.get("code"), str) and isinstance(err.get("message"), str), r
    if code is not None:
        assert err["code"] == code, f"expected code {code}: {r}"
    elif status in STATUS_CODES:
        assert err["code"] in STATUS_CODES[status], f"code does not fit {status}: {r}"
    msg = err["message"]
    assert msg.strip() and "\n" not in msg and "\r" not in msg, f"message must be one line: {r}"
    return err


def add_user(admin, name, password=PASSWORD, groups=None, role=None, obj="root",
             propagate=True):
    body = {"name": name, "password": password}
    if groups is not None:
        body["groups"] = list(groups)
    admin.ok("POST", "users", body, ok=(201,))
    if role is not None:
        grant(admin, name, role, obj, propagate)


def grant(admin, principal, role, obj="root", propagate=True, group=False):
    body = {"principal": principal, "role": role, "object": obj, "propagate": propagate}
    if group:
        body["group"] = True
    admin.ok("POST", "permissions", body, ok=(201,))


def add_role(admin, name, privileges):
    return admin.ok("POST", "roles", {"name": name, "privileges": sorted(privileges)}, ok=(201,))


def user_client(mgr, admin, name, role=None, privileges=None, groups=None, obj="root",
                propagate=True, password=PASSWORD):
    """Create a user (with a role of these privileges, or an existing role,
    on obj) and return a client logged in as it."""
    if privileges is not None:
        role = role or f"role-{name}"
        add_role(admin, role, privileges)
    add_user(admin, name, password, groups=groups, role=role, obj=obj, propagate=propagate)
    c = mgr.login(name, password)
    return c


def all_privileges(admin):
    j = admin.ok("GET", "privileges", ok=(200,))
    return {p["id"]: p["crypto"] for p in j["privileges"]}


def add_object(admin, parent, kind, name):
    j = admin.ok("POST", "inventory", {"parent": parent, "kind": kind, "name": name}, ok=(201,))
    return j["id"]


def wait_task(api, task_id, timeout=60.0):
    """Poll a task until it ends (there is no other way to learn it: this
    is the API's own contract for clients)."""
    deadline = time.monotonic() + timeout
    while True:
        j = api.ok("GET", f"tasks/{task_id}", ok=(200,))
        if j["state"] in ("success", "error"):
            return j
        assert time.monotonic() < deadline, f"task {task_id} still {j['state']} after {timeout} s"
        time.sleep(0.05)


def check_value(key):
    """docs/API.md: the first 8 bytes of HMAC-SHA-256(key, "vmcrypt key
    check value"), as 16 hex digits."""
    return hmac.new(key, b"vmcrypt key check value", hashlib.sha256).digest()[:8].hex()


def open_backup(envelope, password):
    """Read a native provider backup envelope (docs/KEYS.md "Backup
    envelope, version 1") with Python's own scrypt and the cryptography
    package: (provider id bytes, created, master key)."""
    import struct
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    assert len(envelope) == 196, len(envelope)
    assert envelope[:8] == b"VCNKPBAK", envelope[:8]
    assert hashlib.sha256(envelope[:164]).digest() == envelope[164:], "checksum"
    version, kdf, log2n = struct.unpack_from("<HHB", envelope, 8)
    r, p, _exported = struct.unpack_from("<IIQ", envelope, 16)
    assert (version, kdf) == (1, 1), (version, kdf)
    n = 1 << log2n
    dk = hashlib.scrypt(password.encode(), salt=envelope[32:64], n=n, r=r, p=p,
                        maxmem=256 * r * n + (1 << 20), dklen=48)
    assert hmac.compare_digest(dk[32:48], envelope[76:92]), "password check"
    plain = AESGCM(dk[:32]).decrypt(envelope[64:76], envelope[92:164], envelope[:92])
    pid, created = plain[:16], struct.unpack_from("<Q", plain, 16)[0]
    return pid, created, plain[24:56]


def native_kek(master, provider_id, key_id):
    """docs/KEYS.md "Derivation": HKDF-SHA-256(M, salt = provider id,
    info = "vmcrypt-native-kek/1:" || key id)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=provider_id,
                info=b"vmcrypt-native-kek/1:" + key_id.lower().encode()).derive(master)


def secret_forms(secret):
    """Spellings of a secret to look for in files: raw bytes (for bytes),
    hex in both cases, standard and URL-safe base64 (padded and not)."""
    if isinstance(secret, str):
        secret = secret.encode()
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    for enc in (base64.b64encode, base64.urlsafe_b64encode):
        e = enc(secret)
        forms.add(e)
        forms.add(e.rstrip(b"="))
    return forms


def files_under(root):
    for dirpath, _, filenames in os.walk(root):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def find_secrets(root, secrets, skip=()):
    """[(path, name)] of every file under root holding one of secrets
    ({name: bytes|str}) in any spelling of secret_forms()."""
    needles = {name: secret_forms(s) for name, s in secrets.items()}
    hits = []
    for p in files_under(root):
        if any(p.startswith(os.path.join(root, s) + os.sep) for s in skip):
            continue
        with open(p, "rb") as f:
            data = f.read()
        for name, forms in needles.items():
            if any(form in data for form in forms):
                hits.append((os.path.relpath(p, root), name))
    return hits


def pem_body(path):
    """The base64 body of a PEM file, joined into one line."""
    with open(path) as f:
        lines = [ln.strip() for ln in f if ln.strip() and not ln.startswith("-----")]
    return "".join(lines)


# ---------------------------------------------------------------- CLI

class Cli:
    """`vmcrypt` with a private XDG_CONFIG_HOME (its session file)."""

    def __init__(self, config_home):
        self.path = vmcrypt_path()
        self.home = os.path.abspath(str(config_home))
        os.makedirs(self.home, mode=0o700, exist_ok=True)

    def env(self):
        env = daemon_env()
        env["XDG_CONFIG_HOME"] = self.home
        env["HOME"] = self.home
        return env

    def run(self, *args, timeout=120, pass_fds=()):
        return subprocess.run([self.path] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.env(), timeout=timeout, close_fds=True,
                              pass_fds=pass_fds)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, describe(r)
        return r

    def json(self, *args, **kw):
        r = self.ok(*args, "--json", **kw)
        try:
            return loads(r.stdout)
        except ValueError as e:
            raise AssertionError(f"--json printed invalid JSON ({e}): " + describe(r))

    def login(self, mgr, user=ADMIN, password=None):
        password = mgr.admin_password if password is None else password
        pw = os.path.join(self.home, f"pw-{user}")
        if os.path.exists(pw):
            os.unlink(pw)
        write_private(pw, password.encode() + b"\n")
        return self.ok("login", "--server", mgr.url, "--user", user,
                       "--password-file", pw, "--ca-file", mgr.ca)


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    """A vmcryptd shared by the tests of a module (admin / ADMIN_PASSWORD),
    stopped at the end with SIGTERM (exit status 0 required)."""
    mgr = Manager(tmp_path_factory.mktemp("manager") / "data")
    mgr.start()
    try:
        yield mgr
    finally:
        # Also reports a daemon that died during the module (its status).
        mgr.stop()


@pytest.fixture(scope="module")
def admin(manager):
    return manager.login()
