/*
 * A tracked target: one process checkpointed again and again into a page store, each
 * generation storing only the pages written since the last one (DESIGN.md 2 and 3).
 *
 * DESIGN
 * The tracker holds, between generations: a pidfd, the userfaultfd taken from the
 * process (async write-protect: the kernel marks a page written on the first write
 * after each re-arm, the process never waits for us), /proc/PID/pagemap, and the page
 * map of the last generation: for every page of every mapping, the pack blob and
 * page in it that hold its contents (eng__area.slot).
 *
 *   generation G          (eng_track_checkpoint -> eng__dump_tracked -> mem-*.c hooks)
 *   live     plan mappings; new ones of 4 MiB or more registered in a short stop
 *            (arm_stopped: all their pages then read as written);
 *            rounds of PAGEMAP_SCAN(WP_MATCHING): written pages and pages with no
 *            slot are copied into the staging buffer (stg), re-armed atomically by
 *            the scan; repeat while the dirty set shrinks      eng__track_live
 *   frozen   plan again; register the other new mappings (exact now: stopped); one
 *            more scan of every mapping: written or unknown pages are
 *            copied (over their staged copy when they have one); pages no longer
 *            present lose their slot           eng__track_frozen_begin/scan/absorb
 *            (a complete area, the usual case, asks the kernel for written pages
 *            only: its fast path, scan_written)
 *   release  (dump.c)
 *   write    staged pages: zero ones dropped, the others compressed into blobs of up
 *            to 256 pages appended to packs/pack-G.pack (fsynced); pagemap-PID.img
 *            lists every page's blob (PM_IN_PACK)               eng__track_write
 *   commit   .gen-G.tmp renamed to gen-G                  eng__store_commit_gen
 *
 * Which pages can be trusted without copying: a page's slot survives only while its
 * mapping stayed registered with our uffd the whole time (the frozen plan sees the
 * mapping with VM_UFFD_WP inside a range we registered), and the scan did not report
 * it written. Everything else is copied: new mappings, moved ones (mremap drops the
 * registration), grown ones (registered again, copied whole once), mappings we could
 * not register (the process's own uffd), shared and deleted-file ones (pages written
 * through other mappings are invisible to markers). After a fork, or a failed
 * generation (whose pack is gone), every slot is dropped: the next generation is full.
 * A scan that fails part-way (a mapping replaced under a live round) has re-armed
 * pages it never returned: the rest of its range loses its slots (lose_range). In a
 * private file map, a page not present is copied every time: a copied-on-write page
 * dropped by MADV_DONTNEED leaves a marker that reads "swapped, not written".
 *
 * Methods: uffd-wp as above; hash (no uffd): every present page is copied while frozen
 * and only pages whose XXH3 differs from the slot's are stored; full: every page
 * stored each time. Soft-dirty is probed by hactl check but not implemented here.
 *
 * INVARIANTS
 * 1. Between generations every slot points at a blob of a committed generation.
 * 2. stg is 0 everywhere between checkpoints; staging offsets are buf offsets.
 * 3. A page is reported by no scan only when it is not present (or the zero page):
 *    then its slot is cleared, so that a restore gives zeros, as the process sees.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "log.h"
#include "track.h"
#include "uapi-pagemap.h"

#define SCAN_VEC 512
#define PG ENG_PAGE_SIZE
/* New mappings smaller than this are registered and copied while frozen; bigger ones
 * in a short stop of their own first, and copied live. */
#define ARM_MIN (4ul << 20)

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000ull + t.tv_nsec / 1000;
}

/* ---- registered ranges ------------------------------------------------------------- */

bool eng__track_owns(const struct eng_track *t, uint64_t start, uint64_t end)
{
	for (int i = 0; i < t->nr_armed; i++)
		if (start >= t->armed[i].start && end <= t->armed[i].end)
			return true;
	return false;
}

bool eng__track_overlaps(const struct eng_track *t, uint64_t start, uint64_t end)
{
	for (int i = 0; i < t->nr_armed; i++)
		if (start < t->armed[i].end && end > t->armed[i].start)
			return true;
	return false;
}

static int add_armed(struct eng_track *t, uint64_t start, uint64_t end)
{
	void *p = realloc(t->armed, (t->nr_armed + 1) * sizeof(*t->armed));

	if (!p)
		return -ENOMEM;
	t->armed = p;
	t->armed[t->nr_armed++] = (struct eng__range){ start, end };
	return 0;
}

static bool scannable(const struct eng__vma_dump *d)
{
	return d->src == ENG_PG_SCAN_ANON || d->src == ENG_PG_SCAN_COW;
}

/* Register every scannable mapping not yet (wholly) ours; only while the process is
 * stopped (see arm_stopped). Its pages then all read as written, so the next scans copy
 * it whole once. A refusal leaves it untracked: copied whole while frozen, every
 * generation. */
static int register_new(struct eng_track *t, struct eng__mem_dump *md)
{
	if (t->uffd < 0)
		return 0;
	for (int i = 0; i < md->nr_vmas; i++) {
		struct eng__vma_dump *d = &md->vmas[i];
		struct uffdio_register reg = { .range = { d->v.start, d->v.end - d->v.start },
					       .mode = UFFDIO_REGISTER_MODE_WP };
		int ret;

		if (!scannable(d) || (d->tracked && eng__track_owns(t, d->v.start, d->v.end)))
			continue;
		if (ioctl(t->uffd, UFFDIO_REGISTER, &reg)) {
			pr_debug("pid %d: %#lx-%#lx not tracked: UFFDIO_REGISTER: %s", t->pid,
				 (unsigned long)d->v.start, (unsigned long)d->v.end, strerror(errno));
			continue;
		}
		ret = add_armed(t, d->v.start, d->v.end);
		if (ret)
			return ret;
		d->tracked = true;
	}
	return 0;
}

static int rekey(struct eng_track *t, struct eng__mem_dump *md);

/* Bytes of scannable mappings not (wholly) registered with us. */
static uint64_t unregistered(struct eng_track *t, const struct eng__mem_dump *md)
{
	uint64_t sum = 0;

	for (int i = 0; t->uffd >= 0 && i < md->nr_vmas; i++) {
		const struct eng__vma_dump *d = &md->vmas[i];

		if (scannable(d) && !(d->tracked && eng__track_owns(t, d->v.start, d->v.end)))
			sum += d->v.end - d->v.start;
	}
	return sum;
}

/*
 * Register new mappings in a short stop of the process, so that the live rounds copy
 * them. Registering while it runs is not safe: between our reading of maps and the
 * UFFDIO_REGISTER, the process may unmap and map again, and registering a stale range
 * would split its new mapping in two (an mremap of it then fails with EFAULT).
 */
static int arm_stopped(struct eng_track *t, struct eng__mem_dump *md)
{
	struct eng_victim *v;
	uint64_t t0 = now_us();
	int ret = eng_seize(t->pid, &v);

	if (ret)
		return ret;
	ret = eng__vma_plan(t->pid, md);
	if (!ret)
		ret = rekey(t, md);
	if (!ret)
		ret = register_new(t, md);
	eng_release(v);
	t->cur->arm_us += now_us() - t0;
	return ret;
}

/* ---- the page map ------------------------------------------------------------------ */

static void area_free(struct eng__area *a)
{
	free(a->slot);
	free(a->stg);
	free(a->hash);
}

static void drop_all_slots(struct eng_track *t)
{
	for (int i = 0; i < t->nr_areas; i++)
		area_free(&t->areas[i]);
	free(t->areas);
	t->areas = NULL;
	t->nr_areas = 0;
}

static struct eng__area *area_of(struct eng_track *t, uint64_t addr)
{
	int lo = 0, hi = t->nr_areas;

	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (t->areas[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->nr_areas && t->areas[lo].start <= addr ? &t->areas[lo] : NULL;
}

/* Whether the pages of mapping d may keep what they had: see the DESIGN. */
static bool keeps_slots(const struct eng_track *t, const struct eng__vma_dump *d)
{
	if (t->method == ENG_DIRTY_HASH)
		return true;	/* every page is compared by content anyway */
	return t->method == ENG_DIRTY_UFFD_WP && scannable(d) && d->tracked &&
	       eng__track_owns(t, d->v.start, d->v.end);
}

/* New areas for the mappings of this plan, carrying over what may be kept. An area of
 * the same bounds is taken over whole: its arrays move, nothing is copied (a 512 MiB
 * mapping has 128 Ki pages, and this runs while the process is frozen). */
static int rekey(struct eng_track *t, struct eng__mem_dump *md)
{
	struct eng__area *na = calloc(md->nr_vmas + 1, sizeof(*na));
	int n = 0;

	if (!na)
		return -ENOMEM;
	for (int i = 0; i < md->nr_vmas; i++) {
		const struct eng__vma_dump *d = &md->vmas[i];
		struct eng__area *a = &na[n];
		uint64_t np = (d->v.end - d->v.start) / PG;
		struct eng__area *o;
		bool complete = true;

		if (d->src == ENG_PG_NONE)
			continue;
		a->start = d->v.start;
		a->end = d->v.end;
		o = keeps_slots(t, d) ? area_of(t, a->start) : NULL;
		if (o && o->start == a->start && o->end == a->end && o->slot && o->stg &&
		    (!!o->hash == (t->method == ENG_DIRTY_HASH))) {
			*a = *o;
			o->slot = NULL, o->stg = NULL, o->hash = NULL;
			n++;
			continue;
		}
		a->slot = calloc(np, sizeof(*a->slot));
		a->stg = calloc(np, sizeof(*a->stg));
		a->hash = t->method == ENG_DIRTY_HASH ? calloc(np, sizeof(*a->hash)) : NULL;
		n++;
		if (!a->slot || !a->stg || (t->method == ENG_DIRTY_HASH && !a->hash)) {
			for (int k = 0; k < n; k++)
				area_free(&na[k]);
			free(na);
			return -ENOMEM;
		}
		if (!keeps_slots(t, d))
			continue;
		for (uint64_t p = 0; p < np;) {
			uint64_t addr = a->start + p * PG, end;

			o = area_of(t, addr);
			if (!o || !o->slot) {
				complete = false;
				p++;
				continue;
			}
			complete &= o->complete;
			end = o->end < a->end ? o->end : a->end;
			for (; addr < end; addr += PG, p++) {
				uint64_t k = (addr - o->start) / PG;

				a->slot[p] = o->slot[k];
				a->stg[p] = o->stg[k];
				if (a->hash && o->hash)
					a->hash[p] = o->hash[k];
			}
		}
		a->complete = complete;
	}
	drop_all_slots(t);
	t->areas = na;
	t->nr_areas = n;
	return 0;
}

/* ---- scanning and copying ---------------------------------------------------------- */

static int stage(struct eng__mem_dump *md, struct eng__area *a, int vma, uint64_t addr, uint64_t len)
{
	int how = eng__pages_read_how(&md->vmas[vma]);
	uint64_t p = (addr - a->start) / PG;

	for (uint64_t done = 0; done < len; done += PG, p++) {
		uint64_t off;
		int ret;

		if (a->stg[p]) {
			off = (uint64_t)(a->stg[p] - 1) * PG;
		} else {
			off = md->buf_used;
			md->buf_used += PG;
			a->stg[p] = off / PG + 1;
		}
		ret = eng__pages_add_at(md, vma, addr + done, PG, how, 0, off);
		if (ret)
			return ret;
	}
	return 0;
}

/* Pages [from, to) were not reported: not present (invariant 3). */
static void clear_range(struct eng__area *a, uint64_t from, uint64_t to)
{
	for (uint64_t x = from; x < to; x += PG) {
		uint64_t p = (x - a->start) / PG;

		a->slot[p] = 0;
		a->stg[p] = 0;
	}
}

/*
 * A PAGEMAP_SCAN(WP_MATCHING) that fails has re-armed the written pages it walked
 * before failing, and returned none of them: their markers no longer say that they
 * changed. That happens under a live round when the process replaced the upper part of
 * a mapping since our plan (two registered mappings merged into one; the new one is
 * not registered: EPERM where it starts). Forget what we hold for the rest of the
 * range, so that every page present there is copied again (the frozen pass walks an
 * incomplete area whole).
 */
static void lose_range(struct eng__area *a, uint64_t from, uint64_t to)
{
	clear_range(a, from, to);
	a->complete = false;
}

/*
 * One PAGEMAP_SCAN walk of mapping vma: present (or swapped), not the zero page, not a
 * file page of a private file map; written ones re-armed when the mapping is ours.
 * Copy what was written or has no data yet; with `frozen`, forget what is gone.
 * *nr: pages queued for copying.
 */
static int scan_vma(struct eng_track *t, struct eng__mem_dump *md, int vma, bool frozen, uint64_t *nr)
{
	const struct eng__vma_dump *d = &md->vmas[vma];
	struct eng__area *a = area_of(t, d->v.start);
	bool wp = t->uffd >= 0 && d->tracked && eng__track_owns(t, d->v.start, d->v.end);
	bool cow = d->src == ENG_PG_SCAN_COW;
	uint64_t skip = PAGE_IS_PFNZERO | (cow ? PAGE_IS_FILE : 0);
	uint64_t seen = d->v.start;
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .flags = wp ? PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC : 0,
		.start = d->v.start, .end = d->v.end, .vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		.category_inverted = skip, .category_mask = skip,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_WRITTEN | (cow ? PAGE_IS_PRESENT : 0),
	};

	if (!a || a->end != d->v.end)
		return pr_errno(-EPROTO, "pid %d: no page map for %#lx-%#lx", t->pid,
				(unsigned long)d->v.start, (unsigned long)d->v.end);
	do {
		long n = ioctl(t->pm_fd, PAGEMAP_SCAN, &arg);

		if (n < 0) {
			int err = -errno;

			lose_range(a, arg.start, d->v.end);
			return pr_errno(err, "pid %d: PAGEMAP_SCAN of %#lx-%#lx", t->pid,
					(unsigned long)d->v.start, (unsigned long)d->v.end);
		}
		for (long k = 0; k < n; k++) {
			/* Unregistered pages have no marker: they read as written. In a private
			 * file map, a copied-on-write page we armed and the process then dropped
			 * (MADV_DONTNEED) leaves a marker that reads as swapped and not written,
			 * while the process now sees the file's page there: a page not present
			 * there is copied every time (a swapped-out one too). */
			bool written = !wp || (reg[k].categories & PAGE_IS_WRITTEN) ||
				       (cow && !(reg[k].categories & PAGE_IS_PRESENT));

			if (frozen && reg[k].start > seen)
				clear_range(a, seen, reg[k].start);
			seen = reg[k].end;
			for (uint64_t x = reg[k].start; x < reg[k].end;) {
				uint64_t p = (x - a->start) / PG, y = x;
				bool want = written || (!a->slot[p] && !a->stg[p]);
				int ret;

				/* a stretch of pages with the same answer */
				while (y < reg[k].end) {
					uint64_t q = (y - a->start) / PG;

					if ((written || (!a->slot[q] && !a->stg[q])) != want)
						break;
					y += PG;
				}
				if (want) {
					ret = stage(md, a, vma, x, y - x);
					if (ret) {
						lose_range(a, x, d->v.end);
						return ret;
					}
					*nr += (y - x) / PG;
				}
				x = y;
			}
		}
		arg.start = arg.walk_end;
	} while (arg.walk_end < d->v.end);
	if (frozen && seen < d->v.end)
		clear_range(a, seen, d->v.end);
	a->complete = true;
	return 0;
}

/*
 * Whether the kernel's fast written-only scan (below) reports pages that are gone as
 * written: a pte_none entry, a range whose page table was freed by MADV_DONTNEED
 * (CONFIG_PT_RECLAIM), and a dropped transparent huge page, which leaves no page table
 * either. Then a page that vanished is copied (it reads as zeros) and cannot keep a
 * stale slot. Tried once on our own memory; without it, the full walk.
 */
static bool fast_scan_sound(void)
{
	static int sound = -1;
	const size_t H = 2ul << 20;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};
	uint8_t *raw = MAP_FAILED, *m;
	uint64_t seen = 0;
	int uffd = -1, pm = -1;

	if (sound >= 0)
		return sound;
	sound = 0;
	raw = mmap(NULL, 4 * H, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (raw == MAP_FAILED || uffd < 0 || pm < 0 || ioctl(uffd, UFFDIO_API, &api))
		goto out;
	/* three 2 MiB chunks: a huge page, small pages dropped whole, one dropped page */
	m = (uint8_t *)(((uintptr_t)raw + H - 1) & ~(H - 1));
	madvise(m, H, MADV_HUGEPAGE);
	madvise(m + H, 2 * H, MADV_NOHUGEPAGE);
	memset(m, 1, 3 * H);
	{
		struct uffdio_register r = { .range = { (uintptr_t)m, 3 * H }, .mode = UFFDIO_REGISTER_MODE_WP };

		if (ioctl(uffd, UFFDIO_REGISTER, &r))
			goto out;
	}
	for (int pass = 0; pass < 2; pass++) {
		if (pass) {
			madvise(m, 2 * H, MADV_DONTNEED);
			madvise(m + 2 * H, PG, MADV_DONTNEED);
		}
		arg.start = (uintptr_t)m;
		arg.end = (uintptr_t)m + 3 * H;
		seen = 0;
		do {
			long n = ioctl(pm, PAGEMAP_SCAN, &arg);

			if (n < 0)
				goto out;
			for (long k = 0; k < n; k++)
				seen += (reg[k].end - reg[k].start) / PG;
			arg.start = arg.walk_end;
		} while (arg.walk_end < arg.end);
	}
	sound = seen == 2 * H / PG + 1;
	if (!sound)
		pr_debug("the written-only PAGEMAP_SCAN reports %lu of %lu dropped pages: full walks while frozen",
			 (unsigned long)seen, (unsigned long)(2 * H / PG + 1));
out:
	if (uffd >= 0)
		close(uffd);
	if (pm >= 0)
		close(pm);
	if (raw != MAP_FAILED)
		munmap(raw, 4 * H);
	return sound;
}

/*
 * The scan of a complete area (see struct eng__area), live or frozen: only the pages
 * written since the last scan, re-armed. category_mask = return_mask = PAGE_IS_WRITTEN and
 * nothing else is the kernel's fast path, a test of one bit per page table entry
 * (measured here: 0.2-0.7 ms for 512 MiB against 1.8 ms and more for the walk that
 * classifies every page). Pages that are gone read as written there
 * (fast_scan_sound): they are copied as zeros and lose what their slot held
 * (invariant 3). Every other present page keeps its slot or staged copy: the area is
 * complete, and they were not written since.
 */
static int scan_written(struct eng_track *t, struct eng__mem_dump *md, int vma, struct eng__area *a,
			    uint64_t *nr)
{
	const struct eng__vma_dump *d = &md->vmas[vma];
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = d->v.start, .end = d->v.end, .vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};

	do {
		long n = ioctl(t->pm_fd, PAGEMAP_SCAN, &arg);

		if (n < 0) {
			int err = -errno;

			lose_range(a, arg.start, d->v.end);
			return pr_errno(err, "pid %d: PAGEMAP_SCAN of %#lx-%#lx", t->pid,
					(unsigned long)d->v.start, (unsigned long)d->v.end);
		}
		for (long k = 0; k < n; k++) {
			int ret = stage(md, a, vma, reg[k].start, reg[k].end - reg[k].start);

			if (ret) {
				lose_range(a, reg[k].start, d->v.end);
				return ret;
			}
			*nr += (reg[k].end - reg[k].start) / PG;
		}
		arg.start = arg.walk_end;
	} while (arg.walk_end < d->v.end);
	return 0;
}

/* After a copy: every copied run's pages are staged at their buffer offsets. */
int eng__track_absorb(struct eng_track *t, struct eng__mem_dump *md)
{
	for (size_t i = 0; i < md->nr_runs; i++) {
		const struct eng__page_run *r = &md->runs[i];

		for (uint64_t x = 0; x < r->len; x += PG) {
			struct eng__area *a = area_of(t, r->vaddr + x);

			if (!a)
				return pr_errno(-EPROTO, "pid %d: page %#lx copied outside every mapping", t->pid,
						(unsigned long)(r->vaddr + x));
			a->stg[(r->vaddr + x - a->start) / PG] = (r->off + x) / PG + 1;
		}
	}
	return 0;
}

/* A round that failed after its scan re-armed pages: those pages' copies cannot be
 * trusted, and the markers no longer say they changed. Forget them entirely, so that
 * the frozen pass copies them (no slot, nothing staged). */
static void forget_runs(struct eng_track *t, struct eng__mem_dump *md)
{
	for (int i = 0; i < t->nr_areas; i++)
		t->areas[i].complete = false;
	for (size_t i = 0; i < md->nr_runs; i++)
		for (uint64_t x = 0; x < md->runs[i].len; x += PG) {
			struct eng__area *a = area_of(t, md->runs[i].vaddr + x);

			if (a) {
				a->slot[(md->runs[i].vaddr + x - a->start) / PG] = 0;
				a->stg[(md->runs[i].vaddr + x - a->start) / PG] = 0;
			}
		}
}

static bool fast_ok(struct eng_track *t, const struct eng__mem_dump *md, int vma);

/* One live round over every tracked mapping: scan, copy, take the copies in. */
static int live_round(struct eng_track *t, struct eng__mem_dump *md, uint64_t *nr)
{
	int ret = 0;

	md->nr_runs = 0;
	for (int i = 0; i < md->nr_vmas && !ret; i++)
		if (scannable(&md->vmas[i]) && md->vmas[i].tracked) {
			ret = fast_ok(t, md, i) ? scan_written(t, md, i, area_of(t, md->vmas[i].v.start), nr)
						: scan_vma(t, md, i, false, nr);
			/* Unmapped or remapped meanwhile: what the scan had re-armed is
			 * forgotten (lose_range), the frozen pass copies it. */
			if (ret == -EPERM)
				ret = 0;
		}
	if (!ret && *nr)
		ret = eng__pages_copy(md);
	if (!ret)
		ret = eng__track_absorb(t, md);
	return ret;
}

/*
 * For tests (HA_TEST_TRACK_LIVE_SIGNAL=N): between the plan of the live rounds and
 * their first scan, send the process signal N and wait until it has stopped itself
 * (raise(SIGSTOP) once it has changed what the test wants changed), then let it go on.
 * What a process may do there at any moment on a busy machine, a test does on purpose.
 */
static void live_hook(struct eng_track *t)
{
	const char *s = getenv("HA_TEST_TRACK_LIVE_SIGNAL");
	int sig = s ? atoi(s) : 0;

	if (sig <= 0 || kill(t->pid, sig))
		return;
	for (int i = 0; i < 60000; i++) {
		struct eng__stat st;

		if (eng__parse_stat(t->pid, 0, &st) || st.state == 'T')
			break;
		usleep(1000);
	}
	kill(t->pid, SIGCONT);
}

int eng__track_live(struct eng_track *t, struct eng__mem_dump *md)
{
	struct eng_track_stats *st = t->cur;
	int max = t->o.max_rounds > 0 ? t->o.max_rounds : 8;
	uint64_t min = t->o.min_round_pages ? t->o.min_round_pages : 64, prev = UINT64_MAX;
	uint64_t t0 = now_us();
	int ret;

	ret = eng__vma_flags_snapshot(t->pid, md);
	if (!ret)
		ret = eng__vma_plan(t->pid, md);
	if (!ret)
		ret = rekey(t, md);
	if (!ret && unregistered(t, md) >= ARM_MIN)
		ret = arm_stopped(t, md);
	if (ret)
		return ret;
	live_hook(t);
	eng__log_quiet(true);
	/* hash and full: nothing tells what changed; everything is copied while frozen. */
	for (int r = 0, fails = 0; !ret && t->uffd >= 0 && r < max; r++) {
		uint64_t nr = 0;

		ret = live_round(t, md, &nr);
		if (ret && ret != -ENOMEM && ++fails <= 3) {
			/* The process unmapped something between our scan and our copy: plan
			 * again and go on; the pages of this round are copied by the next. */
			pr_debug("pid %d: pre-copy round %d failed (%s): planning again", t->pid, r + 1,
				 eng_last_error());
			forget_runs(t, md);
			ret = eng__vma_plan(t->pid, md);
			if (!ret)
				ret = rekey(t, md);
			prev = UINT64_MAX;
			continue;
		}
		if (ret) {
			forget_runs(t, md);
			break;
		}
		st->precopy_rounds++;
		st->pages_precopied += nr;
		pr_debug("pid %d: pre-copy round %d: %lu pages", t->pid, r + 1, (unsigned long)nr);
		if (nr < min || nr >= prev)
			break;
		prev = nr;
	}
	md->nr_runs = 0;
	eng__log_quiet(false);
	st->precopy_us = now_us() - t0;
	if (ret) {
		/* Pages may vanish under a running process: the frozen pass copies those. */
		pr_debug("pid %d: a pre-copy round failed: %s", t->pid, eng_last_error());
		return ret == -ENOMEM ? ret : 0;
	}
	return 0;
}

/*
 * One more live round, right before the freeze: what the process wrote while the
 * smaps snapshot was read (tens of ms for a large process) is copied now rather than
 * frozen. Complete areas take the written-only scan, a fraction of a full one.
 */
int eng__track_last_round(struct eng_track *t, struct eng__mem_dump *md)
{
	uint64_t nr = 0, t0 = now_us();
	int ret;

	if (t->uffd < 0)
		return 0;
	eng__log_quiet(true);
	ret = live_round(t, md, &nr);
	if (ret)
		forget_runs(t, md);
	md->nr_runs = 0;
	eng__log_quiet(false);
	t->cur->precopy_us += now_us() - t0;
	if (!ret) {
		t->cur->precopy_rounds++;
		t->cur->pages_precopied += nr;
	}
	pr_debug("pid %d: last pre-copy round: %lu pages", t->pid, (unsigned long)nr);
	/* A failure leaves its pages to the frozen pass, as in eng__track_live. */
	return ret == -ENOMEM ? ret : 0;
}

void eng__track_unstage(struct eng_track *t)
{
	for (int i = 0; i < t->nr_areas; i++)
		for (uint64_t p = 0; p < (t->areas[i].end - t->areas[i].start) / PG; p++)
			if (t->areas[i].stg[p])
				t->areas[i].stg[p] = 0, t->areas[i].slot[p] = 0, t->areas[i].complete = false;
}

int eng__track_frozen_begin(struct eng_track *t, struct eng__mem_dump *md)
{
	int ret;

	md->fresh_base = md->buf_used;
	ret = rekey(t, md);	/* first: a registration made now keeps nothing */
	/* Stopped, the plan is exact: register what is new, for the next generation
	 * (its pages read as written: this scan copies them whole). */
	return ret ? ret : register_new(t, md);
}

/* Whether scan_written may replace scan_vma for mapping vma. File pages of a
 * private file mapping would read as written there: those keep the full walk. */
static bool fast_ok(struct eng_track *t, const struct eng__mem_dump *md, int vma)
{
	const struct eng__vma_dump *d = &md->vmas[vma];
	const struct eng__area *a = area_of(t, d->v.start);

	return !getenv("HA_TEST_TRACK_SLOW_SCAN") && t->uffd >= 0 && d->src == ENG_PG_SCAN_ANON &&
	       d->tracked && eng__track_owns(t, d->v.start, d->v.end) && a && a->end == d->v.end &&
	       a->complete && fast_scan_sound();
}

int eng__track_scan(struct eng_track *t, struct eng__mem_dump *md, int vma, int pm_fd)
{
	uint64_t nr = 0;
	size_t runs = md->nr_runs, used = md->buf_used;
	int ret;

	(void)pm_fd;
	eng__log_quiet(true);
	ret = fast_ok(t, md, vma) ? scan_written(t, md, vma, area_of(t, md->vmas[vma].v.start), &nr)
				  : scan_vma(t, md, vma, true, &nr);
	eng__log_quiet(false);
	if (ret == -EPERM) {
		/* A mapping that looked registered is not (a new one in the place and shape of
		 * an old one keeps its smaps snapshot): copy it whole, as untracked. */
		struct eng__vma_dump *d = &md->vmas[vma];
		struct eng__area *a = area_of(t, d->v.start);

		pr_debug("pid %d: %#lx-%#lx is not registered after all: copied whole", t->pid,
			 (unsigned long)d->v.start, (unsigned long)d->v.end);
		md->nr_runs = runs;
		md->buf_used = used;
		d->tracked = false;
		nr = 0;
		if (a)
			clear_range(a, a->start, a->end);
		ret = scan_vma(t, md, vma, true, &nr);
	}
	t->cur->pages_frozen += nr;
	return ret;
}

/* ---- open, checkpoint, close ------------------------------------------------------- */

/* The process's children now, sorted: a new one means it forked. */
static int read_children(pid_t pid, pid_t **out, int *nr)
{
	char path[64], *buf;
	size_t len;
	pid_t *c = NULL;
	int n = 0;
	DIR *d;
	struct dirent *de;

	*out = NULL;
	*nr = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return pr_errno(-errno, "pid %d: %s", pid, path);
	while ((de = readdir(d))) {
		char name[300];
		char *s, *e;

		if (de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "task/%s/children", de->d_name);
		if (eng__proc_read(pid, name, &buf, &len))
			continue;	/* the thread is gone */
		for (s = buf; s < buf + len; s = e) {
			long v = strtol(s, &e, 10);
			void *p;

			if (e == s)
				break;
			p = realloc(c, (n + 1) * sizeof(*c));
			if (!p) {
				free(buf);
				closedir(d);
				free(c);
				return -ENOMEM;
			}
			c = p;
			c[n++] = v;
		}
		free(buf);
	}
	closedir(d);
	*out = c;
	*nr = n;
	return 0;
}

static bool forked(struct eng_track *t)
{
	pid_t *c;
	int n;
	bool news = false;

	if (read_children(t->pid, &c, &n))
		return true;	/* cannot tell: be safe */
	for (int i = 0; i < n && !news; i++) {
		bool known = false;

		for (int k = 0; k < t->nr_children && !known; k++)
			known = t->children[k] == c[i];
		news = !known;
	}
	free(t->children);
	t->children = c;
	t->nr_children = n;
	return news;
}

static int pick_method(struct eng_track *t, const struct eng_track_opts *o)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	enum eng_dirty_method m = o->force_method ? o->method : ENG_DIRTY_UFFD_WP;
	int ret;

	if (m == ENG_DIRTY_SOFT_DIRTY)
		return eng__refuse("soft-dirty tracking is not implemented (this kernel lacks it "
				   "too); use uffd-wp, hash or full");
	t->method = m;
	if (m != ENG_DIRTY_UFFD_WP)
		return 0;
	ret = eng__precopy_take_uffd(t->pid, &t->uffd);
	if (ret == 0 && ioctl(t->uffd, UFFDIO_API, &api)) {
		pr_info("pid %d: UFFDIO_API(WP_ASYNC): %s", t->pid, strerror(errno));
		close(t->uffd);
		t->uffd = -1;
		ret = 1;
	}
	if (ret < 0)
		return ret;
	if (ret == 1) {
		if (o->force_method)
			return eng__refuse("pid %d: uffd-wp tracking is not available on this kernel", t->pid);
		pr_info("pid %d: no uffd async write-protect: tracking by hash", t->pid);
		t->method = ENG_DIRTY_HASH;
	}
	return 0;
}

int eng_track_open(pid_t pid, const char *store_dir, const struct eng_track_opts *opts,
		   struct eng_track **out)
{
	struct eng_track_opts none = { 0 };
	struct eng__pidns ns;
	struct eng_track *t;
	char path[64];
	int ret;

	eng__clear_error();
	*out = NULL;
	if (pid <= 0 || pid == getpid())
		return pr_errno(-EINVAL, "pid %d: cannot track that process", pid);
	/* Our init, or a service under it: the service's memory is the tracked one, and
	 * each generation is dumped from it like eng_dump does (pidns.c). */
	ret = eng__pidns_resolve(pid, &ns);
	if (ret)
		return ret;
	pid = ns.root;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->pid = pid;
	t->uffd = t->pm_fd = -1;
	t->o = opts ? *opts : none;
	t->st.fd = t->st.packs_fd = t->st.lock_fd = -1;
	t->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (t->pidfd < 0) {
		ret = pr_errno(-errno, "pid %d: pidfd_open", pid);
		goto err;
	}
	ret = eng__task_precheck(pid, false, ns.init);
	if (!ret)
		ret = eng__store_open(store_dir, &t->st);
	if (ret)
		goto err;
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	t->pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pm_fd < 0) {
		ret = pr_errno(-errno, "pid %d: %s", pid, path);
		goto err;
	}
	ret = pick_method(t, &t->o);
	if (ret)
		goto err;
	if (t->uffd >= 0)
		fast_scan_sound();	/* now, not in the first freeze that asks */
	read_children(pid, &t->children, &t->nr_children);
	t->reset = true;
	*out = t;
	return 0;
err:
	eng_track_close(t);
	return ret;
}

int eng__track_adopt_arm(struct eng_track *t, struct eng__mem_dump *md)
{
	int ret = register_new(t, md);

	if (!ret)
		ret = read_children(t->pid, &t->children, &t->nr_children);
	if (!ret)
		fast_scan_sound();
	return ret;
}

enum eng_dirty_method eng_track_method(const struct eng_track *t)
{
	return t->method;
}

static bool process_gone(struct eng_track *t)
{
	struct pollfd p = { .fd = t->pidfd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

static uint64_t dir_bytes(int dirfd, const char *name)
{
	uint64_t sum = 0;
	struct dirent *de;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct stat st;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)))
		if (!fstatat(fd, de->d_name, &st, 0) && S_ISREG(st.st_mode))
			sum += st.st_size;
	closedir(d);
	return sum;
}

int eng_track_checkpoint(struct eng_track *t, const struct eng_track_opts *opts,
			 struct eng_track_stats *st)
{
	struct eng_track_stats local;
	struct eng_dump_stats ds;
	char tmp[64], path[4200], pack[64];
	uint64_t t0 = now_us();
	int ret;

	eng__clear_error();
	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	if (opts) {
		t->o.max_rounds = opts->max_rounds;
		t->o.min_round_pages = opts->min_round_pages;
		t->o.zstd_level = opts->zstd_level;
	}
	if (process_gone(t))
		return pr_errno(-ESRCH, "pid %d: the tracked process has exited", t->pid);
	if (forked(t) && !t->reset) {
		pr_info("pid %d forked: this generation stores every page", t->pid);
		t->reset = true;
	}
	if (t->reset || t->method == ENG_DIRTY_FULL) {
		drop_all_slots(t);
		st->full = true;
	}
	t->gen = t->st.next_gen;
	st->generation = t->gen;
	t->cur = st;
	t->pack_bytes = 0;
	eng__store_tmp_name(t->gen, tmp, sizeof(tmp));
	eng__store_pack_name(t->gen, pack, sizeof(pack));
	snprintf(path, sizeof(path), "%s/%s", t->st.path, tmp);
	/* A tree that changes under the dump (a child exiting) fails an attempt before
	 * anything is written: the page map is still good, try again. */
	for (int tries = 0;; tries++) {
		t->writing = false;
		ret = eng__dump_tracked(t, path, &ds);
		if (!ret)
			ret = eng__store_commit_gen(&t->st, t->gen);
		if (!ret)
			break;
		/* The dump took its images and directory away; the pack is ours to take. */
		unlinkat(t->st.packs_fd, pack, 0);
		eng__store_rm_dir(t->st.fd, tmp);
		if (t->writing || tries == 2 || process_gone(t))
			break;
		pr_info("pid %d: generation %u: %s; trying again", t->pid, t->gen, eng_last_error());
		eng__track_unstage(t);
		eng__clear_error();
		memset(st, 0, sizeof(*st));
		st->generation = t->gen;
		st->full = t->reset || t->method == ENG_DIRTY_FULL;
	}
	st->pause_us = ds.frozen_us;
	st->steps = ds.steps;
	st->pages_scanned = ds.pages_scanned;
	st->pages_zero = ds.pages_zero;
	t->cur = NULL;
	if (ret) {
		t->st.next_gen = t->gen + 1;	/* never reuse a number a reader may have seen */
		drop_all_slots(t);
		t->reset = true;
		return ret;
	}
	eng__store_gen_name(t->gen, tmp, sizeof(tmp));
	st->bytes_written = t->pack_bytes + dir_bytes(t->st.fd, tmp);
	st->bytes_raw = st->pages_written * PG;
	t->st.next_gen = t->gen + 1;
	t->slots_gen = t->gen;
	t->reset = false;
	st->total_us = now_us() - t0;
	return 0;
}

int eng_track_delete(struct eng_track *t, uint32_t gen, uint64_t *bytes_freed)
{
	eng__clear_error();
	if (!gen || gen >= t->st.next_gen)
		return pr_errno(-ENOENT, "%s: no generation %u", t->st.path, gen);
	/* Its blobs may be freed: the page map must not point at them any more. */
	if (gen == t->st.next_gen - 1 || gen == t->slots_gen) {
		drop_all_slots(t);
		t->reset = true;
	}
	return eng__store_delete_locked(&t->st, gen, bytes_freed);
}

void eng_track_close(struct eng_track *t)
{
	if (!t)
		return;
	/* The last reference to the uffd: the kernel unregisters every range. */
	if (t->uffd >= 0)
		close(t->uffd);
	if (t->pm_fd >= 0)
		close(t->pm_fd);
	if (t->pidfd >= 0)
		close(t->pidfd);
	eng__store_close(&t->st);
	drop_all_slots(t);
	free(t->armed);
	free(t->blobs);
	free(t->children);
	if (t->buf)
		munmap(t->buf, t->buf_cap);
	free(t);
}
