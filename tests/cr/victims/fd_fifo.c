/*
 * FIFOs opened by path, with data queued: "fifo" held as a reader (non-blocking) and
 * a writer with 5000 bytes in it, and "fifo2" held O_RDWR alone with 7 bytes. After
 * restore: the same paths, the bytes in order, the ends still connected.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

int main(void)
{
	static unsigned char pattern[5000], buf[6000];
	int r, w, rw, got = 0;
	struct stat st;

	zdtm_init();
	zdtm_fill(pattern, sizeof(pattern), 9);
	if (mkfifo("fifo", 0600) || mkfifo("fifo2", 0600))
		zdtm_fail("mkfifo: %m");
	r = open("fifo", O_RDONLY | O_NONBLOCK);
	w = open("fifo", O_WRONLY);
	rw = open("fifo2", O_RDWR);
	if (r < 0 || w < 0 || rw < 0)
		zdtm_fail("open: %m");
	if (write(w, pattern, sizeof(pattern)) != sizeof(pattern) || write(rw, "seven!!", 7) != 7)
		zdtm_fail("write: %m");
	zdtm_ready("r=%d w=%d rw=%d", r, w, rw);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(!fstat(r, &st) && S_ISFIFO(st.st_mode), "fd %d is no FIFO", r);
	zdtm_check((fcntl(r, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == (O_RDONLY | O_NONBLOCK), "r flags %#x",
		   fcntl(r, F_GETFL));
	zdtm_check((fcntl(w, F_GETFL) & (O_ACCMODE | O_NONBLOCK)) == O_WRONLY, "w flags %#x", fcntl(w, F_GETFL));
	zdtm_check((fcntl(rw, F_GETFL) & O_ACCMODE) == O_RDWR, "rw flags %#x", fcntl(rw, F_GETFL));
	while (got < (int)sizeof(pattern)) {
		ssize_t n = read(r, buf + got, sizeof(buf) - got);

		zdtm_check(n > 0, "read after %d bytes: %zd %m", got, n);
		got += n;
	}
	zdtm_check(got == sizeof(pattern) && !memcmp(buf, pattern, got), "FIFO bytes differ");
	zdtm_check(read(r, buf, 1) == -1 && errno == EAGAIN, "more than was queued");
	zdtm_check(write(w, "abc", 3) == 3 && read(r, buf, 3) == 3 && !memcmp(buf, "abc", 3), "w -> r");
	zdtm_check(read(rw, buf, 16) == 7 && !memcmp(buf, "seven!!", 7), "fifo2 bytes");
	/* Another open of the path reaches the same FIFO. */
	{
		int w2 = open("fifo", O_WRONLY | O_NONBLOCK);

		zdtm_check(w2 >= 0 && write(w2, "p", 1) == 1 && read(r, buf, 1) == 1 && buf[0] == 'p',
			   "the path is not our FIFO any more");
		close(w2);
	}
	zdtm_pass();
}
