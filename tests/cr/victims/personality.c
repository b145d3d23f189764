/*
 * Personality ADDR_NO_RANDOMIZE | UNAME26. After restore personality() answers the same
 * and UNAME26 is in force: uname() reports a 2.6.x release.
 */
#include <sys/personality.h>
#include <sys/utsname.h>

#include "../zdtm.h"

#define PERS (ADDR_NO_RANDOMIZE | UNAME26)

int main(void)
{
	struct utsname u;
	int p;

	zdtm_init();
	if (personality(PERS) == -1)
		zdtm_fail("personality: %m");
	zdtm_ready("personality=%#x", PERS);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	p = personality(0xffffffff);
	zdtm_check(p == PERS, "personality %#x, want %#x", p, PERS);
	zdtm_check(!uname(&u) && !strncmp(u.release, "2.6.", 4), "UNAME26 not in force: release %s", u.release);
	zdtm_pass();
}
