/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for vmcryptd's request parsing (manager/request.c): one
 * input is "METHOD SP TARGET LF BODY", run through what the server does
 * with a request before any handler sees it. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <event2/http.h>
#include <jansson.h>

#include "fuzz.h"
#include "api.h"
#include "request.h"

/*
 * manager/routes.c cannot be linked here (it pulls in every handler), so
 * the route patterns are repeated as strings with their query lists, and
 * the body specs are a representative set: those of routes.c plus one
 * that reaches what they leave out (a string with one_of, two levels of
 * objects, negative integers, arrays with a minimum). Keep the patterns
 * in step with `vmcryptd --print-routes`.
 */

#define END { 0 }

static const char *const formats[] = { "json", "jsonl", "csv", NULL };
static const struct vc_field none_f[] = { END };

/* Not a route's: the shapes the routes do not use. */
static const struct vc_field inner_f[] = {
	{ "format", VC_F_STRING, true, 0, 0, NULL, formats },
	{ "offset", VC_F_INT, false, -1000, 1000, NULL, NULL },
	{ "tags", VC_F_STRINGS, false, 0, 4, NULL, NULL },
	END };
static const struct vc_field middle_f[] = {
	{ "inner", VC_F_OBJECT, true, 0, 0, inner_f, NULL },
	{ "owner", VC_F_NAME_OR_NULL, false, 0, 0, NULL, NULL },
	END };
static const struct vc_field extra_f[] = {
	{ "outer", VC_F_OBJECT, false, 0, 0, middle_f, NULL },
	{ "members", VC_F_NAMES, false, 1, 3, NULL, NULL },
	{ "note", VC_F_STRING, false, 0, 0, NULL, NULL },
	{ "count", VC_F_INT, false, INT64_MIN, INT64_MAX, NULL, NULL },
	{ "items", VC_F_OBJECTS, false, 1, 3, inner_f, NULL },
	END };

/* The daemon's own route table (manager/routes.c), so the fuzzer follows
 * every change to it; its body specs plus the two above. */
#define NROUTES mgr_nroutes
static const struct vc_field *specs[64];
static size_t nspecs;

static void collect_specs(void)
{
	if (nspecs)
		return;
	specs[nspecs++] = none_f;
	specs[nspecs++] = extra_f;
	for (size_t i = 0; i < mgr_nroutes && nspecs < 64; i++)
		if (mgr_routes[i].fields)
			specs[nspecs++] = mgr_routes[i].fields;
}

/* What the replay checks the corpus reached. */
static long n_parsed, n_routed, n_query_ok, n_time_ok, n_body_ok;

/* -------------------------------------------------------------- checks */

static bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p++, n, min;
		uint32_t cp;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf)
			n = 1, min = 0x80, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2, min = 0x800, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3, min = 0x10000, cp = c & 0x07;
		else
			return false;
		for (unsigned i = 0; i < n; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3fu);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* Every refusal becomes a JSON error message (server.c reply_error): it
 * must say something, on one line, in a string JSON can carry. */
static void check_refusal(const char *what, int r, const struct vc_error *err)
{
	size_t n = strnlen(err->msg, sizeof err->msg);

	FUZZ_CHECK(n > 0 && n < sizeof err->msg, "%s failed (%d) without a message", what, r);
	FUZZ_CHECK(err->code == r, "%s returned %d but recorded %d", what, r, err->code);
	FUZZ_CHECK(!strpbrk(err->msg, "\n\r"), "%s: message of more than one line: %s", what,
		   err->msg);
	FUZZ_CHECK(utf8_valid(err->msg), "%s: message is not valid UTF-8 (JSON cannot carry it): %s",
		   what, err->msg);
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static void check_target(const struct vc_target *t)
{
	FUZZ_CHECK(t->nseg <= VC_REQ_SEGS_MAX, "%zu segments", t->nseg);
	FUZZ_CHECK(t->nq <= VC_REQ_QUERY_MAX, "%zu query pairs", t->nq);
	for (size_t i = 0; i < t->nseg; i++) {
		const char *s = t->seg[i];

		FUZZ_CHECK(strnlen(s, VC_REQ_PARAM_MAX) < VC_REQ_PARAM_MAX,
			   "segment %zu is not terminated", i);
		FUZZ_CHECK(s[0] != '\0', "segment %zu is empty", i);
		FUZZ_CHECK(!strchr(s, '/'), "segment %zu holds a '/': %s", i, s);
		FUZZ_CHECK(!has_control(s), "segment %zu holds a control character", i);
		FUZZ_CHECK(strcmp(s, ".") && strcmp(s, ".."), "segment %zu is '%s'", i, s);
	}
	for (size_t i = 0; i < t->nq; i++) {
		const char *k = t->q[i].key, *v = t->q[i].val;

		FUZZ_CHECK(strnlen(k, sizeof t->q[i].key) < sizeof t->q[i].key,
			   "query key %zu is not terminated", i);
		FUZZ_CHECK(strnlen(v, VC_REQ_PARAM_MAX) < VC_REQ_PARAM_MAX,
			   "query value %zu is not terminated", i);
		FUZZ_CHECK(k[0] != '\0', "query key %zu is empty", i);
		FUZZ_CHECK(!has_control(k) && !has_control(v),
			   "query pair %zu holds a control character", i);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(t->q[j].key, k), "query key '%s' twice", k);
		FUZZ_CHECK(vc_target_query(t, k) == v, "vc_target_query('%s') is not pair %zu", k,
			   i);
	}
}

static char *pct_encode(char *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			*o++ = (char)c;
		} else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	return o;
}

/* Decoding is a function of the bytes: the parsed target, written back
 * with every other byte percent-escaped, parses to the same thing. */
static void check_roundtrip(const struct vc_target *t)
{
	static char buf[VC_REQ_SEGS_MAX * (3 * VC_REQ_PARAM_MAX + 1) +
			VC_REQ_QUERY_MAX * (3 * 32 + 3 * VC_REQ_PARAM_MAX + 2) + 8];
	static struct vc_target again;
	struct vc_error err = { 0 };
	char *o = buf;
	int r;

	*o++ = '/';
	for (size_t i = 0; i < t->nseg; i++) {
		if (i)
			*o++ = '/';
		o = pct_encode(o, t->seg[i]);
	}
	for (size_t i = 0; i < t->nq; i++) {
		*o++ = i ? '&' : '?';
		o = pct_encode(o, t->q[i].key);
		*o++ = '=';
		o = pct_encode(o, t->q[i].val);
	}
	*o = '\0';
	r = vc_target_parse(buf, &again, &err);
	FUZZ_CHECK(r == 0, "re-encoded target %s refused: %s", buf, err.msg);
	FUZZ_CHECK(again.nseg == t->nseg && again.nq == t->nq, "re-encoded target %s parses to "
		   "%zu/%zu parts, not %zu/%zu", buf, again.nseg, again.nq, t->nseg, t->nq);
	for (size_t i = 0; i < t->nseg; i++)
		FUZZ_CHECK(!strcmp(again.seg[i], t->seg[i]), "segment %zu changed on re-encoding",
			   i);
	/* An empty value and a missing '=' are the same: compare values. */
	for (size_t i = 0; i < t->nq; i++)
		FUZZ_CHECK(!strcmp(again.q[i].key, t->q[i].key) &&
				   !strcmp(again.q[i].val, t->q[i].val),
			   "query pair %zu changed on re-encoding", i);
}

/* The matching rule of request.h, written out again. */
static bool route_expect(const char *pattern, const struct vc_target *t, size_t want[4],
			 size_t *nparams)
{
	const char *p = pattern;
	size_t i = 0, np = 0;

	while (*p == '/') {
		const char *s = ++p;
		size_t len = strcspn(s, "/");

		p = s + len;
		if (i >= t->nseg)
			return false;
		if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
			if (np == 4)
				return false;
			want[np++] = i;
		} else if (strlen(t->seg[i]) != len || memcmp(t->seg[i], s, len)) {
			return false;
		}
		i++;
	}
	*nparams = np;
	return i == t->nseg;
}

static bool query_expect(const struct vc_target *t, const char *const *allowed)
{
	for (size_t i = 0; i < t->nq; i++) {
		bool ok = false;

		for (size_t j = 0; allowed && allowed[j]; j++)
			ok = ok || !strcmp(allowed[j], t->q[i].key);
		if (!ok)
			return false;
	}
	return true;
}

static void check_query(const struct vc_target *t, const char *const *allowed)
{
	struct vc_error err = { 0 };
	int r = vc_target_check_query(t, allowed, &err);

	FUZZ_CHECK(r == 0 || r == -EINVAL, "vc_target_check_query returned %d", r);
	FUZZ_CHECK((r == 0) == query_expect(t, allowed), "vc_target_check_query returned %d "
		   "for a query %s", r, r ? "that is allowed" : "with an unknown key");
	if (r < 0)
		check_refusal("vc_target_check_query", r, &err);
	else
		n_query_ok++;
}

static void check_routes(const char *method, size_t mlen, const struct vc_target *t)
{
	const struct route *chosen = NULL;

	for (size_t i = 0; i < NROUTES; i++) {
		size_t params[4] = { 0 }, want[4] = { 0 }, np = 99, want_np = 0;
		bool m = vc_route_match(mgr_routes[i].pattern, t, params, &np);

		FUZZ_CHECK(m == route_expect(mgr_routes[i].pattern, t, want, &want_np),
			   "vc_route_match(%s) says %s", mgr_routes[i].pattern, m ? "yes" : "no");
		if (!m)
			continue;
		FUZZ_CHECK(np == want_np, "%s: %zu parameters, not %zu", mgr_routes[i].pattern, np,
			   want_np);
		for (size_t j = 0; j < np; j++)
			FUZZ_CHECK(params[j] == want[j] && params[j] < t->nseg,
				   "%s: parameter %zu at segment %zu, not %zu", mgr_routes[i].pattern, j,
				   params[j], want[j]);
		if (strlen(route_method_name(mgr_routes[i].method)) == mlen && !memcmp(route_method_name(mgr_routes[i].method), method, mlen)) {
			/* server.c takes the first; two would make the rest dead. */
			FUZZ_CHECK(!chosen, "%s and %s both match", chosen ? chosen->pattern : "",
				   mgr_routes[i].pattern);
			chosen = &mgr_routes[i];
		}
	}
	if (chosen) {
		n_routed++;
		check_query(t, chosen->query);
	}
	check_query(t, NULL);
	for (size_t i = 0; i < mgr_nroutes; i++)
		if (mgr_routes[i].query)
			check_query(t, mgr_routes[i].query);
}

static void check_times(const struct vc_target *t)
{
	for (size_t i = 0; i < t->nq; i++) {
		struct vc_error err = { 0 };
		int64_t v = -42;
		int r = vc_time_parse(t->q[i].val, &v, &err);

		FUZZ_CHECK(r == 0 || r == -EINVAL, "vc_time_parse returned %d", r);
		if (r < 0) {
			check_refusal("vc_time_parse", r, &err);
			continue;
		}
		n_time_ok++;
		/* 0000-01-01T00:00:00Z .. 9999-12-31T23:59:59Z */
		FUZZ_CHECK(v >= -62167219200LL && v <= 253402300799LL,
			   "vc_time_parse('%s') = %lld, outside years 0-9999", t->q[i].val,
			   (long long)v);
	}
}

/* ------------------------------------------------ the body rules again */

static bool one_of(const struct vc_field *f, const char *s)
{
	if (!f->one_of)
		return true;
	for (size_t i = 0; f->one_of[i]; i++)
		if (!strcmp(f->one_of[i], s))
			return true;
	return false;
}

static bool name_expect(json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (!s || n < 1 || n > VC_REQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '/')
			return false;
	return true;
}

static bool fields_expect(const struct vc_field *fields, json_t *obj);

static bool field_expect(const struct vc_field *f, json_t *v)
{
	size_t n, i;
	json_t *e;

	switch (f->type) {
	case VC_F_NAME_OR_NULL:
		return json_is_null(v) || (name_expect(v) && one_of(f, json_string_value(v)));
	case VC_F_NAME:
		return name_expect(v) && one_of(f, json_string_value(v));
	case VC_F_STRING:
		/* A zero bound means the default: non-empty, no upper limit
		 * (docs/API.md: an empty string is 400). */
		if (!json_is_string(v))
			return false;
		n = json_string_length(v);
		return (int64_t)n >= (f->min ? f->min : 1) && (!f->max || (int64_t)n <= f->max) &&
		       !memchr(json_string_value(v), 0, n) && one_of(f, json_string_value(v));
	case VC_F_BOOL:
		return json_is_boolean(v);
	case VC_F_INT:
		return json_is_integer(v) && json_integer_value(v) >= f->min &&
		       json_integer_value(v) <= f->max;
	case VC_F_NAMES:
	case VC_F_STRINGS:
		if (!json_is_array(v) || (int64_t)json_array_size(v) < f->min ||
		    (int64_t)json_array_size(v) > f->max)
			return false;
		json_array_foreach(v, i, e) {
			if (f->type == VC_F_NAMES ? !name_expect(e)
						  : (!json_is_string(e) || json_string_length(e) < 1 ||
						     json_string_length(e) > 256 ||
						     memchr(json_string_value(e), 0,
							    json_string_length(e))))
				return false;
		}
		return true;
	case VC_F_OBJECT:
		return json_is_object(v) && fields_expect(f->sub, v);
	case VC_F_OBJECTS: {
		size_t k, cnt = json_array_size(v);
		json_t *el;

		if (!json_is_array(v) || (int64_t)cnt < f->min || (int64_t)cnt > f->max)
			return false;
		json_array_foreach(v, k, el)
			if (!json_is_object(el) || !fields_expect(f->sub, el))
				return false;
		return true;
	}
	}
	return false;
}

static bool fields_expect(const struct vc_field *fields, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const struct vc_field *f = NULL;

		for (const struct vc_field *g = fields; g->name; g++)
			if (!strcmp(g->name, key))
				f = g;
		if (!f || !field_expect(f, v))
			return false;
	}
	for (const struct vc_field *g = fields; g->name; g++)
		if (g->required && !json_object_get(obj, g->name))
			return false;
	return true;
}

static void check_bodies(const char *body, size_t len)
{
	json_error_t je;
	/* What vc_body_parse promises to parse; NULL for no JSON object. */
	json_t *doc = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &je) : json_object();

	if (doc && !json_is_object(doc)) {
		json_decref(doc);
		doc = NULL;
	}
	for (size_t i = 0; i < nspecs; i++) {
		static json_t sentinel;
		struct vc_error err = { 0 };
		json_t *out = &sentinel;        /* to see that a failure clears it */
		int r = vc_body_parse(body, len, specs[i], &out, &err);
		bool want = len <= VC_REQ_BODY_MAX && doc && fields_expect(specs[i], doc);

		FUZZ_CHECK(r == 0 || r == -EINVAL || r == -EMSGSIZE,
			   "vc_body_parse (spec %zu) returned %d", i, r);
		if (len > VC_REQ_BODY_MAX)
			FUZZ_CHECK(r == -EMSGSIZE, "a %zu byte body gave %d", len, r);
		if (r < 0) {
			FUZZ_CHECK(out == NULL, "failed vc_body_parse left an object");
			check_refusal("vc_body_parse", r, &err);
			FUZZ_CHECK(!want, "spec %zu refused a body it accepts: %s", i, err.msg);
			continue;
		}
		n_body_ok++;
		FUZZ_CHECK(json_is_object(out), "vc_body_parse gave no object");
		FUZZ_CHECK(fields_expect(specs[i], out),
			   "spec %zu accepted a body against its rules", i);
		FUZZ_CHECK(want, "spec %zu accepted a body that is not one JSON object of its "
			   "fields", i);
		FUZZ_CHECK(json_equal(out, doc), "spec %zu: the parsed body differs from the text",
			   i);
		json_decref(out);
	}
	json_decref(doc);
}

/* ------------------------------------------------------------ the input */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vc_target t;
	const uint8_t *lf = memchr(data, '\n', size);
	size_t llen = lf ? (size_t)(lf - data) : size;
	const uint8_t *sp = memchr(data, ' ', llen);
	const char *method = (const char *)data;
	size_t mlen = sp ? (size_t)(sp - data) : 0;
	size_t toff = sp ? mlen + 1 : 0;
	struct vc_error err = { 0 };
	char *target;
	int r;

	collect_specs();
	/* libevent hands the server the target as a C string (an inner NUL
	 * ends it there too). Not strndup: ASan's strict_string_checks
	 * would read past the input for a NUL. */
	target = malloc(llen - toff + 1);
	if (!target)
		return 0;
	memcpy(target, data + toff, llen - toff);
	target[llen - toff] = '\0';
	r = vc_target_parse(target, &t, &err);
	FUZZ_CHECK(r == 0 || r == -EINVAL, "vc_target_parse returned %d", r);
	if (r < 0) {
		check_refusal("vc_target_parse", r, &err);
	} else {
		n_parsed++;
		check_target(&t);
		check_roundtrip(&t);
		check_routes(method, mlen, &t);
		check_times(&t);
	}
	free(target);

	/* The body is not NUL-terminated, as in the server's buffer. */
	if (lf)
		check_bodies((const char *)lf + 1, size - llen - 1);
	else
		check_bodies((const char *)data + size, 0);
	return 0;
}

int fuzz_replay_done(long inputs)
{
	printf("fuzz_api_request: %ld inputs: %ld targets parsed, %ld routed, %ld query checks "
	       "passed, %ld times parsed, %ld bodies accepted\n",
	       inputs, n_parsed, n_routed, n_query_ok, n_time_ok, n_body_ok);
	if (!n_parsed || !n_routed || !n_query_ok || !n_time_ok || !n_body_ok) {
		fprintf(stderr, "fuzz_api_request: the corpus misses a whole stage\n");
		return 1;
	}
	return 0;
}
