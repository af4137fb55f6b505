/* SPDX-License-Identifier: Apache-2.0 */
/* Random bytes, SHA-256, HMAC-SHA-256 and HKDF-SHA-256 (RFC 5869) on
 * OpenSSL. */
#ifndef VC_CRYPTO_H
#define VC_CRYPTO_H

#include "vc_error.h"
#include "vc_secmem.h"

#define VC_SHA256_LEN 32

/* Cryptographically strong random bytes (OpenSSL's private DRBG). */
VC_MUST_CHECK int vc_random_bytes(void *buf, size_t len, struct vc_error *err);

/* A new secret of len random bytes. */
VC_MUST_CHECK int vc_random_secret(size_t len, struct vc_secret **out,
				   struct vc_error *err);

VC_MUST_CHECK int vc_sha256(const void *data, size_t len,
			    uint8_t out[VC_SHA256_LEN], struct vc_error *err);

VC_MUST_CHECK int vc_hmac_sha256(const void *key, size_t keylen,
				 const void *data, size_t len,
				 uint8_t out[VC_SHA256_LEN],
				 struct vc_error *err);

/* HKDF-SHA-256 extract-and-expand into outlen (1..8160) bytes at out. */
VC_MUST_CHECK int vc_hkdf_sha256(const void *ikm, size_t ikmlen,
				 const void *salt, size_t saltlen,
				 const void *info, size_t infolen,
				 void *out, size_t outlen,
				 struct vc_error *err);

#endif
