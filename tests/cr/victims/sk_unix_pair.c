/*
 * Unix socketpairs of all three types in one process, with data queued in both
 * directions at the checkpoint: a stream carrying 100,000 bytes one way and a few the
 * other, datagram and seqpacket pairs holding messages of different lengths (one of
 * them empty), and a stream whose peer wrote and closed (data, then EOF). Options:
 * SO_PASSCRED, a raised SO_RCVBUF, SO_PEEK_OFF left at 0.
 *
 * After restore every queue reads back exactly, message by message for the datagram
 * kinds (boundaries kept), then is empty; each pair still carries new data both ways;
 * the orphaned stream reads its bytes, then EOF; options are as set.
 */
#include <fcntl.h>
#include <sys/socket.h>

#include "../zdtm.h"

#define BIG 100000

static unsigned char big[BIG];

static int opt(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, SOL_SOCKET, name, &v, &l);
	return v;
}

static const char *const msgs[] = { "one", "", "three-3", "a message of some length", "5" };
#define NR_MSGS (sizeof(msgs) / sizeof(msgs[0]))

static void send_msgs(int fd, const char *tag)
{
	char buf[64];

	for (size_t i = 0; i < NR_MSGS; i++) {
		int n = snprintf(buf, sizeof(buf), "%s%s", i == 1 ? "" : tag, msgs[i]);

		if (send(fd, buf, n, 0) != n)
			zdtm_fail("send %s %zu: %m", tag, i);
	}
}

static void check_msgs(int fd, const char *tag, const char *what)
{
	char buf[128], want[64];

	for (size_t i = 0; i < NR_MSGS; i++) {
		int n = snprintf(want, sizeof(want), "%s%s", i == 1 ? "" : tag, msgs[i]);
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		zdtm_check(r == n && !memcmp(buf, want, n), "%s: message %zu: got %zd bytes '%.*s', want '%s'",
			   what, i, r, r > 0 ? (int)r : 0, buf, want);
	}
	zdtm_check(recv(fd, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, "%s: more queued than sent",
		   what);
}

static void read_exact(int fd, void *buf, size_t n, const char *what)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, (char *)buf + got, n - got, MSG_DONTWAIT);

		zdtm_check(r > 0, "%s: read after %zu of %zu bytes: %zd %m", what, got, n, r);
		got += r;
	}
}

static void check_alive(int a, int b, const char *what)
{
	char buf[16] = { 0 };

	zdtm_check(send(a, "ping", 4, 0) == 4 && send(b, "pong", 4, 0) == 4, "%s: send after restore: %m", what);
	read_exact(b, buf, 4, what);
	zdtm_check(!memcmp(buf, "ping", 4), "%s: got '%s'", what, buf);
	read_exact(a, buf, 4, what);
	zdtm_check(!memcmp(buf, "pong", 4), "%s: got '%s'", what, buf);
}

int main(void)
{
	static unsigned char got[BIG];
	int st[2], dg[2], sp[2], orphan[2], zero = 0, rcv = 300000, rcv_now;
	char buf[16] = { 0 };

	zdtm_init();
	zdtm_fill(big, BIG, 5);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, st) || socketpair(AF_UNIX, SOCK_DGRAM, 0, dg) ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sp) || socketpair(AF_UNIX, SOCK_STREAM, 0, orphan))
		zdtm_fail("socketpair: %m");
	if (setsockopt(st[1], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv)) ||
	    setsockopt(dg[0], SOL_SOCKET, SO_PASSCRED, &(int){ 1 }, sizeof(int)) ||
	    setsockopt(sp[1], SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)))
		zdtm_fail("setsockopt: %m");
	rcv_now = opt(st[1], SO_RCVBUF);
	for (size_t off = 0; off < BIG;) {
		ssize_t n = send(st[0], big + off, BIG - off, 0);

		if (n <= 0)
			zdtm_fail("stream send: %m");
		off += n;
	}
	if (send(st[1], "back", 4, 0) != 4)
		zdtm_fail("stream send back: %m");
	send_msgs(dg[0], "d0:");
	send_msgs(dg[1], "d1:");
	send_msgs(sp[0], "s0:");
	send_msgs(sp[1], "s1:");
	if (send(orphan[0], "bye", 3, 0) != 3)
		zdtm_fail("orphan send: %m");
	close(orphan[0]);
	zdtm_ready("stream=%d,%d dgram=%d,%d seqpacket=%d,%d orphan=%d", st[0], st[1], dg[0], dg[1], sp[0], sp[1],
		   orphan[1]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(opt(st[0], SO_TYPE) == SOCK_STREAM && opt(dg[0], SO_TYPE) == SOCK_DGRAM &&
		   opt(sp[0], SO_TYPE) == SOCK_SEQPACKET, "socket types changed");
	zdtm_check(opt(st[1], SO_RCVBUF) == rcv_now, "SO_RCVBUF %d, want %d", opt(st[1], SO_RCVBUF), rcv_now);
	zdtm_check(opt(dg[0], SO_PASSCRED) == 1 && opt(dg[1], SO_PASSCRED) == 0, "SO_PASSCRED lost");
	zdtm_check(opt(sp[1], SO_PEEK_OFF) == 0 && opt(sp[0], SO_PEEK_OFF) == -1, "SO_PEEK_OFF %d/%d",
		   opt(sp[1], SO_PEEK_OFF), opt(sp[0], SO_PEEK_OFF));
	setsockopt(sp[1], SOL_SOCKET, SO_PEEK_OFF, &(int){ -1 }, sizeof(int));

	read_exact(st[1], got, BIG, "stream 0->1");
	zdtm_check(!memcmp(got, big, BIG), "stream 0->1: bytes differ");
	zdtm_check(recv(st[1], buf, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "stream 0->1: more than sent");
	read_exact(st[0], buf, 4, "stream 1->0");
	zdtm_check(!memcmp(buf, "back", 4), "stream 1->0: '%s'", buf);
	check_msgs(dg[1], "d0:", "dgram 0->1");
	check_msgs(dg[0], "d1:", "dgram 1->0");
	check_msgs(sp[1], "s0:", "seqpacket 0->1");
	check_msgs(sp[0], "s1:", "seqpacket 1->0");
	check_alive(st[0], st[1], "stream");
	check_alive(dg[0], dg[1], "dgram");
	check_alive(sp[0], sp[1], "seqpacket");
	memset(buf, 0, sizeof(buf));
	read_exact(orphan[1], buf, 3, "orphan");
	zdtm_check(!memcmp(buf, "bye", 3), "orphan: '%s'", buf);
	zdtm_check(recv(orphan[1], buf, 1, MSG_DONTWAIT) == 0, "orphan: no EOF after its peer closed");
	zdtm_pass();
}
