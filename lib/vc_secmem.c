/* SPDX-License-Identifier: Apache-2.0 */
/* Locked secret buffers and process hardening. */
#define _GNU_SOURCE
#include "vc_secmem.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vc_encode.h"

#define SECRET_MAX (1u << 20)
#define KEY_INPUT_MAX 4096

struct vc_secret {
	unsigned char *data;
	size_t len;
	size_t maplen;
};

void vc_wipe(void *p, size_t len)
{
	if (p && len)
		OPENSSL_cleanse(p, len);
}

bool vc_ct_equal(const void *a, const void *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}

int vc_secret_new(size_t len, struct vc_secret **out, struct vc_error *err)
{
	long page = sysconf(_SC_PAGESIZE);
	struct vc_secret *s;

	*out = NULL;
	if (len == 0 || len > SECRET_MAX)
		return vc_error_set(err, -EINVAL, "secret length %zu out of range", len);
	s = calloc(1, sizeof *s);
	if (!s)
		return vc_error_set(err, -ENOMEM, "out of memory");
	s->len = len;
	s->maplen = (len + (size_t)page - 1) / (size_t)page * (size_t)page;
	s->data = mmap(NULL, s->maplen, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->data == MAP_FAILED) {
		int e = errno;

		free(s);
		return vc_error_errno(err, e, "cannot map secret memory");
	}
	if (mlock(s->data, s->maplen) < 0) {
		int e = errno;

		munmap(s->data, s->maplen);
		free(s);
		return vc_error_errno(err, e,
				      "cannot lock secret memory (raise RLIMIT_MEMLOCK)");
	}
	/* Keep secrets out of core dumps. Not MADV_WIPEONFORK: daemons
	 * (nbdkit among them) read their keys and then fork into the
	 * background. Memory locks are not inherited across fork(): a child
	 * that keeps secrets calls vc_secmem_harden_process() again. */
	(void)madvise(s->data, s->maplen, MADV_DONTDUMP);
	*out = s;
	return 0;
}

int vc_secret_from_bytes(const void *src, size_t len, struct vc_secret **out,
			 struct vc_error *err)
{
	int r = vc_secret_new(len, out, err);

	if (r == 0)
		memcpy((*out)->data, src, len);
	return r;
}

void vc_secret_free(struct vc_secret *s)
{
	if (!s)
		return;
	vc_wipe(s->data, s->maplen);
	munlock(s->data, s->maplen);
	munmap(s->data, s->maplen);
	free(s);
}

unsigned char *vc_secret_data(const struct vc_secret *s) { return s->data; }
size_t vc_secret_len(const struct vc_secret *s) { return s->len; }

int vc_secret_read_fd(int fd, size_t keylen, const char *what,
		      struct vc_secret **out, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *buf = NULL;
	size_t have = 0, hexlen;
	unsigned char *p;
	int r;

	*out = NULL;
	/* Read into locked memory: the input may be the key in hex. */
	r = vc_secret_new(KEY_INPUT_MAX + 1, &buf, err);
	if (r < 0)
		return r;
	p = vc_secret_data(buf);
	for (;;) {
		ssize_t n = read(fd, p + have, KEY_INPUT_MAX + 1 - have);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: cannot read key", what);
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > KEY_INPUT_MAX)
			return vc_error_set(err, -EINVAL, "%s: key input too long", what);
	}
	if (have == keylen)
		return vc_secret_from_bytes(p, keylen, out, err);

	hexlen = have;
	if (hexlen > 0 && p[hexlen - 1] == '\n')
		hexlen--;
	if (hexlen == 2 * keylen) {
		struct vc_secret *key;
		size_t got;

		r = vc_secret_new(keylen, &key, err);
		if (r < 0)
			return r;
		if (vc_hex_decode((const char *)p, hexlen, vc_secret_data(key),
				  keylen, &got) < 0 || got != keylen) {
			vc_secret_free(key);
			return vc_error_set(err, -EINVAL,
					    "%s: key is not valid hex", what);
		}
		*out = key;
		return 0;
	}
	return vc_error_set(err, -EINVAL,
			    "%s: key must be %zu raw bytes or %zu hex digits, got %zu bytes",
			    what, keylen, 2 * keylen, have);
}

int vc_private_file_open(const char *path, const char *what, struct vc_error *err)
{
	VC_CLEANUP_CLOSE int fd = -1;
	struct stat st;
	int ret;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return vc_error_errno(err, errno, "%s: cannot open %s", path, what);
	if (fstat(fd, &st) < 0)
		return vc_error_errno(err, errno, "%s: cannot stat %s", path, what);
	if (!S_ISREG(st.st_mode))
		return vc_error_set(err, -EINVAL, "%s: %s is not a regular file", path, what);
	if (st.st_uid != geteuid())
		return vc_error_set(err, -EPERM, "%s: %s is not owned by this user", path, what);
	if (st.st_mode & 077)
		return vc_error_set(err, -EPERM,
				    "%s: %s is accessible by group or others (mode %03o); chmod 600 it",
				    path, what, (unsigned)(st.st_mode & 0777));
	ret = fd;
	fd = -1;
	return ret;
}

int vc_secret_read_file(const char *path, size_t keylen,
			struct vc_secret **out, struct vc_error *err)
{
	VC_CLEANUP_CLOSE int fd = -1;

	*out = NULL;
	fd = vc_private_file_open(path, "key file", err);
	if (fd < 0)
		return fd;
	return vc_secret_read_fd(fd, keylen, path, out, err);
}

int vc_secmem_harden_process(struct vc_error *err)
{
	struct rlimit nocore = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &nocore) < 0)
		return vc_error_errno(err, errno, "cannot disable core dumps");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return vc_error_errno(err, errno, "cannot mark process non-dumpable");
	if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) < 0)
		vc_error_errno(err, errno,
			       "cannot lock process memory; OpenSSL key schedules may be swapped");
	return 0;
}
