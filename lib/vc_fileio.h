/* SPDX-License-Identifier: Apache-2.0 */
/* struct vc_disk_io over a POSIX file descriptor (regular file or block
 * device): pread/pwrite loops, fdatasync, hole punching. */
#ifndef VC_FILEIO_H
#define VC_FILEIO_H

#include "vc_disk.h"

struct vc_file {
	int fd;            /* borrowed: the caller opens and closes it */
	const char *name;  /* for messages; borrowed */
	/* Test hook for crash-safety tests: when > 0, the crash_at-th write
	 * is cut in half and the process then kills itself with SIGKILL,
	 * like a power cut in the middle of a write. 0 disables it. */
	long crash_at;
	long writes;
};

/* Crash-test hooks: the positive number in environment variable name (a
 * write or step at which the process kills itself), or 0 when it is unset
 * or not a positive decimal number. Only crash-safety tests set them. */
long vc_test_crash_point(const char *name);

/* Point io at f's callbacks. f must outlive every use of io. */
void vc_file_io(struct vc_file *f, struct vc_disk_io *io);

#endif
