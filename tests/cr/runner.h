/* The zdtm-style harness shared by the cr runners: victims and /proc snapshots. */
#ifndef HA_TESTS_RUNNER_H
#define HA_TESTS_RUNNER_H

#include <sys/types.h>

#define VICTIM_MAX_FACTS 16

struct victim {
	pid_t pid;
	int input_fd;			/* write end of the victim's HA_INPUT_FD pipe */
	char line[1024];		/* the ready line, split into facts */
	const char *keys[VICTIM_MAX_FACTS];
	const char *vals[VICTIM_MAX_FACTS];
	int nr_facts;
};

/* Start a victim and wait for its ready line (and, for victims that say blocks=..., for
 * the victim to really sit in that syscall). Makes this process a child subreaper. */
int victim_start(const char *path, struct victim *v);
const char *victim_fact(const struct victim *v, const char *key);
/* Ask the victim to verify itself and exit (SIGTERM, or input for blocked readers);
 * returns 0 when it exited 0, within a time limit. */
int victim_finish(struct victim *v);
void victim_kill(struct victim *v);

/* What must not change across an injection or a checkpoint. */
struct proc_snapshot {
	char *maps;
	char *fds;		/* "N -> target" lines */
	char *sigstate;		/* Sig* and Seccomp lines of every thread */
};
int proc_snapshot(pid_t pid, struct proc_snapshot *s);
/* 0 when equal; otherwise prints the first differing line and returns 1. */
int proc_snapshot_diff(const struct proc_snapshot *a, const struct proc_snapshot *b);
void proc_snapshot_free(struct proc_snapshot *s);

int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
