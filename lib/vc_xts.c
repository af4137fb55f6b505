/* SPDX-License-Identifier: Apache-2.0 */
/* XTS-AES-256 per-sector encryption on OpenSSL 3. */
#include "vc_xts.h"

#include <errno.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

#define POOL_MAX 64

/* The default provider's AES-256-XTS functions, looked up once. */
static struct {
	void *provctx;
	OSSL_FUNC_cipher_newctx_fn *newctx;
	OSSL_FUNC_cipher_freectx_fn *freectx;
	OSSL_FUNC_cipher_dupctx_fn *dupctx;
	OSSL_FUNC_cipher_encrypt_init_fn *einit;
	OSSL_FUNC_cipher_decrypt_init_fn *dinit;
	OSSL_FUNC_cipher_update_fn *update;
	EVP_CIPHER *evp;
	int ready;    /* the EVP cipher was fetched */
	int dispatch; /* the provider functions were all found */
} xts_impl;
static pthread_once_t xts_once = PTHREAD_ONCE_INIT;

static int names_match(const char *names, const char *want)
{
	size_t n = strlen(want);

	/* names is "NAME1:NAME2:..."; compare whole tokens. */
	for (const char *p = names; p && *p;) {
		const char *end = strchr(p, ':');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (len == n && strncasecmp(p, want, n) == 0)
			return 1;
		p = end ? end + 1 : NULL;
	}
	return 0;
}

static void xts_lookup(void)
{
	const OSSL_ALGORITHM *alg;
	const OSSL_PROVIDER *prov;
	int no_cache = 0;

	xts_impl.evp = EVP_CIPHER_fetch(NULL, "AES-256-XTS", NULL);
	if (!xts_impl.evp)
		return;
	xts_impl.ready = 1;
	prov = EVP_CIPHER_get0_provider(xts_impl.evp);
	if (!prov)
		return;
	alg = OSSL_PROVIDER_query_operation(prov, OSSL_OP_CIPHER, &no_cache);
	for (; alg && alg->algorithm_names; alg++) {
		if (!names_match(alg->algorithm_names, "AES-256-XTS"))
			continue;
		for (const OSSL_DISPATCH *d = alg->implementation; d->function_id; d++) {
			switch (d->function_id) {
			case OSSL_FUNC_CIPHER_NEWCTX:
				xts_impl.newctx = OSSL_FUNC_cipher_newctx(d);
				break;
			case OSSL_FUNC_CIPHER_FREECTX:
				xts_impl.freectx = OSSL_FUNC_cipher_freectx(d);
				break;
			case OSSL_FUNC_CIPHER_DUPCTX:
				xts_impl.dupctx = OSSL_FUNC_cipher_dupctx(d);
				break;
			case OSSL_FUNC_CIPHER_ENCRYPT_INIT:
				xts_impl.einit = OSSL_FUNC_cipher_encrypt_init(d);
				break;
			case OSSL_FUNC_CIPHER_DECRYPT_INIT:
				xts_impl.dinit = OSSL_FUNC_cipher_decrypt_init(d);
				break;
			case OSSL_FUNC_CIPHER_UPDATE:
				xts_impl.update = OSSL_FUNC_cipher_update(d);
				break;
			}
		}
		break;
	}
	xts_impl.provctx = OSSL_PROVIDER_get0_provider_ctx(prov);
	xts_impl.dispatch = xts_impl.provctx && xts_impl.newctx && xts_impl.freectx &&
			    xts_impl.dupctx && xts_impl.einit && xts_impl.dinit &&
			    xts_impl.update;
}

/* One borrowed pair of keyed contexts (encrypt and decrypt). */
struct pair {
	void *enc, *dec; /* provider algctx or EVP_CIPHER_CTX */
};

struct vc_xts {
	int use_dispatch;
	struct pair tmpl;
	pthread_mutex_t lock;
	struct pair pool[POOL_MAX];
	size_t npool;
};

static void pair_free(const struct vc_xts *x, struct pair *p)
{
	if (x->use_dispatch) {
		if (p->enc)
			xts_impl.freectx(p->enc);
		if (p->dec)
			xts_impl.freectx(p->dec);
	} else {
		EVP_CIPHER_CTX_free(p->enc);
		EVP_CIPHER_CTX_free(p->dec);
	}
	p->enc = p->dec = NULL;
}

static int pair_dup(const struct vc_xts *x, const struct pair *from,
		    struct pair *to)
{
	if (x->use_dispatch) {
		to->enc = xts_impl.dupctx(from->enc);
		to->dec = xts_impl.dupctx(from->dec);
	} else {
		to->enc = EVP_CIPHER_CTX_new();
		to->dec = EVP_CIPHER_CTX_new();
		if (to->enc && to->dec &&
		    (EVP_CIPHER_CTX_copy(to->enc, from->enc) != 1 ||
		     EVP_CIPHER_CTX_copy(to->dec, from->dec) != 1)) {
			pair_free(x, to);
			return -1;
		}
	}
	if (!to->enc || !to->dec) {
		pair_free(x, to);
		return -1;
	}
	return 0;
}

int vc_xts_new(const struct vc_secret *key, enum vc_xts_impl impl,
	       struct vc_xts **out, struct vc_error *err)
{
	const unsigned char *k = vc_secret_data(key);
	struct vc_xts *x;
	int ok;

	*out = NULL;
	if (vc_secret_len(key) != VC_XTS_KEY_LEN)
		return vc_error_set(err, -EINVAL, "XTS key must be %d bytes", VC_XTS_KEY_LEN);
	/* IEEE 1619-2007 5.1 allows it, but equal halves reduce XTS to a
	 * weaker mode; OpenSSL's FIPS provider rejects them too. */
	if (vc_ct_equal(k, k + 32, 32))
		return vc_error_set(err, -EINVAL, "XTS key halves must differ");
	pthread_once(&xts_once, xts_lookup);
	if (!xts_impl.ready)
		return vc_error_ssl(err, -ENOSYS, "AES-256-XTS is not available in OpenSSL");
	if (impl == VC_XTS_PROVIDER && !xts_impl.dispatch)
		return vc_error_set(err, -ENOTSUP, "provider dispatch for AES-256-XTS unavailable");

	x = calloc(1, sizeof *x);
	if (!x)
		return vc_error_set(err, -ENOMEM, "out of memory");
	x->use_dispatch = impl != VC_XTS_EVP && xts_impl.dispatch;
	pthread_mutex_init(&x->lock, NULL);
	if (x->use_dispatch) {
		x->tmpl.enc = xts_impl.newctx(xts_impl.provctx);
		x->tmpl.dec = xts_impl.newctx(xts_impl.provctx);
		ok = x->tmpl.enc && x->tmpl.dec &&
		     xts_impl.einit(x->tmpl.enc, k, VC_XTS_KEY_LEN, NULL, 0, NULL) == 1 &&
		     xts_impl.dinit(x->tmpl.dec, k, VC_XTS_KEY_LEN, NULL, 0, NULL) == 1;
	} else {
		x->tmpl.enc = EVP_CIPHER_CTX_new();
		x->tmpl.dec = EVP_CIPHER_CTX_new();
		ok = x->tmpl.enc && x->tmpl.dec &&
		     EVP_CipherInit_ex(x->tmpl.enc, xts_impl.evp, NULL, k, NULL, 1) == 1 &&
		     EVP_CipherInit_ex(x->tmpl.dec, xts_impl.evp, NULL, k, NULL, 0) == 1;
	}
	if (!ok) {
		vc_xts_free(x);
		return vc_error_ssl(err, -EIO, "cannot set up XTS-AES-256 key");
	}
	*out = x;
	return 0;
}

void vc_xts_free(struct vc_xts *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->npool; i++)
		pair_free(x, &x->pool[i]);
	pair_free(x, &x->tmpl);
	pthread_mutex_destroy(&x->lock);
	free(x);
}

const char *vc_xts_impl_name(const struct vc_xts *x)
{
	return x->use_dispatch ? "provider" : "evp";
}

static int borrow(struct vc_xts *x, struct pair *p)
{
	int r = 0;

	pthread_mutex_lock(&x->lock);
	if (x->npool > 0)
		*p = x->pool[--x->npool];
	else
		r = pair_dup(x, &x->tmpl, p);
	pthread_mutex_unlock(&x->lock);
	return r;
}

static void give_back(struct vc_xts *x, struct pair *p)
{
	pthread_mutex_lock(&x->lock);
	if (x->npool < POOL_MAX) {
		x->pool[x->npool++] = *p;
		p->enc = p->dec = NULL;
	}
	pthread_mutex_unlock(&x->lock);
	pair_free(x, p);
}

static int xts_crypt(struct vc_xts *x, int enc, uint64_t first, size_t ss,
		 const void *in, void *out, size_t len, struct vc_error *err)
{
	const unsigned char *src = in;
	unsigned char *dst = out, iv[16] = { 0 };
	struct pair p;
	void *ctx;
	int ok = 1;

	if (ss < 16 || ss % 16 || ss > (1u << 20) || len % ss)
		return vc_error_set(err, -EINVAL, "bad XTS request: %zu bytes in %zu-byte sectors", len, ss);
	/* The last sector may be UINT64_MAX itself. */
	if (len / ss > 0 && len / ss - 1 > UINT64_MAX - first)
		return vc_error_set(err, -EOVERFLOW, "sector number overflow");
	if (borrow(x, &p) < 0)
		return vc_error_ssl(err, -ENOMEM, "cannot allocate XTS context");
	ctx = enc ? p.enc : p.dec;

	for (size_t off = 0; off < len && ok; off += ss) {
		vc_put_le64(iv, first + off / ss);
		if (x->use_dispatch) {
			size_t outl;

			ok = (enc ? xts_impl.einit(ctx, NULL, 0, iv, sizeof iv, NULL)
				  : xts_impl.dinit(ctx, NULL, 0, iv, sizeof iv, NULL)) == 1 &&
			     xts_impl.update(ctx, dst + off, &outl, ss, src + off, ss) == 1 &&
			     outl == ss;
		} else {
			int outl;

			ok = EVP_CipherInit_ex(ctx, NULL, NULL, NULL, iv, enc) == 1 &&
			     EVP_CipherUpdate(ctx, dst + off, &outl, src + off, (int)ss) == 1 &&
			     (size_t)outl == ss;
		}
	}
	give_back(x, &p);
	if (!ok)
		return vc_error_ssl(err, -EIO, "XTS-AES-256 %s failed", enc ? "encryption" : "decryption");
	return 0;
}

int vc_xts_encrypt(struct vc_xts *x, uint64_t first, size_t sector_size,
		   const void *in, void *out, size_t len, struct vc_error *err)
{
	return xts_crypt(x, 1, first, sector_size, in, out, len, err);
}

int vc_xts_decrypt(struct vc_xts *x, uint64_t first, size_t sector_size,
		   const void *in, void *out, size_t len, struct vc_error *err)
{
	return xts_crypt(x, 0, first, sector_size, in, out, len, err);
}
