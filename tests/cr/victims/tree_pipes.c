/*
 * Three levels joined by pipes, data in flight through both at the checkpoint:
 *
 *   B --pipe--> A --pipe--> R
 *
 * B writes 0, 1, 2...; A checks and forwards each; R checks what arrives. After
 * restore the stream goes on: on SIGTERM every stage drains its pipe to EOF, so a
 * value lost, doubled or reordered in a restored pipe (or a pipe joined to the wrong
 * process) shows as a gap at the stage after it.
 */
#include <sys/wait.h>

#include "../zdtm.h"

/* Read one value; 0 at EOF, -1 when interrupted. */
static int get(int fd, uint64_t *v)
{
	ssize_t n = read(fd, v, sizeof(*v));

	if (n < 0 && errno == EINTR)
		return -1;
	if (n != 0 && n != sizeof(*v))
		zdtm_fail("pid %d: read %zd: %m", zdtm_getpid(), n);
	return n != 0;
}

static void put(int fd, uint64_t v)
{
	while (write(fd, &v, sizeof(v)) != sizeof(v))
		if (errno != EINTR)
			zdtm_fail("pid %d: write: %m", zdtm_getpid());
}

static void __attribute__((noreturn)) stage_b(int out)
{
	uint64_t n = 0;

	while (!zdtm_stop) {
		put(out, n++);
		if (!(n % 64))
			zdtm_sleep_ms(1);
	}
	exit(0);
}

static void __attribute__((noreturn)) stage_a(int out)
{
	uint64_t expect = 0, v;
	int p[2], r, st;
	pid_t b;

	if (pipe(p))
		zdtm_fail("pipe: %m");
	b = fork();
	if (b == 0) {
		close(p[0]);
		close(out);
		stage_b(p[1]);
	}
	close(p[1]);
	while (!zdtm_stop) {
		r = get(p[0], &v);
		if (r == 0)
			zdtm_fail("A: B's pipe ended early");
		if (r < 0)
			continue;
		zdtm_check(v == expect, "A: got %lu from B, want %lu", (unsigned long)v, (unsigned long)expect);
		expect++;
		put(out, v);
	}
	kill(b, SIGTERM);
	st = zdtm_reap(b);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "B ended with %#x", st);
	while ((r = get(p[0], &v))) {
		if (r < 0)
			continue;
		zdtm_check(v == expect, "A: got %lu from B, want %lu (draining)", (unsigned long)v,
			   (unsigned long)expect);
		expect++;
		put(out, v);
	}
	exit(0);
}

int main(void)
{
	uint64_t expect = 0, at_ready, v;
	int p[2], r, st;
	pid_t a;

	zdtm_init();
	if (pipe(p))
		zdtm_fail("pipe: %m");
	a = fork();
	if (a == 0) {
		zdtm_child_init();
		close(p[0]);
		stage_a(p[1]);
	}
	close(p[1]);
	while (expect < 2000) {
		r = get(p[0], &v);
		zdtm_check(r, "R: A's pipe ended early");
		zdtm_check(v == expect, "R: got %lu, want %lu", (unsigned long)v, (unsigned long)expect);
		expect++;
	}
	at_ready = expect;
	zdtm_ready("a=%d", a);
	while (!zdtm_stop) {
		r = get(p[0], &v);
		zdtm_check(r, "R: A's pipe ended early");
		if (r < 0)
			continue;
		zdtm_check(v == expect, "R: got %lu, want %lu", (unsigned long)v, (unsigned long)expect);
		expect++;
	}
	kill(a, SIGTERM);
	while ((r = get(p[0], &v))) {
		if (r < 0)
			continue;
		zdtm_check(v == expect, "R: got %lu, want %lu (draining)", (unsigned long)v, (unsigned long)expect);
		expect++;
	}
	st = zdtm_reap(a);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "A ended with %#x", st);
	zdtm_check(expect > at_ready, "R: nothing arrived after the checkpoint (%lu)", (unsigned long)expect);
	zdtm_pass();
}
