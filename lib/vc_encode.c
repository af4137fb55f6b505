/* SPDX-License-Identifier: Apache-2.0 */
/* Hex and base64. */
#include "vc_encode.h"

#include <errno.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <string.h>

void vc_hex_encode(const void *in, size_t len, char *out)
{
	const uint8_t *p = in;

	for (size_t i = 0; i < len; i++) {
		/* Branch-free nibble to digit: 0-9 -> '0'.., 10-15 -> 'a'.. */
		for (int h = 0; h < 2; h++) {
			unsigned n = h ? (p[i] & 0xfu) : (p[i] >> 4);

			out[2 * i + (size_t)h] =
				(char)(n + '0' + (((9u - n) >> 8) & (unsigned)('a' - '0' - 10)));
		}
	}
	out[2 * len] = '\0';
}

/* Returns the nibble, or a value with bit 8 set for a non-digit, without
 * branching on the character. (x | (k - x)) is negative exactly when x is
 * outside 0..k; >> on a negative int is arithmetic with gcc and clang. */
static unsigned hex_nibble(unsigned char c)
{
	int num = (int)c - '0';
	int alpha = ((int)c | 0x20) - 'a';
	int is_num = ~((num | (9 - num)) >> 31);
	int is_alpha = ~((alpha | (5 - alpha)) >> 31);

	return (unsigned)((num & is_num) | ((alpha + 10) & is_alpha) |
			  (~(is_num | is_alpha) & 0x100));
}

int vc_hex_decode(const char *in, size_t inlen, void *out, size_t outcap,
		  size_t *outlen)
{
	uint8_t *o = out;
	unsigned bad = 0;

	if (inlen % 2)
		return -EINVAL;
	if (inlen / 2 > outcap)
		return -ENOSPC;
	for (size_t i = 0; i < inlen / 2; i++) {
		unsigned hi = hex_nibble((unsigned char)in[2 * i]);
		unsigned lo = hex_nibble((unsigned char)in[2 * i + 1]);

		bad |= (hi | lo) & 0x100u;
		o[i] = (uint8_t)((hi << 4) | (lo & 0xfu));
	}
	if (bad)
		return -EINVAL;
	*outlen = inlen / 2;
	return 0;
}

size_t vc_base64_encoded_len(size_t len) { return (len + 2) / 3 * 4 + 1; }

void vc_base64_encode(const void *in, size_t len, char *out)
{
	out[0] = '\0';
	if (len)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static unsigned b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return (unsigned)(c - 'A');
	if (c >= 'a' && c <= 'z')
		return (unsigned)(c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0' + 52);
	return c == '+' ? 62u : 63u;
}

int vc_base64_decode(const char *in, size_t inlen, void *out, size_t outcap,
		     size_t *outlen)
{
	unsigned char *tmp;
	size_t pad = 0;
	int n;

	if (inlen % 4 || inlen > (size_t)1 << 30)
		return -EINVAL;
	if (inlen == 0) {
		*outlen = 0;
		return 0;
	}
	/* EVP_DecodeBlock takes '=' anywhere as a zero digit: accept only
	 * the alphabet, with one or two '=' at the very end. */
	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     (c >= '0' && c <= '9') || c == '+' || c == '/';

		if (alpha)
			continue;
		if (c != '=' || i < inlen - 2 || (i == inlen - 2 && in[inlen - 1] != '='))
			return -EINVAL;
	}
	if (in[inlen - 1] == '=')
		pad++;
	if (in[inlen - 2] == '=')
		pad++;
	/* One spelling per value: the bits the padding leaves unused in the
	 * last digit must be zero (RFC 4648 section 3.5). */
	if (pad && (b64_value(in[inlen - 1 - pad]) & (pad == 1 ? 0x3u : 0xfu)))
		return -EINVAL;
	if (inlen / 4 * 3 - pad > outcap)
		return -ENOSPC;
	tmp = malloc(inlen / 4 * 3 + 1);
	if (!tmp)
		return -ENOMEM;
	n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)inlen);
	if (n < 0 || (size_t)n != inlen / 4 * 3) {
		free(tmp);
		return -EINVAL;
	}
	memcpy(out, tmp, (size_t)n - pad);
	OPENSSL_cleanse(tmp, (size_t)n);
	free(tmp);
	*outlen = (size_t)n - pad;
	return 0;
}
