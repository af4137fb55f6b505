/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt-hostd: the host agent (ESXi's part). This first part: its TLS
 * identity, the claim by one manager whose certificate it pins from then
 * on, host encryption mode, and the key cache in locked memory. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hostd.h"
#include "vm.h"
#include "request.h"
#include "vc_crypto.h"
#include "vc_encode.h"
#include "vc_json.h"
#include "https.h"
#include "vc_log.h"
#include "vc_passwd.h"
#include "vc_secmem.h"
#include "vc_tlscert.h"
#include "vc_uuid.h"

#ifndef VMCRYPT_VERSION
#define VMCRYPT_VERSION "unknown"
#endif

/* Once claimed, a connection without the manager's certificate does not
 * even finish its handshake. */
static void set_verify(struct hostd *h)
{
	SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER |
				   (h->claimed ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
}

/* ---- replies ---- */
void reply_json(struct hreq *r, int status, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (b && s)
		evbuffer_add(b, s, strlen(s));
	evhttp_add_header(evhttp_request_get_output_headers(r->er), "Content-Type",
			  "application/json");
	evhttp_send_reply(r->er, s ? status : 500, NULL, b);
	vc_json_free_dump(s);
	if (b)
		evbuffer_free(b);
}

void reply_error(struct hreq *r, int status, const char *code, const char *fmt, ...)
{
	char msg[VC_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	reply_json(r, status, json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

/* ---- persistent state ---- */
static void state_path(struct hostd *h, char *out, size_t len)
{
	snprintf(out, len, "%s/host.json", h->data_dir);
}

int state_save(struct hostd *h, struct vc_error *err)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8], mfp[65], th[65];
	json_t *j;
	char *s;
	int fd, ret = 0;

	vc_hex_encode(h->manager_fp, 32, mfp);
	vc_hex_encode(h->token_hash, 32, th);
	j = json_pack("{s:i,s:s,s:o,s:o,s:b,s:o}", "version", 1, "host_id", h->host_id,
		      "manager_thumbprint", h->claimed ? json_string(mfp) : json_null(),
		      "join_token_sha256", h->claimed ? json_null() : json_string(th),
		      "encryption_mode", h->encryption_mode, "host_key",
		      h->hk_key_id[0] ? json_pack("{s:s,s:s,s:s}", "provider", h->hk_provider,
						  "key_id", h->hk_key_id, "wrapped", h->hk_wrapped)
				      : json_null());
	s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
	json_decref(j);
	if (!s)
		return vc_error_set(err, -ENOMEM, "out of memory");
	state_path(h, path, sizeof path);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		ret = vc_error_errno(err, errno, "cannot write %s", tmp);
	else if (write(fd, s, strlen(s)) != (ssize_t)strlen(s) || fsync(fd) < 0)
		ret = vc_error_errno(err, errno, "cannot write %s", tmp);
	if (fd >= 0 && close(fd) < 0 && ret == 0)
		ret = vc_error_errno(err, errno, "cannot write %s", tmp);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = vc_error_errno(err, errno, "cannot replace %s", path);
	if (ret < 0)
		unlink(tmp);
	vc_json_free_dump(s);
	return ret;
}

static int hex32(json_t *v, uint8_t out[32])
{
	size_t n = 0;

	return json_is_string(v) && json_string_length(v) == 64 &&
			       vc_hex_decode(json_string_value(v), 64, out, 32, &n) == 0 && n == 32
		       ? 0 : -EINVAL;
}

static int state_load(struct hostd *h, bool *first, struct vc_error *err)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *j, *m;
	int fd;

	state_path(h, path, sizeof path);
	fd = vc_private_file_open(path, "host state", err);
	*first = fd == -ENOENT;
	if (*first)
		return 0;
	if (fd < 0)
		return fd;
	j = json_loadfd(fd, JSON_REJECT_DUPLICATES, &je);
	close(fd);
	if (!j)
		return vc_error_set(err, -EBADMSG, "%s is damaged: %s", path, je.text);
	m = json_object_get(j, "manager_thumbprint");
	h->claimed = json_is_string(m);
	if (json_integer_value(json_object_get(j, "version")) != 1 ||
	    !json_is_string(json_object_get(j, "host_id")) ||
	    json_string_length(json_object_get(j, "host_id")) != VC_UUID_STR_LEN - 1 ||
	    (h->claimed ? hex32(m, h->manager_fp)
			: hex32(json_object_get(j, "join_token_sha256"), h->token_hash)) < 0 ||
	    !json_is_boolean(json_object_get(j, "encryption_mode"))) {
		json_decref(j);
		return vc_error_set(err, -EBADMSG, "%s is damaged (fields)", path);
	}
	memcpy(h->host_id, json_string_value(json_object_get(j, "host_id")), VC_UUID_STR_LEN);
	h->encryption_mode = json_is_true(json_object_get(j, "encryption_mode"));
	{
		json_t *hk = json_object_get(j, "host_key");
		const char *p = json_string_value(json_object_get(hk, "provider"));
		const char *k = json_string_value(json_object_get(hk, "key_id"));
		const char *w = json_string_value(json_object_get(hk, "wrapped"));

		if (hk && !json_is_null(hk) &&
		    (!p || !k || !w || strlen(p) >= sizeof h->hk_provider ||
		     strlen(k) >= sizeof h->hk_key_id || strlen(w) >= sizeof h->hk_wrapped)) {
			json_decref(j);
			return vc_error_set(err, -EBADMSG, "%s is damaged (host key)", path);
		}
		if (p && k && w) {
			snprintf(h->hk_provider, sizeof h->hk_provider, "%s", p);
			snprintf(h->hk_key_id, sizeof h->hk_key_id, "%s", k);
			snprintf(h->hk_wrapped, sizeof h->hk_wrapped, "%s", w);
		}
	}
	json_decref(j);
	return 0;
}

/* First start: a host id and a join token, printed once; only its hash is
 * kept. */
static int first_start(struct hostd *h, struct vc_error *err)
{
	struct vc_uuid u;
	struct vc_secret *tok = NULL;
	int ret = vc_uuid_generate(&u, err);

	if (ret == 0)
		ret = vc_passwd_generate(VC_PASSWD_GEN_DEFAULT, &tok, err);
	if (ret == 0)
		ret = vc_sha256(vc_secret_data(tok), vc_secret_len(tok), h->token_hash, err);
	if (ret == 0) {
		vc_uuid_format(&u, h->host_id);
		ret = state_save(h, err);
	}
	if (ret == 0)
		fprintf(stderr, "vmcrypt-hostd: first start: join token: %.*s (give it to the "
			"manager with the host's thumbprint to add this host)\n",
			(int)vc_secret_len(tok), (const char *)vc_secret_data(tok));
	vc_secret_free(tok);
	return ret;
}

/* ---- TLS: the manager is known by its certificate's thumbprint ---- */
static int verify_peer(X509_STORE_CTX *x, void *arg)
{
	struct hostd *h = arg;
	uint8_t fp[32];

	/* Before the claim any client certificate may connect (the join
	 * token decides); after it, only the pinned one gets a handshake. */
	if (!h->claimed)
		return 1;
	if (vc_tls_fingerprint(X509_STORE_CTX_get0_cert(x), fp) < 0 ||
	    !vc_ct_equal(fp, h->manager_fp, 32)) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	return 1;
}

static void peer_of(struct hreq *r)
{
	struct evhttp_connection *c = evhttp_request_get_connection(r->er);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	r->have_peer = x && vc_tls_fingerprint(x, r->peer_fp) == 0;
	X509_free(x);
}

/* ---- handlers ---- */
static json_t *host_json(struct hostd *h)
{
	json_t *ids = json_array();

	for (struct cached_key *k = h->keys; k; k = k->next)
		json_array_append_new(ids, json_pack("{s:s,s:s}", "provider", k->provider,
						     "key_id", k->key_id));
	return json_pack("{s:s,s:s,s:b,s:b,s:s,s:o,s:o}", "host_id", h->host_id, "version",
			 VMCRYPT_VERSION, "claimed", h->claimed, "encryption_mode",
			 h->encryption_mode, "thumbprint", h->own_fp, "keys", ids, "host_key",
			 h->hk_key_id[0] ? json_pack("{s:s,s:s}", "provider", h->hk_provider,
						     "key_id", h->hk_key_id) : json_null());
}

static void h_claim(struct hreq *r)
{
	struct hostd *h = r->h;
	json_t *tv = json_object_get(r->body, "join_token");
	uint8_t th[32];
	char mfp[65];
	struct vc_error err = { 0 };

	if (h->claimed) {
		reply_error(r, 409, "conflict", "this host is already managed");
		return;
	}
	if (!r->have_peer) {
		reply_error(r, 401, "unauthorized", "the manager must present its certificate");
		return;
	}
	if (vc_sha256(json_string_value(tv), json_string_length(tv), th, &err) < 0 ||
	    !vc_ct_equal(th, h->token_hash, 32)) {
		vc_log(VC_LOG_WARN, "claim refused: wrong join token");
		reply_error(r, 403, "forbidden", "wrong join token");
		return;
	}
	memcpy(h->manager_fp, r->peer_fp, 32);
	h->claimed = true;
	if (state_save(h, &err) < 0) {
		h->claimed = false;
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	set_verify(h);
	vc_hex_encode(h->manager_fp, 32, mfp);
	vc_log(VC_LOG_INFO, "claimed by the manager with certificate SHA-256 %s", mfp);
	reply_json(r, 200, host_json(h));
}

static void h_info(struct hreq *r)
{
	reply_json(r, 200, host_json(r->h));
}

static void keys_flush(struct hostd *h)
{
	while (h->keys) {
		struct cached_key *k = h->keys;

		h->keys = k->next;
		vc_secret_free(k->key);
		free(k);
	}
	h->nkeys = 0;
}

static void h_mode(struct hreq *r)
{
	struct hostd *h = r->h;
	bool on = json_is_true(json_object_get(r->body, "enabled"));
	struct vc_error err = { 0 };

	if (h->encryption_mode == on) {
		reply_json(r, 200, host_json(h));
		return;
	}
	h->encryption_mode = on;
	if (state_save(h, &err) < 0) {
		h->encryption_mode = !on;
		reply_error(r, 500, "internal", "%s", vc_error_msg(&err));
		return;
	}
	if (!on)
		keys_flush(h);
	vc_log(VC_LOG_INFO, "host encryption mode %s", on ? "enabled" : "disabled");
	reply_json(r, 200, host_json(h));
}

void key_drop(struct hostd *h, const char *prov, const char *id)
{
	for (struct cached_key **pp = &h->keys; *pp; pp = &(*pp)->next) {
		struct cached_key *k = *pp;

		if (!strcmp(k->provider, prov) && !strcmp(k->key_id, id)) {
			*pp = k->next;
			vc_secret_free(k->key);
			free(k);
			h->nkeys--;
			return;
		}
	}
}

struct cached_key *key_find(struct hostd *h, const char *prov, const char *id)
{
	for (struct cached_key *k = h->keys; k; k = k->next)
		if (!strcmp(k->provider, prov) && !strcmp(k->key_id, id))
			return k;
	return NULL;
}

/* Decode one "key" (44 base64 characters) into a new locked secret. */
static int decode_key(json_t *e, struct vc_secret **out)
{
	const char *b64 = json_string_value(json_object_get(e, "key"));
	size_t n = 0;

	if (vc_secret_new(32, out, NULL) < 0)
		return -ENOMEM; /* locked memory exhausted (RLIMIT_MEMLOCK, map count) */
	if (vc_base64_decode(b64, strlen(b64), vc_secret_data(*out), 32, &n) < 0 || n != 32) {
		vc_secret_free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

static void h_keys_put(struct hreq *r)
{
	struct hostd *h = r->h;
	json_t *arr = json_object_get(r->body, "keys"), *e;
	struct vc_secret *dec[KEYS_PER_CALL] = { 0 };
	size_t i, n = json_array_size(arr), added = 0;

	if (!h->encryption_mode) {
		reply_error(r, 409, "conflict", "host encryption mode is off: it holds no keys");
		return;
	}
	/* Decode every key before changing the cache: a bad entry stores
	 * nothing. */
	size_t fresh = 0;

	json_array_foreach(arr, i, e) {
		int ret = decode_key(e, &dec[i]);

		if (ret < 0) {
			for (size_t j = 0; j < i; j++)
				vc_secret_free(dec[j]);
			if (ret == -ENOMEM)
				reply_error(r, 503, "insufficient_memory", "cannot lock memory for more "
					    "keys (RLIMIT_MEMLOCK): %zu keys are cached", h->nkeys);
			else
				reply_error(r, 400, "bad_request", "keys[%zu].key is not 32 bytes of "
					    "base64", i);
			return;
		}
		fresh += !key_find(h, json_string_value(json_object_get(e, "provider")),
				   json_string_value(json_object_get(e, "key_id")));
	}
	if (h->nkeys + fresh > KEYS_MAX) {
		for (size_t j = 0; j < n; j++)
			vc_secret_free(dec[j]);
		reply_error(r, 507, "insufficient_storage", "the key cache is full (%d keys)",
			    KEYS_MAX);
		return;
	}
	for (i = 0; i < n; i++) {
		e = json_array_get(arr, i);
		const char *prov = json_string_value(json_object_get(e, "provider"));
		const char *id = json_string_value(json_object_get(e, "key_id"));
		struct cached_key *k = key_find(h, prov, id);

		if (!k && h->nkeys < KEYS_MAX && (k = calloc(1, sizeof *k))) {
			snprintf(k->provider, sizeof k->provider, "%s", prov);
			snprintf(k->key_id, sizeof k->key_id, "%s", id);
			k->next = h->keys;
			h->keys = k;
			h->nkeys++;
			added++;
		}
		if (!k) {
			for (size_t j = i; j < n; j++)
				vc_secret_free(dec[j]);
			reply_error(r, 507, "insufficient_storage", "the key cache is full");
			return;
		}
		vc_secret_free(k->key);
		k->key = dec[i];
	}
	reply_json(r, 200, json_pack("{s:I,s:I}", "added", (json_int_t)added, "cached",
				     (json_int_t)h->nkeys));
}

static void h_keys_flush(struct hreq *r)
{
	keys_flush(r->h);
	evhttp_send_reply(r->er, 204, NULL, NULL);
}

static const struct vc_field claim_f[] = { { "join_token", VC_F_STRING, true, 1, 1024, NULL, NULL },
					   { 0 } };
static const struct vc_field mode_f[] = { { "enabled", VC_F_BOOL, true, 0, 0, NULL, NULL },
					  { 0 } };
static const struct vc_field key_entry_f[] = {
	{ "provider", VC_F_NAME, true, 0, 0, NULL, NULL },
	{ "key_id", VC_F_STRING, true, 1, 127, NULL, NULL },
	{ "key", VC_F_STRING, true, 44, 44, NULL, NULL },
	{ 0 },
};
static const struct vc_field keys_f[] = { { "keys", VC_F_OBJECTS, true, 1, KEYS_PER_CALL,
					    key_entry_f, NULL },
					  { 0 } };

static const struct {
	int method;
	const char *pattern;
	bool before_claim;           /* the only calls an unclaimed host takes */
	const struct vc_field *fields;
	void (*fn)(struct hreq *r);
} routes[] = {
	{ EVHTTP_REQ_POST, "/api/v1/host/claim", true, claim_f, h_claim },
	{ EVHTTP_REQ_GET, "/api/v1/host", false, NULL, h_info },
	{ EVHTTP_REQ_PUT, "/api/v1/host/encryption-mode", false, mode_f, h_mode },
	{ EVHTTP_REQ_PUT, "/api/v1/keys", false, keys_f, h_keys_put },
	{ EVHTTP_REQ_DELETE, "/api/v1/keys", false, NULL, h_keys_flush },
	{ EVHTTP_REQ_PUT, "/api/v1/host/key", false, host_key_f, h_host_key },
	{ EVHTTP_REQ_POST, "/api/v1/host/dump", false, NULL, h_host_dump },
	{ EVHTTP_REQ_GET, "/api/v1/vms", false, NULL, h_vms_list },
	{ EVHTTP_REQ_POST, "/api/v1/vms", false, vm_create_f, h_vm_create },
	{ EVHTTP_REQ_GET, "/api/v1/vms/{uuid}", false, NULL, h_vm_get },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/disks/{n}/encrypt", false, vm_encrypt_f,
	  h_vm_encrypt_disk },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/encrypt", false, vm_encrypt_f, h_vm_encrypt_finish },
	{ EVHTTP_REQ_GET, "/api/v1/vms/{uuid}/disks/{n}/data", false, NULL, h_vm_export_disk },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/disks", false, vm_disk_f, h_vm_add_disk },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/rekey", false, vm_encrypt_f, h_vm_rekey },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/disks/{n}/decrypt", false, NULL, h_vm_decrypt_disk },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/decrypt", false, NULL, h_vm_decrypt_finish },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/unregister", false, NULL, h_vm_unregister },
	{ EVHTTP_REQ_POST, "/api/v1/vms/register", false, vm_register_f, h_vm_register },
	{ EVHTTP_REQ_DELETE, "/api/v1/vms/{uuid}", false, NULL, h_vm_delete },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/clone", false, vm_clone_f, h_vm_clone },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/disks/{n}/rekey-deep", false, NULL,
	  h_vm_rekey_deep_disk },
	{ EVHTTP_REQ_GET, "/api/v1/vms/{uuid}/disks/{n}/rekey", false, NULL, h_vm_rekey_status },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/power-on", false, NULL, h_vm_power_on },
	{ EVHTTP_REQ_POST, "/api/v1/vms/{uuid}/power-off", false, NULL, h_vm_power_off },
};

static void serve(struct hreq *r)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->er);
	size_t len = evbuffer_get_length(in), params[4], np;
	static const struct vc_field none[] = { { 0 } };
	struct vc_error err = { 0 };
	unsigned char *data;
	bool other = false;

	static const char *const q_state[] = { "state", NULL };

	if (vc_target_parse(evhttp_request_get_uri(r->er), &r->t, &err) < 0 ||
	    vc_target_check_query(&r->t, r->method == EVHTTP_REQ_GET && r->t.nseg == 3 &&
					      !strcmp(r->t.seg[2], "vms") ? q_state : NULL,
				  &err) < 0) {
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(&err));
		return;
	}
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!vc_route_match(routes[i].pattern, &r->t, params, &np))
			continue;
		if (routes[i].method != r->method) {
			other = true;
			continue;
		}
		for (size_t p = 0; p < np; p++)
			r->param[p] = r->t.seg[params[p]];
		peer_of(r);
		/* Defence in depth: the handshake already refused other
		 * certificates once claimed. */
		if (!routes[i].before_claim &&
		    (!r->h->claimed || !r->have_peer ||
		     !vc_ct_equal(r->peer_fp, r->h->manager_fp, 32))) {
			reply_error(r, 403, "forbidden", r->h->claimed
				    ? "only the manager that added this host may call it"
				    : "this host is not managed yet: add it to a manager");
			return;
		}
		if (len > 0 && !routes[i].fields) {
			reply_error(r, 400, "bad_request", "this call takes no body");
			return;
		}
		data = evbuffer_pullup(in, -1);
		if (vc_body_parse((const char *)data, len, routes[i].fields ? routes[i].fields : none,
				  &r->body, &err) < 0) {
			if (data)
				vc_wipe(data, len);
			reply_error(r, len > VC_REQ_BODY_MAX ? 413 : 400,
				    len > VC_REQ_BODY_MAX ? "payload_too_large" : "bad_request", "%s",
				    vc_error_msg(&err));
			return;
		}
		/* Bodies carry keys: wipe the buffer. */
		if (data)
			vc_wipe(data, len);
		routes[i].fn(r);
		return;
	}
	if (other)
		reply_error(r, 405, "method_not_allowed", "method not allowed here");
	else
		reply_error(r, 404, "not_found", "no such call");
}

static void on_request(struct evhttp_request *er, void *arg)
{
	struct hreq r = { .h = arg, .er = er, .method = (int)evhttp_request_get_command(er) };

	serve(&r);
	json_decref(r.body);
	vc_wipe(&r, sizeof r);
}

/* ---- start, run, stop ---- */
/* The I/O filter of a build tree (host/vmcrypt-hostd beside
 * filter/nbdkit-vmcrypt-filter.so), else the installed one. */
static char *default_filter(void)
{
	static char path[PATH_MAX + 64];
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	char *slash;

	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			snprintf(path, sizeof path, "%s/../filter/nbdkit-vmcrypt-filter.so", exe);
			if (access(path, R_OK) == 0)
				return path;
		}
	}
	snprintf(path, sizeof path, "%s", VMCRYPT_FILTER_DIR "/nbdkit-vmcrypt-filter.so");
	return access(path, R_OK) == 0 ? path : NULL;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmcrypt-hostd --data-dir DIR [--listen ADDR:PORT]\n"
		"  --data-dir DIR      the agent's state (created 0700): TLS identity, host.json\n"
		"  --listen ADDR:PORT  HTTPS address for the manager (default 127.0.0.1:7443;\n"
		"                      port 0 picks one, printed when ready)\n"
		"  --datastore DIR     where VM folders live (default DATA-DIR/datastore)\n"
		"  --run-dir DIR       disk servers' sockets, pid files and logs of powered-on\n"
		"                      VMs (default DATA-DIR/run; socket paths must stay short)\n"
		"  --nbdkit-filter SO  the vmcrypt I/O filter (default: next to this program in\n"
		"                      a build tree, else nbdkit's filter directory)\n"
		"On first start it prints a one-time join token; a manager adds the host with\n"
		"that token and the host's certificate thumbprint, and from then on the host\n"
		"answers only that manager's certificate. Keys pushed by the manager are held\n"
		"in locked memory only: after a restart the cache is empty.\n");
}

static int parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	char *end;
	unsigned long p;

	if (!colon || colon == s || (size_t)(colon - s) >= hostlen || !colon[1])
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (*end || errno || p > 65535)
		return -EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static int lock_dir(struct hostd *h, int *fd, struct vc_error *err)
{
	char path[PATH_MAX];
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	snprintf(path, sizeof path, "%s/hostd.lock", h->data_dir);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return vc_error_errno(err, errno, "cannot open %s", path);
	if (fcntl(*fd, F_SETLK, &fl) < 0)
		return vc_error_set(err, -EBUSY, "another vmcrypt-hostd is running on %s",
				    h->data_dir);
	return 0;
}

static int prepare(struct hostd *h, SSL_CTX **ctx, int *lockfd, struct vc_error *err)
{
	char cert[PATH_MAX + 16], key[PATH_MAX + 16], dir[PATH_MAX], name[256] = "";
	struct stat sb;
	bool first = false;
	int ret;

	if (mkdir(h->data_dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create %s", h->data_dir);
	if (stat(h->data_dir, &sb) < 0 || !S_ISDIR(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077))
		return vc_error_set(err, -EPERM, "data directory %s must be a directory of this "
				    "user with mode 0700", h->data_dir);
	ret = lock_dir(h, lockfd, err);
	if (ret < 0)
		return ret;
	ret = state_load(h, &first, err);
	if (ret == 0 && first)
		ret = first_start(h, err);
	if (ret < 0)
		return ret;
	snprintf(dir, sizeof dir, "%s/tls", h->data_dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "cannot create %s", dir);
	snprintf(cert, sizeof cert, "%s/host.crt", dir);
	snprintf(key, sizeof key, "%s/host.key", dir);
	if (access(cert, F_OK) < 0 && access(key, F_OK) < 0) {
		gethostname(name, sizeof name - 1);
		ret = vc_tls_make_self_signed(cert, key, "vmcrypt-hostd", name, err);
		if (ret < 0)
			return ret;
	}
	ret = vc_tls_server_ctx(cert, key, ctx, h->own_fp, err);
	if (ret < 0)
		return ret;
	if (!h->datastore) {
		static char ds[PATH_MAX];

		snprintf(ds, sizeof ds, "%s/datastore", h->data_dir);
		h->datastore = ds;
	}
	ret = vms_load(h, err);
	if (ret < 0)
		return ret;
	if (!h->run_dir) {
		static char rd[PATH_MAX];

		snprintf(rd, sizeof rd, "%s/run", h->data_dir);
		h->run_dir = rd;
	}
	if (!h->filter_path)
		h->filter_path = default_filter();
	power_adopt(h);
	/* No session resumption: a resumed session would skip verify_peer
	 * (and one from before the claim must never count after it). */
	SSL_CTX_set_session_cache_mode(*ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(*ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(*ctx, 0);
	/* Ask every client for a certificate; verify_peer pins it. */
	h->ctx = *ctx;
	set_verify(h);
	SSL_CTX_set_cert_verify_callback(*ctx, verify_peer, h);
	return 0;
}

static int run(struct hostd *h, struct vc_error *err)
{
	struct event_base *base = NULL;
	struct evhttp *http = NULL;
	struct evhttp_bound_socket *bs;
	struct event *st = NULL, *si = NULL;
	SSL_CTX *ctx = NULL;
	char host[256];
	uint16_t port = 0;
	int lockfd = -1, ret;

	ret = prepare(h, &ctx, &lockfd, err);
	if (ret == 0 && parse_listen(h->listen, host, sizeof host, &port) < 0)
		ret = vc_error_set(err, -EINVAL, "bad listen address '%s'", h->listen);
	if (ret == 0) {
		base = event_base_new();
		http = base ? evhttp_new(base) : NULL;
		if (!http)
			ret = vc_error_set(err, -ENOMEM, "cannot create the HTTP server");
	}
	if (ret == 0) {
		evhttp_set_bevcb(http, https_bev, ctx);
		evhttp_set_gencb(http, on_request, h);
		evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
						 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
		evhttp_set_max_body_size(http, 1024 * 1024);
		evhttp_set_max_headers_size(http, 16 * 1024);
		evhttp_set_timeout(http, 60);
		bs = evhttp_bind_socket_with_handle(http, host, port);
		if (!bs)
			ret = vc_error_errno(err, errno, "cannot listen on %s", h->listen);
		else {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof ss;

			if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
					&sl) == 0)
				port = ntohs(ss.ss_family == AF_INET6
						     ? ((struct sockaddr_in6 *)&ss)->sin6_port
						     : ((struct sockaddr_in *)&ss)->sin_port);
		}
	}
	if (ret == 0) {
		st = evsignal_new(base, SIGTERM, on_signal, base);
		si = evsignal_new(base, SIGINT, on_signal, base);
		if (!st || !si || evsignal_add(st, NULL) < 0 || evsignal_add(si, NULL) < 0)
			ret = vc_error_set(err, -ENOMEM, "cannot handle signals");
	}
	if (ret == 0) {
		fprintf(stderr, "vmcrypt-hostd: host %s, certificate SHA-256 %s\n", h->host_id,
			h->own_fp);
		fprintf(stderr, "vmcrypt-hostd: listening on https://%s:%u (%s)\n", host, port,
			h->claimed ? "managed" : "waiting to be added to a manager");
		fflush(stderr);
		event_base_dispatch(base);
	}
	if (http)
		evhttp_free(http);
	if (st)
		event_free(st);
	if (si)
		event_free(si);
	if (base)
		event_base_free(base);
	SSL_CTX_free(ctx);
	power_stop_all(h);
	keys_flush(h);
	vms_free(h);
	if (lockfd >= 0)
		close(lockfd);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data-dir", required_argument, NULL, 'd' },
		{ "listen", required_argument, NULL, 'l' },
		{ "datastore", required_argument, NULL, 's' },
		{ "run-dir", required_argument, NULL, 'r' },
		{ "nbdkit-filter", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	static char default_listen[] = "127.0.0.1:7443";
	struct hostd h = { .listen = default_listen };
	struct vc_error err = { 0 };
	int o, ret;

	vc_log_init("vmcrypt-hostd", VC_LOG_INFO);
	vc_json_use_wiping_alloc();
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			h.data_dir = optarg;
			break;
		case 'l':
			h.listen = optarg;
			break;
		case 's':
			h.datastore = optarg;
			break;
		case 'r':
			h.run_dir = optarg;
			break;
		case 'f':
			h.filter_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("vmcrypt-hostd %s\n", VMCRYPT_VERSION);
			return 0;
		default:
			fprintf(stderr, "vmcrypt-hostd: error: unknown or incomplete option '%s' "
				"(see --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (!h.data_dir || optind < argc) {
		fprintf(stderr, "vmcrypt-hostd: error: %s (see --help)\n",
			optind < argc ? "unexpected argument" : "--data-dir is required");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (vc_secmem_harden_process(&err) < 0) {
		fprintf(stderr, "vmcrypt-hostd: error: %s\n", vc_error_msg(&err));
		return 1;
	}
	err = (struct vc_error){ 0 };
	ret = run(&h, &err);
	if (ret < 0) {
		fprintf(stderr, "vmcrypt-hostd: error: %s\n", vc_error_msg(&err));
		return 1;
	}
	fprintf(stderr, "vmcrypt-hostd: stopped\n");
	return 0;
}
