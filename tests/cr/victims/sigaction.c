/*
 * Signal handlers: SIGUSR1 (SA_SIGINFO | SA_RESTART, mask USR2+HUP), SIGUSR2
 * (SA_NODEFER | SA_RESETHAND), SIGALRM (SA_ONSTACK, on a 64 KiB sigaltstack),
 * SIGRTMIN+1 (SA_SIGINFO, all other RT signals masked), SIGHUP and SIGPIPE ignored.
 * The loop keeps queueing SIGUSR1 with a counter value. After restore every sigaction
 * and the altstack read back as installed, and each signal fires as it should: the
 * right siginfo, the right mask inside the handler, on the altstack, reset after
 * SA_RESETHAND, ignored ones ignored.
 */
#include "../zdtm.h"

static const int sigs[] = { SIGUSR1, SIGUSR2, SIGALRM, 0 /* SIGRTMIN+1 */, SIGHUP, SIGPIPE };
#define NR (sizeof(sigs) / sizeof(sigs[0]))

static struct sigaction installed[NR];
static unsigned char altstack[65536];
static volatile int usr1_count, usr1_last_value, usr1_code, usr1_mask_ok, usr1_pid;
static volatile int usr2_count, usr2_nodefer_ok, alrm_count, alrm_on_stack, rt_count, rt_value, rt_mask_ok;

static int mask_has(int s)
{
	sigset_t m;

	pthread_sigmask(SIG_BLOCK, NULL, &m);
	return sigismember(&m, s);
}

static void on_usr1(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	usr1_count++;
	usr1_code = si->si_code;
	usr1_pid = si->si_pid;
	usr1_last_value = si->si_value.sival_int;
	usr1_mask_ok = mask_has(SIGUSR1) && mask_has(SIGUSR2) && mask_has(SIGHUP) && !mask_has(SIGINT) && sig == SIGUSR1;
}

static void on_usr2(int sig)
{
	usr2_count++;
	usr2_nodefer_ok = !mask_has(SIGUSR2) && sig == SIGUSR2;
}

static void on_alrm(int sig)
{
	char local;
	stack_t ss;

	(void)sig;
	sigaltstack(NULL, &ss);
	alrm_count++;
	alrm_on_stack = &local >= (char *)altstack && &local < (char *)altstack + sizeof(altstack) &&
			(ss.ss_flags & SS_ONSTACK);
}

static void on_rt(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	(void)sig;
	rt_count++;
	rt_value = si->si_value.sival_int;
	rt_mask_ok = mask_has(SIGRTMIN + 2) && mask_has(SIGRTMAX) && !mask_has(SIGUSR1);
}

static void install(void)
{
	struct sigaction sa;

	for (size_t i = 0; i < NR; i++) {
		int s = sigs[i] ? sigs[i] : SIGRTMIN + 1;

		memset(&sa, 0, sizeof(sa));
		sigemptyset(&sa.sa_mask);
		switch (s) {
		case SIGUSR1:
			sa.sa_sigaction = on_usr1;
			sa.sa_flags = SA_SIGINFO | SA_RESTART;
			sigaddset(&sa.sa_mask, SIGUSR2);
			sigaddset(&sa.sa_mask, SIGHUP);
			break;
		case SIGUSR2:
			sa.sa_handler = on_usr2;
			sa.sa_flags = SA_NODEFER | SA_RESETHAND;
			break;
		case SIGALRM:
			sa.sa_handler = on_alrm;
			sa.sa_flags = SA_ONSTACK;
			break;
		case SIGHUP:
		case SIGPIPE:
			sa.sa_handler = SIG_IGN;
			break;
		default:
			sa.sa_sigaction = on_rt;
			sa.sa_flags = SA_SIGINFO;
			for (int r = SIGRTMIN; r <= SIGRTMAX; r++)
				if (r != s)
					sigaddset(&sa.sa_mask, r);
		}
		if (sigaction(s, &sa, NULL) || sigaction(s, NULL, &installed[i]))
			zdtm_fail("sigaction %d: %m", s);
	}
}

static void check_installed(void)
{
	for (size_t i = 0; i < NR; i++) {
		int s = sigs[i] ? sigs[i] : SIGRTMIN + 1;
		struct sigaction now;

		sigaction(s, NULL, &now);
		zdtm_check(now.sa_handler == installed[i].sa_handler, "signal %d: handler %p, was %p", s,
			   (void *)now.sa_handler, (void *)installed[i].sa_handler);
		zdtm_check(now.sa_flags == installed[i].sa_flags, "signal %d: flags %#x, was %#x", s, now.sa_flags,
			   installed[i].sa_flags);
		for (int k = 1; k < NSIG; k++)
			zdtm_check(sigismember(&now.sa_mask, k) == sigismember(&installed[i].sa_mask, k),
				   "signal %d: signal %d in sa_mask changed", s, k);
	}
}

int main(void)
{
	stack_t ss = { .ss_sp = altstack, .ss_size = sizeof(altstack) }, now;
	pid_t pid = zdtm_getpid();
	int sent = 0, before;

	zdtm_init();
	if (sigaltstack(&ss, NULL))
		zdtm_fail("sigaltstack: %m");
	install();
	zdtm_ready("handler_usr1=%p", (void *)on_usr1);

	while (!zdtm_stop) {
		sigqueue(pid, SIGUSR1, (union sigval){ .sival_int = ++sent });
		zdtm_sleep_ms(2);
	}

	check_installed();
	zdtm_check(!sigaltstack(NULL, &now) && now.ss_sp == altstack && now.ss_size == sizeof(altstack) &&
			   now.ss_flags == 0,
		   "sigaltstack %p/%zu/%#x, want %p/%zu/0", now.ss_sp, now.ss_size, now.ss_flags, (void *)altstack,
		   sizeof(altstack));
	zdtm_check(usr1_count == sent && usr1_last_value == sent, "SIGUSR1: %d of %d delivered, last value %d",
		   usr1_count, sent, usr1_last_value);
	before = usr1_count;
	sigqueue(pid, SIGUSR1, (union sigval){ .sival_int = 4242 });
	zdtm_check(usr1_count == before + 1 && usr1_last_value == 4242 && usr1_code == SI_QUEUE && usr1_pid == pid,
		   "SIGUSR1 after restore: count %d value %d code %d pid %d", usr1_count, usr1_last_value, usr1_code,
		   usr1_pid);
	zdtm_check(usr1_mask_ok, "SIGUSR1 handler ran with the wrong mask");
	kill(pid, SIGUSR2);
	zdtm_check(usr2_count == 1 && usr2_nodefer_ok, "SIGUSR2: count %d, nodefer %d", usr2_count, usr2_nodefer_ok);
	{
		struct sigaction sa;

		sigaction(SIGUSR2, NULL, &sa);
		zdtm_check(sa.sa_handler == SIG_DFL, "SA_RESETHAND did not reset SIGUSR2");
	}
	kill(pid, SIGALRM);
	zdtm_check(alrm_count == 1 && alrm_on_stack, "SIGALRM: count %d, on the altstack %d", alrm_count,
		   alrm_on_stack);
	sigqueue(pid, SIGRTMIN + 1, (union sigval){ .sival_int = 99 });
	zdtm_check(rt_count == 1 && rt_value == 99 && rt_mask_ok, "SIGRTMIN+1: count %d value %d mask %d", rt_count,
		   rt_value, rt_mask_ok);
	kill(pid, SIGHUP);
	kill(pid, SIGPIPE);
	zdtm_pass();	/* still alive: ignored */
}
