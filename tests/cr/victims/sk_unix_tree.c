/*
 * Unix socketpairs across two processes, the way pre-forking servers hold them: R and
 * its child A each hold one end of a stream, a seqpacket and a datagram pair, with
 * data queued both ways; a fourth pair's end h0 is one description shared by both
 * processes (inherited), and both wrote into it.
 *
 * After restore each side reads exactly what the other queued (messages whole, in
 * order), the pairs still join the two processes (A answers R after restore), R reads
 * from h1 what both wrote into the shared end, and once A exits R's stream reads EOF.
 */
#include <sys/socket.h>

#include "../zdtm.h"

static void expect(int fd, const char *want, const char *what)
{
	char buf[64] = { 0 };
	size_t n = strlen(want), got = 0;

	while (got < n) {
		ssize_t r = recv(fd, buf + got, n - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		zdtm_check(r > 0, "%s: recv: %zd %m", what, r);
		got += r;
	}
	zdtm_check(!memcmp(buf, want, n), "%s: got '%s', want '%s'", what, buf, want);
}

/* Datagram kinds: the next message is exactly want. */
static void expect_msg(int fd, const char *want, const char *what)
{
	char buf[64] = { 0 };
	ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

	zdtm_check(r == (ssize_t)strlen(want) && !memcmp(buf, want, r), "%s: got %zd '%s', want '%s'", what, r, buf,
		   want);
}

static void put(int fd, const char *s, const char *what)
{
	if (send(fd, s, strlen(s), 0) != (ssize_t)strlen(s))
		zdtm_fail("%s: send: %m", what);
}

int main(void)
{
	int s[2], q[2], g[2], h[2], st;
	char c;
	pid_t a;

	zdtm_init();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) || socketpair(AF_UNIX, SOCK_SEQPACKET, 0, q) ||
	    socketpair(AF_UNIX, SOCK_DGRAM, 0, g) || socketpair(AF_UNIX, SOCK_STREAM, 0, h))
		zdtm_fail("socketpair: %m");
	a = fork();
	if (a == 0) {
		zdtm_child_init();
		close(s[0]);
		close(q[0]);
		close(g[0]);
		close(h[1]);
		put(h[0], "A-h.", "A h0");
		put(s[1], "A-stream", "A s");
		put(q[1], "A-q1", "A q");
		put(q[1], "A-q2-longer", "A q");
		put(g[1], "A-g1", "A g");
		put(g[1], "A-g2-longer", "A g");
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		expect(s[1], "R-stream", "A s");
		expect_msg(q[1], "R-q1", "A q");
		expect_msg(q[1], "R-q2-longer", "A q");
		expect_msg(g[1], "R-g1", "A g");
		expect_msg(g[1], "R-g2-longer", "A g");
		put(s[1], "A-after", "A s");
		put(q[1], "A-q-after", "A q");
		put(g[1], "A-g-after", "A g");
		exit(0);
	}
	close(s[1]);
	close(q[1]);
	close(g[1]);
	/* A's bytes in h0 first: wait for them before ours. */
	while (recv(s[0], &c, 1, MSG_PEEK) != 1)
		;
	put(h[0], "R-h.", "R h0");
	put(s[0], "R-stream", "R s");
	put(q[0], "R-q1", "R q");
	put(q[0], "R-q2-longer", "R q");
	put(g[0], "R-g1", "R g");
	put(g[0], "R-g2-longer", "R g");
	zdtm_ready("a=%d h0=%d", a, h[0]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	expect(s[0], "A-stream", "R s");
	expect_msg(q[0], "A-q1", "R q");
	expect_msg(q[0], "A-q2-longer", "R q");
	expect_msg(g[0], "A-g1", "R g");
	expect_msg(g[0], "A-g2-longer", "R g");
	expect(h[1], "A-h.R-h.", "R h1");
	kill(a, SIGTERM);
	st = zdtm_reap(a);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "A %d ended with %#x", a, st);
	expect(s[0], "A-after", "R s after");
	zdtm_check(recv(s[0], &c, 1, MSG_DONTWAIT) == 0, "R s: no EOF after A exited");
	expect_msg(q[0], "A-q-after", "R q after");
	expect_msg(g[0], "A-g-after", "R g after");
	zdtm_pass();
}
