/* SPDX-License-Identifier: Apache-2.0 */
/* In-memory storage callbacks with fault injection. */
#define _GNU_SOURCE
#include "memio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct memio *memio_new(uint64_t size)
{
	struct memio *m = calloc(1, sizeof *m);

	if (!m)
		abort();
	m->data = calloc(1, size ? size : 1);
	if (!m->data)
		abort();
	m->size = size;
	return m;
}

struct memio *memio_from(const void *data, uint64_t len)
{
	struct memio *m = memio_new(len);

	if (len)
		memcpy(m->data, data, len);
	return m;
}

void memio_free(struct memio *m)
{
	if (m) {
		free(m->data);
		free(m);
	}
}

void memio_resize(struct memio *m, uint64_t size)
{
	uint8_t *d = realloc(m->data, size ? size : 1);

	if (!d)
		abort();
	if (size > m->size)
		memset(d + m->size, 0, size - m->size);
	m->data = d;
	m->size = size;
}

bool memio_contains(const struct memio *m, const void *needle, size_t len)
{
	return len <= m->size && memmem(m->data, m->size, needle, len) != NULL;
}

static int m_pread(void *opaque, void *buf, size_t count, uint64_t offset,
		   struct vc_error *err)
{
	struct memio *m = opaque;

	if (offset > m->size || count > m->size - offset)
		return vc_error_set(err, -EIO, "memio: read past end (%zu at %llu, size %llu)",
				    count, (unsigned long long)offset,
				    (unsigned long long)m->size);
	memcpy(buf, m->data + offset, count);
	return 0;
}

static int m_pwrite(void *opaque, const void *buf, size_t count,
		    uint64_t offset, struct vc_error *err)
{
	struct memio *m = opaque;

	if (m->dead)
		return vc_error_set(err, -EIO, "memio: crashed");
	if (offset > m->size || count > m->size - offset)
		return vc_error_set(err, -ENOSPC, "memio: write past end");
	if (m->fail_write_at > 0 && ++m->writes == m->fail_write_at) {
		memcpy(m->data + offset, buf, count / 2);
		m->dead = true;
		return vc_error_set(err, -EIO, "memio: simulated crash");
	}
	memcpy(m->data + offset, buf, count);
	return 0;
}

static int m_flush(void *opaque, struct vc_error *err)
{
	struct memio *m = opaque;

	if (m->dead)
		return vc_error_set(err, -EIO, "memio: crashed");
	m->flushes++;
	return 0;
}

static int m_size(void *opaque, uint64_t *size, struct vc_error *err)
{
	struct memio *m = opaque;

	(void)err;
	*size = m->size;
	return 0;
}

static int m_punch(void *opaque, uint64_t offset, uint64_t count,
		   struct vc_error *err)
{
	struct memio *m = opaque;

	if (m->no_punch)
		return -ENOTSUP;
	if (m->dead)
		return vc_error_set(err, -EIO, "memio: crashed");
	if (offset > m->size || count > m->size - offset)
		return vc_error_set(err, -EIO, "memio: punch past end");
	memset(m->data + offset, 0, count);
	return 0;
}

void memio_io(struct memio *m, struct vc_disk_io *io)
{
	io->opaque = m;
	io->pread = m_pread;
	io->pwrite = m_pwrite;
	io->flush = m_flush;
	io->get_size = m_size;
	io->punch = m_punch;
}
