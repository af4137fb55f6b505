/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd internals shared by its files: the manager context, one API
 * call, the route table, replies, privilege checks and events. */
#ifndef VC_MGR_H
#define VC_MGR_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "request.h"
#include "store.h"
#include "vc_error.h"
#include "vc_keyprov.h"
#include "vc_priv.h"

struct evhttp_request;
struct event_base;

struct mgr_config {
	char *data_dir;
	char *listen;              /* "127.0.0.1:8443", "[::1]:8443" */
	char *tls_cert, *tls_key;  /* NULL: <data_dir>/tls/manager.{crt,key} */
	char *admin_password_file;
	int admin_password_fd;     /* -1: none */
	char *native_provider;     /* create this native provider if none exists */
	int64_t token_ttl;         /* seconds */
};

/* A key provider the manager has open. */
struct mgr_provider {
	char name[VC_REQ_NAME_MAX + 1];
	enum vc_keyprov_kind kind;
	struct vc_keyprov *kp;
	json_t *config;            /* the stored configuration (no secrets) */
	int refs;                  /* the list's and running tasks' (under lock) */
	struct mgr_provider *next;
};

/* The inventory and permissions in vc_priv's shape, rebuilt after any
 * change to inventory, permissions or roles. */
struct mgr_authz {
	bool valid;
	struct vc_inv_node *nodes;
	char (*kinds)[8];
	const char **names;
	size_t nnodes;
	struct vc_perm *perms;
	size_t nperms;
	char *strings;             /* one block for every id above */
	size_t strings_len, strings_cap;
};

struct mgr;

/* A queued long operation (tasks.c). */
struct mgr_task {
	char id[37];
	char user[VC_REQ_NAME_MAX + 1];
	void (*run)(struct mgr *m, struct mgr_task *t);
	json_t *arg;                 /* what run needs (owned) */
	struct mgr_provider *prov;   /* a reference, or NULL */
	char obj[64];                /* the VM it works on ("": none): one at a time */
	struct mgr_task *next;
};

#define TASK_WORKERS 4

struct mgr {
	struct mgr_config cfg;
	struct vc_store *st;
	/* Held by the event loop for a whole call and by the task worker
	 * whenever it reads or writes shared state. */
	pthread_mutex_t lock;
	struct mgr_provider *providers;
	struct mgr_authz authz;
	struct event_base *base;

	/* Task workers: each takes the oldest queued task whose VM no other
	 * worker is busy with (tasks on one VM run in order, one at a time).
	 * The reconciler brings hosts the keys of their locked VMs. */
	pthread_t workers[TASK_WORKERS];
	size_t nworkers;
	const char *busy[TASK_WORKERS];   /* obj of the task each one runs */
	pthread_t reconciler;
	bool reconciler_started;
	pthread_cond_t task_cond, recon_cond;
	struct mgr_task *queue;
	bool stopping;

	/* Why the key of a locked VM could not be brought to its host, by key
	 * id (the reconciliation's last failure; cleared when it succeeds). */
	struct key_issue {
		char key_id[256];
		char msg[512];
		struct key_issue *next;
	} *key_issues;

	/* A hash of a random password, verified for unknown users so that a
	 * login takes as long whether the user exists or not. */
	char *decoy_hash;

	/* The manager's certificate and key (its client identity towards
	 * host agents too). */
	char cert_path[4096], key_path[4096];
};

/* One API call. */
struct req {
	struct mgr *m;
	struct evhttp_request *er;
	int method;                    /* EVHTTP_REQ_* */
	struct vc_target t;
	const char *param[4];          /* path parameters ("{name}") */
	json_t *body;                  /* checked against the route's fields */
	/* The caller, once authenticated. */
	char user[VC_REQ_NAME_MAX + 1];
	char groups[8][VC_REQ_NAME_MAX + 1];
	size_t ngroups;
	bool must_change;
	int64_t expires;
	uint8_t token_hash[32];
	bool replied;
	bool deferred;                 /* handed to defer_call() */
};

/*
 * Run work(r, arg) on a thread of its own, without m->lock (for calls that
 * wait on the network: host agents), then done(r, arg) back on the request
 * loop with m->lock held, which replies. If the client went away
 * meanwhile, done still runs (to free arg) with r->er NULL and must not
 * reply. 0, or -errno (then nothing was started: reply yourself).
 */
int defer_call(struct req *r, void (*work)(struct req *r, void *arg),
	       void (*done)(struct req *r, void *arg), void *arg);

/* Where a route's privilege is checked. */
enum mgr_obj {
	OBJ_ROOT,           /* on "root" */
	OBJ_PARAM,          /* on the first path parameter */
	OBJ_BODY_PARENT,    /* on the body's "parent" */
	OBJ_BODY_OBJECT,    /* on the body's "object" */
	OBJ_QUERY_OBJECT,   /* on the query's "object" (root when absent) */
};

/* Who may call a route. */
#define PRIV_NONE (-2)      /* no authentication (login) */
#define PRIV_ANY (-1)       /* any authenticated user */
#define PRIV_BY_KIND (-3)   /* the handler checks, by inventory kind */

struct route {
	int method;
	const char *pattern;
	int priv;                       /* enum vc_priv, or PRIV_* above */
	enum mgr_obj obj;
	const struct vc_field *fields;  /* body; NULL: no body accepted */
	const char *const *query;       /* accepted query keys, or NULL */
	void (*fn)(struct req *r);
	const char *note;               /* for --print-routes and PRIVILEGES.md */
};

extern const struct route mgr_routes[];
extern const size_t mgr_nroutes;

/* ---- replies (each call replies exactly once) ---- */
/* Send j (a new reference, taken) with status. */
void reply_json(struct req *r, int status, json_t *j);
void reply_empty(struct req *r, int status);
/* {"error": {"code": code, "message": msg}} */
void reply_error(struct req *r, int status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* 403 with "privilege" set (NULL: none). */
void reply_forbidden(struct req *r, const char *priv, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "GET", "POST", ... for an EVHTTP_REQ_* value. */
const char *route_method_name(int m);
/* Map a library/store error code to a status and reply with err's message. */
void reply_errno(struct req *r, int ret, const struct vc_error *err);
/* Raw bytes with a content type (exports). */
void reply_raw(struct req *r, int status, const char *ctype, const char *data, size_t len);

/* ---- privileges ---- */
/* 0 if the caller holds priv on object; otherwise replies 403 (logging an
 * access.denied event) or 404 for an unknown object, and returns < 0. */
int need_priv(struct req *r, enum vc_priv priv, const char *object);
/* The caller's privileges on every object of the cached inventory (in its
 * order, m->authz.nodes), in one pass. */
int privs_all(struct req *r, struct vc_privset *out, struct vc_error *err);
/* The caller's effective privileges on object (false if unknown). */
bool privs_on(struct req *r, const char *object, struct vc_privset *out);
void authz_invalidate(struct mgr *m);
/* The kind of an inventory object ("folder", ...), or NULL. */
const char *authz_kind(struct mgr *m, const char *id);
int authz_load(struct mgr *m, struct vc_error *err);

/* ---- events ---- */
/* Append an event (errors are logged: an API call never fails because
 * its event could not be written, but the log line says so). */
void ev_log(struct mgr *m, const char *user, const char *op, const char *object,
	    const char *provider, const char *key_id, const char *result,
	    const char *fmt, ...) __attribute__((format(printf, 8, 9)));
#define EV_OK "success"
#define EV_FAIL "failure"
#define EV_DENIED "denied"

#include "providers.h"

/* ---- tasks (tasks.c) ---- */
int tasks_start(struct mgr *m, struct vc_error *err);
void tasks_stop(struct mgr *m);
/* Mark tasks a previous process left queued or running as failed. */
int tasks_recover(struct mgr *m, struct vc_error *err);
/* Queue a check of provider name; the new task id into id[37]. */
int task_queue_check(struct mgr *m, const char *user, const char *provider, char id[37],
		     struct vc_error *err);
/* Queue run(m, t) with arg (taken) and a reference on prov (may be NULL). */
int task_queue(struct mgr *m, const char *user, const char *kind,
	       void (*run)(struct mgr *m, struct mgr_task *t), json_t *arg,
	       struct mgr_provider *prov, char id[37], struct vc_error *err);
/* From a running task, without m->lock held. */
void task_progress(struct mgr *m, struct mgr_task *t, int pct);
/* result taken; error NULL for success. */
void task_finish(struct mgr *m, struct mgr_task *t, json_t *result, const char *error);
/* Caller holds m->lock. */
void task_set(struct mgr *m, struct mgr_task *t, const char *state, int progress,
	      const char *result, const char *error);
/* Push the keys of locked VMs to their hosts (vms.c, worker thread, no lock). */
void reconcile_hosts(struct mgr *m);
void key_issues_free(struct mgr *m);
json_t *task_json(const struct vc_store_task *t);

/* ---- setup (setup.c) ---- */
int mgr_first_start(struct mgr *m, struct vc_error *err);

/* helpers */
int64_t now_s(void);
json_t *jstr_or_null(const char *s);

#endif
