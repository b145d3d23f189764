/*
 * hactl inject PID [--fd N]: seize a live process, run the parasite's commands, cure and
 * release it, printing what was learnt and how long the process was stopped. It is the
 * demo and the field check of the injection machinery that every dump relies on.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ha/engine.h"
#include "hactl.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void print_state(struct eng_victim *v, const struct eng_sigaction *sa, const struct eng_itimer *it)
{
	static const char *const timers[] = { "real", "virtual", "prof" };

	printf("pid %d: %d threads\n", eng_victim_pid(v), eng_victim_nr_threads(v));
	for (int i = 0; i < eng_victim_nr_threads(v); i++) {
		struct eng_rseq rs = { 0 };

		eng_thread_rseq(v, i, &rs);
		printf("  thread %d: rseq %#lx len %u sig %#x\n", eng_victim_tid(v, i),
		       (unsigned long)rs.addr, rs.len, rs.sig);
	}
	printf("  signal actions (not SIG_DFL):\n");
	for (int s = 0; s < 64; s++)
		if (sa[s].handler)
			printf("    %-9s handler %s flags %#lx mask %#lx\n",
			       s + 1 < SIGRTMIN ? sigabbrev_np(s + 1) : "RT",
			       sa[s].handler == 1 ? "SIG_IGN" : "set", (unsigned long)sa[s].flags,
			       (unsigned long)sa[s].mask);
	for (int i = 0; i < 3; i++)
		if (it[i].value_sec || it[i].value_usec)
			printf("  itimer %s: value %ld.%06lds interval %ld.%06lds\n", timers[i],
			       (long)it[i].value_sec, (long)it[i].value_usec, (long)it[i].interval_sec,
			       (long)it[i].interval_usec);
}

static int show_fd(struct eng_victim *v, int fd)
{
	char path[64], link[512];
	ssize_t n;
	int local;

	if (eng_par_get_fd(v, fd, &local))
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", local);
	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = 0;
	printf("  fd %d received over SCM_RIGHTS as our fd %d: %s\n", fd, local, link);
	close(local);
	return 0;
}

int ctl_cmd_inject(int argc, char **argv)
{
	static const struct option opts[] = { { "fd", required_argument, NULL, 'f' }, { 0 } };
	struct eng_sigaction sa[64];
	struct eng_itimer it[3];
	struct eng_victim *v;
	double t0, t1, t2;
	int fd = -1, opt, ret;
	pid_t pid;

	while ((opt = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
		if (opt != 'f')
			goto usage;
		fd = atoi(optarg);
	}
	if (optind != argc - 1 || (pid = atoi(argv[optind])) <= 0)
		goto usage;
	t0 = now_us();
	if (eng_seize(pid, &v)) {
		fprintf(stderr, "hactl inject: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	t1 = now_us();
	ret = eng_infect(v);
	if (!ret)
		ret = eng_par_sigactions(v, sa);
	if (!ret)
		ret = eng_par_itimers(v, it);
	if (!ret && fd >= 0)
		ret = show_fd(v, fd);
	/* Print after release: the process should not wait for our terminal. */
	if (!ret)
		ret = eng_cure(v);
	if (ret)
		fprintf(stderr, "hactl inject: %s\n", eng_last_error());
	else
		print_state(v, sa, it);
	eng_release(v);
	t2 = now_us();
	printf("  seize %.0f us, stopped for %.0f us in all; cured and released\n", t1 - t0, t2 - t0);
	return ret ? CTL_EXIT_FAIL : CTL_EXIT_OK;
usage:
	fprintf(stderr, "usage: hactl inject PID [--fd N]\n");
	return CTL_EXIT_USAGE;
}
