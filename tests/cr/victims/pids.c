/*
 * PIDs and TIDs: the main thread makes itself a process group leader, three threads
 * record their TIDs with the raw gettid syscall. After restore: getpid, getpgid and
 * each thread's gettid (raw syscalls) are what they were, /proc/self/task lists exactly
 * those TIDs, and pthread_kill() (which uses glibc's cached TID of each thread) reaches
 * the right thread: its handler sees its own TID.
 */
#include <dirent.h>
#include <pthread.h>

#include "../zdtm.h"

#define NR 3

static pid_t tids[NR], seen[NR];
static __thread int my_index = -1;
static volatile int started;

static void on_usr1(int sig)
{
	(void)sig;
	if (my_index >= 0)
		seen[my_index] = zdtm_gettid();
}

static void *worker(void *arg)
{
	my_index = (int)(long)arg;
	tids[my_index] = zdtm_gettid();
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	zdtm_check(zdtm_gettid() == tids[my_index], "thread %d: tid %d, was %d", my_index, zdtm_gettid(),
		   tids[my_index]);
	/* Wait for main's pthread_kill. */
	for (int i = 0; i < 5000 && !seen[my_index]; i++)
		zdtm_sleep_ms(1);
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t th[NR];
	pid_t pid, pgid;
	struct dirent *de;
	int n = 0;
	DIR *d;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* Launched, we lead our session already (and may not setpgid). */
	if (getpgid(0) != zdtm_getpid() && setpgid(0, 0))
		zdtm_fail("setpgid: %m");
	pid = zdtm_getpid();
	pgid = getpgid(0);
	for (int i = 0; i < NR; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR)
		zdtm_sleep_ms(1);
	zdtm_ready("pid=%d tids=%d,%d,%d threads=%d", pid, tids[0], tids[1], tids[2], NR + 1);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(zdtm_getpid() == pid, "getpid %d, was %d", zdtm_getpid(), pid);
	zdtm_check(zdtm_gettid() == pid, "main gettid %d, pid %d", zdtm_gettid(), pid);
	zdtm_check(getpgid(0) == pgid && pgid == pid, "pgid %d, was %d", getpgid(0), pgid);
	d = opendir("/proc/self/task");
	while (d && (de = readdir(d))) {
		pid_t t = atoi(de->d_name);
		int known = t == pid;

		if (de->d_name[0] == '.')
			continue;
		for (int i = 0; i < NR; i++)
			known |= t == tids[i];
		zdtm_check(known, "unknown thread %d in /proc/self/task", t);
		n++;
	}
	if (d)
		closedir(d);
	zdtm_check(n == NR + 1, "%d threads in /proc/self/task, want %d", n, NR + 1);
	for (int i = 0; i < NR; i++)
		zdtm_check(!pthread_kill(th[i], SIGUSR1), "pthread_kill thread %d: the cached tid is gone", i);
	for (int i = 0; i < NR; i++) {
		pthread_join(th[i], NULL);
		zdtm_check(seen[i] == tids[i], "pthread_kill to thread %d (tid %d) ran in tid %d", i, tids[i], seen[i]);
	}
	zdtm_pass();
}
