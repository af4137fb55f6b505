/* SPDX-License-Identifier: Apache-2.0 */
/* vmcrypt: the command-line tool; dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "vc_log.h"

#ifndef VMCRYPT_VERSION
#define VMCRYPT_VERSION "unknown"
#endif

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
} commands[] = {
	{ "disk", cmd_disk, "encrypted virtual disks: create, info, import, export, verify, rekey" },
	{ "vmfile", cmd_vmfile, "encrypted VM files (nvram, vTPM, memory, dumps): seal, open, info" },
	{ "kmip", cmd_kmip, "KMIP key servers: discover-versions, create, get, locate, ..." },
	{ "login", cmd_login, "log in to a vmcryptd manager (the commands below need it)" },
	{ "logout", cmd_logout, "end the session" },
	{ "whoami", cmd_whoami, "the session's user, groups and privileges" },
	{ "passwd", cmd_passwd, "change your password" },
	{ "user", cmd_user, "users: list, add, remove, set-password" },
	{ "privilege", cmd_privilege, "privileges: list" },
	{ "role", cmd_role, "roles: list, show, add, remove" },
	{ "permission", cmd_permission, "permissions on inventory objects: list, add, remove" },
	{ "inventory", cmd_inventory, "inventory objects: list, show, add, rename, remove" },
	{ "vm", cmd_vm, "virtual machines: list, show, create, encrypt" },
	{ "host", cmd_host, "host agents: list, show, add, encryption-mode" },
	{ "provider", cmd_provider, "key providers: list, add-kmip, add-native, check, backup, ..." },
	{ "policy", cmd_policy, "encryption policies: list, show, add, remove" },
	{ "task", cmd_task, "manager tasks: list, show, wait" },
	{ "events", cmd_events, "the event log: list, export, verify" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vmcrypt COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < VC_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'vmcrypt COMMAND --help' describes a command. Keys and passwords are\n"
		   "never taken from the command line or the environment: use files or fds.\n"
		   "\nexit status:\n"
		   "  0  success\n"
		   "  1  the operation failed (including a failed task or a broken event chain)\n"
		   "  2  usage error: bad options, nothing was done or sent\n"
		   "  3  not logged in, session expired, or login refused (HTTP 401)\n"
		   "  4  permission denied (HTTP 403)\n"
		   "  5  not found (HTTP 404)\n"
		   "  6  conflict: exists, in use or not empty (HTTP 409)\n"
		   "  7  cannot reach the manager: connection, TLS, certificate or thumbprint\n");
}

int main(int argc, char **argv)
{
	vc_log_init("vmcrypt", VC_LOG_WARN);
	if (argc < 2) {
		cli_error("missing command (see 'vmcrypt --help')");
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("vmcrypt %s\n", VMCRYPT_VERSION);
		return EXIT_OK;
	}
	for (size_t i = 0; i < VC_ARRAY_SIZE(commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	cli_error("unknown command '%s' (see 'vmcrypt --help')", argv[1]);
	return EXIT_USAGE;
}
