/* The zdtm-style harness shared by the cr runners: victims and /proc snapshots. */
#ifndef HA_TESTS_RUNNER_H
#define HA_TESTS_RUNNER_H

#include <sys/types.h>

#define VICTIM_MAX_FACTS 32	/* victim_dump (tests/dump) announces 21 */

struct victim {
	pid_t pid;
	int input_fd;			/* write end of the victim's HA_INPUT_FD pipe, or -1 */
	char line[1024];		/* the ready line, split into facts */
	const char *keys[VICTIM_MAX_FACTS];
	const char *vals[VICTIM_MAX_FACTS];
	int nr_facts;
};

/* How to start a victim; a zeroed struct (or NULL) is the inject runner's old way. */
struct victim_opts {
	const char *dir;	/* the victim's cwd, also passed as HA_DIR; NULL: inherit */
	const char *log;	/* stdin from /dev/null, stdout and stderr appended to this
				 * file (O_APPEND): no pipe left in a victim that will be
				 * checkpointed; NULL: inherit the runner's stdio */
	int no_input;		/* no HA_INPUT_FD pipe at all (pipes are not dumpable) */
	char *const *argv;	/* argv for exec (argv[0] first); NULL: { path } */
};

/*
 * Start a victim and wait for its ready line (and, for victims that say blocks=..., for
 * the victim to really sit in that syscall). Makes this process a child subreaper.
 * Facts the harness itself understands:
 *   blocks=NAME      ready only once the main thread sits in syscall NAME
 *                    (read, nanosleep, clock_nanosleep, pause, rt_sigsuspend, futex,
 *                    wait4, or anything else: any syscall)
 *   blocks_all=1     ... and every other thread sits in some syscall too
 *   wake=term        finish with SIGTERM even though it blocks (default for blocking
 *                    victims: they finish by themselves; blocks=read: written input)
 */
int victim_start(const char *path, struct victim *v);
int victim_start_opts(const char *path, const struct victim_opts *o, struct victim *v);
const char *victim_fact(const struct victim *v, const char *key);
/* The fact as a number (0x... allowed), -1 when missing. */
long victim_fact_num(const struct victim *v, const char *key);
/* A victim started by someone else (hactl run) with its stdout in log: wait for the
 * ready line there (and blocks=), then treat it like one we started. */
int victim_attach(struct victim *v, pid_t pid, const char *log, int timeout_ms);
/* Wait for the blocks= condition again (e.g. on a restored victim). */
int victim_wait_blocked(struct victim *v);
/* Ask the victim to verify itself and exit (SIGTERM, or input for blocked readers);
 * returns 0 when it exited 0, within a time limit. */
int victim_finish(struct victim *v);
/* Reap a victim that was asked to finish: 0 when it exited 0 within timeout_ms. */
int victim_reap(struct victim *v, int timeout_ms);
void victim_kill(struct victim *v);

/* What must not change across an injection or a checkpoint. */
struct proc_snapshot {
	char *maps;		/* smaps: each VMA with its VmFlags, mergeable neighbours merged */
	char *fds;		/* "N -> target pos=P flags=F" lines */
	char *sigstate;		/* per thread: SigBlk SigIgn SigCgt, pending signals that are blocked */
	char *creds;		/* per thread: Name, Uid, Gid, Groups, Cap*, NoNewPrivs, Seccomp* */
	char *misc;		/* umask, limits, cwd, root, exe, personality, posix timers */
};
int proc_snapshot(pid_t pid, struct proc_snapshot *s);
/* 0 when equal; otherwise prints the first differing line and returns 1. */
int proc_snapshot_diff(const struct proc_snapshot *a, const struct proc_snapshot *b);
/* Silent: 1 when equal, 0 when not. */
int proc_snapshot_same(const struct proc_snapshot *a, const struct proc_snapshot *b);
void proc_snapshot_free(struct proc_snapshot *s);

/* Whole file as a NUL-terminated string (free it), or NULL. */
char *cr_slurp(const char *path);
/* Print a file to stderr with a heading, for a failure report. */
void cr_show(const char *heading, const char *path);

int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
