/*
 * crlib: what the checkpoint/restore runners (cr_runner, cr_real) share on top of the
 * victim harness: a scratch directory per test, running hactl with a time limit and
 * its output in a log, waiting for a killed victim, reaping strays.
 */
#ifndef HA_TESTS_CRLIB_H
#define HA_TESTS_CRLIB_H

#include <stddef.h>
#include <sys/types.h>

#include "runner.h"

/* A test's scratch directory: top (0711), work/ (victim cwd), img/ (0700, images),
 * victim.log (victim stdio), hactl.log (every hactl run, appended). */
struct cr_dir {
	char top[256], work[300], img[300], log[300], hlog[300];
};

int cr_dir_make(struct cr_dir *d, const char *name);
/* Remove the tree (on success; failures keep it for a look). */
void cr_dir_remove(const char *path);

/* Run argv with stdout+stderr appended to log; the exit status, or -1 when it was
 * killed by a signal or did not finish within timeout_ms (then it is killed). The
 * output of this run alone goes to *out when out is not NULL (free it). */
int cr_run(char *const argv[], const char *log, int timeout_ms, char **out);

/* hactl dump -t PID -D DIR [--leave-running]; hactl restore -D DIR --detach. */
int cr_dump(const char *hactl, pid_t pid, const char *dir, int leave_running, const char *log, char **out);
int cr_restore(const char *hactl, const char *dir, const char *log, char **out);

/* Wait for a child killed by the dump: 0 when it died of a signal within timeout_ms. */
int cr_wait_killed(pid_t pid, int timeout_ms);
/* Is pid a live (not zombie) process? */
int cr_pid_alive(pid_t pid);
/* Reap every exited child but `keep` (strays reparented to us as subreaper). */
void cr_reap_strays(pid_t keep);
/* A live (not zombie) child of ours, i.e. anything a failed restore left behind and
 * that was reparented to us as subreaper; waits up to timeout_ms for them to go.
 * 0 when none, else its pid (comm in comm[16]). */
pid_t cr_live_child(int timeout_ms, char comm[16]);
/* Wait until /proc/pid is gone, reaping strays; 0 when gone within timeout_ms. */
int cr_wait_pid_gone(pid_t pid, int timeout_ms);

/* Compare a fresh snapshot of pid with `before`, retrying for up to timeout_ms while
 * they differ (a restored process settles: a signal delivered, a syscall re-entered);
 * prints the last difference. 0 when equal. */
int cr_compare_settled(pid_t pid, const struct proc_snapshot *before, int timeout_ms);
/* The snapshot every later one is compared with: taken again until two in a row are
 * equal (up to timeout_ms), so that it cannot hold a passing state, such as a thread
 * inside a signal handler with that signal blocked. 0 when settled. */
int cr_snapshot_settled(pid_t pid, struct proc_snapshot *s, int timeout_ms);

int cr_copy_dir(const char *src, const char *dst);
long cr_ms_since(const struct timespec *t0);

#endif
