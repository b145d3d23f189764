/*
 * Two stacked seccomp filters: the first (main thread only, before the second thread
 * exists, so inherited) makes getpriority fail with ENOTSUP; the second, installed with
 * SECCOMP_FILTER_FLAG_TSYNC while the thread runs, makes getppid fail with EMLINK in
 * both threads and kills the process on acct(). After restore both filters act in both
 * threads, in that order, and a forked child dies of SIGSYS on acct().
 */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../zdtm.h"

static char errs[2][128];

static void check(int who)
{
	errno = 0;
	if (syscall(SYS_getpriority, PRIO_PROCESS, 0) != -1 || errno != ENOTSUP)
		snprintf(errs[who], 128, "first filter not in force (getpriority: %s)", strerror(errno));
	else if (syscall(SYS_getppid) != -1 || errno != EMLINK)
		snprintf(errs[who], 128, "second filter not in force (getppid: %s)", strerror(errno));
}

static void filter(int nr, unsigned ret, unsigned flags, int nr2, unsigned ret2)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, ret2),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog))
		zdtm_fail("seccomp: %m");
}

int main(void)
{
	struct zdtm_twin twin = { .check = check };
	pid_t child;
	int st;

	zdtm_init();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		zdtm_fail("no_new_privs: %m");
	filter(__NR_getpriority, SECCOMP_RET_ERRNO | ENOTSUP, 0, -1, 0);
	zdtm_twin_start(&twin);
	filter(__NR_getppid, SECCOMP_RET_ERRNO | EMLINK, SECCOMP_FILTER_FLAG_TSYNC, __NR_acct,
	       SECCOMP_RET_KILL_PROCESS);
	check(0);
	zdtm_check(!errs[0][0], "before: %s", errs[0]);
	zdtm_ready("seccomp=2 filters=2 threads=2");
	zdtm_twin_end(&twin, errs[0], errs[1]);
	child = fork();
	if (!child) {
		syscall(SYS_acct, NULL);
		_exit(0);
	}
	zdtm_check(child > 0 && waitpid(child, &st, 0) == child, "fork: %m");
	zdtm_check(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "the child survived acct(): status %#x", st);
	zdtm_pass();
}
