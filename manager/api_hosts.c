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
#include "vc_encode.h"
#include "vc_vmfile.h"
#include "vc_wrap.h"

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
 * claimed (an earlier add that failed after the claim) is taken back as
 * it is. Worker thread. */
static int claim(struct mgr *m, const char *address, const char *pin, const char *token,
		 bool *mode, struct vc_error *err)
{
	struct host_call c = { .address = address, .pin = pin, .method = "POST",
			       .path = "/api/v1/host/claim" };
	int ret;

	c.body = json_pack("{s:s}", "join_token", token);
	ret = c.body ? host_call(m, &c, err) : vc_error_set(err, -ENOMEM, "out of memory");
	json_decref(c.body);
	if (ret == 0 && c.status == 409) {
		struct host_call g = { .address = address, .pin = pin, .method = "GET",
				       .path = "/api/v1/host" };

		json_decref(c.resp);
		ret = host_call(m, &g, err);
		c.status = g.status == 200 ? 200 : 409;
		c.resp = g.resp;
	}
	if (ret == 0 && c.status != 200) {
		const char *msg = json_string_value(json_object_get(json_object_get(c.resp, "error"),
								    "message"));

		ret = vc_error_set(err, c.status == 403 ? -EACCES : -EEXIST,
				   "host %s refused to be added: %s", address,
				   msg ? msg : "(no reason given)");
	}
	*mode = json_is_true(json_object_get(c.resp, "encryption_mode"));
	json_decref(c.resp);
	return ret;
}

/* One add: what the worker needs and what it found. */
struct add_job {
	char pin[65];
	bool given, mode;
	char seen[65];
	int stage;         /* 0 probe failed, 1 confirmation needed, 2 mismatch, 3 claim tried */
	int ret;
	struct vc_error err;
};

static void add_work(struct req *r, void *arg)
{
	struct add_job *j = arg;
	const char *address = json_string_value(json_object_get(r->body, "address"));
	struct host_call probe = { .address = address, .method = "GET", .path = "/api/v1/host",
				   .timeout_ms = 10000 };

	/* What does the host present? Shown to the administrator to confirm,
	 * as vSphere does, before anything is sent to it. */
	j->ret = host_call(r->m, &probe, &j->err);
	json_decref(probe.resp);
	snprintf(j->seen, sizeof j->seen, "%s", probe.seen);
	if (j->ret < 0)
		return;
	if (!j->given) {
		j->stage = 1;
		return;
	}
	if (strcmp(j->pin, j->seen) != 0) {
		j->stage = 2;
		return;
	}
	j->stage = 3;
	j->ret = claim(r->m, address, j->pin,
		       json_string_value(json_object_get(r->body, "join_token")), &j->mode, &j->err);
}

static void add_done(struct req *r, void *arg)
{
	struct add_job *j = arg;
	const char *address = json_string_value(json_object_get(r->body, "address"));
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	const char *name = json_string_value(json_object_get(r->body, "name"));
	struct vc_error err = { 0 };
	char id[INV_ID_LEN];
	int64_t added = now_s();
	int ret;

	if (j->ret < 0 && j->stage == 0) {
		reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&j->err));
	} else if (j->stage == 1) {
		reply_confirm(r, "thumbprint_required", j->seen,
			      "confirm the host's certificate thumbprint: send it back in "
			      "'thumbprint'");
	} else if (j->stage == 2) {
		ev_log(r->m, r->user, "host.add", NULL, NULL, NULL, EV_FAIL,
		       "host %s presented another certificate than the one confirmed", address);
		reply_confirm(r, "thumbprint_mismatch", j->seen,
			      "the host presents another certificate than the thumbprint given");
	} else if (j->ret < 0) {
		ev_log(r->m, r->user, "host.add", NULL, NULL, NULL, EV_FAIL, "%s",
		       vc_error_msg(&j->err));
		if (j->ret == -EACCES)
			reply_error(r, 403, "forbidden", "%s", vc_error_msg(&j->err));
		else if (j->ret == -EEXIST)
			reply_error(r, 409, "conflict", "%s", vc_error_msg(&j->err));
		else
			reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&j->err));
	} else {
		ret = vc_store_begin(r->m->st, &err);
		if (ret == 0)
			ret = inv_add(r, parent, "host", name, id, &err);
		if (ret == 0)
			ret = vc_store_host_add(r->m->st, &(struct vc_store_host){
				.id = id, .address = address, .thumbprint = j->pin,
				.encryption_mode = j->mode, .added = added }, &err);
		ret = vc_store_end(r->m->st, ret, &err);
		if (ret < 0) {
			authz_invalidate(r->m);
			reply_errno(r, ret, &err);
		} else {
			ev_log(r->m, r->user, "host.add", id, NULL, NULL, EV_OK,
			       "added host %s at %s (certificate SHA-256 %s), both sides pinned",
			       name, address, j->pin);
			reply_json(r, 201, host_json(&(struct vc_store_host){
				.id = id, .address = address, .thumbprint = j->pin,
				.encryption_mode = j->mode, .added = added }, name, parent));
		}
	}
	free(j);
}

void api_host_add(struct req *r)
{
	const char *parent = json_string_value(json_object_get(r->body, "parent"));
	const char *given = json_string_value(json_object_get(r->body, "thumbprint"));
	struct add_job *j;

	if (inv_check_place(r, parent, "host") < 0)
		return;
	j = calloc(1, sizeof *j);
	if (!j) {
		reply_error(r, 500, "internal", "out of memory");
		return;
	}
	j->given = given != NULL;
	if (given && thumbprint_norm(given, j->pin) < 0) {
		free(j);
		reply_error(r, 400, "bad_request", "field 'thumbprint': 64 hex digits, ':' allowed");
		return;
	}
	if (defer_call(r, add_work, add_done, j) < 0) {
		free(j);
		reply_error(r, 500, "internal", "cannot start the call to the host");
	}
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

/* A call to a stored host, made by a worker. */
struct host_job {
	struct vc_store_host h;      /* strings in h.mem */
	struct vc_store_object o;    /* strings in o.mem */
	struct host_call c;
	json_t *body;
	int ret;
	struct vc_error err;
};

static void host_job_free(struct host_job *j)
{
	json_decref(j->c.resp);
	json_decref(j->body);
	free(j->h.mem);
	free(j->o.mem);
	free(j);
}

static void host_work(struct req *r, void *arg)
{
	struct host_job *j = arg;

	j->c.body = j->body;
	j->ret = host_call(r->m, &j->c, &j->err);
}

/* Load the path's host and its object, and start the call. */
static void host_start(struct req *r, const char *method, const char *path, json_t *body,
		       void (*done)(struct req *r, void *arg))
{
	struct host_job *j = calloc(1, sizeof *j);
	struct vc_error err = { 0 };
	int ret;

	if (!j) {
		json_decref(body);
		reply_error(r, 500, "internal", "out of memory");
		return;
	}
	j->body = body;
	ret = path_host(r, &j->h);
	if (ret == 0) {
		ret = vc_store_object_get(r->m->st, j->h.id, &j->o, &err);
		if (ret < 0)
			reply_errno(r, ret, &err);
	}
	if (ret < 0) {
		host_job_free(j);
		return;
	}
	j->c = (struct host_call){ .address = j->h.address, .pin = j->h.thumbprint,
				   .method = method, .path = path, .timeout_ms = 5000 };
	if (defer_call(r, host_work, done, j) < 0) {
		host_job_free(j);
		reply_error(r, 500, "internal", "cannot start the call to the host");
	}
}

static void get_done(struct req *r, void *arg)
{
	struct host_job *j = arg;
	json_t *out = host_json(&j->h, j->o.name, j->o.parent);

	if (j->ret == 0 && j->c.status == 200) {
		json_object_set_new(out, "connection", json_string("connected"));
		json_object_set(out, "agent", j->c.resp);
	} else {
		json_object_set_new(out, "connection", json_string("disconnected"));
		json_object_set_new(out, "reason", json_string(j->ret < 0 ? vc_error_msg(&j->err)
							    : "the agent refused this manager"));
	}
	reply_json(r, 200, out);
	host_job_free(j);
}

void api_host_get(struct req *r)
{
	host_start(r, "GET", "/api/v1/host", NULL, get_done);
}

static void mode_done(struct req *r, void *arg)
{
	struct host_job *j = arg;
	bool on = json_is_true(json_object_get(j->body, "enabled"));
	int ret = j->ret;

	if (ret == 0 && j->c.status != 200)
		ret = vc_error_set(&j->err, -EIO, "host %s answered %ld", j->h.address, j->c.status);
	if (ret == 0)
		ret = vc_store_host_set_encryption_mode(r->m->st, j->h.id, on, &j->err);
	ev_log(r->m, r->user, "host.encryption-mode", j->h.id, NULL, NULL,
	       ret == 0 ? EV_OK : EV_FAIL, "%s host encryption mode on %s%s%s",
	       on ? "enable" : "disable", j->h.address, ret == 0 ? "" : ": ",
	       ret == 0 ? "" : vc_error_msg(&j->err));
	if (ret < 0) {
		reply_error(r, 502, "host_unreachable", "%s", vc_error_msg(&j->err));
	} else {
		j->h.encryption_mode = on;
		reply_json(r, 200, host_json(&j->h, j->o.name, j->o.parent));
	}
	host_job_free(j);
}

void api_host_mode(struct req *r)
{
	bool on = json_is_true(json_object_get(r->body, "enabled"));
	json_t *body = json_pack("{s:b}", "enabled", on);

	if (!body) {
		reply_error(r, 500, "internal", "out of memory");
		return;
	}
	host_start(r, "PUT", "/api/v1/host/encryption-mode", body, mode_done);
}

/* ---- host key and encrypted dumps ---- */
#define DUMP_MAGIC "VCDUMP1\n"
#define HOST_KEY_FORMAT "vmcrypt-host-key/1"

struct dump_job {
	struct vc_store_host h;
	struct mgr_provider *prov;   /* a reference (default provider, or the dump's) */
	json_t *body;                /* decrypt: the request's dump */
	json_t *out;
	char key_id[VC_KEYPROV_ID_MAX];
	int ret;
	struct vc_error err;
};

static int default_prov(const struct vc_store_provider *p, void *ctx)
{
	if (p->is_default)
		snprintf(ctx, VC_REQ_NAME_MAX + 1, "%s", p->name);
	return 0;
}

static void dump_job_free(struct mgr *m, struct dump_job *j)
{
	prov_put(m, j->prov);
	json_decref(j->out);
	free(j->h.mem);
	free(j);
}

static int call(struct mgr *m, struct dump_job *j, const char *method, const char *path,
		json_t *body, json_t **resp)
{
	struct host_call c = { .address = j->h.address, .pin = j->h.thumbprint, .method = method,
			       .path = path, .body = body };
	int ret = host_call(m, &c, &j->err);

	json_decref(body);
	if (ret == 0 && (c.status < 200 || c.status > 299)) {
		const char *msg = json_string_value(json_object_get(json_object_get(c.resp, "error"),
								    "message"));

		ret = vc_error_set(&j->err, -EIO, "host %s: %s", j->h.address, msg ? msg : "refused");
	}
	if (ret == 0 && resp)
		*resp = c.resp;
	else
		json_decref(c.resp);
	return ret;
}

/* The host key is made on the first dump: a KEK of the default provider,
 * pushed to the host, which wraps its new host key with it. */
static void dump_work(struct req *r, void *arg)
{
	struct dump_job *j = arg;
	json_t *info = NULL;

	j->ret = call(r->m, j, "GET", "/api/v1/host", NULL, &info);
	if (j->ret == 0 && json_is_null(json_object_get(info, "host_key"))) {
		struct vc_secret *kek = NULL;
		char b64[64];

		j->ret = j->prov && j->prov->kp
				 ? vc_keyprov_create_key(j->prov->kp, "vmcrypt-host-key", j->key_id,
							 &kek, &j->err)
				 : vc_error_set(&j->err, -ENOENT, "no default key provider for the "
						"host key");
		if (j->ret == 0) {
			vc_base64_encode(vc_secret_data(kek), vc_secret_len(kek), b64);
			j->ret = call(r->m, j, "PUT", "/api/v1/keys",
				      json_pack("{s:[{s:s,s:s,s:s}]}", "keys", "provider",
						j->prov->name, "key_id", j->key_id, "key", b64), NULL);
			vc_wipe(b64, sizeof b64);
		}
		vc_secret_free(kek);
		if (j->ret == 0)
			j->ret = call(r->m, j, "PUT", "/api/v1/host/key",
				      json_pack("{s:s,s:s}", "provider", j->prov->name, "key_id",
						j->key_id), NULL);
	} else if (j->ret == 0) {
		snprintf(j->key_id, sizeof j->key_id, "%s",
			 json_string_value(json_object_get(json_object_get(info, "host_key"),
							   "key_id")));
	}
	json_decref(info);
	if (j->ret == 0)
		j->ret = call(r->m, j, "POST", "/api/v1/host/dump", NULL, &j->out);
}

static void dump_done(struct req *r, void *arg)
{
	struct dump_job *j = arg;

	ev_log(r->m, r->user, "host.dump", j->h.id, NULL, j->key_id[0] ? j->key_id : NULL,
	       j->ret == 0 ? EV_OK : EV_FAIL, "encrypted state dump of host %s%s%s",
	       j->h.address, j->ret ? ": " : "", j->ret ? vc_error_msg(&j->err) : "");
	if (j->ret < 0)
		reply_error(r, 502, "host_error", "%s", vc_error_msg(&j->err));
	else
		reply_json(r, 201, json_incref(j->out));
	dump_job_free(r->m, j);
}

static struct dump_job *dump_job_new(struct req *r, const char *provider)
{
	struct dump_job *j = calloc(1, sizeof *j);
	char name[VC_REQ_NAME_MAX + 1] = "";
	struct vc_error err = { 0 };

	if (!j) {
		reply_error(r, 500, "internal", "out of memory");
		return NULL;
	}
	if (path_host(r, &j->h) < 0) {
		free(j);
		return NULL;
	}
	if (provider)
		snprintf(name, sizeof name, "%s", provider);
	else if (vc_store_provider_list(r->m->st, default_prov, name, &err) < 0)
		name[0] = '\0';
	j->prov = name[0] ? prov_find(r->m, name) : NULL;
	if (j->prov)
		j->prov->refs++;
	return j;
}

void api_host_dump(struct req *r)
{
	struct dump_job *j = dump_job_new(r, NULL);

	if (j && defer_call(r, dump_work, dump_done, j) < 0) {
		dump_job_free(r->m, j);
		reply_error(r, 500, "internal", "cannot start the call to the host");
	}
}

/* Open a dump: its header names the KEK and the wrapped host key. */
static void open_work(struct req *r, void *arg)
{
	struct dump_job *j = arg;
	const char *b64 = json_string_value(json_object_get(j->body, "dump"));
	size_t len = strlen(b64), n = 0, off;
	uint8_t *raw = malloc(len), *pt = NULL, *nl;
	json_t *hdr = NULL;
	struct vc_secret *kek = NULL, *hk = NULL;
	struct vc_vmfile_reader *rd = NULL;
	struct vc_vmfile_info in;
	struct vc_uuid u;
	uint8_t wrapped[128];
	size_t wlen = 0, pl = 0;
	int ret = raw ? 0 : vc_error_set(&j->err, -ENOMEM, "out of memory");

	(void)r;
	if (ret == 0 && vc_base64_decode(b64, len, raw, len, &n) < 0)
		ret = vc_error_set(&j->err, -EINVAL, "the dump is not base64");
	nl = ret == 0 && n > strlen(DUMP_MAGIC) ? memchr(raw + strlen(DUMP_MAGIC), '\n',
							  n - strlen(DUMP_MAGIC)) : NULL;
	if (ret == 0 && (memcmp(raw, DUMP_MAGIC, strlen(DUMP_MAGIC)) || !nl))
		ret = vc_error_set(&j->err, -EINVAL, "not a vmcrypt dump");
	if (ret == 0)
		hdr = json_loadb((const char *)raw + strlen(DUMP_MAGIC),
				 (size_t)(nl - raw) - strlen(DUMP_MAGIC), JSON_REJECT_DUPLICATES, NULL);
	if (ret == 0 && (!json_is_string(json_object_get(hdr, "key_id")) ||
			 !json_is_string(json_object_get(hdr, "host_id")) ||
			 !json_is_string(json_object_get(hdr, "wrapped_host_key")) ||
			 !json_is_string(json_object_get(hdr, "provider")) ||
			 vc_uuid_parse(json_string_value(json_object_get(hdr, "host_id")), &u) < 0))
		ret = vc_error_set(&j->err, -EINVAL, "the dump's header is damaged");
	if (ret == 0) {
		snprintf(j->key_id, sizeof j->key_id, "%s",
			 json_string_value(json_object_get(hdr, "key_id")));
		if (!j->prov || !j->prov->kp || strcmp(j->prov->name,
				       json_string_value(json_object_get(hdr, "provider"))))
			ret = vc_error_set(&j->err, -EINVAL, "the dump's key provider '%s' is not "
					   "configured", json_string_value(json_object_get(hdr,
												 "provider")));
	}
	if (ret == 0)
		ret = vc_keyprov_get_key(j->prov->kp, j->key_id, &kek, &j->err);
	if (ret == 0) {
		const char *w = json_string_value(json_object_get(hdr, "wrapped_host_key"));
		struct vc_binding b = { .format = HOST_KEY_FORMAT, .object = u.b,
					.provider = j->prov->name, .key_id = j->key_id };

		ret = vc_base64_decode(w, strlen(w), wrapped, sizeof wrapped, &wlen) == 0
			      ? vc_unwrap_key(kek, &b, wrapped, wlen, &hk, &j->err)
			      : vc_error_set(&j->err, -EINVAL, "damaged wrapped host key");
	}
	off = ret == 0 ? (size_t)(nl - raw) + 1 : 0;
	if (ret == 0 && n - off < VC_VMFILE_HDR_LEN)
		ret = vc_error_set(&j->err, -EINVAL, "the dump is truncated");
	if (ret == 0)
		ret = vc_vmfile_reader_new(hk, "dump", raw + off, &in, &rd, &j->err);
	if (ret == 0) {
		size_t at = off + VC_VMFILE_HDR_LEN, full = in.chunk_size + VC_VMFILE_TAG_LEN;

		pt = malloc(n);
		ret = pt ? 0 : vc_error_set(&j->err, -ENOMEM, "out of memory");
		while (ret == 0 && !vc_vmfile_reader_done(rd)) {
			size_t left = n - at, take = left > full ? full : left, got = 0;

			ret = vc_vmfile_reader_chunk(rd, raw + at, take, left <= full, pt + pl, &got,
						     &j->err);
			pl += got;
			at += take;
		}
	}
	if (ret == 0) {
		j->out = json_pack("{s:s,s:s,s:o}", "host_id",
				   json_string_value(json_object_get(hdr, "host_id")), "key_id",
				   j->key_id, "state", json_loadb((const char *)pt, pl, 0, NULL));
		if (!j->out || json_is_null(json_object_get(j->out, "state")))
			ret = vc_error_set(&j->err, -EINVAL, "the dump's content is not JSON");
	}
	if (pt) {
		vc_wipe(pt, n);
		free(pt);
	}
	vc_vmfile_reader_free(rd);
	vc_secret_free(hk);
	vc_secret_free(kek);
	json_decref(hdr);
	free(raw);
	j->ret = ret;
}

static void open_done(struct req *r, void *arg)
{
	struct dump_job *j = arg;

	ev_log(r->m, r->user, "host.dump-decrypt", j->h.id, j->prov ? j->prov->name : NULL,
	       j->key_id[0] ? j->key_id : NULL, j->ret == 0 ? EV_OK : EV_FAIL,
	       "decrypted a state dump of host %s%s%s", j->h.address, j->ret ? ": " : "",
	       j->ret ? vc_error_msg(&j->err) : "");
	if (j->ret == -EINVAL || j->ret == -EBADMSG || j->ret == -EKEYREJECTED)
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(&j->err));
	else if (j->ret < 0)
		reply_error(r, 502, "key_server", "%s", vc_error_msg(&j->err));
	else
		reply_json(r, 200, json_incref(j->out));
	dump_job_free(r->m, j);
}

void api_host_dump_decrypt(struct req *r)
{
	const char *b64 = json_string_value(json_object_get(r->body, "dump"));
	char prov[VC_REQ_NAME_MAX + 1] = "";
	const char *nl = NULL;
	struct dump_job *j;

	/* The provider named in the dump's header (decoded again by the
	 * worker, which checks everything). */
	{
		size_t n = 0, len = strlen(b64);
		uint8_t *raw = malloc(len);

		if (raw && vc_base64_decode(b64, len, raw, len, &n) == 0 && n > 8 &&
		    (nl = memchr(raw + 8, '\n', n - 8))) {
			json_t *hdr = json_loadb((const char *)raw + 8, (size_t)(nl - (char *)raw) - 8,
						 0, NULL);

			const char *p = json_string_value(json_object_get(hdr, "provider"));

			snprintf(prov, sizeof prov, "%s", p ? p : "");
			json_decref(hdr);
		}
		free(raw);
	}
	j = dump_job_new(r, prov[0] ? prov : NULL);
	if (!j)
		return;
	j->body = r->body;
	if (defer_call(r, open_work, open_done, j) < 0) {
		dump_job_free(r->m, j);
		reply_error(r, 500, "internal", "cannot start the decryption");
	}
}
