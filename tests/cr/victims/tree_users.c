/*
 * A root master with a worker that runs as another user (nobody), with its own lower
 * limit, the way a server drops privileges in its workers. After restore the worker
 * still has every id, no capability, its limit and its work; the master is root.
 */
#include <grp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../zdtm.h"

#define UID 65534
#define GID 65534

static void __attribute__((noreturn)) worker(void)
{
	volatile uint64_t x = 1, n = 0;
	struct rlimit rl = { 77, 99 };
	uid_t r, e, s;
	gid_t gr, ge, gs;
	char caps[64];

	if (setrlimit(RLIMIT_NOFILE, &rl) || setgroups(0, NULL) || setresgid(GID, GID, GID) ||
	    setresuid(UID, UID, UID))
		zdtm_fail("dropping privileges: %m");
	while (!zdtm_stop) {
		x = zdtm_mix(x);
		n++;
		if (!(n % 1024))
			zdtm_sleep_ms(1);
	}
	uint64_t y = 1;
	for (uint64_t i = 0; i < n; i++)
		y = zdtm_mix(y);
	zdtm_check(x == y, "worker: work result differs after %lu steps", (unsigned long)n);
	getresuid(&r, &e, &s);
	getresgid(&gr, &ge, &gs);
	zdtm_check(r == UID && e == UID && s == UID, "worker: uids %d %d %d", r, e, s);
	zdtm_check(gr == GID && ge == GID && gs == GID, "worker: gids %d %d %d", gr, ge, gs);
	zdtm_check(getgroups(0, NULL) == 0, "worker: %d supplementary groups", getgroups(0, NULL));
	zdtm_proc_field("/proc/self/status", "CapEff", caps, sizeof(caps));
	zdtm_check(!strcmp(caps, "0000000000000000"), "worker: CapEff %s", caps);
	getrlimit(RLIMIT_NOFILE, &rl);
	zdtm_check(rl.rlim_cur == 77 && rl.rlim_max == 99, "worker: nofile %lu/%lu", (unsigned long)rl.rlim_cur,
		   (unsigned long)rl.rlim_max);
	exit(0);
}

int main(void)
{
	const char *rfd = getenv("HA_READY_FD");
	char status[64];
	pid_t w;
	int st;

	zdtm_init();
	w = fork();
	if (w == 0) {
		if (rfd)
			close(atoi(rfd));
		worker();
	}
	snprintf(status, sizeof(status), "/proc/%d/status", w);
	for (int i = 0; i < 5000; i++) {
		char uid[64];

		zdtm_proc_field(status, "Uid", uid, sizeof(uid));
		if (atoi(uid) == UID)
			break;
		zdtm_sleep_ms(1);
	}
	zdtm_ready("worker=%d", w);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(geteuid() == 0, "master: euid %d", geteuid());
	kill(w, SIGTERM);
	while (waitpid(w, &st, 0) < 0)
		if (errno != EINTR)
			zdtm_fail("waitpid: %m");
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "worker ended with %#x", st);
	zdtm_pass();
}
