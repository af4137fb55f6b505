/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_native: the native key provider (sealing, derivation,
 * backup gate, backup and restore), plus a second reading of its file
 * formats written from docs/KEYS.md with OpenSSL calls of its own. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vc_crypto.h"
#include "vc_native.h"

/* Cheap scrypt for tests: N = 16. */
static const struct vc_native_scrypt fast = { 4, 8, 1 };

struct fixture {
	char *tmp;   /* mkdtemp'd, removed by teardown */
	char *dir;   /* tmp/prov: does not exist at the start */
	char *dir2;  /* tmp/other */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);

	if (!f)
		return -1;
	f->tmp = strdup("/tmp/vc-test-native-XXXXXX");
	if (!f->tmp || !mkdtemp(f->tmp))
		return -1;
	if (asprintf(&f->dir, "%s/prov", f->tmp) < 0 ||
	    asprintf(&f->dir2, "%s/other", f->tmp) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	rm_rf(f->tmp);
	free(f->tmp);
	free(f->dir);
	free(f->dir2);
	free(f);
	return 0;
}

static char *join(const char *dir, const char *name)
{
	char *p = NULL;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static struct vc_secret *password(const char *s)
{
	struct vc_secret *pw = NULL;

	assert_int_equal(vc_secret_from_bytes(s, strlen(s), &pw, NULL), 0);
	return pw;
}

static struct vc_native *open_ok(const char *dir, unsigned flags)
{
	struct vc_error err = { 0 };
	struct vc_native *p = NULL;
	int r = vc_native_open(dir, NULL, flags, &p, &err);

	if (r != 0)
		fail_msg("vc_native_open(%s): %d %s", dir, r, err.msg);
	assert_non_null(p);
	return p;
}

static void expect_open_fails(const char *dir, unsigned flags, int code,
			      const char *needle)
{
	struct vc_error err = { 0 };
	struct vc_native *p = (struct vc_native *)(uintptr_t)1;
	int r = vc_native_open(dir, NULL, flags, &p, &err);

	if (r != code)
		fail_msg("open %s: expected %d, got %d (%s)", dir, code, r, err.msg);
	assert_null(p);
	assert_int_equal(err.code, code);
	if (needle && !strstr(err.msg, needle))
		fail_msg("open %s: message lacks '%s': %s", dir, needle, err.msg);
}

static struct vc_secret *get_ok(struct vc_native *p, const char *id)
{
	struct vc_error err = { 0 };
	struct vc_secret *k = NULL;
	int r = vc_native_get_key(p, id, &k, &err);

	if (r != 0)
		fail_msg("get_key(%s): %d %s", id, r, err.msg);
	assert_int_equal(vc_secret_len(k), VC_NATIVE_KEK_LEN);
	return k;
}

static void assert_same_key(const struct vc_secret *a, const struct vc_secret *b)
{
	assert_int_equal(vc_secret_len(a), vc_secret_len(b));
	assert_memory_equal(vc_secret_data(a), vc_secret_data(b), vc_secret_len(a));
}

static void assert_different_key(const struct vc_secret *a, const struct vc_secret *b)
{
	assert_memory_not_equal(vc_secret_data(a), vc_secret_data(b), VC_NATIVE_KEK_LEN);
}

static void backup_ok(struct vc_native *p, const char *pw,
		      const struct vc_native_scrypt *c, uint8_t *env)
{
	struct vc_error err = { 0 };
	struct vc_secret *s = password(pw);
	int r = vc_native_backup(p, s, c, env, &err);

	vc_secret_free(s);
	if (r != 0)
		fail_msg("backup: %d %s", r, err.msg);
}

static int restore(const char *dir, const uint8_t *env, size_t len, const char *pw,
		   unsigned flags, struct vc_error *err)
{
	struct vc_secret *s = password(pw);
	int r = vc_native_restore(dir, NULL, env, len, s, flags, err);

	vc_secret_free(s);
	return r;
}

static void restore_ok(const char *dir, const uint8_t *env, const char *pw, unsigned flags)
{
	struct vc_error err = { 0 };
	int r = restore(dir, env, VC_NATIVE_BACKUP_LEN, pw, flags, &err);

	if (r != 0)
		fail_msg("restore into %s: %d %s", dir, r, err.msg);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf = malloc(1 << 16);
	size_t n;

	assert_non_null(fp);
	assert_non_null(buf);
	n = fread(buf, 1, 1 << 16, fp);
	fclose(fp);
	*len = n;
	return buf;
}

/* Rewrite a file in place (keeps its inode and mode). */
static void write_all(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void flip_byte(const char *path, size_t off)
{
	size_t len;
	uint8_t *buf = read_all(path, &len);

	assert_true(off < len);
	buf[off] ^= 0x01;
	write_all(path, buf, len);
	free(buf);
}

/* ---- Stability and separation of keys -------------------------------- */

static void test_stable_across_reopen(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	struct vc_native_info a, b;
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k1 = NULL, *k2;
	struct vc_uuid u;

	assert_int_equal(vc_native_create_key(p, id, &k1, NULL), 0);
	assert_int_equal(vc_uuid_parse(id, &u), 0);
	vc_native_info(p, &a);
	vc_native_close(p);

	p = open_ok(f->dir, VC_NATIVE_ALLOW_NO_BACKUP);
	k2 = get_ok(p, id);
	assert_same_key(k1, k2);
	vc_native_info(p, &b);
	assert_string_equal(a.provider_id, b.provider_id);
	assert_int_equal(a.created, b.created);
	assert_string_equal(b.sealer, "host-key");
	vc_secret_free(k2);
	vc_native_close(p);

	/* Opening with CREATE again must load, not recreate. */
	p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	k2 = get_ok(p, id);
	assert_same_key(k1, k2);
	vc_secret_free(k2);
	vc_native_close(p);
	vc_secret_free(k1);
}

static void test_open_missing(void **state)
{
	struct fixture *f = *state;

	/* No directory, then an empty directory: both -ENOENT, nothing made. */
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -ENOENT, NULL);
	assert_int_equal(access(f->dir, F_OK), -1);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	expect_open_fails(f->dir, 0, -ENOENT, "no native key provider");
}

static void test_files_and_modes(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p;
	struct dirent *de;
	struct stat st;
	char *path;
	DIR *d;
	int n = 0;
	uint8_t env[VC_NATIVE_BACKUP_LEN];

	umask(022);
	p = open_ok(f->dir, VC_NATIVE_CREATE);
	backup_ok(p, "a long enough password", &fast, env);
	vc_native_close(p);

	assert_int_equal(stat(f->dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	path = join(f->dir, VC_NATIVE_STATE_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(path);
	path = join(f->dir, VC_NATIVE_SEALING_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);
	free(path);

	/* Exactly two files: no temporary file left behind by the rewrites. */
	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (strcmp(de->d_name, VC_NATIVE_STATE_FILE) &&
		    strcmp(de->d_name, VC_NATIVE_SEALING_KEY_FILE))
			fail_msg("unexpected file %s", de->d_name);
		n++;
	}
	closedir(d);
	assert_int_equal(n, 2);
}

static void test_keys_differ_per_id(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	char ids[8][VC_UUID_STR_LEN];
	struct vc_secret *k[8];

	for (int i = 0; i < 8; i++)
		assert_int_equal(vc_native_create_key(p, ids[i], &k[i], NULL), 0);
	for (int i = 0; i < 8; i++) {
		struct vc_secret *again = get_ok(p, ids[i]);

		assert_same_key(k[i], again);
		vc_secret_free(again);
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(ids[i], ids[j]);
			assert_different_key(k[i], k[j]);
		}
	}
	for (int i = 0; i < 8; i++)
		vc_secret_free(k[i]);
	vc_native_close(p);
}

static void test_keys_differ_per_provider(void **state)
{
	struct fixture *f = *state;
	struct vc_native *a = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	struct vc_native *b = open_ok(f->dir2, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	const char *id = "0f8fad5b-d9cb-469f-a165-70867728950e";
	struct vc_secret *ka = get_ok(a, id), *kb = get_ok(b, id);
	struct vc_native_info ia, ib;

	vc_native_info(a, &ia);
	vc_native_info(b, &ib);
	assert_string_not_equal(ia.provider_id, ib.provider_id);
	assert_different_key(ka, kb);
	vc_secret_free(ka);
	vc_secret_free(kb);
	vc_native_close(a);
	vc_native_close(b);
}

static void test_create_key_without_kek(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k;
	struct vc_uuid u;

	assert_int_equal(vc_native_create_key(p, id, NULL, NULL), 0);
	assert_int_equal(strlen(id), 36);
	assert_int_equal(vc_uuid_parse(id, &u), 0);
	k = get_ok(p, id);
	vc_secret_free(k);
	vc_native_close(p);
}

static void test_malformed_key_ids(void **state)
{
	static const char *const bad[] = {
		"",
		"not-a-uuid",
		"0f8fad5b-d9cb-469f-a165-70867728950",    /* 35 characters */
		"0f8fad5b-d9cb-469f-a165-70867728950ea",  /* 37 characters */
		"0f8fad5b-d9cb-469f-a165-70867728950g",   /* not hex */
		"0f8fad5bd-9cb-469f-a165-70867728950e",   /* dash misplaced */
		"0f8fad5b_d9cb_469f_a165_70867728950e",
		"00000000-0000-0000-0000-000000000000",   /* nil */
		"0f8fad5b-d9cb-469f-a165-70867728950e\n",
		" 0f8fad5b-d9cb-469f-a165-70867728950e",
		"0f8fad5b-d9cb-469f-a165-7086772895\x01e",
		"../../etc/passwd",
	};
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	struct vc_secret *upper, *lower;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct vc_error err = { 0 };
		struct vc_secret *k = (struct vc_secret *)(uintptr_t)1;
		int r = vc_native_get_key(p, bad[i], &k, &err);

		if (r != -EINVAL)
			fail_msg("key id #%zu: expected -EINVAL, got %d", i, r);
		assert_null(k);
		assert_non_null(strstr(err.msg, "malformed key id"));
		assert_null(strchr(err.msg, '\n'));
		assert_null(strchr(err.msg, '\x01'));
	}
	{
		struct vc_error err = { 0 };
		struct vc_secret *k = NULL;

		assert_int_equal(vc_native_get_key(p, NULL, &k, &err), -EINVAL);
	}
	/* The same UUID in either case is the same key id. */
	upper = get_ok(p, "0F8FAD5B-D9CB-469F-A165-70867728950E");
	lower = get_ok(p, "0f8fad5b-d9cb-469f-a165-70867728950e");
	assert_same_key(upper, lower);
	vc_secret_free(upper);
	vc_secret_free(lower);
	vc_native_close(p);
}

/* ---- The backup gate -------------------------------------------------- */

static void expect_gated(struct vc_native *p)
{
	struct vc_error err = { 0 };
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = (struct vc_secret *)(uintptr_t)1;

	assert_int_equal(vc_native_create_key(p, id, &k, &err), -EPERM);
	assert_null(k);
	assert_non_null(strstr(err.msg, "no backup has been taken; back it up first"));
	memset(&err, 0, sizeof err);
	k = (struct vc_secret *)(uintptr_t)1;
	assert_int_equal(vc_native_get_key(p, "0f8fad5b-d9cb-469f-a165-70867728950e", &k, &err),
			 -EPERM);
	assert_null(k);
	assert_non_null(strstr(err.msg, "no backup has been taken"));
}

static void test_gate_until_backup(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	struct vc_native_info info;
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = NULL, *k2, *pw;
	struct vc_error err = { 0 };

	vc_native_info(p, &info);
	assert_false(info.backup_taken);
	assert_false(info.allow_no_backup);
	assert_int_equal(info.backup_time, 0);
	expect_gated(p);

	/* A failed backup (password too short, bad scrypt cost) opens nothing. */
	pw = password("short");
	assert_int_equal(vc_native_backup(p, pw, &fast, env, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "password"));
	vc_secret_free(pw);
	pw = password("long enough password");
	assert_int_equal(vc_native_backup(p, pw, &(struct vc_native_scrypt){ 0, 8, 1 }, env, NULL),
			 -EINVAL);
	assert_int_equal(vc_native_backup(p, pw, &(struct vc_native_scrypt){ 14, 0, 1 }, env, NULL),
			 -EINVAL);
	assert_int_equal(vc_native_backup(p, pw, &(struct vc_native_scrypt){ 14, 8, 65 }, env, NULL),
			 -EINVAL);
	assert_int_equal(vc_native_backup(p, pw, &(struct vc_native_scrypt){ 24, 8, 1 }, env, NULL),
			 -EINVAL);
	vc_secret_free(pw);
	expect_gated(p);
	vc_native_close(p);

	/* Still gated after a reopen. */
	p = open_ok(f->dir, 0);
	expect_gated(p);
	backup_ok(p, "long enough password", &fast, env);
	vc_native_info(p, &info);
	assert_true(info.backup_taken);
	assert_true(info.backup_time > 0);
	assert_int_equal(vc_native_create_key(p, id, &k, NULL), 0);
	vc_native_close(p);

	/* The backup was recorded in the state file. */
	p = open_ok(f->dir, 0);
	vc_native_info(p, &info);
	assert_true(info.backup_taken);
	k2 = get_ok(p, id);
	assert_same_key(k, k2);
	vc_secret_free(k);
	vc_secret_free(k2);
	vc_native_close(p);
}

static void test_allow_without_backup(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	struct vc_native_info info;
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = NULL;

	vc_native_info(p, &info);
	assert_false(info.backup_taken);
	assert_true(info.allow_no_backup);
	assert_int_equal(vc_native_create_key(p, id, &k, NULL), 0);
	vc_secret_free(k);
	vc_native_close(p);

	/* The flag is per open, not stored. */
	p = open_ok(f->dir, 0);
	expect_gated(p);
	vc_native_close(p);
}

/* ---- Backup and restore ----------------------------------------------- */

static void test_backup_wipe_restore(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	char ids[4][VC_UUID_STR_LEN];
	struct vc_secret *k[4];
	struct vc_native_info before, after;

	backup_ok(p, "correct horse battery staple", &fast, env);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vc_native_create_key(p, ids[i], &k[i], NULL), 0);
	vc_native_info(p, &before);
	vc_native_close(p);

	rm_rf(f->dir);
	expect_open_fails(f->dir, 0, -ENOENT, NULL);

	restore_ok(f->dir, env, "correct horse battery staple", 0);
	p = open_ok(f->dir, 0); /* no flag: a restored provider is backed up */
	vc_native_info(p, &after);
	assert_string_equal(before.provider_id, after.provider_id);
	assert_int_equal(before.created, after.created);
	assert_true(after.backup_taken);
	for (int i = 0; i < 4; i++) {
		struct vc_secret *again = get_ok(p, ids[i]);

		assert_same_key(k[i], again);
		vc_secret_free(again);
		vc_secret_free(k[i]);
	}
	vc_native_close(p);

	/* Restoring into another directory gives a second copy. */
	restore_ok(f->dir2, env, "correct horse battery staple", 0);
	p = open_ok(f->dir2, 0);
	vc_native_info(p, &after);
	assert_string_equal(before.provider_id, after.provider_id);
	vc_native_close(p);
}

static void test_restore_default_scrypt(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = NULL, *k2;

	assert_int_equal(vc_native_create_key(p, id, &k, NULL), 0);
	backup_ok(p, "default cost password", NULL, env);
	vc_native_close(p);
	/* N = 2^15, r = 8, p = 1 as the header records them. */
	assert_int_equal(env[12], 15);
	assert_int_equal(env[16] | env[17] << 8 | env[18] << 16 | env[19] << 24, 8);
	assert_int_equal(env[20] | env[21] << 8 | env[22] << 16 | env[23] << 24, 1);
	restore_ok(f->dir2, env, "default cost password", 0);
	p = open_ok(f->dir2, 0);
	k2 = get_ok(p, id);
	assert_same_key(k, k2);
	vc_secret_free(k);
	vc_secret_free(k2);
	vc_native_close(p);
}

static void test_restore_over_same_and_other(void **state)
{
	struct fixture *f = *state;
	struct vc_native *a = open_ok(f->dir, VC_NATIVE_CREATE);
	struct vc_native *b = open_ok(f->dir2, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	char id[VC_UUID_STR_LEN];
	struct vc_secret *ka = NULL, *kb;
	struct vc_error err = { 0 };
	struct vc_native_info ia, ib;

	backup_ok(a, "password of provider a", &fast, env);
	assert_int_equal(vc_native_create_key(a, id, &ka, NULL), 0);
	vc_native_info(a, &ia);
	vc_native_close(a);
	kb = get_ok(b, id);
	vc_native_close(b);

	/* Same provider: allowed (idempotent). */
	restore_ok(f->dir, env, "password of provider a", 0);

	/* Another provider: refused, and its keys are unchanged. */
	assert_int_equal(restore(f->dir2, env, sizeof env, "password of provider a", 0, &err),
			 -EEXIST);
	assert_non_null(strstr(err.msg, "another native key provider"));
	b = open_ok(f->dir2, VC_NATIVE_ALLOW_NO_BACKUP);
	{
		struct vc_secret *again = get_ok(b, id);

		assert_same_key(kb, again);
		vc_secret_free(again);
	}
	vc_native_close(b);

	/* Unless told to replace it. */
	restore_ok(f->dir2, env, "password of provider a", VC_NATIVE_REPLACE);
	b = open_ok(f->dir2, 0);
	vc_native_info(b, &ib);
	assert_string_equal(ia.provider_id, ib.provider_id);
	{
		struct vc_secret *again = get_ok(b, id);

		assert_same_key(ka, again);
		vc_secret_free(again);
	}
	vc_native_close(b);
	vc_secret_free(ka);
	vc_secret_free(kb);
}

static void test_wrong_password(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN];
	struct vc_error err = { 0 };
	struct vc_secret *empty = NULL;
	uint8_t zero = 0;

	backup_ok(p, "the right password", &fast, env);
	vc_native_close(p);

	assert_int_equal(restore(f->dir2, env, sizeof env, "the wrong password", 0, &err),
			 -EKEYREJECTED);
	assert_int_equal(err.code, -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "wrong password"));
	/* Nothing was created for a wrong password. */
	assert_int_equal(access(f->dir2, F_OK), -1);
	assert_int_equal(restore(f->dir2, env, sizeof env, "the right passwor", 0, NULL),
			 -EKEYREJECTED);
	assert_int_equal(vc_secret_from_bytes(&zero, 1, &empty, NULL), 0);
	assert_int_equal(vc_native_restore(f->dir2, NULL, env, sizeof env, empty, 0, NULL),
			 -EKEYREJECTED);
	vc_secret_free(empty);
	restore_ok(f->dir2, env, "the right password", 0);
}

static void expect_bad_envelope(const char *dir, const uint8_t *env, size_t len,
				const char *what, size_t at)
{
	struct vc_error err = { 0 };
	int r = restore(dir, env, len, "envelope password", 0, &err);

	if (r != -EBADMSG)
		fail_msg("%s %zu: expected -EBADMSG, got %d (%s)", what, at, r, err.msg);
	assert_int_equal(err.code, -EBADMSG);
	assert_non_null(strstr(err.msg, "backup"));
}

static void test_corrupted_envelope(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN], bad[VC_NATIVE_BACKUP_LEN + 1];

	backup_ok(p, "envelope password", &fast, env);
	vc_native_close(p);

	/* Every byte, one bit and a whole byte. */
	for (size_t i = 0; i < sizeof env; i++) {
		memcpy(bad, env, sizeof env);
		bad[i] ^= 0x01;
		expect_bad_envelope(f->dir2, bad, sizeof env, "bit flip at", i);
		bad[i] = (uint8_t)~env[i];
		expect_bad_envelope(f->dir2, bad, sizeof env, "byte inverted at", i);
	}
	/* Truncated at every length, and one byte too many. */
	for (size_t n = 0; n < sizeof env; n++)
		expect_bad_envelope(f->dir2, env, n, "truncated to", n);
	memcpy(bad, env, sizeof env);
	bad[sizeof env] = 0;
	expect_bad_envelope(f->dir2, bad, sizeof env + 1, "extended to", sizeof env + 1);
	assert_int_equal(access(f->dir2, F_OK), -1);
	restore_ok(f->dir2, env, "envelope password", 0);
}

/* Alterations made by someone who recomputes the plain checksum. */
static void test_altered_envelope(void **state)
{
	static const size_t fields[] = {
		10,       /* KDF id */
		13,       /* reserved */
		24,       /* export time (associated data) */
		92,       /* ciphertext: provider id */
		120,      /* ciphertext: master key */
		150,      /* tag */
	};
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN], bad[VC_NATIVE_BACKUP_LEN];

	backup_ok(p, "envelope password", &fast, env);
	vc_native_close(p);
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
		memcpy(bad, env, sizeof env);
		bad[fields[i]] ^= 0x01;
		assert_int_equal(EVP_Digest(bad, 164, bad + 164, NULL, EVP_sha256(), NULL), 1);
		expect_bad_envelope(f->dir2, bad, sizeof bad, "altered at", fields[i]);
	}
	/* Impossible scrypt costs are refused before any work. */
	memcpy(bad, env, sizeof env);
	bad[12] = 40;
	assert_int_equal(EVP_Digest(bad, 164, bad + 164, NULL, EVP_sha256(), NULL), 1);
	expect_bad_envelope(f->dir2, bad, sizeof bad, "log2 N 40", 12);
	/* Unknown version: not supported, said so. */
	memcpy(bad, env, sizeof env);
	bad[8] = 2;
	assert_int_equal(EVP_Digest(bad, 164, bad + 164, NULL, EVP_sha256(), NULL), 1);
	assert_int_equal(restore(f->dir2, bad, sizeof bad, "envelope password", 0, NULL),
			 -ENOTSUP);
}

/* ---- State file protection ------------------------------------------- */

static void test_state_mode_refused(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	char *path = join(f->dir, VC_NATIVE_STATE_FILE);
	char *key = join(f->dir, VC_NATIVE_SEALING_KEY_FILE);
	char *link = join(f->dir2, VC_NATIVE_STATE_FILE);

	vc_native_close(p);
	assert_int_equal(chmod(path, 0644), 0);
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -EPERM, "chmod 600");
	assert_int_equal(chmod(path, 0640), 0);
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -EPERM, "group or others");
	assert_int_equal(chmod(path, 0600), 0);

	assert_int_equal(chmod(key, 0644), 0);
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -EPERM, "chmod 600");
	assert_int_equal(chmod(key, 0600), 0);

	assert_int_equal(chmod(f->dir, 0777), 0);
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -EPERM, "chmod 700");
	assert_int_equal(chmod(f->dir, 0700), 0);

	/* A symbolic link in place of the state file is refused. */
	assert_int_equal(mkdir(f->dir2, 0700), 0);
	assert_int_equal(symlink(path, link), 0);
	expect_open_fails(f->dir2, VC_NATIVE_ALLOW_NO_BACKUP, -EPERM, "symbolic link");

	p = open_ok(f->dir, VC_NATIVE_ALLOW_NO_BACKUP);
	vc_native_close(p);
	free(path);
	free(key);
	free(link);
}

static void test_state_tampered(void **state)
{
	static const struct {
		size_t off;
		int code;
	} cases[] = {
		{ 0, -EBADMSG },   /* magic */
		{ 8, -ENOTSUP },   /* version */
		{ 10, -EBADMSG },  /* flags: backup bit (MAC) */
		{ 11, -EBADMSG },  /* flags: unknown bit */
		{ 12, -ENOTSUP },  /* sealer type */
		{ 16, -EBADMSG },  /* provider id (sealing associated data) */
		{ 31, -EBADMSG },
		{ 32, -EBADMSG },  /* creation time (MAC) */
		{ 40, -EBADMSG },  /* backup time (MAC) */
		{ 48, -EBADMSG },  /* sealed length */
		{ 52, -EBADMSG },  /* reserved */
		{ 56, -EBADMSG },  /* sealed blob: nonce */
		{ 70, -EBADMSG },  /* sealed blob: ciphertext */
		{ 110, -EBADMSG }, /* sealed blob: tag */
		{ 116, -EBADMSG }, /* MAC */
		{ 147, -EBADMSG }, /* MAC, last byte */
	};
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	char *path = join(f->dir, VC_NATIVE_STATE_FILE);
	size_t len;
	uint8_t *orig;

	vc_native_close(p);
	orig = read_all(path, &len);
	assert_int_equal(len, 56 + 60 + 32);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct vc_error err = { 0 };
		struct vc_native *q = NULL;
		int r;

		flip_byte(path, cases[i].off);
		r = vc_native_open(f->dir, NULL, VC_NATIVE_ALLOW_NO_BACKUP, &q, &err);
		if (r != cases[i].code)
			fail_msg("state byte %zu altered: expected %d, got %d (%s)",
				 cases[i].off, cases[i].code, r, err.msg);
		assert_null(q);
		write_all(path, orig, len);
	}
	/* Truncated and extended. */
	for (size_t n = 0; n < len; n += 7) {
		struct vc_native *q = NULL;

		write_all(path, orig, n);
		assert_int_equal(vc_native_open(f->dir, NULL, VC_NATIVE_ALLOW_NO_BACKUP, &q, NULL),
				 -EBADMSG);
	}
	{
		uint8_t *longer = calloc(1, len + 1);
		struct vc_native *q = NULL;

		memcpy(longer, orig, len);
		write_all(path, longer, len + 1);
		assert_int_equal(vc_native_open(f->dir, NULL, VC_NATIVE_ALLOW_NO_BACKUP, &q, NULL),
				 -EBADMSG);
		free(longer);
	}
	write_all(path, orig, len);
	p = open_ok(f->dir, VC_NATIVE_ALLOW_NO_BACKUP);
	vc_native_close(p);
	free(orig);
	free(path);
}

static void test_sealing_key_missing_or_wrong(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	char *key = join(f->dir, VC_NATIVE_SEALING_KEY_FILE);
	uint8_t env[VC_NATIVE_BACKUP_LEN], other[32];
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = NULL, *k2;
	int fd;

	backup_ok(p, "sealing test password", &fast, env);
	assert_int_equal(vc_native_create_key(p, id, &k, NULL), 0);
	vc_native_close(p);

	/* Another sealing key (another host): does not unseal. */
	assert_int_equal(unlink(key), 0);
	assert_int_equal(vc_random_bytes(other, sizeof other, NULL), 0);
	fd = open(key, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, other, sizeof other), (ssize_t)sizeof other);
	close(fd);
	expect_open_fails(f->dir, 0, -EBADMSG, "does not authenticate");

	/* Missing: a clear error, and CREATE does not paper over it. */
	assert_int_equal(unlink(key), 0);
	expect_open_fails(f->dir, 0, -ENOKEY, "restore the provider from its backup");
	expect_open_fails(f->dir, VC_NATIVE_CREATE, -ENOKEY, "sealing key is missing");
	assert_int_equal(access(key, F_OK), -1);

	/* Recovery: restore the same provider in place. */
	restore_ok(f->dir, env, "sealing test password", 0);
	p = open_ok(f->dir, 0);
	k2 = get_ok(p, id);
	assert_same_key(k, k2);
	vc_secret_free(k);
	vc_secret_free(k2);
	vc_native_close(p);
	free(key);
}

/* A sealer of the tests' own: the provider works through the interface. */
struct xor_sealer {
	struct vc_sealer base;
	int seals, unseals;
};

static int xs_seal(struct vc_sealer *s, const void *aad, size_t aadlen,
		   const struct vc_secret *secret, uint8_t *out, size_t outcap,
		   size_t *outlen, struct vc_error *err)
{
	struct xor_sealer *x = (struct xor_sealer *)s;
	uint8_t h[32];

	(void)err;
	assert_true(outcap >= 32 + vc_secret_len(secret));
	assert_int_equal(EVP_Digest(aad, aadlen, h, NULL, EVP_sha256(), NULL), 1);
	memcpy(out, h, 32);
	for (size_t i = 0; i < vc_secret_len(secret); i++)
		out[32 + i] = vc_secret_data(secret)[i] ^ 0x5a;
	*outlen = 32 + vc_secret_len(secret);
	x->seals++;
	return 0;
}

static int xs_unseal(struct vc_sealer *s, const void *aad, size_t aadlen,
		     const uint8_t *blob, size_t bloblen, struct vc_secret **out,
		     struct vc_error *err)
{
	struct xor_sealer *x = (struct xor_sealer *)s;
	uint8_t h[32];
	int r;

	assert_int_equal(EVP_Digest(aad, aadlen, h, NULL, EVP_sha256(), NULL), 1);
	if (bloblen <= 32 || memcmp(h, blob, 32) != 0)
		return vc_error_set(err, -EBADMSG, "xor sealer: wrong binding");
	if ((r = vc_secret_new(bloblen - 32, out, err)) < 0)
		return r;
	for (size_t i = 0; i < bloblen - 32; i++)
		vc_secret_data(*out)[i] = blob[32 + i] ^ 0x5a;
	x->unseals++;
	return 0;
}

static void xs_free(struct vc_sealer *s)
{
	(void)s;
}

static void test_custom_sealer(void **state)
{
	struct fixture *f = *state;
	struct xor_sealer xs = { { "test-xor", VC_SEALER_TPM2, xs_seal, xs_unseal, xs_free }, 0, 0 };
	struct vc_native *p = NULL;
	struct vc_native_info info;
	char id[VC_UUID_STR_LEN];
	struct vc_secret *k = NULL, *k2;
	char *key = join(f->dir, VC_NATIVE_SEALING_KEY_FILE);

	assert_int_equal(vc_native_open(f->dir, &xs.base,
					VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP, &p, NULL), 0);
	assert_int_equal(xs.seals, 1);
	assert_int_equal(vc_native_create_key(p, id, &k, NULL), 0);
	vc_native_info(p, &info);
	assert_string_equal(info.sealer, "test-xor");
	vc_native_close(p);
	/* No host sealing key was made for a provider that does not use it. */
	assert_int_equal(access(key, F_OK), -1);

	assert_int_equal(vc_native_open(f->dir, &xs.base, VC_NATIVE_ALLOW_NO_BACKUP, &p, NULL), 0);
	assert_int_equal(xs.unseals, 1);
	k2 = get_ok(p, id);
	assert_same_key(k, k2);
	vc_secret_free(k2);
	vc_native_close(p);

	/* The default sealer is not the one recorded: refused, by name. */
	expect_open_fails(f->dir, VC_NATIVE_ALLOW_NO_BACKUP, -ENOTSUP, "tpm2");
	vc_secret_free(k);
	free(key);
}

/* ---- Second reading of the formats (docs/KEYS.md) ----------- */

static void hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
		 const void *info, size_t infolen, uint8_t *out, size_t outlen)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);

	assert_non_null(c);
	assert_int_equal(EVP_PKEY_derive_init(c), 1);
	assert_int_equal(EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_hkdf_salt(c, salt, (int)saltlen), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_hkdf_key(c, ikm, (int)ikmlen), 1);
	assert_int_equal(EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)infolen), 1);
	assert_int_equal(EVP_PKEY_derive(c, out, &outlen), 1);
	EVP_PKEY_CTX_free(c);
}

static int gcm_open(const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
		    size_t aadlen, const uint8_t *ct, size_t len, const uint8_t *tag,
		    uint8_t *pt)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, ok;

	ok = EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) == 1 &&
	     EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen) == 1 &&
	     EVP_DecryptUpdate(c, pt, &n, ct, (int)len) == 1 &&
	     EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(uintptr_t)tag) == 1 &&
	     EVP_DecryptFinal_ex(c, pt + n, &n) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Decrypt an envelope as the documentation describes it. */
static void open_envelope_independently(const uint8_t *env, const char *pw,
					uint8_t id[16], uint64_t *created, uint8_t master[32])
{
	uint8_t dk[48], pt[56], sum[32];

	assert_memory_equal(env, "VCNKPBAK", 8);
	assert_int_equal(env[8] | env[9] << 8, 1);
	assert_int_equal(env[10] | env[11] << 8, 1);
	assert_int_equal(EVP_Digest(env, 164, sum, NULL, EVP_sha256(), NULL), 1);
	assert_memory_equal(sum, env + 164, 32);
	assert_int_equal(EVP_PBE_scrypt(pw, strlen(pw), env + 32, 32, (uint64_t)1 << env[12],
					le32(env + 16), le32(env + 20), 0, dk, sizeof dk), 1);
	assert_memory_equal(dk + 32, env + 76, 16);
	assert_true(gcm_open(dk, env + 64, env, 92, env + 92, 56, env + 148, pt));
	memcpy(id, pt, 16);
	*created = le64(pt + 16);
	memcpy(master, pt + 24, 32);
}

static void test_formats_independent(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN], id[16], master[32], kek[32], sk[32], mac[32];
	uint8_t aad[23 + 16], unsealed[32];
	char ids[3][VC_UUID_STR_LEN], info[21 + 36];
	struct vc_secret *k[3];
	struct vc_native_info ni;
	char idstr[VC_UUID_STR_LEN];
	uint64_t created;
	char *path;
	uint8_t *st;
	size_t len, sklen;
	unsigned int maclen = 32;

	backup_ok(p, "independent reader", &fast, env);
	for (int i = 0; i < 3; i++)
		assert_int_equal(vc_native_create_key(p, ids[i], &k[i], NULL), 0);
	vc_native_info(p, &ni);
	vc_native_close(p);

	/* Envelope: provider id, creation time and master key. */
	open_envelope_independently(env, "independent reader", id, &created, master);
	{
		struct vc_uuid u;

		memcpy(u.b, id, 16);
		vc_uuid_format(&u, idstr);
	}
	assert_string_equal(idstr, ni.provider_id);
	assert_int_equal(created, ni.created);
	assert_int_equal(le64(env + 24), ni.backup_time);

	/* KEK = HKDF-SHA-256(master, salt = provider id, info = label || key id). */
	for (int i = 0; i < 3; i++) {
		memcpy(info, "vmcrypt-native-kek/1:", 21);
		memcpy(info + 21, ids[i], 36);
		hkdf(master, 32, id, 16, info, sizeof info, kek, sizeof kek);
		assert_memory_equal(kek, vc_secret_data(k[i]), 32);
		vc_secret_free(k[i]);
	}

	/* State file: header, sealed blob under sealing.key, MAC. */
	path = join(f->dir, VC_NATIVE_STATE_FILE);
	st = read_all(path, &len);
	free(path);
	assert_int_equal(len, 148);
	assert_memory_equal(st, "VCNKPROV", 8);
	assert_int_equal(st[8] | st[9] << 8, 1);
	assert_int_equal(st[10] | st[11] << 8, 1); /* backup taken */
	assert_int_equal(le32(st + 12), 1);        /* host-key sealer */
	assert_memory_equal(st + 16, id, 16);
	assert_int_equal(le64(st + 32), created);
	assert_int_equal(le64(st + 40), ni.backup_time);
	assert_int_equal(le32(st + 48), 60);
	assert_int_equal(le32(st + 52), 0);
	path = join(f->dir, VC_NATIVE_SEALING_KEY_FILE);
	{
		uint8_t *skb = read_all(path, &sklen);

		assert_int_equal(sklen, 32);
		memcpy(sk, skb, 32);
		free(skb);
	}
	free(path);
	memcpy(aad, "vmcrypt-native-master/1", 23);
	memcpy(aad + 23, id, 16);
	assert_true(gcm_open(sk, st + 56, aad, sizeof aad, st + 68, 32, st + 100, unsealed));
	assert_memory_equal(unsealed, master, 32);
	hkdf(master, 32, id, 16, "vmcrypt-native-state-mac/1", 26, kek, sizeof kek);
	assert_non_null(HMAC(EVP_sha256(), kek, 32, st, 116, mac, &maclen));
	assert_memory_equal(mac, st + 116, 32);
	free(st);
}

/* No master key or KEK bytes (any 8-byte window) in any file of the
 * directory or in the envelope. */
static void assert_absent(const uint8_t *hay, size_t haylen, const uint8_t *key,
			  const char *where, const char *what)
{
	for (size_t i = 0; i + 8 <= 32; i++)
		if (memmem(hay, haylen, key + i, 8))
			fail_msg("%s bytes %zu..%zu found in %s", what, i, i + 8, where);
}

static void test_no_key_bytes_at_rest(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE);
	uint8_t env[VC_NATIVE_BACKUP_LEN], id[16], master[32];
	char ids[4][VC_UUID_STR_LEN];
	struct vc_secret *k[4];
	struct dirent *de;
	uint64_t created;
	int files = 0;
	DIR *d;

	backup_ok(p, "scan password", &fast, env);
	for (int i = 0; i < 4; i++)
		assert_int_equal(vc_native_create_key(p, ids[i], &k[i], NULL), 0);
	backup_ok(p, "scan password", &fast, env); /* rewrites the state again */
	vc_native_close(p);
	open_envelope_independently(env, "scan password", id, &created, master);

	/* The decrypted envelope must hold the provider's real master key:
	 * the scan below is only meaningful if it does. */
	{
		char info[21 + 36];
		uint8_t kek[32];

		memcpy(info, "vmcrypt-native-kek/1:", 21);
		memcpy(info + 21, ids[0], 36);
		hkdf(master, 32, id, 16, info, sizeof info, kek, sizeof kek);
		assert_memory_equal(kek, vc_secret_data(k[0]), 32);
	}

	assert_absent(env, sizeof env, master, "the backup envelope", "master key");
	for (int i = 0; i < 4; i++)
		assert_absent(env, sizeof env, vc_secret_data(k[i]), "the backup envelope", "KEK");
	d = opendir(f->dir);
	assert_non_null(d);
	while ((de = readdir(d))) {
		char *path;
		uint8_t *buf;
		size_t len;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		path = join(f->dir, de->d_name);
		buf = read_all(path, &len);
		assert_absent(buf, len, master, path, "master key");
		for (int i = 0; i < 4; i++)
			assert_absent(buf, len, vc_secret_data(k[i]), path, "KEK");
		free(buf);
		free(path);
		files++;
	}
	closedir(d);
	assert_int_equal(files, 2);
	for (int i = 0; i < 4; i++)
		vc_secret_free(k[i]);
}

/* ---- Known answer (docs/KEYS.md, "Worked example") ------------
 * The envelope was built by an independent Python implementation of the
 * documented format (hashlib.scrypt, cryptography's AESGCM): master key
 * 00 01 .. 1f, provider 6b2f0c1e-8d4a-4f3b-9a1c-2d3e4f506172, created
 * 1700000000, exported 1700000100, N=2^4 r=8 p=1. The KEKs and the state
 * MAC key were computed with `openssl kdf ... HKDF` and cross-checked with
 * a hand-written HKDF over Python's hmac. */
static const char kat_envelope[] =
	"56434e4b5042414b0100010004000000080000000100000064f1536500000000"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacb08b7bfca385281335da47aa3cc02e7b7020983db"
	"1c077aa7b7fd0504b9174162ff43754374514501f6e5022bbad99f67353f25bb"
	"6b97d6c768c275d573257570c24376cd4a5c838ec40f91fe7b9902cc74e5b520"
	"801cf53ff6653c1b1534993541fc8c1ebafb69e2dc35c01deaf25ec9cb5eba72"
	"20ff8386";
static const char kat_password[] = "known answer password";
static const struct {
	const char *key_id;
	const char *kek;
} kat_keks[] = {
	{ "0f8fad5b-d9cb-469f-a165-70867728950e",
	  "d9b3cf422c61babab774a0bec4918c5730aff83b5283c84300fcab794a7623b1" },
	{ "123e4567-e89b-42d3-a456-426614174000",
	  "75c3f60ae3ef22a8c8e602ad87e3ffa6e33ae4352702fa7897174a12e98edfbd" },
};
static const char kat_state_mac_key[] =
	"50a4ca0df91613f33ab4b6dc0d9ed7ac97d6f7a7df85b26b02a45ed80ffd3e94";

static void unhex(const char *hex, uint8_t *out, size_t len)
{
	assert_int_equal(strlen(hex), 2 * len);
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void test_known_answer(void **state)
{
	struct fixture *f = *state;
	uint8_t env[VC_NATIVE_BACKUP_LEN], want[32], mackey[32], mac[32];
	struct vc_native_info info;
	struct vc_native *p;
	unsigned int maclen = 32;
	char *path;
	uint8_t *st;
	size_t len;

	unhex(kat_envelope, env, sizeof env);
	restore_ok(f->dir, env, kat_password, 0);
	p = open_ok(f->dir, 0);
	vc_native_info(p, &info);
	assert_string_equal(info.provider_id, "6b2f0c1e-8d4a-4f3b-9a1c-2d3e4f506172");
	assert_int_equal(info.created, 1700000000);
	assert_true(info.backup_taken);
	assert_int_equal(info.backup_time, 1700000100);
	for (size_t i = 0; i < sizeof kat_keks / sizeof kat_keks[0]; i++) {
		struct vc_secret *k = get_ok(p, kat_keks[i].key_id);

		unhex(kat_keks[i].kek, want, sizeof want);
		assert_memory_equal(vc_secret_data(k), want, sizeof want);
		vc_secret_free(k);
	}
	vc_native_close(p);

	/* The state file written by the restore carries the documented MAC. */
	path = join(f->dir, VC_NATIVE_STATE_FILE);
	st = read_all(path, &len);
	free(path);
	assert_int_equal(len, 148);
	unhex(kat_state_mac_key, mackey, sizeof mackey);
	assert_non_null(HMAC(EVP_sha256(), mackey, 32, st, 116, mac, &maclen));
	assert_memory_equal(mac, st + 116, 32);
	free(st);
}

/* ---- Threads ----------------------------------------------------------- */

struct worker {
	struct vc_native *p;
	char (*ids)[VC_UUID_STR_LEN];
	struct vc_secret **expect;
	int nids;
	int mismatches;
	int errors;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int round = 0; round < 200; round++) {
		int i = round % w->nids;
		struct vc_secret *k = NULL;

		if (vc_native_get_key(w->p, w->ids[i], &k, NULL) != 0) {
			w->errors++;
			continue;
		}
		if (memcmp(vc_secret_data(k), vc_secret_data(w->expect[i]), 32) != 0)
			w->mismatches++;
		vc_secret_free(k);
	}
	return NULL;
}

static void test_concurrent_get_key(void **state)
{
	struct fixture *f = *state;
	struct vc_native *p = open_ok(f->dir, VC_NATIVE_CREATE | VC_NATIVE_ALLOW_NO_BACKUP);
	char ids[4][VC_UUID_STR_LEN];
	struct vc_secret *expect[4];
	struct worker w[8];
	pthread_t t[8];
	uint8_t env[VC_NATIVE_BACKUP_LEN];

	for (int i = 0; i < 4; i++)
		assert_int_equal(vc_native_create_key(p, ids[i], &expect[i], NULL), 0);
	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ p, ids, expect, 4, 0, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	/* A backup (state rewrite) while the workers derive. */
	backup_ok(p, "concurrent password", &fast, env);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].errors, 0);
		assert_int_equal(w[i].mismatches, 0);
	}
	for (int i = 0; i < 4; i++)
		vc_secret_free(expect[i]);
	vc_native_close(p);
}

/* ---- Passwords from an fd ---------------------------------------------- */

static int read_pw(const void *data, size_t len, struct vc_secret **out)
{
	int fds[2], r;

	assert_int_equal(pipe(fds), 0);
	assert_int_equal(write(fds[1], data, len), (ssize_t)len);
	close(fds[1]);
	r = vc_native_password_read_fd(fds[0], "test pipe", out, NULL);
	close(fds[0]);
	return r;
}

static void test_password_fd(void **state)
{
	struct vc_secret *s = NULL;
	char *big = malloc(1100);

	(void)state;
	assert_int_equal(read_pw("correct horse\n", 14, &s), 0);
	assert_int_equal(vc_secret_len(s), 13);
	assert_memory_equal(vc_secret_data(s), "correct horse", 13);
	vc_secret_free(s);
	assert_int_equal(read_pw("correct horse\r\n", 15, &s), 0);
	assert_int_equal(vc_secret_len(s), 13);
	vc_secret_free(s);
	assert_int_equal(read_pw("no newline", 10, &s), 0);
	assert_int_equal(vc_secret_len(s), 10);
	vc_secret_free(s);
	assert_int_equal(read_pw("two\n\n", 5, &s), 0);
	assert_int_equal(vc_secret_len(s), 4); /* only one newline dropped */
	vc_secret_free(s);
	assert_int_equal(read_pw("", 0, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(read_pw("\n", 1, &s), -EINVAL);
	memset(big, 'x', 1100);
	big[1024] = '\r';
	big[1025] = '\n';
	assert_int_equal(read_pw(big, 1026, &s), 0);
	assert_int_equal(vc_secret_len(s), 1024);
	vc_secret_free(s);
	assert_int_equal(read_pw(big, 1025, &s), -EINVAL); /* 1024 + '\r' */
	memset(big, 'x', 1100);
	assert_int_equal(read_pw(big, 1025, &s), -EINVAL);
	assert_int_equal(read_pw(big, 1100, &s), -EINVAL);
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stable_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_and_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_differ_per_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_differ_per_provider, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_key_without_kek, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_key_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gate_until_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_without_backup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_wipe_restore, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_default_scrypt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restore_over_same_and_other, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_password, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupted_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_altered_envelope, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_mode_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_state_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sealing_key_missing_or_wrong, setup, teardown),
		cmocka_unit_test_setup_teardown(test_custom_sealer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_formats_independent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_key_bytes_at_rest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_known_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_get_key, setup, teardown),
		cmocka_unit_test(test_password_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
