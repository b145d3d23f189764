/*
 * A unix stream socket connected to a process outside the dumped tree (a grandchild
 * we orphaned: it belongs to whoever reaps orphans, not to us): its peer cannot be
 * restored, so the dump must refuse it, naming pid, fd and kind, and leave us running
 * with the connection intact: afterwards the outside process still echoes what we send.
 */
#include "../zdtm-unix.h"

static struct sockaddr_un sa;
static socklen_t len;

static void __attribute__((noreturn)) echo_server(void *arg, int ready)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	(void)arg;
	if (l < 0 || bind(l, (const void *)&sa, len) || listen(l, 1))
		_exit(1);
	if (write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	zdtm_echo_one(l);
}

int main(void)
{
	char buf[8] = { 0 };
	int s;

	zdtm_init();
	len = zdtm_abstract(&sa, "hacd-unsup-outside-%d", zdtm_getpid());
	zdtm_outside(echo_server, NULL);
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
