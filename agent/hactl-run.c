/*
 * hactl run [--pidns] [--log FILE] [--user U] [--cwd DIR] [--wait] -- CMD [ARGS...]:
 * start a command the way hacd launches a guarded service (eng_launch), so that it can
 * be dumped and restored by hand. It prints the init's and the service's pids (with
 * --pidns `hactl dump -t` takes either: both name the service's tree, which restore
 * brings back into new namespaces) and exits; with --wait it stays the init's parent
 * and exits with the service's status.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ha/engine.h"
#include "hactl.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl run [--pidns] [--log FILE] [--user USER] [--cwd DIR] [--wait] "
		   "-- /abs/CMD [ARGS...]\n"
		   "  --pidns  new pid, ipc, uts and mount namespaces (the host's file system with a\n"
		   "           /proc of its own) under hacd's minimal init\n"
		   "  prints \"init PID service PID\" (hactl dump -t takes either)\n");
}

int ctl_cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pidns", no_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' },
		{ "user", required_argument, NULL, 'u' },
		{ "cwd", required_argument, NULL, 'C' },
		{ "wait", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct eng_launch_opts o = { 0 };
	bool wait_it = false;
	pid_t init, pid;
	int opt, st;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			o.pidns = true;
			break;
		case 'l':
			o.log_path = optarg;
			break;
		case 'u':
			o.user = optarg;
			break;
		case 'C':
			o.cwd = optarg;
			break;
		case 'w':
			wait_it = true;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		default:
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (eng_launch((const char *const *)argv + optind, &o, &init, &pid)) {
		fprintf(stderr, "hactl run: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	printf("init %d service %d\n", init, pid);
	fflush(stdout);
	if (!wait_it)
		return CTL_EXIT_OK;
	if (waitpid(init, &st, 0) != init)
		return CTL_EXIT_FAIL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
