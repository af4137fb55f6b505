/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt vmfile: seal, open and inspect encrypted VM files (nvram, vTPM
 * state, memory images, dumps) offline, with the key in a file or fd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "vc_encode.h"
#include "vc_vmfile.h"

struct vopts {
	const char *purpose;
	unsigned shift;
	struct cli_key_opt key;
	bool json;
	char *args[2];
	int nargs;
};

enum { OPT_KEYFILE = 256, OPT_KEYFD, OPT_PURPOSE, OPT_CHUNK, OPT_JSON };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: vmcrypt vmfile seal IN OUT (--key-file PATH | --key-fd N) --purpose P\n"
		"                          [--chunk-size SIZE]\n"
		"       vmcrypt vmfile open IN OUT (--key-file PATH | --key-fd N) --purpose P\n"
		"       vmcrypt vmfile info IN [--json]\n"
		"Encrypted VM files (docs/FORMAT.md, second part): a header and a chunked\n"
		"AES-256-GCM stream under a per-file key derived from a 32-byte VM (or host)\n"
		"key. IN may be '-' (standard input); open's OUT may be '-' (standard\n"
		"output). OUT files are created 0600 and must not exist; a failed open\n"
		"removes its OUT. P names what the file holds (nvram, vtpm, memory, dump;\n"
		"a-z 0-9 . _ -); open refuses a file of another purpose. SIZE: a power of\n"
		"two from 4K to 1M (default 64K).\n");
}

static int parse_shift(const char *s, unsigned *out)
{
	uint64_t v;

	if (cli_parse_size(s, &v) < 0)
		return -EINVAL;
	for (unsigned sh = VC_VMFILE_SHIFT_MIN; sh <= VC_VMFILE_SHIFT_MAX; sh++)
		if (v == (uint64_t)1 << sh) {
			*out = sh;
			return 0;
		}
	return -EINVAL;
}

static int parse(int argc, char **argv, struct vopts *o)
{
	static const struct option opts[] = {
		{ "key-file", required_argument, NULL, OPT_KEYFILE },
		{ "key-fd", required_argument, NULL, OPT_KEYFD },
		{ "purpose", required_argument, NULL, OPT_PURPOSE },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *cmd = "vmfile";
	int opt;

	*o = (struct vopts){ .key = { .fd = -1, .name = "--key" } };
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_KEYFILE:
			o->key.file = optarg;
			break;
		case OPT_KEYFD:
			if (cli_parse_int(optarg, &o->key.fd) < 0)
				return cli_usage_error(cmd, "bad --key-fd '%s'", optarg);
			break;
		case OPT_PURPOSE:
			o->purpose = optarg;
			break;
		case OPT_CHUNK:
			if (parse_shift(optarg, &o->shift) < 0)
				return cli_usage_error(cmd, "--chunk-size must be a power of two "
						       "from 4K to 1M, not '%s'", optarg);
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			return cli_usage_error(cmd, "unknown or incomplete option '%s'",
					       argv[optind - 1]);
		}
	}
	for (; optind < argc; optind++) {
		if (o->nargs == 2)
			return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		o->args[o->nargs++] = argv[optind];
	}
	return 0;
}

static int open_in(const char *path)
{
	if (!strcmp(path, "-"))
		return STDIN_FILENO;
	return open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
}

static int do_info(struct vopts *o)
{
	uint8_t hdr[VC_VMFILE_HDR_LEN];
	struct vc_vmfile_info in;
	struct vc_error err = { 0 };
	char salt[2 * VC_VMFILE_SALT_LEN + 1];
	int fd = open_in(o->args[0]);
	ssize_t n;

	if (fd < 0) {
		cli_error("%s: %s", o->args[0], strerror(errno));
		return EXIT_FAIL;
	}
	/* A pipe may hand the header over in pieces. */
	n = 0;
	while ((size_t)n < sizeof hdr) {
		ssize_t got = read(fd, hdr + n, sizeof hdr - (size_t)n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += got;
	}
	if (fd != STDIN_FILENO)
		close(fd);
	if (n != (ssize_t)sizeof hdr) {
		cli_error("%s: shorter than a VM file header", o->args[0]);
		return EXIT_FAIL;
	}
	if (vc_vmfile_header_parse(hdr, &in, &err) < 0) {
		cli_error("%s: %s", o->args[0], vc_error_msg(&err));
		return EXIT_FAIL;
	}
	vc_hex_encode(in.salt, sizeof in.salt, salt);
	if (o->json) {
		json_t *j = json_pack("{s:i,s:I,s:s,s:s}", "version", 1, "chunk_size",
				      (json_int_t)in.chunk_size, "purpose", in.purpose, "salt",
				      salt);
		char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;

		if (s)
			printf("%s\n", s);
		free(s);
		json_decref(j);
		return s ? EXIT_OK : EXIT_FAIL;
	}
	printf("version:    1\nchunk size: %zu\npurpose:    %s\nsalt:       %s\n",
	       in.chunk_size, in.purpose, salt);
	return EXIT_OK;
}

/* seal or open: IN to a new OUT (or stdout for open). */
static int do_convert(struct vopts *o, bool seal)
{
	const char *cmd = "vmfile";
	struct vc_secret *key = NULL;
	struct vc_error err = { 0 };
	bool to_stdout = !seal && !strcmp(o->args[1], "-");
	int in = -1, out = -1, ret;

	if (!cli_key_given(&o->key))
		return cli_usage_error(cmd, "give the key with --key-file or --key-fd");
	if (!o->purpose)
		return cli_usage_error(cmd, "give --purpose");
	if (!seal && o->shift)
		return cli_usage_error(cmd, "--chunk-size is read from the file");
	if (cli_key_load(&o->key, &key, &err) < 0)
		return cli_fail(&err);
	in = open_in(o->args[0]);
	if (in < 0) {
		vc_secret_free(key);
		cli_error("%s: %s", o->args[0], strerror(errno));
		return EXIT_FAIL;
	}
	out = to_stdout ? STDOUT_FILENO
			: open(o->args[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY,
			       0600);
	if (out < 0) {
		cli_error("%s: %s", o->args[1], strerror(errno));
		ret = EXIT_FAIL;
	} else {
		ret = seal ? vc_vmfile_seal_fd(key, o->purpose, o->shift, in, out, NULL, &err)
			   : vc_vmfile_open_fd(key, o->purpose, in, out, NULL, &err);
		if (ret == 0 && !to_stdout && fsync(out) < 0)
			ret = vc_error_errno(&err, errno, "%s", o->args[1]);
		if (!to_stdout && close(out) < 0 && ret == 0)
			ret = vc_error_errno(&err, errno, "%s", o->args[1]);
		if (ret < 0) {
			/* Never leave half a file, nor the plaintext of the
			 * chunks that came before a bad one. */
			if (!to_stdout)
				unlink(o->args[1]);
			cli_error("%s: %s", o->args[0], vc_error_msg(&err));
			ret = EXIT_FAIL;
		}
	}
	if (in != STDIN_FILENO)
		close(in);
	vc_secret_free(key);
	return ret;
}

int cmd_vmfile(int argc, char **argv)
{
	struct vopts o;
	const char *sub;
	int r;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		if (argc < 2) {
			cli_error("vmfile: missing subcommand (seal, open, info)");
			return EXIT_USAGE;
		}
		usage(stdout);
		return EXIT_OK;
	}
	sub = argv[1];
	if (strcmp(sub, "seal") && strcmp(sub, "open") && strcmp(sub, "info")) {
		cli_error("vmfile: unknown subcommand '%s' (seal, open, info)", sub);
		return EXIT_USAGE;
	}
	r = parse(argc - 1, argv + 1, &o);
	if (r < 0)
		return r == -1 ? EXIT_OK : r;
	if (r > 0)
		return r;
	if (!strcmp(sub, "info")) {
		if (o.nargs != 1)
			return cli_usage_error("vmfile", "info takes one file");
		if (o.purpose || cli_key_given(&o.key) || o.shift)
			return cli_usage_error("vmfile", "info takes no key, purpose or "
					       "chunk size");
		return do_info(&o);
	}
	if (o.nargs != 2)
		return cli_usage_error("vmfile", "%s takes IN and OUT", sub);
	if (o.json)
		return cli_usage_error("vmfile", "--json is for info");
	return do_convert(&o, !strcmp(sub, "seal"));
}
