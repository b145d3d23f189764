/*
 * A double-forked daemon's shape: A starts a session, forks B and exits, so B is
 * reparented to us (a child subreaper) while staying in A's session and group, whose
 * leader is gone. Restore makes the session again with a helper at A's pid that forks
 * B and exits (rst-tree.c). After restore B is still in session and group A, still our
 * child, and ends when we tell it to.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../zdtm.h"

int main(void)
{
	int p[2], st;
	pid_t a, b = 0;

	zdtm_init();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) || pipe(p))
		zdtm_fail("setup: %m");
	a = fork();
	if (a < 0)
		zdtm_fail("fork: %m");
	if (a == 0) {
		zdtm_child_init();
		close(p[0]);
		if (setsid() < 0)
			_exit(1);
		b = fork();
		if (b == 0) {
			close(p[1]);
			while (!zdtm_stop)
				zdtm_sleep_ms(5);
			_exit(0);
		}
		_exit(b > 0 && write(p[1], &b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	close(p[1]);
	st = zdtm_reap(a);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "A %d ended with %#x", a, st);
	zdtm_check(read(p[0], &b, sizeof(b)) == sizeof(b) && b > 0, "no pid from A");
	close(p[0]);
	zdtm_check(getsid(b) == a, "B %d: session %d, want the exited A's %d", b, getsid(b), a);
	zdtm_check(getpgid(b) == a, "B %d: group %d, want the exited A's %d", b, getpgid(b), a);
	zdtm_ready("child=%d session=%d", b, a);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(getsid(b) == a, "B %d left its session: %d, want %d", b, getsid(b), a);
	zdtm_check(getpgid(b) == a, "B %d left its group: %d, want %d", b, getpgid(b), a);
	zdtm_check(kill(a, 0) < 0 && errno == ESRCH, "the session helper %d is still there", a);
	kill(b, SIGTERM);
	st = zdtm_reap(b);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "B %d ended with %#x", b, st);
	zdtm_pass();
}
