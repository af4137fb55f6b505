/* SPDX-License-Identifier: Apache-2.0 */
/* jansson glue shared by the manager and the CLI: an allocator that wipes
 * every block it frees, so passwords and tokens that pass through JSON
 * values and dumps do not linger in freed heap memory. */
#ifndef VC_JSON_H
#define VC_JSON_H

#include <stddef.h>

/* Install the wiping allocator with json_set_alloc_funcs(). Call once at
 * start, before any jansson value exists. */
void vc_json_use_wiping_alloc(void);

/* Wipe and free a string returned by json_dumps() under that allocator
 * (an ordinary free() would not know its size). NULL is a no-op. */
void vc_json_free_dump(char *s);

#endif
