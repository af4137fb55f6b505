/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_secmem: locked secrets, constant-time compare, key input. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vc_encode.h"
#include "vc_secmem.h"

#define KEYLEN 32

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* A fixed key whose raw form contains a newline, NULs and non-hex bytes,
 * so the raw path cannot be mistaken for the hex one. */
static void test_key(uint8_t key[KEYLEN])
{
	for (int i = 0; i < KEYLEN; i++)
		key[i] = (uint8_t)(0x0a + 37 * i);
	key[0] = '\n';
	key[1] = 0;
	key[KEYLEN - 1] = '\n';
}

static void test_secret_new_zeroed(void **state)
{
	static const size_t lens[] = { 1, 32, 64, 4095, 4096, 4097, 1u << 20 };

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(lens); i++) {
		struct vc_secret *s = NULL;
		unsigned char *p;

		assert_int_equal(vc_secret_new(lens[i], &s, NULL), 0);
		assert_non_null(s);
		assert_int_equal(vc_secret_len(s), lens[i]);
		p = vc_secret_data(s);
		assert_non_null(p);
		for (size_t j = 0; j < lens[i]; j++)
			if (p[j] != 0)
				fail_msg("byte %zu of a %zu-byte secret is not zero", j, lens[i]);
		/* The whole length is writable. */
		memset(p, 0x5a, lens[i]);
		assert_int_equal(p[lens[i] - 1], 0x5a);
		vc_secret_free(s);
	}
}

static void test_secret_length_limits(void **state)
{
	static const size_t bad[] = { 0, (1u << 20) + 1, SIZE_MAX, SIZE_MAX / 2 };
	struct vc_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
		struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;

		vc_error_clear(&err);
		assert_int_equal(vc_secret_new(bad[i], &s, &err), -EINVAL);
		assert_null(s);
		assert_int_equal(err.code, -EINVAL);
		assert_true(strlen(err.msg) > 0);

		s = (struct vc_secret *)(uintptr_t)1;
		assert_int_equal(vc_secret_from_bytes("x", bad[i], &s, NULL), -EINVAL);
		assert_null(s);
	}
	vc_secret_free(NULL);
}

static void test_secret_from_bytes(void **state)
{
	uint8_t src[100];
	struct vc_secret *s;

	(void)state;
	for (size_t i = 0; i < sizeof src; i++)
		src[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(vc_secret_from_bytes(src, sizeof src, &s, NULL), 0);
	assert_int_equal(vc_secret_len(s), sizeof src);
	/* A copy, not an alias. */
	assert_ptr_not_equal(vc_secret_data(s), src);
	assert_memory_equal(vc_secret_data(s), src, sizeof src);
	src[0] ^= 0xff;
	assert_int_equal(vc_secret_data(s)[0], 1);
	vc_secret_free(s);
}

/* Looks up the VmFlags of the mapping holding addr in /proc/self/smaps. */
static bool vmflags_of(const void *addr, char *flags, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool inside = false;

	if (!f)
		return false;
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
			continue;
		}
		if (inside && strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(flags, cap, "%s", line + 8);
			fclose(f);
			return true;
		}
	}
	fclose(f);
	return false;
}

static bool has_flag(const char *flags, const char *flag)
{
	char want[8];

	snprintf(want, sizeof want, " %s ", flag);
	return strstr(flags, want) != NULL;
}

/* The kernel's view of the pages: locked and left out of core dumps. */
static void test_secret_pages_locked_nodump(void **state)
{
	struct vc_secret *s;
	char flags[512];
	bool found;

	(void)state;
	if (access("/proc/self/smaps", R_OK) != 0)
		skip();
	assert_int_equal(vc_secret_new(64, &s, NULL), 0);
	found = vmflags_of(vc_secret_data(s), flags, sizeof flags);
	vc_secret_free(s);
	assert_true(found);
	if (!has_flag(flags, "dd"))
		fail_msg("secret pages not excluded from core dumps: VmFlags:%s", flags);
	/* AddressSanitizer turns mlock() into a no-op that succeeds. */
	if (!SANITIZED && !has_flag(flags, "lo"))
		fail_msg("secret pages not locked: VmFlags:%s", flags);
}

/* Daemons read their keys and then fork into the background: a forked
 * child keeps the secret, still out of core dumps, and locks it again
 * with vc_secmem_harden_process() (locks are not inherited by fork). */
static void test_secret_survives_fork_and_relocks(void **state)
{
	struct vc_secret *s;
	unsigned char *p;
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(vc_secret_new(64, &s, NULL), 0);
	p = vc_secret_data(s);
	memset(p, 0xa7, 64);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vc_error err = { 0 };
		char flags[512];

		for (int i = 0; i < 64; i++)
			if (p[i] != 0xa7)
				_exit(1);
		if (vc_secmem_harden_process(&err) < 0)
			_exit(2);
		if (access("/proc/self/smaps", R_OK) == 0) {
			if (!vmflags_of(p, flags, sizeof flags) || !has_flag(flags, "dd"))
				_exit(3);
			if (!SANITIZED && !err.msg[0] && !has_flag(flags, "lo"))
				_exit(4);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(p[0], 0xa7);
	assert_int_equal(p[63], 0xa7);
	vc_secret_free(s);
}

static void test_wipe(void **state)
{
	uint8_t buf[40];

	(void)state;
	memset(buf, 0xff, sizeof buf);
	vc_wipe(buf + 4, 32);
	assert_int_equal(buf[3], 0xff);
	for (int i = 4; i < 36; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(buf[36], 0xff);
	vc_wipe(buf, 0);
	assert_int_equal(buf[0], 0xff);
	vc_wipe(NULL, 10);
}

static void test_ct_equal(void **state)
{
	uint8_t a[64], b[64];

	(void)state;
	for (int i = 0; i < 64; i++)
		a[i] = b[i] = (uint8_t)(i * 3);
	assert_true(vc_ct_equal(a, b, sizeof a));
	assert_true(vc_ct_equal(a, b, 0));
	assert_true(vc_ct_equal("x", "y", 0));
	/* Every single-bit difference, first byte to last, is seen. */
	for (size_t i = 0; i < sizeof a; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1u << bit);
			if (vc_ct_equal(a, b, sizeof a))
				fail_msg("difference at byte %zu bit %d not seen", i, bit);
			b[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Bytes past len do not count. */
	b[63] ^= 1;
	assert_true(vc_ct_equal(a, b, 63));
	assert_false(vc_ct_equal(a, b, 64));
}

/* A pipe already holding len bytes, write end closed. */
static int pipe_with(const void *data, size_t len)
{
	int fds[2];

	assert_int_equal(pipe(fds), 0);
	assert_true(len <= 65536);
	if (len)
		assert_int_equal(write(fds[1], data, len), (ssize_t)len);
	close(fds[1]);
	return fds[0];
}

static int read_pipe(const void *data, size_t len, struct vc_secret **out,
		     struct vc_error *err)
{
	int fd = pipe_with(data, len);
	int r = vc_secret_read_fd(fd, KEYLEN, "--kek-fd 3", out, err);

	close(fd);
	return r;
}

static void test_read_fd_raw(void **state)
{
	uint8_t key[KEYLEN];
	struct vc_secret *s = NULL;

	(void)state;
	test_key(key);
	assert_int_equal(read_pipe(key, KEYLEN, &s, NULL), 0);
	assert_non_null(s);
	assert_int_equal(vc_secret_len(s), KEYLEN);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);
}

static void test_read_fd_hex(void **state)
{
	uint8_t key[KEYLEN];
	char hex[2 * KEYLEN + 2];
	struct vc_secret *s = NULL;

	(void)state;
	test_key(key);
	vc_hex_encode(key, KEYLEN, hex);

	assert_int_equal(read_pipe(hex, 2 * KEYLEN, &s, NULL), 0);
	assert_int_equal(vc_secret_len(s), KEYLEN);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);

	/* As written by `echo`: one trailing newline. */
	hex[2 * KEYLEN] = '\n';
	assert_int_equal(read_pipe(hex, 2 * KEYLEN + 1, &s, NULL), 0);
	assert_int_equal(vc_secret_len(s), KEYLEN);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);

	/* Upper case too. */
	for (int i = 0; i < 2 * KEYLEN; i++)
		if (hex[i] >= 'a' && hex[i] <= 'f')
			hex[i] = (char)(hex[i] - 'a' + 'A');
	assert_int_equal(read_pipe(hex, 2 * KEYLEN + 1, &s, NULL), 0);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);
}

/* A regular-file-like fd (memfd) read from its current offset. */
static void test_read_fd_memfd(void **state)
{
	uint8_t key[KEYLEN];
	char hex[2 * KEYLEN + 2];
	struct vc_secret *s = NULL;
	int fd;

	(void)state;
	test_key(key);
	vc_hex_encode(key, KEYLEN, hex);
	hex[2 * KEYLEN] = '\n';
	fd = memfd_create("vc-test-key", MFD_CLOEXEC);
	if (fd < 0)
		skip();
	assert_int_equal(write(fd, hex, 2 * KEYLEN + 1), 2 * KEYLEN + 1);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(vc_secret_read_fd(fd, KEYLEN, "memfd", &s, NULL), 0);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);
	/* The fd is left open. */
	assert_int_equal(fcntl(fd, F_GETFD) >= 0, 1);
	close(fd);
}

struct dribble {
	int fd;
	const uint8_t *data;
	size_t len;
};

static void *dribble_writer(void *arg)
{
	struct dribble *d = arg;

	for (size_t i = 0; i < d->len; i++)
		if (write(d->fd, d->data + i, 1) != 1)
			break;
	close(d->fd);
	return NULL;
}

/* Input that arrives a byte at a time is read to EOF, not just once. */
static void test_read_fd_short_reads(void **state)
{
	uint8_t key[KEYLEN];
	char hex[2 * KEYLEN + 2];
	struct vc_secret *s = NULL;
	struct dribble d;
	pthread_t t;
	int fds[2];

	(void)state;
	test_key(key);
	vc_hex_encode(key, KEYLEN, hex);
	hex[2 * KEYLEN] = '\n';
	assert_int_equal(pipe(fds), 0);
	d = (struct dribble){ .fd = fds[1], .data = (const uint8_t *)hex, .len = 2 * KEYLEN + 1 };
	assert_int_equal(pthread_create(&t, NULL, dribble_writer, &d), 0);
	assert_int_equal(vc_secret_read_fd(fds[0], KEYLEN, "pipe", &s, NULL), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	close(fds[0]);
	assert_memory_equal(vc_secret_data(s), key, KEYLEN);
	vc_secret_free(s);
}

/* A rejected key: -EINVAL, no secret, a message naming the source, and
 * none of the offered key material in the message. */
static void expect_rejected(const void *data, size_t len, const char *must_say)
{
	struct vc_error err = { 0 };
	struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;
	int r = read_pipe(data, len, &s, &err);

	if (r != -EINVAL)
		fail_msg("%zu-byte input: expected -EINVAL, got %d", len, r);
	assert_null(s);
	assert_int_equal(err.code, -EINVAL);
	if (!strstr(err.msg, "--kek-fd 3"))
		fail_msg("message does not name the source: %s", err.msg);
	if (must_say && !strstr(err.msg, must_say))
		fail_msg("message lacks \"%s\": %s", must_say, err.msg);
	if (len >= 16 && memmem(err.msg, strlen(err.msg), data, 16))
		fail_msg("message repeats the key input: %s", err.msg);
}

static void test_read_fd_rejects(void **state)
{
	uint8_t key[KEYLEN];
	char hex[2 * KEYLEN + 3];
	static char big[5000];

	(void)state;
	test_key(key);
	vc_hex_encode(key, KEYLEN, hex);

	/* Too short or too long to be raw, and not the hex length. */
	expect_rejected(key, KEYLEN - 1, "31");
	expect_rejected("", 0, NULL);
	expect_rejected(hex, KEYLEN + 1, "33");
	/* 63 and 65 hex digits. */
	expect_rejected(hex, 2 * KEYLEN - 1, "63");
	hex[2 * KEYLEN] = 'a';
	expect_rejected(hex, 2 * KEYLEN + 1, NULL);
	/* Only one trailing newline is forgiven. */
	hex[2 * KEYLEN] = '\n';
	hex[2 * KEYLEN + 1] = '\n';
	expect_rejected(hex, 2 * KEYLEN + 2, NULL);
	/* Right length, not hex: first, middle and last digit. */
	for (int pos = 0; pos < 2 * KEYLEN; pos += 2 * KEYLEN - 1) {
		char bad[2 * KEYLEN + 1];

		vc_hex_encode(key, KEYLEN, bad);
		bad[pos] = 'g';
		expect_rejected(bad, 2 * KEYLEN, "hex");
		bad[pos] = ' ';
		expect_rejected(bad, 2 * KEYLEN, "hex");
	}
	vc_hex_encode(key, KEYLEN, hex);
	hex[31] = ':';
	expect_rejected(hex, 2 * KEYLEN, "hex");
	/* Far too long: refused without reading forever. */
	memset(big, 'a', sizeof big);
	expect_rejected(big, sizeof big, "too long");
}

static void test_read_fd_bad_fd(void **state)
{
	struct vc_error err = { 0 };
	struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;
	int fds[2];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	close(fds[1]);
	assert_int_equal(vc_secret_read_fd(fds[0], KEYLEN, "--kek-fd 9", &s, &err), -EBADF);
	assert_null(s);
	assert_non_null(strstr(err.msg, "--kek-fd 9"));
}

/* A private temporary directory per test. */
static int setup_dir(void **state)
{
	char *dir = strdup("/tmp/vc-test-secmem-XXXXXX");

	if (!dir || !mkdtemp(dir)) {
		free(dir);
		return -1;
	}
	*state = dir;
	return 0;
}

static int teardown_dir(void **state)
{
	char *dir = *state;
	char path[256];

	snprintf(path, sizeof path, "%s/key", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/sub", dir);
	rmdir(path);
	rmdir(dir);
	free(dir);
	return 0;
}

static void write_key_file(const char *path, mode_t mode)
{
	uint8_t key[KEYLEN];
	char hex[2 * KEYLEN + 2];
	int fd;

	test_key(key);
	vc_hex_encode(key, KEYLEN, hex);
	hex[2 * KEYLEN] = '\n';
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, hex, 2 * KEYLEN + 1), 2 * KEYLEN + 1);
	close(fd);
	/* chmod, not the open mode: the umask must not decide the test. */
	assert_int_equal(chmod(path, mode), 0);
}

static void test_read_file_modes(void **state)
{
	static const mode_t ok[] = { 0600, 0400, 0700 };
	static const mode_t bad[] = { 0644, 0640, 0604, 0660, 0606, 0601, 0610, 0666 };
	const char *dir = *state;
	uint8_t key[KEYLEN];
	char path[256];

	test_key(key);
	snprintf(path, sizeof path, "%s/key", dir);
	for (size_t i = 0; i < VC_ARRAY_SIZE(ok); i++) {
		struct vc_secret *s = NULL;

		write_key_file(path, ok[i]);
		assert_int_equal(vc_secret_read_file(path, KEYLEN, &s, NULL), 0);
		assert_memory_equal(vc_secret_data(s), key, KEYLEN);
		vc_secret_free(s);
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
		struct vc_error err = { 0 };
		struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;
		int r;

		write_key_file(path, bad[i]);
		r = vc_secret_read_file(path, KEYLEN, &s, &err);
		if (r != -EPERM)
			fail_msg("mode %03o: expected -EPERM, got %d", (unsigned)bad[i], r);
		assert_null(s);
		assert_int_equal(err.code, -EPERM);
		if (!strstr(err.msg, "chmod"))
			fail_msg("mode %03o: message does not say chmod: %s", (unsigned)bad[i], err.msg);
		assert_non_null(strstr(err.msg, path));
	}
}

static void test_read_file_not_owned(void **state)
{
	const char *dir = *state;
	struct vc_error err = { 0 };
	struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;
	char path[256];

	/* Only root can give a file away. */
	if (geteuid() != 0)
		skip();
	snprintf(path, sizeof path, "%s/key", dir);
	write_key_file(path, 0600);
	assert_int_equal(chown(path, 4242, (gid_t)-1), 0);
	assert_int_equal(vc_secret_read_file(path, KEYLEN, &s, &err), -EPERM);
	assert_null(s);
	assert_non_null(strstr(err.msg, path));
}

static void test_read_file_missing_and_dir(void **state)
{
	const char *dir = *state;
	struct vc_error err = { 0 };
	struct vc_secret *s = (struct vc_secret *)(uintptr_t)1;
	char path[256];

	snprintf(path, sizeof path, "%s/key", dir);
	unlink(path);
	assert_int_equal(vc_secret_read_file(path, KEYLEN, &s, &err), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(err.msg, path));

	snprintf(path, sizeof path, "%s/sub", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	vc_error_clear(&err);
	s = (struct vc_secret *)(uintptr_t)1;
	assert_true(vc_secret_read_file(path, KEYLEN, &s, &err) < 0);
	assert_null(s);
	assert_true(err.code < 0);
	assert_non_null(strstr(err.msg, path));
}

/* Run in a child: the hardening is process-wide and irreversible. */
static void test_harden_process(void **state)
{
	pid_t pid;
	int status;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct vc_error err = { 0 };
		struct rlimit rl;

		if (vc_secmem_harden_process(&err) != 0)
			_exit(1);
		if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0)
			_exit(2);
		if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
			_exit(3);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_secret_new_zeroed),
		cmocka_unit_test(test_secret_length_limits),
		cmocka_unit_test(test_secret_from_bytes),
		cmocka_unit_test(test_secret_pages_locked_nodump),
		cmocka_unit_test(test_secret_survives_fork_and_relocks),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_ct_equal),
		cmocka_unit_test(test_read_fd_raw),
		cmocka_unit_test(test_read_fd_hex),
		cmocka_unit_test(test_read_fd_memfd),
		cmocka_unit_test(test_read_fd_short_reads),
		cmocka_unit_test(test_read_fd_rejects),
		cmocka_unit_test(test_read_fd_bad_fd),
		cmocka_unit_test_setup_teardown(test_read_file_modes, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_file_not_owned, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_read_file_missing_and_dir, setup_dir, teardown_dir),
		cmocka_unit_test(test_harden_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
