/*
 * Pages: find the ones worth storing, copy them while the process is frozen, and write
 * them (pagemap-PID.img, pages-PID.img) once it runs again.
 *
 * DESIGN
 * Frozen time is what a dump costs the service, so the frozen part does one thing per
 * byte: process_vm_readv straight into a buffer that was allocated and faulted in
 * before the freeze (huge pages where THP allows; a fault per 4 KiB page would cost as
 * much as the copy itself). Two threads copy halves of the runs, in batches of up to
 * 1024 remote iovecs and 4 MiB. Checksums, zero-page detection and file writes happen
 * after release, from the buffer.
 * Which pages: PAGEMAP_SCAN (6.7+) reports ranges that are present or swapped and not
 * the shared zero page in one call per mapping, without touching the pages (and so
 * without faulting anything in); for private file maps it also drops file pages, so
 * that only the COWed copies are stored. Without PAGEMAP_SCAN, /proc/PID/pagemap
 * entries give the same minus the zero-page test (those pages read as zero and are
 * stored as PM_ZERO runs, so nothing is lost).
 * Mappings without PROT_READ are read through /proc/PID/mem, whose FOLL_FORCE reads
 * what process_vm_readv refuses with EFAULT. Shared objects (shmem, deleted files) are
 * read from the object itself through map_files, at the data ranges SEEK_DATA gives:
 * pages the process never touched but the object holds (or has swapped) are included.
 *
 * With a pre-copy (mem-precopy.c) the buffer starts with what the live pass copied:
 * the frozen pass reuses what was not written since, copies written pages again over
 * their stale copy, and appends pages the live pass did not see.
 *
 * INVARIANTS
 * 1. runs[] is in address order, each inside one mapping, each at its own place in
 *    the buffer: no two runs overlap there.
 * 2. Reused runs are never written by the frozen pass.
 * 2. Worker threads never log (the kept error is per thread): they return the first
 *    failure and its address, and the caller logs it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

#include "dump.h"
#include "image.h"
#include "log.h"
#include "pagemap.pb-c.h"
#include "track.h"
#include "uapi-pagemap.h"

#define IOV_BATCH 1024			/* UIO_MAXIOV */
#define COPY_CHUNK (4ul << 20)
#define RUN_MAX_PAGES 1024		/* a pagemap entry covers at most 4 MiB */
#define SCAN_VEC 512
#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)		/* file page or shared anonymous */
#define PM_GUARD (1ull << 58)		/* a guard marker, "swapped" but no data (6.15+) */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static struct eng__page_run *new_run(struct eng__mem_dump *md)
{
	if (md->nr_runs == md->cap_runs) {
		size_t cap = md->cap_runs ? md->cap_runs * 2 : 256;
		void *p = realloc(md->runs, cap * sizeof(*md->runs));

		if (!p)
			return NULL;
		md->runs = p;
		md->cap_runs = cap;
	}
	return &md->runs[md->nr_runs++];
}

int eng__pages_add_at(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len, int how,
		      uint64_t file_off, uint64_t off)
{
	struct eng__page_run *r = md->nr_runs ? &md->runs[md->nr_runs - 1] : NULL;

	if (r && !r->reuse && r->vma == vma && r->how == how && r->vaddr + r->len == vaddr &&
	    r->off + r->len == off && (how != ENG_RD_FILE || r->file_off + r->len == file_off)) {
		r->len += len;
		return 0;
	}
	r = new_run(md);
	if (!r)
		return -ENOMEM;
	*r = (struct eng__page_run){ .vaddr = vaddr, .len = len, .off = off, .vma = vma,
				     .how = how, .file_off = file_off };
	return 0;
}

int eng__pages_add(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len, int how,
		   uint64_t file_off)
{
	int ret = eng__pages_add_at(md, vma, vaddr, len, how, file_off, md->buf_used);

	if (!ret)
		md->buf_used += len;
	return ret;
}

int eng__pages_add_reuse(struct eng__mem_dump *md, int vma, uint64_t vaddr, uint64_t len,
			 uint64_t off)
{
	struct eng__page_run *r = md->nr_runs ? &md->runs[md->nr_runs - 1] : NULL;

	if (r && r->reuse && r->vma == vma && r->vaddr + r->len == vaddr && r->off + r->len == off) {
		r->len += len;
		return 0;
	}
	r = new_run(md);
	if (!r)
		return -ENOMEM;
	*r = (struct eng__page_run){ .vaddr = vaddr, .len = len, .off = off, .vma = vma, .reuse = true };
	return 0;
}

int eng__pages_read_how(const struct eng__vma_dump *d)
{
	return d->v.prot & PROT_READ ? ENG_RD_VM : ENG_RD_MEM;
}

static int scan_pagemap(struct eng__mem_dump *md, int i, int pm_fd)
{
	const struct eng__vma_dump *d = &md->vmas[i];
	uint64_t ent[512];
	int ret = 0;

	for (uint64_t a = d->v.start; a < d->v.end && !ret;) {
		size_t n = (d->v.end - a) / ENG_PAGE_SIZE;
		ssize_t got;

		n = n < 512 ? n : 512;
		got = pread(pm_fd, ent, n * 8, a / ENG_PAGE_SIZE * 8);
		if (got != (ssize_t)(n * 8))
			return pr_errno(got < 0 ? -errno : -EIO, "pid %d: /proc/%d/pagemap at %#lx",
					md->pid, md->pid, (unsigned long)a);
		for (size_t k = 0; k < n && !ret; k++, a += ENG_PAGE_SIZE) {
			bool want = (ent[k] & (PM_PRESENT | PM_SWAPPED)) && !(ent[k] & PM_GUARD);

			if (d->src == ENG_PG_SCAN_COW && (ent[k] & PM_FILE))
				want = false;
			if (want)
				ret = eng__pages_add(md, i, a, ENG_PAGE_SIZE, eng__pages_read_how(d), 0);
		}
	}
	return ret;
}

/* One PAGEMAP_SCAN pass over a mapping; 1 when the kernel has no PAGEMAP_SCAN. */
static int scan_vma(struct eng__mem_dump *md, int i, int pm_fd)
{
	const struct eng__vma_dump *d = &md->vmas[i];
	uint64_t skip = PAGE_IS_PFNZERO | (d->src == ENG_PG_SCAN_COW ? PAGE_IS_FILE : 0);
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg a = {
		.size = sizeof(a), .start = d->v.start, .end = d->v.end,
		.vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		/* inverted + mask: these categories must be absent */
		.category_inverted = skip, .category_mask = skip,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = 0,	/* no categories back: adjacent ranges merge */
	};

	do {
		long n = ioctl(pm_fd, PAGEMAP_SCAN, &a);

		if (n < 0 && (errno == ENOTTY || errno == EINVAL) && a.start == d->v.start)
			return 1;
		if (n < 0)
			return pr_errno(-errno, "pid %d: PAGEMAP_SCAN of %#lx-%#lx", md->pid,
					(unsigned long)d->v.start, (unsigned long)d->v.end);
		for (long k = 0; k < n; k++) {
			int ret = eng__pages_add(md, i, reg[k].start, reg[k].end - reg[k].start,
						 eng__pages_read_how(d), 0);

			if (ret)
				return ret;
		}
		a.start = a.walk_end;
	} while (a.walk_end < d->v.end);
	return 0;
}

/* Data ranges of a shared object between the mapping's file offsets, via SEEK_DATA. */
static int data_runs(struct eng__mem_dump *md, int i)
{
	const struct eng__vma_dump *d = &md->vmas[i];
	off_t lo = d->v.pgoff, hi = d->v.pgoff + (d->data_end - d->v.start);

	while (lo < hi) {
		off_t data = lseek(d->file_fd, lo, SEEK_DATA), hole;
		int ret;

		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return pr_errno(-errno, "pid %d: SEEK_DATA in the object mapped at %#lx", md->pid,
					(unsigned long)d->v.start);
		if (data >= hi)
			break;
		hole = lseek(d->file_fd, data, SEEK_HOLE);
		if (hole < 0)
			return pr_errno(-errno, "pid %d: SEEK_HOLE in the object mapped at %#lx", md->pid,
					(unsigned long)d->v.start);
		data &= ~(off_t)(ENG_PAGE_SIZE - 1);
		hole = (hole + ENG_PAGE_SIZE - 1) & ~(off_t)(ENG_PAGE_SIZE - 1);
		if (hole > hi)
			hole = hi;
		ret = eng__pages_add(md, i, d->v.start + (data - d->v.pgoff), hole - data, ENG_RD_FILE,
				     data);
		if (ret)
			return ret;
		lo = hole;
	}
	return 0;
}

int eng__pages_find(struct eng__mem_dump *md)
{
	char path[64];
	int pm_fd, ret = 0;

	md->nr_runs = 0;
	md->buf_used = md->fresh_base;
	md->pages_scanned = 0;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", md->pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0)
		return pr_errno(-errno, "pid %d: %s", md->pid, path);
	for (int i = 0; i < md->nr_vmas && !ret; i++) {
		const struct eng__vma_dump *d = &md->vmas[i];

		switch (d->src) {
		case ENG_PG_NONE:
			continue;
		case ENG_PG_SCAN_ANON:
		case ENG_PG_SCAN_COW:
			md->pages_scanned += (d->v.end - d->v.start) / ENG_PAGE_SIZE;
			if (md->trk) {
				ret = eng__track_scan(md->trk, md, i, pm_fd);
				break;
			}
			if (d->tracked) {
				ret = eng__precopy_scan(md, i, pm_fd);
				break;
			}
			ret = md->no_scan ? 1 : scan_vma(md, i, pm_fd);
			if (ret == 1) {
				md->no_scan = true;
				ret = scan_pagemap(md, i, pm_fd);
			}
			break;
		case ENG_PG_ALL:
			md->pages_scanned += (d->data_end - d->v.start) / ENG_PAGE_SIZE;
			if (d->data_end > d->v.start)
				ret = eng__pages_add(md, i, d->v.start, d->data_end - d->v.start,
						     eng__pages_read_how(d), 0);
			break;
		case ENG_PG_FILE_DATA:
			md->pages_scanned += (d->data_end - d->v.start) / ENG_PAGE_SIZE;
			ret = data_runs(md, i);
			break;
		}
	}
	close(pm_fd);
	return ret;
}

/* ---- the copy buffer -------------------------------------------------------------- */

static int populate(uint8_t *p, size_t len)
{
	if (!madvise(p, len, MADV_POPULATE_WRITE))
		return 0;
	if (errno != EINVAL)
		return -errno;
	for (size_t i = 0; i < len; i += ENG_PAGE_SIZE)	/* before 5.14 */
		p[i] = 0;
	return 0;
}

/* MemAvailable in bytes, or 0 when unknown. */
static uint64_t mem_available(void)
{
	char line[128];
	unsigned long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "re");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb << 10;
}

int eng__pages_reserve(struct eng__mem_dump *md, size_t bytes)
{
	size_t cap = (bytes + (2ul << 20) - 1) & ~((2ul << 20) - 1);
	uint64_t avail;
	void *p;
	int ret;

	if (bytes <= md->buf_cap)
		return 0;
	/* Faulting in more than there is would wake the OOM killer, and it may well pick
	 * the process we are dumping. Keep a quarter of what is available for others. */
	avail = mem_available();
	if (avail && cap - md->buf_cap > avail / 4 * 3)
		return pr_errno(-ENOMEM, "pid %d: copying its pages needs %zu MiB more memory, %llu MiB "
				"are available: too big to dump yet", md->pid, (cap - md->buf_cap) >> 20,
				(unsigned long long)(avail >> 20));
	if (!md->buf)
		p = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
	else
		p = mremap(md->buf, md->buf_cap, cap, MREMAP_MAYMOVE);
	if (p == MAP_FAILED)
		return pr_errno(-errno, "pid %d: a %zu MiB buffer for its pages", md->pid, cap >> 20);
	/* THP "madvise" mode: ask, so that populating is 1 fault per 2 MiB. */
	madvise(p, cap, MADV_HUGEPAGE);
	ret = populate((uint8_t *)p + md->buf_cap, cap - md->buf_cap);
	md->buf = p;
	md->buf_cap = cap;
	return ret ? pr_errno(ret, "pid %d: faulting in the page buffer (%zu MiB)", md->pid, cap >> 20) : 0;
}

/* ---- copying while frozen --------------------------------------------------------- */

struct copy_job {
	struct eng__mem_dump *md;
	size_t first, last;	/* runs */
	int mem_fd;
	int err;
	uint64_t bad;		/* where err happened */
	struct iovec rv[IOV_BATCH], lv[IOV_BATCH];
	int n;
	size_t blen;
};

static int pread_full(int fd, uint8_t *dst, size_t len, uint64_t off, bool zero_fill)
{
	while (len) {
		ssize_t r = pread(fd, dst, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			if (!zero_fill)
				return -EIO;
			memset(dst, 0, len);	/* a shared object shrank: the map reads zero */
			return 0;
		}
		dst += r;
		len -= r;
		off += r;
	}
	return 0;
}

/* One process_vm_readv per batch, whose pages may go anywhere in the buffer (a tracked
 * page copied again goes where its live copy went): scattered single pages cost one
 * syscall per IOV_BATCH, not one each. It stops at the first page it cannot read: retry
 * a failed batch one range at a time through /proc/PID/mem (FOLL_FORCE). */
static int flush(struct copy_job *j)
{
	ssize_t got;

	if (!j->n)
		return 0;
	got = process_vm_readv(j->md->pid, j->lv, j->n, j->rv, j->n, 0);
	if (got != (ssize_t)j->blen) {
		for (int k = 0; k < j->n; k++) {
			int ret = pread_full(j->mem_fd, j->lv[k].iov_base, j->rv[k].iov_len,
					     (uintptr_t)j->rv[k].iov_base, false);

			if (ret) {
				j->bad = (uintptr_t)j->rv[k].iov_base;
				return ret;
			}
		}
	}
	j->n = 0;
	j->blen = 0;
	return 0;
}

static int copy_run(struct copy_job *j, const struct eng__page_run *r)
{
	uint8_t *buf = j->md->buf + r->off;
	int ret;

	if (r->reuse)	/* already there (invariant 2) */
		return 0;
	if (r->how != ENG_RD_VM) {
		ret = flush(j);
		if (ret)
			return ret;
		if (r->how == ENG_RD_MEM)
			ret = pread_full(j->mem_fd, buf, r->len, r->vaddr, false);
		else
			ret = pread_full(j->md->vmas[r->vma].file_fd, buf, r->len, r->file_off, true);
		if (ret)
			j->bad = r->vaddr;
		return ret;
	}
	for (uint64_t done = 0; done < r->len;) {
		uint64_t n = r->len - done;

		if (n > COPY_CHUNK - j->blen)
			n = COPY_CHUNK - j->blen;
		j->lv[j->n].iov_base = buf + done;
		j->lv[j->n].iov_len = n;
		j->rv[j->n].iov_base = (void *)(uintptr_t)(r->vaddr + done);
		j->rv[j->n].iov_len = n;
		j->n++;
		j->blen += n;
		done += n;
		if (j->n == IOV_BATCH || j->blen == COPY_CHUNK) {
			ret = flush(j);
			if (ret)
				return ret;
		}
	}
	return 0;
}

static void *copy_worker(void *arg)
{
	struct copy_job *j = arg;

	for (size_t i = j->first; i < j->last && !j->err; i++)
		j->err = copy_run(j, &j->md->runs[i]);
	if (!j->err)
		j->err = flush(j);
	return NULL;
}

int eng__pages_copy(struct eng__mem_dump *md)
{
	struct copy_job *j;
	pthread_t th;
	size_t fresh = 0;
	bool two;
	char path[64];
	int ret, mem_fd;
	size_t mid = 0;

	ret = eng__pages_reserve(md, md->buf_used);
	if (ret)
		return ret;
	snprintf(path, sizeof(path), "/proc/%d/mem", md->pid);
	mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (mem_fd < 0)
		return pr_errno(-errno, "pid %d: %s", md->pid, path);
	j = calloc(2, sizeof(*j));
	if (!j) {
		close(mem_fd);
		return -ENOMEM;
	}
	/* Split at half the bytes to copy. */
	for (size_t i = 0; i < md->nr_runs; i++)
		fresh += md->runs[i].reuse ? 0 : md->runs[i].len;
	for (size_t half = 0; mid < md->nr_runs && half < fresh / 2; mid++)
		half += md->runs[mid].reuse ? 0 : md->runs[mid].len;
	two = fresh >= (16ul << 20) && sysconf(_SC_NPROCESSORS_ONLN) > 1;
	j[0] = (struct copy_job){ .md = md, .first = 0, .last = two ? mid : md->nr_runs, .mem_fd = mem_fd };
	j[1] = (struct copy_job){ .md = md, .first = mid, .last = md->nr_runs, .mem_fd = mem_fd };
	if (two && pthread_create(&th, NULL, copy_worker, &j[1]))
		two = false, j[0].last = md->nr_runs;
	copy_worker(&j[0]);
	if (two)
		pthread_join(th, NULL);
	ret = j[0].err ? j[0].err : two ? j[1].err : 0;
	if (ret)
		ret = pr_errno(ret, "pid %d: copying its memory at %#lx", md->pid,
			       (unsigned long)(j[0].err ? j[0].bad : j[1].bad));
	free(j);
	close(mem_fd);
	return ret;
}

/* ---- writing, after release ------------------------------------------------------- */

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < ENG_PAGE_SIZE / 8; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7])
			return false;
	return true;
}

struct pm_list {
	ImgPagemapEntry *e;
	size_t n, cap;
};

static int pm_add(struct pm_list *l, uint64_t vaddr, uint64_t nr, uint32_t flags, uint64_t off,
		  uint64_t h)
{
	ImgPagemapEntry *e;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		void *p = realloc(l->e, cap * sizeof(*l->e));

		if (!p)
			return -ENOMEM;
		l->e = p;
		l->cap = cap;
	}
	e = &l->e[l->n++];
	img_pagemap_entry__init(e);
	e->has_vaddr = e->has_nr_pages = e->has_flags = 1;
	e->vaddr = vaddr;
	e->nr_pages = nr;
	e->flags = flags;
	if (flags == IMG_PAGEMAP_FLAG__PM_IN_PAGES) {
		e->has_offset = e->has_xxh3 = 1;
		e->offset = off;
		e->xxh3 = h;
	}
	return 0;
}

/* Split a run into zero and data stretches of at most RUN_MAX_PAGES; data goes out. */
static int write_run(struct eng__mem_dump *md, const struct eng__page_run *r, struct eng_img *pages,
		     struct pm_list *l)
{
	const uint8_t *base = md->buf + r->off;
	uint64_t nr = r->len / ENG_PAGE_SIZE, p = 0;
	int ret = 0;

	while (p < nr && !ret) {
		bool zero = page_is_zero(base + p * ENG_PAGE_SIZE);
		uint64_t q = p + 1;
		const uint8_t *data = base + p * ENG_PAGE_SIZE;

		while (q < nr && q - p < RUN_MAX_PAGES && page_is_zero(base + q * ENG_PAGE_SIZE) == zero)
			q++;
		if (zero) {
			ret = pm_add(l, r->vaddr + p * ENG_PAGE_SIZE, q - p, IMG_PAGEMAP_FLAG__PM_ZERO, 0, 0);
			md->pages_zero += q - p;
		} else {
			size_t len = (q - p) * ENG_PAGE_SIZE;
			uint64_t off = eng_img_raw_size(pages);

			ret = pm_add(l, r->vaddr + p * ENG_PAGE_SIZE, q - p, IMG_PAGEMAP_FLAG__PM_IN_PAGES,
				     off, XXH3_64bits(data, len));
			if (!ret)
				ret = eng_img_write_raw(pages, data, len);
			md->pages_written += q - p;
		}
		p = q;
	}
	return ret;
}

int eng__pages_write(int dirfd, struct eng__mem_dump *md, struct eng_img **pagemap,
		     struct eng_img **pages)
{
	ImgPagemapHead head = IMG_PAGEMAP_HEAD__INIT;
	struct pm_list l = { 0 };
	int ret;

	*pagemap = *pages = NULL;
	ret = eng_img_create(dirfd, ENG_IMG_PAGES, md->pid, pages);
	for (size_t i = 0; i < md->nr_runs && !ret; i++)
		ret = write_run(md, &md->runs[i], *pages, &l);
	if (!ret)
		ret = eng_img_create(dirfd, ENG_IMG_PAGEMAP, md->pid, pagemap);
	if (!ret) {
		head.has_pages_size = 1;
		head.pages_size = eng_img_raw_size(*pages);
		ret = eng_img_write(*pagemap, &head.base);
	}
	for (size_t i = 0; i < l.n && !ret; i++)
		ret = eng_img_write(*pagemap, &l.e[i].base);
	free(l.e);
	if (ret) {
		eng_img_abort(*pagemap);
		eng_img_abort(*pages);
		*pagemap = *pages = NULL;
	}
	return ret;
}
