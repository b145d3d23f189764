/*
 * A memory-heavy victim for dump timings: N MiB (argv[1]) of pseudo-random, never-zero
 * data in one anonymous mapping. It reports the mapping, waits for SIGTERM, and checks
 * that the data is unchanged.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "../cr/zdtm.h"

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s | 1;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64, n = (mib << 20) / 8;
	uint64_t *p, s = 88172645463325252ull;

	zdtm_init();
	p = mmap(NULL, n * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		zdtm_fail("mmap %zu MiB: %m", mib);
	for (size_t i = 0; i < n; i++)
		p[i] = next(&s);
	zdtm_ready("buf=%#lx mib=%zu", (unsigned long)p, mib);
	while (!zdtm_stop)
		usleep(10000);
	s = 88172645463325252ull;
	for (size_t i = 0; i < n; i++)
		if (p[i] != next(&s))
			zdtm_fail("word %zu changed", i);
	zdtm_pass();
}
