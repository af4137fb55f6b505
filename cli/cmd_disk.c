/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt disk: the offline tool for encrypted virtual disks. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "vc_disk.h"
#include "vc_fileio.h"
#include "vc_log.h"
#include "vc_uuid.h"

#define CHUNK ((size_t)4 << 20)

struct opts {
	const char *cmd;       /* "disk create" ... for messages */
	uint64_t size;
	bool size_set;
	uint32_t sector_size;
	const char *provider;
	const char *key_id;
	struct cli_key_opt kek, new_kek;
	bool json, shallow, deep;
	int progress;          /* -1 auto, 0 off, 1 on */
	char *args[3];
	int nargs;
};

enum {
	OPT_SIZE = 256, OPT_SECTOR, OPT_PROVIDER, OPT_KEYID, OPT_KEKFILE, OPT_KEKFD,
	OPT_NEWKEKFILE, OPT_NEWKEKFD, OPT_JSON, OPT_SHALLOW, OPT_DEEP, OPT_PROGRESS,
	OPT_QUIET,
};

/* Which options each subcommand takes, as a string of OPT_ letters. */
struct subcmd {
	const char *name;
	int (*run)(struct opts *o);
	int nargs;
	const char *allowed; /* option names, space separated */
	const char *usage;
};

static int do_create(struct opts *o);
static int do_info(struct opts *o);
static int do_import(struct opts *o);
static int do_export(struct opts *o);
static int do_verify(struct opts *o);
static int do_rekey(struct opts *o);

#define KEK_USAGE "(--kek-file PATH | --kek-fd N)"
#define NEWKEK_USAGE "(--new-kek-file PATH | --new-kek-fd N)"

static const struct subcmd subcmds[] = {
	{ "create", do_create, 1, "size sector-size provider key-id kek-file kek-fd",
	  "create FILE --size SIZE [--sector-size 512|4096] " KEK_USAGE
	  " [--provider NAME] [--key-id ID]" },
	{ "info", do_info, 1, "json", "info FILE [--json]" },
	{ "import", do_import, 2,
	  "size sector-size provider key-id kek-file kek-fd progress quiet",
	  "import SRC|- FILE " KEK_USAGE " [--size SIZE] [--sector-size 512|4096]"
	  " [--provider NAME] [--key-id ID]" },
	{ "export", do_export, 2, "kek-file kek-fd new-kek-file new-kek-fd progress quiet",
	  "export FILE DEST|- " KEK_USAGE " [" NEWKEK_USAGE "]" },
	{ "verify", do_verify, 1, "kek-file kek-fd new-kek-file new-kek-fd json",
	  "verify FILE " KEK_USAGE " [" NEWKEK_USAGE "] [--json]" },
	{ "rekey", do_rekey, 1,
	  "shallow deep kek-file kek-fd new-kek-file new-kek-fd provider key-id progress quiet",
	  "rekey FILE --shallow " KEK_USAGE " " NEWKEK_USAGE " [--provider NAME] [--key-id ID]\n"
	  "       vmcrypt disk rekey FILE --deep " KEK_USAGE " [" NEWKEK_USAGE
	  "] [--provider NAME] [--key-id ID]" },
};

static const struct option long_opts[] = {
	{ "size", required_argument, NULL, OPT_SIZE },
	{ "sector-size", required_argument, NULL, OPT_SECTOR },
	{ "provider", required_argument, NULL, OPT_PROVIDER },
	{ "key-id", required_argument, NULL, OPT_KEYID },
	{ "kek-file", required_argument, NULL, OPT_KEKFILE },
	{ "kek-fd", required_argument, NULL, OPT_KEKFD },
	{ "new-kek-file", required_argument, NULL, OPT_NEWKEKFILE },
	{ "new-kek-fd", required_argument, NULL, OPT_NEWKEKFD },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "shallow", no_argument, NULL, OPT_SHALLOW },
	{ "deep", no_argument, NULL, OPT_DEEP },
	{ "progress", no_argument, NULL, OPT_PROGRESS },
	{ "quiet", no_argument, NULL, OPT_QUIET },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void disk_usage(FILE *f)
{
	fprintf(f, "usage:\n");
	for (size_t i = 0; i < VC_ARRAY_SIZE(subcmds); i++)
		fprintf(f, "  vmcrypt disk %s\n", subcmds[i].usage);
	fprintf(f,
		"\nA KEK is 32 bytes: a file of 32 raw bytes or 64 hex digits, mode 0600,\n"
		"or an inherited file descriptor. SIZE takes K, M, G, T suffixes (powers\n"
		"of 1024). --progress/--quiet force the progress bar on or off (default:\n"
		"shown when stderr is a terminal). Exit codes: 0 success, 1 failure,\n"
		"2 usage error. See docs/vmcrypt-disk.md.\n");
}

static bool allowed(const struct subcmd *c, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = c->allowed; (p = strstr(p, name)); p += n)
		if ((p == c->allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

static int parse(const struct subcmd *c, int argc, char **argv, struct opts *o,
		 bool *help)
{
	char cmd[64];
	int opt, r;

	snprintf(cmd, sizeof cmd, "disk %s", c->name);
	memset(o, 0, sizeof *o);
	o->cmd = c->name;
	o->sector_size = 4096;
	o->kek = (struct cli_key_opt){ .fd = -1, .name = "--kek" };
	o->new_kek = (struct cli_key_opt){ .fd = -1, .name = "--new-kek" };
	o->progress = -1;
	*help = false;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *lo = long_opts; lo->name; lo++)
			if (lo->val == opt)
				name = lo->name;
		if (opt == 'h') {
			*help = true;
			return 0;
		}
		if (opt == '?' || opt == ':') {
			if (optopt)
				return cli_usage_error(cmd, "unknown option '-%c'", optopt);
			return cli_usage_error(cmd, "unknown option or missing value in '%s'",
					       argv[optind - 1]);
		}
		if (name && !allowed(c, name))
			return cli_usage_error(cmd, "option --%s does not apply to 'disk %s'",
					       name, c->name);
		switch (opt) {
		case OPT_SIZE:
			r = cli_parse_size(optarg, &o->size);
			if (r < 0 || o->size == 0)
				return cli_usage_error(cmd, "bad size '%s' (use e.g. 4096, 512M, 10G)",
						       optarg);
			o->size_set = true;
			break;
		case OPT_SECTOR: {
			uint64_t ss;

			if (cli_parse_size(optarg, &ss) < 0 || (ss != 512 && ss != 4096))
				return cli_usage_error(cmd, "sector size must be 512 or 4096, not '%s'",
						       optarg);
			o->sector_size = (uint32_t)ss;
			break;
		}
		case OPT_PROVIDER:
			o->provider = optarg;
			break;
		case OPT_KEYID:
			o->key_id = optarg;
			break;
		case OPT_KEKFILE:
			o->kek.file = optarg;
			break;
		case OPT_NEWKEKFILE:
			o->new_kek.file = optarg;
			break;
		case OPT_KEKFD:
		case OPT_NEWKEKFD: {
			struct cli_key_opt *k = opt == OPT_KEKFD ? &o->kek : &o->new_kek;

			if (cli_parse_int(optarg, &k->fd) < 0)
				return cli_usage_error(cmd, "--%s needs a file descriptor number, not '%s'",
						       name, optarg);
			break;
		}
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_SHALLOW:
			o->shallow = true;
			break;
		case OPT_DEEP:
			o->deep = true;
			break;
		case OPT_PROGRESS:
			o->progress = 1;
			break;
		case OPT_QUIET:
			o->progress = 0;
			break;
		default:
			return cli_usage_error(cmd, "unexpected option");
		}
	}
	for (; optind < argc; optind++) {
		if (o->nargs >= c->nargs)
			return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		o->args[o->nargs++] = argv[optind];
	}
	if (o->nargs < c->nargs)
		return cli_usage_error(cmd, "missing %s", o->nargs == 0 && c->nargs == 2 &&
				       !strcmp(c->name, "import") ? "source and disk file" :
				       o->nargs == 0 ? "disk file" : "destination");
	if (o->kek.file && o->kek.fd >= 0)
		return cli_usage_error(cmd, "give either --kek-file or --kek-fd, not both");
	if (o->new_kek.file && o->new_kek.fd >= 0)
		return cli_usage_error(cmd, "give either --new-kek-file or --new-kek-fd, not both");
	if (allowed(c, "kek-file") && !cli_key_given(&o->kek))
		return cli_usage_error(cmd, "a KEK is required: --kek-file PATH or --kek-fd N");
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

struct disk_file {
	int fd;
	struct vc_file f;
	struct vc_disk_io io;
};

static void disk_file_init(struct disk_file *df, int fd, const char *name)
{

	df->fd = fd;
	memset(&df->f, 0, sizeof df->f);
	df->f.fd = fd;
	df->f.name = name;
	/* Test hook for the crash-safety tests; see docs/vmcrypt-disk.md. */
	df->f.crash_at = vc_test_crash_point("VMCRYPT_TEST_CRASH_AT_WRITE");
	vc_file_io(&df->f, &df->io);
}

static int open_disk_fd(const char *path, bool write, struct vc_error *err)
{
	int fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return vc_error_errno(err, errno, "%s: cannot open", path);
	if (fstat(fd, &st) < 0 || (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))) {
		close(fd);
		return vc_error_set(err, -EINVAL, "%s: not a regular file or block device", path);
	}
	return fd;
}

static int load_keys(struct opts *o, struct vc_secret **kek,
		     struct vc_secret **new_kek, struct vc_error *err)
{
	int r = cli_key_load(&o->kek, kek, err);

	if (r == 0 && cli_key_given(&o->new_kek))
		r = cli_key_load(&o->new_kek, new_kek, err);
	return r;
}

/* Open an existing disk with the given keys (new_kek may be NULL). */
static int open_disk_keys(const char *path, bool write, const struct vc_secret *kek,
			  const struct vc_secret *new_kek, struct disk_file *df,
			  struct vc_disk **d, struct vc_error *err)
{
	int fd, r;

	*d = NULL;
	df->fd = -1;
	fd = open_disk_fd(path, write, err);
	if (fd < 0)
		return fd;
	disk_file_init(df, fd, path);
	r = vc_disk_open(&df->io, kek, new_kek, write ? 0 : VC_DISK_RDONLY, d, err);
	if (r < 0) {
		vc_error_prefix(err, "%s", path);
		close(fd);
		df->fd = -1;
	}
	return r;
}

/* Open an existing disk with the keys named by the options. */
static int open_disk(struct opts *o, const char *path, bool write,
		     struct disk_file *df, struct vc_disk **d, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *kek = NULL;
	VC_CLEANUP_SECRET struct vc_secret *new_kek = NULL;
	int r;

	*d = NULL;
	df->fd = -1;
	if ((r = load_keys(o, &kek, &new_kek, err)) < 0)
		return r;
	return open_disk_keys(path, write, kek, new_kek, df, d, err);
}

static void close_disk(struct disk_file *df, struct vc_disk *d)
{
	vc_disk_close(d);
	if (df->fd >= 0)
		close(df->fd);
	df->fd = -1;
}

/* Create path exclusively and format it; the caller removes it on a later
 * failure. */
static int create_disk(struct opts *o, const char *path, uint64_t vsize,
		       const struct vc_secret *kek, struct disk_file *df,
		       struct vc_uuid *uuid, struct vc_error *err)
{
	char key_id[VC_UUID_STR_LEN];
	struct vc_disk_params p = {
		.virtual_size = vsize,
		.sector_size = o->sector_size,
		.provider = o->provider ? o->provider : "local",
		.key_id = o->key_id,
	};
	uint64_t csize;
	int fd, r;

	if ((r = vc_disk_container_size(vsize, o->sector_size, &csize, err)) < 0)
		return r;
	if (!p.key_id) {
		struct vc_uuid u;

		if ((r = vc_uuid_generate(&u, err)) < 0)
			return r;
		vc_uuid_format(&u, key_id);
		p.key_id = key_id;
	}
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return vc_error_errno(err, errno, "%s: cannot create", path);
	disk_file_init(df, fd, path);
	if (ftruncate(fd, (off_t)csize) < 0)
		r = vc_error_errno(err, errno, "%s: cannot size to %llu bytes", path,
				   (unsigned long long)csize);
	else
		r = vc_disk_format(&df->io, &p, kek, uuid, err);
	if (r < 0) {
		close(fd);
		df->fd = -1;
		unlink(path);
	}
	return r;
}

/* ---- create ----------------------------------------------------------------- */

static int do_create(struct opts *o)
{
	VC_CLEANUP_SECRET struct vc_secret *kek = NULL;
	struct vc_error err = { 0 };
	struct disk_file df;
	struct vc_uuid uuid;
	char us[VC_UUID_STR_LEN], hs[32];

	if (!o->size_set)
		return cli_usage_error("disk create", "--size is required");
	if (o->size % o->sector_size)
		return cli_usage_error("disk create", "size %llu is not a multiple of the %u-byte sector size",
				       (unsigned long long)o->size, o->sector_size);
	if (cli_key_load(&o->kek, &kek, &err) < 0 ||
	    create_disk(o, o->args[0], o->size, kek, &df, &uuid, &err) < 0)
		return cli_fail(&err);
	if (fsync(df.fd) < 0) {
		vc_error_errno(&err, errno, "%s: sync failed", o->args[0]);
		close(df.fd);
		unlink(o->args[0]);
		return cli_fail(&err);
	}
	close(df.fd);
	vc_uuid_format(&uuid, us);
	printf("created %s: %s, %u-byte sectors, uuid %s\n", o->args[0],
	       cli_human_size(o->size, hs, sizeof hs), o->sector_size, us);
	return EXIT_OK;
}

/* ---- info ------------------------------------------------------------------- */

static int inspect_path(const char *path, struct vc_disk_info *in, struct vc_error *err)
{
	struct disk_file df;
	int fd, r;

	fd = open_disk_fd(path, false, err);
	if (fd < 0)
		return fd;
	disk_file_init(&df, fd, path);
	r = vc_disk_inspect(&df.io, in, err);
	close(fd);
	if (r < 0)
		vc_error_prefix(err, "%s", path);
	return r;
}

static json_t *slot_json(const struct vc_disk_slot_info *s)
{
	return json_pack("{s:s, s:s, s:I}", "provider", s->provider, "key_id", s->key_id,
			 "generation", (json_int_t)s->generation);
}

static int do_info(struct opts *o)
{
	struct vc_error err = { 0 };
	struct vc_disk_info in;
	char us[VC_UUID_STR_LEN], hs[32];
	uint64_t total;
	double pct;

	if (inspect_path(o->args[0], &in, &err) < 0)
		return cli_fail(&err);
	vc_uuid_format(&in.uuid, us);
	total = in.virtual_size / in.sector_size;
	pct = in.rekey_active ? 100.0 * (double)in.rekey_progress / (double)total : 0.0;

	if (o->json) {
		json_t *copies = json_array(), *root;
		char *s;

		for (int i = 0; i < 2; i++)
			json_array_append_new(copies, json_pack("{s:i, s:b, s:o}", "copy", i,
					      "ok", in.copy_ok[i] && !in.copy_problem[i][0],
					      "problem", in.copy_problem[i][0] ?
					      json_string(in.copy_problem[i]) : json_null()));
		root = json_pack("{s:s, s:i, s:s, s:I, s:i, s:s, s:I, s:I, s:o, s:{s:b, s:I, s:I, s:f, s:b, s:o}, s:o}",
				 "file", o->args[0], "format_version", in.version, "uuid", us,
				 "virtual_size", (json_int_t)in.virtual_size,
				 "sector_size", (int)in.sector_size,
				 "cipher", "aes-256-xts-plain64",
				 "payload_offset", (json_int_t)in.payload_offset,
				 "sequence", (json_int_t)in.sequence,
				 "key", slot_json(&in.slot[0]),
				 "rekey", "active", in.rekey_active,
				 "progress_sectors", (json_int_t)in.rekey_progress,
				 "total_sectors", (json_int_t)total, "percent", pct,
				 "journal_pending", in.journal_pending,
				 "target", in.slot[1].active ? slot_json(&in.slot[1]) : json_null(),
				 "header_copies", copies);
		if (!root) {
			cli_error("%s: cannot build JSON", o->args[0]);
			return EXIT_FAIL;
		}
		s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		json_decref(root);
		if (!s) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		puts(s);
		free(s);
		return EXIT_OK;
	}
	printf("file:            %s\n", o->args[0]);
	printf("format:          vmcrypt disk, version %u\n", in.version);
	printf("uuid:            %s\n", us);
	printf("virtual size:    %llu (%s)\n", (unsigned long long)in.virtual_size,
	       cli_human_size(in.virtual_size, hs, sizeof hs));
	printf("sector size:     %u\n", in.sector_size);
	printf("cipher:          aes-256-xts-plain64\n");
	printf("payload offset:  %llu\n", (unsigned long long)in.payload_offset);
	printf("key provider:    %s\n", in.slot[0].provider);
	printf("key id:          %s\n", in.slot[0].key_id);
	printf("key generation:  %llu\n", (unsigned long long)in.slot[0].generation);
	if (in.rekey_active)
		printf("rekey:           in progress, %.1f%% (%llu of %llu sectors)%s, to provider '%s' key id '%s'\n",
		       pct, (unsigned long long)in.rekey_progress, (unsigned long long)total,
		       in.journal_pending ? ", interrupted step pending" : "",
		       in.slot[1].provider, in.slot[1].key_id);
	else
		printf("rekey:           none\n");
	for (int i = 0; i < 2; i++)
		printf("header copy %d:   %s%s\n", i,
		       in.copy_problem[i][0] ? in.copy_problem[i] : "ok",
		       in.copy_used == i ? " (in use)" : "");
	return EXIT_OK;
}

/* ---- import ----------------------------------------------------------------- */

/* Fill buf from fd until len bytes or end of input; *got is what came. */
static int read_full(int fd, uint8_t *buf, size_t len, size_t *got,
		     const char *name, struct vc_error *err)
{
	*got = 0;
	while (*got < len) {
		ssize_t n = read(fd, buf + *got, len - *got);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: read failed", name);
		}
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return 0;
}

static int source_size(int fd, const char *name, uint64_t *size, struct vc_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return vc_error_errno(err, errno, "%s: cannot stat", name);
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 1;
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, size) < 0)
			return vc_error_errno(err, errno, "%s: cannot get device size", name);
		return 1;
	}
	if (S_ISDIR(st.st_mode))
		return vc_error_set(err, -EISDIR, "%s: is a directory", name);
	return 0; /* a pipe or similar: size unknown */
}

/* Call fn for each run of non-zero sectors in buf (len is a multiple of
 * ss); zero sectors are skipped, so that new files and containers stay
 * sparse. */
typedef int (*run_fn)(void *ctx, const uint8_t *p, size_t n, size_t at,
		      struct vc_error *err);

static int each_data_run(const uint8_t *buf, size_t len, size_t ss, run_fn fn,
			 void *ctx, struct vc_error *err)
{
	size_t i = 0;

	while (i < len) {
		size_t j;

		if (vc_is_zero(buf + i, ss)) {
			i += ss;
			continue;
		}
		for (j = i + ss; j < len && !vc_is_zero(buf + j, ss); j += ss)
			;
		int r = fn(ctx, buf + i, j - i, i, err);

		if (r < 0)
			return r;
		i = j;
	}
	return 0;
}

struct disk_run {
	struct vc_disk *d;
	uint64_t offset;
};

static int disk_run_write(void *ctx, const uint8_t *p, size_t n, size_t at,
			  struct vc_error *err)
{
	struct disk_run *dr = ctx;

	return vc_disk_write(dr->d, p, n, dr->offset + at, err);
}

static int do_import(struct opts *o)
{
	VC_CLEANUP_SECRET struct vc_secret *kek = NULL;
	const char *src = o->args[0], *dst = o->args[1];
	bool from_stdin = !strcmp(src, "-");
	struct vc_error err = { 0 };
	struct vc_disk *d = NULL;
	struct cli_progress prog;
	struct disk_file df = { .fd = -1 };
	uint64_t srcsize = 0, vsize, done = 0;
	uint8_t *buf = NULL;
	int in = STDIN_FILENO, r, known;

	if (from_stdin && !o->size_set)
		return cli_usage_error("disk import", "--size is required when importing from stdin");
	if (!from_stdin && (in = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY)) < 0) {
		vc_error_errno(&err, errno, "%s: cannot open", src);
		return cli_fail(&err);
	}
	known = source_size(in, from_stdin ? "stdin" : src, &srcsize, &err);
	if (known < 0)
		goto fail_early;
	if (o->size_set) {
		vsize = o->size;
		if (known && srcsize > vsize) {
			vc_error_set(&err, -EFBIG, "%s: input is %llu bytes, longer than --size %llu",
				     src, (unsigned long long)srcsize, (unsigned long long)vsize);
			goto fail_early;
		}
	} else if (known) {
		vsize = srcsize;
	} else {
		vc_error_set(&err, -EINVAL, "%s: size of the input is unknown: give --size", src);
		goto fail_early;
	}
	if (vsize == 0) {
		vc_error_set(&err, -EINVAL, "%s: input is empty: give --size", src);
		goto fail_early;
	}
	vsize = (vsize + o->sector_size - 1) / o->sector_size * o->sector_size;
	if ((r = cli_key_load(&o->kek, &kek, &err)) < 0)
		goto fail_early;
	if ((r = create_disk(o, dst, vsize, kek, &df, NULL, &err)) < 0)
		goto fail_early;
	if ((r = vc_disk_open(&df.io, kek, NULL, 0, &d, &err)) < 0 ||
	    !(buf = malloc(CHUNK))) {
		if (!buf && r == 0)
			vc_error_set(&err, -ENOMEM, "out of memory");
		goto fail;
	}
	cli_progress_init(&prog, o->progress, "import", vsize);
	for (;;) {
		size_t got, want = vsize - done < CHUNK ? (size_t)(vsize - done) : CHUNK;

		if (want == 0) {
			/* Anything left on the input is more than --size. */
			uint8_t extra;

			if (read_full(in, &extra, 1, &got, src, &err) < 0)
				goto fail;
			if (got) {
				vc_error_set(&err, -EFBIG, "%s: input is longer than --size %llu",
					     src, (unsigned long long)vsize);
				goto fail;
			}
			break;
		}
		if (read_full(in, buf, want, &got, src, &err) < 0)
			goto fail;
		if (got < want)
			memset(buf + got, 0, want - got); /* pad the last sector */
		if (each_data_run(buf, (got + o->sector_size - 1) / o->sector_size * o->sector_size,
				  o->sector_size, disk_run_write, &(struct disk_run){ d, done },
				  &err) < 0)
			goto fail;
		done += want;
		cli_progress_update(&prog, done);
		if (got < want)
			break;
	}
	if (vc_disk_flush(d, &err) < 0)
		goto fail;
	cli_progress_done(&prog);
	vc_wipe(buf, CHUNK);
	free(buf);
	close_disk(&df, d);
	if (!from_stdin)
		close(in);
	return EXIT_OK;

fail:
	if (buf) {
		vc_wipe(buf, CHUNK);
		free(buf);
	}
	close_disk(&df, d);
	unlink(dst);
fail_early:
	if (!from_stdin)
		close(in);
	return cli_fail(&err);
}

/* ---- export ----------------------------------------------------------------- */

struct file_run {
	int fd;
	uint64_t offset;
	const char *name;
};

/* Write one run at its place in a new file; the gaps stay holes and the
 * file gets its final size at the end. */
static int file_run_write(void *ctx, const uint8_t *p, size_t n, size_t at,
			  struct vc_error *err)
{
	struct file_run *fr = ctx;
	uint64_t off = fr->offset + at;

	while (n > 0) {
		ssize_t w = pwrite(fr->fd, p, n, (off_t)off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return vc_error_errno(err, errno, "%s: write failed", fr->name);
		}
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int do_export(struct opts *o)
{
	const char *dst = o->args[1];
	bool to_stdout = !strcmp(dst, "-");
	struct vc_error err = { 0 };
	struct disk_file df = { .fd = -1 };
	struct cli_progress prog;
	struct vc_disk *d = NULL;
	uint64_t size, done = 0;
	uint8_t *buf = NULL;
	int out = STDOUT_FILENO;

	if (open_disk(o, o->args[0], false, &df, &d, &err) < 0)
		return cli_fail(&err);
	if (!to_stdout &&
	    (out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600)) < 0) {
		vc_error_errno(&err, errno, "%s: cannot create", dst);
		close_disk(&df, d);
		return cli_fail(&err);
	}
	size = vc_disk_size(d);
	if (!(buf = malloc(CHUNK))) {
		vc_error_set(&err, -ENOMEM, "out of memory");
		goto fail;
	}
	cli_progress_init(&prog, o->progress, "export", size);
	while (done < size) {
		size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;

		if (vc_disk_read(d, buf, n, done, &err) < 0)
			goto fail;
		if (to_stdout) {
			if (cli_write_all(out, buf, n, "stdout", &err) < 0)
				goto fail;
		} else if (each_data_run(buf, n, vc_disk_sector_size(d), file_run_write,
					 &(struct file_run){ out, done, dst }, &err) < 0) {
			goto fail;
		}
		done += n;
		cli_progress_update(&prog, done);
	}
	if (!to_stdout && (ftruncate(out, (off_t)size) < 0 || fsync(out) < 0)) {
		vc_error_errno(&err, errno, "%s: cannot finish", dst);
		goto fail;
	}
	cli_progress_done(&prog);
	vc_wipe(buf, CHUNK);
	free(buf);
	close_disk(&df, d);
	if (!to_stdout && close(out) < 0) {
		vc_error_errno(&err, errno, "%s: close failed", dst);
		unlink(dst);
		return cli_fail(&err);
	}
	return EXIT_OK;
fail:
	if (buf) {
		vc_wipe(buf, CHUNK);
		free(buf);
	}
	close_disk(&df, d);
	if (!to_stdout) {
		close(out);
		unlink(dst);
	}
	return cli_fail(&err);
}

/* ---- verify ----------------------------------------------------------------- */

static int do_verify(struct opts *o)
{
	struct vc_error err = { 0 };
	struct disk_file df = { .fd = -1 };
	struct vc_disk_info in;
	struct vc_disk *d = NULL;
	char problem[2][160];
	bool ok[2], all_ok;

	if (open_disk(o, o->args[0], false, &df, &d, &err) < 0)
		return cli_fail(&err);
	if (vc_disk_check_copies(d, ok, problem, &err) < 0) {
		close_disk(&df, d);
		return cli_fail(&err);
	}
	vc_disk_get_info(d, &in);
	close_disk(&df, d);
	all_ok = ok[0] && ok[1];
	if (o->json) {
		json_t *root = json_pack("{s:s, s:b, s:b, s:b, s:[{s:i, s:b, s:o}, {s:i, s:b, s:o}]}",
					 "file", o->args[0], "ok", all_ok, "key_ok", 1,
					 "rekey_active", in.rekey_active, "header_copies",
					 "copy", 0, "ok", ok[0],
					 "problem", ok[0] ? json_null() : json_string(problem[0]),
					 "copy", 1, "ok", ok[1],
					 "problem", ok[1] ? json_null() : json_string(problem[1]));
		char *s = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

		json_decref(root);
		if (!s) {
			cli_error("out of memory");
			return EXIT_FAIL;
		}
		puts(s);
		free(s);
	} else {
		printf("key:            ok (provider '%s', key id '%s')\n", in.slot[0].provider,
		       in.slot[0].key_id);
		if (in.rekey_active)
			printf("rekey key:      ok (provider '%s', key id '%s')\n",
			       in.slot[1].provider, in.slot[1].key_id);
		for (int i = 0; i < 2; i++)
			printf("header copy %d:  %s\n", i, ok[i] ? "ok" : problem[i]);
	}
	if (!all_ok) {
		for (int i = 0; i < 2; i++)
			if (!ok[i]) {
				cli_error("%s: header copy %d is not valid: %s (a writable open repairs it)",
					  o->args[0], i, problem[i]);
				break;
			}
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ---- rekey ------------------------------------------------------------------ */

static int do_rekey(struct opts *o)
{
	VC_CLEANUP_SECRET struct vc_secret *kek = NULL;
	VC_CLEANUP_SECRET struct vc_secret *new_kek = NULL;
	struct vc_error err = { 0 };
	struct disk_file df = { .fd = -1 };
	struct cli_progress prog;
	struct vc_disk_info in;
	struct vc_disk *d = NULL;
	char key_id[VC_UUID_STR_LEN];
	uint64_t done, total;
	bool finished = false, was_active;

	if (o->shallow == o->deep)
		return cli_usage_error("disk rekey", "give exactly one of --shallow or --deep");
	if (o->shallow && !cli_key_given(&o->new_kek))
		return cli_usage_error("disk rekey",
				       "--shallow needs the new KEK: --new-kek-file PATH or --new-kek-fd N");
	if (load_keys(o, &kek, &new_kek, &err) < 0 ||
	    inspect_path(o->args[0], &in, &err) < 0)
		return cli_fail(&err);
	was_active = in.rekey_active;
	if (open_disk_keys(o->args[0], true, kek, o->shallow ? NULL : new_kek, &df, &d, &err) < 0) {
		/* A deep rekey to a new KEK that finished, but whose last
		 * header update was cut short: the disk already answers to the
		 * new KEK. Opening it writable repairs the header. */
		struct vc_error err2 = { 0 };

		if (!o->deep || was_active || !new_kek || err.code != -EKEYREJECTED ||
		    open_disk_keys(o->args[0], true, new_kek, NULL, &df, &d, &err2) < 0)
			return cli_fail(&err);
		vc_disk_get_info(d, &in);
		close_disk(&df, d);
		printf("%s already uses the new KEK: rekey complete, generation %llu, key provider '%s', key id '%s'\n",
		       o->args[0], (unsigned long long)in.slot[0].generation,
		       in.slot[0].provider, in.slot[0].key_id);
		return EXIT_OK;
	}
	vc_disk_get_info(d, &in);
	if (o->shallow) {
		if (!o->key_id) {
			struct vc_uuid u;

			if (vc_uuid_generate(&u, &err) < 0)
				goto fail;
			vc_uuid_format(&u, key_id);
		}
		if (vc_disk_rekey_shallow(d, new_kek, o->provider ? o->provider : in.slot[0].provider,
					  o->key_id ? o->key_id : key_id, &err) < 0)
			goto fail;
		vc_disk_get_info(d, &in);
		close_disk(&df, d);
		printf("rekeyed %s: key provider '%s', key id '%s'\n", o->args[0],
		       in.slot[0].provider, in.slot[0].key_id);
		return EXIT_OK;
	}

	if (was_active && !in.rekey_active) {
		/* Opening the disk redid the journaled last chunk. */
		close_disk(&df, d);
		printf("rekeyed %s: resumed and finished, generation %llu, key provider '%s', key id '%s'\n",
		       o->args[0], (unsigned long long)in.slot[0].generation, in.slot[0].provider,
		       in.slot[0].key_id);
		return EXIT_OK;
	}
	if (in.rekey_active) {
		if (o->provider || o->key_id)
			vc_warn("a deep rekey is already in progress; resuming it to provider '%s' key id '%s'",
				in.slot[1].provider, in.slot[1].key_id);
	} else {
		const char *kid = o->key_id;

		if (!kid && new_kek) {
			struct vc_uuid u;

			if (vc_uuid_generate(&u, &err) < 0)
				goto fail;
			vc_uuid_format(&u, key_id);
			kid = key_id;
		}
		if (vc_disk_rekey_deep_start(d, new_kek, o->provider, kid, &err) < 0)
			goto fail;
	}
	vc_disk_rekey_progress(d, &done, &total);
	cli_progress_init(&prog, o->progress, "rekey", total * vc_disk_sector_size(d));
	while (!finished) {
		if (vc_disk_rekey_deep_step(d, &finished, &err) < 0)
			goto fail;
		vc_disk_rekey_progress(d, &done, &total);
		cli_progress_update(&prog, (finished ? total : done) * vc_disk_sector_size(d));
	}
	cli_progress_done(&prog);
	vc_disk_get_info(d, &in);
	close_disk(&df, d);
	printf("rekeyed %s: new data key, generation %llu, key provider '%s', key id '%s'\n",
	       o->args[0], (unsigned long long)in.slot[0].generation, in.slot[0].provider,
	       in.slot[0].key_id);
	return EXIT_OK;
fail:
	close_disk(&df, d);
	return cli_fail(&err);
}

/* ---- dispatch --------------------------------------------------------------- */

int cmd_disk(int argc, char **argv)
{
	struct vc_error err = { 0 };
	struct opts o;
	bool help;
	int r;

	if (argc < 2) {
		cli_error("missing disk command (see 'vmcrypt disk --help')");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		disk_usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(subcmds); i++) {
		const struct subcmd *c = &subcmds[i];

		if (strcmp(argv[1], c->name))
			continue;
		r = parse(c, argc - 1, argv + 1, &o, &help);
		if (r)
			return r;
		if (help) {
			printf("usage: vmcrypt disk %s\n", c->usage);
			return EXIT_OK;
		}
		/* Keys will be held: no core dumps, memory locked if allowed. */
		if (vc_secmem_harden_process(&err) < 0)
			return cli_fail(&err);
		if (err.msg[0])
			vc_debug("%s", err.msg);
		return c->run(&o);
	}
	cli_error("unknown disk command '%s' (see 'vmcrypt disk --help')", argv[1]);
	return EXIT_USAGE;
}
