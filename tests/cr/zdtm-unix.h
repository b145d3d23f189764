/*
 * zdtm helpers for the unix socket victims: socket names, and a server outside the
 * dumped tree (a grandchild orphaned, so that it belongs to whoever reaps orphans and
 * never to the checkpoint).
 */
#ifndef HA_ZDTM_UNIX_H
#define HA_ZDTM_UNIX_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "zdtm.h"

/* An abstract name (sun_path[0] == 0) from fmt; returns the length bind/connect want. */
static inline socklen_t __attribute__((format(printf, 2, 3))) zdtm_abstract(struct sockaddr_un *sa,
									 const char *fmt, ...)
{
	va_list ap;

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	va_start(ap, fmt);
	vsnprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1, fmt, ap);
	va_end(ap);
	return offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa->sun_path + 1);
}

/* The path of name in the scratch directory, made absolute (relative socket paths are
 * refused by the dump); returns the length bind/connect want. */
static inline socklen_t zdtm_scratch_sock(struct sockaddr_un *sa, const char *name)
{
	char *d = realpath(zdtm_dir(), NULL);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (!d || strlen(d) + 1 + strlen(name) >= sizeof(sa->sun_path))
		zdtm_fail("scratch dir %s: %m (or too long for sun_path)", d ? d : zdtm_dir());
	/* memcpy: the length is checked above, which -Wformat-truncation cannot see */
	memcpy(sa->sun_path, d, strlen(d));
	sa->sun_path[strlen(d)] = '/';
	memcpy(sa->sun_path + strlen(d) + 1, name, strlen(name) + 1);
	free(d);
	return offsetof(struct sockaddr_un, sun_path) + strlen(sa->sun_path) + 1;
}

/* Accepts one connection on listener l and echoes it until EOF; then exits. */
static inline void __attribute__((noreturn)) zdtm_echo_one(int l)
{
	int c = accept(l, NULL, NULL);
	char buf[64];
	ssize_t n;

	while (c >= 0 && (n = read(c, buf, sizeof(buf))) > 0)
		if (write(c, buf, n) != n)
			break;
	_exit(0);
}

/*
 * serve(arg, ready) in a grandchild that we orphan: it writes one byte on ready once it
 * serves, and must end by itself (alarm) should the test go wrong. Returns once that
 * byte came; fails the victim if it did not.
 */
static inline void zdtm_outside(void (*serve)(void *arg, int ready), void *arg)
{
	int p[2], st;
	char c;
	pid_t b;

	if (pipe(p))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b < 0)
		zdtm_fail("fork: %m");
	if (b == 0) {
		zdtm_child_init();
		close(p[0]);
		if (fork() == 0) {
			alarm(120);	/* never outlive a test that went wrong */
			serve(arg, p[1]);
		}
		_exit(0);
	}
	close(p[1]);
	st = zdtm_reap(b);
	if (!WIFEXITED(st) || read(p[0], &c, 1) != 1)
		zdtm_fail("the server outside the tree did not start");
	close(p[0]);
}

/* A stream socket connected to sa (len bytes of it). */
static inline int zdtm_unix_connect(const struct sockaddr_un *sa, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	if (s < 0 || connect(s, (const struct sockaddr *)sa, len))
		zdtm_fail("connect: %m");
	return s;
}

/* "ping" written to s comes back from an echoing peer (what: which peer, for the failure). */
static inline void zdtm_unix_ping(int s, const char *what)
{
	char buf[8] = { 0 };

	zdtm_check(write(s, "ping", 4) == 4, "write: %m");
	zdtm_check(read(s, buf, 4) == 4 && !memcmp(buf, "ping", 4), "no echo %s: '%s'", what, buf);
}

#endif
