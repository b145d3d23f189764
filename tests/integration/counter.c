/*
 * counter.c: the small stateful service of the agent's load test. Its state is a
 * counter in memory and a 1 MiB buffer it keeps writing into (so each checkpoint has
 * dirty pages to copy); it prints the counter every 100 ms.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

static char buf[1 << 20];

int main(void)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };
	unsigned long n = 0;

	for (;;) {
		n++;
		/* One page in 16 each round: a steady trickle of writes. */
		for (size_t off = (n % 16) * 4096; off < sizeof(buf); off += 16 * 4096)
			buf[off] = (char)n;
		printf("%lu\n", n);
		fflush(stdout);
		nanosleep(&ts, NULL);
	}
}
