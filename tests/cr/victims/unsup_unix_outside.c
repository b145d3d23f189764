/*
 * A unix stream socket connected to a process outside the dumped tree (a grandchild
 * we orphaned: it belongs to whoever reaps orphans, not to us): its peer cannot be
 * restored, so the dump must refuse it, naming pid, fd and kind, and leave us running
 * with the connection intact: afterwards the outside process still echoes what we send.
 */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../zdtm.h"

static void __attribute__((noreturn)) echo_server(const struct sockaddr_un *sa, socklen_t len, int ready)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c;
	char buf[64];
	ssize_t n;

	alarm(120);	/* never outlive a test that went wrong */
	if (l < 0 || bind(l, (const void *)sa, len) || listen(l, 1))
		_exit(1);
	if (write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	c = accept(l, NULL, NULL);
	while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
		if (write(c, buf, n) != n)
			break;
	_exit(0);
}

int main(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len;
	int p[2], s, st;
	char buf[8] = { 0 };
	pid_t b;

	zdtm_init();
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "hacd-unsup-outside-%d", zdtm_getpid());
	len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1);
	if (pipe(p))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b == 0) {
		zdtm_child_init();
		close(p[0]);
		if (fork() == 0)
			echo_server(&sa, len, p[1]);
		_exit(0);
	}
	close(p[1]);
	st = zdtm_reap(b);
	if (!WIFEXITED(st) || read(p[0], buf, 1) != 1)
		zdtm_fail("the outside echo server did not start");
	close(p[0]);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (void *)&sa, len))
		zdtm_fail("connect: %m");
	zdtm_ready("bad_fd=%d kind=unix", s);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(write(s, "ping", 4) == 4, "write: %m");
	zdtm_check(read(s, buf, 4) == 4 && !memcmp(buf, "ping", 4), "no echo from outside: '%s'", buf);
	zdtm_pass();
}
