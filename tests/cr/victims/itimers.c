/*
 * Interval timers: ITIMER_REAL, ITIMER_VIRTUAL and ITIMER_PROF, each every 10 ms, with
 * SA_RESTART handlers that count ticks. The loop uses some CPU (virtual and profiling
 * time only pass then) and sleeps. After restore the intervals read back unchanged and
 * each counter keeps increasing: we burn CPU until all three have ticked again (no
 * timing is asserted, only that they tick).
 */
#include <sys/time.h>

#include "../zdtm.h"

static volatile uint64_t ticks[3];
static const int sigs[3] = { SIGALRM, SIGVTALRM, SIGPROF };

static void on_tick(int sig)
{
	for (int i = 0; i < 3; i++)
		if (sig == sigs[i])
			ticks[i]++;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_tick, .sa_flags = SA_RESTART };
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } }, got;
	uint64_t at_stop[3];
	double deadline;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++) {
		sigaction(sigs[i], &sa, NULL);
		if (setitimer(i, &it, NULL))
			zdtm_fail("setitimer %d: %m", i);
	}
	zdtm_ready("itimers=3");

	while (!zdtm_stop) {
		zdtm_burn(0.002);
		zdtm_sleep_ms(8);
	}

	for (int i = 0; i < 3; i++) {
		getitimer(i, &got);
		zdtm_check(got.it_interval.tv_sec == 0 && got.it_interval.tv_usec == 10000,
			   "itimer %d: interval %ld.%06ld, want 0.010000", i, (long)got.it_interval.tv_sec,
			   (long)got.it_interval.tv_usec);
		zdtm_check(got.it_value.tv_sec || got.it_value.tv_usec, "itimer %d is disarmed", i);
		at_stop[i] = ticks[i];
	}
	/* No check that they ticked before: under load the CPU-time timers may not have had
	 * 10 ms of CPU yet. That they tick from here on is what proves them restored. */
	/* A hang guard, not a timing check: without ticks we would loop forever. */
	deadline = zdtm_now(CLOCK_MONOTONIC) + 60;
	while ((ticks[0] <= at_stop[0] || ticks[1] <= at_stop[1] || ticks[2] <= at_stop[2]) &&
	       zdtm_now(CLOCK_MONOTONIC) < deadline)
		zdtm_burn(0.01);
	for (int i = 0; i < 3; i++)
		zdtm_check(ticks[i] > at_stop[i], "itimer %d stopped ticking after restore (%lu ticks)", i,
			   (unsigned long)ticks[i]);
	zdtm_pass();
}
