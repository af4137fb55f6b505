/* SPDX-License-Identifier: Apache-2.0 */
/* File-descriptor storage callbacks for the disk format. */
#define _GNU_SOURCE
#include "vc_fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int f_pread(void *opaque, void *buf, size_t count, uint64_t offset,
		   struct vc_error *err)
{
	struct vc_file *f = opaque;
	uint8_t *p = buf;

	while (count > 0) {
		ssize_t n = pread(f->fd, p, count, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: read failed", f->name);
		}
		if (n == 0)
			return vc_error_set(err, -EIO, "%s: unexpected end of file at offset %llu",
					    f->name, (unsigned long long)offset);
		p += n;
		count -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

static int f_pwrite(void *opaque, const void *buf, size_t count,
		    uint64_t offset, struct vc_error *err)
{
	struct vc_file *f = opaque;
	const uint8_t *p = buf;

	if (f->crash_at > 0 && ++f->writes == f->crash_at) {
		/* Simulated power cut: half of this write lands. */
		if (pwrite(f->fd, p, count / 2, (off_t)offset) < 0)
			_exit(99);
		raise(SIGKILL);
	}
	while (count > 0) {
		ssize_t n = pwrite(f->fd, p, count, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: write failed", f->name);
		}
		p += n;
		count -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

static int f_flush(void *opaque, struct vc_error *err)
{
	struct vc_file *f = opaque;

	if (fdatasync(f->fd) < 0)
		return vc_error_errno(err, errno, "%s: flush failed", f->name);
	return 0;
}

static int f_size(void *opaque, uint64_t *size, struct vc_error *err)
{
	struct vc_file *f = opaque;
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return vc_error_errno(err, errno, "%s: cannot stat", f->name);
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(f->fd, BLKGETSIZE64, size) < 0)
			return vc_error_errno(err, errno, "%s: cannot get device size", f->name);
		return 0;
	}
	if (!S_ISREG(st.st_mode))
		return vc_error_set(err, -EINVAL, "%s: not a regular file or block device", f->name);
	*size = (uint64_t)st.st_size;
	return 0;
}

static int f_punch(void *opaque, uint64_t offset, uint64_t count,
		   struct vc_error *err)
{
	struct vc_file *f = opaque;

	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)offset, (off_t)count) < 0) {
		if (errno == EOPNOTSUPP || errno == ENOSYS)
			return -ENOTSUP;
		return vc_error_errno(err, errno, "%s: cannot punch hole", f->name);
	}
	return 0;
}

void vc_file_io(struct vc_file *f, struct vc_disk_io *io)
{
	io->opaque = f;
	io->pread = f_pread;
	io->pwrite = f_pwrite;
	io->flush = f_flush;
	io->get_size = f_size;
	io->punch = f_punch;
}

long vc_test_crash_point(const char *name)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s)
		return 0;
	errno = 0;
	v = strtol(s, &end, 10);
	return errno || *end || end == s || v < 0 ? 0 : v;
}
