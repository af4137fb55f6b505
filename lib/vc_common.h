/* SPDX-License-Identifier: Apache-2.0 */
/* Shared macros: must-check results, cleanup attributes, array sizes. */
#ifndef VC_COMMON_H
#define VC_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VC_MUST_CHECK __attribute__((warn_unused_result))
#define VC_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define VC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VC_UNUSED __attribute__((unused))

static inline void vc_freep(void *p) { free(*(void **)p); }
static inline void vc_closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}

/* Free a heap pointer or close an fd when the variable leaves scope. */
#define VC_CLEANUP_FREE __attribute__((cleanup(vc_freep)))
#define VC_CLEANUP_CLOSE __attribute__((cleanup(vc_closep)))

/* True when len bytes at p are all zero (a hole, in the disk format). */
static inline bool vc_is_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	return len == 0 || (b[0] == 0 && memcmp(b, b + 1, len - 1) == 0);
}

/* Little-endian load/store for on-disk fields (the formats are LE). */
static inline void vc_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void vc_put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void vc_put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t vc_get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t vc_get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}
static inline uint64_t vc_get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

#endif
