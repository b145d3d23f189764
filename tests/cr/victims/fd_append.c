/*
 * O_APPEND: log.txt (1000 bytes) open O_WRONLY|O_APPEND with its position moved back to
 * 10, and open O_RDWR|O_APPEND at 0. After restore: O_APPEND is still set on both, the
 * positions are 10 and 0, and a write goes to the end of the file whatever the
 * position (the file's size is taken then: with --leave-running it has grown).
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

static void append_check(int fd, int rd, char c)
{
	struct stat st;
	off_t size;
	char got;

	fstat(fd, &st);
	size = st.st_size;
	zdtm_check(write(fd, &c, 1) == 1, "append write: %m");
	fstat(fd, &st);
	zdtm_check(st.st_size == size + 1, "size %ld after appending to %ld", (long)st.st_size, (long)size);
	zdtm_check(lseek(fd, 0, SEEK_CUR) == size + 1, "position %ld after append, want %ld",
		   (long)lseek(fd, 0, SEEK_CUR), (long)size + 1);
	zdtm_check(pread(rd, &got, 1, size) == 1 && got == c, "appended byte not at the end");
}

int main(void)
{
	char buf[1000];
	int wa, rwa, rd;

	zdtm_init();
	memset(buf, 'a', sizeof(buf));
	wa = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (wa < 0 || write(wa, buf, sizeof(buf)) != sizeof(buf))
		zdtm_fail("log.txt: %m");
	lseek(wa, 10, SEEK_SET);
	rwa = open("log.txt", O_RDWR | O_APPEND);
	rd = open("log.txt", O_RDONLY);
	if (rwa < 0 || rd < 0)
		zdtm_fail("open: %m");
	zdtm_ready("append=%d rwappend=%d", wa, rwa);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(fcntl(wa, F_GETFL) & O_APPEND, "O_APPEND lost on the write-only fd");
	zdtm_check(fcntl(rwa, F_GETFL) & O_APPEND, "O_APPEND lost on the read-write fd");
	zdtm_check((fcntl(rwa, F_GETFL) & O_ACCMODE) == O_RDWR, "read-write fd mode %#x", fcntl(rwa, F_GETFL));
	zdtm_check(lseek(wa, 0, SEEK_CUR) == 10, "write-only append fd at %ld, want 10", (long)lseek(wa, 0, SEEK_CUR));
	zdtm_check(lseek(rwa, 0, SEEK_CUR) == 0, "read-write append fd at %ld", (long)lseek(rwa, 0, SEEK_CUR));
	zdtm_check(read(rwa, buf, 5) == 5 && !memcmp(buf, "aaaaa", 5), "read at 0 of the O_RDWR|O_APPEND fd");
	append_check(wa, rd, 'X');
	append_check(rwa, rd, 'Y');
	zdtm_pass();
}
