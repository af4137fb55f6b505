/* SPDX-License-Identifier: Apache-2.0 */
/* The inventory tree: root > folders / clusters > hosts and VMs. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "vc_crypto.h"
#include "vc_encode.h"

struct kind_rule {
	const char *kind;
	enum vc_store_kind k;
	enum vc_priv create, rename, remove;
	const char *parents;   /* kinds it may live under, space separated */
};

static const struct kind_rule kinds[] = {
	{ "folder", VC_STORE_FOLDER, VC_PRIV_FOLDER_CREATE, VC_PRIV_FOLDER_RENAME,
	  VC_PRIV_FOLDER_DELETE, " root folder " },
	{ "cluster", VC_STORE_CLUSTER, VC_PRIV_CLUSTER_CREATE, VC_PRIV_HOST_SETTINGS,
	  VC_PRIV_CLUSTER_DELETE, " root folder " },
	{ "host", VC_STORE_HOST, VC_PRIV_HOST_ADD, VC_PRIV_HOST_SETTINGS,
	  VC_PRIV_HOST_REMOVE, " root folder cluster " },
	{ "vm", VC_STORE_VM, VC_PRIV_VM_CREATE, VC_PRIV_VM_RENAME, VC_PRIV_VM_DELETE,
	  " folder cluster host " },
};

static const struct kind_rule *rule_of(const char *kind)
{
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kind && !strcmp(kinds[i].kind, kind))
			return &kinds[i];
	return NULL;
}

json_t *inventory_by_kind_json(int which)
{
	json_t *o = json_object();

	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		enum vc_priv p = which == 0 ? kinds[i].create
				 : which == 1 ? kinds[i].rename : kinds[i].remove;

		json_object_set_new(o, kinds[i].kind, json_string(vc_priv_name(p)));
	}
	return o;
}

static json_t *obj_json(const struct vc_store_object *o)
{
	return json_pack("{s:s,s:o,s:s,s:s}", "id", o->id, "parent", jstr_or_null(o->parent),
			 "kind", vc_store_kind_name(o->kind), "name", o->name);
}

void api_inventory_list(struct req *r)
{
	json_t *arr = json_array();
	struct mgr_authz *a;
	struct vc_error err = { 0 };
	int ret = authz_load(r->m, &err);

	if (ret < 0) {
		json_decref(arr);
		reply_errno(r, ret, &err);
		return;
	}
	/* From the cache, which is in parent-first order: every object's
	 * privileges in one pass. */
	a = &r->m->authz;
	{
		struct vc_privset *ps = malloc((a->nnodes ? a->nnodes : 1) * sizeof *ps);

		ret = ps ? privs_all(r, ps, &err) : vc_error_set(&err, -ENOMEM, "out of memory");
		for (size_t i = 0; ret == 0 && i < a->nnodes; i++) {
			if (!vc_privset_has(&ps[i], VC_PRIV_SYSTEM_VIEW))
				continue;
			json_array_append_new(arr, json_pack("{s:s,s:o,s:s,s:s}", "id",
							     a->nodes[i].id, "parent",
							     jstr_or_null(a->nodes[i].parent), "kind",
							     a->kinds[i], "name", a->names[i]));
		}
		free(ps);
		if (ret < 0) {
			json_decref(arr);
			reply_errno(r, ret, &err);
			return;
		}
	}
	reply_json(r, 200, json_pack("{s:o}", "objects", arr));
}

void api_inventory_get(struct req *r)
{
	struct vc_store_object o;
	struct vc_error err = { 0 };
	int ret = vc_store_object_get(r->m->st, r->param[0], &o, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, obj_json(&o));
	free(o.mem);
}

int inv_check_place(struct req *r, const char *parent, const char *kind)
{
	const struct kind_rule *k = rule_of(kind);
	const char *pkind = authz_kind(r->m, parent);
	char pk[16];

	if (!pkind) {
		reply_error(r, 404, "not_found", "no inventory object '%s'", parent);
		return -ENOENT;
	}
	snprintf(pk, sizeof pk, " %s ", pkind);
	if (!k || !strstr(k->parents, pk)) {
		reply_error(r, 400, "bad_request", "a %s cannot be placed under a %s", kind,
			    pkind);
		return -EINVAL;
	}
	return need_priv(r, k->create, parent);
}

int inv_add(struct req *r, const char *parent, const char *kind, const char *name,
	    char id[INV_ID_LEN], struct vc_error *err)
{
	const struct kind_rule *k = rule_of(kind);
	uint8_t rnd[6];
	int ret = vc_random_bytes(rnd, sizeof rnd, err);

	if (ret < 0)
		return ret;
	snprintf(id, INV_ID_LEN, "%s-", kind);
	vc_hex_encode(rnd, sizeof rnd, id + strlen(id));
	ret = vc_store_object_add(r->m->st, &(struct vc_store_object){ .id = id,
				  .parent = parent, .kind = k->k, .name = name }, err);
	if (ret == 0)
		authz_invalidate(r->m);
	return ret;
}

void api_inventory_create(struct req *r)
{
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	const char *kind = json_string_value(json_object_get(r->body, "kind"));
	const char *name = json_string_value(json_object_get(r->body, "name"));
	struct vc_error err = { 0 };
	char id[INV_ID_LEN];
	int ret;

	if (inv_check_place(r, parent, kind) < 0)
		return;
	ret = inv_add(r, parent, kind, name, id, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "inventory.create", id, NULL, NULL, EV_OK,
	       "created %s '%s' under '%s'", kind, name, parent);
	reply_json(r, 201, obj_json(&(struct vc_store_object){ .id = id, .parent = parent,
				    .kind = rule_of(kind)->k, .name = name }));
}

/* The rule of an existing object the caller may change (the privilege
 * picked by which: 1 rename, 2 delete), or NULL after a reply (404, 409
 * for the root, 403). */
static const struct kind_rule *existing(struct req *r, struct vc_store_object *o, int which)
{
	struct vc_error err = { 0 };
	int ret = vc_store_object_get(r->m->st, r->param[0], o, &err);
	const struct kind_rule *k;

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return NULL;
	}
	k = rule_of(vc_store_kind_name(o->kind));
	if (!k)
		reply_error(r, 409, "conflict", "the root cannot be renamed or deleted");
	else if (need_priv(r, which == 1 ? k->rename : k->remove, r->param[0]) < 0)
		k = NULL;
	else if (which == 2 && o->kind == VC_STORE_VM) {
		struct vc_store_vm v;

		/* A VM with files on a host goes through DELETE /api/v1/vms. */
		if (vc_store_vm_get(r->m->st, o->id, &v, &err) == 0) {
			free(v.mem);
			reply_error(r, 409, "conflict", "'%s' is a VM on a host: delete it with "
				    "DELETE /api/v1/vms/%s", o->id, o->id);
			k = NULL;
		}
	}
	if (!k)
		free(o->mem);
	return k;
}

void api_inventory_rename(struct req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	struct vc_store_object o;
	const struct kind_rule *k = existing(r, &o, 1);
	struct vc_error err = { 0 };
	int ret;

	if (!k)
		return;
	ret = vc_store_object_rename(r->m->st, r->param[0], name, &err);
	if (ret < 0) {
		free(o.mem);
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "inventory.rename", r->param[0], NULL, NULL, EV_OK,
	       "renamed %s '%s' to '%s'", k->kind, o.name, name);
	o.name = name;
	reply_json(r, 200, obj_json(&o));
	free(o.mem);
}

void api_inventory_delete(struct req *r)
{
	struct vc_store_object o;
	const struct kind_rule *k = existing(r, &o, 2);
	struct vc_error err = { 0 };
	int ret;

	if (!k)
		return;
	ret = vc_store_object_delete(r->m->st, r->param[0], &err);
	if (ret < 0) {
		free(o.mem);
		reply_errno(r, ret, &err);
		return;
	}
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "inventory.delete", r->param[0], NULL, NULL, EV_OK,
	       "deleted %s '%s'", k->kind, o.name);
	free(o.mem);
	reply_empty(r, 204);
}
