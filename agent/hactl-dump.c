/*
 * hactl dump -t PID -D DIR [--leave-running] [--precopy=auto|never|always]: checkpoint a
 * running process into DIR with the engine directly (no daemon), like `criu dump`.
 * Prints one line: how long the process was frozen (and stopped to arm the pre-copy),
 * how long the whole dump took, and what it wrote. Without --leave-running the process
 * is killed once its images are committed.
 *
 * hactl dump -t PID -D STORE --track [--count N] [--interval MS] [--method M]: take N
 * incremental generations into the page store STORE, one every MS milliseconds (from
 * the start of one to the start of the next), printing one JSON line per generation.
 * The process always keeps running (--leave-running is implied).
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ha/engine.h"
#include "hactl.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl dump -t PID -D DIR [--leave-running] [--precopy=auto|never|always] [-v]\n"
		   "       hactl dump -t PID -D STORE --track [--count N] [--interval MS]\n"
		   "                  [--method uffd-wp|hash|full] [--leave-running] [-v]\n");
}

static uint64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ull + t.tv_nsec / 1000000;
}

/* [["seize", 120], ...]: where the pause went, step by step. */
static const char *steps_json(const struct eng_pause_steps *ps, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = 0;
	for (int i = 0; i < ps->n && n < len; i++)
		n += snprintf(buf + n, len - n, "%s[\"%s\", %u]", i ? ", " : "", ps->s[i].what, ps->s[i].us);
	return buf;
}

int ctl_track_run(struct eng_track *t, long count, long interval_ms)
{
	uint64_t next = mono_ms();

	for (long i = 0; i < count; i++) {
		struct eng_track_stats st;
		char steps[ENG_PAUSE_STEPS * 32];
		uint64_t now = mono_ms();

		if (i && next > now) {
			struct timespec ts = { (next - now) / 1000, (next - now) % 1000 * 1000000 };

			nanosleep(&ts, NULL);
		}
		next = mono_ms() + interval_ms;
		if (eng_track_checkpoint(t, NULL, &st)) {
			fprintf(stderr, "hactl: generation %u: %s\n", st.generation, eng_last_error());
			eng_track_close(t);
			return CTL_EXIT_FAIL;
		}
		printf("{\"generation\": %u, \"pause_us\": %llu, \"pages_scanned\": %llu, "
		       "\"pages_written\": %llu, \"bytes_written\": %llu, \"precopy_rounds\": %u, "
		       "\"precopy_us\": %llu, \"pages_precopied\": %llu, \"pages_frozen\": %llu, "
		       "\"pages_total\": %llu, \"total_us\": %llu, \"full\": %s, \"method\": \"%s\", "
		       "\"steps\": [%s]}\n",
		       st.generation, (unsigned long long)st.pause_us, (unsigned long long)st.pages_scanned,
		       (unsigned long long)st.pages_written, (unsigned long long)st.bytes_written,
		       st.precopy_rounds, (unsigned long long)st.precopy_us,
		       (unsigned long long)st.pages_precopied, (unsigned long long)st.pages_frozen,
		       (unsigned long long)st.pages_total, (unsigned long long)st.total_us,
		       st.full ? "true" : "false", eng_dirty_method_name(eng_track_method(t)),
		       steps_json(&st.steps, steps, sizeof(steps)));
		fflush(stdout);
	}
	eng_track_close(t);
	return CTL_EXIT_OK;
}

static int track(long pid, const char *store, long count, long interval_ms, const struct eng_track_opts *o)
{
	struct eng_track *t;

	if (eng_track_open(pid, store, o, &t)) {
		fprintf(stderr, "hactl dump: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	return ctl_track_run(t, count, interval_ms);
}

int ctl_cmd_dump(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tree", required_argument, NULL, 't' },
		{ "images-dir", required_argument, NULL, 'D' },
		{ "leave-running", no_argument, NULL, 'R' },
		{ "precopy", required_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "track", no_argument, NULL, 'T' },
		{ "count", required_argument, NULL, 'n' },
		{ "interval", required_argument, NULL, 'i' },
		{ "method", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct eng_dump_opts o = { 0 };
	struct eng_track_opts to = { 0 };
	struct eng_dump_stats st;
	bool tracked = false;
	long count = 1, interval = 1000;
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
		case 'T': tracked = true; break;
		case 'n':
		case 'i': {
			long v = strtol(optarg, &end, 10);

			if (*end || v <= 0 || (c == 'i' && v > 86400000)) {
				fprintf(stderr, "hactl dump: bad --%s '%s'\n", c == 'n' ? "count" : "interval", optarg);
				return CTL_EXIT_USAGE;
			}
			*(c == 'n' ? &count : &interval) = v;
			break;
		}
		case 'm':
			to.force_method = true;
			if (!strcmp(optarg, "uffd-wp"))
				to.method = ENG_DIRTY_UFFD_WP;
			else if (!strcmp(optarg, "hash"))
				to.method = ENG_DIRTY_HASH;
			else if (!strcmp(optarg, "full"))
				to.method = ENG_DIRTY_FULL;
			else if (!strcmp(optarg, "soft-dirty"))
				to.method = ENG_DIRTY_SOFT_DIRTY;
			else {
				fprintf(stderr, "hactl dump: --method=uffd-wp|hash|full|soft-dirty\n");
				return CTL_EXIT_USAGE;
			}
			break;
		case 'h': usage(stdout); return CTL_EXIT_OK;
		default: usage(stderr); return CTL_EXIT_USAGE;
		}
	}
	if (!pid || !dir || optind != argc) {
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	if (tracked)
		return track(pid, dir, count, interval, &to);
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
