/* SPDX-License-Identifier: Apache-2.0 */
/* KMIP server clusters with failover and health. */
#include "vc_kmip_cluster.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define KMIP_DEFAULT_PORT 5696

struct server {
	char host[256];
	uint16_t port;
	struct vc_kmip_health h;
};

struct vc_kmip_cluster {
	char name[128];
	struct server servers[VC_KMIP_CLUSTER_MAX];
	size_t n;
	size_t cur;                 /* server in use */
	struct vc_kmip_conn *conn;  /* connection to it, or NULL */
	char *ca_file, *pin, *cert_file, *key_file, *server_name;
	struct vc_kmip_tls tls;
	pthread_mutex_t lock;
};

int vc_kmip_parse_server(const char *s, char *host, size_t hostlen, uint16_t *port,
			 struct vc_error *err)
{
	const char *colon, *hs = s, *he;
	unsigned long p = KMIP_DEFAULT_PORT;

	if (*s == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		if (!he || (he[1] && he[1] != ':'))
			return vc_error_set(err, -EINVAL, "bad key server address '%s'", s);
		colon = he[1] ? he + 1 : NULL;
	} else {
		colon = strrchr(s, ':');
		he = colon ? colon : s + strlen(s);
	}
	if (colon) {
		char *end;

		errno = 0;
		p = strtoul(colon + 1, &end, 10);
		if (*end || errno || p == 0 || p > 65535 || colon[1] == '\0')
			return vc_error_set(err, -EINVAL, "bad port in key server address '%s'", s);
	}
	if (he == hs || (size_t)(he - hs) >= hostlen)
		return vc_error_set(err, -EINVAL, "bad key server address '%s'", s);
	memcpy(host, hs, (size_t)(he - hs));
	host[he - hs] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static char *dup_or_null(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

int vc_kmip_cluster_new(const struct vc_kmip_cluster_cfg *cfg, struct vc_kmip_cluster **out,
			struct vc_error *err)
{
	struct vc_kmip_cluster *cl;
	bool oom = false;
	int r;

	*out = NULL;
	if (cfg->nservers == 0 || cfg->nservers > VC_KMIP_CLUSTER_MAX)
		return vc_error_set(err, -EINVAL, "a key provider needs 1 to %d servers",
				    VC_KMIP_CLUSTER_MAX);
	cl = calloc(1, sizeof *cl);
	if (!cl)
		return vc_error_set(err, -ENOMEM, "out of memory");
	snprintf(cl->name, sizeof cl->name, "%s", cfg->name ? cfg->name : "kmip");
	for (size_t i = 0; i < cfg->nservers; i++) {
		struct server *s = &cl->servers[i];

		r = vc_kmip_parse_server(cfg->servers[i], s->host, sizeof s->host, &s->port, err);
		if (r < 0) {
			free(cl);
			return r;
		}
		snprintf(s->h.server, sizeof s->h.server, strchr(s->host, ':') ? "[%s]:%u" : "%s:%u",
			 s->host, s->port);
	}
	cl->n = cfg->nservers;
	cl->tls = cfg->tls;
	cl->tls.ca_file = cl->ca_file = dup_or_null(cfg->tls.ca_file, &oom);
	cl->tls.pinned_sha256 = cl->pin = dup_or_null(cfg->tls.pinned_sha256, &oom);
	cl->tls.cert_file = cl->cert_file = dup_or_null(cfg->tls.cert_file, &oom);
	cl->tls.key_file = cl->key_file = dup_or_null(cfg->tls.key_file, &oom);
	cl->tls.server_name = cl->server_name = dup_or_null(cfg->tls.server_name, &oom);
	pthread_mutex_init(&cl->lock, NULL);
	if (oom) {
		vc_kmip_cluster_free(cl);
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	*out = cl;
	return 0;
}

void vc_kmip_cluster_free(struct vc_kmip_cluster *cl)
{
	if (!cl)
		return;
	vc_kmip_close(cl->conn);
	free(cl->ca_file);
	free(cl->pin);
	free(cl->cert_file);
	free(cl->key_file);
	free(cl->server_name);
	pthread_mutex_destroy(&cl->lock);
	free(cl);
}

/* Errors that say nothing about the key but about reaching the server:
 * worth another server. Result errors from a server that answered
 * (-ENOENT, -EACCES, -EREMOTEIO, -EINVAL...) are final. */
static bool transport_error(int r)
{
	switch (-r) {
	case ETIMEDOUT:
	case ECONNRESET:
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EPIPE:
	case EIO:
	case EPROTO:
	case EBADMSG:
	case EPERM: /* TLS trust failure: perhaps only this server's certificate */
	case EPROTONOSUPPORT:
		return true;
	default:
		return false;
	}
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int vc_kmip_cluster_run(struct vc_kmip_cluster *cl,
			int (*fn)(struct vc_kmip_conn *c, void *arg, struct vc_error *err),
			void *arg, struct vc_error *err)
{
	char errors[VC_ERROR_MSG_MAX] = "";
	int r = -EHOSTUNREACH;

	bool retried_stale = false;

	pthread_mutex_lock(&cl->lock);
	/* The server in use first, then each other server once. */
	for (size_t tried = 0; tried < cl->n; tried++) {
		struct server *s = &cl->servers[cl->cur];
		struct vc_error e = { 0 };
		double t0 = now_ms();
		bool reused = cl->conn != NULL;

		if (!cl->conn)
			r = vc_kmip_connect(s->host, s->port, &cl->tls, &cl->conn, &e);
		else
			r = 0;
		if (r == 0)
			r = fn(cl->conn, arg, &e);
		if (r == 0 || !transport_error(r)) {
			/* The server answered (with success or a KMIP error). */
			s->h.last_success = time(NULL);
			s->h.last_ok = true;
			s->h.latency_ms = now_ms() - t0;
			for (size_t i = 0; i < cl->n; i++)
				cl->servers[i].h.in_use = i == cl->cur;
			if (r < 0 && err)
				*err = e;
			pthread_mutex_unlock(&cl->lock);
			return r;
		}
		vc_kmip_close(cl->conn);
		cl->conn = NULL;
		if (reused && !retried_stale) {
			/* A kept connection may have gone stale (server
			 * restarted, idle timeout): reconnect to the same
			 * server once before counting it as down. */
			retried_stale = true;
			tried--;
			continue;
		}
		s->h.last_failure = time(NULL);
		s->h.last_ok = false;
		snprintf(s->h.last_error, sizeof s->h.last_error, "%s", vc_error_msg(&e));
		{
			/* Name every server tried, not just the first. */
			size_t l = strlen(errors);

			snprintf(errors + l, sizeof errors - l, "%s%s", l ? "; " : "",
				 vc_error_msg(&e));
		}
		cl->cur = (cl->cur + 1) % cl->n;
	}
	pthread_mutex_unlock(&cl->lock);
	return vc_error_set(err, r, "key provider '%s': no server could be reached (%s)",
			    cl->name, errors);
}

struct create_arg {
	const char *name;
	char **uid;
	struct vc_secret **key; /* NULL: create only */
};

static int do_create(struct vc_kmip_conn *c, void *arg, struct vc_error *err)
{
	struct create_arg *a = arg;
	/* With the key wanted, Create and Get go in one batched request. */
	int r = a->key ? vc_kmip_create_get_aes256(c, a->name, a->uid, a->key, err)
		       : vc_kmip_create_aes256(c, a->name, a->uid, err);

	/* KEKs are created active, ready to use. */
	if (r == 0 && (r = vc_kmip_activate(c, *a->uid, err)) < 0) {
		free(*a->uid);
		*a->uid = NULL;
		if (a->key) {
			vc_secret_free(*a->key);
			*a->key = NULL;
		}
	}
	return r;
}

int vc_kmip_cluster_create_key(struct vc_kmip_cluster *cl, const char *name, char **uid,
			       struct vc_error *err)
{
	struct create_arg a = { name, uid, NULL };

	return vc_kmip_cluster_run(cl, do_create, &a, err);
}

int vc_kmip_cluster_create_get_key(struct vc_kmip_cluster *cl, const char *name, char **uid,
				   struct vc_secret **key, struct vc_error *err)
{
	struct create_arg a = { name, uid, key };

	return vc_kmip_cluster_run(cl, do_create, &a, err);
}

struct get_arg {
	const char *uid;
	struct vc_secret **key;
};

static int do_get(struct vc_kmip_conn *c, void *arg, struct vc_error *err)
{
	struct get_arg *a = arg;

	return vc_kmip_get(c, a->uid, a->key, err);
}

int vc_kmip_cluster_get_key(struct vc_kmip_cluster *cl, const char *uid,
			    struct vc_secret **key, struct vc_error *err)
{
	struct get_arg a = { uid, key };

	return vc_kmip_cluster_run(cl, do_get, &a, err);
}

static int do_destroy(struct vc_kmip_conn *c, void *arg, struct vc_error *err)
{
	const char *uid = arg;
	int r = vc_kmip_revoke(c, uid, false, err);

	/* A key that was never activated cannot be revoked, only destroyed. */
	if (r < 0 && r != -EREMOTEIO)
		return r;
	return vc_kmip_destroy(c, uid, err);
}

int vc_kmip_cluster_destroy_key(struct vc_kmip_cluster *cl, const char *uid,
				struct vc_error *err)
{
	return vc_kmip_cluster_run(cl, do_destroy, (void *)(uintptr_t)uid, err);
}

int vc_kmip_cluster_probe(struct vc_kmip_cluster *cl, size_t i, struct vc_error *err)
{
	struct vc_kmip_conn *c = NULL;
	struct vc_error e = { 0 };
	char host[256];
	uint16_t port;
	double t0;
	int r;

	pthread_mutex_lock(&cl->lock);
	if (i >= cl->n) {
		pthread_mutex_unlock(&cl->lock);
		return vc_error_set(err, -EINVAL, "key provider '%s' has no server %zu",
				    cl->name, i);
	}
	memcpy(host, cl->servers[i].host, sizeof host);
	port = cl->servers[i].port;
	pthread_mutex_unlock(&cl->lock);

	/* A connection of its own, so a probe never waits behind (or
	 * disturbs) an operation on the kept connection. */
	t0 = now_ms();
	r = vc_kmip_connect(host, port, &cl->tls, &c, &e);
	vc_kmip_close(c);

	pthread_mutex_lock(&cl->lock);
	if (r == 0) {
		cl->servers[i].h.last_success = time(NULL);
		cl->servers[i].h.last_ok = true;
		cl->servers[i].h.latency_ms = now_ms() - t0;
	} else {
		cl->servers[i].h.last_failure = time(NULL);
		cl->servers[i].h.last_ok = false;
		snprintf(cl->servers[i].h.last_error, sizeof cl->servers[i].h.last_error, "%s",
			 vc_error_msg(&e));
	}
	pthread_mutex_unlock(&cl->lock);
	if (r < 0 && err)
		*err = e;
	return r;
}

size_t vc_kmip_cluster_health(struct vc_kmip_cluster *cl, struct vc_kmip_health *out,
			      size_t max)
{
	size_t n;

	pthread_mutex_lock(&cl->lock);
	n = cl->n < max ? cl->n : max;
	for (size_t i = 0; i < n; i++)
		out[i] = cl->servers[i].h;
	pthread_mutex_unlock(&cl->lock);
	return n;
}
