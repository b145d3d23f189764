/*
 * PR_SET_CHILD_SUBREAPER and PR_SET_PDEATHSIG across a restore, by their effects:
 *
 *   R  child subreaper
 *   +- C  pdeathsig SIGUSR2
 *      +- G  pdeathsig SIGUSR1, caught
 *
 * After restore R still is a subreaper and C still has its pdeathsig; then C exits:
 * G must get SIGUSR1 and be reparented to R, which reaps it.
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

static void __attribute__((noreturn)) grandchild(pid_t root)
{
	struct sigaction sa = { .sa_handler = on_usr1 };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGUSR1))
		zdtm_fail("PR_SET_PDEATHSIG: %m");
	while (!got_usr1)
		zdtm_sleep_ms(2);
	/* The subreaper is our parent by the time the signal is sent. */
	zdtm_check(getppid() == root, "G: parent %d after C died, want the subreaper %d", getppid(), root);
	exit(0);
}

int main(void)
{
	pid_t root, c, g = 0;
	int sub = 0, st;

	zdtm_init();
	root = zdtm_getpid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		zdtm_fail("PR_SET_CHILD_SUBREAPER: %m");
	c = fork();
	if (c == 0) {
		zdtm_child_init();
		if (prctl(PR_SET_PDEATHSIG, SIGUSR2))
			zdtm_fail("PR_SET_PDEATHSIG: %m");
		if (fork() == 0)
			grandchild(root);
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		zdtm_check(pdeathsig() == SIGUSR2, "C: pdeathsig %d, want %d", pdeathsig(), SIGUSR2);
		exit(0);
	}
	for (int i = 0; i < 5000 && !g; i++) {
		char path[64];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", c, c);
		f = fopen(path, "re");
		if (f && fscanf(f, "%d", &g) != 1)
			g = 0;
		if (f)
			fclose(f);
		zdtm_sleep_ms(1);
	}
	zdtm_check(g > 0, "no grandchild");
	zdtm_sleep_ms(20);	/* G has set its pdeathsig and waits */
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
