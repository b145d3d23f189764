/*
 * proc-parse.h: parsers of the /proc/PID files a checkpoint is read from (maps and
 * smaps, stat, status, limits, fdinfo, timers). They only parse: what is supported or
 * not is decided by their callers (dump, restore checks, the agent). Each returns 0 or
 * -errno and logs once, naming the pid and the file.
 */
#ifndef HA_ENGINE_PROC_PARSE_H
#define HA_ENGINE_PROC_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The whole of /proc/PID/<name> ("maps", "task/12/status"), NUL-terminated, in *buf
 * (free it). tid 0: the process itself. -ENOENT when the process is gone. */
int eng__proc_read(pid_t pid, const char *name, char **buf, size_t *len);
/* The same, but a process that is gone is -ENOENT or -ESRCH with nothing logged. */
int eng__proc_read_gone(pid_t pid, const char *name, char **buf, size_t *len);
/* /proc/PID/task/TID/<file> (tid 0: /proc/PID/<file>) the way eng__proc_read does;
 * name (at least 48 bytes) receives the path below /proc/PID for the caller's errors. */
int eng__proc_read_task(pid_t pid, pid_t tid, const char *file, char name[static 48], char **buf);
/* readlink of /proc/PID/<name> into buf; -ENAMETOOLONG when it does not fit. */
int eng__proc_link(pid_t pid, const char *name, char *buf, size_t size);

/* smaps VmFlags we act on (fs/proc/task_mmu.c, show_smap_vma_flags). */
enum {
	ENG_VMF_GROWSDOWN = 1u << 0,	/* gd */
	ENG_VMF_LOCKED = 1u << 1,	/* lo */
	ENG_VMF_NORESERVE = 1u << 2,	/* nr */
	ENG_VMF_DONTDUMP = 1u << 3,	/* dd */
	ENG_VMF_DONTCOPY = 1u << 4,	/* dc */
	ENG_VMF_WIPEONFORK = 1u << 5,	/* wf */
	ENG_VMF_HUGEPAGE = 1u << 6,	/* hg */
	ENG_VMF_NOHUGEPAGE = 1u << 7,	/* nh */
	ENG_VMF_MERGEABLE = 1u << 8,	/* mg */
	ENG_VMF_SEQ_READ = 1u << 9,	/* sr */
	ENG_VMF_RAND_READ = 1u << 10,	/* rr */
	ENG_VMF_IO = 1u << 11,		/* io */
	ENG_VMF_PFNMAP = 1u << 12,	/* pf */
	ENG_VMF_MIXEDMAP = 1u << 13,	/* mm */
	ENG_VMF_HUGETLB = 1u << 14,	/* ht */
	ENG_VMF_SHADOW_STACK = 1u << 15,	/* ss */
	ENG_VMF_UFFD = 1u << 16,	/* um, uw, ui */
	ENG_VMF_LOCKONFAULT = 1u << 17,	/* lf */
	ENG_VMF_DROPPABLE = 1u << 18,	/* dp */
	ENG_VMF_SEALED = 1u << 19,	/* sl */
	ENG_VMF_SHARED = 1u << 20,	/* sh: VM_SHARED, writes reach the file */
	ENG_VMF_GUARD = 1u << 21,	/* gu: has MADV_GUARD_INSTALL regions (6.13+) */
};

/* One line of /proc/PID/maps, with what smaps adds. */
struct eng__vma {
	uint64_t start, end;
	uint64_t pgoff;		/* bytes */
	uint32_t prot;		/* PROT_* */
	bool shared;		/* 's': VM_MAYSHARE */
	uint32_t dev_major, dev_minor;	/* as maps prints them */
	uint64_t ino;
	char *path;		/* NULL: anonymous; "[heap]", "/x (deleted)" as printed */
	uint32_t vmflags;	/* ENG_VMF_* (smaps only) */
	int pkey;		/* ProtectionKey (smaps only; 0 without pkeys) */
};

/* /proc/PID/smaps (with_flags) or maps into an array in address order. */
int eng__parse_vmas(pid_t pid, bool with_flags, struct eng__vma **out, int *nr);
void eng__vmas_free(struct eng__vma *v, int nr);

/* /proc/PID/stat (or task/TID/stat), fields numbered as proc(5) does. */
struct eng__stat {
	char state;			/* (3) */
	pid_t ppid, pgrp, session;	/* (4) (5) (6) */
	unsigned long flags;		/* (9) PF_*: PF_EXITING is 0x4 */
	int nr_threads;			/* (20) */
	uint64_t start_code, end_code, start_stack;	/* (26) (27) (28) */
	uint64_t start_data, end_data, start_brk;	/* (45) (46) (47) */
	uint64_t arg_start, arg_end, env_start, env_end;	/* (48) .. (51) */
};
int eng__parse_stat(pid_t pid, pid_t tid, struct eng__stat *st);

/* /proc/PID/status (tid 0) or task/TID/status. */
struct eng__status {
	char state;
	pid_t tgid, ppid, tracer;
	int nspid_levels;		/* entries on the NSpid line: 1 in our own pid ns */
	uint32_t uid[4], gid[4];	/* real, effective, saved, fs */
	uint32_t *groups;		/* free with eng__status_free */
	size_t nr_groups;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	bool no_new_privs;
	int seccomp;			/* SECCOMP_MODE_* */
	uint32_t umask;
	uint64_t sig_ignored, sig_caught;
};
int eng__parse_status(pid_t pid, pid_t tid, struct eng__status *st);
void eng__status_free(struct eng__status *st);
/* Same uids, gids, groups, capabilities and no_new_privs: the per-thread credentials. */
bool eng__status_same_creds(const struct eng__status *a, const struct eng__status *b);

/* /proc/PID/limits: the 16 RLIMIT_* pairs in order, "unlimited" as RLIM_INFINITY. */
#define ENG_NR_RLIMITS 16
struct eng__rlimit {
	uint64_t cur, max;
};
int eng__parse_limits(pid_t pid, struct eng__rlimit out[ENG_NR_RLIMITS]);

/* /proc/PID/fdinfo/FD: the lines every fd has, from its text (info). */
struct eng__fdinfo {
	uint64_t pos;
	uint32_t flags;		/* f_flags, with O_CLOEXEC when the fd has FD_CLOEXEC */
	int mnt_id;
};
int eng__parse_fdinfo(pid_t pid, int fd, const char *info, struct eng__fdinfo *fi);

/* /proc/PID/timers: one POSIX timer. Sorted by id. */
struct eng__ptimer {
	int id;
	int clock_id;
	int signo;
	uint64_t sigval;
	int notify;		/* SIGEV_*, with SIGEV_THREAD_ID for "tid" targets */
	pid_t notify_pid;
};
int eng__parse_timers(pid_t pid, struct eng__ptimer **out, int *nr);

#endif
