/* SPDX-License-Identifier: Apache-2.0 */
/* The manager commands' framework (options, dispatch, task polling) and
 * the session commands: login, logout, whoami, passwd. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <time.h>

#include "mgr_client.h"

/* ---- options --------------------------------------------------------------- */

enum { F_REPEAT = 1, F_INT = 2, F_FD = 4, F_PW = 8 };

static const struct optdef {
	const char *name;
	int has_arg;
	unsigned flags;
	enum mgr_opt partner; /* the other half of an either-or pair */
	const char *choices;  /* "a|b|c" */
} defs[O_COUNT] = {
	[O_JSON] = { "json", no_argument, 0, O_NONE, NULL },
	[O_URL] = { "server", required_argument, 0, O_NONE, NULL },
	[O_USER] = { "user", required_argument, 0, O_NONE, NULL },
	[O_PW_FILE] = { "password-file", required_argument, F_PW, O_PW_FD, NULL },
	[O_PW_FD] = { "password-fd", required_argument, F_INT | F_FD, O_PW_FILE, NULL },
	[O_OLD_PW_FILE] = { "old-password-file", required_argument, F_PW, O_OLD_PW_FD, NULL },
	[O_OLD_PW_FD] = { "old-password-fd", required_argument, F_INT | F_FD, O_OLD_PW_FILE, NULL },
	[O_NEW_PW_FILE] = { "new-password-file", required_argument, F_PW, O_NEW_PW_FD, NULL },
	[O_NEW_PW_FD] = { "new-password-fd", required_argument, F_INT | F_FD, O_NEW_PW_FILE, NULL },
	[O_CA_FILE] = { "ca-file", required_argument, 0, O_THUMBPRINT, NULL },
	[O_THUMBPRINT] = { "thumbprint", required_argument, 0, O_CA_FILE, NULL },
	[O_GROUPS] = { "group", required_argument, F_REPEAT, O_NONE, NULL },
	[O_GROUP] = { "group", no_argument, 0, O_NONE, NULL },
	[O_PRIVILEGE] = { "privilege", required_argument, F_REPEAT, O_NONE, NULL },
	[O_OBJECT] = { "object", required_argument, 0, O_NONE, NULL },
	[O_PRINCIPAL] = { "principal", required_argument, 0, O_NONE, NULL },
	[O_ROLE] = { "role", required_argument, 0, O_NONE, NULL },
	[O_NO_PROPAGATE] = { "no-propagate", no_argument, 0, O_NONE, NULL },
	[O_PARENT] = { "parent", required_argument, 0, O_NONE, NULL },
	[O_KIND] = { "kind", required_argument, 0, O_NONE, "folder|cluster|host|vm" },
	[O_NAME] = { "name", required_argument, 0, O_NONE, NULL },
	[O_SERVER] = { "server", required_argument, F_REPEAT, O_NONE, NULL },
	[O_CERT_FILE] = { "cert-file", required_argument, 0, O_NONE, NULL },
	[O_KEY_FILE] = { "key-file", required_argument, 0, O_NONE, NULL },
	[O_SERVER_NAME] = { "server-name", required_argument, 0, O_NONE, NULL },
	[O_TIMEOUT_MS] = { "timeout-ms", required_argument, F_INT, O_NONE, NULL },
	[O_DEFAULT] = { "default", no_argument, 0, O_NONE, NULL },
	[O_RESTORE] = { "restore", required_argument, 0, O_NONE, NULL },
	[O_OUT] = { "out", required_argument, 0, O_NONE, NULL },
	[O_LABEL] = { "label", required_argument, 0, O_NONE, NULL },
	[O_NO_WAIT] = { "no-wait", no_argument, 0, O_NONE, NULL },
	[O_ENCRYPT] = { "encrypt", required_argument, 0, O_NONE, "yes|no" },
	[O_MIGRATION] = { "migration", required_argument, 0, O_NONE,
			  "disabled|opportunistic|required" },
	[O_PROVIDER] = { "provider", required_argument, 0, O_NONE, NULL },
	[O_FROM] = { "from", required_argument, 0, O_NONE, NULL },
	[O_TO] = { "to", required_argument, 0, O_NONE, NULL },
	[O_OPERATION] = { "operation", required_argument, 0, O_NONE, NULL },
	[O_FORMAT_LIST] = { "format", required_argument, 0, O_NONE, "table|json|jsonl|csv" },
	[O_FORMAT_EXPORT] = { "format", required_argument, 0, O_NONE, "jsonl|csv" },
	[O_FILE] = { "file", required_argument, 0, O_NONE, NULL },
	[O_ADDRESS] = { "address", required_argument, 0, O_NONE, NULL },
	[O_TOKEN_FILE] = { "join-token-file", required_argument, F_PW, O_TOKEN_FD, NULL },
	[O_TOKEN_FD] = { "join-token-fd", required_argument, F_INT | F_FD, O_TOKEN_FILE, NULL },
	[O_HOST_THUMBPRINT] = { "thumbprint", required_argument, 0, O_NONE, NULL },
	[O_YES] = { "yes", no_argument, 0, O_NONE, NULL },
	[O_HOST] = { "host", required_argument, 0, O_NONE, NULL },
	[O_DISK] = { "disk", required_argument, F_REPEAT, O_NONE, NULL },
	[O_POLICY] = { "policy", required_argument, 0, O_NONE, NULL },
	[O_DEEP] = { "deep", no_argument, 0, O_NONE, NULL },
	[O_VTPM] = { "vtpm", no_argument, 0, O_NONE, NULL },
};

/* getopt values: past every character option. */
#define OPT_VAL 1000

const char *mgr_opt(const struct margs *a, enum mgr_opt o)
{
	return a->o[o].n ? a->o[o].v[a->o[o].n - 1] : NULL;
}

bool mgr_has(const struct margs *a, enum mgr_opt o)
{
	return a->o[o].n > 0;
}

static bool is_choice(const char *choices, const char *v)
{
	size_t len = strlen(v);

	for (const char *p = choices; *p;) {
		size_t n = strcspn(p, "|");

		if (n == len && !strncmp(p, v, n))
			return true;
		p += n + (p[n] == '|');
	}
	return false;
}

static int store(const char *cmd, enum mgr_opt o, const char *val, struct margs *a)
{
	const struct optdef *d = &defs[o];
	int n = -1;

	if (d->has_arg == no_argument) {
		a->o[o].n = 1;
		a->o[o].v[0] = "";
		return 0;
	}
	if (a->o[o].n && !(d->flags & F_REPEAT))
		return cli_usage_error(cmd, "--%s given twice", d->name);
	if (a->o[o].n == MGR_MAX_REPEAT)
		return cli_usage_error(cmd, "--%s given more than %d times", d->name,
				       MGR_MAX_REPEAT);
	if (d->choices && !is_choice(d->choices, val))
		return cli_usage_error(cmd, "--%s must be %s, not '%s'", d->name, d->choices, val);
	if ((d->flags & F_INT) && cli_parse_int(val, &n) < 0)
		return cli_usage_error(cmd, "--%s needs a number, not '%s'", d->name, val);
	if ((d->flags & F_FD) && fcntl(n, F_GETFD) < 0)
		return cli_usage_error(cmd, "--%s %d is not an open file descriptor", d->name, n);
	a->o[o].v[a->o[o].n++] = val;
	return 0;
}

static void build_longopts(uint64_t mask, struct option *lo)
{
	size_t n = 0;

	for (int o = O_NONE + 1; o < O_COUNT; o++)
		if (mask & OPT(o))
			lo[n++] = (struct option){ defs[o].name, defs[o].has_arg, NULL, OPT_VAL + o };
	lo[n++] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n] = (struct option){ NULL, 0, NULL, 0 };
}

static int parse(const char *cmd, const struct mgr_sub *s, int argc, char **argv,
		 struct margs *a)
{
	struct option lo[O_COUNT + 2];
	int opt, r, nargs = 0;

	memset(a, 0, sizeof *a);
	build_longopts(s->opts | OPT(O_JSON), lo);
	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (opt == 'h')
			continue;
		if (opt < OPT_VAL)
			return cli_usage_error(cmd, "unknown option or missing value in '%s'",
					       argv[optind - 1]);
		if ((r = store(cmd, (enum mgr_opt)(opt - OPT_VAL), optarg, a)) != 0)
			return r;
	}
	for (; optind < argc; optind++) {
		if (nargs == s->nargs)
			return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
		a->arg[nargs++] = argv[optind];
	}
	if (nargs < s->nargs)
		return cli_usage_error(cmd, "missing argument; usage: vmcrypt %s %s", cmd, s->usage);
	return 0;
}

/* Either this option or its partner; a password pair is also satisfied
 * by a terminal to prompt on. */
static int check_need(const char *cmd, enum mgr_opt o, const struct margs *a)
{
	const struct optdef *d = &defs[o];

	if (mgr_has(a, o) || (d->partner && mgr_has(a, d->partner)))
		return 0;
	if ((d->flags & F_PW) && isatty(STDIN_FILENO))
		return 0;
	if (!d->partner)
		return cli_usage_error(cmd, "--%s is required", d->name);
	return cli_usage_error(cmd, "--%s or --%s is required", d->name, defs[d->partner].name);
}

static int validate(const char *cmd, const struct mgr_sub *s, const struct margs *a)
{
	const char *msg;
	int r;

	for (int o = O_NONE + 1; o < O_COUNT; o++) {
		enum mgr_opt p = defs[o].partner;

		if ((s->req & OPT(o)) && !mgr_has(a, o))
			return cli_usage_error(cmd, "--%s is required", defs[o].name);
		if ((s->need & OPT(o)) && (r = check_need(cmd, o, a)) != 0)
			return r;
		if (p && o < (int)p && mgr_has(a, o) && mgr_has(a, p))
			return cli_usage_error(cmd, "--%s and --%s exclude each other",
					       defs[o].name, defs[p].name);
	}
	if (s->check && (msg = s->check(a)))
		return cli_usage_error(cmd, "%s", msg);
	return 0;
}

/* ---- dispatch -------------------------------------------------------------- */

static void usage(const char *cmd, const char *summary, const struct mgr_sub *subs,
		  size_t nsubs)
{
	printf("%s\n\nusage:\n", summary);
	for (size_t i = 0; i < nsubs; i++)
		printf("  vmcrypt %s%s%s%s%s\n", cmd, subs[i].name ? " " : "",
		       subs[i].name ? subs[i].name : "", *subs[i].usage ? " " : "", subs[i].usage);
	printf("\nEvery command also takes --json (print the manager's JSON answer).\n"
	       "Exit status: 0 done, 1 failed, 2 usage error, 3 not logged in or session\n"
	       "expired, 4 permission denied, 5 not found, 6 conflict, 7 cannot reach the\n"
	       "manager. See docs/vmcrypt-cli.md.\n");
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

static const struct mgr_sub *find_sub(const char *cmd, const struct mgr_sub *subs,
				      size_t nsubs, const char *word)
{
	char names[256] = "";

	if (!subs[0].name)
		return &subs[0];
	for (size_t i = 0; word && i < nsubs; i++)
		if (!strcmp(word, subs[i].name))
			return &subs[i];
	for (size_t i = 0; i < nsubs; i++)
		snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
			 i ? ", " : "", subs[i].name);
	if (word)
		cli_usage_error(cmd, "unknown subcommand '%s' (one of %s)", word, names);
	else
		cli_usage_error(cmd, "missing subcommand (one of %s)", names);
	return NULL;
}

static int run(const struct mgr_sub *s, const struct margs *a)
{
	struct vc_error err = { 0 };
	struct mgr m;
	int r;

	if (mgr_global_init(&err) < 0)
		return cli_fail(&err);
	mgr_init(&m, mgr_has(a, O_JSON));
	r = s->run(&m, a) < 0 ? mgr_fail(&m) : EXIT_OK;
	mgr_close(&m);
	return r;
}

int mgr_dispatch(const char *cmd, const char *summary, const struct mgr_sub *subs,
		 size_t nsubs, int argc, char **argv)
{
	const struct mgr_sub *s;
	struct margs a;
	char what[64];
	int r;

	if (wants_help(argc, argv)) {
		usage(cmd, summary, subs, nsubs);
		return EXIT_OK;
	}
	if (!(s = find_sub(cmd, subs, nsubs, argc > 1 ? argv[1] : NULL)))
		return EXIT_USAGE;
	/* getopt sees the subcommand word (or the command) as argv[0]. */
	if (s->name) {
		argc--;
		argv++;
	}
	/* "user add": messages and "see 'vmcrypt user add --help'" */
	snprintf(what, sizeof what, "%s%s%s", cmd, s->name ? " " : "", s->name ? s->name : "");
	if ((r = parse(what, s, argc, argv, &a)) != 0 || (r = validate(what, s, &a)) != 0)
		return r;
	return run(s, &a);
}

/* ---- helpers for the commands ---------------------------------------------- */

int mgr_do(struct mgr *m, const char *method, const char *path, json_t *body,
	   const char *done)
{
	json_t *resp;
	int r = mgr_call(m, method, path, body, &resp);

	if (r == 0 && m->json)
		mgr_print_json(resp);
	else if (r == 0)
		printf("%s\n", done);
	json_decref(resp);
	return r;
}

int mgr_show(struct mgr *m, const char *path, int (*print)(struct mgr *m, const json_t *j))
{
	json_t *resp;
	int r = mgr_call(m, "GET", path, NULL, &resp);

	if (r == 0 && m->json)
		mgr_print_json(resp);
	else if (r == 0)
		r = print(m, resp);
	json_decref(resp);
	return r;
}

int mgr_remove_named(struct mgr *m, const char *coll, const char *what, const char *name)
{
	char path[MGR_PATH_MAX], done[MGR_PATH_MAX];
	int r = mgr_path(m, path, sizeof path, "/%s/%s", coll, name);

	if (r < 0)
		return r;
	snprintf(done, sizeof done, "removed %s %s", what, name);
	return mgr_do(m, "DELETE", path, NULL, done);
}

int mgr_show_named(struct mgr *m, const char *coll, const char *name,
		      int (*print)(struct mgr *m, const json_t *j))
{
	char path[MGR_PATH_MAX];
	int r = mgr_path(m, path, sizeof path, "/%s/%s", coll, name);

	return r < 0 ? r : mgr_show(m, path, print);
}

static bool task_done(const json_t *task)
{
	const char *state = mgr_str(task, "state");

	return !strcmp(state, "success") || !strcmp(state, "error");
}

int mgr_task_wait(struct mgr *m, const char *id, json_t **task)
{
	const struct timespec tick = { 0, 100 * 1000 * 1000 };
	char path[MGR_PATH_MAX];
	struct cli_progress prog;
	int r;

	*task = NULL;
	if ((r = mgr_path(m, path, sizeof path, "/tasks/%s", id)) < 0)
		return r;
	cli_progress_init(&prog, -1, "task", 100);
	prog.percent_only = true;
	while ((r = mgr_call(m, "GET", path, NULL, task)) == 0 && !task_done(*task)) {
		cli_progress_update(&prog, (uint64_t)mgr_int(*task, "progress"));
		json_decref(*task);
		*task = NULL;
		nanosleep(&tick, NULL);
	}
	if (r == 0)
		cli_progress_done(&prog);
	return r;
}

int mgr_task_result(struct mgr *m, const json_t *task)
{
	if (strcmp(mgr_str(task, "state"), "error"))
		return 0;
	return mgr_error(m, EXIT_FAIL, "task %s failed: %s", mgr_str(task, "id"),
			 mgr_str(task, "error"));
}

json_t *mgr_opt_array(const struct margs *a, enum mgr_opt o, bool split)
{
	json_t *arr = json_array();

	for (size_t i = 0; arr && i < a->o[o].n; i++) {
		const char *p = a->o[o].v[i];

		do {
			size_t n = split ? strcspn(p, ",") : strlen(p);

			if (n && json_array_append_new(arr, json_stringn(p, n)) < 0) {
				json_decref(arr);
				return NULL;
			}
			p += n + (p[n] == ',');
		} while (*p);
	}
	return arr;
}

/* ---- login ----------------------------------------------------------------- */

static const char *login_check(const struct margs *a)
{
	const char *url = mgr_opt(a, O_URL), *tp = mgr_opt(a, O_THUMBPRINT);
	uint8_t pin[VC_SHA256_LEN];

	if (strncmp(url, "https://", 8) || !url[8])
		return "--server must be https://HOST:PORT";
	if (tp && mgr_parse_thumbprint(tp, pin) < 0)
		return "--thumbprint must be 64 hex digits (a SHA-256; ':' between bytes allowed)";
	return NULL;
}

static void print_login(struct mgr *m, const json_t *resp)
{
	char when[32];

	printf("logged in to %s as %s (session expires %s)\n", mgr_session_str(m, "server"),
	       mgr_session_str(m, "user"), mgr_time(mgr_int(resp, "expires"), when, sizeof when));
	if (mgr_bool(resp, "password_change_required"))
		printf("the password is a one-time password: change it with 'vmcrypt passwd'\n");
}

static int run_login(struct mgr *m, const struct margs *a)
{
	VC_CLEANUP_SECRET struct vc_secret *pw = NULL;
	char prompt[512];
	struct mgr_pw_src src = { mgr_opt(a, O_PW_FILE), mgr_opt(a, O_PW_FD), prompt };
	json_t *resp;
	int r;

	snprintf(prompt, sizeof prompt, "password of %s at %s", mgr_opt(a, O_USER),
		 mgr_opt(a, O_URL));
	if ((r = mgr_password_read(m, &src, false, &pw)) < 0 ||
	    (r = mgr_login(m, mgr_opt(a, O_URL), mgr_opt(a, O_USER), pw, mgr_opt(a, O_CA_FILE),
			   mgr_opt(a, O_THUMBPRINT), &resp)) < 0)
		return r;
	/* The token stays in the session file: never on stdout. */
	json_object_del(resp, "token");
	if (m->json)
		mgr_print_json(resp);
	else
		print_login(m, resp);
	json_decref(resp);
	return 0;
}

/* ---- logout, whoami -------------------------------------------------------- */

static int run_logout(struct mgr *m, const struct margs *a)
{
	int r = mgr_connect(m);

	(void)a;
	if (r < 0 && m->expired) {
		if ((r = mgr_session_remove(m)) == 0)
			printf("logged out (the session had expired)\n");
		return r;
	}
	if (r < 0)
		return r;
	r = mgr_call(m, "DELETE", "/session", NULL, NULL);
	/* 401: the server has already forgotten the token. Anything else
	 * (unreachable) leaves a working token: keep it. */
	if (r < 0 && m->exit_code != EXIT_AUTH)
		return r;
	m->exit_code = EXIT_FAIL;
	if ((r = mgr_session_remove(m)) == 0 && !m->json)
		printf("logged out of %s\n", mgr_session_str(m, "server"));
	return r;
}

static int print_whoami(struct mgr *m, const json_t *j)
{
	const json_t *privs = json_object_get(j, "privileges");
	char buf[4096];
	json_t *p;
	size_t i;

	mgr_kv("server", "%s", mgr_session_str(m, "server"));
	mgr_kv("user", "%s", mgr_str(j, "user"));
	mgr_kv("session expires", "%s", mgr_time(mgr_int(j, "expires"), buf, sizeof buf));
	mgr_kv("groups", "%s", mgr_join(json_object_get(j, "groups"), buf, sizeof buf));
	mgr_kv("privileges", "%zu on root", json_array_size(privs));
	json_array_foreach(privs, i, p)
		printf("  %s\n", json_string_value(p) ? json_string_value(p) : "?");
	return 0;
}

static int run_whoami(struct mgr *m, const struct margs *a)
{
	(void)a;
	return mgr_show(m, "/session", print_whoami);
}

/* ---- passwd ---------------------------------------------------------------- */

static int run_passwd(struct mgr *m, const struct margs *a)
{
	VC_CLEANUP_SECRET struct vc_secret *old = NULL, *new = NULL;
	const struct mgr_pw_src old_src = { mgr_opt(a, O_OLD_PW_FILE), mgr_opt(a, O_OLD_PW_FD),
					    "current password" };
	const struct mgr_pw_src new_src = { mgr_opt(a, O_NEW_PW_FILE), mgr_opt(a, O_NEW_PW_FD),
					    "new password" };
	json_t *body;
	int r;

	if ((r = mgr_connect(m)) < 0 || (r = mgr_password_read(m, &old_src, false, &old)) < 0 ||
	    (r = mgr_password_read(m, &new_src, true, &new)) < 0)
		return r;
	body = json_pack("{s:s%, s:s%}", "old_password", MGR_SECRET(old), "new_password",
			 MGR_SECRET(new));
	if (!body)
		return mgr_bad_body(m);
	return mgr_do(m, "POST", "/session/password", body, "password changed");
}

/* ---- tables ---------------------------------------------------------------- */

static const struct mgr_sub login_subs[] = {
	{ NULL, 0, OPT(O_URL) | OPT(O_USER) | OPT(O_PW_FILE) | OPT(O_PW_FD) | OPT(O_CA_FILE) |
		OPT(O_THUMBPRINT), OPT(O_URL) | OPT(O_USER), OPT(O_PW_FILE) | OPT(O_CA_FILE),
	  run_login,
	  "--server https://HOST:PORT --user NAME [--password-file F | --password-fd N]\n"
	  "        (--ca-file F | --thumbprint SHA256)",
	  login_check },
};

static const struct mgr_sub logout_subs[] = {
	{ NULL, 0, 0, 0, 0, run_logout, "", NULL },
};

static const struct mgr_sub whoami_subs[] = {
	{ NULL, 0, 0, 0, 0, run_whoami, "", NULL },
};

static const struct mgr_sub passwd_subs[] = {
	{ NULL, 0, OPT(O_OLD_PW_FILE) | OPT(O_OLD_PW_FD) | OPT(O_NEW_PW_FILE) | OPT(O_NEW_PW_FD),
	  0, OPT(O_OLD_PW_FILE) | OPT(O_NEW_PW_FILE), run_passwd,
	  "[--old-password-file F | --old-password-fd N]\n"
	  "        [--new-password-file F | --new-password-fd N]   (asks on a terminal)",
	  NULL },
};

int cmd_login(int argc, char **argv)
{
	return mgr_dispatch("login", "Log in to a vmcryptd manager and keep the session.",
			    login_subs, VC_ARRAY_SIZE(login_subs), argc, argv);
}

int cmd_logout(int argc, char **argv)
{
	return mgr_dispatch("logout", "End the session and remove the session file.",
			    logout_subs, VC_ARRAY_SIZE(logout_subs), argc, argv);
}

int cmd_whoami(int argc, char **argv)
{
	return mgr_dispatch("whoami", "Show the session's user, groups and privileges.",
			    whoami_subs, VC_ARRAY_SIZE(whoami_subs), argc, argv);
}

int cmd_passwd(int argc, char **argv)
{
	return mgr_dispatch("passwd", "Change your own password.", passwd_subs,
			    VC_ARRAY_SIZE(passwd_subs), argc, argv);
}
