/*
 * eng_dump(): checkpoint a running process and every process below it (all their
 * threads) into an image directory. This file only sequences the stages; the tree is
 * found and written by pstree.c, each kind of state is collected and written by its
 * own files (task-dump.c and task-image.c, files-dump.c, mem-dump.c, mem-pages.c and
 * mem-precopy.c).
 *
 * DESIGN
 *
 *   SCAN --> PRECHECK --> PREPARE --> PRECOPY --> SEIZE --> RESCAN --> COLLECT --> INFECT --> COLLECT_INFECTED --> CURE
 *   tree     untouched    plan,       >= 32 MiB:   parents   same      ptrace,     parasite   sigactions, timers,    |
 *                         buffer      short stop,  first     tree?     /proc, fds, mapped     sigaltstacks, brk      |
 *                                     live copy      |                 pages                                         |
 *                                                    |<------------------- frozen ------------------------------------>|
 *     leave_running:  RELEASE --> WRITE --> COMMIT                                                         <--------+
 *     default:        WRITE --> COMMIT --> KILL --> RELEASE   (frozen until the kill)                      <--------+
 *
 *   tree changed (a process forked or exited since SCAN): RELEASE, start over; after
 *   TREE_TRIES times, freeze_first(): seize from the top down, then PRECHECK and
 *   PREPARE frozen, without pre-copy (a shell loop forks faster than we prepare).
 *   any failure:  ABORT (every image of this dump unlinked) + RELEASE (running, unharmed)
 *
 *   stage             function                      what it may refuse
 *   (once)            eng__pidns_resolve            a foreign pid namespace, orphans
 *                                                   under our init, SysV sem/msg
 *   SCAN              eng__tree_scan                (a zombie root)
 *                     eng__tree_check               a session led from outside the tree
 *   PRECHECK          eng__task_precheck            namespaces, tracer, stopped
 *                     eng__files_precheck           sockets, pipes, anon inodes, ttys...
 *                     eng__unix_precheck            unix peers outside the tree
 *   PREPARE           eng__mem_prepare              hugetlb, device memory...
 *                     eng__sysv_refuse_shared_ns    SysV shm of hacd's ipc namespace
 *   PRECOPY           eng__mem_precopy              (falls back if the kernel cannot track)
 *                     eng__mem_presnap              (smaps read now, maps when frozen)
 *   SEIZE             eng_seize each, seize_tree    (every thread of every process stopped)
 *   COLLECT           eng__task_collect, eng__files_collect, eng__mem_collect (each
 *                     process), eng__files_share (kcmp across them),
 *                     eng__unix_resolve       unix peers outside the tree, fds in flight
 *                     eng__shm_collect        shared objects; every SysV segment of
 *                                             the tree's own ipc namespace
 *   INFECT            eng_infect
 *   COLLECT_INFECTED  eng__task_collect_infected, eng__mem_collect_infected
 *   CURE              eng_cure
 *   WRITE             eng__files_write, eng__task_write, eng__mem_write (each process),
 *                     eng__files_write_table, eng__pstree_write
 *   COMMIT            commit_all, write_inventory   (queue order, inventory last)
 *   KILL              kill_tree
 *
 * A service hacd launched lives in pid, ipc, uts and mount namespaces of its own under
 * our init (pidns.c): the tree is the init's child and below, frozen and collected in our
 * ids like any other; then ids_inside() gives the images the ids the tree sees.
 *
 * Memory and fds are collected before the parasite goes in, so that neither its
 * mapping nor its socket is in the image. Zombies are only recorded (pstree.c).
 *
 * eng__dump_tracked() runs the same stages for a tracked target (track.c): the memory
 * stages of the root process then call the tracker's hooks (live rounds instead of
 * PRECOPY, its page map instead of pages-PID.img); its children are dumped as usual;
 * the tree is always left running.
 *
 * INVARIANTS
 * 1. inventory.img is committed last. A directory with inventory.img is complete; one
 *    without it is an interrupted dump (and a failed one is emptied).
 * 2. Without leave_running the tree is killed only after inventory.img is committed:
 *    a failed write leaves it running, not lost.
 * 3. Every path after a seize reaches eng_release() of every process seized.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dump.h"
#include "image.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "mm.pb-c.h"
#include "track.h"

#ifndef HACD_VERSION
#define HACD_VERSION "0.1.0"	/* CMake's project(VERSION) */
#endif

/* One process of the tree; zombies (tree.p[i].zombie) use none of it. */
struct dproc {
	struct eng_victim *v;
	struct eng__task_dump td;
	struct eng__files_dump fd;
	struct eng__mem_dump md;
};

struct dump {
	pid_t pid;
	const char *dir;
	int dirfd;
	bool created_dir;
	struct eng__tree tree;
	struct eng__pidns ns;	/* ns.init: the tree is our init's, in its namespaces */
	struct dproc *p;	/* p[i] is tree.p[i]'s */
	struct eng__imgq q;
	struct eng__shm_table shm;	/* shared memory objects of the whole tree */
	char (*done)[48];	/* committed images, unlinked on failure */
	int nr_done;
	struct eng_track *trk;	/* incremental: the root's pages go to its store */
	int old_policy;		/* ours before boost(), -1 when not boosted */
	struct sched_param old_param;
	uint64_t created_usec;
	struct timespec t0, t_freeze;
};

#define for_each_live(d, i) for (int i = 0; i < (d)->tree.n; i++) if (!(d)->tree.p[i].zombie)

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

/*
 * Every image synced, then every one renamed into place, then the directory synced
 * once: not fsync, rename, fsync of the directory for each in turn. On ext4 each fsync
 * is a journal commit, and a commit waits for whatever else was written meanwhile:
 * beside five builds a single small fsync here took up to 9.8 s, and a two-process
 * dump made 26 of them in a row. Synced together the files share one commit, the
 * renames another. Crash safety is the same: no image has its name before all of them
 * are on disk, and the inventory, written last, says whether the dump is complete.
 */
static int commit_all(struct dump *d)
{
	int ret = 0, n = d->q.n;
	void *p = n ? realloc(d->done, (d->nr_done + n) * sizeof(*d->done)) : d->done;

	if (n && !p)
		ret = -ENOMEM;
	else
		d->done = p;
	for (int i = 0; i < n && !ret; i++)
		ret = eng_img_sync(d->q.img[i]);
	for (int i = 0; i < n; i++) {
		struct eng_img *img = d->q.img[i];

		d->q.img[i] = NULL;
		if (ret) {
			eng_img_abort(img);
			continue;
		}
		snprintf(d->done[d->nr_done], sizeof(d->done[0]), "%s", eng_img_name(img));
		ret = eng_img_publish(img);
		if (!ret)
			d->nr_done++;
	}
	d->q.n = 0;
	if (!ret && n && (ret = ha_fsync_dir(d->dirfd)))
		ret = pr_errno(ret, "%s: fsync", d->dir);
	return ret;
}

static int write_inventory(struct dump *d)
{
	static const int parts[][2] = {
		{ IMG_VMA_KIND__VMA_VVAR, IMG_VDSO_PART__VDSO_PART_VVAR },
		{ IMG_VMA_KIND__VMA_VVAR_VCLOCK, IMG_VDSO_PART__VDSO_PART_VVAR_VCLOCK },
		{ IMG_VMA_KIND__VMA_VDSO, IMG_VDSO_PART__VDSO_PART_VDSO },
	};
	const struct eng__task_dump *td = &d->p[0].td;
	const struct eng__mem_dump *md = &d->p[0].md;
	ImgInventory inv = IMG_INVENTORY__INIT;
	ImgVdsoArea area[3], *ap[3];
	uint32_t *pids = calloc(d->tree.n, sizeof(*pids));
	struct utsname u;
	struct eng_img *img;
	int ret;

	if (!pids)
		return -ENOMEM;
	uname(&u);
	inv.has_img_version = inv.has_root_pid = inv.has_created_usec = 1;
	inv.img_version = ENG_IMG_VERSION;
	inv.hacd_version = HACD_VERSION;
	inv.root_pid = d->tree.inner ? d->tree.p[0].ipid : d->pid;
	for_each_live(d, i)
		pids[inv.n_pids++] = d->tree.inner ? d->tree.p[i].ipid : d->tree.p[i].pid;
	inv.pids = pids;
	inv.created_usec = d->created_usec;
	inv.kernel_release = u.release;
	/* The tree shares our uts namespace (eng__task_precheck), or its init's. */
	inv.hostname = d->ns.init ? d->ns.hostname : u.nodename;
	if (d->ns.init) {
		inv.has_pidns = inv.has_outer_root_pid = 1;
		inv.pidns = true;
		inv.outer_root_pid = d->pid;
	}
	inv.has_xcr0 = inv.has_xstate_size = inv.has_page_size = 1;
	inv.xcr0 = td->xcr0;
	inv.xstate_size = td->th[0].xstate_len;
	inv.page_size = ENG_PAGE_SIZE;
	for (int i = 0; i < md->nr_vmas; i++)
		for (int k = 0; k < 3; k++) {
			if (md->vmas[i].kind != parts[k][0] || inv.n_vdso == 3)
				continue;
			img_vdso_area__init(&area[inv.n_vdso]);
			area[inv.n_vdso].has_part = area[inv.n_vdso].has_start = area[inv.n_vdso].has_end = 1;
			area[inv.n_vdso].part = parts[k][1];
			area[inv.n_vdso].start = md->vmas[i].v.start;
			area[inv.n_vdso].end = md->vmas[i].v.end;
			ap[inv.n_vdso] = &area[inv.n_vdso];
			inv.n_vdso++;
		}
	inv.vdso = ap;
	inv.has_vdso_hash = md->has_vdso_hash;
	inv.vdso_hash = md->vdso_hash;
	ret = eng_img_create(d->dirfd, ENG_IMG_INVENTORY, 0, &img);
	if (!ret) {
		ret = eng_img_write(img, &inv.base);
		if (ret)
			eng_img_abort(img);
		else
			ret = commit_one(d, img);
	}
	free(pids);
	return ret;
}

static int write_all(struct dump *d)
{
	struct eng__files_dump **fds = calloc(d->tree.n, sizeof(*fds));
	struct eng__task_dump **tds = calloc(d->tree.n, sizeof(*tds));
	int nr_fds = 0, ret = fds && tds ? 0 : -ENOMEM;

	for_each_live(d, i) {
		struct dproc *p = &d->p[i];

		fds[nr_fds++] = &p->fd;
		tds[i] = &p->td;
		if (!ret)
			ret = eng__files_write(p->td.pid, d->dirfd, &p->fd, &d->q);
		if (!ret)
			ret = eng__task_write(d->dirfd, &p->td, &d->q);
		if (!ret)
			ret = eng__mem_write(d->dirfd, &p->md, &d->q);
	}
	if (!ret)
		ret = eng__shm_write(d->dirfd, &d->shm, &d->q);
	if (!ret)
		ret = eng__files_write_table(d->dirfd, fds, nr_fds, &d->q);
	if (!ret)
		ret = eng__pstree_write(d->dirfd, &d->tree, tds, &d->q);
	free(fds);
	free(tds);
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

/* Every process at once first, so that none sees another die and reacts. */
static void kill_tree(struct dump *d)
{
	for_each_live(d, i)
		if (d->p[i].v && kill(d->p[i].v->pid, SIGKILL))
			pr_warn("pid %d: SIGKILL: %s", d->p[i].v->pid, strerror(errno));
	for_each_live(d, i)
		if (d->p[i].v)
			kill_victim(d->p[i].v);
}

static void release_tree(struct dump *d)
{
	/* Children first: a parent let go first could see a stopped child and react. */
	for (int i = d->tree.n - 1; i >= 0 && d->p; i--) {
		eng_release(d->p[i].v);
		d->p[i].v = NULL;
	}
}

/*
 * Seize every process, parents first, then check that the tree we prepared is the one
 * we hold: -EAGAIN (nothing logged) when it changed, and the caller starts over.
 */
static int seize_tree(struct dump *d)
{
	struct eng__tree now;
	bool same;
	int ret = 0;

	for_each_live(d, i)
		if (!ret)
			ret = eng_seize(d->tree.p[i].pid, &d->p[i].v);
	eng__tmark("seize");
	/* A process that exited (or forked) since the scan explains a failed seize too. */
	if (eng__tree_scan(d->pid, &now))
		return ret ? ret : -ESRCH;
	eng__tmark("rescan");
	same = eng__tree_same(&d->tree, &now);
	eng__tree_free(&now);
	return same ? ret : -EAGAIN;
}

static int collect_one(struct dump *d, struct dproc *p, uint32_t id_base)
{
	pid_t pid = p->v->pid;
	int ret = eng__task_collect(p->v, &p->td);

	if (!ret)
		ret = fail_here("frozen");
	if (!ret)
		ret = eng__files_collect(pid, d->dirfd, id_base, &p->fd);
	eng__tmark("files");
	pr_debug("pid %d: task and files collected at %lu us", pid, (unsigned long)us_since(&d->t_freeze));
	if (!ret)
		ret = eng__mem_collect(p->v, &p->md);
	pr_debug("pid %d: collected, %zu bytes of pages copied, at %lu us", pid, p->md.buf_used,
		 (unsigned long)us_since(&d->t_freeze));
	return ret;
}

static int infect_one(struct dproc *p)
{
	int ret;

	/* The vdso was read frozen already (its hash): spares eng_infect a read of maps. */
	for (int i = 0; i < p->md.nr_vmas && p->md.has_vdso_hash; i++)
		if (p->md.vmas[i].kind == IMG_VMA_KIND__VMA_VDSO)
			eng__syscall_ip_hint(p->v, p->md.vmas[i].v.start,
					     p->md.vmas[i].v.end - p->md.vmas[i].v.start, p->md.vdso_hash);
	ret = eng_infect(p->v);

	if (!ret)
		ret = fail_here("infected");
	if (!ret)
		ret = eng__task_collect_infected(p->v, &p->td);
	if (!ret)
		ret = eng__mem_collect_infected(p->v, &p->md);
	if (!ret)
		ret = eng_cure(p->v);
	eng__tmark("cure");
	return ret;
}

static int alloc_procs(struct dump *d)
{
	d->p = calloc(d->tree.n ? d->tree.n : 1, sizeof(*d->p));
	if (!d->p)
		return -ENOMEM;
	for (int i = 0; i < d->tree.n; i++)
		d->p[i].md.pc.uffd = -1;	/* eng__mem_free closes it */
	return 0;
}

/* Shared memory objects, once the whole tree is collected (shmem.c). */
static int collect_shm(struct dump *d, struct eng__files_dump **fds, int nr_fds)
{
	struct eng__mem_dump **md = calloc(nr_fds + 1, sizeof(*md));
	int n = 0, ret;

	if (!md)
		return -ENOMEM;
	for_each_live(d, i)
		md[n++] = &d->p[i].md;
	ret = eng__shm_collect(&d->shm, md, fds, n, d->ns.init);
	free(md);
	return ret;
}

/* Collect from a frozen tree; the frozen part. */
static int collect_tree(struct dump *d)
{
	struct eng__files_dump **fds = calloc(d->tree.n > 0 ? d->tree.n : 1, sizeof(*fds));
	uint32_t id_base = 0;
	int nr_fds = 0, ret = 0;

	if (!fds)
		return -ENOMEM;
	for_each_live(d, i) {
		if (!ret)
			ret = collect_one(d, &d->p[i], id_base);
		id_base += d->p[i].fd.nr_files;
		fds[nr_fds++] = &d->p[i].fd;
	}
	if (!ret)
		ret = eng__files_share(fds, nr_fds);
	if (!ret)
		ret = eng__unix_resolve(fds, nr_fds);
	if (!ret)
		ret = collect_shm(d, fds, nr_fds);
	eng__tmark("share");
	free(fds);
	for_each_live(d, i)
		if (!ret)
			ret = infect_one(&d->p[i]);
	return ret;
}

/*
 * A tree in our init's pid namespace: what was collected names processes and threads
 * by our ids; the images get the ones the tree sees (pidns.c), so that restore gives
 * them back inside a new namespace. Nothing reads /proc by pid after this.
 */
static int ids_inside(struct dump *d)
{
	const struct eng__tree *t = &d->tree;

	for_each_live(d, i) {
		struct dproc *p = &d->p[i];
		struct eng__task_dump *td = &p->td;
		pid_t in = t->p[i].ipid;

		td->pid = p->fd.pid = p->md.pid = in;
		for (int k = 0; k < td->nr_threads; k++) {
			pid_t tid = eng__tree_inner_id(t, td->th[k].tid);

			if (!tid)
				return pr_errno(-ESRCH, "pid %d: thread %d has no id in its pid namespace",
						t->p[i].pid, td->th[k].tid);
			td->th[k].tid = tid;
		}
		for (int k = 0; k < td->nr_timers; k++) {
			struct eng__ptimer *pt = &td->timers[k].t;
			pid_t to = eng__tree_inner_id(t, pt->notify_pid);

			if (!(pt->notify & SIGEV_THREAD_ID))
				continue;
			if (!to)
				return pr_errno(-ESRCH, "pid %d: POSIX timer %d signals thread %d, which is not its own",
						t->p[i].pid, pt->id, pt->notify_pid);
			pt->notify_pid = to;
		}
	}
	return 0;
}

/* The frozen part, however the tree was frozen. */
static int collect_frozen(struct dump *d)
{
	int ret = 0;

	for (int i = 0; i < d->tree.n; i++)
		if (!ret && d->ns.init)
			ret = eng__tree_inner(&d->tree, i, d->tree.p[i].zombie ? NULL : d->p[i].v);
	if (d->ns.init)
		eng__tmark("ns-ids");
	if (!ret)
		ret = collect_tree(d);
	if (!ret && d->ns.init)
		ret = ids_inside(d);
	return ret;
}

/*
 * While the tree is stopped, every microsecond we spend waiting for a CPU is pause: on
 * a busy machine a normal-priority dumper is preempted again and again between its
 * ~300 /proc reads and ptrace calls (measured here at load 6 on 2 cores: 2.4 ms of
 * wall time for 185 us of our CPU in the infect step alone). So the calling thread
 * runs SCHED_FIFO (priority 1, the lowest real-time one) from the freeze to the
 * release, and back to what it was at once after. Bounded work only: the images are
 * written after unboost(), and the kernel's RT throttling keeps 5% of each CPU for
 * the others whatever happens. The copy threads of mem-pages.c inherit it and end
 * with the freeze. Without CAP_SYS_NICE it is quietly not done.
 * HA_FREEZE_RT=0 turns it off (the bench compares).
 */
static void boost(struct dump *d)
{
	struct sched_param sp = { .sched_priority = 1 };
	const char *e = getenv("HA_FREEZE_RT");

	d->old_policy = -1;
	if ((e && !strcmp(e, "0")) || sched_getparam(0, &d->old_param))
		return;
	d->old_policy = sched_getscheduler(0);
	if (d->old_policy < 0 || d->old_policy == SCHED_FIFO || d->old_policy == SCHED_RR ||
	    sched_setscheduler(0, SCHED_FIFO, &sp)) {
		pr_debug("pid %d: the freeze runs at our normal priority (%s)", d->pid,
			 d->old_policy < 0 ? strerror(errno) : d->old_policy == SCHED_FIFO ||
			 d->old_policy == SCHED_RR ? "already real-time" : strerror(errno));
		d->old_policy = -1;
	}
}

static void unboost(struct dump *d)
{
	if (d->old_policy < 0)
		return;
	if (sched_setscheduler(0, d->old_policy, &d->old_param))
		pr_warn("pid %d: back to our scheduling policy %d: %s", d->pid, d->old_policy,
			strerror(errno));
	d->old_policy = -1;
}

static void mark_freeze(struct dump *d)
{
	struct timespec rt;

	clock_gettime(CLOCK_MONOTONIC, &d->t_freeze);
	eng__tmarks_reset();
	clock_gettime(CLOCK_REALTIME, &rt);
	d->created_usec = rt.tv_sec * 1000000ull + rt.tv_nsec / 1000;
}

/* Seize and collect a tree prepared while it ran. */
static int freeze_and_collect(struct dump *d)
{
	int ret;

	boost(d);
	mark_freeze(d);
	ret = seize_tree(d);
	pr_debug("pid %d: %d processes seized in %lu us", d->pid, d->tree.n,
		 (unsigned long)us_since(&d->t_freeze));
	return ret ? ret : collect_frozen(d);
}

/*
 * For a tree that forks and exits faster than it can be prepared running (a shell
 * loop): freeze it from the top first, and prepare it frozen, without pre-copy. A
 * stopped parent cannot fork, and a child of it that exits stays its zombie, so the
 * walk is exact: each process is seized before its children are listed.
 */
static int freeze_first(struct dump *d)
{
	struct eng_victim **v = NULL;
	int ret;

	boost(d);
	mark_freeze(d);
	ret = eng__tree_add_root(&d->tree, d->pid);
	for (int i = 0; !ret && i < d->tree.n; i++) {
		void *p = realloc(v, d->tree.cap * sizeof(*v));

		if (!p) {
			ret = -ENOMEM;
			break;
		}
		v = p;
		v[i] = NULL;
		if (d->tree.p[i].zombie)
			continue;
		ret = eng_seize(d->tree.p[i].pid, &v[i]);
		/* Exited between the listing and the seize: its parent holds its zombie. */
		if (ret && i && !eng__tree_restat(&d->tree, i) && d->tree.p[i].zombie)
			ret = 0;
		if (!ret && !d->tree.p[i].zombie)
			ret = eng__tree_add_children(&d->tree, i);
	}
	if (alloc_procs(d))
		ret = -ENOMEM;
	for (int i = 0; v && i < d->tree.n; i++) {
		if (d->p)
			d->p[i].v = v[i];
		else
			eng_release(v[i]);
	}
	free(v);
	if (!ret && d->tree.p[0].zombie)
		ret = pr_errno(-ESRCH, "pid %d is a zombie", d->pid);
	if (!ret)
		ret = eng__tree_check(&d->tree);
	for_each_live(d, i) {
		pid_t pid = d->tree.p[i].pid;

		if (!ret)
			ret = eng__task_precheck(pid, true, d->ns.init);
		if (!ret)
			ret = eng__files_precheck(pid);
		if (!ret)
			ret = eng__mem_prepare(pid, &d->p[i].md, i ? NULL : d->trk);
		if (!ret && !d->ns.init)
			ret = eng__sysv_refuse_shared_ns(&d->p[i].md);
	}
	if (!ret && d->dirfd < 0)
		ret = open_dir(d);
	pr_debug("pid %d: %d processes seized and prepared in %lu us", d->pid, d->tree.n,
		 (unsigned long)us_since(&d->t_freeze));
	return ret ? ret : collect_frozen(d);
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

/* Everything collected about the processes (first: ghosts still being written are
 * temp files in the directory). */
static void free_procs(struct dump *d)
{
	for (int i = 0; i < d->tree.n && d->p; i++) {
		eng__files_free(&d->p[i].fd);
		eng__task_free(&d->p[i].td);
		eng__mem_free(&d->p[i].md);
	}
	free(d->p);
	d->p = NULL;
	eng__shm_free(&d->shm);
	eng__tree_free(&d->tree);
}

#define PF_EXITING_ 0x4

/*
 * A process caught in the middle of its exit (its memory already gone, so that its
 * maps read empty) is not a zombie yet, and may stay so for long on a loaded machine:
 * wait until it is one (its pidfd polls readable then), at most 2 s. Whether one was.
 */
static bool wait_exiting(struct dump *d)
{
	bool any = false;

	for_each_live(d, i) {
		struct eng__stat st;
		struct pollfd p = { .events = POLLIN };
		int r;

		eng__log_quiet(true);	/* gone already is fine */
		r = eng__parse_stat(d->tree.p[i].pid, 0, &st);
		eng__log_quiet(false);
		if (r || !(st.flags & PF_EXITING_))
			continue;
		any = true;
		p.fd = syscall(SYS_pidfd_open, d->tree.p[i].pid, 0);
		if (p.fd < 0)
			continue;	/* gone already */
		pr_debug("pid %d is exiting: waiting for it", d->tree.p[i].pid);
		poll(&p, 1, 2000);
		close(p.fd);
	}
	return any;
}

/* A failure explained by a process of the tree exiting (or forking) meanwhile is
 * -EAGAIN: the caller starts over. */
static int tree_moved(struct dump *d, int ret)
{
	struct eng__tree now;
	bool same;

	if (!ret)
		return ret;
	/* A process caught in the middle of its exit fails our reads but is not a zombie
	 * yet: give it the moment it needs to become one. */
	if (!wait_exiting(d))
		usleep(2000);
	if (eng__tree_scan(d->pid, &now))
		return ret;
	same = eng__tree_same(&d->tree, &now);
	eng__tree_free(&now);
	return same ? ret : -EAGAIN;
}

/* Before seizing: the tree, what each process holds, buffers, pre-copy. */
static int prepare(struct dump *d, const struct eng_dump_opts *opts, struct eng_dump_stats *st)
{
	int ret = eng__tree_scan(d->pid, &d->tree);

	if (ret)
		return ret;
	if (d->tree.p[0].zombie)
		return pr_err("pid %d is a zombie", d->pid), -ESRCH;
	ret = alloc_procs(d);
	if (!ret)
		ret = eng__tree_check(&d->tree);
	if (ret)
		return ret;
	for_each_live(d, i) {
		pid_t pid = d->tree.p[i].pid;

		if (!ret)
			ret = eng__task_precheck(pid, false, d->ns.init);
		if (!ret)
			ret = eng__files_precheck(pid);
		if (!ret)
			ret = eng__mem_prepare(pid, &d->p[i].md, i ? NULL : d->trk);
		if (!ret && !d->ns.init)
			ret = eng__sysv_refuse_shared_ns(&d->p[i].md);
		pr_debug("pid %d: prepared in %lu us (%zu MiB buffer)", pid, (unsigned long)us_since(&d->t0),
			 d->p[i].md.buf_cap >> 20);
	}
	if (!ret)
		ret = eng__unix_precheck(&d->tree);
	ret = tree_moved(d, ret);
	if (!ret && d->dirfd < 0)
		ret = open_dir(d);
	for_each_live(d, i) {
		if (!ret && (!opts || opts->precopy != ENG_PRECOPY_NEVER))
			ret = eng__mem_precopy(d->tree.p[i].pid, &d->p[i].md,
					       opts && opts->precopy == ENG_PRECOPY_ALWAYS);
		st->arm_us += d->p[i].md.pc.arm_us;
	}
	if (!ret)
		ret = fail_here("precopied");
	for_each_live(d, i)
		if (!ret)
			ret = eng__mem_presnap(d->tree.p[i].pid, &d->p[i].md);
	return tree_moved(d, ret);
}

/* Prepared while running this many times, then frozen first (at most FROZEN_TRIES). */
#define TREE_TRIES 3
#define FROZEN_TRIES 5

static int run(struct dump *d, const struct eng_dump_opts *opts, struct eng_dump_stats *st)
{
	bool leave = opts && opts->leave_running;
	int ret = -EAGAIN;

	for (int tries = 0; tries < TREE_TRIES + FROZEN_TRIES && ret == -EAGAIN; tries++) {
		if (tries) {
			release_tree(d);
			unboost(d);
			free_procs(d);
			st->arm_us = 0;
			pr_debug("pid %d: the tree changed while we froze it, again", d->pid);
		}
		if (tries < TREE_TRIES) {
			ret = prepare(d, opts, st);
			if (!ret)
				ret = tree_moved(d, freeze_and_collect(d));
		} else {
			/* A child caught exiting cannot be stopped: once it is a zombie (or
			 * gone), the tree reads differently and is taken again. */
			ret = tree_moved(d, freeze_first(d));
		}
	}
	if (ret == -EAGAIN)
		pr_err("pid %d: its process tree kept changing while it was being frozen", d->pid);
	st->collect_us = us_since(&d->t_freeze);
	if (!ret && leave) {
		release_tree(d);
		st->frozen_us = us_since(&d->t_freeze);
		eng__tmark("release");
	}
	unboost(d);	/* the writes below are unbounded work */
	eng__tmarks_take(&st->steps);
	eng__tmarks_print(d->pid);
	if (!ret)
		ret = write_all(d);
	if (!ret && !leave) {
		kill_tree(d);
		st->frozen_us = us_since(&d->t_freeze);
	}
	release_tree(d);	/* invariant 3; running again unless killed */
	for_each_live(d, i) {
		if (!d->p)	/* refused before anything was prepared (a zombie root) */
			break;
		st->pages_scanned += d->p[i].md.pages_scanned;
		st->pages_written += d->p[i].md.pages_written;
		st->pages_zero += d->p[i].md.pages_zero;
		st->pages_precopied += d->p[i].md.pc.pages_reused;
	}
	st->bytes_written = images_size(d);
	return ret;
}

static int dump_main(pid_t pid, const char *dir, const struct eng_dump_opts *opts, struct eng_track *trk,
		     struct eng_dump_stats *st)
{
	struct eng_dump_stats local;
	struct dump d = { .pid = pid, .dir = dir, .dirfd = -1, .trk = trk, .old_policy = -1 };
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &d.t0);
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (pid <= 0 || pid == getpid())
		return pr_errno(-EINVAL, "pid %d: cannot dump that process", pid);
	ret = eng__pidns_resolve(pid, &d.ns);
	if (ret)
		return ret;
	d.pid = d.ns.root;
	ret = run(&d, opts, st);
	free_procs(&d);
	if (ret && d.dirfd >= 0)
		abort_images(&d);
	free(d.q.img);
	free(d.done);
	if (d.dirfd >= 0)
		close(d.dirfd);
	st->total_us = us_since(&d.t0);
	return ret;
}

int eng_dump(pid_t pid, const char *dir, const struct eng_dump_opts *opts, struct eng_dump_stats *st)
{
	eng__clear_error();
	return dump_main(pid, dir, opts, NULL, st);
}

int eng__dump_tracked(struct eng_track *t, const char *dir, struct eng_dump_stats *st)
{
	struct eng_dump_opts o = { .leave_running = true, .precopy = ENG_PRECOPY_ALWAYS };

	return dump_main(t->pid, dir, &o, t, st);
}
