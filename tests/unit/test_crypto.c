/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_crypto: FIPS 180, RFC 4231 and RFC 5869 vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vc_crypto.h"
#include "vc_encode.h"

/* Decode a hex literal from a test vector; the tests own the buffer. */
static uint8_t *unhex(const char *hex, size_t *len)
{
	size_t n = strlen(hex) / 2, got = 0;
	uint8_t *out = malloc(n ? n : 1);

	assert_non_null(out);
	assert_int_equal(vc_hex_decode(hex, strlen(hex), out, n, &got), 0);
	assert_int_equal(got, n);
	*len = n;
	return out;
}

static void assert_hex_equal(const uint8_t *got, size_t len, const char *want_hex)
{
	size_t n;
	uint8_t *want = unhex(want_hex, &n);

	assert_int_equal(n, len);
	assert_memory_equal(got, want, len);
	free(want);
}

static void fill(uint8_t *p, size_t len, uint8_t v)
{
	memset(p, v, len);
}

/* FIPS 180-2 appendix B.1 and B.2. */
static void test_sha256_fips180(void **state)
{
	uint8_t md[VC_SHA256_LEN];
	static const char two_block[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

	(void)state;
	assert_int_equal(vc_sha256("abc", 3, md, NULL), 0);
	assert_hex_equal(md, sizeof md,
			 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(vc_sha256(two_block, strlen(two_block), md, NULL), 0);
	assert_hex_equal(md, sizeof md,
			 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

/* RFC 4231 section 4. Test case 5 (truncated output) does not apply: the
 * API always returns the full 32 bytes. */
static void test_hmac_rfc4231(void **state)
{
	uint8_t key[131], data[50], mac[VC_SHA256_LEN];
	static const char tc6[] =
		"Test Using Larger Than Block-Size Key - Hash Key First";
	static const char tc7[] =
		"This is a test using a larger than block-size key and a larger "
		"than block-size data. The key needs to be hashed before being "
		"used by the HMAC algorithm.";

	(void)state;
	/* Test case 1 */
	fill(key, 20, 0x0b);
	assert_int_equal(vc_hmac_sha256(key, 20, "Hi There", 8, mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

	/* Test case 2: a key shorter than the output */
	assert_int_equal(vc_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28,
					mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

	/* Test case 3 */
	fill(key, 20, 0xaa);
	fill(data, 50, 0xdd);
	assert_int_equal(vc_hmac_sha256(key, 20, data, 50, mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

	/* Test case 4 */
	for (int i = 0; i < 25; i++)
		key[i] = (uint8_t)(i + 1);
	fill(data, 50, 0xcd);
	assert_int_equal(vc_hmac_sha256(key, 25, data, 50, mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

	/* Test case 6: a key longer than the block size */
	fill(key, 131, 0xaa);
	assert_int_equal(vc_hmac_sha256(key, 131, tc6, strlen(tc6), mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

	/* Test case 7: key and data longer than the block size */
	assert_int_equal(vc_hmac_sha256(key, 131, tc7, strlen(tc7), mac, NULL), 0);
	assert_hex_equal(mac, sizeof mac,
			 "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

/* Keys and messages are not confused: changing either changes the MAC. */
static void test_hmac_sensitivity(void **state)
{
	uint8_t a[VC_SHA256_LEN], b[VC_SHA256_LEN];

	(void)state;
	assert_int_equal(vc_hmac_sha256("key", 3, "msg", 3, a, NULL), 0);
	assert_int_equal(vc_hmac_sha256("kez", 3, "msg", 3, b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
	assert_int_equal(vc_hmac_sha256("key", 3, "msh", 3, b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
	assert_int_equal(vc_hmac_sha256("msg", 3, "key", 3, b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
}

struct hkdf_case {
	const char *ikm, *salt, *info, *okm;
};

/* RFC 5869 appendix A.1 - A.3 (SHA-256). */
static const struct hkdf_case rfc5869[] = {
	{ "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
	  "000102030405060708090a0b0c",
	  "f0f1f2f3f4f5f6f7f8f9",
	  "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	  "34007208d5b887185865" },
	{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	  "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	  "404142434445464748494a4b4c4d4e4f",
	  "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	  "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	  "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	  "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	  "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	  "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	  "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
	  "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
	  "cc30c58179ec3e87c14c01d5c1f3434f1d87" },
	{ "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
	  "",
	  "",
	  "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	  "9d201395faa4b61a96c8" },
};

static void test_hkdf_rfc5869(void **state)
{
	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(rfc5869); i++) {
		size_t ikmlen, saltlen, infolen, okmlen;
		uint8_t *ikm = unhex(rfc5869[i].ikm, &ikmlen);
		uint8_t *salt = unhex(rfc5869[i].salt, &saltlen);
		uint8_t *info = unhex(rfc5869[i].info, &infolen);
		uint8_t *okm = unhex(rfc5869[i].okm, &okmlen);
		uint8_t out[128];

		memset(out, 0xa5, sizeof out);
		assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
						out, okmlen, NULL), 0);
		assert_memory_equal(out, okm, okmlen);
		/* Exactly outlen bytes are written. */
		assert_int_equal(out[okmlen], 0xa5);

		/* Test case 3's empty salt is the same as no salt pointer. */
		if (saltlen == 0) {
			memset(out, 0, sizeof out);
			assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, NULL, 0, NULL, 0,
							out, okmlen, NULL), 0);
			assert_memory_equal(out, okm, okmlen);
		}
		free(ikm);
		free(salt);
		free(info);
		free(okm);
	}
}

/* The inputs are separate: moving bytes between salt and info changes
 * the output. */
static void test_hkdf_inputs_distinct(void **state)
{
	uint8_t a[32], b[32];

	(void)state;
	assert_int_equal(vc_hkdf_sha256("ikm", 3, "ab", 2, "c", 1, a, sizeof a, NULL), 0);
	assert_int_equal(vc_hkdf_sha256("ikm", 3, "a", 1, "bc", 2, b, sizeof b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
	assert_int_equal(vc_hkdf_sha256("ikm", 3, "c", 1, "ab", 2, b, sizeof b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
	assert_int_equal(vc_hkdf_sha256("ikn", 3, "ab", 2, "c", 1, b, sizeof b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
}

static void test_hkdf_length_limits(void **state)
{
	struct vc_error err = { 0 };
	size_t ikmlen, saltlen, infolen, okmlen;
	uint8_t *ikm = unhex(rfc5869[0].ikm, &ikmlen);
	uint8_t *salt = unhex(rfc5869[0].salt, &saltlen);
	uint8_t *info = unhex(rfc5869[0].info, &infolen);
	uint8_t *okm = unhex(rfc5869[0].okm, &okmlen);
	uint8_t *out = malloc(8161 + 16);

	(void)state;
	assert_non_null(out);
	memset(out, 0xa5, 8161 + 16);
	assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
					out, 0, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_true(strlen(err.msg) > 0);

	vc_error_clear(&err);
	assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
					out, 8161, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
	assert_true(strlen(err.msg) > 0);
	/* A rejected request writes nothing. */
	for (size_t i = 0; i < 8161 + 16; i++)
		assert_int_equal(out[i], 0xa5);

	/* 255 * 32 is the RFC 5869 maximum and must work; HKDF-Expand's
	 * output for a longer L starts with the output for a shorter one. */
	assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
					out, 8160, NULL), 0);
	assert_memory_equal(out, okm, okmlen);
	assert_int_equal(out[8160], 0xa5);

	assert_int_equal(vc_hkdf_sha256(ikm, ikmlen, salt, saltlen, info, infolen,
					out, 1, NULL), 0);
	assert_int_equal(out[0], okm[0]);

	free(out);
	free(ikm);
	free(salt);
	free(info);
	free(okm);
}

static void test_random_bytes(void **state)
{
	uint8_t a[32], b[32], zero[32] = { 0 };
	static uint8_t big[1 << 16];
	size_t ones = 0;

	(void)state;
	memset(a, 0, sizeof a);
	memset(b, 0, sizeof b);
	assert_int_equal(vc_random_bytes(a, sizeof a, NULL), 0);
	assert_int_equal(vc_random_bytes(b, sizeof b, NULL), 0);
	assert_memory_not_equal(a, b, sizeof a);
	assert_memory_not_equal(a, zero, sizeof a);
	assert_memory_not_equal(b, zero, sizeof b);

	/* A gross sanity check on the bit balance (mean 262144, sd 362):
	 * catches a constant or mostly-zero buffer, never a real RNG. */
	assert_int_equal(vc_random_bytes(big, sizeof big, NULL), 0);
	for (size_t i = 0; i < sizeof big; i++)
		ones += (size_t)__builtin_popcount(big[i]);
	assert_in_range(ones, 262144 - 5000, 262144 + 5000);

	assert_int_equal(vc_random_bytes(a, 0, NULL), 0);
}

static void test_random_too_large(void **state)
{
	struct vc_error err = { 0 };
	uint8_t buf[16];

	(void)state;
	/* Rejected before anything is written, so a small buffer is safe. */
	assert_int_equal(vc_random_bytes(buf, (size_t)INT32_MAX + 1, &err), -EINVAL);
	assert_int_equal(err.code, -EINVAL);
}

static void test_random_secret(void **state)
{
	struct vc_secret *a = NULL, *b = NULL;

	(void)state;
	assert_int_equal(vc_random_secret(64, &a, NULL), 0);
	assert_int_equal(vc_random_secret(64, &b, NULL), 0);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(vc_secret_len(a), 64);
	assert_memory_not_equal(vc_secret_data(a), vc_secret_data(b), 64);
	vc_secret_free(a);
	vc_secret_free(b);

	a = (struct vc_secret *)(uintptr_t)1; /* must be reset on failure */
	assert_true(vc_random_secret(0, &a, NULL) < 0);
	assert_null(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_fips180),
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_hmac_sensitivity),
		cmocka_unit_test(test_hkdf_rfc5869),
		cmocka_unit_test(test_hkdf_inputs_distinct),
		cmocka_unit_test(test_hkdf_length_limits),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_random_too_large),
		cmocka_unit_test(test_random_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
