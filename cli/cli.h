/* SPDX-License-Identifier: Apache-2.0 */
/* Shared pieces of the vmcrypt command-line tool. */
#ifndef VC_CLI_H
#define VC_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "vc_error.h"
#include "vc_secmem.h"

/* Exit codes scripts can rely on. */
#define EXIT_OK 0
#define EXIT_FAIL 1
#define EXIT_USAGE 2
/* The manager commands add (docs/vmcrypt-cli.md): */
#define EXIT_AUTH 3        /* not logged in, session expired, login refused (401) */
#define EXIT_DENIED 4      /* permission denied (403) */
#define EXIT_NOT_FOUND 5   /* no such object (404) */
#define EXIT_CONFLICT 6    /* exists, in use, has children (409) */
#define EXIT_UNREACHABLE 7 /* connection, TLS, certificate or thumbprint failed */

/* Print "vmcrypt: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a usage error (one line) and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print the message of err and return EXIT_FAIL. */
int cli_fail(const struct vc_error *err);

/* Write all len bytes to fd (retrying short writes and EINTR); name is
 * for the error message. */
int cli_write_all(int fd, const void *buf, size_t len, const char *name,
		  struct vc_error *err);

/* "1G", "512M", "4096", "2KiB", ... (powers of 1024). -EINVAL or
 * -ERANGE on bad input. */
int cli_parse_size(const char *s, uint64_t *out);
/* A non-negative decimal int (fd numbers). */
int cli_parse_int(const char *s, int *out);
/* 1.5 GiB style, into buf. */
const char *cli_human_size(uint64_t bytes, char *buf, size_t len);

/* A key given as a file or an inherited fd, never as text. */
struct cli_key_opt {
	const char *file;
	int fd; /* -1 when not given */
	const char *name; /* option name for messages: "--kek" */
};
bool cli_key_given(const struct cli_key_opt *k);
/* Load a 32-byte KEK. Returns 0 or a negative code with err set. */
int cli_key_load(const struct cli_key_opt *k, struct vc_secret **out,
		 struct vc_error *err);

/* Progress bar on stderr, drawn only when enabled (a terminal, or
 * --progress), at most ten times a second. */
struct cli_progress {
	bool enabled;
	const char *label;
	uint64_t total;
	bool percent_only;   /* set after init for tasks: no byte counts */
	double start, last;
};
void cli_progress_init(struct cli_progress *p, int mode, const char *label,
		       uint64_t total);
void cli_progress_update(struct cli_progress *p, uint64_t done);
void cli_progress_done(struct cli_progress *p);

/* Subcommands. argv[0] is the subcommand name. */
int cmd_disk(int argc, char **argv);
int cmd_kmip(int argc, char **argv);
int cmd_vmfile(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_vm(int argc, char **argv);
/* Manager commands (cmd_mgr*.c). */
int cmd_login(int argc, char **argv);
int cmd_logout(int argc, char **argv);
int cmd_whoami(int argc, char **argv);
int cmd_passwd(int argc, char **argv);
int cmd_user(int argc, char **argv);
int cmd_privilege(int argc, char **argv);
int cmd_role(int argc, char **argv);
int cmd_permission(int argc, char **argv);
int cmd_inventory(int argc, char **argv);
int cmd_provider(int argc, char **argv);
int cmd_policy(int argc, char **argv);
int cmd_task(int argc, char **argv);
int cmd_events(int argc, char **argv);

#endif
