/*
 * Process-wide pending signals: every thread blocks SIGUSR2 and SIGRTMIN+3; SIGUSR2
 * (kill) and three SIGRTMIN+3 with values 1, 2, 3 (sigqueue) are pending for the whole
 * process. After restore: sigpending() still shows both, and when the main thread
 * unblocks them the handler runs once for SIGUSR2 (SI_USER, our pid) and three times
 * for SIGRTMIN+3 with the values in order.
 */
#include <pthread.h>

#include "../zdtm.h"

static int sigs[8], vals[8], codes[8];
static pid_t pids[8];
static volatile int nr;

static void on_sig(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (nr < 8) {
		sigs[nr] = sig;
		codes[nr] = si->si_code;
		pids[nr] = si->si_pid;
		vals[nr] = si->si_code == SI_QUEUE ? si->si_value.sival_int : 0;
	}
	nr++;
}

static volatile int started;

static void *worker(void *arg)
{
	(void)arg;
	started = 1;
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_sigaction = on_sig, .sa_flags = SA_SIGINFO };
	pid_t pid = zdtm_getpid();
	sigset_t s, p;
	pthread_t th;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaddset(&sa.sa_mask, SIGRTMIN + 3);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGRTMIN + 3, &sa, NULL);
	sigemptyset(&s);
	sigaddset(&s, SIGUSR2);
	sigaddset(&s, SIGRTMIN + 3);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	pthread_create(&th, NULL, worker, NULL);	/* inherits the mask */
	while (!started)	/* glibc starts it with all signals blocked */
		zdtm_sleep_ms(1);
	kill(pid, SIGUSR2);
	for (int v = 1; v <= 3; v++)
		sigqueue(pid, SIGRTMIN + 3, (union sigval){ .sival_int = v });
	zdtm_ready("threads=2");
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	pthread_join(th, NULL);
	sigpending(&p);
	zdtm_check(sigismember(&p, SIGUSR2) && sigismember(&p, SIGRTMIN + 3), "pending set lost (%d %d)",
		   sigismember(&p, SIGUSR2), sigismember(&p, SIGRTMIN + 3));
	zdtm_check(nr == 0, "a blocked signal was delivered");
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	zdtm_check(nr == 4, "%d signals delivered after unblocking, want 4", nr);
	zdtm_check(sigs[0] == SIGUSR2 && codes[0] == SI_USER && pids[0] == pid, "SIGUSR2: sig %d code %d pid %d",
		   sigs[0], codes[0], pids[0]);
	for (int i = 1; i < 4; i++)
		zdtm_check(sigs[i] == SIGRTMIN + 3 && codes[i] == SI_QUEUE && vals[i] == i && pids[i] == pid,
			   "RT #%d: sig %d code %d value %d pid %d", i, sigs[i], codes[i], vals[i], pids[i]);
	zdtm_pass();
}
