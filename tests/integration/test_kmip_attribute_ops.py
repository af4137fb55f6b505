# SPDX-License-Identifier: Apache-2.0
# Add Attribute and Modify Attribute (KMIP 1.4 sections 4.13, 4.14) on the
# wire: PyKMIP does not implement them, so a fake KMIP server written here,
# with its own TTLV decoder, is the independent peer that checks the bytes
# `vmcrypt kmip add-attribute|modify-attribute` sends.
import socket
import ssl
import struct
import threading
import time
import uuid

import pytest

from vc_kmip import kmip_pki  # noqa: F401 (pytest fixture)
from vc_util import assert_cli_error, describe

# Tags and enumerations, from the KMIP 1.4 specification (sections 9.1.3.1
# and 9.1.3.2); tests/vectors/kmip/*.txt show the same numbers on the wire.
T_ATTRIBUTE = 0x420008
T_ATTRIBUTE_INDEX = 0x420009
T_ATTRIBUTE_NAME = 0x42000A
T_ATTRIBUTE_VALUE = 0x42000B
T_BATCH_COUNT = 0x42000D
T_BATCH_ITEM = 0x42000F
T_OPERATION = 0x42005C
T_PROTOCOL_VERSION = 0x420069
T_PROTOCOL_VERSION_MAJOR = 0x42006A
T_PROTOCOL_VERSION_MINOR = 0x42006B
T_REQUEST_HEADER = 0x420077
T_REQUEST_MESSAGE = 0x420078
T_REQUEST_PAYLOAD = 0x420079
T_RESPONSE_HEADER = 0x42007A
T_RESPONSE_MESSAGE = 0x42007B
T_RESPONSE_PAYLOAD = 0x42007C
T_RESULT_MESSAGE = 0x42007D
T_RESULT_REASON = 0x42007E
T_RESULT_STATUS = 0x42007F
T_TIME_STAMP = 0x420092
T_UNIQUE_IDENTIFIER = 0x420094

STRUCTURE, INTEGER, LONG_INTEGER, BIG_INTEGER, ENUMERATION = 0x01, 0x02, 0x03, 0x04, 0x05
BOOLEAN, TEXT, BYTES, DATETIME, INTERVAL = 0x06, 0x07, 0x08, 0x09, 0x0A

OP_ADD_ATTRIBUTE = 0x0D
OP_MODIFY_ATTRIBUTE = 0x0E
OP_DISCOVER_VERSIONS = 0x1E

STATUS_SUCCESS = 0
STATUS_FAILED = 1
REASON_ITEM_NOT_FOUND = 0x01
REASON_OPERATION_NOT_SUPPORTED = 0x05

IO_TIMEOUT = 10.0
JOIN_TIMEOUT = 10.0


# ------------------------------------------------------------------ TTLV

class TtlvError(ValueError):
    pass


def decode(data):
    """Decode a whole TTLV item into (tag, type, value); a structure's value
    is a list of items. Strict: lengths must fit their type, padding must be
    zero and nothing may follow the item."""
    item, end = _decode_at(data, 0, len(data))
    if end != len(data):
        raise TtlvError(f"{len(data) - end} bytes after the top-level item")
    return item


_FIXED = {INTEGER: 4, LONG_INTEGER: 8, ENUMERATION: 4, BOOLEAN: 8, DATETIME: 8, INTERVAL: 4}


def _decode_at(data, pos, limit):
    if limit - pos < 8:
        raise TtlvError(f"truncated header at offset {pos}")
    tag = int.from_bytes(data[pos:pos + 3], "big")
    typ = data[pos + 3]
    length = int.from_bytes(data[pos + 4:pos + 8], "big")
    start = pos + 8
    padded = (length + 7) // 8 * 8
    if start + padded > limit:
        raise TtlvError(f"tag {tag:06X}: length {length} runs past its container")
    raw = data[start:start + length]
    if any(data[start + length:start + padded]):
        raise TtlvError(f"tag {tag:06X}: non-zero padding")
    if typ in _FIXED and length != _FIXED[typ]:
        raise TtlvError(f"tag {tag:06X}: type {typ:#04x} with length {length}")
    if typ == STRUCTURE:
        if length % 8:
            raise TtlvError(f"tag {tag:06X}: structure length {length} not a multiple of 8")
        value, p = [], start
        while p < start + length:
            child, p = _decode_at(data, p, start + length)
            value.append(child)
    elif typ in (INTEGER, ENUMERATION, INTERVAL):
        value = int.from_bytes(raw, "big", signed=(typ == INTEGER))
    elif typ in (LONG_INTEGER, DATETIME):
        value = int.from_bytes(raw, "big", signed=True)
    elif typ == BOOLEAN:
        value = int.from_bytes(raw, "big")
        if value not in (0, 1):
            raise TtlvError(f"tag {tag:06X}: boolean {value}")
        value = bool(value)
    elif typ == TEXT:
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TtlvError(f"tag {tag:06X}: text is not UTF-8 ({e})")
    elif typ in (BYTES, BIG_INTEGER):
        value = bytes(raw)
    else:
        raise TtlvError(f"tag {tag:06X}: unknown type {typ:#04x}")
    return (tag, typ, value), start + padded


def encode(item):
    tag, typ, value = item
    if typ == STRUCTURE:
        body = b"".join(encode(c) for c in value)
    elif typ in (INTEGER, ENUMERATION):
        body = value.to_bytes(4, "big", signed=(typ == INTEGER))
    elif typ == DATETIME:
        body = value.to_bytes(8, "big", signed=True)
    elif typ == TEXT:
        body = value.encode("utf-8")
    elif typ == BYTES:
        body = value
    else:
        raise ValueError(f"encode: type {typ:#04x} not needed here")
    pad = -len(body) % 8
    return tag.to_bytes(3, "big") + bytes([typ]) + struct.pack(">I", len(body)) + body + b"\0" * pad


def st(tag, *children):
    return (tag, STRUCTURE, list(children))


def integer(tag, v):
    return (tag, INTEGER, v)


def enum(tag, v):
    return (tag, ENUMERATION, v)


def text(tag, v):
    return (tag, TEXT, v)


def child(item, tag):
    """The first child of a structure with this tag, or None."""
    for c in item[2]:
        if c[0] == tag:
            return c
    return None


def show(item, indent=0):
    """The tree as text, for assertion messages."""
    tag, typ, value = item
    pre = "  " * indent + f"{tag:06X} "
    if typ == STRUCTURE:
        return "\n".join([pre + "Structure"] + [show(c, indent + 1) for c in value])
    return pre + f"type {typ:#04x} {value!r}"


# ------------------------------------------------------------------ server

def _recv_exact(conn, n):
    buf = bytearray()
    while len(buf) < n:
        b = conn.recv(n - len(buf))
        if not b:
            if buf:
                raise TtlvError(f"connection closed inside a message ({len(buf)} of {n} bytes)")
            return None
        buf += b
    return bytes(buf)


class FakeKmipServer:
    """A one-thread KMIP server on 127.0.0.1 (an ephemeral port) speaking
    TLS 1.2 with client certificates from pki.ca. It answers Discover
    Versions with 1.4, Add/Modify Attribute with success echoing the
    Unique Identifier and the Attribute (or with `failures[op]` = (reason,
    message)), everything else with Operation Not Supported. Every request
    is recorded as (raw bytes, decoded tree); errors of the server itself
    are kept in `errors` for the test to report."""

    def __init__(self, pki):
        self.pki = pki
        self.requests = []
        self.errors = []
        self.failures = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None
        self._listener = None
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(pki.server.cert, pki.server.key)
        self.ctx.load_verify_locations(pki.ca)
        self.ctx.verify_mode = ssl.CERT_REQUIRED

    def __enter__(self):
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self._listener.bind(("127.0.0.1", 0))    # the kernel's free port: no race
            self._listener.listen(8)
            # accept() wakes up now and then to see the stop flag.
            self._listener.settimeout(0.2)
            self.host, self.port = self._listener.getsockname()
            self._thread = threading.Thread(target=self._serve, name="fake-kmip", daemon=True)
            self._thread.start()
        except BaseException:
            self._listener.close()
            raise
        return self

    def __exit__(self, *exc):
        self._stop.set()
        try:
            if self._thread:
                self._thread.join(JOIN_TIMEOUT)
                assert not self._thread.is_alive(), "the fake KMIP server thread did not stop"
        finally:
            self._listener.close()

    @property
    def endpoint(self):
        return f"{self.host}:{self.port}"

    def _serve(self):
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as e:
                if not self._stop.is_set():
                    self._error(f"accept: {e}")
                return
            try:
                raw.settimeout(IO_TIMEOUT)
                with self.ctx.wrap_socket(raw, server_side=True) as conn:
                    self._session(conn)
            except (ssl.SSLError, OSError, TtlvError) as e:
                self._error(f"connection: {type(e).__name__}: {e}")
            except Exception as e:  # a bug in the fake server itself
                self._error(f"server bug: {type(e).__name__}: {e}")
            finally:
                raw.close()

    def _error(self, msg):
        with self._lock:
            self.errors.append(msg)

    def _session(self, conn):
        while True:
            hdr = _recv_exact(conn, 8)
            if hdr is None:
                return
            length = int.from_bytes(hdr[4:8], "big")
            if hdr[3] != STRUCTURE or length > 1 << 20:
                raise TtlvError(f"bad message header {hdr.hex()}")
            body = _recv_exact(conn, length)
            if body is None:
                raise TtlvError("connection closed after a message header")
            data = hdr + body
            req = decode(data)
            with self._lock:
                self.requests.append((data, req))
            conn.sendall(encode(self._answer(req)))

    def _answer(self, req):
        if req[0] != T_REQUEST_MESSAGE:
            raise TtlvError(f"top-level tag {req[0]:06X} is not Request Message")
        items = [c for c in req[2] if c[0] == T_BATCH_ITEM]
        out = []
        for bi in items:
            op = child(bi, T_OPERATION)[2]
            payload = child(bi, T_REQUEST_PAYLOAD)
            result = [enum(T_OPERATION, op)]
            if op in self.failures:
                reason, msg = self.failures[op]
                result += [enum(T_RESULT_STATUS, STATUS_FAILED), enum(T_RESULT_REASON, reason),
                           text(T_RESULT_MESSAGE, msg)]
            elif op == OP_DISCOVER_VERSIONS:
                result += [enum(T_RESULT_STATUS, STATUS_SUCCESS),
                           st(T_RESPONSE_PAYLOAD,
                              st(T_PROTOCOL_VERSION, integer(T_PROTOCOL_VERSION_MAJOR, 1),
                                 integer(T_PROTOCOL_VERSION_MINOR, 4)))]
            elif op in (OP_ADD_ATTRIBUTE, OP_MODIFY_ATTRIBUTE):
                echo = [c for c in payload[2] if c[0] in (T_UNIQUE_IDENTIFIER, T_ATTRIBUTE)]
                result += [enum(T_RESULT_STATUS, STATUS_SUCCESS), st(T_RESPONSE_PAYLOAD, *echo)]
            else:
                result += [enum(T_RESULT_STATUS, STATUS_FAILED),
                           enum(T_RESULT_REASON, REASON_OPERATION_NOT_SUPPORTED),
                           text(T_RESULT_MESSAGE, f"operation {op:#x} not supported")]
            out.append(st(T_BATCH_ITEM, *result))
        header = st(T_RESPONSE_HEADER,
                    st(T_PROTOCOL_VERSION, integer(T_PROTOCOL_VERSION_MAJOR, 1),
                       integer(T_PROTOCOL_VERSION_MINOR, 4)),
                    (T_TIME_STAMP, DATETIME, int(time.time())),
                    integer(T_BATCH_COUNT, len(out)))
        return st(T_RESPONSE_MESSAGE, header, *out)

    def snapshot(self):
        with self._lock:
            return list(self.requests), list(self.errors)


# ------------------------------------------------------------------ tests

@pytest.fixture
def fake_kmip(kmip_pki):  # noqa: F811 (fixture argument)
    with FakeKmipServer(kmip_pki) as srv:
        yield srv


def run_cli(vmcrypt, srv, cmd, *args):
    pki = srv.pki
    return vmcrypt.run("kmip", cmd, *args, "--server", srv.endpoint, "--ca", pki.ca,
                       "--cert", pki.client.cert, "--key", pki.client.key,
                       "--timeout", "10000", timeout=60)


def expected_request(op, uid, name, value):
    return st(T_REQUEST_MESSAGE,
              st(T_REQUEST_HEADER,
                 st(T_PROTOCOL_VERSION, integer(T_PROTOCOL_VERSION_MAJOR, 1),
                    integer(T_PROTOCOL_VERSION_MINOR, 4)),
                 integer(T_BATCH_COUNT, 1)),
              st(T_BATCH_ITEM,
                 enum(T_OPERATION, op),
                 st(T_REQUEST_PAYLOAD,
                    text(T_UNIQUE_IDENTIFIER, uid),
                    st(T_ATTRIBUTE,
                       text(T_ATTRIBUTE_NAME, name),
                       text(T_ATTRIBUTE_VALUE, value)))))


def test_decoder_reads_a_published_vector():
    """The decoder and encoder agree with a captured PyKMIP exchange, so a
    mismatch below is vmcrypt's, not the decoder's."""
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "vectors", "kmip",
                        "captured-05-get_attributes-response.hex")
    with open(path) as f:
        data = bytes.fromhex("".join(f.read().split()))
    tree = decode(data)
    assert tree[0] == T_RESPONSE_MESSAGE and encode(tree) == data
    payload = child(child(tree, T_BATCH_ITEM), T_RESPONSE_PAYLOAD)
    assert child(payload, T_UNIQUE_IDENTIFIER) == text(T_UNIQUE_IDENTIFIER, "253")
    first = child(payload, T_ATTRIBUTE)
    assert first == st(T_ATTRIBUTE, text(T_ATTRIBUTE_NAME, "Unique Identifier"),
                       text(T_ATTRIBUTE_VALUE, "253"))


@pytest.mark.parametrize("cmd,op", [("add-attribute", OP_ADD_ATTRIBUTE),
                                    ("modify-attribute", OP_MODIFY_ATTRIBUTE)])
# "vm-42" needs padding; an 8-byte value needs none.
@pytest.mark.parametrize("value", ["vm-42", "vm-00042"])
def test_attribute_request_on_the_wire(vmcrypt, fake_kmip, cmd, op, value):
    uid = str(uuid.uuid4())
    name = "x-vmcrypt-owner"
    r = run_cli(vmcrypt, fake_kmip, cmd, uid, name, value)
    requests, errors = fake_kmip.snapshot()
    assert errors == [], errors
    assert r.returncode == 0 and r.stderr == b"", describe(r)

    ops = [child(child(req, T_BATCH_ITEM), T_OPERATION)[2] for _, req in requests]
    assert ops == [OP_DISCOVER_VERSIONS, op], [hex(o) for o in ops]
    data, req = requests[1]
    want = expected_request(op, uid, name, value)
    assert req == want, f"request:\n{show(req)}\nexpected:\n{show(want)}"
    # Byte for byte too: the decoder is strict, but this also pins the
    # header length and the order of every field.
    assert data == encode(want)


@pytest.mark.parametrize("cmd,op", [("add-attribute", OP_ADD_ATTRIBUTE),
                                    ("modify-attribute", OP_MODIFY_ATTRIBUTE)])
def test_attribute_failure_is_one_line(vmcrypt, fake_kmip, cmd, op):
    uid = str(uuid.uuid4())
    message = f"no object {uid} here"
    fake_kmip.failures[op] = (REASON_ITEM_NOT_FOUND, message)
    r = run_cli(vmcrypt, fake_kmip, cmd, uid, "x-vmcrypt-owner", "vm-42")
    requests, errors = fake_kmip.snapshot()
    assert errors == [], errors
    line = assert_cli_error(r, 1)
    assert line.startswith(f"vmcrypt: key server {fake_kmip.endpoint}: "), line
    assert "Item Not Found" in line and message in line, line
    ops = [child(child(req, T_BATCH_ITEM), T_OPERATION)[2] for _, req in requests]
    assert ops == [OP_DISCOVER_VERSIONS, op], [hex(o) for o in ops]
