/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt's client of the manager API: session file, HTTPS calls trusted
 * through a CA file or a pinned certificate, errors as exit codes. */
#define _GNU_SOURCE
#include "mgr_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "vc_encode.h"
#include "vc_json.h"
#include "vc_log.h"
#include "vc_native.h"

#define API_PREFIX "/api/v1"
#define URL_MAX 4096
#define RESPONSE_MAX (256u << 20)

/* ---- process set-up -------------------------------------------------------- */

/* libcurl copies the bearer token (and request bodies holding passwords go
 * through its buffers): every block it frees is wiped first. */
static void wipe_free(void *p)
{
	if (!p)
		return;
	vc_wipe(p, malloc_usable_size(p));
	free(p);
}

static void *wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	old = malloc_usable_size(p);
	q = malloc(n ? n : 1);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

int mgr_global_init(struct vc_error *err)
{
	int r;

	vc_json_use_wiping_alloc();
	if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free, wipe_realloc,
				 strdup, calloc) != CURLE_OK)
		return vc_error_set(err, -ENOMEM, "cannot initialise libcurl");
	/* Tokens and passwords are held: no core dumps, memory locked if
	 * allowed (a refusal to lock is only worth a debug line). */
	r = vc_secmem_harden_process(err);
	if (r == 0 && err->msg[0])
		vc_debug("%s", err->msg);
	return r;
}

void mgr_init(struct mgr *m, bool json)
{
	memset(m, 0, sizeof *m);
	m->json = json;
	m->exit_code = EXIT_FAIL;
}

void mgr_close(struct mgr *m)
{
	if (m->curl)
		curl_easy_cleanup(m->curl);
	json_decref(m->session);
	json_decref(m->last_error);
	m->curl = NULL;
	m->session = NULL;
	m->last_error = NULL;
}

int mgr_fail(struct mgr *m)
{
	cli_error("%s", vc_error_msg(&m->err));
	return m->exit_code;
}

int mgr_error(struct mgr *m, int exit_code, const char *fmt, ...)
{
	char msg[VC_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	m->exit_code = exit_code;
	return vc_error_set(&m->err, -EIO, "%s", msg);
}

/* ---- files ----------------------------------------------------------------- */

/* A regular file; when private_only also ours with no group or other bits.
 * fix is the advice given when the mode is wrong. */
static int check_file(int fd, const char *path, const char *what, bool private_only,
		      const char *fix, struct vc_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return vc_error_errno(err, errno, "%s: cannot stat the %s", path, what);
	if (!S_ISREG(st.st_mode))
		return vc_error_set(err, -EINVAL, "%s: the %s is not a regular file", path, what);
	if (!private_only)
		return 0;
	if (st.st_uid != geteuid())
		return vc_error_set(err, -EPERM, "%s: the %s is not owned by this user", path, what);
	if (st.st_mode & 077)
		return vc_error_set(err, -EPERM,
				    "%s: the %s is accessible by group or others (mode %03o); %s",
				    path, what, (unsigned)(st.st_mode & 0777), fix);
	return 0;
}

/* Read fd to EOF into a new secret of at most max bytes. */
static int read_fd_secret(int fd, const char *path, size_t max, struct vc_secret **out,
			  struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *buf = NULL;
	size_t have = 0;
	int r;

	if ((r = vc_secret_new(max + 1, &buf, err)) < 0)
		return r;
	for (;;) {
		ssize_t n = read(fd, vc_secret_data(buf) + have, max + 1 - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return vc_error_errno(err, errno, "%s: cannot read", path);
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > max)
			return vc_error_set(err, -EFBIG, "%s: larger than %zu bytes", path, max);
	}
	if (have == 0)
		return vc_error_set(err, -EINVAL, "%s: the file is empty", path);
	return vc_secret_from_bytes(vc_secret_data(buf), have, out, err);
}

int mgr_read_file(struct mgr *m, const char *path, bool private_only, size_t max,
		  struct vc_secret **out)
{
	VC_CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	*out = NULL;
	if (fd < 0)
		return vc_error_errno(&m->err, errno, "%s: cannot open", path);
	r = check_file(fd, path, private_only ? "key file" : "file", private_only,
		       "chmod 600 it", &m->err);
	if (r < 0)
		return r;
	return read_fd_secret(fd, path, max, out, &m->err);
}

/* ---- session file ---------------------------------------------------------- */

int mgr_session_path(char *buf, size_t len, struct vc_error *err)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	/* The XDG spec says a relative XDG_CONFIG_HOME is to be ignored. */
	if (xdg && xdg[0] == '/') {
		n = snprintf(buf, len, "%s/vmcrypt/session.json", xdg);
	} else {
		if (!home || !*home) {
			struct passwd *pw = getpwuid(geteuid());

			home = pw ? pw->pw_dir : NULL;
		}
		if (!home)
			return vc_error_set(err, -ENOENT,
					    "no home directory: set HOME or XDG_CONFIG_HOME");
		n = snprintf(buf, len, "%s/.config/vmcrypt/session.json", home);
	}
	if (n < 0 || (size_t)n >= len)
		return vc_error_set(err, -ENAMETOOLONG, "the session file path is too long");
	return 0;
}

/* Create the parent of path (and its parent) 0700 when missing. */
static int make_parents(const char *path, struct vc_error *err)
{
	char dir[PATH_MAX], *slash;

	snprintf(dir, sizeof dir, "%s", path);
	for (int level = 0; level < 2; level++) {
		if (!(slash = strrchr(dir, '/')) || slash == dir)
			return 0;
		*slash = '\0';
	}
	/* dir is now the config directory: create it, then vmcrypt/. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "%s: cannot create the directory", dir);
	*slash = '/';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return vc_error_errno(err, errno, "%s: cannot create the directory", dir);
	return 0;
}

/* Write text to path through a 0600 temporary file and a rename, so a
 * reader sees the old or the new session, never half of one. */
static int write_atomic(const char *path, const char *text, struct vc_error *err)
{
	char tmp[PATH_MAX + 8];
	int fd, r;

	snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return vc_error_errno(err, errno, "%s: cannot create the session file", path);
	r = cli_write_all(fd, text, strlen(text), tmp, err);
	if (r == 0)
		r = cli_write_all(fd, "\n", 1, tmp, err);
	if (r == 0 && fsync(fd) < 0)
		r = vc_error_errno(err, errno, "%s: cannot sync", tmp);
	if (close(fd) < 0 && r == 0)
		r = vc_error_errno(err, errno, "%s: cannot close", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = vc_error_errno(err, errno, "%s: cannot rename to %s", tmp, path);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int session_save(struct mgr *m)
{
	char path[PATH_MAX];
	char *text;
	int r;

	if ((r = mgr_session_path(path, sizeof path, &m->err)) < 0 ||
	    (r = make_parents(path, &m->err)) < 0)
		return r;
	text = json_dumps(m->session, JSON_INDENT(2));
	if (!text)
		return vc_error_set(&m->err, -ENOMEM, "out of memory");
	r = write_atomic(path, text, &m->err);
	vc_json_free_dump(text);
	return r;
}

int mgr_session_remove(struct mgr *m)
{
	char path[PATH_MAX];
	int r = mgr_session_path(path, sizeof path, &m->err);

	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT)
		return vc_error_errno(&m->err, errno, "%s: cannot remove the session file", path);
	return 0;
}

const char *mgr_session_str(struct mgr *m, const char *key)
{
	return mgr_str(m->session, key);
}

static int session_validate(struct mgr *m, const char *path)
{
	const json_t *s = m->session;
	bool ca = json_is_string(json_object_get(s, "ca_file"));
	bool tp = json_is_string(json_object_get(s, "thumbprint"));
	char when[32];

	if (!json_is_object(s) || strncmp(mgr_str(s, "server"), "https://", 8) ||
	    !*mgr_str(s, "token") || !json_is_integer(json_object_get(s, "expires")) ||
	    ca == tp)
		return mgr_error(m, EXIT_AUTH, "%s: damaged session file; log in again", path);
	if (mgr_int(s, "expires") <= (json_int_t)time(NULL)) {
		m->expired = true;
		return mgr_error(m, EXIT_AUTH, "the session expired at %s; log in again",
				 mgr_time(mgr_int(s, "expires"), when, sizeof when));
	}
	return 0;
}

static int session_load(struct mgr *m)
{
	char path[PATH_MAX];
	VC_CLEANUP_CLOSE int fd = -1;
	json_error_t jerr;

	if (mgr_session_path(path, sizeof path, &m->err) < 0)
		return mgr_error(m, EXIT_AUTH, "%s", m->err.msg);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT)
		return mgr_error(m, EXIT_AUTH, "not logged in: use 'vmcrypt login'");
	if (fd < 0)
		return mgr_error(m, EXIT_AUTH, "%s: cannot open the session file: %s", path,
				 strerror(errno));
	/* Someone else who can read the token can act as us; someone who can
	 * write the file can send our token to a server of theirs. */
	if (check_file(fd, path, "session file", true, "log in again", &m->err) < 0)
		return mgr_error(m, EXIT_AUTH, "%s", m->err.msg);
	m->session = json_loadfd(fd, JSON_REJECT_DUPLICATES, &jerr);
	if (!m->session)
		return mgr_error(m, EXIT_AUTH, "%s: damaged session file (%s); log in again",
				 path, jerr.text);
	return session_validate(m, path);
}

/* ---- TLS trust ------------------------------------------------------------- */

int mgr_parse_thumbprint(const char *s, uint8_t out[VC_SHA256_LEN])
{
	char hex[2 * VC_SHA256_LEN];
	size_t n = 0, got;

	for (; *s; s++) {
		if (*s == ':')
			continue;
		if (n == sizeof hex)
			return -EINVAL;
		hex[n++] = *s;
	}
	if (n != sizeof hex || vc_hex_decode(hex, n, out, VC_SHA256_LEN, &got) < 0)
		return -EINVAL;
	return 0;
}

/* Replaces OpenSSL's chain verification: the only thing that makes the
 * server trusted is that its certificate is the pinned one. */
static int check_pin(X509_STORE_CTX *x, void *arg)
{
	struct mgr *m = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	uint8_t md[VC_SHA256_LEN];
	unsigned len = 0;

	if (leaf && X509_digest(leaf, EVP_sha256(), md, &len) && len == sizeof md) {
		if (vc_ct_equal(md, m->pin, sizeof md))
			return 1;
		vc_hex_encode(md, sizeof md, m->seen);
	}
	m->pin_mismatch = true;
	X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
	return 0;
}

static CURLcode pin_ctx(CURL *curl, void *ssl_ctx, void *arg)
{
	(void)curl;
	/* VERIFY_PEER makes a failed check abort the handshake, before any
	 * request (and its password or token) is sent. */
	SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ssl_ctx, check_pin, arg);
	return CURLE_OK;
}

static void set_trust(struct mgr *m)
{
	CURL *c = m->curl;

	if (m->pinned) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, pin_ctx);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, m);
		return;
	}
	/* Only the given file: not the system's CAs as well. */
	curl_easy_setopt(c, CURLOPT_CAINFO, mgr_session_str(m, "ca_file"));
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
}

/* Every option, again after each curl_easy_reset (which keeps the open
 * connection and the TLS session). */
static void set_options(struct mgr *m)
{
	CURL *c = m->curl;
	const char *token = mgr_session_str(m, "token");

	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, m->curl_msg);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	/* Adding a KMIP provider waits for every key server: allow minutes. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 600L);
	set_trust(m);
	if (*token) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
		curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, token);
	}
}

static int prepare_handle(struct mgr *m)
{
	const char *tp = mgr_session_str(m, "thumbprint");

	m->pinned = *tp != '\0';
	if (m->pinned && mgr_parse_thumbprint(tp, m->pin) < 0)
		return mgr_error(m, EXIT_AUTH, "damaged session file (thumbprint); log in again");
	m->curl = curl_easy_init();
	if (!m->curl)
		return mgr_error(m, EXIT_FAIL, "cannot initialise libcurl");
	return 0;
}

int mgr_connect(struct mgr *m)
{
	int r;

	if (m->curl)
		return 0;
	if (!m->session && (r = session_load(m)) < 0)
		return r;
	return prepare_handle(m);
}

/* ---- requests -------------------------------------------------------------- */

/* Where an answer goes: a 2xx body to fd when fd >= 0, anything else into
 * buf (wiped when freed: a login answer holds the token). */
struct sink {
	struct mgr *m;
	int fd;
	const char *fdname;
	char *buf;
	size_t len, cap;
	bool too_big, write_failed;
};

static void sink_free(struct sink *s)
{
	if (s->buf) {
		vc_wipe(s->buf, s->cap);
		free(s->buf);
	}
	s->buf = NULL;
}

static int sink_append(struct sink *s, const char *p, size_t n)
{
	char *nb;

	if (n > RESPONSE_MAX - s->len) {
		s->too_big = true;
		return -EFBIG;
	}
	if (s->len + n + 1 > s->cap) {
		size_t cap = 2 * (s->len + n + 1);

		if (!(nb = malloc(cap)))
			return -ENOMEM;
		if (s->len)
			memcpy(nb, s->buf, s->len);
		sink_free(s);
		s->buf = nb;
		s->cap = cap;
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	s->buf[s->len] = '\0';
	return 0;
}

static size_t on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(s->m->curl, CURLINFO_RESPONSE_CODE, &code);
	if (s->fd >= 0 && code >= 200 && code < 300) {
		if (cli_write_all(s->fd, p, n, s->fdname, &s->m->err) < 0) {
			s->write_failed = true;
			return 0;
		}
		return n;
	}
	return sink_append(s, p, n) < 0 ? 0 : n;
}

static int curl_failed(struct mgr *m, CURLcode rc, const struct sink *s)
{
	const char *server = mgr_session_str(m, "server");

	if (s->write_failed)
		return -EIO;
	if (s->too_big)
		return mgr_error(m, EXIT_FAIL, "the server's answer is larger than %u MiB",
				 RESPONSE_MAX >> 20);
	if (m->pin_mismatch)
		return mgr_error(m, EXIT_UNREACHABLE,
				 "%s: the server's certificate (SHA-256 %s) does not match the pinned thumbprint",
				 server, m->seen[0] ? m->seen : "unknown");
	if (rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR)
		return mgr_error(m, EXIT_FAIL, "%s", curl_easy_strerror(rc));
	return mgr_error(m, EXIT_UNREACHABLE, "cannot reach %s: %s", server,
			 m->curl_msg[0] ? m->curl_msg : curl_easy_strerror(rc));
}

static int status_exit(long status)
{
	switch (status) {
	case 401:
		return EXIT_AUTH;
	case 403:
		return EXIT_DENIED;
	case 404:
		return EXIT_NOT_FOUND;
	case 409:
		return EXIT_CONFLICT;
	default:
		return EXIT_FAIL;
	}
}

/* The server's error.message, as the one line the user sees. */
static int http_failed(struct mgr *m, long status, const struct sink *s)
{
	json_t *j = s->len ? json_loadb(s->buf, s->len, 0, NULL) : NULL;
	const char *msg = mgr_str(json_object_get(j, "error"), "message");
	int r;

	if (*msg)
		r = mgr_error(m, status_exit(status), "%s", msg);
	else
		r = mgr_error(m, status_exit(status), "the server answered HTTP %ld", status);
	/* Kept for callers that act on an error's details. */
	json_decref(m->last_error);
	m->last_error = json_incref(json_object_get(j, "error"));
	json_decref(j);
	return r;
}

static struct curl_slist *request_headers(bool has_body)
{
	/* No "Expect: 100-continue" round trip for larger bodies, and no
	 * form content type on a POST without a body (the server takes JSON
	 * only). */
	struct curl_slist *h = curl_slist_append(NULL, "Expect:");
	const char *type = has_body ? "Content-Type: application/json" : "Content-Type:";

	if (h && !curl_slist_append(h, type)) {
		curl_slist_free_all(h);
		return NULL;
	}
	return h;
}

static int perform(struct mgr *m, const char *method, const char *path, const char *body,
		   struct sink *s, long *status)
{
	char url[URL_MAX];
	struct curl_slist *h;
	CURLcode rc;
	int n = snprintf(url, sizeof url, "%s" API_PREFIX "%s", mgr_session_str(m, "server"), path);

	if (n < 0 || (size_t)n >= sizeof url)
		return mgr_error(m, EXIT_FAIL, "the request URL is too long");
	if (!(h = request_headers(body != NULL)))
		return mgr_error(m, EXIT_FAIL, "out of memory");
	curl_easy_reset(m->curl);
	set_options(m);
	curl_easy_setopt(m->curl, CURLOPT_URL, url);
	curl_easy_setopt(m->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(m->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(m->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(m->curl, CURLOPT_WRITEDATA, s);
	/* A POST without a body still says "Content-Length: 0"; GET and
	 * DELETE carry none. Not copied: the caller wipes body. */
	if (body || (strcmp(method, "GET") && strcmp(method, "DELETE"))) {
		curl_easy_setopt(m->curl, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(m->curl, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(body ? strlen(body) : 0));
	}
	m->curl_msg[0] = '\0';
	rc = curl_easy_perform(m->curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK)
		return curl_failed(m, rc, s);
	curl_easy_getinfo(m->curl, CURLINFO_RESPONSE_CODE, status);
	return 0;
}

static int request(struct mgr *m, const char *method, const char *path, json_t *body,
		   struct sink *s, long *status)
{
	char *text = NULL;
	int r = mgr_connect(m);

	if (r == 0 && body && !(text = json_dumps(body, JSON_COMPACT)))
		r = mgr_error(m, EXIT_FAIL, "out of memory");
	json_decref(body);
	if (r == 0)
		r = perform(m, method, path, text, s, status);
	vc_json_free_dump(text);
	if (r == 0 && (*status < 200 || *status > 299))
		r = http_failed(m, *status, s);
	return r;
}

int mgr_call(struct mgr *m, const char *method, const char *path, json_t *body,
	     json_t **out)
{
	struct sink s = { .m = m, .fd = -1 };
	json_error_t jerr;
	long status = 0;
	int r;

	if (out)
		*out = NULL;
	r = request(m, method, path, body, &s, &status);
	if (r == 0 && out && s.len) {
		*out = json_loadb(s.buf, s.len, 0, &jerr);
		if (!*out)
			r = mgr_error(m, EXIT_FAIL, "the server sent bad JSON: %s", jerr.text);
	}
	sink_free(&s);
	return r;
}

int mgr_stream(struct mgr *m, const char *path, int fd, const char *fdname)
{
	struct sink s = { .m = m, .fd = fd, .fdname = fdname };
	long status = 0;
	int r = request(m, "GET", path, NULL, &s, &status);

	sink_free(&s);
	return r;
}

int mgr_get_text(struct mgr *m, const char *path, char **out, size_t *len)
{
	struct sink s = { .m = m, .fd = -1 };
	long status = 0;
	int r = request(m, "GET", path, NULL, &s, &status);

	*out = NULL;
	if (r == 0 && !s.buf && sink_append(&s, "", 0) < 0)
		r = mgr_error(m, EXIT_FAIL, "out of memory");
	if (r < 0) {
		sink_free(&s);
		return r;
	}
	*out = s.buf;
	*len = s.len;
	return 0;
}

/* ---- login ----------------------------------------------------------------- */

static int login_session(struct mgr *m, const char *server, const char *user,
			 const char *ca_file, const char *thumbprint)
{
	char abs[PATH_MAX], hex[2 * VC_SHA256_LEN + 1];
	size_t len = strlen(server);

	/* The session outlives the current directory: keep an absolute path. */
	if (ca_file && !realpath(ca_file, abs))
		return vc_error_errno(&m->err, errno, "%s: cannot use the CA file", ca_file);
	if (thumbprint) {
		if (mgr_parse_thumbprint(thumbprint, m->pin) < 0)
			return mgr_error(m, EXIT_USAGE, "bad --thumbprint");
		vc_hex_encode(m->pin, VC_SHA256_LEN, hex);
	}
	while (len > 8 && server[len - 1] == '/')
		len--;
	m->session = json_pack("{s:s%, s:s, s:s}", "server", server, len, "user", user,
			       ca_file ? "ca_file" : "thumbprint", ca_file ? abs : hex);
	if (!m->session)
		return mgr_error(m, EXIT_FAIL, "--server and --user must be UTF-8");
	return prepare_handle(m);
}

static int login_answer(struct mgr *m, const json_t *resp)
{
	json_t *token = json_object_get(resp, "token");
	json_t *expires = json_object_get(resp, "expires");

	if (!json_is_string(token) || !json_string_length(token) || !json_is_integer(expires))
		return mgr_error(m, EXIT_FAIL, "the server's login answer has no token");
	if (json_object_set(m->session, "token", token) < 0 ||
	    json_object_set(m->session, "expires", expires) < 0)
		return mgr_error(m, EXIT_FAIL, "out of memory");
	return session_save(m);
}

int mgr_login(struct mgr *m, const char *server, const char *user,
	      const struct vc_secret *password, const char *ca_file, const char *thumbprint,
	      json_t **resp)
{
	json_t *body;
	int r;

	*resp = NULL;
	if ((r = login_session(m, server, user, ca_file, thumbprint)) < 0)
		return r;
	body = json_pack("{s:s, s:s%}", "user", user, "password", MGR_SECRET(password));
	if (!body)
		return mgr_bad_body(m);
	if ((r = mgr_call(m, "POST", "/session", body, resp)) < 0)
		return r;
	return login_answer(m, *resp);
}

/* ---- paths ----------------------------------------------------------------- */

static int append(struct mgr *m, char *buf, size_t len, size_t *used, const char *s, size_t n)
{
	if (n >= len - *used)
		return mgr_error(m, EXIT_USAGE, "a name or value is too long");
	memcpy(buf + *used, s, n);
	*used += n;
	buf[*used] = '\0';
	return 0;
}

static int append_escaped(struct mgr *m, char *buf, size_t len, size_t *used, const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	int r;

	if (!e)
		return mgr_error(m, EXIT_FAIL, "out of memory");
	r = append(m, buf, len, used, e, strlen(e));
	curl_free(e);
	return r;
}

int mgr_path(struct mgr *m, char *buf, size_t len, const char *fmt, ...)
{
	size_t used = 0;
	va_list ap;
	int r = 0;

	buf[0] = '\0';
	va_start(ap, fmt);
	for (const char *p = fmt; *p && r == 0; p++) {
		if (p[0] != '%' || p[1] != 's') {
			r = append(m, buf, len, &used, p, 1);
			continue;
		}
		r = append_escaped(m, buf, len, &used, va_arg(ap, const char *));
		p++;
	}
	va_end(ap);
	return r;
}

int mgr_query(struct mgr *m, char *buf, size_t len, const char *key, const char *value)
{
	size_t used = strlen(buf);
	int r;

	if (!value)
		return 0;
	if ((r = append(m, buf, len, &used, strchr(buf, '?') ? "&" : "?", 1)) < 0 ||
	    (r = append(m, buf, len, &used, key, strlen(key))) < 0 ||
	    (r = append(m, buf, len, &used, "=", 1)) < 0)
		return r;
	return append_escaped(m, buf, len, &used, value);
}

/* ---- JSON ------------------------------------------------------------------ */

int mgr_bad_body(struct mgr *m)
{
	return mgr_error(m, EXIT_FAIL,
			 "cannot encode the request: out of memory, or a name or password that is not UTF-8");
}

const char *mgr_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

json_int_t mgr_int(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

bool mgr_bool(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

/* ---- passwords ------------------------------------------------------------- */

static struct termios saved_tty;
static const int tty_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* Interrupted at the prompt: give the terminal its echo back first. */
static void restore_tty(int sig)
{
	tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* One line from stdin, byte by byte so that no stdio buffer keeps it. */
static int read_line(struct mgr *m, struct vc_secret **out)
{
	VC_CLEANUP_SECRET struct vc_secret *buf = NULL;
	unsigned char *p;
	size_t n = 0;
	int r;

	if ((r = vc_secret_new(VC_NATIVE_PASSWORD_MAX + 1, &buf, &m->err)) < 0)
		return r;
	p = vc_secret_data(buf);
	for (;;) {
		ssize_t got = read(STDIN_FILENO, p + n, 1);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return vc_error_errno(&m->err, errno, "cannot read the password");
		if (got == 0 || p[n] == '\n')
			break;
		if (++n > VC_NATIVE_PASSWORD_MAX)
			return vc_error_set(&m->err, -EINVAL, "password longer than %d bytes",
					    VC_NATIVE_PASSWORD_MAX);
	}
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0)
		return vc_error_set(&m->err, -EINVAL, "empty password");
	return vc_secret_from_bytes(p, n, out, &m->err);
}

static int prompt_password(struct mgr *m, const char *prompt, struct vc_secret **out)
{
	void (*old[VC_ARRAY_SIZE(tty_signals)])(int);
	struct termios quiet;
	int r;

	if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return vc_error_errno(&m->err, errno, "cannot read the terminal settings");
	quiet = saved_tty;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	for (size_t i = 0; i < VC_ARRAY_SIZE(tty_signals); i++)
		old[i] = signal(tty_signals[i], restore_tty);
	fprintf(stderr, "%s: ", prompt);
	fflush(stderr);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) < 0) {
		r = vc_error_errno(&m->err, errno, "cannot turn off the terminal echo");
	} else {
		r = read_line(m, out);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(tty_signals); i++)
		signal(tty_signals[i], old[i]);
	fputc('\n', stderr);
	return r;
}

static int read_password_file(struct mgr *m, const char *path, struct vc_secret **out)
{
	VC_CLEANUP_CLOSE int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return vc_error_errno(&m->err, errno, "%s: cannot open the password file", path);
	r = check_file(fd, path, "password file", true, "chmod 600 it", &m->err);
	if (r < 0)
		return r;
	return vc_native_password_read_fd(fd, path, out, &m->err);
}

/* Typed twice: a typo in a new password would lock someone out. */
static int prompt_twice(struct mgr *m, const char *prompt, struct vc_secret **out)
{
	VC_CLEANUP_SECRET struct vc_secret *again = NULL;
	char prompt2[512];
	int r;

	snprintf(prompt2, sizeof prompt2, "%s (again)", prompt);
	if ((r = prompt_password(m, prompt, out)) < 0 ||
	    (r = prompt_password(m, prompt2, &again)) < 0)
		return r;
	if (vc_secret_len(again) == vc_secret_len(*out) &&
	    vc_ct_equal(vc_secret_data(again), vc_secret_data(*out), vc_secret_len(again)))
		return 0;
	vc_secret_free(*out);
	*out = NULL;
	return mgr_error(m, EXIT_USAGE, "the passwords do not match");
}

int mgr_password_read(struct mgr *m, const struct mgr_pw_src *src, bool confirm,
		      struct vc_secret **out)
{
	char what[64];
	int fd;

	*out = NULL;
	if (src->file)
		return read_password_file(m, src->file, out);
	if (src->fd) {
		if (cli_parse_int(src->fd, &fd) < 0)
			return mgr_error(m, EXIT_USAGE, "bad file descriptor '%s'", src->fd);
		snprintf(what, sizeof what, "password fd %d", fd);
		return vc_native_password_read_fd(fd, what, out, &m->err);
	}
	if (!isatty(STDIN_FILENO))
		return mgr_error(m, EXIT_USAGE, "no password given and no terminal to ask on");
	if (confirm)
		return prompt_twice(m, src->prompt, out);
	return prompt_password(m, src->prompt, out);
}

/* ---- output ---------------------------------------------------------------- */

void mgr_print_json(const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_ENCODE_ANY) : NULL;

	if (s)
		puts(s);
	vc_json_free_dump(s);
}

const char *mgr_time(json_int_t secs, char *buf, size_t len)
{
	time_t t = (time_t)secs;
	struct tm tm;

	if (secs <= 0 || !gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, len, "-");
	return buf;
}

void mgr_kv(const char *label, const char *fmt, ...)
{
	char key[64];
	va_list ap;

	snprintf(key, sizeof key, "%s:", label);
	printf("%-16s ", key);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

const char *mgr_join(const json_t *array, char *buf, size_t len)
{
	size_t used = 0, i;
	json_t *v;

	buf[0] = '\0';
	json_array_foreach(array, i, v) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
				 json_is_string(v) ? json_string_value(v) : "?");

		if (n < 0 || (size_t)n >= len - used) {
			/* Cut, and say so. */
			if (len > 4)
				memcpy(buf + len - 4, "...", 4);
			return buf;
		}
		used += (size_t)n;
	}
	return used ? buf : "-";
}

void mgr_table_init(struct mgr_table *t, size_t ncols)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
}

static bool table_grow(struct mgr_table *t)
{
	size_t need = (t->nrows + 1) * t->ncols;
	char **cells;

	if (need <= t->cap)
		return true;
	cells = reallocarray(t->cells, 2 * need, sizeof *cells);
	if (!cells)
		return false;
	t->cells = cells;
	t->cap = 2 * need;
	return true;
}

void mgr_table_row(struct mgr_table *t, ...)
{
	va_list ap;

	if (t->oom)
		return;
	if (!table_grow(t)) {
		t->oom = true;
		return;
	}
	va_start(ap, t);
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *c = strdup(s && *s ? s : "-");

		t->oom |= c == NULL;
		t->cells[t->nrows * t->ncols + i] = c;
	}
	va_end(ap);
	t->nrows++;
}

static void table_write(const struct mgr_table *t)
{
	size_t w[MGR_TABLE_MAX_COLS] = { 0 };

	for (size_t i = 0; i < t->nrows * t->ncols; i++) {
		size_t len = strlen(t->cells[i]);

		if (len > w[i % t->ncols])
			w[i % t->ncols] = len;
	}
	for (size_t r = 0; r < t->nrows; r++) {
		char **row = t->cells + r * t->ncols;

		for (size_t c = 0; c + 1 < t->ncols; c++)
			printf("%-*s  ", (int)w[c], row[c]);
		printf("%s\n", row[t->ncols - 1]);
	}
}

int mgr_table_print(struct mgr *m, struct mgr_table *t)
{
	int r = 0;

	if (t->oom)
		r = mgr_error(m, EXIT_FAIL, "out of memory");
	else if (t->ncols == 0 || t->ncols > MGR_TABLE_MAX_COLS)
		r = mgr_error(m, EXIT_FAIL, "internal error: a table of %zu columns", t->ncols);
	else
		table_write(t);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	mgr_table_init(t, 0);
	return r;
}
