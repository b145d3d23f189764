/*
 * mprotect-ed regions: a 10-page mapping written whole, then split by mprotect into
 * RW | R | RX | NONE | RW | R (a VMA per run), and a separate mapping made read-only
 * and then writable again (rejoined). After restore: contents match, read-only pages
 * refuse writes (SEGV_ACCERR at the address), PROT_NONE refuses reads, RW pages take
 * writes, and the code page is executable (its `ret` is called).
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul

static const struct { int first, n, prot; const char *name; } runs[] = {
	{ 0, 2, PROT_READ | PROT_WRITE, "rw" }, { 2, 2, PROT_READ, "r" },
	{ 4, 1, PROT_READ | PROT_EXEC, "rx" }, { 5, 1, PROT_NONE, "none" },
	{ 6, 2, PROT_READ | PROT_WRITE, "rw2" }, { 8, 2, PROT_READ, "r2" },
};
#define NRUNS (sizeof(runs) / sizeof(runs[0]))

int main(void)
{
	unsigned char *m, *again;
	uint64_t sums[NRUNS], sum_again, n = 0;

	zdtm_init();
	zdtm_probe_init();
	m = mmap(NULL, 10 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	again = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || again == MAP_FAILED)
		zdtm_fail("mmap: %m");
	zdtm_fill(m, 10 * PG, 11);
	m[4 * PG] = 0xc3;	/* ret */
	for (size_t i = 0; i < NRUNS; i++) {
		sums[i] = zdtm_csum(m + runs[i].first * PG, runs[i].n * PG);
		if (mprotect(m + runs[i].first * PG, runs[i].n * PG, runs[i].prot))
			zdtm_fail("mprotect %s: %m", runs[i].name);
	}
	zdtm_fill(again, 4 * PG, 12);
	mprotect(again + PG, PG, PROT_READ);
	mprotect(again + PG, PG, PROT_READ | PROT_WRITE);
	sum_again = zdtm_csum(again, 4 * PG);
	zdtm_ready("map=%p", (void *)m);

	while (!zdtm_stop) {
		/* Rewrite RW pages with the same bytes, read the R ones. */
		m[n % (2 * PG)] = m[n % (2 * PG)];
		n += m[2 * PG + n % (2 * PG)];
		zdtm_sleep_ms(1);
	}

	for (size_t i = 0; i < NRUNS; i++) {
		char *a = (char *)m + runs[i].first * PG + 17;
		int w = runs[i].prot & PROT_WRITE, r = runs[i].prot & PROT_READ;

		if (r)
			zdtm_check(zdtm_csum(m + runs[i].first * PG, runs[i].n * PG) == sums[i], "%s pages differ",
				   runs[i].name);
		zdtm_check(!zdtm_probe(a, 0) == !!r, "%s page: read %s", runs[i].name, r ? "faults" : "works");
		zdtm_check(!zdtm_probe(a, 1) == !!w, "%s page: write %s", runs[i].name, w ? "faults" : "works");
		if (!w) {
			zdtm_check(zdtm_probe_addr == a, "%s page: fault at %p, not %p", runs[i].name, zdtm_probe_addr,
				   a);
			zdtm_check(zdtm_probe_code == SEGV_ACCERR, "%s page: si_code %d", runs[i].name, zdtm_probe_code);
		}
	}
	((void (*)(void))(m + 4 * PG))();
	zdtm_check(zdtm_csum(again, 4 * PG) == sum_again, "re-protected mapping differs");
	zdtm_check(!zdtm_probe((char *)again + PG, 1), "re-protected page not writable");
	zdtm_pass();
}
