/*
 * The stack: 300 nested frames, each with a 1 KiB array filled from its depth, and a
 * 1 MiB array in the deepest frame (the main stack VMA has grown for it); a second
 * thread does the same on its pthread stack. The loop runs in the deepest frames. After
 * restore every frame is checked on the way back up, and the main stack must still
 * grow: 3 MiB more of stack is used (a stack restored without VM_GROWSDOWN faults).
 */
#include <alloca.h>
#include <pthread.h>

#include "../zdtm.h"

#define DEPTH 300

static volatile int deepest[2];
static volatile uint64_t loops[2];

static int __attribute__((noinline)) grow_more(size_t n)
{
	volatile unsigned char *big = alloca(n);

	for (size_t i = 0; i < n; i += 4096)
		big[i] = (unsigned char)i;
	return big[n / 2 & ~4095ul] == (unsigned char)(n / 2 & ~4095ul);
}

/* The deepest frame: a 1 MiB array (its own function, or every frame would have one). */
static void __attribute__((noinline)) deepest_loop(int who)
{
	static unsigned char *bigp[2];
	unsigned char big[1 << 20];
	uint64_t bsum;

	zdtm_fill(big, sizeof(big), who + 7);
	bsum = zdtm_csum(big, sizeof(big));
	bigp[who] = big;
	deepest[who] = 1;
	if (who == 0) {
		while (!deepest[1])
			zdtm_sleep_ms(1);
		zdtm_ready("depth=%d", DEPTH);
	}
	while (!zdtm_stop) {
		loops[who]++;
		/* Keep the frame's data in use. */
		big[loops[who] % sizeof(big)] ^= 0;
		zdtm_sleep_ms(1);
	}
	zdtm_check(zdtm_csum(big, sizeof(big)) == bsum, "thread %d: the 1 MiB stack array changed", who);
	zdtm_check(bigp[who] == big, "stack address moved");
}

static int __attribute__((noinline)) frame(int who, int depth)
{
	unsigned char local[1024];
	uint64_t sum;
	int ok = 1;

	zdtm_fill(local, sizeof(local), who * 100000 + depth);
	sum = zdtm_csum(local, sizeof(local));
	if (depth < DEPTH)
		ok = frame(who, depth + 1);
	else
		deepest_loop(who);
	zdtm_check(zdtm_csum(local, sizeof(local)) == sum, "thread %d: frame at depth %d changed", who, depth);
	return ok;
}

static void *thread_main(void *arg)
{
	(void)arg;
	frame(1, 0);
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	pthread_t th;

	zdtm_init();
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 4 << 20);
	if (pthread_create(&th, &attr, thread_main, NULL))
		zdtm_fail("pthread_create");
	frame(0, 0);
	pthread_join(th, NULL);
	zdtm_check(loops[0] && loops[1], "the loops did not run");
	zdtm_check(grow_more(3 << 20), "the grown stack lost its contents");
	zdtm_pass();
}
