/* SPDX-License-Identifier: Apache-2.0 */
/* XTS-AES-256 sector cipher (IEEE 1619), tweak = sector number as a
 * 128-bit little-endian integer ("plain64").
 *
 * The key schedule is computed once per key; per sector only the tweak
 * changes. The fast path calls OpenSSL's default provider implementation
 * through its public dispatch table, which skips the EVP layer's per-call
 * re-initialisation (about 100 ns per sector); the EVP path is the
 * fallback and the reference. A struct vc_xts may be used by many threads
 * at once: each call borrows a context from a small pool. */
#ifndef VC_XTS_H
#define VC_XTS_H

#include "vc_error.h"
#include "vc_secmem.h"

#define VC_XTS_KEY_LEN 64

enum vc_xts_impl {
	VC_XTS_AUTO,     /* provider dispatch when available, else EVP */
	VC_XTS_PROVIDER, /* fail if the provider dispatch is unavailable */
	VC_XTS_EVP,      /* EVP_CipherInit_ex per sector */
};

struct vc_xts;

/* Key with 64 bytes (K1 || K2, which must differ). The key bytes are
 * copied into OpenSSL contexts; the caller keeps ownership of key. */
VC_MUST_CHECK int vc_xts_new(const struct vc_secret *key, enum vc_xts_impl impl,
			     struct vc_xts **out, struct vc_error *err);
void vc_xts_free(struct vc_xts *x);

/* Which implementation a context uses: "provider" or "evp". */
const char *vc_xts_impl_name(const struct vc_xts *x);

/* Encrypt or decrypt len bytes (a multiple of sector_size, which is a
 * multiple of 16 and at least 16) starting at sector number first. in and
 * out may be the same buffer. */
VC_MUST_CHECK int vc_xts_encrypt(struct vc_xts *x, uint64_t first,
				 size_t sector_size, const void *in, void *out,
				 size_t len, struct vc_error *err);
VC_MUST_CHECK int vc_xts_decrypt(struct vc_xts *x, uint64_t first,
				 size_t sector_size, const void *in, void *out,
				 size_t len, struct vc_error *err);

#endif
