/*
 * Anonymous private memory: mappings of 1 page, 1 MiB and 64 MiB plus .data and .bss
 * arrays, filled with patterns. The checksum of every page lives apart, in a heap
 * array; the loop keeps rewriting one page after another and updates its checksum.
 * A 16-page region has only its even pages written: the odd ones (never touched) and a
 * page dropped with MADV_DONTNEED must read back as zeros. After restore every page
 * must match its checksum.
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul
#define NR_MAPS 3

static const size_t sizes[NR_MAPS] = { PG, 1ul << 20, 64ul << 20 };
static unsigned char *maps[NR_MAPS];
static uint64_t *sums[NR_MAPS];
static uint64_t version;
static unsigned char data_arr[3 * PG + 123] = { 1, 2, 3 };
static unsigned char bss_arr[5 * PG];
static uint64_t data_sum, bss_sum;

static void rewrite(int m, size_t page)
{
	unsigned char *p = maps[m] + page * PG;

	zdtm_fill(p, PG, ++version * 1000003 + m);
	sums[m][page] = zdtm_csum(p, PG);
}

int main(void)
{
	unsigned char *sparse;
	size_t turn = 0;

	zdtm_init();
	for (int m = 0; m < NR_MAPS; m++) {
		maps[m] = mmap(NULL, sizes[m], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		sums[m] = calloc(sizes[m] / PG, sizeof(uint64_t));
		if (maps[m] == MAP_FAILED || !sums[m])
			zdtm_fail("mmap %zu: %m", sizes[m]);
		for (size_t pg = 0; pg < sizes[m] / PG; pg++)
			rewrite(m, pg);
	}
	sparse = mmap(NULL, 16 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sparse == MAP_FAILED)
		zdtm_fail("mmap: %m");
	for (int i = 0; i < 16; i += 2)
		memset(sparse + i * PG, 0x5a + i, PG);
	memset(sparse + 15 * PG, 0x77, PG);
	madvise(sparse + 15 * PG, PG, MADV_DONTNEED);
	zdtm_fill(data_arr, sizeof(data_arr), 42);
	zdtm_fill(bss_arr, sizeof(bss_arr), 43);
	data_sum = zdtm_csum(data_arr, sizeof(data_arr));
	bss_sum = zdtm_csum(bss_arr, sizeof(bss_arr));
	zdtm_ready("maps=%d", NR_MAPS);

	while (!zdtm_stop) {
		for (int m = 0; m < NR_MAPS; m++)
			rewrite(m, turn % (sizes[m] / PG));
		turn++;
		zdtm_sleep_ms(1);
	}

	for (int m = 0; m < NR_MAPS; m++)
		for (size_t pg = 0; pg < sizes[m] / PG; pg++)
			zdtm_check(zdtm_csum(maps[m] + pg * PG, PG) == sums[m][pg],
				   "mapping %d (%zu bytes at %p): page %zu does not match its checksum", m,
				   sizes[m], (void *)maps[m], pg);
	for (int i = 0; i < 16; i++)
		for (size_t b = 0; b < PG; b++) {
			unsigned char want = i % 2 || i == 15 ? 0 : 0x5a + i;

			zdtm_check(sparse[i * PG + b] == want, "sparse page %d byte %zu is %#x, want %#x", i, b,
				   sparse[i * PG + b], want);
		}
	zdtm_check(zdtm_csum(data_arr, sizeof(data_arr)) == data_sum, ".data array changed");
	zdtm_check(zdtm_csum(bss_arr, sizeof(bss_arr)) == bss_sum, ".bss array changed");
	zdtm_check(turn > 0, "the loop never ran");
	zdtm_pass();
}
