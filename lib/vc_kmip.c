/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP 1.x client: TLS connection, request/response framing, operations. */
#define _GNU_SOURCE
#include "vc_kmip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vc_encode.h"
#include "vc_kmip_defs.h"
#include "vc_ttlv.h"

#define DEFAULT_TIMEOUT_MS 10000

struct vc_kmip_conn {
	char where[300];  /* "key server HOST:PORT" for messages */
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	int major, minor; /* negotiated protocol version */
	int timeout_ms;
	bool broken;      /* an I/O error happened: no close_notify on close */
};

/* ---- errors --------------------------------------------------------------- */

static int ssl_fail(struct vc_kmip_conn *c, int code, const char *what,
		    struct vc_error *err)
{
	return vc_error_ssl(err, code, "%s: %s", c->where, what);
}

/* ---- TCP with a deadline -------------------------------------------------- */

static int tcp_connect(struct vc_kmip_conn *c, const char *host, uint16_t port,
		       struct vc_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL, *ai;
	char portstr[8];
	int r, last = 0;

	snprintf(portstr, sizeof portstr, "%u", port);
	r = getaddrinfo(host, portstr, &hints, &res);
	if (r != 0)
		return vc_error_set(err, -EHOSTUNREACH, "%s: cannot resolve: %s", c->where,
				    gai_strerror(r));
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t sl = sizeof last;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

		if (fd < 0) {
			last = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = errno;
			close(fd);
			continue;
		}
		pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
		r = poll(&pfd, 1, c->timeout_ms);
		if (r == 0) {
			last = ETIMEDOUT;
			close(fd);
			continue;
		}
		if (r < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &last, &sl) < 0 || last) {
			if (r < 0)
				last = errno;
			close(fd);
			continue;
		}
		/* Blocking from here on, with a timeout on every read and write. */
		struct timeval tv = { .tv_sec = c->timeout_ms / 1000,
				      .tv_usec = (c->timeout_ms % 1000) * 1000 };
		int one = 1;

		if (fcntl(fd, F_SETFL, 0) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
		    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0 ||
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) {
			last = errno;
			close(fd);
			continue;
		}
		c->fd = fd;
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	if (last == ETIMEDOUT)
		return vc_error_set(err, -ETIMEDOUT, "%s: connection timed out after %d ms",
				    c->where, c->timeout_ms);
	return vc_error_errno(err, last ? last : EHOSTUNREACH, "%s: cannot connect", c->where);
}

/* ---- TLS ------------------------------------------------------------------ */

static int check_key_file(struct vc_kmip_conn *c, const char *path, struct vc_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return vc_error_set(err, -EINVAL, "%s: client key %s: %s", c->where, path,
				    strerror(errno));
	if (st.st_mode & 077)
		return vc_error_set(err, -EINVAL,
				    "%s: client key %s is accessible by group or others (mode %03o); chmod 600 it",
				    c->where, path, (unsigned)(st.st_mode & 0777));
	return 0;
}

/* Configuration mistakes are found before any connection, and are not
 * worth trying another server for (-EINVAL). */
static int check_config(struct vc_kmip_conn *c, const struct vc_kmip_tls *tls,
			struct vc_error *err)
{
	if (!tls->cert_file || !tls->key_file)
		return vc_error_set(err, -EINVAL, "%s: a client certificate and key are required",
				    c->where);
	if (!tls->ca_file && !tls->pinned_sha256)
		return vc_error_set(err, -EINVAL,
				    "%s: a CA file or a pinned server certificate is required", c->where);
	return check_key_file(c, tls->key_file, err);
}

static bool is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int check_pin(struct vc_kmip_conn *c, const char *pin, struct vc_error *err)
{
	uint8_t want[32], got[32];
	char clean[65];
	size_t n = 0, len;
	unsigned int mdlen = sizeof got;
	X509 *peer;

	for (const char *p = pin; *p && n < 64; p++)
		if (*p != ':')
			clean[n++] = *p;
	clean[n] = '\0';
	if (n != 64 || vc_hex_decode(clean, 64, want, sizeof want, &len) < 0)
		return vc_error_set(err, -EINVAL, "%s: pinned SHA-256 must be 64 hex digits", c->where);
	peer = SSL_get1_peer_certificate(c->ssl);
	if (!peer)
		return vc_error_set(err, -EPROTO, "%s: server sent no certificate", c->where);
	if (!X509_digest(peer, EVP_sha256(), got, &mdlen)) {
		X509_free(peer);
		return ssl_fail(c, -EIO, "cannot hash the server certificate", err);
	}
	X509_free(peer);
	if (!vc_ct_equal(want, got, sizeof got))
		return vc_error_set(err, -EPERM,
				    "%s: server certificate does not match the pinned SHA-256", c->where);
	return 0;
}

static int tls_start(struct vc_kmip_conn *c, const char *host,
		     const struct vc_kmip_tls *tls, struct vc_error *err)
{
	const char *name = tls->server_name ? tls->server_name : host;
	int r;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx)
		return ssl_fail(c, -ENOMEM, "cannot create TLS context", err);
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(c->ctx, tls->cert_file) != 1)
		return ssl_fail(c, -EINVAL, "cannot load the client certificate", err);
	if (SSL_CTX_use_PrivateKey_file(c->ctx, tls->key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ctx) != 1)
		return ssl_fail(c, -EINVAL, "cannot load the client key", err);
	if (tls->ca_file) {
		if (SSL_CTX_load_verify_locations(c->ctx, tls->ca_file, NULL) != 1)
			return ssl_fail(c, -EINVAL, "cannot load the CA file", err);
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* Pinned: the chain is not checked, the exact certificate is. */
		SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, NULL);
	}
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return ssl_fail(c, -ENOMEM, "cannot create TLS session", err);
	if (tls->ca_file) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

		if (is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1
					: SSL_set1_host(c->ssl, name) != 1)
			return ssl_fail(c, -EINVAL, "cannot set the name to verify", err);
	}
	if (!is_ip_literal(name)) {
		/* The macro casts its argument to void *: give it a copy. */
		char sni[256];

		snprintf(sni, sizeof sni, "%s", name);
		SSL_set_tlsext_host_name(c->ssl, sni);
	}
	r = SSL_connect(c->ssl);
	if (r != 1) {
		long v = SSL_get_verify_result(c->ssl);

		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			ERR_clear_error();
			return vc_error_set(err, -ETIMEDOUT, "%s: TLS handshake timed out after %d ms",
					    c->where, c->timeout_ms);
		}
		/* Only a verifying handshake has a verify result to blame. */
		if (tls->ca_file && v != X509_V_OK) {
			ERR_clear_error();
			return vc_error_set(err, -EPERM,
					    "%s: TLS handshake failed: server certificate not trusted: %s",
					    c->where, X509_verify_cert_error_string(v));
		}
		return ssl_fail(c, -EPROTO, "TLS handshake failed", err);
	}
	if (tls->pinned_sha256 && (r = check_pin(c, tls->pinned_sha256, err)) < 0)
		return r;
	return 0;
}

/* ---- framing -------------------------------------------------------------- */

static int io_fail(struct vc_kmip_conn *c, int ret, const char *what, struct vc_error *err)
{
	int e = SSL_get_error(c->ssl, ret);

	c->broken = true;
	if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) &&
	    (errno == EAGAIN || errno == EWOULDBLOCK)) {
		ERR_clear_error();
		return vc_error_set(err, -ETIMEDOUT, "%s: no %s within %d ms", c->where, what,
				    c->timeout_ms);
	}
	if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ret == 0)) {
		ERR_clear_error();
		return vc_error_set(err, -ECONNRESET, "%s: connection closed by the server",
				    c->where);
	}
	return ssl_fail(c, -EIO, what, err);
}

static int send_all(struct vc_kmip_conn *c, const uint8_t *p, size_t len, struct vc_error *err)
{
	while (len > 0) {
		int n = SSL_write(c->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));

		if (n <= 0)
			return io_fail(c, n, "request sent", err);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_all(struct vc_kmip_conn *c, uint8_t *p, size_t len, struct vc_error *err)
{
	while (len > 0) {
		int n = SSL_read(c->ssl, p, (int)(len > INT32_MAX ? INT32_MAX : len));

		if (n <= 0)
			return io_fail(c, n, "response", err);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A request: RequestMessage{RequestHeader{ProtocolVersion, BatchCount=1},
 * BatchItem{Operation, RequestPayload}} (KMIP 1.4 section 7.1). Returns
 * the root; *payload is where the operation's fields go. */
static struct vc_ttlv *request(const struct vc_kmip_conn *c, uint32_t op,
			       struct vc_ttlv **payload)
{
	struct vc_ttlv *root = vc_ttlv_new_structure(VC_KMIP_TAG_REQUEST_MESSAGE);
	struct vc_ttlv *hdr = vc_ttlv_add_structure(root, VC_KMIP_TAG_REQUEST_HEADER);
	struct vc_ttlv *pv = vc_ttlv_add_structure(hdr, VC_KMIP_TAG_PROTOCOL_VERSION);
	struct vc_ttlv *bi;

	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, c->major);
	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, c->minor);
	vc_ttlv_add_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, 1);
	bi = vc_ttlv_add_structure(root, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(bi, VC_KMIP_TAG_OPERATION, op);
	*payload = vc_ttlv_add_structure(bi, VC_KMIP_TAG_REQUEST_PAYLOAD);
	return root;
}

/* Send a request (consumed) and receive and decode the response, which
 * must be a KMIP response message. */
static int exchange(struct vc_kmip_conn *c, struct vc_ttlv *req, struct vc_ttlv **resp,
		    struct vc_error *err)
{
	uint8_t *wire = NULL, hdr[8];
	size_t len, total;
	struct vc_ttlv *root = NULL;
	int r;

	*resp = NULL;
	r = vc_ttlv_encode(req, &wire, &len, err);
	vc_ttlv_free(req);
	if (r < 0)
		return r;
	r = send_all(c, wire, len, err);
	vc_wipe(wire, len);
	free(wire);
	wire = NULL;
	if (r == 0)
		r = recv_all(c, hdr, sizeof hdr, err);
	if (r == 0 && (r = vc_ttlv_frame_length(hdr, &total, err)) < 0)
		vc_error_prefix(err, "%s: bad response", c->where);
	if (r == 0 && !(wire = malloc(total)))
		r = vc_error_set(err, -ENOMEM, "out of memory");
	if (r == 0) {
		memcpy(wire, hdr, sizeof hdr);
		r = recv_all(c, wire + sizeof hdr, total - sizeof hdr, err);
	}
	if (r == 0 && (r = vc_ttlv_decode(wire, total, &root, err)) < 0)
		vc_error_prefix(err, "%s: malformed response", c->where);
	if (wire) {
		vc_wipe(wire, total);
		free(wire);
	}
	if (r < 0)
		return r;
	if (root->tag != VC_KMIP_TAG_RESPONSE_MESSAGE || !vc_ttlv_find(root, VC_KMIP_TAG_BATCH_ITEM)) {
		vc_ttlv_free(root);
		return vc_error_set(err, -EBADMSG, "%s: response is not a KMIP response message",
				    c->where);
	}
	*resp = root;
	return 0;
}

/* The result of one batch item: 0 and its ResponsePayload (may be NULL),
 * or the failure as an error naming the reason. Error items may lack
 * Operation, Reason and Message (PyKMIP omits Operation). */
static int item_result(struct vc_kmip_conn *c, const struct vc_ttlv *bi, uint32_t op,
		       const struct vc_ttlv **payload, struct vc_error *err)
{
	uint32_t status, reason = 0;
	const char *msg = NULL;

	if (payload)
		*payload = NULL;
	if (vc_ttlv_get_enum(bi, VC_KMIP_TAG_RESULT_STATUS, &status, err) < 0)
		return vc_error_set(err, -EBADMSG, "%s: response batch item without a result status",
				    c->where);
	if (status != VC_KMIP_RESULT_SUCCESS) {
		if (vc_ttlv_get_enum(bi, VC_KMIP_TAG_RESULT_REASON, &reason, NULL) < 0)
			reason = 0;
		if (vc_ttlv_get_text(bi, VC_KMIP_TAG_RESULT_MESSAGE, &msg, NULL) < 0)
			msg = NULL;
		return vc_error_set(err, reason == VC_KMIP_REASON_ITEM_NOT_FOUND ? -ENOENT :
				    reason == VC_KMIP_REASON_PERMISSION_DENIED ? -EACCES : -EREMOTEIO,
				    "%s: %s: %s", c->where,
				    reason ? vc_kmip_reason_name(reason) :
				    status == 1 ? "Operation Failed" : "Operation Pending/Undone",
				    msg ? msg : vc_kmip_operation_name(op));
	}
	if (payload)
		*payload = vc_ttlv_find(bi, VC_KMIP_TAG_RESPONSE_PAYLOAD);
	return 0;
}

/* One operation: send, receive, and the result of the first batch item.
 * On success *resp is the response tree (caller frees) and *payload its
 * ResponsePayload (may be NULL). */
static int transact(struct vc_kmip_conn *c, struct vc_ttlv *req, uint32_t op,
		    struct vc_ttlv **resp, const struct vc_ttlv **payload,
		    struct vc_error *err)
{
	struct vc_ttlv *root;
	int r = exchange(c, req, &root, err);

	*resp = NULL;
	if (r < 0)
		return r;
	r = item_result(c, vc_ttlv_find(root, VC_KMIP_TAG_BATCH_ITEM), op, payload, err);
	if (r < 0) {
		vc_ttlv_free(root);
		return r;
	}
	*resp = root;
	return 0;
}

static int need_payload(struct vc_kmip_conn *c, struct vc_ttlv *resp,
			const struct vc_ttlv *payload, const char *op, struct vc_error *err)
{
	if (payload)
		return 0;
	vc_ttlv_free(resp);
	return vc_error_set(err, -EBADMSG, "%s: %s response has no payload", c->where, op);
}

static int take_uid(struct vc_kmip_conn *c, struct vc_ttlv *resp,
		    const struct vc_ttlv *payload, char **uid, struct vc_error *err)
{
	const char *s;
	int r = vc_ttlv_get_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, &s, err);

	if (r == 0 && !(*uid = strdup(s)))
		r = vc_error_set(err, -ENOMEM, "out of memory");
	if (r < 0)
		vc_error_prefix(err, "%s", c->where);
	vc_ttlv_free(resp);
	return r;
}

/* ---- connect -------------------------------------------------------------- */

int vc_kmip_discover_versions(struct vc_kmip_conn *c, int (*versions)[2], size_t max,
			      size_t *n, struct vc_error *err)
{
	static const int ours[][2] = { { 1, 4 }, { 1, 3 }, { 1, 2 }, { 1, 1 }, { 1, 0 } };
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_DISCOVER_VERSIONS, &payload);
	const struct vc_ttlv *out, *pv;
	struct vc_ttlv *resp;
	int r;

	for (size_t i = 0; i < VC_ARRAY_SIZE(ours); i++) {
		struct vc_ttlv *v = vc_ttlv_add_structure(payload, VC_KMIP_TAG_PROTOCOL_VERSION);

		vc_ttlv_add_integer(v, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, ours[i][0]);
		vc_ttlv_add_integer(v, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, ours[i][1]);
	}
	if ((r = transact(c, req, VC_KMIP_OP_DISCOVER_VERSIONS, &resp, &out, err)) < 0)
		return r;
	*n = 0;
	for (pv = out ? vc_ttlv_find(out, VC_KMIP_TAG_PROTOCOL_VERSION) : NULL; pv && *n < max;
	     pv = vc_ttlv_find_next(pv)) {
		int32_t major, minor;

		if (vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, &major, err) < 0 ||
		    vc_ttlv_get_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, &minor, err) < 0) {
			vc_ttlv_free(resp);
			vc_error_prefix(err, "%s: bad Discover Versions response", c->where);
			return -EBADMSG;
		}
		versions[*n][0] = major;
		versions[*n][1] = minor;
		(*n)++;
	}
	vc_ttlv_free(resp);
	return 0;
}

int vc_kmip_connect(const char *host, uint16_t port, const struct vc_kmip_tls *tls,
		    struct vc_kmip_conn **out, struct vc_error *err)
{
	struct vc_kmip_conn *c = calloc(1, sizeof *c);
	int versions[8][2];
	size_t n;
	int r;

	*out = NULL;
	if (!c)
		return vc_error_set(err, -ENOMEM, "out of memory");
	c->fd = -1;
	c->timeout_ms = tls->timeout_ms > 0 ? tls->timeout_ms : DEFAULT_TIMEOUT_MS;
	snprintf(c->where, sizeof c->where, strchr(host, ':') ? "key server [%s]:%u"
							     : "key server %s:%u", host, port);
	/* Start at 1.2 (what most servers speak) to send Discover Versions,
	 * which 1.1 introduced; then use the newest version both know. */
	c->major = 1;
	c->minor = 2;
	if ((r = check_config(c, tls, err)) < 0 || (r = tcp_connect(c, host, port, err)) < 0 ||
	    (r = tls_start(c, host, tls, err)) < 0)
		goto fail;
	r = vc_kmip_discover_versions(c, versions, VC_ARRAY_SIZE(versions), &n, err);
	if (r < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (versions[i][0] == 1 && versions[i][1] >= 0 && versions[i][1] <= 4) {
			c->minor = versions[i][1];
			*out = c;
			return 0;
		}
	}
	r = vc_error_set(err, -EPROTONOSUPPORT,
			 "%s: the server supports no KMIP version from 1.0 to 1.4", c->where);
fail:
	vc_kmip_close(c);
	return r;
}

void vc_kmip_close(struct vc_kmip_conn *c)
{
	if (!c)
		return;
	if (c->ssl) {
		/* Writing close_notify to a dead peer would only raise SIGPIPE
		 * or block until the timeout. */
		if (!c->broken && SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

void vc_kmip_version(const struct vc_kmip_conn *c, int *major, int *minor)
{
	*major = c->major;
	*minor = c->minor;
}

/* ---- operations ----------------------------------------------------------- */

static struct vc_ttlv *add_attribute(struct vc_ttlv *parent, const char *name)
{
	struct vc_ttlv *a = vc_ttlv_add_structure(parent, VC_KMIP_TAG_ATTRIBUTE);

	vc_ttlv_add_text(a, VC_KMIP_TAG_ATTRIBUTE_NAME, name);
	return a;
}

static void add_name(struct vc_ttlv *parent, const char *name)
{
	struct vc_ttlv *v = vc_ttlv_add_structure(add_attribute(parent, "Name"),
						  VC_KMIP_TAG_ATTRIBUTE_VALUE);

	vc_ttlv_add_text(v, VC_KMIP_TAG_NAME_VALUE, name);
	vc_ttlv_add_enum(v, VC_KMIP_TAG_NAME_TYPE, VC_KMIP_NAME_UNINTERPRETED_TEXT);
}

/* Algorithm AES, the length, Encrypt|Decrypt usage and an optional name:
 * what PyKMIP and other servers accept for a symmetric key. */
static void add_aes_attributes(struct vc_ttlv *parent, int32_t bits, const char *name)
{
	vc_ttlv_add_enum(add_attribute(parent, "Cryptographic Algorithm"),
			 VC_KMIP_TAG_ATTRIBUTE_VALUE, VC_KMIP_ALG_AES);
	vc_ttlv_add_integer(add_attribute(parent, "Cryptographic Length"),
			    VC_KMIP_TAG_ATTRIBUTE_VALUE, bits);
	vc_ttlv_add_integer(add_attribute(parent, "Cryptographic Usage Mask"),
			    VC_KMIP_TAG_ATTRIBUTE_VALUE,
			    VC_KMIP_USAGE_ENCRYPT | VC_KMIP_USAGE_DECRYPT);
	if (name)
		add_name(parent, name);
}

int vc_kmip_create_aes256(struct vc_kmip_conn *c, const char *name, char **uid,
			  struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_CREATE, &payload), *resp;
	const struct vc_ttlv *out;
	int r;

	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes_attributes(vc_ttlv_add_structure(payload, VC_KMIP_TAG_TEMPLATE_ATTRIBUTE), 256,
			   name);
	if ((r = transact(c, req, VC_KMIP_OP_CREATE, &resp, &out, err)) < 0 ||
	    (r = need_payload(c, resp, out, "Create", err)) < 0)
		return r;
	return take_uid(c, resp, out, uid, err);
}

int vc_kmip_register_aes(struct vc_kmip_conn *c, const struct vc_secret *key, const char *name,
			 char **uid, struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_REGISTER, &payload), *resp;
	struct vc_ttlv *kb, *kv;
	const struct vc_ttlv *out;
	size_t len = vc_secret_len(key);
	int r;

	if (len != 16 && len != 24 && len != 32) {
		vc_ttlv_free(req);
		return vc_error_set(err, -EINVAL, "an AES key is 16, 24 or 32 bytes");
	}
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes_attributes(vc_ttlv_add_structure(payload, VC_KMIP_TAG_TEMPLATE_ATTRIBUTE),
			   (int32_t)len * 8, name);
	kb = vc_ttlv_add_structure(vc_ttlv_add_structure(payload, VC_KMIP_TAG_SYMMETRIC_KEY),
				   VC_KMIP_TAG_KEY_BLOCK);
	vc_ttlv_add_enum(kb, VC_KMIP_TAG_KEY_FORMAT_TYPE, VC_KMIP_KEY_FORMAT_RAW);
	kv = vc_ttlv_add_structure(kb, VC_KMIP_TAG_KEY_VALUE);
	vc_ttlv_add_secret(kv, VC_KMIP_TAG_KEY_MATERIAL, vc_secret_data(key), len);
	vc_ttlv_add_enum(kb, VC_KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM, VC_KMIP_ALG_AES);
	vc_ttlv_add_integer(kb, VC_KMIP_TAG_CRYPTOGRAPHIC_LENGTH, (int32_t)len * 8);
	if ((r = transact(c, req, VC_KMIP_OP_REGISTER, &resp, &out, err)) < 0 ||
	    (r = need_payload(c, resp, out, "Register", err)) < 0)
		return r;
	return take_uid(c, resp, out, uid, err);
}

/* Operations whose request is just a Unique Identifier. */
static int simple(struct vc_kmip_conn *c, uint32_t op, const char *uid,
		  struct vc_ttlv **resp, const struct vc_ttlv **out, struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, op, &payload);

	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, uid);
	return transact(c, req, op, resp, out, err);
}

/* The key material of a Get response payload. */
static int parse_key(struct vc_kmip_conn *c, const struct vc_ttlv *out, const char *uid,
		     struct vc_secret **key, struct vc_error *err)
{
	const struct vc_ttlv *sk, *kb, *kv;
	const uint8_t *material;
	uint32_t fmt;
	size_t len;
	int r;

	if (!out)
		return vc_error_set(err, -EBADMSG, "%s: Get response has no payload", c->where);
	if (!vc_ttlv_find(out, VC_KMIP_TAG_SYMMETRIC_KEY))
		return vc_error_set(err, -EINVAL, "%s: object '%s' is not a symmetric key",
				    c->where, uid);
	r = vc_ttlv_get_structure(out, VC_KMIP_TAG_SYMMETRIC_KEY, &sk, err);
	if (r == 0)
		r = vc_ttlv_get_structure(sk, VC_KMIP_TAG_KEY_BLOCK, &kb, err);
	if (r == 0)
		r = vc_ttlv_get_enum(kb, VC_KMIP_TAG_KEY_FORMAT_TYPE, &fmt, err);
	if (r == 0 && fmt != VC_KMIP_KEY_FORMAT_RAW && fmt != VC_KMIP_KEY_FORMAT_TRANSPARENT_SYMMETRIC)
		r = vc_error_set(err, -ENOTSUP, "key format type %u is not supported", fmt);
	if (r == 0)
		r = vc_ttlv_get_structure(kb, VC_KMIP_TAG_KEY_VALUE, &kv, err);
	if (r == 0 && fmt == VC_KMIP_KEY_FORMAT_TRANSPARENT_SYMMETRIC)
		r = vc_ttlv_get_structure(kv, VC_KMIP_TAG_KEY_MATERIAL, &kv, err);
	if (r == 0)
		r = vc_ttlv_get_bytes(kv, fmt == VC_KMIP_KEY_FORMAT_RAW ? VC_KMIP_TAG_KEY_MATERIAL
								      : VC_KMIP_TAG_KEY,
				      &material, &len, err);
	if (r == 0 && (len == 0 || len > 64))
		r = vc_error_set(err, -EBADMSG, "key material of %zu bytes", len);
	if (r == 0)
		r = vc_secret_from_bytes(material, len, key, err);
	if (r < 0)
		vc_error_prefix(err, "%s: Get '%s'", c->where, uid);
	return r;
}

int vc_kmip_get(struct vc_kmip_conn *c, const char *uid, struct vc_secret **key,
		struct vc_error *err)
{
	const struct vc_ttlv *out;
	struct vc_ttlv *resp;
	int r;

	*key = NULL;
	if ((r = simple(c, VC_KMIP_OP_GET, uid, &resp, &out, err)) < 0)
		return r;
	r = parse_key(c, out, uid, key, err);
	vc_ttlv_free(resp);
	return r;
}

int vc_kmip_create_get_aes256(struct vc_kmip_conn *c, const char *name, char **uid,
			      struct vc_secret **key, struct vc_error *err)
{
	static const uint8_t id1 = 1, id2 = 2;
	struct vc_ttlv *root = vc_ttlv_new_structure(VC_KMIP_TAG_REQUEST_MESSAGE);
	struct vc_ttlv *hdr = vc_ttlv_add_structure(root, VC_KMIP_TAG_REQUEST_HEADER);
	struct vc_ttlv *pv = vc_ttlv_add_structure(hdr, VC_KMIP_TAG_PROTOCOL_VERSION);
	struct vc_ttlv *bi, *payload, *resp;
	const struct vc_ttlv *item, *out;
	const char *s;
	int r;

	*uid = NULL;
	*key = NULL;
	/* KMIP 1.4 section 7.2: two batch items; the Get names no object and
	 * so uses the ID Placeholder the Create sets. */
	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MAJOR, c->major);
	vc_ttlv_add_integer(pv, VC_KMIP_TAG_PROTOCOL_VERSION_MINOR, c->minor);
	vc_ttlv_add_integer(hdr, VC_KMIP_TAG_BATCH_COUNT, 2);
	bi = vc_ttlv_add_structure(root, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(bi, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_CREATE);
	vc_ttlv_add_bytes(bi, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id1, 1);
	payload = vc_ttlv_add_structure(bi, VC_KMIP_TAG_REQUEST_PAYLOAD);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_OBJECT_TYPE, VC_KMIP_OBJ_SYMMETRIC_KEY);
	add_aes_attributes(vc_ttlv_add_structure(payload, VC_KMIP_TAG_TEMPLATE_ATTRIBUTE), 256,
			   name);
	bi = vc_ttlv_add_structure(root, VC_KMIP_TAG_BATCH_ITEM);
	vc_ttlv_add_enum(bi, VC_KMIP_TAG_OPERATION, VC_KMIP_OP_GET);
	vc_ttlv_add_bytes(bi, VC_KMIP_TAG_UNIQUE_BATCH_ITEM_ID, &id2, 1);
	vc_ttlv_add_structure(bi, VC_KMIP_TAG_REQUEST_PAYLOAD);
	if ((r = exchange(c, root, &resp, err)) < 0)
		return r;
	item = vc_ttlv_find(resp, VC_KMIP_TAG_BATCH_ITEM);
	r = item_result(c, item, VC_KMIP_OP_CREATE, &out, err);
	if (r == 0 && (!out || vc_ttlv_get_text(out, VC_KMIP_TAG_UNIQUE_IDENTIFIER, &s, err) < 0))
		r = vc_error_set(err, -EBADMSG, "%s: Create response has no Unique Identifier",
				 c->where);
	if (r == 0 && !(*uid = strdup(s)))
		r = vc_error_set(err, -ENOMEM, "out of memory");
	if (r == 0 && !(item = vc_ttlv_find_next(item)))
		r = vc_error_set(err, -EBADMSG, "%s: batched Get has no response", c->where);
	if (r == 0)
		r = item_result(c, item, VC_KMIP_OP_GET, &out, err);
	if (r == 0)
		r = parse_key(c, out, *uid, key, err);
	if (r < 0 && *uid) {
		/* Nothing is returned on failure; the key may still exist on
		 * the server (an orphan that locate shows). */
		free(*uid);
		*uid = NULL;
	}
	vc_ttlv_free(resp);
	return r;
}

static int no_payload_op(struct vc_kmip_conn *c, uint32_t op, const char *uid,
			 struct vc_error *err)
{
	struct vc_ttlv *resp;
	int r = simple(c, op, uid, &resp, NULL, err);

	vc_ttlv_free(resp);
	return r;
}

int vc_kmip_activate(struct vc_kmip_conn *c, const char *uid, struct vc_error *err)
{
	return no_payload_op(c, VC_KMIP_OP_ACTIVATE, uid, err);
}

int vc_kmip_destroy(struct vc_kmip_conn *c, const char *uid, struct vc_error *err)
{
	return no_payload_op(c, VC_KMIP_OP_DESTROY, uid, err);
}

int vc_kmip_revoke(struct vc_kmip_conn *c, const char *uid, bool compromised,
		   struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_REVOKE, &payload), *resp, *rr;
	int r;

	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, uid);
	rr = vc_ttlv_add_structure(payload, VC_KMIP_TAG_REVOCATION_REASON);
	vc_ttlv_add_enum(rr, VC_KMIP_TAG_REVOCATION_REASON_CODE,
			 compromised ? VC_KMIP_REVOKE_KEY_COMPROMISE
				     : VC_KMIP_REVOKE_CESSATION_OF_OPERATION);
	if (compromised)
		vc_ttlv_add_datetime(payload, VC_KMIP_TAG_COMPROMISE_OCCURRENCE_DATE,
				     (int64_t)time(NULL));
	r = transact(c, req, VC_KMIP_OP_REVOKE, &resp, NULL, err);
	vc_ttlv_free(resp);
	return r;
}

int vc_kmip_locate(struct vc_kmip_conn *c, const char *name, uint32_t algorithm, char **uids,
		   size_t max, size_t *n, struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_LOCATE, &payload), *resp;
	const struct vc_ttlv *out, *u;
	int r;

	*n = 0;
	if (name)
		add_name(payload, name);
	if (algorithm)
		vc_ttlv_add_enum(add_attribute(payload, "Cryptographic Algorithm"),
				 VC_KMIP_TAG_ATTRIBUTE_VALUE, algorithm);
	if ((r = transact(c, req, VC_KMIP_OP_LOCATE, &resp, &out, err)) < 0)
		return r;
	for (u = out ? vc_ttlv_find(out, VC_KMIP_TAG_UNIQUE_IDENTIFIER) : NULL; u && *n < max;
	     u = vc_ttlv_find_next(u)) {
		if (u->type != VC_TTLV_TEXT_STRING ||
		    !(uids[*n] = strdup((const char *)u->v.bytes.data))) {
			r = vc_error_set(err, u->type != VC_TTLV_TEXT_STRING ? -EBADMSG : -ENOMEM,
					 "%s: bad Locate response", c->where);
			break;
		}
		(*n)++;
	}
	if (r < 0) {
		for (size_t i = 0; i < *n; i++)
			free(uids[i]);
		*n = 0;
	}
	vc_ttlv_free(resp);
	return r;
}

static void append(char **text, size_t *len, const char *line)
{
	size_t l = strlen(line);
	char *t = realloc(*text, *len + l + 2);

	if (!t)
		return;
	memcpy(t + *len, line, l);
	t[*len + l] = '\n';
	t[*len + l + 1] = '\0';
	*text = t;
	*len += l + 1;
}

int vc_kmip_get_attributes(struct vc_kmip_conn *c, const char *uid, struct vc_kmip_attrs *a,
			   struct vc_error *err)
{
	const struct vc_ttlv *out, *attr;
	struct vc_ttlv *resp;
	size_t textlen = 0;
	int r;

	memset(a, 0, sizeof *a);
	if ((r = simple(c, VC_KMIP_OP_GET_ATTRIBUTES, uid, &resp, &out, err)) < 0 ||
	    (r = need_payload(c, resp, out, "Get Attributes", err)) < 0)
		return r;
	for (attr = vc_ttlv_find(out, VC_KMIP_TAG_ATTRIBUTE); attr; attr = vc_ttlv_find_next(attr)) {
		const struct vc_ttlv *v = vc_ttlv_find(attr, VC_KMIP_TAG_ATTRIBUTE_VALUE);
		const char *an = NULL;
		char line[600];

		if (vc_ttlv_get_text(attr, VC_KMIP_TAG_ATTRIBUTE_NAME, &an, NULL) < 0 || !v)
			continue;
		switch (v->type) {
		case VC_TTLV_TEXT_STRING:
			snprintf(line, sizeof line, "%s: %s", an, (const char *)v->v.bytes.data);
			break;
		case VC_TTLV_INTEGER:
			snprintf(line, sizeof line, "%s: %d", an, v->v.i32);
			if (!strcmp(an, "Cryptographic Length"))
				a->length = v->v.i32;
			break;
		case VC_TTLV_ENUMERATION:
			snprintf(line, sizeof line, "%s: %u", an, v->v.u32);
			if (!strcmp(an, "State"))
				a->state = v->v.u32;
			if (!strcmp(an, "Cryptographic Algorithm"))
				a->algorithm = v->v.u32;
			break;
		case VC_TTLV_BOOLEAN:
			snprintf(line, sizeof line, "%s: %s", an, v->v.boolean ? "true" : "false");
			break;
		case VC_TTLV_DATE_TIME:
		case VC_TTLV_LONG_INTEGER:
			snprintf(line, sizeof line, "%s: %lld", an, (long long)v->v.i64);
			break;
		case VC_TTLV_STRUCTURE: {
			const char *nv;

			if (!strcmp(an, "Name") &&
			    vc_ttlv_get_text(v, VC_KMIP_TAG_NAME_VALUE, &nv, NULL) == 0) {
				snprintf(line, sizeof line, "%s: %s", an, nv);
				snprintf(a->name, sizeof a->name, "%s", nv);
			} else {
				snprintf(line, sizeof line, "%s: (structure)", an);
			}
			break;
		}
		default:
			snprintf(line, sizeof line, "%s: (type %u)", an, v->type);
		}
		append(&a->text, &textlen, line);
	}
	vc_ttlv_free(resp);
	return 0;
}

void vc_kmip_attrs_clear(struct vc_kmip_attrs *a)
{
	free(a->text);
	memset(a, 0, sizeof *a);
}

static int text_attribute_op(struct vc_kmip_conn *c, uint32_t op, const char *uid,
			     const char *attr, const char *value, struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, op, &payload), *resp;
	int r;

	vc_ttlv_add_text(payload, VC_KMIP_TAG_UNIQUE_IDENTIFIER, uid);
	vc_ttlv_add_text(add_attribute(payload, attr), VC_KMIP_TAG_ATTRIBUTE_VALUE, value);
	r = transact(c, req, op, &resp, NULL, err);
	vc_ttlv_free(resp);
	return r;
}

int vc_kmip_add_attribute(struct vc_kmip_conn *c, const char *uid, const char *attr,
			  const char *value, struct vc_error *err)
{
	return text_attribute_op(c, VC_KMIP_OP_ADD_ATTRIBUTE, uid, attr, value, err);
}

int vc_kmip_modify_attribute(struct vc_kmip_conn *c, const char *uid, const char *attr,
			     const char *value, struct vc_error *err)
{
	return text_attribute_op(c, VC_KMIP_OP_MODIFY_ATTRIBUTE, uid, attr, value, err);
}

int vc_kmip_query(struct vc_kmip_conn *c, char **vendor, uint32_t *ops, size_t max_ops,
		  size_t *n_ops, struct vc_error *err)
{
	struct vc_ttlv *payload, *req = request(c, VC_KMIP_OP_QUERY, &payload), *resp;
	const struct vc_ttlv *out, *o;
	const char *v = NULL;
	int r;

	*vendor = NULL;
	*n_ops = 0;
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_QUERY_FUNCTION, VC_KMIP_QUERY_OPERATIONS);
	vc_ttlv_add_enum(payload, VC_KMIP_TAG_QUERY_FUNCTION, VC_KMIP_QUERY_SERVER_INFORMATION);
	if ((r = transact(c, req, VC_KMIP_OP_QUERY, &resp, &out, err)) < 0)
		return r;
	for (o = out ? vc_ttlv_find(out, VC_KMIP_TAG_OPERATION) : NULL; o && *n_ops < max_ops;
	     o = vc_ttlv_find_next(o))
		if (o->type == VC_TTLV_ENUMERATION)
			ops[(*n_ops)++] = o->v.u32;
	if (out && vc_ttlv_get_text(out, VC_KMIP_TAG_VENDOR_IDENTIFICATION, &v, NULL) < 0)
		v = NULL;
	if (v && !(*vendor = strdup(v)))
		r = vc_error_set(err, -ENOMEM, "out of memory");
	vc_ttlv_free(resp);
	return r;
}
