/*
 * signalfds: one for SIGUSR1|SIGUSR2, one for SIGRTMIN+3 (non-blocking), the signals
 * blocked. After restore: the masks are back (a signal sent now is read from the right
 * fd with its value), and the other fd sees nothing.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/signalfd.h>

#include "../zdtm.h"

int main(void)
{
	struct signalfd_siginfo si;
	sigset_t a, b, all;
	int fa, fb;

	zdtm_init();
	sigemptyset(&a);
	sigaddset(&a, SIGUSR1);
	sigaddset(&a, SIGUSR2);
	sigemptyset(&b);
	sigaddset(&b, SIGRTMIN + 3);
	all = a;
	sigaddset(&all, SIGRTMIN + 3);
	sigprocmask(SIG_BLOCK, &all, NULL);
	fa = signalfd(-1, &a, 0);
	fb = signalfd(-1, &b, SFD_NONBLOCK);
	if (fa < 0 || fb < 0)
		zdtm_fail("signalfd: %m");
	zdtm_ready("fa=%d fb=%d", fa, fb);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(read(fb, &si, sizeof(si)) == -1 && errno == EAGAIN, "fb had a signal");
	zdtm_tkill(zdtm_gettid(), SIGUSR2);
	zdtm_check(read(fb, &si, sizeof(si)) == -1 && errno == EAGAIN, "fb read SIGUSR2");
	zdtm_check(read(fa, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR2, "fa: signal %u",
		   si.ssi_signo);
	{
		union sigval sv = { .sival_int = 77 };

		sigqueue(zdtm_getpid(), SIGRTMIN + 3, sv);
	}
	zdtm_check(read(fb, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == (unsigned)SIGRTMIN + 3 &&
		   si.ssi_int == 77, "fb: signal %u value %d", si.ssi_signo, si.ssi_int);
	zdtm_check(fcntl(fb, F_GETFL) & O_NONBLOCK, "fb lost O_NONBLOCK");
	zdtm_pass();
}
