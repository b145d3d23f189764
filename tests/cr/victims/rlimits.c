/*
 * Resource limits: every rlimit lowered, soft below hard. After restore getrlimit
 * answers exactly the same for all 16, and RLIMIT_NOFILE is in force: dup2 to fd 250
 * fails with EBADF under the soft limit of 200, and works once the soft limit is raised
 * to the hard 300.
 */
#include <fcntl.h>
#include <sys/resource.h>

#include "../zdtm.h"

static struct { int res; rlim_t soft, hard; } lims[] = {
	{ RLIMIT_CPU, 100000, 200000 },
	{ RLIMIT_FSIZE, 1ul << 30, 2ul << 30 },
	{ RLIMIT_DATA, 8ul << 30, 16ul << 30 },
	{ RLIMIT_STACK, 6ul << 20, 7ul << 20 },
	{ RLIMIT_CORE, 0, 1 << 20 },
	{ RLIMIT_RSS, 1ul << 30, 2ul << 30 },
	{ RLIMIT_NPROC, 5000, 6000 },
	{ RLIMIT_NOFILE, 200, 300 },
	{ RLIMIT_MEMLOCK, 1 << 20, 2 << 20 },
	{ RLIMIT_AS, 64ul << 30, 128ul << 30 },
	{ RLIMIT_LOCKS, 100, 200 },
	{ RLIMIT_SIGPENDING, 1000, 2000 },
	{ RLIMIT_MSGQUEUE, 100000, 200000 },
	{ RLIMIT_NICE, 10, 20 },
	{ RLIMIT_RTPRIO, 5, 10 },
	{ RLIMIT_RTTIME, 1000000, 2000000 },
};
#define NR (sizeof(lims) / sizeof(lims[0]))

int main(void)
{
	struct rlimit r;

	zdtm_init();
	for (size_t i = 0; i < NR; i++) {
		struct rlimit want, cur;

		getrlimit(lims[i].res, &cur);
		/* Only lower: without CAP_SYS_RESOURCE a hard limit cannot go up (NICE and
		 * RTPRIO usually start at 0/0). */
		if (cur.rlim_max != RLIM_INFINITY && lims[i].hard > cur.rlim_max)
			lims[i].hard = cur.rlim_max;
		if (lims[i].soft > lims[i].hard)
			lims[i].soft = lims[i].hard;
		want.rlim_cur = lims[i].soft;
		want.rlim_max = lims[i].hard;
		if (setrlimit(lims[i].res, &want))
			zdtm_fail("setrlimit %d: %m", lims[i].res);
	}
	zdtm_ready("rlimits=%zu", NR);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	for (size_t i = 0; i < NR; i++) {
		getrlimit(lims[i].res, &r);
		zdtm_check(r.rlim_cur == lims[i].soft && r.rlim_max == lims[i].hard,
			   "rlimit %d: %lu/%lu, want %lu/%lu", lims[i].res, (unsigned long)r.rlim_cur,
			   (unsigned long)r.rlim_max, (unsigned long)lims[i].soft, (unsigned long)lims[i].hard);
	}
	zdtm_check(dup2(0, 250) == -1 && errno == EBADF, "dup2 to fd 250 past RLIMIT_NOFILE 200 worked");
	r.rlim_cur = r.rlim_max = 300;
	zdtm_check(!setrlimit(RLIMIT_NOFILE, &r), "raising the soft NOFILE to the hard: %m");
	zdtm_check(dup2(0, 250) == 250, "dup2 to fd 250 under NOFILE 300: %m");
	zdtm_pass();
}
