/*
 * Restore internals: the images of one process, loaded and checked in full before any
 * process is created, and the stages that use them (rst-*.c).
 */
#ifndef HA_ENGINE_RESTORE_H
#define HA_ENGINE_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.pb-c.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "shmem.pb-c.h"
#include "ha/parasite.h"

struct eng_img;
struct eng_restore_opts;
struct rst_pipe;

struct rst_proc {
	pid_t pid;
	int parent;		/* index in rst_ctx.procs; -1: the root */
	int via;		/* index in rst_ctx.helpers of the session helper that forks
				 * it for its parent; -1: its parent forks it */
	bool zombie;		/* pst only: a child that exits with pst->exit_status */
	ImgPstreeEntry *pst;
	ImgCore *core;
	ImgThread **threads;
	size_t nr_threads;
	ImgMm *mm;
	ImgVma **vmas;
	size_t nr_vmas;
	ImgPagemapEntry **pm;
	size_t nr_pm;
	ImgFd **fds;
	size_t nr_fds;
	struct eng_img *pages;
};

/* A process group whose leader had exited: a helper with the leader's pid, forked by
 * `host` (the parent of its first member), makes the group, and exits once every
 * member has joined. A session helper (a session whose leader had exited, as a
 * double-forked daemon's): the same, but it calls setsid() and forks the session's
 * members itself (rst_proc.via), which are reparented to the host (a child subreaper)
 * when it exits. */
struct rst_helper {
	pid_t pgid;		/* and the session id, for a session helper */
	int host;		/* index in rst_ctx.procs */
	bool session;
};

/* What every restored process tells hactl over the shared status pipe; one write
 * each, below PIPE_BUF, so messages never interleave. */
enum { RST_MSG_FAIL = 1, RST_MSG_BORN, RST_MSG_JOINED, RST_MSG_READY, RST_MSG_GONE, RST_MSG_FILL };
struct rst_msg {
	int32_t pid;		/* the sender's pid in its own namespace */
	uint32_t kind;
	/* READY: the restorer's region, for hactl to unmap; FILL: the premapped slots'
	 * base and the userfaultfd's fd number (-1: none), then the sender stops itself */
	uint64_t region, region_len;
	char text[232];		/* FAIL: the error */
};

struct rst_ctx {
	int dirfd;
	/* For messages: the image directory; a page store's path and the generation
	 * (NULL and 0 for a plain image directory). */
	const char *dir, *store;
	uint32_t gen;
	ImgInventory *inv;
	ImgFile **files;
	size_t nr_files;
	struct rst_proc *procs;	/* pstree.img's order: procs[0] is the root */
	size_t nr_procs;
	struct rst_helper *helpers;
	size_t nr_helpers;
	/* In a restored process: its own entry, a copy of procs[me]. */
	struct rst_proc proc;
	int me;
	/* Fill workers (rst-fill.c): more than one, hactl fills each process. */
	int fill_workers;
	/* Pipes every restored process inherits (the ends they use). */
	int status_w, phase_r[2];
	/* Open file descriptions used by several processes, opened once by the root
	 * before it forks (rst__files_shared): shared_fd[i] is files[i]'s, or -1. */
	int *shared_fd;
	/* Shared memory objects (shmem.c), created by the root before it forks. */
	ImgShmem **shm;
	size_t nr_shm;
	/* Our descriptors that rst__files() must keep (and moves above the image's fds):
	 * RST_KEEP_DIR, RST_KEEP_STATUS, then each shm[i]'s object at RST_KEEP_SHM + i. */
	int *keep;

	/* rst-files.c and the fd kinds (fd-kinds.h) while fds are restored. */
	int fd_base;			/* above every fd number of the image */
	struct rst_pipe *pipes;		/* fd-pipe.c: pipes being restored */
	size_t nr_pipes;
	struct rst_usk *usks;		/* sk-unix.c: every unix socket, made by the root */
	size_t nr_usks;

	/* In the new process: where its time went (us), sent to hactl with READY and
	 * logged there with -v (its own stderr is the checkpoint's by then). */
	struct rst_times {
		uint64_t files, premap, fill, fill_read, fill_unpack, fill_copy, protect, task;
		uint64_t bytes_read, bytes_filled;
	} t;

	/* Filled in the new process by rst-mem.c for the restorer. */
	unsigned long region, region_len;	/* the restorer and its args */
	unsigned long rsv, rsv_len;		/* everything we premapped */
	struct rst_args *args;
};

int rst__load(struct rst_ctx *c, const char *dir);
/* CLOCK_MONOTONIC in microseconds. */
uint64_t rst__now_us(void);
void rst__free(struct rst_ctx *c);

/* rst-tree.c: in a restored process, from its birth to the restorer. */
void rst__proc_main(struct rst_ctx *c, int me, int go_fd) __attribute__((noreturn));
/* clone3 with set_tid = pid (in the caller's innermost pid namespace). */
pid_t rst__clone_pid(pid_t pid, unsigned long flags);
/* In hactl, around the restore: a scratch directory for the core files of zombies
 * whose wait status has the core-dump bit, when the kernel would write them there. */
int rst__core_dir_make(const struct rst_ctx *c);
void rst__core_dir_remove(void);
/* Participants of the birth/join phases: processes, zombies and helpers. */
size_t rst__nr_participants(const struct rst_ctx *c);

enum { RST_KEEP_DIR, RST_KEEP_STATUS, RST_KEEP_SHM };

/* shmem.c: create every shared object (in the root, before it forks); the fd of
 * object `id` (who: for the message); close them all (once mapped and reopened). */
int rst__shm_create(struct rst_ctx *c);
int rst__shm_fd(const struct rst_ctx *c, uint32_t id, const char *who);
/* Object `id` of shmem.img, or NULL. */
const ImgShmem *rst__shm_obj(const struct rst_ctx *c, uint32_t id);
/* Write an object's data extents into fd, or into `map` (its whole size) when set. */
int rst__shm_fill(struct rst_ctx *c, const ImgShmem *o, int fd, char *map);
/* sysv-shm.c: create a System V segment (in the root, in the tree's new ipc namespace,
 * before it forks): an fd on it, or -errno. Attach it at a premap slot for mapping v. */
int rst__sysv_create(struct rst_ctx *c, const ImgShmem *o);
int rst__sysv_attach(const ImgShmem *o, const ImgVma *v, unsigned long slot);
void rst__shm_close(struct rst_ctx *c);

/* In the new process, before the point of no return. Return 0 or -errno (logged). */
int rst__files_shared(struct rst_ctx *c);
int rst__files(struct rst_ctx *c, int *keep_fds, int nr_keep);
int rst__task_prepare(struct rst_ctx *c);
int rst__mem_prepare(struct rst_ctx *c);
/* Each VMA's slot offset in the premap (vdso parts: none), and the premap's length;
 * whether a VMA's slot is filled through the userfaultfd when there is one. */
unsigned long rst__plan_slots(const struct rst_proc *p, unsigned long *off);
bool rst__slot_uffd(const ImgVma *v);
/* Jump into the restorer: never returns. */
void rst__mem_jump(struct rst_ctx *c) __attribute__((noreturn));

/* rst-fill.c: put every page run of p into its slot (see there). */
struct rst_fill_args {
	const struct rst_proc *p;	/* its pages image open */
	const unsigned long *slots;	/* each VMA's premapped address in the restored process */
	int dirfd;			/* the image directory (a store generation's: its packs) */
	const char *dir, *store;	/* for messages (rst_ctx's) */
	uint32_t gen;
	int uffd;			/* registered over the anonymous private slots, or -1 */
	const bool *registered;		/* per VMA: its slot is in uffd */
	pid_t remote;			/* the restored process, 0: the slots are ours */
	int workers;			/* threads, ours included */
};
int rst__fill(const struct rst_fill_args *a, struct rst_times *t);
/* For tests: called by a fill worker before it starts task `task` of `nr_tasks` of
 * process `pid` (to truncate an image under a running restore, say). */
extern void (*eng__test_fill_hook)(pid_t pid, size_t task, size_t nr_tasks);

/* In hactl, tracing the new process at its final int3 stops. */
int rst__thread_finish(const struct rst_proc *p, size_t i, pid_t tid);

/*
 * A restore whose root is handed to a tracker before it runs (track-adopt.c): fn is
 * called once the root's memory is in place (filled, moved, its restorer unmapped) and
 * none of its threads has run an instruction of its own since, with the root as the
 * caller sees it, its images (p: vmas and page map) and a userfaultfd made in it, which
 * fn consumes. What fn returns is its own business: the restore goes on either way.
 */
struct rst_adopt {
	void (*fn)(void *arg, pid_t root, const struct rst_proc *p, int uffd);
	void *arg;
};
int eng__restore_adopt(const char *dir, const struct eng_restore_opts *opts, pid_t *pid, pid_t *root,
		       const struct rst_adopt *adopt);

#endif
