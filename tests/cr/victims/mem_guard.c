/*
 * Guard gaps and holes: one 32-page mapping turned into RW | PROT_NONE guard | RW |
 * 8-page PROT_NONE guard | RW, a hole punched with munmap, and a 1 GiB PROT_NONE
 * MAP_NORESERVE reservation with a RW window committed inside it (the JIT/arena
 * pattern). After restore: RW pages keep their data, guards fault with SEGV_ACCERR at
 * the touched address, the hole faults with SEGV_MAPERR, the reservation's PROT_NONE
 * parts fault and its window works.
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul

int main(void)
{
	unsigned char *m, *res;
	uint64_t sum_m, sum_w, n = 0;
	zdtm_init();
	zdtm_probe_init();
	m = mmap(NULL, 32 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	res = mmap(NULL, 1ul << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED || res == MAP_FAILED)
		zdtm_fail("mmap: %m");
	zdtm_fill(m, 32 * PG, 5);
	mprotect(m + 4 * PG, PG, PROT_NONE);		/* guard: page 4 */
	mprotect(m + 12 * PG, 8 * PG, PROT_NONE);	/* guard: pages 12-19 */
	munmap(m + 24 * PG, 2 * PG);			/* hole: pages 24-25 */
	/* The checksum covers the RW pages only. */
	sum_m = zdtm_csum(m, 4 * PG) ^ zdtm_csum(m + 5 * PG, 7 * PG) ^ zdtm_csum(m + 20 * PG, 4 * PG) ^
		zdtm_csum(m + 26 * PG, 6 * PG);
	if (mprotect(res + (512ul << 20), 16 * PG, PROT_READ | PROT_WRITE))
		zdtm_fail("mprotect: %m");
	zdtm_fill(res + (512ul << 20), 16 * PG, 6);
	sum_w = zdtm_csum(res + (512ul << 20), 16 * PG);
	zdtm_ready("map=%p reservation=%p", (void *)m, (void *)res);

	while (!zdtm_stop) {
		n += m[(n * 64) % (4 * PG)] + res[(512ul << 20) + n % (16 * PG)];
		zdtm_sleep_ms(1);
	}

	zdtm_check((zdtm_csum(m, 4 * PG) ^ zdtm_csum(m + 5 * PG, 7 * PG) ^ zdtm_csum(m + 20 * PG, 4 * PG) ^
		    zdtm_csum(m + 26 * PG, 6 * PG)) == sum_m, "RW pages around the guards differ");
	zdtm_check(zdtm_csum(res + (512ul << 20), 16 * PG) == sum_w, "the window in the reservation differs");
	{
		static const struct { long page; int code; const char *what; } probes[] = {
			{ 4, SEGV_ACCERR, "guard page 4" }, { 12, SEGV_ACCERR, "guard page 12" },
			{ 19, SEGV_ACCERR, "guard page 19" }, { 24, SEGV_MAPERR, "hole page 24" },
			{ 25, SEGV_MAPERR, "hole page 25" },
		};

		for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
			char *a = (char *)m + probes[i].page * PG + 100;

			zdtm_check(zdtm_probe(a, 0) == SIGSEGV, "%s at %p is accessible", probes[i].what, a);
			zdtm_check(zdtm_probe_addr == a, "%s: fault at %p, not %p", probes[i].what, zdtm_probe_addr, a);
			zdtm_check(zdtm_probe_code == probes[i].code, "%s: si_code %d, want %d", probes[i].what,
				   zdtm_probe_code, probes[i].code);
		}
	}
	zdtm_check(zdtm_probe((char *)res, 0) == SIGSEGV, "reservation start accessible");
	zdtm_check(zdtm_probe((char *)res + (1ul << 30) - 1, 0) == SIGSEGV, "reservation end accessible");
	zdtm_check(zdtm_probe((char *)res + (512ul << 20) - 1, 0) == SIGSEGV, "byte below the window accessible");
	zdtm_check(!zdtm_probe((char *)res + (512ul << 20) + 16 * PG - 1, 1), "window end not writable");
	zdtm_check(!zdtm_probe((char *)m + 31 * PG, 1), "last RW page not writable");
	zdtm_pass();
}
