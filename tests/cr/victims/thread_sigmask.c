/*
 * Per-thread signal masks: four threads each block a different set (SIGUSR1, SIGUSR2,
 * SIGHUP, real-time signals by index), the main thread blocks SIGRTMIN+5 and SIGHUP.
 * Only thread 2 leaves SIGRTMIN+5 unblocked. After restore: every thread's mask is
 * what it set, and a process-directed SIGRTMIN+5 is handled by thread 2 and no other.
 */
#include <pthread.h>

#include "../zdtm.h"

#define NR 4

static pid_t tids[NR];
static volatile pid_t handled_in;
static volatile int started, checked;
static int bad[NR + 1];

static void on_rt(int sig)
{
	(void)sig;
	handled_in = zdtm_gettid();
}

static void thread_set(int i, sigset_t *s)
{
	sigemptyset(s);
	if (i & 1)
		sigaddset(s, SIGUSR1);
	if (i & 2)
		sigaddset(s, SIGUSR2);
	if (i == 0)
		sigaddset(s, SIGHUP);
	sigaddset(s, SIGRTMIN + 10 + i);
	if (i != 2)
		sigaddset(s, SIGRTMIN + 5);
}

static int check_mask(const sigset_t *want)
{
	sigset_t cur;

	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	for (int s = 1; s < NSIG; s++)
		if (s != SIGTERM && sigismember(&cur, s) != sigismember(want, s))
			return s;
	return 0;
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	sigset_t set;

	thread_set(i, &set);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	tids[i] = zdtm_gettid();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	bad[i] = check_mask(&set);
	__atomic_add_fetch(&checked, 1, __ATOMIC_SEQ_CST);
	/* Stay alive (mask unchanged) until main has sent SIGRTMIN+5. */
	while (!handled_in)
		zdtm_sleep_ms(1);
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_rt };
	pthread_t th[NR];
	sigset_t mine;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 5, &sa, NULL);
	sigemptyset(&mine);
	sigaddset(&mine, SIGRTMIN + 5);
	sigaddset(&mine, SIGHUP);
	/* Threads inherit this; each then sets its own. */
	pthread_sigmask(SIG_SETMASK, &mine, NULL);
	for (int i = 0; i < NR; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR)
		zdtm_sleep_ms(1);
	zdtm_ready("threads=%d", NR + 1);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	bad[NR] = check_mask(&mine);
	while (__atomic_load_n(&checked, __ATOMIC_SEQ_CST) < NR)
		zdtm_sleep_ms(1);
	for (int i = 0; i <= NR; i++)
		zdtm_check(!bad[i], "%s %d: signal %d is %s in its mask", i == NR ? "main thread" : "thread", i, bad[i],
			   "wrong");
	kill(zdtm_getpid(), SIGRTMIN + 5);
	for (int i = 0; i < 5000 && !handled_in; i++)
		zdtm_sleep_ms(1);
	for (int i = 0; i < NR; i++)
		pthread_join(th[i], NULL);
	zdtm_check(handled_in == tids[2], "SIGRTMIN+5 handled in tid %d, only thread 2 (tid %d) unblocks it",
		   handled_in, tids[2]);
	zdtm_pass();
}
