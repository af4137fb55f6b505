/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt provider: key providers of the manager (KMIP clusters and the
 * native provider), their health, backups and keys. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>

#include "mgr_client.h"
#include "vc_encode.h"

#define PEM_MAX (60 * 1024)   /* the whole request is at most 64 KiB */
#define ENVELOPE_MAX 4096     /* a backup is 196 bytes (docs/KEYS.md) */
#define ENVELOPE_B64_MAX ((ENVELOPE_MAX + 2) / 3 * 4 + 1)

/* ---- list, show ------------------------------------------------------------ */

static size_t count_healthy(const json_t *health)
{
	size_t i, n = 0;
	json_t *h;

	json_array_foreach(health, i, h)
		n += mgr_bool(h, "healthy");
	return n;
}

static int print_providers(struct mgr *m, const json_t *j)
{
	char servers[1024], healthy[32];
	struct mgr_table t;
	json_t *p, *h;
	size_t i;

	mgr_table_init(&t, 5);
	mgr_table_row(&t, "NAME", "KIND", "DEFAULT", "HEALTHY", "SERVERS");
	json_array_foreach(json_object_get(j, "providers"), i, p) {
		h = json_object_get(p, "health");
		snprintf(healthy, sizeof healthy, "%zu/%zu", count_healthy(h), json_array_size(h));
		mgr_table_row(&t, mgr_str(p, "name"), mgr_str(p, "kind"),
			      mgr_yesno(mgr_bool(p, "default")),
			      json_array_size(h) ? healthy : "-",
			      mgr_join(json_object_get(p, "servers"), servers, sizeof servers));
	}
	return mgr_table_print(m, &t);
}

static int print_health(struct mgr *m, const json_t *health)
{
	char ok[32], bad[32], latency[32];
	struct mgr_table t;
	json_t *h;
	size_t i;

	mgr_table_init(&t, 7);
	mgr_table_row(&t, "SERVER", "HEALTHY", "IN USE", "LATENCY", "LAST SUCCESS",
		      "LAST FAILURE", "LAST ERROR");
	json_array_foreach(health, i, h) {
		snprintf(latency, sizeof latency, "%.1f ms",
			 json_number_value(json_object_get(h, "latency_ms")));
		mgr_table_row(&t, mgr_str(h, "server"), mgr_yesno(mgr_bool(h, "healthy")),
			      mgr_yesno(mgr_bool(h, "in_use")), latency,
			      mgr_time(mgr_int(h, "last_success"), ok, sizeof ok),
			      mgr_time(mgr_int(h, "last_failure"), bad, sizeof bad),
			      mgr_str(h, "last_error"));
	}
	return mgr_table_print(m, &t);
}

static void print_native(const json_t *n)
{
	char when[32];

	mgr_kv("provider id", "%s", mgr_str(n, "provider_id"));
	mgr_kv("created", "%s", mgr_time(mgr_int(n, "created"), when, sizeof when));
	mgr_kv("backup taken", "%s", mgr_yesno(mgr_bool(n, "backup_taken")));
	mgr_kv("backup time", "%s", mgr_time(mgr_int(n, "backup_time"), when, sizeof when));
}

static int print_provider(struct mgr *m, const json_t *j)
{
	const json_t *health = json_object_get(j, "health");
	char servers[2048];

	mgr_kv("name", "%s", mgr_str(j, "name"));
	mgr_kv("kind", "%s", mgr_str(j, "kind"));
	mgr_kv("default", "%s", mgr_yesno(mgr_bool(j, "default")));
	if (json_is_object(json_object_get(j, "native")))
		print_native(json_object_get(j, "native"));
	if (!json_array_size(json_object_get(j, "servers")))
		return 0;
	mgr_kv("servers", "%s", mgr_join(json_object_get(j, "servers"), servers, sizeof servers));
	mgr_kv("server name", "%s", *mgr_str(j, "server_name") ? mgr_str(j, "server_name") : "-");
	if (!json_array_size(health))
		return 0;
	putchar('\n');
	return print_health(m, health);
}

static int provider_list(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/key-providers", print_providers);
}

static int provider_show(struct mgr *m, const struct margs *a)
{
	return mgr_show_named(m, "key-providers", a->arg[0], print_provider);
}

/* ---- add ------------------------------------------------------------------- */

/* The PEM files, read and checked before anything is sent; the key file
 * must be private. Each copy is wiped: the secret here, the JSON string
 * when the body is freed (wiping allocator). */
static int add_pems(struct mgr *m, const struct margs *a, json_t *body)
{
	static const struct {
		enum mgr_opt opt;
		const char *key, *option;
	} pems[] = {
		{ O_CA_FILE, "ca_pem", "--ca-file" },
		{ O_CERT_FILE, "client_cert_pem", "--cert-file" },
		{ O_KEY_FILE, "client_key_pem", "--key-file" },
	};

	for (size_t i = 0; i < VC_ARRAY_SIZE(pems); i++) {
		VC_CLEANUP_SECRET struct vc_secret *pem = NULL;
		int r = mgr_read_file(m, mgr_opt(a, pems[i].opt), pems[i].opt == O_KEY_FILE,
				      PEM_MAX, &pem);

		if (r < 0)
			return r;
		if (json_object_set_new(body, pems[i].key, json_stringn(MGR_SECRET(pem))) < 0)
			return mgr_error(m, EXIT_FAIL, "%s: not a PEM text file", pems[i].option);
	}
	return 0;
}

static json_t *kmip_body(const struct margs *a)
{
	const char *timeout = mgr_opt(a, O_TIMEOUT_MS);
	int ms = 0;

	if (timeout && cli_parse_int(timeout, &ms) < 0)
		return NULL;
	return json_pack("{s:s, s:s, s:o, s:s*, s:o*, s:b}", "name", a->arg[0], "kind", "kmip",
			 "servers", mgr_opt_array(a, O_SERVER, false), "server_name",
			 mgr_opt(a, O_SERVER_NAME), "timeout_ms",
			 timeout ? json_integer(ms) : NULL, "default", mgr_has(a, O_DEFAULT));
}

static int provider_add_kmip(struct mgr *m, const struct margs *a)
{
	char done[MGR_PATH_MAX];
	json_t *body = kmip_body(a);
	int r;

	if (!body)
		return mgr_bad_body(m);
	if ((r = add_pems(m, a, body)) < 0) {
		json_decref(body);
		return r;
	}
	snprintf(done, sizeof done, "added key provider %s", a->arg[0]);
	return mgr_do(m, "POST", "/key-providers", body, done);
}

static const char *kmip_check(const struct margs *a)
{
	if (a->o[O_SERVER].n > 16)
		return "at most 16 --server";
	return NULL;
}

static int add_restore(struct mgr *m, const struct margs *a, json_t *body)
{
	VC_CLEANUP_SECRET struct vc_secret *env = NULL, *pw = NULL;
	const struct mgr_pw_src src = { mgr_opt(a, O_PW_FILE), mgr_opt(a, O_PW_FD),
					"password of the backup" };
	char b64[ENVELOPE_B64_MAX];
	json_t *restore;
	int r;

	if ((r = mgr_read_file(m, mgr_opt(a, O_RESTORE), false, ENVELOPE_MAX, &env)) < 0 ||
	    (r = mgr_connect(m)) < 0 || (r = mgr_password_read(m, &src, false, &pw)) < 0)
		return r;
	vc_base64_encode(vc_secret_data(env), vc_secret_len(env), b64);
	restore = json_pack("{s:s, s:s%}", "backup", b64, "password", MGR_SECRET(pw));
	vc_wipe(b64, sizeof b64);
	if (!restore || json_object_set_new(body, "restore", restore) < 0)
		return mgr_bad_body(m);
	return 0;
}

static int provider_add_native(struct mgr *m, const struct margs *a)
{
	char done[MGR_PATH_MAX];
	json_t *body = json_pack("{s:s, s:s, s:b}", "name", a->arg[0], "kind", "native",
				 "default", mgr_has(a, O_DEFAULT));
	int r = body ? 0 : mgr_bad_body(m);

	if (r == 0 && mgr_has(a, O_RESTORE))
		r = add_restore(m, a, body);
	if (r < 0) {
		json_decref(body);
		return r;
	}
	snprintf(done, sizeof done, "%s native key provider %s",
		 mgr_has(a, O_RESTORE) ? "restored" : "added", a->arg[0]);
	return mgr_do(m, "POST", "/key-providers", body, done);
}

static const char *native_check(const struct margs *a)
{
	bool pw = mgr_has(a, O_PW_FILE) || mgr_has(a, O_PW_FD);

	if (pw && !mgr_has(a, O_RESTORE))
		return "a password goes only with --restore";
	if (mgr_has(a, O_RESTORE) && !pw && !isatty(STDIN_FILENO))
		return "--restore needs --password-file F or --password-fd N";
	return NULL;
}

/* ---- remove, set-default --------------------------------------------------- */

static int provider_remove(struct mgr *m, const struct margs *a)
{
	return mgr_remove_named(m, "key-providers", "key provider", a->arg[0]);
}

static int provider_set_default(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	int r = mgr_path(m, path, sizeof path, "/key-providers/%s/default", a->arg[0]);

	if (r < 0)
		return r;
	snprintf(done, sizeof done, "%s is now the default key provider", a->arg[0]);
	return mgr_do(m, "POST", path, NULL, done);
}

/* ---- check ----------------------------------------------------------------- */

/* The health table whatever the outcome; exit status 1 when the task
 * failed or no server answered (a provider nobody can reach). */
static int check_report(struct mgr *m, const char *name, const json_t *task)
{
	const json_t *result = json_object_get(task, "result");
	const json_t *health = json_is_array(result) ? result : json_object_get(result, "health");
	int r = 0;

	if (m->json)
		mgr_print_json(task);
	else if (json_array_size(health))
		r = print_health(m, health);
	if (r == 0)
		r = mgr_task_result(m, task);
	if (r == 0 && count_healthy(health) == 0)
		r = mgr_error(m, EXIT_FAIL, "no key server of provider %s is healthy", name);
	return r;
}

static int check_wait(struct mgr *m, const char *name, const char *id)
{
	json_t *task;
	int r = mgr_task_wait(m, id, &task);

	if (r == 0)
		r = check_report(m, name, task);
	json_decref(task);
	return r;
}

static int provider_check(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *resp;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/key-providers/%s/check", a->arg[0])) < 0 ||
	    (r = mgr_call(m, "POST", path, NULL, &resp)) < 0)
		return r;
	if (!*mgr_str(resp, "task"))
		r = mgr_error(m, EXIT_FAIL, "the server's answer names no task");
	else if (!mgr_has(a, O_NO_WAIT))
		r = check_wait(m, a->arg[0], mgr_str(resp, "task"));
	else if (m->json)
		mgr_print_json(resp);
	else
		printf("%s\n", mgr_str(resp, "task"));
	json_decref(resp);
	return r;
}

/* ---- backup ---------------------------------------------------------------- */

static int write_backup(struct mgr *m, int fd, const char *path, const json_t *resp)
{
	const char *b64 = mgr_str(resp, "backup");
	uint8_t env[ENVELOPE_MAX];
	size_t len = 0;
	int r;

	if (vc_base64_decode(b64, strlen(b64), env, sizeof env, &len) < 0 || len == 0)
		return mgr_error(m, EXIT_FAIL, "the server's backup is not valid base64");
	r = cli_write_all(fd, env, len, path, &m->err);
	vc_wipe(env, sizeof env);
	if (r == 0 && fsync(fd) < 0)
		r = vc_error_errno(&m->err, errno, "%s: cannot sync", path);
	if (r == 0 && !m->json)
		printf("wrote the backup of key provider %s to %s (%zu bytes); keep it apart from its password\n",
		       mgr_str(resp, "name"), path, len);
	return r;
}

static int backup_call(struct mgr *m, const struct margs *a, int fd)
{
	VC_CLEANUP_SECRET struct vc_secret *pw = NULL;
	const struct mgr_pw_src src = { mgr_opt(a, O_PW_FILE), mgr_opt(a, O_PW_FD),
					"password for the backup" };
	char path[MGR_PATH_MAX];
	json_t *body, *resp;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/key-providers/%s/backup", a->arg[0])) < 0 ||
	    (r = mgr_password_read(m, &src, true, &pw)) < 0)
		return r;
	if (!(body = json_pack("{s:s%}", "password", MGR_SECRET(pw))))
		return mgr_bad_body(m);
	if ((r = mgr_call(m, "POST", path, body, &resp)) < 0)
		return r;
	if (json_object_set_new(resp, "name", json_string(a->arg[0])) == 0 && m->json)
		mgr_print_json(resp);
	r = write_backup(m, fd, mgr_opt(a, O_OUT), resp);
	json_decref(resp);
	return r;
}

/* The file is created first (never over an existing one), so that a
 * refusal comes before the password prompt; removed on any failure. */
static int provider_backup(struct mgr *m, const struct margs *a)
{
	const char *out = mgr_opt(a, O_OUT);
	int fd, r;

	if ((r = mgr_connect(m)) < 0)
		return r;
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return vc_error_errno(&m->err, errno, "%s: cannot create the backup file", out);
	r = backup_call(m, a, fd);
	if (close(fd) < 0 && r == 0)
		r = vc_error_errno(&m->err, errno, "%s: cannot close", out);
	if (r < 0)
		unlink(out);
	return r;
}

/* ---- keys ------------------------------------------------------------------ */

static int provider_create_key(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	json_t *body, *resp;
	int r;

	if ((r = mgr_path(m, path, sizeof path, "/key-providers/%s/keys", a->arg[0])) < 0)
		return r;
	if (!(body = json_pack("{s:s*}", "label", mgr_opt(a, O_LABEL))))
		return mgr_bad_body(m);
	if ((r = mgr_call(m, "POST", path, body, &resp)) < 0)
		return r;
	if (m->json)
		mgr_print_json(resp);
	else
		printf("%s\n", mgr_str(resp, "key_id"));
	json_decref(resp);
	return 0;
}

static int print_key(struct mgr *m, const json_t *j)
{
	(void)m;
	mgr_kv("key id", "%s", mgr_str(j, "key_id"));
	mgr_kv("check value", "%s", mgr_str(j, "check_value"));
	return 0;
}

static int provider_key(struct mgr *m, const struct margs *a)
{
	char path[MGR_PATH_MAX];
	int r = mgr_path(m, path, sizeof path, "/key-providers/%s/keys/%s", a->arg[0], a->arg[1]);

	return r < 0 ? r : mgr_show(m, path, print_key);
}

/* ---- table ----------------------------------------------------------------- */

#define PW_OPTS (OPT(O_PW_FILE) | OPT(O_PW_FD))
#define KMIP_FILES (OPT(O_CA_FILE) | OPT(O_CERT_FILE) | OPT(O_KEY_FILE))

static const struct mgr_sub provider_subs[] = {
	{ "list", 0, 0, 0, 0, provider_list, "", NULL },
	{ "show", 1, 0, 0, 0, provider_show, "NAME", NULL },
	{ "add-kmip", 1,
	  OPT(O_SERVER) | KMIP_FILES | OPT(O_SERVER_NAME) | OPT(O_TIMEOUT_MS) | OPT(O_DEFAULT),
	  OPT(O_SERVER) | KMIP_FILES, 0, provider_add_kmip,
	  "NAME --server HOST:PORT [--server ...] --ca-file F --cert-file F\n"
	  "        --key-file F (0600) [--server-name N] [--timeout-ms N] [--default]",
	  kmip_check },
	{ "add-native", 1, OPT(O_DEFAULT) | OPT(O_RESTORE) | PW_OPTS, 0, 0, provider_add_native,
	  "NAME [--default] [--restore FILE (--password-file F | --password-fd N)]",
	  native_check },
	{ "remove", 1, 0, 0, 0, provider_remove, "NAME", NULL },
	{ "set-default", 1, 0, 0, 0, provider_set_default, "NAME", NULL },
	{ "check", 1, OPT(O_NO_WAIT), 0, 0, provider_check,
	  "NAME [--no-wait]   (exit status 1 if no key server is healthy)", NULL },
	{ "backup", 1, OPT(O_OUT) | PW_OPTS, OPT(O_OUT), OPT(O_PW_FILE), provider_backup,
	  "NAME --out FILE (--password-file F | --password-fd N)   (native only;\n"
	  "        FILE is created 0600 and never overwritten)",
	  NULL },
	{ "create-key", 1, OPT(O_LABEL), 0, 0, provider_create_key,
	  "NAME [--label L]   (prints the new key id)", NULL },
	{ "key", 2, 0, 0, 0, provider_key, "NAME KEY_ID   (key id and check value)", NULL },
};

int cmd_provider(int argc, char **argv)
{
	return mgr_dispatch("provider",
			    "Key providers: KMIP server clusters and the native key provider.",
			    provider_subs, VC_ARRAY_SIZE(provider_subs), argc, argv);
}
