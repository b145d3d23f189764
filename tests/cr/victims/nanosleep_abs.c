/*
 * Finishes by itself: clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) to 4 s after start.
 * After restore (before or after the deadline) it must return 0, and not before the
 * deadline; no signal is ever sent to it.
 */
#include "../zdtm.h"

int main(void)
{
	struct timespec deadline, now;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += 4;
	zdtm_ready("blocks=clock_nanosleep deadline=%ld", (long)deadline.tv_sec);
	r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
	clock_gettime(CLOCK_MONOTONIC, &now);
	zdtm_check(r == 0, "clock_nanosleep: %s", strerror(r));
	zdtm_check(now.tv_sec > deadline.tv_sec || (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec),
		   "woke at %ld.%09ld, before the deadline %ld.%09ld", (long)now.tv_sec, now.tv_nsec,
		   (long)deadline.tv_sec, deadline.tv_nsec);
	zdtm_pass();
}
