/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for key and identifier input: vc_secret_read_fd, hex,
 * base64 and UUID parsing, each checked against its encoder. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "vc_encode.h"
#include "vc_secmem.h"
#include "vc_uuid.h"

#define KEYLEN 32

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

static void secret_read_fd(const uint8_t *data, size_t size)
{
	struct vc_secret *key = NULL;
	struct vc_error err = { 0 };
	size_t off = 0, hexlen = size;
	int fd = memfd_create("fuzz-key-input", MFD_CLOEXEC);
	int r;

	if (fd < 0)
		abort();
	while (off < size) {
		ssize_t n = write(fd, data + off, size - off);

		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	r = vc_secret_read_fd(fd, KEYLEN, "fuzz input", &key, &err);
	close(fd);
	if (r < 0) {
		FUZZ_CHECK(key == NULL, "failed read returned a key");
		FUZZ_CHECK(err.msg[0] != '\0', "failed read (%d) without a message", r);
		return;
	}
	FUZZ_CHECK(r == 0 && key != NULL && vc_secret_len(key) == KEYLEN,
		   "read returned %d and a key of the wrong length", r);
	if (size == KEYLEN) {
		FUZZ_CHECK(vc_ct_equal(vc_secret_data(key), data, KEYLEN),
			   "raw key differs from the input");
	} else {
		uint8_t want[KEYLEN];
		size_t got;

		if (hexlen > 0 && data[hexlen - 1] == '\n')
			hexlen--;
		FUZZ_CHECK(hexlen == 2 * KEYLEN, "accepted %zu bytes of input", size);
		FUZZ_CHECK(vc_hex_decode((const char *)data, hexlen, want, sizeof want, &got) == 0 &&
			   got == KEYLEN &&
			   vc_ct_equal(vc_secret_data(key), want, KEYLEN),
			   "hex key differs from the input");
	}
	vc_secret_free(key);
}

static void hex(const uint8_t *data, size_t size)
{
	size_t cap = size / 2, outlen = 0;
	uint8_t *out = xmalloc(cap);
	char *again;
	int r;

	r = vc_hex_decode((const char *)data, size, out, cap, &outlen);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "hex decode returned %d", r);
		free(out);
		return;
	}
	FUZZ_CHECK(r == 0 && outlen == cap, "hex decode: %d, %zu bytes", r, outlen);
	again = xmalloc(2 * outlen + 1);
	vc_hex_encode(out, outlen, again);
	for (size_t i = 0; i < size; i++)
		FUZZ_CHECK(again[i] == data[i] || (data[i] >= 'A' && data[i] <= 'F' &&
						   again[i] == data[i] - 'A' + 'a'),
			   "hex decode accepted 0x%02x at %zu", data[i], i);
	if (cap > 0) {
		r = vc_hex_decode((const char *)data, size, out, cap - 1, &outlen);
		FUZZ_CHECK(r == -ENOSPC, "hex decode into a short buffer returned %d", r);
	}
	free(again);
	free(out);
}

static bool b64_char(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

static void base64(const uint8_t *data, size_t size)
{
	size_t cap = size / 4 * 3, outlen = 0, pad = 0;
	uint8_t *out = xmalloc(cap);
	char *again;
	int r;

	r = vc_base64_decode((const char *)data, size, out, cap, &outlen);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "base64 decode returned %d", r);
		free(out);
		return;
	}
	FUZZ_CHECK(r == 0, "base64 decode returned %d", r);
	/* vc_encode.h: standard padded base64 (RFC 4648 section 4), so only
	 * the last two characters may be '=', and "x=" never "=x". */
	if (size >= 1 && data[size - 1] == '=')
		pad++;
	if (size >= 2 && data[size - 2] == '=' && pad == 1)
		pad++;
	for (size_t i = 0; i < size - pad; i++)
		FUZZ_CHECK(b64_char(data[i]),
			   "base64 decode accepted '%c' (0x%02x) at %zu of %zu", data[i],
			   data[i], i, size);
	FUZZ_CHECK(outlen == cap - pad, "base64 decode gave %zu bytes for %zu characters",
		   outlen, size);
	/* Encoding the output gives the input back, but for the unused low
	 * bits of the last character before the padding, which RFC 4648
	 * section 3.5 lets a decoder ignore. */
	again = xmalloc(vc_base64_encoded_len(outlen));
	vc_base64_encode(out, outlen, again);
	FUZZ_CHECK(strlen(again) == size, "base64 round trip changed the length");
	if (size > 0) {
		size_t last = size - pad - 1;

		FUZZ_CHECK(memcmp(again, data, last) == 0 &&
			   memcmp(again + last + 1, data + last + 1, pad) == 0,
			   "base64 round trip differs");
	}
	free(again);
	free(out);
}

static void uuid(const uint8_t *data, size_t size)
{
	char *s = xmalloc(size + 1);
	char again[VC_UUID_STR_LEN];
	struct vc_uuid u;
	int r;

	memcpy(s, data, size);
	s[size] = '\0';
	r = vc_uuid_parse(s, &u);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "uuid parse returned %d", r);
	} else {
		vc_uuid_format(&u, again);
		FUZZ_CHECK(strcasecmp(again, s) == 0, "uuid parse accepted '%s'", s);
	}
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	secret_read_fd(data, size);
	hex(data, size);
	base64(data, size);
	uuid(data, size);
	return 0;
}
