/*
 * A System V shared memory segment attached by a parent and its child in hacd's own
 * ipc namespace, where segment ids are host-wide and a restore could not promise them
 * (engine/sysv-shm.c dumps segments of a tree's own namespace: sysv_shm.c). The dump
 * must refuse it, naming the pid and "System V shared memory", and leave both running
 * with the segment's contents intact. The segment is removed
 * (IPC_RMID) right after attaching, so nothing outlives the test.
 */
#include <sys/ipc.h>
#include <sys/shm.h>

#include "../zdtm.h"

#define SIZE (4 * 4096ul)

int main(void)
{
	int id = shmget(IPC_PRIVATE, SIZE, IPC_CREAT | 0600), p[2], st;
	unsigned char *a = id < 0 ? (void *)-1 : shmat(id, NULL, 0);
	uint64_t sum;
	pid_t pid;
	char b;

	zdtm_init();
	if (a == (void *)-1 || shmctl(id, IPC_RMID, NULL) || pipe(p))
		zdtm_fail("shmget/shmat: %m");
	zdtm_fill(a, SIZE / 2, 3);
	pid = fork();
	if (pid < 0)
		zdtm_fail("fork: %m");
	if (pid == 0) {
		zdtm_child_init();
		close(p[1]);
		zdtm_fill(a + SIZE / 2, SIZE / 2, 4);
		while (read(p[0], &b, 1) < 0 && errno == EINTR)
			;
		exit(0);
	}
	close(p[0]);
	while (a[SIZE - 1] == 0 || a[SIZE / 2] == 0)
		zdtm_sleep_ms(1);
	sum = zdtm_csum(a, SIZE);
	zdtm_ready("bad_pid=%d kind=System", zdtm_getpid());
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(zdtm_csum(a, SIZE) == sum, "the segment's contents changed");
	close(p[1]);
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	zdtm_pass();
}
