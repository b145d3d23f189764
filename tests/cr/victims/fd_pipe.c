/*
 * Pipes with data queued in them: a pipe with both ends held (64 KiB buffer grown to
 * 256 KiB, 100000 bytes queued, read end non-blocking), a pipe of which only the read
 * end is left (10 bytes, then EOF), one of which only the write end is left (the
 * reader gone: EPIPE), an empty pipe, and a dup of a write end (one description).
 * After restore: the bytes come out in order and complete, sizes and flags are back,
 * the ends still talk to each other.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>

#include "../zdtm.h"

#define BIG 100000

static unsigned char pattern[BIG];

int main(void)
{
	int a[2], b[2], c[2], e[2], dupw, n;
	static unsigned char buf[BIG + 16];
	size_t got = 0;

	zdtm_init();
	signal(SIGPIPE, SIG_IGN);
	zdtm_fill(pattern, BIG, 5);
	if (pipe2(a, O_NONBLOCK) || pipe(b) || pipe(c) || pipe(e))
		zdtm_fail("pipe: %m");
	fcntl(a[1], F_SETFL, 0);	/* only the read end non-blocking */
	if (fcntl(a[1], F_SETPIPE_SZ, 256 << 10) < (256 << 10))
		zdtm_fail("F_SETPIPE_SZ: %m");
	if (write(a[1], pattern, BIG) != BIG || write(b[1], "0123456789", 10) != 10)
		zdtm_fail("write: %m");
	close(b[1]);
	close(c[0]);
	dupw = dup(e[1]);
	zdtm_ready("a=%d,%d b=%d c=%d e=%d,%d,%d", a[0], a[1], b[0], c[1], e[0], e[1], dupw);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(fcntl(a[0], F_GETPIPE_SZ) == 256 << 10, "pipe size %d", fcntl(a[0], F_GETPIPE_SZ));
	zdtm_check(fcntl(a[0], F_GETFL) & O_NONBLOCK, "read end lost O_NONBLOCK");
	zdtm_check(!(fcntl(a[1], F_GETFL) & O_NONBLOCK), "write end gained O_NONBLOCK");
	zdtm_check(ioctl(a[0], FIONREAD, &n) == 0 && n == BIG, "FIONREAD %d, want %d", n, BIG);
	while (got < BIG) {
		ssize_t r = read(a[0], buf + got, sizeof(buf) - got);

		zdtm_check(r > 0, "read after %zu bytes: %zd %m", got, r);
		got += r;
	}
	zdtm_check(got == BIG && !memcmp(buf, pattern, BIG), "pipe bytes differ");
	zdtm_check(read(a[0], buf, 1) == -1 && errno == EAGAIN, "more than was queued");
	zdtm_check(write(a[1], "xyz", 3) == 3 && read(a[0], buf, 3) == 3 && !memcmp(buf, "xyz", 3),
		   "ends of pipe a do not talk");
	memset(buf, 0, 16);
	zdtm_check(read(b[0], buf, 16) == 10 && !memcmp(buf, "0123456789", 10), "pipe b: '%s'", buf);
	zdtm_check(read(b[0], buf, 1) == 0, "pipe b not at EOF");
	zdtm_check(write(c[1], "x", 1) == -1 && errno == EPIPE, "pipe c has a reader");
	zdtm_check(write(dupw, "dup", 3) == 3 && read(e[0], buf, 3) == 3 && !memcmp(buf, "dup", 3),
		   "dup of e's write end");
	close(e[1]);
	close(dupw);
	zdtm_check(read(e[0], buf, 1) == 0, "pipe e has a writer left");
	zdtm_pass();
}
