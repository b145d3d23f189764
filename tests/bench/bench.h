/*
 * Shared by the benchmarks: timing, percentiles, and this machine's memcpy bandwidth,
 * measured in the same run so that every figure has its reference beside it; killing
 * a child and removing a scratch tree.
 */
#ifndef HA_BENCH_H
#define HA_BENCH_H

#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

static inline double bench_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* p in [0, 100]; sorts v. */
static inline double bench_pct(double *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof(*v), bench_cmp_double);
	i = (size_t)(p / 100.0 * (n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* memcpy bandwidth in GB/s over 256 MiB buffers, best of 5 (pages faulted in first). */
static inline double bench_memcpy_gbps(void)
{
	size_t len = 256ul << 20;
	char *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	double best = 0;

	if (a == MAP_FAILED || b == MAP_FAILED)
		return 0;
	memset(a, 1, len);
	memset(b, 2, len);
	for (int i = 0; i < 5; i++) {
		double t = bench_now_us();

		memcpy(b, a, len);
		t = bench_now_us() - t;
		if (len / t / 1e3 > best)
			best = len / t / 1e3;
	}
	munmap(a, len);
	munmap(b, len);
	return best;
}

/* SIGKILL a child of ours and reap it. */
static inline void bench_kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static inline int bench_rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s, (void)f, (void)w;
	return remove(p);
}

/* rm -rf path (a benchmark's scratch store or directory). */
static inline void bench_rmrf(const char *path)
{
	nftw(path, bench_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
