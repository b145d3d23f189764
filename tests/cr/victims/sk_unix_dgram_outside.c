/*
 * A unix datagram socket connected to a name outside the dumped tree: the echo server
 * G is a grandchild we orphaned, so it is not part of the checkpoint. The dump keeps
 * the peer's name and restore connects the socket to it again: after restore a ping
 * sent without an address still reaches G, whose pong comes back to our bound socket.
 * (Registered as cr_self_ and cr_ only: G lives through one checkpoint, not two runs.)
 */
#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../zdtm.h"

static socklen_t abstract(struct sockaddr_un *sa, const char *what, int pid)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, "hacd-dgout-%s-%d", what, pid);
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa->sun_path + 1);
}

static void __attribute__((noreturn)) echo_server(int vpid, int ready)
{
	struct sockaddr_un g, v;
	socklen_t gl = abstract(&g, "g", vpid), vl = abstract(&v, "v", vpid);
	int s = socket(AF_UNIX, SOCK_DGRAM, 0);
	char buf[16];
	ssize_t n;

	alarm(120);	/* never outlive a test that went wrong */
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
	int p[2], d, v, st;
	char c;
	pid_t b, me = zdtm_getpid();

	zdtm_init();
	gl = abstract(&g, "g", zdtm_getpid());
	vl = abstract(&vsa, "v", zdtm_getpid());
	if (pipe(p))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b == 0) {
		zdtm_child_init();
		close(p[0]);
		if (fork() == 0)
			echo_server(me, p[1]);
		_exit(0);
	}
	close(p[1]);
	st = zdtm_reap(b);
	if (!WIFEXITED(st) || read(p[0], &c, 1) != 1)
		zdtm_fail("the outside echo server did not start");
	close(p[0]);
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
