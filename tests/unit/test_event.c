/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_event: hash chain tamper detection, canonical encoding,
 * JSON Lines and CSV export. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "vc_encode.h"
#include "vc_event.h"

#define N 50
#define SEQ0 100
#define FLEN 64

/* Events whose strings the test owns, so single fields can be edited. */
struct log {
	struct vc_event ev[N];
	char str[N][7][FLEN];
	size_t n;
};

static const uint8_t genesis[VC_SHA256_LEN] = { 0x5a, 0x01, 0x02, 0x03 };
static const uint8_t log_key[] = "0123456789abcdef0123456789abcdef";

static char **str_slot(struct vc_event *ev, int i)
{
	const char **slots[7] = { &ev->user, &ev->operation, &ev->object,
				  &ev->provider, &ev->key_id, &ev->result,
				  &ev->message };
	return (char **)(void *)slots[i];
}

static void seal_from(struct log *lg, size_t from, const void *key,
		      size_t keylen)
{
	struct vc_error err = { 0 };

	for (size_t i = from; i < lg->n; i++) {
		const uint8_t *prev = i ? lg->ev[i - 1].hash : genesis;

		assert_int_equal(vc_event_seal(&lg->ev[i], prev, key, keylen, &err), 0);
	}
}

static struct log *build_log(const void *key, size_t keylen)
{
	static const char *const ops[] = { "disk.encrypt", "vm.rekey", "key.get",
					   "login", "host.enable-crypto" };
	struct log *lg = calloc(1, sizeof *lg);

	assert_non_null(lg);
	lg->n = N;
	for (size_t i = 0; i < N; i++) {
		struct vc_event *ev = &lg->ev[i];

		ev->seq = SEQ0 + (int64_t)i;
		ev->time_us = 1700000000000000 + (int64_t)i * 1234567;
		snprintf(lg->str[i][0], FLEN, "user%zu", i % 3);
		snprintf(lg->str[i][1], FLEN, "%s", ops[i % 5]);
		snprintf(lg->str[i][2], FLEN, "vm-%zu", i);
		snprintf(lg->str[i][3], FLEN, "kmip-%zu", i % 2);
		snprintf(lg->str[i][4], FLEN, "key-%zu", i * 7);
		snprintf(lg->str[i][5], FLEN, "%s", i % 4 ? "success" : "failure");
		snprintf(lg->str[i][6], FLEN, "message, number \"%zu\"", i);
		for (int f = 0; f < 7; f++)
			*str_slot(ev, f) = lg->str[i][f];
	}
	seal_from(lg, 0, key, keylen);
	return lg;
}

static int verify(const struct log *lg, const void *key, size_t keylen,
		  size_t *bad, struct vc_error *err)
{
	return vc_event_verify_chain(lg->ev, lg->n, genesis, key, keylen, bad, err);
}

static void expect_bad(const struct log *lg, const void *key, size_t keylen,
		       size_t want_index, const char *want_msg)
{
	struct vc_error err = { 0 };
	size_t bad = 9999;

	assert_int_equal(verify(lg, key, keylen, &bad, &err), -EBADMSG);
	assert_int_equal(bad, want_index);
	assert_string_equal(err.msg, want_msg);
}

static void test_chain_ok(void **state)
{
	struct log *lg = build_log(NULL, 0);
	struct vc_error err = { 0 };
	size_t bad = 9999;

	(void)state;
	assert_int_equal(verify(lg, NULL, 0, &bad, &err), 0);
	/* Each event carries its predecessor's hash, the first the genesis. */
	assert_memory_equal(lg->ev[0].prev_hash, genesis, VC_SHA256_LEN);
	for (size_t i = 1; i < N; i++)
		assert_memory_equal(lg->ev[i].prev_hash, lg->ev[i - 1].hash,
				    VC_SHA256_LEN);
	/* The empty log and a one-event prefix verify too. */
	assert_int_equal(vc_event_verify_chain(lg->ev, 0, genesis, NULL, 0, NULL, &err), 0);
	assert_int_equal(vc_event_verify_chain(lg->ev, 1, genesis, NULL, 0, NULL, &err), 0);
	free(lg);
}

static void test_edit_each_field(void **state)
{
	static const size_t ks[] = { 0, 17, N - 1 };
	char want[200];

	(void)state;
	for (size_t ki = 0; ki < VC_ARRAY_SIZE(ks); ki++) {
		size_t k = ks[ki];
		int64_t seq = SEQ0 + (int64_t)k;

		snprintf(want, sizeof want,
			 "event %" PRId64 ": hash does not match its contents (edited?)", seq);
		for (int f = 0; f < 7; f++) {
			struct log *lg = build_log(NULL, 0);

			/* One byte changed in place, as an UPDATE would. */
			lg->str[k][f][0] ^= 0x01;
			expect_bad(lg, NULL, 0, k, want);
			free(lg);

			/* NULL and "" are the same, so emptying a field must
			 * be caught, and so must an extra trailing byte. */
			lg = build_log(NULL, 0);
			*str_slot(&lg->ev[k], f) = NULL;
			expect_bad(lg, NULL, 0, k, want);
			free(lg);

			lg = build_log(NULL, 0);
			snprintf(lg->str[k][f] + strlen(lg->str[k][f]),
				 sizeof lg->str[k][f] - strlen(lg->str[k][f]), "x");
			expect_bad(lg, NULL, 0, k, want);
			free(lg);
		}

		struct log *lg = build_log(NULL, 0);
		lg->ev[k].time_us++;
		expect_bad(lg, NULL, 0, k, want);
		free(lg);

		lg = build_log(NULL, 0);
		lg->ev[k].prev_hash[31] ^= 0x80;
		expect_bad(lg, NULL, 0, k, want);
		free(lg);

		lg = build_log(NULL, 0);
		lg->ev[k].hash[0] ^= 0x01;
		expect_bad(lg, NULL, 0, k, want);
		free(lg);

		/* A renumbered event is named by its new seq. */
		lg = build_log(NULL, 0);
		lg->ev[k].seq += 1000;
		snprintf(want, sizeof want,
			 "event %" PRId64 ": hash does not match its contents (edited?)",
			 seq + 1000);
		expect_bad(lg, NULL, 0, k, want);
		free(lg);
	}
}

static void delete_at(struct log *lg, size_t k)
{
	memmove(&lg->ev[k], &lg->ev[k + 1], (lg->n - k - 1) * sizeof lg->ev[0]);
	lg->n--;
}

static void test_delete(void **state)
{
	char want[200];
	struct log *lg;

	(void)state;
	lg = build_log(NULL, 0);
	delete_at(lg, 20);
	snprintf(want, sizeof want, "event %d: sequence gap after %d (deleted?)",
		 SEQ0 + 21, SEQ0 + 19);
	expect_bad(lg, NULL, 0, 20, want);
	free(lg);

	/* Several in a row. */
	lg = build_log(NULL, 0);
	delete_at(lg, 30);
	delete_at(lg, 30);
	delete_at(lg, 30);
	snprintf(want, sizeof want, "event %d: sequence gap after %d (deleted?)",
		 SEQ0 + 33, SEQ0 + 29);
	expect_bad(lg, NULL, 0, 30, want);
	free(lg);

	/* The first event: only the genesis value can tell. */
	lg = build_log(NULL, 0);
	delete_at(lg, 0);
	snprintf(want, sizeof want,
		 "event %d: does not chain to the genesis hash (earlier events deleted, or another log?)",
		 SEQ0 + 1);
	expect_bad(lg, NULL, 0, 0, want);
	free(lg);

	/* Deleted, and the later events renumbered to hide the gap: the
	 * renumbered event's own hash no longer matches. */
	lg = build_log(NULL, 0);
	delete_at(lg, 10);
	for (size_t i = 10; i < lg->n; i++)
		lg->ev[i].seq--;
	snprintf(want, sizeof want,
		 "event %d: hash does not match its contents (edited?)", SEQ0 + 10);
	expect_bad(lg, NULL, 0, 10, want);
	free(lg);
}

/* An event replaced by another with a valid hash of its own (made by
 * someone without the key for a keyed log, or re-hashed for an unkeyed
 * one) breaks the link to the next event. */
static void test_replaced_event_breaks_link(void **state)
{
	struct log *lg = build_log(NULL, 0);
	struct vc_error err = { 0 };
	char want[200];

	(void)state;
	snprintf(lg->str[17][5], sizeof lg->str[17][5], "failure");
	assert_int_equal(vc_event_seal(&lg->ev[17], lg->ev[16].hash, NULL, 0, &err), 0);
	snprintf(want, sizeof want,
		 "event %d: does not chain to event %d (deleted or reordered?)",
		 SEQ0 + 18, SEQ0 + 17);
	expect_bad(lg, NULL, 0, 18, want);
	free(lg);
}

static void swap(struct log *lg, size_t a, size_t b)
{
	struct vc_event t = lg->ev[a];

	lg->ev[a] = lg->ev[b];
	lg->ev[b] = t;
}

static void test_swap(void **state)
{
	char want[200];
	struct log *lg;

	(void)state;
	lg = build_log(NULL, 0);
	swap(lg, 10, 20);
	snprintf(want, sizeof want, "event %d: out of order after %d (reordered?)",
		 SEQ0 + 20, SEQ0 + 9);
	expect_bad(lg, NULL, 0, 10, want);
	free(lg);

	lg = build_log(NULL, 0);
	swap(lg, 5, 6);
	snprintf(want, sizeof want, "event %d: out of order after %d (reordered?)",
		 SEQ0 + 6, SEQ0 + 4);
	expect_bad(lg, NULL, 0, 5, want);
	free(lg);

	/* Swapped rows given new seqs to look consecutive: hashes catch it. */
	lg = build_log(NULL, 0);
	swap(lg, 5, 6);
	lg->ev[5].seq = SEQ0 + 5;
	lg->ev[6].seq = SEQ0 + 6;
	snprintf(want, sizeof want,
		 "event %d: hash does not match its contents (edited?)", SEQ0 + 5);
	expect_bad(lg, NULL, 0, 5, want);
	free(lg);

	/* A duplicated row. */
	lg = build_log(NULL, 0);
	lg->ev[8] = lg->ev[7];
	snprintf(want, sizeof want, "event %d: out of order after %d (reordered?)",
		 SEQ0 + 7, SEQ0 + 7);
	expect_bad(lg, NULL, 0, 8, want);
	free(lg);
}

static void test_wrong_genesis(void **state)
{
	struct log *lg = build_log(NULL, 0);
	uint8_t other[VC_SHA256_LEN];
	struct vc_error err = { 0 };
	size_t bad = 9999;

	(void)state;
	memcpy(other, genesis, sizeof other);
	other[31] ^= 1;
	assert_int_equal(vc_event_verify_chain(lg->ev, lg->n, other, NULL, 0, &bad, &err),
			 -EBADMSG);
	assert_int_equal(bad, 0);
	assert_non_null(strstr(err.msg, "genesis"));
	free(lg);
}

static void test_keyed(void **state)
{
	static const uint8_t other_key[] = "0123456789abcdef0123456789abcdeX";
	struct log *lg = build_log(log_key, sizeof log_key);
	struct vc_error err = { 0 };
	uint8_t h[VC_SHA256_LEN];
	size_t bad = 9999;
	char want[200];

	(void)state;
	assert_int_equal(verify(lg, log_key, sizeof log_key, &bad, &err), 0);

	snprintf(want, sizeof want,
		 "event %d: hash does not match its contents (edited?)", SEQ0);
	expect_bad(lg, NULL, 0, 0, want);
	expect_bad(lg, other_key, sizeof other_key, 0, want);

	/* Keyed and unkeyed hashes of one event differ. */
	assert_int_equal(vc_event_hash(&lg->ev[3], NULL, 0, h, &err), 0);
	assert_memory_not_equal(h, lg->ev[3].hash, VC_SHA256_LEN);

	/* An attacker without the key edits event k and re-chains every
	 * later event with plain SHA-256: the key still names event k. */
	snprintf(lg->str[25][1], sizeof lg->str[25][1], "nothing.happened");
	seal_from(lg, 25, NULL, 0);
	snprintf(want, sizeof want,
		 "event %d: hash does not match its contents (edited?)", SEQ0 + 25);
	expect_bad(lg, log_key, sizeof log_key, 25, want);
	free(lg);

	/* The same rewrite of an unkeyed log goes unnoticed, which is why the
	 * key exists. */
	lg = build_log(NULL, 0);
	snprintf(lg->str[25][1], sizeof lg->str[25][1], "nothing.happened");
	seal_from(lg, 25, NULL, 0);
	assert_int_equal(verify(lg, NULL, 0, &bad, &err), 0);
	free(lg);
}

static void test_key_args(void **state)
{
	struct log *lg = build_log(NULL, 0);
	struct vc_error err = { 0 };
	uint8_t h[VC_SHA256_LEN];

	(void)state;
	assert_int_equal(vc_event_hash(&lg->ev[0], log_key, 0, h, &err), -EINVAL);
	assert_int_equal(vc_event_hash(&lg->ev[0], NULL, 5, h, &err), -EINVAL);
	assert_int_equal(vc_event_seal(&lg->ev[0], genesis, NULL, 5, &err), -EINVAL);
	assert_int_equal(verify(lg, log_key, 0, NULL, &err), -EINVAL);
	free(lg);
}

static void test_null_equals_empty(void **state)
{
	struct vc_event a = { .seq = 1, .time_us = 2, .user = "u" };
	struct vc_event b = a;
	struct vc_error err = { 0 };
	uint8_t *ea, *eb;
	size_t la, lb;
	uint8_t ha[VC_SHA256_LEN], hb[VC_SHA256_LEN];

	(void)state;
	b.operation = b.object = b.provider = b.key_id = b.result = b.message = "";
	assert_int_equal(vc_event_encode(&a, &ea, &la, &err), 0);
	assert_int_equal(vc_event_encode(&b, &eb, &lb, &err), 0);
	assert_int_equal(la, lb);
	assert_memory_equal(ea, eb, la);
	assert_int_equal(vc_event_hash(&a, NULL, 0, ha, &err), 0);
	assert_int_equal(vc_event_hash(&b, NULL, 0, hb, &err), 0);
	assert_memory_equal(ha, hb, sizeof ha);
	free(ea);
	free(eb);
}

/* The layout documented in vc_event.h, written out by hand. */
static void test_encoding_layout(void **state)
{
	static const uint8_t want[] = {
		'v', 'm', 'c', 'r', 'y', 'p', 't', '-', 'e', 'v', 'e', 'n', 't', '-', 'v', '1',
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0, 0, 0, 2, 'a', 'b',
		0, 0, 0, 1, 'c',
		0, 0, 0, 0,
		0, 0, 0, 0,
		0, 0, 0, 0,
		0, 0, 0, 3, 'o', 'k', '!',
		0, 0, 0, 0,
		0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
		0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
		0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7,
		0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
	};
	struct vc_event ev = { .seq = 0x0102030405060708, .time_us = -2,
			       .user = "ab", .operation = "c", .object = "",
			       .result = "ok!" };
	struct vc_error err = { 0 };
	uint8_t *enc, h[VC_SHA256_LEN], h2[VC_SHA256_LEN];
	size_t len;

	(void)state;
	for (int i = 0; i < VC_SHA256_LEN; i++)
		ev.prev_hash[i] = (uint8_t)(0xa0 + i);
	memset(ev.hash, 0xee, sizeof ev.hash);
	assert_int_equal(vc_event_encode(&ev, &enc, &len, &err), 0);
	assert_int_equal(len, sizeof want);
	assert_memory_equal(enc, want, sizeof want);

	/* hash = SHA-256 / HMAC-SHA-256 of exactly that encoding. */
	assert_int_equal(vc_event_hash(&ev, NULL, 0, h, &err), 0);
	assert_int_equal(vc_sha256(want, sizeof want, h2, &err), 0);
	assert_memory_equal(h, h2, sizeof h);
	assert_int_equal(vc_event_hash(&ev, log_key, sizeof log_key, h, &err), 0);
	assert_int_equal(vc_hmac_sha256(log_key, sizeof log_key, want, sizeof want,
					h2, &err), 0);
	assert_memory_equal(h, h2, sizeof h);
	free(enc);
}

static void test_unambiguous(void **state)
{
	struct vc_event a = { .seq = 1, .user = "ab", .operation = "c" };
	struct vc_event b = { .seq = 1, .user = "a", .operation = "bc" };
	struct vc_event c = { .seq = 1, .user = "abc" };
	struct vc_event d = { .seq = 1, .operation = "abc" };
	struct vc_error err = { 0 };
	uint8_t ha[VC_SHA256_LEN], hb[VC_SHA256_LEN];
	uint8_t hc[VC_SHA256_LEN], hd[VC_SHA256_LEN];

	(void)state;
	assert_int_equal(vc_event_hash(&a, NULL, 0, ha, &err), 0);
	assert_int_equal(vc_event_hash(&b, NULL, 0, hb, &err), 0);
	assert_int_equal(vc_event_hash(&c, NULL, 0, hc, &err), 0);
	assert_int_equal(vc_event_hash(&d, NULL, 0, hd, &err), 0);
	assert_memory_not_equal(ha, hb, sizeof ha);
	assert_memory_not_equal(ha, hc, sizeof ha);
	assert_memory_not_equal(hb, hc, sizeof ha);
	assert_memory_not_equal(hc, hd, sizeof ha);
}

static const char nasty[] = "q\"uo,te\nnew\r\\back\t\x01\x1f\x7f end";

static void check_json_field(json_t *o, const char *name, const char *want)
{
	json_t *v = json_object_get(o, name);

	assert_non_null(v);
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), want);
}

static void test_json(void **state)
{
	struct vc_event ev = { .seq = -5, .time_us = INT64_MAX,
			       .user = nasty, .operation = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91",
			       .object = NULL, .provider = "",
			       .key_id = "bad\xff utf8 \xc0\xaf \xed\xa0\x80",
			       .result = "\\", .message = "\"" };
	char *line, hex[2 * VC_SHA256_LEN + 1];
	json_error_t jerr;
	json_t *o;

	(void)state;
	for (int i = 0; i < VC_SHA256_LEN; i++) {
		ev.prev_hash[i] = (uint8_t)i;
		ev.hash[i] = (uint8_t)(255 - i);
	}
	assert_int_equal(vc_event_to_json_line(&ev, &line), 0);
	/* One line: the only newline is the terminator. */
	assert_non_null(strchr(line, '\n'));
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
	assert_null(strchr(line, '\r'));
	/* The escapes themselves, spelled out. */
	assert_non_null(strstr(line,
		"\"user\":\"q\\\"uo,te\\nnew\\r\\\\back\\t\\u0001\\u001f\x7f end\""));
	assert_non_null(strstr(line, "\"result\":\"\\\\\""));
	assert_non_null(strstr(line, "\"message\":\"\\\"\""));

	o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		fail_msg("jansson rejects %s: %s", line, jerr.text);
	assert_true(json_is_object(o));
	assert_int_equal(json_object_size(o), 11);
	assert_int_equal(json_integer_value(json_object_get(o, "seq")), -5);
	assert_true(json_integer_value(json_object_get(o, "time_us")) == INT64_MAX);
	check_json_field(o, "user", nasty);
	check_json_field(o, "operation", ev.operation);
	check_json_field(o, "object", "");
	check_json_field(o, "provider", "");
	/* Invalid UTF-8 (a stray byte, an overlong, a surrogate) becomes
	 * U+FFFD per byte. */
	check_json_field(o, "key_id",
			 "bad\xef\xbf\xbd utf8 \xef\xbf\xbd\xef\xbf\xbd "
			 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	check_json_field(o, "result", "\\");
	check_json_field(o, "message", "\"");
	vc_hex_encode(ev.prev_hash, VC_SHA256_LEN, hex);
	check_json_field(o, "prev_hash", hex);
	vc_hex_encode(ev.hash, VC_SHA256_LEN, hex);
	check_json_field(o, "hash", hex);
	json_decref(o);
	free(line);
}

static void test_csv(void **state)
{
	struct vc_event ev = { .seq = 7, .time_us = -1, .user = "plain",
			       .operation = "a,b", .object = "say \"hi\"",
			       .provider = "two\nlines", .key_id = "cr\rhere",
			       .result = NULL, .message = "back\\slash\t\x01" };
	char *line;

	(void)state;
	memset(ev.prev_hash, 0x00, sizeof ev.prev_hash);
	memset(ev.hash, 0xab, sizeof ev.hash);
	assert_int_equal(vc_event_to_csv_line(&ev, &line), 0);
	assert_string_equal(line,
		"7,-1,plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rhere\",,"
		"back\\slash\t\x01,"
		"0000000000000000000000000000000000000000000000000000000000000000,"
		"abababababababababababababababababababababababababababababababab"
		"\r\n");
	free(line);
	assert_string_equal(vc_event_csv_header(),
		"seq,time_us,user,operation,object,provider,key_id,result,message,"
		"prev_hash,hash\r\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chain_ok),
		cmocka_unit_test(test_edit_each_field),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_replaced_event_breaks_link),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_wrong_genesis),
		cmocka_unit_test(test_keyed),
		cmocka_unit_test(test_key_args),
		cmocka_unit_test(test_null_equals_empty),
		cmocka_unit_test(test_encoding_layout),
		cmocka_unit_test(test_unambiguous),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_csv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
