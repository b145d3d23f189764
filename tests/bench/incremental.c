/*
 * bench_incremental: incremental checkpoints of a live process (issue 5). For 512 MiB
 * and 2 GiB targets dirtying 1% and 10% of their pages per second, checkpointed every
 * 1 s and every 100 ms, prints: pause p50/p99/max, pre-copy time and rounds, pages
 * copied while frozen, bytes per generation and the compression ratio, the target's
 * own work rate with and without tracking, the restore time of the newest generation,
 * and the ratio of each pause to the time memcpy (measured in this run) would take for
 * the bytes copied while frozen. Figures only: nothing is asserted but correctness.
 *
 * usage: bench_incremental VICTIM [MIB...]   (as root; default 512 2048)
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

/* Work units per second over ms. */
static double rate(const char *ctr, int ms)
{
	unsigned long long a = counter(ctr), b;
	double t = bench_now_us();

	usleep(ms * 1000);
	b = counter(ctr);
	return (b - a) / ((bench_now_us() - t) / 1e6);
}

static void kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s, (void)f, (void)w;
	return remove(p);
}

static int one(const char *victim, int mib, int permille, int interval_ms, double memcpy_gbps)
{
	int n = interval_ms >= 1000 ? 8 : 40;
	double *pause = calloc(n, sizeof(double)), *ratio = calloc(n, sizeof(double));
	double base, during = 0, w0 = 0, t0 = 0, pre_us = 0, rounds = 0, frozen_pages = 0, bytes = 0, raw = 0, t;
	char ctr[128], store[128];
	struct eng_track *tr;
	struct eng_restore_opts ro = { 0 };
	pid_t pid, rp;
	int ret = 0, k = 0;

	snprintf(ctr, sizeof(ctr), "%s/counter", workdir);
	snprintf(store, sizeof(store), "%s/store-%d-%d-%d", workdir, mib, permille, interval_ms);
	pid = start(victim, mib, permille, ctr);
	while (!counter(ctr) && waitpid(pid, NULL, WNOHANG) == 0)
		usleep(10000);
	base = rate(ctr, 2000);
	if (eng_track_open(pid, store, NULL, &tr)) {
		fprintf(stderr, "eng_track_open: %s\n", eng_last_error());
		kill_wait(pid);
		return 1;
	}
	t = bench_now_us();
	for (int i = 0; i <= n && !ret; i++) {
		struct eng_track_stats st;
		double next = t + (double)interval_ms * 1000 * (i + 1);

		if (eng_track_checkpoint(tr, NULL, &st)) {
			fprintf(stderr, "checkpoint: %s\n", eng_last_error());
			ret = 1;
			break;
		}
		if (i == 0) {	/* the first, full generation: its own line */
			printf("  first generation: pause %.2f ms, pre-copy %.0f ms in %u rounds, %.1f MiB -> %.1f MiB "
			       "stored (ratio %.2f), total %.0f ms\n", st.pause_us / 1e3, st.precopy_us / 1e3,
			       st.precopy_rounds, st.bytes_raw / 1048576.0, st.bytes_written / 1048576.0,
			       st.bytes_written ? (double)st.bytes_raw / st.bytes_written : 0, st.total_us / 1e3);
			t = bench_now_us();
			t0 = t;
			w0 = counter(ctr);
		} else {
			pause[k] = st.pause_us / 1e3;
			/* memcpy of what the freeze copied, in ms */
			ratio[k] = st.pages_frozen ? st.pause_us / 1e3 / (st.pages_frozen * 4096.0 / (memcpy_gbps * 1e9) * 1e3)
						   : 0;
			pre_us += st.precopy_us;
			rounds += st.precopy_rounds;
			frozen_pages += st.pages_frozen;
			bytes += st.bytes_written;
			raw += st.bytes_raw;
			k++;
		}
		while (bench_now_us() < next)
			usleep(1000);
	}
	/* over the whole tracked run, checkpoints included (counters lag by <= 100 ms) */
	during = (counter(ctr) - w0) / ((bench_now_us() - t0) / 1e6);
	eng_track_close(tr);
	kill_wait(pid);
	if (!ret && k) {
		double p50 = bench_pct(pause, k, 50), p99 = bench_pct(pause, k, 99), max = bench_pct(pause, k, 100);

		printf("  %d generations: pause p50 %.2f ms, p99 %.2f ms, max %.2f ms; pre-copy %.1f ms, %.1f rounds; "
		       "%.0f pages frozen; %.2f MiB per generation (raw %.2f MiB, ratio %.2f); pause / memcpy(frozen "
		       "bytes) p50 %.0fx\n", k, p50, p99, max, pre_us / k / 1e3, rounds / k, frozen_pages / k,
		       bytes / k / 1048576.0, raw / k / 1048576.0, bytes ? raw / bytes : 0, bench_pct(ratio, k, 50));
		printf("  target work rate: %.0f/s alone, %.0f/s tracked (slowdown %.1f%%)\n", base, during,
		       base > 0 ? (1 - during / base) * 100 : 0);
		t = bench_now_us();
		if (eng_restore(store, &ro, &rp)) {
			fprintf(stderr, "restore: %s\n", eng_last_error());
			ret = 1;
		} else {
			t = bench_now_us() - t;
			printf("  restore of the newest generation: %.0f ms (%.2f GB/s of memory)\n", t / 1e3,
			       mib * 1048576.0 / (t * 1e3));
			kill_wait(rp);
		}
	}
	nftw(store, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(pause);
	free(ratio);
	return ret;
}

int main(int argc, char **argv)
{
	static const int sizes[] = { 512, 2048 };
	double mc;
	int ret = 0;

	if (argc < 2 || geteuid()) {
		fprintf(stderr, "usage (as root): bench_incremental VICTIM [MIB...]\n");
		return 64;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(workdir, sizeof(workdir), "/tmp/hacd-bench-XXXXXX");
	if (!mkdtemp(workdir))
		return 1;
	mc = bench_memcpy_gbps();
	printf("memcpy %.1f GB/s\n", mc);
	for (int s = 0; s < (argc > 2 ? argc - 2 : 2) && !ret; s++) {
		int mib = argc > 2 ? atoi(argv[2 + s]) : sizes[s];

		for (int pm = 10; pm <= 100 && !ret; pm *= 10)
			for (int iv = 1000; iv >= 100 && !ret; iv /= 10) {
				printf("%d MiB, %d%% of pages dirtied per second, a generation every %d ms:\n", mib,
				       pm / 10, iv);
				fflush(stdout);
				ret = one(argv[1], mib, pm, iv, mc);
				fflush(stdout);
			}
	}
	nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
