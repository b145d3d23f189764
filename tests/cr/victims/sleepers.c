/*
 * Threads blocked in sleeps: nanosleep(600 s), clock_nanosleep on CLOCK_MONOTONIC
 * (relative, 600 s), on CLOCK_REALTIME and CLOCK_BOOTTIME (absolute, now + 600 s); the
 * main thread in pause(). After restore each must still be asleep: only the signal the
 * main thread sends it after the runner's SIGTERM may end its sleep (EINTR from the
 * handler, with a remaining time within the 600 s). A sleep that returns early, or
 * EINTR before we sent anything, is a restore bug (the kernel restarts these calls
 * across a ptrace stop; so must a restore).
 */
#include <pthread.h>

#include "../zdtm.h"

#define NR 4

static volatile int sent[NR], ready_count;
static int result[NR], err[NR], early[NR];
static struct timespec rem[NR];
static const char *const names[NR] = { "nanosleep", "clock_nanosleep(MONOTONIC, rel)",
					"clock_nanosleep(REALTIME, abs)", "clock_nanosleep(BOOTTIME, abs)" };

static void on_usr1(int sig)
{
	(void)sig;
}

static void *sleeper(void *arg)
{
	int i = (int)(long)arg;
	struct timespec t = { 600, 0 };

	__atomic_add_fetch(&ready_count, 1, __ATOMIC_SEQ_CST);
	switch (i) {
	case 0:
		result[i] = nanosleep(&t, &rem[i]);
		err[i] = result[i] ? errno : 0;
		break;
	case 1:
		err[i] = clock_nanosleep(CLOCK_MONOTONIC, 0, &t, &rem[i]);
		break;
	case 2:
	case 3: {
		clockid_t c = i == 2 ? CLOCK_REALTIME : CLOCK_BOOTTIME;

		clock_gettime(c, &t);
		t.tv_sec += 600;
		err[i] = clock_nanosleep(c, TIMER_ABSTIME, &t, NULL);
		break;
	}
	}
	early[i] = !sent[i];
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t th[NR];

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);	/* no SA_RESTART: sleeps end with EINTR */
	zdtm_threads_start(th, NR, sleeper, &ready_count);
	zdtm_ready("blocks=pause blocks_all=1 wake=term threads=%d", NR + 1);
	zdtm_pause_for_term();
	for (int i = 0; i < NR; i++) {
		sent[i] = 1;
		pthread_kill(th[i], SIGUSR1);
		pthread_join(th[i], NULL);
		zdtm_check(!early[i], "%s ended before it was woken (error %s)", names[i], strerror(err[i]));
		zdtm_check(err[i] == EINTR, "%s: %s, want EINTR from our signal", names[i], strerror(err[i]));
		if (i < 2)
			zdtm_check(rem[i].tv_sec < 600 && (rem[i].tv_sec > 0 || rem[i].tv_nsec > 0),
				   "%s: %ld.%09ld s remaining", names[i], (long)rem[i].tv_sec, rem[i].tv_nsec);
	}
	zdtm_pass();
}
