/*
 * Restore internals: the images of one process, loaded and checked in full before any
 * process is created, and the stages that use them (rst-*.c).
 */
#ifndef HA_ENGINE_RESTORE_H
#define HA_ENGINE_RESTORE_H

#include <stddef.h>
#include <sys/types.h>

#include "core.pb-c.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "ha/parasite.h"

struct eng_img;

struct rst_proc {
	pid_t pid;
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

struct rst_ctx {
	int dirfd;
	ImgInventory *inv;
	ImgFile **files;
	size_t nr_files;
	struct rst_proc proc;

	/* Filled in the new process by rst-mem.c for the restorer. */
	unsigned long region, region_len;	/* the restorer and its args */
	unsigned long rsv, rsv_len;		/* everything we premapped */
	struct rst_args *args;
};

int rst__load(struct rst_ctx *c, const char *dir);
void rst__free(struct rst_ctx *c);

/* In the new process, before the point of no return. Return 0 or -errno (logged). */
int rst__files(struct rst_ctx *c, int *keep_fds, int nr_keep);
int rst__task_prepare(struct rst_ctx *c);
int rst__mem_prepare(struct rst_ctx *c);
/* Jump into the restorer: never returns. */
void rst__mem_jump(struct rst_ctx *c) __attribute__((noreturn));

/* In hactl, tracing the new process at its final int3 stops. */
int rst__thread_finish(struct rst_ctx *c, size_t i, pid_t tid);

#endif
