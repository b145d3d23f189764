/*
 * dump.h: private to the dump (dump.c orchestrates; task-dump.c, files-dump.c and
 * mem-dump.c/mem-pages.c each collect one kind of state and write its images).
 *
 * Every collector has the same three steps, called by dump.c in its stage order:
 *   *_precheck / *_prepare   before seizing: refuse what restore cannot do yet, with
 *                            the process untouched; allocate what the frozen stage needs
 *   *_collect                while every thread is stopped: read state into memory
 *   *_write                  after release (or before the kill): build records, write
 *                            images, and queue them for commit in dump.c's order
 * and a NULL-tolerant *_free.
 */
#ifndef HA_ENGINE_DUMP_H
#define HA_ENGINE_DUMP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "files.pb-c.h"
#include "ha/engine.h"
#include "infect.h"
#include "proc-parse.h"

#define ENG_PAGE_SIZE 4096ul
#define ENG_SIGINFO_SIZE 128

/* Refuse what restore cannot do yet: log the reason alone (no strerror) and fail. */
#define eng__refuse(fmt, ...) (pr_err(fmt, ##__VA_ARGS__), -EOPNOTSUPP)

/* Images written but not committed, committed in the order they were queued. */
struct eng__imgq {
	struct eng_img **img;
	int n, cap;
};
/* Queue img; on failure img is aborted and -ENOMEM returned. */
int eng__imgq_add(struct eng__imgq *q, struct eng_img *img);

/* ---- files-dump.c: open files and the fd table ------------------------------------ */

struct eng__file_dump {
	uint32_t id;
	int kind;		/* ImgFileKind */
	uint32_t flags;		/* f_flags without O_CLOEXEC */
	uint64_t pos;
	char *path;
	uint32_t mode;
	uint64_t size, dev, ino, rdev;
	bool unlinked;
	uint64_t xxh3;		/* unlinked: of the ghost contents */
	int first_fd;		/* kcmp() partner for the fds after it */
	int ghost;		/* index in ghosts[], -1: none */
	bool foreign;		/* an earlier process's description (same id): files.img
				 * and the ghost are written by that process */
	/* Kinds without a path (fd-kinds.h): their sub-message, heap, with heap data. */
	ImgPipe *pipe;
	ImgEventfd *efd;
	ImgTimerfd *tfd;
	ImgSignalfd *sfd;
	ImgEpoll *ep;
	ImgInetSk *inet;
	ImgUnixSk *usk;
	uint32_t usk_wqueue;	/* sock_diag: bytes it sent that its peer has not read */
	ImgMemfd *memfd;	/* .shm filled by eng__shm_collect */
	ImgInotify *inotify;
};

struct eng__fd_dump {
	int fd;
	bool cloexec;
	int file;		/* index in files[] */
};

struct eng__files_dump {
	pid_t pid;
	uint32_t id_base;		/* ids of this process's files start above it */
	struct eng__file_dump *files;
	int nr_files;
	struct eng__fd_dump *fds;
	int nr_fds;
	struct eng_img **ghosts;	/* written while frozen, queued by _write */
	int nr_ghosts;
	uint64_t ghost_bytes;
};

int eng__files_precheck(pid_t pid);
/* Ids of the files found are id_base + 1, + 2...: unique across a tree when each
 * process's id_base is above the ids of the ones collected before it. */
int eng__files_collect(pid_t pid, int dirfd, uint32_t id_base, struct eng__files_dump *fd);
/* The ghosts and fds-PID.img of one process. */
int eng__files_write(pid_t pid, int dirfd, struct eng__files_dump *fd, struct eng__imgq *q);
/* files.img: the files of every process of the tree (n dumps), foreign ones once. */
int eng__files_write_table(int dirfd, struct eng__files_dump *const *all, int n, struct eng__imgq *q);
void eng__files_free(struct eng__files_dump *fd);
/* sk-unix.c: unix sockets' peers across the tree, frozen, after eng__files_share. */
int eng__unix_resolve(struct eng__files_dump *const *all, int n);
struct eng__tree;
/* The same for peers outside the tree, best effort, while it runs. */
int eng__unix_precheck(const struct eng__tree *t);

/* ---- task-dump.c: threads, signals, credentials, limits, timers ------------------- */

struct eng__thread_dump {
	pid_t tid;
	char comm[16];
	struct user_regs_struct regs;
	uint8_t *xstate;
	size_t xstate_len;
	uint64_t sigmask;
	struct eng_rseq rseq;
	uint8_t *pending;		/* nr_pending siginfos of ENG_SIGINFO_SIZE bytes */
	size_t nr_pending;
	int seccomp_mode;
	uint32_t seccomp_filter;	/* 1-based index into filters, 0: none */
	bool has_sas;			/* sigaltstack read */
	uint64_t sas_sp, sas_size;
	uint32_t sas_flags;
	bool has_clear_tid;
	uint64_t clear_tid;
	uint32_t securebits;
};

struct eng__seccomp_dump {
	uint8_t *bpf;
	size_t len;
	uint32_t prev;			/* 1-based, 0: none */
	uint32_t flags;
};

struct eng__ptimer_dump {
	struct eng__ptimer t;
	int64_t interval_sec, interval_nsec, value_sec, value_nsec;
	int overrun;
};

struct eng__task_dump {
	pid_t pid;
	char comm[16];
	uint32_t personality;
	struct eng__status status;	/* the leader's: creds, umask */
	struct eng__stat stat;		/* pgid, sid */
	uint32_t securebits;
	char cwd[PATH_MAX], root[PATH_MAX];
	struct eng__rlimit rlimits[ENG_NR_RLIMITS];
	struct eng_sigaction sigactions[64];
	struct eng_itimer itimers[3];
	struct eng__ptimer_dump *timers;
	int nr_timers;
	uint8_t *shared_pending;
	size_t nr_shared_pending;
	struct eng__seccomp_dump *filters;
	size_t nr_filters;
	struct eng__thread_dump *th;	/* th[0] is the leader */
	int nr_threads;
	uint64_t xcr0;
	bool child_subreaper;
	int pdeathsig;			/* the leader's */
};

/* Namespaces, tracer, state: what no part of the dump can handle. seized: we already
 * trace it (stopped by us, not by job control). */
/* ns_init: the tree lives in our init's pid, ipc and uts namespaces (pidns.c), 0: in ours. */
int eng__task_precheck(pid_t pid, bool seized, pid_t ns_init);
/* What ptrace and /proc tell: before the parasite goes in. */
int eng__task_collect(struct eng_victim *v, struct eng__task_dump *td);
/* What only the process can tell: through the parasite and remote syscalls. */
int eng__task_collect_infected(struct eng_victim *v, struct eng__task_dump *td);
/* core-PID.img. */
int eng__task_write(int dirfd, struct eng__task_dump *td, struct eng__imgq *q);
void eng__task_free(struct eng__task_dump *td);

/* ---- pstree.c: the tree below the dumped process ----------------------------------- */

struct eng__tree_proc {
	pid_t pid, ppid, pgid, sid;	/* ppid 0: the root */
	char state;
	bool zombie;
	int exit_status;		/* zombie: the wait status its parent will reap */
	pid_t ipid, ipgid, isid;	/* tree.inner: as the tree sees them (pidns.c) */
};

struct eng__tree {
	struct eng__tree_proc *p;	/* p[0] is the root, parents before children */
	int n, cap;
	/* In a pid namespace of its own (pidns.c): every process's and thread's id inside. */
	bool inner;
	struct eng__idpair {
		pid_t outer, inner;
	} *ids;
	int nr_ids, cap_ids;
};

/* The root and every process below it, as /proc shows them now. */
int eng__tree_scan(pid_t root, struct eng__tree *t);
/* Refuses a tree restore cannot build (a session led from outside the tree or by a
 * process of it its members' parent is not in). */
int eng__tree_check(const struct eng__tree *t);
/* Step by step, for a tree frozen from the top: the root alone, then the children of
 * p[i] appended (p[i] must be stopped for the list to hold); re-read p[i]'s state. */
int eng__tree_add_root(struct eng__tree *t, pid_t root);
int eng__tree_add_children(struct eng__tree *t, int i);
int eng__tree_restat(struct eng__tree *t, int i);
/* Same processes, parents and zombies, in the same order. */
bool eng__tree_same(const struct eng__tree *a, const struct eng__tree *b);
void eng__tree_free(struct eng__tree *t);
/* kcmp across processes: a description shared with an earlier one becomes foreign. */
int eng__files_share(struct eng__files_dump *const *all, int n);
/* pstree.img; td[i] is t->p[i]'s (NULL for zombies). */
int eng__pstree_write(int dirfd, const struct eng__tree *t, struct eng__task_dump *const *td,
		      struct eng__imgq *q);

/* ---- pidns.c: a tree in a pid namespace of its own, under our init ---------------- */

struct eng__pidns {
	pid_t init;		/* our init, as we see it; 0: the tree shares our pid namespace */
	pid_t root;		/* the tree's root as we see it: the init's only child, or pid */
	char hostname[65];	/* init: the name in its uts namespace */
};
/* Which tree dumping pid means: itself, or (our init, or the init's only child) the
 * init's child and everything below it. Refuses a foreign init, orphans under ours,
 * deeper namespaces, SysV semaphores and queues in the init's ipc namespace and mounts
 * the service made in its mount namespace. */
int eng__pidns_resolve(pid_t pid, struct eng__pidns *ns);
/* In our init, in its new mount namespace: /proc of its pid namespace, mounted with
 * this source so that ns-mounts.c can tell it from proc mounts copied from hacd's; -errno. */
#define ENG_NS_PROC_SOURCE "hacd-proc"
int eng__ns_mount_proc(void);
/* ns-mounts.c: refuses a mount the service made in our init's mount namespace. */
int eng__ns_check_mounts(pid_t init);
/* 1 when processes a and b (0: ourselves) share namespace ns ("pid", "ipc"...), 0 when
 * not, or -errno. */
int eng__ns_same(pid_t a, pid_t b, const char *ns);
/* Frozen (or a zombie): p[i]'s pid, pgid and sid inside, and each thread's of v (NULL
 * for a zombie); sets t->inner. */
int eng__tree_inner(struct eng__tree *t, int i, const struct eng_victim *v);
/* The id inside of a process or thread recorded by eng__tree_inner; 0: none. */
pid_t eng__tree_inner_id(const struct eng__tree *t, pid_t outer);

/* ---- mem-dump.c, mem-pages.c: the address space and its pages --------------------- */

enum eng__page_src {
	ENG_PG_NONE,		/* content is not ours to store (file, vdso) */
	ENG_PG_SCAN_ANON,	/* PAGEMAP_SCAN: present or swapped, not the zero page */
	ENG_PG_SCAN_COW,	/* ... and not a file page: COWed copies in a private file map */
	ENG_PG_ALL,		/* every page up to data_end (a private map of a deleted file) */
	ENG_PG_FILE_DATA,	/* the data ranges of the mapped object (shmem, deleted file) */
};

struct eng__vma_dump {
	struct eng__vma v;
	int kind;		/* ImgVmaKind */
	uint32_t flags;		/* MAP_* */
	uint64_t madv;
	char *path;		/* file-backed: the path without " (deleted)" */
	uint64_t dev, ino;
	bool unlinked;
	enum eng__page_src src;
	uint64_t data_end;	/* ENG_PG_ALL / FILE_DATA: end of the file's data in the map */
	int file_fd;		/* ENG_PG_FILE_DATA and shm_kind: the mapped object, or -1 */
	int shm_kind;		/* ImgShmemKind: a shared object (shmem.c), 0: none */
	uint32_t shm;		/* its id, from eng__shm_collect */
	bool tracked;		/* registered with our pre-copy uffd (mem-precopy.c) */
	bool planned;		/* plan_one() succeeded: the fields above are its answer */
	bool stale;		/* ...about another file than the maps line's: not reused */
};

struct eng__page_run {
	uint64_t vaddr, len;	/* bytes */
	uint64_t off;		/* in the copy buffer */
	int vma;
	uint8_t how;		/* ENG_RD_* */
	bool reuse;		/* already in the buffer: pre-copied and not written since */
	uint64_t file_off;	/* ENG_RD_FILE */
};
enum { ENG_RD_VM, ENG_RD_MEM, ENG_RD_FILE };

/* Pre-copy (mem-precopy.c): pages copied while the process runs, with uffd async
 * write-protect telling which were written since. */
struct eng__precopy {
	int uffd;			/* -1: not armed */
	struct eng__range {
		uint64_t start, end;
	} *armed;			/* mappings registered and write-protected */
	int nr_armed;
	struct eng__page_run *runs;	/* what the live pass copied, offsets into buf */
	size_t nr_runs;
	uint64_t arm_us;		/* how long arming stopped the process */
	uint64_t pages_reused;		/* pre-copied pages the dump used as they were */
};

struct eng__mem_dump {
	pid_t pid;
	struct eng__vma_dump *vmas;
	int nr_vmas;
	struct eng__stat stat;
	uint64_t brk;
	uint64_t *auxv;
	size_t nr_auxv;
	char exe[PATH_MAX];
	uint64_t vdso_hash;
	bool has_vdso_hash;
	bool no_scan;			/* PAGEMAP_SCAN missing: read pagemap entries */
	/* pages */
	struct eng__page_run *runs;
	size_t nr_runs, cap_runs;
	uint8_t *buf;			/* page copies, runs[i].off into it */
	size_t buf_cap, buf_used;
	size_t fresh_base;		/* buf below it: the pre-copy's; new pages above */
	struct eng__precopy pc;
	struct eng__vma *snap;		/* smaps read live, for the flags (see vma_plan) */
	int nr_snap;
	uint64_t pages_scanned;
	uint64_t pages_written, pages_zero;
	struct eng_track *trk;		/* incremental (track.c): its hooks decide pages */
};

/* Before seizing: refuse unsupported mappings, size and pre-fault the copy buffer
 * (with trk: borrow the tracker's staging buffer instead). */
int eng__mem_prepare(pid_t pid, struct eng__mem_dump *md, struct eng_track *trk);
/* Right before seizing a big process (>= ENG_BIG_MM bytes of pages): snapshot smaps,
 * so that the frozen pass reads maps only (see read_vmas in mem-dump.c). */
#define ENG_BIG_MM (32ul << 20)
int eng__mem_presnap(pid_t pid, struct eng__mem_dump *md);
/* Frozen: mappings, mm fields, and a copy of every page worth keeping. */
int eng__mem_collect(struct eng_victim *v, struct eng__mem_dump *md);
/* Infected: brk(0). */
int eng__mem_collect_infected(struct eng_victim *v, struct eng__mem_dump *md);
/* mm-PID.img, then pagemap-PID.img and pages-PID.img (queued in that order). */
int eng__mem_write(int dirfd, struct eng__mem_dump *md, struct eng__imgq *q);
void eng__mem_free(struct eng__mem_dump *md);

/* Before seizing, given the page estimate from eng__mem_prepare: arm write tracking
 * (a short stop of the process) and copy every page while it runs. Not arming (the
 * kernel lacks uffd async WP, the process is small) is not an error. */
int eng__mem_precopy(pid_t pid, struct eng__mem_dump *md, bool always);

/* mem-dump.c -> mem-pages.c, mem-precopy.c */
int eng__vma_plan(pid_t pid, struct eng__mem_dump *md);
/* Read smaps now, while the process runs: the next plans read maps only and take each
 * mapping's flags from here when its line is unchanged. */
int eng__vma_flags_snapshot(pid_t pid, struct eng__mem_dump *md);
void eng__vma_plan_free(struct eng__mem_dump *md);
/* Runs of pages worth storing (md->runs); new ones at offsets from fresh_base up
 * (buf_used: their end). */
int eng__pages_find(struct eng__mem_dump *md);
/* A run to copy: appended at buf_used, or over a stale copy at `off`; or one already
 * in the buffer at `off`. */
int eng__pages_add(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len, int how,
		   uint64_t file_off);
int eng__pages_add_at(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len, int how,
		      uint64_t file_off, uint64_t off);
int eng__pages_add_reuse(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len,
			 uint64_t off);
int eng__pages_read_how(const struct eng__vma_dump *d);
/* A pre-faulted copy buffer of at least `bytes`. */
int eng__pages_reserve(struct eng__mem_dump *md, size_t bytes);
/* Copy every run into the buffer (reserving what is missing first). */
int eng__pages_copy(struct eng__mem_dump *md);
int eng__pages_write(int dirfd, struct eng__mem_dump *md, struct eng_img **pagemap,
		     struct eng_img **pages);

/* Seize, take a userfaultfd from the process (the process's own copy closed), release:
 * 0 and *uffd, 1 when the kernel refuses it, or -errno. */
int eng__precopy_take_uffd(pid_t pid, int *uffd);

/* mem-precopy.c, for the frozen pass */
bool eng__precopy_owns(const struct eng__precopy *pc, uint64_t start, uint64_t end);
/* The runs of a tracked mapping: pre-copied pages not written since are reused. */
int eng__precopy_scan(struct eng__mem_dump *md, int vma, int pm_fd);
/* Unregister everything (close the uffd); NULL-tolerant, idempotent. */
void eng__precopy_end(struct eng__precopy *pc);

/* ---- shmem.c: shared memory objects ------------------------------------------------ */

/* Shared anonymous memory, memfds and files deleted while mapped: objects that several
 * mappings and descriptors (in several processes) may share; stored once each. */
struct eng__shm_obj {
	uint32_t id;
	int kind;			/* ImgShmemKind */
	uint64_t dev, ino, size;
	uint32_t mode, seals;
	bool has_seals;
	char *name, *path;
	uint64_t *ext;			/* (offset, length) pairs */
	size_t nr_ext;
	uint64_t xxh3;
	uint8_t *copy;			/* the data extents, copied while frozen */
	uint64_t copy_len;
	struct {			/* SHM_SYSV (sysv-shm.c) */
		int id;
		uint32_t key, uid, gid, cuid, cgid;
	} sysv;
};

struct eng__shm_table {
	struct eng__shm_obj *o;
	int n, cap;
};

/* Frozen, every process collected: find the objects the tree's mappings and memfd
 * descriptors name (by st_dev, st_ino), give each an id (set in the vma and file
 * dumps) and copy its data into memory. */
int eng__shm_collect(struct eng__shm_table *t, struct eng__mem_dump *const *md,
		     struct eng__files_dump *const *fds, int n, pid_t ipc_pid);
/* The object behind fd (borrowed), found or added and copied; kind SHM_ANON, SHM_SYSV
 * or 0 (a memfd or deleted file, told by its name). */
int eng__shm_obj_of(struct eng__shm_table *t, int fd, int kind, uint32_t *id);

/* sysv-shm.c: System V segments of a tree's own ipc namespace. Frozen: every segment
 * of ipc_pid's ipc namespace into t; then one attachment (a planned mapping of kind
 * SHM_SYSV), which must name one of them, whole. Before the freeze, for a tree that
 * shares hacd's ipc namespace: a refusal for any attachment of the process. */
int eng__sysv_collect(struct eng__shm_table *t, pid_t ipc_pid);
int eng__sysv_attached(struct eng__shm_table *t, pid_t pid, struct eng__vma_dump *d);
int eng__sysv_refuse_shared_ns(const struct eng__mem_dump *md);
/* shmdata-ID.img and shmem.img (nothing when there is no object). */
int eng__shm_write(int dirfd, struct eng__shm_table *t, struct eng__imgq *q);
void eng__shm_free(struct eng__shm_table *t);

/* fd-memfd.c, fd-inotify.c: dump halves (restore halves in fd-kinds.h). */
int eng__memfd_check(pid_t pid, int fd, const char *link);
int eng__inotify_dump(pid_t pid, int fd, const char *fdinfo, ImgInotify **out);
void eng__inotify_free(ImgInotify *in);

#endif
