/*
 * PR_SET_CHILD_SUBREAPER and PR_SET_PDEATHSIG across a restore, by their effects:
 *
 *   R  child subreaper
 *   +- C  pdeathsig SIGUSR2
 *      +- G  pdeathsig SIGUSR1, caught
 *
 * After restore R still is a subreaper and C still has its pdeathsig; then C exits:
 * G must get SIGUSR1 and be reparented to R, which reaps it. R is ready only once G
 * has said its handler and pdeathsig are set (it sends its pid): under load a G
 * not yet run would get no signal and wait for ever.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../zdtm.h"

static volatile sig_atomic_t got_usr1;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
}

static int pdeathsig(void)
{
	int sig = -1;

	if (prctl(PR_GET_PDEATHSIG, &sig))
		zdtm_fail("PR_GET_PDEATHSIG: %m");
	return sig;
}

static void __attribute__((noreturn)) grandchild(pid_t root, int tell)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pid_t me = zdtm_getpid();
	double hang = 0;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1))
		zdtm_fail("PR_SET_PDEATHSIG: %m");
	if (write(tell, &me, sizeof(me)) != sizeof(me))
		zdtm_fail("G: telling R: %m");
	close(tell);
	while (!got_usr1) {
		/* The kernel queues the signal right after it gives us our new parent: once
		 * that is R, a signal still missing seconds later is lost, not late. */
		if (!hang && getppid() == root)
			hang = zdtm_now(CLOCK_MONOTONIC) + 10;
		zdtm_check(!hang || zdtm_now(CLOCK_MONOTONIC) < hang, "G: reparented to %d, but no SIGUSR1 (pdeathsig %d)",
			   root, pdeathsig());
		zdtm_sleep_ms(2);
	}
	/* The subreaper is our parent by the time the signal is sent. */
	zdtm_check(getppid() == root, "G: parent %d after C died, want the subreaper %d", getppid(), root);
	exit(0);
}

int main(void)
{
	pid_t root, c, g = 0;
	int sub = 0, st, tell[2];

	zdtm_init();
	root = zdtm_getpid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		zdtm_fail("PR_SET_CHILD_SUBREAPER: %m");
	if (pipe(tell))
		zdtm_fail("pipe: %m");
	c = fork();
	if (c == 0) {
		zdtm_child_init();
		close(tell[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
			zdtm_fail("PR_SET_PDEATHSIG: %m");
		if (fork() == 0)
			grandchild(root, tell[1]);
		close(tell[1]);
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		zdtm_check(pdeathsig() == SIGUSR2, "C: pdeathsig %d, want %d", pdeathsig(), SIGUSR2);
		exit(0);
	}
	close(tell[1]);
	zdtm_read_all(tell[0], &g, sizeof(g), "G's pid");
	/* EOF: C and G closed their ends too, so no pipe is left to dump. */
	zdtm_check(read(tell[0], &st, 1) == 0, "more than G's pid on the pipe");
	close(tell[0]);
	zdtm_ready("c=%d g=%d", c, g);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(!prctl(PR_GET_CHILD_SUBREAPER, &sub) && sub == 1, "not a child subreaper any more (%d)", sub);
	kill(c, SIGTERM);
	st = zdtm_reap(c);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "C ended with %#x", st);
	st = zdtm_reap(g);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "G ended with %#x", st);
	zdtm_pass();
}
