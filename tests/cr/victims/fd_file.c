/*
 * Regular files and their positions: data.bin (64 KiB) open read-write at 12345,
 * read-only at 40000, read-only past EOF at 100000; out.bin write-only at 5000 after
 * writing 5000 bytes. The loop only preads. After restore: each position and access
 * mode is as before, read() continues at the position with the right bytes, write()
 * lands at the position, and the wrong-direction calls fail with EBADF.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define SIZE 65536

static unsigned char pattern[SIZE];

int main(void)
{
	int rw, ro, past, wo;
	unsigned char buf[256];
	uint64_t n = 0;

	zdtm_init();
	zdtm_fill(pattern, SIZE, 17);
	rw = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (rw < 0 || write(rw, pattern, SIZE) != SIZE)
		zdtm_fail("data.bin: %m");
	ro = open("data.bin", O_RDONLY);
	past = open("data.bin", O_RDONLY);
	wo = open("out.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (ro < 0 || past < 0 || wo < 0 || write(wo, pattern, 5000) != 5000)
		zdtm_fail("open: %m");
	lseek(rw, 12345, SEEK_SET);
	lseek(ro, 40000, SEEK_SET);
	lseek(past, 100000, SEEK_SET);
	zdtm_ready("rw=%d ro=%d past=%d wo=%d", rw, ro, past, wo);

	while (!zdtm_stop) {
		if (pread(ro, buf, 64, n % (SIZE - 64)) != 64)
			zdtm_fail("pread: %m");
		n += buf[0] + 1;
		zdtm_sleep_ms(2);
	}

	zdtm_check(lseek(rw, 0, SEEK_CUR) == 12345, "rw at %ld, want 12345", (long)lseek(rw, 0, SEEK_CUR));
	zdtm_check(lseek(ro, 0, SEEK_CUR) == 40000, "ro at %ld, want 40000", (long)lseek(ro, 0, SEEK_CUR));
	zdtm_check(lseek(past, 0, SEEK_CUR) == 100000, "past at %ld", (long)lseek(past, 0, SEEK_CUR));
	zdtm_check(lseek(wo, 0, SEEK_CUR) == 5000, "wo at %ld, want 5000", (long)lseek(wo, 0, SEEK_CUR));
	zdtm_check((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR, "rw mode %#x", fcntl(rw, F_GETFL));
	zdtm_check((fcntl(ro, F_GETFL) & O_ACCMODE) == O_RDONLY, "ro mode %#x", fcntl(ro, F_GETFL));
	zdtm_check((fcntl(wo, F_GETFL) & O_ACCMODE) == O_WRONLY, "wo mode %#x", fcntl(wo, F_GETFL));
	/* Reads continue where we were. */
	zdtm_check(read(ro, buf, 100) == 100 && !memcmp(buf, pattern + 40000, 100), "read at 40000 differs");
	zdtm_check(lseek(ro, 0, SEEK_CUR) == 40100, "ro did not advance");
	zdtm_check(read(rw, buf, 100) == 100 && !memcmp(buf, pattern + 12345, 100), "read at 12345 differs");
	zdtm_check(read(past, buf, 10) == 0, "read past EOF returned data");
	/* Writes land at the position (same bytes in every run: the file is shared). */
	zdtm_check(write(rw, "0123456789", 10) == 10, "write rw: %m");
	zdtm_check(pread(ro, buf, 10, 12445) == 10 && !memcmp(buf, "0123456789", 10), "rw write not at 12445");
	zdtm_check(write(wo, pattern + 5000, 100) == 100, "write wo: %m");
	zdtm_check(pread(ro, buf, 1, 0) == 1, "pread: %m");
	{
		int chk = open("out.bin", O_RDONLY);

		zdtm_check(chk >= 0 && pread(chk, buf, 100, 5000) == 100 && !memcmp(buf, pattern + 5000, 100),
			   "wo write not at 5000");
		zdtm_check(pread(chk, buf, 100, 0) == 100 && !memcmp(buf, pattern, 100), "out.bin start differs");
		close(chk);
	}
	zdtm_check(write(ro, "x", 1) == -1 && errno == EBADF, "write to the read-only fd worked");
	zdtm_check(read(wo, buf, 1) == -1 && errno == EBADF, "read from the write-only fd worked");
	zdtm_pass();
}
