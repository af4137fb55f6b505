# SPDX-License-Identifier: Apache-2.0
# The manager's event log through the real vmcryptd: every security and
# crypto operation leaves an event with the right user, operation, object,
# provider, key id and result; filters agree with the full list filtered
# here; JSON Lines and CSV exports agree with the JSON list; the hash chain
# is recomputed here from docs (lib/vc_event.h encoding) and checked by
# `vmcrypt events verify` and GET /events/verify, before and after one row
# of the SQLite file is edited behind the daemon's back.
import csv
import hashlib
import io
import re
import struct
import time

import pytest

from vc_manager import (ADMIN, PASSWORD, Cli, add_object, add_user, assert_error,
                        grant, loads, wait_task)
from vc_manager import admin, manager  # noqa: F401 (pytest fixtures)
from vc_util import assert_cli_error, describe

FIELDS = ["seq", "time_us", "user", "operation", "object", "provider", "key_id", "result",
          "message", "prev_hash", "hash"]
STRINGS = ["user", "operation", "object", "provider", "key_id", "result", "message"]
BACKUP_PASSWORD = "events-backup-pw-2b"
GENESIS = bytes(32)

STATE = {}     # what the first test did, for the later ones


def encode(ev):
    """lib/vc_event.h "Canonical encoding"."""
    out = b"vmcrypt-event-v1" + struct.pack(">qq", ev["seq"], ev["time_us"])
    for f in STRINGS:
        b = (ev[f] or "").encode()
        out += struct.pack(">I", len(b)) + b
    return out + bytes.fromhex(ev["prev_hash"])


def first_bad(events):
    """The seq of the first event that breaks the chain, or None."""
    prev_hash, prev_seq = GENESIS, 0
    for ev in events:
        if (hashlib.sha256(encode(ev)).hexdigest() != ev["hash"] or ev["seq"] != prev_seq + 1
                or bytes.fromhex(ev["prev_hash"]) != prev_hash):
            return ev["seq"]
        prev_hash, prev_seq = bytes.fromhex(ev["hash"]), ev["seq"]
    return None


def events(api, **query):
    r = api.request("GET", "events", query=query or None)
    assert r.status == 200, r
    assert r.content_type.split(";")[0] == "application/json", r
    return r.json["events"]


class Log:
    """Expectations on the events appended since the previous call."""

    def __init__(self, api):
        self.api = api
        evs = events(api)
        self.seq = evs[-1]["seq"] if evs else 0

    def new(self):
        evs = [e for e in events(self.api) if e["seq"] > self.seq]
        if evs:
            self.seq = evs[-1]["seq"]
        return evs

    def expect(self, operation, result="success", mentions=None, **fields):
        """The one event of this operation among the new ones: fields must
        match exactly; `mentions` must appear in object or message."""
        evs = self.new()
        mine = [e for e in evs if e["operation"] == operation]
        assert len(mine) == 1, f"expected one {operation} event, got {evs}"
        e = mine[0]
        assert e["result"] == result, e
        for k, v in fields.items():
            assert e[k] == v, f"{operation}: {k} is {e[k]!r}, expected {v!r}: {e}"
        if mentions is not None:
            assert mentions in (e["object"] or "") or mentions in (e["message"] or ""), \
                f"{operation} must name {mentions!r} in object or message: {e}"
        for f in FIELDS:
            assert f in e, f"{f} missing: {e}"
        assert e["user"], e
        return e


def test_operations_leave_events(manager, admin):
    log = Log(admin)
    mgr = manager

    a = mgr.login()
    log.expect("session.login", user=ADMIN)
    r = mgr.api().login(ADMIN, "wrong password here")
    assert_error(r, 401, "unauthorized")
    log.expect("session.login", result="failure", user=ADMIN)

    add_user(a, "ev-bob")
    log.expect("user.create", user=ADMIN, mentions="ev-bob")
    a.ok("POST", "roles", {"name": "ev-role", "privileges": ["System.View", "Folder.Create"]},
         ok=(201,))
    log.expect("role.create", user=ADMIN, mentions="ev-role")
    fid = add_object(a, "root", "folder", "ev-folder")
    log.expect("inventory.create", user=ADMIN, object=fid)
    a.ok("PATCH", f"inventory/{fid}", {"name": "ev-folder-2"}, ok=(200,))
    log.expect("inventory.rename", user=ADMIN, object=fid)
    grant(a, "ev-bob", "ev-role", fid)
    log.expect("permission.add", user=ADMIN, object=fid)

    a.ok("POST", "key-providers", {"name": "ev-nat", "kind": "native"}, ok=(201,))
    log.expect("provider.add", user=ADMIN, provider="ev-nat")
    b = a.ok("POST", "key-providers/ev-nat/backup", {"password": BACKUP_PASSWORD}, ok=(200,))
    log.expect("provider.backup", user=ADMIN, provider="ev-nat")
    k = a.ok("POST", "key-providers/ev-nat/keys", {}, ok=(201,))
    kc = log.expect("key.create", user=ADMIN, provider="ev-nat", key_id=k["key_id"])
    a.ok("GET", f"key-providers/ev-nat/keys/{k['key_id']}", ok=(200,))
    log.expect("key.get", user=ADMIN, provider="ev-nat", key_id=k["key_id"])
    t = a.ok("POST", "key-providers/ev-nat/check", ok=(202,))["task"]
    wait_task(a, t)
    log.expect("provider.check", user=ADMIN, provider="ev-nat")
    a.ok("POST", "policies", {"name": "ev-pol", "encrypt": True, "migration": "required",
                              "provider": "ev-nat"}, ok=(201,))
    log.expect("policy.create", user=ADMIN, mentions="ev-pol")
    a.ok("DELETE", "policies/ev-pol", ok=(204,))
    log.expect("policy.delete", user=ADMIN, mentions="ev-pol")
    a.ok("DELETE", "key-providers/ev-nat", ok=(204,))
    log.expect("provider.remove", user=ADMIN, provider="ev-nat")
    a.ok("POST", "key-providers", {"name": "ev-nat2", "kind": "native",
                                   "restore": {"backup": b["backup"],
                                               "password": BACKUP_PASSWORD}}, ok=(201,))
    log.expect("provider.restore", user=ADMIN, provider="ev-nat2")
    a.ok("POST", "key-providers/ev-nat2/default", ok=(200,))
    log.expect("provider.default", user=ADMIN, provider="ev-nat2")

    bob = mgr.login("ev-bob", PASSWORD)
    log.expect("session.login", user="ev-bob")
    r = bob.request("POST", "key-providers/ev-nat2/keys", {})
    err = assert_error(r, 403, "forbidden")
    d = log.expect("access.denied", result="denied", user="ev-bob")
    assert err["privilege"] in d["message"], (err, d)
    obj = re.search(r"on object '([^']+)'", err["message"]).group(1)
    assert d["object"] == obj, (err, d)
    r = bob.request("POST", "inventory", {"parent": "root", "kind": "folder", "name": "x"})
    err = assert_error(r, 403, "forbidden")
    d = log.expect("access.denied", result="denied", user="ev-bob", object="root")
    assert err["privilege"] in d["message"], d
    bob.ok("POST", "session/password", {"old_password": PASSWORD,
                                        "new_password": PASSWORD + "-2"}, ok=(204,))
    log.expect("session.password", user="ev-bob")
    bob = mgr.login("ev-bob", PASSWORD + "-2")
    log.expect("session.login", user="ev-bob")
    bob.ok("DELETE", "session", ok=(204,))
    log.expect("session.logout", user="ev-bob")
    a.ok("PUT", "users/ev-bob/password", {"password": PASSWORD}, ok=(204,))
    log.expect("user.password", user=ADMIN, mentions="ev-bob")
    a.ok("DELETE", "permissions", query={"principal": "ev-bob", "object": fid}, ok=(204,))
    log.expect("permission.remove", user=ADMIN, object=fid)
    a.ok("DELETE", f"inventory/{fid}", ok=(204,))
    log.expect("inventory.delete", user=ADMIN, object=fid)
    a.ok("DELETE", "roles/ev-role", ok=(204,))
    log.expect("role.delete", user=ADMIN, mentions="ev-role")
    a.ok("DELETE", "users/ev-bob", ok=(204,))
    log.expect("user.delete", user=ADMIN, mentions="ev-bob")
    a.ok("DELETE", "session", ok=(204,))
    log.expect("session.logout", user=ADMIN)

    evs = events(admin)
    assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), "seq must be 1, 2, 3..."
    times = [e["time_us"] for e in evs]
    assert times == sorted(times), "time_us must not go backwards"
    now_us = time.time() * 1e6
    assert all(now_us - 3600e6 < t <= now_us + 5e6 for t in times), times
    assert {e["result"] for e in evs} <= {"success", "failure", "denied"}
    assert first_bad(evs) is None, f"the chain breaks at event {first_bad(evs)}"
    text = repr(evs)
    for secret in (mgr.admin_password, PASSWORD, PASSWORD + "-2", BACKUP_PASSWORD,
                   "wrong password here", a.token, bob.token):
        assert secret not in text, "a password or token in the event log"
    STATE.update(key_create_seq=kc["seq"], folder=fid)


def test_filters(admin):
    full = events(admin)
    top = full[-1]["seq"]

    def check(query, pred):
        got = [e["seq"] for e in events(admin, **query) if e["seq"] <= top]
        want = [e["seq"] for e in full if pred(e)]
        assert got == want, f"filter {query}: got {got}, expected {want}"
        return want

    assert check({"user": "ev-bob"}, lambda e: e["user"] == "ev-bob")
    assert check({"operation": "key.create"}, lambda e: e["operation"] == "key.create")
    assert check({"object": STATE["folder"]}, lambda e: e["object"] == STATE["folder"])
    assert check({"user": ADMIN, "operation": "session.login"},
                 lambda e: e["user"] == ADMIN and e["operation"] == "session.login")
    assert check({"user": "nobody-at-all"}, lambda e: False) == []

    # Times: inclusive bounds in seconds, Unix or RFC 3339.
    def rfc(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    first_s = full[0]["time_us"] // 1_000_000
    last_s = full[-1]["time_us"] // 1_000_000
    for fmt in (str, rfc):
        assert check({"from": fmt(first_s), "to": fmt(last_s + 1)}, lambda e: True)
        assert check({"from": fmt(last_s + 3600)}, lambda e: False) == []
        assert check({"to": fmt(first_s - 3600)}, lambda e: False) == []
        mid = full[len(full) // 2]["time_us"] // 1_000_000
        check({"from": fmt(mid)}, lambda e: e["time_us"] >= mid * 1_000_000)
        # "to" is inclusive: what is at or before mid.000000 is in, what is
        # from the next second on is out (within the second mid either
        # reading of "inclusive" is allowed).
        got = {e["seq"] for e in events(admin, to=fmt(mid)) if e["seq"] <= top}
        for e in full:
            if e["time_us"] <= mid * 1_000_000:
                assert e["seq"] in got, (mid, e)
            elif e["time_us"] >= (mid + 1) * 1_000_000:
                assert e["seq"] not in got, (mid, e)

    for bad in ({"from": "yesterday"}, {"to": "2026-13-45T99:00:00Z"}, {"colour": "red"},
                {"format": "xml"}):
        assert_error(admin.request("GET", "events", query=bad), 400, "bad_request")


def test_exports_agree(admin):
    full = events(admin)
    top = full[-1]["seq"]
    r = admin.request("GET", "events", query={"format": "jsonl"})
    assert r.status == 200 and r.content_type.split(";")[0] == "application/x-ndjson", r
    text = r.body.decode("utf-8")
    assert text.endswith("\n"), text[-100:]
    lines = [loads(ln) for ln in text.split("\n")[:-1]]
    assert [e for e in lines if e["seq"] <= top] == full
    for e in lines:
        assert list(e) == FIELDS, f"jsonl fields {list(e)}"

    r = admin.request("GET", "events", query={"format": "csv"})
    assert r.status == 200 and r.content_type.split(";")[0] == "text/csv", r
    text = r.body.decode("utf-8")
    assert "\r\n" in text, "RFC 4180 lines end with CRLF"
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == FIELDS, rows[0]
    rows = [dict(zip(FIELDS, row)) for row in rows[1:]]
    rows = [row for row in rows if int(row["seq"]) <= top]
    assert len(rows) == len(full)
    for row, e in zip(rows, full):
        for f in FIELDS:
            assert row[f] == ("" if e[f] is None else str(e[f])), (f, row, e)

    r = admin.request("GET", "events", query={"format": "jsonl", "user": "ev-bob"})
    got = [loads(ln) for ln in r.body.decode().splitlines()]
    assert got == [e for e in full if e["user"] == "ev-bob"]


def test_verify_untouched(manager, admin, tmp_path):
    v = admin.ok("GET", "events/verify", ok=(200,))
    full = events(admin)
    assert v["ok"] is True, v
    assert v["count"] >= len(full) and v["last_seq"] >= full[-1]["seq"], (v, len(full))
    cli = Cli(tmp_path / "home")
    cli.login(manager)
    r = cli.run("events", "verify")
    assert r.returncode == 0, describe(r)
    out = r.stdout.decode()
    m = re.search(r"last seq (\d+), hash ([0-9a-f]{64})", out)
    assert m and "chain intact" in out, describe(r)
    after = {e["seq"]: e for e in events(admin)}
    assert after[int(m.group(1))]["hash"] == m.group(2), out
    assert first_bad(list(after.values())) is None
    STATE["cli"] = cli


def test_edited_row_is_found(manager, admin):
    """Runs last: it breaks the log of this module's manager."""
    k = STATE["key_create_seq"]
    (orig,) = manager.sql("SELECT message FROM events WHERE seq = ?", (k,))[0]
    manager.sql("UPDATE events SET message = ? WHERE seq = ?", ((orig or "") + " (edited)", k))
    assert first_bad(events(admin)) == k, "the edit should break the chain here too"
    r = STATE["cli"].run("events", "verify")
    line = assert_cli_error(r, 1)
    assert re.search(rf"\bevent {k}\b", line), line
    assert "key.create" in line, line
    v = admin.ok("GET", "events/verify", ok=(200,))
    assert v["ok"] is False and v["seq"] == k, v
    assert v["message"] and "\n" not in v["message"], v
    # New events still append and the verdict still names the first break.
    admin.ok("POST", "roles", {"name": "after-edit", "privileges": ["System.View"]}, ok=(201,))
    v = admin.ok("GET", "events/verify", ok=(200,))
    assert v["ok"] is False and v["seq"] == k, v

    # Put the row back: the chain is whole again (detection is by content).
    manager.sql("UPDATE events SET message = ? WHERE seq = ?", (orig, k))
    assert admin.ok("GET", "events/verify", ok=(200,))["ok"] is True
    assert STATE["cli"].run("events", "verify").returncode == 0

    # Delete a row: the next one is reported.
    manager.sql("DELETE FROM events WHERE seq = ?", (k,))
    v = admin.ok("GET", "events/verify", ok=(200,))
    assert v["ok"] is False and v["seq"] == k + 1, v
    line = assert_cli_error(STATE["cli"].run("events", "verify"), 1)
    assert re.search(rf"\bevent {k + 1}\b", line), line
    manager.assert_alive()
