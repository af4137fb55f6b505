/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's request parsing, kept free of I/O so a fuzzer can drive it:
 * request targets (path + query), route patterns and JSON bodies checked
 * against a field list. */
#ifndef VC_REQUEST_H
#define VC_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "vc_error.h"

#define VC_REQ_BODY_MAX (64 * 1024)
#define VC_REQ_NAME_MAX 128       /* names of users, roles, objects, ... */
#define VC_REQ_PARAM_MAX 256      /* one decoded path segment or query value */
#define VC_REQ_SEGS_MAX 8
#define VC_REQ_QUERY_MAX 12

/* A request target split into percent-decoded path segments and query
 * pairs. Segments and values hold no NUL and no control characters. */
struct vc_target {
	char seg[VC_REQ_SEGS_MAX][VC_REQ_PARAM_MAX];
	size_t nseg;
	struct {
		char key[32];
		char val[VC_REQ_PARAM_MAX];
	} q[VC_REQ_QUERY_MAX];
	size_t nq;
};

/* Parse "/api/v1/x/y?a=b&c=d" (origin form only). -EINVAL with a message
 * for anything else: no leading '/', empty segments ("//"), "." or "..",
 * bad or NUL-producing percent escapes, control characters, too many or
 * too long segments or pairs, a repeated query key. */
VC_MUST_CHECK int vc_target_parse(const char *target, struct vc_target *out,
				  struct vc_error *err);

/* The value of query key, or NULL. */
const char *vc_target_query(const struct vc_target *t, const char *key);

/* -EINVAL naming the first query key not in allowed (NULL-terminated;
 * allowed may be NULL for none). */
VC_MUST_CHECK int vc_target_check_query(const struct vc_target *t,
					const char *const *allowed,
					struct vc_error *err);

/* Match t's path against pattern ("/api/v1/roles/{name}"): literal
 * segments compare exactly, "{x}" matches any one segment, whose index in
 * t->seg is stored in params[] in order (at most 4). Returns true on a
 * match, with *nparams set. */
bool vc_route_match(const char *pattern, const struct vc_target *t, size_t params[4],
		    size_t *nparams);

/* What a JSON body field may hold. */
enum vc_field_type {
	VC_F_NAME,      /* 1..128 bytes of printable ASCII, no '/' */
	VC_F_NAME_OR_NULL, /* a VC_F_NAME or null */
	VC_F_STRING,    /* a string of min..max bytes (UTF-8 checked by jansson) */
	VC_F_BOOL,
	VC_F_INT,       /* an integer in min..max */
	VC_F_NAMES,     /* an array (min..max entries) of VC_F_NAME strings */
	VC_F_STRINGS,   /* an array (min..max entries) of non-empty strings of at most 256 bytes */
	VC_F_OBJECT,    /* an object, checked by sub */
	VC_F_OBJECTS,   /* an array (min..max entries) of objects, each checked by sub */
};

struct vc_field {
	const char *name;
	enum vc_field_type type;
	bool required;
	int64_t min, max;               /* lengths, counts or values */
	const struct vc_field *sub;     /* VC_F_OBJECT: its fields, NULL-named end */
	const char *const *one_of;      /* VC_F_STRING/NAME: allowed values, or NULL */
};

/* Parse body[len] as one JSON object (duplicate keys refused) and check it
 * against fields (ended by an entry whose name is NULL): no unknown field,
 * every required one present, each of its type and limits. On success
 * *out holds a new reference. -EINVAL with one message naming the field
 * otherwise (-EMSGSIZE if len > VC_REQ_BODY_MAX). An empty body (len 0)
 * counts as {}. */
VC_MUST_CHECK int vc_body_parse(const char *body, size_t len, const struct vc_field *fields,
				json_t **out, struct vc_error *err);

/* Check one value against one field (used by vc_body_parse). */
VC_MUST_CHECK int vc_field_check(const struct vc_field *f, json_t *v, const char *path,
				 struct vc_error *err);

/* A name as VC_F_NAME accepts it. */
bool vc_name_valid(const char *s);

/* Parse a time for event filters: Unix seconds ("1763900000") or RFC 3339
 * UTC ("2026-11-23T10:00:00Z"). -EINVAL otherwise. */
VC_MUST_CHECK int vc_time_parse(const char *s, int64_t *out, struct vc_error *err);

#endif
