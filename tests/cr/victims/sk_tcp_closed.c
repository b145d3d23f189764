/*
 * An established TCP connection across the dump: restored closed, by policy. We hold
 * a listener (SO_REUSEADDR, or the original's connections would hold its port), a client socket connected to it and the accepted server end, with 5
 * bytes in flight. The original (no checkpoint, or --leave-running) still has its
 * connection: the bytes arrive. A restored copy finds both ends in TCP_CLOSE, and
 * then: both read EOF, writing fails with EPIPE, epoll reports EPOLLIN|EPOLLHUP|
 * EPOLLRDHUP. Either way the listener accepts a new connection.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "../zdtm.h"

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) ? -1 : ti.tcpi_state;
}

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int l, c, a, ep;
	char buf[8];

	zdtm_init();
	signal(SIGPIPE, SIG_IGN);
	l = socket(AF_INET, SOCK_STREAM, 0);
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || c < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &(int){ 1 }, sizeof(int)) || bind(l, (void *)&sa, sizeof(sa)) || listen(l, 4) ||
	    getsockname(l, (void *)&sa, &len) || connect(c, (void *)&sa, sizeof(sa)))
		zdtm_fail("setup: %m");
	a = accept(l, NULL, NULL);
	if (a < 0 || write(c, "hello", 5) != 5)
		zdtm_fail("accept: %m");
	zdtm_ready("l=%d c=%d a=%d port=%d", l, c, a, ntohs(sa.sin_port));
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	if (tcp_state(c) == TCP_ESTABLISHED) {
		zdtm_check(tcp_state(a) == TCP_ESTABLISHED, "server end in state %d", tcp_state(a));
		zdtm_check(read(a, buf, 5) == 5 && !memcmp(buf, "hello", 5), "bytes in flight lost");
		goto listener;
	}
	zdtm_check(tcp_state(c) == TCP_CLOSE && tcp_state(a) == TCP_CLOSE, "restored in states %d, %d",
		   tcp_state(c), tcp_state(a));
	ep = epoll_create1(0);
	{
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = c };

		zdtm_check(!epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev), "epoll_ctl: %m");
	}
	zdtm_check(write(c, "x", 1) == -1 && errno == EPIPE, "write to a closed connection: %m");
	zdtm_check(read(c, buf, 1) == 0 && read(a, buf, 8) == 0, "closed connection does not read EOF");
	{
		struct epoll_event ev;

		zdtm_check(epoll_wait(ep, &ev, 1, 0) == 1 && (ev.events & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) ==
			   (EPOLLIN | EPOLLHUP | EPOLLRDHUP), "epoll events %#x", ev.events);
	}
listener:
	{
		int c2 = socket(AF_INET, SOCK_STREAM, 0), a2;

		zdtm_check(c2 >= 0 && !connect(c2, (void *)&sa, sizeof(sa)), "reconnect: %m");
		a2 = accept(l, NULL, NULL);
		zdtm_check(a2 >= 0 && write(c2, "hi", 2) == 2 && read(a2, buf, 2) == 2, "new connection: %m");
	}
	zdtm_pass();
}
