/*
 * Dumping an address space: which mappings there are, what each is (ImgVma), where its
 * contents must come from, and the mm_struct fields PR_SET_MM_MAP needs (ImgMm).
 * The pages themselves are found and copied by mem-pages.c.
 *
 * DESIGN
 * Each mapping gets a page source (enum eng__page_src), decided from smaps alone:
 *
 *   mapping                          kind / flags                 pages stored
 *   [vdso] [vvar] [vvar_vclock]      VDSO.. / PRIVATE|ANON        none: the kernel's
 *   [heap] [stack] anonymous private HEAP STACK PLAIN / PRIVATE|ANON  present or swapped,
 *                                                                 not the zero page
 *   shared anonymous                 PLAIN / SHARED|ANON, shm     none: the object's data
 *     ("/dev/zero (deleted)")                                     (shmem.c), once
 *   file, private                    PLAIN / PRIVATE              COWed (anonymous) pages
 *   file, private, deleted or memfd  PLAIN / PRIVATE, shm         COWed pages; the object
 *                                                                 has the rest
 *   file, shared                     PLAIN / SHARED               none: the file has them
 *   file, shared, deleted or memfd   PLAIN / SHARED, shm          none: the object's data
 *   SysV shm attachment              PLAIN / SHARED|ANON, shm     none: the segment's data
 *                                                                 (sysv-shm.c), once
 *   anything else (hugetlb, device memory, shadow stacks, protection keys,
 *   userfaultfd ranges, guard regions): refused before the process is touched.
 *
 * The plan is made twice: before seizing, to refuse early and size the copy buffer,
 * and again while frozen, which is the one dumped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "dump.h"
#include "image.h"
#include "log.h"
#include "mm.pb-c.h"
#include "shmem.pb-c.h"
#include "track.h"

#define DELETED " (deleted)"
#define USER_END ((1ull << 56) - 4096)	/* TASK_SIZE with 5-level paging */

static const struct {
	uint32_t vmf;
	int advice;
} madv_map[] = {
	{ ENG_VMF_DONTDUMP, MADV_DONTDUMP }, { ENG_VMF_DONTCOPY, MADV_DONTFORK },
	{ ENG_VMF_WIPEONFORK, MADV_WIPEONFORK }, { ENG_VMF_HUGEPAGE, MADV_HUGEPAGE },
	{ ENG_VMF_NOHUGEPAGE, MADV_NOHUGEPAGE }, { ENG_VMF_MERGEABLE, MADV_MERGEABLE },
	{ ENG_VMF_SEQ_READ, MADV_SEQUENTIAL }, { ENG_VMF_RAND_READ, MADV_RANDOM },
};

static int refuse(pid_t pid, const struct eng__vma *v, const char *what)
{
	return eng__refuse("pid %d: mapping %#lx-%#lx (%s): %s is not supported yet", pid,
			   (unsigned long)v->start, (unsigned long)v->end,
			   v->path ? v->path : "anonymous", what);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* What smaps flags say, before looking at the file: 0 or a refusal. */
static int check_flags(pid_t pid, struct eng__vma_dump *d)
{
	const struct eng__vma *v = &d->v;

	if (v->vmflags & ENG_VMF_HUGETLB)
		return refuse(pid, v, "hugetlb memory");
	if (v->vmflags & ENG_VMF_SHADOW_STACK)
		return refuse(pid, v, "a shadow stack");
	if ((v->vmflags & ENG_VMF_UFFD) && !d->tracked)
		return refuse(pid, v, "a userfaultfd-registered range");
	if (v->vmflags & ENG_VMF_DROPPABLE)
		return refuse(pid, v, "MAP_DROPPABLE memory");
	/* Guard pages are pte markers: PAGEMAP_SCAN reports them as swapped, reading them
	 * faults, and the image has no way to say where they were. */
	if (v->vmflags & ENG_VMF_GUARD)
		return refuse(pid, v, "a guard region (MADV_GUARD_INSTALL)");
	if (v->vmflags & (ENG_VMF_IO | ENG_VMF_PFNMAP | ENG_VMF_MIXEDMAP))
		return refuse(pid, v, "device memory (VM_IO/VM_PFNMAP/VM_MIXEDMAP)");
	/* Restore cannot assign keys yet (pkey_alloc gives whatever key is free). */
	if (v->pkey)
		return refuse(pid, v, "a memory protection key");
	d->flags = (v->shared ? MAP_SHARED : MAP_PRIVATE) |
		   (v->vmflags & ENG_VMF_GROWSDOWN ? MAP_GROWSDOWN : 0) |
		   (v->vmflags & ENG_VMF_LOCKED ? MAP_LOCKED : 0) |
		   (v->vmflags & ENG_VMF_NORESERVE ? MAP_NORESERVE : 0);
	for (size_t i = 0; i < sizeof(madv_map) / sizeof(madv_map[0]); i++)
		if (v->vmflags & madv_map[i].vmf)
			d->madv |= 1ull << madv_map[i].advice;
	return 0;
}

/* The kernel's own mappings: VM_IO|VM_PFNMAP for vvar, so they are told apart by name
 * before the flag checks. Restore moves the new kernel's ones here; nothing is stored. */
static bool plan_vdso(struct eng__vma_dump *d)
{
	static const struct {
		const char *name;
		int kind;
	} names[] = {
		{ "[vdso]", IMG_VMA_KIND__VMA_VDSO }, { "[vvar]", IMG_VMA_KIND__VMA_VVAR },
		{ "[vvar_vclock]", IMG_VMA_KIND__VMA_VVAR_VCLOCK },
	};

	for (size_t i = 0; d->v.path && i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(d->v.path, names[i].name))
			continue;
		d->kind = names[i].kind;
		d->flags = MAP_PRIVATE | MAP_ANONYMOUS;
		d->src = ENG_PG_NONE;
		return true;
	}
	return false;
}

/* Other bracketed names: 0 anonymous, 1 shared anonymous, or a refusal. */
static int plan_special(pid_t pid, struct eng__vma_dump *d)
{
	const char *p = d->v.path;

	if (!strcmp(p, "[heap]") || !strcmp(p, "[stack]")) {
		d->kind = p[1] == 'h' ? IMG_VMA_KIND__VMA_HEAP : IMG_VMA_KIND__VMA_STACK;
		if (d->v.shared)
			return refuse(pid, &d->v, "a shared heap or stack");
		d->flags |= MAP_ANONYMOUS;
		d->src = ENG_PG_SCAN_ANON;
		return 0;
	}
	/* prctl(PR_SET_VMA_ANON_NAME) names; the name itself is not kept yet. */
	if (!strncmp(p, "[anon:", 6) && !d->v.shared) {
		d->flags |= MAP_ANONYMOUS;
		d->src = ENG_PG_SCAN_ANON;
		return 0;
	}
	if (!strncmp(p, "[anon_shmem:", 12) && d->v.shared)
		return 1;
	return refuse(pid, &d->v, "a special mapping");
}

/* Open the mapped object through map_files (root may open any, deleted ones too): stat
 * it, and keep it open for FILE_DATA. The fd or -errno. */
static int open_mapped(pid_t pid, struct eng__vma_dump *d, struct stat *st)
{
	char path[96];
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%lx-%lx", pid, (unsigned long)d->v.start,
		 (unsigned long)d->v.end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && !fstat(fd, st))
		return fd;
	err = -errno;
	if (fd >= 0)
		close(fd);
	return pr_errno(err, "pid %d: %s (%s)", pid, path, d->v.path);
}

/* Shared anonymous memory, memfds and deleted files: objects of their own (shmem.c),
 * stored once however many mappings share them; a private mapping of one keeps only
 * its copied-on-write pages. The fd stays open for eng__shm_collect. */
static void plan_obj(struct eng__vma_dump *d, int fd, int kind)
{
	d->shm_kind = kind;
	d->file_fd = fd;
	d->src = d->v.shared ? ENG_PG_NONE : ENG_PG_SCAN_COW;
}

/* The mapped file's path as readlink of our fd of it gives it (maps escapes newlines
 * in names), so that path and inode are of the one object we opened: the process may
 * map another file there between two looks at map_files. " (deleted)" may also end a
 * real name: the link count decides. */
static int mapped_path(pid_t pid, struct eng__vma_dump *d, int fd)
{
	char name[64], *buf = malloc(PATH_MAX);
	ssize_t n;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	snprintf(name, sizeof(name), "/proc/self/fd/%d", fd);
	n = readlink(name, buf, PATH_MAX - 1);
	if (n < 0)
		ret = pr_errno(-errno, "pid %d: the file mapped at %#lx: readlink %s", pid,
			       (unsigned long)d->v.start, name);
	else
		buf[n] = 0;
	if (!ret && d->unlinked && ends_with(buf, DELETED))
		buf[strlen(buf) - strlen(DELETED)] = 0;
	if (!ret && buf[0] != '/')
		ret = refuse(pid, &d->v, "a file outside our file system tree");
	if (ret)
		free(buf);
	else
		d->path = buf;
	return ret;
}

/* Kernel objects that show as deleted files: their pages are not the whole story. */
static const char *kernel_object(const char *path, const struct stat *st)
{
	if (st->st_nlink || !ends_with(path, DELETED))
		return NULL;
	if (!strncmp(path, "/SYSV", 5))
		return "System V shared memory";
	if (!strncmp(path, "/[aio]", 6))
		return "an AIO ring";
	if (!strncmp(path, "/secretmem", 10))
		return "memfd_secret memory";
	return NULL;
}

static int plan_file(pid_t pid, struct eng__vma_dump *d, bool shared_anon)
{
	const char *p = d->v.path, *what;
	struct stat st;
	int fd = open_mapped(pid, d, &st), ret;

	if (fd < 0)
		return fd;
	/* Not the object of the maps line: the process mapped another one there since we
	 * read maps (it runs: the frozen plan is exact). Good for now, never to be taken
	 * over by a later plan whose line is this one (plan_again). */
	d->stale = st.st_ino != d->v.ino;
	if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5) && !d->v.shared) {
		/* A private map of /dev/zero is plain anonymous memory (mmap_zero). */
		close(fd);
		d->flags |= MAP_ANONYMOUS;
		d->src = ENG_PG_SCAN_ANON;
		return 0;
	}
	what = !S_ISREG(st.st_mode) ? "a mapping of a device or special file" : kernel_object(p, &st);
	/* A tree in its own ipc namespace has its segments dumped (sysv-shm.c, which
	 * refuses them otherwise). */
	if (what && !strncmp(p, "/SYSV", 5)) {
		d->flags |= MAP_ANONYMOUS;
		plan_obj(d, fd, IMG_SHMEM_KIND__SHM_SYSV);
		return 0;
	}
	if (what) {
		close(fd);
		return refuse(pid, &d->v, what);
	}
	/* MAP_SHARED|MAP_ANONYMOUS is a shmem file the kernel names "/dev/zero". */
	if (shared_anon || (d->v.shared && !strcmp(p, "/dev/zero" DELETED) && !d->v.dev_major)) {
		d->flags |= MAP_ANONYMOUS;
		plan_obj(d, fd, IMG_SHMEM_KIND__SHM_ANON);
		return 0;
	}
	d->dev = st.st_dev;
	d->ino = st.st_ino;
	d->unlinked = st.st_nlink == 0;
	ret = mapped_path(pid, d, fd);
	if (ret) {
		close(fd);
		return ret;
	}
	if (d->unlinked) {
		plan_obj(d, fd, strncmp(d->path, "/memfd:", 7) ? IMG_SHMEM_KIND__SHM_DELETED : IMG_SHMEM_KIND__SHM_MEMFD);
		return 0;
	}
	d->src = d->v.shared ? ENG_PG_NONE : ENG_PG_SCAN_COW;
	close(fd);
	return 0;
}

static int plan_one(pid_t pid, struct eng__vma_dump *d)
{
	bool shared_anon = false;
	int ret;

	d->kind = IMG_VMA_KIND__VMA_PLAIN;
	d->file_fd = -1;
	if (plan_vdso(d))
		return 0;
	ret = check_flags(pid, d);
	if (ret)
		return ret;
	if (d->v.path && d->v.path[0] == '[') {
		ret = plan_special(pid, d);
		if (ret <= 0)
			return ret;
		shared_anon = true;
	}
	if (!d->v.path && !d->v.ino) {
		if (d->v.shared)	/* MAP_SHARED|MAP_ANONYMOUS always has a shmem file */
			return refuse(pid, &d->v, "shared memory without a backing object");
		d->flags |= MAP_ANONYMOUS;
		d->src = ENG_PG_SCAN_ANON;
		return 0;
	}
	return plan_file(pid, d, shared_anon);
}

static void plan_free(struct eng__vma_dump *vmas, int n)
{
	for (int i = 0; i < n; i++) {
		free(vmas[i].v.path);
		free(vmas[i].path);
		if (vmas[i].file_fd >= 0)
			close(vmas[i].file_fd);
	}
	free(vmas);
}

void eng__vma_plan_free(struct eng__mem_dump *md)
{
	plan_free(md->vmas, md->nr_vmas);
	md->vmas = NULL;
	md->nr_vmas = 0;
}

int eng__vma_flags_snapshot(pid_t pid, struct eng__mem_dump *md)
{
	eng__vmas_free(md->snap, md->nr_snap);
	md->snap = NULL;
	md->nr_snap = 0;
	return eng__parse_vmas(pid, true, &md->snap, &md->nr_snap);
}

static bool same_line(const struct eng__vma *a, const struct eng__vma *b)
{
	return a->start == b->start && a->end == b->end && a->prot == b->prot &&
	       a->shared == b->shared && a->pgoff == b->pgoff && a->ino == b->ino &&
	       a->dev_major == b->dev_major && a->dev_minor == b->dev_minor &&
	       (a->path && b->path ? !strcmp(a->path, b->path) : a->path == b->path);
}

/*
 * smaps walks every page to count them (40 ms for 512 MiB here), maps does not (3 ms).
 * Stopped, read maps and take each line's flags from a snapshot of smaps read just
 * before, when the line is unchanged; any other line means reading smaps after all.
 * What this misses: a change of flags alone on a whole mapping (madvise, mlock,
 * pkey_mprotect) between the snapshot and the stop, without any change to its line.
 */
static int read_vmas(pid_t pid, struct eng__mem_dump *md, struct eng__vma **out, int *nr)
{
	int ret, k = 0;

	if (!md->snap)
		return eng__parse_vmas(pid, true, out, nr);
	ret = eng__parse_vmas(pid, false, out, nr);
	for (int i = 0; !ret && i < *nr; i++) {
		struct eng__vma *v = &(*out)[i];

		while (k < md->nr_snap && md->snap[k].start < v->start)
			k++;
		if (k == md->nr_snap || !same_line(&md->snap[k], v)) {
			pr_debug("pid %d: %#lx-%#lx changed since the smaps snapshot: reading smaps",
				 pid, (unsigned long)v->start, (unsigned long)v->end);
			eng__vmas_free(*out, *nr);
			return eng__parse_vmas(pid, true, out, nr);
		}
		v->vmflags = md->snap[k].vmflags;
		v->pkey = md->snap[k].pkey;
	}
	return ret;
}

/*
 * The plan of a mapping whose line is the same as in the previous plan of this dump
 * (a few ms earlier, same process), flags included: take that one's answer over rather
 * than asking again. Planning a file mapping costs an open of map_files, a stat and a
 * readlink; a process with its libraries has dozens, and the last plan is made frozen.
 * The line names the object (device, inode, and " (deleted)" once it is unlinked or
 * replaced), its offset and protection; what plan_one() decides depends on nothing
 * else, and a file_fd taken over is the same object's. 1 when taken over.
 */
static int plan_again(struct eng__vma_dump *old, int nr_old, int *k, struct eng__vma_dump *d)
{
	struct eng__vma_dump *o;

	while (*k < nr_old && old[*k].v.start < d->v.start)
		(*k)++;
	if (*k == nr_old)
		return 0;
	o = &old[*k];
	if (!o->planned || o->stale || !same_line(&o->v, &d->v) || o->v.vmflags != d->v.vmflags ||
	    o->v.pkey != d->v.pkey || o->tracked != d->tracked)	/* check_flags() reads it */
		return 0;
	d->kind = o->kind;
	d->flags = o->flags;
	d->madv = o->madv;
	d->path = o->path;
	d->dev = o->dev;
	d->ino = o->ino;
	d->unlinked = o->unlinked;
	d->src = o->src;
	d->data_end = o->data_end;
	d->file_fd = o->file_fd;
	d->shm_kind = o->shm_kind;
	d->planned = true;
	o->path = NULL;
	o->file_fd = -1;
	return 1;
}

int eng__vma_plan(pid_t pid, struct eng__mem_dump *md)
{
	struct eng__vma_dump *old = md->vmas;
	struct eng__vma *v;
	int n, ret, nr_old = md->nr_vmas, k = 0;

	md->vmas = NULL;
	md->nr_vmas = 0;
	ret = read_vmas(pid, md, &v, &n);
	if (!ret && !n) {
		free(v);
		ret = pr_errno(-EINVAL, "pid %d has no address space (a kernel thread?)", pid);
	}
	if (!ret) {
		md->vmas = calloc(n, sizeof(*md->vmas));
		if (!md->vmas) {
			eng__vmas_free(v, n);
			ret = -ENOMEM;
		}
	}
	if (ret) {
		plan_free(old, nr_old);
		return ret;
	}
	for (int i = 0; i < n; i++) {
		/* [vsyscall] lives above user space: the kernel provides it everywhere. */
		if (v[i].start >= USER_END) {
			free(v[i].path);
			continue;
		}
		md->vmas[md->nr_vmas].v = v[i];
		md->vmas[md->nr_vmas].file_fd = -1;
		/* Still registered with our pre-copy uffd (mremap would have dropped it). A
		 * tracker's mapping that grew past what it registered is still its own (a
		 * mapping has one uffd): track.c copies it whole and registers it again. */
		if (md->trk)
			md->vmas[md->nr_vmas].tracked = (v[i].vmflags & ENG_VMF_UFFD) &&
							eng__track_overlaps(md->trk, v[i].start, v[i].end);
		else
			md->vmas[md->nr_vmas].tracked = (v[i].vmflags & ENG_VMF_UFFD) &&
							eng__precopy_owns(&md->pc, v[i].start, v[i].end);
		md->nr_vmas++;
	}
	free(v);
	/* For tests and timing: every mapping planned from scratch. */
	if (getenv("HA_TEST_NO_PLAN_REUSE"))
		k = nr_old;
	for (int i = 0; i < md->nr_vmas && !ret; i++) {
		struct eng__vma_dump *d = &md->vmas[i];

		if (plan_again(old, nr_old, &k, d))
			continue;
		ret = plan_one(pid, d);
		d->planned = !ret;
	}
	plan_free(old, nr_old);
	return ret;
}

/* ---- mm fields -------------------------------------------------------------------- */

static int read_auxv(pid_t pid, struct eng__mem_dump *md)
{
	size_t len;
	char *buf;
	int ret = eng__proc_read(pid, "auxv", &buf, &len);

	if (ret)
		return ret;
	/* The kernel's saved_auxv up to and including the AT_NULL pair. */
	if (len % 16 || len < 16) {
		free(buf);
		return pr_errno(-EPROTO, "pid %d: /proc/%d/auxv: %zu bytes", pid, pid, len);
	}
	md->auxv = (uint64_t *)buf;
	md->nr_auxv = len / 8;
	return 0;
}

static int read_exe(pid_t pid, struct eng__mem_dump *md)
{
	int ret = eng__proc_link(pid, "exe", md->exe, sizeof(md->exe));

	if (ret)
		return ret;
	/* PR_SET_MM_MAP wants an fd of the executable at restore: it must still exist. */
	if (ends_with(md->exe, DELETED))
		return eng__refuse("pid %d: its executable %s: a deleted executable is not "
				   "supported yet", pid, md->exe);
	return 0;
}

static int hash_vdso(pid_t pid, struct eng__mem_dump *md)
{
	for (int i = 0; i < md->nr_vmas; i++) {
		const struct eng__vma *v = &md->vmas[i].v;
		size_t len = v->end - v->start;
		struct iovec l, r = { (void *)v->start, len };
		void *buf;

		if (md->vmas[i].kind != IMG_VMA_KIND__VMA_VDSO)
			continue;
		buf = malloc(len);
		if (!buf)
			return -ENOMEM;
		l.iov_base = buf;
		l.iov_len = len;
		if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)len) {
			free(buf);
			return pr_errno(-errno ?: -EIO, "pid %d: reading its [vdso]", pid);
		}
		md->vdso_hash = XXH3_64bits(buf, len);
		md->has_vdso_hash = true;
		free(buf);
	}
	return 0;
}

int eng__mem_prepare(pid_t pid, struct eng__mem_dump *md, struct eng_track *trk)
{
	int ret;

	memset(md, 0, sizeof(*md));
	md->pid = pid;
	md->pc.uffd = -1;
	md->trk = trk;
	if (trk) {
		eng__track_unstage(trk);
		/* The tracker's staging buffer, faulted in by earlier generations. */
		md->buf = trk->buf;
		md->buf_cap = trk->buf_cap;
		trk->buf = NULL;
		trk->buf_cap = 0;
		ret = eng__vma_plan(pid, md);
		return ret ? ret : read_exe(pid, md);
	}
	/* For tests: the path kernels without PAGEMAP_SCAN (< 6.7) take. */
	md->no_scan = getenv("HA_TEST_NO_PAGEMAP_SCAN") != NULL;
	ret = eng__vma_plan(pid, md);
	if (!ret)
		ret = read_exe(pid, md);
	/* Size the copy buffer from the pages there are now, with room for growth, and
	 * fault it in now: faulting it while the process is frozen would double the
	 * time it is stopped. Collect grows it if the process grew more. */
	if (!ret)
		ret = eng__pages_find(md);
	if (!ret)
		ret = eng__pages_reserve(md, md->buf_used + md->buf_used / 8 + (8ul << 20));
	return ret;
}

int eng__mem_presnap(pid_t pid, struct eng__mem_dump *md)
{
	int ret;

	/* A tracker reserves room for the frozen round now: faulting the buffer in while
	 * the process is stopped would be paid in pause time. */
	if (md->trk) {
		ret = eng__pages_reserve(md, md->buf_used + md->buf_used / 8 + (16ul << 20));
		if (!ret)
			ret = eng__vma_flags_snapshot(pid, md);
		return ret ? ret : eng__track_last_round(md->trk, md);
	}
	/* A small process's smaps is cheap enough to read stopped, and then exact. */
	if (md->snap || md->buf_used < ENG_BIG_MM)
		return 0;
	return eng__vma_flags_snapshot(pid, md);
}

int eng__mem_collect(struct eng_victim *v, struct eng__mem_dump *md)
{
	pid_t pid = v->pid;
	int ret;

	ret = eng__vma_plan(pid, md);
	eng__tmark("vma-plan");
	if (!ret)
		ret = eng__parse_stat(pid, 0, &md->stat);
	if (!ret)
		ret = read_auxv(pid, md);
	if (!ret)
		ret = read_exe(pid, md);
	eng__tmark("mm-proc");
	if (!ret)
		ret = hash_vdso(pid, md);
	eng__tmark("vdso");
	if (!ret && md->trk)
		ret = eng__track_frozen_begin(md->trk, md);
	eng__tmark("rekey");
	if (!ret)
		ret = eng__pages_find(md);
	eng__tmark("scan");
	pr_debug("pid %d: %zu runs found", pid, md->nr_runs);
	if (!ret)
		ret = eng__pages_copy(md);
	eng__tmark("copy");
	if (!ret && md->trk)
		ret = eng__track_absorb(md->trk, md);
	eng__tmark("absorb");
	return ret;
}

int eng__mem_collect_infected(struct eng_victim *v, struct eng__mem_dump *md)
{
	long r = v->brk;
	int ret = v->has_brk ? 0 : eng__remote_syscall(v, &r, __NR_brk, 0, 0, 0, 0, 0, 0);

	if (ret)
		return ret;
	/* brk(0) cannot fail: it returns the current break. */
	md->brk = r;
	if (md->brk < md->stat.start_brk)
		return pr_errno(-EPROTO, "pid %d: brk %#lx is below start_brk %#lx", v->pid,
				(unsigned long)md->brk, (unsigned long)md->stat.start_brk);
	return 0;
}

static int write_mm(int dirfd, struct eng__mem_dump *md, struct eng__imgq *q)
{
	ImgMm mm = IMG_MM__INIT;
	struct eng_img *img;
	int ret;

#define SET(f, v) (mm.has_##f = 1, mm.f = (v))
	SET(start_code, md->stat.start_code);
	SET(end_code, md->stat.end_code);
	SET(start_data, md->stat.start_data);
	SET(end_data, md->stat.end_data);
	SET(start_brk, md->stat.start_brk);
	SET(brk, md->brk);
	SET(start_stack, md->stat.start_stack);
	SET(arg_start, md->stat.arg_start);
	SET(arg_end, md->stat.arg_end);
	SET(env_start, md->stat.env_start);
	SET(env_end, md->stat.env_end);
#undef SET
	mm.n_auxv = md->nr_auxv;
	mm.auxv = md->auxv;
	mm.exe_path = md->exe;
	ret = eng_img_create(dirfd, ENG_IMG_MM, md->pid, &img);
	if (ret)
		return ret;
	ret = eng__imgq_add(q, img);
	if (!ret)
		ret = eng_img_write(img, &mm.base);
	for (int i = 0; i < md->nr_vmas && !ret; i++) {
		const struct eng__vma_dump *d = &md->vmas[i];
		ImgVma v = IMG_VMA__INIT;

		v.has_start = v.has_end = v.has_pgoff = v.has_prot = v.has_flags = v.has_kind = 1;
		v.start = d->v.start;
		v.end = d->v.end;
		/* Anonymous maps show vm_pgoff too (start >> 12 for private ones): meaningless
		 * to mmap, and restore keys nothing on it. A shared one's is into its object. */
		v.pgoff = d->flags & MAP_ANONYMOUS && !d->shm ? 0 : d->v.pgoff;
		v.has_shm = d->shm != 0;
		v.shm = d->shm;
		v.prot = d->v.prot;
		v.flags = d->flags;
		v.kind = d->kind;
		v.has_madv = d->madv != 0;
		v.madv = d->madv;
		if (!(d->flags & MAP_ANONYMOUS)) {
			v.path = d->path;
			v.has_dev = v.has_ino = 1;
			v.dev = d->dev;
			v.ino = d->ino;
			v.has_unlinked = d->unlinked;
			v.unlinked = d->unlinked;
		}
		ret = eng_img_write(img, &v.base);
	}
	return ret;
}

int eng__mem_write(int dirfd, struct eng__mem_dump *md, struct eng__imgq *q)
{
	struct eng_img *pagemap = NULL, *pages = NULL;
	int ret;

	/* Tracking is over: unregister now rather than while the process was stopped
	 * (clearing the markers costs time); until then it only costs the process ~1 us
	 * on a first write to a page. A tracker keeps tracking. */
	eng__precopy_end(&md->pc);
	ret = write_mm(dirfd, md, q);
	if (md->trk)
		return ret ? ret : eng__track_write(md->trk, dirfd, md, q);

	if (!ret)
		ret = eng__pages_write(dirfd, md, &pagemap, &pages);
	if (!ret) {
		ret = eng__imgq_add(q, pagemap);
		pagemap = NULL;
	}
	if (!ret) {
		ret = eng__imgq_add(q, pages);
		pages = NULL;
	}
	eng_img_abort(pagemap);
	eng_img_abort(pages);
	return ret;
}

void eng__mem_free(struct eng__mem_dump *md)
{
	if (!md)
		return;
	eng__vma_plan_free(md);
	eng__vmas_free(md->snap, md->nr_snap);
	eng__precopy_end(&md->pc);
	free(md->pc.runs);
	free(md->auxv);
	free(md->runs);
	if (md->trk) {
		md->trk->buf = md->buf;	/* kept for the next generation */
		md->trk->buf_cap = md->buf_cap;
	} else if (md->buf) {
		munmap(md->buf, md->buf_cap);
	}
	memset(md, 0, sizeof(*md));
}
