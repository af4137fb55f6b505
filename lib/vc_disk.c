/* SPDX-License-Identifier: Apache-2.0 */
/* Encrypted disk format: header copies, key slots, rekey journal, payload.
 * Byte layout: docs/FORMAT.md. */
#include "vc_disk.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "vc_crypto.h"
#include "vc_wrap.h"
#include "vc_xts.h"

/* docs/FORMAT.md, "Header copy": offsets within one 4096-byte copy. */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_COPY = 10,
	OFF_HDRSIZE = 12,
	OFF_SEQ = 16,
	OFF_UUID = 24,
	OFF_VSIZE = 40,
	OFF_SECTOR = 48,
	OFF_CIPHER = 52,
	OFF_PAYLOAD = 56,
	OFF_JOFF = 64,
	OFF_JSIZE = 72,
	OFF_FLAGS = 80,
	OFF_RESERVED0 = 84,
	OFF_PROGRESS = 88,
	OFF_JSTART = 96,
	OFF_JCOUNT = 104,
	OFF_JSHA = 112,
	OFF_SLOTS = 144,
	SLOT_SIZE = 320,
	OFF_RESERVED = OFF_SLOTS + 2 * SLOT_SIZE, /* 784 */
	OFF_MAC = 4032,      /* HMAC-SHA-256 of bytes [0, 4032) */
	OFF_CHECKSUM = 4064, /* SHA-256 of bytes [0, 4064), the MAC included */
};

/* docs/FORMAT.md, "Key slot": offsets within a slot. */
enum {
	SL_STATE = 0,
	SL_KEYLEN = 4,
	SL_GENERATION = 8,
	SL_PROVIDER = 16,
	SL_KEY_ID = 80,
	SL_WRAPPED = 208,
	WRAPPED_LEN = VC_XTS_KEY_LEN + VC_WRAP_OVERHEAD, /* 92 */
};
#define SL_END (SL_WRAPPED + WRAPPED_LEN) /* 300 */

_Static_assert(OFF_RESERVED <= OFF_MAC, "header fields overlap the MAC");
_Static_assert(SL_END <= SLOT_SIZE, "key slot overflows");
_Static_assert(OFF_MAC + VC_SHA256_LEN == OFF_CHECKSUM, "MAC then checksum");
_Static_assert(OFF_CHECKSUM + VC_SHA256_LEN == VC_DISK_HEADER_SIZE, "header size");

#define FLAG_REKEY 0x1u
#define FLAG_JOURNAL 0x2u
#define FLAGS_KNOWN (FLAG_REKEY | FLAG_JOURNAL)

#define MIB ((uint64_t)1 << 20)
#define DEFAULT_JOURNAL_OFFSET (1 * MIB)
#define DEFAULT_JOURNAL_SIZE (1 * MIB)
#define DEFAULT_PAYLOAD_OFFSET (2 * MIB)
#define MAX_PAYLOAD_OFFSET (1024 * MIB)
#define IO_CHUNK (4 * MIB) /* bounce buffer for writes */
#define RMW_LOCKS 64
#define HOLE_SKIP_MIN (64 * 1024) /* zero runs a rekey step leaves unwritten */
#define ZERO_SKIP_MAX 1024 /* empty chunks skipped per rekey step */

static const char mac_info[] = "vmcrypt disk header mac v1";

struct slot {
	uint32_t state; /* 0 empty, 1 active */
	uint64_t generation;
	char provider[VC_DISK_PROVIDER_MAX + 1];
	char key_id[VC_DISK_KEY_ID_MAX + 1];
	uint8_t wrapped[WRAPPED_LEN];
};

struct hdr {
	uint16_t version;
	uint64_t seq;
	struct vc_uuid uuid;
	uint64_t vsize;
	uint32_t ss;
	uint32_t cipher;
	uint64_t payload, joff, jsize;
	uint32_t flags;
	uint64_t progress, jstart, jcount;
	uint8_t jsha[VC_SHA256_LEN];
	struct slot slot[2];
};

struct vc_disk {
	struct vc_disk_io io;
	_Atomic bool rdonly; /* may turn false later: vc_disk_set_writable */
	bool needs_repair; /* a header copy is damaged or stale */
	int copy_used;     /* a copy known to be valid and current */
	pthread_rwlock_t lock;  /* I/O read-locks; header changes write-lock */
	pthread_mutex_t rmw[RMW_LOCKS];
	struct hdr h;
	/* Geometry: fixed at open, read without the lock. */
	uint32_t ss;
	uint64_t vsize, payload, nsectors;
	struct vc_secret *kek[2]; /* owned copies of the slot KEKs */
	struct vc_secret *dek[2];
	struct vc_secret *mackey;
	struct vc_xts *xts[2];
};

/* ---- header encoding ---------------------------------------------------- */

/* A NUL-padded name field (names are not secrets). */
static void put_name(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	memcpy(dst, src, n);
	memset(dst + n, 0, cap - n);
}

static void hdr_encode_body(const struct hdr *h, int copy, uint8_t *b)
{
	memset(b, 0, VC_DISK_HEADER_SIZE);
	memcpy(b + OFF_MAGIC, VC_DISK_MAGIC, 8);
	vc_put_le16(b + OFF_VERSION, h->version);
	vc_put_le16(b + OFF_COPY, (uint16_t)copy);
	vc_put_le32(b + OFF_HDRSIZE, VC_DISK_HEADER_SIZE);
	vc_put_le64(b + OFF_SEQ, h->seq);
	memcpy(b + OFF_UUID, h->uuid.b, 16);
	vc_put_le64(b + OFF_VSIZE, h->vsize);
	vc_put_le32(b + OFF_SECTOR, h->ss);
	vc_put_le32(b + OFF_CIPHER, h->cipher);
	vc_put_le64(b + OFF_PAYLOAD, h->payload);
	vc_put_le64(b + OFF_JOFF, h->joff);
	vc_put_le64(b + OFF_JSIZE, h->jsize);
	vc_put_le32(b + OFF_FLAGS, h->flags);
	vc_put_le64(b + OFF_PROGRESS, h->progress);
	vc_put_le64(b + OFF_JSTART, h->jstart);
	vc_put_le64(b + OFF_JCOUNT, h->jcount);
	memcpy(b + OFF_JSHA, h->jsha, VC_SHA256_LEN);
	for (int i = 0; i < 2; i++) {
		const struct slot *s = &h->slot[i];
		uint8_t *p = b + OFF_SLOTS + i * SLOT_SIZE;

		if (!s->state)
			continue;
		vc_put_le32(p + SL_STATE, s->state);
		vc_put_le32(p + SL_KEYLEN, VC_XTS_KEY_LEN);
		vc_put_le64(p + SL_GENERATION, s->generation);
		put_name((char *)(p + SL_PROVIDER), VC_DISK_PROVIDER_MAX + 1, s->provider);
		put_name((char *)(p + SL_KEY_ID), VC_DISK_KEY_ID_MAX + 1, s->key_id);
		memcpy(p + SL_WRAPPED, s->wrapped, WRAPPED_LEN);
	}
}

static int hdr_mac(const uint8_t *b, const struct vc_secret *mackey,
		   uint8_t out[VC_SHA256_LEN], struct vc_error *err)
{
	return vc_hmac_sha256(vc_secret_data(mackey), vc_secret_len(mackey), b,
			      OFF_MAC, out, err);
}

static int hdr_encode(const struct hdr *h, int copy,
		      const struct vc_secret *mackey, uint8_t *b,
		      struct vc_error *err)
{
	int r;

	hdr_encode_body(h, copy, b);
	if ((r = hdr_mac(b, mackey, b + OFF_MAC, err)) < 0 ||
	    (r = vc_sha256(b, OFF_CHECKSUM, b + OFF_CHECKSUM, err)) < 0)
		return r;
	return 0;
}

/* A fixed-size, NUL-padded string field: at least one NUL, nothing but
 * NULs after the first, at least one character. */
static int get_str(const uint8_t *p, size_t cap, char *out)
{
	size_t n = strnlen((const char *)p, cap);

	if (n == 0 || n == cap)
		return -1;
	for (size_t i = n; i < cap; i++)
		if (p[i])
			return -1;
	memcpy(out, p, n + 1);
	return 0;
}

/* Checks that need no key. On failure writes a reason into why. The
 * checksum is verified first so that a damaged copy reports as such. */
static int hdr_decode(const uint8_t *b, int copy, struct hdr *h, char *why,
		      size_t whylen)
{
	uint8_t sum[VC_SHA256_LEN];
	uint64_t end;

#define BAD(...) do { snprintf(why, whylen, __VA_ARGS__); return -EINVAL; } while (0)
	memset(h, 0, sizeof *h);
	if (memcmp(b + OFF_MAGIC, VC_DISK_MAGIC, 8) != 0) {
		snprintf(why, whylen, "no vmcrypt magic");
		return -ENOENT;
	}
	h->version = vc_get_le16(b + OFF_VERSION);
	if (h->version != VC_DISK_VERSION) {
		snprintf(why, whylen, "unsupported format version %u (this build reads %d)",
			 h->version, VC_DISK_VERSION);
		return -ENOTSUP;
	}
	if (vc_sha256(b, OFF_CHECKSUM, sum, NULL) < 0 ||
	    !vc_ct_equal(sum, b + OFF_CHECKSUM, sizeof sum))
		BAD("checksum mismatch (damaged header copy)");
	if (vc_get_le32(b + OFF_HDRSIZE) != VC_DISK_HEADER_SIZE)
		BAD("header size %u is not %d", vc_get_le32(b + OFF_HDRSIZE), VC_DISK_HEADER_SIZE);
	if (vc_get_le16(b + OFF_COPY) != copy)
		BAD("copy index %u found in copy %d", vc_get_le16(b + OFF_COPY), copy);
	h->seq = vc_get_le64(b + OFF_SEQ);
	memcpy(h->uuid.b, b + OFF_UUID, 16);
	h->vsize = vc_get_le64(b + OFF_VSIZE);
	h->ss = vc_get_le32(b + OFF_SECTOR);
	h->cipher = vc_get_le32(b + OFF_CIPHER);
	h->payload = vc_get_le64(b + OFF_PAYLOAD);
	h->joff = vc_get_le64(b + OFF_JOFF);
	h->jsize = vc_get_le64(b + OFF_JSIZE);
	h->flags = vc_get_le32(b + OFF_FLAGS);
	h->progress = vc_get_le64(b + OFF_PROGRESS);
	h->jstart = vc_get_le64(b + OFF_JSTART);
	h->jcount = vc_get_le64(b + OFF_JCOUNT);
	memcpy(h->jsha, b + OFF_JSHA, VC_SHA256_LEN);

	if (h->ss != 512 && h->ss != 4096)
		BAD("sector size %u is not 512 or 4096", h->ss);
	if (h->cipher != VC_DISK_CIPHER_AES256_XTS)
		BAD("unknown cipher %u", h->cipher);
	if (h->vsize == 0 || h->vsize > VC_DISK_MAX_SIZE || h->vsize % h->ss)
		BAD("virtual size %llu is not a positive multiple of %u up to 64 PiB",
		    (unsigned long long)h->vsize, h->ss);
	if (h->payload < 2 * VC_DISK_HEADER_SIZE || h->payload % 4096 ||
	    h->payload > MAX_PAYLOAD_OFFSET)
		BAD("bad payload offset %llu", (unsigned long long)h->payload);
	if (h->joff < 2 * VC_DISK_HEADER_SIZE || h->joff % 4096 || h->jsize < 4096 ||
	    h->jsize % 4096 || __builtin_add_overflow(h->joff, h->jsize, &end) ||
	    end > h->payload)
		BAD("bad journal area");
	if (h->flags & ~FLAGS_KNOWN)
		BAD("unknown flags 0x%x", h->flags);
	if (vc_get_le32(b + OFF_RESERVED0) != 0 ||
	    !vc_is_zero(b + OFF_RESERVED, OFF_MAC - OFF_RESERVED))
		BAD("reserved bytes are not zero");

	for (int i = 0; i < 2; i++) {
		const uint8_t *p = b + OFF_SLOTS + i * SLOT_SIZE;
		struct slot *s = &h->slot[i];

		s->state = vc_get_le32(p + SL_STATE);
		if (s->state == 0) {
			if (!vc_is_zero(p, SLOT_SIZE))
				BAD("empty key slot %d is not zero", i);
			continue;
		}
		if (s->state != 1)
			BAD("key slot %d has unknown state %u", i, s->state);
		if (vc_get_le32(p + SL_KEYLEN) != VC_XTS_KEY_LEN)
			BAD("key slot %d: key length is not %d", i, VC_XTS_KEY_LEN);
		s->generation = vc_get_le64(p + SL_GENERATION);
		if (get_str(p + SL_PROVIDER, VC_DISK_PROVIDER_MAX + 1, s->provider) < 0 ||
		    get_str(p + SL_KEY_ID, VC_DISK_KEY_ID_MAX + 1, s->key_id) < 0)
			BAD("key slot %d: bad provider or key id", i);
		memcpy(s->wrapped, p + SL_WRAPPED, WRAPPED_LEN);
		if (!vc_is_zero(p + SL_END, SLOT_SIZE - SL_END))
			BAD("key slot %d: padding is not zero", i);
	}
	if (!h->slot[0].state)
		BAD("key slot 0 is empty");
	if (!!h->slot[1].state != !!(h->flags & FLAG_REKEY))
		BAD("key slot 1 does not match the rekey flag");
	if (h->flags & FLAG_REKEY) {
		if (h->slot[1].generation <= h->slot[0].generation)
			BAD("rekey target generation is not newer");
		if (h->progress > h->vsize / h->ss)
			BAD("rekey progress beyond the end of the disk");
	} else if (h->progress) {
		BAD("rekey progress without a rekey");
	}
	if (h->flags & FLAG_JOURNAL) {
		if (!(h->flags & FLAG_REKEY) || h->jstart != h->progress ||
		    h->jcount == 0 || h->jcount > h->jsize / h->ss ||
		    h->jcount > h->vsize / h->ss - h->jstart)
			BAD("inconsistent rekey journal fields");
	} else if (h->jstart || h->jcount || !vc_is_zero(h->jsha, sizeof h->jsha)) {
		BAD("journal fields set without a journal");
	}
#undef BAD
	return 0;
}

/* Read both copies and pick the valid one with the highest sequence. */
static int hdr_load(const struct vc_disk_io *io, struct hdr *h,
		    struct vc_disk_info *info, uint8_t raw[VC_DISK_HEADER_SIZE],
		    struct vc_error *err)
{
	uint8_t *buf = NULL;
	struct hdr cand[2];
	int rc[2], best = -1;
	uint64_t size, need;
	int r;

	memset(info, 0, sizeof *info);
	r = io->get_size(io->opaque, &size, err);
	if (r < 0)
		return r;
	if (size < 2 * VC_DISK_HEADER_SIZE)
		return vc_error_set(err, -EINVAL,
				    "not a vmcrypt disk: %llu bytes is too small to hold its header",
				    (unsigned long long)size);
	buf = malloc(2 * VC_DISK_HEADER_SIZE);
	if (!buf)
		return vc_error_set(err, -ENOMEM, "out of memory");
	r = io->pread(io->opaque, buf, 2 * VC_DISK_HEADER_SIZE, 0, err);
	if (r < 0) {
		free(buf);
		return r;
	}
	for (int i = 0; i < 2; i++) {
		rc[i] = hdr_decode(buf + i * VC_DISK_HEADER_SIZE, i, &cand[i],
				   info->copy_problem[i], sizeof info->copy_problem[i]);
		info->copy_ok[i] = rc[i] == 0;
		if (rc[i] == 0 && (best < 0 || cand[i].seq > cand[best].seq))
			best = i;
	}
	if (best < 0) {
		if (rc[0] == -ENOENT && rc[1] == -ENOENT)
			r = vc_error_set(err, -EINVAL, "not a vmcrypt disk (no header magic)");
		else if (rc[0] == -ENOTSUP || rc[1] == -ENOTSUP)
			r = vc_error_set(err, -ENOTSUP, "%s",
					 info->copy_problem[rc[0] == -ENOTSUP ? 0 : 1]);
		else
			r = vc_error_set(err, -EBADMSG,
					 "both header copies are damaged (copy 0: %s; copy 1: %s)",
					 info->copy_problem[0], info->copy_problem[1]);
		free(buf);
		return r;
	}
	*h = cand[best];
	need = h->payload + h->vsize; /* both bounded: no overflow */
	if (size < need) {
		free(buf);
		return vc_error_set(err, -EINVAL,
				    "container is smaller than the header says (%llu bytes, %llu needed): truncated disk?",
				    (unsigned long long)size, (unsigned long long)need);
	}
	if (raw)
		memcpy(raw, buf + best * VC_DISK_HEADER_SIZE, VC_DISK_HEADER_SIZE);
	free(buf);
	info->copy_used = best;
	/* A copy that decodes but lags behind is stale, not damaged; the
	 * next header write refreshes it. */
	if (rc[1 - best] == 0 && cand[1 - best].seq != h->seq)
		snprintf(info->copy_problem[1 - best], sizeof info->copy_problem[0],
			 "stale (sequence %llu, current %llu)",
			 (unsigned long long)cand[1 - best].seq, (unsigned long long)h->seq);
	return 0;
}

static void fill_info(const struct hdr *h, struct vc_disk_info *info)
{
	info->version = h->version;
	info->uuid = h->uuid;
	info->sequence = h->seq;
	info->virtual_size = h->vsize;
	info->sector_size = h->ss;
	info->cipher = h->cipher;
	info->payload_offset = h->payload;
	info->journal_offset = h->joff;
	info->journal_size = h->jsize;
	info->rekey_active = h->flags & FLAG_REKEY;
	info->rekey_progress = h->progress;
	info->journal_pending = h->flags & FLAG_JOURNAL;
	info->journal_start = h->jstart;
	info->journal_count = h->jcount;
	for (int i = 0; i < 2; i++) {
		info->slot[i].active = h->slot[i].state != 0;
		info->slot[i].generation = h->slot[i].generation;
		memcpy(info->slot[i].provider, h->slot[i].provider, sizeof h->slot[i].provider);
		memcpy(info->slot[i].key_id, h->slot[i].key_id, sizeof h->slot[i].key_id);
	}
}

int vc_disk_inspect(const struct vc_disk_io *io, struct vc_disk_info *info,
		    struct vc_error *err)
{
	struct hdr h;
	int r = hdr_load(io, &h, info, NULL, err);

	if (r == 0)
		fill_info(&h, info);
	return r;
}

/* ---- keys ----------------------------------------------------------------- */

static void make_binding(const struct hdr *h, int i, struct vc_binding *b)
{
	b->format = VC_DISK_DEK_FORMAT;
	b->object = h->uuid.b;
	b->provider = h->slot[i].provider;
	b->key_id = h->slot[i].key_id;
	b->generation = h->slot[i].generation;
}

static int wrap_slot(struct hdr *h, int i, const struct vc_secret *kek,
		     const struct vc_secret *dek, struct vc_error *err)
{
	struct vc_binding b;
	size_t len;

	make_binding(h, i, &b);
	return vc_wrap_key(kek, &b, dek, h->slot[i].wrapped, WRAPPED_LEN, &len, err);
}

static int set_slot_names(struct slot *s, const char *provider,
			  const char *key_id, struct vc_error *err)
{
	if (!provider || !*provider || strlen(provider) > VC_DISK_PROVIDER_MAX)
		return vc_error_set(err, -EINVAL, "provider name must be 1 to %d bytes",
				    VC_DISK_PROVIDER_MAX);
	if (!key_id || !*key_id || strlen(key_id) > VC_DISK_KEY_ID_MAX)
		return vc_error_set(err, -EINVAL, "key id must be 1 to %d bytes",
				    VC_DISK_KEY_ID_MAX);
	put_name(s->provider, sizeof s->provider, provider);
	put_name(s->key_id, sizeof s->key_id, key_id);
	return 0;
}

/* A fresh 512-bit XTS key with distinct halves. */
static int new_dek(struct vc_secret **out, struct vc_error *err)
{
	for (;;) {
		int r = vc_random_secret(VC_XTS_KEY_LEN, out, err);
		const uint8_t *k;

		if (r < 0)
			return r;
		k = vc_secret_data(*out);
		if (!vc_ct_equal(k, k + 32, 32))
			return 0;
		vc_secret_free(*out);
	}
}

static int derive_mackey(const struct hdr *h, const struct vc_secret *dek,
			 struct vc_secret **out, struct vc_error *err)
{
	int r = vc_secret_new(VC_SHA256_LEN, out, err);

	if (r < 0)
		return r;
	r = vc_hkdf_sha256(vc_secret_data(dek), vc_secret_len(dek), h->uuid.b, 16,
			   mac_info, sizeof mac_info - 1, vc_secret_data(*out),
			   VC_SHA256_LEN, err);
	if (r < 0) {
		vc_secret_free(*out);
		*out = NULL;
	}
	return r;
}

/* ---- header writes -------------------------------------------------------- */

/* Write both copies, each followed by a flush, first copy `first` then the
 * other, so that an interruption at any point leaves at least one valid
 * copy (the old or the new state) -- provided the copy written second was
 * valid before. *written is how many copies were written. */
static int hdr_store_order(const struct vc_disk_io *io, struct hdr *h, int first,
			   const struct vc_secret *mackey, int *written,
			   struct vc_error *err)
{
	uint8_t *b = malloc(VC_DISK_HEADER_SIZE);
	int r = 0;

	*written = 0;
	if (!b)
		return vc_error_set(err, -ENOMEM, "out of memory");
	h->seq++;
	for (int k = 0; k < 2 && r == 0; k++) {
		int c = k ? 1 - first : first;

		r = hdr_encode(h, c, mackey, b, err);
		if (r == 0)
			r = io->pwrite(io->opaque, b, VC_DISK_HEADER_SIZE,
				       (uint64_t)c * VC_DISK_HEADER_SIZE, err);
		if (r == 0)
			r = io->flush(io->opaque, err);
		if (r == 0)
			(*written)++;
	}
	free(b);
	if (r < 0)
		vc_error_prefix(err, "cannot write disk header");
	return r;
}

static int hdr_store(const struct vc_disk_io *io, struct hdr *h,
		     const struct vc_secret *mackey, struct vc_error *err)
{
	int written;

	return hdr_store_order(io, h, 0, mackey, &written, err);
}

/* A header update of an open disk. When one copy is damaged or stale the
 * good one must be written last: writing it first and being cut off would
 * leave no valid copy at all. */
static int disk_store(struct vc_disk *d, struct hdr *h,
		      const struct vc_secret *mackey, struct vc_error *err)
{
	int first = d->needs_repair ? 1 - d->copy_used : 0, written;
	int r = hdr_store_order(&d->io, h, first, mackey, &written, err);

	if (written == 1) {
		/* The first copy holds the new state, the second is now stale
		 * or torn. */
		d->copy_used = first;
		d->needs_repair = true;
	} else if (written == 2) {
		d->copy_used = 1 - first;
		d->needs_repair = false;
	}
	return r;
}

int vc_disk_container_size(uint64_t vsize, uint32_t ss, uint64_t *out,
			   struct vc_error *err)
{
	if (ss != 512 && ss != 4096)
		return vc_error_set(err, -EINVAL, "sector size must be 512 or 4096");
	if (vsize == 0 || vsize % ss || vsize > VC_DISK_MAX_SIZE)
		return vc_error_set(err, -EINVAL,
				    "size must be a positive multiple of the %u-byte sector size, at most 64 PiB",
				    ss);
	*out = DEFAULT_PAYLOAD_OFFSET + vsize;
	return 0;
}

int vc_disk_format(const struct vc_disk_io *io, const struct vc_disk_params *p,
		   const struct vc_secret *kek, struct vc_uuid *uuid_out,
		   struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *dek = NULL;
	VC_CLEANUP_SECRET struct vc_secret *mackey = NULL;
	uint64_t need, have;
	struct hdr h;
	int r;

	memset(&h, 0, sizeof h);
	if ((r = vc_disk_container_size(p->virtual_size, p->sector_size, &need, err)) < 0)
		return r;
	if ((r = io->get_size(io->opaque, &have, err)) < 0)
		return r;
	if (have < need)
		return vc_error_set(err, -EINVAL, "container holds %llu bytes, %llu needed",
				    (unsigned long long)have, (unsigned long long)need);
	h.version = VC_DISK_VERSION;
	h.seq = 0;
	if (p->uuid)
		h.uuid = *p->uuid;
	else if ((r = vc_uuid_generate(&h.uuid, err)) < 0)
		return r;
	h.vsize = p->virtual_size;
	h.ss = p->sector_size;
	h.cipher = VC_DISK_CIPHER_AES256_XTS;
	h.payload = DEFAULT_PAYLOAD_OFFSET;
	h.joff = DEFAULT_JOURNAL_OFFSET;
	h.jsize = DEFAULT_JOURNAL_SIZE;
	h.slot[0].state = 1;
	h.slot[0].generation = 1;
	if ((r = set_slot_names(&h.slot[0], p->provider, p->key_id, err)) < 0 ||
	    (r = new_dek(&dek, err)) < 0 ||
	    (r = wrap_slot(&h, 0, kek, dek, err)) < 0 ||
	    (r = derive_mackey(&h, dek, &mackey, err)) < 0 ||
	    (r = hdr_store(io, &h, mackey, err)) < 0)
		return r;
	if (uuid_out)
		*uuid_out = h.uuid;
	return 0;
}

/* ---- open / close --------------------------------------------------------- */

static int unlock_slot(struct vc_disk *d, int i, const struct vc_secret *kek,
		       struct vc_error *err)
{
	struct vc_binding b;
	int r;

	make_binding(&d->h, i, &b);
	r = vc_unwrap_key(kek, &b, d->h.slot[i].wrapped, WRAPPED_LEN, &d->dek[i], err);
	if (r < 0 && i == 1)
		return vc_error_set(err, -EKEYREJECTED,
				    "a deep rekey to provider '%s' key id '%s' is in progress and the KEK given does not unwrap its new key: supply that KEK too",
				    d->h.slot[1].provider, d->h.slot[1].key_id);
	if (r < 0)
		return vc_error_set(err, -EKEYREJECTED,
				    "wrong key: the KEK does not unwrap this disk's key (provider '%s', key id '%s')",
				    d->h.slot[0].provider, d->h.slot[0].key_id);
	if ((r = vc_secret_from_bytes(vc_secret_data(kek), vc_secret_len(kek),
				      &d->kek[i], err)) < 0)
		return r;
	return vc_xts_new(d->dek[i], VC_XTS_AUTO, &d->xts[i], err);
}

static void drop_slot(struct vc_disk *d, int i)
{
	vc_xts_free(d->xts[i]);
	vc_secret_free(d->dek[i]);
	vc_secret_free(d->kek[i]);
	d->xts[i] = NULL;
	d->dek[i] = NULL;
	d->kek[i] = NULL;
}

static int journal_redo(struct vc_disk *d, struct vc_error *err);

/* Before the first write: redo an interrupted rekey step, or bring both
 * header copies back in step. */
static int recover(struct vc_disk *d, struct vc_error *err)
{
	int r = 0;

	if (d->h.flags & FLAG_JOURNAL)
		r = journal_redo(d, err);
	else if (d->needs_repair)
		r = disk_store(d, &d->h, d->mackey, err);
	return r;
}

static int journal_load(struct vc_disk *d, uint8_t **out, struct vc_error *err);

int vc_disk_open(const struct vc_disk_io *io, const struct vc_secret *kek,
		 const struct vc_secret *next_kek, unsigned flags,
		 struct vc_disk **out, struct vc_error *err)
{
	uint8_t raw[VC_DISK_HEADER_SIZE], mac[VC_SHA256_LEN];
	struct vc_disk_info info;
	struct vc_disk *d;
	int r;

	*out = NULL;
	if (!kek || vc_secret_len(kek) != VC_KEK_LEN)
		return vc_error_set(err, -EINVAL, "a %d-byte KEK is required", VC_KEK_LEN);
	d = calloc(1, sizeof *d);
	if (!d)
		return vc_error_set(err, -ENOMEM, "out of memory");
	d->io = *io;
	d->rdonly = flags & VC_DISK_RDONLY;
	pthread_rwlock_init(&d->lock, NULL);
	for (int i = 0; i < RMW_LOCKS; i++)
		pthread_mutex_init(&d->rmw[i], NULL);

	if ((r = hdr_load(io, &d->h, &info, raw, err)) < 0)
		goto fail;
	d->ss = d->h.ss;
	d->vsize = d->h.vsize;
	d->payload = d->h.payload;
	d->nsectors = d->vsize / d->ss;
	if ((r = unlock_slot(d, 0, kek, err)) < 0 ||
	    (r = derive_mackey(&d->h, d->dek[0], &d->mackey, err)) < 0 ||
	    (r = hdr_mac(raw, d->mackey, mac, err)) < 0)
		goto fail;
	if (!vc_ct_equal(mac, raw + OFF_MAC, sizeof mac)) {
		r = vc_error_set(err, -EBADMSG,
				 "header authentication failed: the header was modified without the key");
		goto fail;
	}
	if (d->h.slot[1].state &&
	    (r = unlock_slot(d, 1, next_kek ? next_kek : kek, err)) < 0)
		goto fail;

	if (d->rdonly && (d->h.flags & FLAG_JOURNAL)) {
		/* Reads of the journaled chunk come from the journal: make
		 * sure it is intact before serving any of it. */
		uint8_t *j;

		if ((r = journal_load(d, &j, err)) < 0) {
			vc_error_prefix(err, "cannot read the interrupted rekey");
			goto fail;
		}
		free(j);
	}
	d->needs_repair = !info.copy_ok[0] || !info.copy_ok[1] ||
			  info.copy_problem[1 - info.copy_used][0];
	d->copy_used = info.copy_used;
	if (!d->rdonly && (r = recover(d, err)) < 0)
		goto fail;
	*out = d;
	return 0;
fail:
	vc_disk_close(d);
	return r;
}

int vc_disk_set_writable(struct vc_disk *d, struct vc_error *err)
{
	int r = 0;

	pthread_rwlock_wrlock(&d->lock);
	if (d->rdonly) {
		d->rdonly = false;
		r = recover(d, err);
		if (r < 0)
			d->rdonly = true;
	}
	pthread_rwlock_unlock(&d->lock);
	return r;
}

void vc_disk_close(struct vc_disk *d)
{
	if (!d)
		return;
	drop_slot(d, 0);
	drop_slot(d, 1);
	vc_secret_free(d->mackey);
	for (int i = 0; i < RMW_LOCKS; i++)
		pthread_mutex_destroy(&d->rmw[i]);
	pthread_rwlock_destroy(&d->lock);
	free(d);
}

void vc_disk_get_info(struct vc_disk *d, struct vc_disk_info *info)
{
	memset(info, 0, sizeof *info);
	pthread_rwlock_rdlock(&d->lock);
	fill_info(&d->h, info);
	pthread_rwlock_unlock(&d->lock);
	info->copy_ok[0] = info->copy_ok[1] = true;
}

uint64_t vc_disk_size(const struct vc_disk *d) { return d->vsize; }
uint32_t vc_disk_sector_size(const struct vc_disk *d) { return d->ss; }

/* ---- sector transforms ---------------------------------------------------- */

/* Which key slot encrypts a sector: during a rekey, sectors below the
 * progress marker already use the new key (slot 1). */
static int slot_for(const struct vc_disk *d, uint64_t sector)
{
	return (d->h.flags & FLAG_REKEY) && sector < d->h.progress ? 1 : 0;
}

/* Transform n sectors from in to out (which may be the same buffer),
 * starting at sector first. Zero sectors are holes and stay zero in both
 * directions. The key slot is
 * slot_for() unless force_slot >= 0. */
static int transform_to(struct vc_disk *d, int enc, int force_slot, uint64_t first,
			const uint8_t *in, uint8_t *out, uint64_t n,
			struct vc_error *err)
{
	const size_t ss = d->ss;
	uint64_t i = 0;

	while (i < n) {
		uint64_t j;
		int slot;

		if (vc_is_zero(in + i * ss, ss)) {
			if (out != in)
				memset(out + i * ss, 0, ss);
			i++;
			continue;
		}
		slot = force_slot >= 0 ? force_slot : slot_for(d, first + i);
		for (j = i + 1; j < n; j++) {
			if ((force_slot < 0 && slot_for(d, first + j) != slot) ||
			    vc_is_zero(in + j * ss, ss))
				break;
		}
		int r = enc ? vc_xts_encrypt(d->xts[slot], first + i, ss, in + i * ss,
					     out + i * ss, (j - i) * ss, err)
			    : vc_xts_decrypt(d->xts[slot], first + i, ss, in + i * ss,
					     out + i * ss, (j - i) * ss, err);
		if (r < 0)
			return r;
		i = j;
	}
	return 0;
}

static int transform(struct vc_disk *d, int enc, int force_slot, uint64_t first,
		     uint8_t *buf, uint64_t n, struct vc_error *err)
{
	return transform_to(d, enc, force_slot, first, buf, buf, n, err);
}

static uint64_t sector_pos(const struct vc_disk *d, uint64_t sector)
{
	return d->payload + sector * d->ss;
}

/* Read n whole sectors of plaintext into buf. Caller holds the lock. */
static int read_sectors(struct vc_disk *d, uint64_t first, uint8_t *buf,
			uint64_t n, struct vc_error *err)
{
	const size_t ss = d->ss;
	int r = d->io.pread(d->io.opaque, buf, n * ss, sector_pos(d, first), err);

	if (r < 0)
		return r;
	/* A read-only open of a disk whose rekey step was interrupted: the
	 * journaled chunk is still whole (old key) in the journal. */
	if (d->h.flags & FLAG_JOURNAL) {
		uint64_t js = d->h.jstart, je = js + d->h.jcount;
		uint64_t lo = first > js ? first : js, hi = first + n < je ? first + n : je;

		if (lo < hi) {
			r = d->io.pread(d->io.opaque, buf + (lo - first) * ss, (hi - lo) * ss,
					d->h.joff + (lo - js) * ss, err);
			if (r < 0)
				return r;
			r = transform(d, 0, 0, lo, buf + (lo - first) * ss, hi - lo, err);
			if (r < 0)
				return r;
			if (first < lo && (r = transform(d, 0, -1, first, buf, lo - first, err)) < 0)
				return r;
			if (hi < first + n)
				return transform(d, 0, -1, hi, buf + (hi - first) * ss,
						 first + n - hi, err);
			return 0;
		}
	}
	return transform(d, 0, -1, first, buf, n, err);
}

/* Encrypt n plaintext sectors from src (using tmp as scratch, n * ss
 * bytes) and write them. Caller holds the lock. */
static int write_sectors(struct vc_disk *d, uint64_t first, const uint8_t *src,
			 uint8_t *tmp, uint64_t n, struct vc_error *err)
{
	const size_t ss = d->ss;
	int r;

	/* Out of place: the caller's plaintext is never modified. */
	r = transform_to(d, 1, -1, first, src, tmp, n, err);
	if (r < 0)
		return r;
	return d->io.pwrite(d->io.opaque, tmp, n * ss, sector_pos(d, first), err);
}

static int check_range(const struct vc_disk *d, uint64_t offset, uint64_t count,
		       bool write, struct vc_error *err)
{
	uint64_t end;

	if (__builtin_add_overflow(offset, count, &end) || end > d->vsize)
		return vc_error_set(err, -ERANGE,
				    "%s of %llu bytes at offset %llu is beyond the end of the %llu-byte disk",
				    write ? "write" : "read", (unsigned long long)count,
				    (unsigned long long)offset, (unsigned long long)d->vsize);
	if (write && d->rdonly)
		return vc_error_set(err, -EROFS, "disk is open read-only");
	return 0;
}

int vc_disk_read(struct vc_disk *d, void *buf, size_t count, uint64_t offset,
		 struct vc_error *err)
{
	const size_t ss = d->ss;
	uint8_t *out = buf;
	uint8_t *bounce = NULL;
	int r;

	if ((r = check_range(d, offset, count, false, err)) < 0 || count == 0)
		return r;
	pthread_rwlock_rdlock(&d->lock);
	while (count > 0 && r == 0) {
		uint64_t sector = offset / ss;
		size_t skip = offset % ss;

		if (skip || count < ss) {
			/* Partial sector: through a one-sector bounce buffer. */
			size_t take = ss - skip < count ? ss - skip : count;

			if (!bounce && !(bounce = malloc(ss))) {
				r = vc_error_set(err, -ENOMEM, "out of memory");
				break;
			}
			r = read_sectors(d, sector, bounce, 1, err);
			if (r == 0) {
				memcpy(out, bounce + skip, take);
				out += take;
				offset += take;
				count -= take;
			}
		} else {
			/* Whole sectors: straight into the caller's buffer. */
			uint64_t n = count / ss;

			r = read_sectors(d, sector, out, n, err);
			out += n * ss;
			offset += n * ss;
			count -= n * ss;
		}
	}
	pthread_rwlock_unlock(&d->lock);
	free(bounce);
	return r;
}

/* Write part of one sector: read, patch, write, under the sector's lock so
 * that concurrent writers to other bytes of the sector are not lost. */
static int write_partial(struct vc_disk *d, uint64_t sector, size_t skip,
			 const uint8_t *src, size_t len, struct vc_error *err)
{
	const size_t ss = d->ss;
	pthread_mutex_t *m = &d->rmw[sector % RMW_LOCKS];
	uint8_t *b = malloc(2 * ss);
	int r;

	if (!b)
		return vc_error_set(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(m);
	r = read_sectors(d, sector, b, 1, err);
	if (r == 0) {
		if (src)
			memcpy(b + skip, src, len);
		else
			memset(b + skip, 0, len);
		r = write_sectors(d, sector, b, b + ss, 1, err);
	}
	pthread_mutex_unlock(m);
	vc_wipe(b, 2 * ss);
	free(b);
	return r;
}

int vc_disk_write(struct vc_disk *d, const void *buf, size_t count,
		  uint64_t offset, struct vc_error *err)
{
	const size_t ss = d->ss;
	const uint8_t *in = buf;
	uint8_t *tmp = NULL;
	size_t tmpsize = 0;
	int r;

	if ((r = check_range(d, offset, count, true, err)) < 0 || count == 0)
		return r;
	pthread_rwlock_rdlock(&d->lock);
	if (d->h.flags & FLAG_JOURNAL)
		r = vc_error_set(err, -EIO, "an interrupted rekey step must be resumed first");
	while (count > 0 && r == 0) {
		uint64_t sector = offset / ss;
		size_t skip = offset % ss, take;

		if (skip || count < ss) {
			take = ss - skip < count ? ss - skip : count;
			r = write_partial(d, sector, skip, in, take, err);
		} else {
			take = count / ss * ss;
			if (take > IO_CHUNK)
				take = IO_CHUNK;
			if (!tmp) {
				tmpsize = take;
				tmp = malloc(tmpsize);
				if (!tmp) {
					r = vc_error_set(err, -ENOMEM, "out of memory");
					break;
				}
			}
			if (take > tmpsize)
				take = tmpsize;
			r = write_sectors(d, sector, in, tmp, take / ss, err);
		}
		in += take;
		offset += take;
		count -= take;
	}
	pthread_rwlock_unlock(&d->lock);
	/* tmp only ever held ciphertext and zeros: no wipe needed. */
	free(tmp);
	return r;
}

int vc_disk_zero(struct vc_disk *d, uint64_t offset, uint64_t count,
		 struct vc_error *err)
{
	const size_t ss = d->ss;
	uint8_t *zeros = NULL;
	int r;

	if ((r = check_range(d, offset, count, true, err)) < 0 || count == 0)
		return r;
	pthread_rwlock_rdlock(&d->lock);
	if (d->h.flags & FLAG_JOURNAL)
		r = vc_error_set(err, -EIO, "an interrupted rekey step must be resumed first");
	while (count > 0 && r == 0) {
		uint64_t sector = offset / ss;
		size_t skip = offset % ss;
		uint64_t take;

		if (skip || count < ss) {
			take = ss - skip < count ? ss - skip : count;
			r = write_partial(d, sector, skip, NULL, (size_t)take, err);
		} else {
			take = count / ss * ss;
			r = -ENOTSUP;
			if (d->io.punch)
				r = d->io.punch(d->io.opaque, sector_pos(d, sector), take, err);
			if (r == -ENOTSUP) {
				/* No hole punching: write zero sectors, which
				 * are holes by definition. */
				if (take > IO_CHUNK)
					take = IO_CHUNK;
				if (!zeros && !(zeros = calloc(1, IO_CHUNK))) {
					r = vc_error_set(err, -ENOMEM, "out of memory");
					break;
				}
				r = d->io.pwrite(d->io.opaque, zeros, (size_t)take,
						 sector_pos(d, sector), err);
			}
		}
		offset += take;
		count -= take;
	}
	pthread_rwlock_unlock(&d->lock);
	free(zeros);
	return r;
}

int vc_disk_flush(struct vc_disk *d, struct vc_error *err)
{
	if (d->rdonly)
		return 0;
	return d->io.flush(d->io.opaque, err);
}

int vc_disk_check_copies(struct vc_disk *d, bool ok[2], char problem[2][160],
			 struct vc_error *err)
{
	uint8_t *buf = malloc(2 * VC_DISK_HEADER_SIZE);
	uint8_t mac[VC_SHA256_LEN];
	int r;

	if (!buf)
		return vc_error_set(err, -ENOMEM, "out of memory");
	pthread_rwlock_rdlock(&d->lock);
	r = d->io.pread(d->io.opaque, buf, 2 * VC_DISK_HEADER_SIZE, 0, err);
	for (int i = 0; i < 2 && r == 0; i++) {
		const uint8_t *b = buf + i * VC_DISK_HEADER_SIZE;
		struct hdr h;

		ok[i] = false;
		if (hdr_decode(b, i, &h, problem[i], 160) < 0)
			continue;
		if (h.seq != d->h.seq) {
			snprintf(problem[i], 160, "stale (sequence %llu, current %llu)",
				 (unsigned long long)h.seq, (unsigned long long)d->h.seq);
			continue;
		}
		if ((r = hdr_mac(b, d->mackey, mac, err)) < 0)
			break;
		if (!vc_ct_equal(mac, b + OFF_MAC, sizeof mac)) {
			snprintf(problem[i], 160, "MAC mismatch (modified without the key)");
			continue;
		}
		ok[i] = true;
		problem[i][0] = '\0';
	}
	pthread_rwlock_unlock(&d->lock);
	free(buf);
	return r;
}

int vc_disk_sector_is_hole(struct vc_disk *d, uint64_t sector, bool *hole,
			   struct vc_error *err)
{
	uint8_t *b;
	int r;

	if (sector >= d->nsectors)
		return vc_error_set(err, -ERANGE, "sector beyond the end of the disk");
	b = malloc(d->ss);
	if (!b)
		return vc_error_set(err, -ENOMEM, "out of memory");
	r = d->io.pread(d->io.opaque, b, d->ss, sector_pos(d, sector), err);
	if (r == 0)
		*hole = vc_is_zero(b, d->ss);
	free(b);
	return r;
}

/* ---- rekey ---------------------------------------------------------------- */

int vc_disk_rekey_shallow(struct vc_disk *d, const struct vc_secret *new_kek,
			  const char *provider, const char *key_id,
			  struct vc_error *err)
{
	struct hdr h;
	int r = 0;

	if (d->rdonly)
		return vc_error_set(err, -EROFS, "disk is open read-only");
	if (!new_kek || vc_secret_len(new_kek) != VC_KEK_LEN)
		return vc_error_set(err, -EINVAL, "a %d-byte new KEK is required", VC_KEK_LEN);
	pthread_rwlock_wrlock(&d->lock);
	h = d->h;
	/* Every active slot moves to the new KEK; a rekey in progress keeps
	 * going under it. */
	for (int i = 0; i < 2 && r == 0; i++) {
		if (!h.slot[i].state)
			continue;
		r = set_slot_names(&h.slot[i], provider, key_id, err);
		if (r == 0)
			r = wrap_slot(&h, i, new_kek, d->dek[i], err);
	}
	if (r == 0)
		r = disk_store(d, &h, d->mackey, err);
	if (r == 0) {
		d->h = h;
		for (int i = 0; i < 2 && r == 0; i++) {
			if (!d->h.slot[i].state)
				continue;
			vc_secret_free(d->kek[i]);
			d->kek[i] = NULL;
			r = vc_secret_from_bytes(vc_secret_data(new_kek), VC_KEK_LEN,
						 &d->kek[i], err);
		}
	}
	pthread_rwlock_unlock(&d->lock);
	return r;
}

int vc_disk_rekey_deep_start(struct vc_disk *d, const struct vc_secret *new_kek,
			     const char *provider, const char *key_id,
			     struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *dek = NULL;
	const struct vc_secret *kek = new_kek ? new_kek : d->kek[0];
	struct vc_xts *xts = NULL;
	struct hdr h;
	int r;

	if (d->rdonly)
		return vc_error_set(err, -EROFS, "disk is open read-only");
	if (vc_secret_len(kek) != VC_KEK_LEN)
		return vc_error_set(err, -EINVAL, "a %d-byte new KEK is required", VC_KEK_LEN);
	pthread_rwlock_wrlock(&d->lock);
	if (d->h.flags & FLAG_REKEY) {
		pthread_rwlock_unlock(&d->lock);
		return vc_error_set(err, -EALREADY, "a deep rekey is already in progress");
	}
	h = d->h;
	h.flags |= FLAG_REKEY;
	h.progress = 0;
	h.slot[1].state = 1;
	h.slot[1].generation = h.slot[0].generation + 1;
	r = set_slot_names(&h.slot[1], provider ? provider : h.slot[0].provider,
			   key_id ? key_id : h.slot[0].key_id, err);
	if (r == 0)
		r = new_dek(&dek, err);
	if (r == 0)
		r = wrap_slot(&h, 1, kek, dek, err);
	if (r == 0)
		r = vc_xts_new(dek, VC_XTS_AUTO, &xts, err);
	if (r == 0)
		r = vc_secret_from_bytes(vc_secret_data(kek), VC_KEK_LEN, &d->kek[1], err);
	if (r == 0)
		r = disk_store(d, &h, d->mackey, err);
	if (r == 0) {
		d->h = h;
		d->dek[1] = dek;
		dek = NULL;
		d->xts[1] = xts;
		xts = NULL;
	} else {
		vc_secret_free(d->kek[1]);
		d->kek[1] = NULL;
	}
	vc_xts_free(xts);
	pthread_rwlock_unlock(&d->lock);
	return r;
}

/* Re-encrypt sectors [first, first+n) held in buf (old-key ciphertext),
 * write them in place and flush. */
static int reencrypt_in_place(struct vc_disk *d, uint64_t first, uint8_t *buf,
			      uint64_t n, struct vc_error *err)
{
	const size_t ss = d->ss;
	uint64_t i = 0;
	int r;

	if ((r = transform(d, 0, 0, first, buf, n, err)) < 0 ||
	    (r = transform(d, 1, 1, first, buf, n, err)) < 0)
		return r;
	/* Holes were zero before and stay zero: skip long runs of them so
	 * that a thin container does not fill up with zeros. Short gaps are
	 * written with their neighbours (one write, not one per sector). */
	while (i < n) {
		uint64_t j, last = i; /* last: the run's last data sector */

		if (vc_is_zero(buf + i * ss, ss)) {
			i++;
			continue;
		}
		for (j = i + 1; j < n && (j - last) * ss <= HOLE_SKIP_MIN; j++)
			if (!vc_is_zero(buf + j * ss, ss))
				last = j;
		r = d->io.pwrite(d->io.opaque, buf + i * ss, (last + 1 - i) * ss,
				 sector_pos(d, first + i), err);
		if (r < 0)
			return r;
		i = last + 1;
	}
	return d->io.flush(d->io.opaque, err);
}

/* Advance the progress marker past a finished chunk and drop the journal
 * reference; at the end promote slot 1 to slot 0. Caller holds the lock. */
static int advance(struct vc_disk *d, uint64_t to, bool *done,
		   struct vc_error *err)
{
	struct hdr h = d->h;
	struct vc_secret *mackey = NULL;
	int r;

	*done = false;
	/* 1. Record the progress and drop the journal reference. */
	h.flags &= ~FLAG_JOURNAL;
	h.jstart = h.jcount = 0;
	memset(h.jsha, 0, sizeof h.jsha);
	h.progress = to;
	if ((h.progress != d->h.progress || (d->h.flags & FLAG_JOURNAL)) &&
	    (r = disk_store(d, &h, d->mackey, err)) < 0)
		return r;
	d->h = h;
	if (to < d->nsectors)
		return 0;

	/* 2. Finished. The journal, no longer referenced, still holds the
	 * old-key ciphertext of the last chunk: clear it before the old key
	 * disappears from the header. */
	r = -ENOTSUP;
	if (d->io.punch)
		r = d->io.punch(d->io.opaque, h.joff, h.jsize, err);
	if (r == -ENOTSUP) {
		uint8_t *zeros = calloc(1, h.jsize);

		if (!zeros)
			return vc_error_set(err, -ENOMEM, "out of memory");
		r = d->io.pwrite(d->io.opaque, zeros, h.jsize, h.joff, err);
		free(zeros);
	}
	if (r < 0 || (r = d->io.flush(d->io.opaque, err)) < 0)
		return r;

	/* 3. Promote the new key. */
	h.flags &= ~FLAG_REKEY;
	h.progress = 0;
	h.slot[0] = h.slot[1];
	memset(&h.slot[1], 0, sizeof h.slot[1]);
	if ((r = derive_mackey(&h, d->dek[1], &mackey, err)) < 0)
		return r;
	if ((r = disk_store(d, &h, mackey, err)) < 0) {
		vc_secret_free(mackey);
		return r;
	}
	d->h = h;
	drop_slot(d, 0);
	d->xts[0] = d->xts[1];
	d->dek[0] = d->dek[1];
	d->kek[0] = d->kek[1];
	d->xts[1] = NULL;
	d->dek[1] = NULL;
	d->kek[1] = NULL;
	vc_secret_free(d->mackey);
	d->mackey = mackey;
	*done = true;
	return 0;
}

/* Read the journal of an interrupted rekey step into a new buffer and
 * check it against the SHA-256 in the header. */
static int journal_load(struct vc_disk *d, uint8_t **out, struct vc_error *err)
{
	const uint64_t len = d->h.jcount * d->ss;
	uint8_t sum[VC_SHA256_LEN];
	uint8_t *buf = malloc(len);
	int r;

	*out = NULL;
	if (!buf)
		return vc_error_set(err, -ENOMEM, "out of memory");
	r = d->io.pread(d->io.opaque, buf, len, d->h.joff, err);
	if (r == 0)
		r = vc_sha256(buf, len, sum, err);
	if (r == 0 && !vc_ct_equal(sum, d->h.jsha, sizeof sum))
		r = vc_error_set(err, -EBADMSG, "rekey journal does not match its checksum");
	if (r < 0) {
		free(buf);
		return r;
	}
	*out = buf;
	return 0;
}

/* Redo the journaled chunk of an interrupted rekey step: the journal holds
 * its old-key ciphertext, verified by the SHA-256 in the header. */
static int journal_redo(struct vc_disk *d, struct vc_error *err)
{
	const uint64_t n = d->h.jcount, len = n * d->ss;
	uint8_t *buf;
	bool done;
	int r;

	r = journal_load(d, &buf, err);
	if (r == 0)
		r = reencrypt_in_place(d, d->h.jstart, buf, n, err);
	if (r == 0)
		r = advance(d, d->h.jstart + n, &done, err);
	if (buf) {
		vc_wipe(buf, len);
		free(buf);
	}
	if (r < 0)
		vc_error_prefix(err, "cannot resume the interrupted rekey");
	return r;
}

int vc_disk_rekey_deep_step(struct vc_disk *d, bool *done, struct vc_error *err)
{
	uint64_t first, n, len;
	uint8_t *buf;
	struct hdr h;
	int r;

	*done = false;
	if (d->rdonly)
		return vc_error_set(err, -EROFS, "disk is open read-only");
	pthread_rwlock_wrlock(&d->lock);
	if (!(d->h.flags & FLAG_REKEY)) {
		pthread_rwlock_unlock(&d->lock);
		return vc_error_set(err, -EINVAL, "no deep rekey in progress");
	}
	if (d->h.flags & FLAG_JOURNAL) {
		r = journal_redo(d, err);
		if (r == 0)
			*done = !(d->h.flags & FLAG_REKEY);
		pthread_rwlock_unlock(&d->lock);
		return r;
	}
	first = d->h.progress;
	n = d->h.jsize / d->ss;
	if (n > d->nsectors - first)
		n = d->nsectors - first;
	len = n * d->ss;
	buf = malloc(len ? len : 1);
	if (!buf) {
		pthread_rwlock_unlock(&d->lock);
		return vc_error_set(err, -ENOMEM, "out of memory");
	}
	r = n ? d->io.pread(d->io.opaque, buf, len, sector_pos(d, first), err) : 0;
	/* Holes need no re-encryption: skip runs of empty chunks (up to
	 * ZERO_SKIP_MAX of them) with one header update. */
	for (int k = 0; r == 0 && n && vc_is_zero(buf, len) && k < ZERO_SKIP_MAX &&
			first + n < d->nsectors; k++) {
		first += n;
		if (n > d->nsectors - first)
			n = d->nsectors - first;
		len = n * d->ss;
		r = d->io.pread(d->io.opaque, buf, len, sector_pos(d, first), err);
	}
	if (r == 0 && n && !vc_is_zero(buf, len)) {
		/* 1. Journal the old ciphertext; 2. point the header at it;
		 * 3. rewrite in place; 4. advance. A crash before 2 leaves the
		 * chunk untouched; after 2, open redoes it from the journal. */
		h = d->h;
		h.flags |= FLAG_JOURNAL;
		h.progress = first; /* the skipped chunks are holes: done */
		h.jstart = first;
		h.jcount = n;
		r = d->io.pwrite(d->io.opaque, buf, len, h.joff, err);
		if (r == 0)
			r = d->io.flush(d->io.opaque, err);
		if (r == 0)
			r = vc_sha256(buf, len, h.jsha, err);
		if (r == 0)
			r = disk_store(d, &h, d->mackey, err);
		if (r == 0) {
			d->h = h;
			r = reencrypt_in_place(d, first, buf, n, err);
		}
	}
	if (r == 0)
		r = advance(d, first + n, done, err);
	pthread_rwlock_unlock(&d->lock);
	vc_wipe(buf, len);
	free(buf);
	return r;
}

bool vc_disk_rekey_active(struct vc_disk *d)
{
	bool active;

	pthread_rwlock_rdlock(&d->lock);
	active = d->h.flags & FLAG_REKEY;
	pthread_rwlock_unlock(&d->lock);
	return active;
}

void vc_disk_rekey_progress(struct vc_disk *d, uint64_t *done, uint64_t *total)
{
	pthread_rwlock_rdlock(&d->lock);
	*done = (d->h.flags & FLAG_REKEY) ? d->h.progress : 0;
	*total = d->nsectors;
	pthread_rwlock_unlock(&d->lock);
}
