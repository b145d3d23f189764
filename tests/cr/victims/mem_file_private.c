/*
 * File-backed private mappings: a 64-page file mapped MAP_PRIVATE twice (read-write
 * and read-only). Some pages of the writable one are changed (copy-on-write: they now
 * differ from the file, which must stay unchanged), the others still show the file.
 * The loop rewrites one changed page after another. After restore: changed pages hold
 * what we wrote, unchanged ones the file's bytes, the file itself is untouched, and
 * the mapping is still private (a write does not reach the file).
 */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define PG 4096ul
#define NPG 64

static uint64_t sums[NPG];
static unsigned char file_page[NPG][64];	/* first bytes of each page as in the file */

static int changed(int pg)
{
	return pg % 3 == 0;
}

int main(void)
{
	unsigned char *rw, *ro, *buf = malloc(NPG * PG);
	uint64_t file_sum, version = 0;
	int fd, turn = 0;

	zdtm_init();
	fd = open("private.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	zdtm_fill(buf, NPG * PG, 7);
	if (fd < 0 || write(fd, buf, NPG * PG) != (ssize_t)(NPG * PG))
		zdtm_fail("writing private.bin: %m");
	file_sum = zdtm_csum(buf, NPG * PG);
	rw = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	ro = mmap(NULL, NPG * PG, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (rw == MAP_FAILED || ro == MAP_FAILED)
		zdtm_fail("mmap: %m");
	for (int pg = 0; pg < NPG; pg++) {
		memcpy(file_page[pg], buf + pg * PG, 64);
		if (changed(pg))
			zdtm_fill(rw + pg * PG, PG, 1000 + ++version);
		sums[pg] = zdtm_csum(rw + pg * PG, PG);
	}
	free(buf);
	zdtm_ready("file=private.bin");

	while (!zdtm_stop) {
		int pg = (turn++ % 22) * 3;	/* 0, 3, ... 63: the changed pages */

		zdtm_fill(rw + pg * PG, PG, 1000 + ++version);
		sums[pg] = zdtm_csum(rw + pg * PG, PG);
		zdtm_sleep_ms(1);
	}

	for (int pg = 0; pg < NPG; pg++) {
		zdtm_check(zdtm_csum(rw + pg * PG, PG) == sums[pg], "private page %d (%s) differs", pg,
			   changed(pg) ? "written" : "as in the file");
		if (!changed(pg))
			zdtm_check(!memcmp(rw + pg * PG, file_page[pg], 64), "unwritten page %d is not the file's",
				   pg);
		zdtm_check(!memcmp(ro + pg * PG, file_page[pg], 64), "read-only mapping page %d is not the file's",
			   pg);
	}
	/* Still private: a write now must not reach the file. */
	rw[PG + 5] ^= 0xff;
	fd = open("private.bin", O_RDONLY);
	buf = malloc(NPG * PG);
	zdtm_check(fd >= 0 && read(fd, buf, NPG * PG) == (ssize_t)(NPG * PG), "reading private.bin: %m");
	zdtm_check(zdtm_csum(buf, NPG * PG) == file_sum, "private.bin changed on disk (private mapping leaked)");
	zdtm_check(ro[PG + 5] == buf[PG + 5], "the read-only private mapping saw a private write");
	zdtm_check(turn > 0, "the loop never ran");
	zdtm_pass();
}
