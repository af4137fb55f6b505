/* SPDX-License-Identifier: Apache-2.0 */
/* An in-memory struct vc_disk_io for unit tests and fuzzers, with fault
 * injection. */
#ifndef MEMIO_H
#define MEMIO_H

#include "vc_disk.h"

struct memio {
	uint8_t *data;
	uint64_t size;
	/* Fault injection: when fail_write_at > 0, the fail_write_at-th
	 * pwrite (counting from 1) writes only its first half and then it
	 * and every later pwrite fails with -EIO (a crash). */
	long fail_write_at;
	long writes;
	bool dead;
	bool no_punch;   /* punch returns -ENOTSUP */
	long flushes;
};

/* A zero-filled memory disk of size bytes. */
struct memio *memio_new(uint64_t size);
/* A memory disk holding a copy of len bytes. */
struct memio *memio_from(const void *data, uint64_t len);
void memio_free(struct memio *m);
void memio_io(struct memio *m, struct vc_disk_io *io);
/* Resize (truncate or zero-extend). */
void memio_resize(struct memio *m, uint64_t size);
/* True if needle occurs anywhere in the memory disk. */
bool memio_contains(const struct memio *m, const void *needle, size_t len);

#endif
