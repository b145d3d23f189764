/*
 * A big sparse mapping: 4 GiB MAP_NORESERVE anonymous, of which only 64 pages (first,
 * last, scattered) are written. After restore the written pages hold their data,
 * untouched pages read as zero, and the mapping's resident size stays small: a restore
 * that wrote the zeros would show here, and would not be done yet either.
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul
#define SIZE (4ul << 30)
#define NR 64

static size_t page_of(int i)
{
	if (i == 0)
		return 0;
	if (i == NR - 1)
		return SIZE / PG - 1;
	return zdtm_mix(i) % (SIZE / PG);
}

static long rss_kb(void *start)
{
	char line[256], want[32];
	long kb = -1;
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	snprintf(want, sizeof(want), "%lx-", (unsigned long)start);
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			in = 1;
		else if (in && !strncmp(line, "Rss:", 4)) {
			kb = strtol(line + 4, NULL, 10);
			break;
		}
	}
	if (f)
		fclose(f);
	return kb;
}

int main(void)
{
	unsigned char *m;
	uint64_t sums[NR], n = 0;
	long rss;

	zdtm_init();
	m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED)
		zdtm_fail("mmap 4 GiB: %m");
	madvise(m, SIZE, MADV_NOHUGEPAGE);	/* one page stays one page */
	for (int i = 0; i < NR; i++) {
		zdtm_fill(m + page_of(i) * PG, PG, 300 + i);
		sums[i] = zdtm_csum(m + page_of(i) * PG, PG);
	}
	zdtm_ready("size=%lu touched=%d", SIZE, NR);

	while (!zdtm_stop) {
		n += m[page_of(n % NR) * PG + n % PG];
		zdtm_sleep_ms(1);
	}

	for (int i = 0; i < NR; i++)
		zdtm_check(zdtm_csum(m + page_of(i) * PG, PG) == sums[i], "touched page %zu differs", page_of(i));
	rss = rss_kb(m);
	zdtm_check(rss >= 0 && rss <= 16 * 1024, "the sparse mapping has %ld kB resident after restore", rss);
	for (int i = 0; i < 256; i++) {
		size_t pg = zdtm_mix(10000 + i) % (SIZE / PG);
		int touched = 0;

		for (int j = 0; j < NR; j++)
			touched |= page_of(j) == pg;
		if (touched)
			continue;
		for (size_t b = 0; b < PG; b += 64)
			zdtm_check(!m[pg * PG + b], "untouched page %zu is not zero", pg);
	}
	zdtm_pass();
}
