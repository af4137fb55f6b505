/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_vmfile: the encrypted VM file format (docs/FORMAT.md,
 * second part) through its writer, reader, header and descriptor APIs. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vc_crypto.h"
#include "vc_encode.h"
#include "vc_vmfile.h"

#define HDR VC_VMFILE_HDR_LEN
#define TAG VC_VMFILE_TAG_LEN

/* Header offsets, V2. */
#define OFF_VERSION 8
#define OFF_SHIFT 10
#define OFF_PURPOSE_LEN 11
#define OFF_RESERVED 12
#define OFF_SALT 16
#define OFF_PURPOSE 32

static struct vc_secret *key_filled(uint8_t base)
{
	uint8_t b[VC_VMFILE_KEY_LEN];
	struct vc_secret *s = NULL;

	for (size_t i = 0; i < sizeof b; i++)
		b[i] = (uint8_t)(base + i);
	assert_int_equal(vc_secret_from_bytes(b, sizeof b, &s, NULL), 0);
	return s;
}

static uint8_t *random_bytes(size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	assert_non_null(p);
	if (len)
		assert_int_equal(vc_random_bytes(p, len, NULL), 0);
	return p;
}

static size_t chunk_size_of(unsigned shift)
{
	return (size_t)1 << (shift ? shift : VC_VMFILE_SHIFT_DEFAULT);
}

/* Expected sealed size, V4: at least one chunk, each with a tag. */
static size_t sealed_len(size_t len, size_t c)
{
	size_t n = len ? (len + c - 1) / c : 1;

	return HDR + len + n * TAG;
}

/* A whole file through the writer API, cut into chunks as V4 says. */
static uint8_t *seal_mem(const struct vc_secret *key, const char *purpose, unsigned shift,
			 const uint8_t *pt, size_t len, size_t *outlen)
{
	const size_t c = chunk_size_of(shift);
	const size_t n = len ? (len + c - 1) / c : 1;
	struct vc_vmfile_writer *w = NULL;
	struct vc_error err = { 0 };
	uint8_t *out = malloc(sealed_len(len, c));
	size_t at = HDR;
	int r;

	assert_non_null(out);
	r = vc_vmfile_writer_new(key, purpose, shift, out, &w, &err);
	if (r != 0)
		fail_msg("writer_new: %d %s", r, err.msg);
	for (size_t i = 0; i < n; i++) {
		const size_t clen = i < n - 1 ? c : len - i * c;

		r = vc_vmfile_writer_chunk(w, pt + i * c, clen, i == n - 1, out + at, &err);
		if (r != 0)
			fail_msg("writer_chunk %zu: %d %s", i, r, err.msg);
		at += clen + TAG;
	}
	vc_vmfile_writer_free(w);
	assert_int_equal(at, sealed_len(len, c));
	*outlen = at;
	return out;
}

/* Read a whole file through the reader API with the chunking of V5.
 * Returns 0 with the plaintext, or the first error. */
static int open_mem(const struct vc_secret *key, const char *purpose, const uint8_t *f,
		    size_t flen, uint8_t **pt, size_t *ptlen, struct vc_error *err)
{
	struct vc_vmfile_reader *rd = NULL;
	struct vc_vmfile_info info;
	size_t body, full, n, at = 0;
	uint8_t *out;
	int r;

	*pt = NULL;
	*ptlen = 0;
	if (flen < HDR)
		return vc_error_set(err, -EBADMSG, "test: shorter than a header");
	r = vc_vmfile_reader_new(key, purpose, f, &info, &rd, err);
	if (r < 0) {
		assert_null(rd);
		return r;
	}
	body = flen - HDR;
	full = info.chunk_size + TAG;
	if (body < TAG) {
		vc_vmfile_reader_free(rd);
		return vc_error_set(err, -EBADMSG, "test: body shorter than a tag");
	}
	n = (body + full - 1) / full;
	if (body - (n - 1) * full < TAG) {
		vc_vmfile_reader_free(rd);
		return vc_error_set(err, -EBADMSG, "test: final chunk shorter than a tag");
	}
	out = malloc(body);
	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		const size_t inlen = i < n - 1 ? full : body - (n - 1) * full;
		size_t got = 0;

		assert_false(vc_vmfile_reader_done(rd));
		r = vc_vmfile_reader_chunk(rd, f + HDR + i * full, inlen, i == n - 1, out + at,
					   &got, err);
		if (r < 0) {
			free(out);
			vc_vmfile_reader_free(rd);
			return r;
		}
		assert_int_equal(got, inlen - TAG);
		at += got;
	}
	assert_true(vc_vmfile_reader_done(rd));
	vc_vmfile_reader_free(rd);
	*pt = out;
	*ptlen = at;
	return 0;
}

static void expect_header(const uint8_t *f, unsigned shift, const char *purpose)
{
	struct vc_vmfile_info info;
	struct vc_error err = { 0 };
	int r = vc_vmfile_header_parse(f, &info, &err);

	if (r != 0)
		fail_msg("header_parse: %d %s", r, err.msg);
	assert_int_equal(info.chunk_shift, shift);
	assert_int_equal(info.chunk_size, (size_t)1 << shift);
	assert_string_equal(info.purpose, purpose);
	assert_memory_equal(info.salt, f + OFF_SALT, VC_VMFILE_SALT_LEN);
}

static void round_trip(const struct vc_secret *key, unsigned shift, size_t len)
{
	const unsigned real_shift = shift ? shift : VC_VMFILE_SHIFT_DEFAULT;
	uint8_t *pt = random_bytes(len), *f, *back;
	struct vc_error err = { 0 };
	size_t flen, blen;
	int r;

	f = seal_mem(key, "nvram", shift, pt, len, &flen);
	assert_memory_equal(f, VC_VMFILE_MAGIC, 8);
	expect_header(f, real_shift, "nvram");
	/* Random plaintext does not show through. */
	if (len >= 16)
		assert_null(memmem(f, flen, pt, 16));
	r = open_mem(key, "nvram", f, flen, &back, &blen, &err);
	if (r != 0)
		fail_msg("shift %u, %zu bytes: %d %s", shift, len, r, err.msg);
	assert_int_equal(blen, len);
	if (len)
		assert_memory_equal(back, pt, len);
	free(back);
	free(f);
	free(pt);
}

static void test_round_trips(void **state)
{
	struct vc_secret *key = key_filled(1);

	(void)state;
	for (unsigned shift = 12; shift <= 13; shift++) {
		const size_t c = chunk_size_of(shift);
		const size_t sizes[] = { 0, 1, 15, 16, 17, c - 1, c, c + 1, 2 * c, 3 * c,
					 3 * c + 77 };

		for (size_t i = 0; i < VC_ARRAY_SIZE(sizes); i++)
			round_trip(key, shift, sizes[i]);
	}
	/* shift 0: the default, 64 KiB */
	round_trip(key, 0, 0);
	round_trip(key, 0, 65536);
	round_trip(key, 0, 65537);
	vc_secret_free(key);
}

static void test_round_trip_every_shift(void **state)
{
	struct vc_secret *key = key_filled(2);

	(void)state;
	for (unsigned shift = VC_VMFILE_SHIFT_MIN; shift <= VC_VMFILE_SHIFT_MAX; shift++) {
		round_trip(key, shift, 5);
		round_trip(key, shift, chunk_size_of(shift) + 1);
	}
	vc_secret_free(key);
}

static void test_fresh_salt(void **state)
{
	struct vc_secret *key = key_filled(3);
	uint8_t pt[100] = { 0 };
	uint8_t *a, *b;
	size_t alen, blen;

	(void)state;
	a = seal_mem(key, "vtpm", 12, pt, sizeof pt, &alen);
	b = seal_mem(key, "vtpm", 12, pt, sizeof pt, &blen);
	assert_int_equal(alen, blen);
	assert_memory_not_equal(a + OFF_SALT, b + OFF_SALT, VC_VMFILE_SALT_LEN);
	assert_memory_not_equal(a + HDR, b + HDR, sizeof pt);
	free(a);
	free(b);
	vc_secret_free(key);
}

/* ---- writer refusals ---- */

static void test_writer_refusals(void **state)
{
	struct vc_secret *key = key_filled(4), *short_key = NULL;
	const char *bad_purposes[] = { "", "NVRAM", "nv ram", "nv/ram",
				       "abcdefghijklmnopqrstuvwxyz0123456" };
	const unsigned bad_shifts[] = { 1, 11, 21, 32, 64 };
	struct vc_vmfile_writer *w = NULL;
	struct vc_error err = { 0 };
	uint8_t hdr[HDR], pt[8192] = { 0 }, out[2 * (4096 + TAG)];
	uint8_t k31[31] = { 0 };
	const struct {
		size_t len;
		bool final;
	} bad_lens[] = { { 4095, false }, { 4097, false }, { 0, false }, { 1, false },
			 { 4097, true }, { 8192, true } };

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad_purposes); i++) {
		err = (struct vc_error){ 0 };
		if (vc_vmfile_writer_new(key, bad_purposes[i], 12, hdr, &w, &err) >= 0)
			fail_msg("writer accepted purpose \"%s\"", bad_purposes[i]);
		assert_null(w);
		assert_true(err.msg[0] != '\0');
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad_shifts); i++) {
		if (vc_vmfile_writer_new(key, "nvram", bad_shifts[i], hdr, &w, &err) >= 0)
			fail_msg("writer accepted chunk_shift %u", bad_shifts[i]);
		assert_null(w);
	}
	assert_int_equal(vc_secret_from_bytes(k31, sizeof k31, &short_key, NULL), 0);
	assert_true(vc_vmfile_writer_new(short_key, "nvram", 12, hdr, &w, &err) < 0);
	assert_null(w);

	assert_int_equal(vc_vmfile_writer_new(key, "nvram", 12, hdr, &w, &err), 0);
	/* A non-final chunk is exactly C bytes; a final one at most C. */
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad_lens); i++) {
		err = (struct vc_error){ 0 };
		if (vc_vmfile_writer_chunk(w, pt, bad_lens[i].len, bad_lens[i].final, out,
					   &err) >= 0)
			fail_msg("writer accepted a %s chunk of %zu bytes",
				 bad_lens[i].final ? "final" : "non-final", bad_lens[i].len);
		assert_true(err.msg[0] != '\0');
	}
	vc_vmfile_writer_free(w);
	w = NULL;

	assert_int_equal(vc_vmfile_writer_new(key, "nvram", 12, hdr, &w, &err), 0);
	assert_int_equal(vc_vmfile_writer_chunk(w, pt, 4096, false, out, &err), 0);
	assert_int_equal(vc_vmfile_writer_chunk(w, pt, 3, true, out + 4096 + TAG, &err), 0);
	/* After the final chunk, nothing more. */
	assert_int_equal(vc_vmfile_writer_chunk(w, pt, 3, true, out, &err), -EINVAL);
	assert_int_equal(vc_vmfile_writer_chunk(w, pt, 4096, false, out, &err), -EINVAL);
	assert_int_equal(vc_vmfile_writer_chunk(w, pt, 0, true, out, &err), -EINVAL);
	vc_vmfile_writer_free(w);
	vc_vmfile_writer_free(NULL);
	{
		uint8_t f[HDR + 4096 + TAG + 3 + TAG], *back;
		size_t blen;

		memcpy(f, hdr, HDR);
		memcpy(f + HDR, out, 4096 + TAG);
		memcpy(f + HDR + 4096 + TAG, out + 4096 + TAG, 3 + TAG);
		assert_int_equal(open_mem(key, "nvram", f, sizeof f, &back, &blen, &err), 0);
		/* pt is zeros: chunk 1 (pt[0..2]) continues chunk 0. */
		assert_int_equal(blen, 4099);
		assert_memory_equal(back, pt, blen);
		free(back);
	}
	vc_secret_free(short_key);
	vc_secret_free(key);
}

/* ---- reader refusals ---- */

struct three {
	struct vc_secret *key;
	uint8_t *pt, *f;
	size_t ptlen, flen;
};

/* 3 chunks of 4 KiB, the last one 100 bytes. */
static void three_chunks(struct three *t, uint8_t keybase)
{
	t->key = key_filled(keybase);
	t->ptlen = 2 * 4096 + 100;
	t->pt = random_bytes(t->ptlen);
	t->f = seal_mem(t->key, "nvram", 12, t->pt, t->ptlen, &t->flen);
}

static void three_free(struct three *t)
{
	free(t->pt);
	free(t->f);
	vc_secret_free(t->key);
}

static const uint8_t *chunk_at(const struct three *t, size_t i)
{
	return t->f + HDR + i * (4096 + TAG);
}

static struct vc_vmfile_reader *reader_for(const struct three *t, const struct vc_secret *key)
{
	struct vc_vmfile_reader *rd = NULL;
	struct vc_error err = { 0 };
	int r = vc_vmfile_reader_new(key ? key : t->key, "nvram", t->f, NULL, &rd, &err);

	if (r != 0)
		fail_msg("reader_new: %d %s", r, err.msg);
	return rd;
}

static void test_reader_wrong_purpose(void **state)
{
	struct vc_vmfile_reader *rd = NULL;
	struct vc_error err = { 0 };
	struct three t;

	(void)state;
	three_chunks(&t, 5);
	assert_int_equal(vc_vmfile_reader_new(t.key, "vtpm", t.f, NULL, &rd, &err), -EBADMSG);
	assert_null(rd);
	if (!strstr(err.msg, "vtpm") || !strstr(err.msg, "nvram"))
		fail_msg("the message must name both purposes: %s", err.msg);
	/* A prefix of the file's purpose is another purpose. */
	assert_int_equal(vc_vmfile_reader_new(t.key, "nvra", t.f, NULL, &rd, &err), -EBADMSG);
	assert_int_equal(vc_vmfile_reader_new(t.key, "nvram0", t.f, NULL, &rd, &err), -EBADMSG);
	assert_null(rd);
	three_free(&t);
}

static void test_reader_wrong_key(void **state)
{
	struct vc_secret *other = key_filled(0x77);
	struct vc_error err = { 0 };
	struct vc_vmfile_reader *rd;
	uint8_t out[4096];
	size_t outlen = 0;
	struct three t;

	(void)state;
	three_chunks(&t, 6);
	/* The header needs no key; the first chunk does. */
	rd = reader_for(&t, other);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), 4096 + TAG, false, out,
						&outlen, &err),
			 -EBADMSG);
	if (!strstr(err.msg, "chunk 0"))
		fail_msg("the message must name the chunk: %s", err.msg);
	assert_false(vc_vmfile_reader_done(rd));
	vc_vmfile_reader_free(rd);
	/* And the whole-file path. */
	{
		uint8_t *back = NULL;
		size_t blen;

		assert_int_equal(open_mem(other, "nvram", t.f, t.flen, &back, &blen, &err),
				 -EBADMSG);
		assert_null(back);
	}
	vc_secret_free(other);
	three_free(&t);
}

static void test_reader_chunk_sizes(void **state)
{
	const size_t bad_nonfinal[] = { 0, 15, 16, 4096, 4096 + TAG - 1, 4096 + TAG + 1 };
	const size_t bad_final[] = { 0, 1, 15, 4096 + TAG + 1, 8192 };
	struct vc_error err = { 0 };
	struct vc_vmfile_reader *rd;
	uint8_t *out = malloc(8192);
	size_t outlen;
	struct three t;

	(void)state;
	assert_non_null(out);
	three_chunks(&t, 7);
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad_nonfinal); i++) {
		rd = reader_for(&t, NULL);
		if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), bad_nonfinal[i], false, out,
					   &outlen, &err) >= 0)
			fail_msg("a non-final chunk of %zu bytes was accepted", bad_nonfinal[i]);
		assert_true(err.msg[0] != '\0');
		assert_false(vc_vmfile_reader_done(rd));
		vc_vmfile_reader_free(rd);
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(bad_final); i++) {
		uint8_t *in = calloc(1, 8192);

		assert_non_null(in);
		memcpy(in, chunk_at(&t, 0), 4096 + TAG);
		rd = reader_for(&t, NULL);
		if (vc_vmfile_reader_chunk(rd, in, bad_final[i], true, out, &outlen, &err) >= 0)
			fail_msg("a final chunk of %zu bytes was accepted", bad_final[i]);
		assert_true(err.msg[0] != '\0');
		assert_false(vc_vmfile_reader_done(rd));
		vc_vmfile_reader_free(rd);
		free(in);
	}
	free(out);
	three_free(&t);
}

/* No 16-byte block of out is the plaintext it would have held. */
static void assert_no_plaintext(const uint8_t *out, const uint8_t *pt, size_t len)
{
	for (size_t off = 0; off + 16 <= len; off += 16)
		if (memcmp(out + off, pt + off, 16) == 0)
			fail_msg("plaintext left in out at %zu after a failure", off);
}

static void test_reader_after_failure(void **state)
{
	struct vc_error err = { 0 };
	struct vc_vmfile_reader *rd;
	uint8_t out[4096], bad[4096 + TAG];
	size_t outlen = 0;
	struct three t;

	(void)state;
	three_chunks(&t, 8);
	rd = reader_for(&t, NULL);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), 4096 + TAG, false, out,
						&outlen, &err),
			 0);
	assert_int_equal(outlen, 4096);
	assert_memory_equal(out, t.pt, 4096);
	/* Only the tag altered: the ciphertext still decrypts to the real
	 * plaintext, which must not be handed out. */
	memcpy(bad, chunk_at(&t, 1), sizeof bad);
	bad[4096 + 3] ^= 0x20;
	memset(out, 0xee, sizeof out);
	assert_int_equal(vc_vmfile_reader_chunk(rd, bad, sizeof bad, false, out, &outlen, &err),
			 -EBADMSG);
	if (!strstr(err.msg, "chunk 1"))
		fail_msg("the message must name chunk 1: %s", err.msg);
	assert_no_plaintext(out, t.pt + 4096, 4096);
	/* Refuses more, even the genuine chunk 1 and the final chunk. */
	if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 1), 4096 + TAG, false, out, &outlen,
				   &err) >= 0)
		fail_msg("a failed reader accepted the genuine chunk 1");
	assert_no_plaintext(out, t.pt + 4096, 4096);
	if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 2), 100 + TAG, true, out, &outlen, &err) >= 0)
		fail_msg("a failed reader accepted the final chunk");
	assert_false(vc_vmfile_reader_done(rd));
	vc_vmfile_reader_free(rd);
	vc_vmfile_reader_free(NULL);
	three_free(&t);
}

static void test_reader_after_final(void **state)
{
	struct vc_error err = { 0 };
	struct vc_vmfile_reader *rd;
	uint8_t out[4096];
	size_t outlen = 0;
	struct three t;

	(void)state;
	three_chunks(&t, 9);
	rd = reader_for(&t, NULL);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, i),
							i < 2 ? 4096 + TAG : 100 + TAG, i == 2,
							out, &outlen, &err),
				 0);
	assert_true(vc_vmfile_reader_done(rd));
	if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 2), 100 + TAG, true, out, &outlen, &err) >= 0)
		fail_msg("the reader accepted a chunk after the final one");
	if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), 4096 + TAG, false, out, &outlen, &err) >= 0)
		fail_msg("the reader accepted a chunk after the final one");
	vc_vmfile_reader_free(rd);
	three_free(&t);
}

static void test_reader_order_and_final_flag(void **state)
{
	struct vc_error err = { 0 };
	struct vc_vmfile_reader *rd;
	uint8_t out[4096];
	size_t outlen = 0;
	struct three t;

	(void)state;
	three_chunks(&t, 10);
	/* Chunk 1 in place of chunk 0. */
	rd = reader_for(&t, NULL);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 1), 4096 + TAG, false, out,
						&outlen, &err),
			 -EBADMSG);
	vc_vmfile_reader_free(rd);
	/* Chunk 1 presented as final (the file cut after it). */
	rd = reader_for(&t, NULL);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), 4096 + TAG, false, out,
						&outlen, &err),
			 0);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 1), 4096 + TAG, true, out,
						&outlen, &err),
			 -EBADMSG);
	assert_false(vc_vmfile_reader_done(rd));
	vc_vmfile_reader_free(rd);
	/* The final chunk presented as non-final is refused (it is short, and
	 * its flag says final). */
	rd = reader_for(&t, NULL);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 0), 4096 + TAG, false, out,
						&outlen, &err),
			 0);
	assert_int_equal(vc_vmfile_reader_chunk(rd, chunk_at(&t, 1), 4096 + TAG, false, out,
						&outlen, &err),
			 0);
	if (vc_vmfile_reader_chunk(rd, chunk_at(&t, 2), 100 + TAG, false, out, &outlen, &err) >= 0)
		fail_msg("a short final chunk was accepted as non-final");
	vc_vmfile_reader_free(rd);
	/* Another file's header with this file's chunks. */
	{
		uint8_t *other, *back = NULL;
		size_t olen, blen;

		other = seal_mem(t.key, "nvram", 12, t.pt, t.ptlen, &olen);
		memcpy(other + HDR, t.f + HDR, t.flen - HDR);
		assert_int_equal(open_mem(t.key, "nvram", other, olen, &back, &blen, &err),
				 -EBADMSG);
		assert_null(back);
		free(other);
	}
	three_free(&t);
}

/* ---- header parse ---- */

static void valid_header(uint8_t h[HDR])
{
	memset(h, 0, HDR);
	memcpy(h, VC_VMFILE_MAGIC, 8);
	h[OFF_VERSION] = 1;
	h[OFF_SHIFT] = 12;
	h[OFF_PURPOSE_LEN] = 5;
	for (int i = 0; i < 16; i++)
		h[OFF_SALT + i] = (uint8_t)(0xc0 + i);
	memcpy(h + OFF_PURPOSE, "nvram", 5);
}

struct hdr_case {
	const char *what;
	size_t off;
	uint8_t val;
	int code;
	const char *word; /* the message names the field */
};

static void test_header_refusals(void **state)
{
	static const struct hdr_case cases[] = {
		{ "magic first byte", 0, 'v', -EBADMSG, "magic" },
		{ "magic last byte", 7, 'e', -EBADMSG, "magic" },
		{ "version 2", OFF_VERSION, 2, -ENOTSUP, "version" },
		{ "version 0", OFF_VERSION, 0, -ENOTSUP, "version" },
		{ "version 257", OFF_VERSION + 1, 1, -ENOTSUP, "version" },
		{ "shift 11", OFF_SHIFT, 11, -EBADMSG, "chunk" },
		{ "shift 21", OFF_SHIFT, 21, -EBADMSG, "chunk" },
		{ "shift 0", OFF_SHIFT, 0, -EBADMSG, "chunk" },
		{ "shift 255", OFF_SHIFT, 255, -EBADMSG, "chunk" },
		{ "purpose_len 0", OFF_PURPOSE_LEN, 0, -EBADMSG, "purpose" },
		{ "purpose_len 33", OFF_PURPOSE_LEN, 33, -EBADMSG, "purpose" },
		{ "purpose_len 255", OFF_PURPOSE_LEN, 255, -EBADMSG, "purpose" },
		{ "reserved byte 0", OFF_RESERVED, 1, -EBADMSG, "reserved" },
		{ "reserved byte 3", OFF_RESERVED + 3, 0x80, -EBADMSG, "reserved" },
		{ "padding first byte", OFF_PURPOSE + 5, 'x', -EBADMSG, "pad" },
		{ "padding last byte", HDR - 1, 1, -EBADMSG, "pad" },
		{ "upper-case purpose", OFF_PURPOSE, 'N', -EBADMSG, "purpose" },
		{ "NUL in purpose", OFF_PURPOSE + 4, 0, -EBADMSG, "purpose" },
		{ "slash in purpose", OFF_PURPOSE + 2, '/', -EBADMSG, "purpose" },
		{ "space in purpose", OFF_PURPOSE + 2, ' ', -EBADMSG, "purpose" },
		{ "byte 0x80 in purpose", OFF_PURPOSE + 2, 0x80, -EBADMSG, "purpose" },
		/* purpose_len 4 leaves the 'm' of "nvram" in the padding. */
		{ "purpose_len too short", OFF_PURPOSE_LEN, 4, -EBADMSG, "pad" },
		/* purpose_len 6 takes a NUL padding byte into the purpose. */
		{ "purpose_len too long", OFF_PURPOSE_LEN, 6, -EBADMSG, "purpose" },
	};
	struct vc_secret *key = key_filled(11);
	int failures = 0;

	(void)state;
	/* Every case is tried and reported before the test fails. */
	for (size_t i = 0; i < VC_ARRAY_SIZE(cases); i++) {
		const struct hdr_case *c = &cases[i];
		struct vc_vmfile_reader *rd = NULL;
		struct vc_vmfile_info info;
		struct vc_error err = { 0 };
		uint8_t h[HDR];
		int r;

		valid_header(h);
		h[c->off] = c->val;
		r = vc_vmfile_header_parse(h, &info, &err);
		if (r != c->code) {
			print_error("%s: expected %d, got %d (%s)\n", c->what, c->code, r,
				    err.msg);
			failures++;
		} else if (!strcasestr(err.msg, c->word)) {
			print_error("%s: the message does not name the field (%s): %s\n",
				    c->what, c->word, err.msg);
			failures++;
		}
		err = (struct vc_error){ 0 };
		r = vc_vmfile_reader_new(key, "nvram", h, NULL, &rd, &err);
		if (r != c->code) {
			print_error("%s: reader_new: expected %d, got %d (%s)\n", c->what,
				    c->code, r, err.msg);
			failures++;
		}
		vc_vmfile_reader_free(rd);
	}
	vc_secret_free(key);
	assert_int_equal(failures, 0);
}

static void test_header_accepts(void **state)
{
	static const char longest[] = "abcdefghijklmnopqrstuvwxyz0123._";
	struct vc_vmfile_info info;
	struct vc_error err = { 0 };
	uint8_t h[HDR];

	(void)state;
	_Static_assert(sizeof longest - 1 == VC_VMFILE_PURPOSE_MAX, "32 bytes");
	valid_header(h);
	assert_int_equal(vc_vmfile_header_parse(h, &info, &err), 0);
	assert_string_equal(info.purpose, "nvram");
	assert_int_equal(info.chunk_shift, 12);
	assert_int_equal(info.chunk_size, 4096);
	assert_memory_equal(info.salt, h + OFF_SALT, 16);
	/* 32 bytes of purpose leave no padding; every allowed character. */
	h[OFF_SHIFT] = 20;
	h[OFF_PURPOSE_LEN] = 32;
	memcpy(h + OFF_PURPOSE, longest, 32);
	assert_int_equal(vc_vmfile_header_parse(h, &info, &err), 0);
	assert_string_equal(info.purpose, longest);
	assert_int_equal(info.chunk_size, (size_t)1 << 20);
	h[OFF_PURPOSE] = '-';
	h[OFF_PURPOSE_LEN] = 1;
	memset(h + OFF_PURPOSE + 1, 0, 31);
	assert_int_equal(vc_vmfile_header_parse(h, &info, &err), 0);
	assert_string_equal(info.purpose, "-");
	/* A salt of zeros is not the parser's business. */
	memset(h + OFF_SALT, 0, 16);
	assert_int_equal(vc_vmfile_header_parse(h, &info, &err), 0);
}

static void test_purpose_valid(void **state)
{
	(void)state;
	assert_true(vc_vmfile_purpose_valid("nvram"));
	assert_true(vc_vmfile_purpose_valid("a"));
	assert_true(vc_vmfile_purpose_valid("vtpm-state_2.bin"));
	assert_true(vc_vmfile_purpose_valid("abcdefghijklmnopqrstuvwxyz012345"));
	assert_false(vc_vmfile_purpose_valid("abcdefghijklmnopqrstuvwxyz0123456"));
	assert_false(vc_vmfile_purpose_valid(""));
	assert_false(vc_vmfile_purpose_valid("Nvram"));
	assert_false(vc_vmfile_purpose_valid("nv ram"));
	assert_false(vc_vmfile_purpose_valid("nv/ram"));
	assert_false(vc_vmfile_purpose_valid("nvram\n"));
	assert_false(vc_vmfile_purpose_valid("\xc3\xa9"));
}

/* ---- known answers ----
 * Computed by the independent Python implementation,
 * tests/integration/vc_pyvmfile.py, with key = bytes 00..1f:
 *   kat1: seal(key, "nvram", b"The quick brown fox jumps over the lazy dog!",
 *              chunk_shift=12, salt=bytes(range(0xa0, 0xb0)))
 *   kat2: seal(key, "vtpm", bytes((i * 131 + 7) & 0xff for i in range(4129)),
 *              chunk_shift=12, salt=bytes(range(0x30, 0x40)))
 *   kat3: seal(key, "dump", b"", chunk_shift=16, salt=bytes(16))
 */
static const char *const kat1_hex[] = {
	"5643564d46494c4501000c0500000000a0a1a2a3a4a5a6a7a8a9aaabacadaeaf6e767261",
	"6d0000000000000000000000000000000000000000000000000000009a824cd4eba0caf6",
	"588058ab7de1392d4e5855a3e02abba9d94c2a42e6bc04eb0efd6b4dab2d5868749f99ce",
	"e2f5ce4fe2076b6646c4a13090bb406b",
	NULL,
};

static const char *const kat3_hex[] = {
	"5643564d46494c4501001004000000000000000000000000000000000000000064756d70",
	"000000000000000000000000000000000000000000000000000000003604ff05fce87710",
	"2d31726998ed02b8",
	NULL,
};

static const char *const kat2_hex[] = {
	"5643564d46494c4501000c0400000000303132333435363738393a3b3c3d3e3f7674706d",
	"00000000000000000000000000000000000000000000000000000000c5071918cefe8d62",
	"6a3886d4516f17b5c4ced19ec782310d6971c07c6f227de94aa53ecd9d3f9dda52efbfd5",
	"b49633d197b228c3ea1fd73bb4b012615f9ab6bc744c717e95f5a2a3a856a874d6a33c6e",
	"6373f3afe76c8e6fdf854ca872282b137d78ea52ea1f17adbe520217e809476d11ca2cd9",
	"3401b4db9ec1a15f37ea5db1f556eab1b6431d1209752acf7e975dddb8de064d45aee5dc",
	"8b23dfa8110eb757edda300434ff9eb4743b1339c3ed923a5da8904601c3f5d40d1aac3b",
	"c3f56c38001a8a3ed78046905d5c774522d809c38ec325718b1297b9439bf7d8b841470b",
	"55a79e17a116badaa1f03fc2ed234db10da6bd1fe996dfa8b935cb539ebee9b12f717216",
	"dcd871aa8e576fb51f045e41f319b74db88bf31cec63167be7b5be51056878d602d91866",
	"3b2ceb285cfc0abef57484c8a7565057cfe387bbe81ca658bb45885f2ff3ef3c16a0e56a",
	"a54913964d58fee4aa9dff898a270a882c6d1de485ffdf36b5c20de04f74b4071a791986",
	"a8834791616f7420b0fb982e8ef94effeefe8dd7373aaae244e8bb80f7683cf2a99a6c08",
	"76c7d6f0ee1920e419229247c2ba39352465b535480b005c6eb2479f63c63b5b6c569861",
	"328ab5cc352ece5cb41956a14e4a5fbbab8239349d19ebc16ec55c2f0bfc547a49002668",
	"ce37f9a899d16108951cfcf2088ccfc7addb6840d0df2da2d2f0cb639dad1142dc3750f8",
	"d8309aae79e6444804b15b977943ab4aece7c787c20e73d92e34b2d388f8b19c1963bb52",
	"ad3eec05218927005a80a46f19f788a4a861ded71384876a5fdd2f555d76962c445349c2",
	"23ebdbe53780d10471cad94438be319c4da2f5908f0ed95057983dad32e6f33549b34d2a",
	"34e5365610985e09c0a1da27a23c2012d778e514861c336fd7e585cfc49a094812a488f7",
	"110990ab214885582aecb5d4157df06ee555b7f865dc3c25770915028d43888135b46ecf",
	"5f0d61fe5a4769c49fbb2619dfaf8797bf4772799b1e423c3b034475645619ff4ede4da6",
	"d90b91c5be1280fa3904fceed889013cb8b7ad7b45e2750c190745b41b78aa7841d9863e",
	"b9a7c54b7e5d3369974c384e5b62a964898035bbe9fa159b60a80ac18f706fb0732a8d19",
	"5155edb7157e86355df8c75ed66a0236edb58cae7ac939ade91dd5cef7ee65b31ad9b010",
	"efc72bba5fe466770f4da7ff73dddf0b16bd50711fee268f1a052691e36a0b72a9fc2690",
	"85dc28bd6b468d9ebe388a60ba345316d8240bb2944d96768d09f4ac38377686eeb6d010",
	"c7f05c5e23912ca8ac99ad54ad1aaa7ba4a511ee176e3d30d46b32b88e7049e16534323d",
	"21126c9fa3844de3939f0694934510c2f48e510f07c86d2f18b728ab9dd27cc0820f1809",
	"d061c8674e8e280305eae2c882f42124097c84e19330594cbbf55e1b7685991ff1687759",
	"4ebee757bad6f17acd65c72204ec5d262b309aaf3e3a85ff1dd73e7e1c85308949a59fef",
	"3e17945a13599e6fbc74e13c78eab78c1057655d608f6ab400cc121ef15eb1b8ca0be71c",
	"89e62bfdefd0f24800880afb9a4384c98de4b712c123ce3b5979d20975d0b241d9a25903",
	"b1abb3e7369c0b0182db446e052d608d9a06fb38f49b685790e470f9c75375108f0c1beb",
	"2f929093698561f58f9162f40830a301455639b1274ad68b96ec9cc045b0a77e0afd4f7c",
	"e4b323124126f3d8701ab224da52b2efbf3affa25d74943d57af85ee0d835b2cd6ef8dff",
	"6d82423eebd83e3821b1e7a5ad80764b3333fd488c114db940ffd83db000bbced131333b",
	"25433fa65ed09363c59555a76dd920ef02027d60ea2c133774e15ef7ac88fca6f660991d",
	"03eaf5eb26c75b1032597c7ca1053d27e291427bd3a6c3f48da27e0eaec455dc03c08f14",
	"f4930824466acbd405be58d0a6f25ab0363901e2ddc39e49bc6649e3f4be21693c554c92",
	"e611f2b84f3159ae306a9d5e2a06a8ae31473a1d5b85ca94e189c9be0fe7ded21da2b203",
	"4f638f5c9b303c57368f2b914f95480d19b4c495ad1e5203f7d7d4af6ad792d5a8934c2f",
	"03ac2ecdd8f949945a3e91d3a03d1a547c425c6498555fbfe0631d8fab4d88885edbecf3",
	"e6d7430b6866f136381d7f14bfa62a2839bda0019d3828b34f685cd8473ecd44c24ceb15",
	"7d58c0010ca0cffa008f513705dd57dd46e218a7525deb5d9ae47c9816d9842e12a29564",
	"6df231364541b22d5b2d2675a45efae875f192ad07b0824c8d2f6af6cd825da268da5fa2",
	"2979e677958051885739be3fefecb5dbffb602a325adfe14d6b53d0b709d4d197c90a8d2",
	"df9e6a5c4e17e5c7aa4c0008581bce183558cf98cb629fdbc7eec1eabdae364e0b1c37fb",
	"be4c6b9821a629375038c0b6faee033747c616340d0196e78a0a9e6df9ff0d467570ff8f",
	"d01bbb7ba129ed08482c75600135aa6cfd88ae4c0dc6353c0261e117642afc29b239b3fd",
	"8a7bde0cb9e8d00023444f36c8926a05d31b053e39bb3a6547993cfef246b968200a47e9",
	"2a6a96ef2263c219f231ad17ff9d09a4a1e8e074bb54257250891cecc69576cbab25cca3",
	"118ab9e60bd3f2001fe576f5dc023ecbe1a27097aaa1828861a5b1c13f907f4d2fcd5bf3",
	"8991779c7382e299dae0cdb3ade329b401d60bbb58e4b00fc33ff963744b02138dd36bb2",
	"c83ba7ef292c74160338758deabed95475fdb4ec26ec433aa1a82484dceb7c9f6eed563c",
	"72b188898cb221aaa79a932f2245e495ab8e3413f9ec62b215150a20948aae88f8e9f8b8",
	"c5fdb1b2c2af52a46bc178238ba8f08e015e2ae5a7a21717b09278e2da2e3c4b0a766ad3",
	"bed8ef5f290857150fb0798bbb23ba06e28c9b95cc54bee9c0ffcb319a694b1837c6742a",
	"105879f5afa4d217c2bdc10a4d7946b2649824e32838929e12e4f22f1a2f249b9a4cb5e0",
	"b0282d77c8757a491664caf2457c800eb9a8fa1a8df3f1bc0fead1405488c4a9ae937423",
	"37f31b496664b8fca1a00843e0b0ed4c366022bfd7e16511e414ec8fcd70596396a247bd",
	"d7f37ef53243a89a3dd78ff59c8844620319732a6b9b1f7439c5d28adf862d0e14a41c09",
	"1151736f745fd05b107886f0f783e23ed77aa8bd898b5849f06f00d712312655e578b6d2",
	"89a31d8403f10d8548239767a8b87141aec97459fcb1acaf5968f792bbef349add25ba71",
	"bc34780849d06e64d5b57e10437accd3a041da10d1d5cea031fe20be727f3314cf9ec857",
	"bbfc63504c2f4d033962fa4ee4b863c1457c8589f9d71397b2c0ff183bcff7ab037ff983",
	"a0ede73a562c10272b4648f09f51aad8186f34b527ee642fe28e096a646f528d11836122",
	"29a27207d7002ea7b3aa68dba8b11ac68d536795fd932fcbf67a3c2a70fbbff814ee0293",
	"aa5a534060317ffd6a6c241d083a51e180e510e5affc7314d9f9be3fee48d5a88fdada59",
	"3f40d4ffe1271eeb0c7540534534ad6a7feb79746109994f8da336e3b76ab86fce142e64",
	"17e0581acabd1a5134d4de72bd74f33eb94a5fd5ba4387de16031ddfff45542e7143e276",
	"30c913b544dbd35c7b932c2882c4318d5b7409a8077adc8179f9696157290e48de46d3ef",
	"bf789711d45ddc6f9905ce19bbef456c514ce34c92e30ca9cb0f11b1d483e48627f78085",
	"0ca49a7f7f6edcb912811aa61b63b44467102e1ef36638b6123ec403f3993db96c62796b",
	"55ab15afdd2046e05d740325ebafd9de58e34dcf84058d9aa694673dc04e411bb1395466",
	"becb11a8227ceb8ea79be115b43dbec679b4fd16a42cdc107008b0d8876dea0d3ebf5dc2",
	"ec51083059d77b6a5ed4a8219bf17c4a3bf9436cc6e9fa26bf876519fee500f8d1f84e09",
	"8d47ccf921433273f363a020dee46788d37f35a94267402dc9d30fa36b37dba672906f22",
	"7e0656e0b5b10ba70ba44fe846dc3892959c32c30e24c663fa9d55fe0ba2f1a33dcc2e59",
	"327c0573d9d3775add2f8cbd2c489976042438c25df6872d300d3b107982b04f2f00d69e",
	"83fa94a83e708089deacc336e33d984472e0ec64008441f11acd29cd0e64a03515dc7d0f",
	"c84a589b863bef74b8ba11418fb09e4da78379500fcbc731665a33385a8c9c2471f73db0",
	"a9f0b98aa89896483f08642cf5ef0299c27aadf0c1625d98f4217073e8ed1ad51556cd51",
	"819bc6df32b246bc74cfb4948c0b322a5b5ceabcc939e866fceea0a6964bd5aaf3ee6617",
	"1ef7712f676bb6762c80981f3fd9708de10e92e6debc74d1e29547b8e5e1a7b344311fca",
	"31a525431b56c753886473f56344e1e9f8be67da4a9c2d5d27e9d8e20d7c3b9e498e5e57",
	"0c7741b3fb7a44a51efa7abae5432213290a4fdbb388b7c16d52cd053af2397105dbe81a",
	"384555a3cc5b7ee01dd34c94e37b5b69e60c57eba8645a74edd9d4784f5d318bdb35bb66",
	"619cfe21cffdffd890bb912e23b2e81378318d9b1d8fadf411dd6c63b1297c1c38c1b717",
	"7b00348228a078dcb63f8492290c055fa237ce662805c5182657de17fb6134bc67dacc83",
	"72627e0f466171939385f3973b9edd3352558fe848197f17ee3f9f5b7316a5dd448c8fee",
	"58d753345d9e0400e8e248c604d4c5315c5a0c3291b522fc5e8df57795e507b8db8a8f0f",
	"2727eb3b404bf0019c1459ae3011f242d51df9e91a121b3ad229281e3f5b104aaac786f4",
	"65304fa16aa9e3712456fb1ee341b239821c6529227d1702a4df5983d6487b1c52be45e3",
	"cab52815026c5a3bfa04084f5d01a74a633c1fedb2cd8c666f2ca1bc6ef3a111412a71f5",
	"3b73b7ed5c8a19497feb9fcf81281316aff1e53cc2eb8ea554751718892442a997b5a194",
	"975cb81b508cb2c81d226ddc1b4db30f86f1efeb47182be408b9f69a3013454129ca6800",
	"d7d9b6b500196334ba3d4472e4d8fe65b35f11d6d1f65674ed2be7afe081746f4e248ab7",
	"ebe7bdb43b5c80672dafff7ce0f62546090230e1c3e051bb45c18c365118e28cec8d1aa2",
	"3ece34f9e3f3678f20b1abd317d91497696c9ea3eb3e705173080b175325a812468deee6",
	"40543ed68a28c23963ec02b2614e6fe485e4364aca75fbb91868c90fa771c1b3c28be552",
	"805b6565e573a1484e329c4ee7ece4f71e4fa40794b92451d81f84a6fc27873129c1afac",
	"9b31e5b51d8ae9a36352444c996e71a90786617eb654d480ff13696ebd2e8742108a928c",
	"7dbb0ddae50e60f0587c5429458473dc1e26543211f4a8757671d5aad4475bd9c5a6f799",
	"daa71c3591ed8de790fb66318322fe5da2a4a9e86db662bd5b68652ba600e4f3dbceb275",
	"02ef8808cb822cae879630e171deb6cc75e468547a8359cceff045937d45e66a4a200c9d",
	"1b4bff034e6dd0bf7a315029baab075b10987725f41d0081a4e84755a053874bca8c031a",
	"d3399e13ce507aaa24db5a7f1f18af6006d0a0f0dbfb7dd6812256e00b4c5833931657a8",
	"0ec77e87963215872c1ebd9bf48187f49f6a4b297e73cf6aee8a3723aa23258e4924028f",
	"51d32be545efe6bc04897f8354155773660808178868b5dc7992efc23467a56b52be7d5b",
	"74ac04ef34c79a8d8654ef3210e12aae310ab1b4cc969dc5586f647ad338f66cbe9306f3",
	"2d5c3cb8980c874c537acb28cb423989cef8a11a3680220e9eb4cbf757bb06da60e61986",
	"8e2a50efbc044adbac4f283a35f1b535fafadd86f7b1ad5317fcb64e0e142f2d8cb3d04b",
	"98a0aca4798aa8706b488bcaa2b1fc56b315291ee4e1297bba550b79bdd04e08a053131a",
	"2e247b8e66b9d3b837c784dd8a0acf652c2cbc328844f5236d58ad4512feb06454d75a8f",
	"aaf596f403fc1148cd1e960f148358793e6665a55bbaed7f1bf6ad10736e183520ca7b88",
	"6114b5e44abe7200d2fe19d5a7a42f059e1434fd49e5f3ddf2cc7c30e5425ca16b9297ba",
	"0b6861c1670af75831470b74bc",
	NULL,
};

static struct vc_secret *kat_key(void)
{
	return key_filled(0);
}

/* The vectors are arrays of lines: C99 promises string literals of 4095
 * bytes only. */
static uint8_t *unhex(const char *const *lines, size_t *len)
{
	size_t n = 0, at = 0;
	uint8_t *b;

	for (size_t i = 0; lines[i]; i++)
		n += strlen(lines[i]);
	b = malloc(n / 2);
	assert_non_null(b);
	for (size_t i = 0; lines[i]; i++) {
		const size_t l = strlen(lines[i]);
		size_t got = 0;

		assert_int_equal(vc_hex_decode(lines[i], l, b + at, n / 2 - at, &got), 0);
		at += got;
	}
	*len = at;
	return b;
}

static void check_kat(const char *const *hex, const char *purpose, unsigned shift,
		      const uint8_t *salt, const uint8_t *pt, size_t ptlen)
{
	struct vc_secret *key = kat_key();
	struct vc_vmfile_info info;
	struct vc_error err = { 0 };
	uint8_t *f = NULL, *back = NULL;
	size_t flen = 0, blen = 0;
	int r;

	f = unhex(hex, &flen);
	assert_int_equal(flen, sealed_len(ptlen, (size_t)1 << shift));
	assert_int_equal(vc_vmfile_header_parse(f, &info, &err), 0);
	assert_int_equal(info.chunk_shift, shift);
	assert_string_equal(info.purpose, purpose);
	assert_memory_equal(info.salt, salt, VC_VMFILE_SALT_LEN);
	r = open_mem(key, purpose, f, flen, &back, &blen, &err);
	if (r != 0)
		fail_msg("known answer (%s) does not open: %d %s", purpose, r, err.msg);
	assert_int_equal(blen, ptlen);
	if (ptlen)
		assert_memory_equal(back, pt, ptlen);
	free(back);
	/* Each byte of the vector matters: a flip in the header, the first
	 * ciphertext byte or the last tag byte fails. */
	{
		const size_t at[] = { 20, HDR, flen - 1 };

		for (size_t i = 0; i < VC_ARRAY_SIZE(at); i++) {
			f[at[i]] ^= 1;
			assert_int_equal(open_mem(key, purpose, f, flen, &back, &blen, &err),
					 -EBADMSG);
			f[at[i]] ^= 1;
		}
	}
	free(f);
	vc_secret_free(key);
}

static void test_kat_one_chunk(void **state)
{
	static const char pt[] = "The quick brown fox jumps over the lazy dog!";
	uint8_t salt[16];

	(void)state;
	for (int i = 0; i < 16; i++)
		salt[i] = (uint8_t)(0xa0 + i);
	check_kat(kat1_hex, "nvram", 12, salt, (const uint8_t *)pt, sizeof pt - 1);
}

static void test_kat_two_chunks(void **state)
{
	uint8_t salt[16], pt[4129];

	(void)state;
	for (int i = 0; i < 16; i++)
		salt[i] = (uint8_t)(0x30 + i);
	for (size_t i = 0; i < sizeof pt; i++)
		pt[i] = (uint8_t)((i * 131 + 7) & 0xff);
	check_kat(kat2_hex, "vtpm", 12, salt, pt, sizeof pt);
}

static void test_kat_empty(void **state)
{
	uint8_t salt[16] = { 0 };

	(void)state;
	check_kat(kat3_hex, "dump", 16, salt, NULL, 0);
}

/* ---- descriptors ---- */

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("vmfile-test", MFD_CLOEXEC);

	assert_true(fd >= 0);
	if (len)
		assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static uint8_t *memfd_contents(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *b;

	assert_true(end >= 0);
	b = malloc(end ? (size_t)end : 1);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, (size_t)end, 0), end);
	*len = (size_t)end;
	return b;
}

/* open_fd over a memfd; returns its result and the plaintext. */
static int open_fd_mem(const struct vc_secret *key, const char *purpose, const uint8_t *f,
		       size_t flen, uint8_t **pt, size_t *ptlen, struct vc_error *err)
{
	int in = memfd_with(f, flen), out = memfd_with(NULL, 0);
	uint64_t plain = 12345;
	int r = vc_vmfile_open_fd(key, purpose, in, out, &plain, err);

	*pt = memfd_contents(out, ptlen);
	if (r == 0)
		assert_int_equal(plain, *ptlen);
	close(in);
	close(out);
	return r;
}

static void test_fd_round_trips(void **state)
{
	struct vc_secret *key = key_filled(12);
	const size_t sizes[] = { 0, 1, 4095, 4096, 4097, 3 * 4096, 70000 };
	struct vc_error err = { 0 };

	(void)state;
	for (size_t i = 0; i < VC_ARRAY_SIZE(sizes); i++) {
		const size_t len = sizes[i];
		uint8_t *pt = random_bytes(len), *f, *back, *f2;
		int in = memfd_with(pt, len), out = memfd_with(NULL, 0);
		uint64_t written = 0;
		size_t flen, blen, f2len;
		int r;

		r = vc_vmfile_seal_fd(key, "memory", 12, in, out, &written, &err);
		if (r != 0)
			fail_msg("seal_fd of %zu bytes: %d %s", len, r, err.msg);
		f = memfd_contents(out, &flen);
		assert_int_equal(flen, sealed_len(len, 4096));
		assert_int_equal(written, flen);
		expect_header(f, 12, "memory");
		close(in);
		close(out);
		/* The descriptor writer's file through the chunk reader... */
		assert_int_equal(open_mem(key, "memory", f, flen, &back, &blen, &err), 0);
		assert_int_equal(blen, len);
		if (len)
			assert_memory_equal(back, pt, len);
		free(back);
		/* ...and the chunk writer's file through the descriptor reader. */
		f2 = seal_mem(key, "memory", 12, pt, len, &f2len);
		r = open_fd_mem(key, "memory", f2, f2len, &back, &blen, &err);
		if (r != 0)
			fail_msg("open_fd of %zu bytes: %d %s", len, r, err.msg);
		assert_int_equal(blen, len);
		if (len)
			assert_memory_equal(back, pt, len);
		free(back);
		free(f2);
		free(f);
		free(pt);
	}
	vc_secret_free(key);
}

static void test_fd_from_a_pipe(void **state)
{
	struct vc_secret *key = key_filled(13);
	const size_t len = 3 * 4096 + 5;
	uint8_t *pt = random_bytes(len), *f, *back;
	struct vc_error err = { 0 };
	size_t flen, blen;
	uint64_t plain = 0;
	int p[2], out;

	(void)state;
	f = seal_mem(key, "vtpm", 12, pt, len, &flen);
	/* All of it fits in a pipe buffer, so no second thread is needed. */
	assert_true(flen < 65536);
	for (int cut = 0; cut < 2; cut++) {
		/* cut: the file minus its final chunk (exactly at a boundary). */
		const size_t n = cut ? HDR + 3 * (4096 + TAG) : flen;

		assert_int_equal(pipe(p), 0);
		assert_int_equal(write(p[1], f, n), (ssize_t)n);
		close(p[1]);
		out = memfd_with(NULL, 0);
		if (!cut) {
			assert_int_equal(vc_vmfile_open_fd(key, "vtpm", p[0], out, &plain, &err), 0);
			assert_int_equal(plain, len);
		} else {
			assert_int_equal(vc_vmfile_open_fd(key, "vtpm", p[0], out, &plain, &err),
					 -EBADMSG);
		}
		back = memfd_contents(out, &blen);
		if (!cut) {
			assert_int_equal(blen, len);
			assert_memory_equal(back, pt, len);
		} else {
			/* Nothing of the chunk that failed (chunk 2, now last). */
			assert_true(blen <= 2 * 4096);
			assert_memory_equal(back, pt, blen);
		}
		free(back);
		close(out);
		close(p[0]);
	}
	free(f);
	free(pt);
	vc_secret_free(key);
}

static void test_fd_refusals(void **state)
{
	struct vc_secret *key = key_filled(14);
	const size_t len = 2 * 4096 + 10, full = 4096 + TAG;
	uint8_t *pt = random_bytes(len), *f, *g, *back;
	struct vc_error err = { 0 };
	size_t flen, blen;
	struct {
		const char *what;
		size_t len;
	} cuts[] = {
		{ "empty", 0 },
		{ "half a header", HDR / 2 },
		{ "header only", HDR },
		{ "header and 15 bytes", HDR + 15 },
		{ "header and one tag", HDR + TAG },
		{ "cut after chunk 0", HDR + full },
		{ "cut after chunk 1", HDR + 2 * full },
		{ "cut 15 bytes into the final chunk", HDR + 2 * full + 15 },
		{ "cut one byte short", 0 },
		{ "one byte extra", 0 },
		{ "a whole chunk extra", 0 },
	};

	(void)state;
	f = seal_mem(key, "nvram", 12, pt, len, &flen);
	g = malloc(flen + full);
	assert_non_null(g);
	memcpy(g, f, flen);
	memcpy(g + flen, f + HDR, full); /* chunk 0 again */
	cuts[8].len = flen - 1;
	cuts[9].len = flen + 1;
	cuts[10].len = flen + full;
	for (size_t i = 0; i < VC_ARRAY_SIZE(cuts); i++) {
		int r = open_fd_mem(key, "nvram", g, cuts[i].len, &back, &blen, &err);

		if (r != -EBADMSG)
			fail_msg("%s: expected -EBADMSG, got %d (%s)", cuts[i].what, r, err.msg);
		assert_true(err.msg[0] != '\0');
		assert_null(strchr(err.msg, '\n'));
		/* Only whole chunks before the failing one. */
		assert_true(blen % 4096 == 0 && blen <= 2 * 4096);
		if (blen)
			assert_memory_equal(back, pt, blen);
		free(back);
	}
	/* Another purpose, another key, another version. */
	assert_int_equal(open_fd_mem(key, "vtpm", f, flen, &back, &blen, &err), -EBADMSG);
	assert_int_equal(blen, 0);
	free(back);
	{
		struct vc_secret *other = key_filled(15);

		assert_int_equal(open_fd_mem(other, "nvram", f, flen, &back, &blen, &err),
				 -EBADMSG);
		assert_int_equal(blen, 0);
		free(back);
		vc_secret_free(other);
	}
	f[OFF_VERSION] = 2;
	assert_int_equal(open_fd_mem(key, "nvram", f, flen, &back, &blen, &err), -ENOTSUP);
	assert_int_equal(blen, 0);
	free(back);
	free(g);
	free(f);
	free(pt);
	vc_secret_free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_round_trip_every_shift),
		cmocka_unit_test(test_fresh_salt),
		cmocka_unit_test(test_writer_refusals),
		cmocka_unit_test(test_reader_wrong_purpose),
		cmocka_unit_test(test_reader_wrong_key),
		cmocka_unit_test(test_reader_chunk_sizes),
		cmocka_unit_test(test_reader_after_failure),
		cmocka_unit_test(test_reader_after_final),
		cmocka_unit_test(test_reader_order_and_final_flag),
		cmocka_unit_test(test_header_refusals),
		cmocka_unit_test(test_header_accepts),
		cmocka_unit_test(test_purpose_valid),
		cmocka_unit_test(test_kat_one_chunk),
		cmocka_unit_test(test_kat_two_chunks),
		cmocka_unit_test(test_kat_empty),
		cmocka_unit_test(test_fd_round_trips),
		cmocka_unit_test(test_fd_from_a_pipe),
		cmocka_unit_test(test_fd_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
