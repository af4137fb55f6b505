/* SPDX-License-Identifier: Apache-2.0 */
/* HTTPS calls from the manager to host agents (libcurl, pinned). */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hostclient.h"
#include "mgr.h"
#include "vc_encode.h"
#include "vc_json.h"
#include "vc_secmem.h"
#include "vc_tlscert.h"

#define REPLY_MAX (64 * 1024 * 1024)

int hostclient_init(struct vc_error *err)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return vc_error_set(err, -ENOMEM, "cannot initialise libcurl");
	return 0;
}

void hostclient_cleanup(void)
{
	curl_global_cleanup();
}

int thumbprint_norm(const char *in, char out[65])
{
	size_t o = 0;

	for (const char *p = in; *p; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || o == 64)
			return -EINVAL;
		out[o++] = (char)tolower((unsigned char)*p);
	}
	out[o] = '\0';
	return o == 64 ? 0 : -EINVAL;
}

void thumbprint_pretty(const char hex[65], char out[96])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 3 * i, 4, i < 31 ? "%c%c:" : "%c%c", toupper((unsigned char)hex[2 * i]),
			 toupper((unsigned char)hex[2 * i + 1]));
}

/* The handshake's check: the leaf must be the pinned certificate. */
static int check_pin(X509_STORE_CTX *x, void *arg)
{
	struct host_call *c = arg;
	uint8_t fp[32];

	if (vc_tls_fingerprint(X509_STORE_CTX_get0_cert(x), fp) < 0) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	vc_hex_encode(fp, 32, c->seen);
	if (c->pin && !vc_ct_equal(c->seen, c->pin, 64)) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	return 1;
}

static CURLcode ssl_ctx_cb(CURL *curl, void *ssl_ctx, void *arg)
{
	(void)curl;
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ssl_ctx, check_pin, arg);
	return CURLE_OK;
}

struct sink {
	char *buf;
	size_t len;
	bool overflow;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct sink *s = arg;
	size_t add = size * n;
	char *nb;

	if (s->len + add > REPLY_MAX) {
		s->overflow = true;
		return 0;
	}
	nb = realloc(s->buf, s->len + add + 1);
	if (!nb)
		return 0;
	memcpy(nb + s->len, p, add);
	s->buf = nb;
	s->len += add;
	s->buf[s->len] = '\0';
	return add;
}

int host_call(struct mgr *m, struct host_call *c, struct vc_error *err)
{
	char url[600], curl_msg[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct sink s = { 0 };
	char *body = NULL;
	CURL *h = curl_easy_init();
	CURLcode rc;
	int ret = 0;

	c->status = 0;
	c->resp = NULL;
	c->seen[0] = '\0';
	if (!h)
		return vc_error_set(err, -ENOMEM, "cannot create an HTTP client");
	snprintf(url, sizeof url, "https://%s%s", c->address, c->path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(c->timeout_ms ? c->timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
	/* Trust is the pin, checked in the handshake, not a CA. */
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
	curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
	curl_easy_setopt(h, CURLOPT_SSLCERT, m->cert_path);
	curl_easy_setopt(h, CURLOPT_SSLKEY, m->key_path);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
	if (c->body) {
		body = json_dumps(c->body, JSON_COMPACT);
		if (!body) {
			curl_easy_cleanup(h);
			return vc_error_set(err, -ENOMEM, "out of memory");
		}
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		if (c->pin && c->seen[0] && strcmp(c->seen, c->pin) != 0)
			ret = vc_error_set(err, -EKEYREJECTED, "host %s presented a certificate "
					   "other than the one pinned for it", c->address);
		else
			ret = vc_error_set(err, -EHOSTUNREACH, "host %s cannot be reached: %s",
					   c->address, curl_msg[0] ? curl_msg
								    : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
		if (s.len)
			c->resp = json_loadb(s.buf, s.len, 0, NULL);
	}
	if (body) {
		vc_wipe(body, strlen(body));
		vc_json_free_dump(body);
	}
	if (s.buf) {
		vc_wipe(s.buf, s.len);
		free(s.buf);
	}
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	return ret;
}
