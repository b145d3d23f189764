/*
 * Four threads each compute a floating-point and integer checksum chain without end;
 * the main thread holds an unlinked file with known content at a reported fd, a SIGUSR1 handler,
 * and an ITIMER_PROF. After SIGTERM every thread's result must equal a recomputation of
 * the same number of steps: a register or xstate (SSE) clobbered by an injection shows.
 */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "../zdtm.h"

#define NR_THREADS 4

struct work {
	uint64_t steps;
	uint64_t ix;
	double fx;
};

static struct work works[NR_THREADS];
static int started;

static inline void one_step(uint64_t *ix, double *fx, uint64_t seed)
{
	*ix ^= *ix << 13;
	*ix ^= *ix >> 7;
	*ix ^= *ix << 17;
	*fx = fmod(*fx * 1.000001 + (double)(*ix & 0xffff) / 65536.0 + (double)seed, 1e9);
}

static void *worker(void *arg)
{
	struct work *w = arg;
	uint64_t seed = (uint64_t)(w - works) + 1;
	uint64_t ix = 0x9e3779b97f4a7c15ull * seed;
	double fx = 0;

	/* glibc starts a thread with every signal blocked and unblocks in start_thread: the
	 * runner's "before" snapshot must not catch that transient mask. */
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop) {
		one_step(&ix, &fx, seed);
		/* Publish all three together often enough to be checkable. */
		if (!(++w->steps & 1023)) {
			w->ix = ix;
			w->fx = fx;
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		}
	}
	/* Stop on a published boundary so that steps/ix/fx agree. */
	while (w->steps & 1023) {
		one_step(&ix, &fx, seed);
		w->steps++;
	}
	w->ix = ix;
	w->fx = fx;
	return NULL;
}

static volatile sig_atomic_t usr1;
static void on_usr1(int sig)
{
	usr1++;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct itimerval it = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
	static const char content[] = "hacd parasite fd transfer\n";
	pthread_t th[NR_THREADS];
	char name[64];
	int mfd;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	setitimer(ITIMER_PROF, &it, NULL);
	/* A file unlinked while open (not a memfd, which dumps do not support yet; not
	 * O_TMPFILE, whose /proc name carries an inode number no restore can give back). */
	snprintf(name, sizeof(name), "victim-fd.%d", (int)getpid());
	mfd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (mfd < 0 || unlink(name) || write(mfd, content, sizeof(content) - 1) != sizeof(content) - 1)
		zdtm_fail("an unlinked file in the working directory: %m");
	for (int i = 0; i < NR_THREADS; i++)
		pthread_create(&th[i], NULL, worker, &works[i]);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR_THREADS)
		usleep(1000);
	zdtm_ready("threads=%d handler_usr1=%#lx fd=%d fd_content=%s", NR_THREADS + 1,
		   (unsigned long)on_usr1, mfd, "hacd-parasite-fd-transfer");
	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NR_THREADS; i++) {
		uint64_t seed = i + 1, ix = 0x9e3779b97f4a7c15ull * seed;
		double fx = 0;

		for (uint64_t s = 0; s < works[i].steps; s++)
			one_step(&ix, &fx, seed);
		if (ix != works[i].ix || fx != works[i].fx)
			zdtm_fail("thread %d: after %lu steps got %#lx/%.17g, expected %#lx/%.17g", i,
				  works[i].steps, works[i].ix, works[i].fx, ix, fx);
		if (works[i].steps < 1024)
			zdtm_fail("thread %d did not run (%lu steps)", i, works[i].steps);
	}
	/* The handler must still be installed and work. */
	raise(SIGUSR1);
	if (usr1 != 1)
		zdtm_fail("SIGUSR1 handler did not run after the injection");
	zdtm_pass();
}
