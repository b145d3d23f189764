/*
 * A victim that keeps writing its memory while it is dumped, so that a pre-copy must
 * tell which pages changed after it copied them. N MiB (argv[1]) of pages, each holding
 * one stamp in every word: (generation << 24) | (page + 1). A writer thread stamps page
 * (g * 2654435761) % pages with generation g, for g = 1, 2, ..., in bursts, and
 * publishes g in `last_gen` after each page. A dump is consistent when every page holds
 * the last generation up to last_gen that chose it (the page of last_gen + 1 may be
 * half written). On SIGTERM the victim checks its own pages the same way.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <time.h>

#include "../cr/zdtm.h"

static uint64_t *mem;
static uint64_t pages;
static volatile uint64_t last_gen;

static uint64_t page_of(uint64_t g)
{
	return (g * 2654435761u) % pages;
}

static void stamp(uint64_t p, uint64_t g)
{
	uint64_t v = g << 24 | (p + 1), *w = mem + p * 512;

	for (int i = 0; i < 512; i++)
		w[i] = v;
}

static void *writer(void *arg)
{
	struct timespec ts = { 0, 200000 };
	uint64_t g = 0;

	while (!zdtm_stop) {
		for (int i = 0; i < 32; i++) {
			g++;
			stamp(page_of(g), g);
			__atomic_store_n(&last_gen, g, __ATOMIC_RELEASE);
		}
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
	uint64_t *latest;
	pthread_t th;

	zdtm_init();
	pages = (mib << 20) / 4096;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	latest = calloc(pages, sizeof(*latest));
	if (mem == MAP_FAILED || !latest)
		zdtm_fail("memory: %m");
	for (uint64_t p = 0; p < pages; p++)
		stamp(p, 0);
	pthread_create(&th, NULL, writer, NULL);
	zdtm_ready("mem=%p pages=%lu last_gen=%p", (void *)mem, (unsigned long)pages, (void *)&last_gen);
	pthread_join(th, NULL);
	for (uint64_t g = 1; g <= last_gen; g++)
		latest[page_of(g)] = g;
	for (uint64_t p = 0; p < pages; p++)
		for (int i = 0; i < 512; i++)
			if (mem[p * 512 + i] != (latest[p] << 24 | (p + 1)))
				zdtm_fail("page %lu word %d: %#lx, expected generation %lu", (unsigned long)p,
					  i, (unsigned long)mem[p * 512 + i], (unsigned long)latest[p]);
	if (last_gen < 1000)
		zdtm_fail("the writer hardly ran (%lu generations)", (unsigned long)last_gen);
	zdtm_pass();
}
