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
	int s;

	zdtm_init();
	len = zdtm_abstract(&sa, "hacd-unsup-outside-%d", zdtm_getpid());
	zdtm_outside(echo_server, NULL);
	s = zdtm_unix_connect(&sa, len);
	zdtm_ready("bad_fd=%d kind=unix", s);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_unix_ping(s, "from outside");
	zdtm_pass();
}
