/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt kmip: talk to KMIP key servers directly (the openssl s_client of
 * KMIP, for administrators checking a key server setup). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "vc_encode.h"
#include "vc_keyprov.h"
#include "vc_kmip_cluster.h"
#include "vc_kmip_defs.h"

struct kopts {
	struct vc_kmip_cluster_cfg cfg;
	const char *name;
	int to_fd, key_fd;
	bool json, compromised, hex, batched;
	char *args[3];
	int nargs;
};

enum {
	O_SERVER = 256, O_CA, O_PIN, O_CERT, O_KEY, O_SNAME, O_TIMEOUT, O_NAME, O_TOFD,
	O_KEYFD, O_JSON, O_COMPROMISED, O_HEX, O_BATCHED,
};

static const struct option kopts_long[] = {
	{ "server", required_argument, NULL, O_SERVER },
	{ "ca", required_argument, NULL, O_CA },
	{ "pin", required_argument, NULL, O_PIN },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "server-name", required_argument, NULL, O_SNAME },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "name", required_argument, NULL, O_NAME },
	{ "to-fd", required_argument, NULL, O_TOFD },
	{ "key-fd", required_argument, NULL, O_KEYFD },
	{ "json", no_argument, NULL, O_JSON },
	{ "compromised", no_argument, NULL, O_COMPROMISED },
	{ "hex", no_argument, NULL, O_HEX },
	{ "batched", no_argument, NULL, O_BATCHED },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct kcmd {
	const char *name;
	int nargs;
	int (*run)(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err);
	const char *usage;
};

static void print_json(json_t *j)
{
	char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;

	if (s)
		puts(s);
	free(s);
	json_decref(j);
}

static int k_versions(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	int v[16][2], major, minor;
	size_t n;
	int r = vc_kmip_discover_versions(c, v, 16, &n, err);

	if (r < 0)
		return r;
	vc_kmip_version(c, &major, &minor);
	if (o->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_sprintf("%d.%d", v[i][0], v[i][1]));
		char neg[32];

		snprintf(neg, sizeof neg, "%d.%d", major, minor);
		print_json(json_pack("{s:o, s:s}", "server_versions", a, "negotiated", neg));
		return 0;
	}
	printf("server supports:");
	for (size_t i = 0; i < n; i++)
		printf(" %d.%d", v[i][0], v[i][1]);
	printf("\nnegotiated: %d.%d\n", major, minor);
	return 0;
}

static int k_query(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	uint32_t ops[64];
	size_t n;
	char *vendor;
	int r = vc_kmip_query(c, &vendor, ops, 64, &n, err);

	if (r < 0)
		return r;
	if (o->json) {
		json_t *a = json_array();

		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_string(vc_kmip_operation_name(ops[i])));
		print_json(json_pack("{s:s?, s:o}", "vendor", vendor, "operations", a));
	} else {
		printf("vendor: %s\noperations:", vendor ? vendor : "(not given)");
		for (size_t i = 0; i < n; i++)
			printf("%s %s", i ? "," : "", vc_kmip_operation_name(ops[i]));
		printf("\n");
	}
	free(vendor);
	return 0;
}

static void print_uid(struct kopts *o, const char *uid)
{
	if (o->json)
		print_json(json_pack("{s:s}", "uid", uid));
	else
		printf("%s\n", uid);
}

static int k_create(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	char *uid;
	int r = vc_kmip_create_aes256(c, o->name, &uid, err);

	if (r < 0)
		return r;
	print_uid(o, uid);
	free(uid);
	return 0;
}

static int k_register(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *key = NULL;
	char *uid, what[32];
	int r;

	snprintf(what, sizeof what, "--key-fd %d", o->key_fd);
	if ((r = vc_secret_read_fd(o->key_fd, 32, what, &key, err)) < 0 ||
	    (r = vc_kmip_register_aes(c, key, o->name, &uid, err)) < 0)
		return r;
	print_uid(o, uid);
	free(uid);
	return 0;
}

/* Write a key to --to-fd, raw or (--hex) as hex and a newline. */
static int write_key(struct kopts *o, const struct vc_secret *key, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *hex = NULL;
	const uint8_t *p = vc_secret_data(key);
	size_t len = vc_secret_len(key);
	int r;

	if (o->hex) {
		if ((r = vc_secret_new(2 * len + 2, &hex, err)) < 0)
			return r;
		vc_hex_encode(p, len, (char *)vc_secret_data(hex));
		vc_secret_data(hex)[2 * len] = '\n';
		p = vc_secret_data(hex);
		len = 2 * len + 1;
	}
	char what[32];

	snprintf(what, sizeof what, "--to-fd %d", o->to_fd);
	return cli_write_all(o->to_fd, p, len, what, err);
}

static int k_get(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *key = NULL;
	int r = vc_kmip_get(c, o->args[0], &key, err);

	if (r < 0)
		return r;
	return write_key(o, key, err);
}

/* create --to-fd: the key-provider path the manager uses (Create and Get
 * batched, then Activate), with the new KEK written to the fd. */
static int create_with_key(struct kopts *o, struct vc_error *err)
{
	VC_CLEANUP_SECRET struct vc_secret *kek = NULL;
	char id[VC_KEYPROV_ID_MAX];
	struct vc_keyprov *p;
	int r = vc_keyprov_new_kmip(&o->cfg, &p, err);

	if (r < 0)
		return r;
	r = vc_keyprov_create_key(p, o->name, id, &kek, err);
	vc_keyprov_free(p);
	if (r == 0)
		r = write_key(o, kek, err);
	if (r == 0)
		print_uid(o, id);
	return r;
}

static int k_locate(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	char *uids[1024];
	size_t n;
	int r = vc_kmip_locate(c, o->name, 0, uids, VC_ARRAY_SIZE(uids), &n, err);
	json_t *a = o->json ? json_array() : NULL;

	if (r < 0) {
		json_decref(a);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		if (a)
			json_array_append_new(a, json_string(uids[i]));
		else
			printf("%s\n", uids[i]);
		free(uids[i]);
	}
	if (a)
		print_json(json_pack("{s:o}", "uids", a));
	return 0;
}

static int k_attributes(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	struct vc_kmip_attrs at;
	int r = vc_kmip_get_attributes(c, o->args[0], &at, err);

	if (r < 0)
		return r;
	if (o->json)
		print_json(json_pack("{s:s, s:s, s:i, s:i, s:i, s:s}", "uid", o->args[0], "name",
				     at.name, "state", (int)at.state, "algorithm",
				     (int)at.algorithm, "length", (int)at.length, "text",
				     at.text ? at.text : ""));
	else
		fputs(at.text ? at.text : "", stdout);
	vc_kmip_attrs_clear(&at);
	return 0;
}

static int k_add_attr(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	return vc_kmip_add_attribute(c, o->args[0], o->args[1], o->args[2], err);
}

static int k_mod_attr(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	return vc_kmip_modify_attribute(c, o->args[0], o->args[1], o->args[2], err);
}

static int k_activate(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	return vc_kmip_activate(c, o->args[0], err);
}

static int k_revoke(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	return vc_kmip_revoke(c, o->args[0], o->compromised, err);
}

static int k_destroy(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	return vc_kmip_destroy(c, o->args[0], err);
}

/* create+get pairs on one connection, timed: the client's throughput. */
static int k_bench(struct kopts *o, struct vc_kmip_conn *c, struct vc_error *err)
{
	struct timespec t0, t1;
	int n, r = 0;
	double secs;

	if (cli_parse_int(o->args[0], &n) < 0 || n <= 0)
		return vc_error_set(err, -EINVAL, "bench needs a positive number of pairs");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n && r == 0; i++) {
		struct vc_secret *key = NULL;
		char *uid = NULL;

		if (o->batched) {
			r = vc_kmip_create_get_aes256(c, NULL, &uid, &key, err);
		} else {
			r = vc_kmip_create_aes256(c, NULL, &uid, err);
			if (r == 0)
				r = vc_kmip_get(c, uid, &key, err);
		}
		vc_secret_free(key);
		free(uid);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (r < 0)
		return r;
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (o->json)
		print_json(json_pack("{s:i, s:f, s:f}", "pairs", n, "seconds", secs,
				     "pairs_per_second", n / secs));
	else
		printf("%d create+get pairs in %.3f s: %.1f pairs/s\n", n, secs, n / secs);
	return 0;
}

static const struct kcmd kcmds[] = {
	{ "discover-versions", 0, k_versions, "discover-versions" },
	{ "query", 0, k_query, "query" },
	{ "create", 0, k_create, "create [--name NAME] [--to-fd N [--hex]]\n"
	  "                              (AES-256, Encrypt|Decrypt; with --to-fd: activated,\n"
	  "                              and the key written to fd N)" },
	{ "register", 0, k_register, "register --key-fd N [--name NAME]" },
	{ "get", 1, k_get, "get UID --to-fd N [--hex]   (the key goes to fd N, never argv)" },
	{ "locate", 0, k_locate, "locate [--name NAME]" },
	{ "attributes", 1, k_attributes, "attributes UID" },
	{ "add-attribute", 3, k_add_attr, "add-attribute UID NAME VALUE" },
	{ "modify-attribute", 3, k_mod_attr, "modify-attribute UID NAME VALUE" },
	{ "activate", 1, k_activate, "activate UID" },
	{ "revoke", 1, k_revoke, "revoke UID [--compromised]" },
	{ "destroy", 1, k_destroy, "destroy UID" },
	{ "bench", 1, k_bench, "bench N [--batched]     (N create+get pairs on one connection;\n"
	  "                              --batched: each pair in one batched request)" },
};

static void kmip_usage(FILE *f)
{
	fprintf(f, "usage: vmcrypt kmip COMMAND SERVER-OPTIONS [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < VC_ARRAY_SIZE(kcmds); i++)
		fprintf(f, "  %s\n", kcmds[i].usage);
	fprintf(f, "  health                      (connect to every server, report each)\n"
		   "\nserver options:\n"
		   "  --server HOST[:PORT]   a key server (repeat for a cluster, tried in order)\n"
		   "  --ca FILE | --pin SHA256  trust: CA bundle, or the server certificate's SHA-256\n"
		   "  --cert FILE --key FILE client certificate and key (key mode 0600)\n"
		   "  --server-name NAME     name or IP to verify (default: the host)\n"
		   "  --timeout MS           connect/handshake/response timeout (default 10000)\n"
		   "  --json                 machine-readable output\n");
}

struct run_arg {
	const struct kcmd *cmd;
	struct kopts *o;
};

static int run_one(struct vc_kmip_conn *c, void *arg, struct vc_error *err)
{
	struct run_arg *a = arg;

	return a->cmd->run(a->o, c, err);
}

/* Discover Versions, printing nothing: is the server there and talking? */
static int probe(struct vc_kmip_conn *c, void *arg, struct vc_error *err)
{
	int v[8][2];
	size_t n;

	(void)arg;
	return vc_kmip_discover_versions(c, v, 8, &n, err);
}

static int kmip_health(struct kopts *o)
{
	struct vc_kmip_health h[VC_KMIP_CLUSTER_MAX];
	json_t *a = o->json ? json_array() : NULL;
	int bad = 0;

	/* One cluster per server, so that each is contacted. */
	for (size_t i = 0; i < o->cfg.nservers; i++) {
		struct vc_kmip_cluster_cfg one = o->cfg;
		struct vc_kmip_cluster *cl;
		struct vc_error err = { 0 };
		int r;

		one.servers[0] = o->cfg.servers[i];
		one.nservers = 1;
		if (vc_kmip_cluster_new(&one, &cl, &err) < 0) {
			json_decref(a);
			return cli_fail(&err);
		}
		r = vc_kmip_cluster_run(cl, probe, NULL, &err);
		vc_kmip_cluster_health(cl, h, 1);
		vc_kmip_cluster_free(cl);
		bad += r < 0;
		if (a)
			json_array_append_new(a, json_pack("{s:s, s:b, s:f, s:s?}", "server",
							   h[0].server, "ok", r == 0,
							   "latency_ms", h[0].latency_ms, "error",
							   r < 0 ? vc_error_msg(&err) : NULL));
		else
			printf("%-28s %s\n", h[0].server, r == 0 ? "ok" : vc_error_msg(&err));
	}
	if (a)
		print_json(a);
	return bad ? EXIT_FAIL : EXIT_OK;
}

int cmd_kmip(int argc, char **argv)
{
	struct vc_error err = { 0 };
	const struct kcmd *cmd = NULL;
	struct vc_kmip_cluster *cl;
	struct kopts o;
	int opt, r;

	if (argc < 2) {
		cli_error("missing kmip command (see 'vmcrypt kmip --help')");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		kmip_usage(stdout);
		return EXIT_OK;
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(kcmds); i++)
		if (!strcmp(argv[1], kcmds[i].name))
			cmd = &kcmds[i];
	if (!cmd && strcmp(argv[1], "health")) {
		cli_error("unknown kmip command '%s' (see 'vmcrypt kmip --help')", argv[1]);
		return EXIT_USAGE;
	}
	memset(&o, 0, sizeof o);
	o.to_fd = o.key_fd = -1;
	optind = 1;
	opterr = 0;
	argc--;
	argv++;
	while ((opt = getopt_long(argc, argv, "h", kopts_long, NULL)) != -1) {
		int n;

		switch (opt) {
		case 'h':
			kmip_usage(stdout);
			return EXIT_OK;
		case O_SERVER:
			if (o.cfg.nservers >= VC_KMIP_CLUSTER_MAX)
				return cli_usage_error("kmip", "at most %d servers", VC_KMIP_CLUSTER_MAX);
			o.cfg.servers[o.cfg.nservers++] = optarg;
			break;
		case O_CA:
			o.cfg.tls.ca_file = optarg;
			break;
		case O_PIN:
			o.cfg.tls.pinned_sha256 = optarg;
			break;
		case O_CERT:
			o.cfg.tls.cert_file = optarg;
			break;
		case O_KEY:
			o.cfg.tls.key_file = optarg;
			break;
		case O_SNAME:
			o.cfg.tls.server_name = optarg;
			break;
		case O_TIMEOUT:
			if (cli_parse_int(optarg, &n) < 0 || n <= 0)
				return cli_usage_error("kmip", "bad --timeout '%s' (milliseconds)", optarg);
			o.cfg.tls.timeout_ms = n;
			break;
		case O_NAME:
			o.name = optarg;
			break;
		case O_TOFD:
		case O_KEYFD:
			if (cli_parse_int(optarg, &n) < 0)
				return cli_usage_error("kmip", "bad file descriptor '%s'", optarg);
			*(opt == O_TOFD ? &o.to_fd : &o.key_fd) = n;
			break;
		case O_JSON:
			o.json = true;
			break;
		case O_COMPROMISED:
			o.compromised = true;
			break;
		case O_HEX:
			o.hex = true;
			break;
		case O_BATCHED:
			o.batched = true;
			break;
		default:
			return cli_usage_error("kmip", "unknown option or missing value in '%s'",
					       argv[optind - 1]);
		}
	}
	for (; optind < argc; optind++) {
		if (!cmd || o.nargs >= cmd->nargs)
			return cli_usage_error("kmip", "unexpected argument '%s'", argv[optind]);
		o.args[o.nargs++] = argv[optind];
	}
	if (cmd && o.nargs < cmd->nargs)
		return cli_usage_error("kmip", "usage: vmcrypt kmip %s", cmd->usage);
	if (o.cfg.nservers == 0)
		return cli_usage_error("kmip", "--server HOST[:PORT] is required");
	if (!o.cfg.tls.cert_file || !o.cfg.tls.key_file)
		return cli_usage_error("kmip", "--cert FILE and --key FILE are required");
	if (!o.cfg.tls.ca_file && !o.cfg.tls.pinned_sha256)
		return cli_usage_error("kmip", "--ca FILE or --pin SHA256 is required");
	if (cmd && cmd->run == k_get && o.to_fd < 0)
		return cli_usage_error("kmip", "get needs --to-fd N: the key is never printed");
	if (cmd && (cmd->run == k_get || (cmd->run == k_create && o.to_fd >= 0)) &&
	    fcntl(o.to_fd, F_GETFD) < 0)
		return cli_usage_error("kmip", "--to-fd %d is not an open file descriptor", o.to_fd);
	if (cmd && cmd->run == k_register && o.key_fd < 0)
		return cli_usage_error("kmip", "register needs --key-fd N");
	if (vc_secmem_harden_process(&err) < 0)
		return cli_fail(&err);
	vc_error_clear(&err);
	/* A server that goes away mid-write must be an error, not a signal
	 * that kills the process before it can try the next server. */
	signal(SIGPIPE, SIG_IGN);
	o.cfg.name = "kmip";
	if (!cmd)
		return kmip_health(&o);
	if (cmd->run == k_create && o.to_fd >= 0)
		return create_with_key(&o, &err) < 0 ? cli_fail(&err) : EXIT_OK;
	if (vc_kmip_cluster_new(&o.cfg, &cl, &err) < 0)
		return cli_fail(&err);
	r = vc_kmip_cluster_run(cl, run_one, &(struct run_arg){ cmd, &o }, &err);
	vc_kmip_cluster_free(cl);
	if (r < 0)
		return cli_fail(&err);
	return EXIT_OK;
}
