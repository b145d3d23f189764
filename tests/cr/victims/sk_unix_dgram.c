/*
 * Bound unix datagram sockets with datagrams queued from several senders:
 *
 *   A  bound to PATH          queue: "from-B-1" (B), "from-C" (C), "from-B-2 longer" (B)
 *   B  bound to @abstract     queue: "from-A" (A), "from-gone" (a socket closed since)
 *   C  unbound, connected to A by name
 *   D  unbound, unconnected
 *   E  bound to PATH2, which was unlinked since    queue: "to-E" (B)
 *
 * After restore each queue reads back message by message, with each sender's address
 * as recvfrom() reports it (B's abstract name, A's path, nothing for unbound senders);
 * C still sends to A without an address, sendto by name still reaches A and B, and the
 * names are what getsockname says (E's too, while PATH2 stays absent).
 */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../zdtm-unix.h"

static struct sockaddr_un a_sa, b_sa, e_sa;
static socklen_t a_len, b_len, e_len;

static int dgram(void)
{
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (s < 0)
		zdtm_fail("socket: %m");
	return s;
}

static void to(int s, const char *msg, const struct sockaddr_un *sa, socklen_t len)
{
	if (sendto(s, msg, strlen(msg), 0, (const void *)sa, len) != (ssize_t)strlen(msg))
		zdtm_fail("sendto '%s': %m", msg);
}

/* The next datagram is `want`, from `from` (NULL: an unbound sender). */
static void expect(int s, const char *want, const struct sockaddr_un *from, socklen_t flen, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	char buf[64] = { 0 };
	ssize_t n = recvfrom(s, buf, sizeof(buf), MSG_DONTWAIT, (void *)&sa, &len);

	zdtm_check(n == (ssize_t)strlen(want) && !memcmp(buf, want, n), "%s: got %zd '%s', want '%s'", what, n, buf,
		   want);
	if (from)
		zdtm_check(len == flen && !memcmp(&sa, from, flen), "%s: '%s' came from a name of %u bytes", what,
			   want, len);
	else
		zdtm_check(len == 0 || len == sizeof(sa_family_t), "%s: '%s' has a sender name (%u bytes)", what,
			   want, len);
}

static void empty(int s, const char *what)
{
	char c;

	zdtm_check(recv(s, &c, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "%s: more queued than sent", what);
}

int main(void)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int a, b, c, d, e, gone;
	struct stat st;

	zdtm_init();
	a_len = zdtm_scratch_sock(&a_sa, "a.sock");
	b_len = zdtm_abstract(&b_sa, "hacd-sk-unix-dgram-%d", zdtm_getpid());
	e_len = zdtm_scratch_sock(&e_sa, "e.sock");
	unlink(a_sa.sun_path);
	unlink(e_sa.sun_path);
	e = dgram();
	if (bind(e, (void *)&e_sa, e_len))
		zdtm_fail("bind E: %m");
	a = dgram();
	b = dgram();
	c = dgram();
	d = dgram();
	gone = dgram();
	if (bind(a, (void *)&a_sa, a_len) || bind(b, (void *)&b_sa, b_len) || connect(c, (void *)&a_sa, a_len))
		zdtm_fail("bind/connect: %m");
	to(b, "from-B-1", &a_sa, a_len);
	if (send(c, "from-C", 6, 0) != 6)
		zdtm_fail("send C: %m");
	to(b, "from-B-2 longer", &a_sa, a_len);
	to(a, "from-A", &b_sa, b_len);
	to(gone, "from-gone", &b_sa, b_len);
	close(gone);
	to(b, "to-E", &e_sa, e_len);
	unlink(e_sa.sun_path);
	zdtm_ready("a=%d b=%d c=%d d=%d e=%d", a, b, c, d, e);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	expect(a, "from-B-1", &b_sa, b_len, "A");
	expect(a, "from-C", NULL, 0, "A");
	expect(a, "from-B-2 longer", &b_sa, b_len, "A");
	empty(a, "A");
	expect(b, "from-A", &a_sa, a_len, "B");
	expect(b, "from-gone", NULL, 0, "B");
	empty(b, "B");
	empty(c, "C");
	empty(d, "D");
	expect(e, "to-E", &b_sa, b_len, "E");
	empty(e, "E");
	zdtm_check(lstat(e_sa.sun_path, &st) < 0 && errno == ENOENT, "%s is back", e_sa.sun_path);
	len = sizeof(sa);
	zdtm_check(!getsockname(e, (void *)&sa, &len) && len == e_len && !memcmp(&sa, &e_sa, e_len),
		   "E's name changed");
	zdtm_check(!getsockname(a, (void *)&sa, &len) && len == a_len && !memcmp(&sa, &a_sa, a_len),
		   "A's name changed");
	len = sizeof(sa);
	zdtm_check(!getsockname(b, (void *)&sa, &len) && len == b_len && !memcmp(&sa, &b_sa, b_len),
		   "B's name changed");
	len = sizeof(sa);
	zdtm_check(!getpeername(c, (void *)&sa, &len) && len == a_len && !memcmp(&sa, &a_sa, a_len),
		   "C is not connected to A any more");
	zdtm_check(send(c, "again-C", 7, 0) == 7, "C send: %m");
	expect(a, "again-C", NULL, 0, "A after");
	to(d, "D-to-B", &b_sa, b_len);
	expect(b, "D-to-B", NULL, 0, "B after");
	to(b, "B-to-A", &a_sa, a_len);
	expect(a, "B-to-A", &b_sa, b_len, "A after");
	zdtm_pass();
}
