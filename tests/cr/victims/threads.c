/*
 * Four threads each compute a floating-point and integer checksum chain without end;
 * the main thread holds an unlinked file with known content at a reported fd, a SIGUSR1 handler,
 * and an ITIMER_PROF. After SIGTERM every thread's result must equal a recomputation of
 * the same number of steps: a register or xstate (SSE) clobbered by an injection shows.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/time.h>

#include "../zdtm.h"

#define NR_THREADS 4

static struct zdtm_work works[NR_THREADS];
static int started;

static void *worker(void *arg)
{
	struct zdtm_work *w = arg;

	/* glibc starts a thread with every signal blocked and unblocks in start_thread: the
	 * runner's "before" snapshot must not catch that transient mask. */
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	zdtm_work_run(w, (uint64_t)(w - works) + 1);
	return NULL;
}

static volatile sig_atomic_t usr1;
static void on_usr1(int sig)
{
	usr1++;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct itimerval it = { .it_interval = { 500, 0 }, .it_value = { 1000, 0 } };
	static const char content[] = "hacd parasite fd transfer\n";
	pthread_t th[NR_THREADS];
	char name[64];
	int mfd;

	zdtm_init();
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	setitimer(ITIMER_PROF, &it, NULL);
	/* A file unlinked while open (not a memfd, which dumps do not support yet; not
	 * O_TMPFILE, whose /proc name carries an inode number no restore can give back). */
	snprintf(name, sizeof(name), "victim-fd.%d", (int)getpid());
	mfd = open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (mfd < 0 || unlink(name) || write(mfd, content, sizeof(content) - 1) != sizeof(content) - 1)
		zdtm_fail("an unlinked file in the working directory: %m");
	for (int i = 0; i < NR_THREADS; i++)
		pthread_create(&th[i], NULL, worker, &works[i]);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR_THREADS)
		usleep(1000);
	zdtm_ready("threads=%d handler_usr1=%#lx fd=%d fd_content=%s", NR_THREADS + 1,
		   (unsigned long)on_usr1, mfd, "hacd-parasite-fd-transfer");
	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(th[i], NULL);
	zdtm_work_check(works, NR_THREADS);
	/* The handler must still be installed and work. */
	raise(SIGUSR1);
	if (usr1 != 1)
		zdtm_fail("SIGUSR1 handler did not run after the injection");
	zdtm_pass();
}
