/*
 * Blocked in read() on a pipe when injected: the read must resume (-ERESTARTSYS is
 * restarted by the kernel), not fail with EINTR, and return what the runner writes after
 * the injection is over.
 */
#include <errno.h>

#include "../zdtm.h"

int main(void)
{
	const char *s = getenv("HA_INPUT_FD");
	char buf[64] = { 0 };
	ssize_t n;

	if (!s)
		zdtm_fail("no HA_INPUT_FD");
	zdtm_ready("blocks=read");
	n = read(atoi(s), buf, sizeof(buf) - 1);
	if (n < 0)
		zdtm_fail("read failed: %m (the injection leaked into the syscall)");
	if (strcmp(buf, "after-injection"))
		zdtm_fail("read returned %zd bytes '%s', expected 'after-injection'", n, buf);
	zdtm_pass();
}
