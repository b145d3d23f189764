/*
 * eventfds: a counter at 0x123456789a (beyond eventfd()'s unsigned int argument),
 * a semaphore at 3, a non-blocking one at 0, and a dup sharing one. After restore:
 * the counts read back, the semaphore counts down one by one, the empty one says
 * EAGAIN, and a write to the dup is seen through the original.
 */
#include <fcntl.h>
#include <sys/eventfd.h>

#include "../zdtm.h"

int main(void)
{
	int big, sem, empty, d;
	uint64_t v = 0x123456789aull;

	zdtm_init();
	big = eventfd(0, 0);
	sem = eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK);
	empty = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (big < 0 || sem < 0 || empty < 0 || write(big, &v, 8) != 8)
		zdtm_fail("eventfd: %m");
	d = dup(empty);
	zdtm_ready("big=%d sem=%d empty=%d dup=%d", big, sem, empty, d);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(read(big, &v, 8) == 8 && v == 0x123456789aull, "big count %#llx", (unsigned long long)v);
	for (int i = 0; i < 3; i++)
		zdtm_check(read(sem, &v, 8) == 8 && v == 1, "semaphore read %d gave %llu", i, (unsigned long long)v);
	zdtm_check(read(sem, &v, 8) == -1 && errno == EAGAIN, "semaphore not at 0");
	zdtm_check(read(empty, &v, 8) == -1 && errno == EAGAIN, "empty eventfd not empty");
	zdtm_check(fcntl(empty, F_GETFD) == FD_CLOEXEC && fcntl(d, F_GETFD) == 0, "fd flags");
	v = 42;
	zdtm_check(write(d, &v, 8) == 8 && read(empty, &v, 8) == 8 && v == 42, "dup is another eventfd");
	zdtm_check(!(fcntl(big, F_GETFL) & O_NONBLOCK), "big became non-blocking");
	zdtm_pass();
}
