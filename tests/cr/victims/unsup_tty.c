/*
 * Holds both sides of a pseudo-terminal (master /dev/ptmx and its slave) with bytes
 * queued: not dumpable yet. A dump must refuse it, saying which pid, which fd and what
 * kind, and leave us running with the bytes still queued.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <termios.h>

#include "../zdtm.h"

int main(void)
{
	char buf[16] = { 0 };
	struct termios t;
	int m, s;

	zdtm_init();
	m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) || unlockpt(m))
		zdtm_fail("ptmx: %m");
	s = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (s < 0 || tcgetattr(s, &t))
		zdtm_fail("pts: %m");
	cfmakeraw(&t);
	if (tcsetattr(s, TCSANOW, &t) || write(m, "0123456789", 10) != 10)
		zdtm_fail("raw: %m");
	zdtm_ready("bad_fd=%d kind=tty", m);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(read(s, buf, sizeof(buf)) == 10 && !strcmp(buf, "0123456789"), "tty data lost: '%s'", buf);
	zdtm_pass();
}
