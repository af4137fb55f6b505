/* SPDX-License-Identifier: Apache-2.0 */
/* Encryption policies, tasks and the event log. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "api.h"
#include "vc_encode.h"

/* ---- policies ---- */
static json_t *policy_json(const struct vc_store_policy *p)
{
	return json_pack("{s:s,s:b,s:s,s:o}", "name", p->name, "encrypt", p->encrypt,
			 "migration", p->migration, "provider", jstr_or_null(p->provider));
}

static int policy_item(const struct vc_store_policy *p, void *ctx)
{
	return json_array_append_new(ctx, policy_json(p));
}

void api_policies_list(struct req *r)
{
	json_t *arr = json_array();
	struct vc_error err = { 0 };
	int ret = vc_store_policy_list(r->m->st, policy_item, arr, &err);

	if (ret < 0) {
		json_decref(arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "policies", arr));
}

void api_policy_get(struct req *r)
{
	struct vc_store_policy p;
	struct vc_error err = { 0 };
	int ret = vc_store_policy_get(r->m->st, r->param[0], &p, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, policy_json(&p));
	free(p.mem);
}

void api_policy_create(struct req *r)
{
	json_t *mig = json_object_get(r->body, "migration");
	json_t *prov = json_object_get(r->body, "provider");
	struct vc_store_policy p = {
		.name = json_string_value(json_object_get(r->body, "name")),
		.encrypt = json_is_true(json_object_get(r->body, "encrypt")),
		.migration = mig ? json_string_value(mig) : "opportunistic",
		.provider = json_is_string(prov) ? json_string_value(prov) : NULL,
	};
	struct vc_error err = { 0 };
	int ret;

	if (prov && !json_is_null(prov) && !json_is_string(prov)) {
		reply_error(r, 400, "bad_request", "field 'provider' must be a name or null");
		return;
	}
	if (p.provider && !prov_find(r->m, p.provider)) {
		reply_error(r, 400, "bad_request", "no key provider '%s'", p.provider);
		return;
	}
	if (!p.encrypt && !strcmp(p.migration, "required")) {
		reply_error(r, 400, "bad_request", "a policy that does not encrypt cannot "
			    "require encrypted migration");
		return;
	}
	ret = vc_store_policy_add(r->m->st, &p, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "policy.create", NULL, p.provider, NULL, EV_OK,
	       "created encryption policy '%s' (encrypt %s, migration %s, provider %s)",
	       p.name, p.encrypt ? "yes" : "no", p.migration,
	       p.provider ? p.provider : "default");
	reply_json(r, 201, policy_json(&p));
}

void api_policy_delete(struct req *r)
{
	struct vc_error err = { 0 };
	int ret = vc_store_policy_delete(r->m->st, r->param[0], &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	ev_log(r->m, r->user, "policy.delete", NULL, NULL, NULL, EV_OK,
	       "deleted encryption policy '%s'", r->param[0]);
	reply_empty(r, 204);
}

/* ---- tasks ---- */
static int task_item(const struct vc_store_task *t, void *ctx)
{
	return json_array_append_new(ctx, task_json(t));
}

void api_tasks_list(struct req *r)
{
	json_t *arr = json_array();
	struct vc_error err = { 0 };
	int ret = vc_store_task_list(r->m->st, task_item, arr, &err);

	if (ret < 0) {
		json_decref(arr);
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, json_pack("{s:o}", "tasks", arr));
}

void api_task_get(struct req *r)
{
	struct vc_store_task t;
	struct vc_error err = { 0 };
	int ret = vc_store_task_get(r->m->st, r->param[0], &t, &err);

	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	reply_json(r, 200, task_json(&t));
	free(t.mem);
}

/* ---- events ---- */
static json_t *event_json(const struct vc_event *ev)
{
	char ph[65], h[65];

	vc_hex_encode(ev->prev_hash, sizeof ev->prev_hash, ph);
	vc_hex_encode(ev->hash, sizeof ev->hash, h);
	return json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "seq",
			 (json_int_t)ev->seq, "time_us", (json_int_t)ev->time_us, "user",
			 ev->user ? ev->user : "", "operation", ev->operation ? ev->operation : "",
			 "object", ev->object ? ev->object : "", "provider",
			 ev->provider ? ev->provider : "", "key_id", ev->key_id ? ev->key_id : "",
			 "result", ev->result ? ev->result : "", "message",
			 ev->message ? ev->message : "", "prev_hash", ph, "hash", h);
}

enum ev_format { FMT_JSON, FMT_JSONL, FMT_CSV };

struct ev_out {
	enum ev_format fmt;
	json_t *arr;
	struct evbuffer *buf;
	int fail;
};

static int ev_item(const struct vc_event *ev, void *ctx)
{
	struct ev_out *o = ctx;
	char *line = NULL;
	int ret;

	if (o->fmt == FMT_JSON)
		return json_array_append_new(o->arr, event_json(ev));
	ret = o->fmt == FMT_JSONL ? vc_event_to_json_line(ev, &line)
				  : vc_event_to_csv_line(ev, &line);
	if (ret < 0)
		return ret;
	ret = evbuffer_add(o->buf, line, strlen(line));
	free(line);
	return ret < 0 ? -ENOMEM : 0;
}

static int filter_from_query(struct req *r, struct vc_store_event_filter *f)
{
	static const char *const times[] = { "from", "to" };
	struct vc_error err = { 0 };

	*f = (struct vc_store_event_filter){
		.user = vc_target_query(&r->t, "user"),
		.object = vc_target_query(&r->t, "object"),
		.operation = vc_target_query(&r->t, "operation"),
	};
	for (size_t i = 0; i < 2; i++) {
		const char *v = vc_target_query(&r->t, times[i]);
		int64_t s;

		if (!v)
			continue;
		if (vc_time_parse(v, &s, &err) < 0) {
			reply_error(r, 400, "bad_request", "query '%s': %s", times[i],
				    vc_error_msg(&err));
			return -EINVAL;
		}
		/* Both bounds are inclusive seconds. */
		if (i == 0)
			f->from_us = s * 1000000;
		else
			f->to_us = s * 1000000 + 999999;
	}
	return 0;
}

void api_events_list(struct req *r)
{
	const char *format = vc_target_query(&r->t, "format");
	struct vc_store_event_filter f;
	struct ev_out o = { .fmt = FMT_JSON };
	struct vc_error err = { 0 };
	int ret;

	if (format && strcmp(format, "json") && strcmp(format, "jsonl") && strcmp(format, "csv")) {
		reply_error(r, 400, "bad_request", "format must be json, jsonl or csv");
		return;
	}
	if (filter_from_query(r, &f) < 0)
		return;
	if (format && !strcmp(format, "jsonl"))
		o.fmt = FMT_JSONL;
	else if (format && !strcmp(format, "csv"))
		o.fmt = FMT_CSV;
	if (o.fmt == FMT_JSON)
		o.arr = json_array();
	else
		o.buf = evbuffer_new();
	if (o.buf && o.fmt == FMT_CSV)
		evbuffer_add(o.buf, vc_event_csv_header(), strlen(vc_event_csv_header()));
	ret = (o.arr || o.buf) ? vc_store_event_list(r->m->st, &f, ev_item, &o, &err)
			       : vc_error_set(&err, -ENOMEM, "out of memory");
	if (ret < 0) {
		json_decref(o.arr);
		if (o.buf)
			evbuffer_free(o.buf);
		reply_errno(r, ret, &err);
		return;
	}
	if (o.fmt == FMT_JSON) {
		reply_json(r, 200, json_pack("{s:o}", "events", o.arr));
		return;
	}
	{
		struct evkeyvalq *h = evhttp_request_get_output_headers(r->er);

		evhttp_add_header(h, "Content-Type", o.fmt == FMT_CSV ? "text/csv; charset=utf-8"
								      : "application/x-ndjson");
		evhttp_add_header(h, "Cache-Control", "no-store");
		evhttp_send_reply(r->er, 200, NULL, o.buf);
		r->replied = true;
		evbuffer_free(o.buf);
	}
}

/* Verify the stored chain in pages, so memory stays bounded. */
struct verify_ctx {
	struct vc_event prev;
	char *prev_mem;
	bool have_prev;
	int64_t count;
	int64_t bad_seq;
	char msg[VC_ERROR_MSG_MAX];
	uint8_t last_hash[VC_SHA256_LEN];
	int64_t last_seq;
};

static int verify_item(const struct vc_event *ev, void *ctx)
{
	static const uint8_t genesis[VC_SHA256_LEN];
	struct verify_ctx *c = ctx;
	struct vc_error err = { 0 };
	struct vc_event pair[2];
	size_t bad = 0;
	int ret;

	/* Check this event against its predecessor: two-element chains
	 * overlapping by one cover the whole log. */
	if (c->have_prev) {
		pair[0] = c->prev;
		pair[1] = *ev;
		ret = vc_event_verify_chain(pair, 2, c->prev.prev_hash, NULL, 0, &bad, &err);
	} else {
		ret = vc_event_verify_chain(ev, 1, genesis, NULL, 0, &bad, &err);
	}
	c->count++;
	if (ret < 0) {
		c->bad_seq = c->have_prev && bad == 0 ? c->prev.seq : ev->seq;
		snprintf(c->msg, sizeof c->msg, "%s", vc_error_msg(&err));
		return 1;
	}
	c->prev = *ev;
	c->have_prev = true;
	memcpy(c->last_hash, ev->hash, sizeof c->last_hash);
	c->last_seq = ev->seq;
	/* Borrowed strings die after this call; only the hashes and seq of
	 * prev are read again, and the string fields are re-hashed, so copy
	 * them. */
	free(c->prev_mem);
	c->prev_mem = NULL;
	{
		const char **f[] = { &c->prev.user, &c->prev.operation, &c->prev.object,
				     &c->prev.provider, &c->prev.key_id, &c->prev.result,
				     &c->prev.message };
		size_t total = 0, off = 0;

		for (size_t i = 0; i < 7; i++)
			total += *f[i] ? strlen(*f[i]) + 1 : 0;
		c->prev_mem = malloc(total ? total : 1);
		if (!c->prev_mem)
			return -ENOMEM;
		for (size_t i = 0; i < 7; i++) {
			if (!*f[i])
				continue;
			size_t n = strlen(*f[i]) + 1;

			memcpy(c->prev_mem + off, *f[i], n);
			*f[i] = c->prev_mem + off;
			off += n;
		}
	}
	return 0;
}

void api_events_verify(struct req *r)
{
	struct verify_ctx c = { 0 };
	struct vc_store_event_filter all = { 0 };
	struct vc_error err = { 0 };
	char h[65];
	int ret = vc_store_event_list(r->m->st, &all, verify_item, &c, &err);

	free(c.prev_mem);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return;
	}
	if (ret == 1) {
		reply_json(r, 200, json_pack("{s:b,s:I,s:I,s:s}", "ok", 0, "count",
					     (json_int_t)c.count, "seq", (json_int_t)c.bad_seq,
					     "message", c.msg));
		return;
	}
	vc_hex_encode(c.last_hash, sizeof c.last_hash, h);
	reply_json(r, 200, json_pack("{s:b,s:I,s:I,s:s}", "ok", 1, "count", (json_int_t)c.count,
				     "last_seq", (json_int_t)c.last_seq, "last_hash", h));
}
