/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's HTTPS front: evhttp over OpenSSL bufferevents, routing,
 * authentication, body checks and JSON replies. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "mgr.h"
#include "server.h"
#include "vc_json.h"
#include "https.h"
#include "vc_log.h"
#include "vc_passwd.h"
#include "vc_secmem.h"

/* Larger bodies are cut by libevent itself; up to this size we read them
 * and answer 413 in JSON. */
#define TRANSPORT_BODY_MAX (1024 * 1024)

static void send_buf(struct req *r, int status, const char *ctype, struct evbuffer *b)
{
	struct evkeyvalq *h;

	/* One reply per call: a second (an error path after a reply) is
	 * dropped. */
	if (r->replied)
		return;
	if (!r->er) {
		/* A deferred call whose client left. */
		r->replied = true;
		return;
	}
	h = evhttp_request_get_output_headers(r->er);

	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply(r->er, status, NULL, b);
	r->replied = true;
}

void reply_raw(struct req *r, int status, const char *ctype, const char *data, size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (b && len)
		evbuffer_add(b, data, len);
	send_buf(r, status, ctype, b);
	evbuffer_free(b);
}

void reply_json(struct req *r, int status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		static const char oom[] =
			"{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
		reply_raw(r, 500, "application/json", oom, sizeof oom - 1);
		return;
	}
	reply_raw(r, status, "application/json", s, strlen(s));
	vc_json_free_dump(s);
}

void reply_empty(struct req *r, int status)
{
	if (r->replied)
		return;
	if (r->er)
		evhttp_send_reply(r->er, status, NULL, NULL);
	r->replied = true;
}

static void reply_error_v(struct req *r, int status, const char *code, const char *priv,
			  const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void reply_error_v(struct req *r, int status, const char *code, const char *priv,
			  const char *fmt, va_list ap)
{
	char msg[VC_ERROR_MSG_MAX];

	vsnprintf(msg, sizeof msg, fmt, ap);
	/* One line of ASCII, whatever a message quoted: JSON needs valid
	 * UTF-8 and clients print it as one line. */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	reply_json(r, status, json_pack("{s:{s:s,s:s,s:s*}}", "error", "code", code,
					 "message", msg, "privilege", priv));
}

void reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, status, code, NULL, fmt, ap);
	va_end(ap);
}

void reply_forbidden(struct req *r, const char *priv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	reply_error_v(r, 403, "forbidden", priv, fmt, ap);
	va_end(ap);
}

void reply_errno(struct req *r, int ret, const struct vc_error *err)
{
	const char *msg = err ? vc_error_msg(err) : "error";

	switch (ret) {
	case -EINVAL:
	case -ERANGE:
	case -EMSGSIZE:
	case -EBADMSG:
	case -EKEYREJECTED:
		reply_error(r, 400, "bad_request", "%s", msg);
		break;
	case -ENOENT:
		reply_error(r, 404, "not_found", "%s", msg);
		break;
	case -EEXIST:
	case -EBUSY:
	case -ENOTEMPTY:
	case -EPERM:
	case -ENOTSUP:
		reply_error(r, 409, "conflict", "%s", msg);
		break;
	case -EACCES:
		reply_error(r, 403, "forbidden", "%s", msg);
		break;
	default:
		reply_error(r, 500, "internal", "%s", msg);
	}
}

/* Calls allowed while the caller must still change a one-time password. */
static bool allowed_before_change(const struct route *rt)
{
	return !strcmp(rt->pattern, "/api/v1/session") ||
	       !strcmp(rt->pattern, "/api/v1/session/password");
}

static int add_group(const char *g, void *ctx)
{
	struct req *r = ctx;

	if (r->ngroups < VC_ARRAY_SIZE(r->groups))
		snprintf(r->groups[r->ngroups++], sizeof r->groups[0], "%s", g);
	return 0;
}

static int authenticate(struct req *r)
{
	struct evkeyvalq *h = evhttp_request_get_input_headers(r->er);
	const char *auth = evhttp_find_header(h, "Authorization");
	struct vc_store_session s;
	struct vc_store_user u;
	struct vc_error err = { 0 };
	int ret;

	if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) {
		reply_error(r, 401, "unauthorized", "authentication required: send "
			    "'Authorization: Bearer <token>' (log in with POST /api/v1/session)");
		return -1;
	}
	if (vc_token_hash(auth + 7, r->token_hash, &err) < 0) {
		reply_error(r, 401, "unauthorized", "malformed session token");
		return -1;
	}
	ret = vc_store_session_find(r->m->st, r->token_hash, now_s(), &s, &err);
	if (ret == -ENOENT) {
		reply_error(r, 401, "unauthorized", "session expired or unknown: log in again");
		return -1;
	}
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return -1;
	}
	snprintf(r->user, sizeof r->user, "%s", s.user);
	r->expires = s.expires;
	free(s.mem);
	ret = vc_store_user_get(r->m->st, r->user, &u, &err);
	if (ret < 0 || u.disabled) {
		if (ret == 0)
			free(u.mem);
		reply_error(r, 401, "unauthorized", "session expired or unknown: log in again");
		return -1;
	}
	r->must_change = u.must_change;
	free(u.mem);
	ret = vc_store_user_groups(r->m->st, r->user, add_group, r, &err);
	if (ret < 0) {
		reply_errno(r, ret, &err);
		return -1;
	}
	return 0;
}

static bool json_content_type(struct req *r)
{
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->er),
					    "Content-Type");
	size_t n = strlen("application/json");

	return ct && strncasecmp(ct, "application/json", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int read_body(struct req *r, const struct route *rt)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->er);
	size_t len = evbuffer_get_length(in);
	struct vc_error err = { 0 };
	unsigned char *data;
	int ret;

	if (len > VC_REQ_BODY_MAX) {
		reply_error(r, 413, "payload_too_large", "request body of %zu bytes is over "
			    "the limit of %d bytes", len, VC_REQ_BODY_MAX);
		return -1;
	}
	if (len > 0 && !json_content_type(r)) {
		reply_error(r, 415, "unsupported_media_type",
			    "request bodies must be JSON (Content-Type: application/json)");
		return -1;
	}
	if (len > 0 && !rt->fields) {
		reply_error(r, 400, "bad_request", "%s %s takes no request body",
			    route_method_name(rt->method), rt->pattern);
		return -1;
	}
	data = evbuffer_pullup(in, -1);
	static const struct vc_field none[] = { { 0 } };
	ret = vc_body_parse((const char *)data, len, rt->fields ? rt->fields : none, &r->body,
			    &err);
	/* Bodies may carry passwords: do not leave them in the buffer. */
	if (data)
		vc_wipe(data, len);
	if (ret < 0) {
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(&err));
		return -1;
	}
	return 0;
}

static const char *route_object(struct req *r, const struct route *rt)
{
	const char *o;

	switch (rt->obj) {
	case OBJ_PARAM:
		return r->param[0];
	case OBJ_BODY_PARENT:
		return json_string_value(json_object_get(r->body, "parent"));
	case OBJ_BODY_OBJECT:
		return json_string_value(json_object_get(r->body, "object"));
	case OBJ_QUERY_OBJECT:
		o = vc_target_query(&r->t, "object");
		return o ? o : "root";
	case OBJ_ROOT:
	default:
		return "root";
	}
}

static const struct route *find_route(struct req *r, bool *other_method, size_t params[4],
				      size_t *np)
{
	*other_method = false;
	for (size_t i = 0; i < mgr_nroutes; i++) {
		if (!vc_route_match(mgr_routes[i].pattern, &r->t, params, np))
			continue;
		if (mgr_routes[i].method == r->method)
			return &mgr_routes[i];
		*other_method = true;
	}
	return NULL;
}

static void serve(struct req *r)
{
	struct vc_error err = { 0 };
	const struct route *rt;
	bool other;
	size_t params[4], np = 0;

	if (vc_target_parse(evhttp_request_get_uri(r->er), &r->t, &err) < 0) {
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(&err));
		return;
	}
	rt = find_route(r, &other, params, &np);
	if (!rt) {
		if (other)
			reply_error(r, 405, "method_not_allowed", "method %s is not allowed here",
				    route_method_name(r->method));
		else
			reply_error(r, 404, "not_found", "no such API call: %s %.200s",
				    route_method_name(r->method), evhttp_request_get_uri(r->er));
		return;
	}
	for (size_t i = 0; i < np; i++)
		r->param[i] = r->t.seg[params[i]];
	if (vc_target_check_query(&r->t, rt->query, &err) < 0) {
		reply_error(r, 400, "bad_request", "%s", vc_error_msg(&err));
		return;
	}
	if (rt->priv != PRIV_NONE) {
		if (authenticate(r) < 0)
			return;
		if (r->must_change && !allowed_before_change(rt)) {
			reply_error(r, 403, "password_change_required",
				    "user '%s' logged in with a one-time password: change it "
				    "first (POST /api/v1/session/password)", r->user);
			return;
		}
	}
	if (read_body(r, rt) < 0)
		return;
	if (rt->priv >= 0) {
		const char *obj = route_object(r, rt);

		if (!obj) {
			reply_error(r, 400, "bad_request", "missing inventory object");
			return;
		}
		if (need_priv(r, (enum vc_priv)rt->priv, obj) < 0)
			return;
	}
	rt->fn(r);
}

/* Headers and body leave as separate TLS records: without TCP_NODELAY the
 * second waits for the client's delayed ACK (about 40 ms a reply). */
static void nodelay(struct evhttp_request *er)
{
	struct evhttp_connection *c = evhttp_request_get_connection(er);
	struct bufferevent *bev = c ? evhttp_connection_get_bufferevent(c) : NULL;
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int one = 1;

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void req_free(struct req *r)
{
	json_decref(r->body);
	vc_wipe(r, sizeof *r);
	free(r);
}

/* ---- calls that wait for a host: run off the request loop ---- */
/* Calls on worker threads at once (under m->lock): each is a thread, so
 * a flood of logins must not become a flood of threads. */
#define DEFER_MAX 64
static int deferred_now;

struct defer {
	struct req *r;
	struct event *ev;
	struct evhttp_connection *conn;
	void (*work)(struct req *r, void *arg);
	void (*done)(struct req *r, void *arg);
	void *arg;
	bool gone;
};

static void on_client_gone(struct evhttp_connection *c, void *arg)
{
	struct defer *d = arg;

	(void)c;
	d->gone = true;
}

/* Back on the loop: reply (unless the client left), then clean up. */
static void on_work_done(evutil_socket_t fd, short what, void *arg)
{
	struct defer *d = arg;
	struct mgr *m = d->r->m;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&m->lock);
	if (!d->gone) {
		evhttp_connection_set_closecb(d->conn, NULL, NULL);
		d->done(d->r, d->arg);
		if (!d->r->replied)
			reply_error(d->r, 500, "internal", "the call ended without a reply");
	} else {
		/* The request went with its connection: only free our side. */
		d->r->er = NULL;
		d->done(d->r, d->arg);
	}
	deferred_now--;
	pthread_mutex_unlock(&m->lock);
	event_free(d->ev);
	req_free(d->r);
	free(d);
}

static void *work_thread(void *arg)
{
	struct defer *d = arg;

	d->work(d->r, d->arg);
	event_active(d->ev, EV_READ, 0);
	return NULL;
}

int defer_call(struct req *r, void (*work)(struct req *r, void *arg),
	       void (*done)(struct req *r, void *arg), void *arg)
{
	struct defer *d;
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	if (deferred_now >= DEFER_MAX) {
		reply_error(r, 503, "busy", "the manager is busy with %d calls waiting on hosts, "
			    "key servers or password checks: try again", DEFER_MAX);
		return -EBUSY;
	}
	d = calloc(1, sizeof *d);
	if (!d)
		return -ENOMEM;
	d->r = r;
	d->work = work;
	d->done = done;
	d->arg = arg;
	d->conn = evhttp_request_get_connection(r->er);
	d->ev = event_new(r->m->base, -1, 0, on_work_done, d);
	if (!d->ev || !d->conn) {
		if (d->ev)
			event_free(d->ev);
		free(d);
		return -ENOMEM;
	}
	evhttp_connection_set_closecb(d->conn, on_client_gone, d);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, work_thread, d);
	pthread_attr_destroy(&attr);
	if (ret) {
		evhttp_connection_set_closecb(d->conn, NULL, NULL);
		event_free(d->ev);
		free(d);
		return -ret;
	}
	r->deferred = true;
	deferred_now++;
	return 0;
}

static void on_request(struct evhttp_request *er, void *arg)
{
	struct mgr *m = arg;
	struct req *r = calloc(1, sizeof *r);

	if (!r) {
		evhttp_send_error(er, 500, "out of memory");
		return;
	}
	r->m = m;
	r->er = er;
	r->method = (int)evhttp_request_get_command(er);
	nodelay(er);
	pthread_mutex_lock(&m->lock);
	serve(r);
	if (r->deferred) {
		/* A worker thread has it; on_work_done replies and frees. */
		pthread_mutex_unlock(&m->lock);
		return;
	}
	if (!r->replied)
		reply_error(r, 500, "internal", "the call ended without a reply");
	pthread_mutex_unlock(&m->lock);
	req_free(r);
}

/* "host:port" or "[v6]:port", port 0..65535. */
static int parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(s, ':'), *hs = s, *he = colon;
	char *end;
	unsigned long p;

	if (!colon || !colon[1])
		return -EINVAL;
	if (s[0] == '[') {
		hs = s + 1;
		if (colon == s || colon[-1] != ']')
			return -EINVAL;
		he = colon - 1;
	}
	if (he <= hs || (size_t)(he - hs) >= hostlen)
		return -EINVAL;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (*end || errno || p > 65535 || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (uint16_t)p;
	return 0;
}

int server_start(struct mgr *m, SSL_CTX *ctx, struct evhttp **out, char *bound,
		 size_t boundlen, struct vc_error *err)
{
	struct evhttp *http = evhttp_new(m->base);
	struct evhttp_bound_socket *bs;
	char host[256];
	uint16_t port;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int ret;

	if (!http)
		return vc_error_set(err, -ENOMEM, "cannot create the HTTP server");
	ret = parse_listen(m->cfg.listen, host, sizeof host, &port);
	if (ret < 0) {
		evhttp_free(http);
		return vc_error_set(err, ret, "bad listen address '%s' (want ADDRESS:PORT, "
				    "[IPv6]:PORT; port 0 picks a free one)", m->cfg.listen);
	}
	evhttp_set_bevcb(http, https_bev, ctx);
	evhttp_set_gencb(http, on_request, m);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
					 EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
	evhttp_set_max_body_size(http, TRANSPORT_BODY_MAX);
	evhttp_set_max_headers_size(http, 16 * 1024);
	evhttp_set_timeout(http, 60);
	bs = evhttp_bind_socket_with_handle(http, host, port);
	if (!bs) {
		evhttp_free(http);
		return vc_error_set(err, -EADDRINUSE, "cannot listen on %s: %s", m->cfg.listen,
				    strerror(errno));
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) == 0) {
		uint16_t p = ss.ss_family == AF_INET6
				     ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
				     : ntohs(((struct sockaddr_in *)&ss)->sin_port);

		snprintf(bound, boundlen, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, p);
	} else {
		snprintf(bound, boundlen, "%s", m->cfg.listen);
	}
	*out = http;
	return 0;
}
