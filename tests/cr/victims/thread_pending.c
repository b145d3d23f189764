/*
 * Per-thread pending signals: thread A blocks SIGUSR1 and SIGRTMIN+2 and has SIGUSR1
 * (tgkill) and two SIGRTMIN+2 with values 111 and 222 (rt_tgsigqueueinfo) pending;
 * thread B has SIGUSR2 pending the same way. Nothing else blocks them... except the
 * main thread, so that the signals can only be delivered to their own thread. After
 * restore each thread unblocks: its own signals arrive, in it, with their siginfo
 * (si_code SI_TKILL / SI_QUEUE, si_pid ours, RT values in order).
 */
#include <pthread.h>

#include "../zdtm.h"

struct got {
	int sig, code, value;
	pid_t pid, tid;
};

static struct got got[8];
static volatile int nr_got, started;
static pid_t tid_a, tid_b;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	int i = __atomic_fetch_add(&nr_got, 1, __ATOMIC_SEQ_CST);

	(void)uc;
	if (i < 8)
		got[i] = (struct got){ sig, si->si_code, si->si_code == SI_QUEUE ? si->si_value.sival_int : 0,
				       si->si_pid, zdtm_gettid() };
}

/* SIGUSR1, SIGRTMIN + 2 and SIGUSR2 blocked in s and in force, our tid in *tid, then
 * until SIGTERM: what main queued for us stays pending through the checkpoint. */
static void blocked_until_term(sigset_t *s, pid_t *tid)
{
	sigemptyset(s);
	sigaddset(s, SIGUSR1);
	sigaddset(s, SIGRTMIN + 2);
	sigaddset(s, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, s, NULL);
	*tid = zdtm_gettid();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
}

static void *thread_a(void *arg)
{
	sigset_t s;

	(void)arg;
	blocked_until_term(&s, &tid_a);
	/* Unblock only our own: SIGUSR2 stays blocked here. */
	sigdelset(&s, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	return NULL;
}

static void *thread_b(void *arg)
{
	sigset_t s;

	(void)arg;
	blocked_until_term(&s, &tid_b);
	/* Let A take its three first. */
	while (__atomic_load_n(&nr_got, __ATOMIC_SEQ_CST) < 3)
		zdtm_sleep_ms(1);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	return NULL;
}

static void queue_to(pid_t tid, int sig, int value)
{
	siginfo_t si = { .si_signo = sig, .si_code = SI_QUEUE };

	si.si_pid = zdtm_getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = value;
	if (syscall(SYS_rt_tgsigqueueinfo, zdtm_getpid(), tid, sig, &si))
		zdtm_fail("rt_tgsigqueueinfo: %m");
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_sig, .sa_flags = SA_SIGINFO };
	pthread_t a, b;
	sigset_t s;
	pid_t pid = zdtm_getpid();

	zdtm_init();
	/* Each handler blocks the others: they run one after another, in the kernel's
	 * delivery order (lowest number first), not nested. */
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR1);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGRTMIN + 2);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN + 2, &sa, NULL);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR1);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, SIGRTMIN + 2);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_create(&a, NULL, thread_a, NULL);
	pthread_create(&b, NULL, thread_b, NULL);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 2)
		zdtm_sleep_ms(1);
	zdtm_tkill(tid_a, SIGUSR1);
	queue_to(tid_a, SIGRTMIN + 2, 111);
	queue_to(tid_a, SIGRTMIN + 2, 222);
	zdtm_tkill(tid_b, SIGUSR2);
	zdtm_ready("threads=3 tid_a=%d tid_b=%d", tid_a, tid_b);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	zdtm_check(nr_got == 4, "%d signals delivered, want 4", nr_got);
	/* Standard signals before real-time ones in A; RT values in queue order. */
	zdtm_check(got[0].sig == SIGUSR1 && got[0].code == SI_TKILL && got[0].pid == pid && got[0].tid == tid_a,
		   "first: sig %d code %d pid %d in tid %d", got[0].sig, got[0].code, got[0].pid, got[0].tid);
	zdtm_check(got[1].sig == SIGRTMIN + 2 && got[1].code == SI_QUEUE && got[1].value == 111 && got[1].tid == tid_a,
		   "second: sig %d code %d value %d in tid %d", got[1].sig, got[1].code, got[1].value, got[1].tid);
	zdtm_check(got[2].sig == SIGRTMIN + 2 && got[2].value == 222 && got[2].tid == tid_a,
		   "third: sig %d value %d in tid %d", got[2].sig, got[2].value, got[2].tid);
	zdtm_check(got[3].sig == SIGUSR2 && got[3].code == SI_TKILL && got[3].tid == tid_b,
		   "fourth: sig %d code %d in tid %d (B is %d)", got[3].sig, got[3].code, got[3].tid, tid_b);
	zdtm_pass();
}
