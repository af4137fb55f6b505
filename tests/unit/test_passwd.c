/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_passwd: scrypt hash format and verification, strict
 * parsing, rehash hints, session tokens and generated passwords. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "vc_encode.h"
#include "vc_passwd.h"

static const struct vc_passwd_cost fast = { 10, 8, 1 };

static struct vc_secret *pw(const char *s)
{
	struct vc_secret *out = NULL;

	assert_int_equal(vc_secret_from_bytes(s, strlen(s), &out, NULL), 0);
	return out;
}

static char *hash_fast(const char *password)
{
	struct vc_secret *p = pw(password);
	struct vc_error err = { 0 };
	char *enc = NULL;

	assert_int_equal(vc_passwd_hash(p, &fast, &enc, &err), 0);
	assert_non_null(enc);
	vc_secret_free(p);
	return enc;
}

static int verify(const char *password, const char *enc, bool *rehash)
{
	struct vc_secret *p = pw(password);
	struct vc_error err = { 0 };
	int r = vc_passwd_verify(p, enc, rehash, &err);

	if (r < 0)
		assert_int_equal(err.code, r);
	vc_secret_free(p);
	return r;
}

/* Independent oracle: the raw scrypt output for a password and salt. */
static void oracle(const char *password, const uint8_t *salt, size_t saltlen,
		   unsigned ln, unsigned r, unsigned p, uint8_t *out,
		   size_t outlen)
{
	assert_int_equal(EVP_PBE_scrypt(password, strlen(password), salt,
					saltlen, (uint64_t)1 << ln, r, p,
					(uint64_t)1 << 30, out, outlen), 1);
}

/* The oracle itself against RFC 7914 section 12, vector 2 (first 32
 * bytes; scrypt's final PBKDF2 makes the prefix independent of dkLen). */
static void test_oracle_rfc7914(void **state)
{
	static const uint8_t want[32] = {
		0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00,
		0x78, 0x56, 0xe7, 0x19, 0x0d, 0x01, 0xe9, 0xfe,
		0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23, 0x78, 0x30,
		0xe7, 0x73, 0x76, 0x63, 0x4b, 0x37, 0x31, 0x62,
	};
	uint8_t got[32];

	(void)state;
	oracle("password", (const uint8_t *)"NaCl", 4, 10, 8, 16, got, 32);
	assert_memory_equal(got, want, 32);
}

/* Split an encoded string with sscanf, independently of the parser. */
static void split(const char *enc, unsigned *ln, unsigned *r, unsigned *p,
		  uint8_t salt[16], uint8_t hash[32])
{
	char s64[64], h64[64];
	size_t n;

	assert_int_equal(sscanf(enc, "$scrypt$ln=%u,r=%u,p=%u$%63[^$]$%63s",
				ln, r, p, s64, h64), 5);
	assert_int_equal(strlen(s64), 24);
	assert_int_equal(strlen(h64), 44);
	assert_int_equal(vc_base64_decode(s64, 24, salt, 16, &n), 0);
	assert_int_equal(n, 16);
	assert_int_equal(vc_base64_decode(h64, 44, hash, 32, &n), 0);
	assert_int_equal(n, 32);
}

static void test_hash_format_matches_oracle(void **state)
{
	char *enc = hash_fast("correct horse battery staple");
	unsigned ln, r, p;
	uint8_t salt[16], hash[32], want[32];

	(void)state;
	assert_int_equal(strncmp(enc, "$scrypt$ln=10,r=8,p=1$", 22), 0);
	split(enc, &ln, &r, &p, salt, hash);
	assert_int_equal(ln, 10);
	assert_int_equal(r, 8);
	assert_int_equal(p, 1);
	oracle("correct horse battery staple", salt, 16, ln, r, p, want, 32);
	assert_memory_equal(hash, want, 32);
	free(enc);
}

static void test_round_trip_and_wrong(void **state)
{
	char *enc = hash_fast("s3cret pass");
	bool rehash = true;

	(void)state;
	assert_int_equal(verify("s3cret pass", enc, &rehash), 0);
	assert_int_equal(verify("s3cret pass", enc, NULL), 0);
	rehash = true;
	assert_int_equal(verify("s3cret pasS", enc, &rehash), -EACCES);
	assert_false(rehash);
	assert_int_equal(verify("s3cret pass ", enc, NULL), -EACCES);
	assert_int_equal(verify("s3cret pas", enc, NULL), -EACCES);
	assert_int_equal(verify("x", enc, NULL), -EACCES);
	free(enc);
}

static void test_default_cost(void **state)
{
	struct vc_secret *p = pw("default cost password");
	char *enc = NULL;
	bool rehash = true;

	(void)state;
	assert_int_equal(vc_passwd_hash(p, NULL, &enc, NULL), 0);
	assert_int_equal(strncmp(enc, "$scrypt$ln=15,r=8,p=1$", 22), 0);
	assert_int_equal(vc_passwd_verify(p, enc, &rehash, NULL), 0);
	assert_false(rehash);
	vc_secret_free(p);
	assert_int_equal(verify("default cost passwore", enc, NULL), -EACCES);
	free(enc);
}

static void test_salt_differs(void **state)
{
	char *a = hash_fast("same"), *b = hash_fast("same");

	(void)state;
	assert_string_not_equal(a, b);
	/* The salt field (after the parameters) differs, not just the hash. */
	assert_memory_not_equal(a + 22, b + 22, 24);
	assert_int_equal(verify("same", a, NULL), 0);
	assert_int_equal(verify("same", b, NULL), 0);
	free(a);
	free(b);
}

static void test_password_length_limits(void **state)
{
	static char big[1026];
	struct vc_secret *p;
	char *enc = NULL, *stored;

	(void)state;
	memset(big, 'a', 1025);
	p = pw(big);   /* 1025 bytes */
	assert_int_equal(vc_passwd_hash(p, &fast, &enc, NULL), -EINVAL);
	assert_null(enc);
	stored = hash_fast("a");
	assert_int_equal(vc_passwd_verify(p, stored, NULL, NULL), -EACCES);
	vc_secret_free(p);
	assert_int_equal(verify("a", stored, NULL), 0);
	free(stored);

	big[1024] = '\0';   /* 1024 bytes: the maximum */
	stored = hash_fast(big);
	assert_int_equal(verify(big, stored, NULL), 0);
	free(stored);
}

static void test_bad_cost_rejected(void **state)
{
	static const struct vc_passwd_cost bad[] = {
		{ 9, 8, 1 }, { 21, 1, 1 }, { 10, 0, 1 }, { 10, 33, 1 },
		{ 10, 8, 0 }, { 10, 8, 17 },
		{ 20, 2, 1 },   /* 256 MiB + a little */
		{ 17, 8, 5 },   /* memory fine, work 5 * 2^20 */
	};
	struct vc_secret *p = pw("pw");

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
		char *enc = NULL;
		struct vc_error err = { 0 };

		assert_int_equal(vc_passwd_hash(p, &bad[i], &enc, &err), -EINVAL);
		assert_null(enc);
		assert_int_equal(err.code, -EINVAL);
	}
	vc_secret_free(p);
}

/* Build a stored string by hand with the oracle, then verify it. */
static char *forge(const char *password, unsigned ln, unsigned r, unsigned p)
{
	uint8_t salt[16], hash[32];
	char s64[25], h64[45], *out = malloc(160);

	assert_non_null(out);
	for (int i = 0; i < 16; i++)
		salt[i] = (uint8_t)(i * 37 + 5);
	oracle(password, salt, 16, ln, r, p, hash, 32);
	vc_base64_encode(salt, 16, s64);
	vc_base64_encode(hash, 32, h64);
	snprintf(out, 160, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", ln, r, p, s64, h64);
	return out;
}

static void test_needs_rehash(void **state)
{
	static const struct {
		unsigned ln, r, p;
		bool rehash;
	} cases[] = {
		{ 10, 8, 1, true },    /* N below default */
		{ 15, 4, 1, true },    /* r below default */
		{ 14, 16, 1, true },   /* same memory, N still below */
		{ 15, 8, 1, false },   /* the default */
		{ 16, 8, 1, false },   /* stronger: kept */
		{ 15, 8, 2, false },
	};

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(cases); i++) {
		char *enc = forge("pw", cases[i].ln, cases[i].r, cases[i].p);
		bool rehash = !cases[i].rehash;

		assert_int_equal(verify("pw", enc, &rehash), 0);
		assert_int_equal(rehash, cases[i].rehash);
		rehash = true;
		assert_int_equal(verify("pW", enc, &rehash), -EACCES);
		assert_false(rehash);
		free(enc);
	}
}

static char *replace(const char *s, const char *from, const char *to)
{
	const char *at = strstr(s, from);
	size_t n = strlen(s) + strlen(to) + 1;
	char *out = malloc(n);

	assert_non_null(at);
	assert_non_null(out);
	snprintf(out, n, "%.*s%s%s", (int)(at - s), s, to, at + strlen(from));
	return out;
}

static void expect_malformed(const char *enc)
{
	bool rehash = true;

	assert_int_equal(verify("pw", enc, &rehash), -EINVAL);
	assert_false(rehash);
	assert_int_equal(verify("other", enc, NULL), -EINVAL);
}

static void test_malformed(void **state)
{
	char *good = hash_fast("pw");
	const char *salt = good + 22, *hash = good + 22 + 25;
	char salt64[25], hash64[45], buf[256];
	static const char *params[] = {
		"ln=9,r=8,p=1", "ln=21,r=1,p=1", "ln=99999999999999999999,r=8,p=1",
		"ln=4294967306,r=8,p=1", "ln=010,r=8,p=1", "ln=+10,r=8,p=1",
		"ln=-1,r=8,p=1", "ln=,r=8,p=1", "ln= 10,r=8,p=1", "ln=10,r=0,p=1",
		"ln=10,r=33,p=1", "ln=10,r=8,p=0", "ln=10,r=8,p=17",
		"ln=20,r=2,p=1", "ln=17,r=8,p=5", "ln=10,r=8", "ln=10,p=1,r=8",
		"ln=10,r=8,p=1,x=1", "ln=10;r=8;p=1", "LN=10,r=8,p=1",
		"ln=10,r=8,p=1 ", "ln=10x,r=8,p=1", "",
	};

	(void)state;
	memcpy(salt64, salt, 24);
	salt64[24] = '\0';
	memcpy(hash64, hash, 44);
	hash64[44] = '\0';
	assert_int_equal(hash[-1], '$');
	/* The pieces reassembled are accepted: mutations are the only cause. */
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", salt64, hash64);
	assert_int_equal(verify("pw", buf, NULL), 0);

	for (size_t i = 0; i < VC_ARRAY_SIZE(params); i++) {
		snprintf(buf, sizeof buf, "$scrypt$%s$%s$%s", params[i], salt64,
			 hash64);
		expect_malformed(buf);
	}

	/* Missing or extra parts, wrong scheme, trailing junk. */
	expect_malformed("");
	expect_malformed("$scrypt$");
	assert_int_equal(verify("pw", NULL, NULL), -EINVAL);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s", salt64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$", salt64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s", hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$$%s", hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s$", salt64, hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s$x", salt64, hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "%s\n", good);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "%sAAAA", good);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, " %s", good);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s$%s", salt64,
		 salt64, hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$script$ln=10,r=8,p=1$%s$%s", salt64, hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "scrypt$ln=10,r=8,p=1$%s$%s", salt64, hash64);
	expect_malformed(buf);
	snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", hash64, salt64);
	expect_malformed(buf);

	/* Bad base64 in each field. */
	{
		char s[25], h[45];

		memcpy(s, salt64, sizeof s);
		s[3] = '!';
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", s, hash64);
		expect_malformed(buf);
		memcpy(s, salt64, sizeof s);
		s[21] = 'B';   /* low bits that fall off the end: not canonical */
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", s, hash64);
		expect_malformed(buf);
		memcpy(s, salt64, sizeof s);
		s[22] = 'A';   /* padding replaced: 17 bytes, wrong length */
		s[23] = 'A';
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", s, hash64);
		expect_malformed(buf);
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%.22s$%s",
			 salt64, hash64);   /* unpadded */
		expect_malformed(buf);

		memcpy(h, hash64, sizeof h);
		h[10] = '*';
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", salt64, h);
		expect_malformed(buf);
		memcpy(h, hash64, sizeof h);
		h[42] = (char)(h[42] == 'B' ? 'C' : 'B');   /* not canonical */
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s", salt64, h);
		expect_malformed(buf);
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%.43s",
			 salt64, hash64);
		expect_malformed(buf);
		snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%.40s",
			 salt64, hash64);
		expect_malformed(buf);
		memcpy(h, hash64, sizeof h);
		for (int i = 0; i < 44; i++)
			h[i] = h[i] == '+' ? '-' : h[i] == '/' ? '_' : h[i];
		if (strcmp(h, hash64) != 0) {   /* URL-safe alphabet refused */
			snprintf(buf, sizeof buf, "$scrypt$ln=10,r=8,p=1$%s$%s",
				 salt64, h);
			expect_malformed(buf);
		}
	}

	/* A huge string is refused without being scanned to the end. */
	{
		size_t n = 1 << 20;
		char *huge = malloc(n + 1);

		assert_non_null(huge);
		memcpy(huge, good, strlen(good));
		memset(huge + strlen(good), 'A', n - strlen(good));
		huge[n] = '\0';
		expect_malformed(huge);
		free(huge);
	}

	{
		char *x = replace(good, "ln=10", "ln=11");

		/* Well-formed but different cost: a mismatch, not malformed. */
		assert_int_equal(verify("pw", x, NULL), -EACCES);
		free(x);
	}
	free(good);
}

/* A stored hash that differs from the right one in any single byte is a
 * mismatch: the comparison covers all 32 bytes. */
static void test_every_hash_byte_compared(void **state)
{
	char *good = hash_fast("pw"), buf[256], s64[25], h64[45];
	unsigned ln, r, p;
	uint8_t salt[16], hash[32];

	(void)state;
	split(good, &ln, &r, &p, salt, hash);
	vc_base64_encode(salt, 16, s64);
	for (int i = 0; i < 32; i++) {
		hash[i] ^= 0x01;
		vc_base64_encode(hash, 32, h64);
		snprintf(buf, sizeof buf, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", ln,
			 r, p, s64, h64);
		assert_int_equal(verify("pw", buf, NULL), -EACCES);
		hash[i] ^= 0x01;
	}
	vc_base64_encode(hash, 32, h64);
	snprintf(buf, sizeof buf, "$scrypt$ln=%u,r=%u,p=%u$%s$%s", ln, r, p,
		 s64, h64);
	assert_int_equal(verify("pw", buf, NULL), 0);
	free(good);
}

static bool is_url_safe(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static void test_token_format(void **state)
{
	char a[VC_TOKEN_BUFSIZE], b[VC_TOKEN_BUFSIZE], std[45];
	uint8_t raw[33];
	size_t n;

	(void)state;
	memset(a, 'X', sizeof a);
	assert_int_equal(vc_token_new(a, NULL), 0);
	assert_int_equal(vc_token_new(b, NULL), 0);
	assert_int_equal(strlen(a), 43);
	assert_int_equal(strlen(b), 43);
	assert_string_not_equal(a, b);
	for (int i = 0; i < 43; i++) {
		assert_true(is_url_safe(a[i]));
		std[i] = a[i] == '-' ? '+' : a[i] == '_' ? '/' : a[i];
	}
	/* It decodes back to exactly 32 bytes (256 bits). */
	std[43] = '=';
	std[44] = '\0';
	assert_int_equal(vc_base64_decode(std, 44, raw, sizeof raw, &n), 0);
	assert_int_equal(n, 32);
}

static void test_token_alphabet_coverage(void **state)
{
	bool seen_dash = false, seen_under = false;

	(void)state;
	/* 200 tokens * 43 chars: both URL-safe symbols appear with
	 * overwhelming probability, and '+' '/' '=' never do. */
	for (int t = 0; t < 200; t++) {
		char tok[VC_TOKEN_BUFSIZE];

		assert_int_equal(vc_token_new(tok, NULL), 0);
		for (int i = 0; i < 43; i++) {
			assert_true(is_url_safe(tok[i]));
			seen_dash |= tok[i] == '-';
			seen_under |= tok[i] == '_';
		}
	}
	assert_true(seen_dash);
	assert_true(seen_under);
}

static void test_token_hash(void **state)
{
	char a[VC_TOKEN_BUFSIZE], b[VC_TOKEN_BUFSIZE], bad[64];
	uint8_t h1[32], h2[32], hb[32], want[32];
	unsigned int wlen = 0;

	(void)state;
	assert_int_equal(vc_token_new(a, NULL), 0);
	assert_int_equal(vc_token_new(b, NULL), 0);
	assert_int_equal(vc_token_hash(a, h1, NULL), 0);
	assert_int_equal(vc_token_hash(a, h2, NULL), 0);
	assert_memory_equal(h1, h2, 32);
	assert_int_equal(EVP_Digest(a, 43, want, &wlen, EVP_sha256(), NULL), 1);
	assert_int_equal(wlen, 32);
	assert_memory_equal(h1, want, 32);
	assert_int_equal(vc_token_hash(b, hb, NULL), 0);
	assert_memory_not_equal(h1, hb, 32);

	/* Not a token: wrong length or alphabet. */
	snprintf(bad, sizeof bad, "%.42s", a);
	assert_int_equal(vc_token_hash(bad, h2, NULL), -EINVAL);
	snprintf(bad, sizeof bad, "%sA", a);
	assert_int_equal(vc_token_hash(bad, h2, NULL), -EINVAL);
	assert_int_equal(vc_token_hash("", h2, NULL), -EINVAL);
	assert_int_equal(vc_token_hash(NULL, h2, NULL), -EINVAL);
	const char subst[] = { '+', '/', '=', ' ', '.' };
	for (size_t i = 0; i < sizeof subst; i++) {
		snprintf(bad, sizeof bad, "%s", a);
		bad[20] = subst[i];
		assert_int_equal(vc_token_hash(bad, h2, NULL), -EINVAL);
	}
}

static void test_generate(void **state)
{
	static const char alphabet[] = VC_PASSWD_ALPHABET;
	struct vc_secret *a = NULL, *b = NULL, *big = NULL;
	bool seen[256] = { false };
	size_t distinct = 0;

	(void)state;
	assert_int_equal(strlen(alphabet), 57);
	for (const char *c = "0O1lI"; *c; c++)
		assert_null(strchr(alphabet, *c));

	assert_int_equal(vc_passwd_generate(VC_PASSWD_GEN_DEFAULT, &a, NULL), 0);
	assert_int_equal(vc_passwd_generate(VC_PASSWD_GEN_DEFAULT, &b, NULL), 0);
	assert_int_equal(vc_secret_len(a), VC_PASSWD_GEN_DEFAULT);
	assert_memory_not_equal(vc_secret_data(a), vc_secret_data(b),
				VC_PASSWD_GEN_DEFAULT);
	for (size_t i = 0; i < VC_PASSWD_GEN_DEFAULT; i++)
		assert_non_null(memchr(alphabet, vc_secret_data(a)[i], 57));

	/* Over 4096 characters every symbol shows up (a missing one has
	 * probability about 57 * e^-72), and nothing else does. */
	for (int round = 0; round < 4; round++) {
		assert_int_equal(vc_passwd_generate(1024, &big, NULL), 0);
		assert_int_equal(vc_secret_len(big), 1024);
		for (size_t i = 0; i < 1024; i++) {
			unsigned char c = vc_secret_data(big)[i];

			assert_non_null(memchr(alphabet, c, 57));
			seen[c] = true;
		}
		vc_secret_free(big);
		big = NULL;
	}
	for (int c = 0; c < 256; c++)
		distinct += seen[c];
	assert_int_equal(distinct, 57);

	/* A generated password works as a password. */
	{
		char *enc = NULL;

		assert_int_equal(vc_passwd_hash(a, &fast, &enc, NULL), 0);
		assert_int_equal(vc_passwd_verify(a, enc, NULL, NULL), 0);
		assert_int_equal(vc_passwd_verify(b, enc, NULL, NULL), -EACCES);
		free(enc);
	}
	vc_secret_free(a);
	vc_secret_free(b);

	assert_int_equal(vc_passwd_generate(VC_PASSWD_GEN_MIN - 1, &big, NULL),
			 -EINVAL);
	assert_null(big);
	assert_int_equal(vc_passwd_generate(VC_PASSWD_PW_MAX + 1, &big, NULL),
			 -EINVAL);
	assert_null(big);
	assert_int_equal(vc_passwd_generate(VC_PASSWD_GEN_MIN, &big, NULL), 0);
	assert_int_equal(vc_secret_len(big), VC_PASSWD_GEN_MIN);
	vc_secret_free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_oracle_rfc7914),
		cmocka_unit_test(test_hash_format_matches_oracle),
		cmocka_unit_test(test_round_trip_and_wrong),
		cmocka_unit_test(test_default_cost),
		cmocka_unit_test(test_salt_differs),
		cmocka_unit_test(test_password_length_limits),
		cmocka_unit_test(test_bad_cost_rejected),
		cmocka_unit_test(test_needs_rehash),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_every_hash_byte_compared),
		cmocka_unit_test(test_token_format),
		cmocka_unit_test(test_token_alphabet_coverage),
		cmocka_unit_test(test_token_hash),
		cmocka_unit_test(test_generate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
