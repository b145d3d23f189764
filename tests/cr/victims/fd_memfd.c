/*
 * memfds as descriptors and as mappings. "sealed": 3 pages and 100 bytes, MFD_CLOEXEC
 * and F_SEAL_SHRINK|F_SEAL_GROW, its offset at 1234, mapped shared read-write.
 * "plain": no sealing allowed (so F_SEAL_SEAL), not close-on-exec, mapped private
 * with one page written (copied on write: the memfd keeps its own). "ro": sealed
 * against writes, mapped read-only. After restore: names, sizes, seals, offsets, fd
 * flags and contents are as they were, a store through the shared mapping is read
 * through the fd and a pwrite through the fd is seen in the mapping, and the seals
 * still refuse what they refused. A child shares "sealed" (description and mapping):
 * its store through its mapping is read through the parent's fd, and the offset it
 * sets is the parent's.
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define PG 4096ul
#define SIZE (3 * PG + 100)

static void check_name(int fd, const char *name)
{
	char self[64], link[256], want[256];
	ssize_t n;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	n = readlink(self, link, sizeof(link) - 1);
	zdtm_check(n > 0, "readlink %s: %m", self);
	link[n] = 0;
	snprintf(want, sizeof(want), "/memfd:%s (deleted)", name);
	zdtm_check(!strcmp(link, want), "fd %d is %s, want %s", fd, link, want);
}

static void __attribute__((noreturn)) child(int fd, unsigned char *ms, int in, int out)
{
	char b;

	zdtm_child_init();
	while (read(in, &b, 1) != 1)
		if (errno != EINTR)
			zdtm_fail("child: read: %m");
	zdtm_check(lseek(fd, 0, SEEK_CUR) == 1234, "child: offset %ld", (long)lseek(fd, 0, SEEK_CUR));
	zdtm_fill(ms + 3 * PG, 100, 11);
	lseek(fd, 4321, SEEK_SET);
	if (write(out, "x", 1) != 1)
		zdtm_fail("child: write: %m");
	exit(0);
}

int main(void)
{
	int sealed = memfd_create("hacd-sealed", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	int plain = memfd_create("hacd plain", 0);
	int ro = memfd_create("hacd-ro", MFD_ALLOW_SEALING);
	unsigned char *buf = malloc(SIZE), *ms, *mp, *mr, page[PG];
	int p2c[2], c2p[2], st;
	uint64_t sum, sum_ro;
	struct stat sb;
	pid_t pid;
	char b;

	zdtm_init();
	if (sealed < 0 || plain < 0 || ro < 0 || !buf)
		zdtm_fail("memfd_create: %m");
	zdtm_fill(buf, SIZE, 7);
	sum = zdtm_csum(buf, SIZE);
	if (write(sealed, buf, SIZE) != SIZE || write(plain, buf, SIZE) != SIZE || write(ro, buf, 2 * PG) != 2 * PG)
		zdtm_fail("write: %m");
	sum_ro = zdtm_csum(buf, 2 * PG);
	if (fcntl(sealed, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) || fcntl(ro, F_ADD_SEALS, F_SEAL_WRITE))
		zdtm_fail("F_ADD_SEALS: %m");
	lseek(sealed, 1234, SEEK_SET);
	ms = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, sealed, 0);
	mp = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, plain, 0);
	mr = mmap(NULL, 2 * PG, PROT_READ, MAP_SHARED, ro, 0);
	if (ms == MAP_FAILED || mp == MAP_FAILED || mr == MAP_FAILED)
		zdtm_fail("mmap: %m");
	zdtm_fill(mp + PG, PG, 8);	/* private: the memfd keeps seed 7's bytes */
	if (pipe(p2c) || pipe(c2p) || (pid = fork()) < 0)
		zdtm_fail("fork: %m");
	if (pid == 0) {
		close(p2c[1]);
		close(c2p[0]);
		child(sealed, ms, p2c[0], c2p[1]);
	}
	close(p2c[0]);
	close(c2p[1]);
	zdtm_ready("sealed=%d plain=%d ro=%d child=%d", sealed, plain, ro, pid);

	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	check_name(sealed, "hacd-sealed");
	check_name(plain, "hacd plain");
	check_name(ro, "hacd-ro");
	zdtm_check(fcntl(sealed, F_GETFD) == FD_CLOEXEC && fcntl(plain, F_GETFD) == 0, "fd flags lost");
	zdtm_check(fcntl(sealed, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW), "sealed: seals %#x",
		   fcntl(sealed, F_GET_SEALS));
	zdtm_check(fcntl(plain, F_GET_SEALS) == F_SEAL_SEAL, "plain: seals %#x", fcntl(plain, F_GET_SEALS));
	zdtm_check(fcntl(ro, F_GET_SEALS) == F_SEAL_WRITE, "ro: seals %#x", fcntl(ro, F_GET_SEALS));
	zdtm_check(lseek(sealed, 0, SEEK_CUR) == 1234 && lseek(plain, 0, SEEK_CUR) == SIZE, "offsets lost");
	zdtm_check(!fstat(sealed, &sb) && sb.st_size == SIZE, "sealed: size %ld", (long)sb.st_size);
	zdtm_check(zdtm_csum(ms, SIZE) == sum, "sealed: content through the mapping changed");
	zdtm_check(pread(plain, buf, SIZE, 0) == SIZE && zdtm_csum(buf, SIZE) == sum, "plain: content changed");
	zdtm_fill(page, PG, 8);
	zdtm_check(!memcmp(mp + PG, page, PG), "plain: the private mapping lost its own page");
	zdtm_check(zdtm_csum(mr, 2 * PG) == sum_ro, "ro: content changed");
	/* Still one object: mapping and fd. */
	zdtm_fill(ms + 2 * PG, PG, 9);
	zdtm_check(pread(sealed, page, PG, 2 * PG) == PG && !memcmp(page, ms + 2 * PG, PG),
		   "a store through the mapping is not read through the fd");
	zdtm_fill(page, PG, 10);
	zdtm_check(pwrite(sealed, page, PG, 0) == PG && !memcmp(page, ms, PG), "a pwrite is not seen in the mapping");
	/* Seals still hold. */
	zdtm_check(ftruncate(sealed, PG) && errno == EPERM, "sealed: shrinking was allowed");
	zdtm_check(pwrite(ro, page, 1, 0) < 0 && errno == EPERM, "ro: writing was allowed");
	zdtm_check(fcntl(plain, F_ADD_SEALS, F_SEAL_WRITE) && errno == EPERM, "plain: sealing was allowed");
	/* The child's turn: same description, same object. */
	lseek(sealed, 1234, SEEK_SET);
	zdtm_check(write(p2c[1], "x", 1) == 1 && read(c2p[0], &b, 1) == 1, "child: %m");
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	zdtm_check(lseek(sealed, 0, SEEK_CUR) == 4321, "the child's offset is not ours: the description is not shared");
	zdtm_check(pread(sealed, buf, 100, 3 * PG) == 100 && zdtm_csum(buf, 100) == zdtm_csum(ms + 3 * PG, 100),
		   "the child's store through its mapping is not read through our fd");
	zdtm_fill(page, 100, 11);
	zdtm_check(!memcmp(page, buf, 100), "the child's bytes are wrong");
	zdtm_pass();
}
