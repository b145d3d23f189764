/*
 * A unix stream connection that a listener outside the dumped tree has not accepted
 * yet (the listener is a grandchild we orphaned, holding off accept() until we say
 * go): sock_diag shows the client's peer as 0, like a closed one, but it is not shut
 * down. Restore cannot bring that peer back, so the dump must refuse it, naming pid,
 * fd and kind, and leave us running: afterwards the server accepts and echoes.
 */
#include "../zdtm-unix.h"

static struct sockaddr_un sa;
static socklen_t len;
static int gp[2];	/* "go": we write, the server reads */

static void __attribute__((noreturn)) late_server(void *arg, int ready)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);
	char go;

	(void)arg;
	close(gp[1]);
	if (l < 0 || bind(l, (const void *)&sa, len) || listen(l, 1) || write(ready, "r", 1) != 1)
		_exit(1);
	close(ready);
	if (read(gp[0], &go, 1) != 1)
		_exit(1);
	zdtm_echo_one(l);
}

int main(void)
{
	int s;

	zdtm_init();
	len = zdtm_abstract(&sa, "hacd-unsup-pending-%d", zdtm_getpid());
	if (pipe(gp))
		zdtm_fail("pipe: %m");
	zdtm_outside(late_server, NULL);
	close(gp[0]);
	s = zdtm_unix_connect(&sa, len);
	zdtm_ready("bad_fd=%d kind=unix", s);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(write(gp[1], "g", 1) == 1, "go: %m");
	zdtm_unix_ping(s, "once accepted");
	zdtm_pass();
}
