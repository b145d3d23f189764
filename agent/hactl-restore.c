/*
 * hactl restore -D DIR [--detach] [--generation G]: bring a checkpoint back to life with
 * its PID. DIR may be a page store (hactl dump --track): its newest complete generation,
 * or G. Without
 * --detach hactl stays its parent and exits with its exit status, like `criu restore`;
 * with it, hactl exits 0 as soon as the process runs again.
 *
 * hactl restore -D STORE --track [--count N] [--interval MS]: then take N incremental
 * generations of the restored process into STORE, as `hactl dump --track` does (one JSON
 * line each), tracked on from the generation restored (eng_track_restore): the first
 * one stores only what the process wrote since the restore.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "ha/engine.h"
#include "hactl.h"

int ctl_cmd_restore(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "images-dir", required_argument, NULL, 'D' },
		{ "detach", no_argument, NULL, 'd' },
		{ "pidns", no_argument, NULL, 'p' },
		{ "generation", required_argument, NULL, 'g' },
		{ "track", no_argument, NULL, 'T' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },
		{ 0 },
	};
	struct eng_restore_opts o = { 0 };
	struct eng_track *t = NULL;
	const char *dir = NULL;
	bool detach = false, track = false;
	long count = 1, interval = 1000;
	int opt, st;
	pid_t pid, root;

	while ((opt = getopt_long(argc, argv, "D:dv", opts, NULL)) != -1) {
		switch (opt) {
		case 'v':
			eng_set_log(NULL, ENG_LOG_DEBUG, NULL);
			break;
		case 'D':
			dir = optarg;
			break;
		case 'd':
			detach = true;
			break;
		case 'p':
			o.pidns = true;
			break;
		case 'g': {
			char *end;
			unsigned long g = strtoul(optarg, &end, 10);

			if (*end || !g || g > UINT32_MAX)
				goto usage;
			o.generation = g;
			break;
		}
		case 'T':
			track = true;
			break;
		case 'n':
		case 'i': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || (opt == 'i' && v > 86400000))
				goto usage;
			*(opt == 'n' ? &count : &interval) = v;
			break;
		}
		default:
			goto usage;
		}
	}
	if (!dir || optind != argc)
		goto usage;
	if (track ? eng_track_restore(dir, &o, NULL, &pid, &root, &t) : eng_restore_pids(dir, &o, &pid, &root)) {
		fprintf(stderr, "hactl restore: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	/* Under an init (pidns): the init is what we wait for, the service what one signals. */
	if (root != pid)
		printf("restored pid %d service %d\n", pid, root);
	else
		printf("restored pid %d\n", pid);
	fflush(stdout);
	/* Not adopted (said why): a tracker of its own, whose first generation is full. */
	if (track && !t && eng_track_open(root, dir, NULL, &t)) {
		fprintf(stderr, "hactl restore: tracking pid %d: %s\n", root, eng_last_error());
		return CTL_EXIT_FAIL;
	}
	if (track && ctl_track_run(t, count, interval) != CTL_EXIT_OK)
		return CTL_EXIT_FAIL;
	if (detach)
		return CTL_EXIT_OK;
	if (waitpid(pid, &st, 0) != pid)
		return CTL_EXIT_FAIL;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
usage:
	fprintf(stderr, "usage: hactl restore -D DIR|STORE [--generation G] [--detach] [--pidns]\n"
			"       hactl restore -D STORE [--generation G] --track [--count N] [--interval MS]\n"
			"                     [--detach] [--pidns] [-v]\n");
	return CTL_EXIT_USAGE;
}
