/* SPDX-License-Identifier: Apache-2.0 */
/* Local-user passwords (salted scrypt hashes), bearer session tokens and
 * generated one-time passwords for the manager. No storage, no I/O. */
#ifndef VC_PASSWD_H
#define VC_PASSWD_H

#include <stdbool.h>

#include "vc_crypto.h"
#include "vc_error.h"
#include "vc_secmem.h"

/*
 * Stored password format (one ASCII line, self-describing):
 *
 *   $scrypt$ln=<ln>,r=<r>,p=<p>$<salt>$<hash>
 *
 * ln is log2 of scrypt's N, r the block size, p the parallelism, all
 * decimal without sign or leading zeros. salt is 16 random bytes, hash the
 * 32-byte scrypt output (OpenSSL EVP_PBE_scrypt, password bytes as given),
 * both in standard base64 (RFC 4648 section 4, '+' '/', with '=' padding:
 * 24 and 44 characters). Parsing is strict: exactly these fields in this
 * order, no extra characters, canonical base64, and the limits below.
 *
 * Limits (so that a stored string cannot make verification exhaust memory
 * or time): ln 10..20, r 1..32, p 1..16, memory 128*r*(N+p) bytes at most
 * 256 MiB, work N*r*p at most 2^22 (16 times the default).
 */
#define VC_PASSWD_PW_MIN 1
#define VC_PASSWD_PW_MAX 1024
#define VC_PASSWD_SALT_LEN 16
#define VC_PASSWD_HASH_LEN 32

#define VC_PASSWD_LN_MIN 10
#define VC_PASSWD_LN_MAX 20
#define VC_PASSWD_R_MAX 32
#define VC_PASSWD_P_MAX 16
#define VC_PASSWD_MEM_MAX ((uint64_t)256 << 20)
#define VC_PASSWD_WORK_MAX ((uint64_t)1 << 22)

#define VC_PASSWD_DEFAULT_LN 15
#define VC_PASSWD_DEFAULT_R 8
#define VC_PASSWD_DEFAULT_P 1

struct vc_passwd_cost {
	unsigned ln;    /* N = 2^ln */
	unsigned r;
	unsigned p;
};

/* Hash password (VC_PASSWD_PW_MIN..VC_PASSWD_PW_MAX bytes) with a fresh
 * random salt. cost NULL means the default (ln=15, r=8, p=1, 32 MiB);
 * a cost outside the limits above is -EINVAL. On success *encoded is a
 * malloc'd NUL-terminated string in the format above (free with free()). */
VC_MUST_CHECK int vc_passwd_hash(const struct vc_secret *password,
				 const struct vc_passwd_cost *cost,
				 char **encoded, struct vc_error *err);

/* Check password against a stored string. Returns 0 if it matches (the
 * comparison is constant-time), -EACCES ("wrong password") if not, and
 * -EINVAL if encoded is malformed or outside the limits (a password out of
 * length limits is -EACCES: it cannot have been stored). On a match,
 * *needs_rehash (optional) tells whether any stored parameter (ln, r or p)
 * is below the current default, so the caller should store a fresh
 * vc_passwd_hash() of the password it just verified; higher costs are kept.
 * It is false on any failure. */
VC_MUST_CHECK int vc_passwd_verify(const struct vc_secret *password,
				   const char *encoded, bool *needs_rehash,
				   struct vc_error *err);

/*
 * Session tokens: 32 random bytes (256 bits) as URL-safe base64 (RFC 4648
 * section 5, '-' '_') without padding: exactly 43 characters. The client
 * holds the token; the manager stores only vc_token_hash() of it, so a
 * leaked database does not yield usable sessions.
 */
#define VC_TOKEN_LEN 43
#define VC_TOKEN_BUFSIZE (VC_TOKEN_LEN + 1)

/* A new token, NUL-terminated, into out. */
VC_MUST_CHECK int vc_token_new(char out[VC_TOKEN_BUFSIZE], struct vc_error *err);

/* SHA-256 of the token's 43 characters. A string that is not 43 URL-safe
 * base64 characters is -EINVAL (it cannot be a token we issued). */
VC_MUST_CHECK int vc_token_hash(const char *token, uint8_t out[VC_SHA256_LEN],
				struct vc_error *err);

/*
 * Generated passwords (e.g. the first administrator's one-time password):
 * len characters drawn uniformly from VC_PASSWD_ALPHABET, which leaves out
 * the look-alikes 0 O 1 l I (57 symbols, about 5.8 bits each; 20 characters
 * give about 116 bits).
 */
#define VC_PASSWD_ALPHABET \
	"23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
#define VC_PASSWD_GEN_MIN 8
#define VC_PASSWD_GEN_DEFAULT 20

/* A new secret of len (VC_PASSWD_GEN_MIN..VC_PASSWD_PW_MAX) characters,
 * not NUL-terminated (vc_secret_len() is len). */
VC_MUST_CHECK int vc_passwd_generate(size_t len, struct vc_secret **out,
				     struct vc_error *err);

#endif
