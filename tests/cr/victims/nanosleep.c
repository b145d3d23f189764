/*
 * Blocked in nanosleep() when injected: the kernel restarts it with restart_syscall for
 * the remaining time. It must return 0 (not EINTR) after the full time, not much later.
 */
#include <errno.h>
#include <time.h>

#include "../zdtm.h"

int main(void)
{
	struct timespec req = { 2, 0 }, a, b;
	double slept;
	int r;

	zdtm_ready("blocks=nanosleep sleep_ms=2000");
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = nanosleep(&req, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	slept = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
	if (r)
		zdtm_fail("nanosleep returned %d: %m after %.3f s", r, slept);
	if (slept < 2.0 || slept > 10.0)
		zdtm_fail("nanosleep slept %.3f s, expected 2 s", slept);
	zdtm_pass();
}
