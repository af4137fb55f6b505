/* SPDX-License-Identifier: Apache-2.0 */
/* A wiping allocator for jansson (see vc_json.h). */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "vc_json.h"
#include "vc_secmem.h"

/* Each block carries its size in front, aligned for any type. */
#define HDR (sizeof(max_align_t))

static void *wipe_malloc(size_t n)
{
	if (n > SIZE_MAX - HDR)
		return NULL;
	unsigned char *p = malloc(n + HDR);
	if (!p)
		return NULL;
	*(size_t *)(void *)p = n;
	return p + HDR;
}

static void wipe_free(void *ptr)
{
	if (!ptr)
		return;
	unsigned char *p = (unsigned char *)ptr - HDR;
	vc_wipe(p, *(size_t *)(void *)p + HDR);
	free(p);
}

void vc_json_use_wiping_alloc(void)
{
	json_set_alloc_funcs(wipe_malloc, wipe_free);
}

void vc_json_free_dump(char *s)
{
	json_malloc_t m;
	json_free_t f;

	json_get_alloc_funcs(&m, &f);
	f(s);
}
