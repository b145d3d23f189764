/*
 * The heap: 2000 malloc blocks of 16 B to 300 KiB (small ones from brk, big ones
 * mmap-ed by malloc), linked in a list; their checksums live in a separate array. The
 * loop rewrites block after block (no allocation). After restore: sbrk(0) is where it
 * was, every block matches its checksum, the list is intact, and malloc still works
 * (allocating 10 MB more grows the heap past the restored brk, then everything is
 * freed without malloc complaining).
 */
#include <malloc.h>

#include "../zdtm.h"

#define NR 2000

struct block {
	struct block *next;
	size_t size;
	unsigned char data[];
};

static struct block *blocks[NR];
static uint64_t sums[NR];

static size_t block_size(int i)
{
	return i % 97 == 0 ? (size_t)300000 + i : 16 + (zdtm_mix(i) % 4000);
}

int main(void)
{
	struct block *head = NULL;
	void *brk0, *more[100];
	uint64_t version = 0;
	int turn = 0, n;

	zdtm_init();
	for (int i = 0; i < NR; i++) {
		blocks[i] = malloc(sizeof(struct block) + block_size(i));
		if (!blocks[i])
			zdtm_fail("malloc");
		blocks[i]->size = block_size(i);
		zdtm_fill(blocks[i]->data, blocks[i]->size, ++version);
		sums[i] = zdtm_csum(blocks[i]->data, blocks[i]->size);
		blocks[i]->next = head;
		head = blocks[i];
	}
	/* Free every third small block: holes in the heap, malloc's free lists in use. */
	for (int i = 1; i < NR; i += 3)
		if (i % 97) {
			free(blocks[i]);
			blocks[i] = NULL;
		}
	head = NULL;
	for (int i = 0; i < NR; i++)
		if (blocks[i]) {
			blocks[i]->next = head;
			head = blocks[i];
		}
	brk0 = sbrk(0);
	zdtm_ready("brk=%p", brk0);

	while (!zdtm_stop) {
		int i = turn++ % NR;

		if (blocks[i]) {
			zdtm_fill(blocks[i]->data, blocks[i]->size, ++version);
			sums[i] = zdtm_csum(blocks[i]->data, blocks[i]->size);
		}
		if (turn % 64 == 0)
			zdtm_sleep_ms(1);
	}

	zdtm_check(sbrk(0) == brk0, "program break %p, was %p", sbrk(0), brk0);
	n = 0;
	for (struct block *b = head; b; b = b->next)
		n++;
	for (int i = 0; i < NR; i++) {
		if (!blocks[i])
			continue;
		n--;
		zdtm_check(blocks[i]->size == block_size(i), "block %d size %zu", i, blocks[i]->size);
		zdtm_check(zdtm_csum(blocks[i]->data, blocks[i]->size) == sums[i], "block %d (%zu bytes at %p) differs",
			   i, blocks[i]->size, (void *)blocks[i]);
	}
	zdtm_check(n == 0, "the linked list lost or gained %d blocks", n);
	for (int i = 0; i < 100; i++) {
		more[i] = malloc(100000);
		zdtm_check(more[i], "malloc after restore failed");
		memset(more[i], i, 100000);
	}
	zdtm_check(sbrk(0) > brk0, "the heap did not grow past the restored break");
	for (int i = 0; i < 100; i++)
		free(more[i]);
	for (int i = 0; i < NR; i++)
		free(blocks[i]);
	malloc_trim(0);
	zdtm_pass();
}
