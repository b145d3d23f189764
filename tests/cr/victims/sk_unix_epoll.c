/*
 * An epoll set over unix sockets, level-triggered:
 *   1  a stream end with bytes queued          EPOLLIN   ready
 *   2  a listener with a connection waiting    EPOLLIN   ready
 *   3  a datagram socket, nothing queued       EPOLLIN   not ready
 *   4  the other stream end                    EPOLLOUT  ready
 * After restore epoll_wait reports exactly 1, 2 and 4 with their data; a datagram
 * makes 3 fire; draining 1 and accepting on 2 make them quiet again.
 */
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../zdtm-unix.h"

static unsigned ready_set(int ep)
{
	struct epoll_event ev[8];
	unsigned set = 0;
	int n = epoll_wait(ep, ev, 8, 0);

	zdtm_check(n >= 0, "epoll_wait: %m");
	for (int i = 0; i < n; i++) {
		zdtm_check(ev[i].data.u64 >= 1 && ev[i].data.u64 <= 4, "unknown data %llu",
			   (unsigned long long)ev[i].data.u64);
		set |= 1u << ev[i].data.u64;
	}
	return set;
}

static void watch(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev))
		zdtm_fail("epoll_ctl %d: %m", fd);
}

int main(void)
{
	struct sockaddr_un sa;
	socklen_t len;
	int sv[2], l, cl, d, ep, a;
	char buf[8];
	unsigned want = 1u << 1 | 1u << 2 | 1u << 4, got;

	zdtm_init();
	len = zdtm_abstract(&sa, "hacd-sk-unix-epoll-%d", zdtm_getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || (l = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    bind(l, (void *)&sa, len) || listen(l, 4) || (cl = socket(AF_UNIX, SOCK_STREAM, 0)) < 0 ||
	    connect(cl, (void *)&sa, len) || (d = socket(AF_UNIX, SOCK_DGRAM, 0)) < 0 ||
	    (ep = epoll_create1(0)) < 0 || write(sv[1], "hello", 5) != 5)
		zdtm_fail("setup: %m");
	watch(ep, sv[0], EPOLLIN, 1);
	watch(ep, l, EPOLLIN, 2);
	watch(ep, d, EPOLLIN, 3);
	watch(ep, sv[1], EPOLLOUT, 4);
	got = ready_set(ep);
	zdtm_check(got == want, "before: ready %#x, want %#x", got, want);
	zdtm_ready("epoll=%d", ep);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	got = ready_set(ep);
	zdtm_check(got == want, "after restore: ready %#x, want %#x", got, want);
	{
		struct sockaddr_un ds;
		int s = socket(AF_UNIX, SOCK_DGRAM, 0);

		len = zdtm_abstract(&ds, "hacd-sk-unix-epoll-d-%d", zdtm_getpid());
		zdtm_check(!bind(d, (void *)&ds, len) && sendto(s, "x", 1, 0, (void *)&ds, len) == 1, "dgram: %m");
	}
	got = ready_set(ep);
	zdtm_check(got == (want | 1u << 3), "after a datagram: ready %#x", got);
	zdtm_check(read(sv[0], buf, sizeof(buf)) == 5 && !memcmp(buf, "hello", 5), "stream data");
	zdtm_check((a = accept(l, NULL, NULL)) >= 0, "accept: %m");
	zdtm_check(recv(d, buf, sizeof(buf), 0) == 1, "datagram");
	got = ready_set(ep);
	zdtm_check(got == 1u << 4, "after draining: ready %#x", got);
	zdtm_pass();
}
