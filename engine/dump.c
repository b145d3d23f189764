/*
 * eng_dump(): checkpoint one running process, all its threads, into an image directory.
 * This file only sequences the stages; each kind of state is collected and written by
 * its own files (task-dump.c and task-image.c, files-dump.c, mem-dump.c, mem-pages.c
 * and mem-precopy.c).
 *
 * DESIGN
 *
 *   PRECHECK --> PREPARE --> PRECOPY --> SEIZE --> COLLECT --> INFECT --> COLLECT_INFECTED --> CURE
 *   untouched    plan,       >= 32 MiB:    |       ptrace,     parasite   sigactions, timers,    |
 *                buffer      short stop,   |       /proc, fds, mapped     sigaltstacks, brk      |
 *                            live copy     |       pages                                         |
 *                                          |<------------------- frozen ------------------------>|
 *                                                                                                |
 *     leave_running:  RELEASE --> WRITE --> COMMIT                                      <--------+
 *     default:        WRITE --> COMMIT --> KILL --> RELEASE   (frozen until the kill)   <--------+
 *
 *   any failure:  ABORT (every image of this dump unlinked) + RELEASE (running, unharmed)
 *
 *   stage             function                      what it may refuse
 *   PRECHECK          eng__task_precheck            namespaces, tracer, stopped, zombie
 *                     eng__files_precheck           sockets, pipes, anon inodes, ttys...
 *   PREPARE           eng__mem_prepare              SysV shm, hugetlb, device memory...
 *   PRECOPY           eng__mem_precopy              (falls back if the kernel cannot track)
 *                     eng__mem_presnap              (smaps read now, maps when frozen)
 *   SEIZE             eng_seize                     (every thread stopped)
 *   COLLECT           eng__task_collect, eng__files_collect, eng__mem_collect
 *   INFECT            eng_infect
 *   COLLECT_INFECTED  eng__task_collect_infected, eng__mem_collect_infected
 *   CURE              eng_cure
 *   WRITE             eng__files_write, eng__task_write, eng__mem_write
 *   COMMIT            commit_all, write_inventory   (queue order, inventory last)
 *   KILL              kill_victim
 *
 * Memory and fds are collected before the parasite goes in, so that neither its
 * mapping nor its socket is in the image.
 *
 * INVARIANTS
 * 1. Images are committed in this order: ghosts, files, fds, core, pstree, mm,
 *    pagemap, pages, inventory. A directory with inventory.img is complete; one
 *    without it is an interrupted dump (and a failed one is emptied).
 * 2. Without leave_running the process is killed only after inventory.img is
 *    committed: a failed write leaves it running, not lost.
 * 3. Every path after eng_seize() reaches eng_release().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dump.h"
#include "image.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "mm.pb-c.h"

#ifndef HACD_VERSION
#define HACD_VERSION "0.1.0"	/* CMake's project(VERSION) */
#endif

struct dump {
	pid_t pid;
	const char *dir;
	int dirfd;
	bool created_dir;
	struct eng_victim *v;
	struct eng__imgq q;
	char (*done)[48];	/* committed images, unlinked on failure */
	int nr_done;
	struct eng__task_dump td;
	struct eng__files_dump fd;
	struct eng__mem_dump md;
	uint64_t created_usec;
	struct timespec t0, t_freeze;
};

/* For tests: fail on purpose at a stage (HA_TEST_DUMP_FAIL=precopied|frozen|infected|
 * written|committed), to show that every way out releases the process and leaves no
 * image (nor a userfaultfd registration). */
static int fail_here(const char *stage)
{
	const char *s = getenv("HA_TEST_DUMP_FAIL");

	if (!s || strcmp(s, stage))
		return 0;
	pr_err("failing at stage '%s' on purpose (HA_TEST_DUMP_FAIL)", stage);
	return -ECANCELED;
}

static uint64_t us_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1000000ull + (b.tv_nsec - a->tv_nsec) / 1000;
}

int eng__imgq_add(struct eng__imgq *q, struct eng_img *img)
{
	if (q->n == q->cap) {
		int cap = q->cap ? q->cap * 2 : 16;
		void *p = realloc(q->img, cap * sizeof(*q->img));

		if (!p) {
			eng_img_abort(img);
			return -ENOMEM;
		}
		q->img = p;
		q->cap = cap;
	}
	q->img[q->n++] = img;
	return 0;
}

/* The directory: made 0700 if missing; an existing one must hold nothing, so that
 * every file in it after the dump is this dump's. */
static int open_dir(struct dump *d)
{
	struct stat st;
	struct dirent *de;
	DIR *dir;
	int fd;

	d->created_dir = stat(d->dir, &st) && errno == ENOENT;
	d->dirfd = ha_dir_open(d->dir, true);
	if (d->dirfd < 0)
		return d->dirfd;
	fd = dup(d->dirfd);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return pr_errno(-errno, "%s: reading the directory", d->dir);
	}
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			closedir(dir);
			return pr_errno(-EEXIST, "%s: not empty (holds %s): dump into a new directory",
					d->dir, de->d_name);
		}
	closedir(dir);
	return 0;
}

static int commit_one(struct dump *d, struct eng_img *img)
{
	void *p = realloc(d->done, (d->nr_done + 1) * sizeof(*d->done));
	int ret;

	if (!p) {
		eng_img_abort(img);
		return -ENOMEM;
	}
	d->done = p;
	snprintf(d->done[d->nr_done], sizeof(d->done[0]), "%s", eng_img_name(img));
	ret = eng_img_commit(img);
	if (!ret)
		d->nr_done++;
	return ret;
}

static int commit_all(struct dump *d)
{
	int ret = 0;

	for (int i = 0; i < d->q.n; i++) {
		struct eng_img *img = d->q.img[i];

		d->q.img[i] = NULL;
		if (ret)
			eng_img_abort(img);
		else
			ret = commit_one(d, img);
	}
	d->q.n = 0;
	return ret;
}

static int write_inventory(struct dump *d)
{
	static const int parts[][2] = {
		{ IMG_VMA_KIND__VMA_VVAR, IMG_VDSO_PART__VDSO_PART_VVAR },
		{ IMG_VMA_KIND__VMA_VVAR_VCLOCK, IMG_VDSO_PART__VDSO_PART_VVAR_VCLOCK },
		{ IMG_VMA_KIND__VMA_VDSO, IMG_VDSO_PART__VDSO_PART_VDSO },
	};
	ImgInventory inv = IMG_INVENTORY__INIT;
	ImgVdsoArea area[3], *ap[3];
	uint32_t pid = d->pid;
	struct utsname u;
	struct eng_img *img;
	int ret;

	uname(&u);
	inv.has_img_version = inv.has_root_pid = inv.has_created_usec = 1;
	inv.img_version = ENG_IMG_VERSION;
	inv.hacd_version = HACD_VERSION;
	inv.root_pid = pid;
	inv.n_pids = 1;
	inv.pids = &pid;
	inv.created_usec = d->created_usec;
	inv.kernel_release = u.release;
	inv.has_xcr0 = inv.has_xstate_size = inv.has_page_size = 1;
	inv.xcr0 = d->td.xcr0;
	inv.xstate_size = d->td.th[0].xstate_len;
	inv.page_size = ENG_PAGE_SIZE;
	for (int i = 0; i < d->md.nr_vmas; i++)
		for (int k = 0; k < 3; k++) {
			if (d->md.vmas[i].kind != parts[k][0] || inv.n_vdso == 3)
				continue;
			img_vdso_area__init(&area[inv.n_vdso]);
			area[inv.n_vdso].has_part = area[inv.n_vdso].has_start = area[inv.n_vdso].has_end = 1;
			area[inv.n_vdso].part = parts[k][1];
			area[inv.n_vdso].start = d->md.vmas[i].v.start;
			area[inv.n_vdso].end = d->md.vmas[i].v.end;
			ap[inv.n_vdso] = &area[inv.n_vdso];
			inv.n_vdso++;
		}
	inv.vdso = ap;
	inv.has_vdso_hash = d->md.has_vdso_hash;
	inv.vdso_hash = d->md.vdso_hash;
	ret = eng_img_create(d->dirfd, ENG_IMG_INVENTORY, 0, &img);
	if (ret)
		return ret;
	ret = eng_img_write(img, &inv.base);
	if (ret) {
		eng_img_abort(img);
		return ret;
	}
	return commit_one(d, img);
}

static int write_all(struct dump *d)
{
	struct eng__files_dump *fds = &d->fd;
	int ret = eng__files_write(d->pid, d->dirfd, &d->fd, &d->q);

	if (!ret)
		ret = eng__files_write_table(d->dirfd, &fds, 1, &d->q);
	if (!ret)
		ret = eng__task_write(d->dirfd, &d->td, &d->q);
	if (!ret)
		ret = eng__mem_write(d->dirfd, &d->md, &d->q);
	pr_debug("pid %d: images written at %lu us", d->pid, (unsigned long)us_since(&d->t_freeze));
	if (!ret)
		ret = fail_here("written");
	if (!ret)
		ret = commit_all(d);
	if (!ret)
		ret = fail_here("committed");
	if (!ret)
		ret = write_inventory(d);
	pr_debug("pid %d: images committed at %lu us", d->pid, (unsigned long)us_since(&d->t_freeze));
	return ret;
}

/*
 * SIGKILL a process we hold stopped, and wait for each thread's death as its tracer, so
 * that nothing of it runs or lingers once we return. Threads first: a leader's exit is
 * reported only after the rest of its group is gone. The leader is waited for only when
 * it is not our own child: for a child, that wait would reap it from under its parent
 * (the caller). Nothing is left to put back in a dead thread.
 */
static void kill_victim(struct eng_victim *v)
{
	bool child = false;
	struct eng__stat st;

	if (!eng__parse_stat(v->pid, 0, &st))
		child = st.ppid == getpid();
	if (kill(v->pid, SIGKILL))
		pr_warn("pid %d: SIGKILL: %s", v->pid, strerror(errno));
	for (int k = 1; k <= v->nr_threads; k++) {
		int i = k % v->nr_threads;	/* th[0], the leader, last */

		v->th[i].dirty = false;
		if (i == 0 && child)
			continue;
		for (int tries = 0; tries < 10000; tries++) {
			int s;
			pid_t r = waitpid(v->th[i].tid, &s, __WALL | WNOHANG);

			if (r < 0 || (r > 0 && (WIFEXITED(s) || WIFSIGNALED(s))))
				break;
			usleep(1000);
		}
	}
}

/* Seize and collect; the frozen part. */
static int freeze_and_collect(struct dump *d)
{
	struct timespec rt;
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &d->t_freeze);
	clock_gettime(CLOCK_REALTIME, &rt);
	d->created_usec = rt.tv_sec * 1000000ull + rt.tv_nsec / 1000;
	ret = eng_seize(d->pid, &d->v);
	if (ret)
		return ret;
	pr_debug("pid %d: %d threads seized in %lu us", d->pid, d->v->nr_threads,
		 (unsigned long)us_since(&d->t_freeze));
	ret = eng__task_collect(d->v, &d->td);
	if (!ret)
		ret = fail_here("frozen");
	if (!ret)
		ret = eng__files_collect(d->pid, d->dirfd, 0, &d->fd);
	pr_debug("pid %d: task and files collected at %lu us", d->pid, (unsigned long)us_since(&d->t_freeze));
	if (!ret)
		ret = eng__mem_collect(d->v, &d->md);
	pr_debug("pid %d: collected, %zu bytes of pages copied, at %lu us", d->pid, d->md.buf_used,
		 (unsigned long)us_since(&d->t_freeze));
	if (!ret)
		ret = eng_infect(d->v);
	if (!ret)
		ret = fail_here("infected");
	if (!ret)
		ret = eng__task_collect_infected(d->v, &d->td);
	if (!ret)
		ret = eng__mem_collect_infected(d->v, &d->md);
	if (!ret)
		ret = eng_cure(d->v);
	return ret;
}

/* A failed dump leaves no image behind (nor the directory, if it made it). */
static void abort_images(struct dump *d)
{
	for (int i = 0; i < d->q.n; i++)
		eng_img_abort(d->q.img[i]);
	d->q.n = 0;
	for (int i = 0; i < d->nr_done; i++)
		if (unlinkat(d->dirfd, d->done[i], 0))
			pr_warn("%s/%s: unlink: %s", d->dir, d->done[i], strerror(errno));
	if (d->nr_done)
		ha_fsync_dir(d->dirfd);
	if (d->created_dir && rmdir(d->dir))
		pr_warn("%s: rmdir: %s", d->dir, strerror(errno));
}

static uint64_t images_size(struct dump *d)
{
	uint64_t sum = 0;
	struct stat st;

	for (int i = 0; i < d->nr_done; i++)
		if (!fstatat(d->dirfd, d->done[i], &st, 0))
			sum += st.st_size;
	return sum;
}

static int run(struct dump *d, const struct eng_dump_opts *opts, struct eng_dump_stats *st)
{
	bool leave = opts && opts->leave_running;
	int ret;

	ret = eng__task_precheck(d->pid);
	if (!ret)
		ret = eng__files_precheck(d->pid);
	if (!ret)
		ret = eng__mem_prepare(d->pid, &d->md);
	pr_debug("pid %d: prepared in %lu us (%zu MiB buffer)", d->pid, (unsigned long)us_since(&d->t0),
		 d->md.buf_cap >> 20);
	if (!ret)
		ret = open_dir(d);
	if (!ret && (!opts || opts->precopy != ENG_PRECOPY_NEVER))
		ret = eng__mem_precopy(d->pid, &d->md, opts && opts->precopy == ENG_PRECOPY_ALWAYS);
	st->arm_us = d->md.pc.arm_us;
	if (!ret)
		ret = fail_here("precopied");
	if (!ret)
		ret = eng__mem_presnap(d->pid, &d->md);
	if (ret)
		return ret;
	ret = freeze_and_collect(d);
	st->collect_us = us_since(&d->t_freeze);
	if (!ret && leave) {
		eng_release(d->v);
		d->v = NULL;
		st->frozen_us = us_since(&d->t_freeze);
	}
	if (!ret)
		ret = write_all(d);
	if (!ret && !leave) {
		kill_victim(d->v);
		st->frozen_us = us_since(&d->t_freeze);
	}
	eng_release(d->v);	/* invariant 3; running again unless killed */
	d->v = NULL;
	st->pages_scanned = d->md.pages_scanned;
	st->pages_written = d->md.pages_written;
	st->pages_zero = d->md.pages_zero;
	st->pages_precopied = d->md.pc.pages_reused;
	st->bytes_written = images_size(d);
	return ret;
}

int eng_dump(pid_t pid, const char *dir, const struct eng_dump_opts *opts, struct eng_dump_stats *st)
{
	struct eng_dump_stats local;
	struct dump d = { .pid = pid, .dir = dir, .dirfd = -1 };
	int ret;

	eng__clear_error();
	clock_gettime(CLOCK_MONOTONIC, &d.t0);
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (pid <= 0 || pid == getpid())
		return pr_errno(-EINVAL, "pid %d: cannot dump that process", pid);
	ret = run(&d, opts, st);
	/* First: ghosts still being written are temp files in the directory. */
	eng__files_free(&d.fd);
	eng__task_free(&d.td);
	eng__mem_free(&d.md);
	if (ret && d.dirfd >= 0)
		abort_images(&d);
	free(d.q.img);
	free(d.done);
	if (d.dirfd >= 0)
		close(d.dirfd);
	st->total_us = us_since(&d.t0);
	return ret;
}
