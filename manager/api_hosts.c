/* SPDX-License-Identifier: Apache-2.0 */
/* Host agents: adding one (its thumbprint confirmed by the administrator,
 * then both sides pinned), its live state, and host encryption mode. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "hostclient.h"

static json_t *host_json(const struct vc_store_host *h, const char *name, const char *parent)
{
	char pretty[96];

	thumbprint_pretty(h->thumbprint, pretty);
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:I}", "id", h->id, "name", name ? name : "",
			 "parent", parent ? parent : "", "address", h->address, "thumbprint",
			 pretty, "encryption_mode", h->encryption_mode, "added",
			 (json_int_t)h->added);
}

struct list_ctx {
	struct req *r;
	json_t *arr;
};

static int host_item(const struct vc_store_host *h, void *ctx)
{
	struct list_ctx *c = ctx;
	struct vc_store_object o;
	struct vc_error err = { 0 };
	json_t *j;

	if (vc_store_object_get(c->r->m->st, h->id, &o, &err) < 0)
		return 0;
	j = host_json(h, o.name, o.parent);
	free(o.mem);
	return json_array_append_new(c->arr, j);
}

void api_hosts_list(struct req *r)
{
	struct list_ctx c = { r, json_array() };
	struct vc_error err = { 0 };
	int ret = vc_store_host_list(r->m->st, host_item, &c, &err);

	if (ret < 0) {
		json_decref(c.arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "hosts", c.arr));
}

/* 409 asking the administrator to confirm what the host presented. */
static void reply_confirm(struct req *r, const char *code, const char *seen, const char *msg)
{
	char pretty[96];

	thumbprint_pretty(seen, pretty);
	reply_json(r, 409, json_pack("{s:{s:s,s:s,s:s}}", "error", "code", code, "message", msg,
				     "thumbprint", pretty));
}

/* Claim the agent with its join token; an agent this manager already
 * claimed (an earlier add that failed after the claim) is taken as is. */
static int claim(struct req *r, const char *address, const char *pin, const char *token,
		 struct vc_error *err)
{
	struct host_call c = { .address = address, .pin = pin, .method = "POST",
			       .path = "/api/v1/host/claim" };
	int ret;

	c.body = json_pack("{s:s}", "join_token", token);
	ret = c.body ? host_call(r->m, &c, err) : vc_error_set(err, -ENOMEM, "out of memory");
	json_decref(c.body);
	if (ret == 0 && c.status == 409) {
		struct host_call g = { .address = address, .pin = pin, .method = "GET",
				       .path = "/api/v1/host" };

		json_decref(c.resp);
		ret = host_call(r->m, &g, err);
		c.status = g.status == 200 ? 200 : 409;
		c.resp = g.resp;
	}
	if (ret == 0 && c.status != 200) {
		const char *m = json_string_value(json_object_get(json_object_get(c.resp, "error"),
								  "message"));

		ret = vc_error_set(err, c.status == 403 ? -EACCES : -EEXIST,
				   "host %s refused to be added: %s", address,
				   m ? m : "(no reason given)");
	}
	json_decref(c.resp);
	return ret;
}

void api_host_add(struct req *r)
{
	const char *address = json_string_value(json_object_get(r->body, "address"));
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	const char *name = json_string_value(json_object_get(r->body, "name"));
	const char *token = json_string_value(json_object_get(r->body, "join_token"));
	const char *given = json_string_value(json_object_get(r->body, "thumbprint"));
	struct host_call probe = { .address = address, .method = "GET", .path = "/api/v1/host" };
	struct vc_error err = { 0 };
	char pin[65], id[INV_ID_LEN];
	int ret;

	if (inv_check_place(r, parent, "host") < 0)
		return;
	if (given && thumbprint_norm(given, pin) < 0) {
		reply_error(r, 400, "bad_request", "field 'thumbprint': 64 hex digits, ':' allowed");
		return;
	}
	/* What does the host present? Shown to the administrator to confirm,
	 * as vSphere does, before anything is sent to it. */
	ret = host_call(r->m, &probe, &err);
	json_decref(probe.resp);
	if (ret < 0) {
		reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&err));
		return;
	}
	if (!given) {
		reply_confirm(r, "thumbprint_required", probe.seen,
			      "confirm the host's certificate thumbprint: send it back in "
			      "'thumbprint'");
		return;
	}
	if (strcmp(pin, probe.seen) != 0) {
		ev_log(r->m, r->user, "host.add", NULL, NULL, NULL, EV_FAIL,
		       "host %s presented another certificate than the one confirmed", address);
		reply_confirm(r, "thumbprint_mismatch", probe.seen,
			      "the host presents another certificate than the thumbprint given");
		return;
	}
	ret = claim(r, address, pin, token, &err);
	if (ret < 0) {
		ev_log(r->m, r->user, "host.add", NULL, NULL, NULL, EV_FAIL, "%s", vc_error_msg(&err));
		if (ret == -EACCES)
			reply_error(r, 403, "forbidden", "%s", vc_error_msg(&err));
		else if (ret == -EEXIST)
			reply_error(r, 409, "conflict", "%s", vc_error_msg(&err));
		else
			reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&err));
		return;
	}
	ret = vc_store_begin(r->m->st, &err);
	if (ret == 0)
		ret = inv_add(r, parent, "host", name, id, &err);
	if (ret == 0)
		ret = vc_store_host_add(r->m->st, &(struct vc_store_host){
			.id = id, .address = address, .thumbprint = pin, .added = now_s() }, &err);
	ret = vc_store_end(r->m->st, ret, &err);
	if (ret < 0) {
		authz_invalidate(r->m);
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "host.add", id, NULL, NULL, EV_OK,
	       "added host %s at %s (certificate SHA-256 %s), both sides pinned", name, address,
	       pin);
	reply_json(r, 201, host_json(&(struct vc_store_host){ .id = id, .address = address,
				     .thumbprint = pin, .added = now_s() }, name, parent));
}

/* The stored host of the path, or a reply. */
static int path_host(struct req *r, struct vc_store_host *h)
{
	struct vc_error err = { 0 };
	int ret = vc_store_host_get(r->m->st, r->param[0], h, &err);

	if (ret < 0)
		reply_errno(r, ret, &err);
	return ret;
}

void api_host_get(struct req *r)
{
	struct vc_store_host h;
	struct host_call c = { .method = "GET", .path = "/api/v1/host", .timeout_ms = 5000 };
	struct vc_store_object o;
	struct vc_error err = { 0 };
	json_t *j;
	int ret;

	if (path_host(r, &h) < 0)
		return;
	ret = vc_store_object_get(r->m->st, h.id, &o, &err);
	if (ret < 0) {
		free(h.mem);
		reply_errno(r, ret, &err);
		return;
	}
	c.address = h.address;
	c.pin = h.thumbprint;
	j = host_json(&h, o.name, o.parent);
	ret = host_call(r->m, &c, &err);
	if (ret == 0 && c.status == 200) {
		json_object_set_new(j, "connection", json_string("connected"));
		json_object_set(j, "agent", c.resp);
	} else {
		json_object_set_new(j, "connection", json_string("disconnected"));
		json_object_set_new(j, "reason", json_string(ret < 0 ? vc_error_msg(&err)
							  : "the agent refused this manager"));
	}
	json_decref(c.resp);
	free(o.mem);
	free(h.mem);
	reply_json(r, 200, j);
}

void api_host_mode(struct req *r)
{
	bool on = json_is_true(json_object_get(r->body, "enabled"));
	struct vc_store_host h;
	struct host_call c = { .method = "PUT", .path = "/api/v1/host/encryption-mode" };
	struct vc_error err = { 0 };
	int ret;

	if (path_host(r, &h) < 0)
		return;
	c.address = h.address;
	c.pin = h.thumbprint;
	c.body = json_pack("{s:b}", "enabled", on);
	ret = c.body ? host_call(r->m, &c, &err) : vc_error_set(&err, -ENOMEM, "out of memory");
	json_decref(c.body);
	if (ret == 0 && c.status != 200)
		ret = vc_error_set(&err, -EIO, "host %s answered %ld", h.address, c.status);
	json_decref(c.resp);
	if (ret == 0)
		ret = vc_store_host_set_encryption_mode(r->m->st, h.id, on, &err);
	ev_log(r->m, r->user, "host.encryption-mode", h.id, NULL, NULL, ret == 0 ? EV_OK : EV_FAIL,
	       "%s host encryption mode on %s%s%s", on ? "enable" : "disable", h.address,
	       ret == 0 ? "" : ": ", ret == 0 ? "" : vc_error_msg(&err));
	if (ret < 0) {
		free(h.mem);
		reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&err));
		return;
	}
	h.encryption_mode = on;
	{
		struct vc_store_object o;

		if (vc_store_object_get(r->m->st, h.id, &o, &err) == 0) {
			reply_json(r, 200, host_json(&h, o.name, o.parent));
			free(o.mem);
		} else {
			reply_errno(r, -ENOENT, &err);
		}
	}
	free(h.mem);
}
