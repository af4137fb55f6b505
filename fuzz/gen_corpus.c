/* SPDX-License-Identifier: Apache-2.0 */
/* Writes the seed corpora of the fuzz harnesses (fuzz/corpus/): disks with
 * the library itself, on memory disks keyed by the harness's fixed KEK,
 * the manager's API requests and the filter's control lines. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "memio.h"
#include "vc_crypto.h"
#include "vc_ctl.h"
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

/* One request as fuzz_api_request reads it: "METHOD SP TARGET LF BODY". */
static void put_api(const char *name, const char *method, const char *target,
		    const void *body, size_t blen)
{
	char *buf;
	int n = asprintf(&buf, "%s %s\n", method, target);

	if (n < 0 || !(buf = realloc(buf, (size_t)n + blen + 1)))
		die("asprintf", NULL);
	memcpy(buf + n, body, blen);
	put_file("api_request", name, buf, (size_t)n + blen);
	free(buf);
}

static void put_req(const char *name, const char *method, const char *target, const char *body)
{
	put_api(name, method, target, body, strlen(body));
}

/* Calls as docs/API.md documents them (every route that takes a body and
 * each shape of the others: list, one parameter, two, query), then inputs
 * that must be refused or that are easy to get wrong. */
static void api_seeds(void)
{
	static const char inv_id[] = "vm-0123456789ab";
	char big[70 * 1024], path[1200];
	size_t n;

	put_req("session-login", "POST", "/api/v1/session",
		"{\"user\": \"admin\", \"password\": \"admin-pw\"}");
	put_req("session-get", "GET", "/api/v1/session", "");
	put_req("session-password", "POST", "/api/v1/session/password",
		"{\"old_password\": \"one-time\", \"new_password\": \"a new password\"}");
	put_req("users-create", "POST", "/api/v1/users",
		"{\"name\": \"alice\", \"password\": \"alice-password\", "
		"\"groups\": [\"ops\", \"crypto-admins\"]}");
	put_req("users-delete", "DELETE", "/api/v1/users/alice", "");
	put_req("users-password", "PUT", "/api/v1/users/alice/password",
		"{\"password\": \"reset-password\"}");
	put_req("roles-get", "GET", "/api/v1/roles/ReadOnly", "");
	put_req("roles-create", "POST", "/api/v1/roles",
		"{\"name\": \"Viewer\", \"privileges\": [\"System.View\", \"System.Read\"]}");
	put_req("permissions-list", "GET", "/api/v1/permissions?object=folder-0123456789ab", "");
	put_req("permissions-add", "POST", "/api/v1/permissions",
		"{\"principal\": \"ops\", \"group\": true, \"role\": \"Admin\", "
		"\"object\": \"root\", \"propagate\": false}");
	put_req("permissions-delete", "DELETE",
		"/api/v1/permissions?principal=ops&object=root&group=true", "");
	put_req("inventory-list", "GET", "/api/v1/inventory", "");
	snprintf(path, sizeof path, "/api/v1/inventory/%s", inv_id);
	put_req("inventory-get", "GET", path, "");
	put_req("inventory-create", "POST", "/api/v1/inventory",
		"{\"parent\": \"root\", \"kind\": \"folder\", \"name\": \"Datacenter 1\"}");
	put_req("inventory-rename", "PATCH", path, "{\"name\": \"web-01\"}");
	put_req("providers-get", "GET", "/api/v1/key-providers/kms1", "");
	put_req("providers-add-kmip", "POST", "/api/v1/key-providers",
		"{\"name\": \"kms1\", \"kind\": \"kmip\", "
		"\"servers\": [\"kmip1.example:5696\", \"[::1]:5696\"], "
		"\"ca_pem\": \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\", "
		"\"client_cert_pem\": \"-----BEGIN CERTIFICATE-----\\nMIIC\\n-----END CERTIFICATE-----\\n\", "
		"\"client_key_pem\": \"-----BEGIN PRIVATE KEY-----\\nMIIE\\n-----END PRIVATE KEY-----\\n\", "
		"\"server_name\": \"kmip.example\", \"timeout_ms\": 5000, \"default\": true}");
	put_req("providers-add-native-restore", "POST", "/api/v1/key-providers",
		"{\"name\": \"nkp\", \"kind\": \"native\", \"restore\": "
		"{\"backup\": \"VkNOS1BCQUs=\", \"password\": \"backup-password\"}}");
	put_req("providers-check", "POST", "/api/v1/key-providers/kms1/check", "");
	put_req("providers-backup", "POST", "/api/v1/key-providers/nkp/backup",
		"{\"password\": \"backup-password\"}");
	put_req("keys-create", "POST", "/api/v1/key-providers/nkp/keys",
		"{\"label\": \"vm web-01 \\u00e9t\\u00e9\"}");
	put_req("keys-get", "GET",
		"/api/v1/key-providers/nkp/keys/0f1e2d3c-4b5a-4978-8796-a5b4c3d2e1f0", "");
	put_req("policies-create", "POST", "/api/v1/policies",
		"{\"name\": \"gold\", \"encrypt\": true, \"migration\": \"required\", "
		"\"provider\": null}");
	put_req("events-filter", "GET",
		"/api/v1/events?from=2026-11-23T10:00:00Z&to=1763900000&user=admin&"
		"object=root&operation=key.create&format=csv", "");
	put_req("events-verify", "GET", "/api/v1/events/verify", "");
	/* The shapes no route uses (the harness's own spec). */
	put_req("extra-nested", "POST", "/api/v1/x",
		"{\"outer\": {\"inner\": {\"format\": \"jsonl\", \"offset\": -7, "
		"\"tags\": [\"a\"]}, \"owner\": null}, \"members\": [\"m1\"], "
		"\"note\": \"n\", \"count\": -9223372036854775808}");

	/* Bodies. */
	n = 0;
	for (int i = 0; i < 3000; i++)
		big[n++] = '[';
	put_api("deep-array", "POST", "/api/v1/roles", big, n);
	n = 0;
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(big + n, sizeof big - n, "{\"restore\":");
	n += (size_t)snprintf(big + n, sizeof big - n, "{}");
	for (int i = 0; i < 400; i++)
		big[n++] = '}';
	put_api("deep-objects", "POST", "/api/v1/key-providers", big, n);
	put_req("huge-numbers", "POST", "/api/v1/key-providers",
		"{\"name\": \"k\", \"kind\": \"kmip\", \"timeout_ms\": "
		"99999999999999999999999999999, \"servers\": [\"a:1\"]}");
	put_req("float-and-exponent", "POST", "/api/v1/key-providers",
		"{\"name\": \"k\", \"kind\": \"native\", \"timeout_ms\": 1e3}");
	put_req("int-out-of-range", "POST", "/api/v1/key-providers",
		"{\"name\": \"k\", \"kind\": \"native\", \"timeout_ms\": 99}");
	put_req("nul-in-string", "POST", "/api/v1/session",
		"{\"user\": \"admin\", \"password\": \"pw\\u0000tail\"}");
	put_req("nul-in-name", "POST", "/api/v1/inventory",
		"{\"parent\": \"root\", \"kind\": \"vm\", \"name\": \"a\\u0000b\"}");
	put_req("nul-in-names-array", "POST", "/api/v1/roles",
		"{\"name\": \"r\", \"privileges\": [\"System.View\\u0000junk\"]}");
	put_req("invalid-utf8-body", "POST", "/api/v1/keys", "{\"label\": \"\xc3\x28\xff\"}");
	put_req("duplicate-keys", "POST", "/api/v1/session",
		"{\"user\": \"admin\", \"user\": \"root\", \"password\": \"x\"}");
	put_req("not-an-object", "POST", "/api/v1/roles", "[\"name\", \"Viewer\"]");
	put_req("wrong-one-of", "POST", "/api/v1/policies",
		"{\"name\": \"p\", \"encrypt\": false, \"migration\": \"sometimes\"}");
	put_req("unknown-field-newline", "POST", "/api/v1/session",
		"{\"user\": \"a\", \"password\": \"b\", \"x\\ny\": 1}");
	put_req("trailing-garbage", "POST", "/api/v1/session",
		"{\"user\": \"a\", \"password\": \"b\"} {}");

	/* Targets. */
	put_req("pct-nul", "GET", "/api/v1/roles/%00", "");
	put_req("pct-slash", "DELETE", "/api/v1/roles/a%2Fb", "");
	put_req("pct-bad", "GET", "/api/v1/roles/%4g?x=%", "");
	put_req("pct-valid", "GET", "/api/v1/roles/My%20Role%21?object=a+b%2Bc", "");
	put_req("pct-high-query-key", "GET", "/api/v1/events?%FF%FE=1", "");
	put_req("raw-utf8-target", "GET", "/api/v1/roles/\xc3\xa9t\xc3\xa9\xff", "");
	memset(path, 'a', sizeof path);
	memcpy(path, "/api/v1/roles/", 14);
	path[14 + 300] = '\0';
	put_req("overlong-segment", "GET", path, "");
	put_req("too-many-segments", "GET", "/api/v1/a/b/c/d/e/f/g", "");
	put_req("dot-segments", "GET", "/api/v1/./roles/../users", "");
	put_req("empty-segment", "GET", "/api//v1/roles", "");
	put_req("trailing-slash", "GET", "/api/v1/roles/", "");
	put_req("fragment", "GET", "/api/v1/roles#top", "");
	put_req("many-query-pairs", "GET",
		"/api/v1/events?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13", "");
	put_req("repeated-query-key", "GET", "/api/v1/events?user=a&user=b", "");
	put_req("query-oddities", "GET", "/api/v1/permissions?object&=x&&", "");
	put_req("bad-times", "GET",
		"/api/v1/events?from=-1&to=99999999999999&object=2026-02-31T25:61:61Z&"
		"user=%2B1&operation=1970-01-01T00:00:00Z", "");
	put_req("control-char", "GET", "/api/v1/roles/a\x01" "b", "");
	put_file("api_request", "no-newline", "GET /api/v1/inventory", 21);
	put_req("absolute-form", "GET", "https://127.0.0.1/api/v1/inventory", "");
	put_file("api_request", "empty", "", 0);
}

static void put_ctl(const char *name, const char *line)
{
	put_file("ctl", name, line, strlen(line));
}

/* Control-channel lines, written out by hand from vc_ctl.h rather than
 * with vc_ctl_format_status, so that a change of format shows. */
static void ctl_seeds(void)
{
	char line[VC_CTL_LINE_MAX];
	int n;

	put_ctl("cmd-status", "status\n");
	put_ctl("cmd-rekey-deep", "rekey-deep");
	put_ctl("cmd-two-lines", "status\nstatus\n");
	put_ctl("cmd-shallow", "rekey-shallow nat 521e407f-079c-42dc-b7c8-031a745b00af "
		"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
	put_ctl("cmd-shallow-short-key", "rekey-shallow nat k 0001\n");
	put_file("ctl", "cmd-nul", "status\0\n", 8);
	put_ctl("idle", "ok state=idle progress=0 total=2048 generation=1\n");
	put_ctl("running", "ok state=running progress=1000 total=2048 generation=2\n");
	put_ctl("done-max", "ok state=done progress=18446744073709551615 "
		"total=18446744073709551615 generation=18446744073709551615");
	put_ctl("failed", "ok state=failed progress=17 total=2048 generation=3 "
		"error=write sector 17: Input/output error\n");
	put_ctl("failed-empty-error", "ok state=failed progress=0 total=0 generation=0 error=\n");
	n = snprintf(line, sizeof line, "ok state=failed progress=1 total=2 generation=3 error=");
	memset(line + n, 'x', sizeof line - 2 - (size_t)n);
	line[sizeof line - 2] = '\n';
	line[sizeof line - 1] = '\0';
	put_ctl("failed-long-error", line);
	put_ctl("error-reply", "error rekey already running\n");
	put_ctl("bad-progress-beyond-total", "ok state=running progress=5 total=4 generation=1\n");
	put_ctl("bad-overflow", "ok state=idle progress=0 total=18446744073709551616 generation=1\n");
	put_ctl("bad-order", "ok state=idle total=0 progress=0 generation=0\n");
	put_ctl("bad-missing-error", "ok state=failed progress=0 total=0 generation=0\n");
	put_ctl("bad-trailing", "ok state=idle progress=0 total=0 generation=0 x\n");
	put_ctl("bad-control-byte", "ok state=failed progress=0 total=0 generation=0 error=a\tb\n");
	put_ctl("bad-state", "ok state=paused progress=0 total=0 generation=0\n");
	put_file("ctl", "empty", "", 0);

	/* For the harness's other reading of its input, as a status struct:
	 * 0x80 = FAILED with small numbers (progress 5, total 10), then
	 * the generation and an error text with bytes format must replace. */
	memset(line, 0, sizeof line);
	line[0] = (char)0x80;
	line[1] = 5;
	line[9] = 10;
	line[17] = 7;
	memcpy(line + 25, "disk\x01\n\x7f\xff gone", 13);
	put_file("ctl", "struct-failed-binary", line, 25 + 13);
}

/* Which corpora to write: all, or those named after the directory. */
static bool wanted(int argc, char **argv, const char *name)
{
	if (argc == 2)
		return true;
	for (int i = 2; i < argc; i++)
		if (!strcmp(argv[i], name))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	static const char *const names[] = { "disk_header", "key_input", "api_request", "ctl" };
	uint8_t k[FUZZ_KEK_LEN];
	struct vc_error err = { 0 };
	char *sub;

	if (argc < 2) {
		fprintf(stderr, "usage: %s CORPUS_DIR [NAME...] (e.g. fuzz/corpus api_request)\n",
			argv[0]);
		return 2;
	}
	outdir = argv[1];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!wanted(argc, argv, names[i]))
			continue;
		if (asprintf(&sub, "%s/%s", outdir, names[i]) < 0)
			die("asprintf", NULL);
		if (mkdir(sub, 0755) < 0 && errno != EEXIST)
			die(sub, NULL);
		free(sub);
	}
	fuzz_kek_fill(k);
	if (vc_secret_from_bytes(k, sizeof k, &kek, &err) < 0)
		die("KEK", &err);
	if (wanted(argc, argv, "disk_header"))
		disk_seeds();
	if (wanted(argc, argv, "key_input"))
		key_seeds();
	if (wanted(argc, argv, "api_request"))
		api_seeds();
	if (wanted(argc, argv, "ctl"))
		ctl_seeds();
	vc_secret_free(kek);
	return 0;
}
