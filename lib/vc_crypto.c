/* SPDX-License-Identifier: Apache-2.0 */
/* Thin, checked wrappers over OpenSSL's RNG, digests and KDFs. */
#include "vc_crypto.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

int vc_random_bytes(void *buf, size_t len, struct vc_error *err)
{
	if (len > (size_t)INT32_MAX)
		return vc_error_set(err, -EINVAL, "random request too large");
	if (RAND_priv_bytes(buf, (int)len) != 1)
		return vc_error_ssl(err, -EIO, "random generator failed");
	return 0;
}

int vc_random_secret(size_t len, struct vc_secret **out, struct vc_error *err)
{
	int r = vc_secret_new(len, out, err);

	if (r == 0) {
		r = vc_random_bytes(vc_secret_data(*out), len, err);
		if (r < 0) {
			vc_secret_free(*out);
			*out = NULL;
		}
	}
	return r;
}

int vc_sha256(const void *data, size_t len, uint8_t out[VC_SHA256_LEN],
	      struct vc_error *err)
{
	if (EVP_Digest(data, len, out, NULL, EVP_sha256(), NULL) != 1)
		return vc_error_ssl(err, -EIO, "SHA-256 failed");
	return 0;
}

int vc_hmac_sha256(const void *key, size_t keylen, const void *data,
		   size_t len, uint8_t out[VC_SHA256_LEN], struct vc_error *err)
{
	unsigned int outlen = VC_SHA256_LEN;

	if (keylen > (size_t)INT32_MAX)
		return vc_error_set(err, -EINVAL, "HMAC key too long");
	if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &outlen) ||
	    outlen != VC_SHA256_LEN)
		return vc_error_ssl(err, -EIO, "HMAC-SHA-256 failed");
	return 0;
}

static void *unconst(const void *p)
{
	union {
		const void *c;
		void *v;
	} u = { .c = p };

	return u.v;
}

int vc_hkdf_sha256(const void *ikm, size_t ikmlen, const void *salt,
		   size_t saltlen, const void *info, size_t infolen, void *out,
		   size_t outlen, struct vc_error *err)
{
	static const unsigned char empty[1];
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[5], *p = params;
	int ok;

	if (outlen == 0 || outlen > 255 * VC_SHA256_LEN)
		return vc_error_set(err, -EINVAL, "HKDF output length %zu out of range", outlen);
	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return vc_error_ssl(err, -ENOSYS, "HKDF unavailable");
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (!ctx)
		return vc_error_ssl(err, -ENOMEM, "HKDF context");
	char digest[] = "SHA256";

	/* OSSL_PARAM takes non-const pointers but only reads them here. */
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 unconst(ikmlen ? ikm : empty), ikmlen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						 unconst(saltlen ? salt : empty), saltlen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						 unconst(infolen ? info : empty), infolen);
	*p = OSSL_PARAM_construct_end();
	ok = EVP_KDF_derive(ctx, out, outlen, params);
	EVP_KDF_CTX_free(ctx);
	if (ok != 1)
		return vc_error_ssl(err, -EIO, "HKDF-SHA-256 failed");
	return 0;
}
