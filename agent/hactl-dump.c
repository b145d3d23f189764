/*
 * hactl dump -t PID -D DIR [--leave-running] [--precopy=auto|never|always]: checkpoint a
 * running process into DIR with the engine directly (no daemon), like `criu dump`.
 * Prints one line: how long the process was frozen (and stopped to arm the pre-copy),
 * how long the whole dump took, and what it wrote. Without --leave-running the process
 * is killed once its images are committed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/engine.h"
#include "hactl.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl dump -t PID -D DIR [--leave-running] [--precopy=auto|never|always] [-v]\n");
}

int ctl_cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "precopy", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct eng_dump_opts o = { 0 };
	struct eng_dump_stats st;
	const char *dir = NULL;
	char *end;
	long pid = 0;
	int c;

	while ((c = getopt_long(argc, argv, "t:D:Rvh", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			pid = strtol(optarg, &end, 10);
			if (*end || pid <= 0) {
				fprintf(stderr, "hactl dump: bad pid '%s'\n", optarg);
				return CTL_EXIT_USAGE;
			}
			break;
		case 'D': dir = optarg; break;
		case 'R': o.leave_running = true; break;
		case 'P':
			if (!strcmp(optarg, "auto"))
				o.precopy = ENG_PRECOPY_AUTO;
			else if (!strcmp(optarg, "never"))
				o.precopy = ENG_PRECOPY_NEVER;
			else if (!strcmp(optarg, "always"))
				o.precopy = ENG_PRECOPY_ALWAYS;
			else {
				fprintf(stderr, "hactl dump: --precopy=auto|never|always\n");
				return CTL_EXIT_USAGE;
			}
			break;
		case 'v': eng_set_log(NULL, ENG_LOG_DEBUG, NULL); break;
		case 'h': usage(stdout); return CTL_EXIT_OK;
		default: usage(stderr); return CTL_EXIT_USAGE;
		}
	}
	if (!pid || !dir || optind != argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (eng_dump(pid, dir, &o, &st)) {
		fprintf(stderr, "hactl dump: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	printf("dumped pid %ld to %s: frozen %.1f ms (collect %.1f ms, arm %.1f ms), total %.1f ms, "
	       "%llu pages written (%llu pre-copied, %llu zero, %llu scanned), %.1f MiB of images%s\n",
	       pid, dir, st.frozen_us / 1e3, st.collect_us / 1e3, st.arm_us / 1e3, st.total_us / 1e3,
	       (unsigned long long)st.pages_written, (unsigned long long)st.pages_precopied,
	       (unsigned long long)st.pages_zero, (unsigned long long)st.pages_scanned,
	       st.bytes_written / 1048576.0, o.leave_running ? ", left running" : ", killed");
	return CTL_EXIT_OK;
}
