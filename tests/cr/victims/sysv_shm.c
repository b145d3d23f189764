/*
 * System V shared memory shared by a parent and its child: segment A (with a key) is
 * attached read-write by both and written by both (pages 0-3 by the parent, 4-7 by the
 * child); segment B (IPC_PRIVATE) is written by the parent and attached read-only by
 * the child. After restore: both segments have their ids and A its key, the contents
 * are exact, a write by either process to A is seen by the other, B is still
 * read-only for the child (a write faults) and is seen changing when the parent
 * writes it, shm_nattch counts both attachments of each, and shmdt works.
 * Only restorable in an ipc namespace of its own (cr_launched_sysv_shm); cr_self_ runs
 * it in the host's and removes both segments at the end.
 */
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#include "../zdtm.h"

#define PG 4096ul
#define SZ_A (10 * PG)
#define SZ_B (3 * PG + 100)	/* not a page multiple: shm_segsz must stay as it was */

static void check_segment(int id, size_t size, unsigned long nattch, const char *what)
{
	struct shmid_ds ds;

	zdtm_check(!shmctl(id, IPC_STAT, &ds), "%s: IPC_STAT of %d: %m", what, id);
	zdtm_check(ds.shm_segsz == size, "%s: %zu bytes, not %zu", what, (size_t)ds.shm_segsz, size);
	zdtm_check(ds.shm_nattch == nattch, "%s: %lu attachments, not %lu", what, (unsigned long)ds.shm_nattch,
		   nattch);
	zdtm_check((ds.shm_perm.mode & 0777) == 0640, "%s: mode %#o", what, ds.shm_perm.mode);
}

static void __attribute__((noreturn)) child(unsigned char *a, unsigned char *b, int idb, int in, int out,
					    uint64_t sum_a, uint64_t sum_b)
{
	unsigned char want[PG];

	zdtm_child_init();
	/* B inherited read-write: detached, attached again read-only. */
	if (shmdt(b))
		zdtm_fail("child: shmdt B: %m");
	b = shmat(idb, NULL, SHM_RDONLY);
	if (b == (void *)-1)
		zdtm_fail("child: shmat B read-only: %m");
	zdtm_fill(a + 4 * PG, 4 * PG, 2);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);		/* after restore */
	zdtm_check(zdtm_csum(a, 4 * PG) == sum_a, "child: pages 0-3 of A changed");
	/* Its first page is the parent's to write now. */
	zdtm_check(zdtm_csum(b + PG, SZ_B - PG) == sum_b, "child: B changed");
	zdtm_check(zdtm_probe((char *)b, 1) == SIGSEGV, "child: B is writable, was attached read-only");
	zdtm_fill(want, PG, 8);
	zdtm_check(!memcmp(a + 8 * PG, want, PG), "child: the parent's write to A page 8 is not seen");
	zdtm_check(b[5] == 0x5a, "child: the parent's write to B is not seen");
	zdtm_fill(a + 9 * PG, PG, 9);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_check(!shmdt(b) && !shmdt(a), "child: shmdt: %m");
	exit(0);
}

int main(void)
{
	key_t key = 0x48430000 | (getpid() & 0xffff);
	int ida, idb, in, out, st;
	unsigned char *a, *b, want[PG];
	uint64_t sum_a, sum_a4, sum_b, sum_b1;
	pid_t pid;

	zdtm_init();
	zdtm_probe_init();
	/* Ids a fresh namespace would not give first: a restore must set them. */
	for (int i = 0; i < 3; i++)
		if (shmctl(shmget(IPC_PRIVATE, PG, 0600), IPC_RMID, NULL))
			zdtm_fail("a short-lived segment: %m");
	ida = shmget(key, SZ_A, IPC_CREAT | IPC_EXCL | 0640);
	idb = shmget(IPC_PRIVATE, SZ_B, IPC_CREAT | 0640);
	if (ida < 0 || idb < 0)
		zdtm_fail("shmget: %m");
	a = shmat(ida, NULL, 0);
	b = shmat(idb, NULL, 0);
	if (a == (void *)-1 || b == (void *)-1)
		zdtm_fail("shmat: %m");
	zdtm_fill(a, 4 * PG, 1);
	zdtm_fill(b, SZ_B, 3);
	sum_a = zdtm_csum(a, 4 * PG);
	sum_b = zdtm_csum(b, SZ_B);
	sum_b1 = zdtm_csum(b + PG, SZ_B - PG);
	pid = zdtm_fork_turns(&in, &out);
	if (pid == 0)
		child(a, b, idb, in, out, sum_a, sum_b1);
	zdtm_turn_wait(in);
	sum_a4 = zdtm_csum(a + 4 * PG, 4 * PG);
	check_segment(ida, SZ_A, 2, "A before");
	zdtm_ready("child=%d ida=%d idb=%d", pid, ida, idb);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(shmget(key, 0, 0) == ida, "A: key %#x names %d, not %d: %m", key, shmget(key, 0, 0), ida);
	check_segment(ida, SZ_A, 2, "A");
	check_segment(idb, SZ_B, 2, "B");
	zdtm_check(zdtm_csum(a, 4 * PG) == sum_a, "pages 0-3 of A changed");
	zdtm_check(zdtm_csum(a + 4 * PG, 4 * PG) == sum_a4, "pages 4-7 of A (the child's) changed");
	zdtm_check(zdtm_csum(b, SZ_B) == sum_b, "B changed");
	zdtm_fill(a + 8 * PG, PG, 8);
	b[5] = 0x5a;
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_fill(want, PG, 9);
	zdtm_check(!memcmp(a + 9 * PG, want, PG), "the child's write to A page 9 is not seen");
	zdtm_turn_give(out);
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	check_segment(ida, SZ_A, 1, "A after the child");
	zdtm_check(!shmdt(a) && !shmdt(b), "shmdt: %m");
	zdtm_check(!shmctl(ida, IPC_RMID, NULL) && !shmctl(idb, IPC_RMID, NULL), "IPC_RMID: %m");
	zdtm_pass();
}
