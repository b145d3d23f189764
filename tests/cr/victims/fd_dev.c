/*
 * Device files: /dev/null (read-write), /dev/zero (read-only), /dev/urandom (read-only),
 * /dev/full (write-only). After restore each is still that device, in that mode:
 * null reads EOF and swallows writes, zero reads zeros, urandom reads random bytes,
 * full refuses writes with ENOSPC.
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "../zdtm.h"

static void is_dev(int fd, unsigned maj, unsigned min, int mode, const char *name)
{
	struct stat st;

	zdtm_check(!fstat(fd, &st) && S_ISCHR(st.st_mode) && major(st.st_rdev) == maj && minor(st.st_rdev) == min,
		   "%s: fd %d is not that device", name, fd);
	zdtm_check((fcntl(fd, F_GETFL) & O_ACCMODE) == mode, "%s: mode %#x", name, fcntl(fd, F_GETFL));
}

int main(void)
{
	unsigned char a[64], b[64], z[4096];
	int null, zero, urnd, full;
	uint64_t n = 0;

	zdtm_init();
	null = open("/dev/null", O_RDWR);
	zero = open("/dev/zero", O_RDONLY);
	urnd = open("/dev/urandom", O_RDONLY);
	full = open("/dev/full", O_WRONLY);
	if (null < 0 || zero < 0 || urnd < 0 || full < 0)
		zdtm_fail("open: %m");
	zdtm_ready("null=%d zero=%d urandom=%d full=%d", null, zero, urnd, full);
	while (!zdtm_stop) {
		n += write(null, "x", 1);
		zdtm_sleep_ms(5);
	}
	is_dev(null, 1, 3, O_RDWR, "/dev/null");
	is_dev(zero, 1, 5, O_RDONLY, "/dev/zero");
	is_dev(urnd, 1, 9, O_RDONLY, "/dev/urandom");
	is_dev(full, 1, 7, O_WRONLY, "/dev/full");
	zdtm_check(read(null, a, sizeof(a)) == 0 && write(null, a, sizeof(a)) == sizeof(a), "/dev/null");
	memset(z, 0xff, sizeof(z));
	zdtm_check(read(zero, z, sizeof(z)) == sizeof(z), "/dev/zero read: %m");
	for (size_t i = 0; i < sizeof(z); i++)
		zdtm_check(!z[i], "/dev/zero gave a non-zero byte");
	zdtm_check(read(urnd, a, sizeof(a)) == sizeof(a) && read(urnd, b, sizeof(b)) == sizeof(b) &&
			   memcmp(a, b, sizeof(a)),
		   "/dev/urandom reads are not random");
	zdtm_check(write(full, "x", 1) == -1 && errno == ENOSPC, "/dev/full write: %m");
	zdtm_pass();
}
