/*
 * MAP_GROWSDOWN: a 4-page growsdown mapping with 12 MiB of free space below it, grown by
 * two pages before ready (a fault just below its start extends it). After restore the
 * grown pages and the original ones hold their data, and the mapping still grows: a
 * touch 3 pages further below must extend it again, not fault.
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul

int main(void)
{
	unsigned char *res, *gd;
	uint64_t sum, n = 0;

	zdtm_init();
	zdtm_probe_init();
	res = mmap(NULL, 16 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED)
		zdtm_fail("mmap: %m");
	munmap(res, 16 << 20);
	gd = mmap(res + (12 << 20), 4 * PG, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN | MAP_FIXED_NOREPLACE, -1, 0);
	if (gd != res + (12 << 20))
		zdtm_fail("mmap growsdown: %m");
	/* Grow it by two pages. */
	zdtm_check(!zdtm_probe((char *)gd - PG, 1), "growsdown did not grow before the dump");
	zdtm_check(!zdtm_probe((char *)gd - 2 * PG, 1), "growsdown did not grow before the dump");
	zdtm_fill(gd - 2 * PG, 6 * PG, 31);
	sum = zdtm_csum(gd - 2 * PG, 6 * PG);
	zdtm_ready("growsdown=%p", (void *)gd);

	while (!zdtm_stop) {
		n += gd[(n * 64) % (4 * PG)];
		zdtm_sleep_ms(1);
	}

	zdtm_check(zdtm_csum(gd - 2 * PG, 6 * PG) == sum, "growsdown content differs");
	zdtm_check(!zdtm_probe((char *)gd - 3 * PG, 1), "growsdown mapping no longer grows (fault at %p)",
		   zdtm_probe_addr);
	zdtm_check(!zdtm_probe((char *)gd - 5 * PG, 1), "growsdown mapping no longer grows (fault at %p)",
		   zdtm_probe_addr);
	zdtm_check(gd[-5 * (long)PG] == 0, "fresh growsdown page not zero");
	zdtm_pass();
}
