/* SPDX-License-Identifier: Apache-2.0 */
/* vmcryptd's persistent state: typed records over a small backend vtable. */
#ifndef VC_STORE_H
#define VC_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "vc_error.h"
#include "vc_event.h"

/*
 * The store keeps key ids only, never key material: no table has a column
 * for a key (the tests read the schema to hold us to that).
 *
 * Conventions for every function below:
 * - 0 on success or a negative errno-style code, with err (may be NULL)
 *   filled with one whole message. Common codes: -EEXIST (the name/id is
 *   taken), -EINVAL (a bad value or a reference to something that does not
 *   exist, e.g. an unknown role), -ENOENT (no such record), -EPERM
 *   (builtin role), -ENOTEMPTY (inventory object with children), -EBUSY
 *   (record still referenced, or the database is locked), -EBADMSG (the
 *   file is not a store or is corrupted), -EPROTO (schema newer than this
 *   program), -ENOMEM, -EIO.
 * - Each write runs in a transaction: its own one, or inside the caller's
 *   vc_store_begin()/vc_store_commit() when one is open.
 * - Input strings are borrowed for the duration of the call.
 * - List functions call cb once per record; the record and its strings are
 *   valid only during the call. A non-zero return from cb stops the list
 *   and is returned as is.
 * - Get functions fill *out with strings that live in one malloc'd block,
 *   out->mem, which the caller releases with free(out->mem). On error
 *   out->mem is NULL.
 * - Times are Unix seconds unless the name says _us (microseconds).
 */

struct vc_store;

/* One value of a statement parameter or result column (backend level). */
enum vc_store_type { VC_STORE_NULL, VC_STORE_INT, VC_STORE_TEXT, VC_STORE_BLOB };
struct vc_store_val {
	enum vc_store_type type;
	int64_t i;
	const char *s;       /* TEXT, NUL-terminated */
	const void *b;       /* BLOB */
	size_t len;          /* BLOB length, or strlen of TEXT */
};

typedef int (*vc_store_row_fn)(const struct vc_store_val *cols, int ncols,
			       void *ctx);

/*
 * What a backend implements. The typed functions below are written once
 * over it in portable SQL: parameters are numbered "?1".."?N" (a backend
 * whose driver wants "$1" rewrites them) and are always bound, never
 * pasted into the text. exec maps constraint failures to -EEXIST (unique)
 * and -EINVAL (foreign key, check, not null), and sets *changes (may be
 * NULL) to the number of rows a write touched.
 */
struct vc_store_ops {
	const char *name;
	void (*close)(void *impl);
	int (*exec)(void *impl, const char *sql, const struct vc_store_val *params,
		    int nparams, vc_store_row_fn row, void *ctx, int64_t *changes,
		    struct vc_error *err);
	int (*begin)(void *impl, struct vc_error *err);    /* a write transaction */
	int (*commit)(void *impl, struct vc_error *err);
	int (*rollback)(void *impl, struct vc_error *err);
	bool (*in_transaction)(void *impl);
	int (*schema_version)(void *impl, int *version, struct vc_error *err);
};

/* Wrap a backend (used by backends' open functions). */
VC_MUST_CHECK int vc_store_new(const struct vc_store_ops *ops, void *impl,
			       struct vc_store **out, struct vc_error *err);

/* The schema version this program writes. */
#define VC_STORE_SCHEMA_VERSION 5

/*
 * Open (creating with mode 0600 if missing) the SQLite store at path: WAL
 * journal, foreign keys on, a busy timeout, then every pending migration
 * applied in its own transaction. -EBADMSG for a file that is not a SQLite
 * database, -EPROTO for a schema newer than VC_STORE_SCHEMA_VERSION.
 * The caller closes *out with vc_store_close().
 */
VC_MUST_CHECK int vc_store_open_sqlite(const char *path, struct vc_store **out,
				       struct vc_error *err);

/* As vc_store_open_sqlite but migrates no further than max_version: lets
 * tests build an older schema to upgrade from. */
VC_MUST_CHECK int vc_store_open_sqlite_at(const char *path, int max_version,
					  struct vc_store **out,
					  struct vc_error *err);

/* NULL is a no-op. A transaction still open is rolled back. */
void vc_store_close(struct vc_store *st);

VC_MUST_CHECK int vc_store_schema_version(struct vc_store *st, int *version,
					  struct vc_error *err);

/* An explicit write transaction grouping several calls. No nesting. */
VC_MUST_CHECK int vc_store_begin(struct vc_store *st, struct vc_error *err);
VC_MUST_CHECK int vc_store_commit(struct vc_store *st, struct vc_error *err);
VC_MUST_CHECK int vc_store_rollback(struct vc_store *st, struct vc_error *err);
/* End the transaction begun with vc_store_begin(): commit if ret is 0,
 * else roll back (a rollback failure is dropped: ret and err already say
 * what went wrong). Returns ret, or the commit's error. */
VC_MUST_CHECK int vc_store_end(struct vc_store *st, int ret, struct vc_error *err);

/* ---- users ---- */
struct vc_store_user {
	const char *name;
	const char *password_hash;   /* a vc_passwd_hash() string */
	int64_t created;
	bool disabled;
	bool must_change;            /* a one-time password: change it first */
	char *mem;
};
typedef int (*vc_store_user_fn)(const struct vc_store_user *u, void *ctx);
VC_MUST_CHECK int vc_store_user_add(struct vc_store *st, const struct vc_store_user *u,
				    struct vc_error *err);
VC_MUST_CHECK int vc_store_user_get(struct vc_store *st, const char *name,
				    struct vc_store_user *out, struct vc_error *err);
VC_MUST_CHECK int vc_store_user_list(struct vc_store *st, vc_store_user_fn cb,
				     void *ctx, struct vc_error *err);
VC_MUST_CHECK int vc_store_user_set_password(struct vc_store *st, const char *name,
					     const char *password_hash,
					     struct vc_error *err);
VC_MUST_CHECK int vc_store_user_set_disabled(struct vc_store *st, const char *name,
					     bool disabled, struct vc_error *err);
VC_MUST_CHECK int vc_store_user_set_must_change(struct vc_store *st, const char *name,
						bool must_change, struct vc_error *err);
/* Groups of a user, ordered by name; -EEXIST if already a member. */
typedef int (*vc_store_group_fn)(const char *group, void *ctx);
VC_MUST_CHECK int vc_store_user_groups(struct vc_store *st, const char *name,
				       vc_store_group_fn cb, void *ctx,
				       struct vc_error *err);
VC_MUST_CHECK int vc_store_user_group_add(struct vc_store *st, const char *name,
					  const char *group, struct vc_error *err);
/* Also deletes the user's sessions (and group memberships). */
VC_MUST_CHECK int vc_store_user_delete(struct vc_store *st, const char *name,
				       struct vc_error *err);

/* ---- sessions (only a hash of the bearer token is stored) ---- */
#define VC_STORE_TOKEN_HASH_LEN 32
struct vc_store_session {
	uint8_t token_hash[VC_STORE_TOKEN_HASH_LEN];
	const char *user;
	int64_t expires;
	char *mem;
};
VC_MUST_CHECK int vc_store_session_add(struct vc_store *st,
				       const struct vc_store_session *s,
				       struct vc_error *err);
/* The session whose expires > now; -ENOENT if none (or expired). */
VC_MUST_CHECK int vc_store_session_find(struct vc_store *st,
					const uint8_t token_hash[VC_STORE_TOKEN_HASH_LEN],
					int64_t now, struct vc_store_session *out,
					struct vc_error *err);
VC_MUST_CHECK int vc_store_session_delete(struct vc_store *st,
					  const uint8_t token_hash[VC_STORE_TOKEN_HASH_LEN],
					  struct vc_error *err);
/* End every session of a user (password reset). */
VC_MUST_CHECK int vc_store_session_delete_user(struct vc_store *st, const char *name,
					       struct vc_error *err);
/* Delete sessions with expires <= now; *purged (may be NULL) = count. */
VC_MUST_CHECK int vc_store_session_purge(struct vc_store *st, int64_t now,
					 int64_t *purged, struct vc_error *err);

/* ---- roles ---- */
struct vc_store_role {
	const char *name;
	const char *privileges;   /* vc_privset_format() text */
	bool builtin;
	char *mem;
};
typedef int (*vc_store_role_fn)(const struct vc_store_role *r, void *ctx);
VC_MUST_CHECK int vc_store_role_add(struct vc_store *st, const struct vc_store_role *r,
				    struct vc_error *err);
VC_MUST_CHECK int vc_store_role_get(struct vc_store *st, const char *name,
				    struct vc_store_role *out, struct vc_error *err);
VC_MUST_CHECK int vc_store_role_list(struct vc_store *st, vc_store_role_fn cb,
				     void *ctx, struct vc_error *err);
/* -EPERM for a builtin role, -EBUSY while a permission uses it. */
VC_MUST_CHECK int vc_store_role_delete(struct vc_store *st, const char *name,
				       struct vc_error *err);

/* ---- inventory ---- */
enum vc_store_kind {
	VC_STORE_ROOT, VC_STORE_FOLDER, VC_STORE_CLUSTER, VC_STORE_HOST, VC_STORE_VM,
};
/* "root", "folder", ...; NULL for an out-of-range value. */
const char *vc_store_kind_name(enum vc_store_kind k);

struct vc_store_object {
	const char *id;
	const char *parent;   /* NULL only for the root */
	enum vc_store_kind kind;
	const char *name;
	char *mem;
};
typedef int (*vc_store_object_fn)(const struct vc_store_object *o, void *ctx);
/* -EINVAL for an unknown parent or a root with a parent (or the reverse). */
VC_MUST_CHECK int vc_store_object_add(struct vc_store *st,
				      const struct vc_store_object *o,
				      struct vc_error *err);
VC_MUST_CHECK int vc_store_object_get(struct vc_store *st, const char *id,
				      struct vc_store_object *out,
				      struct vc_error *err);
/* Direct children of parent, ordered by name. */
VC_MUST_CHECK int vc_store_object_children(struct vc_store *st, const char *parent,
					   vc_store_object_fn cb, void *ctx,
					   struct vc_error *err);
VC_MUST_CHECK int vc_store_object_rename(struct vc_store *st, const char *id,
					 const char *name, struct vc_error *err);
/* -ENOTEMPTY while the object has children; its permissions go with it. */
VC_MUST_CHECK int vc_store_object_delete(struct vc_store *st, const char *id,
					 struct vc_error *err);

/* ---- permissions ---- */
struct vc_store_perm {
	const char *principal;
	bool is_group;
	const char *role;
	const char *object;
	bool propagate;
	char *mem;
};
typedef int (*vc_store_perm_fn)(const struct vc_store_perm *p, void *ctx);
/* -EINVAL for an unknown role or object, -EEXIST if the principal already
 * has a permission on the object. */
VC_MUST_CHECK int vc_store_perm_add(struct vc_store *st, const struct vc_store_perm *p,
				    struct vc_error *err);
/* object == NULL lists every permission. */
VC_MUST_CHECK int vc_store_perm_list(struct vc_store *st, const char *object,
				     vc_store_perm_fn cb, void *ctx,
				     struct vc_error *err);
VC_MUST_CHECK int vc_store_perm_delete(struct vc_store *st, const char *principal,
				       bool is_group, const char *object,
				       struct vc_error *err);

/* ---- key providers (configuration only; never keys) ---- */
struct vc_store_provider {
	const char *name;
	const char *kind;     /* "kmip" or "native" */
	const char *config;   /* JSON text */
	bool is_default;
	char *mem;
};
typedef int (*vc_store_provider_fn)(const struct vc_store_provider *p, void *ctx);
/* Adding a default provider clears the flag on the previous one. */
VC_MUST_CHECK int vc_store_provider_add(struct vc_store *st,
					const struct vc_store_provider *p,
					struct vc_error *err);
VC_MUST_CHECK int vc_store_provider_get(struct vc_store *st, const char *name,
					struct vc_store_provider *out,
					struct vc_error *err);
VC_MUST_CHECK int vc_store_provider_list(struct vc_store *st, vc_store_provider_fn cb,
					 void *ctx, struct vc_error *err);
VC_MUST_CHECK int vc_store_provider_set_default(struct vc_store *st, const char *name,
						struct vc_error *err);
/* -EBUSY while a policy names it. */
VC_MUST_CHECK int vc_store_provider_delete(struct vc_store *st, const char *name,
					   struct vc_error *err);

/* ---- encryption policies ---- */
struct vc_store_policy {
	const char *name;
	bool encrypt;
	const char *migration;   /* e.g. "disabled", "opportunistic", "required" */
	const char *provider;    /* NULL = the default provider */
	char *mem;
};
typedef int (*vc_store_policy_fn)(const struct vc_store_policy *p, void *ctx);
VC_MUST_CHECK int vc_store_policy_add(struct vc_store *st,
				      const struct vc_store_policy *p,
				      struct vc_error *err);
VC_MUST_CHECK int vc_store_policy_get(struct vc_store *st, const char *name,
				      struct vc_store_policy *out,
				      struct vc_error *err);
VC_MUST_CHECK int vc_store_policy_list(struct vc_store *st, vc_store_policy_fn cb,
				       void *ctx, struct vc_error *err);
VC_MUST_CHECK int vc_store_policy_delete(struct vc_store *st, const char *name,
					 struct vc_error *err);

/* ---- tasks ---- */
struct vc_store_task {
	const char *id;
	const char *kind;
	const char *state;    /* e.g. "queued", "running", "success", "error" */
	int progress;         /* 0..100 */
	const char *result;   /* may be NULL */
	const char *error;    /* may be NULL */
	const char *user;
	int64_t created;
	int64_t updated;
	char *mem;
};
typedef int (*vc_store_task_fn)(const struct vc_store_task *t, void *ctx);
VC_MUST_CHECK int vc_store_task_add(struct vc_store *st, const struct vc_store_task *t,
				    struct vc_error *err);
/* Sets state, progress, result, error and updated from t (by t->id). */
VC_MUST_CHECK int vc_store_task_update(struct vc_store *st,
				       const struct vc_store_task *t,
				       struct vc_error *err);
VC_MUST_CHECK int vc_store_task_get(struct vc_store *st, const char *id,
				    struct vc_store_task *out, struct vc_error *err);
/* Ordered by created, then id. */
VC_MUST_CHECK int vc_store_task_list(struct vc_store *st, vc_store_task_fn cb,
				     void *ctx, struct vc_error *err);

/* ---- hosts (each also an inventory object of kind host) ---- */
struct vc_store_host {
	const char *id;           /* the inventory id */
	const char *address;      /* "host:port" of its agent */
	const char *thumbprint;   /* SHA-256 of its certificate, 64 lower-case hex */
	bool encryption_mode;
	int64_t added;
	char *mem;
};
typedef int (*vc_store_host_fn)(const struct vc_store_host *h, void *ctx);
/* -EEXIST for an address already added; -EINVAL for an unknown object. */
VC_MUST_CHECK int vc_store_host_add(struct vc_store *st, const struct vc_store_host *h,
				    struct vc_error *err);
VC_MUST_CHECK int vc_store_host_get(struct vc_store *st, const char *id,
				    struct vc_store_host *out, struct vc_error *err);
VC_MUST_CHECK int vc_store_host_list(struct vc_store *st, vc_store_host_fn cb, void *ctx,
				     struct vc_error *err);
VC_MUST_CHECK int vc_store_host_set_encryption_mode(struct vc_store *st, const char *id,
						    bool on, struct vc_error *err);

/* ---- VMs (each also an inventory object; key ids only) ---- */
struct vc_store_vm {
	const char *id;          /* inventory id */
	const char *host;        /* hosts.id */
	const char *uuid;        /* the VM's folder on the host's datastore */
	bool encrypted;
	const char *provider;    /* its KEK, NULL for a plaintext VM */
	const char *key_id;
	char *mem;
};
typedef int (*vc_store_vm_fn)(const struct vc_store_vm *v, void *ctx);
VC_MUST_CHECK int vc_store_vm_add(struct vc_store *st, const struct vc_store_vm *v,
				  struct vc_error *err);
VC_MUST_CHECK int vc_store_vm_get(struct vc_store *st, const char *id,
				  struct vc_store_vm *out, struct vc_error *err);
/* host NULL: every VM. */
VC_MUST_CHECK int vc_store_vm_list(struct vc_store *st, const char *host, vc_store_vm_fn cb,
				   void *ctx, struct vc_error *err);
VC_MUST_CHECK int vc_store_vm_set_key(struct vc_store *st, const char *id, bool encrypted,
				      const char *provider, const char *key_id,
				      struct vc_error *err);

/* The VM now runs on another host (-EINVAL for an unknown host). */
VC_MUST_CHECK int vc_store_vm_set_host(struct vc_store *st, const char *id, const char *host,
				       struct vc_error *err);

/* ---- events (vc_event, hash-chained) ---- */
/*
 * In one transaction: ev->seq = last seq + 1 (1 for the first), then
 * vc_event_seal(ev, last hash or genesis, key, keylen), then insert. On
 * success ev->seq, ev->prev_hash and ev->hash hold what was stored.
 */
VC_MUST_CHECK int vc_store_event_append(struct vc_store *st, struct vc_event *ev,
					const uint8_t genesis[VC_SHA256_LEN],
					const void *key, size_t keylen,
					struct vc_error *err);

/* Filters: a NULL string or a zero time matches everything; times are
 * inclusive bounds on time_us. Results in ascending seq. */
struct vc_store_event_filter {
	int64_t from_us;
	int64_t to_us;
	const char *user;
	const char *object;
	const char *operation;
};
typedef int (*vc_store_event_fn)(const struct vc_event *ev, void *ctx);
VC_MUST_CHECK int vc_store_event_list(struct vc_store *st,
				      const struct vc_store_event_filter *f,
				      vc_store_event_fn cb, void *ctx,
				      struct vc_error *err);
/* The newest event, strings in *mem (free(*mem)); -ENOENT if none. */
VC_MUST_CHECK int vc_store_event_last(struct vc_store *st, struct vc_event *out,
				      char **mem, struct vc_error *err);

#endif
