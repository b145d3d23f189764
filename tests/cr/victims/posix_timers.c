/*
 * POSIX timers: periodic ones on CLOCK_MONOTONIC, CLOCK_REALTIME and
 * CLOCK_PROCESS_CPUTIME_ID signalling SIGRTMIN+4 with values 1-3, one on CLOCK_MONOTONIC
 * aimed at a worker thread (SIGEV_THREAD_ID, SIGRTMIN+6, value 4), a one-shot 1000 s
 * CLOCK_BOOTTIME timer, a SIGEV_NONE one-shot and a disarmed timer. After restore: the
 * same timer ids answer timer_gettime with the same intervals (one-shots still pending,
 * not later than before, the disarmed one disarmed), and each periodic timer keeps
 * ticking, its siginfo carrying its own id and value, the thread-directed one in its
 * thread.
 */
#include <pthread.h>

#include "../zdtm.h"

#define NR 7
#define NPERIODIC 4

static timer_t ids[NR];
static volatile uint64_t ticks[NPERIODIC];
static volatile int bad_id, bad_thread;
static pid_t worker_tid;
static volatile int started;

static void on_timer(int sig, siginfo_t *si, void *uc)
{
	int v = si->si_value.sival_int;

	(void)uc;
	(void)sig;
	if (si->si_code != SI_TIMER || v < 1 || v > NPERIODIC) {
		bad_id = -1;
		return;
	}
	if (si->si_timerid != (int)(long)ids[v - 1])
		bad_id = v;
	if (v == 4 && zdtm_gettid() != worker_tid)
		bad_thread = zdtm_gettid();
	ticks[v - 1]++;
}

static void *worker(void *arg)
{
	(void)arg;
	worker_tid = zdtm_gettid();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	/* Keep taking our timer's ticks while main checks. */
	while (zdtm_stop != 2)
		zdtm_sleep_ms(2);
	return NULL;
}

static void make(int i, clockid_t clk, int notify, int sig, int value, long interval_ms, long value_s)
{
	struct sigevent ev = { .sigev_notify = notify, .sigev_signo = sig };
	struct itimerspec its = { { interval_ms / 1000, interval_ms % 1000 * 1000000 },
				  { value_s ? value_s : interval_ms / 1000, value_s ? 0 : interval_ms % 1000 * 1000000 } };

	ev.sigev_value.sival_int = value;
	if (notify == SIGEV_THREAD_ID)
		ev._sigev_un._tid = worker_tid;
	if (timer_create(clk, &ev, &ids[i]))
		zdtm_fail("timer_create %d: %m", i);
	if ((interval_ms || value_s) && timer_settime(ids[i], 0, &its, NULL))
		zdtm_fail("timer_settime %d: %m", i);
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_timer, .sa_flags = SA_SIGINFO | SA_RESTART };
	struct itimerspec before[NR], now;
	uint64_t at_stop[NPERIODIC];
	pthread_t th;
	sigset_t s;
	double deadline;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGRTMIN + 4, &sa, NULL);
	sigaction(SIGRTMIN + 6, &sa, NULL);
	pthread_create(&th, NULL, worker, NULL);
	while (!__atomic_load_n(&started, __ATOMIC_SEQ_CST))
		zdtm_sleep_ms(1);
	/* SIGRTMIN+6 is for the worker: the main thread blocks it. */
	sigemptyset(&s);
	sigaddset(&s, SIGRTMIN + 6);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	make(0, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 4, 1, 10, 0);
	make(1, CLOCK_REALTIME, SIGEV_SIGNAL, SIGRTMIN + 4, 2, 15, 0);
	make(2, CLOCK_PROCESS_CPUTIME_ID, SIGEV_SIGNAL, SIGRTMIN + 4, 3, 5, 0);
	make(3, CLOCK_MONOTONIC, SIGEV_THREAD_ID, SIGRTMIN + 6, 4, 10, 0);
	make(4, CLOCK_BOOTTIME, SIGEV_SIGNAL, SIGRTMIN + 4, 5, 0, 1000);
	make(5, CLOCK_MONOTONIC, SIGEV_NONE, 0, 6, 0, 1000);
	make(6, CLOCK_MONOTONIC, SIGEV_SIGNAL, SIGRTMIN + 4, 7, 0, 0);
	/* Every periodic timer ticks once before the dump, so that "never ticked" at the
	 * stop does not depend on how much CPU this process got between its restore and
	 * the stop (timer 2 counts CPU time: at load 28 in CI it had not reached 5 ms). */
	deadline = zdtm_now(CLOCK_MONOTONIC) + 60;	/* hang guard only */
	for (int all = 0; !all && zdtm_now(CLOCK_MONOTONIC) < deadline;) {
		all = 1;
		for (int i = 0; i < NPERIODIC; i++)
			all &= ticks[i] > 0;
		if (!all)
			zdtm_burn(0.002);
	}
	for (int i = 0; i < NR; i++)
		timer_gettime(ids[i], &before[i]);
	zdtm_ready("timers=%d first_id=%ld", NR, (long)ids[0]);

	while (!zdtm_stop) {
		zdtm_burn(0.002);
		zdtm_sleep_ms(8);
	}

	for (int i = 0; i < NR; i++) {
		zdtm_check(!timer_gettime(ids[i], &now), "timer %d (id %ld) is gone: %m", i, (long)ids[i]);
		zdtm_check(now.it_interval.tv_sec == before[i].it_interval.tv_sec &&
				   now.it_interval.tv_nsec == before[i].it_interval.tv_nsec,
			   "timer %d: interval %ld.%09ld, was %ld.%09ld", i, (long)now.it_interval.tv_sec,
			   now.it_interval.tv_nsec, (long)before[i].it_interval.tv_sec, before[i].it_interval.tv_nsec);
		if (i == 4 || i == 5)
			zdtm_check((now.it_value.tv_sec || now.it_value.tv_nsec) &&
					   now.it_value.tv_sec <= before[i].it_value.tv_sec,
				   "one-shot timer %d: %ld s left, had %ld", i, (long)now.it_value.tv_sec,
				   (long)before[i].it_value.tv_sec);
		if (i == 6)
			zdtm_check(!now.it_value.tv_sec && !now.it_value.tv_nsec, "the disarmed timer is armed");
	}
	for (int i = 0; i < NPERIODIC; i++) {
		at_stop[i] = ticks[i];
		zdtm_check(at_stop[i], "periodic timer %d never ticked", i);
	}
	deadline = zdtm_now(CLOCK_MONOTONIC) + 60;	/* hang guard only */
	for (;;) {
		int all = 1;

		for (int i = 0; i < NPERIODIC; i++)
			all &= ticks[i] > at_stop[i];
		if (all || zdtm_now(CLOCK_MONOTONIC) > deadline)
			break;
		zdtm_burn(0.005);
	}
	zdtm_stop = 2;
	pthread_join(th, NULL);
	for (int i = 0; i < NPERIODIC; i++)
		zdtm_check(ticks[i] > at_stop[i], "timer %d (id %ld) stopped ticking after restore", i, (long)ids[i]);
	zdtm_check(!bad_id, "a timer signal carried the wrong timer id or code (%d)", bad_id);
	zdtm_check(!bad_thread, "the thread-directed timer fired in tid %d, not %d", bad_thread, worker_tid);
	zdtm_pass();
}
