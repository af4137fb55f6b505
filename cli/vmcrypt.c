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
	{ "kmip", cmd_kmip, "KMIP key servers: discover-versions, create, get, locate, ..." },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vmcrypt COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < VC_ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "\n'vmcrypt COMMAND --help' describes a command. Keys are never taken\n"
		   "from the command line or the environment: use key files or fds.\n");
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
