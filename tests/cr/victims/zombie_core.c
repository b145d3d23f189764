/*
 * A zombie that dumped core: its wait status carries the core-dump bit (WCOREDUMP),
 * which the kernel sets only when a core file was really written, so a restore must
 * make the restored zombie dump one too. After restore the parent reaps it with the
 * very status it had: killed by SIGQUIT, core dumped.
 *
 * The zombie dumps a tiny core (coredump_filter 0) into our scratch dir, which is
 * removed before ready. Where this host cannot write one (a hard core limit of 0, a
 * core_pattern that pipes), the status has no core bit and is checked as it is.
 */
#include <sys/resource.h>

#include "../zdtm.h"

int main(void)
{
	siginfo_t si = { 0 };
	int st, core;
	pid_t z;

	zdtm_init();
	z = fork();
	if (z == 0) {
		struct rlimit r;
		FILE *f = fopen("/proc/self/coredump_filter", "we");

		zdtm_child_init();
		if (f) {
			fputs("0", f);
			fclose(f);
		}
		getrlimit(RLIMIT_CORE, &r);
		r.rlim_cur = r.rlim_max;
		setrlimit(RLIMIT_CORE, &r);
		signal(SIGQUIT, SIG_DFL);
		kill(zdtm_getpid(), SIGQUIT);
		_exit(1);
	}
	zdtm_check(!waitid(P_PID, z, &si, WEXITED | WNOWAIT) && si.si_pid == z, "Z %d did not exit", z);
	zdtm_check(si.si_status == SIGQUIT && (si.si_code == CLD_DUMPED || si.si_code == CLD_KILLED),
		   "Z %d: code %d status %d, want SIGQUIT", z, si.si_code, si.si_status);
	core = si.si_code == CLD_DUMPED;
	if (!core)
		fprintf(stderr, "victim: no core dump on this host: the core bit is not tested\n");
	{
		char name[64];

		unlink("core");
		snprintf(name, sizeof(name), "core.%d", z);
		unlink(name);
	}
	zdtm_ready("zombie=%d core=%d", z, core);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	st = zdtm_reap(z);
	zdtm_check(WIFSIGNALED(st) && WTERMSIG(st) == SIGQUIT && !!WCOREDUMP(st) == core,
		   "Z %d reaped with %#x, want SIGQUIT%s", z, st, core ? " and the core-dump bit" : "");
	zdtm_pass();
}
