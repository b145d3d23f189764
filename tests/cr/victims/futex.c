/*
 * Threads blocked on a futex: FUTEX_WAIT with a 600 s relative timeout, FUTEX_WAIT_BITSET
 * with an absolute CLOCK_MONOTONIC deadline 600 s away, and FUTEX_WAIT without timeout;
 * the main thread in pause(). After the runner's SIGTERM the main thread sets the word
 * and wakes them: each must return 0 (woken) or EAGAIN (word already changed) and only
 * then; a timeout, EINTR without a signal, or a return while the word is still 0 means
 * the restore lost the wait.
 */
#include <linux/futex.h>
#include <pthread.h>

#include "../zdtm.h"

#define NR 3

static volatile uint32_t word;
static volatile int ready_count;
static int result[NR], err[NR];
static uint32_t word_seen[NR];
static const char *const names[NR] = { "FUTEX_WAIT(600 s)", "FUTEX_WAIT_BITSET(abs)", "FUTEX_WAIT(forever)" };

static void *waiter(void *arg)
{
	int i = (int)(long)arg;
	struct timespec t = { 600, 0 };

	__atomic_add_fetch(&ready_count, 1, __ATOMIC_SEQ_CST);
	switch (i) {
	case 0:
		result[i] = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, &t, NULL, 0);
		break;
	case 1:
		clock_gettime(CLOCK_MONOTONIC, &t);
		t.tv_sec += 600;
		result[i] = syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 0, &t, NULL, FUTEX_BITSET_MATCH_ANY);
		break;
	default:
		result[i] = syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	}
	err[i] = result[i] ? errno : 0;
	word_seen[i] = __atomic_load_n(&word, __ATOMIC_SEQ_CST);
	return NULL;
}

int main(void)
{
	pthread_t th[NR];

	zdtm_init();
	zdtm_threads_start(th, NR, waiter, &ready_count);
	zdtm_ready("blocks=pause blocks_all=1 wake=term threads=%d", NR + 1);
	zdtm_pause_for_term();
	__atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, NR, NULL, NULL, 0);
	for (int i = 0; i < NR; i++) {
		pthread_join(th[i], NULL);
		zdtm_check(word_seen[i] == 1, "%s returned %d (%s) before the word changed", names[i], result[i],
			   strerror(err[i]));
		zdtm_check(result[i] == 0 || err[i] == EAGAIN, "%s: %s, want 0 or EAGAIN", names[i], strerror(err[i]));
	}
	zdtm_pass();
}
