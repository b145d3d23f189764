/*
 * A unix datagram socket connected to a name outside the dumped tree: the echo server
 * G is a grandchild we orphaned, so it is not part of the checkpoint. The dump keeps
 * the peer's name and restore connects the socket to it again: after restore a ping
 * sent without an address still reaches G, whose pong comes back to our bound socket.
 * (Registered as cr_self_ and cr_ only: G lives through one checkpoint, not two runs.)
 */
#include <poll.h>

#include "../zdtm-unix.h"

static socklen_t abstract(struct sockaddr_un *sa, const char *what, int pid)
{
	return zdtm_abstract(sa, "hacd-dgout-%s-%d", what, pid);
}

static void __attribute__((noreturn)) echo_server(void *arg, int ready)
{
	int vpid = *(const int *)arg;
	struct sockaddr_un g, v;
	socklen_t gl = abstract(&g, "g", vpid), vl = abstract(&v, "v", vpid);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	char buf[16];
	ssize_t n;

	if (s < 0 || bind(s, (void *)&g, gl) || write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	while ((n = recv(s, buf, sizeof(buf), 0)) >= 0) {
		if (n == 3 && !memcmp(buf, "bye", 3))
			_exit(0);
		if (n == 4 && !memcmp(buf, "ping", 4))
			sendto(s, "pong", 4, 0, (void *)&v, vl);
	}
	_exit(1);
}

static void ping(int d, int v, const char *when)
{
	struct pollfd pfd = { .fd = v, .events = POLLIN };
	char buf[8] = { 0 };

	zdtm_check(send(d, "ping", 4, 0) == 4, "%s: send to the outside server: %m", when);
	zdtm_check(poll(&pfd, 1, 20000) == 1, "%s: no answer from the outside server", when);
	zdtm_check(recv(v, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "pong", 4), "%s: answer '%s'", when, buf);
}

int main(void)
{
	struct sockaddr_un g, vsa;
	socklen_t gl, vl;
	int d, v, me;

	zdtm_init();
	me = zdtm_getpid();
	gl = abstract(&g, "g", me);
	vl = abstract(&vsa, "v", me);
	zdtm_outside(echo_server, &me);
	d = socket(AF_UNIX, SOCK_DGRAM, 0);
	v = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (d < 0 || v < 0 || bind(v, (void *)&vsa, vl) || connect(d, (void *)&g, gl))
		zdtm_fail("socket: %m");
	ping(d, v, "before");
	zdtm_ready("d=%d v=%d", d, v);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	ping(d, v, "after");
	send(d, "bye", 3, 0);
	zdtm_pass();
}
