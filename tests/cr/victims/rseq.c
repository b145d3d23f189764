/*
 * rseq: glibc registers an rseq area in every thread. In each of three threads, after
 * restore: the kernel still has exactly that area registered with glibc's signature
 * (registering it again answers EBUSY; an unregistered thread would register it and
 * get 0, a different area EINVAL, a different signature EPERM), and the kernel keeps
 * the area's cpu_id current (it matches getcpu, retried against migration).
 */
#include <pthread.h>
#include <sys/rseq.h>

#include "../zdtm.h"

#define NR 3

static volatile int started;
/* The length glibc registered: __rseq_size is the feature size in newer glibc (20)
 * while the registration is 32 bytes; found by asking the kernel. */
static unsigned rseq_len;
static int errs[NR];
static char why[NR][128];

static struct rseq *area(void)
{
	return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static int check(int i)
{
	long r = syscall(SYS_rseq, area(), rseq_len, 0, RSEQ_SIG);
	int ok = 0;

	if (r == 0) {
		snprintf(why[i], sizeof(why[i]), "rseq was not registered (registering it worked)");
		return 1;
	}
	if (errno != EBUSY) {
		snprintf(why[i], sizeof(why[i]), "re-registering answers %s, not EBUSY", strerror(errno));
		return 1;
	}
	for (int k = 0; k < 100 && !ok; k++) {
		unsigned cpu;

		syscall(SYS_getcpu, &cpu, NULL, NULL);
		ok = (unsigned)__atomic_load_n(&area()->cpu_id, __ATOMIC_RELAXED) == cpu;
		if (!ok)
			zdtm_sleep_ms(1);
	}
	if (!ok) {
		snprintf(why[i], sizeof(why[i]), "rseq cpu_id %d never matched getcpu", (int)area()->cpu_id);
		return 1;
	}
	return 0;
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	uint64_t n = 0;

	if (check(i))
		zdtm_fail("thread %d before: %s", i, why[i]);
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop) {
		n += area()->cpu_id;
		zdtm_sleep_ms(1);
	}
	errs[i] = check(i);
	return NULL;
}

int main(void)
{
	pthread_t th[NR];

	zdtm_init();
	if (__rseq_size == 0)
		zdtm_fail("glibc did not register rseq (glibc.pthread.rseq=0?)");
	for (unsigned len = 32; len >= 20 && !rseq_len; len -= 4) {
		if (syscall(SYS_rseq, area(), len, 0, RSEQ_SIG) == -1 && errno == EBUSY)
			rseq_len = len;
	}
	if (!rseq_len)
		zdtm_fail("cannot find the length of glibc's rseq registration");
	for (int i = 1; i < NR; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR - 1)
		zdtm_sleep_ms(1);
	if (check(0))
		zdtm_fail("main before: %s", why[0]);
	zdtm_ready("threads=%d rseq_len=%u", NR, rseq_len);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	errs[0] = check(0);
	for (int i = 1; i < NR; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NR; i++)
		zdtm_check(!errs[i], "thread %d: %s", i, why[i]);
	zdtm_pass();
}
