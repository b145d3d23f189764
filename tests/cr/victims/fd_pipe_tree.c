/*
 * Pipes between the processes of a three-level tree, with bytes queued in them:
 *
 *   R  --p1: "from-R" queued-->  A  --p2: 5000 bytes queued-->  B
 *   ^                                                           |
 *   +------------------- p3: "B-ready" queued ------------------+
 *
 * Each process holds only its own end. After restore the ends must still be one pipe
 * across processes: R writes "R-after" into p1 and A must read "from-R" then
 * "R-after"; B reads its 5000 bytes, then writes "B-after" into p3; R, once A and B
 * are gone, reads "B-readyB-after" and then EOF (its only writer, B, has exited).
 */
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "../zdtm.h"

#define BIG 5000

static unsigned char pattern[BIG];

/* Wait until fd has n bytes queued. */
static void wait_queued(int fd, int n, const char *what)
{
	int q = 0;

	for (int tries = 0; tries < 10000; tries++) {
		if (!ioctl(fd, FIONREAD, &q) && q >= n)
			return;
		zdtm_sleep_ms(1);
	}
	zdtm_fail("%s: %d bytes queued, want %d", what, q, n);
}

static void __attribute__((noreturn)) run_b(int p2r, int p3w)
{
	static unsigned char buf[BIG];

	/* Everything queued before R says ready: A's bytes, then ours. */
	wait_queued(p2r, BIG, "B: p2");
	if (write(p3w, "B-ready", 7) != 7)
		zdtm_fail("B: write p3: %m");

	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_read_all(p2r, buf, BIG, "B: p2");
	zdtm_check(!memcmp(buf, pattern, BIG), "B: p2 bytes differ");
	zdtm_check(write(p3w, "B-after", 7) == 7, "B: write p3: %m");
	exit(0);
}

static void __attribute__((noreturn)) run_a(int p1r, int p3w)
{
	char buf[16] = { 0 };
	int p2[2], st;
	pid_t b;

	if (pipe(p2))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b == 0) {
		close(p2[1]);
		close(p1r);
		run_b(p2[0], p3w);
	}
	close(p2[0]);
	close(p3w);
	if (write(p2[1], pattern, BIG) != BIG)
		zdtm_fail("A: write p2: %m");
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_read_all(p1r, buf, 13, "A: p1");
	zdtm_check(!memcmp(buf, "from-RR-after", 13), "A: p1 gave '%s'", buf);
	kill(b, SIGTERM);
	st = zdtm_reap(b);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "B %d ended with %#x", b, st);
	exit(0);
}

int main(void)
{
	int p1[2], p3[2], st;
	char buf[32] = { 0 };
	pid_t a;

	zdtm_init();
	zdtm_fill(pattern, BIG, 11);
	if (pipe(p1) || pipe(p3))
		zdtm_fail("pipe: %m");
	a = fork();
	if (a == 0) {
		zdtm_child_init();
		close(p1[1]);
		close(p3[0]);
		run_a(p1[0], p3[1]);
	}
	close(p1[0]);
	close(p3[1]);
	if (write(p1[1], "from-R", 6) != 6)
		zdtm_fail("R: write p1: %m");
	wait_queued(p3[0], 7, "R: p3");
	zdtm_ready("a=%d p1=%d p3=%d", a, p1[1], p3[0]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(write(p1[1], "R-after", 7) == 7, "R: write p1: %m");
	kill(a, SIGTERM);
	st = zdtm_reap(a);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "A %d ended with %#x", a, st);
	zdtm_read_all(p3[0], buf, 14, "R: p3");
	zdtm_check(!memcmp(buf, "B-readyB-after", 14), "R: p3 gave '%s'", buf);
	zdtm_check(read(p3[0], buf, 1) == 0, "R: p3 not at EOF");
	zdtm_pass();
}
