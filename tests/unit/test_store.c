/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the manager's SQLite store: schema, migrations, every
 * table's operations, constraint errors, the event chain, file safety. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "store.h"
#include "vc_priv.h"

struct fx {
	char dir[64];
	char path[96];
	struct vc_store *st;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/vc-store-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/vmcryptd.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char p[128];

	vc_store_close(f->st);
	for (size_t i = 0; i < VC_ARRAY_SIZE(sfx); i++) {
		snprintf(p, sizeof(p), "%s%s", f->path, sfx[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static struct vc_store *open_ok(struct fx *f)
{
	struct vc_error err = { 0 };
	int rc = vc_store_open_sqlite(f->path, &f->st, &err);

	if (rc != 0)
		fail_msg("open: %d %s", rc, vc_error_msg(&err));
	return f->st;
}

static void reopen(struct fx *f)
{
	vc_store_close(f->st);
	f->st = NULL;
	open_ok(f);
}

#define OK(call) do { \
	struct vc_error e_ = { 0 }; \
	int r_ = (call); \
	(void)e_; \
	if (r_ != 0) \
		fail_msg("%s = %d", #call, r_); \
} while (0)

/* Expect code and a message that mentions want (when non-NULL). */
static void expect_err(int rc, const struct vc_error *err, int code, const char *want)
{
	if (rc != code)
		fail_msg("got %d (%s), want %d", rc, vc_error_msg(err), code);
	assert_int_equal(err->code, code);
	if (want && !strstr(err->msg, want))
		fail_msg("message '%s' lacks '%s'", err->msg, want);
}

/* Run one statement on the raw file and return its first column as int. */
static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
					 NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

static const char *const tables[] = {
	"users", "sessions", "roles", "inventory", "permissions", "key_providers",
	"policies", "tasks", "events", "schema_version",
};

static void assert_tables(const char *path)
{
	char sql[160];

	for (size_t i = 0; i < VC_ARRAY_SIZE(tables); i++) {
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='%s'",
			 tables[i]);
		if (raw_int(path, sql) != 1)
			fail_msg("table %s missing", tables[i]);
	}
}

/* Collect names from list callbacks. */
struct names {
	char v[16][64];
	int n;
};

static void add_name(struct names *ns, const char *s)
{
	assert_true(ns->n < 16);
	snprintf(ns->v[ns->n++], 64, "%s", s ? s : "(null)");
}

static int user_cb(const struct vc_store_user *u, void *ctx)
{
	add_name(ctx, u->name);
	return 0;
}

static int group_cb(const char *g, void *ctx)
{
	add_name(ctx, g);
	return 0;
}

static int role_cb(const struct vc_store_role *r, void *ctx)
{
	add_name(ctx, r->name);
	return 0;
}

static int obj_cb(const struct vc_store_object *o, void *ctx)
{
	add_name(ctx, o->id);
	return 0;
}

static int perm_cb(const struct vc_store_perm *p, void *ctx)
{
	char b[64];

	snprintf(b, sizeof(b), "%s%s@%s:%s%s", p->is_group ? "g:" : "", p->principal,
		 p->object, p->role, p->propagate ? "+" : "");
	add_name(ctx, b);
	return 0;
}

static int prov_cb(const struct vc_store_provider *p, void *ctx)
{
	char b[64];

	snprintf(b, sizeof(b), "%s%s", p->name, p->is_default ? "*" : "");
	add_name(ctx, b);
	return 0;
}

static int pol_cb(const struct vc_store_policy *p, void *ctx)
{
	add_name(ctx, p->name);
	return 0;
}

static int task_cb(const struct vc_store_task *t, void *ctx)
{
	add_name(ctx, t->id);
	return 0;
}

static int stop_cb(const struct vc_store_user *u, void *ctx)
{
	(void)u;
	++*(int *)ctx;
	return 42;
}

/* ------------------------------------------------------------------ */

static void test_open_schema(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	int v = -1;

	open_ok(f);
	assert_int_equal(vc_store_schema_version(f->st, &v, &err), 0);
	assert_int_equal(v, VC_STORE_SCHEMA_VERSION);
	assert_tables(f->path);
	assert_int_equal(raw_int(f->path, "SELECT max(version) FROM schema_version"),
			 VC_STORE_SCHEMA_VERSION);
	/* WAL is persistent in the file header (read/write version 2). */
	{
		int fd = open(f->path, O_RDONLY);
		unsigned char h[20];

		assert_true(fd >= 0);
		assert_int_equal(read(fd, h, sizeof(h)), (ssize_t)sizeof(h));
		close(fd);
		assert_int_equal(h[18], 2);
		assert_int_equal(h[19], 2);
	}
}

static void test_file_mode(void **state)
{
	struct fx *f = *state;
	struct stat sb;
	mode_t old = umask(0);

	open_ok(f);
	umask(old);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	{
		char wal[128];

		snprintf(wal, sizeof(wal), "%s-wal", f->path);
		assert_int_equal(stat(wal, &sb), 0);
		assert_int_equal(sb.st_mode & 077, 0);
	}
}

static void test_reopen_keeps_data(void **state)
{
	struct fx *f = *state;
	struct vc_store_user u = { .name = "alice", .password_hash = "$scrypt$x",
				   .created = 1700000000, .disabled = true };
	struct vc_store_user got;
	struct vc_error err = { 0 };

	open_ok(f);
	OK(vc_store_user_add(f->st, &u, &e_));
	reopen(f);
	assert_int_equal(vc_store_user_get(f->st, "alice", &got, &err), 0);
	assert_string_equal(got.name, "alice");
	assert_string_equal(got.password_hash, "$scrypt$x");
	assert_int_equal(got.created, 1700000000);
	assert_true(got.disabled);
	free(got.mem);
}

static void test_users(void **state)
{
	struct fx *f = *state;
	struct vc_store_user a = { .name = "alice", .password_hash = "h1", .created = 5 };
	struct vc_store_user b = { .name = "bob", .password_hash = "h2", .created = 6 };
	struct vc_store_user got;
	struct vc_error err = { 0 };
	struct names ns = { 0 };
	int calls = 0;

	open_ok(f);
	OK(vc_store_user_add(f->st, &b, &e_));
	OK(vc_store_user_add(f->st, &a, &e_));
	expect_err(vc_store_user_add(f->st, &a, &err), &err, -EEXIST, "alice");
	OK(vc_store_user_list(f->st, user_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], "alice");
	assert_string_equal(ns.v[1], "bob");
	assert_int_equal(vc_store_user_list(f->st, stop_cb, &calls, &err), 42);
	assert_int_equal(calls, 1);

	OK(vc_store_user_set_password(f->st, "alice", "h3", &e_));
	OK(vc_store_user_set_disabled(f->st, "alice", true, &e_));
	assert_int_equal(vc_store_user_get(f->st, "alice", &got, &err), 0);
	assert_string_equal(got.password_hash, "h3");
	assert_true(got.disabled);
	assert_int_equal(got.created, 5);
	free(got.mem);
	expect_err(vc_store_user_set_password(f->st, "carol", "h", &err), &err, -ENOENT,
		   "carol");

	OK(vc_store_user_set_must_change(f->st, "bob", true, &e_));
	assert_int_equal(vc_store_user_get(f->st, "bob", &got, &err), 0);
	assert_true(got.must_change);
	free(got.mem);
	expect_err(vc_store_user_set_must_change(f->st, "carol", true, &err), &err, -ENOENT,
		   "carol");

	OK(vc_store_user_group_add(f->st, "alice", "ops", &e_));
	OK(vc_store_user_group_add(f->st, "alice", "crypto", &e_));
	expect_err(vc_store_user_group_add(f->st, "alice", "ops", &err), &err, -EEXIST, "ops");
	expect_err(vc_store_user_group_add(f->st, "carol", "ops", &err), &err, -EINVAL, "carol");
	OK(vc_store_user_groups(f->st, "alice", group_cb, &ns, &e_));
	assert_int_equal(ns.n, 4);
	assert_string_equal(ns.v[2], "crypto");
	assert_string_equal(ns.v[3], "ops");

	OK(vc_store_user_delete(f->st, "alice", &e_));
	ns.n = 0;
	OK(vc_store_user_groups(f->st, "alice", group_cb, &ns, &e_));
	assert_int_equal(ns.n, 0);
	expect_err(vc_store_user_get(f->st, "alice", &got, &err), &err, -ENOENT, "alice");
	assert_null(got.mem);
	expect_err(vc_store_user_delete(f->st, "alice", &err), &err, -ENOENT, NULL);
	expect_err(vc_store_user_add(f->st, &(struct vc_store_user){ .name = "" ,
				     .password_hash = "h" }, &err), &err, -EINVAL, NULL);
}

static void test_sessions(void **state)
{
	struct fx *f = *state;
	struct vc_store_user u = { .name = "alice", .password_hash = "h", .created = 1 };
	struct vc_store_session s1 = { .user = "alice", .expires = 1000 };
	struct vc_store_session s2 = { .user = "alice", .expires = 2000 };
	struct vc_store_session got;
	struct vc_error err = { 0 };
	int64_t purged = -1;

	memset(s1.token_hash, 0x11, sizeof(s1.token_hash));
	memset(s2.token_hash, 0x22, sizeof(s2.token_hash));
	open_ok(f);
	OK(vc_store_user_add(f->st, &u, &e_));
	OK(vc_store_session_add(f->st, &s1, &e_));
	OK(vc_store_session_add(f->st, &s2, &e_));
	expect_err(vc_store_session_add(f->st, &s1, &err), &err, -EEXIST, NULL);
	expect_err(vc_store_session_add(f->st, &(struct vc_store_session){ .user = "bob" },
					&err), &err, -EINVAL, "bob");

	assert_int_equal(vc_store_session_find(f->st, s1.token_hash, 999, &got, &err), 0);
	assert_string_equal(got.user, "alice");
	assert_int_equal(got.expires, 1000);
	assert_memory_equal(got.token_hash, s1.token_hash, sizeof(s1.token_hash));
	free(got.mem);
	/* Expired at exactly its expiry time. */
	expect_err(vc_store_session_find(f->st, s1.token_hash, 1000, &got, &err), &err,
		   -ENOENT, NULL);

	OK(vc_store_session_purge(f->st, 1500, &purged, &e_));
	assert_int_equal(purged, 1);
	expect_err(vc_store_session_find(f->st, s1.token_hash, 0, &got, &err), &err,
		   -ENOENT, NULL);
	assert_int_equal(vc_store_session_find(f->st, s2.token_hash, 1500, &got, &err), 0);
	free(got.mem);

	OK(vc_store_session_delete(f->st, s2.token_hash, &e_));
	expect_err(vc_store_session_delete(f->st, s2.token_hash, &err), &err, -ENOENT, NULL);

	/* A password reset ends every session of the user. */
	OK(vc_store_session_add(f->st, &s1, &e_));
	OK(vc_store_session_add(f->st, &s2, &e_));
	OK(vc_store_session_delete_user(f->st, "alice", &e_));
	expect_err(vc_store_session_find(f->st, s2.token_hash, 0, &got, &err), &err,
		   -ENOENT, NULL);

	/* Deleting a user ends their sessions. */
	OK(vc_store_session_add(f->st, &s1, &e_));
	OK(vc_store_user_delete(f->st, "alice", &e_));
	expect_err(vc_store_session_find(f->st, s1.token_hash, 0, &got, &err), &err,
		   -ENOENT, NULL);
}

static void add_inventory(struct vc_store *st)
{
	OK(vc_store_object_add(st, &(struct vc_store_object){ .id = "root",
			       .kind = VC_STORE_ROOT, .name = "Datacenters" }, &e_));
	OK(vc_store_object_add(st, &(struct vc_store_object){ .id = "f1", .parent = "root",
			       .kind = VC_STORE_FOLDER, .name = "prod" }, &e_));
	OK(vc_store_object_add(st, &(struct vc_store_object){ .id = "vm1", .parent = "f1",
			       .kind = VC_STORE_VM, .name = "db" }, &e_));
}

static void test_roles(void **state)
{
	struct fx *f = *state;
	struct vc_privset admin = vc_role_admin();
	char privs[VC_PRIVSET_STR_MAX];
	struct vc_store_role got;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	assert_int_equal(vc_privset_format(&admin, privs, sizeof(privs), &err), 0);
	open_ok(f);
	OK(vc_store_role_add(f->st, &(struct vc_store_role){ .name = VC_ROLE_ADMIN_ID,
			     .privileges = privs, .builtin = true }, &e_));
	OK(vc_store_role_add(f->st, &(struct vc_store_role){ .name = "Operator",
			     .privileges = "" }, &e_));
	expect_err(vc_store_role_add(f->st, &(struct vc_store_role){ .name = "Operator",
			      .privileges = "" }, &err), &err, -EEXIST, "Operator");

	assert_int_equal(vc_store_role_get(f->st, VC_ROLE_ADMIN_ID, &got, &err), 0);
	assert_string_equal(got.privileges, privs);
	assert_true(got.builtin);
	free(got.mem);
	OK(vc_store_role_list(f->st, role_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], VC_ROLE_ADMIN_ID);

	expect_err(vc_store_role_delete(f->st, VC_ROLE_ADMIN_ID, &err), &err, -EPERM, "builtin");
	/* Still there after the refusal. */
	assert_int_equal(vc_store_role_get(f->st, VC_ROLE_ADMIN_ID, &got, &err), 0);
	free(got.mem);

	/* A role in use cannot go. */
	add_inventory(f->st);
	OK(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "bob",
			     .role = "Operator", .object = "f1" }, &e_));
	expect_err(vc_store_role_delete(f->st, "Operator", &err), &err, -EBUSY, "Operator");
	OK(vc_store_perm_delete(f->st, "bob", false, "f1", &e_));
	OK(vc_store_role_delete(f->st, "Operator", &e_));
	expect_err(vc_store_role_get(f->st, "Operator", &got, &err), &err, -ENOENT, NULL);
	expect_err(vc_store_role_delete(f->st, "Operator", &err), &err, -ENOENT, NULL);
}

static int host_cb(const struct vc_store_host *h, void *ctx)
{
	add_name(ctx, h->address);
	return 0;
}

static void test_hosts(void **state)
{
	static const char tp[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	struct fx *f = *state;
	struct vc_store_host got;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	open_ok(f);
	add_inventory(f->st);
	OK(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "host-1",
			       .parent = "root", .kind = VC_STORE_HOST, .name = "kvm1" }, &e_));
	OK(vc_store_host_add(f->st, &(struct vc_store_host){ .id = "host-1",
			     .address = "127.0.0.1:7443", .thumbprint = tp, .added = 9 }, &e_));
	expect_err(vc_store_host_add(f->st, &(struct vc_store_host){ .id = "host-1",
				     .address = "127.0.0.1:7444", .thumbprint = tp }, &err),
		   &err, -EEXIST, NULL);
	expect_err(vc_store_host_add(f->st, &(struct vc_store_host){ .id = "nope",
				     .address = "127.0.0.1:7445", .thumbprint = tp }, &err),
		   &err, -EINVAL, "nope");
	expect_err(vc_store_host_add(f->st, &(struct vc_store_host){ .id = "host-1",
				     .address = "127.0.0.1:7446", .thumbprint = "ab" }, &err),
		   &err, -EINVAL, NULL);
	OK(vc_store_host_set_encryption_mode(f->st, "host-1", true, &e_));
	assert_int_equal(vc_store_host_get(f->st, "host-1", &got, &err), 0);
	assert_string_equal(got.address, "127.0.0.1:7443");
	assert_string_equal(got.thumbprint, tp);
	assert_true(got.encryption_mode);
	assert_int_equal(got.added, 9);
	free(got.mem);
	OK(vc_store_host_list(f->st, host_cb, &ns, &e_));
	assert_int_equal(ns.n, 1);
	expect_err(vc_store_host_set_encryption_mode(f->st, "h9", true, &err), &err, -ENOENT,
		   "h9");
	/* A VM on it: key ids only. */
	OK(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "vm-1",
			       .parent = "host-1", .kind = VC_STORE_VM, .name = "web" }, &e_));
	OK(vc_store_vm_add(f->st, &(struct vc_store_vm){ .id = "vm-1", .host = "host-1",
			   .uuid = "e584be59-0425-4315-81db-093b1f479961" }, &e_));
	expect_err(vc_store_vm_add(f->st, &(struct vc_store_vm){ .id = "vm-2", .host = "host-1",
				   .uuid = "e584be59-0425-4315-81db-093b1f479962" }, &err),
		   &err, -EINVAL, NULL);
	OK(vc_store_vm_set_key(f->st, "vm-1", true, "nat", "k1", &e_));
	{
		struct vc_store_vm vm;

		assert_int_equal(vc_store_vm_get(f->st, "vm-1", &vm, &err), 0);
		assert_true(vm.encrypted);
		assert_string_equal(vm.key_id, "k1");
		assert_string_equal(vm.host, "host-1");
		free(vm.mem);
	}
	OK(vc_store_object_delete(f->st, "vm-1", &e_));
	/* Removing the inventory object removes the host. */
	OK(vc_store_object_delete(f->st, "host-1", &e_));
	expect_err(vc_store_host_get(f->st, "host-1", &got, &err), &err, -ENOENT, NULL);
}

static void test_inventory(void **state)
{
	struct fx *f = *state;
	struct vc_store_object got;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	open_ok(f);
	add_inventory(f->st);
	OK(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "h1",
			       .parent = "root", .kind = VC_STORE_HOST, .name = "esx1" }, &e_));
	expect_err(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "x",
					.parent = "nope", .kind = VC_STORE_VM, .name = "x" }, &err),
		   &err, -EINVAL, "nope");
	expect_err(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "r2",
					.parent = "root", .kind = VC_STORE_ROOT, .name = "x" }, &err),
		   &err, -EINVAL, NULL);
	expect_err(vc_store_object_add(f->st, &(struct vc_store_object){ .id = "vm1",
					.parent = "root", .kind = VC_STORE_VM, .name = "x" }, &err),
		   &err, -EEXIST, "vm1");

	assert_int_equal(vc_store_object_get(f->st, "vm1", &got, &err), 0);
	assert_string_equal(got.parent, "f1");
	assert_int_equal(got.kind, VC_STORE_VM);
	assert_string_equal(got.name, "db");
	free(got.mem);
	assert_int_equal(vc_store_object_get(f->st, "root", &got, &err), 0);
	assert_null(got.parent);
	assert_int_equal(got.kind, VC_STORE_ROOT);
	free(got.mem);

	OK(vc_store_object_children(f->st, "root", obj_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], "h1");   /* "esx1" sorts before "prod" */
	assert_string_equal(ns.v[1], "f1");

	OK(vc_store_object_rename(f->st, "vm1", "db-renamed", &e_));
	assert_int_equal(vc_store_object_get(f->st, "vm1", &got, &err), 0);
	assert_string_equal(got.name, "db-renamed");
	free(got.mem);
	expect_err(vc_store_object_rename(f->st, "nope", "x", &err), &err, -ENOENT, "nope");

	expect_err(vc_store_object_delete(f->st, "f1", &err), &err, -ENOTEMPTY, "f1");
	OK(vc_store_object_delete(f->st, "vm1", &e_));
	OK(vc_store_object_delete(f->st, "f1", &e_));
	expect_err(vc_store_object_get(f->st, "f1", &got, &err), &err, -ENOENT, NULL);
	assert_string_equal(vc_store_kind_name(VC_STORE_CLUSTER), "cluster");
	assert_null(vc_store_kind_name((enum vc_store_kind)99));
}

static void test_permissions(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	open_ok(f);
	add_inventory(f->st);
	OK(vc_store_role_add(f->st, &(struct vc_store_role){ .name = "ReadOnly",
			     .privileges = "System.Read", .builtin = true }, &e_));
	OK(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "alice",
			     .role = "ReadOnly", .object = "root", .propagate = true }, &e_));
	OK(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "ops",
			     .is_group = true, .role = "ReadOnly", .object = "vm1" }, &e_));
	/* Same name as a user, but a group: a different principal. */
	OK(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "alice",
			     .is_group = true, .role = "ReadOnly", .object = "root" }, &e_));

	expect_err(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "bob",
				     .role = "NoSuchRole", .object = "root" }, &err),
		   &err, -EINVAL, "NoSuchRole");
	expect_err(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "bob",
				     .role = "ReadOnly", .object = "nowhere" }, &err),
		   &err, -EINVAL, "nowhere");
	expect_err(vc_store_perm_add(f->st, &(struct vc_store_perm){ .principal = "alice",
				     .role = "ReadOnly", .object = "root" }, &err),
		   &err, -EEXIST, "alice");

	OK(vc_store_perm_list(f->st, "root", perm_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], "alice@root:ReadOnly+");
	assert_string_equal(ns.v[1], "g:alice@root:ReadOnly");
	ns.n = 0;
	OK(vc_store_perm_list(f->st, NULL, perm_cb, &ns, &e_));
	assert_int_equal(ns.n, 3);
	assert_string_equal(ns.v[2], "g:ops@vm1:ReadOnly");

	OK(vc_store_perm_delete(f->st, "alice", true, "root", &e_));
	expect_err(vc_store_perm_delete(f->st, "alice", true, "root", &err), &err, -ENOENT,
		   NULL);
	/* Deleting an object removes its permissions. */
	OK(vc_store_object_delete(f->st, "vm1", &e_));
	ns.n = 0;
	OK(vc_store_perm_list(f->st, NULL, perm_cb, &ns, &e_));
	assert_int_equal(ns.n, 1);
	assert_string_equal(ns.v[0], "alice@root:ReadOnly+");
}

static void test_providers_policies(void **state)
{
	struct fx *f = *state;
	struct vc_store_provider got;
	struct vc_store_policy pol;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	open_ok(f);
	OK(vc_store_provider_add(f->st, &(struct vc_store_provider){ .name = "kms1",
				 .kind = "kmip", .config = "{\"servers\":[\"a:5696\"]}",
				 .is_default = true }, &e_));
	OK(vc_store_provider_add(f->st, &(struct vc_store_provider){ .name = "nkp",
				 .kind = "native", .config = "{}", .is_default = true }, &e_));
	OK(vc_store_provider_list(f->st, prov_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], "kms1");
	assert_string_equal(ns.v[1], "nkp*");

	expect_err(vc_store_provider_add(f->st, &(struct vc_store_provider){ .name = "x",
					 .kind = "vault", .config = "{}" }, &err), &err, -EINVAL,
		   "vault");
	/* A failed add must not have cleared the current default. */
	expect_err(vc_store_provider_add(f->st, &(struct vc_store_provider){ .name = "kms1",
					 .kind = "kmip", .config = "{}", .is_default = true },
					 &err), &err, -EEXIST, "kms1");
	assert_int_equal(vc_store_provider_get(f->st, "nkp", &got, &err), 0);
	assert_true(got.is_default);
	free(got.mem);

	OK(vc_store_provider_set_default(f->st, "kms1", &e_));
	assert_int_equal(vc_store_provider_get(f->st, "kms1", &got, &err), 0);
	assert_true(got.is_default);
	assert_string_equal(got.kind, "kmip");
	assert_string_equal(got.config, "{\"servers\":[\"a:5696\"]}");
	free(got.mem);
	expect_err(vc_store_provider_set_default(f->st, "none", &err), &err, -ENOENT, "none");
	assert_int_equal(vc_store_provider_get(f->st, "kms1", &got, &err), 0);
	assert_true(got.is_default);
	free(got.mem);

	OK(vc_store_policy_add(f->st, &(struct vc_store_policy){ .name = "encrypt-kms1",
			       .encrypt = true, .migration = "required",
			       .provider = "kms1" }, &e_));
	OK(vc_store_policy_add(f->st, &(struct vc_store_policy){ .name = "default",
			       .encrypt = true, .migration = "opportunistic" }, &e_));
	expect_err(vc_store_policy_add(f->st, &(struct vc_store_policy){ .name = "p3",
				       .migration = "disabled", .provider = "ghost" }, &err),
		   &err, -EINVAL, "ghost");
	expect_err(vc_store_policy_add(f->st, &(struct vc_store_policy){ .name = "default",
				       .migration = "disabled" }, &err), &err, -EEXIST, NULL);
	assert_int_equal(vc_store_policy_get(f->st, "default", &pol, &err), 0);
	assert_null(pol.provider);
	assert_true(pol.encrypt);
	assert_string_equal(pol.migration, "opportunistic");
	free(pol.mem);
	assert_int_equal(vc_store_policy_get(f->st, "encrypt-kms1", &pol, &err), 0);
	assert_string_equal(pol.provider, "kms1");
	free(pol.mem);
	ns.n = 0;
	OK(vc_store_policy_list(f->st, pol_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);

	expect_err(vc_store_provider_delete(f->st, "kms1", &err), &err, -EBUSY, "kms1");
	OK(vc_store_policy_delete(f->st, "encrypt-kms1", &e_));
	expect_err(vc_store_policy_delete(f->st, "encrypt-kms1", &err), &err, -ENOENT, NULL);
	OK(vc_store_provider_delete(f->st, "kms1", &e_));
	expect_err(vc_store_provider_get(f->st, "kms1", &got, &err), &err, -ENOENT, NULL);
}

static void test_tasks(void **state)
{
	struct fx *f = *state;
	struct vc_store_task t = { .id = "t2", .kind = "encrypt-vm", .state = "queued",
				   .user = "alice", .created = 20, .updated = 20 };
	struct vc_store_task got;
	struct vc_error err = { 0 };
	struct names ns = { 0 };

	open_ok(f);
	OK(vc_store_task_add(f->st, &t, &e_));
	OK(vc_store_task_add(f->st, &(struct vc_store_task){ .id = "t1", .kind = "rekey",
			     .state = "queued", .created = 10, .updated = 10 }, &e_));
	expect_err(vc_store_task_add(f->st, &t, &err), &err, -EEXIST, "t2");
	t.state = "running";
	t.progress = 101;
	expect_err(vc_store_task_update(f->st, &t, &err), &err, -EINVAL, NULL);
	t.progress = 40;
	t.updated = 25;
	OK(vc_store_task_update(f->st, &t, &e_));
	t.state = "success";
	t.progress = 100;
	t.result = "{\"vm\":\"vm1\"}";
	t.updated = 30;
	OK(vc_store_task_update(f->st, &t, &e_));
	assert_int_equal(vc_store_task_get(f->st, "t2", &got, &err), 0);
	assert_string_equal(got.state, "success");
	assert_int_equal(got.progress, 100);
	assert_string_equal(got.result, "{\"vm\":\"vm1\"}");
	assert_null(got.error);
	assert_string_equal(got.user, "alice");
	assert_int_equal(got.created, 20);
	assert_int_equal(got.updated, 30);
	free(got.mem);
	t.id = "t9";
	expect_err(vc_store_task_update(f->st, &t, &err), &err, -ENOENT, "t9");
	OK(vc_store_task_list(f->st, task_cb, &ns, &e_));
	assert_int_equal(ns.n, 2);
	assert_string_equal(ns.v[0], "t1");
	assert_string_equal(ns.v[1], "t2");
}

/* Events are copied out of the callback (strings die with the row). */
struct evs {
	struct vc_event ev[16];
	char str[16][7][32];
	size_t n;
};

static int ev_cb(const struct vc_event *ev, void *ctx)
{
	struct evs *e = ctx;
	const char *src[7] = { ev->user, ev->operation, ev->object, ev->provider,
			       ev->key_id, ev->result, ev->message };
	const char **dst[7];
	struct vc_event *d;

	assert_true(e->n < 16);
	d = &e->ev[e->n];
	*d = *ev;
	dst[0] = &d->user; dst[1] = &d->operation; dst[2] = &d->object;
	dst[3] = &d->provider; dst[4] = &d->key_id; dst[5] = &d->result;
	dst[6] = &d->message;
	for (int i = 0; i < 7; i++) {
		if (src[i]) {
			snprintf(e->str[e->n][i], 32, "%s", src[i]);
			*dst[i] = e->str[e->n][i];
		}
	}
	e->n++;
	return 0;
}

static const uint8_t genesis[VC_SHA256_LEN] = { 0x47, 0x45, 0x4e };
static const char logkey[] = "event-log-key-for-tests";

static void append(struct vc_store *st, int64_t t, const char *user, const char *op,
		   const char *obj, int64_t want_seq)
{
	struct vc_event ev = { .time_us = t, .user = user, .operation = op, .object = obj,
			       .provider = "kms1", .key_id = "kid-1", .result = "success",
			       .message = "ok" };

	OK(vc_store_event_append(st, &ev, genesis, logkey, strlen(logkey), &e_));
	assert_int_equal(ev.seq, want_seq);
}

static void test_events(void **state)
{
	struct fx *f = *state;
	struct vc_store_event_filter flt = { 0 };
	struct vc_event last;
	struct vc_error err = { 0 };
	struct evs *e = calloc(1, sizeof(*e));
	char *mem = NULL;

	assert_non_null(e);
	open_ok(f);
	expect_err(vc_store_event_last(f->st, &last, &mem, &err), &err, -ENOENT, NULL);
	append(f->st, 100, "alice", "vm.encrypt", "vm1", 1);
	append(f->st, 200, "bob", "vm.decrypt", "vm2", 2);
	append(f->st, 300, "alice", "vm.decrypt", "vm1", 3);
	reopen(f);
	append(f->st, 400, "carol", "vm.encrypt", "vm2", 4);
	append(f->st, 500, "alice", "key.rekey", "vm2", 5);

	OK(vc_store_event_list(f->st, NULL, ev_cb, e, &e_));
	assert_int_equal(e->n, 5);
	for (size_t i = 0; i < e->n; i++)
		assert_int_equal(e->ev[i].seq, (int64_t)i + 1);
	assert_memory_equal(e->ev[0].prev_hash, genesis, VC_SHA256_LEN);
	assert_int_equal(vc_event_verify_chain(e->ev, e->n, genesis, logkey, strlen(logkey),
					       NULL, &err), 0);
	/* The stored chain is keyed: unkeyed verification must fail. */
	assert_int_equal(vc_event_verify_chain(e->ev, e->n, genesis, NULL, 0, NULL, &err),
			 -EBADMSG);

	assert_int_equal(vc_store_event_last(f->st, &last, &mem, &err), 0);
	assert_int_equal(last.seq, 5);
	assert_string_equal(last.operation, "key.rekey");
	assert_memory_equal(last.hash, e->ev[4].hash, VC_SHA256_LEN);
	free(mem);

	memset(e, 0, sizeof(*e));
	flt.user = "alice";
	OK(vc_store_event_list(f->st, &flt, ev_cb, e, &e_));
	assert_int_equal(e->n, 3);
	assert_int_equal(e->ev[2].seq, 5);

	memset(e, 0, sizeof(*e));
	flt = (struct vc_store_event_filter){ .user = "alice", .object = "vm1" };
	OK(vc_store_event_list(f->st, &flt, ev_cb, e, &e_));
	assert_int_equal(e->n, 2);

	memset(e, 0, sizeof(*e));
	flt = (struct vc_store_event_filter){ .operation = "vm.decrypt" };
	OK(vc_store_event_list(f->st, &flt, ev_cb, e, &e_));
	assert_int_equal(e->n, 2);
	assert_int_equal(e->ev[0].seq, 2);
	assert_int_equal(e->ev[1].seq, 3);

	memset(e, 0, sizeof(*e));
	flt = (struct vc_store_event_filter){ .from_us = 200, .to_us = 400 };
	OK(vc_store_event_list(f->st, &flt, ev_cb, e, &e_));
	assert_int_equal(e->n, 3);
	assert_int_equal(e->ev[0].seq, 2);
	assert_int_equal(e->ev[2].seq, 4);

	/* An append inside a rolled-back transaction leaves no gap. */
	OK(vc_store_begin(f->st, &e_));
	append(f->st, 600, "dave", "x", "y", 6);
	OK(vc_store_rollback(f->st, &e_));
	append(f->st, 700, "dave", "x", "y", 6);
	free(e);
}

static void test_transactions(void **state)
{
	struct fx *f = *state;
	struct vc_store_user u = { .name = "alice", .password_hash = "h", .created = 1 };
	struct vc_store_user got;
	struct vc_error err = { 0 };

	open_ok(f);
	OK(vc_store_begin(f->st, &e_));
	expect_err(vc_store_begin(f->st, &err), &err, -EINVAL, NULL);
	OK(vc_store_user_add(f->st, &u, &e_));
	assert_int_equal(vc_store_user_get(f->st, "alice", &got, &err), 0);
	free(got.mem);
	OK(vc_store_rollback(f->st, &e_));
	expect_err(vc_store_user_get(f->st, "alice", &got, &err), &err, -ENOENT, NULL);
	expect_err(vc_store_commit(f->st, &err), &err, -EINVAL, NULL);

	OK(vc_store_begin(f->st, &e_));
	OK(vc_store_user_add(f->st, &u, &e_));
	OK(vc_store_commit(f->st, &e_));
	reopen(f);
	assert_int_equal(vc_store_user_get(f->st, "alice", &got, &err), 0);
	free(got.mem);

	/* Closing with a transaction open discards it. */
	OK(vc_store_begin(f->st, &e_));
	OK(vc_store_user_delete(f->st, "alice", &e_));
	reopen(f);
	assert_int_equal(vc_store_user_get(f->st, "alice", &got, &err), 0);
	free(got.mem);
}

static void test_migrate_from_v0(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	int v = -1;
	int fd;

	/* What a program that only knew version 0 would have left. */
	fd = open(f->path, O_CREAT | O_WRONLY | O_EXCL, 0600);
	assert_true(fd >= 0);
	close(fd);
	raw_exec(f->path, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
			  "INSERT INTO schema_version VALUES (0);");
	open_ok(f);
	assert_int_equal(vc_store_schema_version(f->st, &v, &err), 0);
	assert_int_equal(v, VC_STORE_SCHEMA_VERSION);
	assert_tables(f->path);
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM schema_version"), 1);
}

static void test_migrate_from_v1(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	struct vc_store_user got;
	const char *idx = "SELECT count(*) FROM sqlite_master WHERE type='index' "
			  "AND name='events_time'";
	int v = -1;

	assert_int_equal(vc_store_open_sqlite_at(f->path, 1, &f->st, &err), 0);
	assert_int_equal(vc_store_schema_version(f->st, &v, &err), 0);
	assert_int_equal(v, 1);
	vc_store_close(f->st);
	f->st = NULL;
	/* A row as version 1 wrote it (no must_change column yet). */
	raw_exec(f->path, "INSERT INTO users (name, password_hash, created, disabled) "
			  "VALUES ('old', 'h', 5, 0);");
	assert_int_equal(raw_int(f->path, idx), 0);

	open_ok(f);
	assert_int_equal(vc_store_schema_version(f->st, &v, &err), 0);
	assert_int_equal(v, VC_STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->path, idx), 1);
	assert_int_equal(vc_store_user_get(f->st, "old", &got, &err), 0);
	assert_int_equal(got.created, 5);
	assert_false(got.must_change);
	free(got.mem);
	{
		struct vc_store *st2 = NULL;

		expect_err(vc_store_open_sqlite_at(f->path, VC_STORE_SCHEMA_VERSION + 1, &st2,
						   &err), &err, -EINVAL, NULL);
		assert_null(st2);
	}
}

static void test_newer_schema(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	struct vc_store *st = NULL;

	raw_exec(f->path, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
			  "INSERT INTO schema_version VALUES (99);");
	expect_err(vc_store_open_sqlite(f->path, &st, &err), &err, -EPROTO, "99");
	assert_null(st);
}

static void test_corrupt_file(void **state)
{
	struct fx *f = *state;
	struct vc_error err = { 0 };
	struct vc_store *st = NULL;
	unsigned char junk[8192], back[8192];
	struct stat sb;
	int fd;

	assert_int_equal(RAND_bytes(junk, sizeof(junk)), 1);
	fd = open(f->path, O_CREAT | O_WRONLY | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	close(fd);

	expect_err(vc_store_open_sqlite(f->path, &st, &err), &err, -EBADMSG,
		   "not a vmcrypt store");
	assert_null(st);
	/* The file is left exactly as it was. */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_size, (off_t)sizeof(junk));
	fd = open(f->path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)sizeof(back));
	close(fd);
	assert_memory_equal(back, junk, sizeof(junk));
}

/* The store keeps key ids, never keys: no column may be named like one. */
static void test_no_key_columns(void **state)
{
	struct fx *f = *state;
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int columns = 0, key_ids = 0;

	open_ok(f);
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT m.name, lower(p.name) FROM sqlite_master AS m, "
		"pragma_table_info(m.name) AS p WHERE m.type = 'table'", -1, &s, NULL),
		SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *table = (const char *)sqlite3_column_text(s, 0);
		const char *col = (const char *)sqlite3_column_text(s, 1);

		columns++;
		if (strcmp(col, "key_id") == 0) {
			key_ids++;
			continue;
		}
		if (strstr(col, "key") || strstr(col, "secret") || strstr(col, "kek") ||
		    strstr(col, "dek"))
			fail_msg("column %s.%s looks like key material", table, col);
	}
	sqlite3_finalize(s);
	sqlite3_close(db);
	assert_true(columns > 30);
	/* events.key_id and vms.key_id */
	assert_int_equal(key_ids, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_file_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inventory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_permissions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_providers_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_key_columns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hosts, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
