/*
 * File-backed shared mappings: a 16-page file mapped MAP_SHARED read-write, and again
 * read-only, at a nonzero file offset. Pages 0-11 get a pattern before ready and are
 * only read afterwards (with --leave-running the original and the copy share the file);
 * pages 12-15 are the scratch area for the sharing checks after restore: a store through
 * the mapping is seen by pread() and by the other mapping, a pwrite() is seen in both.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "../zdtm.h"

#define PG 4096ul
#define NPG 16
#define FIXED 12

int main(void)
{
	unsigned char *rw, *ro, page[PG];
	uint64_t sum_fixed, reads = 0;
	int fd;

	zdtm_init();
	fd = open("shared.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || ftruncate(fd, (NPG + 2) * PG))
		zdtm_fail("shared.bin: %m");
	/* Map at file offset 2 pages: offsets must be restored too. */
	rw = mmap(NULL, NPG * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 2 * PG);
	ro = mmap(NULL, NPG * PG, PROT_READ, MAP_SHARED, fd, 2 * PG);
	if (rw == MAP_FAILED || ro == MAP_FAILED)
		zdtm_fail("mmap: %m");
	zdtm_fill(rw, FIXED * PG, 99);
	sum_fixed = zdtm_csum(rw, FIXED * PG);
	msync(rw, NPG * PG, MS_SYNC);
	zdtm_ready("file=shared.bin fd=%d", fd);

	while (!zdtm_stop) {
		reads += ro[(reads * PG) % (FIXED * PG)];
		zdtm_sleep_ms(1);
	}

	zdtm_check(zdtm_csum(rw, FIXED * PG) == sum_fixed, "shared mapping content changed");
	zdtm_check(zdtm_csum(ro, FIXED * PG) == sum_fixed, "read-only shared mapping content changed");
	/* Sharing, both ways, on the scratch pages. */
	for (int pg = FIXED; pg < NPG; pg++) {
		zdtm_fill(rw + pg * PG, PG, 500 + pg);
		zdtm_check(pread(fd, page, PG, (2 + pg) * PG) == PG, "pread: %m");
		zdtm_check(!memcmp(page, rw + pg * PG, PG), "page %d: a store through the mapping is not in the file", pg);
		zdtm_check(!memcmp(ro + pg * PG, rw + pg * PG, PG), "page %d: the other shared mapping does not see it", pg);
		zdtm_fill(page, PG, 600 + pg);
		zdtm_check(pwrite(fd, page, PG, (2 + pg) * PG) == PG, "pwrite: %m");
		zdtm_check(!memcmp(page, rw + pg * PG, PG), "page %d: pwrite() not seen through the mapping", pg);
		zdtm_check(!memcmp(page, ro + pg * PG, PG), "page %d: pwrite() not seen through the ro mapping", pg);
	}
	zdtm_check(pread(fd, page, PG, 2 * PG) == PG && !memcmp(page, rw, PG), "file offset of the mapping wrong");
	zdtm_pass();
}
