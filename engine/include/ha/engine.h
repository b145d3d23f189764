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
/*
 * eng_kerndat_probe() really tries each feature (in a forked child when the try changes
 * process state) and records both what later stages need (methods, sizes, paths) and,
 * per item, a line for hactl check. A missing feature is not an error of the probe:
 * look at items[] or eng_kerndat_nr_missing().
 */
enum eng_dirty_method {
	ENG_DIRTY_HASH,		/* XXH3 of every present page: always available */
	ENG_DIRTY_SOFT_DIRTY,	/* clear_refs "4" + pagemap bit 55; target must be frozen */
	ENG_DIRTY_UFFD_WP,	/* uffd async write-protect + PAGEMAP_SCAN (6.7+) */
};

enum eng_kd_item {
	ENG_KD_DIRTY,		/* dirty-tracking: always ok (hash is the floor) */
	ENG_KD_UFFD,		/* userfaultfd */
	ENG_KD_CLONE3_SET_TID,
	ENG_KD_MM_MAP,		/* PR_SET_MM_MAP */
	ENG_KD_PIDFD_GETFD,
	ENG_KD_CGROUP2,		/* cgroup2 mount point */
	ENG_KD_FREEZER,		/* cgroup2 freezer */
	ENG_KD_TCP_REPAIR,
	ENG_KD_TIMENS,
	ENG_KD_RSEQ,
	ENG_KD_VDSO,
	ENG_KD_XSTATE,
	ENG_KD_CAP_SYS_RESOURCE,
	ENG_KD_NR
};

struct eng_kerndat_item {
	const char *name;	/* "clone3-set-tid": stable, used as the JSON key */
	bool ok;
	bool required;		/* the engine cannot work without it */
	int err;		/* -errno of the failed try; 0 when ok */
	char value[48];		/* "yes", "missing", a path, a method */
	char detail[224];	/* what failed, or what missing means; may be "" */
};

struct eng_kd_map {
	uint64_t start, size;	/* size 0: no such mapping */
};

struct eng_kerndat {
	enum eng_dirty_method dirty_method;	/* best method that worked */
	bool uffd_wp_scan;	/* async WP + PAGEMAP_SCAN reported exactly the written page */
	bool soft_dirty;	/* pagemap bit 55 set by a write after clear_refs */
	bool uffd;		/* userfaultfd + UFFDIO_COPY into a registered range */
	uint64_t uffd_features;	/* what UFFDIO_API offers */
	bool clone3_set_tid;	/* pid 1 of a new pid ns, and a chosen pid inside it */
	bool mm_map;		/* PR_SET_MM_MAP (exe_fd -1) changed the arg area */
	uint32_t mm_map_size;	/* PR_SET_MM_MAP_SIZE */
	bool pidfd_getfd;
	char cgroup2_mnt[256];	/* "" when cgroup2 is not mounted */
	bool cgroup2_freezer;	/* a child cgroup froze and thawed */
	bool tcp_repair;
	bool timens;		/* offsets written and seen by a child's CLOCK_MONOTONIC */
	bool rseq;		/* the kernel has rseq and ptrace reads its configuration */
	uint64_t rseq_addr;	/* the calling thread's registration (0: none) */
	uint32_t rseq_len, rseq_sig;
	uint32_t rseq_feature_size;	/* AT_RSEQ_FEATURE_SIZE, 0 if the kernel lacks it */
	struct eng_kd_map vvar, vvar_vclock, vdso;
	uint64_t xcr0;		/* 0 when the OS has not enabled XSAVE */
	uint32_t xstate_size;	/* CPUID.(0xd,0).EBX: XSAVE area for XCR0 */
	uint32_t xstate_regset_size;	/* NT_X86_XSTATE as ptrace returns it */
	bool cap_sys_resource;	/* a hard rlimit could be raised in a child */
	struct eng_kerndat_item items[ENG_KD_NR];
};

/* 0 when every probe ran, or the first -errno of a probe that could not run (fork,
 * pipe); its item is then marked failed with the reason. */
int eng_kerndat_probe(struct eng_kerndat *kd);
/* Required items that are not ok. */
int eng_kerndat_nr_missing(const struct eng_kerndat *kd);
/* "uffd-wp+pagemap-scan", "soft-dirty", "hash". */
const char *eng_dirty_method_name(enum eng_dirty_method m);
/* @@kerndat-end */

/* ---- images (engine/image.c) ----------------------------------------------------- */
/* @@image: owned by the image work; declarations go between these markers. */
/* @@image-end */

#endif
