/* SPDX-License-Identifier: Apache-2.0 */
/* UUID helpers. */
#include "vc_uuid.h"

#include <errno.h>
#include <string.h>

#include "vc_crypto.h"
#include "vc_encode.h"

int vc_uuid_generate(struct vc_uuid *u, struct vc_error *err)
{
	int r = vc_random_bytes(u->b, sizeof u->b, err);

	if (r < 0)
		return r;
	u->b[6] = (uint8_t)((u->b[6] & 0x0f) | 0x40); /* version 4 */
	u->b[8] = (uint8_t)((u->b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	return 0;
}

/* Byte ranges of the five groups. */
static const int groups[][2] = { { 0, 4 }, { 4, 6 }, { 6, 8 }, { 8, 10 }, { 10, 16 } };

void vc_uuid_format(const struct vc_uuid *u, char *out)
{
	char *o = out;

	for (size_t g = 0; g < VC_ARRAY_SIZE(groups); g++) {
		if (g)
			*o++ = '-';
		vc_hex_encode(u->b + groups[g][0], (size_t)(groups[g][1] - groups[g][0]), o);
		o += 2 * (groups[g][1] - groups[g][0]);
	}
	*o = '\0';
}

int vc_uuid_parse(const char *s, struct vc_uuid *u)
{
	const char *p = s;
	size_t got;

	if (strlen(s) != VC_UUID_STR_LEN - 1)
		return -EINVAL;
	for (size_t g = 0; g < VC_ARRAY_SIZE(groups); g++) {
		size_t n = (size_t)(groups[g][1] - groups[g][0]);

		if (g && *p++ != '-')
			return -EINVAL;
		if (vc_hex_decode(p, 2 * n, u->b + groups[g][0], n, &got) < 0)
			return -EINVAL;
		p += 2 * n;
	}
	return 0;
}

bool vc_uuid_is_nil(const struct vc_uuid *u)
{
	static const uint8_t zero[16];

	return memcmp(u->b, zero, sizeof zero) == 0;
}
