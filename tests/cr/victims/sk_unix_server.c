/*
 * A server and a client process over unix stream sockets, checkpointed mid-conversation:
 *
 *   R (server)  listens on PATH (mode 0640) and on an abstract name
 *     a1 <- accepted from PATH:      "client-1" queued for R, "server-1" queued for C
 *     a3 <- accepted from @abstract: "client-3" queued for R, "server-3" queued for C
 *   C (client)  conn1, conn3 as above; conn2 connected to PATH and not accepted yet
 *
 * After restore R reads what C sent, accept() hands it conn2's other end at once (the
 * connection waited in the listener's queue), and R answers on it; C reads every reply
 * and answers on conn2 in turn. The listeners keep their names (the socket file keeps
 * its mode) and take new connections.
 */
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "../zdtm-unix.h"

static struct sockaddr_un path_sa, abs_sa;
static socklen_t path_len, abs_len;

static void expect(int fd, const char *want, const char *what)
{
	char buf[64] = { 0 };

	zdtm_read_all(fd, buf, strlen(want), what);
	zdtm_check(!strcmp(buf, want), "%s: got '%s', want '%s'", what, buf, want);
}

static void put(int fd, const char *s, const char *what)
{
	zdtm_check(write(fd, s, strlen(s)) == (ssize_t)strlen(s), "%s: write: %m", what);
}

static int connect_to(const struct sockaddr_un *sa, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	if (s < 0 || connect(s, (const void *)sa, len))
		zdtm_fail("connect to %s: %m", sa->sun_path[0] ? sa->sun_path : sa->sun_path + 1);
	return s;
}

static void __attribute__((noreturn)) client(void)
{
	int c1 = connect_to(&path_sa, path_len), c2, c3;

	c2 = connect_to(&path_sa, path_len);	/* never accepted before the checkpoint */
	c3 = connect_to(&abs_sa, abs_len);
	put(c1, "client-1", "C conn1");
	put(c3, "client-3", "C conn3");
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	expect(c1, "server-1", "C conn1");
	expect(c3, "server-3", "C conn3");
	expect(c2, "welcome-2", "C conn2");
	put(c2, "thanks-2", "C conn2");
	zdtm_check(read(c1, (char[4]){ 0 }, 4) == 0, "C conn1: no EOF once R closed it");
	exit(0);
}

static int listener(const struct sockaddr_un *sa, socklen_t len)
{
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (const void *)sa, len) || listen(l, 5))
		zdtm_fail("listen: %m");
	return l;
}

static void wait_queued(int fd, int n)
{
	int q = 0;

	for (int i = 0; i < 10000; i++) {
		if (recv(fd, (char[64]){ 0 }, sizeof(char[64]), MSG_PEEK | MSG_DONTWAIT) >= n)
			return;
		zdtm_sleep_ms(1);
	}
	zdtm_fail("%d bytes never came (%d)", n, q);
}

int main(void)
{
	char buf[16];
	int lp, la, a1, a3, a2, extra, st;
	struct sockaddr_un got;
	socklen_t glen = sizeof(got);
	struct stat sb;
	pid_t c;

	zdtm_init();
	path_len = zdtm_scratch_sock(&path_sa, "srv.sock");
	abs_len = zdtm_abstract(&abs_sa, "hacd-sk-unix-server-%d", zdtm_getpid());
	unlink(path_sa.sun_path);
	lp = listener(&path_sa, path_len);
	la = listener(&abs_sa, abs_len);
	if (chmod(path_sa.sun_path, 0640))
		zdtm_fail("chmod: %m");
	c = fork();
	if (c == 0) {
		zdtm_child_init();
		close(lp);
		close(la);
		client();
	}
	a1 = accept(lp, NULL, NULL);
	a3 = accept(la, NULL, NULL);
	if (a1 < 0 || a3 < 0)
		zdtm_fail("accept: %m");
	put(a1, "server-1", "R a1");
	put(a3, "server-3", "R a3");
	wait_queued(a1, 8);
	wait_queued(a3, 8);
	zdtm_ready("client=%d listen=%d,%d", c, lp, la);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	expect(a1, "client-1", "R a1");
	expect(a3, "client-3", "R a3");
	fcntl(lp, F_SETFL, O_NONBLOCK);
	a2 = accept(lp, NULL, NULL);
	zdtm_check(a2 >= 0, "the connection waiting in the listener is gone: %m");
	zdtm_check(accept(lp, NULL, NULL) < 0 && errno == EAGAIN, "more connections waiting than before");
	put(a2, "welcome-2", "R a2");
	kill(c, SIGTERM);
	expect(a2, "thanks-2", "R a2");
	zdtm_check(!getsockname(lp, (void *)&got, &glen) && glen == path_len &&
		   !strcmp(got.sun_path, path_sa.sun_path), "listener's name: '%s'", got.sun_path);
	zdtm_check(!stat(path_sa.sun_path, &sb) && S_ISSOCK(sb.st_mode) && (sb.st_mode & 07777) == 0640,
		   "socket file %s: mode 0%o", path_sa.sun_path, sb.st_mode);
	extra = connect_to(&abs_sa, abs_len);
	a3 = accept(la, NULL, NULL);
	zdtm_check(a3 >= 0 && write(extra, "x", 1) == 1 && read(a3, buf, 1) == 1 && buf[0] == 'x',
		   "a new connection to the abstract name: %m");
	close(a1);	/* C's conn1 reads EOF */
	st = zdtm_reap(c);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "client %d ended with %#x", c, st);
	zdtm_pass();
}
