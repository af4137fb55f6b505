/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for vc_disk: format, I/O model, holes, header damage, rekey and crash safety. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memio.h"
#include "vc_crypto.h"
#include "vc_disk.h"
#include "vc_wrap.h"

#define KIB ((uint64_t)1024)
#define MIB (1024 * KIB)
#define HDR VC_DISK_HEADER_SIZE

/* Header layout (docs/FORMAT.md), used to tamper with copies. */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_COPY = 10,
	H_HDRSIZE = 12,
	H_SEQ = 16,
	H_UUID = 24,
	H_VSIZE = 40,
	H_SECTOR = 48,
	H_CIPHER = 52,
	H_PAYLOAD = 56,
	H_JOFF = 64,
	H_JSIZE = 72,
	H_FLAGS = 80,
	H_PROGRESS = 88,
	H_JSTART = 96,
	H_JCOUNT = 104,
	H_JSHA = 112,
	H_SLOT0 = 144,
	H_SLOT1 = 464,
	H_SLOT_SIZE = 320,
	H_MAC = 4032,      /* HMAC-SHA-256 of [0, 4032) */
	H_CHECKSUM = 4064, /* SHA-256 of [0, 4064), the MAC included */
	/* within a slot */
	S_STATE = 0,
	S_KEYLEN = 4,
	S_GEN = 8,
	S_PROVIDER = 16,
	S_KEY_ID = 80,
	S_WRAPPED = 208,
	S_WRAPPED_LEN = 92,
};

/* ---- helpers -------------------------------------------------------------- */

/* Deterministic so that a failure reproduces. */
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd(void)
{
	return rng_next(&g_rng);
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void rng_fill(uint64_t *s, void *p, size_t len)
{
	uint8_t *b = p;

	while (len >= 8) {
		uint64_t v = rng_next(s);

		memcpy(b, &v, 8);
		b += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = rng_next(s);

		memcpy(b, &v, len);
	}
}

static void rnd_fill(void *p, size_t len)
{
	rng_fill(&g_rng, p, len);
}

#define OK(call)                                                              \
	do {                                                                  \
		vc_error_clear(&err);                                         \
		int r_ = (call);                                              \
		if (r_ != 0)                                                  \
			fail_msg("%s = %d: %s", #call, r_, vc_error_msg(&err)); \
	} while (0)

/* Expect a failure with this code and a message containing want. */
#define FAILS(call, code, want)                                               \
	do {                                                                  \
		vc_error_clear(&err);                                         \
		int r_ = (call);                                              \
		if (r_ != (code))                                             \
			fail_msg("%s = %d (want %d): %s", #call, r_, (code),  \
				 vc_error_msg(&err));                         \
		if ((want) && !strstr(vc_error_msg(&err), (want) ? (want) : "")) \
			fail_msg("%s: message '%s' lacks '%s'", #call,        \
				 vc_error_msg(&err), (want) ? (want) : "");   \
	} while (0)

static struct vc_secret *kek_new(void)
{
	struct vc_secret *k = NULL;

	assert_int_equal(vc_random_secret(VC_KEK_LEN, &k, NULL), 0);
	return k;
}

static uint64_t container_size(uint64_t vsize, uint32_t ss)
{
	struct vc_error err = { 0 };
	uint64_t n = 0;

	OK(vc_disk_container_size(vsize, ss, &n, &err));
	return n;
}

static struct memio *make_disk_ex(uint64_t vsize, uint32_t ss,
				  const struct vc_secret *kek, const char *provider,
				  const char *key_id, const struct vc_uuid *uuid,
				  struct vc_uuid *uuid_out)
{
	struct memio *m = memio_new(container_size(vsize, ss));
	struct vc_disk_params p = {
		.virtual_size = vsize,
		.sector_size = ss,
		.provider = provider,
		.key_id = key_id,
		.uuid = uuid,
	};
	struct vc_disk_io io;
	struct vc_error err = { 0 };

	memio_io(m, &io);
	OK(vc_disk_format(&io, &p, kek, uuid_out, &err));
	return m;
}

static struct memio *make_disk(uint64_t vsize, uint32_t ss, const struct vc_secret *kek)
{
	return make_disk_ex(vsize, ss, kek, "prov-a", "key-0001", NULL, NULL);
}

static struct vc_disk *open_ok(struct memio *m, const struct vc_secret *kek,
			       const struct vc_secret *next, unsigned flags)
{
	struct vc_disk_io io;
	struct vc_error err = { 0 };
	struct vc_disk *d = NULL;
	int r;

	memio_io(m, &io);
	r = vc_disk_open(&io, kek, next, flags, &d, &err);
	if (r != 0)
		fail_msg("vc_disk_open = %d: %s", r, vc_error_msg(&err));
	assert_non_null(d);
	return d;
}

/* Open and close again; returns the open result. */
static int open_try(struct memio *m, const struct vc_secret *kek,
		    const struct vc_secret *next, unsigned flags, struct vc_error *err)
{
	struct vc_disk_io io;
	struct vc_disk *d = (struct vc_disk *)&io; /* must be reset to NULL */
	int r;

	vc_error_clear(err);
	memio_io(m, &io);
	r = vc_disk_open(&io, kek, next, flags, &d, err);
	if (r == 0) {
		assert_non_null(d);
		vc_disk_close(d);
	} else {
		assert_null(d);
		assert_true(r < 0);
		assert_true(err->msg[0] != '\0');
	}
	return r;
}

static int inspect(struct memio *m, struct vc_disk_info *info, struct vc_error *err)
{
	struct vc_disk_io io;

	vc_error_clear(err);
	memio_io(m, &io);
	return vc_disk_inspect(&io, info, err);
}

static struct vc_disk_info inspect_ok(struct memio *m)
{
	struct vc_disk_info info;
	struct vc_error err = { 0 };

	OK(inspect(m, &info, &err));
	return info;
}

/* vsnprintf: truncating a diagnostic is fine. */
static void say(char *why, size_t whylen, const char *fmt, ...) VC_PRINTF(3, 4);
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static bool first_diff(const uint8_t *a, const uint8_t *b, uint64_t n, uint64_t *at)
{
	if (memcmp(a, b, n) == 0)
		return false;
	for (uint64_t i = 0; i < n; i++) {
		if (a[i] != b[i]) {
			*at = i;
			return true;
		}
	}
	return false;
}

/* Read the whole disk and compare with the reference; on mismatch return
 * false and describe it. */
static bool matches_ref(struct vc_disk *d, const uint8_t *ref, uint64_t vsize,
			char *why, size_t whylen)
{
	struct vc_error err = { 0 };
	uint8_t *buf = malloc(vsize);
	uint64_t at;
	bool ok = true;
	int r;

	assert_non_null(buf);
	memset(buf, 0xa5, vsize);
	r = vc_disk_read(d, buf, vsize, 0, &err);
	if (r != 0) {
		snprintf(why, whylen, "read failed: %d %s", r, vc_error_msg(&err));
		ok = false;
	} else if (first_diff(buf, ref, vsize, &at)) {
		snprintf(why, whylen, "byte %llu (sector %llu of %u) is 0x%02x, want 0x%02x",
			 (unsigned long long)at,
			 (unsigned long long)(at / vc_disk_sector_size(d)),
			 vc_disk_sector_size(d), buf[at], ref[at]);
		ok = false;
	}
	free(buf);
	return ok;
}

static void check_all(struct vc_disk *d, const uint8_t *ref, uint64_t vsize)
{
	char why[256];

	if (!matches_ref(d, ref, vsize, why, sizeof why))
		fail_msg("disk differs from the reference: %s", why);
}

static bool all_zero(const uint8_t *p, uint64_t len)
{
	for (uint64_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static uint8_t *hdr(struct memio *m, int copy)
{
	return m->data + (size_t)copy * HDR;
}

static void fix_sum(struct memio *m, int copy)
{
	assert_int_equal(vc_sha256(hdr(m, copy), H_CHECKSUM, hdr(m, copy) + H_CHECKSUM, NULL), 0);
}

static bool sum_ok(struct memio *m, int copy)
{
	uint8_t s[VC_SHA256_LEN];

	assert_int_equal(vc_sha256(hdr(m, copy), H_CHECKSUM, s, NULL), 0);
	return memcmp(s, hdr(m, copy) + H_CHECKSUM, sizeof s) == 0;
}

/* Set an integer field of width 1, 2, 4 or 8 bytes; wider: fill bytes. */
static void put_field(uint8_t *h, unsigned off, unsigned width, uint64_t v)
{
	switch (width) {
	case 1: h[off] = (uint8_t)v; break;
	case 2: vc_put_le16(h + off, (uint16_t)v); break;
	case 4: vc_put_le32(h + off, (uint32_t)v); break;
	case 8: vc_put_le64(h + off, v); break;
	default: memset(h + off, (int)v, width); break;
	}
}

/* Tamper with the given copies and recompute their keyless checksums. */
static void tamper(struct memio *m, unsigned copies, unsigned off, unsigned width,
		   uint64_t v)
{
	for (int c = 0; c < 2; c++) {
		if (!(copies & (1u << c)))
			continue;
		put_field(hdr(m, c), off, width, v);
		fix_sum(m, c);
	}
}

#define BOTH 3u

static struct memio *memio_clone(const struct memio *m)
{
	return memio_from(m->data, m->size);
}

static bool same_bytes(const struct memio *a, const struct memio *b)
{
	return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

/* Random contents with holes: about one sector in eight is zero, and the
 * chunk hole_chunk (of chunk bytes) is zero throughout. The last sector is
 * data so that the last rekey chunk is never empty. */
static void fill_ref(uint8_t *ref, uint64_t vsize, uint32_t ss, uint64_t chunk, int hole_chunk)
{
	rnd_fill(ref, vsize);
	for (uint64_t s = 0; s + 1 < vsize / ss; s++)
		if (rnd_below(8) == 0)
			memset(ref + s * ss, 0, ss);
	if (hole_chunk >= 0 && (uint64_t)hole_chunk * chunk < vsize) {
		uint64_t start = (uint64_t)hole_chunk * chunk;
		uint64_t len = vsize - start < chunk ? vsize - start : chunk;

		memset(ref + start, 0, len);
	}
}

/* ---- format, inspect, open ------------------------------------------------ */

static uint32_t ss512 = 512, ss4096 = 4096;

static void test_container_size(void **state)
{
	struct vc_error err = { 0 };
	uint64_t n = 0, n2 = 0;

	(void)state;
	OK(vc_disk_container_size(4 * MIB, 512, &n, &err));
	OK(vc_disk_container_size(8 * MIB, 512, &n2, &err));
	assert_true(n >= 4 * MIB + 2 * HDR);
	assert_int_equal(n2 - n, 4 * MIB); /* header area is fixed */
	OK(vc_disk_container_size(VC_DISK_MAX_SIZE, 4096, &n, &err));
	FAILS(vc_disk_container_size(0, 512, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(1000, 512, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(4 * MIB, 1000, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(4 * MIB, 0, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(4096 + 512, 4096, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(VC_DISK_MAX_SIZE + 4096, 4096, &n, &err), -EINVAL, NULL);
	FAILS(vc_disk_container_size(UINT64_MAX - 511, 512, &n, &err), -EINVAL, NULL);
}

static void test_roundtrip(void **state)
{
	const uint32_t ss = *(const uint32_t *)*state;
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new();
	struct vc_uuid u, got, u2;
	struct vc_disk_info info, info2;
	struct vc_error err = { 0 };
	struct vc_disk *d;
	struct memio *m, *m2;
	uint8_t *buf, *ref;

	for (int i = 0; i < 16; i++)
		u.b[i] = (uint8_t)(0x10 + i * 7);
	m = make_disk_ex(vsize, ss, kek, "prov-a", "key-0001", &u, &got);
	assert_memory_equal(got.b, u.b, 16);

	info = inspect_ok(m);
	assert_int_equal(info.version, VC_DISK_VERSION);
	assert_memory_equal(info.uuid.b, u.b, 16);
	assert_int_equal(info.virtual_size, vsize);
	assert_int_equal(info.sector_size, ss);
	assert_int_equal(info.cipher, VC_DISK_CIPHER_AES256_XTS);
	assert_int_equal(info.payload_offset, 2 * MIB);
	assert_int_equal(info.payload_offset + vsize, container_size(vsize, ss));
	assert_true(info.journal_offset >= 2 * HDR);
	assert_int_equal(info.journal_size, 1 * MIB);
	assert_true(info.journal_offset + info.journal_size <= info.payload_offset);
	assert_true(info.slot[0].active);
	assert_false(info.slot[1].active);
	assert_int_equal(info.slot[0].generation, 1);
	assert_string_equal(info.slot[0].provider, "prov-a");
	assert_string_equal(info.slot[0].key_id, "key-0001");
	assert_false(info.rekey_active);
	assert_false(info.journal_pending);
	assert_int_equal(info.rekey_progress, 0);
	assert_true(info.copy_ok[0]);
	assert_true(info.copy_ok[1]);
	assert_string_equal(info.copy_problem[0], "");
	assert_string_equal(info.copy_problem[1], "");
	assert_true(info.sequence >= 1);

	/* The documented byte layout, in both copies. */
	for (int c = 0; c < 2; c++) {
		const uint8_t *h = hdr(m, c);

		assert_memory_equal(h + H_MAGIC, "VMCRYPT\0", 8);
		assert_int_equal(vc_get_le16(h + H_VERSION), 1);
		assert_int_equal(vc_get_le16(h + H_COPY), c);
		assert_int_equal(vc_get_le32(h + H_HDRSIZE), HDR);
		assert_int_equal(vc_get_le64(h + H_SEQ), info.sequence);
		assert_memory_equal(h + H_UUID, u.b, 16);
		assert_int_equal(vc_get_le64(h + H_VSIZE), vsize);
		assert_int_equal(vc_get_le32(h + H_SECTOR), ss);
		assert_int_equal(vc_get_le32(h + H_CIPHER), VC_DISK_CIPHER_AES256_XTS);
		assert_int_equal(vc_get_le64(h + H_PAYLOAD), 2 * MIB);
		assert_int_equal(vc_get_le64(h + H_JOFF), info.journal_offset);
		assert_int_equal(vc_get_le64(h + H_JSIZE), info.journal_size);
		assert_int_equal(vc_get_le32(h + H_FLAGS), 0);
		assert_int_equal(vc_get_le32(h + H_SLOT0 + S_STATE), 1);
		assert_int_equal(vc_get_le32(h + H_SLOT0 + S_KEYLEN), 64);
		assert_int_equal(vc_get_le64(h + H_SLOT0 + S_GEN), 1);
		assert_string_equal((const char *)h + H_SLOT0 + S_PROVIDER, "prov-a");
		assert_string_equal((const char *)h + H_SLOT0 + S_KEY_ID, "key-0001");
		assert_true(all_zero(h + H_SLOT1, H_SLOT_SIZE));
		assert_true(all_zero(h + H_SLOT1 + H_SLOT_SIZE, H_MAC - H_SLOT1 - H_SLOT_SIZE));
		assert_true(sum_ok(m, c));
		assert_false(all_zero(h + H_MAC, 32));
	}
	/* The payload of a fresh disk is untouched (thin). */
	assert_true(all_zero(m->data + info.payload_offset, vsize));

	d = open_ok(m, kek, NULL, 0);
	assert_int_equal(vc_disk_size(d), vsize);
	assert_int_equal(vc_disk_sector_size(d), ss);
	vc_disk_get_info(d, &info2);
	assert_memory_equal(info2.uuid.b, u.b, 16);
	assert_int_equal(info2.virtual_size, vsize);
	assert_int_equal(info2.sector_size, ss);
	assert_int_equal(info2.slot[0].generation, 1);
	assert_string_equal(info2.slot[0].provider, "prov-a");
	assert_false(vc_disk_rekey_active(d));

	/* A fresh disk reads as zeros. */
	buf = malloc(vsize);
	ref = calloc(1, vsize);
	assert_non_null(buf);
	assert_non_null(ref);
	memset(buf, 0xee, vsize);
	OK(vc_disk_read(d, buf, vsize, 0, &err));
	assert_true(all_zero(buf, vsize));

	/* Data survives a close and reopen. */
	rnd_fill(ref + ss, 3 * ss);
	rnd_fill(ref + vsize - 100, 100);
	OK(vc_disk_write(d, ref + ss, 3 * ss, ss, &err));
	OK(vc_disk_write(d, ref + vsize - 100, 100, vsize - 100, &err));
	OK(vc_disk_flush(d, &err));
	vc_disk_close(d);
	d = open_ok(m, kek, NULL, 0);
	check_all(d, ref, vsize);
	vc_disk_close(d);
	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	/* Without a UUID, format makes a random one. */
	m2 = make_disk_ex(vsize, ss, kek, "p", "k", NULL, &u2);
	assert_false(vc_uuid_is_nil(&u2));
	assert_memory_not_equal(u2.b, u.b, 16);
	info2 = inspect_ok(m2);
	assert_memory_equal(info2.uuid.b, u2.b, 16);

	free(buf);
	free(ref);
	memio_free(m);
	memio_free(m2);
	vc_secret_free(kek);
}

/* Longest names round-trip; one byte more is refused. */
static void test_names(void **state)
{
	char prov[VC_DISK_PROVIDER_MAX + 2], kid[VC_DISK_KEY_ID_MAX + 2];
	struct vc_secret *kek = kek_new();
	struct vc_disk_info info;
	struct memio *m;

	(void)state;
	memset(prov, 'P', VC_DISK_PROVIDER_MAX);
	prov[VC_DISK_PROVIDER_MAX] = '\0';
	memset(kid, 'K', VC_DISK_KEY_ID_MAX);
	kid[VC_DISK_KEY_ID_MAX] = '\0';
	m = make_disk_ex(MIB, 512, kek, prov, kid, NULL, NULL);
	info = inspect_ok(m);
	assert_string_equal(info.slot[0].provider, prov);
	assert_string_equal(info.slot[0].key_id, kid);
	vc_disk_close(open_ok(m, kek, NULL, VC_DISK_RDONLY));
	memio_free(m);
	vc_secret_free(kek);
}

static void test_format_errors(void **state)
{
	const uint64_t vsize = MIB;
	struct vc_secret *kek = kek_new();
	char prov_long[VC_DISK_PROVIDER_MAX + 2], kid_long[VC_DISK_KEY_ID_MAX + 2];
	struct vc_disk_params p = {
		.virtual_size = vsize, .sector_size = 512, .provider = "p", .key_id = "k",
	};
	struct vc_disk_info info;
	struct vc_error err = { 0 };
	struct vc_disk_io io;
	struct memio *m;

	(void)state;
	memset(prov_long, 'P', sizeof prov_long - 1);
	prov_long[sizeof prov_long - 1] = '\0';
	memset(kid_long, 'K', sizeof kid_long - 1);
	kid_long[sizeof kid_long - 1] = '\0';

	/* One byte short of the container size. */
	m = memio_new(container_size(vsize, 512) - 1);
	memio_io(m, &io);
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, NULL);
	assert_true(all_zero(m->data, m->size));
	FAILS(inspect(m, &info, &err), -EINVAL, NULL);
	memio_free(m);

	m = memio_new(container_size(vsize, 512));
	memio_io(m, &io);
	p.provider = prov_long;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, "provider");
	p.provider = "";
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, "provider");
	p.provider = NULL;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, "provider");
	p.provider = "p";
	p.key_id = kid_long;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, "key id");
	p.key_id = "";
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, "key id");
	p.key_id = "k";
	p.sector_size = 1000;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, NULL);
	p.sector_size = 4096;
	p.virtual_size = vsize + 512;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, NULL);
	p.virtual_size = 0;
	FAILS(vc_disk_format(&io, &p, kek, NULL, &err), -EINVAL, NULL);
	/* Nothing was written by any refused format. */
	assert_true(all_zero(m->data, m->size));
	p.virtual_size = vsize;
	OK(vc_disk_format(&io, &p, kek, NULL, &err));
	assert_int_equal(inspect_ok(m).sector_size, 4096);
	memio_free(m);
	vc_secret_free(kek);
}

static void test_wrong_kek(void **state)
{
	struct vc_secret *kek = kek_new(), *other = kek_new(), *short_kek = NULL;
	struct vc_error err = { 0 };
	struct memio *m = make_disk(MIB, 512, kek);
	struct memio *before = memio_clone(m);

	(void)state;
	FAILS(open_try(m, other, NULL, 0, &err), -EKEYREJECTED, "wrong key");
	FAILS(open_try(m, other, NULL, VC_DISK_RDONLY, &err), -EKEYREJECTED, "wrong key");
	/* The message names the key so the operator knows which to fetch. */
	assert_non_null(strstr(vc_error_msg(&err), "key-0001"));
	assert_int_equal(vc_random_secret(16, &short_kek, NULL), 0);
	FAILS(open_try(m, short_kek, NULL, 0, &err), -EINVAL, NULL);
	assert_true(same_bytes(m, before));
	OK(open_try(m, kek, NULL, 0, &err));
	memio_free(m);
	memio_free(before);
	vc_secret_free(kek);
	vc_secret_free(other);
	vc_secret_free(short_kek);
}

/* The wrapped DEK and its binding (provider, key id, generation, UUID) are
 * authenticated: any change, or a slot taken from another disk, fails. */
static void test_wrapped_key_tamper(void **state)
{
	static const unsigned spots[] = { 0, 11, 12, 40, 75, 76, 91 };
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(MIB, 512, kek);
	struct memio *other = make_disk(MIB, 512, kek); /* same KEK and names */
	struct memio *t;
	int r;

	(void)state;
	for (size_t i = 0; i < sizeof spots / sizeof spots[0]; i++) {
		unsigned off = H_SLOT0 + S_WRAPPED + spots[i];

		t = memio_clone(m);
		tamper(t, BOTH, off, 1, hdr(t, 0)[off] ^ 0x01);
		r = open_try(t, kek, NULL, 0, &err);
		if (r != -EKEYREJECTED && r != -EBADMSG)
			fail_msg("wrapped byte %u flipped: open = %d (%s)", spots[i], r,
				 vc_error_msg(&err));
		memio_free(t);
	}

	/* Binding fields. */
	t = memio_clone(m);
	tamper(t, BOTH, H_SLOT0 + S_PROVIDER, 1, 'q');
	r = open_try(t, kek, NULL, 0, &err);
	assert_true(r == -EKEYREJECTED || r == -EBADMSG);
	memio_free(t);
	t = memio_clone(m);
	tamper(t, BOTH, H_SLOT0 + S_GEN, 8, 7);
	r = open_try(t, kek, NULL, 0, &err);
	assert_true(r == -EKEYREJECTED || r == -EBADMSG);
	memio_free(t);
	t = memio_clone(m);
	tamper(t, BOTH, H_UUID + 3, 1, hdr(t, 0)[H_UUID + 3] ^ 0x80);
	r = open_try(t, kek, NULL, 0, &err);
	assert_true(r == -EKEYREJECTED || r == -EBADMSG);
	memio_free(t);

	/* A wrapped key moved from another disk (same KEK, provider, key id). */
	t = memio_clone(m);
	for (int c = 0; c < 2; c++) {
		memcpy(hdr(t, c) + H_SLOT0, hdr(other, 0) + H_SLOT0, H_SLOT_SIZE);
		fix_sum(t, c);
	}
	r = open_try(t, kek, NULL, 0, &err);
	assert_true(r == -EKEYREJECTED || r == -EBADMSG);
	memio_free(t);

	/* Untouched, both open. */
	OK(open_try(m, kek, NULL, 0, &err));
	OK(open_try(other, kek, NULL, 0, &err));
	memio_free(m);
	memio_free(other);
	vc_secret_free(kek);
}

/* Fields outside the key binding, changed with the checksum recomputed:
 * the keyless checks pass, the MAC does not. */
static void test_header_mac(void **state)
{
	struct tcase {
		const char *what;
		unsigned off, width;
		uint64_t v;
		uint64_t grow; /* extra container bytes so the size check passes */
	};
	const uint64_t vsize = 4 * MIB;
	const struct tcase cases[] = {
		{ "sequence", H_SEQ, 8, 1000, 0 },
		{ "smaller virtual size", H_VSIZE, 8, 2 * MIB, 0 },
		{ "sector size", H_SECTOR, 4, 4096, 0 },
		{ "journal offset", H_JOFF, 8, MIB - 4096, 0 },
		{ "journal size", H_JSIZE, 8, MIB - 4096, 0 },
		{ "payload offset", H_PAYLOAD, 8, 2 * MIB + 4096, 4096 },
		{ "mac", H_MAC + 5, 1, 0x5a, 0 },
		{ "mac last byte", H_MAC + 31, 1, 0x01, 0 },
	};
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct tcase *c = &cases[i];
		struct memio *t = memio_clone(m);
		struct vc_disk_info info;
		int r;

		if (c->grow)
			memio_resize(t, t->size + c->grow);
		if (c->off >= H_MAC) {
			/* The copies' MACs differ (the copy index is covered). */
			for (int k = 0; k < 2; k++)
				tamper(t, 1u << k, c->off, 1, hdr(t, k)[c->off] ^ c->v);
		} else
			tamper(t, BOTH, c->off, c->width, c->v);
		r = inspect(t, &info, &err);
		if (r != 0)
			fail_msg("%s: the tampered header should pass the keyless checks: %s",
				 c->what, vc_error_msg(&err));
		r = open_try(t, kek, NULL, 0, &err);
		if (r != -EBADMSG || !strstr(vc_error_msg(&err), "header authentication failed"))
			fail_msg("%s: open = %d (%s), want -EBADMSG", c->what, r, vc_error_msg(&err));
		r = open_try(t, kek, NULL, VC_DISK_RDONLY, &err);
		if (r != -EBADMSG)
			fail_msg("%s: read-only open = %d (%s)", c->what, r, vc_error_msg(&err));
		memio_free(t);
	}

	/* Copies swapped (each claims the other's index): refused by the
	 * keyless checks or by the MAC, which covers the index. */
	{
		struct memio *t = memio_clone(m);
		struct vc_disk_info info;
		int r;

		tamper(t, 1u, H_COPY, 2, 1);
		tamper(t, 2u, H_COPY, 2, 0);
		r = inspect(t, &info, &err);
		if (r == 0)
			FAILS(open_try(t, kek, NULL, 0, &err), -EBADMSG,
			      "header authentication failed");
		else
			assert_int_equal(r, -EBADMSG);
		memio_free(t);
	}

	/* A damaged MAC field in one copy, checksum not recomputed: that
	 * copy is damaged, the other one serves. */
	{
		struct memio *t = memio_clone(m);
		struct vc_disk_info info;

		hdr(t, 0)[H_MAC + 9] ^= 0x10;
		info = inspect_ok(t);
		assert_int_equal(info.copy_used, 1);
		assert_false(info.copy_ok[0]);
		OK(open_try(t, kek, NULL, 0, &err));
		info = inspect_ok(t);
		assert_true(info.copy_ok[0] && info.copy_ok[1]);
		memio_free(t);
	}
	OK(open_try(m, kek, NULL, 0, &err));
	memio_free(m);
	vc_secret_free(kek);
}

/* One copy damaged (checksum mismatch or wiped): the other is used, a
 * read-only open leaves the container alone and a writable one repairs. */
static void damaged_copy(int bad, bool wipe)
{
	const uint64_t vsize = 2 * MIB;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *ref = malloc(vsize);
	struct vc_disk_info info;
	struct memio *snap;
	struct vc_disk *d;

	assert_non_null(ref);
	rnd_fill(ref, vsize);
	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	vc_disk_close(d);

	if (wipe)
		memset(hdr(m, bad), 0, HDR);
	else
		hdr(m, bad)[H_SLOT0 + S_WRAPPED + 3] ^= 0x40; /* checksum now wrong */
	info = inspect_ok(m);
	assert_int_equal(info.copy_used, 1 - bad);
	assert_false(info.copy_ok[bad]);
	assert_true(info.copy_ok[1 - bad]);
	assert_true(info.copy_problem[bad][0] != '\0');
	assert_int_equal(info.virtual_size, vsize);

	snap = memio_clone(m);
	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);
	assert_true(same_bytes(m, snap));

	d = open_ok(m, kek, NULL, 0);
	check_all(d, ref, vsize);
	vc_disk_close(d);
	info = inspect_ok(m);
	assert_true(info.copy_ok[0]);
	assert_true(info.copy_ok[1]);
	assert_string_equal(info.copy_problem[0], "");
	assert_string_equal(info.copy_problem[1], "");
	assert_true(sum_ok(m, 0));
	assert_true(sum_ok(m, 1));
	assert_int_equal(vc_get_le64(hdr(m, 0) + H_SEQ), vc_get_le64(hdr(m, 1) + H_SEQ));
	assert_int_equal(vc_get_le16(hdr(m, bad) + H_COPY), bad);
	/* The repaired copy stands on its own. */
	memset(hdr(m, 1 - bad), 0xff, HDR);
	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	free(ref);
	memio_free(snap);
	memio_free(m);
	vc_secret_free(kek);
}

static void test_copy0_damaged(void **state)
{
	(void)state;
	damaged_copy(0, false);
	damaged_copy(0, true);
}

static void test_copy1_damaged(void **state)
{
	(void)state;
	damaged_copy(1, false);
	damaged_copy(1, true);
}

/* A copy left behind by an interrupted update (older sequence, still a
 * valid checksum) is not the one used, whichever copy it is, and a
 * writable open brings it up to date. */
static void stale_copy(int stale)
{
	struct vc_secret *kek = kek_new(), *kek2 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(MIB, 512, kek);
	uint8_t old[HDR];
	struct vc_disk_info info;
	struct vc_disk *d;

	memcpy(old, hdr(m, stale), HDR);
	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_rekey_shallow(d, kek2, "prov-b", "key-2", &err));
	vc_disk_close(d);
	memcpy(hdr(m, stale), old, HDR);

	info = inspect_ok(m);
	assert_int_equal(info.copy_used, 1 - stale);
	assert_true(info.copy_ok[0]);
	assert_true(info.copy_ok[1]);
	assert_string_equal(info.slot[0].provider, "prov-b");
	assert_true(info.copy_problem[stale][0] != '\0');
	FAILS(open_try(m, kek, NULL, 0, &err), -EKEYREJECTED, "wrong key");
	OK(open_try(m, kek2, NULL, 0, &err));
	info = inspect_ok(m);
	assert_string_equal(info.copy_problem[stale], "");
	assert_int_equal(vc_get_le64(hdr(m, 0) + H_SEQ), vc_get_le64(hdr(m, 1) + H_SEQ));
	assert_string_equal((const char *)hdr(m, stale) + H_SLOT0 + S_PROVIDER, "prov-b");
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

static void test_stale_copy(void **state)
{
	(void)state;
	stale_copy(0);
	stale_copy(1);
}

static void test_both_copies_damaged(void **state)
{
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(MIB, 512, kek);
	struct vc_disk_info info;
	struct memio *snap;

	(void)state;
	hdr(m, 0)[H_SEQ] ^= 1;
	hdr(m, 1)[H_SLOT0 + S_WRAPPED] ^= 1;
	snap = memio_clone(m);
	FAILS(inspect(m, &info, &err), -EBADMSG, "both header copies");
	assert_non_null(strstr(err.msg, "copy 0"));
	assert_non_null(strstr(err.msg, "copy 1"));
	assert_false(info.copy_ok[0]);
	assert_false(info.copy_ok[1]);
	FAILS(open_try(m, kek, NULL, 0, &err), -EBADMSG, "both header copies");
	assert_true(same_bytes(m, snap));
	memio_free(snap);
	memio_free(m);
	vc_secret_free(kek);
}

static void test_truncated(void **state)
{
	const uint64_t vsize = MIB;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	const uint64_t full = m->size;
	struct vc_disk_info info;

	(void)state;
	memio_resize(m, full - 512);
	FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "smaller than the header says");
	FAILS(inspect(m, &info, &err), -EINVAL, "smaller than the header says");
	FAILS(open_try(m, kek, NULL, VC_DISK_RDONLY, &err), -EINVAL,
	      "smaller than the header says");
	memio_resize(m, 2 * MIB);
	FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "smaller than the header says");
	memio_resize(m, full);
	OK(open_try(m, kek, NULL, 0, &err));
	memio_free(m);
	vc_secret_free(kek);
}

static void test_too_small(void **state)
{
	static const uint64_t sizes[] = { 0, 1, 100, HDR, 2 * HDR - 1 };
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *good = make_disk(MIB, 512, kek);

	(void)state;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		/* Even a prefix of a real header is refused cleanly. */
		struct memio *m = memio_from(good->data, sizes[i]);
		struct vc_disk_info info;

		FAILS(inspect(m, &info, &err), -EINVAL, "too small");
		FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "too small");
		memio_free(m);
	}
	memio_free(good);
	vc_secret_free(kek);
}

static void test_not_vmcrypt(void **state)
{
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct vc_disk_info info;
	struct memio *m = memio_new(4 * MIB);

	(void)state;
	FAILS(inspect(m, &info, &err), -EINVAL, "not a vmcrypt disk");
	FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "not a vmcrypt disk");
	rnd_fill(m->data, m->size);
	FAILS(inspect(m, &info, &err), -EINVAL, "not a vmcrypt disk");
	FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "not a vmcrypt disk");
	/* A real header with its magic changed in both copies. */
	memio_free(m);
	m = make_disk(MIB, 512, kek);
	hdr(m, 0)[0] = 'W';
	hdr(m, 1)[6] = 't';
	FAILS(inspect(m, &info, &err), -EINVAL, "not a vmcrypt disk");
	FAILS(open_try(m, kek, NULL, 0, &err), -EINVAL, "not a vmcrypt disk");
	memio_free(m);
	vc_secret_free(kek);
}

static void test_bad_version(void **state)
{
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct vc_disk_info info;
	struct memio *m = make_disk(MIB, 512, kek);
	struct memio *t = memio_clone(m);

	(void)state;
	tamper(t, BOTH, H_VERSION, 2, 2);
	FAILS(inspect(t, &info, &err), -ENOTSUP, "version 2");
	FAILS(open_try(t, kek, NULL, 0, &err), -ENOTSUP, "version");
	memio_free(t);
	t = memio_clone(m);
	tamper(t, BOTH, H_VERSION, 2, 0);
	FAILS(inspect(t, &info, &err), -ENOTSUP, "version");
	memio_free(t);
	/* One copy with an unknown version: the other is used. */
	t = memio_clone(m);
	tamper(t, 1u, H_VERSION, 2, 2);
	info = inspect_ok(t);
	assert_int_equal(info.copy_used, 1);
	assert_false(info.copy_ok[0]);
	assert_non_null(strstr(info.copy_problem[0], "version"));
	memio_free(t);
	memio_free(m);
	vc_secret_free(kek);
}

/* Each field value the keyless validation must refuse, with the checksum
 * recomputed: in both copies the header is refused; in copy 0 alone,
 * copy 1 is used. */
static void test_inspect_rejects(void **state)
{
	struct tcase {
		const char *what;
		unsigned off, width;
		uint64_t v;
	};
	const struct tcase cases[] = {
		{ "virtual size 2^63", H_VSIZE, 8, (uint64_t)1 << 63 },
		{ "virtual size 0", H_VSIZE, 8, 0 },
		{ "virtual size not a sector multiple", H_VSIZE, 8, 4 * MIB + 100 },
		{ "virtual size over 64 PiB", H_VSIZE, 8, VC_DISK_MAX_SIZE + 512 },
		{ "virtual size max", H_VSIZE, 8, UINT64_MAX },
		{ "sector size 1000", H_SECTOR, 4, 1000 },
		{ "sector size 0", H_SECTOR, 4, 0 },
		{ "sector size 1024", H_SECTOR, 4, 1024 },
		{ "cipher 2", H_CIPHER, 4, 2 },
		{ "cipher 0", H_CIPHER, 4, 0 },
		{ "payload offset 2^62", H_PAYLOAD, 8, (uint64_t)1 << 62 },
		{ "payload offset inside the header copies", H_PAYLOAD, 8, HDR },
		{ "payload offset 0", H_PAYLOAD, 8, 0 },
		{ "payload offset unaligned", H_PAYLOAD, 8, 2 * MIB + 512 },
		{ "journal at offset 0", H_JOFF, 8, 0 },
		{ "journal over copy 1", H_JOFF, 8, HDR },
		{ "journal unaligned", H_JOFF, 8, MIB + 512 },
		{ "journal past the payload", H_JOFF, 8, MIB + MIB / 2 },
		{ "journal far away", H_JOFF, 8, (uint64_t)1 << 40 },
		{ "journal size 0", H_JSIZE, 8, 0 },
		{ "journal size overflow", H_JSIZE, 8, UINT64_MAX - 4095 },
		{ "journal size 2^62", H_JSIZE, 8, (uint64_t)1 << 62 },
		{ "journal size unaligned", H_JSIZE, 8, MIB - 512 },
		{ "unknown flag 4", H_FLAGS, 4, 4 },
		{ "unknown flag 2^31", H_FLAGS, 4, 0x80000000u },
		{ "journal flag without rekey", H_FLAGS, 4, 2 },
		{ "rekey flag without slot 1", H_FLAGS, 4, 1 },
		{ "reserved word at 84", 84, 4, 1 },
		{ "reserved byte at 800", 800, 1, 1 },
		{ "reserved byte at 2000", 2000, 1, 0x20 },
		{ "reserved byte at 4031", 4031, 1, 0x80 },
		{ "header size 4095", H_HDRSIZE, 4, 4095 },
		{ "header size 8192", H_HDRSIZE, 4, 8192 },
		{ "copy index 2", H_COPY, 2, 2 },
		{ "progress without rekey", H_PROGRESS, 8, 1 },
		{ "journal start without journal", H_JSTART, 8, 1 },
		{ "journal count without journal", H_JCOUNT, 8, 1 },
		{ "journal checksum without journal", H_JSHA + 9, 1, 1 },
		{ "slot 0 marked empty", H_SLOT0 + S_STATE, 4, 0 },
		{ "slot 0 state 2", H_SLOT0 + S_STATE, 4, 2 },
		{ "slot 0 key length 32", H_SLOT0 + S_KEYLEN, 4, 32 },
		{ "slot 0 empty provider", H_SLOT0 + S_PROVIDER, 1, 0 },
		{ "slot 0 unterminated provider", H_SLOT0 + S_PROVIDER, 64, 'A' },
		{ "slot 0 unterminated key id", H_SLOT0 + S_KEY_ID, 128, 'B' },
		{ "slot 0 bytes after the key id", H_SLOT0 + S_KEY_ID + 100, 1, 'x' },
		{ "slot 0 padding", H_SLOT0 + 300, 1, 1 },
		{ "slot 0 last byte", H_SLOT0 + 319, 1, 1 },
		{ "empty slot 1 not zero", H_SLOT1 + 10, 1, 1 },
		{ "slot 1 active without rekey", H_SLOT1 + S_STATE, 4, 1 },
	};
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(4 * MIB, 512, kek);

	(void)state;
	assert_true(inspect_ok(m).copy_ok[0]);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct tcase *c = &cases[i];
		struct memio *t = memio_clone(m);
		struct vc_disk_info info;
		int r;

		tamper(t, BOTH, c->off, c->width, c->v);
		r = inspect(t, &info, &err);
		if (r != -EBADMSG || !strstr(err.msg, "both header copies"))
			fail_msg("%s: inspect = %d (%s), want -EBADMSG", c->what, r, err.msg);
		if (info.copy_ok[0] || info.copy_ok[1] || !info.copy_problem[0][0])
			fail_msg("%s: copies reported valid", c->what);
		r = open_try(t, kek, NULL, 0, &err);
		if (r >= 0)
			fail_msg("%s: open succeeded", c->what);
		memio_free(t);

		t = memio_clone(m);
		tamper(t, 1u, c->off, c->width, c->v);
		r = inspect(t, &info, &err);
		if (r != 0 || info.copy_used != 1 || info.copy_ok[0] || !info.copy_ok[1] ||
		    !info.copy_problem[0][0])
			fail_msg("%s in copy 0 only: inspect = %d (%s), copy_used %d, ok %d/%d",
				 c->what, r, err.msg, info.copy_used, info.copy_ok[0],
				 info.copy_ok[1]);
		OK(open_try(t, kek, NULL, VC_DISK_RDONLY, &err));
		memio_free(t);
	}
	memio_free(m);
	vc_secret_free(kek);
}

/* ---- I/O ------------------------------------------------------------------- */

static void test_random_io(void **state)
{
	const uint32_t ss = *(const uint32_t *)*state;
	const uint64_t vsize = 4 * MIB, nsec = vsize / ss;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, ss, kek);
	uint8_t *ref = calloc(1, vsize), *buf = malloc(vsize), *data = malloc(vsize);
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	unsigned counts[4] = { 0 };

	assert_non_null(ref);
	assert_non_null(buf);
	assert_non_null(data);
	for (int i = 0; i < 700; i++) {
		uint64_t len, off, kind = rnd_below(100);
		unsigned op = (unsigned)rnd_below(10);

		if (kind < 10) {
			len = 1;
		} else if (kind < 25) {
			len = 1 + rnd_below(64);
		} else if (kind < 35) {
			/* Around a sector boundary. */
			len = 2 + rnd_below(2 * ss);
			off = (2 + rnd_below(nsec - 4)) * ss - 1 - rnd_below(len - 1);
			goto have_off;
		} else if (kind < 60) {
			len = 1 + rnd_below(3 * ss);
		} else if (kind < 80) {
			len = 1 + rnd_below(64 * KIB);
		} else if (kind < 97) {
			len = ss * (1 + rnd_below(32));
			off = rnd_below(nsec - len / ss + 1) * ss;
			goto have_off;
		} else {
			len = vsize;
		}
		off = rnd_below(vsize - len + 1);
	have_off:
		if (op < 5) {
			if (rnd_below(6) == 0)
				memset(data, 0, len);
			else
				rnd_fill(data, len);
			OK(vc_disk_write(d, data, len, off, &err));
			memcpy(ref + off, data, len);
			counts[0]++;
		} else if (op < 9) {
			memset(buf, 0x5c, len);
			OK(vc_disk_read(d, buf, len, off, &err));
			if (memcmp(buf, ref + off, len) != 0)
				fail_msg("op %d: read of %llu at %llu differs", i,
					 (unsigned long long)len, (unsigned long long)off);
			counts[1]++;
		} else {
			OK(vc_disk_zero(d, off, len, &err));
			memset(ref + off, 0, len);
			counts[2]++;
		}
		if (i % 100 == 99)
			check_all(d, ref, vsize);
	}
	/* Edges: first and last byte, zero-length at the very end. */
	OK(vc_disk_write(d, "\x7f", 1, 0, &err));
	ref[0] = 0x7f;
	OK(vc_disk_write(d, "\x80", 1, vsize - 1, &err));
	ref[vsize - 1] = 0x80;
	OK(vc_disk_write(d, "", 0, vsize, &err));
	OK(vc_disk_read(d, buf, 0, vsize, &err));
	OK(vc_disk_read(d, buf, 1, vsize - 1, &err));
	assert_int_equal(buf[0], 0x80);
	assert_true(counts[0] > 100 && counts[1] > 100 && counts[2] > 20);
	check_all(d, ref, vsize);
	OK(vc_disk_flush(d, &err));
	vc_disk_close(d);

	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);
	d = open_ok(m, kek, NULL, 0);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	free(ref);
	free(buf);
	free(data);
	memio_free(m);
	vc_secret_free(kek);
}

struct holes_cfg {
	uint32_t ss;
	bool no_punch;
};

static bool stored_zero(struct memio *m, uint64_t payload, uint32_t ss, uint64_t sector)
{
	return all_zero(m->data + payload + sector * ss, ss);
}

static bool is_hole(struct vc_disk *d, uint64_t sector)
{
	struct vc_error err = { 0 };
	bool hole = false;

	OK(vc_disk_sector_is_hole(d, sector, &hole, &err));
	return hole;
}

static void test_holes(void **state)
{
	const struct holes_cfg *cfg = *state;
	const uint32_t ss = cfg->ss;
	const uint64_t vsize = 2 * MIB, nsec = vsize / ss;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, ss, kek);
	const uint64_t pay = inspect_ok(m).payload_offset;
	uint8_t *ref = calloc(1, vsize), *sec = malloc(ss);
	struct vc_disk *d;
	bool hole;
	long w0;

	assert_non_null(ref);
	assert_non_null(sec);
	m->no_punch = cfg->no_punch;
	d = open_ok(m, kek, NULL, 0);
	for (uint64_t s = 0; s < nsec; s++)
		assert_true(is_hole(d, s));
	FAILS(vc_disk_sector_is_hole(d, nsec, &hole, &err), -ERANGE, NULL);

	/* A data sector is stored as ciphertext, not as the plaintext. */
	rnd_fill(ref + 5 * ss, ss);
	OK(vc_disk_write(d, ref + 5 * ss, ss, 5 * ss, &err));
	assert_false(is_hole(d, 5));
	assert_false(stored_zero(m, pay, ss, 5));
	assert_memory_not_equal(m->data + pay + 5 * ss, ref + 5 * ss, ss);
	assert_true(stored_zero(m, pay, ss, 4));
	assert_true(stored_zero(m, pay, ss, 6));

	/* Writing a whole sector of zeros stores a hole. */
	memset(sec, 0, ss);
	OK(vc_disk_write(d, sec, ss, 5 * ss, &err));
	memset(ref + 5 * ss, 0, ss);
	assert_true(is_hole(d, 5));
	assert_true(stored_zero(m, pay, ss, 5));

	/* So does zeroing the last non-zero bytes by partial writes. */
	rnd_fill(ref + 6 * ss, ss);
	OK(vc_disk_write(d, ref + 6 * ss, ss, 6 * ss, &err));
	OK(vc_disk_write(d, sec, ss / 2, 6 * ss, &err));
	memset(ref + 6 * ss, 0, ss / 2);
	assert_false(is_hole(d, 6));
	OK(vc_disk_write(d, sec, ss - ss / 2, 6 * ss + ss / 2, &err));
	memset(ref + 6 * ss, 0, ss);
	assert_true(is_hole(d, 6));
	assert_true(stored_zero(m, pay, ss, 6));

	/* A multi-sector write with zero sectors in the middle. */
	rnd_fill(ref + 40 * ss, 6 * ss);
	memset(ref + 42 * ss, 0, 2 * ss);
	OK(vc_disk_write(d, ref + 40 * ss, 6 * ss, 40 * ss, &err));
	for (uint64_t s = 40; s < 46; s++)
		assert_true(is_hole(d, s) == (s == 42 || s == 43));

	/* vc_disk_zero of whole sectors: holes, punched when possible. */
	rnd_fill(ref + 10 * ss, 20 * ss);
	OK(vc_disk_write(d, ref + 10 * ss, 20 * ss, 10 * ss, &err));
	m->writes = 0;
	m->fail_write_at = LONG_MAX; /* count writes */
	OK(vc_disk_zero(d, 10 * ss, 10 * ss, &err));
	w0 = m->writes;
	m->fail_write_at = 0;
	memset(ref + 10 * ss, 0, 10 * ss);
	if (!cfg->no_punch)
		assert_int_equal(w0, 0);
	for (uint64_t s = 10; s < 30; s++) {
		assert_true(is_hole(d, s) == (s < 20));
		assert_true(stored_zero(m, pay, ss, s) == (s < 20));
	}

	/* Unaligned range: partial head and tail, whole sectors between. */
	OK(vc_disk_zero(d, 20 * ss + ss / 2, 3 * ss, &err));
	memset(ref + 20 * ss + ss / 2, 0, 3 * ss);
	assert_false(is_hole(d, 20));
	assert_true(is_hole(d, 21));
	assert_true(is_hole(d, 22));
	assert_false(is_hole(d, 23));
	assert_true(stored_zero(m, pay, ss, 21));
	assert_true(stored_zero(m, pay, ss, 22));

	/* Inside one sector. */
	OK(vc_disk_zero(d, 25 * ss + 7, 9, &err));
	memset(ref + 25 * ss + 7, 0, 9);
	assert_false(is_hole(d, 25));
	/* Two partial zeroings that together cover the sector. */
	OK(vc_disk_zero(d, 26 * ss, ss / 2, &err));
	OK(vc_disk_zero(d, 26 * ss + ss / 2, ss / 2, &err));
	memset(ref + 26 * ss, 0, ss);
	assert_true(is_hole(d, 26));
	assert_true(stored_zero(m, pay, ss, 26));
	check_all(d, ref, vsize);

	/* Zeroing a hole keeps it a hole and reads zeros. */
	OK(vc_disk_zero(d, 0, ss + 1, &err));
	assert_true(is_hole(d, 0));
	check_all(d, ref, vsize);

	vc_disk_close(d);
	d = open_ok(m, kek, NULL, 0);
	check_all(d, ref, vsize);

	/* The whole disk. */
	OK(vc_disk_zero(d, 0, vsize, &err));
	memset(ref, 0, vsize);
	assert_true(all_zero(m->data + pay, vsize));
	check_all(d, ref, vsize);
	vc_disk_close(d);

	free(ref);
	free(sec);
	memio_free(m);
	vc_secret_free(kek);
}

static void test_range_errors(void **state)
{
	const uint64_t vsize = MIB;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	uint8_t buf[1024];
	struct memio *snap;

	(void)state;
	rnd_fill(buf, sizeof buf);
	OK(vc_disk_write(d, buf, sizeof buf, vsize - sizeof buf, &err));
	snap = memio_clone(m);
	FAILS(vc_disk_read(d, buf, 2, vsize - 1, &err), -ERANGE, NULL);
	FAILS(vc_disk_write(d, buf, 2, vsize - 1, &err), -ERANGE, NULL);
	FAILS(vc_disk_zero(d, vsize - 1, 2, &err), -ERANGE, NULL);
	FAILS(vc_disk_read(d, buf, 1, vsize, &err), -ERANGE, NULL);
	FAILS(vc_disk_write(d, buf, 1, vsize, &err), -ERANGE, NULL);
	FAILS(vc_disk_write(d, buf, sizeof buf, vsize - 512, &err), -ERANGE, NULL);
	FAILS(vc_disk_read(d, buf, 1, UINT64_MAX, &err), -ERANGE, NULL);
	/* offset + count wraps around */
	FAILS(vc_disk_read(d, buf, 2, UINT64_MAX, &err), -ERANGE, NULL);
	FAILS(vc_disk_write(d, buf, 16, UINT64_MAX - 8, &err), -ERANGE, NULL);
	FAILS(vc_disk_zero(d, 512, UINT64_MAX - 100, &err), -ERANGE, NULL);
	FAILS(vc_disk_zero(d, UINT64_MAX - 511, 1024, &err), -ERANGE, NULL);
	FAILS(vc_disk_read(d, buf, SIZE_MAX, 1, &err), -ERANGE, NULL);
	/* Nothing was touched by the refused writes. */
	assert_true(same_bytes(m, snap));
	OK(vc_disk_read(d, buf, 0, vsize, &err));
	OK(vc_disk_zero(d, vsize, 0, &err));
	vc_disk_close(d);
	memio_free(snap);
	memio_free(m);
	vc_secret_free(kek);
}

static void test_readonly(void **state)
{
	const uint64_t vsize = 2 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *ref = malloc(vsize);
	struct memio *snap;
	struct vc_disk *d;
	bool done = true;

	(void)state;
	assert_non_null(ref);
	rnd_fill(ref, vsize);
	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	vc_disk_close(d);
	snap = memio_clone(m);

	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	FAILS(vc_disk_write(d, ref, 512, 0, &err), -EROFS, NULL);
	FAILS(vc_disk_write(d, ref, 10, 3, &err), -EROFS, NULL);
	FAILS(vc_disk_zero(d, 0, 512, &err), -EROFS, NULL);
	FAILS(vc_disk_zero(d, 1, 5, &err), -EROFS, NULL);
	FAILS(vc_disk_rekey_shallow(d, kek2, "p", "k", &err), -EROFS, NULL);
	FAILS(vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err), -EROFS, NULL);
	FAILS(vc_disk_rekey_deep_start(d, kek2, "p", "k", &err), -EROFS, NULL);
	FAILS(vc_disk_rekey_deep_step(d, &done, &err), -EROFS, NULL);
	assert_false(done);
	assert_false(vc_disk_rekey_active(d));
	OK(vc_disk_flush(d, &err));
	check_all(d, ref, vsize);
	vc_disk_close(d);
	assert_true(same_bytes(m, snap));
	OK(open_try(m, kek, NULL, 0, &err));

	free(ref);
	memio_free(snap);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

/* Neither guest plaintext nor the KEK ever reaches the container. */
static void test_no_plaintext(void **state)
{
	static const char marker[] = "PLAINTEXT-MARKER-vmcrypt-0451!!"; /* 32 bytes */
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new(), *kek3 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *pat = malloc(MIB);
	struct vc_disk *d;
	bool done = false;

	(void)state;
	assert_non_null(pat);
	for (uint64_t i = 0; i < MIB; i += 32)
		memcpy(pat + i, marker, 32);
	/* memio_contains finds what is there. */
	{
		struct memio *t = memio_new(4096);

		memcpy(t->data + 1001, marker, 32);
		assert_true(memio_contains(t, marker, 16));
		memio_free(t);
	}

	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_write(d, pat, MIB, 0, &err));             /* whole sectors */
	OK(vc_disk_write(d, pat, 32, 2 * MIB + 100, &err));  /* inside a sector */
	OK(vc_disk_write(d, pat, 700, 3 * MIB - 350, &err)); /* across sectors */
	OK(vc_disk_write(d, marker, 1, 3 * MIB + 7, &err));
	OK(vc_disk_flush(d, &err));
	assert_false(memio_contains(m, marker, 16));
	assert_false(memio_contains(m, marker + 16, 16));
	assert_false(memio_contains(m, vc_secret_data(kek), 16));
	assert_false(memio_contains(m, vc_secret_data(kek) + 16, 16));

	/* Mid deep rekey (the journal holds a chunk) and after it. */
	OK(vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err));
	OK(vc_disk_rekey_deep_step(d, &done, &err));
	assert_false(memio_contains(m, marker, 16));
	assert_false(memio_contains(m, vc_secret_data(kek2), 16));
	while (!done)
		OK(vc_disk_rekey_deep_step(d, &done, &err));
	OK(vc_disk_rekey_shallow(d, kek3, "prov-c", "key-3", &err));
	vc_disk_close(d);
	assert_false(memio_contains(m, marker, 16));
	assert_false(memio_contains(m, marker + 16, 16));
	assert_false(memio_contains(m, vc_secret_data(kek), 16));
	assert_false(memio_contains(m, vc_secret_data(kek2), 16));
	assert_false(memio_contains(m, vc_secret_data(kek3), 16));

	d = open_ok(m, kek3, NULL, VC_DISK_RDONLY);
	OK(vc_disk_read(d, pat, 32, 2 * MIB + 100, &err));
	assert_memory_equal(pat, marker, 32);
	vc_disk_close(d);
	free(pat);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
	vc_secret_free(kek3);
}

/* ---- rekey ----------------------------------------------------------------- */

static void test_shallow_rekey(void **state)
{
	const uint64_t vsize = 2 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new(), *bad = NULL;
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *ref = malloc(vsize), wrapped[2][S_WRAPPED_LEN];
	char prov_long[VC_DISK_PROVIDER_MAX + 2];
	struct vc_disk_info before, after;
	struct memio *snap;
	struct vc_disk *d;

	(void)state;
	assert_non_null(ref);
	rnd_fill(ref, vsize);
	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	before = inspect_ok(m);
	for (int c = 0; c < 2; c++)
		memcpy(wrapped[c], hdr(m, c) + H_SLOT0 + S_WRAPPED, S_WRAPPED_LEN);
	OK(vc_disk_rekey_shallow(d, kek2, "prov-b", "key-2", &err));
	vc_disk_get_info(d, &after);
	assert_string_equal(after.slot[0].provider, "prov-b");
	check_all(d, ref, vsize);
	vc_disk_close(d);

	after = inspect_ok(m);
	assert_string_equal(after.slot[0].provider, "prov-b");
	assert_string_equal(after.slot[0].key_id, "key-2");
	assert_int_equal(after.slot[0].generation, before.slot[0].generation);
	assert_true(after.sequence > before.sequence);
	assert_true(after.copy_ok[0] && after.copy_ok[1]);
	for (int c = 0; c < 2; c++)
		assert_memory_not_equal(wrapped[c], hdr(m, c) + H_SLOT0 + S_WRAPPED,
					S_WRAPPED_LEN);
	FAILS(open_try(m, kek, NULL, 0, &err), -EKEYREJECTED, "wrong key");
	d = open_ok(m, kek2, NULL, 0);
	check_all(d, ref, vsize);

	/* Refused shallow rekeys change nothing. */
	snap = memio_clone(m);
	memset(prov_long, 'P', sizeof prov_long - 1);
	prov_long[sizeof prov_long - 1] = '\0';
	FAILS(vc_disk_rekey_shallow(d, kek, prov_long, "k", &err), -EINVAL, "provider");
	FAILS(vc_disk_rekey_shallow(d, kek, "p", "", &err), -EINVAL, "key id");
	FAILS(vc_disk_rekey_shallow(d, NULL, "p", "k", &err), -EINVAL, NULL);
	assert_int_equal(vc_random_secret(16, &bad, NULL), 0);
	FAILS(vc_disk_rekey_shallow(d, bad, "p", "k", &err), -EINVAL, NULL);
	assert_true(same_bytes(m, snap));
	check_all(d, ref, vsize);
	vc_disk_close(d);
	OK(open_try(m, kek2, NULL, 0, &err));

	free(ref);
	memio_free(snap);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
	vc_secret_free(bad);
}

struct deep_cfg {
	uint32_t ss;
	bool new_kek;
};

static void test_deep_rekey(void **state)
{
	const struct deep_cfg *cfg = *state;
	const uint32_t ss = cfg->ss;
	const uint64_t vsize = 6 * MIB, nsec = vsize / ss;
	struct vc_secret *kek = kek_new(), *kek2 = cfg->new_kek ? kek_new() : NULL;
	const struct vc_secret *final = cfg->new_kek ? kek2 : kek;
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, ss, kek);
	const struct vc_disk_info i0 = inspect_ok(m);
	const uint64_t pay = i0.payload_offset;
	uint8_t *ref = malloc(vsize), *old = malloc(vsize);
	uint64_t done_s = 0, total = 0, last = 0;
	struct vc_disk_info info;
	struct vc_disk *d;
	bool done = false;
	int steps = 0;

	assert_non_null(ref);
	assert_non_null(old);
	fill_ref(ref, vsize, ss, i0.journal_size, 3);
	d = open_ok(m, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	memcpy(old, m->data + pay, vsize);

	FAILS(vc_disk_rekey_deep_step(d, &done, &err), -EINVAL, NULL);
	if (cfg->new_kek)
		OK(vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err));
	else
		OK(vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err));
	assert_true(vc_disk_rekey_active(d));
	FAILS(vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err), -EALREADY, NULL);
	vc_disk_rekey_progress(d, &done_s, &total);
	assert_int_equal(done_s, 0);
	assert_int_equal(total, nsec);
	info = inspect_ok(m);
	assert_true(info.rekey_active);
	assert_true(info.slot[1].active);
	assert_int_equal(info.slot[1].generation, 2);
	assert_int_equal(info.slot[0].generation, 1);
	assert_string_equal(info.slot[1].provider, cfg->new_kek ? "prov-b" : "prov-a");
	assert_string_equal(info.slot[1].key_id, cfg->new_kek ? "key-2" : "key-0001");
	check_all(d, ref, vsize);

	while (!done) {
		OK(vc_disk_rekey_deep_step(d, &done, &err));
		steps++;
		assert_true(steps <= (int)(vsize / i0.journal_size) + 1);
		vc_disk_rekey_progress(d, &done_s, &total);
		if (!done) {
			assert_true(done_s > last);
			assert_true(done_s <= nsec);
			last = done_s;
			info = inspect_ok(m);
			assert_int_equal(info.rekey_progress, done_s);
			assert_false(info.journal_pending);
			check_all(d, ref, vsize);
		}
		if (steps == 2) {
			/* Reopen mid-rekey: both keys are needed. */
			vc_disk_close(d);
			if (cfg->new_kek) {
				FAILS(open_try(m, kek, NULL, 0, &err), -EKEYREJECTED, "new");
				FAILS(open_try(m, kek2, NULL, 0, &err), -EKEYREJECTED, NULL);
				d = open_ok(m, kek, kek2, VC_DISK_RDONLY);
				check_all(d, ref, vsize);
				vc_disk_close(d);
				d = open_ok(m, kek, kek2, 0);
			} else {
				d = open_ok(m, kek, NULL, 0);
			}
			assert_true(vc_disk_rekey_active(d) == !done);
			check_all(d, ref, vsize);
		}
	}
	/* The hole chunk (3) was skipped, so there are fewer steps than chunks. */
	assert_true(steps < (int)(vsize / i0.journal_size));
	assert_false(vc_disk_rekey_active(d));
	FAILS(vc_disk_rekey_deep_step(d, &done, &err), -EINVAL, NULL);
	vc_disk_get_info(d, &info);
	assert_int_equal(info.slot[0].generation, 2);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	info = inspect_ok(m);
	assert_false(info.rekey_active);
	assert_false(info.slot[1].active);
	assert_false(info.journal_pending);
	assert_int_equal(info.slot[0].generation, 2);
	assert_string_equal(info.slot[0].provider, cfg->new_kek ? "prov-b" : "prov-a");
	assert_true(info.copy_ok[0] && info.copy_ok[1]);
	/* The journal kept old-key ciphertext; it must not outlive the rekey. */
	assert_true(all_zero(m->data + info.journal_offset, info.journal_size));
	/* Every data sector was re-encrypted (no 16-byte block left as it
	 * was); holes stayed holes. */
	for (uint64_t s = 0; s < nsec; s++) {
		const uint8_t *now = m->data + pay + s * ss, *was = old + s * ss;

		if (all_zero(ref + s * ss, ss)) {
			if (!all_zero(now, ss))
				fail_msg("hole sector %llu is no longer a hole", (unsigned long long)s);
			continue;
		}
		for (uint32_t b = 0; b < ss; b += 16)
			if (memcmp(now + b, was + b, 16) == 0)
				fail_msg("sector %llu block %u not re-encrypted",
					 (unsigned long long)s, b / 16);
	}
	if (cfg->new_kek)
		FAILS(open_try(m, kek, NULL, 0, &err), -EKEYREJECTED, "wrong key");
	d = open_ok(m, final, NULL, 0);
	check_all(d, ref, vsize);
	/* A second deep rekey works from generation 2. */
	OK(vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err));
	done = false;
	while (!done)
		OK(vc_disk_rekey_deep_step(d, &done, &err));
	vc_disk_close(d);
	assert_int_equal(inspect_ok(m).slot[0].generation, 3);
	d = open_ok(m, final, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	free(ref);
	free(old);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

/* A deep rekey of a thin disk: nothing to re-encrypt, holes stay holes. */
static void test_deep_rekey_empty(void **state)
{
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	const uint64_t pay = inspect_ok(m).payload_offset;
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	bool done = false;
	int steps = 0;

	(void)state;
	OK(vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err));
	while (!done && steps < 100) {
		OK(vc_disk_rekey_deep_step(d, &done, &err));
		steps++;
	}
	assert_true(done);
	assert_true(all_zero(m->data + pay, vsize));
	vc_disk_close(d);
	assert_int_equal(inspect_ok(m).slot[0].generation, 2);
	memio_free(m);
	vc_secret_free(kek);
}

/* Writes between steps, below, above and across the progress marker. */
static void test_deep_rekey_writes(void **state)
{
	const uint32_t ss = *(const uint32_t *)*state;
	const uint64_t vsize = 6 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, ss, kek);
	uint8_t *ref = malloc(vsize), *buf = malloc(64 * KIB);
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	uint64_t prog = 0, total;
	bool done = false;
	int steps = 0;

	assert_non_null(ref);
	assert_non_null(buf);
	fill_ref(ref, vsize, ss, MIB, 4);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	OK(vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err));
	for (;;) {
		vc_disk_rekey_progress(d, &prog, &total);
		const uint64_t p = prog * ss;

		for (int i = 0; i < 24; i++) {
			uint64_t off, len;
			int where = i % 6;

			len = 1 + rnd_below(i % 2 ? 3 * ss : 48 * KIB);
			if (where == 0 && p >= len)
				off = rnd_below(p - len + 1);               /* below */
			else if (where == 1 && vsize - p >= len)
				off = p + rnd_below(vsize - p - len + 1);   /* above */
			else if (where == 2 && p > 0 && p < vsize) {
				uint64_t a = 1 + rnd_below(p < 2 * ss ? p : 2 * ss);

				off = p - a;                                /* across */
				len = a + 1 + rnd_below(vsize - p < 2 * ss ? vsize - p : 2 * ss);
			} else if (where == 3 && p > 0 && p < vsize) {
				off = p - 1;                                /* the boundary bytes */
				len = 2;
			} else {
				off = rnd_below(vsize - len + 1);
			}
			if (where == 4 && off % ss == 0 && len >= ss) {
				OK(vc_disk_zero(d, off, len, &err));
				memset(ref + off, 0, len);
			} else if (where == 5) {
				OK(vc_disk_zero(d, off, len, &err));
				memset(ref + off, 0, len);
			} else {
				rnd_fill(ref + off, len);
				OK(vc_disk_write(d, ref + off, len, off, &err));
			}
			OK(vc_disk_read(d, buf, len < 64 * KIB ? len : 64 * KIB, off, &err));
			assert_memory_equal(buf, ref + off, len < 64 * KIB ? len : 64 * KIB);
		}
		check_all(d, ref, vsize);
		if (done)
			break;
		OK(vc_disk_rekey_deep_step(d, &done, &err));
		steps++;
		if (steps == 3 && !done) {
			vc_disk_close(d);
			d = open_ok(m, kek, kek2, VC_DISK_RDONLY);
			check_all(d, ref, vsize);
			vc_disk_close(d);
			d = open_ok(m, kek, kek2, 0);
			check_all(d, ref, vsize);
		}
	}
	assert_true(steps >= 3);
	vc_disk_close(d);
	d = open_ok(m, kek2, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	free(ref);
	free(buf);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

/* A shallow rekey in the middle of a deep one moves both slots. */
static void test_shallow_during_deep(void **state)
{
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new(), *kek3 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *ref = malloc(vsize);
	struct vc_disk_info info;
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	bool done = false;

	(void)state;
	assert_non_null(ref);
	rnd_fill(ref, vsize);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	OK(vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err));
	OK(vc_disk_rekey_deep_step(d, &done, &err));
	assert_false(done);
	OK(vc_disk_rekey_shallow(d, kek3, "prov-c", "key-3", &err));
	check_all(d, ref, vsize);
	vc_disk_close(d);
	info = inspect_ok(m);
	assert_true(info.rekey_active);
	assert_string_equal(info.slot[0].provider, "prov-c");
	assert_string_equal(info.slot[1].provider, "prov-c");
	assert_string_equal(info.slot[1].key_id, "key-3");
	assert_true(open_try(m, kek, kek2, 0, &err) < 0);
	d = open_ok(m, kek3, NULL, 0);
	check_all(d, ref, vsize);
	while (!done)
		OK(vc_disk_rekey_deep_step(d, &done, &err));
	vc_disk_close(d);
	d = open_ok(m, kek3, NULL, 0);
	check_all(d, ref, vsize);
	vc_disk_close(d);
	free(ref);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
	vc_secret_free(kek3);
}

/* ---- crash safety ---------------------------------------------------------- */

struct crash_cfg {
	uint32_t ss;
	bool new_kek;
	bool no_punch;
};

struct crash_env {
	const struct crash_cfg *cfg;
	const struct vc_secret *kek, *kek2; /* kek2 == kek for a same-KEK rekey */
	const uint8_t *ref;
	uint64_t vsize;
};

static int start_rekey(struct vc_disk *d, const struct crash_env *e, struct vc_error *err)
{
	return e->cfg->new_kek ? vc_disk_rekey_deep_start(d, e->kek2, "prov-b", "key-2", err)
			       : vc_disk_rekey_deep_start(d, NULL, NULL, NULL, err);
}

/* After a crash the data must read correctly read-only (from the journal
 * if a step was cut short) without the container changing. Returns false
 * with a reason. */
static bool crash_check_ro(struct memio *m, const struct crash_env *e, char *why, size_t whylen)
{
	struct vc_error err = { 0 };
	struct vc_disk_info info;
	const struct vc_secret *k0, *k1;
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	struct memio *snap;
	char sub[256];
	bool ok;
	int r;

	memio_io(m, &io);
	if ((r = vc_disk_inspect(&io, &info, &err)) < 0) {
		say(why, whylen, "inspect: %s", err.msg);
		return false;
	}
	k0 = info.slot[0].generation == 1 ? e->kek : e->kek2;
	k1 = info.rekey_active ? e->kek2 : NULL;

	snap = memio_clone(m);
	r = vc_disk_open(&io, k0, k1, VC_DISK_RDONLY, &d, &err);
	if (r < 0) {
		say(why, whylen, "read-only open: %s", err.msg);
		memio_free(snap);
		return false;
	}
	ok = matches_ref(d, e->ref, e->vsize, sub, sizeof sub);
	vc_disk_close(d);
	if (!ok) {
		say(why, whylen, "read-only open (journal %s): %s",
			 info.journal_pending ? "pending" : "clear", sub);
		memio_free(snap);
		return false;
	}
	ok = same_bytes(m, snap);
	memio_free(snap);
	if (!ok) {
		say(why, whylen, "read-only open changed the container");
		return false;
	}
	return true;
}

/* After a crash a writable open must resume, and the finished rekey must
 * hold every byte under the new key only. */
static bool crash_check_rw(struct memio *m, const struct crash_env *e, char *why, size_t whylen)
{
	struct vc_error err = { 0 };
	struct vc_disk_info info;
	const struct vc_secret *k0, *k1;
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	bool done = false, ok;
	char sub[256];
	int r, steps = 0;

	memio_io(m, &io);
	if ((r = vc_disk_inspect(&io, &info, &err)) < 0) {
		say(why, whylen, "inspect: %s", err.msg);
		return false;
	}
	k0 = info.slot[0].generation == 1 ? e->kek : e->kek2;
	k1 = info.rekey_active ? e->kek2 : NULL;
	r = vc_disk_open(&io, k0, k1, 0, &d, &err);
	if (r < 0) {
		say(why, whylen, "writable open (journal %s): %s",
			 info.journal_pending ? "pending" : "clear", err.msg);
		return false;
	}
	if (!matches_ref(d, e->ref, e->vsize, sub, sizeof sub)) {
		say(why, whylen, "after writable open: %s", sub);
		vc_disk_close(d);
		return false;
	}
	/* The writable open may itself have finished the rekey (a redone
	 * last chunk), or the crash may have come before start took effect. */
	vc_disk_get_info(d, &info);
	done = !info.rekey_active && info.slot[0].generation == 2;
	if (!info.rekey_active && info.slot[0].generation == 1 &&
	    (r = start_rekey(d, e, &err)) < 0) {
		say(why, whylen, "restart: %s", err.msg);
		vc_disk_close(d);
		return false;
	}
	while (!done && r == 0 && steps++ < 100)
		r = vc_disk_rekey_deep_step(d, &done, &err);
	if (r < 0 || !done) {
		say(why, whylen, "finishing the rekey: %d %s", r, err.msg);
		vc_disk_close(d);
		return false;
	}
	ok = matches_ref(d, e->ref, e->vsize, sub, sizeof sub);
	vc_disk_close(d);
	if (!ok) {
		say(why, whylen, "after the rekey: %s", sub);
		return false;
	}
	if ((r = vc_disk_inspect(&io, &info, &err)) < 0 || info.rekey_active ||
	    info.slot[0].generation != 2 || !info.copy_ok[0] || !info.copy_ok[1] ||
	    !all_zero(m->data + info.journal_offset, info.journal_size)) {
		say(why, whylen, "final header: r=%d gen %llu active %d copies %d/%d (%s)",
			 r, (unsigned long long)info.slot[0].generation, info.rekey_active,
			 info.copy_ok[0], info.copy_ok[1], err.msg);
		return false;
	}
	r = vc_disk_open(&io, e->kek2, NULL, VC_DISK_RDONLY, &d, &err);
	if (r < 0) {
		say(why, whylen, "final open: %s", err.msg);
		return false;
	}
	ok = matches_ref(d, e->ref, e->vsize, sub, sizeof sub);
	vc_disk_close(d);
	if (!ok) {
		say(why, whylen, "final open: %s", sub);
		return false;
	}
	if (e->cfg->new_kek && vc_disk_open(&io, e->kek, NULL, VC_DISK_RDONLY, &d, &err) == 0) {
		vc_disk_close(d);
		say(why, whylen, "the old KEK still opens the disk");
		return false;
	}
	return true;
}

/* Both checks, so that a report says how each kind of open fares. */
static bool crash_recover(struct memio *m, const struct crash_env *e, char *why, size_t whylen)
{
	char ro[320] = "", rw[320] = "";
	bool ok_ro = crash_check_ro(m, e, ro, sizeof ro);
	bool ok_rw = crash_check_rw(m, e, rw, sizeof rw);

	say(why, whylen, "%s%s%s", ro, !ok_ro && !ok_rw ? "; " : "", rw);
	return ok_ro && ok_rw;
}

/* Run start + steps on m until done or the first error. */
static int run_rekey(struct memio *m, const struct crash_env *e, long *bounds,
		     int *nbounds, int maxbounds, struct vc_error *err)
{
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	bool done = false;
	int r, steps = 0;

	memio_io(m, &io);
	if ((r = vc_disk_open(&io, e->kek, NULL, 0, &d, err)) < 0)
		return r;
	r = start_rekey(d, e, err);
	if (bounds && *nbounds < maxbounds)
		bounds[(*nbounds)++] = m->writes;
	while (r == 0 && !done && steps++ < 100) {
		r = vc_disk_rekey_deep_step(d, &done, err);
		if (bounds && *nbounds < maxbounds)
			bounds[(*nbounds)++] = m->writes;
	}
	vc_disk_close(d);
	if (r == 0 && !done)
		r = vc_error_set(err, -EIO, "rekey did not finish");
	return r;
}

static void test_deep_rekey_crash(void **state)
{
	const struct crash_cfg *cfg = *state;
	const uint32_t ss = cfg->ss;
	const uint64_t vsize = 5 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = cfg->new_kek ? kek_new() : kek;
	struct vc_error err = { 0 };
	struct memio *m0 = make_disk(vsize, ss, kek), *m;
	const struct vc_disk_info i0 = inspect_ok(m0);
	uint8_t *ref = malloc(vsize);
	struct crash_env e = { cfg, kek, kek2, ref, vsize };
	long bounds[64], total;
	int nb = 0, failures = 0, in_start = 0, in_steps = 0, in_final = 0;
	char why[512];
	struct vc_disk *d;
	long k;

	assert_non_null(ref);
	/* Chunk 2 is a hole run (skipped by the rekey), the last one is data. */
	fill_ref(ref, vsize, ss, i0.journal_size, 2);
	d = open_ok(m0, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	vc_disk_close(d);
	m0->no_punch = cfg->no_punch;

	/* A clean run, counting writes: where start and each step end. */
	m = memio_clone(m0);
	m->no_punch = cfg->no_punch;
	m->fail_write_at = LONG_MAX;
	OK(run_rekey(m, &e, bounds, &nb, 64, &err));
	total = m->writes;
	m->fail_write_at = 0;
	if (!crash_recover(m, &e, why, sizeof why)) /* already done: checks only */
		fail_msg("clean run: %s", why);
	memio_free(m);
	assert_true(nb >= 3);
	assert_true(bounds[0] > 0);          /* start writes the header */
	assert_int_equal(bounds[nb - 1], total);

	for (k = 1; k <= total + 1; k++) {
		const char *phase;
		int r;

		m = memio_clone(m0);
		m->no_punch = cfg->no_punch;
		m->fail_write_at = k;
		r = run_rekey(m, &e, NULL, NULL, 0, &err);
		if (!m->dead) {
			if (r != 0)
				fail_msg("k=%ld: no crash but %d %s", k, r, err.msg);
			assert_int_equal(k, total + 1);
			memio_free(m);
			break;
		}
		if (r == 0)
			fail_msg("k=%ld: the crash was not reported", k);
		if (k <= bounds[0]) {
			phase = "start";
			in_start++;
		} else if (k > bounds[nb - 2]) {
			phase = "final step";
			in_final++;
		} else {
			phase = "step";
			in_steps++;
		}
		m->fail_write_at = 0;
		m->dead = false;
		if (!crash_recover(m, &e, why, sizeof why)) {
			print_message("crash at write %ld of %ld (%s): %s\n", k, total, phase, why);
			failures++;
		}
		memio_free(m);
	}
	assert_int_equal(k, total + 1);
	assert_true(in_start >= 2);
	assert_true(in_steps >= 6);
	assert_true(in_final >= 4); /* journal, in place, promotion header x2 */
	if (failures)
		fail_msg("%d of %ld crash points lost data or could not resume", failures, total);

	free(ref);
	memio_free(m0);
	vc_secret_free(kek);
	if (kek2 != kek)
		vc_secret_free(kek2);
}

/* A rekey step that fails on a transient I/O error (the storage recovers
 * afterwards) must leave the open handle consistent: reads return the
 * right data or an error, writes land, and retrying the step (or, if the
 * handle refuses, reopening) finishes the rekey without losing a byte. */
static void test_deep_rekey_retry(void **state)
{
	static const struct crash_cfg cfg = { 512, true, false };
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m0 = make_disk(vsize, 512, kek), *m;
	const struct vc_disk_info i0 = inspect_ok(m0);
	const uint64_t chunk = i0.journal_size;
	uint8_t *ref = malloc(vsize), *ref2 = malloc(vsize), *buf = malloc(vsize);
	struct crash_env e = { &cfg, kek, kek2, ref2, vsize };
	int failures = 0;
	char why[512];
	struct vc_disk *d;
	long k;

	(void)state;
	assert_non_null(ref);
	assert_non_null(ref2);
	assert_non_null(buf);
	fill_ref(ref, vsize, 512, chunk, 1);
	d = open_ok(m0, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	vc_disk_close(d);

	for (k = 1; k < 200; k++) {
		bool done = false, ok = true;
		int r, steps = 0;

		m = memio_clone(m0);
		memcpy(ref2, ref, vsize);
		d = open_ok(m, kek, NULL, 0);
		m->fail_write_at = k;
		r = vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err);
		while (r == 0 && !done && steps++ < 100)
			r = vc_disk_rekey_deep_step(d, &done, &err);
		if (!m->dead) {
			assert_int_equal(r, 0);
			vc_disk_close(d);
			memio_free(m);
			break;
		}
		assert_true(r < 0);
		m->dead = false;
		m->fail_write_at = 0;

		/* The same handle, storage healthy again. */
		why[0] = '\0';
		if (vc_disk_read(d, buf, vsize, 0, &err) == 0 &&
		    first_diff(buf, ref2, vsize, &(uint64_t){ 0 })) {
			say(why, sizeof why, "a read after the error returned wrong data; ");
			ok = false;
		}
		for (uint64_t c = 0; c < vsize / chunk; c++) {
			uint64_t off = c * chunk + 700;
			uint8_t data[40];

			rnd_fill(data, sizeof data);
			if (vc_disk_write(d, data, sizeof data, off, &err) != 0)
				continue; /* refused: not applied */
			memcpy(ref2 + off, data, sizeof data);
			if (vc_disk_read(d, buf, sizeof data, off, &err) == 0 &&
			    memcmp(buf, data, sizeof data) != 0) {
				say(why + strlen(why), sizeof why - strlen(why),
				    "a write at %llu after the error reads back wrong; ",
				    (unsigned long long)off);
				ok = false;
			}
		}
		/* Retry on the same handle; a start that failed took no effect
		 * in memory, so it is started again. */
		r = 0;
		if (!vc_disk_rekey_active(d))
			r = vc_disk_rekey_deep_start(d, kek2, "prov-b", "key-2", &err);
		done = false;
		steps = 0;
		while (r == 0 && !done && steps++ < 100)
			r = vc_disk_rekey_deep_step(d, &done, &err);
		vc_disk_close(d);
		if (!crash_check_rw(m, &e, why + strlen(why), sizeof why - strlen(why)))
			ok = false;
		if (!ok) {
			print_message("transient error at write %ld: %s\n", k, why);
			failures++;
		}
		memio_free(m);
	}
	assert_true(k < 200);
	if (failures)
		fail_msg("%d of %ld transient error points lost data", failures, k - 1);
	free(ref);
	free(ref2);
	free(buf);
	memio_free(m0);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

/* A crash inside a step leaves the chunk's old ciphertext in the journal,
 * guarded by a checksum in the header. If the journal is then damaged,
 * neither kind of open may hand out wrong data. */
static void test_journal_damaged(void **state)
{
	const uint64_t vsize = 3 * MIB;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m0 = make_disk(vsize, 512, kek), *m = NULL, *snap;
	uint8_t *ref = malloc(vsize), *buf = malloc(vsize);
	struct vc_disk_info info;
	struct vc_disk_io io;
	struct vc_disk *d;
	long k;
	int r;

	(void)state;
	assert_non_null(ref);
	assert_non_null(buf);
	rnd_fill(ref, vsize);
	d = open_ok(m0, kek, NULL, 0);
	OK(vc_disk_write(d, ref, vsize, 0, &err));
	vc_disk_close(d);

	/* The first crash point that leaves a pending journal. */
	for (k = 1; k < 100; k++) {
		bool done = false;

		m = memio_clone(m0);
		d = open_ok(m, kek, NULL, 0);
		m->fail_write_at = k;
		r = vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err);
		while (r == 0 && !done)
			r = vc_disk_rekey_deep_step(d, &done, &err);
		vc_disk_close(d);
		m->fail_write_at = 0;
		m->dead = false;
		if (inspect_ok(m).journal_pending)
			break;
		memio_free(m);
		m = NULL;
	}
	assert_non_null(m);
	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, ref, vsize);
	vc_disk_close(d);

	info = inspect_ok(m);
	m->data[info.journal_offset + 1000] ^= 0x01;
	snap = memio_clone(m);
	memio_io(m, &io);
	d = NULL;
	r = vc_disk_open(&io, kek, NULL, VC_DISK_RDONLY, &d, &err);
	if (r == 0) {
		r = vc_disk_read(d, buf, vsize, 0, &err);
		vc_disk_close(d);
		if (r == 0 && memcmp(buf, ref, vsize) != 0)
			fail_msg("read-only open of a disk with a damaged rekey journal "
				 "returned wrong data without an error");
	}
	FAILS(open_try(m, kek, NULL, 0, &err), -EBADMSG, "journal");
	assert_true(same_bytes(m, snap));

	free(ref);
	free(buf);
	memio_free(snap);
	memio_free(m);
	memio_free(m0);
	vc_secret_free(kek);
}

/* ---- concurrency ----------------------------------------------------------- */

struct cw_arg {
	struct vc_disk *d;
	uint8_t *expect;   /* whole-disk image; each thread writes only its bytes */
	uint64_t base, len; /* region */
	unsigned id, nthreads, piece, ops;
	uint64_t seed;
	pthread_barrier_t *go;
	int errors;
	char msg[VC_ERROR_MSG_MAX];
};

/* Thread t owns the pieces i of the region with i % nthreads == t: within
 * any sector, bytes of several threads interleave. */
static void *cw_thread(void *p)
{
	struct cw_arg *a = p;
	const uint64_t npieces = (a->len + a->piece - 1) / a->piece;
	uint64_t s = a->seed;
	uint8_t data[64];
	struct vc_error err = { 0 };

	pthread_barrier_wait(a->go);
	for (unsigned i = 0; i < a->ops && !a->errors; i++) {
		uint64_t piece = rng_next(&s) % npieces;
		uint64_t off, n;
		int r;

		piece -= piece % a->nthreads;
		piece += a->id;
		if (piece >= npieces)
			continue;
		off = a->base + piece * a->piece;
		n = a->base + a->len - off < a->piece ? a->base + a->len - off : a->piece;
		if (rng_next(&s) % 5 == 0) {
			r = vc_disk_zero(a->d, off, n, &err);
			memset(data, 0, n);
		} else {
			rng_fill(&s, data, n);
			r = vc_disk_write(a->d, data, n, off, &err);
		}
		if (r < 0) {
			a->errors++;
			snprintf(a->msg, sizeof a->msg, "%s", err.msg);
		}
		memcpy(a->expect + off, data, n);
	}
	return NULL;
}

static void run_writers(struct vc_disk *d, uint8_t *expect, uint64_t base, uint64_t len,
			unsigned nthreads, unsigned piece, unsigned ops,
			void (*main_work)(struct vc_disk *, void *), void *ctx)
{
	pthread_t tid[8];
	struct cw_arg args[8];
	pthread_barrier_t go;

	assert_true(nthreads <= 8 && piece <= 64);
	assert_int_equal(pthread_barrier_init(&go, NULL, nthreads + 1), 0);
	for (unsigned t = 0; t < nthreads; t++) {
		args[t] = (struct cw_arg){
			.d = d, .expect = expect, .base = base, .len = len, .id = t,
			.nthreads = nthreads, .piece = piece, .ops = ops,
			.seed = rnd() | 1, .go = &go,
		};
		assert_int_equal(pthread_create(&tid[t], NULL, cw_thread, &args[t]), 0);
	}
	pthread_barrier_wait(&go);
	if (main_work)
		main_work(d, ctx);
	for (unsigned t = 0; t < nthreads; t++)
		assert_int_equal(pthread_join(tid[t], NULL), 0);
	pthread_barrier_destroy(&go);
	for (unsigned t = 0; t < nthreads; t++)
		if (args[t].errors)
			fail_msg("writer %u: %s", t, args[t].msg);
}

static void test_concurrent_partial(void **state)
{
	const uint32_t ss = *(const uint32_t *)*state;
	const uint64_t vsize = MIB, base = 3 * ss, len = (ss == 512 ? 48 : 12) * (uint64_t)ss;
	struct vc_secret *kek = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, ss, kek);
	uint8_t *expect = malloc(vsize);
	struct vc_disk *d = open_ok(m, kek, NULL, 0);

	assert_non_null(expect);
	rnd_fill(expect, vsize);
	OK(vc_disk_write(d, expect, vsize, 0, &err));
	/* 24-byte pieces: sectors hold pieces of every thread, and some
	 * pieces straddle a sector boundary. */
	run_writers(d, expect, base, len, 4, 24, 3000, NULL, NULL);
	check_all(d, expect, vsize);
	vc_disk_close(d);
	d = open_ok(m, kek, NULL, VC_DISK_RDONLY);
	check_all(d, expect, vsize);
	vc_disk_close(d);
	free(expect);
	memio_free(m);
	vc_secret_free(kek);
}

struct rekey_ctx {
	const struct vc_secret *kek2;
	int steps, rc;
	char msg[VC_ERROR_MSG_MAX];
};

static void rekey_work(struct vc_disk *d, void *p)
{
	struct rekey_ctx *c = p;
	struct vc_error err = { 0 };
	bool done = false;

	c->rc = vc_disk_rekey_deep_start(d, c->kek2, "prov-b", "key-2", &err);
	while (c->rc == 0 && !done && c->steps++ < 100)
		c->rc = vc_disk_rekey_deep_step(d, &done, &err);
	if (c->rc < 0)
		snprintf(c->msg, sizeof c->msg, "%s", err.msg);
	else if (!done)
		c->rc = -EIO;
}

/* Partial writes from several threads while the main thread runs a deep
 * rekey: the steps exclude the writers, nothing is lost either way. */
static void test_concurrent_rekey(void **state)
{
	const uint64_t vsize = 4 * MIB;
	struct vc_secret *kek = kek_new(), *kek2 = kek_new();
	struct vc_error err = { 0 };
	struct memio *m = make_disk(vsize, 512, kek);
	uint8_t *expect = malloc(vsize);
	struct vc_disk *d = open_ok(m, kek, NULL, 0);
	struct rekey_ctx ctx = { .kek2 = kek2 };

	(void)state;
	assert_non_null(expect);
	rnd_fill(expect, vsize);
	OK(vc_disk_write(d, expect, vsize, 0, &err));
	run_writers(d, expect, 0, vsize, 3, 40, 4000, rekey_work, &ctx);
	if (ctx.rc)
		fail_msg("rekey: %d %s", ctx.rc, ctx.msg);
	assert_false(vc_disk_rekey_active(d));
	check_all(d, expect, vsize);
	vc_disk_close(d);
	d = open_ok(m, kek2, NULL, VC_DISK_RDONLY);
	check_all(d, expect, vsize);
	vc_disk_close(d);
	free(expect);
	memio_free(m);
	vc_secret_free(kek);
	vc_secret_free(kek2);
}

int main(void)
{
	static struct holes_cfg h512 = { 512, false }, h512np = { 512, true },
				      h4096 = { 4096, false }, h4096np = { 4096, true };
	static struct deep_cfg d512 = { 512, false }, d512n = { 512, true },
				     d4096n = { 4096, true };
	static struct crash_cfg c512 = { 512, false, false },
				      c512n = { 512, true, false },
				      c4096np = { 4096, true, true };
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_container_size),
		cmocka_unit_test_prestate(test_roundtrip, &ss512),
		cmocka_unit_test_prestate(test_roundtrip, &ss4096),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_format_errors),
		cmocka_unit_test(test_wrong_kek),
		cmocka_unit_test(test_wrapped_key_tamper),
		cmocka_unit_test(test_header_mac),
		cmocka_unit_test(test_copy0_damaged),
		cmocka_unit_test(test_copy1_damaged),
		cmocka_unit_test(test_stale_copy),
		cmocka_unit_test(test_both_copies_damaged),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_not_vmcrypt),
		cmocka_unit_test(test_bad_version),
		cmocka_unit_test(test_inspect_rejects),
		cmocka_unit_test_prestate(test_random_io, &ss512),
		cmocka_unit_test_prestate(test_random_io, &ss4096),
		cmocka_unit_test_prestate(test_holes, &h512),
		cmocka_unit_test_prestate(test_holes, &h512np),
		cmocka_unit_test_prestate(test_holes, &h4096),
		cmocka_unit_test_prestate(test_holes, &h4096np),
		cmocka_unit_test(test_range_errors),
		cmocka_unit_test(test_readonly),
		cmocka_unit_test(test_no_plaintext),
		cmocka_unit_test(test_shallow_rekey),
		cmocka_unit_test_prestate(test_deep_rekey, &d512),
		cmocka_unit_test_prestate(test_deep_rekey, &d512n),
		cmocka_unit_test_prestate(test_deep_rekey, &d4096n),
		cmocka_unit_test(test_deep_rekey_empty),
		cmocka_unit_test_prestate(test_deep_rekey_writes, &ss512),
		cmocka_unit_test_prestate(test_deep_rekey_writes, &ss4096),
		cmocka_unit_test(test_shallow_during_deep),
		cmocka_unit_test_prestate(test_deep_rekey_crash, &c512),
		cmocka_unit_test_prestate(test_deep_rekey_crash, &c512n),
		cmocka_unit_test_prestate(test_deep_rekey_crash, &c4096np),
		cmocka_unit_test(test_deep_rekey_retry),
		cmocka_unit_test(test_journal_damaged),
		cmocka_unit_test_prestate(test_concurrent_partial, &ss512),
		cmocka_unit_test_prestate(test_concurrent_partial, &ss4096),
		cmocka_unit_test(test_concurrent_rekey),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
