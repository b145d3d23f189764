/*
 * TCP and UDP sockets with their options: a TCP listener on 127.0.0.1 (SO_REUSEADDR,
 * backlog 7, TCP_NODELAY), an IPv6 TCP listener on ::1 with IPV6_V6ONLY and
 * SO_REUSEPORT, a bound UDP socket, a UDP socket connected to the first one, and a
 * TCP socket never bound. After restore: same addresses and options, the listeners
 * accept connections that carry data, a datagram from the connected UDP socket reaches
 * the bound one.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "../zdtm.h"

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, level, name, &v, &l);
	return v;
}

static void check_accepts(int l, struct sockaddr *sa, socklen_t len, int family)
{
	char buf[8] = { 0 };
	int c = socket(family, SOCK_STREAM, 0), a;

	zdtm_check(c >= 0 && !connect(c, sa, len), "connect: %m");
	a = accept(l, NULL, NULL);
	zdtm_check(a >= 0, "accept: %m");
	zdtm_check(write(c, "ping", 4) == 4 && read(a, buf, 4) == 4 && !strcmp(buf, "ping"), "data over TCP: %m");
	close(a);
	close(c);
}

int main(void)
{
	struct sockaddr_in t4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, u4 = t4, a4;
	struct sockaddr_in6 t6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT }, a6;
	socklen_t len = sizeof(t4), len6 = sizeof(t6);
	int l4, l6, us, uc, fresh, one = 1;
	char buf[16] = { 0 };

	zdtm_init();
	l4 = socket(AF_INET, SOCK_STREAM, 0);
	l6 = socket(AF_INET6, SOCK_STREAM, 0);
	us = socket(AF_INET, SOCK_DGRAM, 0);
	uc = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	fresh = socket(AF_INET, SOCK_STREAM, 0);
	if (l4 < 0 || l6 < 0 || us < 0 || uc < 0 || fresh < 0)
		zdtm_fail("socket: %m");
	setsockopt(l4, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(l4, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(l6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(l6, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(l4, (void *)&t4, sizeof(t4)) || listen(l4, 7) || getsockname(l4, (void *)&t4, &len))
		zdtm_fail("l4: %m");
	if (bind(l6, (void *)&t6, sizeof(t6)) || listen(l6, 3) || getsockname(l6, (void *)&t6, &len6))
		zdtm_fail("l6: %m");
	len = sizeof(u4);
	if (bind(us, (void *)&u4, sizeof(u4)) || getsockname(us, (void *)&u4, &len) ||
	    connect(uc, (void *)&u4, sizeof(u4)))
		zdtm_fail("udp: %m");
	zdtm_ready("l4=%d l6=%d port4=%d port6=%d udp=%d", l4, l6, ntohs(t4.sin_port), ntohs(t6.sin6_port),
		   ntohs(u4.sin_port));
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	len = sizeof(a4);
	zdtm_check(!getsockname(l4, (void *)&a4, &len) && a4.sin_port == t4.sin_port &&
		   a4.sin_addr.s_addr == t4.sin_addr.s_addr, "l4 address");
	len6 = sizeof(a6);
	zdtm_check(!getsockname(l6, (void *)&a6, &len6) && a6.sin6_port == t6.sin6_port, "l6 address");
	zdtm_check(opt(l4, SOL_SOCKET, SO_ACCEPTCONN) == 1 && opt(l6, SOL_SOCKET, SO_ACCEPTCONN) == 1, "not listening");
	zdtm_check(opt(l4, SOL_SOCKET, SO_REUSEADDR) == 1 && opt(l4, IPPROTO_TCP, TCP_NODELAY) == 1, "l4 options");
	zdtm_check(opt(l6, IPPROTO_IPV6, IPV6_V6ONLY) == 1 && opt(l6, SOL_SOCKET, SO_REUSEPORT) == 1 &&
		   opt(l6, SOL_SOCKET, SO_REUSEADDR) == 0, "l6 options");
	zdtm_check(opt(us, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM, "udp type");
	zdtm_check(opt(fresh, SOL_SOCKET, SO_ACCEPTCONN) == 0, "fresh socket listens");
	check_accepts(l4, (void *)&t4, sizeof(t4), AF_INET);
	check_accepts(l6, (void *)&t6, sizeof(t6), AF_INET6);
	zdtm_check(send(uc, "dgram", 5, 0) == 5, "udp send: %m");
	zdtm_check(recv(us, buf, sizeof(buf), 0) == 5 && !strcmp(buf, "dgram"), "udp recv: %m");
	zdtm_pass();
}
