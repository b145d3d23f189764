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
 *      that uses it; a 2 MiB chunk of a plain run; a plain run's checksum) that any
 *      number of workers take in turn. A page store's runs are taken in blob order:
 *      a late generation's address range interleaves blobs of every older generation,
 *      and each blob must be decompressed once, not once per run.
 *   3. The workers are threads of hactl, not of the restored process (which hactl
 *      traces: a thread of its own would look like a restored task to the tracer, and
 *      would take a pid the restorer may need for a thread): hactl takes the process's
 *      userfaultfd with pidfd_getfd, and writes what is not registered with
 *      process_vm_writev. A process restored by hactl alone (no workers to spare)
 *      fills itself the same way, with one worker.
 *   4. Zero pages are never touched: fresh anonymous memory reads as zero.
 *
 * INVARIANTS
 *   1. Every byte put was checked: a blob's compressed bytes against the XXH3 both its
 *      header and the page map carry (then the zstd frame's own size check); a plain
 *      run's bytes against its XXH3, computed over the same mapping of the pages image
 *      the bytes are put from (images are written once and never changed in place).
 *      A failure names the file and offset, and the process is killed by hactl with
 *      the rest of the tree (nothing of it ever ran).
 *   2. A page is put at most once: runs do not overlap (image-check.c), and UFFDIO_COPY
 *      onto a present page fails (EEXIST) rather than overwrite.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <pthread.h>
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
#define CHUNK (2ul << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

enum task_kind { T_BLOB, T_CHUNK, T_SUM };

struct task {
	enum task_kind kind;
	size_t a, b;		/* T_BLOB: order[a..b); T_CHUNK: run a, bytes [b, b + CHUNK); T_SUM: run a */
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
	bool fused;			/* one worker: a plain run is copied and summed in one pass */
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

/* One blob and every run that uses it (order[a..b)). */
static int do_blob(struct worker *w, size_t a, size_t b)
{
	struct fill *f = w->f;
	const ImgPagemapEntry *e0 = f->p->pm[f->order[a]];
	struct eng__blob_hdr h;
	char name[64];
	uint64_t t;
	size_t r, want;
	int ret;

	eng__store_pack_name(e0->pack, name, sizeof(name));
	if (w->fd < 0 || w->fd_pack != e0->pack) {
		if (w->fd >= 0)
			close(w->fd);
		w->fd = eng__pack_open(f->in->dirfd, e0->pack);
		w->fd_pack = e0->pack;
		if (w->fd < 0)
			return w->fd;
		posix_fadvise(w->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	}
	t = us();
	ret = eng__blob_read(w->fd, name, 0, e0->offset, e0->xxh3, w->cbuf, NULL, &h);
	w->t_read += us() - t;
	if (ret)
		return ret;
	w->bytes_read += h.clen;
	for (size_t k = a; k < b; k++) {
		const ImgPagemapEntry *e = f->p->pm[f->order[k]];

		if (e->blob_page + e->nr_pages > h.nr_pages)
			return pr_errno(-EBADMSG, "pagemap-%d.img: entry %zu: pages [%u, +%lu) of a %u-page blob in %s "
					"offset %lu", f->p->pid, f->order[k], e->blob_page, (unsigned long)e->nr_pages,
					h.nr_pages, name, (unsigned long)e->offset);
	}
	t = us();
	want = (size_t)h.nr_pages * PAGE;
	r = ZSTD_decompressDCtx(w->dctx, w->out, want, w->cbuf, h.clen);
	w->t_unpack += us() - t;
	if (ZSTD_isError(r) || r != want)
		return pr_errno(-EBADMSG, "%s offset %lu: blob does not decompress to its %u pages", name,
				(unsigned long)e0->offset, h.nr_pages);
	for (size_t k = a; k < b && !ret; k++) {
		size_t i = f->order[k];
		const ImgPagemapEntry *e = f->p->pm[i];

		ret = put(w, f->vma_of[i], run_dst(f, i), w->out + (size_t)e->blob_page * PAGE, e->nr_pages * PAGE);
	}
	return ret;
}

static int sum_mismatch(const struct fill *f, size_t i)
{
	const ImgPagemapEntry *e = f->p->pm[i];

	return pr_errno(-EBADMSG, "pages-%d.img: run at %#lx (%lu pages, offset %lu): checksum mismatch", f->p->pid,
			(unsigned long)e->vaddr, (unsigned long)e->nr_pages, (unsigned long)e->offset);
}

/* A plain run's bytes, from the mapped pages image (offsets checked at setup). */
static const uint8_t *plain_src(const struct fill *f, size_t i)
{
	return f->map + IMG_RAW_HDR_SIZE + f->p->pm[i]->offset;
}

static int do_chunk(struct worker *w, size_t i, size_t off)
{
	struct fill *f = w->f;
	size_t len = f->p->pm[i]->nr_pages * PAGE, n = len - off < CHUNK ? len - off : CHUNK;

	w->bytes_read += n;
	return put(w, f->vma_of[i], run_dst(f, i) + off, plain_src(f, i) + off, n);
}

static int do_sum(struct worker *w, size_t i)
{
	struct fill *f = w->f;
	const ImgPagemapEntry *e = f->p->pm[i];
	size_t len = e->nr_pages * PAGE;
	uint64_t t = us(), sum;
	int ret = 0;

	if (!f->fused) {
		sum = XXH3_64bits(plain_src(f, i), len);
		w->t_read += us() - t;
		return sum == e->xxh3 ? 0 : sum_mismatch(f, i);
	}
	/* One worker: each chunk summed right after it was put, while it is in cache. */
	{
		XXH3_state_t *st = XXH3_createState();

		if (!st)
			return -ENOMEM;
		XXH3_64bits_reset(st);
		for (size_t off = 0; off < len && !ret; off += CHUNK) {
			ret = do_chunk(w, i, off);
			t = us();
			XXH3_64bits_update(st, plain_src(f, i) + off, len - off < CHUNK ? len - off : CHUNK);
			w->t_read += us() - t;
		}
		sum = XXH3_64bits_digest(st);
		XXH3_freeState(st);
	}
	return ret ? ret : sum == e->xxh3 ? 0 : sum_mismatch(f, i);
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct fill *f = w->f;

	w->fd = -1;
	w->cbuf = malloc(eng__blob_cbound());
	w->out = malloc(TRK_BLOB_PAGES * PAGE);
	w->dctx = ZSTD_createDCtx();
	if (!w->cbuf || !w->out || !w->dctx)
		failed(f, -ENOMEM);
	while (!__atomic_load_n(&f->err, __ATOMIC_RELAXED)) {
		size_t k = __atomic_fetch_add(&f->next, 1, __ATOMIC_RELAXED);
		const struct task *t = &f->tasks[k];
		int ret;

		if (k >= f->nr_tasks)
			break;
		ret = t->kind == T_BLOB ? do_blob(w, t->a, t->b) : t->kind == T_CHUNK ? do_chunk(w, t->a, t->b)
										    : do_sum(w, t->a);
		if (ret)
			failed(f, ret);
	}
	if (w->fd >= 0)
		close(w->fd);
	free(w->cbuf);
	free(w->out);
	ZSTD_freeDCtx(w->dctx);
	pthread_mutex_lock(&f->lock);
	f->t_read += w->t_read;
	f->t_unpack += w->t_unpack;
	f->t_copy += w->t_copy;
	f->bytes_read += w->bytes_read;
	f->bytes_filled += w->bytes_filled;
	pthread_mutex_unlock(&f->lock);
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
			return pr_errno(-EINVAL, "pagemap-%d.img: entry %zu: run %#lx+%lu pages is outside every VMA",
					p->pid, i, (unsigned long)e->vaddr, (unsigned long)e->nr_pages);
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

/* The task list: plain runs first (sums, then chunks), then blobs in blob order. */
static int plan(struct fill *f)
{
	const struct rst_proc *p = f->p;
	size_t cap = 0, plain = 0;
	int ret = find_vmas(f);

	for (size_t i = 0; i < p->nr_pm && !ret; i++) {
		const ImgPagemapEntry *e = p->pm[i];

		if (e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK)
			f->order[f->nr_order++] = i;
		if (!(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PAGES))
			continue;
		if (e->offset > p->pages->raw_size || e->nr_pages * PAGE > p->pages->raw_size - e->offset)
			return pr_errno(-EBADMSG, "pages-%d.img: run at %#lx needs bytes [%lu, +%lu) of %lu",
					p->pid, (unsigned long)e->vaddr, (unsigned long)e->offset,
					(unsigned long)(e->nr_pages * PAGE), (unsigned long)p->pages->raw_size);
		plain++;
		ret = add_task(f, &cap, T_SUM, i, 0);
		for (size_t off = 0; !ret && !f->fused && off < e->nr_pages * PAGE; off += CHUNK)
			ret = add_task(f, &cap, T_CHUNK, i, off);
	}
	if (!ret && plain) {
		f->map_len = IMG_RAW_HDR_SIZE + p->pages->raw_size;
		f->map = mmap(NULL, f->map_len, PROT_READ, MAP_SHARED, p->pages->fd, 0);
		if (f->map == MAP_FAILED) {
			f->map = NULL;
			return pr_errno(-errno, "pages-%d.img: mmap of %zu bytes", p->pid, f->map_len);
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
	struct fill f = { .in = in, .p = p, .fused = in->workers <= 1 };
	int nw = in->workers < 1 ? 1 : in->workers, started = 0, ret;
	struct worker *w = calloc(nw, sizeof(*w));
	pthread_t *th = calloc(nw, sizeof(*th));

	pthread_mutex_init(&f.lock, NULL);
	f.order = malloc((p->nr_pm + 1) * sizeof(*f.order));
	f.vma_of = calloc(p->nr_pm + 1, sizeof(*f.vma_of));
	ret = w && th && f.order && f.vma_of ? plan(&f) : -ENOMEM;
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
	if (f.map)
		munmap((void *)f.map, f.map_len);
	free(f.tasks);
	free(f.order);
	free(f.vma_of);
	free(w);
	free(th);
	pthread_mutex_destroy(&f.lock);
	return ret;
}
