/* SPDX-License-Identifier: Apache-2.0 */
/* Hex and base64 encoding. Hex decoding runs in time independent of the
 * digit values, so it may be used on keys. */
#ifndef VC_ENCODE_H
#define VC_ENCODE_H

#include "vc_common.h"

/* Lower-case hex of len bytes into out (2*len+1 bytes, NUL-terminated). */
void vc_hex_encode(const void *in, size_t len, char *out);

/* Decode exactly inlen hex digits (even, upper or lower case) into out
 * (capacity outcap). Returns 0 and *outlen, or -EINVAL for a bad digit or
 * odd length, -ENOSPC if out is too small. */
VC_MUST_CHECK int vc_hex_decode(const char *in, size_t inlen, void *out,
				size_t outcap, size_t *outlen);

/* Standard base64 with padding, NUL-terminated. out needs
 * vc_base64_encoded_len(len) bytes. */
size_t vc_base64_encoded_len(size_t len);
void vc_base64_encode(const void *in, size_t len, char *out);

/* Decode standard padded base64 (no whitespace). Returns 0 and *outlen or
 * -EINVAL / -ENOSPC. */
VC_MUST_CHECK int vc_base64_decode(const char *in, size_t inlen, void *out,
				   size_t outcap, size_t *outlen);

#endif
