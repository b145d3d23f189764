/*
 * Task names: the main thread is "zdtm-main-comm" (PR_SET_NAME), two threads
 * "zdtm-worker-0/1" (pthread_setname_np). After restore PR_GET_NAME and each thread's
 * /proc/self/task/TID/comm (pthread_getname_np) answer the same.
 */
#include <pthread.h>
#include <sys/prctl.h>

#include "../zdtm.h"

static volatile int started, checked;

static void *worker(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop || !checked)	/* alive until main has read our name */
		zdtm_sleep_ms(2);
	return NULL;
}

int main(void)
{
	char name[32], want[32];
	pthread_t th[2];

	zdtm_init();
	if (prctl(PR_SET_NAME, "zdtm-main-comm"))
		zdtm_fail("PR_SET_NAME: %m");
	for (int i = 0; i < 2; i++) {
		pthread_create(&th[i], NULL, worker, NULL);
		snprintf(want, sizeof(want), "zdtm-worker-%d", i);
		pthread_setname_np(th[i], want);
	}
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 2)
		zdtm_sleep_ms(1);
	zdtm_ready("comm=zdtm-main-comm threads=3");
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	prctl(PR_GET_NAME, name);
	zdtm_check(!strcmp(name, "zdtm-main-comm"), "main comm '%s'", name);
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "zdtm-worker-%d", i);
		zdtm_check(!pthread_getname_np(th[i], name, sizeof(name)) && !strcmp(name, want),
			   "thread %d comm '%s', want '%s'", i, name, want);
	}
	checked = 1;
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	zdtm_pass();
}
