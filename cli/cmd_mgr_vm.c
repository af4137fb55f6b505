/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt vm: create VMs on hosts (encrypted from the start with an
 * encryption policy), encrypt plaintext ones, list and show them. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "mgr_client.h"

static int print_vms(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	json_t *v;
	size_t i;

	mgr_table_init(&t, 5);
	mgr_table_row(&t, "ID", "NAME", "HOST", "ENCRYPTED", "KEY ID");
	json_array_foreach(json_object_get(j, "vms"), i, v)
		mgr_table_row(&t, mgr_str(v, "id"), mgr_str(v, "name"), mgr_str(v, "host"),
			      mgr_yesno(mgr_bool(v, "encrypted")),
			      *mgr_str(v, "key_id") ? mgr_str(v, "key_id") : NULL);
	return mgr_table_print(m, &t);
}

static int print_vm(struct mgr *m, const json_t *j)
{
	json_t *d;
	size_t i;

	(void)m;
	mgr_kv("id", "%s", mgr_str(j, "id"));
	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("host", "%s", mgr_str(j, "host"));
	mgr_kv("uuid", "%s", mgr_str(j, "uuid"));
	mgr_kv("encrypted", "%s", mgr_yesno(mgr_bool(j, "encrypted")));
	if (mgr_bool(j, "encrypted") || *mgr_str(j, "key_id"))
		mgr_kv("key", "%s of provider %s", mgr_str(j, "key_id"), mgr_str(j, "provider"));
	mgr_kv("state", "%s", mgr_str(j, "state"));
	if (*mgr_str(j, "power"))
		mgr_kv("power", "%s", mgr_str(j, "power"));
	if (mgr_bool(j, "vtpm"))
		mgr_kv("vtpm", "%s", *mgr_str(json_object_get(j, "tpm"), "socket")
			? mgr_str(json_object_get(j, "tpm"), "socket") : "yes");
	if (*mgr_str(j, "reason"))
		mgr_kv("reason", "%s", mgr_str(j, "reason"));
	json_array_foreach(json_object_get(j, "disks"), i, d) {
		char label[32];

		snprintf(label, sizeof label, "disk %zu", i);
		mgr_kv(label, "%s, %lld bytes, %s", mgr_str(d, "file"),
		       (long long)mgr_int(d, "size"),
		       mgr_bool(d, "encrypted") ? "encrypted" : "plaintext");
		if (*mgr_str(d, "nbd"))
			mgr_kv("  served at", "%s", mgr_str(d, "nbd"));
		if (*mgr_str(d, "reason"))
			mgr_kv("  reason", "%s", mgr_str(d, "reason"));
		const json_t *rk = json_object_get(d, "rekey");

		if (rk && strcmp(mgr_str(rk, "state"), "idle"))
			mgr_kv("  deep rekey", "%s, %lld of %lld sectors, key generation %lld%s%s",
			       mgr_str(rk, "state"), (long long)mgr_int(rk, "progress"),
			       (long long)mgr_int(rk, "total"), (long long)mgr_int(rk, "generation"),
			       *mgr_str(rk, "error") ? ": " : "", mgr_str(rk, "error"));
	}
	return 0;
}

static int vm_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/vms", print_vms);
}

static int vm_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "vms", a->arg[0], print_vm);
}

/* Run a task the server started; print its result or fail with it. */
static int follow(struct mgr *m, json_t *resp, const char *what)
{
	json_t *task = NULL;
	int r;

	if (!*mgr_str(resp, "task"))
		return mgr_error(m, EXIT_FAIL, "the server's answer names no task");
	r = mgr_task_wait(m, mgr_str(resp, "task"), &task);
	if (r == 0)
		r = mgr_task_result(m, task);
	if (r == 0) {
		const json_t *res = json_object_get(task, "result");

		if (m->json)
			mgr_print_json(task);
		else
			printf("%s %s%s%s\n", what, mgr_str(res, "vm"),
			       *mgr_str(res, "key_id") ? " with key " : "", mgr_str(res, "key_id"));
	}
	json_decref(task);
	return r;
}

static int vm_create(struct mgr *m, const struct margs *a)
{
	const char *host = mgr_opt(a, O_HOST), *parent = mgr_opt(a, O_PARENT);
	json_t *disks = json_array(), *body, *resp = NULL;
	int r;

	for (size_t i = 0; i < a->o[O_DISK].n; i++) {
		uint64_t size;

		if (cli_parse_size(a->o[O_DISK].v[i], &size) < 0 || size == 0 || size % 4096) {
			json_decref(disks);
			return mgr_error(m, EXIT_USAGE, "--disk '%s': a size that is a multiple of "
					 "4096 (e.g. 1G)", a->o[O_DISK].v[i]);
		}
		json_array_append_new(disks, json_pack("{s:I}", "size", (json_int_t)size));
	}
	body = json_pack("{s:s,s:s,s:s,s:o,s:s*}", "name", a->arg[0], "host", host, "parent",
			 parent ? parent : host, "disks", disks, "policy", mgr_opt(a, O_POLICY));
	if (body && mgr_has(a, O_VTPM))
		json_object_set_new(body, "vtpm", json_true());
	if (!body)
		return mgr_bad_body(m);
	r = mgr_call(m, "POST", "/vms", body, &resp);
	if (r == 0)
		r = follow(m, resp, "created VM");
	json_decref(resp);
	return r;
}

static int vm_encrypt(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/encrypt", a->arg[0])) < 0)
		return r;
	r = mgr_call(m, "POST", path, json_pack("{s:s}", "policy", mgr_opt(a, O_POLICY)), &resp);
	if (r == 0)
		r = follow(m, resp, "encrypted VM");
	json_decref(resp);
	return r;
}

static int vm_rekey(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL, *body;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/rekey", a->arg[0])) < 0)
		return r;
	body = json_pack("{s:s*}", "policy", mgr_opt(a, O_POLICY));
	if (body && mgr_has(a, O_DEEP))
		json_object_set_new(body, "deep", json_true());
	if (!body)
		return mgr_bad_body(m);
	r = mgr_call(m, "POST", path, body, &resp);
	if (r == 0)
		r = follow(m, resp, "rekeyed VM");
	json_decref(resp);
	return r;
}

static int vm_decrypt(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/decrypt", a->arg[0])) < 0)
		return r;
	r = mgr_call(m, "POST", path, NULL, &resp);
	if (r == 0)
		r = follow(m, resp, "decrypted VM");
	json_decref(resp);
	return r;
}

static int vm_power(struct mgr *m, const struct margs *a, bool on)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/power-%s", a->arg[0], on ? "on" : "off")) < 0)
		return r;
	r = mgr_call(m, "POST", path, NULL, &resp);
	if (r == 0)
		r = follow(m, resp, on ? "powered on VM" : "powered off VM");
	json_decref(resp);
	return r;
}

static int vm_power_on(struct mgr *m, const struct margs *a)
{
	return vm_power(m, a, true);
}

static int vm_power_off(struct mgr *m, const struct margs *a)
{
	return vm_power(m, a, false);
}

static int vm_clone(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL, *body, *src = NULL;
	const char *parent = mgr_opt(a, O_PARENT);
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s", a->arg[0])) < 0)
		return r;
	/* The clone goes next to the source unless told otherwise. */
	if (!parent) {
		char ipath[MGR_PATH_MAX];

		if ((r = mgr_path(m, ipath, sizeof ipath, "/inventory/%s", a->arg[0])) < 0 ||
		    (r = mgr_call(m, "GET", ipath, NULL, &src)) < 0)
			return r;
		parent = mgr_str(src, "parent");
	}
	body = json_pack("{s:s,s:s,s:s*}", "name", mgr_opt(a, O_NAME), "parent", parent,
			 "policy", mgr_opt(a, O_POLICY));
	json_t *keep = src;

	if (!body) {
		json_decref(keep);
		return mgr_bad_body(m);
	}
	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/clone", a->arg[0])) == 0)
		r = mgr_call(m, "POST", path, body, &resp);
	else
		json_decref(body);
	if (r == 0)
		r = follow(m, resp, "cloned into VM");
	json_decref(resp);
	json_decref(keep);
	return r;
}

static int vm_delete(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "vms", "VM", a->arg[0]);
}

static int vm_move(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/move", a->arg[0])) < 0)
		return r;
	r = mgr_call(m, "POST", path, json_pack("{s:s}", "host", mgr_opt(a, O_HOST)), &resp);
	if (r == 0)
		r = follow(m, resp, "moved VM");
	json_decref(resp);
	return r;
}

static int vm_add_disk(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	uint64_t size;
	json_t *body;
	int r;

	if (cli_parse_size(mgr_opt(a, O_DISK), &size) < 0 || size == 0 || size % 4096)
		return mgr_error(m, EXIT_USAGE, "--disk '%s': a size that is a multiple of 4096",
				 mgr_opt(a, O_DISK));
	if ((r = mgr_path(m, path, sizeof path, "/vms/%s/disks", a->arg[0])) < 0)
		return r;
	body = json_pack("{s:I}", "size", (json_int_t)size);
	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "added a disk to VM %s", a->arg[0]);
	return mgr_do(m, "POST", path, body, done);
}

static const struct mgr_sub vm_subs[] = {
	{ "list", 0, 0, 0, 0, vm_list, "", NULL },
	{ "show", 1, 0, 0, 0, vm_show, "ID   (with its state on its host: ready, locked)", NULL },
	{ "create", 1, OPT(O_HOST) | OPT(O_PARENT) | OPT(O_DISK) | OPT(O_POLICY) | OPT(O_VTPM),
	  OPT(O_HOST), 0, vm_create,
	  "NAME --host HOST-ID [--disk SIZE]... [--policy NAME] [--vtpm] [--parent ID]\n"
	  "        An encrypting policy makes it encrypted from the start (a new key in\n"
	  "        the policy's provider); --vtpm gives it a TPM 2.0 (needs such a policy).\n"
	  "        Parent: a folder, cluster or the host (default).",
	  NULL },
	{ "encrypt", 1, OPT(O_POLICY), OPT(O_POLICY), 0, vm_encrypt,
	  "ID --policy NAME   (every disk and the nvram, with a progress bar)", NULL },
	{ "delete", 1, 0, 0, 0, vm_delete, "ID   (the VM and its files)", NULL },
	{ "clone", 1, OPT(O_NAME) | OPT(O_PARENT) | OPT(O_POLICY), OPT(O_NAME), 0, vm_clone,
	  "ID --name NAME [--parent ID] [--policy NAME]   (an encrypted VM's clone gets\n"
	  "        its own new keys)", NULL },
	{ "move", 1, OPT(O_HOST), OPT(O_HOST), 0, vm_move,
	  "ID --host HOST-ID   (to another host of the same datastore)", NULL },
	{ "decrypt", 1, 0, 0, 0, vm_decrypt, "ID   (every disk and the nvram back to plaintext)",
	  NULL },
	{ "rekey", 1, OPT(O_POLICY) | OPT(O_DEEP), 0, 0, vm_rekey,
	  "ID [--policy NAME | --deep]   (shallow: a new KEK, from the policy's provider\n"
	  "        or the VM's, rewraps every disk key and the VM key; --deep: new data\n"
	  "        keys, every sector re-encrypted, crash-safe and resumable; on a VM that\n"
	  "        is powered on, by the I/O filter while the guest keeps writing)", NULL },
	{ "power-on", 1, 0, 0, 0, vm_power_on,
	  "ID   (its host serves every disk over NBD, through the I/O filter when\n"
	  "        encrypted; `vm show` gives the addresses)", NULL },
	{ "power-off", 1, 0, 0, 0, vm_power_off, "ID   (its disk servers stop)", NULL },
	{ "add-disk", 1, OPT(O_DISK), OPT(O_DISK), 0, vm_add_disk,
	  "ID --disk SIZE   (encrypted, with its own key, when the VM is)", NULL },
};

int cmd_vm(int argc, char **argv)
{
	return mgr_dispatch("vm", "Virtual machines.", vm_subs, VC_ARRAY_SIZE(vm_subs), argc,
			    argv);
}
