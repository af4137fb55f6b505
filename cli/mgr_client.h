/* SPDX-License-Identifier: Apache-2.0 */
/* The CLI's side of the manager API: session file, HTTPS calls, secrets
 * from files, fds and terminals, and the shared command framework. */
#ifndef VC_MGR_CLIENT_H
#define VC_MGR_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli.h"
#include "vc_crypto.h"

/*
 * One command's connection to the manager. Errors: every fallible call
 * returns 0 or a negative code, leaves the message in err and the exit
 * code that goes with it in exit_code (EXIT_FAIL unless the server or the
 * network said more: 401, 403, 404, 409, unreachable).
 */
struct mgr {
	json_t *session;   /* the session file's object, once loaded */
	CURL *curl;
	bool json;         /* --json: print the server's answer as it is */
	bool expired;      /* the session file is good but its time is up */
	bool pinned;       /* trust = the SHA-256 of the server's certificate */
	bool pin_mismatch;
	uint8_t pin[VC_SHA256_LEN];
	char seen[2 * VC_SHA256_LEN + 1]; /* the certificate's SHA-256, on mismatch */
	char curl_msg[CURL_ERROR_SIZE];
	int exit_code;
	struct vc_error err;
	json_t *last_error; /* the "error" object of the last HTTP error, or NULL */
};

/* Once per process, before any JSON value or curl handle exists: wiping
 * allocators for jansson and libcurl (tokens and passwords pass through
 * both), no core dumps. */
int mgr_global_init(struct vc_error *err);

void mgr_init(struct mgr *m, bool json);
void mgr_close(struct mgr *m);
/* Print m's error as one line and return its exit code. */
int mgr_fail(struct mgr *m);
/* Record a failure with the exit code that goes with it; returns -EIO. */
int mgr_error(struct mgr *m, int exit_code, const char *fmt, ...) VC_PRINTF(3, 4);

/* ---- session file ---------------------------------------------------------- */

/* $XDG_CONFIG_HOME/vmcrypt/session.json (default ~/.config/...). */
int mgr_session_path(char *buf, size_t len, struct vc_error *err);
/* Remove the session file; a missing file is fine. */
int mgr_session_remove(struct mgr *m);

/* POST /session with user and password against server (https://HOST:PORT)
 * trusted through ca_file or thumbprint (exactly one), then write the
 * session file. *resp (caller decrefs) is the server's answer. */
int mgr_login(struct mgr *m, const char *server, const char *user,
	      const struct vc_secret *password, const char *ca_file,
	      const char *thumbprint, json_t **resp);

/* Load the session file (refusing one that group or others could read or
 * that is not ours), check it has not expired, and prepare the HTTPS
 * handle. Called by the request functions; commands call it only to look
 * at the session. Exit code 3 on every failure. */
int mgr_connect(struct mgr *m);
const char *mgr_session_str(struct mgr *m, const char *key);

/* ---- requests -------------------------------------------------------------- */

/* One call under /api/v1: method "GET", "POST", "PUT", "PATCH" or
 * "DELETE"; path starts with "/" and is already escaped (mgr_path). body
 * (may be NULL) is consumed. On a 2xx answer *out (may be NULL) gets the
 * parsed JSON body, or NULL for an empty one; the caller decrefs it. */
int mgr_call(struct mgr *m, const char *method, const char *path,
	     json_t *body, json_t **out);
/* GET path and write a 2xx body to fd as it arrives (event exports). */
int mgr_stream(struct mgr *m, const char *path, int fd, const char *fdname);
/* GET path into a new NUL-terminated malloc'd buffer (caller frees). */
int mgr_get_text(struct mgr *m, const char *path, char **out, size_t *len);

/* Format a path into buf: fmt may hold only "%s", and each argument is
 * URL-escaped as one path segment. An error (in m) if it does not fit. */
int mgr_path(struct mgr *m, char *buf, size_t len, const char *fmt, ...);
/* Append "?key=value" (or "&key=value" after the first) to buf when value
 * is not NULL, escaping value. */
int mgr_query(struct mgr *m, char *buf, size_t len, const char *key, const char *value);
#define MGR_PATH_MAX 1024

/* 64 hex digits, ':' between them allowed. -EINVAL otherwise. */
int mgr_parse_thumbprint(const char *s, uint8_t out[VC_SHA256_LEN]);

/* ---- secrets and files ----------------------------------------------------- */

/* A password given as --X-password-file F or --X-password-fd N (file and
 * fd are the option values, or NULL), or when neither is given and stdin
 * is a terminal, typed at prompt with echo off. */
struct mgr_pw_src {
	const char *file;
	const char *fd;
	const char *prompt;
};
/* confirm: a typed password is asked twice (new passwords). */
int mgr_password_read(struct mgr *m, const struct mgr_pw_src *src, bool confirm,
		      struct vc_secret **out);
/* The two arguments json_pack's "s%" takes, for a secret. */
#define MGR_SECRET(s) (const char *)vc_secret_data(s), vc_secret_len(s)

/* Read a whole file of at most max bytes into a new secret. When
 * private_only, the file must be ours and have no group or other bits
 * (it holds a key). */
int mgr_read_file(struct mgr *m, const char *path, bool private_only, size_t max,
		  struct vc_secret **out);

/* ---- JSON and output ------------------------------------------------------- */

/* json_pack gave NULL: out of memory, or a name or password that is not
 * UTF-8. Records the error. */
int mgr_bad_body(struct mgr *m);
static inline const char *mgr_yesno(bool b)
{
	return b ? "yes" : "no";
}

/* A string member, or "" when absent or not a string. */
const char *mgr_str(const json_t *o, const char *key);
json_int_t mgr_int(const json_t *o, const char *key);
bool mgr_bool(const json_t *o, const char *key);
/* Print j indented on stdout (NULL prints nothing). */
void mgr_print_json(const json_t *j);
/* Unix seconds as UTC "2026-11-23 15:04:05"; "-" for 0. */
const char *mgr_time(json_int_t secs, char *buf, size_t len);
/* "label:" padded, then the value, on one line. */
void mgr_kv(const char *label, const char *fmt, ...) VC_PRINTF(2, 3);

/* Plain aligned columns: the first row added is the header. Cells are
 * copied. NULL cells print as "-". */
#define MGR_TABLE_MAX_COLS 12
struct mgr_table {
	size_t ncols, nrows, cap;
	char **cells;
	bool oom;
};
void mgr_table_init(struct mgr_table *t, size_t ncols);
void mgr_table_row(struct mgr_table *t, ...);
/* Print to stdout and free the cells; -ENOMEM if a row could not be kept. */
int mgr_table_print(struct mgr *m, struct mgr_table *t);
/* The strings of a JSON array joined with ", " into buf ("-" if empty). */
const char *mgr_join(const json_t *array, char *buf, size_t len);

/* ---- command framework (cmd_mgr.c) ----------------------------------------- */

enum mgr_opt {
	O_NONE, O_JSON, O_URL, O_USER, O_PW_FILE, O_PW_FD, O_OLD_PW_FILE, O_OLD_PW_FD,
	O_NEW_PW_FILE, O_NEW_PW_FD, O_CA_FILE, O_THUMBPRINT, O_GROUPS, O_GROUP, O_PRIVILEGE,
	O_OBJECT, O_PRINCIPAL, O_ROLE, O_NO_PROPAGATE, O_PARENT, O_KIND, O_NAME, O_SERVER,
	O_CERT_FILE, O_KEY_FILE, O_SERVER_NAME, O_TIMEOUT_MS, O_DEFAULT, O_RESTORE, O_OUT,
	O_LABEL, O_NO_WAIT, O_ENCRYPT, O_MIGRATION, O_PROVIDER, O_FROM, O_TO, O_OPERATION,
	O_FORMAT_LIST, O_FORMAT_EXPORT, O_FILE, O_ADDRESS, O_TOKEN_FILE, O_TOKEN_FD,
	O_HOST_THUMBPRINT, O_YES, O_HOST, O_DISK, O_POLICY, O_DEEP, O_VTPM, O_COUNT
};
#define OPT(o) (1ULL << (o))
#define MGR_MAX_REPEAT 32
#define MGR_MAX_ARGS 2

/* Parsed command line: every value of every option, in order. */
struct margs {
	struct {
		const char *v[MGR_MAX_REPEAT];
		size_t n;
	} o[O_COUNT];
	const char *arg[MGR_MAX_ARGS];
};

/* The (last) value of an option, or NULL. */
const char *mgr_opt(const struct margs *a, enum mgr_opt o);
bool mgr_has(const struct margs *a, enum mgr_opt o);

/*
 * One subcommand. name NULL: the command has no subcommand word (login).
 * opts: the options it accepts (--json and --help always); req: those it
 * requires; need: options of which it or its partner (a --X-file / --X-fd
 * pair, --ca-file / --thumbprint) must be given, a password pair being
 * also satisfied by a terminal on stdin. check: further usage checks, a
 * message or NULL.
 */
struct mgr_sub {
	const char *name;
	int nargs;
	uint64_t opts, req, need;
	int (*run)(struct mgr *m, const struct margs *a);
	const char *usage;
	const char *(*check)(const struct margs *a);
};

/* Parse argv (argv[0] the command name) against subs and run the chosen
 * one. Returns the process exit code. */
int mgr_dispatch(const char *cmd, const char *summary, const struct mgr_sub *subs,
		 size_t nsubs, int argc, char **argv);

/* One call whose answer is printed under --json; otherwise print done
 * (a line such as "removed user bob"). */
int mgr_do(struct mgr *m, const char *method, const char *path, json_t *body,
	   const char *done);
/* GET path and print the answer: as JSON under --json, else with print. */
int mgr_show(struct mgr *m, const char *path, int (*print)(struct mgr *m, const json_t *j));

/* Every value of option o as a JSON array of strings; split: values are
 * also split at commas. NULL when out of memory or not UTF-8. */
json_t *mgr_opt_array(const struct margs *a, enum mgr_opt o, bool split);

/* DELETE /coll/name, printing "removed <what> <name>". */
int mgr_remove_named(struct mgr *m, const char *coll, const char *what, const char *name);
/* GET /coll/name, printed as mgr_show does. */
int mgr_show_named(struct mgr *m, const char *coll, const char *name,
		   int (*print)(struct mgr *m, const json_t *j));

/* Poll task id every 100 ms until it ends, with a progress bar on a
 * terminal. *task gets its last state (caller decrefs). */
int mgr_task_wait(struct mgr *m, const char *id, json_t **task);
/* An error (exit 1, the task's message) if task ended in error. */
int mgr_task_result(struct mgr *m, const json_t *task);

#endif
