/*
 * POSIX shared memory mapped by two processes: a named object (a file in /dev/shm,
 * which holds the pages: restore maps it again by path) mapped by the parent and,
 * inherited and mapped a second time, by the child; and an object unlinked while
 * mapped (its contents are kept in the image, and restore recreates it under its old
 * name and unlinks it again, like a deleted open file). Pages are written by both
 * before ready; after restore each checks them and the two write to each other in
 * both objects, both ways.
 * The named file stays in /dev/shm: with --leave-running the restored copy maps the
 * one the original used (both write the same bytes to it).
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define PG 4096ul
#define NAMED 8
#define GONE 6

static bool page_is(const unsigned char *p, uint64_t seed)
{
	unsigned char want[PG];

	zdtm_fill(want, PG, seed);
	return !memcmp(p, want, PG);
}

static void __attribute__((noreturn)) child(const char *name, unsigned char *n, unsigned char *g, int in, int out)
{
	int fd = shm_open(name, O_RDWR, 0);
	unsigned char *own = fd < 0 ? MAP_FAILED : mmap(NULL, NAMED * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	zdtm_child_init();
	if (own == MAP_FAILED)
		zdtm_fail("child: shm_open/mmap %s: %m", name);
	close(fd);
	zdtm_fill(own + 4 * PG, 2 * PG, 20);
	zdtm_fill(g + 2 * PG, PG, 21);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);		/* after restore: the parent wrote named page 6, gone page 3 */
	zdtm_check(page_is(n + 6 * PG, 30) && page_is(own + 6 * PG, 30), "child: named page 6 not seen");
	zdtm_check(page_is(g + 3 * PG, 31), "child: the unlinked object's page 3 not seen");
	zdtm_fill(own + 7 * PG, PG, 40);
	zdtm_fill(g + 4 * PG, PG, 41);
	zdtm_turn_give(out);
	exit(0);
}

int main(void)
{
	char name[256], gone[256], self[64], link[512];
	unsigned char *n, *g;
	int fd, gfd, in, out, st;
	uint64_t s_parent, s_child, s_gone;
	ssize_t len;
	pid_t pid;

	zdtm_init();
	/* One name per scratch directory: runs side by side must not share it. */
	snprintf(name, sizeof(name), "/hacd%s-named", zdtm_dir());
	for (char *c = name + 1; *c; c++)
		*c = *c == '/' ? '-' : *c;
	snprintf(gone, sizeof(gone), "/hacd-gone-%d", zdtm_getpid());
	fd = shm_open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	gfd = shm_open(gone, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (fd < 0 || gfd < 0 || ftruncate(fd, NAMED * PG) || ftruncate(gfd, GONE * PG))
		zdtm_fail("shm_open: %m");
	n = mmap(NULL, NAMED * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	g = mmap(NULL, GONE * PG, PROT_READ | PROT_WRITE, MAP_SHARED, gfd, 0);
	if (n == MAP_FAILED || g == MAP_FAILED || shm_unlink(gone))
		zdtm_fail("setup: %m");
	close(fd);
	close(gfd);
	zdtm_fill(n, 4 * PG, 10);
	zdtm_fill(g, 2 * PG, 11);
	pid = zdtm_fork_turns(&in, &out);
	if (pid == 0)
		child(name, n, g, in, out);
	zdtm_turn_wait(in);
	s_parent = zdtm_csum(n, 4 * PG);
	s_child = zdtm_csum(n + 4 * PG, 2 * PG);
	s_gone = zdtm_csum(g, 3 * PG);
	zdtm_ready("child=%d", pid);

	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(zdtm_csum(n, 4 * PG) == s_parent && zdtm_csum(n + 4 * PG, 2 * PG) == s_child,
		   "the named object's contents changed");
	zdtm_check(zdtm_csum(g, 3 * PG) == s_gone, "the unlinked object's contents changed");
	snprintf(self, sizeof(self), "/proc/self/map_files/%lx-%lx", (unsigned long)g, (unsigned long)(g + GONE * PG));
	len = readlink(self, link, sizeof(link) - 1);
	zdtm_check(len > 0, "readlink %s: %m", self);
	link[len] = 0;
	zdtm_check(strstr(link, " (deleted)") && strstr(link, "-gone-"), "the unlinked object reads %s", link);
	zdtm_fill(n + 6 * PG, PG, 30);
	zdtm_fill(g + 3 * PG, PG, 31);
	zdtm_turn_give(out);
	zdtm_turn_wait(in);
	zdtm_check(page_is(n + 7 * PG, 40), "the child's write to named page 7 is not seen");
	zdtm_check(page_is(g + 4 * PG, 41), "the child's write to the unlinked object is not seen");
	st = zdtm_reap(pid);
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	zdtm_pass();
}
