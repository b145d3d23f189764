/*
 * Directory fds: "d" (6 files) open O_RDONLY|O_DIRECTORY and partly read with getdents64
 * (its position is a cookie now), "d" again untouched, an O_PATH fd on d/a, and the
 * scratch dir itself. After restore: the partly read fd yields the remaining names,
 * which together with those read before are exactly the six; openat() relative to the
 * other fd works; the O_PATH fd is still O_PATH (fstat works, read fails EBADF).
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

#define NR 6

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int seen[NR];

static int note(const char *buf, long n)
{
	int files = 0;

	for (long off = 0; off < n;) {
		const struct linux_dirent64 *d = (const void *)(buf + off);

		if (d->d_name[0] == 'f' && d->d_name[1] >= '0' && d->d_name[1] < '0' + NR && !d->d_name[2]) {
			seen[d->d_name[1] - '0']++;
			files++;
		}
		off += d->d_reclen;
	}
	return files;
}

int main(void)
{
	char buf[4096], name[8];
	int partial, dfd, pfd, here, fd, before;
	struct stat st;
	long n;
	off_t pos;

	zdtm_init();
	mkdir("d", 0755);
	for (int i = 0; i < NR; i++) {
		snprintf(name, sizeof(name), "d/f%d", i);
		fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, name, 4) != 4)
			zdtm_fail("%s: %m", name);
		close(fd);
	}
	partial = open("d", O_RDONLY | O_DIRECTORY);
	dfd = open("d", O_RDONLY | O_DIRECTORY);
	pfd = open("d/f0", O_PATH);
	here = open(".", O_RDONLY | O_DIRECTORY);
	if (partial < 0 || dfd < 0 || pfd < 0 || here < 0)
		zdtm_fail("open: %m");
	/* A buffer that holds a few entries only: the read stops in the middle. */
	n = syscall(SYS_getdents64, partial, buf, 100);
	if (n <= 0)
		zdtm_fail("getdents64: %m");
	before = note(buf, n);
	pos = lseek(partial, 0, SEEK_CUR);
	zdtm_ready("partial=%d read_before=%d", partial, before);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(lseek(partial, 0, SEEK_CUR) == pos, "directory position %ld, was %ld",
		   (long)lseek(partial, 0, SEEK_CUR), (long)pos);
	while ((n = syscall(SYS_getdents64, partial, buf, sizeof(buf))) > 0)
		note(buf, n);
	for (int i = 0; i < NR; i++)
		zdtm_check(seen[i] == 1, "f%d seen %d times reading the directory across the restore", i, seen[i]);
	zdtm_check(!fstat(dfd, &st) && S_ISDIR(st.st_mode), "dfd is not a directory");
	fd = openat(dfd, "f3", O_RDONLY);
	memset(buf, 0, 8);
	zdtm_check(fd >= 0 && read(fd, buf, 8) == 4 && !strcmp(buf, "d/f3"), "openat(dfd, f3): %m");
	close(fd);
	zdtm_check(fcntl(pfd, F_GETFL) & O_PATH, "O_PATH lost: flags %#x", fcntl(pfd, F_GETFL));
	zdtm_check(!fstat(pfd, &st) && S_ISREG(st.st_mode) && st.st_size == 4, "fstat on the O_PATH fd");
	zdtm_check(read(pfd, buf, 1) == -1 && errno == EBADF, "read on the O_PATH fd worked");
	fd = openat(here, "d/f5", O_RDONLY);
	zdtm_check(fd >= 0, "openat(scratch dir fd, d/f5): %m");
	zdtm_pass();
}
