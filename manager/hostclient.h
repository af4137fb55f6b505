/* SPDX-License-Identifier: Apache-2.0 */
/* The manager's calls to host agents: HTTPS with the manager's
 * certificate as client identity and the host's certificate pinned. */
#ifndef VC_MGR_HOSTCLIENT_H
#define VC_MGR_HOSTCLIENT_H

#include <stdint.h>

#include <jansson.h>

#include "vc_error.h"

struct mgr;

struct host_call {
	const char *address;   /* "host:port" */
	const char *pin;       /* 64 hex: the host certificate must match; NULL: any,
				* and its thumbprint is reported in seen */
	const char *method;    /* "GET", "POST", "PUT", "DELETE" */
	const char *path;      /* "/api/v1/host" */
	json_t *body;          /* or NULL */
	int timeout_ms;        /* 0: 10000 */
	/* results */
	long status;
	json_t *resp;          /* the parsed reply (caller decrefs), or NULL */
	char seen[65];         /* the thumbprint the host presented (64 hex) */
};

/* Once, before threads start. */
int hostclient_init(struct vc_error *err);
void hostclient_cleanup(void);

/* Make the call. 0 when the host answered (any status: see c->status),
 * -EHOSTUNREACH with a message when it could not be reached, -EKEYREJECTED
 * when its certificate does not match the pin. */
VC_MUST_CHECK int host_call(struct mgr *m, struct host_call *c, struct vc_error *err);

/* "AA:bb:..." or 64 hex digits to 64 lower-case hex; -EINVAL otherwise. */
VC_MUST_CHECK int thumbprint_norm(const char *in, char out[65]);

/* 64 hex to "AA:BB:..." (95 characters and a NUL). */
void thumbprint_pretty(const char hex[65], char out[96]);

#endif
