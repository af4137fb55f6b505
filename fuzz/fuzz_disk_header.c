/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz harness for the encrypted disk header: the input is the start of a
 * container, inspected and opened read-only and writable. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "memio.h"
#include "vc_crypto.h"
#include "vc_disk.h"
#include "vc_wrap.h"

/* Two header copies fit in 8 KiB; more input only makes runs slower. */
#define MAX_INPUT (64 * 1024)
/* Seeds describe small disks (2 MiB of header area and journal plus a
 * few hundred KiB of payload). Zero-extending a container to the size its
 * header claims is what lets open get past the size check to the key
 * unwrap, the MAC and the journal; bigger claims are left to the
 * exact-size pass, where they must fail cleanly. */
#define MAX_EXTENDED (4 * 1024 * 1024)

/* Header copy layout, docs/FORMAT.md sections 4 and 5, for fix_up() and
 * claimed_size(); the replay test checks that it agrees with the library. */
#define OFF_UUID 24
#define OFF_VSIZE 40
#define OFF_SECTOR 48
#define OFF_PAYLOAD 56
#define OFF_JOFF 64
#define OFF_FLAGS 80
#define OFF_JCOUNT 104
#define OFF_JSHA 112
#define FLAG_JOURNAL 0x2u
#define OFF_SLOTS 144
#define SL_GENERATION 8
#define SL_PROVIDER 16
#define SL_KEY_ID 80
#define SL_WRAPPED 208
#define WRAPPED_LEN (64 + VC_WRAP_OVERHEAD)
#define OFF_MAC 4032      /* HMAC-SHA-256 of bytes [0, 4032) */
#define OFF_CHECKSUM 4064 /* SHA-256 of bytes [0, 4064), the MAC included */
/* The HKDF info of the header MAC key, docs/FORMAT.md section 9. */
#define MAC_INFO "vmcrypt disk header mac v1"

static const struct vc_secret *fuzz_kek(void)
{
	static struct vc_secret *kek;

	if (!kek) {
		uint8_t b[FUZZ_KEK_LEN];

		fuzz_kek_fill(b);
		if (vc_secret_from_bytes(b, sizeof b, &kek, NULL) < 0)
			abort();
	}
	return kek;
}

static void check_failure(int r, const struct vc_error *err, const char *what)
{
	/* vc_error.h: failures come with a whole message. */
	FUZZ_CHECK(r < 0, "%s returned %d", what, r);
	FUZZ_CHECK(err->msg[0] != '\0', "%s failed (%d) without a message", what, r);
}

static void reads(struct vc_disk *d)
{
	const uint32_t ss = vc_disk_sector_size(d);
	const uint64_t vsize = vc_disk_size(d);
	struct vc_error err = { 0 };
	uint8_t *buf;
	int r;

	FUZZ_CHECK(ss == 512 || ss == 4096, "sector size %u", ss);
	FUZZ_CHECK(vsize > 0 && vsize % ss == 0, "virtual size %llu",
		   (unsigned long long)vsize);
	buf = malloc(2 * ss);
	if (!buf)
		abort();
	r = vc_disk_read(d, buf, ss, 0, &err);
	FUZZ_CHECK(r == 0, "read of sector 0: %s", err.msg);
	r = vc_disk_read(d, buf, ss, vsize - ss, &err);
	FUZZ_CHECK(r == 0, "read of the last sector: %s", err.msg);
	if (vsize >= 2 * ss) {
		r = vc_disk_read(d, buf, 7, ss - 3, &err);
		FUZZ_CHECK(r == 0, "read across a sector boundary: %s", err.msg);
	}
	r = vc_disk_read(d, buf, 1, vsize, &err);
	FUZZ_CHECK(r == -ERANGE, "read past the end returned %d", r);
	free(buf);
}

static void expect_bytes(struct vc_disk *d, uint64_t offset, const uint8_t *want,
			 size_t len, const char *what)
{
	struct vc_error err = { 0 };
	uint8_t *got = malloc(len);
	int r;

	if (!got)
		abort();
	r = vc_disk_read(d, got, len, offset, &err);
	FUZZ_CHECK(r == 0, "%s: read back: %s", what, err.msg);
	FUZZ_CHECK(memcmp(got, want, len) == 0, "%s: data read back differs", what);
	free(got);
}

/* Writes on a writable open, read back, across a rekey step when one is
 * in progress: the header fields behind the MAC decide which key each
 * sector uses, and the data must survive that. */
static void writes(struct vc_disk *d)
{
	static const uint8_t small[7] = { 1, 2, 3, 4, 5, 6, 7 };
	const uint32_t ss = vc_disk_sector_size(d);
	const uint64_t nsec = vc_disk_size(d) / ss;
	const uint64_t small_at = nsec >= 2 ? ss - 3 : 1;
	const uint64_t last = (nsec - 1) * ss;
	struct vc_error err = { 0 };
	uint8_t *sector = malloc(ss);
	bool hole, done;
	int r;

	if (!sector)
		abort();
	memset(sector, 0xa5, ss);
	r = vc_disk_write(d, small, sizeof small, small_at, &err);
	FUZZ_CHECK(r == 0, "small write: %s", err.msg);
	expect_bytes(d, small_at, small, sizeof small, "small write");
	if (nsec >= 3) {
		r = vc_disk_write(d, sector, ss, last, &err);
		FUZZ_CHECK(r == 0, "sector write: %s", err.msg);
		expect_bytes(d, last, sector, ss, "sector write");
		r = vc_disk_sector_is_hole(d, nsec - 1, &hole, &err);
		FUZZ_CHECK(r == 0 && !hole, "written sector is a hole (%d: %s)", r, err.msg);
	}
	if (vc_disk_rekey_active(d)) {
		r = vc_disk_rekey_deep_step(d, &done, &err);
		FUZZ_CHECK(r == 0, "rekey step: %s", err.msg);
		expect_bytes(d, small_at, small, sizeof small, "small write after a rekey step");
		if (nsec >= 3)
			expect_bytes(d, last, sector, ss, "sector write after a rekey step");
	}
	if (nsec >= 3) {
		r = vc_disk_zero(d, last, ss, &err);
		FUZZ_CHECK(r == 0, "zero: %s", err.msg);
		r = vc_disk_sector_is_hole(d, nsec - 1, &hole, &err);
		FUZZ_CHECK(r == 0 && hole, "zeroed sector is not a hole (%d: %s)", r, err.msg);
		memset(sector, 0, ss);
		expect_bytes(d, last, sector, ss, "zeroed sector");
	}
	r = vc_disk_flush(d, &err);
	FUZZ_CHECK(r == 0, "flush: %s", err.msg);
	free(sector);
}

/* What inspect accepts must make sense, whatever the input. */
static void check_info(const struct vc_disk_info *info, uint64_t size)
{
	FUZZ_CHECK(info->copy_used == 0 || info->copy_used == 1, "copy_used %d",
		   info->copy_used);
	FUZZ_CHECK(info->copy_ok[info->copy_used], "chose a bad copy");
	FUZZ_CHECK((info->sector_size == 512 || info->sector_size == 4096) &&
		   info->virtual_size > 0 && info->virtual_size % info->sector_size == 0,
		   "inspect accepted sector size %u, size %llu", info->sector_size,
		   (unsigned long long)info->virtual_size);
	FUZZ_CHECK(info->slot[0].active, "inspect accepted an empty slot 0");
	FUZZ_CHECK(size >= info->payload_offset + info->virtual_size,
		   "inspect accepted a %llu-byte container that needs %llu bytes",
		   (unsigned long long)size,
		   (unsigned long long)(info->payload_offset + info->virtual_size));
}

/* Inspect and open a container of size bytes that starts with data
 * (len <= size) and is zeros after it. True if it opened; *used is then
 * the header copy in use. */
static bool try_open(const uint8_t *data, size_t len, uint64_t size,
		     unsigned flags, int *used)
{
	struct memio *m = memio_new(size);
	struct vc_error err = { 0 };
	struct vc_disk_io io;
	struct vc_disk *d = NULL;
	struct vc_disk_info hdr, info;
	char problem[2][160];
	bool inspected, ok[2];
	int r;

	memcpy(m->data, data, len);
	memio_io(m, &io);
	r = vc_disk_inspect(&io, &hdr, &err);
	inspected = r == 0;
	if (inspected)
		check_info(&hdr, size);
	else
		check_failure(r, &err, "vc_disk_inspect");

	err = (struct vc_error){ 0 };
	r = vc_disk_open(&io, fuzz_kek(), NULL, flags, &d, &err);
	if (r < 0) {
		check_failure(r, &err, "vc_disk_open");
		FUZZ_CHECK(d == NULL, "failed open returned a disk");
		memio_free(m);
		return false;
	}
	FUZZ_CHECK(inspected, "open succeeded where inspect failed");
	vc_disk_get_info(d, &info);
	FUZZ_CHECK(info.virtual_size == hdr.virtual_size &&
		   info.sector_size == hdr.sector_size &&
		   info.payload_offset == hdr.payload_offset &&
		   memcmp(&info.uuid, &hdr.uuid, sizeof info.uuid) == 0,
		   "open and inspect disagree about the header");
	/* The copy open chose was just authenticated. */
	r = vc_disk_check_copies(d, ok, problem, &err);
	FUZZ_CHECK(r == 0 && (ok[0] || ok[1]), "no authentic copy after open (%d: %s; %s; %s)",
		   r, err.msg, problem[0], problem[1]);

	reads(d);
	if (flags & VC_DISK_RDONLY) {
		r = vc_disk_write(d, "x", 1, 0, &err);
		FUZZ_CHECK(r == -EROFS, "write to a read-only disk returned %d", r);
	} else {
		writes(d);
	}
	vc_disk_close(d);

	if (!(flags & VC_DISK_RDONLY)) {
		/* A writable open repairs a damaged or stale copy. */
		r = vc_disk_inspect(&io, &info, &err);
		FUZZ_CHECK(r == 0, "header unreadable after a writable open: %s", err.msg);
		FUZZ_CHECK(info.copy_ok[0] && info.copy_ok[1] &&
			   !info.copy_problem[0][0] && !info.copy_problem[1][0],
			   "header copies not in step after a writable open (%s; %s)",
			   info.copy_problem[0], info.copy_problem[1]);
	}
	memio_free(m);
	*used = hdr.copy_used;
	return true;
}

/* The largest container size a copy in the input claims (payload offset
 * plus virtual size) that is at most MAX_EXTENDED, or 0. Read from the
 * raw fields: inspect refuses a container shorter than its claim. */
static uint64_t claimed_size(const uint8_t *data, size_t size)
{
	uint64_t best = 0;

	for (size_t c = 0; c < 2 && (c + 1) * VC_DISK_HEADER_SIZE <= size; c++) {
		const uint8_t *copy = data + c * VC_DISK_HEADER_SIZE;
		uint64_t need;

		if (memcmp(copy, VC_DISK_MAGIC, 8) == 0 &&
		    !__builtin_add_overflow(vc_get_le64(copy + OFF_PAYLOAD),
					    vc_get_le64(copy + OFF_VSIZE), &need) &&
		    need <= MAX_EXTENDED && need > best)
			best = need;
	}
	return best;
}

/* With the JOURNAL flag, the SHA-256 of what the container holds in the
 * journal (docs/FORMAT.md section 11). A seed holds only the start of a
 * container, so its journal reads as zeros and never matches the hash
 * its disk was written with. */
static void fix_journal(uint8_t *copy, const uint8_t *data, size_t size)
{
	const uint32_t ss = vc_get_le32(copy + OFF_SECTOR);
	const uint64_t joff = vc_get_le64(copy + OFF_JOFF);
	const uint64_t n = vc_get_le64(copy + OFF_JCOUNT);
	uint64_t len, end;
	uint8_t *j;

	if (!(vc_get_le32(copy + OFF_FLAGS) & FLAG_JOURNAL) || (ss != 512 && ss != 4096) ||
	    n > MAX_EXTENDED / ss)
		return;
	len = n * ss;
	if (__builtin_add_overflow(joff, len, &end) || end > MAX_EXTENDED)
		return;
	j = calloc(1, len ? len : 1);
	if (!j)
		abort();
	if (joff < size)
		memcpy(j, data + joff, (end < size ? end : size) - joff);
	if (vc_sha256(j, len, copy + OFF_JSHA, NULL) < 0)
		abort();
	free(j);
}

/* A mutated header copy almost never matches its SHA-256 checksum, and
 * never its MAC, so the field checks and everything behind the MAC would
 * only ever see the seeds. Recompute them, as a writer holding the KEK
 * would: the journal hash, then the MAC when slot 0 still unwraps under
 * the fuzz KEK (its binding fields are intact), then the checksum. data
 * is the whole input, for the journal. */
static void fix_up(uint8_t *copy, const uint8_t *data, size_t size)
{
	VC_CLEANUP_SECRET struct vc_secret *dek = NULL;
	uint8_t mackey[VC_SHA256_LEN];
	const uint8_t *slot = copy + OFF_SLOTS;
	char provider[VC_DISK_PROVIDER_MAX + 1], key_id[VC_DISK_KEY_ID_MAX + 1];
	struct vc_binding b = {
		.format = VC_DISK_DEK_FORMAT,
		.object = copy + OFF_UUID,
		.provider = provider,
		.key_id = key_id,
		.generation = vc_get_le64(slot + SL_GENERATION),
	};

	fix_journal(copy, data, size);
	memcpy(provider, slot + SL_PROVIDER, sizeof provider);
	memcpy(key_id, slot + SL_KEY_ID, sizeof key_id);
	provider[sizeof provider - 1] = '\0';
	key_id[sizeof key_id - 1] = '\0';
	if (vc_unwrap_key(fuzz_kek(), &b, slot + SL_WRAPPED, WRAPPED_LEN, &dek, NULL) == 0 &&
	    vc_hkdf_sha256(vc_secret_data(dek), vc_secret_len(dek), copy + OFF_UUID, 16,
			   MAC_INFO, sizeof MAC_INFO - 1, mackey, sizeof mackey, NULL) == 0 &&
	    vc_hmac_sha256(mackey, sizeof mackey, copy, OFF_MAC, copy + OFF_MAC, NULL) < 0)
		abort();
	vc_wipe(mackey, sizeof mackey);
	if (vc_sha256(copy, OFF_CHECKSUM, copy + OFF_CHECKSUM, NULL) < 0)
		abort();
}

/* Inputs that opened, for fuzz_replay_done(). */
static long opened;

/* Returns the header copy in use when the input opened, else -1. */
static int run(const uint8_t *data, size_t size)
{
	uint64_t need = claimed_size(data, size);
	bool ok = false;
	int used = -1;

	/* The container is exactly the input: a header that claims more is
	 * a truncated disk. */
	ok |= try_open(data, size, size, VC_DISK_RDONLY, &used);
	ok |= try_open(data, size, size, 0, &used);
	if (need > size) {
		ok |= try_open(data, size, need, VC_DISK_RDONLY, &used);
		ok |= try_open(data, size, need, 0, &used);
	}
	return ok ? used : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	int used;

	if (size > MAX_INPUT)
		size = MAX_INPUT;
	used = run(data, size);
	if (used >= 0)
		opened++;

	fixed = malloc(size ? size : 1);
	if (!fixed)
		abort();
	memcpy(fixed, data, size);
	for (size_t c = 0; c < 2 && (c + 1) * VC_DISK_HEADER_SIZE <= size; c++)
		fix_up(fixed + c * VC_DISK_HEADER_SIZE, data, size);
	/* The copy open used is authentic: fix_up() must leave it as it is.
	 * If not, either open accepted a copy it should have refused, or
	 * fix_up()'s idea of the layout is out of date. */
	FUZZ_CHECK(used < 0 || memcmp(fixed + used * VC_DISK_HEADER_SIZE,
				      data + used * VC_DISK_HEADER_SIZE,
				      VC_DISK_HEADER_SIZE) == 0,
		   "open accepted header copy %d, whose journal hash, MAC or checksum"
		   " differ from docs/FORMAT.md sections 4, 9 and 11 as fix_up() computes"
		   " them: a library bug, or fix_up() is out of date", used);
	if (memcmp(fixed, data, size) != 0)
		run(fixed, size);
	free(fixed);
	return 0;
}

int fuzz_replay_done(long inputs)
{
	/* The seeds are real disks: if none opens, the format has changed
	 * under them and they exercise nothing behind the MAC. */
	if (inputs > 0 && opened == 0) {
		fprintf(stderr, "fuzz_disk_header: none of the %ld inputs opened: the seed corpus"
			" is stale; regenerate it with build/fuzz/gen_corpus fuzz/corpus\n",
			inputs);
		return 1;
	}
	return 0;
}
