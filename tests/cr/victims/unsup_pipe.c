/*
 * Holds the read end of a pipe with 10 bytes queued in it (the write end is closed):
 * not dumpable yet. A dump must refuse it, saying which pid, which fd and what kind,
 * and leave us running with the data still queued.
 */
#include "../zdtm.h"

int main(void)
{
	char buf[16] = { 0 };
	int p[2];

	zdtm_init();
	if (pipe(p) || write(p[1], "0123456789", 10) != 10)
		zdtm_fail("pipe: %m");
	close(p[1]);
	zdtm_ready("bad_fd=%d kind=pipe|fifo", p[0]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(read(p[0], buf, sizeof(buf)) == 10 && !strcmp(buf, "0123456789"), "pipe data lost: '%s'", buf);
	zdtm_check(read(p[0], buf, 1) == 0, "pipe not at EOF");
	zdtm_pass();
}
