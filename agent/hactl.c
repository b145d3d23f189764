/*
 * hactl: the command line. Offline engine commands (check, inject, run, dump, restore,
 * image) call the engine directly; daemon commands (status, list, checkpoint, rollback,
 * log, reload) talk to hacd over its control socket (hactl-client.c).
 *
 * Global options, before the command, apply to every daemon command:
 *   -s SOCKET   hacd's control socket (else $HACD_SOCKET, else the config's)
 *   -f CONFIG   the config to read control_socket from (default /etc/hacd/hacd.conf)
 *   --json      machine-readable output (with an "api_version")
 */
#include <stdio.h>
#include <string.h>

#include "ha/conf.h"
#include "hactl.h"

struct ctl_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct ctl_cmd cmds[] = {
	{ "check", ctl_cmd_check, "probe what this kernel supports [--json]" },
	{ "inject", ctl_cmd_inject, "seize PID, run the parasite's commands, cure, release" },
	{ "run", ctl_cmd_run, "[--pidns] [--log F] [--user U] -- CMD...: launch like hacd does" },
	{ "dump", ctl_cmd_dump, "-t PID -D DIR [--leave-running]: checkpoint a process" },
	{ "restore", ctl_cmd_restore, "-D DIR [--detach] [--pidns]: restore a checkpoint with its PID" },
	{ "image", ctl_cmd_image, "show DIR [--json] | verify DIR: decode or check a checkpoint" },
	{ "status", ctl_cmd_status, "[SERVICE]: what hacd guards, last generations, next checkpoints" },
	{ "list", ctl_cmd_list, "SERVICE [-n N]: its generations (id, state, time, pause, sizes)" },
	{ "checkpoint", ctl_cmd_checkpoint, "SERVICE: checkpoint it now, wait, print the generation" },
	{ "rollback", ctl_cmd_rollback, "SERVICE [-g G]: stop it, restore generation G (default: newest)" },
	{ "promote", ctl_cmd_promote, "SERVICE [--force]: restore the newest consistent generation here, guard it" },
	{ "failover", ctl_cmd_failover, "SERVICE [--force]: promote, with a report (for people)" },
	{ "demote", ctl_cmd_demote, "SERVICE: a last checkpoint pushed to the peers, stop it, become standby" },
	{ "log", ctl_cmd_log, "SERVICE [-n N]: hacd's events about it" },
	{ "reload", ctl_cmd_reload, "make hacd reread its config (like SIGHUP)" },
	{ "catalog", ctl_cmd_catalog, "verify [DB]: check the catalog's integrity and invariants" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl [-s SOCKET] [-f CONFIG] [--json] COMMAND [ARGS]\n\n"
		   "  -s SOCKET  hacd's control socket (default: $HACD_SOCKET, the config's\n"
		   "             control_socket, %s)\n"
		   "  -f CONFIG  config to take control_socket from (default %s)\n"
		   "  --json     JSON output, with an api_version\n\ncommands:\n",
		CONF_DEFAULT_CONTROL_SOCKET, CONF_DEFAULT_PATH);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "\nexit codes: 0 ok, 1 failed, 3 not running, 64 usage, 69 hacd unreachable, "
		   "78 bad config\n");
}

int main(int argc, char **argv)
{
	int i = 1;

	/* Global options: a tiny parser, so that each command keeps its own getopt. */
	while (i < argc && argv[i][0] == '-') {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return CTL_EXIT_OK;
		} else if (!strcmp(argv[i], "--json")) {
			ctl_opt_json = true;
			i++;
		} else if ((!strcmp(argv[i], "-s") || !strcmp(argv[i], "--socket")) && i + 1 < argc) {
			ctl_opt_socket = argv[i + 1];
			i += 2;
		} else if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
			ctl_opt_config = argv[i + 1];
			i += 2;
		} else {
			fprintf(stderr, "hactl: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (!strcmp(argv[i], "help")) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++)
		if (!strcmp(argv[i], cmds[c].name))
			return cmds[c].fn(argc - i, argv + i);
	fprintf(stderr, "hactl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return CTL_EXIT_USAGE;
}
