/*
 * A session leader: setsid() made us leader of a new session and process group (or,
 * launched, our launcher did). After restore getsid() and getpgid() still answer our
 * own pid.
 */
#include "../zdtm.h"

int main(void)
{
	pid_t pid;

	zdtm_init();
	pid = zdtm_getpid();
	if (getsid(0) != pid && setsid() < 0)
		zdtm_fail("setsid: %m");
	zdtm_ready("sid=%d", pid);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(zdtm_getpid() == pid, "pid %d, was %d", zdtm_getpid(), pid);
	zdtm_check(getsid(0) == pid, "sid %d, want %d", getsid(0), pid);
	zdtm_check(getpgid(0) == pid, "pgid %d, want %d", getpgid(0), pid);
	zdtm_pass();
}
