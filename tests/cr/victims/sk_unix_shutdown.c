/*
 * Shut-down unix sockets:
 *   stream x -> y   x wrote "data" then shut down writing: y reads it, then EOF; x's
 *                   writes fail with EPIPE; y still writes to x
 *   seqpacket p, q  p shut down reading: q's sends fail with EPIPE, p still sends to q
 *   stream r, s     r shut down both ways: r reads EOF and cannot write, s reads EOF
 * After restore every one of these holds as it did before the checkpoint.
 */
#include <sys/socket.h>

#include "../zdtm.h"

static void check_state(int x, int y, int p, int q, int r, int s, const char *when)
{
	char buf[16] = { 0 };

	zdtm_check(send(x, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "%s: x writes after SHUT_WR (%m)", when);
	zdtm_check(send(q, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "%s: q sends to p after p's SHUT_RD (%m)",
		   when);
	zdtm_check(recv(p, buf, 1, MSG_DONTWAIT) == 0, "%s: p reads other than EOF (%m)", when);
	zdtm_check(send(r, "z", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "%s: r writes after SHUT_RDWR (%m)", when);
	zdtm_check(recv(r, buf, 1, MSG_DONTWAIT) == 0, "%s: r reads other than EOF", when);
	zdtm_check(recv(s, buf, 1, MSG_DONTWAIT) == 0, "%s: s reads other than EOF", when);
	(void)y;
}

int main(void)
{
	int st[2], sp[2], rs[2];
	char buf[16] = { 0 };

	zdtm_init();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, rs))
		zdtm_fail("socketpair: %m");
	if (send(st[0], "data", 4, 0) != 4 || shutdown(st[0], SHUT_WR) || shutdown(sp[0], SHUT_RD) ||
	    shutdown(rs[0], SHUT_RDWR))
		zdtm_fail("send/shutdown: %m");
	check_state(st[0], st[1], sp[0], sp[1], rs[0], rs[1], "before");
	zdtm_ready("x=%d y=%d p=%d q=%d r=%d s=%d", st[0], st[1], sp[0], sp[1], rs[0], rs[1]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	check_state(st[0], st[1], sp[0], sp[1], rs[0], rs[1], "after");
	zdtm_check(recv(st[1], buf, sizeof(buf), MSG_DONTWAIT) == 4 && !memcmp(buf, "data", 4), "y: '%s'", buf);
	zdtm_check(recv(st[1], buf, 1, MSG_DONTWAIT) == 0, "y: no EOF after x's SHUT_WR");
	zdtm_check(send(st[1], "back", 4, MSG_NOSIGNAL) == 4, "y cannot write to x: %m");
	zdtm_check(recv(st[0], buf, sizeof(buf), MSG_DONTWAIT) == 4 && !memcmp(buf, "back", 4), "x: '%s'", buf);
	zdtm_check(send(sp[0], "ok", 2, MSG_NOSIGNAL) == 2, "p cannot send to q: %m");
	zdtm_check(recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT) == 2 && !memcmp(buf, "ok", 2), "q: '%s'", buf);
	zdtm_pass();
}
