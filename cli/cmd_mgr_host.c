/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt host: add host agents (confirming their thumbprint), list and
 * show them, and switch host encryption mode. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgr_client.h"
#include "vc_encode.h"
#include "vc_json.h"

static int print_hosts(struct mgr *m, const json_t *j)
{
	struct mgr_table t;
	char added[32];
	json_t *h;
	size_t i;

	mgr_table_init(&t, 5);
	mgr_table_row(&t, "ID", "NAME", "ADDRESS", "ENCRYPTION MODE", "ADDED");
	json_array_foreach(json_object_get(j, "hosts"), i, h)
		mgr_table_row(&t, mgr_str(h, "id"), mgr_str(h, "name"), mgr_str(h, "address"),
			      mgr_bool(h, "encryption_mode") ? "on" : "off",
			      mgr_time(mgr_int(h, "added"), added, sizeof added));
	return mgr_table_print(m, &t);
}

static int print_host(struct mgr *m, const json_t *j)
{
	const json_t *agent = json_object_get(j, "agent");
	char buf[1024];

	(void)m;
	mgr_kv("id", "%s", mgr_str(j, "id"));
	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("address", "%s", mgr_str(j, "address"));
	mgr_kv("thumbprint", "%s", mgr_str(j, "thumbprint"));
	mgr_kv("encryption mode", "%s", mgr_bool(j, "encryption_mode") ? "on" : "off");
	mgr_kv("connection", "%s", mgr_str(j, "connection"));
	if (*mgr_str(j, "reason"))
		mgr_kv("reason", "%s", mgr_str(j, "reason"));
	if (agent) {
		json_t *ids = json_array(), *k;
		size_t i;

		json_array_foreach(json_object_get(agent, "keys"), i, k)
			json_array_append_new(ids, json_string(mgr_str(k, "key_id")));
		mgr_kv("agent host id", "%s", mgr_str(agent, "host_id"));
		mgr_kv("cached keys", "%s", mgr_join(ids, buf, sizeof buf));
		json_decref(ids);
	}
	return 0;
}

static int host_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/hosts", print_hosts);
}

static int host_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "hosts", a->arg[0], print_host);
}

/* Ask on the terminal whether the shown thumbprint is the host's. */
static bool confirm(const char *address, const char *tp)
{
	char line[16];

	fprintf(stderr, "host %s presents a certificate with SHA-256 thumbprint\n  %s\n"
		"Is this the certificate of that host? [y/N] ", address, tp);
	fflush(stderr);
	return fgets(line, sizeof line, stdin) && (line[0] == 'y' || line[0] == 'Y');
}

static int host_add(struct mgr *m, const struct margs *a)
{
	const struct mgr_pw_src src = { mgr_opt(a, O_TOKEN_FILE), mgr_opt(a, O_TOKEN_FD),
					"join token" };
	const char *tp = mgr_opt(a, O_HOST_THUMBPRINT), *parent = mgr_opt(a, O_PARENT);
	const char *name = mgr_opt(a, O_NAME) ? mgr_opt(a, O_NAME) : a->arg[0];
	struct vc_secret *tok = NULL;
	char seen[128] = "";
	json_t *body, *out = NULL;
	int r = mgr_connect(m);

	if (r == 0)
		r = mgr_password_read(m, &src, false, &tok);
	for (int round = 0; r == 0 && round < 2; round++) {
		body = json_pack("{s:s,s:s%,s:s,s:s,s:s*}", "address", a->arg[0], "join_token",
				 MGR_SECRET(tok), "parent", parent ? parent : "root", "name", name,
				 "thumbprint", tp);
		if (!body) {
			r = mgr_bad_body(m);
			break;
		}
		r = mgr_call(m, "POST", "/hosts", body, &out);
		if (r == 0 || round == 1 || !m->last_error ||
		    strcmp(mgr_str(m->last_error, "code"), "thumbprint_required"))
			break;
		/* The manager shows what the host presents; the administrator
		 * confirms it, as in vSphere. */
		snprintf(seen, sizeof seen, "%s", mgr_str(m->last_error, "thumbprint"));
		if (mgr_has(a, O_YES)) {
			fprintf(stderr, "vmcrypt: accepting thumbprint %s (--yes)\n", seen);
		} else if (!isatty(STDIN_FILENO) || !confirm(a->arg[0], seen)) {
			r = mgr_error(m, EXIT_CONFLICT, "host %s presents certificate SHA-256 %s: confirm it "
				      "with --thumbprint", a->arg[0], seen);
			break;
		}
		tp = seen;
		r = 0;
	}
	vc_secret_free(tok);
	if (r < 0)
		return r;
	if (m->json)
		mgr_print_json(out);
	else
		printf("added host %s (%s) at %s\n", mgr_str(out, "name"), mgr_str(out, "id"),
		       mgr_str(out, "address"));
	json_decref(out);
	return 0;
}

static int host_mode(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	bool on = !strcmp(a->arg[1], "enable");
	json_t *body;

	if (strcmp(a->arg[1], "enable") && strcmp(a->arg[1], "disable"))
		return mgr_error(m, EXIT_USAGE, "encryption-mode takes enable or disable");
	if (mgr_path(m, path, sizeof path, "/hosts/%s/encryption-mode", a->arg[0]) < 0)
		return -1;
	body = json_pack("{s:b}", "enabled", on);
	if (!body)
		return mgr_bad_body(m);
	snprintf(done, sizeof done, "host encryption mode %s on %s", on ? "enabled" : "disabled",
		 a->arg[0]);
	return mgr_do(m, "PUT", path, body, done);
}

/* Write bytes to a new 0600 file (never over an existing one). */
static int write_new(struct mgr *m, const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600), r;

	if (fd < 0)
		return mgr_error(m, EXIT_FAIL, "%s: %s", path, strerror(errno));
	r = cli_write_all(fd, data, len, path, &m->err);
	if (r == 0 && fsync(fd) < 0)
		r = mgr_error(m, EXIT_FAIL, "%s: %s", path, strerror(errno));
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}

static int host_dump(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	const char *b64;
	uint8_t *raw;
	size_t n = 0;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/hosts/%s/dump", a->arg[0])) < 0 ||
	    (r = mgr_call(m, "POST", path, NULL, &resp)) < 0)
		return r;
	b64 = mgr_str(resp, "dump");
	raw = malloc(strlen(b64) + 1);
	if (!raw || vc_base64_decode(b64, strlen(b64), raw, strlen(b64) + 1, &n) < 0)
		r = mgr_error(m, EXIT_FAIL, "the server's dump is not valid base64");
	else
		r = write_new(m, mgr_opt(a, O_OUT), raw, n);
	if (r == 0 && !m->json)
		printf("wrote the encrypted dump %s of host %s to %s (%zu bytes)\n",
		       mgr_str(resp, "file"), a->arg[0], mgr_opt(a, O_OUT), n);
	else if (r == 0)
		mgr_print_json(json_object_get(resp, "file") ? resp : NULL);
	free(raw);
	json_decref(resp);
	return r;
}

static int host_dump_decrypt(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp = NULL;
	struct vc_secret *dump = NULL;
	char *b64;
	char *text;
	int r;

	if ((r = mgr_read_file(m, mgr_opt(a, O_FILE), false, 45000, &dump)) < 0)
		return r;
	b64 = malloc(vc_base64_encoded_len(vc_secret_len(dump)));
	if (!b64) {
		vc_secret_free(dump);
		return mgr_error(m, EXIT_FAIL, "out of memory");
	}
	vc_base64_encode(vc_secret_data(dump), vc_secret_len(dump), b64);
	vc_secret_free(dump);
	if ((r = mgr_path(m, path, sizeof path, "/hosts/%s/dumps/decrypt", a->arg[0])) == 0)
		r = mgr_call(m, "POST", path, json_pack("{s:s}", "dump", b64), &resp);
	free(b64);
	if (r < 0)
		return r;
	text = json_dumps(json_object_get(resp, "state"), JSON_INDENT(2));
	if (!text)
		r = mgr_error(m, EXIT_FAIL, "out of memory");
	else if (mgr_opt(a, O_OUT))
		r = write_new(m, mgr_opt(a, O_OUT), text, strlen(text));
	else
		printf("%s\n", text);
	vc_json_free_dump(text);
	json_decref(resp);
	return r;
}

static const struct mgr_sub host_subs[] = {
	{ "list", 0, 0, 0, 0, host_list, "", NULL },
	{ "show", 1, 0, 0, 0, host_show, "ID   (with the agent's live state)", NULL },
	{ "add", 1, OPT(O_TOKEN_FILE) | OPT(O_TOKEN_FD) | OPT(O_HOST_THUMBPRINT) | OPT(O_PARENT) |
			    OPT(O_NAME) | OPT(O_YES),
	  0, OPT(O_TOKEN_FILE), host_add,
	  "ADDRESS:PORT (--join-token-file F | --join-token-fd N) [--thumbprint SHA256]\n"
	  "        [--parent ID] [--name NAME] [--yes]\n"
	  "        The manager shows the host's certificate thumbprint; confirm it on the\n"
	  "        terminal, or give it with --thumbprint (--yes accepts what is shown:\n"
	  "        only on a network you trust). Default parent: root; name: the address.",
	  NULL },
	{ "encryption-mode", 2, 0, 0, 0, host_mode, "ID enable|disable", NULL },
	{ "dump", 1, OPT(O_OUT), OPT(O_OUT), 0, host_dump,
	  "ID --out FILE   (an encrypted state dump of the agent, Global.Diagnostics)", NULL },
	{ "dump-decrypt", 1, OPT(O_FILE) | OPT(O_OUT), OPT(O_FILE), 0, host_dump_decrypt,
	  "ID --file DUMP [--out FILE]   (opens a dump: Cryptographer.Access on the host)",
	  NULL },
};

int cmd_host(int argc, char **argv)
{
	return mgr_dispatch("host", "Host agents (vmcrypt-hostd).", host_subs,
			    VC_ARRAY_SIZE(host_subs), argc, argv);
}
