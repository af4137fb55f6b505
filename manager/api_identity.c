/* SPDX-License-Identifier: Apache-2.0 */
/* Sessions, users, privileges, roles and permissions. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "api.h"
#include "vc_passwd.h"
#include "vc_secmem.h"

/* A password field of the body into locked memory. */
static int body_secret(struct req *r, const char *field, struct vc_secret **out,
		       struct vc_error *err)
{
	json_t *v = json_object_get(r->body, field);

	return vc_secret_from_bytes(json_string_value(v), json_string_length(v), out, err);
}

int hash_password(struct req *r, const char *field, char **hash)
{
	struct vc_secret *pw = NULL;
	struct vc_error err = { 0 };
	int ret = body_secret(r, field, &pw, &err);

	if (ret == 0)
		ret = vc_passwd_hash(pw, NULL, hash, &err);
	vc_secret_free(pw);
	if (ret < 0)
		reply_errno(r, ret, &err);
	return ret;
}

/* ---- sessions ---- */
/* A login: checked on a worker (scrypt takes ~0.1 s; the request loop
 * keeps serving others meanwhile). */
struct login_job {
	struct vc_secret *pw;
	char *hash;            /* the stored hash, or the decoy for unknown users */
	bool known, must_change, rehash;
	char *new_hash;        /* a stronger hash of the same password, to store */
	int ret;
	struct vc_error err;
};

static void login_work(struct req *r, void *arg)
{
	struct login_job *j = arg;

	(void)r;
	/* An unknown or disabled user costs the same verification as a wrong
	 * password: timing does not tell which user names exist. */
	j->ret = vc_passwd_verify(j->pw, j->hash, &j->rehash, &j->err);
	if (!j->known && j->ret == 0)
		j->ret = -EACCES;
	if (j->ret == 0 && j->rehash && vc_passwd_hash(j->pw, NULL, &j->new_hash, &j->err) < 0)
		j->new_hash = NULL;
}

static void login_done(struct req *r, void *arg)
{
	struct login_job *j = arg;
	const char *user = json_string_value(json_object_get(r->body, "user"));
	struct vc_store_session s = { .user = user };
	struct vc_error err = { 0 };
	char token[VC_TOKEN_BUFSIZE];
	int ret = j->ret;

	if (ret == 0 && j->new_hash &&
	    vc_store_user_set_password(r->m->st, user, j->new_hash, &err) < 0)
		err = (struct vc_error){ 0 };   /* the old hash still works */
	if (ret == -EACCES || ret == -EINVAL) {
		ev_log(r->m, user, "session.login", NULL, NULL, NULL, EV_FAIL,
		       "login refused: wrong user name or password");
		/* The same answer for an unknown user and a wrong password. */
		reply_error(r, 401, "unauthorized", "wrong user name or password");
		goto out;
	}
	if (ret == 0)
		ret = vc_token_new(token, &err);
	if (ret == 0)
		ret = vc_token_hash(token, s.token_hash, &err);
	s.expires = now_s() + r->m->cfg.token_ttl;
	/* Expired sessions are refused anyway; logins sweep them away so the
	 * table does not grow with every session ever opened. */
	if (ret == 0)
		ret = vc_store_session_purge(r->m->st, now_s(), NULL, &err);
	if (ret == 0)
		ret = vc_store_session_add(r->m->st, &s, &err);
	if (ret < 0) {
		reply_errno(r, ret, ret == j->ret ? &j->err : &err);
		goto out;
	}
	ev_log(r->m, user, "session.login", NULL, NULL, NULL, EV_OK, "logged in%s",
	       j->must_change ? " with a one-time password" : "");
	reply_json(r, 201, json_pack("{s:s,s:s,s:I,s:b}", "token", token, "user", user,
				     "expires", (json_int_t)s.expires,
				     "password_change_required", j->must_change));
	vc_wipe(token, sizeof token);
out:
	vc_secret_free(j->pw);
	free(j->hash);
	free(j->new_hash);
	free(j);
}

void api_login(struct req *r)
{
	const char *user = json_string_value(json_object_get(r->body, "user"));
	struct login_job *j = calloc(1, sizeof *j);
	struct vc_store_user u = { 0 };
	struct vc_error err = { 0 };
	int ret = j ? body_secret(r, "password", &j->pw, &err)
		    : vc_error_set(&err, -ENOMEM, "out of memory");

	if (ret == 0) {
		ret = vc_store_user_get(r->m->st, user, &u, &err);
		j->known = ret == 0 && !u.disabled;
		j->must_change = ret == 0 && u.must_change;
		j->hash = strdup(j->known ? u.password_hash : r->m->decoy_hash);
		free(u.mem);
		ret = (ret == 0 || ret == -ENOENT) ? (j->hash ? 0 : -ENOMEM) : ret;
	}
	if (ret == 0 && defer_call(r, login_work, login_done, j) < 0)
		ret = vc_error_set(&err, -ENOMEM, "cannot start the login");
	if (ret < 0) {
		if (j) {
			vc_secret_free(j->pw);
			free(j->hash);
			free(j);
		}
		reply_errno(r, ret, &err);
	}
}

void api_session_get(struct req *r)
{
	struct vc_privset ps = vc_privset_none();
	json_t *groups = json_array(), *privs = json_array();

	for (size_t i = 0; i < r->ngroups; i++)
		json_array_append_new(groups, json_string(r->groups[i]));
	if (privs_on(r, "root", &ps))
		for (int p = 0; p < VC_PRIV_COUNT; p++)
			if (vc_privset_has(&ps, (enum vc_priv)p))
				json_array_append_new(privs, json_string(vc_priv_name((enum vc_priv)p)));
	reply_json(r, 200, json_pack("{s:s,s:I,s:o,s:o,s:b}", "user", r->user, "expires",
				     (json_int_t)r->expires, "groups", groups, "privileges",
				     privs, "password_change_required", r->must_change));
}

void api_logout(struct req *r)
{
	struct vc_error err = { 0 };
	int ret = vc_store_session_delete(r->m->st, r->token_hash, &err);

	if (ret < 0 && ret != -ENOENT) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "session.logout", NULL, NULL, NULL, EV_OK, "logged out");
	reply_empty(r, 204);
}

void api_password_change(struct req *r)
{
	struct vc_store_user u = { 0 };
	struct vc_secret *old = NULL;
	struct vc_error err = { 0 };
	char *hash = NULL;
	int ret = vc_store_user_get(r->m->st, r->user, &u, &err);

	if (ret == 0)
		ret = body_secret(r, "old_password", &old, &err);
	if (ret == 0)
		ret = vc_passwd_verify(old, u.password_hash, NULL, &err);
	vc_secret_free(old);
	free(u.mem);
	if (ret == -EACCES) {
		ev_log(r->m, r->user, "session.password", NULL, NULL, NULL, EV_FAIL,
		       "password change refused: wrong old password");
		reply_error(r, 403, "forbidden", "wrong old password");
		return;
	}
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (hash_password(r, "new_password", &hash) < 0)
		return;
	ret = vc_store_begin(r->m->st, &err);
	if (ret == 0)
		ret = vc_store_user_set_password(r->m->st, r->user, hash, &err);
	if (ret == 0)
		ret = vc_store_user_set_must_change(r->m->st, r->user, false, &err);
	ret = vc_store_end(r->m->st, ret, &err);
	free(hash);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "session.password", NULL, NULL, NULL, EV_OK,
	       "password changed");
	reply_empty(r, 204);
}

/* ---- users ---- */
static int group_json(const char *g, void *ctx)
{
	return json_array_append_new(ctx, json_string(g));
}

static json_t *user_json(struct mgr *m, const struct vc_store_user *u)
{
	json_t *groups = json_array();
	struct vc_error err = { 0 };

	if (vc_store_user_groups(m->st, u->name, group_json, groups, &err) < 0) {
		json_decref(groups);
		return NULL;
	}
	return json_pack("{s:s,s:I,s:b,s:b,s:o}", "name", u->name, "created",
			 (json_int_t)u->created, "disabled", u->disabled,
			 "password_change_required", u->must_change, "groups", groups);
}

struct list_ctx {
	struct mgr *m;
	json_t *arr;
};

static int user_item(const struct vc_store_user *u, void *ctx)
{
	struct list_ctx *c = ctx;
	json_t *j = user_json(c->m, u);

	return j ? json_array_append_new(c->arr, j) : -ENOMEM;
}

void api_users_list(struct req *r)
{
	struct list_ctx c = { r->m, json_array() };
	struct vc_error err = { 0 };
	int ret = vc_store_user_list(r->m->st, user_item, &c, &err);

	if (ret < 0) {
		json_decref(c.arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "users", c.arr));
}

void api_user_create(struct req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	json_t *groups = json_object_get(r->body, "groups"), *g;
	struct vc_store_user u = { .name = name, .created = now_s() };
	struct vc_error err = { 0 };
	char *hash = NULL;
	size_t i;
	int ret;

	if (json_array_size(groups) > 8) {
		reply_error(r, 400, "bad_request", "a user belongs to at most 8 groups");
		return;
	}
	if (hash_password(r, "password", &hash) < 0)
		return;
	u.password_hash = hash;
	ret = vc_store_begin(r->m->st, &err);
	if (ret == 0)
		ret = vc_store_user_add(r->m->st, &u, &err);
	json_array_foreach(groups, i, g) {
		if (ret == 0)
			ret = vc_store_user_group_add(r->m->st, name, json_string_value(g), &err);
	}
	ret = vc_store_end(r->m->st, ret, &err);
	free(hash);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "user.create", NULL, NULL, NULL, EV_OK, "created user '%s'",
	       name);
	reply_json(r, 201, user_json(r->m, &u));
}

void api_user_delete(struct req *r)
{
	struct vc_error err = { 0 };
	int ret;

	if (!strcmp(r->param[0], r->user)) {
		reply_error(r, 409, "conflict", "you cannot delete yourself");
		return;
	}
	ret = vc_store_user_delete(r->m->st, r->param[0], &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "user.delete", NULL, NULL, NULL, EV_OK, "deleted user '%s'",
	       r->param[0]);
	reply_empty(r, 204);
}

void api_user_password(struct req *r)
{
	struct vc_error err = { 0 };
	char *hash = NULL;
	int ret;

	if (hash_password(r, "password", &hash) < 0)
		return;
	ret = vc_store_begin(r->m->st, &err);
	if (ret == 0)
		ret = vc_store_user_set_password(r->m->st, r->param[0], hash, &err);
	if (ret == 0)
		ret = vc_store_session_delete_user(r->m->st, r->param[0], &err);
	ret = vc_store_end(r->m->st, ret, &err);
	free(hash);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "user.password", NULL, NULL, NULL, EV_OK,
	       "reset the password of user '%s' and ended its sessions", r->param[0]);
	reply_empty(r, 204);
}

/* ---- privileges and roles ---- */
void api_privileges_list(struct req *r)
{
	json_t *arr = json_array();

	for (int p = 0; p < VC_PRIV_COUNT; p++)
		json_array_append_new(arr, json_pack("{s:s,s:b}", "id",
						     vc_priv_name((enum vc_priv)p), "crypto",
						     vc_priv_is_crypto((enum vc_priv)p)));
	reply_json(r, 200, json_pack("{s:o}", "privileges", arr));
}

static const char *role_label(const char *name)
{
	if (!strcmp(name, VC_ROLE_ADMIN_ID))
		return VC_ROLE_ADMIN_LABEL;
	if (!strcmp(name, VC_ROLE_NO_CRYPTO_ADMIN_ID))
		return VC_ROLE_NO_CRYPTO_ADMIN_LABEL;
	if (!strcmp(name, VC_ROLE_READ_ONLY_ID))
		return VC_ROLE_READ_ONLY_LABEL;
	return name;
}

static json_t *role_json(const struct vc_store_role *ro)
{
	struct vc_privset ps;
	json_t *arr = json_array();

	if (vc_role_predefined(ro->name, &ps) < 0 &&
	    vc_privset_parse(ro->privileges, &ps, NULL) < 0)
		ps = vc_privset_none();
	for (int p = 0; p < VC_PRIV_COUNT; p++)
		if (vc_privset_has(&ps, (enum vc_priv)p))
			json_array_append_new(arr, json_string(vc_priv_name((enum vc_priv)p)));
	return json_pack("{s:s,s:s,s:b,s:o}", "name", ro->name, "label", role_label(ro->name),
			 "builtin", ro->builtin, "privileges", arr);
}

static int role_item(const struct vc_store_role *ro, void *ctx)
{
	return json_array_append_new(ctx, role_json(ro));
}

void api_roles_list(struct req *r)
{
	json_t *arr = json_array();
	struct vc_error err = { 0 };
	int ret = vc_store_role_list(r->m->st, role_item, arr, &err);

	if (ret < 0) {
		json_decref(arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "roles", arr));
}

void api_role_get(struct req *r)
{
	struct vc_store_role ro;
	struct vc_error err = { 0 };
	int ret = vc_store_role_get(r->m->st, r->param[0], &ro, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, role_json(&ro));
	free(ro.mem);
}

void api_role_create(struct req *r)
{
	const char *name = json_string_value(json_object_get(r->body, "name"));
	json_t *privs = json_object_get(r->body, "privileges"), *p;
	struct vc_privset ps = vc_privset_none();
	struct vc_error err = { 0 };
	char text[VC_PRIVSET_STR_MAX];
	size_t i;
	int ret;

	json_array_foreach(privs, i, p) {
		enum vc_priv v;

		if (vc_priv_lookup(json_string_value(p), &v, &err) < 0) {
			reply_error(r, 400, "bad_request", "%s", vc_error_msg(&err));
			return;
		}
		vc_privset_add(&ps, v);
	}
	ret = vc_privset_format(&ps, text, sizeof text, &err);
	if (ret == 0)
		ret = vc_store_role_add(r->m->st, &(struct vc_store_role){ .name = name,
					.privileges = text }, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "role.create", NULL, NULL, NULL, EV_OK,
	       "created role '%s' with %zu privileges", name, vc_privset_count(&ps));
	reply_json(r, 201, role_json(&(struct vc_store_role){ .name = name,
				     .privileges = text }));
}

void api_role_delete(struct req *r)
{
	struct vc_error err = { 0 };
	int ret = vc_store_role_delete(r->m->st, r->param[0], &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "role.delete", NULL, NULL, NULL, EV_OK, "deleted role '%s'",
	       r->param[0]);
	reply_empty(r, 204);
}

/* ---- permissions ---- */
static json_t *perm_json(const struct vc_store_perm *p)
{
	return json_pack("{s:s,s:b,s:s,s:s,s:b}", "principal", p->principal, "group",
			 p->is_group, "role", p->role, "object", p->object, "propagate",
			 p->propagate);
}

static int perm_item(const struct vc_store_perm *p, void *ctx)
{
	return json_array_append_new(ctx, perm_json(p));
}

void api_perms_list(struct req *r)
{
	const char *obj = vc_target_query(&r->t, "object");
	json_t *arr = json_array();
	struct vc_error err = { 0 };
	int ret = vc_store_perm_list(r->m->st, obj, perm_item, arr, &err);

	if (ret < 0) {
		json_decref(arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "permissions", arr));
}

static bool jbool(json_t *body, const char *k, bool dflt)
{
	json_t *v = json_object_get(body, k);

	return v ? json_is_true(v) : dflt;
}

void api_perm_add(struct req *r)
{
	struct vc_store_perm p = {
		.principal = json_string_value(json_object_get(r->body, "principal")),
		.is_group = jbool(r->body, "group", false),
		.role = json_string_value(json_object_get(r->body, "role")),
		.object = json_string_value(json_object_get(r->body, "object")),
		.propagate = jbool(r->body, "propagate", true),
	};
	struct vc_error err = { 0 };
	int ret;

	if (!p.is_group && !strcmp(p.principal, r->user) && !strcmp(p.object, "root")) {
		/* The usual way to lock oneself out for good. */
		reply_error(r, 409, "conflict", "you cannot change your own permission on root");
		return;
	}
	ret = vc_store_perm_add(r->m->st, &p, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "permission.add", p.object, NULL, NULL, EV_OK,
	       "gave %s '%s' role %s on '%s'%s", p.is_group ? "group" : "user", p.principal,
	       p.role, p.object, p.propagate ? " (propagating)" : "");
	reply_json(r, 201, perm_json(&p));
}

void api_perm_delete(struct req *r)
{
	const char *principal = vc_target_query(&r->t, "principal");
	const char *group = vc_target_query(&r->t, "group");
	const char *obj = vc_target_query(&r->t, "object");
	bool is_group = group && !strcmp(group, "true");
	struct vc_error err = { 0 };
	int ret;

	if (!principal || !obj || (group && strcmp(group, "true") && strcmp(group, "false"))) {
		reply_error(r, 400, "bad_request", "give principal=, object= and optionally "
			    "group=true|false");
		return;
	}
	if (!is_group && !strcmp(principal, r->user) && !strcmp(obj, "root")) {
		reply_error(r, 409, "conflict", "you cannot change your own permission on root");
		return;
	}
	ret = vc_store_perm_delete(r->m->st, principal, is_group, obj, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	authz_invalidate(r->m);
	ev_log(r->m, r->user, "permission.remove", obj, NULL, NULL, EV_OK,
	       "removed the permission of %s '%s' on '%s'", is_group ? "group" : "user",
	       principal, obj);
	reply_empty(r, 204);
}
