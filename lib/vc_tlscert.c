/* SPDX-License-Identifier: Apache-2.0 */
/* Daemon TLS identities (manager, host agent): the self-signed certificate
 * made on first start and the server context (TLS 1.2 or newer). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "vc_tlscert.h"
#include "vc_common.h"

static int ossl_err(struct vc_error *err, int code, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256] = "unknown error";

	if (e)
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return vc_error_set(err, code, "%s: %s", what, buf);
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	int ok;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ex)
		return 0;
	ok = X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return ok;
}

/* Write PEM through fn to a new file of mode 0600 (never over an
 * existing one), fsync'd. */
static int write_pem(const char *path, int (*fn)(FILE *f, void *obj), void *obj,
		     struct vc_error *err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	FILE *f;
	int ok;

	if (fd < 0)
		return vc_error_set(err, -errno, "cannot create %s: %s", path, strerror(errno));
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(path);
		return vc_error_set(err, -ENOMEM, "cannot write %s", path);
	}
	ok = fn(f, obj) && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		unlink(path);
		return ossl_err(err, -EIO, path);
	}
	return 0;
}

static int pem_key(FILE *f, void *k)
{
	return PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
}

static int pem_cert(FILE *f, void *x)
{
	return PEM_write_X509(f, x);
}

int vc_tls_make_self_signed(const char *cert_path, const char *key_path, const char *cn,
			    const char *host, struct vc_error *err)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	char san[512];
	int ret = 0;
	unsigned char serial[16];

	if (!key || !x) {
		ret = ossl_err(err, -ENOMEM, "cannot make the manager's TLS key");
		goto out;
	}
	if (RAND_bytes_ex(NULL, serial, sizeof serial, 0) != 1) {
		ret = ossl_err(err, -EIO, "random serial");
		goto out;
	}
	serial[0] &= 0x7f;
	{
		BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);

		if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x))) {
			BN_free(bn);
			ret = ossl_err(err, -ENOMEM, "serial");
			goto out;
		}
		BN_free(bn);
	}
	name = X509_get_subject_name(x);
	snprintf(san, sizeof san, "DNS:localhost,IP:127.0.0.1,IP:::1%s%.200s",
		 host && host[0] && strcmp(host, "localhost") ? ",DNS:" : "",
		 host && host[0] && strcmp(host, "localhost") ? host : "");
	if (!X509_set_version(x, 2) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 825L * 24 * 3600) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
					(const unsigned char *)"vmcrypt", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					(const unsigned char *)cn, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, key) ||
	    !add_ext(x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
	    !add_ext(x, NID_key_usage, "critical,digitalSignature,keyCertSign") ||
	    !add_ext(x, NID_ext_key_usage, "serverAuth,clientAuth") ||
	    !add_ext(x, NID_subject_key_identifier, "hash") ||
	    !add_ext(x, NID_subject_alt_name, san) ||
	    !X509_sign(x, key, EVP_sha256())) {
		ret = ossl_err(err, -EIO, "cannot make the manager's certificate");
		goto out;
	}
	ret = write_pem(key_path, pem_key, key, err);
	if (ret == 0) {
		ret = write_pem(cert_path, pem_cert, x, err);
		if (ret < 0)
			unlink(key_path);
	}
out:
	X509_free(x);
	EVP_PKEY_free(key);
	return ret;
}

int vc_tls_server_ctx(const char *cert_path, const char *key_path, SSL_CTX **out,
		   char fingerprint[VC_TLS_FP_LEN], struct vc_error *err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	struct stat sb;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	X509 *leaf;

	*out = NULL;
	if (!ctx)
		return ossl_err(err, -ENOMEM, "TLS context");
	if (stat(key_path, &sb) == 0 && (sb.st_mode & 077)) {
		SSL_CTX_free(ctx);
		return vc_error_set(err, -EPERM, "%s is accessible by group or others "
				    "(chmod 600 it)", key_path);
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
				 SSL_OP_NO_COMPRESSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_path) != 1) {
		SSL_CTX_free(ctx);
		return ossl_err(err, -EINVAL, cert_path);
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_path, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		SSL_CTX_free(ctx);
		return ossl_err(err, -EINVAL, key_path);
	}
	leaf = SSL_CTX_get0_certificate(ctx);
	if (!leaf || X509_digest(leaf, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32) {
		SSL_CTX_free(ctx);
		return ossl_err(err, -EINVAL, "certificate fingerprint");
	}
	for (unsigned i = 0; i < mdlen; i++)
		snprintf(fingerprint + 3 * i, 4, i + 1 < mdlen ? "%02X:" : "%02X", md[i]);
	*out = ctx;
	return 0;
}

int vc_tls_fingerprint(X509 *x, uint8_t out[32])
{
	unsigned int len = 0;

	if (!x || X509_digest(x, EVP_sha256(), out, &len) != 1 || len != 32)
		return -EINVAL;
	return 0;
}
