/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_uuid: version 4 generation, formatting and parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vc_uuid.h"

#define NGEN 1000

static int cmp_uuid(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct vc_uuid));
}

static void test_generate_version_variant(void **state)
{
	static struct vc_uuid u[NGEN];
	uint8_t seen_or[16] = { 0 }, seen_and[16];

	(void)state;
	memset(seen_and, 0xff, sizeof seen_and);
	for (int i = 0; i < NGEN; i++) {
		assert_int_equal(vc_uuid_generate(&u[i], NULL), 0);
		/* RFC 4122 4.1.3: version 4 in the high nibble of octet 6;
		 * 4.1.1: variant bits 10 in octet 8. */
		assert_int_equal(u[i].b[6] >> 4, 4);
		assert_int_equal(u[i].b[8] & 0xc0, 0x80);
		assert_false(vc_uuid_is_nil(&u[i]));
		for (int j = 0; j < 16; j++) {
			seen_or[j] |= u[i].b[j];
			seen_and[j] &= u[i].b[j];
		}
	}
	/* All 122 random bits vary across a thousand UUIDs (a fixed bit
	 * would survive with probability 2^-999). */
	for (int j = 0; j < 16; j++) {
		uint8_t fixed_mask = j == 6 ? 0xf0 : j == 8 ? 0xc0 : 0x00;

		assert_int_equal(seen_or[j] | fixed_mask, 0xff);
		assert_int_equal(seen_and[j] & (uint8_t)~fixed_mask, 0x00);
	}
	/* And no two are equal. */
	qsort(u, NGEN, sizeof u[0], cmp_uuid);
	for (int i = 1; i < NGEN; i++)
		assert_memory_not_equal(&u[i - 1], &u[i], sizeof u[0]);
}

static void test_is_nil(void **state)
{
	struct vc_uuid u;

	(void)state;
	memset(&u, 0, sizeof u);
	assert_true(vc_uuid_is_nil(&u));
	for (int i = 0; i < 16; i++) {
		u.b[i] = 1;
		assert_false(vc_uuid_is_nil(&u));
		u.b[i] = 0;
	}
}

/* The example UUID of RFC 4122 section 3 (urn:uuid:f81d4fae-...). */
static const char rfc_str[] = "f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
static const uint8_t rfc_bytes[16] = { 0xf8, 0x1d, 0x4f, 0xae, 0x7d, 0xec, 0x11, 0xd0,
				       0xa7, 0x65, 0x00, 0xa0, 0xc9, 0x1e, 0x6b, 0xf6 };

static void test_format_known(void **state)
{
	struct vc_uuid u;
	char s[VC_UUID_STR_LEN + 4];

	(void)state;
	memcpy(u.b, rfc_bytes, 16);
	memset(s, 'X', sizeof s);
	vc_uuid_format(&u, s);
	assert_string_equal(s, rfc_str);
	/* Exactly 36 characters and the NUL, nothing after. */
	assert_int_equal(s[VC_UUID_STR_LEN], 'X');

	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(i * 0x11);
	vc_uuid_format(&u, s);
	assert_string_equal(s, "00112233-4455-6677-8899-aabbccddeeff");

	memset(&u, 0, sizeof u);
	vc_uuid_format(&u, s);
	assert_string_equal(s, "00000000-0000-0000-0000-000000000000");
}

static void test_parse_known(void **state)
{
	struct vc_uuid u;

	(void)state;
	assert_int_equal(vc_uuid_parse(rfc_str, &u), 0);
	assert_memory_equal(u.b, rfc_bytes, 16);
	assert_int_equal(vc_uuid_parse("F81D4FAE-7DEC-11D0-A765-00A0C91E6BF6", &u), 0);
	assert_memory_equal(u.b, rfc_bytes, 16);
	assert_int_equal(vc_uuid_parse("f81D4fAE-7deC-11d0-A765-00a0C91e6bF6", &u), 0);
	assert_memory_equal(u.b, rfc_bytes, 16);
	assert_int_equal(vc_uuid_parse("00000000-0000-0000-0000-000000000000", &u), 0);
	assert_true(vc_uuid_is_nil(&u));
}

static void test_round_trip(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		struct vc_uuid a, b;
		char s[VC_UUID_STR_LEN];

		assert_int_equal(vc_uuid_generate(&a, NULL), 0);
		vc_uuid_format(&a, s);
		assert_int_equal(strlen(s), 36);
		assert_int_equal(s[8], '-');
		assert_int_equal(s[13], '-');
		assert_int_equal(s[18], '-');
		assert_int_equal(s[23], '-');
		assert_int_equal(s[14], '4');
		memset(&b, 0, sizeof b);
		assert_int_equal(vc_uuid_parse(s, &b), 0);
		assert_memory_equal(a.b, b.b, 16);
	}
}

static void expect_bad(const char *s)
{
	struct vc_uuid u;

	if (vc_uuid_parse(s, &u) != -EINVAL)
		fail_msg("accepted malformed UUID \"%s\"", s);
}

static void test_parse_rejects_length(void **state)
{
	(void)state;
	expect_bad("");
	expect_bad("f81d4fae-7dec-11d0-a765-00a0c91e6bf");    /* 35 */
	expect_bad("f81d4fae-7dec-11d0-a765-00a0c91e6bf60");  /* 37 */
	expect_bad("f81d4fae-7dec-11d0-a765-00a0c91e6bf6 ");
	expect_bad(" f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
	expect_bad("{f81d4fae-7dec-11d0-a765-00a0c91e6bf6}");
	expect_bad("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
	expect_bad("f81d4fae7dec11d0a76500a0c91e6bf6");       /* no dashes */
}

static void test_parse_rejects_dashes(void **state)
{
	static const int dash_at[] = { 8, 13, 18, 23 };
	char s[VC_UUID_STR_LEN];

	(void)state;
	/* Each dash replaced by a hex digit or another separator. */
	for (size_t i = 0; i < VC_ARRAY_SIZE(dash_at); i++) {
		static const char repl[] = { '0', 'a', '_', ':', ' ', '+' };

		for (size_t j = 0; j < sizeof repl; j++) {
			memcpy(s, rfc_str, sizeof s);
			s[dash_at[i]] = repl[j];
			expect_bad(s);
		}
	}
	/* A dash moved keeps the length, so only the position check can
	 * catch it. */
	static const char *moved[] = {
		"f81d4fa-e7dec-11d0-a765-00a0c91e6bf6",
		"f81d4fae7-dec-11d0-a765-00a0c91e6bf6",
		"f81d4fae-7dec-11d0a-765-00a0c91e6bf6",
		"f81d4fae-7dec-11d0-a76500-a0c91e6bf6",
		"f81d4fae-7dec-11d0-a765-00a0c91e6bf-",
		"-81d4fae-7dec-11d0-a765-00a0c91e6bf6",
	};
	for (size_t i = 0; i < VC_ARRAY_SIZE(moved); i++) {
		assert_int_equal(strlen(moved[i]), 36);
		expect_bad(moved[i]);
	}
}

static void test_parse_rejects_bad_hex(void **state)
{
	static const char bad[] = { 'g', 'G', 'x', ' ', '/', ':', '@', '`', '-', (char)0xff };
	char s[VC_UUID_STR_LEN];

	(void)state;
	/* Every digit position, every kind of non-digit. */
	for (int pos = 0; pos < 36; pos++) {
		if (pos == 8 || pos == 13 || pos == 18 || pos == 23)
			continue;
		for (size_t j = 0; j < sizeof bad; j++) {
			memcpy(s, rfc_str, sizeof s);
			s[pos] = bad[j];
			expect_bad(s);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_generate_version_variant),
		cmocka_unit_test(test_is_nil),
		cmocka_unit_test(test_format_known),
		cmocka_unit_test(test_parse_known),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_parse_rejects_length),
		cmocka_unit_test(test_parse_rejects_dashes),
		cmocka_unit_test(test_parse_rejects_bad_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
