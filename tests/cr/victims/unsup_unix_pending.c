/*
 * A unix stream connection that a listener outside the dumped tree has not accepted
 * yet (the listener is a grandchild we orphaned, holding off accept() until we say
 * go): sock_diag shows the client's peer as 0, like a closed one, but it is not shut
 * down. Restore cannot bring that peer back, so the dump must refuse it, naming pid,
 * fd and kind, and leave us running: afterwards the server accepts and echoes.
 */
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../zdtm.h"

static void __attribute__((noreturn)) late_server(const struct sockaddr_un *sa, socklen_t len, int ready, int go)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0), c;
	char buf[64];
	ssize_t n;

	alarm(120);	/* never outlive a test that went wrong */
	if (l < 0 || bind(l, (const void *)sa, len) || listen(l, 1) || write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	if (read(go, buf, 1) != 1)
		_exit(1);
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
	int rp[2], gp[2], s, st;
	char buf[8] = { 0 };
	pid_t b;

	zdtm_init();
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "hacd-unsup-pending-%d", zdtm_getpid());
	len = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1);
	if (pipe(rp) || pipe(gp))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b == 0) {
		zdtm_child_init();
		close(rp[0]);
		close(gp[1]);
		if (fork() == 0)
			late_server(&sa, len, rp[1], gp[0]);
		_exit(0);
	}
	close(rp[1]);
	close(gp[0]);
	st = zdtm_reap(b);
	if (!WIFEXITED(st) || read(rp[0], buf, 1) != 1)
		zdtm_fail("the outside server did not start");
	close(rp[0]);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (void *)&sa, len))
		zdtm_fail("connect: %m");
	zdtm_ready("bad_fd=%d kind=unix", s);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(write(gp[1], "g", 1) == 1, "go: %m");
	zdtm_check(write(s, "ping", 4) == 4, "write: %m");
	zdtm_check(read(s, buf, 4) == 4 && !memcmp(buf, "ping", 4), "no echo once accepted: '%s'", buf);
	zdtm_pass();
}
