/* SPDX-License-Identifier: Apache-2.0 */
/* scrypt password hashes, session tokens and generated passwords. */
#include "vc_passwd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "vc_encode.h"

#define PREFIX "$scrypt$ln="
#define SALT_B64_LEN 24         /* base64 of 16 bytes, "==" padded */
#define HASH_B64_LEN 44         /* base64 of 32 bytes, "=" padded */
#define ENCODED_MAX 128

static int check_cost(const struct vc_passwd_cost *c, struct vc_error *err)
{
	uint64_t n, mem, work;

	if (c->ln < VC_PASSWD_LN_MIN || c->ln > VC_PASSWD_LN_MAX)
		return vc_error_set(err, -EINVAL,
				    "scrypt ln %u outside %d..%d", c->ln,
				    VC_PASSWD_LN_MIN, VC_PASSWD_LN_MAX);
	if (c->r < 1 || c->r > VC_PASSWD_R_MAX)
		return vc_error_set(err, -EINVAL, "scrypt r %u outside 1..%d",
				    c->r, VC_PASSWD_R_MAX);
	if (c->p < 1 || c->p > VC_PASSWD_P_MAX)
		return vc_error_set(err, -EINVAL, "scrypt p %u outside 1..%d",
				    c->p, VC_PASSWD_P_MAX);
	n = (uint64_t)1 << c->ln;
	mem = 128 * (uint64_t)c->r * (n + c->p);
	work = n * c->r * c->p;
	if (mem > VC_PASSWD_MEM_MAX)
		return vc_error_set(err, -EINVAL,
				    "scrypt cost ln=%u,r=%u,p=%u needs more than %llu MiB",
				    c->ln, c->r, c->p,
				    (unsigned long long)(VC_PASSWD_MEM_MAX >> 20));
	if (work > VC_PASSWD_WORK_MAX)
		return vc_error_set(err, -EINVAL,
				    "scrypt cost ln=%u,r=%u,p=%u is too slow",
				    c->ln, c->r, c->p);
	return 0;
}

static int check_password(const struct vc_secret *pw, int code,
			  struct vc_error *err)
{
	size_t len = pw ? vc_secret_len(pw) : 0;

	if (len < VC_PASSWD_PW_MIN || len > VC_PASSWD_PW_MAX)
		return vc_error_set(err, code,
				    "password must be %d..%d bytes",
				    VC_PASSWD_PW_MIN, VC_PASSWD_PW_MAX);
	return 0;
}

static int derive(const struct vc_secret *pw, const struct vc_passwd_cost *c,
		  const uint8_t salt[VC_PASSWD_SALT_LEN],
		  uint8_t out[VC_PASSWD_HASH_LEN], struct vc_error *err)
{
	/* OpenSSL counts 128*r*(N+p+2); check_cost already bounded our
	 * slightly smaller estimate, so a little slack is enough. */
	uint64_t maxmem = VC_PASSWD_MEM_MAX + ((uint64_t)1 << 20);

	if (EVP_PBE_scrypt((const char *)vc_secret_data(pw), vc_secret_len(pw),
			   salt, VC_PASSWD_SALT_LEN, (uint64_t)1 << c->ln,
			   c->r, c->p, maxmem, out, VC_PASSWD_HASH_LEN) != 1)
		return vc_error_ssl(err, -ENOMEM, "scrypt failed");
	return 0;
}

int vc_passwd_hash(const struct vc_secret *password,
		   const struct vc_passwd_cost *cost, char **encoded,
		   struct vc_error *err)
{
	static const struct vc_passwd_cost def = {
		VC_PASSWD_DEFAULT_LN, VC_PASSWD_DEFAULT_R, VC_PASSWD_DEFAULT_P
	};
	uint8_t salt[VC_PASSWD_SALT_LEN], hash[VC_PASSWD_HASH_LEN];
	char salt64[SALT_B64_LEN + 1], hash64[HASH_B64_LEN + 1];
	char *s;
	int r, n;

	*encoded = NULL;
	if (!cost)
		cost = &def;
	r = check_password(password, -EINVAL, err);
	if (r == 0)
		r = check_cost(cost, err);
	if (r == 0)
		r = vc_random_bytes(salt, sizeof salt, err);
	if (r == 0)
		r = derive(password, cost, salt, hash, err);
	if (r < 0)
		goto out;
	vc_base64_encode(salt, sizeof salt, salt64);
	vc_base64_encode(hash, sizeof hash, hash64);
	s = malloc(ENCODED_MAX);
	if (!s) {
		r = vc_error_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	n = snprintf(s, ENCODED_MAX, PREFIX "%u,r=%u,p=%u$%s$%s", cost->ln,
		     cost->r, cost->p, salt64, hash64);
	if (n < 0 || n >= ENCODED_MAX) {
		free(s);
		r = vc_error_set(err, -EOVERFLOW, "encoded hash too long");
		goto out;
	}
	*encoded = s;
out:
	vc_wipe(hash, sizeof hash);
	vc_wipe(hash64, sizeof hash64);
	return r;
}

/* A decimal number without sign or leading zeros, at most max. */
static bool parse_uint(const char **p, unsigned max, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0;

	if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
		return false;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return false;
	}
	*p = s;
	*out = v;
	return true;
}

static bool expect(const char **p, const char *lit)
{
	size_t n = strlen(lit);

	if (strncmp(*p, lit, n) != 0)
		return false;
	*p += n;
	return true;
}

/* Decode exactly len base64 characters into exactly want bytes, refusing
 * encodings that are not the canonical one (stray low bits before '='),
 * so each stored value has a single spelling. */
static bool decode_exact(const char *in, size_t len, uint8_t *out, size_t want)
{
	char again[HASH_B64_LEN + 1];
	size_t got;

	if (len >= sizeof again || vc_base64_decode(in, len, out, want, &got) < 0 ||
	    got != want)
		return false;
	vc_base64_encode(out, want, again);
	return strlen(again) == len && memcmp(again, in, len) == 0;
}

static int parse(const char *enc, struct vc_passwd_cost *c,
		 uint8_t salt[VC_PASSWD_SALT_LEN],
		 uint8_t hash[VC_PASSWD_HASH_LEN], struct vc_error *err)
{
	const char *p = enc, *dollar;

	if (!enc || strnlen(enc, ENCODED_MAX) >= ENCODED_MAX)
		return vc_error_set(err, -EINVAL, "malformed password hash");
	if (!expect(&p, PREFIX) || !parse_uint(&p, 99, &c->ln) ||
	    !expect(&p, ",r=") || !parse_uint(&p, 999, &c->r) ||
	    !expect(&p, ",p=") || !parse_uint(&p, 999, &c->p) ||
	    !expect(&p, "$"))
		return vc_error_set(err, -EINVAL,
				    "malformed password hash parameters");
	dollar = strchr(p, '$');
	if (!dollar || dollar - p != SALT_B64_LEN ||
	    !decode_exact(p, SALT_B64_LEN, salt, VC_PASSWD_SALT_LEN))
		return vc_error_set(err, -EINVAL, "malformed password hash salt");
	p = dollar + 1;
	if (strlen(p) != HASH_B64_LEN ||
	    !decode_exact(p, HASH_B64_LEN, hash, VC_PASSWD_HASH_LEN))
		return vc_error_set(err, -EINVAL, "malformed password hash value");
	return check_cost(c, err);
}

int vc_passwd_verify(const struct vc_secret *password, const char *encoded,
		     bool *needs_rehash, struct vc_error *err)
{
	struct vc_passwd_cost c;
	uint8_t salt[VC_PASSWD_SALT_LEN], want[VC_PASSWD_HASH_LEN];
	uint8_t got[VC_PASSWD_HASH_LEN];
	int r;

	if (needs_rehash)
		*needs_rehash = false;
	r = parse(encoded, &c, salt, want, err);
	if (r < 0)
		return r;
	/* Checked after the format so a malformed record is always
	 * reported as such, whatever the password. */
	r = check_password(password, -EACCES, err);
	if (r < 0)
		return vc_error_set(err, -EACCES, "wrong password");
	r = derive(password, &c, salt, got, err);
	if (r == 0 && !vc_ct_equal(got, want, sizeof got))
		r = vc_error_set(err, -EACCES, "wrong password");
	vc_wipe(got, sizeof got);
	vc_wipe(want, sizeof want);
	if (r == 0 && needs_rehash)
		*needs_rehash = c.ln < VC_PASSWD_DEFAULT_LN ||
				c.r < VC_PASSWD_DEFAULT_R ||
				c.p < VC_PASSWD_DEFAULT_P;
	return r;
}

int vc_token_new(char out[VC_TOKEN_BUFSIZE], struct vc_error *err)
{
	uint8_t raw[32];
	char b64[VC_TOKEN_LEN + 2];       /* 44 characters + NUL */
	int r;

	r = vc_random_bytes(raw, sizeof raw, err);
	if (r < 0)
		return r;
	vc_base64_encode(raw, sizeof raw, b64);
	vc_wipe(raw, sizeof raw);
	for (size_t i = 0; i < VC_TOKEN_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[VC_TOKEN_LEN] = '\0';
	vc_wipe(b64, sizeof b64);
	return 0;
}

static bool is_url_b64(char ch)
{
	return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

int vc_token_hash(const char *token, uint8_t out[VC_SHA256_LEN],
		  struct vc_error *err)
{
	if (!token || strnlen(token, VC_TOKEN_LEN + 1) != VC_TOKEN_LEN)
		return vc_error_set(err, -EINVAL, "malformed session token");
	for (size_t i = 0; i < VC_TOKEN_LEN; i++)
		if (!is_url_b64(token[i]))
			return vc_error_set(err, -EINVAL,
					    "malformed session token");
	return vc_sha256(token, VC_TOKEN_LEN, out, err);
}

int vc_passwd_generate(size_t len, struct vc_secret **out, struct vc_error *err)
{
	static const char alphabet[] = VC_PASSWD_ALPHABET;
	const size_t nsym = sizeof alphabet - 1;
	/* Largest multiple of nsym that fits a byte: rejecting bytes at or
	 * above it keeps every symbol equally likely. */
	const unsigned limit = (unsigned)(256 / nsym * nsym);
	uint8_t pool[64];
	size_t used = sizeof pool, i = 0;
	unsigned char *dst;
	int r;

	*out = NULL;
	if (len < VC_PASSWD_GEN_MIN || len > VC_PASSWD_PW_MAX)
		return vc_error_set(err, -EINVAL,
				    "generated password length must be %d..%d",
				    VC_PASSWD_GEN_MIN, VC_PASSWD_PW_MAX);
	r = vc_secret_new(len, out, err);
	if (r < 0)
		return r;
	dst = vc_secret_data(*out);
	while (i < len) {
		if (used == sizeof pool) {
			r = vc_random_bytes(pool, sizeof pool, err);
			if (r < 0)
				break;
			used = 0;
		}
		if (pool[used] < limit)
			dst[i++] = (unsigned char)alphabet[pool[used] % nsym];
		used++;
	}
	vc_wipe(pool, sizeof pool);
	if (r < 0) {
		vc_secret_free(*out);
		*out = NULL;
	}
	return r;
}
