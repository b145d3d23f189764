/*
 * Restore, page fill: every page run of one process's checkpoint put into its
 * premapped slot (rst-mem.c), each run's XXH3 (plain image) or blob checksum (page
 * store) checked on the way, all before the point of no return.
 *
 * DESIGN
 * On failover a restore is the outage, and the fill is nearly all of a big restore.
 * Measured here, 512 MiB took 1.6 s of fill: a third reading and checking, a third
 * decompressing, and the rest faulting fresh pages in (the kernel zeroes each page
 * before we overwrite it, at about 1 GB/s on this VM). So:
 *   1. Anonymous private slots are registered with a userfaultfd and filled with
 *      UFFDIO_COPY: the kernel allocates each page and copies our bytes into it, never
 *      zeroing it first. Other slots (private file mappings' copied-on-write pages,
 *      private mappings of shared objects) are written as before.
 *   2. The work is split into tasks (a blob: read, check, decompress once, put each run
 *      that uses it; a plain run: read, sum and put, 1 MiB at a time) that any number
 *      of workers take in turn. A page store's runs are taken in blob order: a late
 *      generation's address range interleaves blobs of every older generation, and
 *      each blob must be decompressed once, not once per run.
 *   3. The workers are threads of hactl, not of the restored process (which hactl
 *      traces: a thread of its own would look like a restored task to the tracer, and
 *      would take a pid the restorer may need for a thread): hactl takes the process's
 *      userfaultfd with pidfd_getfd, and writes what is not registered with
 *      process_vm_writev. A process restored by hactl alone (no workers to spare)
 *      fills itself the same way, with one worker.
 *   4. Zero pages are never touched: fresh anonymous memory reads as zero.
 *   5. A plain pages image is mapped, and each run is summed and put a 1 MiB piece at
 *      a time, by one worker: summing first maps the piece's pages in, so UFFDIO_COPY
 *      then copies from page cache pages present in our page table (a piece not mapped
 *      yet sends it down its slow path, page by page). Reading with pread into a buffer
 *      instead cost one more copy of every byte: 60% more CPU for a 512 MiB restore
 *      here. A mapped file truncated under us (or a failing disk) raises SIGBUS on our
 *      own reads, which a per-thread guard turns into an error naming the file and
 *      offset (the kernel's own reads, in UFFDIO_COPY or process_vm_writev, fail with
 *      EFAULT).
 *
 * INVARIANTS
 *   1. Every byte put is checked before the point of no return: a blob's compressed
 *      bytes against the XXH3 both its header and the page map carry (then the zstd
 *      frame's own size check), before any of it is put; a plain run's bytes against
 *      its XXH3, summed over the very buffer each piece is put from, the verdict once
 *      the run is whole. A failure names the image directory or the store and
 *      generation, the file and the offset, and the process is killed by hactl with
 *      the rest of the tree (nothing of it ever ran).
 *   2. A page is put at most once: runs do not overlap (image-check.c), and UFFDIO_COPY
 *      onto a present page fails (EEXIST) rather than overwrite.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "image.h"
#include "log.h"
#include "restore.h"
#include "track.h"

#define PAGE 4096ul
#define BUF (TRK_BLOB_PAGES * PAGE)	/* a worker's buffer: a blob's pages, a plain piece */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

void (*eng__test_fill_hook)(pid_t pid, size_t task, size_t nr_tasks);

enum task_kind { T_BLOB, T_RUN };

struct task {
	enum task_kind kind;
	size_t a, b;		/* T_BLOB: order[a..b); T_RUN: run a */
};

struct fill {
	const struct rst_fill_args *in;
	const struct rst_proc *p;
	size_t *order, nr_order;	/* pack runs, blob order */
	size_t *vma_of;			/* each run's VMA */
	struct task *tasks;
	size_t nr_tasks, next;		/* next: taken with an atomic add */
	const uint8_t *map;		/* pages-PID.img, mapped whole */
	size_t map_len;
	pthread_mutex_t lock;
	int err;
	char why[232];
	uint64_t t_read, t_unpack, t_copy, bytes_read, bytes_filled;	/* summed over workers (us, bytes) */
};

/* A worker's own buffers. */
struct worker {
	struct fill *f;
	uint8_t *cbuf, *out;
	ZSTD_DCtx *dctx;
	XXH3_state_t *sum;
	int fd;
	uint32_t fd_pack;
	uint64_t t_read, t_unpack, t_copy, bytes_read, bytes_filled;
};

static uint64_t us(void)
{
	return rst__now_us();
}

/* Keep the first failure (logged by the worker that met it, in its own thread). */
static int failed(struct fill *f, int err)
{
	pthread_mutex_lock(&f->lock);
	if (!f->err) {
		f->err = err;
		snprintf(f->why, sizeof(f->why), "%s", eng_last_error());
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

/* len bytes from src to the restored process's dst, in VMA vi. */
static int put(struct worker *w, size_t vi, uint64_t dst, const void *src, size_t len)
{
	const struct rst_fill_args *in = w->f->in;
	uint64_t t = us();
	int ret = 0;

	w->bytes_filled += len;
	if (in->uffd >= 0 && in->registered[vi]) {
		struct uffdio_copy cp = { .dst = dst, .src = (uint64_t)src, .len = len, .mode = UFFDIO_COPY_MODE_DONTWAKE };

		while (!ret && cp.len) {
			cp.copy = 0;
			if (ioctl(in->uffd, UFFDIO_COPY, &cp) && errno != EAGAIN)
				ret = pr_errno(-errno, "pid %d: UFFDIO_COPY of %zu bytes at %#lx", w->f->p->pid, len,
					       (unsigned long)dst);
			if (cp.copy > 0) {
				cp.dst += cp.copy;
				cp.src += cp.copy;
				cp.len -= cp.copy;
			}
		}
	} else if (in->remote > 0) {
		struct iovec l = { (void *)src, len }, r = { (void *)dst, len };
		ssize_t n = process_vm_writev(in->remote, &l, 1, &r, 1, 0);

		if (n != (ssize_t)len)
			ret = pr_errno(n < 0 ? -errno : -EIO, "pid %d: writing %zu bytes at %#lx", w->f->p->pid, len,
				       (unsigned long)dst);
	} else {
		madvise((void *)dst, len, MADV_POPULATE_WRITE);
		memcpy((void *)dst, src, len);
	}
	w->t_copy += us() - t;
	return ret;
}

static uint64_t run_dst(const struct fill *f, size_t i)
{
	const ImgPagemapEntry *e = f->p->pm[i];
	size_t vi = f->vma_of[i];

	return f->in->slots[vi] + (e->vaddr - f->p->vmas[vi]->start);
}

/* "generation G: STORE/packs/pack-N.pack" names, for messages. */
static void pack_path(const struct fill *f, uint32_t pack, char *buf, size_t len)
{
	char name[64];

	eng__store_pack_name(pack, name, sizeof(name));
	snprintf(buf, len, "%s/packs/%s", f->in->store ? f->in->store : "..", name);
}

static int pack_open(struct worker *w, uint32_t pack, const char *path)
{
	char name[64], rel[96];

	if (w->fd >= 0 && w->fd_pack == pack)
		return 0;
	if (w->fd >= 0)
		close(w->fd);
	eng__store_pack_name(pack, name, sizeof(name));
	/* Our own layout, a number we format: nothing read from disk becomes a path. */
	snprintf(rel, sizeof(rel), "../packs/%s", name);
	w->fd = openat(w->f->in->dirfd, rel, O_RDONLY | O_CLOEXEC);
	w->fd_pack = pack;
	if (w->fd < 0)
		return pr_errno(-errno, "generation %u: %s: open", w->f->in->gen, path);
	posix_fadvise(w->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
}

/* One blob and every run that uses it (order[a..b)). */
static int do_blob(struct worker *w, size_t a, size_t b)
{
	struct fill *f = w->f;
	const ImgPagemapEntry *e0 = f->p->pm[f->order[a]];
	struct eng__blob_hdr h;
	char path[4200];
	uint64_t t;
	size_t r, want;
	int ret;

	pack_path(f, e0->pack, path, sizeof(path));
	ret = pack_open(w, e0->pack, path);
	if (ret)
		return ret;
	t = us();
	ret = eng__blob_read(w->fd, path, f->in->gen, e0->offset, e0->xxh3, w->cbuf, NULL, &h);
	w->t_read += us() - t;
	if (ret)
		return ret;
	w->bytes_read += h.clen;
	for (size_t k = a; k < b; k++) {
		const ImgPagemapEntry *e = f->p->pm[f->order[k]];

		if (e->blob_page + e->nr_pages > h.nr_pages)
			return pr_errno(-EBADMSG, "generation %u: pagemap-%d.img: entry %zu: pages [%u, +%lu) of a "
					"%u-page blob in %s offset %lu", f->in->gen, f->p->pid, f->order[k],
					e->blob_page, (unsigned long)e->nr_pages, h.nr_pages, path,
					(unsigned long)e->offset);
	}
	t = us();
	want = (size_t)h.nr_pages * PAGE;
	r = ZSTD_decompressDCtx(w->dctx, w->out, want, w->cbuf, h.clen);
	w->t_unpack += us() - t;
	if (ZSTD_isError(r) || r != want)
		return pr_errno(-EBADMSG, "generation %u: %s offset %lu: blob does not decompress to its %u pages",
				f->in->gen, path, (unsigned long)e0->offset, h.nr_pages);
	for (size_t k = a; k < b && !ret; k++) {
		size_t i = f->order[k];
		const ImgPagemapEntry *e = f->p->pm[i];

		ret = put(w, f->vma_of[i], run_dst(f, i), w->out + (size_t)e->blob_page * PAGE, e->nr_pages * PAGE);
	}
	return ret;
}

/*
 * The SIGBUS guard around our reads of the mapped pages image: the handler jumps back
 * to the run being read when the fault is in a guarded stretch of this thread, else
 * puts the disposition it replaced back and returns, so that the fault repeats under
 * it. SA_NODEFER: the jump leaves no signal blocked.
 */
static __thread sigjmp_buf *bus_jmp;
static __thread const void *bus_addr;
static struct sigaction bus_old;

static void on_bus(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (bus_jmp) {
		bus_addr = si->si_addr;
		siglongjmp(*bus_jmp, 1);
	}
	sigaction(SIGBUS, &bus_old, NULL);
}

/* at: where the fault was (bus_addr), or NULL: the kernel's read of src failed (EFAULT). */
static int bus_error(const struct fill *f, size_t i, const uint8_t *at, const uint8_t *src)
{
	const ImgPagemapEntry *e = f->p->pm[i];
	struct stat st;
	long long size = fstat(f->p->pages->fd, &st) ? -1ll : (long long)st.st_size;

	/* Our memcpy into a private file mapping's slot (filling ourselves) may fault on
	 * the destination: that mapped file is shorter than its mapping now. */
	if (at && (at < f->map || at >= f->map + f->map_len))
		return pr_errno(-EIO, "pid %d: SIGBUS writing the run at %#lx into its mapping (is the mapped file "
				"shorter than the mapping?)", f->p->pid, (unsigned long)e->vaddr);
	/* put() logged the EFAULT first: this says which file it was. */
	eng__clear_error();
	return pr_errno(-EIO, "%s/pages-%d.img: run at %#lx: %s offset %lu, the file is %lld bytes now (truncated "
			"during the restore, or an I/O error)", f->in->dir, f->p->pid, (unsigned long)e->vaddr,
			at ? "SIGBUS reading" : "the kernel could not read", (unsigned long)((at ? at : src) - f->map),
			size);
}

/* A plain run, a piece at a time: summed (mapping it in), then put; the verdict on the
 * sum once the run is whole (before the point of no return). Under the guard set by
 * do_run(), which it lifts. */
static int run_pieces(struct worker *w, size_t i)
{
	struct fill *f = w->f;
	const ImgPagemapEntry *e = f->p->pm[i];
	const uint8_t *src = f->map + IMG_RAW_HDR_SIZE + e->offset;
	size_t len = e->nr_pages * PAGE, n = 0, off;
	uint64_t t;
	int ret = 0;

	XXH3_64bits_reset(w->sum);
	for (off = 0; off < len && !ret; off += n) {
		n = len - off < BUF ? len - off : BUF;
		t = us();
		XXH3_64bits_update(w->sum, src + off, n);
		w->t_read += us() - t;
		w->bytes_read += n;
		ret = put(w, f->vma_of[i], run_dst(f, i) + off, src + off, n);
	}
	bus_jmp = NULL;
	if (ret == -EFAULT)
		return bus_error(f, i, NULL, src + off - n);	/* shrunk between the sum and the put */
	if (!ret && XXH3_64bits_digest(w->sum) != e->xxh3)
		ret = pr_errno(-EBADMSG, "%s/pages-%d.img: run at %#lx (%lu pages, offset %lu): checksum mismatch",
			       f->in->dir, f->p->pid, (unsigned long)e->vaddr, (unsigned long)e->nr_pages,
			       (unsigned long)e->offset);
	return ret;
}

/* Nothing here changes after sigsetjmp: a jump back finds every variable as it was. */
static int do_run(struct worker *w, size_t i)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 0)) {
		bus_jmp = NULL;
		return bus_error(w->f, i, bus_addr, NULL);
	}
	bus_jmp = &jb;
	return run_pieces(w, i);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct fill *f = w->f;
	sigset_t bus, old;

	/* A restored process fills itself with every signal blocked: a SIGBUS it raised
	 * blocked would kill it, not reach the guard. */
	sigemptyset(&bus);
	sigaddset(&bus, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &bus, &old);
	w->fd = -1;
	w->cbuf = malloc(eng__blob_cbound());
	w->out = malloc(BUF);
	w->dctx = ZSTD_createDCtx();
	w->sum = XXH3_createState();
	if (!w->cbuf || !w->out || !w->dctx || !w->sum)
		failed(f, -ENOMEM);
	while (!__atomic_load_n(&f->err, __ATOMIC_RELAXED)) {
		size_t k = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED);
		const struct task *t;
		int ret;

		if (k >= f->nr_tasks)
			break;
		if (eng__test_fill_hook)
			eng__test_fill_hook(f->p->pid, k, f->nr_tasks);
		t = &f->tasks[k];
		ret = t->kind == T_BLOB ? do_blob(w, t->a, t->b) : do_run(w, t->a);
		if (ret)
			failed(f, ret);
	}
	if (w->fd >= 0)
		close(w->fd);
	free(w->cbuf);
	free(w->out);
	ZSTD_freeDCtx(w->dctx);
	XXH3_freeState(w->sum);
	pthread_mutex_lock(&f->lock);
	f->t_read += w->t_read;
	f->t_unpack += w->t_unpack;
	f->t_copy += w->t_copy;
	f->bytes_read += w->bytes_read;
	f->bytes_filled += w->bytes_filled;
	pthread_mutex_unlock(&f->lock);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return NULL;
}

static int cmp_blob_order(const void *a, const void *b, void *arg)
{
	ImgPagemapEntry **pm = arg;
	const ImgPagemapEntry *x = pm[*(const size_t *)a], *y = pm[*(const size_t *)b];

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->offset != y->offset)
		return x->offset < y->offset ? -1 : 1;
	return x->vaddr < y->vaddr ? -1 : x->vaddr > y->vaddr;
}

static bool is_vdso_part(const ImgVma *v)
{
	return v->kind == IMG_VMA_KIND__VMA_VDSO || v->kind == IMG_VMA_KIND__VMA_VVAR ||
	       v->kind == IMG_VMA_KIND__VMA_VVAR_VCLOCK;
}

/* Each data run's VMA (runs and VMAs are both sorted by address). */
static int find_vmas(struct fill *f)
{
	const struct rst_proc *p = f->p;
	size_t vi = 0;

	for (size_t i = 0; i < p->nr_pm; i++) {
		const ImgPagemapEntry *e = p->pm[i];
		unsigned long len = e->nr_pages * PAGE;

		if (!(e->flags & (IMG_PAGEMAP_FLAG__PM_IN_PAGES | IMG_PAGEMAP_FLAG__PM_IN_PACK)))
			continue;	/* zero, or from the file: nothing to put */
		while (vi < p->nr_vmas && p->vmas[vi]->end <= e->vaddr)
			vi++;
		if (vi == p->nr_vmas || e->vaddr < p->vmas[vi]->start || e->vaddr + len > p->vmas[vi]->end ||
		    is_vdso_part(p->vmas[vi]))
			return pr_errno(-EINVAL, "%s: pagemap-%d.img: entry %zu: run %#lx+%lu pages is outside every "
					"VMA", f->in->dir, p->pid, i, (unsigned long)e->vaddr,
					(unsigned long)e->nr_pages);
		f->vma_of[i] = vi;
	}
	return 0;
}

static int add_task(struct fill *f, size_t *cap, enum task_kind kind, size_t a, size_t b)
{
	if (f->nr_tasks == *cap) {
		size_t n = *cap ? *cap * 2 : 256;
		struct task *t = realloc(f->tasks, n * sizeof(*t));

		if (!t)
			return -ENOMEM;
		f->tasks = t;
		*cap = n;
	}
	f->tasks[f->nr_tasks++] = (struct task){ kind, a, b };
	return 0;
}

/* The task list: plain runs first, then blobs in blob order. */
static int plan(struct fill *f)
{
	const struct rst_proc *p = f->p;
	size_t cap = 0;
	int ret = find_vmas(f);

	for (size_t i = 0; i < p->nr_pm && !ret; i++) {
		const ImgPagemapEntry *e = p->pm[i];

		if (e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK)
			f->order[f->nr_order++] = i;
		if (!(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PAGES))
			continue;
		if (e->offset > p->pages->raw_size || e->nr_pages * PAGE > p->pages->raw_size - e->offset)
			return pr_errno(-EBADMSG, "%s/pages-%d.img: run at %#lx needs bytes [%lu, +%lu) of %lu",
					f->in->dir, p->pid, (unsigned long)e->vaddr, (unsigned long)e->offset,
					(unsigned long)(e->nr_pages * PAGE), (unsigned long)p->pages->raw_size);
		ret = add_task(f, &cap, T_RUN, i, 0);
	}
	if (!ret && f->nr_tasks) {
		f->map_len = IMG_RAW_HDR_SIZE + p->pages->raw_size;
		f->map = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, p->pages->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			return pr_errno(-errno, "%s/pages-%d.img: mmap of %zu bytes", f->in->dir, p->pid, f->map_len);
		}
		madvise((void *)f->map, f->map_len, MADV_SEQUENTIAL);
	}
	if (!ret && f->nr_order)
		qsort_r(f->order, f->nr_order, sizeof(*f->order), cmp_blob_order, p->pm);
	for (size_t k = 0; k < f->nr_order && !ret;) {
		const ImgPagemapEntry *e = p->pm[f->order[k]];
		size_t end = k + 1;

		while (end < f->nr_order && p->pm[f->order[end]]->pack == e->pack &&
		       p->pm[f->order[end]]->offset == e->offset)
			end++;
		ret = add_task(f, &cap, T_BLOB, k, end);
		k = end;
	}
	return ret;
}

int rst__fill(const struct rst_fill_args *in, struct rst_times *times)
{
	const struct rst_proc *p = in->p;
	struct fill f = { .in = in, .p = p };
	int nw = in->workers < 1 ? 1 : in->workers, started = 0, ret;
	struct worker *w = calloc(nw, sizeof(*w));
	pthread_t *th = calloc(nw, sizeof(*th));

	pthread_mutex_init(&f.lock, NULL);
	f.order = malloc((p->nr_pm + 1) * sizeof(*f.order));
	f.vma_of = calloc(p->nr_pm + 1, sizeof(*f.vma_of));
	ret = w && th && f.order && f.vma_of ? plan(&f) : -ENOMEM;
	if (!ret && f.map) {
		struct sigaction sa = { .sa_sigaction = on_bus, .sa_flags = SA_SIGINFO | SA_NODEFER };

		sigfillset(&sa.sa_mask);
		sigdelset(&sa.sa_mask, SIGBUS);
		sigaction(SIGBUS, &sa, &bus_old);
	}
	for (int k = 0; k < nw && !ret; k++) {
		w[k].f = &f;
		/* Our own thread is the last worker: one worker means no thread at all. */
		if (k < nw - 1 && !pthread_create(&th[k], NULL, work, &w[k]))
			started++;
		else if (k < nw - 1)
			pr_debug("pid %d: fill: %d workers only", p->pid, k + 1);
	}
	if (!ret)
		work(&w[nw - 1]);
	for (int k = 0; k < started; k++)
		pthread_join(th[k], NULL);
	if (f.map) {
		sigaction(SIGBUS, &bus_old, NULL);
		munmap((void *)f.map, f.map_len);
	}
	if (!ret && f.err) {
		ret = f.err;
		/* A worker's error is in its own thread's last error: make it this one's. */
		eng__keep_error(f.why);
	}
	if (times) {
		times->fill_read += f.t_read;
		times->fill_unpack += f.t_unpack;
		times->fill_copy += f.t_copy;
		times->bytes_read += f.bytes_read;
		times->bytes_filled += f.bytes_filled;
	}
	free(f.tasks);
	free(f.order);
	free(f.vma_of);
	free(w);
	free(th);
	pthread_mutex_destroy(&f.lock);
	return ret;
}
