/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_encode: hex and base64 known answers and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vc_encode.h"

/* Deterministic filler so failures reproduce; the encoders are not
 * supposed to care where the bytes come from. */
static uint8_t next_byte(uint32_t *state)
{
	*state = *state * 1103515245u + 12345u;
	return (uint8_t)(*state >> 16);
}

static bool is_hex_digit(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
	       (c >= 'A' && c <= 'F');
}

static void test_hex_encode_known(void **state)
{
	static const uint8_t in[] = { 0x00, 0x01, 0x09, 0x0a, 0x0f, 0x10, 0x7f,
				      0x80, 0x9a, 0xab, 0xcd, 0xef, 0xf0, 0xff };
	char out[2 * sizeof in + 1];

	(void)state;
	memset(out, 'X', sizeof out);
	vc_hex_encode(in, sizeof in, out);
	assert_string_equal(out, "0001090a0f107f809aabcdeff0ff");

	memset(out, 'X', sizeof out);
	vc_hex_encode(in, 0, out);
	assert_string_equal(out, "");
}

/* Every byte value, against printf as an independent oracle. */
static void test_hex_encode_all_bytes(void **state)
{
	uint8_t in[256];
	char out[513], want[3];

	(void)state;
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	vc_hex_encode(in, sizeof in, out);
	assert_int_equal(strlen(out), 512);
	for (int i = 0; i < 256; i++) {
		snprintf(want, sizeof want, "%02x", i);
		assert_memory_equal(out + 2 * i, want, 2);
	}
}

static void test_hex_decode_known(void **state)
{
	uint8_t out[16];
	size_t n = 99;

	(void)state;
	assert_int_equal(vc_hex_decode("00ff7f80", 8, out, sizeof out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\x00\xff\x7f\x80", 4);

	/* Upper, lower and mixed case decode alike. */
	assert_int_equal(vc_hex_decode("DEADBEEF", 8, out, sizeof out, &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	assert_int_equal(vc_hex_decode("deadbeef", 8, out, sizeof out, &n), 0);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);
	assert_int_equal(vc_hex_decode("dEaDbEeF", 8, out, sizeof out, &n), 0);
	assert_memory_equal(out, "\xde\xad\xbe\xef", 4);

	/* inlen bounds the input: trailing characters are not read. */
	assert_int_equal(vc_hex_decode("abcdZZ", 4, out, sizeof out, &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xab\xcd", 2);

	n = 99;
	assert_int_equal(vc_hex_decode("", 0, out, sizeof out, &n), 0);
	assert_int_equal(n, 0);
}

/* Every pair of valid digits decodes to what strtoul says. */
static void test_hex_decode_all_digit_pairs(void **state)
{
	static const char digits[] = "0123456789abcdefABCDEF";
	char in[3] = { 0 };
	uint8_t out;
	size_t n;

	(void)state;
	for (size_t i = 0; digits[i]; i++) {
		for (size_t j = 0; digits[j]; j++) {
			in[0] = digits[i];
			in[1] = digits[j];
			assert_int_equal(vc_hex_decode(in, 2, &out, 1, &n), 0);
			assert_int_equal(n, 1);
			assert_int_equal(out, strtoul(in, NULL, 16));
		}
	}
}

static void test_hex_round_trip(void **state)
{
	uint32_t seed = 1;
	uint8_t in[300] = { 0 }, out[300];
	char hex[601];
	size_t n;

	(void)state;
	for (size_t len = 0; len <= sizeof in; len += (len < 40 ? 1 : 37)) {
		for (size_t i = 0; i < len; i++)
			in[i] = next_byte(&seed);
		vc_hex_encode(in, len, hex);
		assert_int_equal(strlen(hex), 2 * len);
		assert_int_equal(vc_hex_decode(hex, 2 * len, out, len, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);

		/* The upper-case form decodes to the same bytes. */
		for (size_t i = 0; i < 2 * len; i++)
			hex[i] = (char)toupper((unsigned char)hex[i]);
		memset(out, 0, sizeof out);
		assert_int_equal(vc_hex_decode(hex, 2 * len, out, len, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);
	}
}

static void test_hex_decode_odd_length(void **state)
{
	uint8_t out[8];
	size_t n = 0;

	(void)state;
	assert_int_equal(vc_hex_decode("a", 1, out, sizeof out, &n), -EINVAL);
	assert_int_equal(vc_hex_decode("abc", 3, out, sizeof out, &n), -EINVAL);
	assert_int_equal(vc_hex_decode("0011223", 7, out, sizeof out, &n), -EINVAL);
	/* Odd length is -EINVAL even when the output would also be too small. */
	assert_int_equal(vc_hex_decode("0011223", 7, out, 1, &n), -EINVAL);
}

/* One bad character at the high nibble, the low nibble, and in a later
 * byte, for every byte value that is not a hex digit. */
static void test_hex_decode_every_bad_byte(void **state)
{
	uint8_t out[4];
	size_t n;

	(void)state;
	for (int c = 0; c < 256; c++) {
		if (is_hex_digit(c))
			continue;
		for (size_t pos = 0; pos < 6; pos++) {
			char in[6];

			memcpy(in, "a5c3e7", sizeof in);
			in[pos] = (char)c;
			if (vc_hex_decode(in, sizeof in, out, sizeof out, &n) != -EINVAL)
				fail_msg("byte 0x%02x at position %zu accepted", c, pos);
		}
	}
}

/* The neighbours of each digit range, named, so a regression points at
 * the class it broke. */
static void test_hex_decode_bad_digit_classes(void **state)
{
	static const char bad[] = { ' ', '/', ':', '@', 'G', 'g', '`', '\0',
				    (char)0xff, (char)0x80, (char)0xc1, (char)0xe6,
				    '-', '+', 'x', 'X', '\n', (char)0x7f };
	uint8_t out[2];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof bad; i++) {
		char hi[2] = { bad[i], '0' }, lo[2] = { '0', bad[i] };

		if (vc_hex_decode(hi, 2, out, sizeof out, &n) != -EINVAL)
			fail_msg("0x%02x accepted as high nibble", (unsigned char)bad[i]);
		if (vc_hex_decode(lo, 2, out, sizeof out, &n) != -EINVAL)
			fail_msg("0x%02x accepted as low nibble", (unsigned char)bad[i]);
	}
	/* A bad digit at the very end of a long, otherwise valid input. */
	assert_int_equal(vc_hex_decode("00112233445566778899aabbccddeefg", 32,
				       (uint8_t[16]){ 0 }, 16, &n), -EINVAL);
}

static void test_hex_decode_nospc(void **state)
{
	uint8_t out[8];
	size_t n;

	(void)state;
	memset(out, 0xa5, sizeof out);
	assert_int_equal(vc_hex_decode("aabbcc", 6, out, 2, &n), -ENOSPC);
	/* Nothing was written past the stated capacity. */
	for (size_t i = 2; i < sizeof out; i++)
		assert_int_equal(out[i], 0xa5);
	assert_int_equal(vc_hex_decode("aa", 2, out, 0, &n), -ENOSPC);

	assert_int_equal(vc_hex_decode("aabbcc", 6, out, 3, &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\xaa\xbb\xcc", 3);
	assert_int_equal(out[3], 0xa5);
}

/* RFC 4648 section 10 test vectors. */
static const struct {
	const char *plain, *b64;
} rfc4648[] = {
	{ "", "" },
	{ "f", "Zg==" },
	{ "fo", "Zm8=" },
	{ "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" },
	{ "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void test_base64_rfc4648_encode(void **state)
{
	char out[16];

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(rfc4648); i++) {
		size_t len = strlen(rfc4648[i].plain);

		assert_int_equal(vc_base64_encoded_len(len), strlen(rfc4648[i].b64) + 1);
		memset(out, 'X', sizeof out);
		vc_base64_encode(rfc4648[i].plain, len, out);
		assert_string_equal(out, rfc4648[i].b64);
	}
}

static void test_base64_rfc4648_decode(void **state)
{
	uint8_t out[16];
	size_t n;

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(rfc4648); i++) {
		size_t len = strlen(rfc4648[i].plain);

		n = 999;
		memset(out, 0xa5, sizeof out);
		assert_int_equal(vc_base64_decode(rfc4648[i].b64, strlen(rfc4648[i].b64),
						  out, sizeof out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, rfc4648[i].plain, len);
		/* Padding bytes are not written out. */
		assert_int_equal(out[len], 0xa5);

		/* An exactly sized buffer is enough. */
		if (len) {
			assert_int_equal(vc_base64_decode(rfc4648[i].b64,
							  strlen(rfc4648[i].b64),
							  out, len, &n), 0);
			assert_int_equal(n, len);
		}
	}
}

static void test_base64_round_trip(void **state)
{
	uint32_t seed = 7;
	uint8_t in[200] = { 0 }, out[200];
	char b64[300];
	size_t n;

	(void)state;
	for (size_t len = 0; len <= sizeof in; len++) {
		for (size_t i = 0; i < len; i++)
			in[i] = next_byte(&seed);
		assert_true(vc_base64_encoded_len(len) <= sizeof b64);
		vc_base64_encode(in, len, b64);
		assert_int_equal(strlen(b64) + 1, vc_base64_encoded_len(len));
		assert_int_equal(vc_base64_decode(b64, strlen(b64), out, sizeof out, &n), 0);
		assert_int_equal(n, len);
		assert_memory_equal(out, in, len);
	}
}

static void test_base64_bad_input(void **state)
{
	static const struct {
		const char *s;
		size_t len; /* 0: strlen(s) */
	} bad[] = {
		{ "Zg=", 0 },        /* not a multiple of 4 */
		{ "Zm9vY", 0 },
		{ "Z", 0 },
		{ "Zm9v\n", 0 },     /* whitespace is not allowed */
		{ "Zm9v\n\n\n\n", 0 },
		{ "    Zm9v", 0 },
		{ "Zm 9", 0 },
		{ "Zm9v Zm9v  ", 0 },
		{ "Zm9v!A==", 0 },   /* outside the alphabet */
		{ "Zm-v", 0 },       /* base64url alphabet */
		{ "Zm_v", 0 },
		{ "Zm9\x80", 0 },
		{ "Zm9\0", 4 },
		{ "Z=m9", 0 },       /* padding only at the end */
		{ "=Zm9", 0 },
		{ "Zg==Zm9v", 0 },
		{ "Zm9vYg=a", 0 },
		{ "Z===", 0 },
		{ "====", 0 },
	};
	uint8_t out[32];
	size_t n, accepted = 0;

	(void)state;
	/* Report every accepted input before failing, not just the first. */
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].s);
		int r;

		n = 0;
		r = vc_base64_decode(bad[i].s, len, out, sizeof out, &n);
		if (r != -EINVAL) {
			print_error("bad base64 #%zu \"%s\": returned %d (%zu bytes)\n",
				    i, bad[i].s, r, n);
			accepted++;
		}
	}
	assert_int_equal(accepted, 0);
}

static void test_base64_nospc(void **state)
{
	uint8_t out[8];
	size_t n;

	(void)state;
	memset(out, 0xa5, sizeof out);
	assert_int_equal(vc_base64_decode("Zm9vYmFy", 8, out, 5, &n), -ENOSPC);
	for (size_t i = 0; i < sizeof out; i++)
		assert_int_equal(out[i], 0xa5);
	assert_int_equal(vc_base64_decode("Zm9vYmE=", 8, out, 4, &n), -ENOSPC);
	assert_int_equal(vc_base64_decode("Zm9vYmE=", 8, out, 5, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(out, "fooba", 5);
	assert_int_equal(out[5], 0xa5);
}

/* RFC 4648 section 3.5: the unused bits before padding must be zero, so
 * each value has one spelling. */
static void test_base64_canonical(void **state)
{
	static const char *const bad[] = { "Zh==", "Zm9=", "Zn==", "Zm8/Zh==" };
	uint8_t out[8];
	size_t n;

	(void)state;
	assert_int_equal(vc_base64_decode("Zg==", 4, out, sizeof out, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], 'f');
	assert_int_equal(vc_base64_decode("Zm8=", 4, out, sizeof out, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(vc_base64_decode(bad[i], strlen(bad[i]), out, sizeof out, &n),
				 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_encode_known),
		cmocka_unit_test(test_hex_encode_all_bytes),
		cmocka_unit_test(test_hex_decode_known),
		cmocka_unit_test(test_hex_decode_all_digit_pairs),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_hex_decode_odd_length),
		cmocka_unit_test(test_hex_decode_every_bad_byte),
		cmocka_unit_test(test_hex_decode_bad_digit_classes),
		cmocka_unit_test(test_hex_decode_nospc),
		cmocka_unit_test(test_base64_rfc4648_encode),
		cmocka_unit_test(test_base64_rfc4648_decode),
		cmocka_unit_test(test_base64_round_trip),
		cmocka_unit_test(test_base64_bad_input),
		cmocka_unit_test(test_base64_nospc),
		cmocka_unit_test(test_base64_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
