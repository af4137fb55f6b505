/* SPDX-License-Identifier: Apache-2.0 */
/* Key wrapping: AES-256-GCM under a 32-byte KEK with a random 96-bit nonce
 * and associated data that binds the wrapped key to its purpose, so a
 * wrapped key cannot be moved to another disk, VM or slot.
 *
 * Wrapped form: nonce (12) || ciphertext (key length) || tag (16). */
#ifndef VC_WRAP_H
#define VC_WRAP_H

#include "vc_error.h"
#include "vc_secmem.h"

#define VC_KEK_LEN 32
#define VC_WRAP_NONCE_LEN 12
#define VC_WRAP_TAG_LEN 16
#define VC_WRAP_OVERHEAD (VC_WRAP_NONCE_LEN + VC_WRAP_TAG_LEN)
#define VC_WRAP_AD_MAX 1024 /* fits every binding: 8 + 3 * (2 + 255) + 18 + 8 */

/* What a wrapped key is for. Every field goes into the associated data;
 * strings must be NUL-terminated and at most 255 bytes. */
struct vc_binding {
	const char *format;      /* e.g. "vmcrypt-disk-dek/1" */
	const uint8_t *object;   /* 16-byte UUID of the disk or VM */
	const char *provider;    /* key provider name */
	const char *key_id;      /* KEK id within the provider */
	uint64_t generation;     /* key generation / slot discriminator */
};

/* Serialise a binding as associated data (documented in docs/FORMAT.md):
 * "VCWRAP1\0", then format, object, provider, key id each as a 16-bit LE
 * length followed by the bytes, then the generation as 64-bit LE. */
VC_MUST_CHECK int vc_binding_encode(const struct vc_binding *b, uint8_t *out,
				    size_t outcap, size_t *outlen,
				    struct vc_error *err);

/* Wrap key under kek (VC_KEK_LEN bytes) into out (outcap must be at least
 * vc_secret_len(key) + VC_WRAP_OVERHEAD); *outlen gets the length. */
VC_MUST_CHECK int vc_wrap_key(const struct vc_secret *kek,
			      const struct vc_binding *b,
			      const struct vc_secret *key, uint8_t *out,
			      size_t outcap, size_t *outlen,
			      struct vc_error *err);

/* Unwrap in (inlen bytes) into a new secret of inlen - VC_WRAP_OVERHEAD
 * bytes. A wrong KEK, a different binding or any tampering fails with
 * -EKEYREJECTED and "wrapped key does not authenticate ...". */
VC_MUST_CHECK int vc_unwrap_key(const struct vc_secret *kek,
				const struct vc_binding *b, const uint8_t *in,
				size_t inlen, struct vc_secret **out,
				struct vc_error *err);

#endif
