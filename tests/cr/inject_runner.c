/*
 * Injection round trips on live victims (issue 2): start a victim, wait for its ready
 * line, then N times seize -> infect -> parasite commands -> cure -> release, checking
 * what the parasite reports against the facts the victim announced, and that
 * /proc/PID/maps, the fd table and the signal state are exactly as before. Finally let
 * the victim verify itself and require exit status 0.
 *
 * usage: inject_runner [--cycles N] VICTIM
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ha/engine.h"
#include "runner.h"

static int check_parasite(struct eng_victim *v, const struct victim *vc)
{
	struct eng_sigaction sa[64];
	struct eng_itimer it[3];
	const char *s;

	if ((s = victim_fact(vc, "threads")) && eng_victim_nr_threads(v) != atoi(s))
		return fail("seized %d threads, victim has %s", eng_victim_nr_threads(v), s);
	if (eng_par_sigactions(v, sa))
		return fail("sigactions: %s", eng_last_error());
	/* SIGTERM's handler is installed by every victim through zdtm_init(), except the
	 * ones that block: those leave it default. Check what each announced. */
	if ((s = victim_fact(vc, "handler_usr1"))) {
		if (sa[SIGUSR1 - 1].handler != strtoull(s, NULL, 0))
			return fail("SIGUSR1 handler %#lx, victim says %s", (unsigned long)sa[SIGUSR1 - 1].handler, s);
		if (!(sa[SIGUSR1 - 1].flags & SA_RESTART) ||
		    sa[SIGUSR1 - 1].mask != (1ull << (SIGUSR2 - 1)))
			return fail("SIGUSR1 flags %#lx mask %#lx", (unsigned long)sa[SIGUSR1 - 1].flags,
				    (unsigned long)sa[SIGUSR1 - 1].mask);
	}
	if (sa[SIGKILL - 1].handler != 0)
		return fail("SIGKILL has a handler?");
	if (eng_par_itimers(v, it))
		return fail("itimers: %s", eng_last_error());
	if (victim_fact(vc, "handler_usr1") &&
	    (it[2].interval_sec != 500 || it[2].value_sec < 900 || it[2].value_sec > 1000))
		return fail("ITIMER_PROF %ld/%ld, expected interval 500 and value near 1000",
			    (long)it[2].interval_sec, (long)it[2].value_sec);
	for (int i = 0; i < eng_victim_nr_threads(v); i++) {
		struct eng_rseq rs;

		if (eng_thread_rseq(v, i, &rs))
			return fail("rseq: %s", eng_last_error());
		/* glibc 2.35+ registers rseq in every thread with this signature. */
		if (!rs.addr || rs.sig != 0x53053053)
			return fail("thread %d: rseq %#lx sig %#x", eng_victim_tid(v, i),
				    (unsigned long)rs.addr, rs.sig);
	}
	if ((s = victim_fact(vc, "fd"))) {
		char buf[128] = { 0 };
		int fd;

		if (eng_par_get_fd(v, atoi(s), &fd))
			return fail("get fd %s: %s", s, eng_last_error());
		if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
			return fail("reading the received fd: %m");
		close(fd);
		for (char *p = buf; *p; p++)
			*p = *p == ' ' ? '-' : *p == '\n' ? 0 : *p;
		if (strcmp(buf, victim_fact(vc, "fd_content")))
			return fail("received fd has '%s'", buf);
	}
	return 0;
}

static int one_cycle(const struct victim *vc, const struct proc_snapshot *before, double *us)
{
	struct proc_snapshot after;
	struct eng_victim *v;
	struct timespec a, b;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &a);
	if (eng_seize(vc->pid, &v))
		return fail("seize: %s", eng_last_error());
	ret = eng_infect(v);
	if (ret)
		fail("infect: %s", eng_last_error());
	else
		ret = check_parasite(v, vc);
	if (eng_cure(v) && !ret)
		ret = fail("cure: %s", eng_last_error());
	eng_release(v);
	clock_gettime(CLOCK_MONOTONIC, &b);
	*us = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	if (ret)
		return ret;
	if (proc_snapshot(vc->pid, &after))
		return fail("snapshot after");
	ret = proc_snapshot_diff(before, &after);
	proc_snapshot_free(&after);
	return ret;
}

int main(int argc, char **argv)
{
	struct proc_snapshot before;
	struct victim vc;
	int cycles = 1, opt, ret = 0;
	double us = 0, max_us = 0;

	while ((opt = getopt(argc, argv, "c:")) != -1)
		cycles = atoi(optarg);
	if (optind != argc - 1) {
		fprintf(stderr, "usage: inject_runner [-c CYCLES] VICTIM\n");
		return 64;
	}
	if (victim_start(argv[optind], &vc))
		return 1;
	if (proc_snapshot(vc.pid, &before)) {
		victim_kill(&vc);
		return 1;
	}
	for (int i = 0; i < cycles && !ret; i++) {
		ret = one_cycle(&vc, &before, &us);
		if (us > max_us)
			max_us = us;
	}
	proc_snapshot_free(&before);
	if (ret) {
		victim_kill(&vc);
		return 1;
	}
	ret = victim_finish(&vc);
	printf("%s %s: %d injection cycles, slowest %.0f us\n", ret ? "FAIL" : "PASS", argv[optind],
	       cycles, max_us);
	return ret ? 1 : 0;
}
