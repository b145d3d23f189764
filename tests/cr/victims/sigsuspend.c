/*
 * Blocked in sigsuspend(): the normal mask blocks SIGTERM, SIGUSR1, SIGUSR2 and SIGHUP;
 * SIGUSR2 is pending. sigsuspend() runs with a temporary mask of SIGHUP and SIGUSR2
 * only. After restore the runner's SIGTERM must end the sigsuspend through the handler
 * (not a spurious return), the normal mask must be back afterwards (not the temporary
 * one), SIGUSR2 still pending, and delivered once unblocked.
 */
#include "../zdtm.h"

static volatile int usr2;

static void on_usr2(int sig)
{
	(void)sig;
	usr2++;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr2 };
	sigset_t normal, tmp, cur, pend;
	int r, e;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	sigemptyset(&normal);
	sigaddset(&normal, SIGTERM);
	sigaddset(&normal, SIGUSR1);
	sigaddset(&normal, SIGUSR2);
	sigaddset(&normal, SIGHUP);
	sigprocmask(SIG_SETMASK, &normal, NULL);
	kill(zdtm_getpid(), SIGUSR2);
	sigemptyset(&tmp);
	sigaddset(&tmp, SIGHUP);
	sigaddset(&tmp, SIGUSR2);
	zdtm_ready("blocks=rt_sigsuspend wake=term");
	r = sigsuspend(&tmp);
	e = errno;
	zdtm_check(r == -1 && e == EINTR, "sigsuspend returned %d (%s)", r, strerror(e));
	zdtm_check(zdtm_stop, "sigsuspend returned but the SIGTERM handler did not run");
	sigprocmask(SIG_BLOCK, NULL, &cur);
	for (int s = 1; s < NSIG; s++)
		zdtm_check(sigismember(&cur, s) == sigismember(&normal, s),
			   "signal %d %s after sigsuspend: the temporary mask stuck", s,
			   sigismember(&cur, s) ? "blocked" : "unblocked");
	sigpending(&pend);
	zdtm_check(sigismember(&pend, SIGUSR2), "pending SIGUSR2 lost");
	zdtm_check(!usr2, "SIGUSR2 delivered while blocked");
	sigprocmask(SIG_UNBLOCK, &tmp, NULL);
	zdtm_check(usr2 == 1, "SIGUSR2 delivered %d times after unblocking", usr2);
	zdtm_pass();
}
