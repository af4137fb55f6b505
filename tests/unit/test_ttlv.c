/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_ttlv and vc_kmip_defs: PyKMIP golden and captured
 * vectors, the KMIP 1.4 section 9.1.2 examples, and every decoder check. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_kmip_defs.h"
#include "vc_ttlv.h"

/* ---- vectors: tests/vectors/kmip/NAME.hex, one line of hex ---- */

/* Every vector copied from the reference set (README.md there). */
static const char *const all_vectors[] = {
	"captured-01-create-request",
	"captured-01-create-response",
	"captured-02-activate-request",
	"captured-02-activate-response",
	"captured-03-get-request",
	"captured-03-get-response",
	"captured-04-locate-request",
	"captured-04-locate-response",
	"captured-05-get_attributes-request",
	"captured-05-get_attributes-response",
	"captured-06-revoke-request",
	"captured-06-revoke-response",
	"captured-07-destroy-request",
	"captured-07-destroy-response",
	"kmip12-activate-request",
	"kmip12-create-aes256-request",
	"kmip12-create-response",
	"kmip12-get-error-item-not-found-response",
	"kmip12-get-request",
	"kmip12-get-response",
	"kmip20-create-aes256-request",
	"probe-batch-create-get-placeholder-request",
	"probe-batch-create-get-placeholder-response",
	"probe-create-invalid-field-request",
	"probe-create-invalid-field-response",
	"probe-discover-versions-request",
	"probe-discover-versions-response",
	"probe-get-not-found-request",
	"probe-get-not-found-response",
	"probe-query-request",
	"probe-query-response",
	"probe-unsupported-rekey-request",
	"probe-unsupported-rekey-response",
	"probe-unsupported-version-3.0-request",
	"probe-unsupported-version-3.0-response",
};

/* meson test runs us from the build directory, which is also where the
 * compiler was run, so a relative __FILE__ resolves from there;
 * VC_KMIP_VECTORS overrides for other ways of running the binary. */
static FILE *open_vector(const char *name)
{
	const char *env = getenv("VC_KMIP_VECTORS");
	const char *slash = strrchr(__FILE__, '/');
	char path[PATH_MAX];
	FILE *f;

	if (env) {
		snprintf(path, sizeof path, "%s/%s.hex", env, name);
		return fopen(path, "r");
	}
	snprintf(path, sizeof path, "%.*s/../vectors/kmip/%s.hex",
		 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".", name);
	f = fopen(path, "r");
	if (!f) {
		snprintf(path, sizeof path, "tests/vectors/kmip/%s.hex", name);
		f = fopen(path, "r");
	}
	return f;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The vector's bytes in a buffer of exactly their size (so that ASan
 * catches a read past the end); caller frees. */
static uint8_t *load_vector(const char *name, size_t *len)
{
	static char text[16384];
	FILE *f = open_vector(name);
	size_t n;
	uint8_t *b;

	if (!f) {
		fail_msg("vector %s not found: run through meson test or set VC_KMIP_VECTORS", name);
		return NULL;
	}
	n = fread(text, 1, sizeof text - 1, f);
	fclose(f);
	while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
		n--;
	assert_true(n > 0 && n % 2 == 0);
	b = malloc(n / 2);
	assert_non_null(b);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(text[2 * i]), lo = hexval(text[2 * i + 1]);

		assert_true(hi >= 0 && lo >= 0);
		b[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return b;
}

static struct vc_ttlv *decode_vector(const char *name)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *t = NULL;
	size_t len;
	uint8_t *b = load_vector(name, &len);
	int r = vc_ttlv_decode(b, len, &t, &err);

	if (r != 0)
		fail_msg("%s: %s", name, err.msg);
	free(b);
	assert_non_null(t);
	return t;
}

static void assert_encodes_as(const struct vc_ttlv *t, const char *name)
{
	struct vc_error err = { 0 };
	uint8_t *out = NULL;
	size_t len = 0, want_len;
	uint8_t *want = load_vector(name, &want_len);
	int r = vc_ttlv_encode(t, &out, &len, &err);

	if (r != 0)
		fail_msg("encode for %s: %s", name, err.msg);
	assert_int_equal(len, want_len);
	for (size_t i = 0; i < len; i++)
		if (out[i] != want[i])
			fail_msg("%s: byte %zu is %02x, want %02x", name, i, out[i], want[i]);
	free(out);
	free(want);
}

/* A copy of exactly len bytes, decoded. */
static int decode_copy(const void *bytes, size_t len, struct vc_ttlv **t, struct vc_error *err)
{
	uint8_t *b = malloc(len ? len : 1);
	int r;

	assert_non_null(b);
	if (len)
		memcpy(b, bytes, len);
	r = vc_ttlv_decode(b, len, t, err);
	free(b);
	return r;
}

static void assert_rejected(const void *bytes, size_t len, const char *what)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *t = (struct vc_ttlv *)1;
	int r = decode_copy(bytes, len, &t, &err);

	if (r != -EBADMSG)
		fail_msg("%s: decode returned %d, want -EBADMSG", what, r);
	assert_null(t);
	/* The message says where: "... at offset N: ...". */
	assert_non_null(strstr(err.msg, "offset"));
}

static void assert_accepted(const void *bytes, size_t len, const char *what)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *t = NULL;
	int r = decode_copy(bytes, len, &t, &err);

	if (r != 0)
		fail_msg("%s: decode failed: %s", what, err.msg);
	assert_non_null(t);
	vc_ttlv_free(t);
}

/* ---- every vector decodes and re-encodes to the same bytes ---- */

static void test_vectors_round_trip(void **state)
{
	FILE *devnull = fopen("/dev/null", "w");

	(void)state;
	assert_non_null(devnull);
	for (size_t i = 0; i < VC_ARRAY_SIZE(all_vectors); i++) {
		struct vc_error err = { 0 };
		struct vc_ttlv *t = NULL;
		uint8_t *out = NULL;
		size_t len, outlen, total = 0;
		uint8_t *b = load_vector(all_vectors[i], &len);
		uint32_t top;

		if (vc_ttlv_decode(b, len, &t, &err) != 0)
			fail_msg("%s: %s", all_vectors[i], err.msg);
		top = strstr(all_vectors[i], "request") ? VC_KMIP_TAG_REQUEST_MESSAGE
							 : VC_KMIP_TAG_RESPONSE_MESSAGE;
		assert_int_equal(t->tag, top);
		assert_int_equal(t->type, VC_TTLV_STRUCTURE);
		assert_int_equal(vc_ttlv_frame_length(b, &total, &err), 0);
		assert_int_equal(total, len);
		assert_int_equal(vc_ttlv_encode(t, &out, &outlen, &err), 0);
		assert_int_equal(outlen, len);
		assert_memory_equal(out, b, len);
		vc_ttlv_dump(t, devnull);
		free(out);
		free(b);
		vc_ttlv_free(t);
	}
	fclose(devnull);
}

/* ---- selected fields ---- */

static const struct vc_ttlv *batch_item(const struct vc_ttlv *msg, const struct vc_ttlv **payload,
					uint32_t want_op)
{
	struct vc_error err = { 0 };
	const struct vc_ttlv *item;
	uint32_t op;

	assert_int_equal(vc_ttlv_get_structure(msg, VC_KMIP_TAG_BATCH_ITEM, &item, &err), 0);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_OPERATION, &op, &err), 0);
	assert_int_equal(op, want_op);
	if (payload)
		assert_int_equal(vc_ttlv_get_structure(item, VC_KMIP_TAG_RESPONSE_PAYLOAD, payload,
						       &err), 0);
	return item;
}

static void check_header(const struct vc_ttlv *msg, int major, int minor, int64_t stamp)
{
	struct vc_error err = { 0 };
	const struct vc_ttlv *hdr, *pv, *ts;
	int32_t v;

	assert_int_equal(vc_ttlv_get_structure(msg, VC_KMIP_TAG_RESPONSE_HEADER, &hdr, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(hdr, VC_KMIP_TAG_PROTOCOL_VERSION, &pv, &err), 0);
	assert_int_equal(vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, &v, &err), 0);
	assert_int_equal(v, major);
	assert_int_equal(vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, &v, &err), 0);
	assert_int_equal(v, minor);
	ts = vc_ttlv_find(hdr, VC_KMIP_TAG_TIME_STAMP);
	assert_non_null(ts);
	assert_int_equal(ts->type, VC_TTLV_DATE_TIME);
	if (stamp >= 0)
		assert_int_equal(ts->v.i64, stamp);
	assert_int_equal(vc_ttlv_get_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, &v, &err), 0);
	assert_int_equal(v, 1);
}

static void test_get_response_fields(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("kmip12-get-response");
	const struct vc_ttlv *item, *payload, *key, *block, *value, *km;
	const uint8_t *data;
	const char *uid;
	uint32_t e;
	int32_t v;
	size_t len;

	(void)state;
	check_header(msg, 1, 2, 1700000000);
	item = batch_item(msg, &payload, VC_KMIP_OP_GET);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_STATUS, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_RESULT_SUCCESS);
	assert_int_equal(vc_ttlv_get_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_OBJ_SYMMETRIC_KEY);
	assert_int_equal(vc_ttlv_get_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, &uid, &err), 0);
	assert_string_equal(uid, "1");
	assert_int_equal(vc_ttlv_get_structure(payload, VC_KMIP_TAG_SYMMETRIC_KEY, &key, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(key, VC_KMIP_TAG_KEY_BLOCK, &block, &err), 0);
	assert_int_equal(vc_ttlv_get_enum(block, VC_KMIP_TAG_KEY_FORMAT_TYPE, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_KEY_FORMAT_RAW);
	assert_int_equal(vc_ttlv_get_enum(block, VC_KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_ALG_AES);
	assert_int_equal(vc_ttlv_get_integer(block, VC_KMIP_TAG_CRYPTOGRAPHIC_LENGTH, &v, &err), 0);
	assert_int_equal(v, 256);
	assert_int_equal(vc_ttlv_get_structure(block, VC_KMIP_TAG_KEY_VALUE, &value, &err), 0);
	assert_int_equal(vc_ttlv_get_bytes(value, VC_KMIP_TAG_KEY_MATERIAL, &data, &len, &err), 0);
	assert_int_equal(len, 32);
	for (size_t i = 0; i < 32; i++)
		assert_int_equal(data[i], i);
	km = vc_ttlv_find(value, VC_KMIP_TAG_KEY_MATERIAL);
	assert_true(km->secret);
	/* Nothing else in the message is secret. */
	assert_false(vc_ttlv_find(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER)->secret);
	vc_ttlv_free(msg);
}

static void test_captured_get_response(void **state)
{
	static const uint8_t want[32] = {
		0x72, 0x5d, 0x20, 0x60, 0x13, 0x90, 0xd1, 0x78, 0xe0, 0x29, 0xf6,
		0x61, 0x46, 0xa2, 0x15, 0x04, 0xa5, 0xfd, 0x3a, 0x7c, 0x8a, 0x6c,
		0x46, 0x9a, 0xf9, 0xcd, 0x12, 0x2e, 0xa4, 0xc3, 0x2f, 0x61,
	};
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("captured-03-get-response");
	const struct vc_ttlv *payload, *key, *block, *value;
	const uint8_t *data;
	const char *uid;
	size_t len;

	(void)state;
	check_header(msg, 1, 2, 1795422270);
	batch_item(msg, &payload, VC_KMIP_OP_GET);
	assert_int_equal(vc_ttlv_get_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, &uid, &err), 0);
	assert_string_equal(uid, "253");
	assert_int_equal(vc_ttlv_get_structure(payload, VC_KMIP_TAG_SYMMETRIC_KEY, &key, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(key, VC_KMIP_TAG_KEY_BLOCK, &block, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(block, VC_KMIP_TAG_KEY_VALUE, &value, &err), 0);
	assert_int_equal(vc_ttlv_get_bytes(value, VC_KMIP_TAG_KEY_MATERIAL, &data, &len, &err), 0);
	assert_int_equal(len, 32);
	assert_memory_equal(data, want, 32);
	assert_true(vc_ttlv_find(value, VC_KMIP_TAG_KEY_MATERIAL)->secret);
	vc_ttlv_free(msg);
}

static void check_failure(const char *name, uint32_t op, uint32_t reason, const char *message)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector(name);
	const struct vc_ttlv *item, *payload;
	const char *text;
	uint32_t e;

	check_header(msg, 1, 2, -1);
	item = batch_item(msg, NULL, op);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_STATUS, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_RESULT_OPERATION_FAILED);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_REASON, &e, &err), 0);
	assert_int_equal(e, reason);
	assert_int_equal(vc_ttlv_get_text(item, VC_KMIP_TAG_RESULT_MESSAGE, &text, &err), 0);
	assert_string_equal(text, message);
	/* A failed batch item carries no payload. */
	assert_int_equal(vc_ttlv_get_structure(item, VC_KMIP_TAG_RESPONSE_PAYLOAD, &payload, &err),
			 -ENOENT);
	vc_ttlv_free(msg);
}

static void test_failure_responses(void **state)
{
	(void)state;
	check_failure("kmip12-get-error-item-not-found-response", VC_KMIP_OP_GET,
		      VC_KMIP_REASON_ITEM_NOT_FOUND, "Could not locate object: 999");
	check_failure("probe-get-not-found-response", VC_KMIP_OP_GET,
		      VC_KMIP_REASON_ITEM_NOT_FOUND, "Could not locate object: 999999");
	check_failure("probe-unsupported-rekey-response", VC_KMIP_OP_REKEY,
		      VC_KMIP_REASON_OPERATION_NOT_SUPPORTED,
		      "Rekey operation is not supported by the server.");
	check_failure("probe-create-invalid-field-response", VC_KMIP_OP_CREATE,
		      VC_KMIP_REASON_INVALID_FIELD,
		      "The cryptographic length must be specified as an attribute.");
	assert_string_equal(vc_kmip_reason_name(VC_KMIP_REASON_ITEM_NOT_FOUND), "Item Not Found");
}

/* PyKMIP answers a request it cannot parse with a 1.0 header and a batch
 * item without an Operation. */
static void test_unsupported_version_response(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("probe-unsupported-version-3.0-response");
	const struct vc_ttlv *item;
	uint32_t e;

	(void)state;
	check_header(msg, 1, 0, 1795422535);
	assert_int_equal(vc_ttlv_get_structure(msg, VC_KMIP_TAG_BATCH_ITEM, &item, &err), 0);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_OPERATION, &e, &err), -ENOENT);
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "Operation"));
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_REASON, &e, &err), 0);
	assert_int_equal(e, VC_KMIP_REASON_INVALID_MESSAGE);
	vc_ttlv_free(msg);
}

static void test_discover_versions(void **state)
{
	static const int want[][2] = { { 2, 0 }, { 1, 4 }, { 1, 3 }, { 1, 2 }, { 1, 1 }, { 1, 0 } };
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("probe-discover-versions-response");
	const struct vc_ttlv *payload, *pv;
	size_t n = 0;

	(void)state;
	batch_item(msg, &payload, VC_KMIP_OP_DISCOVER_VERSIONS);
	for (pv = vc_ttlv_find(payload, VC_KMIP_TAG_PROTOCOL_VERSION); pv;
	     pv = vc_ttlv_find_next(pv)) {
		int32_t major, minor;

		assert_true(n < VC_ARRAY_SIZE(want));
		assert_int_equal(vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, &major,
						     &err), 0);
		assert_int_equal(vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, &minor,
						     &err), 0);
		assert_int_equal(major, want[n][0]);
		assert_int_equal(minor, want[n][1]);
		n++;
	}
	assert_int_equal(n, VC_ARRAY_SIZE(want));
	vc_ttlv_free(msg);
}

static void test_query_response(void **state)
{
	static const uint32_t want[] = { 0x01, 0x02, 0x03, 0x05, 0x08, 0x0A, 0x0B, 0x0C, 0x12,
					 0x13, 0x14, 0x18, 0x1E, 0x1F, 0x20, 0x21, 0x22, 0x23 };
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("probe-query-response");
	const struct vc_ttlv *payload, *op;
	const char *vendor;
	size_t n = 0;

	(void)state;
	batch_item(msg, &payload, VC_KMIP_OP_QUERY);
	for (op = vc_ttlv_find(payload, VC_KMIP_TAG_OPERATION); op; op = vc_ttlv_find_next(op)) {
		assert_true(n < VC_ARRAY_SIZE(want));
		assert_int_equal(op->type, VC_TTLV_ENUMERATION);
		assert_int_equal(op->v.u32, want[n]);
		n++;
	}
	assert_int_equal(n, VC_ARRAY_SIZE(want));
	assert_int_equal(vc_ttlv_get_text(payload, VC_KMIP_TAG_VENDOR_IDENTIFICATION, &vendor, &err),
			 0);
	assert_string_equal(vendor, "PyKMIP 0.10.0 Software Server");
	/* Asked for, but PyKMIP sends no Server Information. */
	assert_null(vc_ttlv_find(payload, VC_KMIP_TAG_SERVER_INFORMATION));
	vc_ttlv_free(msg);
}

static void test_batch_response(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("probe-batch-create-get-placeholder-response");
	const struct vc_ttlv *item, *payload, *key, *block, *value;
	const uint8_t *id;
	size_t len;
	int32_t count;
	const struct vc_ttlv *hdr;

	(void)state;
	assert_int_equal(vc_ttlv_get_structure(msg, VC_KMIP_TAG_RESPONSE_HEADER, &hdr, &err), 0);
	assert_int_equal(vc_ttlv_get_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, &count, &err), 0);
	assert_int_equal(count, 2);
	item = batch_item(msg, NULL, VC_KMIP_OP_CREATE);
	assert_int_equal(vc_ttlv_get_bytes(item, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id, &len, &err),
			 0);
	assert_int_equal(len, 1);
	assert_int_equal(id[0], 0x01);
	assert_false(vc_ttlv_find(item, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID)->secret);
	item = vc_ttlv_find_next(item);
	assert_non_null(item);
	assert_null(vc_ttlv_find_next(item));
	assert_int_equal(vc_ttlv_get_bytes(item, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id, &len, &err),
			 0);
	assert_int_equal(len, 1);
	assert_int_equal(id[0], 0x02);
	assert_int_equal(vc_ttlv_get_structure(item, VC_KMIP_TAG_RESPONSE_PAYLOAD, &payload, &err),
			 0);
	assert_int_equal(vc_ttlv_get_structure(payload, VC_KMIP_TAG_SYMMETRIC_KEY, &key, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(key, VC_KMIP_TAG_KEY_BLOCK, &block, &err), 0);
	assert_int_equal(vc_ttlv_get_structure(block, VC_KMIP_TAG_KEY_VALUE, &value, &err), 0);
	assert_true(vc_ttlv_find(value, VC_KMIP_TAG_KEY_MATERIAL)->secret);
	vc_ttlv_free(msg);
}

static void test_get_attributes_response(void **state)
{
	static const char *const names[] = {
		"Unique Identifier", "Name", "Object Type", "Cryptographic Algorithm",
		"Cryptographic Length", "Operation Policy Name", "Cryptographic Usage Mask",
		"State", "Initial Date",
	};
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("captured-05-get_attributes-response");
	const struct vc_ttlv *payload, *attr, *value;
	const char *name;
	size_t n = 0;

	(void)state;
	batch_item(msg, &payload, VC_KMIP_OP_GET_ATTRIBUTES);
	for (attr = vc_ttlv_find(payload, VC_KMIP_TAG_ATTRIBUTE); attr;
	     attr = vc_ttlv_find_next(attr)) {
		assert_true(n < VC_ARRAY_SIZE(names));
		assert_int_equal(vc_ttlv_get_text(attr, VC_KMIP_TAG_ATTRIBUTE_NAME, &name, &err), 0);
		assert_string_equal(name, names[n]);
		value = vc_ttlv_find(attr, VC_KMIP_TAG_ATTRIBUTE_VALUE);
		assert_non_null(value);
		if (strcmp(name, VC_KMIP_ATTR_NAME) == 0) {
			const struct vc_ttlv *idx = vc_ttlv_find(attr, VC_KMIP_TAG_ATTRIBUTE_INDEX);
			const char *s;
			uint32_t type;

			assert_non_null(idx);
			assert_int_equal(idx->v.i32, 0);
			assert_int_equal(vc_ttlv_get_text(value, VC_KMIP_TAG_NAME_VALUE, &s, &err), 0);
			assert_string_equal(s, "golden-key");
			assert_int_equal(vc_ttlv_get_enum(value, VC_KMIP_TAG_NAME_TYPE, &type, &err), 0);
			assert_int_equal(type, VC_KMIP_NAME_UNINTERPRETED_TEXT);
		} else if (strcmp(name, VC_KMIP_ATTR_STATE) == 0) {
			assert_int_equal(value->type, VC_TTLV_ENUMERATION);
			assert_int_equal(value->v.u32, VC_KMIP_STATE_ACTIVE);
		} else if (strcmp(name, VC_KMIP_ATTR_INITIAL_DATE) == 0) {
			assert_int_equal(value->type, VC_TTLV_DATE_TIME);
			assert_int_equal(value->v.i64, 1795422270);
		} else if (strcmp(name, VC_KMIP_ATTR_CRYPTOGRAPHIC_USAGE_MASK) == 0) {
			assert_int_equal(value->type, VC_TTLV_INTEGER);
			assert_int_equal(value->v.i32,
					 VC_KMIP_USAGE_ENCRYPT | VC_KMIP_USAGE_DECRYPT);
		}
		n++;
	}
	assert_int_equal(n, VC_ARRAY_SIZE(names));
	vc_ttlv_free(msg);
}

/* ---- building the golden messages ---- */

static struct vc_ttlv *new_request(int major, int minor, int batch_count,
				   struct vc_ttlv **header)
{
	struct vc_ttlv *msg = vc_ttlv_new_structure(VC_KMIP_TAG_REQUEST_MESSAGE);
	struct vc_ttlv *hdr = vc_ttlv_add_structure(msg, VC_KMIP_TAG_REQUEST_HEADER);
	struct vc_ttlv *pv = vc_ttlv_add_structure(hdr, VC_KMIP_TAG_PROTOCOL_VERSION);

	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, major);
	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, minor);
	vc_ttlv_add_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, batch_count);
	if (header)
		*header = hdr;
	return msg;
}

/* A one-item 1.2 request; returns the message, *payload its payload. */
static struct vc_ttlv *request12(uint32_t op, struct vc_ttlv **payload)
{
	struct vc_ttlv *msg = new_request(1, 2, 1, NULL);
	struct vc_ttlv *item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);

	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, op);
	*payload = vc_ttlv_add_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD);
	return msg;
}

static struct vc_ttlv *add_attribute(struct vc_ttlv *parent, const char *name)
{
	struct vc_ttlv *a = vc_ttlv_add_structure(parent, VC_KMIP_TAG_ATTRIBUTE);

	vc_ttlv_add_text(a, VC_KMIP_TAG_ATTRIBUTE_NAME, name);
	return a;
}

static void add_aes256_template(struct vc_ttlv *payload, bool name)
{
	struct vc_ttlv *tmpl = vc_ttlv_add_structure(payload, VC_KMIP_TAG_TEMPLATE_ATTRIBUTE);
	struct vc_ttlv *a;

	a = add_attribute(tmpl, VC_KMIP_ATTR_CRYPTOGRAPHIC_ALGORITHM);
	vc_ttlv_add_enum(a, VC_KMIP_TAG_ATTRIBUTE_VALUE, VC_KMIP_ALG_AES);
	a = add_attribute(tmpl, VC_KMIP_ATTR_CRYPTOGRAPHIC_LENGTH);
	vc_ttlv_add_integer(a, VC_KMIP_TAG_ATTRIBUTE_VALUE, 256);
	a = add_attribute(tmpl, VC_KMIP_ATTR_CRYPTOGRAPHIC_USAGE_MASK);
	vc_ttlv_add_integer(a, VC_KMIP_TAG_ATTRIBUTE_VALUE,
			    VC_KMIP_USAGE_ENCRYPT | VC_KMIP_USAGE_DECRYPT);
	if (name) {
		struct vc_ttlv *v;

		a = add_attribute(tmpl, VC_KMIP_ATTR_NAME);
		v = vc_ttlv_add_structure(a, VC_KMIP_TAG_ATTRIBUTE_VALUE);
		vc_ttlv_add_text(v, VC_KMIP_TAG_NAME_VALUE, "golden-key");
		vc_ttlv_add_enum(v, VC_KMIP_TAG_NAME_TYPE, VC_KMIP_NAME_UNINTERPRETED_TEXT);
	}
}

static void test_build_create_request(void **state)
{
	struct vc_ttlv *payload, *msg = request12(VC_KMIP_OP_CREATE, &payload);

	(void)state;
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes256_template(payload, true);
	assert_encodes_as(msg, "kmip12-create-aes256-request");
	/* The same bytes went over the wire to a live PyKMIP server. */
	assert_encodes_as(msg, "captured-01-create-request");
	vc_ttlv_free(msg);
}

static void test_build_uid_requests(void **state)
{
	static const struct {
		uint32_t op;
		const char *uid, *vector;
	} cases[] = {
		{ VC_KMIP_OP_GET, "1", "kmip12-get-request" },
		{ VC_KMIP_OP_ACTIVATE, "1", "kmip12-activate-request" },
		{ VC_KMIP_OP_ACTIVATE, "253", "captured-02-activate-request" },
		{ VC_KMIP_OP_GET, "253", "captured-03-get-request" },
		{ VC_KMIP_OP_GET_ATTRIBUTES, "253", "captured-05-get_attributes-request" },
		{ VC_KMIP_OP_DESTROY, "253", "captured-07-destroy-request" },
		{ VC_KMIP_OP_REKEY, "1", "probe-unsupported-rekey-request" },
		{ VC_KMIP_OP_GET, "999999", "probe-get-not-found-request" },
	};

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(cases); i++) {
		struct vc_ttlv *payload, *msg = request12(cases[i].op, &payload);

		vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, cases[i].uid);
		assert_encodes_as(msg, cases[i].vector);
		vc_ttlv_free(msg);
	}
}

static void test_build_other_requests(void **state)
{
	struct vc_ttlv *payload, *msg, *a, *v, *item, *hdr;
	static const uint8_t id1 = 0x01, id2 = 0x02;

	(void)state;
	/* Revoke with a reason code. */
	msg = request12(VC_KMIP_OP_REVOKE, &payload);
	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, "253");
	v = vc_ttlv_add_structure(payload, VC_KMIP_TAG_REVOCATION_REASON);
	vc_ttlv_add_enum(v, VC_KMIP_TAG_REVOCATION_REASON_CODE,
			 VC_KMIP_REVOKE_CESSATION_OF_OPERATION);
	assert_encodes_as(msg, "captured-06-revoke-request");
	vc_ttlv_free(msg);

	/* Locate by name. */
	msg = request12(VC_KMIP_OP_LOCATE, &payload);
	a = add_attribute(payload, VC_KMIP_ATTR_NAME);
	v = vc_ttlv_add_structure(a, VC_KMIP_TAG_ATTRIBUTE_VALUE);
	vc_ttlv_add_text(v, VC_KMIP_TAG_NAME_VALUE, "golden-key");
	vc_ttlv_add_enum(v, VC_KMIP_TAG_NAME_TYPE, VC_KMIP_NAME_UNINTERPRETED_TEXT);
	assert_encodes_as(msg, "captured-04-locate-request");
	vc_ttlv_free(msg);

	/* Discover Versions: an empty payload. */
	msg = request12(VC_KMIP_OP_DISCOVER_VERSIONS, &payload);
	assert_encodes_as(msg, "probe-discover-versions-request");
	vc_ttlv_free(msg);

	/* Query operations and server information. */
	msg = request12(VC_KMIP_OP_QUERY, &payload);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_QUERY_FUNCTION, VC_KMIP_QUERY_OPERATIONS);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_QUERY_FUNCTION, VC_KMIP_QUERY_SERVER_INFORMATION);
	assert_encodes_as(msg, "probe-query-request");
	vc_ttlv_free(msg);

	/* Create without a name, and the same under protocol version 3.0. */
	msg = request12(VC_KMIP_OP_CREATE, &payload);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	a = vc_ttlv_add_structure(payload, VC_KMIP_TAG_TEMPLATE_ATTRIBUTE);
	a = add_attribute(a, VC_KMIP_ATTR_CRYPTOGRAPHIC_ALGORITHM);
	vc_ttlv_add_enum(a, VC_KMIP_TAG_ATTRIBUTE_VALUE, VC_KMIP_ALG_AES);
	assert_encodes_as(msg, "probe-create-invalid-field-request");
	vc_ttlv_free(msg);

	msg = new_request(3, 0, 1, NULL);
	item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_CREATE);
	payload = vc_ttlv_add_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes256_template(payload, false);
	assert_encodes_as(msg, "probe-unsupported-version-3.0-request");
	vc_ttlv_free(msg);

	/* A two-item batch: Create, then Get of the ID placeholder. */
	msg = new_request(1, 2, 2, &hdr);
	item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_CREATE);
	vc_ttlv_add_bytes(item, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id1, 1);
	payload = vc_ttlv_add_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes256_template(payload, false);
	item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_GET);
	vc_ttlv_add_bytes(item, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id2, 1);
	vc_ttlv_add_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD);
	assert_encodes_as(msg, "probe-batch-create-get-placeholder-request");
	vc_ttlv_free(msg);

	/* KMIP 2.0 Create: attributes directly under Attributes. */
	msg = new_request(2, 0, 1, NULL);
	item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_CREATE);
	payload = vc_ttlv_add_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	a = vc_ttlv_add_structure(payload, VC_KMIP_TAG_ATTRIBUTES);
	vc_ttlv_add_enum(a, VC_KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, VC_KMIP_ALG_AES);
	vc_ttlv_add_integer(a, VC_KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256);
	vc_ttlv_add_integer(a, VC_KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK,
			    VC_KMIP_USAGE_ENCRYPT | VC_KMIP_USAGE_DECRYPT);
	assert_encodes_as(msg, "kmip20-create-aes256-request");
	vc_ttlv_free(msg);
}

static struct vc_ttlv *response12(uint32_t op, int64_t stamp, struct vc_ttlv **payload)
{
	struct vc_ttlv *msg = vc_ttlv_new_structure(VC_KMIP_TAG_RESPONSE_MESSAGE);
	struct vc_ttlv *hdr = vc_ttlv_add_structure(msg, VC_KMIP_TAG_RESPONSE_HEADER);
	struct vc_ttlv *pv = vc_ttlv_add_structure(hdr, VC_KMIP_TAG_PROTOCOL_VERSION);
	struct vc_ttlv *item;

	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, 1);
	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, 2);
	vc_ttlv_add_datetime(hdr, VC_KMIP_TAG_TIME_STAMP, stamp);
	vc_ttlv_add_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, 1);
	item = vc_ttlv_add_structure(msg, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_OPERATION, op);
	vc_ttlv_add_enum(item, VC_KMIP_TAG_RESULT_STATUS, VC_KMIP_RESULT_SUCCESS);
	*payload = vc_ttlv_add_structure(item, VC_KMIP_TAG_RESPONSE_PAYLOAD);
	return msg;
}

static void test_build_responses(void **state)
{
	struct vc_ttlv *payload, *msg, *block, *value, *km;
	uint8_t key[32];

	(void)state;
	msg = response12(VC_KMIP_OP_CREATE, 1700000000, &payload);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, "1");
	assert_encodes_as(msg, "kmip12-create-response");
	vc_ttlv_free(msg);

	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (uint8_t)i;
	msg = response12(VC_KMIP_OP_GET, 1700000000, &payload);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, "1");
	block = vc_ttlv_add_structure(vc_ttlv_add_structure(payload, VC_KMIP_TAG_SYMMETRIC_KEY),
				      VC_KMIP_TAG_KEY_BLOCK);
	vc_ttlv_add_enum(block, VC_KMIP_TAG_KEY_FORMAT_TYPE, VC_KMIP_KEY_FORMAT_RAW);
	value = vc_ttlv_add_structure(block, VC_KMIP_TAG_KEY_VALUE);
	km = vc_ttlv_add_secret(value, VC_KMIP_TAG_KEY_MATERIAL, key, sizeof key);
	assert_non_null(km);
	assert_true(km->secret);
	vc_ttlv_add_enum(block, VC_KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, VC_KMIP_ALG_AES);
	vc_ttlv_add_integer(block, VC_KMIP_TAG_CRYPTOGRAPHIC_LENGTH, 256);
	assert_encodes_as(msg, "kmip12-get-response");
	vc_ttlv_free(msg);
}

/* ---- KMIP 1.4 section 9.1.2, the encoding examples ---- */

#define T 0x42, 0x00, 0x20 /* the examples' tag */

static const uint8_t ex_integer[] = { T, 0x02, 0, 0, 0, 0x04, 0, 0, 0, 0x08, 0, 0, 0, 0 };
static const uint8_t ex_long[] = { T, 0x03, 0, 0, 0, 0x08,
				   0x01, 0xB6, 0x9B, 0x4B, 0xA5, 0x74, 0x92, 0x00 };
static const uint8_t ex_big[] = { T, 0x04, 0, 0, 0, 0x10, 0, 0, 0, 0, 0x03, 0xFD, 0x35, 0xEB,
				  0x6B, 0xC2, 0xDF, 0x46, 0x18, 0x08, 0x00, 0x00 };
static const uint8_t ex_enum[] = { T, 0x05, 0, 0, 0, 0x04, 0, 0, 0, 0xFF, 0, 0, 0, 0 };
static const uint8_t ex_bool[] = { T, 0x06, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x01 };
static const uint8_t ex_text[] = { T, 0x07, 0, 0, 0, 0x0B, 'H', 'e', 'l', 'l', 'o', ' ',
				   'W', 'o', 'r', 'l', 'd', 0, 0, 0, 0, 0 };
static const uint8_t ex_bytes[] = { T, 0x08, 0, 0, 0, 0x03, 0x01, 0x02, 0x03, 0, 0, 0, 0, 0 };
static const uint8_t ex_date[] = { T, 0x09, 0, 0, 0, 0x08, 0, 0, 0, 0, 0x47, 0xDA, 0x67, 0xF8 };
static const uint8_t ex_interval[] = { T, 0x0A, 0, 0, 0, 0x04, 0x00, 0x0D, 0x2F, 0x00, 0, 0, 0, 0 };
static const uint8_t ex_struct[] = { T, 0x01, 0, 0, 0, 0x20,
				     0x42, 0x00, 0x04, 0x05, 0, 0, 0, 0x04, 0, 0, 0, 0xFE, 0, 0, 0, 0,
				     0x42, 0x00, 0x05, 0x02, 0, 0, 0, 0x04, 0, 0, 0, 0xFF, 0, 0, 0, 0 };

/* Encode the single child of a scratch structure: the examples are bare
 * items, and the builder only adds to a structure. */
static void assert_child_encodes_as(struct vc_ttlv *root, const uint8_t *want, size_t len)
{
	struct vc_error err = { 0 };
	uint8_t *out = NULL;
	size_t outlen = 0;

	assert_non_null(root->child);
	assert_int_equal(vc_ttlv_encode(root->child, &out, &outlen, &err), 0);
	assert_int_equal(outlen, len);
	assert_memory_equal(out, want, len);
	free(out);
	vc_ttlv_free(root);
}

static struct vc_ttlv *scratch(void)
{
	struct vc_ttlv *s = vc_ttlv_new_structure(0x420000);

	assert_non_null(s);
	return s;
}

static void test_spec_examples_build(void **state)
{
	struct vc_ttlv *s;
	const uint8_t three[] = { 1, 2, 3 };

	(void)state;
	s = scratch();
	vc_ttlv_add_integer(s, 0x420020, 8);
	assert_child_encodes_as(s, ex_integer, sizeof ex_integer);
	s = scratch();
	vc_ttlv_add_long(s, 0x420020, 123456789000000000LL);
	assert_child_encodes_as(s, ex_long, sizeof ex_long);
	s = scratch();
	vc_ttlv_add_enum(s, 0x420020, 255);
	assert_child_encodes_as(s, ex_enum, sizeof ex_enum);
	s = scratch();
	vc_ttlv_add_bool(s, 0x420020, true);
	assert_child_encodes_as(s, ex_bool, sizeof ex_bool);
	s = scratch();
	vc_ttlv_add_text(s, 0x420020, "Hello World");
	assert_child_encodes_as(s, ex_text, sizeof ex_text);
	s = scratch();
	vc_ttlv_add_bytes(s, 0x420020, three, sizeof three);
	assert_child_encodes_as(s, ex_bytes, sizeof ex_bytes);
	s = scratch();
	/* Friday, March 14, 2008, 11:56:40 GMT */
	vc_ttlv_add_datetime(s, 0x420020, 1205495800);
	assert_child_encodes_as(s, ex_date, sizeof ex_date);
	s = scratch();
	vc_ttlv_add_interval(s, 0x420020, 10 * 24 * 3600);
	assert_child_encodes_as(s, ex_interval, sizeof ex_interval);
	s = scratch();
	{
		struct vc_ttlv *st = vc_ttlv_add_structure(s, 0x420020);

		vc_ttlv_add_enum(st, 0x420004, 254);
		vc_ttlv_add_integer(st, 0x420005, 255);
	}
	assert_child_encodes_as(s, ex_struct, sizeof ex_struct);
}

static struct vc_ttlv *decode_ok(const uint8_t *b, size_t len)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *t = NULL;
	uint8_t *out = NULL;
	size_t outlen = 0;

	if (decode_copy(b, len, &t, &err) != 0)
		fail_msg("decode: %s", err.msg);
	assert_non_null(t);
	assert_int_equal(t->tag, 0x420020);
	assert_int_equal(vc_ttlv_encode(t, &out, &outlen, &err), 0);
	assert_int_equal(outlen, len);
	assert_memory_equal(out, b, len);
	free(out);
	return t;
}

static void test_spec_examples_decode(void **state)
{
	struct vc_ttlv *t;

	(void)state;
	t = decode_ok(ex_integer, sizeof ex_integer);
	assert_int_equal(t->type, VC_TTLV_INTEGER);
	assert_int_equal(t->v.i32, 8);
	vc_ttlv_free(t);
	t = decode_ok(ex_long, sizeof ex_long);
	assert_int_equal(t->type, VC_TTLV_LONG_INTEGER);
	assert_true(t->v.i64 == 123456789000000000LL);
	vc_ttlv_free(t);
	t = decode_ok(ex_big, sizeof ex_big);
	assert_int_equal(t->type, VC_TTLV_BIG_INTEGER);
	assert_int_equal(t->v.bytes.len, 16);
	assert_memory_equal(t->v.bytes.data, ex_big + 8, 16);
	assert_false(t->secret);
	vc_ttlv_free(t);
	t = decode_ok(ex_enum, sizeof ex_enum);
	assert_int_equal(t->type, VC_TTLV_ENUMERATION);
	assert_int_equal(t->v.u32, 255);
	vc_ttlv_free(t);
	t = decode_ok(ex_bool, sizeof ex_bool);
	assert_int_equal(t->type, VC_TTLV_BOOLEAN);
	assert_true(t->v.boolean);
	vc_ttlv_free(t);
	t = decode_ok(ex_text, sizeof ex_text);
	assert_int_equal(t->type, VC_TTLV_TEXT_STRING);
	assert_int_equal(t->v.bytes.len, 11);
	assert_string_equal((const char *)t->v.bytes.data, "Hello World");
	vc_ttlv_free(t);
	t = decode_ok(ex_bytes, sizeof ex_bytes);
	assert_int_equal(t->type, VC_TTLV_BYTE_STRING);
	assert_int_equal(t->v.bytes.len, 3);
	assert_memory_equal(t->v.bytes.data, "\x01\x02\x03", 3);
	assert_false(t->secret);
	vc_ttlv_free(t);
	t = decode_ok(ex_date, sizeof ex_date);
	assert_int_equal(t->type, VC_TTLV_DATE_TIME);
	assert_int_equal(t->v.i64, 1205495800);
	vc_ttlv_free(t);
	t = decode_ok(ex_interval, sizeof ex_interval);
	assert_int_equal(t->type, VC_TTLV_INTERVAL);
	assert_int_equal(t->v.u32, 864000);
	vc_ttlv_free(t);
	t = decode_ok(ex_struct, sizeof ex_struct);
	assert_int_equal(t->type, VC_TTLV_STRUCTURE);
	assert_non_null(t->child);
	assert_int_equal(t->child->tag, 0x420004);
	assert_int_equal(t->child->v.u32, 254);
	assert_int_equal(t->child->next->tag, 0x420005);
	assert_int_equal(t->child->next->v.i32, 255);
	assert_ptr_equal(t->last_child, t->child->next);
	assert_null(t->child->next->next);
	vc_ttlv_free(t);
}

/* Values at the edges of each type survive a round trip. */
static void test_value_edges(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *s = scratch(), *t = NULL;
	uint8_t *out = NULL;
	size_t len = 0;
	const struct vc_ttlv *c;

	(void)state;
	vc_ttlv_add_integer(s, 0x420001, INT32_MIN);
	vc_ttlv_add_integer(s, 0x420002, -1);
	vc_ttlv_add_long(s, 0x420003, INT64_MIN);
	vc_ttlv_add_enum(s, 0x420004, UINT32_MAX);
	vc_ttlv_add_bool(s, 0x420005, false);
	vc_ttlv_add_text(s, 0x420006, "");
	vc_ttlv_add_bytes(s, 0x420007, NULL, 0);
	vc_ttlv_add_datetime(s, 0x420008, -1);
	vc_ttlv_add_interval(s, 0x420009, UINT32_MAX);
	vc_ttlv_add_text(s, 0x540001, "extension tag, 8 bytes!");
	vc_ttlv_add_structure(s, 0x42000A);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), 0);
	assert_int_equal(vc_ttlv_decode(out, len, &t, &err), 0);
	c = t->child;
	assert_int_equal(c->v.i32, INT32_MIN);
	c = c->next;
	assert_int_equal(c->v.i32, -1);
	c = c->next;
	assert_true(c->v.i64 == INT64_MIN);
	c = c->next;
	assert_int_equal(c->v.u32, UINT32_MAX);
	c = c->next;
	assert_int_equal(c->type, VC_TTLV_BOOLEAN);
	assert_false(c->v.boolean);
	c = c->next;
	assert_int_equal(c->v.bytes.len, 0);
	assert_string_equal((const char *)c->v.bytes.data, "");
	c = c->next;
	assert_int_equal(c->type, VC_TTLV_BYTE_STRING);
	assert_int_equal(c->v.bytes.len, 0);
	c = c->next;
	assert_int_equal(c->v.i64, -1);
	c = c->next;
	assert_int_equal(c->v.u32, UINT32_MAX);
	c = c->next;
	assert_int_equal(c->tag, 0x540001);
	assert_int_equal(c->v.bytes.len, 23);
	c = c->next;
	assert_int_equal(c->type, VC_TTLV_STRUCTURE);
	assert_null(c->child);
	assert_null(c->next);
	/* An empty text string and byte string take 8 bytes, no value. */
	assert_int_equal(len, 8 + 5 * 16 + 2 * 8 + 16 + 16 + (8 + 24) + 8);
	free(out);
	vc_ttlv_free(t);
	vc_ttlv_free(s);
}

/* ---- decoder rejections, each a small handcrafted message ---- */

#define H(tag, type, len)                                                                     \
	(uint8_t)((tag) >> 16), (uint8_t)((tag) >> 8), (uint8_t)(tag), (type),                \
		(uint8_t)((uint32_t)(len) >> 24), (uint8_t)((uint32_t)(len) >> 16),           \
		(uint8_t)((uint32_t)(len) >> 8), (uint8_t)(len)
#define Z4 0, 0, 0, 0
#define Z8 Z4, Z4
#define TG 0x420020u

#define BYTES(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

/* Each bad message differs from its good twin only in what it names, so
 * it is refused for that reason and no other. */
static const struct {
	const char *what;
	const uint8_t *good;
	size_t good_len;
	const uint8_t *bad;
	size_t bad_len;
} pairs[] = {
	{ "integer of length 8", BYTES(H(TG, 2, 4), 0, 0, 0, 8, Z4), BYTES(H(TG, 2, 8), 0, 0, 0, 8, Z4) },
	{ "integer of length 0", BYTES(H(TG, 2, 4), Z8), BYTES(H(TG, 2, 0), Z8) },
	{ "enumeration of length 2", BYTES(H(TG, 5, 4), Z8), BYTES(H(TG, 5, 2), Z8) },
	{ "interval of length 8", BYTES(H(TG, 0x0A, 4), Z8), BYTES(H(TG, 0x0A, 8), Z8) },
	{ "long integer of length 4", BYTES(H(TG, 3, 8), Z8), BYTES(H(TG, 3, 4), Z8) },
	{ "date-time of length 16", BYTES(H(TG, 9, 8), Z8), BYTES(H(TG, 9, 16), Z8, Z8) },
	{ "boolean of length 4", BYTES(H(TG, 6, 8), Z8), BYTES(H(TG, 6, 4), Z8) },
	{ "boolean 2", BYTES(H(TG, 6, 8), Z4, 0, 0, 0, 1), BYTES(H(TG, 6, 8), Z4, 0, 0, 0, 2) },
	{ "boolean with the top bit set", BYTES(H(TG, 6, 8), Z4, 0, 0, 0, 0),
	  BYTES(H(TG, 6, 8), 0x80, 0, 0, 0, Z4) },
	{ "boolean 0x100000000", BYTES(H(TG, 6, 8), Z4, Z4), BYTES(H(TG, 6, 8), 0, 0, 0, 1, Z4) },
	{ "big integer of length 12", BYTES(H(TG, 4, 16), Z8, Z8), BYTES(H(TG, 4, 12), Z8, Z8) },
	{ "nonzero integer padding", BYTES(H(TG, 2, 4), 0, 0, 0, 8, Z4),
	  BYTES(H(TG, 2, 4), 0, 0, 0, 8, 0, 0, 0, 1) },
	{ "nonzero enumeration padding", BYTES(H(TG, 5, 4), Z8), BYTES(H(TG, 5, 4), Z4, 0x80, 0, 0, 0) },
	{ "nonzero interval padding", BYTES(H(TG, 0x0A, 4), Z8), BYTES(H(TG, 0x0A, 4), Z4, 0, 0x10, 0, 0) },
	{ "nonzero text padding", BYTES(H(TG, 7, 3), 'a', 'b', 'c', 0, 0, 0, 0, 0),
	  BYTES(H(TG, 7, 3), 'a', 'b', 'c', 0, 0, 0, 0, 1) },
	{ "nonzero byte string padding", BYTES(H(TG, 8, 1), 0xff, 0, 0, 0, 0, 0, 0, 0),
	  BYTES(H(TG, 8, 1), 0xff, 0xff, 0, 0, 0, 0, 0, 0) },
	{ "nonzero padding after a 9-byte string", BYTES(H(TG, 8, 9), Z8, 1, 0, 0, 0, Z4),
	  BYTES(H(TG, 8, 9), Z8, 1, 0, 0, 0, 0, 0, 0, 2) },
	{ "text string with a NUL", BYTES(H(TG, 7, 3), 'a', 'b', 'c', 0, 0, 0, 0, 0),
	  BYTES(H(TG, 7, 3), 'a', 0, 'c', 0, 0, 0, 0, 0) },
	{ "text string ending in a NUL", BYTES(H(TG, 7, 2), 'a', 'b', Z4, 0, 0),
	  BYTES(H(TG, 7, 3), 'a', 'b', 0, Z4, 0) },
	{ "type 0x00", BYTES(H(TG, 8, 8), Z8), BYTES(H(TG, 0x00, 8), Z8) },
	{ "type 0x0B (date-time extended)", BYTES(H(TG, 9, 8), Z8), BYTES(H(TG, 0x0B, 8), Z8) },
	{ "type 0x0C", BYTES(H(TG, 8, 8), Z8), BYTES(H(TG, 0x0C, 8), Z8) },
	{ "type 0xFF", BYTES(H(TG, 8, 8), Z8), BYTES(H(TG, 0xFF, 8), Z8) },
	{ "tag 0x430020", BYTES(H(0x540020u, 2, 4), Z8), BYTES(H(0x430020u, 2, 4), Z8) },
	{ "tag 0x000000", BYTES(H(0x420000u, 2, 4), Z8), BYTES(H(0x000000u, 2, 4), Z8) },
	{ "tag 0xFFFFFF", BYTES(H(0x54FFFFu, 2, 4), Z8), BYTES(H(0xFFFFFFu, 2, 4), Z8) },
	{ "child tag 0x410001", BYTES(H(TG, 1, 16), H(0x420001u, 2, 4), Z8),
	  BYTES(H(TG, 1, 16), H(0x410001u, 2, 4), Z8) },
	{ "byte string past the end", BYTES(H(TG, 8, 8), Z8), BYTES(H(TG, 8, 9), Z8) },
	{ "byte string length 2^32-1", BYTES(H(TG, 8, 8), Z8), BYTES(H(TG, 8, 0xFFFFFFFFu), Z8) },
	{ "text string length 2^31", BYTES(H(TG, 7, 8), 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'),
	  BYTES(H(TG, 7, 0x80000000u), 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h') },
	{ "structure length 2^32-8", BYTES(H(TG, 1, 0)), BYTES(H(TG, 1, 0xFFFFFFF8u)) },
	{ "structure past the end", BYTES(H(TG, 1, 16), H(TG, 2, 4), Z8),
	  BYTES(H(TG, 1, 24), H(TG, 2, 4), Z8) },
	{ "structure length 12", BYTES(H(TG, 1, 16), H(TG, 2, 4), Z8),
	  BYTES(H(TG, 1, 12), H(TG, 2, 4), Z8) },
	{ "structure shorter than its child", BYTES(H(TG, 1, 16), H(TG, 2, 4), Z8),
	  BYTES(H(TG, 1, 8), H(TG, 2, 4), Z8) },
	/* The outer length is right for the bytes, but the inner structure
	 * claims one item too many: its second child crosses its end. */
	{ "structure longer than its children",
	  BYTES(H(TG, 1, 40), H(TG, 1, 16), H(TG, 2, 4), Z8, H(TG, 2, 4), Z8),
	  BYTES(H(TG, 1, 40), H(TG, 1, 24), H(TG, 2, 4), Z8, H(TG, 2, 4), Z8) },
	{ "trailing 8 zero bytes", BYTES(H(TG, 2, 4), Z8), BYTES(H(TG, 2, 4), Z8, Z8) },
	{ "trailing byte", BYTES(H(TG, 2, 4), Z8), BYTES(H(TG, 2, 4), Z8, 0) },
	{ "a second item", BYTES(H(TG, 2, 4), Z8), BYTES(H(TG, 2, 4), Z8, H(TG, 2, 4), Z8) },
	{ "header only", BYTES(H(TG, 1, 0)), BYTES(H(TG, 1, 0), 0) },
	{ "7 bytes", BYTES(H(TG, 1, 0)), BYTES(0x42, 0x00, 0x20, 0x01, 0, 0, 0) },
};

static void test_reject_pairs(void **state)
{
	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(pairs); i++) {
		char what[160];

		snprintf(what, sizeof what, "good twin of %s", pairs[i].what);
		assert_accepted(pairs[i].good, pairs[i].good_len, what);
		assert_rejected(pairs[i].bad, pairs[i].bad_len, pairs[i].what);
	}
	assert_rejected(NULL, 0, "empty input");
}

/* depth structures, each the only child of the one before. */
static uint8_t *nested(int depth, size_t *len)
{
	uint8_t *b = calloc((size_t)depth, 8);

	assert_non_null(b);
	for (int i = 0; i < depth; i++) {
		uint8_t h[8] = { H(0x420020u, 1, 8 * (depth - 1 - i)) };

		memcpy(b + 8 * i, h, 8);
	}
	*len = 8 * (size_t)depth;
	return b;
}

static void test_reject_depth(void **state)
{
	size_t len;
	uint8_t *b;

	(void)state;
	b = nested(VC_TTLV_MAX_DEPTH, &len);
	assert_accepted(b, len, "nesting at the limit");
	free(b);
	b = nested(VC_TTLV_MAX_DEPTH + 1, &len);
	assert_rejected(b, len, "nesting past the limit");
	free(b);
}

/* One structure holding n - 1 integers: n items. */
static uint8_t *many(size_t n, size_t *len)
{
	uint8_t *b = calloc(n, 16);
	uint8_t h[8] = { H(0x420020u, 1, 16 * (n - 1)) }, item[16] = { H(0x420021u, 2, 4) };

	assert_non_null(b);
	memcpy(b, h, 8);
	for (size_t i = 1; i < n; i++)
		memcpy(b + 8 + 16 * (i - 1), item, 16);
	*len = 8 + 16 * (n - 1);
	return b;
}

static void test_reject_items(void **state)
{
	size_t len;
	uint8_t *b;

	(void)state;
	b = many(VC_TTLV_MAX_ITEMS, &len);
	assert_accepted(b, len, "items at the limit");
	free(b);
	b = many(VC_TTLV_MAX_ITEMS + 1, &len);
	assert_rejected(b, len, "items past the limit");
	free(b);
}

/* A structure holding one byte string, total bytes in all. */
static uint8_t *sized(size_t total)
{
	uint8_t *b = calloc(1, total);
	uint8_t h[16] = { H(0x420020u, 1, total - 8), H(0x420021u, 8, total - 16) };

	assert_non_null(b);
	memcpy(b, h, 16);
	return b;
}

static void test_reject_size(void **state)
{
	uint8_t *b;

	(void)state;
	b = sized(VC_TTLV_MAX_MESSAGE);
	assert_accepted(b, VC_TTLV_MAX_MESSAGE, "message at the limit");
	free(b);
	b = sized(VC_TTLV_MAX_MESSAGE + 8);
	assert_rejected(b, VC_TTLV_MAX_MESSAGE + 8, "message past the limit");
	free(b);
}

/* Every proper prefix of every vector fails cleanly (ASan checks the
 * "cleanly": each prefix sits in a buffer of exactly its size). */
static void test_truncation(void **state)
{
	(void)state;
	for (size_t v = 0; v < VC_ARRAY_SIZE(all_vectors); v++) {
		size_t len;
		uint8_t *b = load_vector(all_vectors[v], &len);

		for (size_t cut = 0; cut < len; cut++) {
			char what[128];

			snprintf(what, sizeof what, "%s cut to %zu bytes", all_vectors[v], cut);
			assert_rejected(b, cut, what);
		}
		free(b);
	}
}

/* Changing the top-level length of a valid message by one step of 8
 * either way breaks it. */
static void test_corrupted_lengths(void **state)
{
	size_t len;
	uint8_t *b = load_vector("kmip12-get-response", &len);

	(void)state;
	b[7] = (uint8_t)(b[7] + 8);
	assert_rejected(b, len, "top-level length + 8");
	b[7] = (uint8_t)(b[7] - 16);
	assert_rejected(b, len, "top-level length - 8");
	b[7] = (uint8_t)(b[7] + 8);
	assert_accepted(b, len, "restored");
	/* The Time Stamp at offset 56 is a date-time: make it an integer. */
	assert_int_equal(b[56 + 3], VC_TTLV_DATE_TIME);
	b[56 + 3] = VC_TTLV_INTEGER;
	assert_rejected(b, len, "date-time retyped as integer");
	free(b);
}

/* ---- frame length ---- */

static void test_frame_length(void **state)
{
	struct vc_error err = { 0 };
	size_t total = 0, len;
	uint8_t *b = load_vector("kmip12-create-aes256-request", &len);
	uint8_t h[8];

	(void)state;
	assert_int_equal(vc_ttlv_frame_length(b, &total, &err), 0);
	assert_int_equal(total, 368);
	free(b);

	static const struct {
		uint8_t hdr[8];
		int r;
		size_t total;
	} cases[] = {
		{ { H(0x42007Bu, 1, 0) }, 0, 8 },
		{ { H(0x540000u, 1, 16) }, 0, 24 },
		{ { H(0x42007Bu, 1, VC_TTLV_MAX_MESSAGE - 8) }, 0, VC_TTLV_MAX_MESSAGE },
		{ { H(0x42007Bu, 1, VC_TTLV_MAX_MESSAGE) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 1, 0xFFFFFFF8u) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 1, 0xFFFFFFFFu) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 1, 12) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 2, 8) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 8, 8) }, -EBADMSG, 0 },
		{ { H(0x42007Bu, 0, 8) }, -EBADMSG, 0 },
		{ { H(0x43007Bu, 1, 8) }, -EBADMSG, 0 },
		{ { 0x16, 0x03, 0x01, 0x00, 0x10, 0x01, 0x00, 0x00 }, -EBADMSG, 0 }, /* TLS */
		{ { 'H', 'T', 'T', 'P', '/', '1', '.', '1' }, -EBADMSG, 0 },
	};
	for (size_t i = 0; i < VC_ARRAY_SIZE(cases); i++) {
		memcpy(h, cases[i].hdr, 8);
		total = 12345;
		vc_error_clear(&err);
		assert_int_equal(vc_ttlv_frame_length(h, &total, &err), cases[i].r);
		if (cases[i].r == 0) {
			assert_int_equal(total, cases[i].total);
		} else {
			assert_int_equal(total, 12345);
			assert_int_equal(err.code, -EBADMSG);
		}
	}
}

/* ---- getters ---- */

static void test_getters(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *msg = decode_vector("kmip12-get-response");
	const struct vc_ttlv *item, *s;
	const uint8_t *data;
	const char *text;
	size_t len;
	int32_t i;
	uint32_t e;

	(void)state;
	item = batch_item(msg, NULL, VC_KMIP_OP_GET);
	/* Wrong type. */
	assert_int_equal(vc_ttlv_get_integer(item, VC_KMIP_TAG_OPERATION, &i, &err), -EBADMSG);
	assert_int_equal(err.code, -EBADMSG);
	assert_non_null(strstr(err.msg, "Operation"));
	assert_int_equal(vc_ttlv_get_text(item, VC_KMIP_TAG_OPERATION, &text, &err), -EBADMSG);
	assert_int_equal(vc_ttlv_get_bytes(item, VC_KMIP_TAG_OPERATION, &data, &len, &err),
			 -EBADMSG);
	assert_int_equal(vc_ttlv_get_structure(item, VC_KMIP_TAG_OPERATION, &s, &err), -EBADMSG);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESPONSE_PAYLOAD, &e, &err), -EBADMSG);
	/* Absent. */
	vc_error_clear(&err);
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_REASON, &e, &err), -ENOENT);
	assert_int_equal(err.code, -ENOENT);
	assert_non_null(strstr(err.msg, "Result Reason"));
	assert_int_equal(vc_ttlv_get_integer(item, VC_KMIP_TAG_BATCH_COUNT, &i, &err), -ENOENT);
	assert_int_equal(vc_ttlv_get_text(item, VC_KMIP_TAG_RESULT_MESSAGE, &text, &err), -ENOENT);
	assert_int_equal(vc_ttlv_get_bytes(item, VC_KMIP_TAG_KEY_MATERIAL, &data, &len, &err),
			 -ENOENT);
	assert_int_equal(vc_ttlv_get_structure(item, VC_KMIP_TAG_REQUEST_PAYLOAD, &s, &err),
			 -ENOENT);
	/* Only direct children count. */
	assert_int_equal(vc_ttlv_get_text(msg, VC_KMIP_TAG_UNIQUE_IDENTIFIER, &text, &err),
			 -ENOENT);
	/* No parent, or a parent that is no structure. */
	assert_int_equal(vc_ttlv_get_enum(NULL, VC_KMIP_TAG_OPERATION, &e, &err), -ENOENT);
	assert_int_equal(vc_ttlv_get_enum(vc_ttlv_find(item, VC_KMIP_TAG_OPERATION),
					  VC_KMIP_TAG_OPERATION, &e, &err), -ENOENT);
	assert_null(vc_ttlv_find(NULL, VC_KMIP_TAG_OPERATION));
	assert_null(vc_ttlv_find_next(NULL));
	/* A NULL err is fine. */
	assert_int_equal(vc_ttlv_get_enum(item, VC_KMIP_TAG_RESULT_REASON, &e, NULL), -ENOENT);
	assert_int_equal(vc_ttlv_get_integer(item, VC_KMIP_TAG_OPERATION, &i, NULL), -EBADMSG);
	vc_ttlv_free(msg);
}

/* ---- secrets ---- */

static void test_secret_flag(void **state)
{
	/* Key Value { Key Material { Key (byte string) } }, as the
	 * Transparent Symmetric Key format nests it, then a byte string
	 * Key Material and an unrelated byte string. */
	static const uint8_t msg[] = {
		H(0x420045u, 1, 56),
		H(0x420043u, 1, 16), H(0x42003Fu, 8, 4), 0xde, 0xad, 0xbe, 0xef, Z4,
		H(0x420043u, 8, 8), 1, 2, 3, 4, 5, 6, 7, 8,
		H(0x420093u, 8, 1), 0x01, 0, 0, 0, 0, 0, 0, 0,
	};
	struct vc_error err = { 0 };
	struct vc_ttlv *t = NULL;
	const struct vc_ttlv *km;
	char *dump = NULL;
	size_t dumplen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(decode_copy(msg, sizeof msg, &t, &err), 0);
	km = vc_ttlv_find(t, VC_KMIP_TAG_KEY_MATERIAL);
	assert_int_equal(km->type, VC_TTLV_STRUCTURE);
	assert_false(km->secret);
	assert_true(km->child->secret);
	km = vc_ttlv_find_next(km);
	assert_int_equal(km->type, VC_TTLV_BYTE_STRING);
	assert_true(km->secret);
	assert_false(vc_ttlv_find(t, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID)->secret);

	/* The dump shows secret lengths only. */
	f = open_memstream(&dump, &dumplen);
	assert_non_null(f);
	vc_ttlv_dump(t, f);
	fclose(f);
	assert_null(strstr(dump, "deadbeef"));
	assert_null(strstr(dump, "0102030405060708"));
	assert_non_null(strstr(dump, "<4 bytes>"));
	assert_non_null(strstr(dump, "<8 bytes>"));
	free(dump);
	vc_ttlv_free(t);
}

/* ---- building: NULL propagation and encoder refusals ---- */

static void test_builder_null(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *s, *leaf;
	uint8_t *out = (uint8_t *)1;
	size_t len = 1;

	(void)state;
	assert_null(vc_ttlv_add_structure(NULL, 0x420001));
	assert_null(vc_ttlv_add_integer(NULL, 0x420001, 1));
	assert_null(vc_ttlv_add_long(NULL, 0x420001, 1));
	assert_null(vc_ttlv_add_enum(NULL, 0x420001, 1));
	assert_null(vc_ttlv_add_bool(NULL, 0x420001, true));
	assert_null(vc_ttlv_add_text(NULL, 0x420001, "x"));
	assert_null(vc_ttlv_add_text(NULL, 0x420001, NULL));
	assert_null(vc_ttlv_add_bytes(NULL, 0x420001, "x", 1));
	assert_null(vc_ttlv_add_secret(NULL, 0x420001, "x", 1));
	assert_null(vc_ttlv_add_datetime(NULL, 0x420001, 1));
	assert_null(vc_ttlv_add_interval(NULL, 0x420001, 1));
	/* A chain through a NULL stays NULL. */
	assert_null(vc_ttlv_add_text(vc_ttlv_add_structure(vc_ttlv_add_structure(NULL, 0x420001),
							   0x420002), 0x420003, "x"));
	vc_ttlv_free(NULL);
	assert_int_equal(vc_ttlv_encode(NULL, &out, &len, &err), -ENOMEM);
	assert_null(out);
	assert_int_equal(len, 0);

	/* Adding to a leaf fails and poisons the tree. */
	s = scratch();
	leaf = vc_ttlv_add_integer(s, 0x420001, 1);
	assert_non_null(leaf);
	assert_null(vc_ttlv_add_integer(leaf, 0x420002, 2));
	assert_true(leaf->failed);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -ENOMEM);
	vc_ttlv_free(s);

	/* So do a NULL string and NULL bytes of nonzero length. */
	s = scratch();
	assert_null(vc_ttlv_add_text(vc_ttlv_add_structure(s, 0x420001), 0x420002, NULL));
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -ENOMEM);
	vc_ttlv_free(s);
	s = scratch();
	assert_null(vc_ttlv_add_bytes(s, 0x420002, NULL, 4));
	assert_true(s->failed);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -ENOMEM);
	vc_ttlv_free(s);
}

static void test_encode_refusals(void **state)
{
	struct vc_error err = { 0 };
	struct vc_ttlv *s, *p;
	uint8_t *out = NULL;
	size_t len = 0;
	uint8_t *big;

	(void)state;
	/* Tags the decoder would refuse. */
	s = scratch();
	vc_ttlv_add_integer(s, 0x430001, 1);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EINVAL);
	vc_ttlv_free(s);
	s = scratch();
	vc_ttlv_add_integer(s, 0x1420001, 1);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EINVAL);
	vc_ttlv_free(s);

	/* Nesting: at the limit, then one past it. */
	s = scratch();
	p = s;
	for (int i = 1; i < VC_TTLV_MAX_DEPTH; i++)
		p = vc_ttlv_add_structure(p, 0x420001);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), 0);
	assert_int_equal(len, 8 * VC_TTLV_MAX_DEPTH);
	free(out);
	vc_ttlv_add_structure(p, 0x420001);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EINVAL);
	vc_ttlv_free(s);

	/* Items: at the limit, then one past it. */
	s = scratch();
	for (int i = 1; i < VC_TTLV_MAX_ITEMS; i++)
		vc_ttlv_add_bool(s, 0x420001, true);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), 0);
	free(out);
	vc_ttlv_add_bool(s, 0x420001, true);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EMSGSIZE);
	vc_ttlv_free(s);

	/* Size: exactly the limit, then 8 bytes more. */
	big = calloc(1, VC_TTLV_MAX_MESSAGE);
	assert_non_null(big);
	s = scratch();
	vc_ttlv_add_secret(s, 0x420043, big, VC_TTLV_MAX_MESSAGE - 16);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), 0);
	assert_int_equal(len, VC_TTLV_MAX_MESSAGE);
	free(out);
	vc_ttlv_free(s);
	s = scratch();
	vc_ttlv_add_bytes(s, 0x420043, big, VC_TTLV_MAX_MESSAGE - 15);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EMSGSIZE);
	vc_ttlv_free(s);
	s = scratch();
	vc_ttlv_add_bytes(s, 0x420043, big, VC_TTLV_MAX_MESSAGE);
	assert_int_equal(vc_ttlv_encode(s, &out, &len, &err), -EMSGSIZE);
	vc_ttlv_free(s);
	free(big);
	assert_null(out);
	assert_int_equal(len, 0);
}

/* ---- names ---- */

static void test_names(void **state)
{
	/* KMIP 1.4 section 9.1.3.2.29, in order. */
	static const char *const reasons[] = {
		"Item Not Found", "Response Too Large", "Authentication Not Successful",
		"Invalid Message", "Operation Not Supported", "Missing Data", "Invalid Field",
		"Feature Not Supported", "Operation Canceled By Requester", "Cryptographic Failure",
		"Illegal Operation", "Permission Denied", "Object Archived", "Index Out of Bounds",
		"Application Namespace Not Supported", "Key Format Type Not Supported",
		"Key Compression Type Not Supported", "Encoding Option Error",
		"Key Value Not Present", "Attestation Required", "Attestation Failed", "Sensitive",
		"Not Extractable", "Object Already Exists",
	};
	static const struct {
		uint32_t op;
		const char *name;
	} ops[] = {
		{ 0x01, "Create" },
		{ 0x03, "Register" },
		{ 0x08, "Locate" },
		{ 0x0A, "Get" },
		{ 0x0B, "Get Attributes" },
		{ 0x0C, "Get Attribute List" },
		{ 0x0D, "Add Attribute" },
		{ 0x0E, "Modify Attribute" },
		{ 0x0F, "Delete Attribute" },
		{ 0x12, "Activate" },
		{ 0x13, "Revoke" },
		{ 0x14, "Destroy" },
		{ 0x18, "Query" },
		{ 0x1E, "Discover Versions" },
	};

	(void)state;
	for (uint32_t i = 0; i < VC_ARRAY_SIZE(reasons); i++)
		assert_string_equal(vc_kmip_reason_name(i + 1), reasons[i]);
	assert_string_equal(vc_kmip_reason_name(0x100), "General Failure");
	assert_string_equal(vc_kmip_reason_name(0), "Unknown Result Reason");
	assert_string_equal(vc_kmip_reason_name(0x19), "Unknown Result Reason");
	assert_string_equal(vc_kmip_reason_name(UINT32_MAX), "Unknown Result Reason");
	for (size_t i = 0; i < VC_ARRAY_SIZE(ops); i++)
		assert_string_equal(vc_kmip_operation_name(ops[i].op), ops[i].name);
	assert_string_equal(vc_kmip_operation_name(0), "Unknown Operation");
	assert_string_equal(vc_kmip_operation_name(0xFFFF), "Unknown Operation");
	assert_string_equal(vc_kmip_tag_name(0x420094), "Unique Identifier");
	assert_string_equal(vc_kmip_tag_name(0x420043), "Key Material");
	assert_null(vc_kmip_tag_name(0x420000));
	assert_null(vc_kmip_tag_name(0x540001));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors_round_trip),
		cmocka_unit_test(test_get_response_fields),
		cmocka_unit_test(test_captured_get_response),
		cmocka_unit_test(test_failure_responses),
		cmocka_unit_test(test_unsupported_version_response),
		cmocka_unit_test(test_discover_versions),
		cmocka_unit_test(test_query_response),
		cmocka_unit_test(test_batch_response),
		cmocka_unit_test(test_get_attributes_response),
		cmocka_unit_test(test_build_create_request),
		cmocka_unit_test(test_build_uid_requests),
		cmocka_unit_test(test_build_other_requests),
		cmocka_unit_test(test_build_responses),
		cmocka_unit_test(test_spec_examples_build),
		cmocka_unit_test(test_spec_examples_decode),
		cmocka_unit_test(test_value_edges),
		cmocka_unit_test(test_reject_pairs),
		cmocka_unit_test(test_reject_depth),
		cmocka_unit_test(test_reject_items),
		cmocka_unit_test(test_reject_size),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_corrupted_lengths),
		cmocka_unit_test(test_frame_length),
		cmocka_unit_test(test_getters),
		cmocka_unit_test(test_secret_flag),
		cmocka_unit_test(test_builder_null),
		cmocka_unit_test(test_encode_refusals),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
