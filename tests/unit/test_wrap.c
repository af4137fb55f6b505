/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_wrap: AES-256-GCM key wrapping bound to its purpose. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "vc_crypto.h"
#include "vc_wrap.h"

static const uint8_t object_a[16] = { 0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
				      0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8 };

static struct vc_binding binding(void)
{
	return (struct vc_binding){
		.format = "vmcrypt-disk-dek/1",
		.object = object_a,
		.provider = "native",
		.key_id = "kek-0001",
		.generation = 7,
	};
}

static struct vc_secret *random_secret(size_t len)
{
	struct vc_secret *s = NULL;

	assert_int_equal(vc_random_secret(len, &s, NULL), 0);
	return s;
}

static void expect_rejected(const struct vc_secret *kek, const struct vc_binding *b,
			    const uint8_t *in, size_t inlen, const char *what)
{
	struct vc_error err = { 0 };
	struct vc_secret *out = (struct vc_secret *)(uintptr_t)1;
	int r = vc_unwrap_key(kek, b, in, inlen, &out, &err);

	if (r != -EKEYREJECTED)
		fail_msg("%s: expected -EKEYREJECTED, got %d (%s)", what, r, err.msg);
	assert_null(out);
	assert_int_equal(err.code, -EKEYREJECTED);
	if (!strstr(err.msg, "does not authenticate"))
		fail_msg("%s: unexpected message: %s", what, err.msg);
}

static void round_trip(size_t keylen)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(keylen);
	struct vc_secret *back = NULL;
	struct vc_binding b = binding();
	uint8_t wrapped[128 + VC_WRAP_OVERHEAD];
	size_t n = 0;

	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	assert_int_equal(n, keylen + VC_WRAP_OVERHEAD);
	/* The key does not appear in the clear. */
	assert_null(memmem(wrapped, n, vc_secret_data(key), 8));

	assert_int_equal(vc_unwrap_key(kek, &b, wrapped, n, &back, NULL), 0);
	assert_non_null(back);
	assert_int_equal(vc_secret_len(back), keylen);
	assert_memory_equal(vc_secret_data(back), vc_secret_data(key), keylen);
	vc_secret_free(back);
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void test_round_trip_32(void **state)
{
	(void)state;
	round_trip(32);
}

static void test_round_trip_64(void **state)
{
	(void)state;
	round_trip(64);
}

/* The wrapped form is what vc_wrap.h documents: nonce || ciphertext ||
 * tag, AES-256-GCM with the encoded binding as associated data. Opened
 * here with OpenSSL directly, so a layout change cannot go unnoticed by
 * round trips alone. */
static void test_wrapped_layout(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(64);
	struct vc_binding b = binding();
	uint8_t wrapped[64 + VC_WRAP_OVERHEAD], ad[VC_WRAP_AD_MAX], plain[64 + 16];
	size_t n, adlen;
	EVP_CIPHER_CTX *ctx;
	int outl, fin;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	assert_int_equal(vc_binding_encode(&b, ad, sizeof ad, &adlen, NULL), 0);
	ctx = EVP_CIPHER_CTX_new();
	assert_non_null(ctx);
	assert_int_equal(EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, VC_WRAP_NONCE_LEN,
					     NULL), 1);
	assert_int_equal(EVP_DecryptInit_ex(ctx, NULL, NULL, vc_secret_data(kek), wrapped), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, NULL, &outl, ad, (int)adlen), 1);
	assert_int_equal(EVP_DecryptUpdate(ctx, plain, &outl, wrapped + VC_WRAP_NONCE_LEN, 64), 1);
	assert_int_equal(outl, 64);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, VC_WRAP_TAG_LEN,
					     wrapped + VC_WRAP_NONCE_LEN + 64), 1);
	fin = EVP_DecryptFinal_ex(ctx, plain + outl, &outl);
	EVP_CIPHER_CTX_free(ctx);
	assert_int_equal(fin, 1);
	assert_memory_equal(plain, vc_secret_data(key), 64);
	vc_secret_free(key);
	vc_secret_free(kek);
}

/* Any change to any bit of the wrapped blob is detected. */
static void test_tamper_every_bit(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(64);
	struct vc_binding b = binding();
	uint8_t wrapped[64 + VC_WRAP_OVERHEAD];
	size_t n;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	for (size_t i = 0; i < n; i++) {
		for (int bit = 0; bit < 8; bit++) {
			char what[64];

			wrapped[i] ^= (uint8_t)(1u << bit);
			snprintf(what, sizeof what, "byte %zu bit %d flipped", i, bit);
			expect_rejected(kek, &b, wrapped, n, what);
			wrapped[i] ^= (uint8_t)(1u << bit);
		}
		/* And a whole-byte change. */
		wrapped[i] ^= 0xff;
		expect_rejected(kek, &b, wrapped, n, "byte inverted");
		wrapped[i] ^= 0xff;
	}
	/* Untouched, it still unwraps: the failures were the tampering. */
	{
		struct vc_secret *back = NULL;

		assert_int_equal(vc_unwrap_key(kek, &b, wrapped, n, &back, NULL), 0);
		vc_secret_free(back);
	}
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void test_binding_fields_bound(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(64);
	struct vc_binding b = binding(), c;
	uint8_t wrapped[64 + VC_WRAP_OVERHEAD], other[16];
	size_t n;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);

	c = b;
	c.format = "vmcrypt-disk-dek/2";
	expect_rejected(kek, &c, wrapped, n, "format");
	c = b;
	c.format = "vmcrypt-vm-key/1";
	expect_rejected(kek, &c, wrapped, n, "format");

	for (size_t i = 0; i < sizeof other; i++) {
		c = b;
		memcpy(other, object_a, sizeof other);
		other[i] ^= 0x01;
		c.object = other;
		expect_rejected(kek, &c, wrapped, n, "object");
	}

	c = b;
	c.provider = "native2";
	expect_rejected(kek, &c, wrapped, n, "provider");
	c = b;
	c.provider = "";
	expect_rejected(kek, &c, wrapped, n, "provider");

	c = b;
	c.key_id = "kek-0002";
	expect_rejected(kek, &c, wrapped, n, "key id");
	c = b;
	c.key_id = "kek-000";
	expect_rejected(kek, &c, wrapped, n, "key id");

	/* Every bit of the 64-bit generation counts, not just the low ones. */
	for (int bit = 0; bit < 64; bit++) {
		c = b;
		c.generation ^= (uint64_t)1 << bit;
		expect_rejected(kek, &c, wrapped, n, "generation");
	}
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void test_wrong_kek(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(32);
	struct vc_secret *other = random_secret(VC_KEK_LEN), *near;
	struct vc_binding b = binding();
	uint8_t wrapped[32 + VC_WRAP_OVERHEAD];
	size_t n;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	expect_rejected(other, &b, wrapped, n, "unrelated KEK");
	/* One bit off, at each end of the KEK. */
	assert_int_equal(vc_secret_from_bytes(vc_secret_data(kek), VC_KEK_LEN, &near, NULL), 0);
	vc_secret_data(near)[0] ^= 0x80;
	expect_rejected(near, &b, wrapped, n, "KEK bit 7 of byte 0");
	vc_secret_data(near)[0] ^= 0x80;
	vc_secret_data(near)[VC_KEK_LEN - 1] ^= 0x01;
	expect_rejected(near, &b, wrapped, n, "KEK bit 0 of byte 31");
	vc_secret_free(near);
	vc_secret_free(other);
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void test_kek_wrong_length(void **state)
{
	static const size_t lens[] = { 16, 24, 31, 33, 64 };
	struct vc_secret *good = random_secret(VC_KEK_LEN), *key = random_secret(32);
	struct vc_binding b = binding();
	uint8_t wrapped[32 + VC_WRAP_OVERHEAD];
	size_t n;

	(void)state;
	assert_int_equal(vc_wrap_key(good, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	for (size_t i = 0; i < VC_ARRAY_SIZE(lens); i++) {
		struct vc_secret *kek = random_secret(lens[i]), *out;
		struct vc_error err = { 0 };
		uint8_t buf[32 + VC_WRAP_OVERHEAD];
		size_t m;

		/* A prefix of the right KEK, so only the length is wrong. */
		memcpy(vc_secret_data(kek), vc_secret_data(good),
		       lens[i] < VC_KEK_LEN ? lens[i] : VC_KEK_LEN);
		assert_int_equal(vc_wrap_key(kek, &b, key, buf, sizeof buf, &m, &err), -EINVAL);
		assert_int_equal(err.code, -EINVAL);
		out = (struct vc_secret *)(uintptr_t)1;
		assert_int_equal(vc_unwrap_key(kek, &b, wrapped, n, &out, &err), -EINVAL);
		assert_null(out);
		vc_secret_free(kek);
	}
	vc_secret_free(key);
	vc_secret_free(good);
}

static void test_short_and_resized_input(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(32);
	struct vc_binding b = binding();
	uint8_t wrapped[33 + VC_WRAP_OVERHEAD];
	size_t n;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, NULL), 0);
	/* Too short to hold nonce, a key and tag. */
	for (size_t len = 0; len <= VC_WRAP_OVERHEAD; len++) {
		struct vc_secret *out = (struct vc_secret *)(uintptr_t)1;
		struct vc_error err = { 0 };
		int r = vc_unwrap_key(kek, &b, wrapped, len, &out, &err);

		if (r >= 0)
			fail_msg("%zu-byte wrapped key accepted", len);
		assert_null(out);
		assert_true(strlen(err.msg) > 0);
	}
	/* Truncated or extended by a byte: a different split, never valid. */
	for (size_t len = n - 8; len <= n + 1; len++) {
		struct vc_secret *out = (struct vc_secret *)(uintptr_t)1;

		if (len == n)
			continue;
		wrapped[n] = 0;
		if (vc_unwrap_key(kek, &b, wrapped, len, &out, NULL) >= 0)
			fail_msg("%zu-byte prefix/extension of a %zu-byte wrapped key accepted", len, n);
		assert_null(out);
	}
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void test_wrap_outcap(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(32);
	struct vc_binding b = binding();
	uint8_t buf[32 + VC_WRAP_OVERHEAD + 8];
	size_t n;

	(void)state;
	memset(buf, 0xa5, sizeof buf);
	assert_int_equal(vc_wrap_key(kek, &b, key, buf, 32 + VC_WRAP_OVERHEAD - 1, &n, NULL),
			 -ENOSPC);
	assert_int_equal(buf[32 + VC_WRAP_OVERHEAD - 1], 0xa5);
	assert_int_equal(vc_wrap_key(kek, &b, key, buf, 32 + VC_WRAP_OVERHEAD, &n, NULL), 0);
	assert_int_equal(n, 32 + VC_WRAP_OVERHEAD);
	/* Nothing past the wrapped key. */
	for (size_t i = n; i < sizeof buf; i++)
		assert_int_equal(buf[i], 0xa5);
	vc_secret_free(key);
	vc_secret_free(kek);
}

/* A random nonce: the same key wrapped twice gives different blobs,
 * and both unwrap. */
static void test_two_wraps_differ(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(64);
	struct vc_binding b = binding();
	uint8_t w1[64 + VC_WRAP_OVERHEAD], w2[64 + VC_WRAP_OVERHEAD];
	size_t n1, n2;

	(void)state;
	assert_int_equal(vc_wrap_key(kek, &b, key, w1, sizeof w1, &n1, NULL), 0);
	assert_int_equal(vc_wrap_key(kek, &b, key, w2, sizeof w2, &n2, NULL), 0);
	assert_int_equal(n1, n2);
	assert_memory_not_equal(w1, w2, VC_WRAP_NONCE_LEN);
	assert_memory_not_equal(w1 + VC_WRAP_NONCE_LEN, w2 + VC_WRAP_NONCE_LEN,
				n1 - VC_WRAP_NONCE_LEN);
	for (int i = 0; i < 2; i++) {
		struct vc_secret *back = NULL;

		assert_int_equal(vc_unwrap_key(kek, &b, i ? w2 : w1, n1, &back, NULL), 0);
		assert_memory_equal(vc_secret_data(back), vc_secret_data(key), 64);
		vc_secret_free(back);
	}
	vc_secret_free(key);
	vc_secret_free(kek);
}

static void put_field(uint8_t *p, size_t *pos, const void *s, size_t len)
{
	p[(*pos)++] = (uint8_t)len;
	p[(*pos)++] = (uint8_t)(len >> 8);
	memcpy(p + *pos, s, len);
	*pos += len;
}

/* The encoding documented in vc_wrap.h, built here byte by byte. */
static void test_binding_encode_layout(void **state)
{
	struct vc_binding b = binding();
	uint8_t got[VC_WRAP_AD_MAX], want[VC_WRAP_AD_MAX];
	size_t n = 0, pos = 0;

	(void)state;
	b.generation = 0x0102030405060708ull;
	assert_int_equal(vc_binding_encode(&b, got, sizeof got, &n, NULL), 0);
	memcpy(want, "VCWRAP1", 8); /* with its NUL */
	pos = 8;
	put_field(want, &pos, b.format, strlen(b.format));
	put_field(want, &pos, object_a, 16);
	put_field(want, &pos, b.provider, strlen(b.provider));
	put_field(want, &pos, b.key_id, strlen(b.key_id));
	for (int i = 0; i < 8; i++)
		want[pos++] = (uint8_t)(b.generation >> (8 * i));
	assert_int_equal(n, pos);
	assert_memory_equal(got, want, pos);
}

static size_t encode(const char *format, const char *provider, const char *key_id,
		     uint8_t *out)
{
	struct vc_binding b = binding();
	size_t n = 0;

	b.format = format;
	b.provider = provider;
	b.key_id = key_id;
	assert_int_equal(vc_binding_encode(&b, out, VC_WRAP_AD_MAX, &n, NULL), 0);
	return n;
}

static bool same(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	return an == bn && memcmp(a, b, an) == 0;
}

/* Moving a boundary between adjacent strings changes the encoding. */
static void test_binding_encode_unambiguous(void **state)
{
	uint8_t a[VC_WRAP_AD_MAX], b[VC_WRAP_AD_MAX];
	size_t an, bn;

	(void)state;
	an = encode("f", "ab", "c", a);
	bn = encode("f", "a", "bc", b);
	assert_false(same(a, an, b, bn));
	bn = encode("f", "abc", "", b);
	assert_false(same(a, an, b, bn));
	bn = encode("f", "", "abc", b);
	assert_false(same(a, an, b, bn));
	/* Swapping provider and key id. */
	an = encode("f", "x", "y", a);
	bn = encode("f", "y", "x", b);
	assert_false(same(a, an, b, bn));
	/* Format and provider around the fixed-size object. */
	an = encode("fa", "b", "k", a);
	bn = encode("f", "ab", "k", b);
	assert_false(same(a, an, b, bn));
}

static void test_binding_limits(void **state)
{
	struct vc_binding b = binding(), c;
	uint8_t out[1024];
	char long_str[300];
	size_t n;

	(void)state;
	memset(long_str, 'p', sizeof long_str);
	long_str[256] = '\0';
	c = b;
	c.provider = long_str;
	assert_true(vc_binding_encode(&c, out, sizeof out, &n, NULL) < 0);
	long_str[256] = 'p';
	long_str[255] = '\0';
	assert_int_equal(vc_binding_encode(&c, out, sizeof out, &n, NULL), 0);

	/* Incomplete bindings. */
	c = b;
	c.format = NULL;
	assert_int_equal(vc_binding_encode(&c, out, sizeof out, &n, NULL), -EINVAL);
	c = b;
	c.object = NULL;
	assert_int_equal(vc_binding_encode(&c, out, sizeof out, &n, NULL), -EINVAL);
	c = b;
	c.provider = NULL;
	assert_int_equal(vc_binding_encode(&c, out, sizeof out, &n, NULL), -EINVAL);
	c = b;
	c.key_id = NULL;
	assert_int_equal(vc_binding_encode(&c, out, sizeof out, &n, NULL), -EINVAL);

	/* Too small an output buffer: an error, never an overflow. */
	for (size_t cap = 0; cap < 8 + 2 + strlen(b.format) + 18 + 2 + strlen(b.provider) +
				       2 + strlen(b.key_id) + 8; cap++) {
		memset(out, 0xa5, sizeof out);
		if (vc_binding_encode(&b, out, cap, &n, NULL) >= 0)
			fail_msg("encoding fit in %zu bytes", cap);
		assert_int_equal(out[cap], 0xa5);
	}
}

/* Every field at its documented maximum (255 bytes) must still wrap. */
static void test_wrap_max_binding(void **state)
{
	struct vc_secret *kek = random_secret(VC_KEK_LEN), *key = random_secret(32);
	struct vc_secret *back = NULL;
	struct vc_binding b = binding();
	struct vc_error err = { 0 };
	char f[256], p[256], k[256];
	uint8_t wrapped[32 + VC_WRAP_OVERHEAD];
	size_t n;
	int r;

	(void)state;
	memset(f, 'f', 255);
	memset(p, 'p', 255);
	memset(k, 'k', 255);
	f[255] = p[255] = k[255] = '\0';
	b.format = f;
	b.provider = p;
	b.key_id = k;
	r = vc_wrap_key(kek, &b, key, wrapped, sizeof wrapped, &n, &err);
	if (r == 0)
		r = vc_unwrap_key(kek, &b, wrapped, n, &back, &err);
	if (r == 0 && memcmp(vc_secret_data(back), vc_secret_data(key), 32) != 0)
		r = 1;
	vc_secret_free(back);
	vc_secret_free(key);
	vc_secret_free(kek);
	if (r != 0)
		fail_msg("wrap/unwrap with 255-byte fields failed: %d %s", r, err.msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_32),
		cmocka_unit_test(test_round_trip_64),
		cmocka_unit_test(test_wrapped_layout),
		cmocka_unit_test(test_tamper_every_bit),
		cmocka_unit_test(test_binding_fields_bound),
		cmocka_unit_test(test_wrong_kek),
		cmocka_unit_test(test_kek_wrong_length),
		cmocka_unit_test(test_short_and_resized_input),
		cmocka_unit_test(test_wrap_outcap),
		cmocka_unit_test(test_two_wraps_differ),
		cmocka_unit_test(test_binding_encode_layout),
		cmocka_unit_test(test_binding_encode_unambiguous),
		cmocka_unit_test(test_binding_limits),
		cmocka_unit_test(test_wrap_max_binding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
