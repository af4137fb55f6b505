# SPDX-License-Identifier: Apache-2.0
# The manager's privilege matrix, through the real vmcryptd: for every
# route of `vmcryptd --print-routes`, a user holding every privilege but
# the one the route needs is refused (403 naming exactly that privilege and
# changing nothing) and a user holding just that privilege (plus
# System.View) succeeds; the predefined roles No Cryptography Administrator
# and Read-only; and vSphere's inheritance rules (propagation, nearest
# permission wins, a user permission beats group ones, groups apply).
# The host routes run against real vmcrypt-hostd agents (tests/integration/
# vc_hostd.py): one added host, and a fresh unclaimed agent for each add
# that succeeds (a refused add leaves its agent unclaimed for the next);
# the VM routes use another agent, in encryption mode, with plaintext VMs.
import itertools
import os
import re
from dataclasses import dataclass, field

import pytest

from vc_manager import (ADMIN, PASSWORD, NO_BODY, add_object, add_role, add_user,
                        all_privileges, assert_error, grant, print_routes,
                        user_client, wait_task)
from vc_manager import admin, manager  # noqa: F401 (pytest fixtures)
from vc_hostd import add_host, agents  # noqa: F401 (agents: a pytest fixture)

BACKUP_PASSWORD = "backup-pw-matrix-0123"
NAT = "mx-nat"          # a backed-up native provider with one key
POLICY = "mx-pol"

# Routes that only a Cryptographer may call (the No Cryptography
# Administrator role exists to keep these from an ordinary administrator).
CRYPTO_ROUTES = {
    ("GET", "/api/v1/key-providers"),
    ("GET", "/api/v1/key-providers/{}"),
    ("POST", "/api/v1/key-providers"),
    ("DELETE", "/api/v1/key-providers/{}"),
    ("POST", "/api/v1/key-providers/{}/default"),
    ("POST", "/api/v1/key-providers/{}/check"),
    ("POST", "/api/v1/key-providers/{}/backup"),
    ("POST", "/api/v1/key-providers/{}/keys"),
    ("GET", "/api/v1/key-providers/{}/keys/{}"),
    ("POST", "/api/v1/policies"),
    ("DELETE", "/api/v1/policies/{}"),
    ("PUT", "/api/v1/hosts/{}/encryption-mode"),
    ("POST", "/api/v1/vms/{}/encrypt"),
    ("POST", "/api/v1/vms/{}/rekey"),
    ("POST", "/api/v1/vms/{}/decrypt"),
    ("POST", "/api/v1/hosts/{}/dumps/decrypt"),
}

# What the No Cryptography Administrator must still be able to do.
NOCRYPTO_ALLOWED = [
    ("POST", "/api/v1/inventory", "folder"), ("POST", "/api/v1/inventory", "vm"),
    ("PATCH", "/api/v1/inventory/{}", "folder"), ("PATCH", "/api/v1/inventory/{}", "vm"),
    ("DELETE", "/api/v1/inventory/{}", "folder"), ("DELETE", "/api/v1/inventory/{}", "vm"),
    ("GET", "/api/v1/users", None), ("POST", "/api/v1/users", None),
    ("DELETE", "/api/v1/users/{}", None), ("PUT", "/api/v1/users/{}/password", None),
    ("GET", "/api/v1/roles", None), ("POST", "/api/v1/roles", None),
    ("DELETE", "/api/v1/roles/{}", None),
    ("GET", "/api/v1/permissions", None), ("POST", "/api/v1/permissions", None),
    ("DELETE", "/api/v1/permissions", None),
    ("GET", "/api/v1/tasks", None), ("GET", "/api/v1/events", None),
    ("GET", "/api/v1/hosts", None), ("GET", "/api/v1/hosts/{}", None),
    ("POST", "/api/v1/hosts", None),
    ("POST", "/api/v1/vms/{}/power-on", None), ("POST", "/api/v1/vms/{}/power-off", None),
]

# Reads the Read-only role must be able to do whatever the route table says.
READONLY_ALLOWED = {("GET", "/api/v1/inventory"), ("GET", "/api/v1/inventory/{}"),
                    ("GET", "/api/v1/roles"), ("GET", "/api/v1/privileges")}

KINDS = ("folder", "cluster", "host", "vm")


def norm(path):
    """A route pattern with its placeholder names dropped."""
    return re.sub(r"\{[^}/]*\}", "{}", path)


@dataclass
class Req:
    path: str
    body: object = NO_BODY
    query: dict = None
    ok: tuple = (200,)
    token: object = NO_BODY        # overrides the caller's token
    denied_check: object = None    # called after a 403: nothing changed
    params: dict = field(default_factory=dict)


class Ctx:
    """Shared state of the matrix: the admin client and resources made once."""

    def __init__(self, mgr, admin_api, agents_pool):
        self.mgr = mgr
        self.admin = admin_api
        self.agents = agents_pool
        self.spare = None
        self._host_id = None
        self._vm_host = None
        self._vm = None
        self.n = itertools.count(1)
        self.folder = add_object(admin_api, "root", "folder", "mx-folder")
        self.victim = "mx-victim"
        add_user(admin_api, self.victim)
        admin_api.ok("POST", "key-providers", {"name": NAT, "kind": "native"}, ok=(201,))
        admin_api.ok("POST", f"key-providers/{NAT}/backup", {"password": BACKUP_PASSWORD},
                     ok=(200,))
        self.key_id = admin_api.ok("POST", f"key-providers/{NAT}/keys", {}, ok=(201,))["key_id"]
        admin_api.ok("POST", "policies", {"name": POLICY, "encrypt": True,
                                          "migration": "opportunistic", "provider": NAT},
                     ok=(201,))
        task = admin_api.ok("POST", f"key-providers/{NAT}/check", ok=(202,))["task"]
        self.task = wait_task(admin_api, task)["id"]

    def name(self, prefix):
        return f"{prefix}-{next(self.n)}"

    @property
    def host_id(self):
        """A host added through the API, with its agent running."""
        if self._host_id is None:
            a = self.agents.new("mx-host")
            self._host_id = add_host(self.admin, a, self.folder, "mx-host")["id"]
        return self._host_id

    @property
    def vm_host(self):
        """The host of the VMs: in encryption mode, so that encrypting a VM
        needs no Cryptographer.RegisterHost."""
        if self._vm_host is None:
            a = self.agents.new("mx-vmhost")
            hid = add_host(self.admin, a, self.folder, "mx-vmhost")["id"]
            self.admin.ok("PUT", f"hosts/{hid}/encryption-mode", {"enabled": True}, ok=(200,))
            self._vm_host = hid
        return self._vm_host

    def new_vm(self):
        """A fresh plaintext VM (no disks) on vm_host: its id."""
        body = {"name": self.name("mxvm"), "host": self.vm_host, "parent": self.folder,
                "disks": []}
        task = self.admin.ok("POST", "vms", body, ok=(202,))["task"]
        t = wait_task(self.admin, task)
        assert t["state"] == "success", t
        return t["result"]["vm"]

    @property
    def vm(self):
        if self._vm is None:
            self._vm = self.new_vm()
        return self._vm

    @property
    def move_host(self):
        """A second host on vm_host's datastore, in encryption mode."""
        if getattr(self, "_move_host", None) is None:
            first = self.agents.all[[a.dir.endswith("mx-vmhost") for a in
                                     self.agents.all].index(True)]
            a = self.agents.new("mx-movehost", datastore=os.path.join(first.dir, "datastore"))
            hid = add_host(self.admin, a, self.folder, "mx-movehost")["id"]
            self.admin.ok("PUT", f"hosts/{hid}/encryption-mode", {"enabled": True}, ok=(200,))
            self._move_host = hid
        return self._move_host

    def encrypted_vm(self):
        """A fresh VM encrypted from the start (one small disk): its id."""
        body = {"name": self.name("mxenc"), "host": self.vm_host, "parent": self.folder,
                "disks": [{"size": 4096}], "policy": POLICY}
        task = self.admin.ok("POST", "vms", body, ok=(202,))["task"]
        t = wait_task(self.admin, task)
        assert t["state"] == "success", t
        return t["result"]["vm"]

    def spare_agent(self):
        """An agent nobody has claimed: the last one if a refused add
        left it so, else a new one."""
        if self.spare is None or self.spare.state()["manager_thumbprint"] is not None:
            self.spare = self.agents.new()
        return self.spare

    def exists(self, path):
        s, _ = self.admin.get(path)
        assert s in (200, 404), f"GET {path}: {s}"
        return s == 200

    def obj(self, kind):
        """A fresh leaf object of this kind."""
        parent = self.folder if kind in ("folder", "cluster", "host") else \
            add_object(self.admin, self.folder, "folder", self.name("vmf"))
        return add_object(self.admin, parent, kind, self.name(kind))


def must_exist(ctx, path):
    def check():
        assert ctx.exists(path), f"a refused call removed {path}"
    return check


def must_not_exist(ctx, path):
    def check():
        assert not ctx.exists(path), f"a refused call created {path}"
    return check


# -- one builder per route: (ctx, caller's user name, kind) -> Req

def r_login(ctx, who, kind):
    return Req("/api/v1/session", {"user": ADMIN, "password": ctx.mgr.admin_password},
               ok=(201,), token=None)


def r_session_get(ctx, who, kind):
    return Req("/api/v1/session")


def r_session_delete(ctx, who, kind):
    # Ends a session of its own, so the caller's token keeps working.
    tok = ctx.mgr.login(who, PASSWORD).token
    return Req("/api/v1/session", ok=(204,), token=tok)


def r_session_password(ctx, who, kind):
    u = ctx.name("pwuser")
    add_user(ctx.admin, u)
    tok = ctx.mgr.login(u, PASSWORD).token
    return Req("/api/v1/session/password",
               {"old_password": PASSWORD, "new_password": PASSWORD + "-new"},
               ok=(204,), token=tok)


def r_users_list(ctx, who, kind):
    return Req("/api/v1/users")


def r_users_add(ctx, who, kind):
    u = ctx.name("newuser")
    return Req("/api/v1/users", {"name": u, "password": PASSWORD}, ok=(201,),
               denied_check=lambda: _user_absent(ctx, u))


def _user_absent(ctx, u):
    names = [x["name"] for x in ctx.admin.ok("GET", "users", ok=(200,))["users"]]
    assert u not in names, f"a refused call created user {u}"


def _user_present(ctx, u):
    names = [x["name"] for x in ctx.admin.ok("GET", "users", ok=(200,))["users"]]
    assert u in names, f"a refused call removed user {u}"


def r_users_delete(ctx, who, kind):
    u = ctx.name("deluser")
    add_user(ctx.admin, u)
    return Req(f"/api/v1/users/{u}", ok=(204,), denied_check=lambda: _user_present(ctx, u))


def r_users_password(ctx, who, kind):
    return Req(f"/api/v1/users/{ctx.victim}/password", {"password": PASSWORD}, ok=(204,))


def r_privileges(ctx, who, kind):
    return Req("/api/v1/privileges")


def r_roles_list(ctx, who, kind):
    return Req("/api/v1/roles")


def r_role_get(ctx, who, kind):
    return Req("/api/v1/roles/ReadOnly")


def r_role_add(ctx, who, kind):
    name = ctx.name("newrole")
    return Req("/api/v1/roles", {"name": name, "privileges": ["System.View"]}, ok=(201,),
               denied_check=must_not_exist(ctx, f"roles/{name}"))


def r_role_delete(ctx, who, kind):
    name = ctx.name("delrole")
    add_role(ctx.admin, name, ["System.View"])
    return Req(f"/api/v1/roles/{name}", ok=(204,),
               denied_check=must_exist(ctx, f"roles/{name}"))


def r_perms_list(ctx, who, kind):
    return Req("/api/v1/permissions")


def _perm_count(ctx, obj):
    return len(ctx.admin.ok("GET", "permissions", query={"object": obj}, ok=(200,))["permissions"])


def r_perm_add(ctx, who, kind):
    obj = add_object(ctx.admin, ctx.folder, "folder", ctx.name("pf"))

    def check():
        assert _perm_count(ctx, obj) == 0, "a refused call added a permission"
    return Req("/api/v1/permissions", {"principal": ctx.victim, "role": "ReadOnly",
                                       "object": obj, "propagate": True},
               ok=(201,), denied_check=check)


def r_perm_delete(ctx, who, kind):
    obj = add_object(ctx.admin, ctx.folder, "folder", ctx.name("pf"))
    grant(ctx.admin, ctx.victim, "ReadOnly", obj)

    def check():
        assert _perm_count(ctx, obj) == 1, "a refused call removed a permission"
    return Req("/api/v1/permissions", query={"principal": ctx.victim, "object": obj},
               ok=(204,), denied_check=check)


def r_inv_list(ctx, who, kind):
    return Req("/api/v1/inventory")


def r_inv_get(ctx, who, kind):
    return Req(f"/api/v1/inventory/{ctx.folder}")


def r_inv_add(ctx, who, kind):
    parent = ctx.folder if kind != "vm" else add_object(ctx.admin, ctx.folder, "folder",
                                                         ctx.name("vmf"))
    name = ctx.name("new" + kind)

    def check():
        objs = ctx.admin.ok("GET", "inventory", ok=(200,))["objects"]
        assert name not in [o["name"] for o in objs], "a refused call created an object"
    return Req("/api/v1/inventory", {"parent": parent, "kind": kind, "name": name},
               ok=(201,), denied_check=check)


def r_inv_rename(ctx, who, kind):
    oid = ctx.obj(kind)
    old = ctx.admin.ok("GET", f"inventory/{oid}", ok=(200,))["name"]

    def check():
        now = ctx.admin.ok("GET", f"inventory/{oid}", ok=(200,))["name"]
        assert now == old, "a refused call renamed the object"
    return Req(f"/api/v1/inventory/{oid}", {"name": ctx.name("renamed")}, ok=(200,),
               denied_check=check)


def r_inv_delete(ctx, who, kind):
    oid = ctx.obj(kind)
    return Req(f"/api/v1/inventory/{oid}", ok=(204,),
               denied_check=must_exist(ctx, f"inventory/{oid}"))


def r_prov_list(ctx, who, kind):
    return Req("/api/v1/key-providers")


def r_prov_get(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}")


def r_prov_add(ctx, who, kind):
    name = ctx.name("newnat")
    return Req("/api/v1/key-providers", {"name": name, "kind": "native"}, ok=(201,),
               denied_check=must_not_exist(ctx, f"key-providers/{name}"))


def r_prov_delete(ctx, who, kind):
    name = ctx.name("delnat")
    ctx.admin.ok("POST", "key-providers", {"name": name, "kind": "native"}, ok=(201,))
    return Req(f"/api/v1/key-providers/{name}", ok=(204,),
               denied_check=must_exist(ctx, f"key-providers/{name}"))


def r_prov_default(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}/default", ok=(200,))


def r_prov_check(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}/check", ok=(202,))


def r_prov_backup(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}/backup", {"password": BACKUP_PASSWORD}, ok=(200,))


def r_key_create(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}/keys", {}, ok=(201,))


def r_key_get(ctx, who, kind):
    return Req(f"/api/v1/key-providers/{NAT}/keys/{ctx.key_id}")


def r_pol_list(ctx, who, kind):
    return Req("/api/v1/policies")


def r_pol_get(ctx, who, kind):
    return Req(f"/api/v1/policies/{POLICY}")


def r_pol_add(ctx, who, kind):
    name = ctx.name("newpol")
    return Req("/api/v1/policies", {"name": name, "encrypt": True, "migration": "required",
                                    "provider": NAT},
               ok=(201,), denied_check=must_not_exist(ctx, f"policies/{name}"))


def r_pol_delete(ctx, who, kind):
    name = ctx.name("delpol")
    ctx.admin.ok("POST", "policies", {"name": name, "encrypt": False, "migration": "disabled",
                                      "provider": NAT}, ok=(201,))
    return Req(f"/api/v1/policies/{name}", ok=(204,),
               denied_check=must_exist(ctx, f"policies/{name}"))


def _host_addresses(ctx):
    return {h["address"] for h in ctx.admin.ok("GET", "hosts", ok=(200,))["hosts"]}


def r_hosts_list(ctx, who, kind):
    return Req("/api/v1/hosts")


def r_host_add(ctx, who, kind):
    a = ctx.spare_agent()

    def check():
        assert a.state()["manager_thumbprint"] is None, "a refused call claimed the agent"
        assert a.address not in _host_addresses(ctx), "a refused call added the host"
    return Req("/api/v1/hosts", {"address": a.address, "join_token": a.token,
                                 "parent": ctx.folder, "name": ctx.name("newhost"),
                                 "thumbprint": a.fingerprint},
               ok=(201,), denied_check=check)


def r_host_get(ctx, who, kind):
    return Req(f"/api/v1/hosts/{ctx.host_id}")


def r_host_mode(ctx, who, kind):
    # Asks for the opposite of the current mode, so that a refused call
    # that went through anyway shows.
    hid = ctx.host_id
    now = ctx.admin.ok("GET", f"hosts/{hid}", ok=(200,))
    assert now["connection"] == "connected", now

    def check():
        g = ctx.admin.ok("GET", f"hosts/{hid}", ok=(200,))
        assert (g["encryption_mode"], g["agent"]["encryption_mode"]) == \
            (now["encryption_mode"], now["agent"]["encryption_mode"]), \
            "a refused call changed host encryption mode"
    return Req(f"/api/v1/hosts/{hid}/encryption-mode",
               {"enabled": not now["agent"]["encryption_mode"]}, ok=(200,),
               denied_check=check)


def _task_count(ctx):
    return len(ctx.admin.ok("GET", "tasks", ok=(200,))["tasks"])


def r_vms_list(ctx, who, kind):
    return Req("/api/v1/vms")


def r_vm_create(ctx, who, kind):
    host = ctx.vm_host
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
    return Req("/api/v1/vms", {"name": ctx.name("newvm"), "host": host, "parent": ctx.folder,
                               "disks": []}, ok=(202,), denied_check=check)


def r_vm_get(ctx, who, kind):
    return Req(f"/api/v1/vms/{ctx.vm}")


def r_vm_encrypt(ctx, who, kind):
    vm = ctx.new_vm()
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
        assert ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["encrypted"] is False
    return Req(f"/api/v1/vms/{vm}/encrypt", {"policy": POLICY}, ok=(202,), denied_check=check)


def r_vm_rekey(ctx, who, kind):
    vm = ctx.encrypted_vm()
    before = ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["key_id"]
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
        assert ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["key_id"] == before
    return Req(f"/api/v1/vms/{vm}/rekey", {}, ok=(202,), denied_check=check)


def r_vm_decrypt(ctx, who, kind):
    vm = ctx.encrypted_vm()
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
        assert ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["encrypted"] is True
    return Req(f"/api/v1/vms/{vm}/decrypt", ok=(202,), denied_check=check)


def r_vm_power(on):
    def make(ctx, who, kind):
        vm = ctx.new_vm()
        n = _task_count(ctx)

        def check():
            assert _task_count(ctx) == n, "a refused call queued a task"
        return Req(f"/api/v1/vms/{vm}/power-{'on' if on else 'off'}", ok=(202,),
                   denied_check=check)
    return make


# Routes whose success needs a second privilege on another object (the
# route's own one is still what a refusal names): moving a VM also needs
# VirtualMachine.Inventory.Register on the target host.
ALSO = {
    ("POST", "/api/v1/vms/{}/move"): ("VirtualMachine.Inventory.Register",),
}


def r_host_dump(ctx, who, kind):
    return Req(f"/api/v1/hosts/{ctx.vm_host}/dump", ok=(201,))


def r_host_dump_decrypt(ctx, who, kind):
    if getattr(ctx, "_dump", None) is None:
        ctx._dump = ctx.admin.ok("POST", f"hosts/{ctx.vm_host}/dump", ok=(201,))["dump"]
    return Req(f"/api/v1/hosts/{ctx.vm_host}/dumps/decrypt", {"dump": ctx._dump}, ok=(200,))


def r_vm_delete(ctx, who, kind):
    vm = ctx.new_vm()

    def check():
        ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))
    return Req(f"/api/v1/vms/{vm}", ok=(204,), denied_check=check)


def r_vm_move(ctx, who, kind):
    vm = ctx.new_vm()
    dst = ctx.move_host
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
        assert ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["host"] == ctx.vm_host
    return Req(f"/api/v1/vms/{vm}/move", {"host": dst}, ok=(202,), denied_check=check)


def r_vm_clone(ctx, who, kind):
    src = ctx.vm
    n = _task_count(ctx)

    def check():
        assert _task_count(ctx) == n, "a refused call queued a task"
    return Req(f"/api/v1/vms/{src}/clone", {"name": ctx.name("clone"), "parent": ctx.folder},
               ok=(202,), denied_check=check)


def r_vm_add_disk(ctx, who, kind):
    vm = ctx.vm
    before = len(ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["disks"])

    def check():
        assert len(ctx.admin.ok("GET", f"vms/{vm}", ok=(200,))["disks"]) == before
    return Req(f"/api/v1/vms/{vm}/disks", {"size": 4096}, ok=(201,), denied_check=check)


def r_tasks(ctx, who, kind):
    return Req("/api/v1/tasks")


def r_task(ctx, who, kind):
    return Req(f"/api/v1/tasks/{ctx.task}")


def r_events(ctx, who, kind):
    return Req("/api/v1/events")


def r_events_verify(ctx, who, kind):
    return Req("/api/v1/events/verify")


MATRIX = {
    ("POST", "/api/v1/session"): r_login,
    ("GET", "/api/v1/session"): r_session_get,
    ("DELETE", "/api/v1/session"): r_session_delete,
    ("POST", "/api/v1/session/password"): r_session_password,
    ("GET", "/api/v1/users"): r_users_list,
    ("POST", "/api/v1/users"): r_users_add,
    ("DELETE", "/api/v1/users/{}"): r_users_delete,
    ("PUT", "/api/v1/users/{}/password"): r_users_password,
    ("GET", "/api/v1/privileges"): r_privileges,
    ("GET", "/api/v1/roles"): r_roles_list,
    ("GET", "/api/v1/roles/{}"): r_role_get,
    ("POST", "/api/v1/roles"): r_role_add,
    ("DELETE", "/api/v1/roles/{}"): r_role_delete,
    ("GET", "/api/v1/permissions"): r_perms_list,
    ("POST", "/api/v1/permissions"): r_perm_add,
    ("DELETE", "/api/v1/permissions"): r_perm_delete,
    ("GET", "/api/v1/inventory"): r_inv_list,
    ("GET", "/api/v1/inventory/{}"): r_inv_get,
    ("POST", "/api/v1/inventory"): r_inv_add,
    ("PATCH", "/api/v1/inventory/{}"): r_inv_rename,
    ("DELETE", "/api/v1/inventory/{}"): r_inv_delete,
    ("GET", "/api/v1/hosts"): r_hosts_list,
    ("POST", "/api/v1/hosts"): r_host_add,
    ("GET", "/api/v1/hosts/{}"): r_host_get,
    ("PUT", "/api/v1/hosts/{}/encryption-mode"): r_host_mode,
    ("GET", "/api/v1/vms"): r_vms_list,
    ("POST", "/api/v1/vms"): r_vm_create,
    ("GET", "/api/v1/vms/{}"): r_vm_get,
    ("POST", "/api/v1/vms/{}/encrypt"): r_vm_encrypt,
    ("POST", "/api/v1/vms/{}/rekey"): r_vm_rekey,
    ("POST", "/api/v1/vms/{}/decrypt"): r_vm_decrypt,
    ("POST", "/api/v1/vms/{}/power-on"): r_vm_power(True),
    ("POST", "/api/v1/vms/{}/power-off"): r_vm_power(False),
    ("DELETE", "/api/v1/vms/{}"): r_vm_delete,
    ("POST", "/api/v1/vms/{}/move"): r_vm_move,
    ("POST", "/api/v1/vms/{}/clone"): r_vm_clone,
    ("POST", "/api/v1/hosts/{}/dump"): r_host_dump,
    ("POST", "/api/v1/hosts/{}/dumps/decrypt"): r_host_dump_decrypt,
    ("POST", "/api/v1/vms/{}/disks"): r_vm_add_disk,
    ("GET", "/api/v1/key-providers"): r_prov_list,
    ("GET", "/api/v1/key-providers/{}"): r_prov_get,
    ("POST", "/api/v1/key-providers"): r_prov_add,
    ("DELETE", "/api/v1/key-providers/{}"): r_prov_delete,
    ("POST", "/api/v1/key-providers/{}/default"): r_prov_default,
    ("POST", "/api/v1/key-providers/{}/check"): r_prov_check,
    ("POST", "/api/v1/key-providers/{}/backup"): r_prov_backup,
    ("POST", "/api/v1/key-providers/{}/keys"): r_key_create,
    ("GET", "/api/v1/key-providers/{}/keys/{}"): r_key_get,
    ("GET", "/api/v1/policies"): r_pol_list,
    ("GET", "/api/v1/policies/{}"): r_pol_get,
    ("POST", "/api/v1/policies"): r_pol_add,
    ("DELETE", "/api/v1/policies/{}"): r_pol_delete,
    ("GET", "/api/v1/tasks"): r_tasks,
    ("GET", "/api/v1/tasks/{}"): r_task,
    ("GET", "/api/v1/events"): r_events,
    ("GET", "/api/v1/events/verify"): r_events_verify,
}


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def routes():
    return print_routes()


@pytest.fixture(scope="module")
def ctx(manager, admin, agents):  # noqa: F811
    return Ctx(manager, admin, agents)


@pytest.fixture(scope="module")
def privs(admin):
    return all_privileges(admin)


class Users:
    """Callers for the matrix. minus(P): user probe-minus, whose one
    permission (on root, propagating) is re-pointed to a role of every
    privilege but P; only(P): user probe-only, likewise with a role of P
    and System.View. Re-pointing instead of a user per privilege also
    checks that privileges are evaluated on each call, not frozen into the
    session at login. role(R): a user with a predefined role on root;
    nobody: a user without any permission."""

    def __init__(self, mgr, admin_api, privs):
        self.mgr, self.admin, self.privs = mgr, admin_api, privs
        self.cache = {}
        self.roles = set()
        self.current = {}

    def _safe(self, p):
        return re.sub(r"[^A-Za-z0-9]", "_", p)

    def _probe(self, user, role, privileges):
        if role not in self.roles:
            add_role(self.admin, role, privileges)
            self.roles.add(role)
        if user not in self.cache:
            add_user(self.admin, user)
            self.cache[user] = self.mgr.login(user, PASSWORD)
            self.current[user] = None
        if self.current[user] != role:
            if self.current[user] is not None:
                self.admin.ok("DELETE", "permissions", query={"principal": user,
                                                              "object": "root"}, ok=(204,))
            grant(self.admin, user, role)
            self.current[user] = role
        return user, self.cache[user]

    def minus(self, p):
        return self._probe("probe-minus", "minus-" + self._safe(p), set(self.privs) - {p})

    def only(self, p, also=()):
        return self._probe("probe-only", "only-" + self._safe(p) + "".join(
            "-" + self._safe(a) for a in also), {p, "System.View", *also})

    def role(self, role):
        key = "as-" + role
        if key not in self.cache:
            self.cache[key] = user_client(self.mgr, self.admin, key, role=role)
        return key, self.cache[key]

    def nobody(self):
        if "nobody" not in self.cache:
            add_user(self.admin, "nobody")
            self.cache["nobody"] = self.mgr.login("nobody", PASSWORD)
        return "nobody", self.cache["nobody"]


@pytest.fixture(scope="module")
def users(manager, admin, privs):
    return Users(manager, admin, privs)


# ---------------------------------------------------------------- helpers

def cases(routes):
    """(route, key, kind, privilege) for every route, one per kind for the
    routes whose privilege depends on the object's kind."""
    out = []
    for r in routes:
        key = (r["method"], norm(r["path"]))
        if r["privilege"] == "by-kind":
            for kind, p in sorted(r["by_kind"].items()):
                if kind in KINDS:
                    out.append((r, key, kind, p))
        else:
            out.append((r, key, None, r["privilege"]))
    return out


def expected_object(route, req):
    """The object the 403 message must name, from the route's "object"
    field, or None when the request does not determine it."""
    spec = route.get("object")
    if spec == "root":
        return "root"
    if spec and spec.startswith("body.") and isinstance(req.body, dict):
        return req.body.get(spec[5:])
    if spec and spec.startswith("query."):
        return (req.query or {}).get(spec[6:])
    if spec and spec.startswith("{"):
        pat = route["path"].split("/")
        got = req.path.split("?")[0].split("/")
        for a, b in zip(pat, got):
            if a == spec:
                return b
    return None


def run(api, key, req):
    return api.request(key[0], req.path, req.body, query=req.query, token=req.token)


# ---------------------------------------------------------------- tests

def test_routes_have_matrix_entries(routes):
    """The table above covers exactly the daemon's routes: a new route
    without a matrix entry (or a dropped one) fails here."""
    daemon = {(r["method"], norm(r["path"])) for r in routes}
    ours = set(MATRIX)
    assert daemon == ours, (f"routes without a matrix entry: {sorted(daemon - ours)}; "
                            f"matrix entries the daemon lacks: {sorted(ours - daemon)}")
    for r in routes:
        assert r["path"].startswith("/api/v1/"), r
        p = r["privilege"]
        assert p is None or isinstance(p, str), r
        if p == "by-kind":
            assert isinstance(r.get("by_kind"), dict) and r["by_kind"], r


def test_route_privileges_are_known(routes, privs):
    """Every privilege the table names exists, and the crypto routes need
    a Cryptographer.* privilege while the others need none (else the No
    Cryptography Administrator could not administer)."""
    for r, key, kind, p in cases(routes):
        if p in (None, "none"):
            assert key == ("POST", "/api/v1/session") or p is None, r
            continue
        assert p in privs, f"{key}: unknown privilege {p!r}"
        if key in CRYPTO_ROUTES:
            assert p.startswith("Cryptographer."), f"{key} must need a Cryptographer privilege, not {p}"
        else:
            assert not p.startswith("Cryptographer."), f"{key} needs {p}: an ordinary administration call"
    login = [r for r in routes if (r["method"], norm(r["path"])) == ("POST", "/api/v1/session")]
    assert login and login[0]["privilege"] == "none", login


def test_every_route_requires_authentication(manager, ctx, routes, users):
    """No token: 401 on every route except login (and nothing changes)."""
    anon = manager.api()
    who, _ = users.nobody()
    for r, key, kind, p in cases(routes):
        if p == "none":
            continue
        req = MATRIX[key](ctx, who, kind or "folder")
        req.token = None
        resp = run(anon, key, req)
        assert_error(resp, 401, "unauthorized")
        if req.denied_check:
            req.denied_check()


def test_privilege_matrix(manager, ctx, routes, users):
    """For every route: all privileges but the needed one -> 403 naming
    it (and nothing changes); only the needed one (+ System.View) -> the
    documented success status."""
    failures = []
    for r, key, kind, p in cases(routes):
        label = f"{key[0]} {key[1]}" + (f" [{kind}]" if kind else "")
        if p == "none":
            req = MATRIX[key](ctx, None, kind)
            resp = run(manager.api(), key, req)
            if resp.status not in req.ok:
                failures.append(f"{label} without a token: {resp}")
            continue
        if p is None:
            who, api = users.nobody()
            req = MATRIX[key](ctx, who, kind)
            resp = run(api, key, req)
            if resp.status not in req.ok:
                failures.append(f"{label} by a user without permissions: {resp}")
            continue
        who, api = users.minus(p)
        req = MATRIX[key](ctx, who, kind)
        resp = run(api, key, req)
        try:
            err = assert_error(resp, 403, "forbidden")
            assert err.get("privilege") == p, f"error.privilege {err.get('privilege')!r}, not {p!r}"
            msg = err["message"]
            assert p in msg and f"'{who}'" in msg, f"message must name user and privilege: {msg}"
            obj = expected_object(r, req)
            if obj is not None:
                assert f"'{obj}'" in msg, f"message must name the object {obj!r}: {msg}"
            if req.denied_check:
                req.denied_check()
        except AssertionError as e:
            failures.append(f"{label} without {p}: {e}")
        who, api = users.only(p, ALSO.get(key, ()))
        req = MATRIX[key](ctx, who, kind)
        resp = run(api, key, req)
        if resp.status not in req.ok:
            failures.append(f"{label} with only {p} (+System.View"
                            f"{''.join(', ' + a for a in ALSO.get(key, ()))}): "
                            f"expected {req.ok}, {resp}")
    manager.assert_alive()
    assert not failures, f"{len(failures)} matrix failures:\n" + "\n".join(failures)


def test_no_crypto_admin(manager, ctx, routes, users):
    """NoCryptoAdmin on root: every Cryptographer route is 403 naming a
    Cryptographer.* privilege, ordinary administration works."""
    who, api = users.role("NoCryptoAdmin")
    roles = {r["name"]: r for r in ctx.admin.ok("GET", "roles", ok=(200,))["roles"]}
    nca = roles["NoCryptoAdmin"]
    assert nca["builtin"] is True and nca["label"] == "No Cryptography Administrator", nca
    assert not [p for p in nca["privileges"] if p.startswith("Cryptographer.")], nca
    failures = []
    for r, key, kind, p in cases(routes):
        if key not in CRYPTO_ROUTES and not (p or "").startswith("Cryptographer."):
            continue
        req = MATRIX[key](ctx, who, kind)
        resp = run(api, key, req)
        try:
            err = assert_error(resp, 403, "forbidden")
            assert (err.get("privilege") or "").startswith("Cryptographer."), err
            if req.denied_check:
                req.denied_check()
        except AssertionError as e:
            failures.append(f"{key}: {e}")
    for method, path, kind in NOCRYPTO_ALLOWED:
        key = (method, path)
        assert key in MATRIX, key
        req = MATRIX[key](ctx, who, kind)
        resp = run(api, key, req)
        if resp.status not in req.ok:
            failures.append(f"{key} [{kind}] by NoCryptoAdmin: expected {req.ok}, {resp}")
    assert not failures, "\n".join(failures)


def test_read_only(manager, ctx, routes, users):
    """ReadOnly on root: lists and reads that need at most System.View or
    System.Read work; every change is refused."""
    who, api = users.role("ReadOnly")
    failures = []
    for r, key, kind, p in cases(routes):
        reads = key in READONLY_ALLOWED or (key[0] == "GET" and p in (None, "System.View",
                                                                       "System.Read"))
        writes = key[0] != "GET" and p not in (None, "none")
        if not (reads or writes):
            continue
        req = MATRIX[key](ctx, who, kind)
        resp = run(api, key, req)
        if reads:
            if resp.status not in req.ok:
                failures.append(f"{key} by ReadOnly: expected {req.ok}, {resp}")
        elif resp.status != 403:
            failures.append(f"{key} [{kind}] by ReadOnly: expected 403, {resp}")
        elif req.denied_check:
            try:
                req.denied_check()
            except AssertionError as e:
                failures.append(f"{key}: {e}")
    assert not failures, "\n".join(failures)


def by_kind(routes, method, path, kind):
    for r in routes:
        if (r["method"], norm(r["path"])) == (method, path):
            return r["by_kind"][kind] if r["privilege"] == "by-kind" else r["privilege"]
    raise KeyError((method, path))


def names(api):
    return {o["id"] for o in api.ok("GET", "inventory", ok=(200,))["objects"]}


def test_no_propagation_stops_at_the_folder(manager, admin, routes):
    """Admin on a folder without propagation: the folder itself yes, the
    VM below it no."""
    f = add_object(admin, "root", "folder", "inh-f1")
    vm = add_object(admin, f, "vm", "inh-vm1")
    api = user_client(manager, admin, "inh1", role="Admin", obj=f, propagate=False)
    assert api.ok("PATCH", f"inventory/{f}", {"name": "inh-f1-renamed"}, ok=(200,))
    r = api.request("PATCH", f"inventory/{vm}", {"name": "inh-vm1-renamed"})
    err = assert_error(r, 403, "forbidden")
    assert err["privilege"] == by_kind(routes, "PATCH", "/api/v1/inventory/{}", "vm")
    assert f"'{vm}'" in err["message"], err
    r = api.request("DELETE", f"inventory/{vm}")
    assert_error(r, 403, "forbidden")
    seen = names(api)
    assert f in seen and vm not in seen, seen
    assert admin.ok("GET", f"inventory/{vm}", ok=(200,))["name"] == "inh-vm1"
    # A permission on the object itself always applies, propagating or not.
    api.ok("POST", "inventory", {"parent": f, "kind": "vm", "name": "inh-vm1b"}, ok=(201,))


def test_nearer_read_only_overrides_admin(manager, admin, routes):
    f = add_object(admin, "root", "folder", "inh-f2")
    vm = add_object(admin, f, "vm", "inh-vm2")
    api = user_client(manager, admin, "inh2", role="Admin")
    grant(admin, "inh2", "ReadOnly", f)
    api.ok("POST", "inventory", {"parent": "root", "kind": "folder", "name": "inh-f2-other"},
           ok=(201,))
    r = api.request("POST", "inventory", {"parent": f, "kind": "folder", "name": "inh-sub"})
    err = assert_error(r, 403, "forbidden")
    assert err["privilege"] == by_kind(routes, "POST", "/api/v1/inventory", "folder"), err
    r = api.request("PATCH", f"inventory/{vm}", {"name": "x-renamed"})
    err = assert_error(r, 403, "forbidden")
    assert err["privilege"] == by_kind(routes, "PATCH", "/api/v1/inventory/{}", "vm"), err
    assert api.ok("GET", f"inventory/{vm}", ok=(200,))["id"] == vm
    # Removing the nearer permission gives the Administrator back.
    admin.ok("DELETE", "permissions", query={"principal": "inh2", "object": f}, ok=(204,))
    api.ok("PATCH", f"inventory/{vm}", {"name": "inh-vm2-renamed"}, ok=(200,))


def test_group_permissions(manager, admin, routes):
    """A group's permission applies to its members only; a user permission
    on the same object beats the group's."""
    f = add_object(admin, "root", "folder", "inh-f3")
    grant(admin, "ops", "NoCryptoAdmin", f, group=True)
    member = user_client(manager, admin, "inh3", groups=["ops"])
    other = user_client(manager, admin, "inh4", groups=["dev"])
    s = member.ok("GET", "session", ok=(200,))
    assert s["user"] == "inh3" and "ops" in s["groups"], s
    member.ok("POST", "inventory", {"parent": f, "kind": "vm", "name": "inh-vm3"}, ok=(201,))
    r = other.request("POST", "inventory", {"parent": f, "kind": "vm", "name": "inh-vm4"})
    err = assert_error(r, 403, "forbidden")
    assert err["privilege"] == by_kind(routes, "POST", "/api/v1/inventory", "vm"), err
    assert "'inh4'" in err["message"], err
    grant(admin, "inh3", "ReadOnly", f)
    r = member.request("POST", "inventory", {"parent": f, "kind": "vm", "name": "inh-vm5"})
    assert_error(r, 403, "forbidden")
    # Two groups on one object are united.
    f2 = add_object(admin, "root", "folder", "inh-f4")
    add_role(admin, "mk-folder", ["Folder.Create", "System.View"])
    add_role(admin, "mk-vm", ["VirtualMachine.Inventory.Create", "System.View"])
    grant(admin, "g-a", "mk-folder", f2, group=True)
    grant(admin, "g-b", "mk-vm", f2, group=True)
    both = user_client(manager, admin, "inh5", groups=["g-a", "g-b"])
    both.ok("POST", "inventory", {"parent": f2, "kind": "folder", "name": "inh-f5"}, ok=(201,))
    both.ok("POST", "inventory", {"parent": f2, "kind": "vm", "name": "inh-vm6"}, ok=(201,))
    manager.assert_alive()
