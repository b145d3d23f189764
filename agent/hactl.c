/*
 * hactl: the command line. Offline engine commands (check, inject, dump, restore, image)
 * call the engine directly; daemon commands (status, list, ...) will talk to hacd over
 * its control socket.
 */
#include <stdio.h>
#include <string.h>

#include "hactl.h"

struct ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct ctl_cmd cmds[] = {
	{ "check", ctl_cmd_check, "probe what this kernel supports [--json]" },
	{ "inject", ctl_cmd_inject, "seize PID, run the parasite's commands, cure, release" },
	{ "restore", ctl_cmd_restore, "-D DIR [--detach]: restore a checkpoint with its PID" },
	{ "dump", ctl_cmd_dump, "-t PID -D DIR [--leave-running]: checkpoint a process" },
	{ "image", ctl_cmd_image, "show DIR [--json] | verify DIR: decode or check a checkpoint" },
	{ "run", ctl_cmd_run, "[--pidns] [--log F] [--user U] -- CMD...: launch like hacd does" },
	{ "status", ctl_cmd_status, "[SERVICE] [--json] [-s SOCKET]: what hacd guards" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "hactl: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return CTL_EXIT_USAGE;
}
