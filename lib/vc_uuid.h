/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 4122 UUIDs: random (version 4) generation, formatting, parsing. */
#ifndef VC_UUID_H
#define VC_UUID_H

#include <stdbool.h>

#include "vc_error.h"

#define VC_UUID_STR_LEN 37 /* 36 characters and the NUL */

struct vc_uuid {
	uint8_t b[16];
};

VC_MUST_CHECK int vc_uuid_generate(struct vc_uuid *u, struct vc_error *err);
/* Lower-case 8-4-4-4-12 form into out[VC_UUID_STR_LEN]. */
void vc_uuid_format(const struct vc_uuid *u, char *out);
/* Parse the 36-character form (either case). -EINVAL if malformed. */
VC_MUST_CHECK int vc_uuid_parse(const char *s, struct vc_uuid *u);
bool vc_uuid_is_nil(const struct vc_uuid *u);

#endif
