/*
 * A process tree of three levels that works in every process, with a session, process
 * groups (one whose leader has exited), a zombie and an orphan reparented to us:
 *
 *   R  session leader, child subreaper
 *   +- A  leads group A, works
 *   |  +- B  in group A, works
 *   +- Z  exited with status 7, not reaped: a zombie
 *   +- M  works, in group L whose leader L exited; reparented to R when L did
 *
 * After restore each worker checks its pid, parent, group and session and that its
 * work went on from where it was; R checks its own, that Z still holds status 7, and
 * collects every worker's verdict.
 */
#include <sys/prctl.h>
#include <sys/wait.h>

#include "../zdtm.h"

static pid_t root;

/* Work whose result proves every step ran, in order, exactly once. */
static void __attribute__((noreturn)) work(pid_t ppid, pid_t pgid)
{
	volatile uint64_t x = zdtm_getpid(), n = 0;
	pid_t pid = zdtm_getpid();

	while (!zdtm_stop) {
		x = zdtm_mix(x);
		n++;
		if (!(n % 1024))
			zdtm_sleep_ms(1);
	}
	uint64_t y = pid;
	for (uint64_t i = 0; i < n; i++)
		y = zdtm_mix(y);
	zdtm_check(y == x, "pid %d: work result differs after %lu steps", pid, (unsigned long)n);
	zdtm_check(zdtm_getpid() == pid, "pid %d, was %d", zdtm_getpid(), pid);
	zdtm_check(getppid() == ppid, "pid %d: parent %d, want %d", pid, getppid(), ppid);
	zdtm_check(getpgid(0) == pgid, "pid %d: group %d, want %d", pid, getpgid(0), pgid);
	zdtm_check(getsid(0) == root, "pid %d: session %d, want %d", pid, getsid(0), root);
	exit(0);
}

/* A worker in its final place says so, with its pid, on the settle pipe. */
static void settled(int fd)
{
	pid_t pid = zdtm_getpid();

	if (write(fd, &pid, sizeof(pid)) != sizeof(pid))
		zdtm_fail("settle pipe: %m");
	close(fd);
}

/*
 * Settling goes without /proc: a service launched in a pid namespace of its own sees
 * the host's /proc, where its own pids name other processes.
 */
int main(void)
{
	pid_t a, b = 0, z, l, m = 0, got[2];
	int st, sp[2];

	zdtm_init();
	/* Launched by `hactl run`, it leads its session already. */
	if (getsid(0) != zdtm_getpid() && setsid() < 0)
		zdtm_fail("setsid: %m");
	root = zdtm_getpid();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1))
		zdtm_fail("PR_SET_CHILD_SUBREAPER: %m");
	if (pipe(sp))
		zdtm_fail("pipe: %m");
	a = fork();
	if (a == 0) {
		zdtm_child_init();
		close(sp[0]);
		setpgid(0, 0);
		b = fork();
		if (b == 0) {
			settled(sp[1]);
			work(getppid(), getpgid(0));
		}
		close(sp[1]);
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		kill(b, SIGTERM);
		st = zdtm_reap(b);
		zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "B %d ended with %#x", b, st);
		work(root, zdtm_getpid());
	}
	z = fork();
	if (z == 0) {
		zdtm_child_init();
		_exit(7);
	}
	l = fork();
	if (l == 0) {
		zdtm_child_init();
		close(sp[0]);
		setpgid(0, 0);
		if (fork() == 0) {
			/* M: ours once L has exited. */
			while (getppid() != root)
				zdtm_sleep_ms(1);
			settled(sp[1]);
			work(root, getpgid(0));
		}
		_exit(0);
	}
	close(sp[1]);
	zdtm_reap(l);
	/* B and M in place (their pids from the pipe, EOF once every writer is gone), A
	 * leads its group with B in it, Z is a zombie. */
	for (int n = 0, r; n < 2 * (int)sizeof(pid_t); n += r) {
		r = read(sp[0], (char *)got + n, 2 * sizeof(pid_t) - n);
		zdtm_check(r > 0, "the tree did not settle: %m");
	}
	{
		char c;

		zdtm_check(read(sp[0], &c, 1) == 0, "settle pipe: more than two workers");
	}
	close(sp[0]);
	for (int i = 0; i < 2; i++) {
		if (getpgid(got[i]) == a)
			b = got[i];
		else
			m = got[i];
	}
	zdtm_check(m && b && getpgid(m) == l && getpgid(a) == a, "the tree did not settle (m %d b %d)", m, b);
	{
		siginfo_t si = { 0 };

		zdtm_check(!waitid(P_PID, z, &si, WEXITED | WNOWAIT) && si.si_pid == z, "Z %d did not exit", z);
	}
	zdtm_ready("tree=%d,%d,%d,%d,%d", a, b, z, l, m);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(zdtm_getpid() == root, "pid %d, was %d", zdtm_getpid(), root);
	zdtm_check(getsid(0) == root && getpgid(0) == root, "session %d group %d, want %d", getsid(0), getpgid(0),
		   root);
	{
		/* Not through /proc: a copy restored in a pid namespace of its own sees the
		 * host's. */
		siginfo_t si = { 0 };

		zdtm_check(!waitid(P_PID, z, &si, WEXITED | WNOHANG | WNOWAIT) && si.si_pid == z &&
				   si.si_code == CLD_EXITED && si.si_status == 7,
			   "Z %d is no zombie with exit status 7 (pid %d code %d status %d)", z, si.si_pid,
			   si.si_code, si.si_status);
	}
	zdtm_check(getpgid(m) == l, "M %d: group %d, want the exited leader's %d", m, getpgid(m), l);
	kill(a, SIGTERM);
	kill(m, SIGTERM);
	st = zdtm_reap(z);
	zdtm_check(WIFEXITED(st) && WEXITSTATUS(st) == 7, "zombie %d reaped with %#x, want exit 7", z, st);
	st = zdtm_reap(a);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "A %d ended with %#x", a, st);
	st = zdtm_reap(m);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "M %d ended with %#x", m, st);
	zdtm_pass();
}
