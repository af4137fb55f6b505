/* SPDX-License-Identifier: Apache-2.0 */
/* AES-256-GCM key wrapping with purpose binding. */
#include "vc_wrap.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "vc_crypto.h"

static int put_field(uint8_t *out, size_t outcap, size_t *pos, const void *p,
		     size_t len, struct vc_error *err)
{
	if (len > 255)
		return vc_error_set(err, -EINVAL, "key binding field longer than 255 bytes");
	if (*pos + 2 + len > outcap)
		return vc_error_set(err, -ENOSPC, "key binding buffer too small");
	vc_put_le16(out + *pos, (uint16_t)len);
	memcpy(out + *pos + 2, p, len);
	*pos += 2 + len;
	return 0;
}

int vc_binding_encode(const struct vc_binding *b, uint8_t *out, size_t outcap,
		      size_t *outlen, struct vc_error *err)
{
	static const char tag[8] = "VCWRAP1";
	size_t pos = sizeof tag;
	int r;

	if (!b->format || !b->object || !b->provider || !b->key_id)
		return vc_error_set(err, -EINVAL, "incomplete key binding");
	if (outcap < sizeof tag + 8)
		return vc_error_set(err, -ENOSPC, "key binding buffer too small");
	memcpy(out, tag, sizeof tag);
	if ((r = put_field(out, outcap, &pos, b->format, strlen(b->format), err)) < 0 ||
	    (r = put_field(out, outcap, &pos, b->object, 16, err)) < 0 ||
	    (r = put_field(out, outcap, &pos, b->provider, strlen(b->provider), err)) < 0 ||
	    (r = put_field(out, outcap, &pos, b->key_id, strlen(b->key_id), err)) < 0)
		return r;
	if (pos + 8 > outcap)
		return vc_error_set(err, -ENOSPC, "key binding buffer too small");
	vc_put_le64(out + pos, b->generation);
	*outlen = pos + 8;
	return 0;
}

/* One AES-256-GCM pass; enc selects the direction. in and out are
 * len bytes; tag is read (decrypt) or written (encrypt). */
static int gcm(int enc, const struct vc_secret *kek, const uint8_t *nonce,
	       const uint8_t *ad, size_t adlen, const uint8_t *in, uint8_t *out,
	       size_t len, uint8_t *tag, struct vc_error *err)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int outl, ok;

	if (!ctx)
		return vc_error_ssl(err, -ENOMEM, "cipher context");
	ok = EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) == 1 &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, VC_WRAP_NONCE_LEN, NULL) == 1 &&
	     EVP_CipherInit_ex(ctx, NULL, NULL, vc_secret_data(kek), nonce, enc) == 1 &&
	     EVP_CipherUpdate(ctx, NULL, &outl, ad, (int)adlen) == 1 &&
	     EVP_CipherUpdate(ctx, out, &outl, in, (int)len) == 1;
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, VC_WRAP_TAG_LEN, tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(ctx, out + outl, &outl) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, VC_WRAP_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(ctx);
	if (!ok)
		return enc ? vc_error_ssl(err, -EIO, "AES-256-GCM encryption failed")
			   : vc_error_ssl(err, -EKEYREJECTED, "authentication failed");
	return 0;
}

int vc_wrap_key(const struct vc_secret *kek, const struct vc_binding *b,
		const struct vc_secret *key, uint8_t *out, size_t outcap,
		size_t *outlen, struct vc_error *err)
{
	uint8_t ad[VC_WRAP_AD_MAX];
	size_t adlen, klen = vc_secret_len(key);
	int r;

	if (vc_secret_len(kek) != VC_KEK_LEN)
		return vc_error_set(err, -EINVAL, "KEK must be %d bytes", VC_KEK_LEN);
	if (outcap < klen + VC_WRAP_OVERHEAD)
		return vc_error_set(err, -ENOSPC, "wrapped key buffer too small");
	if ((r = vc_binding_encode(b, ad, sizeof ad, &adlen, err)) < 0 ||
	    (r = vc_random_bytes(out, VC_WRAP_NONCE_LEN, err)) < 0)
		return r;
	r = gcm(1, kek, out, ad, adlen, vc_secret_data(key),
		out + VC_WRAP_NONCE_LEN, klen, out + VC_WRAP_NONCE_LEN + klen, err);
	if (r < 0)
		return r;
	*outlen = klen + VC_WRAP_OVERHEAD;
	return 0;
}

int vc_unwrap_key(const struct vc_secret *kek, const struct vc_binding *b,
		  const uint8_t *in, size_t inlen, struct vc_secret **out,
		  struct vc_error *err)
{
	uint8_t ad[VC_WRAP_AD_MAX], tag[VC_WRAP_TAG_LEN];
	struct vc_secret *key;
	size_t adlen, klen;
	int r;

	*out = NULL;
	if (vc_secret_len(kek) != VC_KEK_LEN)
		return vc_error_set(err, -EINVAL, "KEK must be %d bytes", VC_KEK_LEN);
	if (inlen <= VC_WRAP_OVERHEAD)
		return vc_error_set(err, -EINVAL, "wrapped key too short");
	klen = inlen - VC_WRAP_OVERHEAD;
	if ((r = vc_binding_encode(b, ad, sizeof ad, &adlen, err)) < 0 ||
	    (r = vc_secret_new(klen, &key, err)) < 0)
		return r;
	memcpy(tag, in + VC_WRAP_NONCE_LEN + klen, sizeof tag);
	r = gcm(0, kek, in, ad, adlen, in + VC_WRAP_NONCE_LEN,
		vc_secret_data(key), klen, tag, err);
	if (r < 0) {
		vc_secret_free(key);
		return vc_error_set(err, -EKEYREJECTED,
				    "wrapped key does not authenticate (wrong key, or the key belongs to another object)");
	}
	*out = key;
	return 0;
}
