/*
 * The target of bench_incremental: N MiB (argv[1]) of half-random, half-zero pages
 * (compressible about 2:1), of which it dirties P per mille (argv[2]) per second, in
 * 10 ms ticks, at random pages. Its own work rate is a compute loop on a second thread;
 * both counters are written to the file argv[3] every 100 ms (a regular file: it is
 * dumped like any other), so the benchmark can tell how much tracking slows it down.
 * An optional argv[4] sets the number of threads: 1 (no compute thread, its counter
 * stays 0), 2 (the default) or more (the others idle in pause()).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static volatile uint64_t work, dirtied;

static void *compute(void *arg)
{
	uint64_t x = 88172645463325252ull;

	(void)arg;
	for (;;) {
		for (int i = 0; i < 1000; i++)
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		__atomic_store_n(&work, work + 1, __ATOMIC_RELAXED);
		if (!x)
			pause();
	}
	return NULL;
}

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void fill(uint64_t *w, uint64_t *x)
{
	for (int i = 0; i < 256; i++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		w[i] = *x;
	}
	memset(w + 256, 0, 2048);
}

int main(int argc, char **argv)
{
	uint64_t pages, per_tick, x = 0x2545F4914F6CDD1Dull;
	struct timespec next;
	uint64_t *mem;
	pthread_t th;
	int fd, ticks = 0, threads = argc > 4 ? atoi(argv[4]) : 2;

	if (argc != 4 && argc != 5)
		return 64;
	pages = (strtoull(argv[1], NULL, 10) << 20) / 4096;
	per_tick = pages * strtoull(argv[2], NULL, 10) / 1000 / 100;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (mem == MAP_FAILED || fd < 0)
		return 1;
	for (uint64_t p = 0; p < pages; p++)
		fill(mem + p * 512, &x);
	for (int i = 1; i < threads; i++)
		pthread_create(&th, NULL, i == 1 ? compute : idle, NULL);
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		char line[64];
		int n;

		for (uint64_t i = 0; i < per_tick; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			fill(mem + (x % pages) * 512, &x);
		}
		dirtied += per_tick;
		if (++ticks % 10 == 0) {
			n = snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)work,
				     (unsigned long long)dirtied);
			if (pwrite(fd, line, n, 0) != n)
				return 1;
		}
		next.tv_nsec += 10000000;
		if (next.tv_nsec >= 1000000000)
			next.tv_sec++, next.tv_nsec -= 1000000000;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
}
