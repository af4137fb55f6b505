/* SPDX-License-Identifier: Apache-2.0 */
/* Privilege checks over a cached copy of the inventory and permissions,
 * and the event log. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/http.h>

#include "mgr.h"
#include "vc_log.h"

int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

json_t *jstr_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static void authz_clear(struct mgr_authz *a)
{
	free(a->nodes);
	free(a->kinds);
	free(a->names);
	free(a->perms);
	free(a->strings);
	memset(a, 0, sizeof *a);
}

void authz_invalidate(struct mgr *m)
{
	authz_clear(&m->authz);
}

/* Strings are kept as offsets until the block stops growing. */
static size_t keep(struct mgr_authz *a, const char *s, int *fail)
{
	size_t n = strlen(s) + 1, off = a->strings_len;

	if (a->strings_len + n > a->strings_cap) {
		size_t cap = (a->strings_cap ? a->strings_cap * 2 : 4096) + n;
		char *p = realloc(a->strings, cap);

		if (!p) {
			*fail = 1;
			return 0;
		}
		a->strings = p;
		a->strings_cap = cap;
	}
	memcpy(a->strings + off, s, n);
	a->strings_len += n;
	return off;
}

struct load_ctx {
	struct mgr *m;
	struct mgr_authz *a;
	size_t cap_nodes, cap_perms;
	size_t *id_off, *parent_off;   /* parent_off: SIZE_MAX for the root */
	size_t *name_off;
	size_t *pr_off, *obj_off;
	int fail;
};

/* p resized to cap elements, or p unchanged and *ok false. */
static void *grow(void *p, size_t elem, size_t cap, bool *ok)
{
	void *q = realloc(p, cap * elem);

	if (!q) {
		*ok = false;
		return p;
	}
	return q;
}

static int add_node(const struct vc_store_object *o, void *ctx)
{
	struct load_ctx *c = ctx;
	struct mgr_authz *a = c->a;

	if (a->nnodes == c->cap_nodes) {
		size_t cap = c->cap_nodes ? c->cap_nodes * 2 : 64;
		bool ok = true;

		c->id_off = grow(c->id_off, sizeof *c->id_off, cap, &ok);
		c->parent_off = grow(c->parent_off, sizeof *c->parent_off, cap, &ok);
		c->name_off = grow(c->name_off, sizeof *c->name_off, cap, &ok);
		a->kinds = grow(a->kinds, sizeof *a->kinds, cap, &ok);
		if (!ok)
			return -ENOMEM;
		c->cap_nodes = cap;
	}
	c->id_off[a->nnodes] = keep(a, o->id, &c->fail);
	c->parent_off[a->nnodes] = o->parent ? keep(a, o->parent, &c->fail) : SIZE_MAX;
	c->name_off[a->nnodes] = keep(a, o->name, &c->fail);
	snprintf(a->kinds[a->nnodes], 8, "%s", vc_store_kind_name(o->kind));
	a->nnodes++;
	return c->fail ? -ENOMEM : 0;
}

static int add_perm(const struct vc_store_perm *p, void *ctx)
{
	struct load_ctx *c = ctx;
	struct mgr_authz *a = c->a;
	struct vc_store_role role;
	struct vc_privset ps;
	struct vc_error err = { 0 };
	int ret;

	if (vc_role_predefined(p->role, &ps) < 0) {
		ret = vc_store_role_get(c->m->st, p->role, &role, &err);
		if (ret < 0)
			return ret;
		ret = vc_privset_parse(role.privileges, &ps, &err);
		free(role.mem);
		if (ret < 0)
			return ret;
	}
	if (a->nperms == c->cap_perms) {
		size_t cap = c->cap_perms ? c->cap_perms * 2 : 32;
		bool ok = true;

		a->perms = grow(a->perms, sizeof *a->perms, cap, &ok);
		c->pr_off = grow(c->pr_off, sizeof *c->pr_off, cap, &ok);
		c->obj_off = grow(c->obj_off, sizeof *c->obj_off, cap, &ok);
		if (!ok)
			return -ENOMEM;
		c->cap_perms = cap;
	}
	a->perms[a->nperms] = (struct vc_perm){ .is_group = p->is_group, .privs = ps,
					       .propagate = p->propagate };
	c->pr_off[a->nperms] = keep(a, p->principal, &c->fail);
	c->obj_off[a->nperms] = keep(a, p->object, &c->fail);
	a->nperms++;
	return c->fail ? -ENOMEM : 0;
}

/* Breadth-first from the root, so parents come before children. */
static int load_tree(struct load_ctx *c, struct vc_error *err)
{
	struct vc_store_object root;
	int ret = vc_store_object_get(c->m->st, "root", &root, err);

	if (ret < 0)
		return ret;
	ret = add_node(&root, c);
	free(root.mem);
	for (size_t i = 0; ret == 0 && i < c->a->nnodes; i++) {
		char id[VC_REQ_PARAM_MAX];

		snprintf(id, sizeof id, "%s", c->a->strings + c->id_off[i]);
		ret = vc_store_object_children(c->m->st, id, add_node, c, err);
	}
	return ret;
}

int authz_load(struct mgr *m, struct vc_error *err)
{
	struct mgr_authz *a = &m->authz;
	struct load_ctx c = { .m = m, .a = a };
	int ret;

	if (a->valid)
		return 0;
	authz_clear(a);
	ret = load_tree(&c, err);
	if (ret == 0)
		ret = vc_store_perm_list(m->st, NULL, add_perm, &c, err);
	if (ret == 0) {
		a->nodes = calloc(a->nnodes ? a->nnodes : 1, sizeof *a->nodes);
		a->names = calloc(a->nnodes ? a->nnodes : 1, sizeof *a->names);
		if (!a->nodes || !a->names)
			ret = -ENOMEM;
	}
	if (ret == 0) {
		/* The string block no longer moves: turn offsets into pointers. */
		for (size_t i = 0; i < a->nnodes; i++) {
			a->nodes[i].id = a->strings + c.id_off[i];
			a->nodes[i].parent = c.parent_off[i] == SIZE_MAX
						     ? NULL : a->strings + c.parent_off[i];
			a->names[i] = a->strings + c.name_off[i];
		}
		for (size_t i = 0; i < a->nperms; i++) {
			a->perms[i].principal = a->strings + c.pr_off[i];
			a->perms[i].object = a->strings + c.obj_off[i];
		}
		a->valid = true;
	}
	free(c.id_off);
	free(c.parent_off);
	free(c.name_off);
	free(c.pr_off);
	free(c.obj_off);
	if (ret < 0) {
		authz_clear(a);
		if (ret == -ENOMEM)
			vc_error_set(err, ret, "out of memory loading permissions");
	}
	return ret;
}

const char *authz_kind(struct mgr *m, const char *id)
{
	struct vc_error err = { 0 };

	if (authz_load(m, &err) < 0)
		return NULL;
	for (size_t i = 0; i < m->authz.nnodes; i++)
		if (!strcmp(m->authz.nodes[i].id, id))
			return m->authz.kinds[i];
	return NULL;
}

static void principal_of(struct req *r, struct vc_principal *p, const char **groups)
{
	for (size_t i = 0; i < r->ngroups; i++)
		groups[i] = r->groups[i];
	*p = (struct vc_principal){ .user = r->user, .groups = groups, .ngroups = r->ngroups };
}

bool privs_on(struct req *r, const char *object, struct vc_privset *out)
{
	const char *groups[8];
	struct vc_principal who;
	struct vc_authz az;
	struct vc_error err = { 0 };

	if (authz_load(r->m, &err) < 0)
		return false;
	az = (struct vc_authz){ r->m->authz.nodes, r->m->authz.nnodes, r->m->authz.perms,
				r->m->authz.nperms };
	principal_of(r, &who, groups);
	return vc_priv_effective(&az, &who, object, out, &err) == 0;
}

int privs_all(struct req *r, struct vc_privset *out, struct vc_error *err)
{
	const char *groups[8];
	struct vc_principal who;
	struct vc_authz az;
	int ret = authz_load(r->m, err);

	if (ret < 0)
		return ret;
	az = (struct vc_authz){ r->m->authz.nodes, r->m->authz.nnodes, r->m->authz.perms,
				r->m->authz.nperms };
	principal_of(r, &who, groups);
	return vc_priv_effective_all(&az, &who, out, err);
}

int need_priv(struct req *r, enum vc_priv priv, const char *object)
{
	const char *groups[8];
	struct vc_principal who;
	struct vc_authz az;
	struct vc_error err = { 0 };
	int ret = authz_load(r->m, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return ret;
	}
	if (!authz_kind(r->m, object)) {
		reply_error(r, 404, "not_found", "no inventory object '%.128s'", object);
		return -ENOENT;
	}
	az = (struct vc_authz){ r->m->authz.nodes, r->m->authz.nnodes, r->m->authz.perms,
				r->m->authz.nperms };
	principal_of(r, &who, groups);
	ret = vc_priv_check(&az, &who, object, priv, &err);
	if (ret == -EACCES) {
		ev_log(r->m, r->user, "access.denied", object, NULL, NULL, EV_DENIED,
		       "%s %s: %s", route_method_name(r->method),
		       evhttp_request_get_uri(r->er), vc_error_msg(&err));
		reply_forbidden(r, vc_priv_name(priv), "%s", vc_error_msg(&err));
		return ret;
	}
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return ret;
	}
	return 0;
}

void ev_log(struct mgr *m, const char *user, const char *op, const char *object,
	    const char *provider, const char *key_id, const char *result,
	    const char *fmt, ...)
{
	static const uint8_t genesis[VC_SHA256_LEN];
	char msg[512];
	struct timespec ts;
	struct vc_event ev;
	struct vc_error err = { 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	ev = (struct vc_event){
		.time_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000,
		.user = user, .operation = op, .object = object, .provider = provider,
		.key_id = key_id, .result = result, .message = msg,
	};
	if (vc_store_event_append(m->st, &ev, genesis, NULL, 0, &err) < 0)
		vc_log(VC_LOG_ERROR, "cannot record event %s by %s: %s", op, user ? user : "-",
			     vc_error_msg(&err));
}
