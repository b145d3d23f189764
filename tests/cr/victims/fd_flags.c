/*
 * fd flags and sharing: files opened with O_CLOEXEC or not, O_NONBLOCK, O_SYNC, O_DSYNC,
 * O_NOATIME, O_DIRECT; fd 100 a dup of fd A (one open file: shared offset and status
 * flags), fd B a separate open of the same file (its own offset), and fd 1000 far above
 * the rest. After restore every fd's F_GETFD and F_GETFL match, the dup still shares
 * offset and status flags with A, B does not.
 */
#include <fcntl.h>

#include "../zdtm.h"

#define NR 7

static int fds[NR], fl[NR], fdfl[NR];

int main(void)
{
	static const int oflags[NR] = { O_RDWR | O_CLOEXEC, O_RDWR, O_RDONLY | O_NONBLOCK | O_CLOEXEC,
					O_WRONLY | O_SYNC, O_WRONLY | O_DSYNC, O_RDONLY | O_NOATIME, O_RDWR | O_DIRECT };
	char buf[8192];
	int a, b, d100, far;

	zdtm_init();
	memset(buf, 'q', sizeof(buf));
	for (int i = 0; i < NR; i++) {
		char name[16];
		int fd;

		snprintf(name, sizeof(name), "f%d", i);
		fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
		if (fd < 0 || write(fd, buf, sizeof(buf)) != sizeof(buf))
			zdtm_fail("%s: %m", name);
		close(fd);
		fds[i] = open(name, oflags[i]);
		if (fds[i] < 0)
			zdtm_fail("open %s with %#x: %m", name, oflags[i]);
		fl[i] = fcntl(fds[i], F_GETFL);
		fdfl[i] = fcntl(fds[i], F_GETFD);
	}
	a = fds[1];
	lseek(a, 111, SEEK_SET);
	d100 = dup2(a, 100);
	b = open("f1", O_RDWR);
	lseek(b, 222, SEEK_SET);
	far = dup2(fds[0], 1000);
	fcntl(far, F_SETFD, FD_CLOEXEC);
	if (d100 != 100 || b < 0 || far != 1000)
		zdtm_fail("dup2: %m");
	zdtm_ready("fds=%d dup=100 far=1000", NR);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	for (int i = 0; i < NR; i++) {
		zdtm_check(fcntl(fds[i], F_GETFL) == fl[i], "fd %d: status flags %#x, were %#x", fds[i],
			   fcntl(fds[i], F_GETFL), fl[i]);
		zdtm_check(fcntl(fds[i], F_GETFD) == fdfl[i], "fd %d: FD_CLOEXEC %d, was %d", fds[i],
			   fcntl(fds[i], F_GETFD), fdfl[i]);
	}
	zdtm_check(fcntl(100, F_GETFD) == 0, "dup'd fd 100 has FD_CLOEXEC");
	zdtm_check(fcntl(1000, F_GETFD) == FD_CLOEXEC, "fd 1000 lost FD_CLOEXEC");
	zdtm_check(fcntl(1000, F_GETFL) == fl[0], "fd 1000 status flags %#x", fcntl(1000, F_GETFL));
	zdtm_check(lseek(a, 0, SEEK_CUR) == 111 && lseek(100, 0, SEEK_CUR) == 111, "dup pair offsets %ld/%ld",
		   (long)lseek(a, 0, SEEK_CUR), (long)lseek(100, 0, SEEK_CUR));
	zdtm_check(lseek(b, 0, SEEK_CUR) == 222, "separate open at %ld, want 222", (long)lseek(b, 0, SEEK_CUR));
	lseek(100, 333, SEEK_SET);
	zdtm_check(lseek(a, 0, SEEK_CUR) == 333, "fd 100 and fd %d no longer share their offset", a);
	zdtm_check(lseek(b, 0, SEEK_CUR) == 222, "fd %d moved with its dup: it shares an open file it should not", b);
	fcntl(100, F_SETFL, fcntl(100, F_GETFL) | O_NONBLOCK);
	zdtm_check(fcntl(a, F_GETFL) & O_NONBLOCK, "fd 100 and fd %d no longer share status flags", a);
	zdtm_check(!(fcntl(b, F_GETFL) & O_NONBLOCK), "status flags leaked to a separate open");
	zdtm_pass();
}
