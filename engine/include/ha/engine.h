/*
 * ha/engine.h: the checkpoint/restore engine, the only header other modules include.
 *
 * The engine knows nothing of libevent, sqlite or the config file. Calls return 0 or
 * -errno; constructors fill an out-pointer; every x_open/x_seize has a NULL-tolerant
 * release. Errors are logged once where they happen (eng_set_log) with pid/fd/file.
 */
#ifndef HA_ENGINE_H
#define HA_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- logging (engine/log.c) ------------------------------------------------------ */

enum eng_log_level { ENG_LOG_ERR = 3, ENG_LOG_WARN = 4, ENG_LOG_INFO = 6, ENG_LOG_DEBUG = 7 };
typedef void (*eng_log_fn)(int level, const char *msg, void *opaque);
/* Default: "<level>hacd: msg" lines on stderr for levels <= ENG_LOG_INFO. */
void eng_set_log(eng_log_fn fn, int max_level, void *opaque);
/* The last error message the engine logged in this thread, for hactl to print. */
const char *eng_last_error(void);

/* ---- seizing and parasite injection (engine/infect.c) ---------------------------- */
/*
 *   eng_seize()  -> every thread PTRACE_SEIZEd and interrupted, registers saved
 *   eng_infect() -> parasite mapped and talking over its socket
 *   eng_par_*()  -> commands
 *   eng_cure()   -> parasite gone, registers as they were
 *   eng_release()-> detached, running again (cures first if still infected)
 * eng_release() is always safe to call and always leaves the target running.
 */
struct eng_victim;

int eng_seize(pid_t pid, struct eng_victim **out);
int eng_infect(struct eng_victim *v);
int eng_cure(struct eng_victim *v);
void eng_release(struct eng_victim *v);

pid_t eng_victim_pid(const struct eng_victim *v);
int eng_victim_nr_threads(const struct eng_victim *v);
pid_t eng_victim_tid(const struct eng_victim *v, int i);

struct eng_sigaction {
	uint64_t handler, flags, restorer, mask;
};
struct eng_itimer {
	int64_t interval_sec, interval_usec, value_sec, value_usec;
};
struct eng_rseq {
	uint64_t addr;		/* 0: not registered */
	uint32_t len, flags, sig;
};

/* All 64 signal actions; out[i] is signal i + 1. */
int eng_par_sigactions(struct eng_victim *v, struct eng_sigaction out[64]);
/* ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF. */
int eng_par_itimers(struct eng_victim *v, struct eng_itimer out[3]);
/* The target's fd `target_fd`, duplicated into this process over SCM_RIGHTS. */
int eng_par_get_fd(struct eng_victim *v, int target_fd, int *local_fd);
/* Thread i's rseq registration (ptrace, no parasite needed). */
int eng_thread_rseq(struct eng_victim *v, int i, struct eng_rseq *out);

/* ---- kernel feature probes (engine/kerndat.c) ------------------------------------ */
/* @@kerndat: owned by the kerndat work; declarations go between these markers. */
/* @@kerndat-end */

/* ---- images (engine/image.c) ----------------------------------------------------- */
/* @@image: owned by the image work; declarations go between these markers. */
/* @@image-end */

#endif
