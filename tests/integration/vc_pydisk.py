# SPDX-License-Identifier: Apache-2.0
"""An independent reader and writer of the vmcrypt encrypted disk format.

Written from docs/FORMAT.md with Python's hashlib/hmac and
python3-cryptography (OpenSSL underneath) only, so that the C library and
this module check each other: a disk made by one must read back through
the other. Nothing here calls the C code.

Command line (for people, and to regenerate tests/vectors/):
    vc_pydisk.py info FILE
    vc_pydisk.py export FILE DEST --kek-file K [--next-kek-file K2]
    vc_pydisk.py make-example DIR     # the worked example of FORMAT.md
    vc_pydisk.py example-markdown     # its section of FORMAT.md
"""

import argparse
import hashlib
import hmac
import json
import os
import struct
import sys
from dataclasses import dataclass, field
from typing import List, Optional

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# ---- constants (FORMAT.md, "Container layout" and "Header copy") ----------

MAGIC = b"VMCRYPT\x00"
VERSION = 1
HEADER_SIZE = 4096
CIPHER_AES256_XTS = 1
KEY_LEN = 64
KEK_LEN = 32
NONCE_LEN = 12
TAG_LEN = 16
WRAPPED_LEN = NONCE_LEN + KEY_LEN + TAG_LEN  # 92
PROVIDER_FIELD = 64
KEY_ID_FIELD = 128
MAX_VSIZE = 1 << 56
MIB = 1 << 20
MAX_PAYLOAD_OFFSET = 1024 * MIB
DEFAULT_JOURNAL_OFFSET = 1 * MIB
DEFAULT_JOURNAL_SIZE = 1 * MIB
DEFAULT_PAYLOAD_OFFSET = 2 * MIB

FLAG_REKEY = 0x1
FLAG_JOURNAL = 0x2

DEK_FORMAT = b"vmcrypt-disk-dek/1"
AD_TAG = b"VCWRAP1\x00"
MAC_INFO = b"vmcrypt disk header mac v1"

# Field offsets within one header copy.
OFF_MAGIC = 0
OFF_VERSION = 8
OFF_COPY = 10
OFF_HDRSIZE = 12
OFF_SEQ = 16
OFF_UUID = 24
OFF_VSIZE = 40
OFF_SECTOR = 48
OFF_CIPHER = 52
OFF_PAYLOAD = 56
OFF_JOFF = 64
OFF_JSIZE = 72
OFF_FLAGS = 80
OFF_RESERVED0 = 84
OFF_PROGRESS = 88
OFF_JSTART = 96
OFF_JCOUNT = 104
OFF_JSHA = 112
OFF_SLOTS = 144
SLOT_SIZE = 320
OFF_RESERVED = OFF_SLOTS + 2 * SLOT_SIZE  # 784
OFF_MAC = 4032       # HMAC-SHA-256 of bytes [0, 4032)
OFF_CHECKSUM = 4064  # SHA-256 of bytes [0, 4064), the MAC included

# Offsets within a key slot.
SL_STATE = 0
SL_KEYLEN = 4
SL_GENERATION = 8
SL_PROVIDER = 16
SL_KEY_ID = 80
SL_WRAPPED = 208
SL_END = SL_WRAPPED + WRAPPED_LEN  # 300


class FormatError(Exception):
    """The file is not a readable vmcrypt disk (no valid header copy)."""


class UnsupportedVersion(FormatError):
    pass


class WrongKey(Exception):
    """A KEK does not unwrap a slot's key (GCM authentication failed)."""


class AuthError(Exception):
    """The header MAC does not verify: modified without the key."""


class JournalError(Exception):
    """A pending rekey journal does not match its SHA-256."""


def u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def u32(b, o):
    return struct.unpack_from("<I", b, o)[0]


def u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def all_zero(b) -> bool:
    return not any(b)


# ---- primitives ------------------------------------------------------------


def binding_ad(uuid: bytes, provider: str, key_id: str, generation: int) -> bytes:
    """Associated data of a wrapped DEK (FORMAT.md, "Key wrapping")."""
    out = bytearray(AD_TAG)
    for f in (DEK_FORMAT, uuid, provider.encode(), key_id.encode()):
        if len(f) > 255:
            raise ValueError("binding field longer than 255 bytes")
        out += struct.pack("<H", len(f)) + f
    out += struct.pack("<Q", generation)
    return bytes(out)


def wrap_key(kek: bytes, ad: bytes, key: bytes, nonce: bytes) -> bytes:
    assert len(kek) == KEK_LEN and len(nonce) == NONCE_LEN
    return nonce + AESGCM(kek).encrypt(nonce, key, ad)


def unwrap_key(kek: bytes, ad: bytes, wrapped: bytes) -> bytes:
    if len(kek) != KEK_LEN:
        raise ValueError("a KEK is 32 bytes")
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_LEN], wrapped[NONCE_LEN:], ad)
    except InvalidTag:
        raise WrongKey("wrapped key does not authenticate") from None


def check_dek(dek: bytes) -> bytes:
    if len(dek) != KEY_LEN or dek[:32] == dek[32:]:
        raise FormatError("a DEK is 64 bytes with two different halves")
    return dek


def derive_mac_key(dek: bytes, uuid: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=uuid,
                info=MAC_INFO).derive(dek)


def header_mac(mac_key: bytes, copy_bytes: bytes) -> bytes:
    return hmac.new(mac_key, copy_bytes[:OFF_MAC], hashlib.sha256).digest()


def xts_tweak(sector: int) -> bytes:
    return struct.pack("<QQ", sector, 0)


def xts_sector(dek: bytes, sector: int, data: bytes, encrypt: bool) -> bytes:
    """One sector; python-cryptography refuses keys with equal halves,
    which vmcrypt never generates either."""
    c = Cipher(algorithms.AES(dek), modes.XTS(xts_tweak(sector)))
    op = c.encryptor() if encrypt else c.decryptor()
    return op.update(data) + op.finalize()


# ---- header ------------------------------------------------------------------


@dataclass
class Slot:
    state: int = 0
    generation: int = 0
    provider: str = ""
    key_id: str = ""
    wrapped: bytes = bytes(WRAPPED_LEN)


@dataclass
class Header:
    version: int = VERSION
    copy: int = 0
    seq: int = 1
    uuid: bytes = bytes(16)
    vsize: int = 0
    ss: int = 4096
    cipher: int = CIPHER_AES256_XTS
    payload: int = DEFAULT_PAYLOAD_OFFSET
    joff: int = DEFAULT_JOURNAL_OFFSET
    jsize: int = DEFAULT_JOURNAL_SIZE
    flags: int = 0
    progress: int = 0
    jstart: int = 0
    jcount: int = 0
    jsha: bytes = bytes(32)
    slots: List[Slot] = field(default_factory=lambda: [Slot(), Slot()])
    raw: bytes = b""  # the 4096 bytes it was parsed from

    @property
    def nsectors(self) -> int:
        return self.vsize // self.ss


def _get_str(b: bytes) -> str:
    n = b.find(b"\x00")
    if n <= 0 or not all_zero(b[n:]):
        raise ValueError
    return b[:n].decode("utf-8", "surrogateescape")


def parse_copy(b: bytes, expect_copy: Optional[int] = None) -> Header:
    """Key-free validation of one copy, check for check as FORMAT.md lists
    them. Raises FormatError (UnsupportedVersion for another version)."""
    if len(b) != HEADER_SIZE:
        raise FormatError("short header copy")
    if b[OFF_MAGIC:OFF_MAGIC + 8] != MAGIC:
        raise FormatError("no vmcrypt magic")
    h = Header(raw=bytes(b))
    h.version = u16(b, OFF_VERSION)
    if h.version != VERSION:
        raise UnsupportedVersion("unsupported format version %d" % h.version)
    if hashlib.sha256(b[:OFF_CHECKSUM]).digest() != b[OFF_CHECKSUM:]:
        raise FormatError("checksum mismatch")
    if u32(b, OFF_HDRSIZE) != HEADER_SIZE:
        raise FormatError("header size is not 4096")
    h.copy = u16(b, OFF_COPY)
    if h.copy > 1 or (expect_copy is not None and h.copy != expect_copy):
        raise FormatError("bad copy index")
    h.seq = u64(b, OFF_SEQ)
    h.uuid = bytes(b[OFF_UUID:OFF_UUID + 16])
    h.vsize = u64(b, OFF_VSIZE)
    h.ss = u32(b, OFF_SECTOR)
    h.cipher = u32(b, OFF_CIPHER)
    h.payload = u64(b, OFF_PAYLOAD)
    h.joff = u64(b, OFF_JOFF)
    h.jsize = u64(b, OFF_JSIZE)
    h.flags = u32(b, OFF_FLAGS)
    h.progress = u64(b, OFF_PROGRESS)
    h.jstart = u64(b, OFF_JSTART)
    h.jcount = u64(b, OFF_JCOUNT)
    h.jsha = bytes(b[OFF_JSHA:OFF_JSHA + 32])

    if h.ss not in (512, 4096):
        raise FormatError("bad sector size")
    if h.cipher != CIPHER_AES256_XTS:
        raise FormatError("unknown cipher")
    if h.vsize == 0 or h.vsize > MAX_VSIZE or h.vsize % h.ss:
        raise FormatError("bad virtual size")
    if (h.payload < 2 * HEADER_SIZE or h.payload % 4096
            or h.payload > MAX_PAYLOAD_OFFSET):
        raise FormatError("bad payload offset")
    if (h.joff < 2 * HEADER_SIZE or h.joff % 4096 or h.jsize < 4096
            or h.jsize % 4096 or h.joff + h.jsize > h.payload):
        raise FormatError("bad journal area")
    if h.flags & ~(FLAG_REKEY | FLAG_JOURNAL):
        raise FormatError("unknown flags")
    if u32(b, OFF_RESERVED0) or not all_zero(b[OFF_RESERVED:OFF_MAC]):
        raise FormatError("reserved bytes are not zero")

    for i in range(2):
        p = b[OFF_SLOTS + i * SLOT_SIZE:OFF_SLOTS + (i + 1) * SLOT_SIZE]
        s = h.slots[i]
        s.state = u32(p, SL_STATE)
        if s.state == 0:
            if not all_zero(p):
                raise FormatError("empty key slot %d is not zero" % i)
            continue
        if s.state != 1:
            raise FormatError("key slot %d has unknown state" % i)
        if u32(p, SL_KEYLEN) != KEY_LEN:
            raise FormatError("key slot %d: key length is not 64" % i)
        s.generation = u64(p, SL_GENERATION)
        try:
            s.provider = _get_str(p[SL_PROVIDER:SL_KEY_ID])
            s.key_id = _get_str(p[SL_KEY_ID:SL_WRAPPED])
        except ValueError:
            raise FormatError("key slot %d: bad provider or key id" % i) from None
        s.wrapped = bytes(p[SL_WRAPPED:SL_END])
        if not all_zero(p[SL_END:]):
            raise FormatError("key slot %d: padding is not zero" % i)

    rekey = bool(h.flags & FLAG_REKEY)
    if not h.slots[0].state:
        raise FormatError("key slot 0 is empty")
    if bool(h.slots[1].state) != rekey:
        raise FormatError("key slot 1 does not match the rekey flag")
    if rekey:
        if h.slots[1].generation <= h.slots[0].generation:
            raise FormatError("rekey target generation is not newer")
        if h.progress > h.nsectors:
            raise FormatError("rekey progress beyond the end of the disk")
    elif h.progress:
        raise FormatError("rekey progress without a rekey")
    if h.flags & FLAG_JOURNAL:
        if (not rekey or h.jstart != h.progress or h.jcount == 0
                or h.jcount > h.jsize // h.ss
                or h.jcount > h.nsectors - h.jstart):
            raise FormatError("inconsistent rekey journal fields")
    elif h.jstart or h.jcount or not all_zero(h.jsha):
        raise FormatError("journal fields set without a journal")
    return h


def encode_body(h: Header, copy: int) -> bytearray:
    b = bytearray(HEADER_SIZE)
    b[OFF_MAGIC:OFF_MAGIC + 8] = MAGIC
    struct.pack_into("<HHIQ", b, OFF_VERSION, h.version, copy, HEADER_SIZE, h.seq)
    b[OFF_UUID:OFF_UUID + 16] = h.uuid
    struct.pack_into("<QIIQQQI", b, OFF_VSIZE, h.vsize, h.ss, h.cipher,
                     h.payload, h.joff, h.jsize, h.flags)
    struct.pack_into("<QQQ", b, OFF_PROGRESS, h.progress, h.jstart, h.jcount)
    b[OFF_JSHA:OFF_JSHA + 32] = h.jsha
    for i, s in enumerate(h.slots):
        if not s.state:
            continue
        o = OFF_SLOTS + i * SLOT_SIZE
        struct.pack_into("<IIQ", b, o, s.state, KEY_LEN, s.generation)
        prov, kid = s.provider.encode(), s.key_id.encode()
        assert 0 < len(prov) < PROVIDER_FIELD and 0 < len(kid) < KEY_ID_FIELD
        b[o + SL_PROVIDER:o + SL_PROVIDER + len(prov)] = prov
        b[o + SL_KEY_ID:o + SL_KEY_ID + len(kid)] = kid
        b[o + SL_WRAPPED:o + SL_END] = s.wrapped
    return b


def encode_copy(h: Header, copy: int, mac_key: bytes) -> bytes:
    b = encode_body(h, copy)
    b[OFF_MAC:OFF_CHECKSUM] = header_mac(mac_key, b)
    b[OFF_CHECKSUM:] = hashlib.sha256(b[:OFF_CHECKSUM]).digest()
    return bytes(b)


@dataclass
class CopyStatus:
    ok: bool
    problem: Optional[str]
    header: Optional[Header]


def pick_copy(two_copies: bytes):
    """(chosen header, [CopyStatus, CopyStatus]): the valid copy with the
    highest sequence; copy 0 on a tie."""
    st = []
    for i in range(2):
        try:
            h = parse_copy(two_copies[i * HEADER_SIZE:(i + 1) * HEADER_SIZE], i)
            st.append(CopyStatus(True, None, h))
        except FormatError as e:
            st.append(CopyStatus(False, str(e), None))
    best = None
    for i in range(2):
        if st[i].ok and (best is None or st[i].header.seq > st[best].header.seq):
            best = i
    if best is None:
        for s in st:
            if s.problem.startswith("unsupported format version"):
                raise UnsupportedVersion(s.problem)
        raise FormatError("no valid header copy (copy 0: %s; copy 1: %s)"
                          % (st[0].problem, st[1].problem))
    return st[best].header, st


# ---- reader ------------------------------------------------------------------


class Disk:
    """Read-only view of a disk file. kek unwraps slot 0; next_kek slot 1
    during a deep rekey (default: kek)."""

    def __init__(self, path: str, kek: Optional[bytes] = None,
                 next_kek: Optional[bytes] = None, verify_journal=True):
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self.fd).st_size
            if self.size < 2 * HEADER_SIZE:
                raise FormatError("file too small for a header")
            self.h, self.copies = pick_copy(self._pread(0, 2 * HEADER_SIZE))
            self.copy_used = next(i for i in range(2)
                                  if self.copies[i].header is self.h)
            if self.size < self.h.payload + self.h.vsize:
                raise FormatError("container smaller than the header says")
            self.dek = [None, None]
            if kek is not None:
                self._unlock(kek, next_kek, verify_journal)
        except BaseException:
            os.close(self.fd)
            raise

    def close(self):
        os.close(self.fd)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _pread(self, off: int, n: int) -> bytes:
        b = os.pread(self.fd, n, off)
        if len(b) != n:
            raise FormatError("short read at %d" % off)
        return b

    def ad(self, i: int) -> bytes:
        s = self.h.slots[i]
        return binding_ad(self.h.uuid, s.provider, s.key_id, s.generation)

    def _unlock(self, kek, next_kek, verify_journal):
        h = self.h
        # The MAC key comes from slot 0's DEK, so the MAC can only be
        # checked once that DEK is unwrapped (and so authenticated by GCM).
        self.dek[0] = check_dek(unwrap_key(kek, self.ad(0), h.slots[0].wrapped))
        self.mac_key = derive_mac_key(self.dek[0], h.uuid)
        if not hmac.compare_digest(header_mac(self.mac_key, h.raw),
                                   h.raw[OFF_MAC:OFF_CHECKSUM]):
            raise AuthError("header MAC does not verify")
        if h.slots[1].state:
            self.dek[1] = check_dek(unwrap_key(next_kek if next_kek is not None else kek,
                                               self.ad(1), h.slots[1].wrapped))
        if h.flags & FLAG_JOURNAL and verify_journal:
            j = self._pread(h.joff, h.jcount * h.ss)
            if hashlib.sha256(j).digest() != h.jsha:
                raise JournalError("rekey journal does not match its checksum")

    def slot_for(self, sector: int) -> int:
        h = self.h
        return 1 if (h.flags & FLAG_REKEY and sector < h.progress) else 0

    def stored_sector(self, sector: int):
        """(stored bytes, key slot) for a sector: from the journal while a
        rekey step is pending there, else in place."""
        h = self.h
        if not 0 <= sector < h.nsectors:
            raise IndexError("sector out of range")
        if h.flags & FLAG_JOURNAL and h.jstart <= sector < h.jstart + h.jcount:
            return self._pread(h.joff + (sector - h.jstart) * h.ss, h.ss), 0
        return self._pread(h.payload + sector * h.ss, h.ss), self.slot_for(sector)

    def read_sector(self, sector: int) -> bytes:
        data, slot = self.stored_sector(sector)
        if all_zero(data):
            return data  # a hole
        return xts_sector(self.dek[slot], sector, data, encrypt=False)

    def read_all(self) -> bytes:
        return b"".join(self.read_sector(s) for s in range(self.h.nsectors))

    def export(self, dest: str):
        with open(dest, "wb") as f:
            for s in range(self.h.nsectors):
                f.write(self.read_sector(s))


# ---- writer ------------------------------------------------------------------


@dataclass
class SlotSpec:
    kek: bytes
    dek: bytes
    nonce: bytes
    provider: str
    key_id: str
    generation: int


def make_header(uuid: bytes, vsize: int, ss: int, slots: List[SlotSpec],
                seq: int = 1, progress: int = 0) -> Header:
    h = Header(seq=seq, uuid=uuid, vsize=vsize, ss=ss)
    for i, sp in enumerate(slots):
        s = h.slots[i]
        s.state, s.generation = 1, sp.generation
        s.provider, s.key_id = sp.provider, sp.key_id
        ad = binding_ad(uuid, sp.provider, sp.key_id, sp.generation)
        s.wrapped = wrap_key(sp.kek, ad, sp.dek, sp.nonce)
    if len(slots) > 1:
        h.flags |= FLAG_REKEY
        h.progress = progress
    return h


def write_disk(path: str, *, uuid: bytes, ss: int, plaintext: bytes,
               slots: List[SlotSpec], seq: int = 1, progress: int = 0,
               journal: Optional[int] = None, torn: bool = True) -> Header:
    """Create a sparse disk file holding plaintext (its length is the
    virtual size). slots[1], if given, is a deep rekey in progress with
    sectors below progress under its key. journal=N additionally records a
    pending step of N sectors at progress: its old-key ciphertext goes to
    the journal and, with torn, the in-place copy is left half re-encrypted
    as a crash would leave it."""
    vsize = len(plaintext)
    h = make_header(uuid, vsize, ss, slots, seq, progress)
    mac_key = derive_mac_key(slots[0].dek, uuid)
    deks = [s.dek for s in slots]

    def enc(sector, slot):
        p = plaintext[sector * ss:(sector + 1) * ss]
        return p if all_zero(p) else xts_sector(deks[slot], sector, p, True)

    with open(path, "xb") as f:
        f.truncate(h.payload + vsize)
        for s in range(vsize // ss):
            c = enc(s, 1 if s < progress else 0)
            if not all_zero(c):
                f.seek(h.payload + s * ss)
                f.write(c)
        if journal:
            j = b"".join(enc(s, 0) for s in range(progress, progress + journal))
            h.flags |= FLAG_JOURNAL
            h.jstart, h.jcount = progress, journal
            h.jsha = hashlib.sha256(j).digest()
            f.seek(h.joff)
            f.write(j)
            if torn:
                half = journal // 2 or 1
                f.seek(h.payload + progress * ss)
                f.write(b"".join(enc(s, 1) for s in range(progress, progress + half)))
        f.seek(0)
        f.write(encode_copy(h, 0, mac_key) + encode_copy(h, 1, mac_key))
    return h


# ---- the worked example (FORMAT.md, tests/vectors/) --------------------------

EXAMPLE = {
    "kek": bytes(range(0x00, 0x20)),
    "dek": bytes(range(0x40, 0x80)),
    "uuid": bytes.fromhex("6b2f0c1e8d4a4c3b9e510a1b2c3d4e5f"),
    "nonce": bytes(range(0xa0, 0xac)),
    "provider": "local",
    "key_id": "example-kek-1",
    "generation": 1,
    "sequence": 1,
    "sector_size": 512,
    "virtual_size": 8192,
    "shown_sector": 2,
}


def uuid_str(u: bytes) -> str:
    x = u.hex()
    return "-".join((x[:8], x[8:12], x[12:16], x[16:20], x[20:]))


def example_plaintext() -> bytes:
    """16 sectors of 512 bytes: text, a hole, a byte ramp, holes, text."""
    ss, n = EXAMPLE["sector_size"], EXAMPLE["virtual_size"] // EXAMPLE["sector_size"]
    secs = [bytes(ss)] * n
    line = b"vmcrypt FORMAT.md worked example, sector 0.\n"
    secs[0] = (line * (ss // len(line) + 1))[:ss]
    secs[2] = bytes(range(256)) * 2
    secs[15] = b"last sector: only these bytes are not zero.".ljust(ss, b"\0")
    return b"".join(secs)


def example_slot() -> SlotSpec:
    e = EXAMPLE
    return SlotSpec(e["kek"], e["dek"], e["nonce"], e["provider"], e["key_id"],
                    e["generation"])


def make_example(outdir: str):
    """Write the example disk as the three committed vector files (the
    container would be 2 MiB of mostly zeros): header area (both copies),
    payload, and the expected plaintext; plus the inputs and derived
    values as JSON."""
    e = EXAMPLE
    import tempfile
    plain = example_plaintext()
    with tempfile.TemporaryDirectory() as t:
        path = os.path.join(t, "example.vmcd")
        h = write_disk(path, uuid=e["uuid"], ss=e["sector_size"], plaintext=plain,
                       slots=[example_slot()], seq=e["sequence"])
        with open(path, "rb") as f:
            data = f.read()
    files = {
        "disk-example.header": data[:2 * HEADER_SIZE],
        "disk-example.payload": data[h.payload:h.payload + h.vsize],
        "disk-example.plain": plain,
    }
    for name, b in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(b)
    with open(os.path.join(outdir, "disk-example.json"), "w") as f:
        json.dump(example_values(), f, indent=2)
        f.write("\n")


def example_values() -> dict:
    e = EXAMPLE
    ad = binding_ad(e["uuid"], e["provider"], e["key_id"], e["generation"])
    wrapped = wrap_key(e["kek"], ad, e["dek"], e["nonce"])
    n = e["shown_sector"]
    ss = e["sector_size"]
    p = example_plaintext()[n * ss:(n + 1) * ss]
    return {
        "comment": "docs/FORMAT.md worked example; regenerate with "
                   "tests/integration/vc_pydisk.py make-example tests/vectors",
        "kek": e["kek"].hex(),
        "dek": e["dek"].hex(),
        "uuid": uuid_str(e["uuid"]),
        "nonce": e["nonce"].hex(),
        "provider": e["provider"],
        "key_id": e["key_id"],
        "generation": e["generation"],
        "sequence": e["sequence"],
        "virtual_size": e["virtual_size"],
        "sector_size": ss,
        "payload_offset": DEFAULT_PAYLOAD_OFFSET,
        "journal_offset": DEFAULT_JOURNAL_OFFSET,
        "journal_size": DEFAULT_JOURNAL_SIZE,
        "associated_data": ad.hex(),
        "wrapped_dek": wrapped.hex(),
        "mac_key": derive_mac_key(e["dek"], e["uuid"]).hex(),
        "shown_sector": n,
        "xts_tweak": xts_tweak(n).hex(),
        "sector_plaintext": p.hex(),
        "sector_ciphertext": xts_sector(e["dek"], n, p, True).hex(),
        "hole_sectors": [s for s in range(e["virtual_size"] // ss)
                         if all_zero(example_plaintext()[s * ss:(s + 1) * ss])],
    }


def hexdump(b: bytes, base: int = 0) -> str:
    """hexdump -C style; runs of all-zero lines after the first collapse
    into '*'."""
    out, prev_zero = [], False
    for o in range(0, len(b), 16):
        row = b[o:o + 16]
        z = all_zero(row)
        if z and prev_zero:
            if out[-1] != "*":
                out.append("*")
            continue
        prev_zero = z
        hx = " ".join("%02x" % c for c in row[:8]) + "  " + \
            " ".join("%02x" % c for c in row[8:])
        asc = "".join(chr(c) if 32 <= c < 127 else "." for c in row)
        out.append("%08x  %-48s  |%s|" % (base + o, hx, asc))
    out.append("%08x" % (base + len(b)))
    return "\n".join(out)


def _wrap_hex(label: str, hx: str, width: int = 64) -> str:
    lines = [hx[i:i + width] for i in range(0, len(hx), width)] or [""]
    pad = " " * (len(label) + 3)
    return label + " = " + ("\n" + pad).join(lines)


def example_markdown() -> str:
    """The generated part of FORMAT.md's worked example, verbatim."""
    v = example_values()
    ad = bytes.fromhex(v["associated_data"])
    w = bytes.fromhex(v["wrapped_dek"])
    dek = bytes.fromhex(v["dek"])
    h = make_header(EXAMPLE["uuid"], v["virtual_size"], v["sector_size"],
                    [example_slot()], v["sequence"])
    copy0 = encode_copy(h, 0, bytes.fromhex(v["mac_key"]))
    # AD broken into its fields.
    o = 8
    ad_lines = ["%-44s %s" % ("56 43 57 52 41 50 31 00", '"VCWRAP1\\0"')]
    for name in ("format", "uuid", "provider", "key id"):
        n = struct.unpack_from("<H", ad, o)[0]
        ad_lines.append("%-44s length %d of the %s" % (ad[o:o + 2].hex(" "), n, name))
        val = ad[o + 2:o + 2 + n]
        for i in range(0, n, 14):
            part = val[i:i + 14]
            desc = ('"%s"' % part.decode()) if name != "uuid" else "UUID bytes"
            ad_lines.append("%-44s %s" % (part.hex(" "), desc))
        o += 2 + n
    ad_lines.append("%-44s generation %d (64-bit LE)" % (ad[o:o + 8].hex(" "),
                                                         v["generation"]))
    assert o + 8 == len(ad)
    s = []
    s.append("```")
    s.append(_wrap_hex("KEK        ", v["kek"]))
    s.append(_wrap_hex("DEK (K1)   ", dek[:32].hex()))
    s.append(_wrap_hex("DEK (K2)   ", dek[32:].hex()))
    s.append("UUID        = %s (bytes %s)" % (v["uuid"], EXAMPLE["uuid"].hex()))
    s.append("provider    = \"%s\", key id = \"%s\", generation = %d, sequence = %d"
             % (v["provider"], v["key_id"], v["generation"], v["sequence"]))
    s.append("virtual size = %d, sector size = %d (%d sectors)"
             % (v["virtual_size"], v["sector_size"],
                v["virtual_size"] // v["sector_size"]))
    s.append(_wrap_hex("nonce      ", v["nonce"]))
    s.append("```")
    s.append("")
    s.append("Associated data (%d bytes):" % len(ad))
    s.append("")
    s.append("```")
    s.extend(ad_lines)
    s.append("```")
    s.append("")
    s.append("Wrapped DEK (%d bytes = nonce || ciphertext || tag), stored at slot "
             "offset 208:" % len(w))
    s.append("")
    s.append("```")
    s.append(_wrap_hex("nonce      ", w[:12].hex()))
    s.append(_wrap_hex("ciphertext ", w[12:76].hex()))
    s.append(_wrap_hex("tag        ", w[76:].hex()))
    s.append("```")
    s.append("")
    s.append("MAC key = HKDF-SHA-256(DEK, salt = UUID bytes, info = "
             "\"vmcrypt disk header mac v1\", 32 bytes):")
    s.append("")
    s.append("```")
    s.append(_wrap_hex("MAC key    ", v["mac_key"]))
    s.append(_wrap_hex("MAC        ", copy0[OFF_MAC:OFF_CHECKSUM].hex()))
    s.append(_wrap_hex("checksum   ", copy0[OFF_CHECKSUM:].hex()))
    s.append("```")
    s.append("")
    s.append("Header copy 0 (bytes 0 to 4095 of the file; `*` = zero lines "
             "omitted; copy 1 differs only in the copy index at offset 10, "
             "the checksum and the MAC):")
    s.append("")
    s.append("```")
    s.append(hexdump(copy0))
    s.append("```")
    s.append("")
    s.append("Sector %d (payload offset %d + %d x %d = file offset %d), tweak %s:"
             % (v["shown_sector"], v["payload_offset"], v["shown_sector"],
                v["sector_size"], v["payload_offset"] + v["shown_sector"] * v["sector_size"],
                v["xts_tweak"]))
    s.append("")
    s.append("```")
    s.append("plaintext:")
    s.append(hexdump(bytes.fromhex(v["sector_plaintext"])))
    s.append("ciphertext:")
    s.append(hexdump(bytes.fromhex(v["sector_ciphertext"])))
    s.append("```")
    s.append("")
    s.append("Holes (stored as zeros, read as zeros): sectors %s."
             % ", ".join(str(x) for x in v["hole_sectors"]))
    return "\n".join(s) + "\n"


def assemble_example(vectors_dir: str, path: str):
    """Rebuild the full sparse example disk from the committed pieces."""
    with open(os.path.join(vectors_dir, "disk-example.header"), "rb") as f:
        hdr = f.read()
    with open(os.path.join(vectors_dir, "disk-example.payload"), "rb") as f:
        payload = f.read()
    h = parse_copy(hdr[:HEADER_SIZE])
    with open(path, "xb") as f:
        f.truncate(h.payload + len(payload))
        f.write(hdr)
        f.seek(h.payload)
        f.write(payload)


# ---- command line ------------------------------------------------------------


def read_kek(path: str) -> bytes:
    with open(path, "rb") as f:
        b = f.read()
    if len(b) == KEK_LEN:
        return b
    return bytes.fromhex(b.decode().strip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("info")
    p.add_argument("file")
    p = sub.add_parser("export")
    p.add_argument("file")
    p.add_argument("dest")
    p.add_argument("--kek-file", required=True)
    p.add_argument("--next-kek-file")
    p = sub.add_parser("make-example")
    p.add_argument("dir")
    sub.add_parser("example-markdown")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "info":
            with Disk(a.file) as d:
                h = d.h
                print(json.dumps({
                    "uuid": uuid_str(h.uuid), "sequence": h.seq,
                    "virtual_size": h.vsize, "sector_size": h.ss,
                    "payload_offset": h.payload, "flags": h.flags,
                    "progress": h.progress, "journal": [h.jstart, h.jcount],
                    "slots": [{"state": s.state, "generation": s.generation,
                               "provider": s.provider, "key_id": s.key_id}
                              for s in h.slots],
                    "copy_used": d.copy_used,
                    "copies": [{"ok": c.ok, "problem": c.problem} for c in d.copies],
                }, indent=2))
        elif a.cmd == "export":
            nk = read_kek(a.next_kek_file) if a.next_kek_file else None
            with Disk(a.file, read_kek(a.kek_file), nk) as d:
                d.export(a.dest)
        elif a.cmd == "make-example":
            make_example(a.dir)
        elif a.cmd == "example-markdown":
            sys.stdout.write(example_markdown())
    except (FormatError, WrongKey, AuthError, JournalError, OSError) as e:
        print("vc_pydisk: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
