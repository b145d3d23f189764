/*
 * Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS) inherited across fork: one shmem
 * object that parent and child must still share after restore. The parent also maps
 * the same object twice more (mremap with old size 0), once at an offset. Pages 0-11
 * are written before ready (0-7 by the parent, 8-11 by the child); after restore each
 * checks them exactly, then the parent writes page 12 and the child must see it, and
 * the child writes page 13 and the parent, through all three of its mappings, must
 * see it.
 */
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul
#define NPG 16

static void __attribute__((noreturn)) child(unsigned char *a, int in, int out, uint64_t sum)
{
	unsigned char want[PG];

	zdtm_child_init();
	zdtm_fill(a + 8 * PG, 4 * PG, 2);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);	/* the parent's turn, after restore */
	zdtm_check(zdtm_csum(a, 8 * PG) == sum, "child: pages 0-7 changed");
	zdtm_fill(want, PG, 12);
	zdtm_check(!memcmp(a + 12 * PG, want, PG), "child: the parent's write to page 12 is not seen");
	zdtm_fill(a + 13 * PG, PG, 13);
	zdtm_turn_give(out);
	exit(0);
}

int main(void)
{
	unsigned char *a, *a2, *a3, want[PG];
	int in, out, st;
	uint64_t sum, sum8;
	pid_t pid;

	zdtm_init();
	a = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED)
		zdtm_fail("setup: %m");
	zdtm_fill(a, 8 * PG, 1);
	sum = zdtm_csum(a, 8 * PG);
	pid = zdtm_fork_turns(&in, &out);
	if (pid == 0)
		child(a, in, out, sum);
	zdtm_turn_wait(in);
	sum8 = zdtm_csum(a + 8 * PG, 4 * PG);
	/* Two more mappings of the same object: all of it, and pages 4-7 of it. */
	a2 = mremap(a, 0, NPG * PG, MREMAP_MAYMOVE);
	a3 = mremap(a + 4 * PG, 0, 4 * PG, MREMAP_MAYMOVE);
	if (a2 == MAP_FAILED || a3 == MAP_FAILED)
		zdtm_fail("mremap: %m");
	zdtm_check(!memcmp(a2, a, NPG * PG) && !memcmp(a3, a + 4 * PG, 4 * PG), "second mappings differ");
	zdtm_ready("child=%d", pid);

	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(zdtm_csum(a, 8 * PG) == sum, "pages 0-7 changed");
	zdtm_check(zdtm_csum(a + 8 * PG, 4 * PG) == sum8, "the child's pages 8-11 changed");
	zdtm_check(!memcmp(a2, a, NPG * PG), "the second mapping is not the same object");
	zdtm_check(!memcmp(a3, a + 4 * PG, 4 * PG), "the mapping at offset 4 pages is not the same object");
	zdtm_fill(a + 12 * PG, PG, 12);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_fill(want, PG, 13);
	zdtm_check(!memcmp(a + 13 * PG, want, PG), "the child's write to page 13 is not seen");
	zdtm_check(!memcmp(a2 + 13 * PG, want, PG), "the child's write is not seen in the second mapping");
	a3[0] = 0x5a;
	zdtm_check(a[4 * PG] == 0x5a && a2[4 * PG] == 0x5a, "a write through the offset mapping is not seen");
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	zdtm_pass();
}
