/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the seed corpora of the fuzz harnesses (fuzz/corpus/) with the
 * library itself, on memory disks keyed by the harness's fixed KEK. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "memio.h"
#include "vc_crypto.h"
#include "vc_disk.h"

/* A seed is the start of a container: both header copies and a little
 * of what follows. */
#define SEED_MAX (16 * 1024)

/* Header copy offsets (docs/FORMAT.md section 4), for the seeds that are
 * wrong on purpose. */
#define OFF_VERSION 8
#define OFF_VSIZE 40
#define OFF_SECTOR 48
#define OFF_CHECKSUM 4064 /* SHA-256 of bytes [0, 4064), the MAC included */

static const char *outdir;
static struct vc_secret *kek;

static void die(const char *what, const struct vc_error *err)
{
	fprintf(stderr, "gen_corpus: %s: %s\n", what, err ? vc_error_msg(err) : strerror(errno));
	exit(1);
}

static void put_file(const char *sub, const char *name, const void *data, size_t len)
{
	char *path;
	int fd;

	if (asprintf(&path, "%s/%s/%s", outdir, sub, name) < 0)
		die("asprintf", NULL);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) || close(fd) < 0)
		die(path, NULL);
	printf("%s (%zu bytes)\n", path, len);
	free(path);
}

static void put_seed(const char *name, const struct memio *m, size_t len)
{
	if (len > m->size)
		len = (size_t)m->size;
	if (len > SEED_MAX)
		len = SEED_MAX;
	put_file("disk_header", name, m->data, len);
}

static void put_text(const char *name, const char *text)
{
	put_file("key_input", name, text, strlen(text));
}

/* A formatted memory disk with a fixed UUID; opened writable in *d. */
static struct memio *new_disk(uint64_t vsize, uint32_t ss, struct vc_disk **d)
{
	struct vc_uuid uuid = { { 0x6d, 0x63, 0x72, 0x79, 0x70, 0x74, 0x2d, 0x66,
				  0x75, 0x7a, 0x7a, 0x2d, 0x73, 0x65, 0x65, (uint8_t)ss } };
	struct vc_disk_params p = {
		.virtual_size = vsize,
		.sector_size = ss,
		.provider = "native",
		.key_id = "fuzz-kek-1",
		.uuid = &uuid,
	};
	struct vc_error err = { 0 };
	struct vc_disk_io io;
	struct memio *m;
	uint64_t size;

	if (vc_disk_container_size(vsize, ss, &size, &err) < 0)
		die("container size", &err);
	m = memio_new(size);
	memio_io(m, &io);
	if (vc_disk_format(&io, &p, kek, NULL, &err) < 0)
		die("format", &err);
	if (vc_disk_open(&io, kek, NULL, 0, d, &err) < 0)
		die("open", &err);
	return m;
}

/* Fill every sector with non-zero data, so that rekey steps have work
 * to journal (holes are skipped). */
static void fill(struct vc_disk *d)
{
	const uint64_t size = vc_disk_size(d);
	struct vc_error err = { 0 };
	uint8_t buf[4096];

	for (uint64_t off = 0; off < size; off += sizeof buf) {
		for (size_t i = 0; i < sizeof buf; i++)
			buf[i] = (uint8_t)((off >> 12) + i * 7 + 1);
		if (vc_disk_write(d, buf, sizeof buf, off, &err) < 0)
			die("write", &err);
	}
}

static void step(struct vc_disk *d, bool want_ok)
{
	struct vc_error err = { 0 };
	bool done;
	int r = vc_disk_rekey_deep_step(d, &done, &err);

	if ((r == 0) != want_ok)
		die("rekey step", &err);
}

static void fix_checksum(uint8_t *copy)
{
	if (vc_sha256(copy, OFF_CHECKSUM, copy + OFF_CHECKSUM, NULL) < 0)
		die("sha256", NULL);
}

/* The seeds made by hand must pass or fail the key-less checks of a copy
 * (docs/FORMAT.md section 6) as meant, or they test something else than
 * their name says. inspect fills copy_ok even when it refuses the disk. */
static void expect_copies(const char *name, const uint8_t *data, size_t len, bool valid)
{
	struct memio *m = memio_from(data, len);
	struct vc_disk_info info;
	struct vc_error err = { 0 };
	struct vc_disk_io io;
	int r;

	memio_io(m, &io);
	r = vc_disk_inspect(&io, &info, &err);
	if (info.copy_ok[0] != valid || info.copy_ok[1] != valid) {
		fprintf(stderr, "gen_corpus: %s: copies %s/%s, expected %s (%d: %s)\n", name,
			info.copy_ok[0] ? "valid" : "invalid", info.copy_ok[1] ? "valid" : "invalid",
			valid ? "valid" : "invalid", r, vc_error_msg(&err));
		exit(1);
	}
	memio_free(m);
}

static void disk_seeds(void)
{
	struct vc_error err = { 0 };
	struct vc_disk_io io;
	struct vc_disk *d;
	struct memio *m;
	uint8_t before[2 * VC_DISK_HEADER_SIZE];
	uint8_t buf[SEED_MAX];
	bool done = false;

	m = new_disk(64 * 1024, 512, &d);
	put_seed("valid-512", m, SEED_MAX);
	put_file("disk_header", "short-100", m->data, 100);
	put_file("disk_header", "truncated-6k", m->data, 6 * 1024);
	vc_disk_close(d);

	/* Copy 1 stale: copy 0 has the next sequence number after a shallow
	 * rekey to a new key id (same KEK, same DEK, so both copies carry a
	 * valid MAC), copy 1 is from before, as after a crash between the
	 * two header writes. */
	memcpy(before, m->data, sizeof before);
	memio_io(m, &io);
	if (vc_disk_open(&io, kek, NULL, 0, &d, &err) < 0 ||
	    vc_disk_rekey_shallow(d, kek, "native", "fuzz-kek-1b", &err) < 0)
		die("shallow rekey", &err);
	vc_disk_close(d);
	memcpy(buf, m->data, SEED_MAX);
	memcpy(buf + VC_DISK_HEADER_SIZE, before + VC_DISK_HEADER_SIZE, VC_DISK_HEADER_SIZE);
	put_file("disk_header", "copy1-stale-512", buf, SEED_MAX);
	memio_free(m);

	/* Copy 0 torn: the shallow rekey crashes half-way through writing
	 * copy 0, so copy 0 is half new, half old; copy 1 is the old one. */
	m = new_disk(64 * 1024, 512, &d);
	m->writes = 0;
	m->fail_write_at = 1;
	if (vc_disk_rekey_shallow(d, kek, "native", "fuzz-kek-1c", &err) == 0)
		die("torn shallow rekey succeeded", NULL);
	vc_disk_close(d);
	put_seed("copy0-torn-512", m, SEED_MAX);
	memio_free(m);

	m = new_disk(256 * 1024, 4096, &d);
	put_seed("valid-4096", m, SEED_MAX);
	vc_disk_close(d);

	/* Copy 0 damaged by a flipped bit in its UUID. */
	memcpy(buf, m->data, SEED_MAX);
	buf[24 + 3] ^= 0x10;
	put_file("disk_header", "copy0-damaged-4096", buf, SEED_MAX);

	/* Decodes (checksum recomputed) but fails the MAC: a smaller size
	 * written without the key. */
	memcpy(buf, m->data, SEED_MAX);
	for (int c = 0; c < 2; c++) {
		uint8_t *copy = buf + c * VC_DISK_HEADER_SIZE;

		vc_put_le64(copy + OFF_VSIZE, 128 * 1024);
		fix_checksum(copy);
	}
	expect_copies("bad-mac-4096", buf, SEED_MAX, true);
	put_file("disk_header", "bad-mac-4096", buf, SEED_MAX);

	/* A claim of 1 TiB: the container is never big enough. */
	memcpy(buf, m->data, SEED_MAX);
	for (int c = 0; c < 2; c++) {
		uint8_t *copy = buf + c * VC_DISK_HEADER_SIZE;

		vc_put_le64(copy + OFF_VSIZE, (uint64_t)1 << 40);
		fix_checksum(copy);
	}
	expect_copies("huge-size-4096", buf, SEED_MAX, true);
	put_file("disk_header", "huge-size-4096", buf, SEED_MAX);

	memcpy(buf, m->data, SEED_MAX);
	for (int c = 0; c < 2; c++) {
		uint8_t *copy = buf + c * VC_DISK_HEADER_SIZE;

		vc_put_le32(copy + OFF_SECTOR, 1024);
		fix_checksum(copy);
	}
	expect_copies("bad-sector-size", buf, SEED_MAX, false);
	put_file("disk_header", "bad-sector-size", buf, SEED_MAX);

	memcpy(buf, m->data, SEED_MAX);
	for (int c = 0; c < 2; c++) {
		uint8_t *copy = buf + c * VC_DISK_HEADER_SIZE;

		vc_put_le16(copy + OFF_VERSION, 2);
		fix_checksum(copy);
	}
	expect_copies("version-2", buf, SEED_MAX, false);
	put_file("disk_header", "version-2", buf, SEED_MAX);
	memio_free(m);

	/* Deep rekey started, no step yet: slot 1 under a new key id. */
	m = new_disk(64 * 1024, 512, &d);
	fill(d);
	if (vc_disk_rekey_deep_start(d, NULL, NULL, "fuzz-kek-2", &err) < 0)
		die("rekey start", &err);
	vc_disk_close(d);
	put_seed("rekey-started-512", m, SEED_MAX);
	memio_free(m);

	/* Mid-rekey: one step done, the second interrupted after its
	 * journal was recorded in the header (journal write, two header
	 * copies, then the in-place rewrite fails). */
	m = new_disk(1024 * 1024 + 64 * 1024, 512, &d);
	fill(d);
	if (vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err) < 0)
		die("rekey start", &err);
	step(d, true);
	m->writes = 0;
	m->fail_write_at = 4;
	step(d, false);
	vc_disk_close(d);
	put_seed("rekey-journal-512", m, SEED_MAX);
	memio_free(m);

	/* Mid-rekey with no journal pending: one step of two done. */
	m = new_disk(1024 * 1024 + 64 * 1024, 4096, &d);
	fill(d);
	if (vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err) < 0)
		die("rekey start", &err);
	step(d, true);
	vc_disk_close(d);
	put_seed("rekey-progress-4096", m, SEED_MAX);
	memio_free(m);

	/* A finished deep rekey: generation 2 in slot 0. */
	m = new_disk(64 * 1024, 4096, &d);
	fill(d);
	if (vc_disk_rekey_deep_start(d, NULL, NULL, NULL, &err) < 0)
		die("rekey start", &err);
	while (!done)
		if (vc_disk_rekey_deep_step(d, &done, &err) < 0)
			die("rekey step", &err);
	vc_disk_close(d);
	put_seed("rekeyed-4096", m, SEED_MAX);
	memio_free(m);

	put_file("disk_header", "empty", "", 0);
	memset(buf, 0, sizeof buf);
	put_file("disk_header", "zeros-8k", buf, 8192);
	memcpy(buf, VC_DISK_MAGIC, 8);
	memcpy(buf + VC_DISK_HEADER_SIZE, VC_DISK_MAGIC, 8);
	put_file("disk_header", "magic-only", buf, 8192);
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)((i * 2654435761u) >> 13);
	put_file("disk_header", "noise-16k", buf, sizeof buf);
}

static void key_seeds(void)
{
	uint8_t raw[FUZZ_KEK_LEN];
	char hex[2 * FUZZ_KEK_LEN + 2];
	char big[4098];

	fuzz_kek_fill(raw);
	raw[5] = '\n';
	put_file("key_input", "raw-32", raw, sizeof raw);
	for (int i = 0; i < FUZZ_KEK_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned)(raw[i] ^ 0x33));
	memcpy(hex + 2 * FUZZ_KEK_LEN, "\n", 2);
	put_text("hex-64-newline", hex);
	hex[2 * FUZZ_KEK_LEN] = '\0';
	for (char *p = hex; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	put_text("hex-64-upper", hex);
	hex[2 * FUZZ_KEK_LEN - 1] = '\0';
	put_text("hex-63", hex);
	hex[10] = 'g';
	hex[2 * FUZZ_KEK_LEN - 1] = '0';
	put_text("hex-bad-digit", hex);
	put_text("empty", "");
	put_text("base64-3", "QUJD");
	put_text("base64-1", "QQ==");
	put_text("base64-2", "QUI=");
	put_text("base64-48", "dm1jcnlwdCBmdXp6IHNlZWQ6IGEgZm9ydHktZWlnaHQtYnl0ZSBwbGFpbnRleHQhIQ==");
	/* '=' in the middle is not base64 (RFC 4648 section 3.3). */
	put_text("base64-pad-inside", "AB=C");
	put_text("uuid", "0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0");
	put_text("uuid-upper", "0F1E2D3C-4B5A-4978-8796-A5B4C3D2E1F0");
	put_text("uuid-no-dash", "0f1e2d3c4b5a-4978-8796-a5b4c3d2e1f0a");
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	put_text("too-long", big);
}

int main(int argc, char **argv)
{
	uint8_t k[FUZZ_KEK_LEN];
	struct vc_error err = { 0 };
	char *sub;

	if (argc != 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR (e.g. fuzz/corpus)\n", argv[0]);
		return 2;
	}
	outdir = argv[1];
	for (int i = 0; i < 2; i++) {
		if (asprintf(&sub, "%s/%s", outdir, i ? "key_input" : "disk_header") < 0)
			die("asprintf", NULL);
		if (mkdir(sub, 0755) < 0 && errno != EEXIST)
			die(sub, NULL);
		free(sub);
	}
	fuzz_kek_fill(k);
	if (vc_secret_from_bytes(k, sizeof k, &kek, &err) < 0)
		die("KEK", &err);
	disk_seeds();
	key_seeds();
	vc_secret_free(kek);
	return 0;
}
