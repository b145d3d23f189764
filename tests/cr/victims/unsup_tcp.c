/*
 * Holds a TCP socket (listening on 127.0.0.1, a free port): not dumpable yet. A dump
 * must refuse it, saying which pid, which fd and what kind, and leave us running. After
 * that the socket still works: a connection to it is accepted and carries data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "../zdtm.h"

int main(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	char buf[8] = { 0 };
	int l, c, a;

	zdtm_init();
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (void *)&sa, sizeof(sa)) || listen(l, 4) || getsockname(l, (void *)&sa, &len))
		zdtm_fail("listen: %m");
	zdtm_ready("bad_fd=%d kind=tcp|inet|socket port=%d", l, ntohs(sa.sin_port));
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	c = socket(AF_INET, SOCK_STREAM, 0);
	zdtm_check(c >= 0 && !connect(c, (void *)&sa, sizeof(sa)), "connect: %m");
	a = accept(l, NULL, NULL);
	zdtm_check(a >= 0, "accept: %m");
	zdtm_check(write(c, "ping", 4) == 4 && read(a, buf, 4) == 4 && !strcmp(buf, "ping"), "data over TCP: %m");
	zdtm_pass();
}
