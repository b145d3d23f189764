/*
 * Blocked in pause(). After restore it must still be there: only the runner's SIGTERM
 * (through its handler) may end it. A restore that makes pause() return without a
 * signal is caught.
 */
#include "../zdtm.h"

int main(void)
{
	int r, e;

	zdtm_init();
	zdtm_ready("blocks=pause wake=term");
	r = pause();
	e = errno;
	zdtm_check(r == -1 && e == EINTR, "pause returned %d (%s)", r, strerror(e));
	zdtm_check(zdtm_stop, "pause returned without the SIGTERM handler having run");
	zdtm_pass();
}
