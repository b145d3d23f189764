/*
 * An epoll set over a mix of kinds that keeps firing after restore: a pipe's read end
 * (level-triggered, data = 1), an eventfd (edge-triggered, data = 2), a periodic
 * timerfd (20 ms, data = 3), a signalfd for SIGUSR1 (data = 4), a listening TCP
 * socket (data = 5; SO_REUSEADDR, as servers set it, so that the connection it made
 * before a --leave-running restore does not hold its port), and a one-shot watch on a second eventfd that already fired
 * (data = 6: disarmed, must stay silent). A second epoll fd watches only the pipe, with
 * EPOLLOUT on its write end (data = 7).
 * After restore each source is made ready in turn and epoll_wait must report exactly
 * it, with its data; the timer keeps firing.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>

#include "../zdtm.h"

static int ep;

static void add(int e, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(e, EPOLL_CTL_ADD, fd, &ev))
		zdtm_fail("epoll_ctl %d: %m", fd);
}

/* The set of data values epoll reports now (timer excluded unless asked). */
static uint64_t ready(int e, bool timer)
{
	struct epoll_event ev[16];
	uint64_t mask = 0;
	int n = epoll_wait(e, ev, 16, 50);

	for (int i = 0; i < n; i++)
		if (timer || ev[i].data.u64 != 3)
			mask |= 1ull << ev[i].data.u64;
	return mask;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct itimerspec its = { { 0, 20000000 }, { 0, 20000000 } };
	socklen_t len = sizeof(sa);
	int p[2], efd, efd2, tfd, sfd, lsk, ep2;
	uint64_t v = 1;
	sigset_t set;
	char c;

	zdtm_init();
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	ep = epoll_create1(0);
	ep2 = epoll_create1(EPOLL_CLOEXEC);
	efd = eventfd(0, EFD_NONBLOCK);
	efd2 = eventfd(0, EFD_NONBLOCK);
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	sfd = signalfd(-1, &set, SFD_NONBLOCK);
	lsk = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (ep < 0 || ep2 < 0 || pipe2(p, O_NONBLOCK) || efd < 0 || efd2 < 0 || tfd < 0 || sfd < 0 || lsk < 0)
		zdtm_fail("setup: %m");
	if (setsockopt(lsk, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) || bind(lsk, (void *)&sa, sizeof(sa)) || listen(lsk, 8) || getsockname(lsk, (void *)&sa, &len))
		zdtm_fail("listen: %m");
	add(ep, p[0], EPOLLIN, 1);
	add(ep, efd, EPOLLIN | EPOLLET, 2);
	add(ep, tfd, EPOLLIN, 3);
	add(ep, sfd, EPOLLIN, 4);
	add(ep, lsk, EPOLLIN, 5);
	add(ep, efd2, EPOLLIN | EPOLLONESHOT, 6);
	add(ep2, p[1], EPOLLOUT, 7);
	if (write(efd2, &v, 8) != 8 || ready(ep, false) != 1ull << 6 || read(efd2, &v, 8) != 8)
		zdtm_fail("one-shot did not fire");
	if (write(efd2, &v, 8) != 8)	/* ready again, but the watch is spent */
		zdtm_fail("efd2: %m");
	if (timerfd_settime(tfd, 0, &its, NULL))
		zdtm_fail("timerfd: %m");
	zdtm_ready("ep=%d ep2=%d port=%d", ep, ep2, ntohs(sa.sin_port));
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(ready(ep, false) == 0, "something ready before we did anything: %#llx",
		   (unsigned long long)ready(ep, false));
	zdtm_check(write(p[1], "x", 1) == 1 && ready(ep, false) == 1ull << 1, "pipe not reported");
	zdtm_check(ready(ep, false) == 1ull << 1, "level-triggered pipe reported once only");
	zdtm_check(read(p[0], &c, 1) == 1 && ready(ep, false) == 0, "pipe still ready");
	zdtm_check(write(efd, &v, 8) == 8 && ready(ep, false) == 1ull << 2, "eventfd not reported");
	zdtm_check(ready(ep, false) == 0, "edge-triggered eventfd reported twice");
	zdtm_check(read(efd, &v, 8) == 8, "eventfd read");
	zdtm_tkill(zdtm_gettid(), SIGUSR1);
	zdtm_check(ready(ep, false) == 1ull << 4, "signalfd not reported");
	{
		struct signalfd_siginfo si;

		zdtm_check(read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1, "signalfd read");
	}
	{
		int c2 = socket(AF_INET, SOCK_STREAM, 0);

		zdtm_check(c2 >= 0 && !connect(c2, (void *)&sa, sizeof(sa)), "connect to the listener: %m");
		zdtm_check(ready(ep, false) == 1ull << 5, "listener not reported");
		int a = accept(lsk, NULL, NULL);

		zdtm_check(a >= 0, "accept: %m");
		close(a);
		close(c2);
	}
	/* The timer keeps firing: epoll reports it 5 times, and its expirations meanwhile
	 * match its 20 ms period (bounds from the clock around the first and the last
	 * read, zdtm_check_period; not a count in a fixed time, which a victim
	 * descheduled under load misses). */
	{
		double a0, a1, b0, b1, hang;
		uint64_t sum = 0;
		int n = 0;

		a0 = zdtm_now(CLOCK_MONOTONIC);
		if (read(tfd, &v, 8) != 8)
			zdtm_check(errno == EAGAIN, "timerfd read: %m");
		a1 = zdtm_now(CLOCK_MONOTONIC);
		hang = a1 + 60;	/* a hang guard, not a timing check */
		while (n < 5 && zdtm_now(CLOCK_MONOTONIC) < hang)
			if (ready(ep, true) & (1ull << 3)) {
				n++;
				if (read(tfd, &v, 8) == 8)
					sum += v;
			}
		zdtm_check(n >= 5, "timer reported %d times in 60 s", n);
		b0 = zdtm_now(CLOCK_MONOTONIC);
		if (read(tfd, &v, 8) == 8)
			sum += v;
		b1 = zdtm_now(CLOCK_MONOTONIC);
		zdtm_check_period("epoll's timerfd", sum, 0.02, a0, a1, b0, b1);
	}
	zdtm_check(ready(ep2, true) == 1ull << 7, "second epoll: pipe write end not writable");
	zdtm_check(fcntl(ep2, F_GETFD) == FD_CLOEXEC, "ep2 lost FD_CLOEXEC");
	zdtm_pass();
}
