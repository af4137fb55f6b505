/* SPDX-License-Identifier: Apache-2.0 */
/* Request targets, route patterns and JSON body checks (see request.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "request.h"
#include "vc_common.h"

/* User input quoted in a message: printable ASCII as is, anything else
 * as \xHH, at most SHOWN_IN input bytes ("..." after), so messages stay one
 * line of valid UTF-8 (they go into JSON). */
#define SHOWN_IN 120
#define SHOWN_MAX (SHOWN_IN * 4 + 4)
static const char *shown(const char *s, char buf[SHOWN_MAX])
{
	size_t o = 0, i;

	for (i = 0; s[i] && i < SHOWN_IN; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 0x20 && c < 0x7f && c != '\\') {
			buf[o++] = (char)c;
		} else {
			snprintf(buf + o, 5, "\\x%02x", c);
			o += 4;
		}
	}
	if (s[i])
		memcpy(buf + o, "...", 3), o += 3;
	buf[o] = '\0';
	return buf;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode src[len] into dst[VC_REQ_PARAM_MAX]; plus_space for query parts. */
static int decode(const char *src, size_t len, char *dst, size_t cap, bool plus_space,
		  struct vc_error *err)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)src[i];

		if (c == '%') {
			int a = i + 1 < len ? hexval(src[i + 1]) : -1;
			int b = i + 2 < len ? hexval(src[i + 2]) : -1;

			if (a < 0 || b < 0)
				return vc_error_set(err, -EINVAL, "bad percent escape in request target");
			c = a * 16 + b;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		if (c < 0x20 || c == 0x7f)
			return vc_error_set(err, -EINVAL,
					    "control character in request target");
		if (o + 1 >= cap)
			return vc_error_set(err, -EINVAL, "request target part too long");
		dst[o++] = (char)c;
	}
	dst[o] = '\0';
	return 0;
}

static int parse_query(const char *q, struct vc_target *t, struct vc_error *err)
{
	char sb[SHOWN_MAX];

	while (*q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t klen = eq ? (size_t)(eq - q) : len;
		int r;

		if (len == 0)
			return vc_error_set(err, -EINVAL, "empty query parameter");
		if (t->nq == VC_REQ_QUERY_MAX)
			return vc_error_set(err, -EINVAL, "too many query parameters");
		r = decode(q, klen, t->q[t->nq].key, sizeof t->q[t->nq].key, true, err);
		if (r < 0)
			return r;
		if (!t->q[t->nq].key[0])
			return vc_error_set(err, -EINVAL, "empty query parameter name");
		if (vc_target_query(t, t->q[t->nq].key))
			return vc_error_set(err, -EINVAL, "query parameter '%s' given twice",
					    shown(t->q[t->nq].key, sb));
		r = eq ? decode(eq + 1, len - klen - 1, t->q[t->nq].val, VC_REQ_PARAM_MAX, true,
				err)
		       : (t->q[t->nq].val[0] = '\0', 0);
		if (r < 0)
			return r;
		t->nq++;
		q += len;
		if (*q == '&')
			q++;
	}
	return 0;
}

int vc_target_parse(const char *target, struct vc_target *t, struct vc_error *err)
{
	const char *p = target, *qm;
	size_t plen;

	memset(t, 0, sizeof *t);
	if (!target || target[0] != '/')
		return vc_error_set(err, -EINVAL, "request target must start with '/'");
	qm = strchr(target, '?');
	plen = qm ? (size_t)(qm - target) : strlen(target);
	if (memchr(target, '#', strlen(target)))
		return vc_error_set(err, -EINVAL, "fragment in request target");
	p = target + 1;
	while ((size_t)(p - target) < plen) {
		const char *slash = memchr(p, '/', plen - (size_t)(p - target));
		size_t len = slash ? (size_t)(slash - p) : plen - (size_t)(p - target);
		int r;

		if (len == 0) {
			/* One trailing slash is tolerated ("/api/v1/roles/"). */
			if (!slash && t->nseg > 0)
				break;
			return vc_error_set(err, -EINVAL, "empty path segment");
		}
		if (t->nseg == VC_REQ_SEGS_MAX)
			return vc_error_set(err, -EINVAL, "too many path segments");
		r = decode(p, len, t->seg[t->nseg], VC_REQ_PARAM_MAX, false, err);
		if (r < 0)
			return r;
		if (!strcmp(t->seg[t->nseg], ".") || !strcmp(t->seg[t->nseg], "..") ||
		    strchr(t->seg[t->nseg], '/') || !t->seg[t->nseg][0])
			return vc_error_set(err, -EINVAL, "bad path segment");
		t->nseg++;
		p += len;
		if (slash)
			p++;
	}
	return qm ? parse_query(qm + 1, t, err) : 0;
}

const char *vc_target_query(const struct vc_target *t, const char *key)
{
	for (size_t i = 0; i < t->nq; i++)
		if (!strcmp(t->q[i].key, key))
			return t->q[i].val;
	return NULL;
}

int vc_target_check_query(const struct vc_target *t, const char *const *allowed,
			  struct vc_error *err)
{
	char sb[SHOWN_MAX];

	for (size_t i = 0; i < t->nq; i++) {
		bool ok = false;

		for (size_t j = 0; allowed && allowed[j]; j++)
			ok = ok || !strcmp(allowed[j], t->q[i].key);
		if (!ok)
			return vc_error_set(err, -EINVAL, "unknown query parameter '%s'",
					    shown(t->q[i].key, sb));
	}
	return 0;
}

bool vc_route_match(const char *pattern, const struct vc_target *t, size_t params[4],
		    size_t *nparams)
{
	const char *p = pattern;
	size_t i = 0, np = 0;

	while (*p == '/') {
		const char *s = ++p;
		size_t len;

		while (*p && *p != '/')
			p++;
		len = (size_t)(p - s);
		if (i >= t->nseg)
			return false;
		if (len >= 2 && s[0] == '{' && s[len - 1] == '}') {
			if (np == 4)
				return false;
			params[np++] = i;
		} else if (strlen(t->seg[i]) != len || memcmp(t->seg[i], s, len)) {
			return false;
		}
		i++;
	}
	if (i != t->nseg)
		return false;
	*nparams = np;
	return true;
}

bool vc_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > VC_REQ_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '/')
			return false;
	return true;
}

static const char *type_name(enum vc_field_type t)
{
	switch (t) {
	case VC_F_NAME:
		return "a name (1-128 printable ASCII characters, no '/' or blank)";
	case VC_F_NAME_OR_NULL:
		return "a name (1-128 printable ASCII characters, no '/' or blank) or null";
	case VC_F_STRING:
		return "a string";
	case VC_F_BOOL:
		return "true or false";
	case VC_F_INT:
		return "an integer";
	case VC_F_NAMES:
		return "an array of names";
	case VC_F_STRINGS:
		return "an array of strings";
	case VC_F_OBJECT:
		return "an object";
	case VC_F_OBJECTS:
		return "an array of objects";
	}
	return "?";
}

static int check_one_of(const struct vc_field *f, const char *s, const char *path,
			struct vc_error *err)
{
	char sb[SHOWN_MAX];

	if (!f->one_of)
		return 0;
	for (size_t i = 0; f->one_of[i]; i++)
		if (!strcmp(f->one_of[i], s))
			return 0;
	return vc_error_set(err, -EINVAL, "field '%s': '%s' is not an accepted value",
			    path, shown(s, sb));
}

static int check_object(const struct vc_field *fields, json_t *obj, const char *path,
			struct vc_error *err);

static int check_objects(const struct vc_field *f, json_t *v, const char *path,
			 struct vc_error *err)
{
	size_t n = json_array_size(v), i;
	char sub[160];
	json_t *e;

	if ((int64_t)n < f->min || (int64_t)n > f->max)
		return vc_error_set(err, -EINVAL, "field '%s': %zu entries (accepted: %lld to %lld)",
				    path, n, (long long)f->min, (long long)f->max);
	json_array_foreach(v, i, e) {
		int r;

		snprintf(sub, sizeof sub, "%s[%zu]", path, i);
		if (!json_is_object(e))
			return vc_error_set(err, -EINVAL, "field '%s' must be an object", sub);
		r = check_object(f->sub, e, sub, err);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check_array(const struct vc_field *f, json_t *v, const char *path,
		       struct vc_error *err)
{
	size_t n = json_array_size(v), i;
	json_t *e;

	if ((int64_t)n < f->min || (int64_t)n > f->max)
		return vc_error_set(err, -EINVAL, "field '%s': %zu entries (accepted: %lld to %lld)",
				    path, n, (long long)f->min, (long long)f->max);
	json_array_foreach(v, i, e) {
		const char *s = json_string_value(e);

		if (!json_is_string(e))
			return vc_error_set(err, -EINVAL, "field '%s': entry %zu is not a string",
					    path, i);
		if (f->type == VC_F_NAMES ? !vc_name_valid(s)
					  : (json_string_length(e) == 0 ||
					     json_string_length(e) > 256 ||
					     strlen(s) != json_string_length(e)))
			return vc_error_set(err, -EINVAL, "field '%s': entry %zu is not %s", path,
					    i, f->type == VC_F_NAMES ? "a valid name"
								     : "a non-empty string of at most 256 bytes");
	}
	return 0;
}

int vc_field_check(const struct vc_field *f, json_t *v, const char *path,
		   struct vc_error *err)
{
	bool ok;

	if (f->type == VC_F_NAME_OR_NULL && json_is_null(v))
		return 0;
	switch (f->type) {
	case VC_F_NAME:
	case VC_F_NAME_OR_NULL:
		ok = json_is_string(v) && vc_name_valid(json_string_value(v)) &&
		     strlen(json_string_value(v)) == json_string_length(v);
		break;
	case VC_F_STRING:
		ok = json_is_string(v);
		break;
	case VC_F_BOOL:
		ok = json_is_boolean(v);
		break;
	case VC_F_INT:
		ok = json_is_integer(v);
		break;
	case VC_F_NAMES:
	case VC_F_STRINGS:
	case VC_F_OBJECTS:
		ok = json_is_array(v);
		break;
	case VC_F_OBJECT:
		ok = json_is_object(v);
		break;
	default:
		ok = false;
	}
	if (!ok)
		return vc_error_set(err, -EINVAL, "field '%s' must be %s", path,
				    type_name(f->type));
	switch (f->type) {
	case VC_F_NAME:
	case VC_F_NAME_OR_NULL:
		return check_one_of(f, json_string_value(v), path, err);
	case VC_F_STRING: {
		size_t n = json_string_length(v);

		if ((int64_t)n < (f->min ? f->min : 1) || (f->max && (int64_t)n > f->max))
			return vc_error_set(err, -EINVAL,
					    "field '%s': %zu bytes (accepted: %lld to %lld)", path,
					    n, (long long)(f->min ? f->min : 1),
					    (long long)f->max);
		if (strlen(json_string_value(v)) != n)
			return vc_error_set(err, -EINVAL, "field '%s' contains a NUL character",
					    path);
		return check_one_of(f, json_string_value(v), path, err);
	}
	case VC_F_INT: {
		json_int_t i = json_integer_value(v);

		if (i < f->min || i > f->max)
			return vc_error_set(err, -EINVAL, "field '%s': %lld is out of range "
					    "(%lld to %lld)", path, (long long)i,
					    (long long)f->min, (long long)f->max);
		return 0;
	}
	case VC_F_NAMES:
	case VC_F_STRINGS:
		return check_array(f, v, path, err);
	case VC_F_OBJECT:
		return check_object(f->sub, v, path, err);
	case VC_F_OBJECTS:
		return check_objects(f, v, path, err);
	default:
		return 0;
	}
}

static int check_object(const struct vc_field *fields, json_t *obj, const char *path,
			struct vc_error *err)
{
	const char *key;
	json_t *v;
	char sub[160], sb[SHOWN_MAX];

	json_object_foreach(obj, key, v) {
		const struct vc_field *f = NULL;
		int r;

		for (const struct vc_field *g = fields; g && g->name; g++)
			if (!strcmp(g->name, key))
				f = g;
		if (!f)
			return vc_error_set(err, -EINVAL, "unknown field '%s%s%s'", path,
					    path[0] ? "." : "", shown(key, sb));
		snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", key);
		r = vc_field_check(f, v, sub, err);
		if (r < 0)
			return r;
	}
	for (const struct vc_field *g = fields; g && g->name; g++)
		if (g->required && !json_object_get(obj, g->name))
			return vc_error_set(err, -EINVAL, "missing field '%s%s%s'", path,
					    path[0] ? "." : "", g->name);
	return 0;
}

int vc_body_parse(const char *body, size_t len, const struct vc_field *fields,
		  json_t **out, struct vc_error *err)
{
	char sb[SHOWN_MAX];
	json_error_t je;
	json_t *j;
	int r;

	*out = NULL;
	if (len > VC_REQ_BODY_MAX)
		return vc_error_set(err, -EMSGSIZE, "request body of %zu bytes is over the "
				    "limit of %d", len, VC_REQ_BODY_MAX);
	if (len == 0) {
		j = json_object();
		if (!j)
			return vc_error_set(err, -ENOMEM, "out of memory");
	} else {
		j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
		if (!j)
			/* jansson's text may quote the input ("near '...'"). */
			return vc_error_set(err, -EINVAL, "malformed JSON at line %d column %d: %s",
					    je.line, je.column, shown(je.text, sb));
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return vc_error_set(err, -EINVAL, "the request body must be a JSON object");
	}
	r = check_object(fields, j, "", err);
	if (r < 0) {
		json_decref(j);
		return r;
	}
	*out = j;
	return 0;
}

int vc_time_parse(const char *s, int64_t *out, struct vc_error *err)
{
	char sb[SHOWN_MAX];
	struct tm tm = { 0 };
	char *end;
	long long v;

	if (s[0] >= '0' && s[0] <= '9' && !strchr(s, '-')) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (*end || errno || v < 0 || v > 253402300799LL)
			return vc_error_set(err, -EINVAL, "bad time '%s'", shown(s, sb));
		*out = v;
		return 0;
	}
	end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!end || strcmp(end, "Z") != 0)
		return vc_error_set(err, -EINVAL, "bad time '%s' (use Unix seconds or "
				    "2026-11-23T10:00:00Z)", shown(s, sb));
	*out = (int64_t)timegm(&tm);
	return 0;
}
