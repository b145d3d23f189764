/*
 * timerfds: a periodic CLOCK_MONOTONIC timer (first expiry in 50 ms, then every
 * 100 ms), an absolute CLOCK_REALTIME one 1 hour ahead, a CLOCK_BOOTTIME one-shot
 * that expired before the dump and was never read (1 tick pending), and a disarmed one.
 * After restore: the period is still 100 ms (expirations arrive at that rate), the
 * absolute one still has about an hour left and TFD_TIMER_ABSTIME, the expired one
 * still reports its tick, the disarmed one stays disarmed.
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/timerfd.h>

#include "../zdtm.h"

int main(void)
{
	struct itimerspec per = { { 0, 100000000 }, { 0, 50000000 } }, abs_ = { 0 }, once = { { 0, 0 }, { 0, 1000000 } };
	struct itimerspec cur;
	struct timespec now;
	int tp, ta, to, td;
	uint64_t ticks;

	zdtm_init();
	tp = timerfd_create(CLOCK_MONOTONIC, 0);
	ta = timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK);
	to = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	td = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	clock_gettime(CLOCK_REALTIME, &now);
	abs_.it_value.tv_sec = now.tv_sec + 3600;
	if (tp < 0 || ta < 0 || to < 0 || td < 0 || timerfd_settime(tp, 0, &per, NULL) ||
	    timerfd_settime(ta, TFD_TIMER_ABSTIME, &abs_, NULL) || timerfd_settime(to, 0, &once, NULL))
		zdtm_fail("timerfd: %m");
	{
		struct pollfd p = { to, POLLIN, 0 };

		/* The one-shot fires (unread): wait for it, not for a time. */
		while (poll(&p, 1, -1) != 1)
			;
	}
	zdtm_ready("periodic=%d abs=%d once=%d disarmed=%d", tp, ta, to, td);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(read(to, &ticks, 8) == 8 && ticks == 1, "one-shot: %llu ticks", (unsigned long long)ticks);
	zdtm_check(read(td, &ticks, 8) == -1 && errno == EAGAIN, "disarmed one expired");
	zdtm_check(!timerfd_gettime(td, &cur) && !cur.it_value.tv_sec && !cur.it_value.tv_nsec, "disarmed one armed");
	zdtm_check(!timerfd_gettime(ta, &cur) && cur.it_value.tv_sec > 3000 && cur.it_value.tv_sec <= 3600,
		   "absolute one: %ld s left", (long)cur.it_value.tv_sec);
	clock_gettime(CLOCK_REALTIME, &now);
	zdtm_check(!timerfd_gettime(tp, &cur) && cur.it_interval.tv_sec == 0 && cur.it_interval.tv_nsec == 100000000,
		   "period %ld.%09ld", (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
	/* Count expirations for at least 550 ms after a drain: 5 at a 100 ms period, the
	 * exact bounds from the clock around the first and the last read (see
	 * zdtm_check_period: at load 38 a victim descheduled past its 550 ms counted 7). */
	{
		struct pollfd p = { tp, POLLIN, 0 };
		double a0, a1, b0, b1;
		uint64_t sum = 0;

		a0 = zdtm_now(CLOCK_MONOTONIC);
		if (poll(&p, 1, 0) == 1)
			zdtm_check(read(tp, &ticks, 8) == 8, "periodic: read: %m");
		a1 = zdtm_now(CLOCK_MONOTONIC);
		while (zdtm_now(CLOCK_MONOTONIC) - a1 < 0.55)
			if (poll(&p, 1, 20) == 1 && read(tp, &ticks, 8) == 8)
				sum += ticks;
		b0 = zdtm_now(CLOCK_MONOTONIC);
		if (poll(&p, 1, 0) == 1 && read(tp, &ticks, 8) == 8)
			sum += ticks;
		b1 = zdtm_now(CLOCK_MONOTONIC);
		zdtm_check_period("periodic timerfd", sum, 0.1, a0, a1, b0, b1);
	}
	zdtm_pass();
}
