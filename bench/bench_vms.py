#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""VM encryption through the manager at scale: one vmcryptd, one local
vmcrypt-hostd added as a host, the native key provider (made through the
API, backed up so that it hands out keys) and an encrypting policy; N VMs
(default 1000) with one empty 1 MiB disk each, made plaintext first (not a
measurement). Each measurement has its baseline from the same run:
  (1) POST /vms/{id}/encrypt for all N (all queued, then all waited for;
      the manager's one worker runs them in turn): VMs/s and ms per VM,
      against `vmcrypt disk import` of empty 1 MiB raw files, one process
      per disk (M of them, default N, scaled per disk): ratio
      manager/offline per VM;
  (2) POST /vms/{id}/rekey (shallow) for the N VMs, against
      `vmcrypt disk rekey --shallow` on the M offline disks: ratio;
  (3) unlock after an agent restart: a second agent with U encrypted VMs
      (default 100) is stopped with SIGTERM and started on the same port;
      the time until its own GET /api/v1/vms (asked with the manager's
      certificate, the agent's thumbprint pinned) shows all U `ready`,
      over R restarts (each at a random point of the manager's 1 s
      reconciliation cycle). Baseline: what the manager's reconciliation has to
      do for it (one GET /api/v1/vms of that agent, U native key
      derivations from bench_native's rate, one PUT /api/v1/keys of U
      keys), plus up to one 1 s period of the manager's key reconciler; ratio
      to that period. Then the first agent, with its N encrypted VMs, is
      restarted once the same way (scale).
Each tenth of a task run is timed too, so that a cost growing with the
number of VMs shows up as a last tenth slower than the first; and the CPU
time per VM of the manager, the agent and this client is shown.

usage: bench_vms.py [--vms N] [--offline M] [--unlock-vms U] [--restarts R]
                    [--build DIR]
"""
import argparse
import base64
import json
import math
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import bench_api

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

MiB = 1 << 20
PROVIDER = "nat"
POLICY = "enc"
BACKUP_PASSWORD = "bench-vms-backup-pw-Rk2!not-a-real-one"
RECONCILE_S = 1.0           # docs/API.md: locked VMs are reconciled once a second
REPLY_MAX = 64 << 20        # manager/hostclient.c: largest agent reply it reads
TASK_POLL = 0.01
UNLOCK_POLL = 0.02
UNLOCK_TIMEOUT = 60.0
TENTHS = 10


def fail(msg):
    sys.exit(f"bench_vms: {msg}")


def say(msg):
    print(f"bench_vms: {msg}", file=sys.stderr, flush=True)


class Client(bench_api.Client):
    """The manager's API under /api/v1/, with room for long calls."""

    def __init__(self, port, ca, token=None):
        super().__init__(port, ca, token, prefix="/api/v1/", timeout=120)


def add_host(c, agent, name):
    """The documented two calls; the thumbprint the first one shows must be
    the one the agent printed."""
    body = {"address": agent.address, "join_token": agent.token, "parent": "root",
            "name": name}
    status, j = c.request("POST", "hosts", body)
    tp = (j or {}).get("error", {}).get("thumbprint")
    if status != 409 or tp != agent.fingerprint:
        fail(f"adding {agent.address}: HTTP {status} {j} (agent: {agent.fingerprint})")
    body["thumbprint"] = tp
    return c.ok("POST", "hosts", body, want=(201,))["id"]


def vm_lck_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return -1


def cpu_s(pid):
    """CPU seconds (user + system, all threads) used so far by process
    pid; None for this process."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TaskRun:
    """A batch of task-returning POSTs: all queued, then waited for. The
    manager runs tasks on several workers, so the whole task list is
    polled (GET /tasks, every TASK_POLL s) and the time recorded when the
    number of ended tasks first reaches each tenth of the batch."""

    def __init__(self, c, what, calls, procs):
        self.what = what
        n = len(calls)
        cpu0 = {k: cpu_s(p) for k, p in procs.items()}
        t0 = time.perf_counter()
        self.ids = [c.ok("POST", path, body, want=(202,))["task"] for path, body in calls]
        self.queued = time.perf_counter() - t0
        marks = sorted({max(1, math.ceil(k * n / TENTHS)) - 1 for k in range(1, TENTHS + 1)})
        self.ends = []       # (index of the task, seconds from the first POST)
        ids = set(self.ids)
        while len(self.ends) < len(marks):
            ended = sum(1 for t in c.ok("GET", "tasks")["tasks"]
                        if t["id"] in ids and t["state"] in ("success", "error"))
            now = time.perf_counter() - t0
            while len(self.ends) < len(marks) and ended > marks[len(self.ends)]:
                self.ends.append((marks[len(self.ends)], now))
            if len(self.ends) < len(marks):
                time.sleep(TASK_POLL)
        self.total = self.ends[-1][1]
        self.n = n
        self.cpu = {k: cpu_s(p) - cpu0[k] for k, p in procs.items()}

    def check(self, c):
        """Every task of the run succeeded: their results, in order."""
        tasks = {t["id"]: t for t in c.ok("GET", "tasks")["tasks"]}
        bad = [tasks.get(i) for i in self.ids
               if i not in tasks or tasks[i]["state"] != "success"]
        if bad:
            fail(f"{self.what}: {len(bad)} of {self.n} tasks did not succeed; first: {bad[0]}")
        return [tasks[i]["result"] for i in self.ids]

    def tenth_ms(self, k):
        """ms per VM over tenth k (0: the first, -1: the last)."""
        k %= len(self.ends)
        prev_i, prev_t = self.ends[k - 1] if k else (-1, 0.0)
        i, t = self.ends[k]
        return (t - prev_t) / (i - prev_i) * 1000

    def line(self, label):
        per = self.total / self.n
        growth = ""
        if len(self.ends) >= 2:
            growth = (f" (first tenth {self.tenth_ms(0):.2f}, last tenth "
                      f"{self.tenth_ms(-1):.2f} ms/VM)")
        cpu = ", ".join(f"{k} {v / self.n * 1000:.2f}" for k, v in self.cpu.items())
        return (f"{label}: {self.n / self.total:.1f} VMs/s, {per * 1000:.2f} ms/VM{growth}; "
                f"queueing the {self.n} POSTs took {self.queued:.2f} s; CPU ms/VM: {cpu}")


def write_key(path, key):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)


def run_cli(argv):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    if r.returncode != 0:
        fail(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.decode(errors='replace')}")


def offline(cli, work, m):
    """`vmcrypt disk import` of m empty 1 MiB raw files, then `vmcrypt disk
    rekey --shallow` of the m disks: (seconds per import, per rekey)."""
    d = os.path.join(work, "offline")
    os.mkdir(d, 0o700)
    kek, new = os.path.join(d, "kek"), os.path.join(d, "kek2")
    write_key(kek, os.urandom(32))
    write_key(new, os.urandom(32))
    raws = []
    for i in range(m):
        p = os.path.join(d, f"disk{i}.raw")
        with open(p, "wb") as f:
            f.truncate(MiB)
        raws.append(p)
    t = time.perf_counter()
    for i, raw in enumerate(raws):
        run_cli([cli, "disk", "import", raw, raw[:-4] + ".vcd", "--kek-file", kek,
                 "--provider", PROVIDER, "--key-id", str(uuid.uuid4())])
    imp = (time.perf_counter() - t) / m
    t = time.perf_counter()
    for raw in raws:
        run_cli([cli, "disk", "rekey", raw[:-4] + ".vcd", "--shallow", "--kek-file", kek,
                 "--new-kek-file", new, "--key-id", str(uuid.uuid4())])
    rek = (time.perf_counter() - t) / m
    return imp, rek


def native_rate(build):
    """Native key derivations per second of the provider the manager uses
    (bench_native: vc_native_get_key, one thread)."""
    exe = os.path.join(build, "bench", "bench_native")
    if not os.access(exe, os.X_OK):
        fail(f"{exe} is missing: build it first (ninja -C {build})")
    r = subprocess.run([exe, "--seconds", "0.4", "--reps", "2"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    m = re.search(rb"^native provider: (\d+) key derivations/s$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        fail(f"bench_native failed (exit {r.returncode}): {r.stdout!r} {r.stderr!r}")
    return int(m.group(1))


class Unlock:
    """Restarts of one agent and the time until all its VMs are ready."""

    def __init__(self, agent, api, count):
        self.agent = agent
        self.api = api          # the agent's API as the manager
        self.count = count
        self.samples = []       # (spawn to listening, listening to all ready)
        self.first_locked = []  # locked VMs seen by the first poll of each restart
        self.biggest = 0        # largest listing seen, bytes
        self.locked_entry = []  # bytes of one locked VM's entry in the listing

    def listing(self):
        r = self.api.request("GET", "/api/v1/vms")
        if r.status != 200:
            fail(f"GET /api/v1/vms of the agent: {r}")
        self.biggest = max(self.biggest, len(r.body))
        return json.loads(r.body)["vms"]

    def once(self):
        # A restart right after the last one (or after a task) would land
        # at the same point of the worker's 1 s cycle every time: a random
        # phase samples the whole cycle.
        time.sleep(random.uniform(0, RECONCILE_S))
        self.agent.stop(signal.SIGTERM)
        t0 = time.perf_counter()
        self.agent.start()
        t1 = time.perf_counter()
        polls = 0
        while True:
            vms = self.listing()
            polls += 1
            locked = [v for v in vms if v["state"] != "ready"]
            if polls == 1:
                self.first_locked.append(len(locked))
                self.locked_entry += [len(json.dumps(v, separators=(",", ":")))
                                      for v in locked[:20]]
                odd = [v for v in locked if v["state"] != "locked"]
                if odd:
                    fail(f"after a restart a VM is {odd[0]['state']}, not locked: {odd[0]}")
            if len(vms) != self.count:
                fail(f"the agent lists {len(vms)} VMs, not {self.count}")
            if not locked:
                break
            if time.perf_counter() - t1 > UNLOCK_TIMEOUT:
                fail(f"{len(locked)} of {self.count} VMs still locked {UNLOCK_TIMEOUT:.0f} s "
                     f"after the agent restarted; first: {locked[0]}")
            time.sleep(UNLOCK_POLL)
        self.samples.append((t1 - t0, time.perf_counter() - t1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vms", type=int, default=1000, help="VMs for (1) and (2)")
    ap.add_argument("--offline", type=int, default=None,
                    help="disks for the offline baselines, scaled per disk (default: --vms)")
    ap.add_argument("--unlock-vms", type=int, default=100, help="VMs of the agent in (3)")
    ap.add_argument("--restarts", type=int, default=5, help="agent restarts in (3)")
    ap.add_argument("--build", default=os.path.join(HERE, "..", "build"))
    a = ap.parse_args()
    if a.offline is None:
        a.offline = a.vms
    if a.vms < 1 or a.offline < 1 or a.unlock_vms < 1 or a.restarts < 1:
        fail("counts must be at least 1")
    build = os.path.abspath(a.build)
    os.environ["VMCRYPT_BUILD"] = build
    cli = os.path.join(build, "cli", "vmcrypt")
    for exe in (cli, os.path.join(build, "manager", "vmcryptd"),
                os.path.join(build, "host", "vmcrypt-hostd")):
        if not os.access(exe, os.X_OK):
            fail(f"{exe} is missing: build it first (ninja -C {build})")
    from vc_hostd import Hostd
    from vc_manager import ADMIN_PASSWORD, Manager, native_kek, open_backup

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vmcrypt-bench-vms-") as w:
        mgr = Manager(os.path.join(w, "manager"))
        agents = []
        try:
            mgr.start()
            c = Client(mgr.port, mgr.ca)
            c.token = c.ok("POST", "session", {"user": "admin", "password": ADMIN_PASSWORD},
                           want=(201,))["token"]
            a1 = Hostd(os.path.join(w, "agent1"))
            agents.append(a1)
            a1.start()
            h1 = add_host(c, a1, "bench-host-1")
            c.ok("POST", "key-providers", {"name": PROVIDER, "kind": "native"}, want=(201,))
            env = c.ok("POST", f"key-providers/{PROVIDER}/backup",
                       {"password": BACKUP_PASSWORD})["backup"]
            pid, _created, master = open_backup(base64.b64decode(env), BACKUP_PASSWORD)
            c.ok("POST", "policies", {"name": POLICY, "encrypt": True,
                                      "migration": "disabled", "provider": PROVIDER},
                 want=(201,))

            procs1 = {"manager": mgr.proc.pid, "agent": a1.proc.pid, "client": None}
            say(f"creating {a.vms} plaintext VMs")
            create = TaskRun(c, "create", [
                ("vms", {"name": f"vm-{i:05d}", "host": h1, "parent": h1,
                         "disks": [{"size": MiB}]}) for i in range(a.vms)], procs1)
            vm_ids = [r["vm"] for r in create.check(c)]

            say(f"encrypting {a.vms} VMs")
            enc = TaskRun(c, "encrypt", [(f"vms/{v}/encrypt", {"policy": POLICY})
                                         for v in vm_ids], procs1)
            enc.check(c)
            vms = {v["id"]: v for v in c.ok("GET", "vms")["vms"]}
            plain = [v for v in vm_ids if not vms[v]["encrypted"]]
            if plain:
                fail(f"{len(plain)} VMs are not encrypted after their tasks: {vms[plain[0]]}")

            say(f"rekeying {a.vms} VMs")
            rekey = TaskRun(c, "rekey", [(f"vms/{v}/rekey", None) for v in vm_ids], procs1)
            rekey.check(c)
            after = {v["id"]: v for v in c.ok("GET", "vms")["vms"]}
            same = [v for v in vm_ids if after[v]["key_id"] == vms[v]["key_id"]]
            if same:
                fail(f"{len(same)} VMs kept their key id through a rekey: {after[same[0]]}")
            a1_api = a1.as_manager(mgr)
            cached = len(a1_api.ok("GET", "/api/v1/host")["keys"])
            locked_kib = vm_lck_kib(a1.proc.pid)

            say(f"offline baselines on {min(a.offline, a.vms)} disks")
            off_imp, off_rek = offline(cli, w, min(a.offline, a.vms))

            # (3) its own agent, so that its count is U whatever N is; the
            # first one is stopped meanwhile (the reconciliation then finds
            # it refusing connections at once).
            say(f"unlock: a second agent with {a.unlock_vms} encrypted VMs")
            a1.stop()
            a2 = Hostd(os.path.join(w, "agent2"))
            agents.append(a2)
            a2.start()
            h2 = add_host(c, a2, "bench-host-2")
            create2 = TaskRun(c, "create encrypted", [
                ("vms", {"name": f"u-{i:05d}", "host": h2, "parent": h2,
                         "disks": [{"size": MiB}], "policy": POLICY})
                for i in range(a.unlock_vms)],
                {"manager": mgr.proc.pid, "agent": a2.proc.pid, "client": None})
            res2 = create2.check(c)
            a2_api = a2.as_manager(mgr)
            u = Unlock(a2, a2_api, a.unlock_vms)
            for _ in range(a.restarts):
                u.once()
            # Baseline pieces, on the same agent with its VMs ready.
            gets = []
            for _ in range(10):
                t = time.perf_counter()
                u.listing()
                gets.append(time.perf_counter() - t)
            keys = [{"provider": PROVIDER, "key_id": r["key_id"],
                     "key": base64.b64encode(native_kek(master, pid, r["key_id"])).decode()}
                    for r in res2]
            puts = []
            for _ in range(5):
                t = time.perf_counter()
                r = a2_api.request("PUT", "/api/v1/keys", {"keys": keys})
                puts.append(time.perf_counter() - t)
                if r.status != 200:
                    fail(f"PUT /api/v1/keys of {len(keys)} cached keys: {r}")
            rate = native_rate(build)

            say(f"unlock at scale: the first agent with {a.vms} encrypted VMs")
            big = Unlock(a1, a1_api, a.vms)
            big.once()
            mgr.assert_alive()
            for ag in agents:
                ag.assert_alive()
            c.close()
        except BaseException:
            for ag in agents:
                ag.kill()
            mgr.kill()
            raise
        for ag in agents:
            ag.stop()
        mgr.stop()
        warn = [ln for ag in [mgr] + agents for ln in ag.all_lines()
                if re.search(r"\b(error|warning|warn|failed)\b", ln, re.I)]
    elapsed = time.perf_counter() - started

    m = min(a.offline, a.vms)
    print(f"vmcryptd + one local vmcrypt-hostd on loopback, native key provider, "
          f"{os.cpu_count()} CPUs shared by all; {a.vms} VMs with one empty 1 MiB disk; "
          f"offline baselines on {m} disks, one process each; whole run {elapsed:.0f} s")
    print(create.line(f"(0) create {a.vms} plaintext VMs (setup, not compared)"))
    print(enc.line(f"(1) encrypt {a.vms} VMs, POST /vms/{{id}}/encrypt"))
    print(f"    baseline: vmcrypt disk import of an empty 1 MiB raw file: "
          f"{off_imp * 1000:.2f} ms/disk ({1 / off_imp:.1f} disks/s)")
    print(f"    ratio manager/offline per VM: {enc.total / a.vms / off_imp:.2f}")
    print(rekey.line(f"(2) shallow rekey of {a.vms} VMs, POST /vms/{{id}}/rekey"))
    print(f"    baseline: vmcrypt disk rekey --shallow: {off_rek * 1000:.2f} ms/disk "
          f"({1 / off_rek:.1f} disks/s)")
    print(f"    ratio manager/offline per VM: {rekey.total / a.vms / off_rek:.2f}")
    print(f"    the agent's key cache holds {cached} keys after the rekeys "
          f"({a.vms} VMs, each with one current KEK); its locked memory (VmLck): "
          f"{locked_kib} KiB")
    ready = [s[1] for s in u.samples]
    spawn = [s[0] for s in u.samples]
    get_s, put_s = statistics.median(gets), statistics.median(puts)
    derive = a.unlock_vms / rate
    work = get_s + derive + put_s
    print(f"(3) unlock after SIGTERM + restart of an agent with {a.unlock_vms} encrypted VMs, "
          f"{a.restarts} restarts: listening to all ready: median "
          f"{statistics.median(ready):.3f} s, max {max(ready):.3f} s (start to listening: median "
          f"{statistics.median(spawn) * 1000:.0f} ms; locked at the first poll: "
          f"{', '.join(map(str, u.first_locked))})")
    print(f"    baseline: one GET /api/v1/vms of that agent {get_s * 1000:.1f} ms + "
          f"{a.unlock_vms} native key derivations {derive * 1000:.2f} ms ({rate}/s, "
          f"bench_native) + one PUT /api/v1/keys of {a.unlock_vms} keys {put_s * 1000:.1f} ms "
          f"= {work * 1000:.1f} ms of work, plus up to {RECONCILE_S:.0f} s of polling "
          f"(the reconciler runs once a second)")
    print(f"    ratio to the {RECONCILE_S:.0f} s polling period: median "
          f"{statistics.median(ready) / RECONCILE_S:.2f}, max {max(ready) / RECONCILE_S:.2f}")
    bt = big.samples[0]
    print(f"(3b) the same with the first agent's {a.vms} encrypted VMs, one restart: "
          f"{bt[1]:.3f} s to all ready (start to listening {bt[0] * 1000:.0f} ms; "
          f"locked at the first poll: {big.first_locked[0]}); ratio to the period "
          f"{bt[1] / RECONCILE_S:.2f}")
    entries = u.locked_entry + big.locked_entry
    if entries:
        per = statistics.mean(entries)
        print(f"    a locked VM takes ~{per:.0f} bytes of the agent's locked-VM listing "
              f"(largest seen {big.biggest} bytes); the manager reads up to {REPLY_MAX} "
              f"bytes of a reply (REPLY_MAX in manager/hostclient.c): ~{int(REPLY_MAX / per)} "
              f"locked VMs per host")
    if warn:
        print(f"note: {len(warn)} error/warning lines from the daemons, first: {warn[0]}")


if __name__ == "__main__":
    main()
