/*
 * Cost of one seize -> infect -> parasite commands -> cure -> release cycle on a victim
 * with 4 computing threads (plus its main thread), 100 times. The victim's pause is
 * measured from outside (first PTRACE_SEIZE to last detach) and from inside: a thread
 * of the victim spins on CLOCK_MONOTONIC and reports the largest gaps it saw.
 *
 * usage: bench_inject_cycle [CYCLES]
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "ha/engine.h"

#define MAX_GAPS 4096

struct shared {
	volatile int stop;
	volatile int nr_gaps;
	double gaps[MAX_GAPS];
};

static struct shared *sh;

static void *spin(void *arg)
{
	double last = bench_now_us();

	while (!sh->stop) {
		double t = bench_now_us();

		/* Gaps above 200 us on an otherwise idle thread are stops (or preemption). */
		if (t - last > 200 && sh->nr_gaps < MAX_GAPS)
			sh->gaps[sh->nr_gaps++] = t - last;
		last = t;
	}
	return NULL;
}

static void victim(void)
{
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, spin, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	_exit(0);
}

int main(int argc, char **argv)
{
	int cycles = argc > 1 ? atoi(argv[1]) : 100;
	double *cyc = calloc(cycles, sizeof(double)), *seize = calloc(cycles, sizeof(double));
	struct eng_sigaction sa[64];
	struct eng_itimer it[3];
	double mc, base_p50, base_max;
	int base_gaps;
	pid_t pid;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	mc = bench_memcpy_gbps();
	pid = fork();
	if (!pid)
		victim();
	usleep(200000);
	/* Baseline: the same window without injections. On 2 cores the 4 spinners are
	 * preempted by each other, and that shows as gaps too. */
	sh->nr_gaps = 0;
	usleep(cycles * 24000);
	base_gaps = sh->nr_gaps;
	base_p50 = base_gaps ? bench_pct(sh->gaps, base_gaps, 50) : 0;
	base_max = base_gaps ? bench_pct(sh->gaps, base_gaps, 100) : 0;
	sh->nr_gaps = 0;
	for (int i = 0; i < cycles; i++) {
		struct eng_victim *v;
		double t0 = bench_now_us(), t1;
		int fd;

		if (eng_seize(pid, &v)) {
			fprintf(stderr, "seize: %s\n", eng_last_error());
			return 1;
		}
		t1 = bench_now_us();
		if (eng_infect(v) || eng_par_sigactions(v, sa) || eng_par_itimers(v, it) ||
		    eng_par_get_fd(v, 1, &fd) || eng_cure(v)) {
			fprintf(stderr, "cycle %d: %s\n", i, eng_last_error());
			eng_release(v);
			return 1;
		}
		close(fd);
		eng_release(v);
		cyc[i] = bench_now_us() - t0;
		seize[i] = t1 - t0;
		usleep(20000);
	}
	sh->stop = 1;
	waitpid(pid, NULL, 0);
	printf("inject cycle on a 5-thread victim, %d cycles (seize, infect, sigactions, itimers, 1 fd, cure, release)\n",
	       cycles);
	printf("  cycle (= victim stopped, seen from outside): p50 %.0f us  p90 %.0f us  p99 %.0f us  max %.0f us\n",
	       bench_pct(cyc, cycles, 50), bench_pct(cyc, cycles, 90), bench_pct(cyc, cycles, 99),
	       bench_pct(cyc, cycles, 100));
	printf("  of which seizing all threads:               p50 %.0f us  p99 %.0f us\n", bench_pct(seize, cycles, 50),
	       bench_pct(seize, cycles, 99));
	if (sh->nr_gaps)
		printf("  victim's own view, gaps > 200 us over 4 threads: %d, p50 %.0f us, max %.0f us;\n"
		       "    same window without injecting: %d, p50 %.0f us, max %.0f us (2 cores, 4 spinners)\n",
		       sh->nr_gaps, bench_pct(sh->gaps, sh->nr_gaps, 50), bench_pct(sh->gaps, sh->nr_gaps, 100),
		       base_gaps, base_p50, base_max);
	printf("  reference: memcpy %.1f GB/s on this machine, this run\n", mc);
	return 0;
}
