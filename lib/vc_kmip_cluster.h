/* SPDX-License-Identifier: Apache-2.0 */
/* A standard key provider: a named cluster of KMIP servers (replicas of
 * one another) tried in order with failover, one persistent connection to
 * the server in use, and per-server health for the manager to show. */
#ifndef VC_KMIP_CLUSTER_H
#define VC_KMIP_CLUSTER_H

#include <time.h>

#include "vc_kmip.h"

#define VC_KMIP_CLUSTER_MAX 16

struct vc_kmip_cluster_cfg {
	const char *name;                /* provider name, for messages */
	const char *servers[VC_KMIP_CLUSTER_MAX]; /* "host:port" or "[v6]:port" */
	size_t nservers;
	struct vc_kmip_tls tls;          /* shared by all servers */
};

struct vc_kmip_health {
	char server[280];
	bool in_use;
	time_t last_success;   /* 0: never */
	time_t last_failure;   /* 0: never */
	bool last_ok;          /* the latest contact succeeded (false: none yet) */
	char last_error[VC_ERROR_MSG_MAX];
	double latency_ms;     /* of the last successful operation */
};

struct vc_kmip_cluster;

/* Copies the configuration; connects lazily on the first operation. */
VC_MUST_CHECK int vc_kmip_cluster_new(const struct vc_kmip_cluster_cfg *cfg,
				      struct vc_kmip_cluster **out,
				      struct vc_error *err);
void vc_kmip_cluster_free(struct vc_kmip_cluster *cl);

/* Each operation runs on the server in use; if that server cannot be
 * reached or stops answering (connection, TLS or timeout errors) the
 * operation is retried once on each following server, so one dead server
 * costs one bounded retry. An error the server itself returns (Item Not
 * Found, Permission Denied...) is not retried. Thread-safe: operations
 * are serialised on the one connection. */
VC_MUST_CHECK int vc_kmip_cluster_create_key(struct vc_kmip_cluster *cl, const char *name,
					     char **uid, struct vc_error *err);
/* Create, get and activate in two round trips (Create+Get batched). */
VC_MUST_CHECK int vc_kmip_cluster_create_get_key(struct vc_kmip_cluster *cl, const char *name,
						 char **uid, struct vc_secret **key,
						 struct vc_error *err);
VC_MUST_CHECK int vc_kmip_cluster_get_key(struct vc_kmip_cluster *cl, const char *uid,
					  struct vc_secret **key, struct vc_error *err);
VC_MUST_CHECK int vc_kmip_cluster_destroy_key(struct vc_kmip_cluster *cl, const char *uid,
					      struct vc_error *err);

/* Run fn on a live connection with the same failover rule. */
VC_MUST_CHECK int vc_kmip_cluster_run(struct vc_kmip_cluster *cl,
				      int (*fn)(struct vc_kmip_conn *c, void *arg,
						struct vc_error *err),
				      void *arg, struct vc_error *err);

/* Connect to server i (0-based, configuration order) on a connection of
 * its own, negotiate the version and hang up; records the result in the
 * server's health (last success and latency, or last failure and error).
 * Thread-safe, and does not hold up operations meanwhile. */
VC_MUST_CHECK int vc_kmip_cluster_probe(struct vc_kmip_cluster *cl, size_t i,
					struct vc_error *err);

/* Health of every server, in configuration order; returns the count. */
size_t vc_kmip_cluster_health(struct vc_kmip_cluster *cl, struct vc_kmip_health *out,
			      size_t max);

/* Split "host:port" / "[v6]:port" (port defaults to 5696). */
VC_MUST_CHECK int vc_kmip_parse_server(const char *s, char *host, size_t hostlen,
				       uint16_t *port, struct vc_error *err);

#endif
