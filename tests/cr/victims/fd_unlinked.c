/*
 * Open files whose names are gone: ghost.bin (20000 bytes, O_RDWR at 777, plus a dup
 * sharing that offset), an empty unlinked file, and reuse.txt: opened with content A,
 * unlinked, then a new reuse.txt created with content B. After restore: the fds still
 * have nlink 0, the ghost's content and offset are as before (the dup shares it), the
 * ghost is writable, the empty one is empty, the reused fd reads A while the path
 * reuse.txt still holds B (a restore must not put A there or open B).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define SIZE 20000

int main(void)
{
	static unsigned char pattern[SIZE], buf[SIZE];
	int ghost, dupfd, empty, old, fd;
	struct stat st;
	uint64_t sum;
	char b[16] = { 0 };

	zdtm_init();
	zdtm_fill(pattern, SIZE, 23);
	sum = zdtm_csum(pattern, SIZE);
	ghost = open("ghost.bin", O_RDWR | O_CREAT | O_TRUNC, 0640);
	if (ghost < 0 || write(ghost, pattern, SIZE) != SIZE)
		zdtm_fail("ghost.bin: %m");
	lseek(ghost, 777, SEEK_SET);
	dupfd = dup(ghost);
	empty = open("empty.bin", O_RDWR | O_CREAT | O_TRUNC, 0600);
	old = open("reuse.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (empty < 0 || old < 0 || write(old, "content A", 9) != 9)
		zdtm_fail("open: %m");
	unlink("ghost.bin");
	unlink("empty.bin");
	unlink("reuse.txt");
	fd = open("reuse.txt", O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (fd < 0 || write(fd, "content B", 9) != 9)
		zdtm_fail("new reuse.txt: %m");
	close(fd);
	zdtm_ready("ghost=%d empty=%d reused=%d", ghost, empty, old);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(!fstat(ghost, &st) && st.st_nlink == 0 && st.st_size == SIZE, "ghost nlink %lu size %ld",
		   (unsigned long)st.st_nlink, (long)st.st_size);
	zdtm_check((st.st_mode & 07777) == 0640, "ghost mode %o", st.st_mode & 07777);
	zdtm_check(pread(ghost, buf, SIZE, 0) == SIZE && zdtm_csum(buf, SIZE) == sum, "ghost content differs");
	zdtm_check(lseek(ghost, 0, SEEK_CUR) == 777, "ghost at %ld, want 777", (long)lseek(ghost, 0, SEEK_CUR));
	zdtm_check(lseek(dupfd, 1000, SEEK_SET) == 1000 && lseek(ghost, 0, SEEK_CUR) == 1000,
		   "the dup no longer shares the ghost's offset");
	zdtm_check(pwrite(ghost, "zz", 2, SIZE) == 2 && !fstat(ghost, &st) && st.st_size == SIZE + 2,
		   "ghost not writable: %m");
	zdtm_check(!fstat(empty, &st) && st.st_nlink == 0 && st.st_size == 0, "empty ghost nlink %lu size %ld",
		   (unsigned long)st.st_nlink, (long)st.st_size);
	zdtm_check(!fstat(old, &st) && st.st_nlink == 0, "reused fd has nlink %lu", (unsigned long)st.st_nlink);
	zdtm_check(pread(old, b, 9, 0) == 9 && !strcmp(b, "content A"), "reused fd reads '%s'", b);
	fd = open("reuse.txt", O_RDONLY);
	memset(b, 0, sizeof(b));
	zdtm_check(fd >= 0 && read(fd, b, 15) == 9 && !strcmp(b, "content B"), "reuse.txt on disk holds '%s'", b);
	zdtm_pass();
}
