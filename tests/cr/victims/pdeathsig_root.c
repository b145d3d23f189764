/*
 * The root's parent-death signal, which only a restore under our init can give back:
 * there its parent is the init again, as it was when `hactl run --pidns` launched it
 * (a restore in our own namespace makes hactl its parent, which exits at once, so
 * the root gets none there). Run by cr_runner --launched only.
 *
 *   init (pid 1 inside)
 *   +- R  PR_SET_PDEATHSIG SIGUSR2, its parent is pid 1
 *      +- C  PR_SET_PDEATHSIG SIGUSR1
 *
 * After restore each checks its own with PR_GET_PDEATHSIG, and its parent. R is ready
 * once C has said its pdeathsig is set: under load C may not have run yet.
 */
#include <sys/prctl.h>

#include "../zdtm.h"

static int pdeathsig(void)
{
	int sig = -1;

	if (prctl(PR_GET_PDEATHSIG, &sig))
		zdtm_fail("PR_GET_PDEATHSIG: %m");
	return sig;
}

int main(void)
{
	pid_t root, c;
	int st, tell[2];
	char b;

	zdtm_init();
	root = zdtm_getpid();
	zdtm_check(getppid() == 1, "R %d: parent %d, want our init (1): run me with cr_runner --launched", root,
		   getppid());
	if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
		zdtm_fail("PR_SET_PDEATHSIG: %m");
	if (pipe(tell))
		zdtm_fail("pipe: %m");
	c = fork();
	if (c == 0) {
		zdtm_child_init();
		close(tell[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGUSR1))
			zdtm_fail("C: PR_SET_PDEATHSIG: %m");
		zdtm_turn_give(tell[1]);
		close(tell[1]);
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		zdtm_check(pdeathsig() == SIGUSR1, "C: pdeathsig %d, want SIGUSR1", pdeathsig());
		zdtm_check(getppid() == root, "C: parent %d, want %d", getppid(), root);
		exit(0);
	}
	close(tell[1]);
	zdtm_read_all(tell[0], &b, 1, "C's word");
	/* EOF: C closed its end too, so no pipe is left to dump. */
	zdtm_check(read(tell[0], &b, 1) == 0, "more than C's word on the pipe");
	close(tell[0]);
	zdtm_ready("child=%d", c);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(pdeathsig() == SIGUSR2, "R: pdeathsig %d, want SIGUSR2", pdeathsig());
	zdtm_check(getppid() == 1, "R: parent %d, want the init (1)", getppid());
	kill(c, SIGTERM);
	st = zdtm_reap(c);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "C %d ended with %#x", c, st);
	zdtm_pass();
}
