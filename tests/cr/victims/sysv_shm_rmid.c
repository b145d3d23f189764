/*
 * System V segments that no mapping alone describes: C is removed (IPC_RMID) while a
 * parent and its child still have it attached, so it lives on with key 0 and SHM_DEST
 * until both detach; D has a key, is locked (SHM_LOCK) and is attached by nobody, so
 * only the ipc namespace holds it. After restore: C is still marked for deletion with
 * its id, both attachments, its contents, and writes shared both ways; D has its id,
 * key, lock, contents and no attachment. Only restorable in an ipc namespace of its
 * own (cr_launched_sysv_shm_rmid); cr_self_ runs it in the host's and removes D.
 */
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#include "../zdtm.h"

#define PG 4096ul
#define SZ_C (6 * PG)
#define SZ_D (5 * PG)

static void __attribute__((noreturn)) child(unsigned char *c, int in, int out)
{
	unsigned char want[PG];

	zdtm_child_init();
	zdtm_fill(c + 2 * PG, 2 * PG, 2);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);		/* after restore */
	zdtm_fill(want, PG, 4);
	zdtm_check(!memcmp(c + 4 * PG, want, PG), "child: the parent's write to C page 4 is not seen");
	zdtm_fill(c + 5 * PG, PG, 5);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_check(!shmdt(c), "child: shmdt C: %m");
	exit(0);
}

int main(void)
{
	key_t key = 0x48440000 | (getpid() & 0xffff);
	int idc, idd, in, out, st;
	unsigned char *c, *d, want[PG];
	struct shmid_ds ds;
	uint64_t sum_c, sum_d;
	pid_t pid;

	zdtm_init();
	/* Ids a fresh namespace would not give first: a restore must set them. */
	for (int i = 0; i < 3; i++)
		if (shmctl(shmget(IPC_PRIVATE, PG, 0600), IPC_RMID, NULL))
			zdtm_fail("a short-lived segment: %m");
	idc = shmget(IPC_PRIVATE, SZ_C, IPC_CREAT | 0600);
	idd = shmget(key, SZ_D, IPC_CREAT | IPC_EXCL | 0604);
	if (idc < 0 || idd < 0)
		zdtm_fail("shmget: %m");
	c = shmat(idc, NULL, 0);
	d = shmat(idd, NULL, 0);
	if (c == (void *)-1 || d == (void *)-1)
		zdtm_fail("shmat: %m");
	zdtm_fill(c, 2 * PG, 1);
	zdtm_fill(d, 3 * PG, 3);	/* pages 3-4 stay holes */
	sum_d = zdtm_csum(d, SZ_D);
	if (shmdt(d) || shmctl(idd, SHM_LOCK, NULL) || shmctl(idc, IPC_RMID, NULL))
		zdtm_fail("shmdt/SHM_LOCK/IPC_RMID: %m");
	pid = zdtm_fork_turns(&in, &out);
	if (pid == 0)
		child(c, in, out);
	zdtm_turn_wait(in);
	sum_c = zdtm_csum(c, 4 * PG);
	zdtm_ready("child=%d idc=%d idd=%d", pid, idc, idd);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(!shmctl(idc, IPC_STAT, &ds), "C: IPC_STAT of %d: %m", idc);
	zdtm_check(ds.shm_perm.mode & SHM_DEST, "C: no longer marked for deletion (mode %#o)", ds.shm_perm.mode);
	zdtm_check(ds.shm_nattch == 2, "C: %lu attachments, not 2", (unsigned long)ds.shm_nattch);
	zdtm_check(ds.shm_segsz == SZ_C, "C: %zu bytes", (size_t)ds.shm_segsz);
	zdtm_check(zdtm_csum(c, 4 * PG) == sum_c, "C: pages 0-3 changed");
	zdtm_check(shmget(key, 0, 0) == idd, "D: key %#x names %d, not %d: %m", key, shmget(key, 0, 0), idd);
	zdtm_check(!shmctl(idd, IPC_STAT, &ds), "D: IPC_STAT: %m");
	zdtm_check(ds.shm_nattch == 0, "D: %lu attachments, not 0", (unsigned long)ds.shm_nattch);
	zdtm_check(ds.shm_perm.mode & SHM_LOCKED, "D: not locked (mode %#o)", ds.shm_perm.mode);
	zdtm_check((ds.shm_perm.mode & 0777) == 0604, "D: mode %#o", ds.shm_perm.mode);
	zdtm_check(ds.shm_segsz == SZ_D, "D: %zu bytes", (size_t)ds.shm_segsz);
	d = shmat(idd, NULL, SHM_RDONLY);
	zdtm_check(d != (void *)-1, "D: shmat: %m");
	zdtm_check(zdtm_csum(d, SZ_D) == sum_d, "D: contents changed");
	zdtm_check(!shmdt(d), "D: shmdt: %m");
	zdtm_fill(c + 4 * PG, PG, 4);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_fill(want, PG, 5);
	zdtm_check(!memcmp(c + 5 * PG, want, PG), "the child's write to C page 5 is not seen");
	zdtm_turn_give(out);
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	zdtm_check(!shmdt(c), "shmdt C: %m");
	/* The last detach destroyed C. */
	zdtm_check(shmctl(idc, IPC_STAT, &ds) < 0, "C outlived its last attachment");
	zdtm_check(!shmctl(idd, IPC_RMID, NULL), "D: IPC_RMID: %m");
	zdtm_pass();
}
