/*
 * bench_incremental: incremental checkpoints of a live process (issue 5). For 512 MiB
 * and 2 GiB targets dirtying 1% and 10% of their pages per second, checkpointed every
 * 1 s and every 100 ms, prints: pause p50/p99/max, pre-copy time and rounds, pages
 * copied while frozen, bytes per generation and the compression ratio, the target's
 * own work rate with and without tracking, the restore time of the newest generation,
 * and the ratio of each pause to the time memcpy (measured in this run) would take for
 * the bytes copied while frozen. Figures only: nothing is asserted but correctness.
 * Tracked and untracked windows alternate (see one()), so that the slowdown compares
 * work rates measured under the same load; the load average is printed beside.
 *
 * usage: bench_incremental VICTIM [MIB...]   (as root; default 512 2048; the
 * environment variables main() lists choose rates, intervals and run length)
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "ha/engine.h"

static char workdir[64];

static pid_t start(const char *victim, int mib, int permille, const char *ctr)
{
	char m[16], p[16];
	pid_t pid;

	snprintf(m, sizeof(m), "%d", mib);
	snprintf(p, sizeof(p), "%d", permille);
	unlink(ctr);
	pid = fork();
	if (!pid) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0), dup2(null, 1), dup2(null, 2);
		syscall(SYS_close_range, 3, ~0u, 0);
		execl(victim, victim, m, p, ctr, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* The victim's compute counter, 0 when not there yet. */
static unsigned long long counter(const char *ctr)
{
	unsigned long long w = 0, d = 0;
	FILE *f = fopen(ctr, "re");

	if (f) {
		if (fscanf(f, "%llu %llu", &w, &d) != 2)
			w = 0;
		fclose(f);
	}
	return w;
}

/* The 1-minute load average now, for the figures' context. */
static double load1(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

static int env_int(const char *name, int def)
{
	const char *e = getenv(name);

	return e && atoi(e) > 0 ? atoi(e) : def;
}

static void sleep_until(double t)
{
	while (bench_now_us() < t)
		usleep(1000);
}

/*
 * One configuration. The run alternates windows of about WINDOW seconds: tracked (a
 * generation every interval) and untracked (the tracker stays open, nothing is
 * checkpointed), so that the target's work rate in both is measured under the same
 * load swings of a shared machine. The first generation of each tracked window holds
 * a whole untracked window's writes: it is counted apart ("catch-up"), not in the
 * pause figures, which are those of generations taken one interval after the last.
 */
static int one(const char *victim, int mib, int permille, int interval_ms, double memcpy_gbps)
{
	int n = env_int("HA_BENCH_SAMPLES", 60);
	int window_ms = env_int("HA_BENCH_WINDOW_MS", 5000);
	int per_window = window_ms / interval_ms > 2 ? window_ms / interval_ms : 2;
	double *pause = calloc(n, sizeof(double)), *ratio = calloc(n, sizeof(double));
	double pre_us = 0, rounds = 0, frozen_pages = 0, bytes = 0, raw = 0, catchup = 0, t, l0 = load1();
	double work_on = 0, time_on = 0, work_off = 0, time_off = 0;
	char ctr[128], store[128];
	struct eng_track *tr;
	struct eng_restore_opts ro = { 0 };
	pid_t pid, rp;
	int ret = 0, k = 0, windows = 0, nr_ratio = 0;

	snprintf(ctr, sizeof(ctr), "%s/counter", workdir);
	snprintf(store, sizeof(store), "%s/store-%d-%d-%d", workdir, mib, permille, interval_ms);
	pid = start(victim, mib, permille, ctr);
	while (!counter(ctr) && waitpid(pid, NULL, WNOHANG) == 0)
		usleep(10000);
	if (eng_track_open(pid, store, NULL, &tr)) {
		fprintf(stderr, "eng_track_open: %s\n", eng_last_error());
		bench_kill_wait(pid);
		return 1;
	}
	/* the first, full generation */
	{
		struct eng_track_stats st;

		if (eng_track_checkpoint(tr, NULL, &st)) {
			fprintf(stderr, "checkpoint: %s\n", eng_last_error());
			eng_track_close(tr);
			bench_kill_wait(pid);
			return 1;
		}
		printf("  first generation: pause %.2f ms, pre-copy %.0f ms in %u rounds, %.1f MiB -> %.1f MiB "
		       "stored (ratio %.2f), total %.0f ms\n", st.pause_us / 1e3, st.precopy_us / 1e3,
		       st.precopy_rounds, st.bytes_raw / 1048576.0, st.bytes_written / 1048576.0,
		       st.bytes_written ? (double)st.bytes_raw / st.bytes_written : 0, st.total_us / 1e3);
	}
	while (k < n && !ret) {
		double w0, t0;

		/* untracked window */
		w0 = counter(ctr), t0 = bench_now_us();
		sleep_until(t0 + per_window * interval_ms * 1000.0);
		work_off += counter(ctr) - w0, time_off += bench_now_us() - t0;
		/* tracked window: per_window generations, one every interval */
		w0 = counter(ctr), t0 = bench_now_us();
		for (int i = 0; i < per_window && k < n && !ret; i++) {
			struct eng_track_stats st;

			sleep_until(t0 + (double)interval_ms * 1000 * i);
			if (eng_track_checkpoint(tr, NULL, &st)) {
				fprintf(stderr, "checkpoint: %s\n", eng_last_error());
				ret = 1;
				break;
			}
			if (i == 0) {
				catchup += st.pause_us / 1e3;
				continue;
			}
			pause[k] = st.pause_us / 1e3;
			/* memcpy of what the freeze copied, in ms */
			if (st.pages_frozen)	/* a generation that copied nothing frozen has no ratio */
				ratio[nr_ratio++] = st.pause_us / 1e3 /
						    (st.pages_frozen * 4096.0 / (memcpy_gbps * 1e9) * 1e3);
			pre_us += st.precopy_us;
			rounds += st.precopy_rounds;
			frozen_pages += st.pages_frozen;
			bytes += st.bytes_written;
			raw += st.bytes_raw;
			k++;
		}
		sleep_until(t0 + (double)interval_ms * 1000 * per_window);
		/* counters lag by <= 100 ms, the same in both kinds of window */
		work_on += counter(ctr) - w0, time_on += bench_now_us() - t0;
		windows++;
	}
	eng_track_close(tr);
	bench_kill_wait(pid);
	if (!ret && k) {
		double p50 = bench_pct(pause, k, 50), p99 = bench_pct(pause, k, 99), max = bench_pct(pause, k, 100);
		double on = work_on / (time_on / 1e6), off = work_off / (time_off / 1e6);

		printf("  %d generations in %d tracked windows of %d (load %.1f -> %.1f): pause p50 %.2f ms, p99 %.2f ms, "
		       "max %.2f ms (catch-up generations: mean %.2f ms)\n", k, windows, per_window, l0, load1(), p50,
		       p99, max, catchup / windows);
		printf("  pre-copy %.1f ms, %.1f rounds; %.1f pages frozen; %.2f MiB per generation (raw %.2f MiB, "
		       "ratio %.2f); pause / memcpy(frozen bytes) p50 %.0fx over the %d that copied pages frozen\n",
		       pre_us / k / 1e3, rounds / k, frozen_pages / k, bytes / k / 1048576.0, raw / k / 1048576.0,
		       bytes ? raw / bytes : 0, nr_ratio ? bench_pct(ratio, nr_ratio, 50) : 0, nr_ratio);
		printf("  target work rate: %.0f/s untracked, %.0f/s tracked, interleaved (slowdown %.1f%%)\n", off, on,
		       off > 0 ? (1 - on / off) * 100 : 0);
		t = bench_now_us();
		if (eng_restore(store, &ro, &rp)) {
			fprintf(stderr, "restore: %s\n", eng_last_error());
			ret = 1;
		} else {
			t = bench_now_us() - t;
			printf("  restore of the newest generation: %.0f ms (%.2f GB/s of memory)\n", t / 1e3,
			       mib * 1048576.0 / (t * 1e3));
			bench_kill_wait(rp);
		}
	}
	bench_rmrf(store);
	free(pause);
	free(ratio);
	return ret;
}

/* A comma-separated list of ints from the environment, or def. */
static int env_list(const char *name, const int *def, int nd, int *out, int max)
{
	const char *e = getenv(name);
	int n = 0;

	if (!e || !*e) {
		memcpy(out, def, nd * sizeof(*out));
		return nd;
	}
	for (char *p = (char *)e, *q; *p && n < max; p = *q ? q + 1 : q) {
		out[n] = strtol(p, &q, 10);
		if (q == p)
			break;
		if (out[n] > 0)
			n++;
	}
	return n;
}

int main(int argc, char **argv)
{
	static const int sizes[] = { 512, 2048 }, rates[] = { 10, 100 }, ivs[] = { 1000, 100 };
	int rate[8], iv[8], nr, ni;
	double mc;
	int ret = 0;

	if (argc < 2 || geteuid()) {
		fprintf(stderr, "usage (as root): bench_incremental VICTIM [MIB...]\n"
			"  HA_BENCH_SAMPLES=N      pauses measured per configuration (60)\n"
			"  HA_BENCH_RATES=10,100   per mille of pages dirtied per second\n"
			"  HA_BENCH_INTERVALS=1000,100  ms between generations\n"
			"  HA_BENCH_WINDOW_MS=5000 length of each tracked and untracked window\n");
		return 64;
	}
	nr = env_list("HA_BENCH_RATES", rates, 2, rate, 8);
	ni = env_list("HA_BENCH_INTERVALS", ivs, 2, iv, 8);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(workdir, sizeof(workdir), "/tmp/hacd-bench-XXXXXX");
	if (!mkdtemp(workdir))
		return 1;
	mc = bench_memcpy_gbps();
	printf("memcpy %.1f GB/s, load %.1f\n", mc, load1());
	for (int s = 0; s < (argc > 2 ? argc - 2 : 2) && !ret; s++) {
		int mib = argc > 2 ? atoi(argv[2 + s]) : sizes[s];

		for (int r = 0; r < nr && !ret; r++)
			for (int i = 0; i < ni && !ret; i++) {
				printf("%d MiB, %.1f%% of pages dirtied per second, a generation every %d ms:\n", mib,
				       rate[r] / 10.0, iv[i]);
				fflush(stdout);
				ret = one(argv[1], mib, rate[r], iv[i], mc);
				fflush(stdout);
			}
	}
	bench_rmrf(workdir);
	return ret;
}
