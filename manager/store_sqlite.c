/* SPDX-License-Identifier: Apache-2.0 */
/* The manager's store: typed records in portable SQL, and its SQLite backend. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "store.h"

#define MAX_COLS 16
#define BUSY_TIMEOUT_MS 5000

struct vc_store {
	const struct vc_store_ops *ops;
	void *impl;
};

/* ===================== SQLite backend ===================== */

/*
 * Migrations, in order: migrations[i] takes the schema from version i to
 * i + 1. Each runs in its own transaction with the version bump, so a
 * crash leaves the file at a whole version. Never edit a released entry:
 * append a new one. The text is constant; no value is ever pasted in.
 * Column names avoid words reserved in PostgreSQL (hence user_name).
 */
static const char *const migrations[] = {
	/* 0 -> 1: the tables. */
	"CREATE TABLE users ("
	"  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
	"  password_hash TEXT NOT NULL,"
	"  created INTEGER NOT NULL,"
	"  disabled INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)));"
	"CREATE TABLE sessions ("
	"  token_hash BLOB PRIMARY KEY NOT NULL CHECK (length(token_hash) = 32),"
	"  user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  expires INTEGER NOT NULL);"
	"CREATE TABLE roles ("
	"  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
	"  privileges TEXT NOT NULL,"
	"  builtin INTEGER NOT NULL DEFAULT 0 CHECK (builtin IN (0, 1)));"
	"CREATE TABLE inventory ("
	"  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
	"  parent TEXT REFERENCES inventory(id),"
	"  kind TEXT NOT NULL CHECK (kind IN ('root','folder','cluster','host','vm')),"
	"  name TEXT NOT NULL,"
	"  CHECK ((kind = 'root') = (parent IS NULL)));"
	"CREATE TABLE permissions ("
	"  principal TEXT NOT NULL CHECK (length(principal) > 0),"
	"  is_group INTEGER NOT NULL CHECK (is_group IN (0, 1)),"
	"  role TEXT NOT NULL REFERENCES roles(name),"
	"  object TEXT NOT NULL REFERENCES inventory(id) ON DELETE CASCADE,"
	"  propagate INTEGER NOT NULL CHECK (propagate IN (0, 1)),"
	"  PRIMARY KEY (principal, is_group, object));"
	"CREATE TABLE key_providers ("
	"  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
	"  kind TEXT NOT NULL CHECK (kind IN ('kmip','native')),"
	"  config TEXT NOT NULL,"
	"  is_default INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)));"
	"CREATE UNIQUE INDEX key_providers_one_default ON key_providers(is_default)"
	"  WHERE is_default = 1;"
	"CREATE TABLE policies ("
	"  name TEXT PRIMARY KEY NOT NULL CHECK (length(name) > 0),"
	"  encrypt INTEGER NOT NULL CHECK (encrypt IN (0, 1)),"
	"  migration TEXT NOT NULL,"
	"  provider TEXT REFERENCES key_providers(name));"
	"CREATE TABLE tasks ("
	"  id TEXT PRIMARY KEY NOT NULL CHECK (length(id) > 0),"
	"  kind TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  progress INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),"
	"  result TEXT,"
	"  error TEXT,"
	"  user_name TEXT,"
	"  created INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE events ("
	"  seq INTEGER PRIMARY KEY NOT NULL CHECK (seq > 0),"
	"  time_us INTEGER NOT NULL,"
	"  user_name TEXT, operation TEXT, object TEXT, provider TEXT,"
	"  key_id TEXT, result TEXT, message TEXT,"
	"  prev_hash BLOB NOT NULL CHECK (length(prev_hash) = 32),"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32));",
	/* 1 -> 2: indexes for the lookups the manager does often. */
	"CREATE INDEX sessions_expires ON sessions(expires);"
	"CREATE INDEX inventory_parent ON inventory(parent);"
	"CREATE INDEX permissions_role ON permissions(role);"
	"CREATE INDEX permissions_object ON permissions(object);"
	"CREATE INDEX policies_provider ON policies(provider);"
	"CREATE INDEX tasks_created ON tasks(created);"
	"CREATE INDEX events_time ON events(time_us);"
	"CREATE INDEX events_user ON events(user_name);"
	"CREATE INDEX events_object ON events(object);",
	/* 2 -> 3: one-time passwords that must be changed, and group
	 * membership of local users. */
	"ALTER TABLE users ADD COLUMN must_change INTEGER NOT NULL DEFAULT 0"
	"  CHECK (must_change IN (0, 1));"
	"CREATE TABLE user_groups ("
	"  user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
	"  group_name TEXT NOT NULL CHECK (length(group_name) > 0),"
	"  PRIMARY KEY (user_name, group_name));",
	/* 3 -> 4: host agents, each an inventory object of kind host. */
	"CREATE TABLE hosts ("
	"  id TEXT PRIMARY KEY NOT NULL REFERENCES inventory(id) ON DELETE CASCADE,"
	"  address TEXT NOT NULL CHECK (length(address) > 0),"
	"  thumbprint TEXT NOT NULL CHECK (length(thumbprint) = 64),"
	"  encryption_mode INTEGER NOT NULL DEFAULT 0 CHECK (encryption_mode IN (0, 1)),"
	"  added INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX hosts_address ON hosts(address);",
	/* 4 -> 5: VMs, each an inventory object, on a host. Key ids only. */
	"CREATE TABLE vms ("
	"  id TEXT PRIMARY KEY NOT NULL REFERENCES inventory(id) ON DELETE CASCADE,"
	"  host TEXT NOT NULL REFERENCES hosts(id),"
	"  uuid TEXT NOT NULL UNIQUE CHECK (length(uuid) = 36),"
	"  encrypted INTEGER NOT NULL DEFAULT 0 CHECK (encrypted IN (0, 1)),"
	"  provider TEXT,"
	"  key_id TEXT);"
	"CREATE INDEX vms_host ON vms(host);",
};
_Static_assert(VC_ARRAY_SIZE(migrations) == VC_STORE_SCHEMA_VERSION,
	       "one migration per schema version");

struct sq {
	sqlite3 *db;
	char *path;
};

static int sq_error(struct sq *s, int rc, struct vc_error *err, const char *what)
{
	int ext = s->db ? sqlite3_extended_errcode(s->db) : rc;
	const char *msg = s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc);
	int code;

	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		code = (ext == SQLITE_CONSTRAINT_UNIQUE ||
			ext == SQLITE_CONSTRAINT_PRIMARYKEY) ? -EEXIST : -EINVAL;
		break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = -EBUSY;
		break;
	case SQLITE_NOMEM:
		code = -ENOMEM;
		break;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return vc_error_set(err, -EBADMSG,
				    "store %s: not a vmcrypt store (not a SQLite database, or corrupted): %s",
				    s->path, msg);
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
		code = -EACCES;
		break;
	case SQLITE_FULL:
		code = -ENOSPC;
		break;
	case SQLITE_TOOBIG:
	case SQLITE_RANGE:
	case SQLITE_MISMATCH:
		code = -EINVAL;
		break;
	default:
		code = -EIO;
		break;
	}
	return vc_error_set(err, code, "store %s: %s: %s", s->path, what, msg);
}

static int sq_bind(struct sq *s, sqlite3_stmt *stmt, const struct vc_store_val *p,
		   int n, struct vc_error *err)
{
	for (int i = 0; i < n; i++) {
		int rc;

		switch (p[i].type) {
		case VC_STORE_NULL:
			rc = sqlite3_bind_null(stmt, i + 1);
			break;
		case VC_STORE_INT:
			rc = sqlite3_bind_int64(stmt, i + 1, p[i].i);
			break;
		case VC_STORE_TEXT:
			rc = p[i].s ? sqlite3_bind_text(stmt, i + 1, p[i].s, -1, SQLITE_STATIC)
				    : sqlite3_bind_null(stmt, i + 1);
			break;
		case VC_STORE_BLOB:
			if (p[i].len > INT_MAX)
				return vc_error_set(err, -EINVAL, "store: parameter %d too large", i + 1);
			rc = sqlite3_bind_blob(stmt, i + 1, p[i].b, (int)p[i].len, SQLITE_STATIC);
			break;
		default:
			return vc_error_set(err, -EINVAL, "store: parameter %d has no type", i + 1);
		}
		if (rc != SQLITE_OK)
			return sq_error(s, rc, err, "bind");
	}
	return 0;
}

static int sq_exec(void *impl, const char *sql, const struct vc_store_val *params,
		   int nparams, vc_store_row_fn row, void *ctx, int64_t *changes,
		   struct vc_error *err)
{
	struct sq *s = impl;
	sqlite3_stmt *stmt = NULL;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &stmt, NULL);
	if (rc != SQLITE_OK)
		return sq_error(s, rc, err, "prepare");
	ret = sq_bind(s, stmt, params, nparams, err);
	while (ret == 0 && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct vc_store_val cols[MAX_COLS];
		int n = sqlite3_column_count(stmt);

		if (n > MAX_COLS) {
			ret = vc_error_set(err, -EINVAL, "store: too many result columns");
			break;
		}
		for (int i = 0; i < n; i++) {
			struct vc_store_val *c = &cols[i];

			memset(c, 0, sizeof(*c));
			switch (sqlite3_column_type(stmt, i)) {
			case SQLITE_INTEGER:
				c->type = VC_STORE_INT;
				c->i = sqlite3_column_int64(stmt, i);
				break;
			case SQLITE_TEXT:
				c->type = VC_STORE_TEXT;
				c->s = (const char *)sqlite3_column_text(stmt, i);
				c->len = (size_t)sqlite3_column_bytes(stmt, i);
				if (!c->s)
					ret = vc_error_set(err, -ENOMEM, "store: out of memory");
				break;
			case SQLITE_BLOB:
				c->type = VC_STORE_BLOB;
				c->b = sqlite3_column_blob(stmt, i);
				c->len = (size_t)sqlite3_column_bytes(stmt, i);
				break;
			case SQLITE_NULL:
				c->type = VC_STORE_NULL;
				break;
			default:
				/* A float where we never write one: treat as damage. */
				ret = vc_error_set(err, -EBADMSG, "store %s: unexpected column type",
						   s->path);
				break;
			}
		}
		if (ret == 0 && row)
			ret = row(cols, n, ctx);
	}
	if (ret == 0 && rc != SQLITE_DONE)
		ret = sq_error(s, rc, err, "step");
	if (ret == 0 && changes)
		*changes = sqlite3_changes64(s->db);
	sqlite3_finalize(stmt);
	return ret;
}

static int sq_script(struct sq *s, const char *sql, struct vc_error *err,
		     const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sq_error(s, rc, err, what);
}

/* IMMEDIATE: take the write lock up front, so a read-then-write (the next
 * event seq) cannot be overtaken by another connection. */
static int sq_begin(void *impl, struct vc_error *err)
{
	return sq_script(impl, "BEGIN IMMEDIATE", err, "begin");
}

static int sq_commit(void *impl, struct vc_error *err)
{
	return sq_script(impl, "COMMIT", err, "commit");
}

static int sq_rollback(void *impl, struct vc_error *err)
{
	return sq_script(impl, "ROLLBACK", err, "rollback");
}

static bool sq_in_transaction(void *impl)
{
	struct sq *s = impl;

	return !sqlite3_get_autocommit(s->db);
}

static int int_row(const struct vc_store_val *cols, int n, void *ctx)
{
	if (n >= 1 && cols[0].type == VC_STORE_INT)
		*(int64_t *)ctx = cols[0].i;
	return 0;
}

static int sq_version(void *impl, int *version, struct vc_error *err)
{
	int64_t v = -1;
	int ret = sq_exec(impl, "SELECT coalesce(max(version), 0) FROM schema_version",
			  NULL, 0, int_row, &v, NULL, err);

	if (ret < 0)
		return ret;
	if (v < 0 || v > INT_MAX)
		return vc_error_set(err, -EBADMSG, "store: bad schema version %lld",
				    (long long)v);
	*version = (int)v;
	return 0;
}

static void sq_close(void *impl)
{
	struct sq *s = impl;

	if (!s)
		return;
	if (s->db) {
		if (!sqlite3_get_autocommit(s->db))
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close_v2(s->db);
	}
	free(s->path);
	free(s);
}

static const struct vc_store_ops sq_ops = {
	.name = "sqlite",
	.close = sq_close,
	.exec = sq_exec,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.in_transaction = sq_in_transaction,
	.schema_version = sq_version,
};

static int sq_migrate(struct sq *s, int max_version, struct vc_error *err)
{
	int ret, version;

	ret = sq_script(s, "CREATE TABLE IF NOT EXISTS schema_version ("
			   "version INTEGER NOT NULL)", err, "create schema_version");
	if (ret < 0)
		return ret;
	for (;;) {
		ret = sq_begin(s, err);
		if (ret < 0)
			return ret;
		/* Re-read under the write lock: another process may have
		 * migrated meanwhile. */
		ret = sq_version(s, &version, err);
		if (ret < 0)
			goto fail;
		if (version > VC_STORE_SCHEMA_VERSION) {
			ret = vc_error_set(err, -EPROTO,
					   "store %s: schema version %d is newer than this program's (%d)",
					   s->path, version, VC_STORE_SCHEMA_VERSION);
			goto fail;
		}
		if (version >= max_version)
			break;
		ret = sq_script(s, migrations[version], err, "migration");
		if (ret < 0) {
			vc_error_prefix(err, "schema migration %d -> %d", version, version + 1);
			goto fail;
		}
		{
			struct vc_store_val v = { .type = VC_STORE_INT, .i = version + 1 };

			ret = sq_exec(s, "DELETE FROM schema_version", NULL, 0, NULL, NULL,
				      NULL, err);
			if (ret == 0)
				ret = sq_exec(s, "INSERT INTO schema_version (version) VALUES (?1)",
					      &v, 1, NULL, NULL, NULL, err);
			if (ret < 0)
				goto fail;
		}
		ret = sq_commit(s, err);
		if (ret < 0)
			goto fail;
	}
	return sq_commit(s, err);
fail:
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

static int text_row(const struct vc_store_val *cols, int n, void *ctx)
{
	char *buf = ctx;

	if (n >= 1 && cols[0].type == VC_STORE_TEXT)
		snprintf(buf, 16, "%s", cols[0].s);
	return 0;
}

int vc_store_open_sqlite_at(const char *path, int max_version, struct vc_store **out,
			    struct vc_error *err)
{
	struct sq *s;
	char mode[16] = "";
	int fd, rc, ret;

	*out = NULL;
	if (max_version < 0 || max_version > VC_STORE_SCHEMA_VERSION)
		return vc_error_set(err, -EINVAL, "store: no schema version %d", max_version);
	/* Create the file ourselves so it is 0600 from the first byte;
	 * SQLite gives its -wal and -shm files the same mode. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd >= 0) {
		if (fchmod(fd, 0600) < 0) {
			ret = vc_error_errno(err, errno, "store %s: chmod", path);
			close(fd);
			return ret;
		}
		close(fd);
	} else if (errno != EEXIST) {
		return vc_error_errno(err, errno, "store %s: create", path);
	}

	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		return vc_error_set(err, -ENOMEM, "store: out of memory");
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		ret = sq_error(s, rc, err, "open");
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* The first statement reads the header: a file that is not SQLite
	 * fails here with SQLITE_NOTADB. */
	ret = sq_exec(s, "PRAGMA journal_mode=WAL", NULL, 0, text_row, mode, NULL, err);
	if (ret < 0)
		goto fail;
	if (strcmp(mode, "wal") != 0) {
		ret = vc_error_set(err, -EIO, "store %s: cannot enable WAL (journal mode %s)",
				   path, mode);
		goto fail;
	}
	ret = sq_script(s, "PRAGMA foreign_keys=ON", err, "enable foreign keys");
	if (ret < 0)
		goto fail;
	ret = sq_migrate(s, max_version, err);
	if (ret < 0)
		goto fail;
	ret = vc_store_new(&sq_ops, s, out, err);
	if (ret < 0)
		goto fail;
	return 0;
fail:
	sq_close(s);
	return ret;
}

int vc_store_open_sqlite(const char *path, struct vc_store **out, struct vc_error *err)
{
	return vc_store_open_sqlite_at(path, VC_STORE_SCHEMA_VERSION, out, err);
}

/* ===================== Backend-independent layer ===================== */

int vc_store_new(const struct vc_store_ops *ops, void *impl, struct vc_store **out,
		 struct vc_error *err)
{
	struct vc_store *st = calloc(1, sizeof(*st));

	if (!st)
		return vc_error_set(err, -ENOMEM, "store: out of memory");
	st->ops = ops;
	st->impl = impl;
	*out = st;
	return 0;
}

void vc_store_close(struct vc_store *st)
{
	if (!st)
		return;
	st->ops->close(st->impl);
	free(st);
}

int vc_store_schema_version(struct vc_store *st, int *version, struct vc_error *err)
{
	return st->ops->schema_version(st->impl, version, err);
}

int vc_store_begin(struct vc_store *st, struct vc_error *err)
{
	if (st->ops->in_transaction(st->impl))
		return vc_error_set(err, -EINVAL, "store: a transaction is already open");
	return st->ops->begin(st->impl, err);
}

int vc_store_commit(struct vc_store *st, struct vc_error *err)
{
	if (!st->ops->in_transaction(st->impl))
		return vc_error_set(err, -EINVAL, "store: no transaction is open");
	return st->ops->commit(st->impl, err);
}

int vc_store_end(struct vc_store *st, int ret, struct vc_error *err)
{
	if (ret == 0)
		return vc_store_commit(st, err);
	if (vc_store_rollback(st, NULL) < 0) {
		/* Nothing more to say than the first error. */
	}
	return ret;
}

int vc_store_rollback(struct vc_store *st, struct vc_error *err)
{
	if (!st->ops->in_transaction(st->impl))
		return vc_error_set(err, -EINVAL, "store: no transaction is open");
	return st->ops->rollback(st->impl, err);
}

static struct vc_store_val T(const char *s)
{
	struct vc_store_val v = { .type = s ? VC_STORE_TEXT : VC_STORE_NULL, .s = s };
	return v;
}

static struct vc_store_val I(int64_t i)
{
	struct vc_store_val v = { .type = VC_STORE_INT, .i = i };
	return v;
}

static struct vc_store_val B(const void *b, size_t len)
{
	struct vc_store_val v = { .type = VC_STORE_BLOB, .b = b, .len = len };
	return v;
}

static int run(struct vc_store *st, const char *sql, const struct vc_store_val *p,
	       int n, vc_store_row_fn row, void *ctx, int64_t *changes,
	       struct vc_error *err)
{
	return st->ops->exec(st->impl, sql, p, n, row, ctx, changes, err);
}

/* Open a write transaction unless the caller holds one. */
static int wbegin(struct vc_store *st, bool *own, struct vc_error *err)
{
	*own = !st->ops->in_transaction(st->impl);
	return *own ? st->ops->begin(st->impl, err) : 0;
}

/* Finish what wbegin opened: commit on success, roll back on failure
 * (keeping the first error's message). */
static int wend(struct vc_store *st, bool own, int ret, struct vc_error *err)
{
	if (!own)
		return ret;
	if (ret == 0) {
		ret = st->ops->commit(st->impl, err);
		if (ret == 0)
			return 0;
	}
	if (st->ops->in_transaction(st->impl))
		(void)st->ops->rollback(st->impl, NULL);
	return ret;
}

/* One statement in its own (or the caller's) transaction; *changes as in
 * exec. */
static int write1(struct vc_store *st, const char *sql, const struct vc_store_val *p,
		  int n, int64_t *changes, struct vc_error *err)
{
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = run(st, sql, p, n, NULL, NULL, changes, err);
	return wend(st, own, ret, err);
}

static int count(struct vc_store *st, const char *sql, const struct vc_store_val *p,
		 int n, int64_t *out, struct vc_error *err)
{
	*out = 0;
	return run(st, sql, p, n, int_row, out, NULL, err);
}

static const char *cs(const struct vc_store_val *c)
{
	return c->type == VC_STORE_TEXT ? c->s : NULL;
}

static int64_t ci(const struct vc_store_val *c)
{
	return c->type == VC_STORE_INT ? c->i : 0;
}

static void cblob(const struct vc_store_val *c, uint8_t *dst, size_t len)
{
	memset(dst, 0, len);
	if (c->type == VC_STORE_BLOB && c->len == len)
		memcpy(dst, c->b, len);
}

/* One row copied into a single block, for the get functions. */
struct one {
	struct vc_store_val cols[MAX_COLS];
	int n;
	char *mem;
	bool found;
	int oom;
};

static int one_row(const struct vc_store_val *cols, int n, void *ctx)
{
	struct one *o = ctx;
	size_t total = 1, off = 0;
	char *mem;

	if (o->found)
		return 0;
	for (int i = 0; i < n; i++)
		if (cols[i].type == VC_STORE_TEXT || cols[i].type == VC_STORE_BLOB)
			total += cols[i].len + 1;
	mem = malloc(total);
	if (!mem)
		return o->oom = -ENOMEM;
	for (int i = 0; i < n; i++) {
		o->cols[i] = cols[i];
		if (cols[i].type == VC_STORE_TEXT) {
			memcpy(mem + off, cols[i].s, cols[i].len + 1);
			o->cols[i].s = mem + off;
			off += cols[i].len + 1;
		} else if (cols[i].type == VC_STORE_BLOB) {
			if (cols[i].len)
				memcpy(mem + off, cols[i].b, cols[i].len);
			o->cols[i].b = mem + off;
			off += cols[i].len + 1;
		}
	}
	o->n = n;
	o->mem = mem;
	o->found = true;
	return 0;
}

static int get_one(struct vc_store *st, const char *sql, const struct vc_store_val *p,
		   int n, int ncols, struct one *o, const char *what, const char *key,
		   struct vc_error *err)
{
	int ret;

	memset(o, 0, sizeof(*o));
	ret = run(st, sql, p, n, one_row, o, NULL, err);
	if (ret == -ENOMEM && o->oom)
		vc_error_set(err, -ENOMEM, "store: out of memory");
	if (ret < 0) {
		free(o->mem);
		o->mem = NULL;
		return ret;
	}
	if (!o->found)
		return vc_error_set(err, -ENOENT, "no %s '%s'", what, key);
	if (o->n != ncols) {
		free(o->mem);
		o->mem = NULL;
		return vc_error_set(err, -EBADMSG, "store: %s row has %d columns", what, o->n);
	}
	return 0;
}

/* List adapters: the row callback converts and calls the typed callback. */
struct adapt {
	union {
		vc_store_user_fn user;
		vc_store_role_fn role;
		vc_store_object_fn object;
		vc_store_perm_fn perm;
		vc_store_provider_fn provider;
		vc_store_policy_fn policy;
		vc_store_task_fn task;
		vc_store_event_fn event;
		vc_store_group_fn group;
		vc_store_host_fn host;
		vc_store_vm_fn vm;
	} fn;
	void *ctx;
};

static int bad_cols(int n, int want)
{
	return n == want ? 0 : -EBADMSG;
}

/* ---- users ---- */
#define USER_COLS "name, password_hash, created, disabled, must_change"

static void user_from(const struct vc_store_val *c, struct vc_store_user *u)
{
	u->name = cs(&c[0]);
	u->password_hash = cs(&c[1]);
	u->created = ci(&c[2]);
	u->disabled = ci(&c[3]) != 0;
	u->must_change = ci(&c[4]) != 0;
}

static int user_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_user u = { 0 };

	if (bad_cols(n, 5))
		return -EBADMSG;
	user_from(c, &u);
	return a->fn.user(&u, a->ctx);
}

int vc_store_user_add(struct vc_store *st, const struct vc_store_user *u,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(u->name), T(u->password_hash), I(u->created),
				    I(u->disabled), I(u->must_change) };
	int ret;

	if (!u->name || !u->password_hash)
		return vc_error_set(err, -EINVAL, "user: name and password hash are required");
	ret = write1(st, "INSERT INTO users (" USER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
		     p, 5, NULL, err);
	if (ret == -EEXIST)
		return vc_error_set(err, ret, "user '%s' already exists", u->name);
	return ret;
}

int vc_store_user_get(struct vc_store *st, const char *name, struct vc_store_user *out,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " USER_COLS " FROM users WHERE name = ?1", p, 1, 5, &o,
		      "user", name, err);
	if (ret < 0)
		return ret;
	user_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_user_list(struct vc_store *st, vc_store_user_fn cb, void *ctx,
		       struct vc_error *err)
{
	struct adapt a = { .fn.user = cb, .ctx = ctx };

	return run(st, "SELECT " USER_COLS " FROM users ORDER BY name", NULL, 0,
		   user_row, &a, NULL, err);
}

static int changed_one(int ret, int64_t changes, const char *what, const char *key,
		       struct vc_error *err)
{
	if (ret == 0 && changes == 0)
		return vc_error_set(err, -ENOENT, "no %s '%s'", what, key);
	return ret;
}

/* Delete by key inside the caller's transaction; -ENOENT if nothing went. */
static int del_one(struct vc_store *st, const char *sql, const struct vc_store_val *key,
		   const char *what, const char *name, struct vc_error *err)
{
	int64_t ch = 0;
	int ret = run(st, sql, key, 1, NULL, NULL, &ch, err);

	return changed_one(ret, ch, what, name, err);
}

int vc_store_user_set_password(struct vc_store *st, const char *name,
			       const char *password_hash, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name), T(password_hash) };
	int64_t ch = 0;
	int ret;

	if (!password_hash)
		return vc_error_set(err, -EINVAL, "user: password hash is required");
	ret = write1(st, "UPDATE users SET password_hash = ?2 WHERE name = ?1", p, 2, &ch, err);
	return changed_one(ret, ch, "user", name, err);
}

int vc_store_user_set_must_change(struct vc_store *st, const char *name,
				  bool must_change, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name), I(must_change) };
	int64_t ch = 0;
	int ret = write1(st, "UPDATE users SET must_change = ?2 WHERE name = ?1", p, 2,
			 &ch, err);

	return changed_one(ret, ch, "user", name, err);
}

static int group_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;

	if (bad_cols(n, 1))
		return -EBADMSG;
	return a->fn.group(cs(&c[0]), a->ctx);
}

int vc_store_user_groups(struct vc_store *st, const char *name, vc_store_group_fn cb,
			 void *ctx, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	struct adapt a = { .fn.group = cb, .ctx = ctx };

	return run(st, "SELECT group_name FROM user_groups WHERE user_name = ?1 "
		   "ORDER BY group_name", p, 1, group_row, &a, NULL, err);
}

int vc_store_user_group_add(struct vc_store *st, const char *name, const char *group,
			    struct vc_error *err)
{
	struct vc_store_val p[] = { T(name), T(group) };
	int ret = write1(st, "INSERT INTO user_groups (user_name, group_name) "
			 "VALUES (?1, ?2)", p, 2, NULL, err);

	if (ret == -EEXIST)
		return vc_error_set(err, ret, "user '%s' is already in group '%s'", name,
				    group);
	if (ret == -EINVAL)
		return vc_error_set(err, ret, "no user '%s' (or an empty group name)", name);
	return ret;
}

int vc_store_session_delete_user(struct vc_store *st, const char *name,
				 struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };

	return write1(st, "DELETE FROM sessions WHERE user_name = ?1", p, 1, NULL, err);
}

int vc_store_user_set_disabled(struct vc_store *st, const char *name, bool disabled,
			       struct vc_error *err)
{
	struct vc_store_val p[] = { T(name), I(disabled) };
	int64_t ch = 0;
	int ret = write1(st, "UPDATE users SET disabled = ?2 WHERE name = ?1", p, 2, &ch, err);

	return changed_one(ret, ch, "user", name, err);
}

int vc_store_user_delete(struct vc_store *st, const char *name, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	int64_t ch = 0;
	int ret = write1(st, "DELETE FROM users WHERE name = ?1", p, 1, &ch, err);

	return changed_one(ret, ch, "user", name, err);
}

/* ---- sessions ---- */
int vc_store_session_add(struct vc_store *st, const struct vc_store_session *s,
			 struct vc_error *err)
{
	struct vc_store_val p[] = { B(s->token_hash, VC_STORE_TOKEN_HASH_LEN), T(s->user),
				    I(s->expires) };
	int ret = write1(st, "INSERT INTO sessions (token_hash, user_name, expires) "
			 "VALUES (?1, ?2, ?3)", p, 3, NULL, err);

	if (ret == -EEXIST)
		return vc_error_set(err, ret, "session already exists");
	if (ret == -EINVAL)
		return vc_error_set(err, ret, "session for unknown user '%s'",
				    s->user ? s->user : "");
	return ret;
}

int vc_store_session_find(struct vc_store *st,
			  const uint8_t token_hash[VC_STORE_TOKEN_HASH_LEN], int64_t now,
			  struct vc_store_session *out, struct vc_error *err)
{
	struct vc_store_val p[] = { B(token_hash, VC_STORE_TOKEN_HASH_LEN), I(now) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT token_hash, user_name, expires FROM sessions "
		      "WHERE token_hash = ?1 AND expires > ?2", p, 2, 3, &o,
		      "session", "(token)", err);
	if (ret < 0)
		return ret;
	cblob(&o.cols[0], out->token_hash, VC_STORE_TOKEN_HASH_LEN);
	out->user = cs(&o.cols[1]);
	out->expires = ci(&o.cols[2]);
	out->mem = o.mem;
	return 0;
}

int vc_store_session_delete(struct vc_store *st,
			    const uint8_t token_hash[VC_STORE_TOKEN_HASH_LEN],
			    struct vc_error *err)
{
	struct vc_store_val p[] = { B(token_hash, VC_STORE_TOKEN_HASH_LEN) };
	int64_t ch = 0;
	int ret = write1(st, "DELETE FROM sessions WHERE token_hash = ?1", p, 1, &ch, err);

	return changed_one(ret, ch, "session", "(token)", err);
}

int vc_store_session_purge(struct vc_store *st, int64_t now, int64_t *purged,
			   struct vc_error *err)
{
	struct vc_store_val p[] = { I(now) };
	int64_t ch = 0;
	int ret = write1(st, "DELETE FROM sessions WHERE expires <= ?1", p, 1, &ch, err);

	if (ret == 0 && purged)
		*purged = ch;
	return ret;
}

/* ---- roles ---- */
#define ROLE_COLS "name, privileges, builtin"

static void role_from(const struct vc_store_val *c, struct vc_store_role *r)
{
	r->name = cs(&c[0]);
	r->privileges = cs(&c[1]);
	r->builtin = ci(&c[2]) != 0;
}

static int role_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_role r = { 0 };

	if (bad_cols(n, 3))
		return -EBADMSG;
	role_from(c, &r);
	return a->fn.role(&r, a->ctx);
}

int vc_store_role_add(struct vc_store *st, const struct vc_store_role *r,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(r->name), T(r->privileges ? r->privileges : ""),
				    I(r->builtin) };
	int ret;

	if (!r->name)
		return vc_error_set(err, -EINVAL, "role: name is required");
	ret = write1(st, "INSERT INTO roles (" ROLE_COLS ") VALUES (?1, ?2, ?3)", p, 3,
		     NULL, err);
	if (ret == -EEXIST)
		return vc_error_set(err, ret, "role '%s' already exists", r->name);
	return ret;
}

int vc_store_role_get(struct vc_store *st, const char *name, struct vc_store_role *out,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " ROLE_COLS " FROM roles WHERE name = ?1", p, 1, 3, &o,
		      "role", name, err);
	if (ret < 0)
		return ret;
	role_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_role_list(struct vc_store *st, vc_store_role_fn cb, void *ctx,
		       struct vc_error *err)
{
	struct adapt a = { .fn.role = cb, .ctx = ctx };

	return run(st, "SELECT " ROLE_COLS " FROM roles ORDER BY name", NULL, 0,
		   role_row, &a, NULL, err);
}

int vc_store_role_delete(struct vc_store *st, const char *name, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	int64_t n = -1;
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = count(st, "SELECT builtin FROM roles WHERE name = ?1", p, 1, &n, err);
	if (ret == 0 && n == 1)
		ret = vc_error_set(err, -EPERM, "role '%s' is builtin and cannot be deleted",
				   name);
	if (ret == 0)
		ret = count(st, "SELECT count(*) FROM permissions WHERE role = ?1", p, 1, &n, err);
	if (ret == 0 && n > 0)
		ret = vc_error_set(err, -EBUSY, "role '%s' is used by %lld permission(s)",
				   name, (long long)n);
	if (ret == 0)
		ret = del_one(st, "DELETE FROM roles WHERE name = ?1", p, "role", name, err);
	return wend(st, own, ret, err);
}

/* ---- inventory ---- */
static const char *const kind_names[] = {
	[VC_STORE_ROOT] = "root", [VC_STORE_FOLDER] = "folder",
	[VC_STORE_CLUSTER] = "cluster", [VC_STORE_HOST] = "host", [VC_STORE_VM] = "vm",
};

const char *vc_store_kind_name(enum vc_store_kind k)
{
	return (unsigned)k < VC_ARRAY_SIZE(kind_names) ? kind_names[k] : NULL;
}

static enum vc_store_kind kind_parse(const char *s)
{
	for (size_t i = 0; s && i < VC_ARRAY_SIZE(kind_names); i++)
		if (strcmp(s, kind_names[i]) == 0)
			return (enum vc_store_kind)i;
	return VC_STORE_FOLDER;   /* unreachable: the schema checks kind */
}

#define OBJ_COLS "id, parent, kind, name"

static void obj_from(const struct vc_store_val *c, struct vc_store_object *o)
{
	o->id = cs(&c[0]);
	o->parent = cs(&c[1]);
	o->kind = kind_parse(cs(&c[2]));
	o->name = cs(&c[3]);
}

static int obj_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_object o = { 0 };

	if (bad_cols(n, 4))
		return -EBADMSG;
	obj_from(c, &o);
	return a->fn.object(&o, a->ctx);
}

int vc_store_object_add(struct vc_store *st, const struct vc_store_object *o,
			struct vc_error *err)
{
	const char *kind = vc_store_kind_name(o->kind);
	struct vc_store_val p[] = { T(o->id), T(o->parent), T(kind), T(o->name) };
	int ret;

	if (!o->id || !o->name || !kind)
		return vc_error_set(err, -EINVAL, "object: id, kind and name are required");
	if ((o->kind == VC_STORE_ROOT) != (o->parent == NULL))
		return vc_error_set(err, -EINVAL, "object '%s': only the root has no parent",
				    o->id);
	ret = write1(st, "INSERT INTO inventory (" OBJ_COLS ") VALUES (?1, ?2, ?3, ?4)",
		     p, 4, NULL, err);
	if (ret == -EEXIST)
		return vc_error_set(err, ret, "object '%s' already exists", o->id);
	if (ret == -EINVAL)
		return vc_error_set(err, ret, "object '%s': unknown parent '%s'", o->id,
				    o->parent);
	return ret;
}

int vc_store_object_get(struct vc_store *st, const char *id, struct vc_store_object *out,
			struct vc_error *err)
{
	struct vc_store_val p[] = { T(id) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " OBJ_COLS " FROM inventory WHERE id = ?1", p, 1, 4, &o,
		      "object", id, err);
	if (ret < 0)
		return ret;
	obj_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_object_children(struct vc_store *st, const char *parent,
			     vc_store_object_fn cb, void *ctx, struct vc_error *err)
{
	struct vc_store_val p[] = { T(parent) };
	struct adapt a = { .fn.object = cb, .ctx = ctx };

	return run(st, "SELECT " OBJ_COLS " FROM inventory WHERE parent = ?1 "
		   "ORDER BY name, id", p, 1, obj_row, &a, NULL, err);
}

int vc_store_object_rename(struct vc_store *st, const char *id, const char *name,
			   struct vc_error *err)
{
	struct vc_store_val p[] = { T(id), T(name) };
	int64_t ch = 0;
	int ret;

	if (!name)
		return vc_error_set(err, -EINVAL, "object: name is required");
	ret = write1(st, "UPDATE inventory SET name = ?2 WHERE id = ?1", p, 2, &ch, err);
	return changed_one(ret, ch, "object", id, err);
}

int vc_store_object_delete(struct vc_store *st, const char *id, struct vc_error *err)
{
	struct vc_store_val p[] = { T(id) };
	int64_t n = 0;
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = count(st, "SELECT count(*) FROM inventory WHERE parent = ?1", p, 1, &n, err);
	if (ret == 0 && n > 0)
		ret = vc_error_set(err, -ENOTEMPTY, "object '%s' is not empty (%lld children)",
				   id, (long long)n);
	if (ret == 0)
		ret = del_one(st, "DELETE FROM inventory WHERE id = ?1", p, "object", id, err);
	return wend(st, own, ret, err);
}

/* ---- permissions ---- */
#define PERM_COLS "principal, is_group, role, object, propagate"

static int perm_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_perm p = { 0 };

	if (bad_cols(n, 5))
		return -EBADMSG;
	p.principal = cs(&c[0]);
	p.is_group = ci(&c[1]) != 0;
	p.role = cs(&c[2]);
	p.object = cs(&c[3]);
	p.propagate = ci(&c[4]) != 0;
	return a->fn.perm(&p, a->ctx);
}

int vc_store_perm_add(struct vc_store *st, const struct vc_store_perm *pm,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(pm->principal), I(pm->is_group), T(pm->role),
				    T(pm->object), I(pm->propagate) };
	int64_t n = 0;
	bool own;
	int ret;

	if (!pm->principal || !pm->role || !pm->object)
		return vc_error_set(err, -EINVAL,
				    "permission: principal, role and object are required");
	ret = wbegin(st, &own, err);
	if (ret < 0)
		return ret;
	/* Checked here rather than left to the foreign keys, so the message
	 * says which reference is wrong. */
	ret = count(st, "SELECT count(*) FROM roles WHERE name = ?1", &p[2], 1, &n, err);
	if (ret == 0 && n == 0)
		ret = vc_error_set(err, -EINVAL, "permission: unknown role '%s'", pm->role);
	if (ret == 0)
		ret = count(st, "SELECT count(*) FROM inventory WHERE id = ?1", &p[3], 1, &n, err);
	if (ret == 0 && n == 0)
		ret = vc_error_set(err, -EINVAL, "permission: unknown object '%s'", pm->object);
	if (ret == 0) {
		ret = run(st, "INSERT INTO permissions (" PERM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
			  p, 5, NULL, NULL, NULL, err);
		if (ret == -EEXIST)
			ret = vc_error_set(err, ret, "%s '%s' already has a permission on '%s'",
					   pm->is_group ? "group" : "user", pm->principal,
					   pm->object);
	}
	return wend(st, own, ret, err);
}

int vc_store_perm_list(struct vc_store *st, const char *object, vc_store_perm_fn cb,
		       void *ctx, struct vc_error *err)
{
	struct vc_store_val p[] = { T(object) };
	struct adapt a = { .fn.perm = cb, .ctx = ctx };

	return run(st, "SELECT " PERM_COLS " FROM permissions "
		   "WHERE ?1 IS NULL OR object = ?1 ORDER BY object, principal, is_group",
		   p, 1, perm_row, &a, NULL, err);
}

int vc_store_perm_delete(struct vc_store *st, const char *principal, bool is_group,
			 const char *object, struct vc_error *err)
{
	struct vc_store_val p[] = { T(principal), I(is_group), T(object) };
	int64_t ch = 0;
	int ret = write1(st, "DELETE FROM permissions WHERE principal = ?1 AND is_group = ?2 "
			 "AND object = ?3", p, 3, &ch, err);

	return changed_one(ret, ch, "permission for", principal, err);
}

/* ---- key providers ---- */
#define PROV_COLS "name, kind, config, is_default"

static void prov_from(const struct vc_store_val *c, struct vc_store_provider *p)
{
	p->name = cs(&c[0]);
	p->kind = cs(&c[1]);
	p->config = cs(&c[2]);
	p->is_default = ci(&c[3]) != 0;
}

static int prov_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_provider p = { 0 };

	if (bad_cols(n, 4))
		return -EBADMSG;
	prov_from(c, &p);
	return a->fn.provider(&p, a->ctx);
}

int vc_store_provider_add(struct vc_store *st, const struct vc_store_provider *pv,
			  struct vc_error *err)
{
	struct vc_store_val p[] = { T(pv->name), T(pv->kind),
				    T(pv->config ? pv->config : "{}"), I(pv->is_default) };
	bool own;
	int ret;

	if (!pv->name || !pv->kind)
		return vc_error_set(err, -EINVAL, "key provider: name and kind are required");
	if (strcmp(pv->kind, "kmip") != 0 && strcmp(pv->kind, "native") != 0)
		return vc_error_set(err, -EINVAL,
				    "key provider '%s': kind must be 'kmip' or 'native', not '%s'",
				    pv->name, pv->kind);
	ret = wbegin(st, &own, err);
	if (ret < 0)
		return ret;
	if (pv->is_default)
		ret = run(st, "UPDATE key_providers SET is_default = 0 WHERE is_default = 1",
			  NULL, 0, NULL, NULL, NULL, err);
	if (ret == 0) {
		ret = run(st, "INSERT INTO key_providers (" PROV_COLS ") VALUES (?1, ?2, ?3, ?4)",
			  p, 4, NULL, NULL, NULL, err);
		if (ret == -EEXIST)
			ret = vc_error_set(err, ret, "key provider '%s' already exists", pv->name);
	}
	return wend(st, own, ret, err);
}

int vc_store_provider_get(struct vc_store *st, const char *name,
			  struct vc_store_provider *out, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " PROV_COLS " FROM key_providers WHERE name = ?1", p, 1, 4,
		      &o, "key provider", name, err);
	if (ret < 0)
		return ret;
	prov_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_provider_list(struct vc_store *st, vc_store_provider_fn cb, void *ctx,
			   struct vc_error *err)
{
	struct adapt a = { .fn.provider = cb, .ctx = ctx };

	return run(st, "SELECT " PROV_COLS " FROM key_providers ORDER BY name", NULL, 0,
		   prov_row, &a, NULL, err);
}

int vc_store_provider_set_default(struct vc_store *st, const char *name,
				  struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	int64_t n = 0;
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = count(st, "SELECT count(*) FROM key_providers WHERE name = ?1", p, 1, &n, err);
	if (ret == 0 && n == 0)
		ret = vc_error_set(err, -ENOENT, "no key provider '%s'", name);
	if (ret == 0)
		ret = run(st, "UPDATE key_providers SET is_default = 0 WHERE is_default = 1",
			  NULL, 0, NULL, NULL, NULL, err);
	if (ret == 0)
		ret = run(st, "UPDATE key_providers SET is_default = 1 WHERE name = ?1", p, 1,
			  NULL, NULL, NULL, err);
	return wend(st, own, ret, err);
}

int vc_store_provider_delete(struct vc_store *st, const char *name, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	int64_t n = 0;
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = count(st, "SELECT count(*) FROM policies WHERE provider = ?1", p, 1, &n, err);
	if (ret == 0 && n > 0)
		ret = vc_error_set(err, -EBUSY, "key provider '%s' is used by %lld policy(ies)",
				   name, (long long)n);
	if (ret == 0)
		ret = del_one(st, "DELETE FROM key_providers WHERE name = ?1", p, "key provider", name, err);
	return wend(st, own, ret, err);
}

/* ---- policies ---- */
#define POL_COLS "name, encrypt, migration, provider"

static void pol_from(const struct vc_store_val *c, struct vc_store_policy *p)
{
	p->name = cs(&c[0]);
	p->encrypt = ci(&c[1]) != 0;
	p->migration = cs(&c[2]);
	p->provider = cs(&c[3]);
}

static int pol_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_policy p = { 0 };

	if (bad_cols(n, 4))
		return -EBADMSG;
	pol_from(c, &p);
	return a->fn.policy(&p, a->ctx);
}

int vc_store_policy_add(struct vc_store *st, const struct vc_store_policy *pl,
			struct vc_error *err)
{
	struct vc_store_val p[] = { T(pl->name), I(pl->encrypt), T(pl->migration),
				    T(pl->provider) };
	int ret;

	if (!pl->name || !pl->migration)
		return vc_error_set(err, -EINVAL, "policy: name and migration mode are required");
	ret = write1(st, "INSERT INTO policies (" POL_COLS ") VALUES (?1, ?2, ?3, ?4)", p, 4,
		     NULL, err);
	if (ret == -EEXIST)
		return vc_error_set(err, ret, "policy '%s' already exists", pl->name);
	if (ret == -EINVAL && pl->provider)
		return vc_error_set(err, ret, "policy '%s': unknown key provider '%s'",
				    pl->name, pl->provider);
	return ret;
}

int vc_store_policy_get(struct vc_store *st, const char *name, struct vc_store_policy *out,
			struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " POL_COLS " FROM policies WHERE name = ?1", p, 1, 4, &o,
		      "policy", name, err);
	if (ret < 0)
		return ret;
	pol_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_policy_list(struct vc_store *st, vc_store_policy_fn cb, void *ctx,
			 struct vc_error *err)
{
	struct adapt a = { .fn.policy = cb, .ctx = ctx };

	return run(st, "SELECT " POL_COLS " FROM policies ORDER BY name", NULL, 0, pol_row,
		   &a, NULL, err);
}

int vc_store_policy_delete(struct vc_store *st, const char *name, struct vc_error *err)
{
	struct vc_store_val p[] = { T(name) };
	int64_t ch = 0;
	int ret = write1(st, "DELETE FROM policies WHERE name = ?1", p, 1, &ch, err);

	return changed_one(ret, ch, "policy", name, err);
}

/* ---- tasks ---- */
#define TASK_COLS "id, kind, state, progress, result, error, user_name, created, updated"

static void task_from(const struct vc_store_val *c, struct vc_store_task *t)
{
	t->id = cs(&c[0]);
	t->kind = cs(&c[1]);
	t->state = cs(&c[2]);
	t->progress = (int)ci(&c[3]);
	t->result = cs(&c[4]);
	t->error = cs(&c[5]);
	t->user = cs(&c[6]);
	t->created = ci(&c[7]);
	t->updated = ci(&c[8]);
}

static int task_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_task t = { 0 };

	if (bad_cols(n, 9))
		return -EBADMSG;
	task_from(c, &t);
	return a->fn.task(&t, a->ctx);
}

int vc_store_task_add(struct vc_store *st, const struct vc_store_task *t,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(t->id), T(t->kind), T(t->state), I(t->progress),
				    T(t->result), T(t->error), T(t->user), I(t->created),
				    I(t->updated) };
	int ret;

	if (!t->id || !t->kind || !t->state)
		return vc_error_set(err, -EINVAL, "task: id, kind and state are required");
	if (t->progress < 0 || t->progress > 100)
		return vc_error_set(err, -EINVAL, "task '%s': progress %d is not 0..100",
				    t->id, t->progress);
	ret = write1(st, "INSERT INTO tasks (" TASK_COLS ") VALUES "
		     "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", p, 9, NULL, err);
	if (ret == -EEXIST)
		return vc_error_set(err, ret, "task '%s' already exists", t->id);
	return ret;
}

int vc_store_task_update(struct vc_store *st, const struct vc_store_task *t,
			 struct vc_error *err)
{
	struct vc_store_val p[] = { T(t->id), T(t->state), I(t->progress), T(t->result),
				    T(t->error), I(t->updated) };
	int64_t ch = 0;
	int ret;

	if (!t->id || !t->state)
		return vc_error_set(err, -EINVAL, "task: id and state are required");
	if (t->progress < 0 || t->progress > 100)
		return vc_error_set(err, -EINVAL, "task '%s': progress %d is not 0..100",
				    t->id, t->progress);
	ret = write1(st, "UPDATE tasks SET state = ?2, progress = ?3, result = ?4, "
		     "error = ?5, updated = ?6 WHERE id = ?1", p, 6, &ch, err);
	return changed_one(ret, ch, "task", t->id, err);
}

int vc_store_task_get(struct vc_store *st, const char *id, struct vc_store_task *out,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(id) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " TASK_COLS " FROM tasks WHERE id = ?1", p, 1, 9, &o,
		      "task", id, err);
	if (ret < 0)
		return ret;
	task_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_task_list(struct vc_store *st, vc_store_task_fn cb, void *ctx,
		       struct vc_error *err)
{
	struct adapt a = { .fn.task = cb, .ctx = ctx };

	return run(st, "SELECT " TASK_COLS " FROM tasks ORDER BY created, id", NULL, 0,
		   task_row, &a, NULL, err);
}

/* ---- events ---- */
#define EV_COLS "seq, time_us, user_name, operation, object, provider, key_id, " \
		"result, message, prev_hash, hash"

static void ev_from(const struct vc_store_val *c, struct vc_event *ev)
{
	ev->seq = ci(&c[0]);
	ev->time_us = ci(&c[1]);
	ev->user = cs(&c[2]);
	ev->operation = cs(&c[3]);
	ev->object = cs(&c[4]);
	ev->provider = cs(&c[5]);
	ev->key_id = cs(&c[6]);
	ev->result = cs(&c[7]);
	ev->message = cs(&c[8]);
	cblob(&c[9], ev->prev_hash, VC_SHA256_LEN);
	cblob(&c[10], ev->hash, VC_SHA256_LEN);
}

static int ev_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_event ev;

	if (bad_cols(n, 11))
		return -EBADMSG;
	memset(&ev, 0, sizeof(ev));
	ev_from(c, &ev);
	return a->fn.event(&ev, a->ctx);
}

struct last {
	int64_t seq;
	uint8_t hash[VC_SHA256_LEN];
	bool found;
};

static int last_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct last *l = ctx;

	if (n != 2 || c[1].type != VC_STORE_BLOB || c[1].len != VC_SHA256_LEN)
		return -EBADMSG;
	l->seq = ci(&c[0]);
	memcpy(l->hash, c[1].b, VC_SHA256_LEN);
	l->found = true;
	return 0;
}

int vc_store_event_append(struct vc_store *st, struct vc_event *ev,
			  const uint8_t genesis[VC_SHA256_LEN], const void *key,
			  size_t keylen, struct vc_error *err)
{
	struct last l = { 0 };
	bool own;
	int ret = wbegin(st, &own, err);

	if (ret < 0)
		return ret;
	ret = run(st, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1", NULL, 0,
		  last_row, &l, NULL, err);
	if (ret == -EBADMSG)
		ret = vc_error_set(err, ret, "store: last event row is damaged");
	if (ret == 0) {
		ev->seq = l.found ? l.seq + 1 : 1;
		ret = vc_event_seal(ev, l.found ? l.hash : genesis, key, keylen, err);
	}
	if (ret == 0) {
		struct vc_store_val p[] = {
			I(ev->seq), I(ev->time_us), T(ev->user), T(ev->operation),
			T(ev->object), T(ev->provider), T(ev->key_id), T(ev->result),
			T(ev->message), B(ev->prev_hash, VC_SHA256_LEN),
			B(ev->hash, VC_SHA256_LEN),
		};

		ret = run(st, "INSERT INTO events (" EV_COLS ") VALUES "
			  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)", p, 11, NULL, NULL,
			  NULL, err);
	}
	return wend(st, own, ret, err);
}

int vc_store_event_list(struct vc_store *st, const struct vc_store_event_filter *f,
			vc_store_event_fn cb, void *ctx, struct vc_error *err)
{
	static const struct vc_store_event_filter all;
	struct adapt a = { .fn.event = cb, .ctx = ctx };
	struct vc_store_val p[5];

	if (!f)
		f = &all;
	p[0] = I(f->from_us);
	p[1] = I(f->to_us);
	p[2] = T(f->user);
	p[3] = T(f->object);
	p[4] = T(f->operation);
	return run(st, "SELECT " EV_COLS " FROM events WHERE "
		   "(?1 = 0 OR time_us >= ?1) AND (?2 = 0 OR time_us <= ?2) AND "
		   "(?3 IS NULL OR user_name = ?3) AND (?4 IS NULL OR object = ?4) AND "
		   "(?5 IS NULL OR operation = ?5) ORDER BY seq", p, 5, ev_row, &a, NULL, err);
}

int vc_store_event_last(struct vc_store *st, struct vc_event *out, char **mem,
			struct vc_error *err)
{
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	*mem = NULL;
	ret = get_one(st, "SELECT " EV_COLS " FROM events ORDER BY seq DESC LIMIT 1", NULL,
		      0, 11, &o, "event", "(last)", err);
	if (ret < 0)
		return ret;
	ev_from(o.cols, out);
	*mem = o.mem;
	return 0;
}

/* ---- hosts ---- */
#define HOST_COLS "id, address, thumbprint, encryption_mode, added"

static void host_from(const struct vc_store_val *c, struct vc_store_host *h)
{
	h->id = cs(&c[0]);
	h->address = cs(&c[1]);
	h->thumbprint = cs(&c[2]);
	h->encryption_mode = ci(&c[3]) != 0;
	h->added = ci(&c[4]);
}

static int host_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_host h = { 0 };

	if (bad_cols(n, 5))
		return -EBADMSG;
	host_from(c, &h);
	return a->fn.host(&h, a->ctx);
}

int vc_store_host_add(struct vc_store *st, const struct vc_store_host *h,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(h->id), T(h->address), T(h->thumbprint),
				    I(h->encryption_mode), I(h->added) };
	int ret = write1(st, "INSERT INTO hosts (" HOST_COLS ") VALUES (?1, ?2, ?3, ?4, ?5)",
			 p, 5, NULL, err);

	if (ret == -EEXIST)
		return vc_error_set(err, ret, "host %s is already added", h->address);
	if (ret == -EINVAL)
		return vc_error_set(err, ret, "host '%s': no such inventory object, or a bad "
				    "thumbprint", h->id);
	return ret;
}

int vc_store_host_get(struct vc_store *st, const char *id, struct vc_store_host *out,
		      struct vc_error *err)
{
	struct vc_store_val p[] = { T(id) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " HOST_COLS " FROM hosts WHERE id = ?1", p, 1, 5, &o, "host",
		      id, err);
	if (ret < 0)
		return ret;
	host_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_host_list(struct vc_store *st, vc_store_host_fn cb, void *ctx,
		       struct vc_error *err)
{
	struct adapt a = { .fn.host = cb, .ctx = ctx };

	return run(st, "SELECT " HOST_COLS " FROM hosts ORDER BY address", NULL, 0, host_row,
		   &a, NULL, err);
}

int vc_store_host_set_encryption_mode(struct vc_store *st, const char *id, bool on,
				      struct vc_error *err)
{
	struct vc_store_val p[] = { T(id), I(on) };
	int64_t ch = 0;
	int ret = write1(st, "UPDATE hosts SET encryption_mode = ?2 WHERE id = ?1", p, 2, &ch,
			 err);

	return changed_one(ret, ch, "host", id, err);
}

/* ---- VMs ---- */
#define VM_COLS "id, host, uuid, encrypted, provider, key_id"

static void vm_from(const struct vc_store_val *c, struct vc_store_vm *v)
{
	v->id = cs(&c[0]);
	v->host = cs(&c[1]);
	v->uuid = cs(&c[2]);
	v->encrypted = ci(&c[3]) != 0;
	v->provider = cs(&c[4]);
	v->key_id = cs(&c[5]);
}

static int vm_row(const struct vc_store_val *c, int n, void *ctx)
{
	struct adapt *a = ctx;
	struct vc_store_vm v = { 0 };

	if (bad_cols(n, 6))
		return -EBADMSG;
	vm_from(c, &v);
	return a->fn.vm(&v, a->ctx);
}

int vc_store_vm_add(struct vc_store *st, const struct vc_store_vm *v, struct vc_error *err)
{
	struct vc_store_val p[] = { T(v->id), T(v->host), T(v->uuid), I(v->encrypted),
				    T(v->provider), T(v->key_id) };
	int ret = write1(st, "INSERT INTO vms (" VM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)", p,
			 6, NULL, err);

	if (ret == -EEXIST)
		return vc_error_set(err, ret, "VM %s already exists", v->uuid);
	if (ret == -EINVAL)
		return vc_error_set(err, ret, "VM '%s': unknown inventory object or host", v->id);
	return ret;
}

int vc_store_vm_get(struct vc_store *st, const char *id, struct vc_store_vm *out,
		    struct vc_error *err)
{
	struct vc_store_val p[] = { T(id) };
	struct one o;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = get_one(st, "SELECT " VM_COLS " FROM vms WHERE id = ?1", p, 1, 6, &o, "VM", id, err);
	if (ret < 0)
		return ret;
	vm_from(o.cols, out);
	out->mem = o.mem;
	return 0;
}

int vc_store_vm_list(struct vc_store *st, const char *host, vc_store_vm_fn cb, void *ctx,
		     struct vc_error *err)
{
	struct vc_store_val p[] = { T(host) };
	struct adapt a = { .fn.vm = cb, .ctx = ctx };

	if (host)
		return run(st, "SELECT " VM_COLS " FROM vms WHERE host = ?1 ORDER BY uuid", p, 1,
			   vm_row, &a, NULL, err);
	return run(st, "SELECT " VM_COLS " FROM vms ORDER BY uuid", NULL, 0, vm_row, &a, NULL,
		   err);
}

int vc_store_vm_set_key(struct vc_store *st, const char *id, bool encrypted,
			const char *provider, const char *key_id, struct vc_error *err)
{
	struct vc_store_val p[] = { T(id), I(encrypted), T(provider), T(key_id) };
	int64_t ch = 0;
	int ret = write1(st, "UPDATE vms SET encrypted = ?2, provider = ?3, key_id = ?4 "
			 "WHERE id = ?1", p, 4, &ch, err);

	return changed_one(ret, ch, "VM", id, err);
}

int vc_store_vm_set_host(struct vc_store *st, const char *id, const char *host,
			 struct vc_error *err)
{
	struct vc_store_val p[] = { T(id), T(host) };
	int64_t ch = 0;
	int ret = write1(st, "UPDATE vms SET host = ?2 WHERE id = ?1", p, 2, &ch, err);

	return changed_one(ret, ch, "VM", id, err);
}
