/*
 * Pre-copy: copy the pages while the process runs, so that the frozen pass only copies
 * what was written since (DESIGN.md 2.1 and 3.1, for one checkpoint).
 *
 * DESIGN
 *   arm      stop the process briefly (9 ms for 512 MiB); inject
 *            userfaultfd(UFFD_USER_MODE_ONLY) and take the fd with pidfd_getfd (the
 *            target's copy is closed again); UFFDIO_API with UFFD_FEATURE_WP_ASYNC;
 *            register every mapping whose pages are found by scanning (anonymous,
 *            private file) for MODE_WP, and write-protect its pages (PAGEMAP_SCAN
 *            with PM_SCAN_WP_MATCHING); release
 *   copy     while it runs: scan and copy every page, as the frozen pass would
 *   frozen   one PAGEMAP_SCAN per tracked mapping, returning PAGE_IS_WRITTEN: pages
 *            not written since arming are reused from the live copy, written ones
 *            are copied again over their stale copy, new ones appended; untracked
 *            mappings are copied whole as without pre-copy
 *   end      close the uffd, once the process runs again: the kernel unregisters
 *            every range and clears the markers (25 ms for 512 MiB, during which
 *            the process's page faults in those ranges wait), leaving it as it was
 * With async WP the kernel resolves write faults itself: the process pays ~1 us on
 * its first write to each page and never waits for us. A write after arming clears
 * the page's marker, and pages faulted in after arming never had one: both read as
 * written. So a page is reused only when it is present now, unwritten, and inside a
 * run the live pass copied (after arming, so its copy is at least that recent).
 *
 * What is left untracked: mappings registered by the process itself (EBUSY), moved
 * with mremap (the kernel drops the registration without UFFD_FEATURE_EVENT_REMAP),
 * created after arming, and shared or deleted-file ones (pages written through other
 * mappings are never seen by the markers): the frozen pass copies those whole.
 * While armed, the process cannot register those ranges with a userfaultfd of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"
#include "track.h"
#include "uapi-pagemap.h"

#define SCAN_VEC 512

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000ull + t.tv_nsec / 1000;
}

/* userfaultfd() run in the target, its fd moved to us, the target's closed again. */
static int take_uffd(struct eng_victim *v, int *uffd)
{
	long r, c;
	int ret = eng__remote_syscall(v, &r, __NR_userfaultfd,
				      O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0, 0, 0, 0, 0);

	if (ret)
		return ret;
	if (r < 0) {
		pr_info("pid %d: userfaultfd: %s; no pre-copy", v->pid, strerror((int)-r));
		return 1;
	}
	*uffd = syscall(SYS_pidfd_getfd, v->pidfd, (int)r, 0);
	ret = *uffd < 0 ? -errno : 0;
	if (eng__remote_syscall(v, &c, __NR_close, r, 0, 0, 0, 0, 0) || c)
		pr_warn("pid %d: closing its userfaultfd %ld", v->pid, r);
	if (ret)
		return pr_errno(ret, "pid %d: pidfd_getfd of its userfaultfd", v->pid);
	return 0;
}

static int add_armed(struct eng__precopy *pc, uint64_t start, uint64_t end)
{
	void *p = realloc(pc->armed, (pc->nr_armed + 1) * sizeof(*pc->armed));

	if (!p)
		return -ENOMEM;
	pc->armed = p;
	pc->armed[pc->nr_armed].start = start;
	pc->armed[pc->nr_armed].end = end;
	pc->nr_armed++;
	return 0;
}

/* Write-protect every page of a registered range: PAGEMAP_SCAN with WP_MATCHING (3x
 * faster than UFFDIO_WRITEPROTECT here: 7 against 22 ms for 512 MiB). Registration
 * alone protects nothing: every page reads as written until then. */
int eng__write_protect(int pm_fd, uint64_t start, uint64_t end)
{
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg a = {
		.size = sizeof(a), .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = start, .end = end, .vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		.category_mask = PAGE_IS_WRITTEN, .return_mask = PAGE_IS_WRITTEN,
	};

	do {
		if (ioctl(pm_fd, PAGEMAP_SCAN, &a) < 0)
			return -errno;
		a.start = a.walk_end;	/* a full vector stops the walk (and the arming) there */
	} while (a.walk_end < end);
	return 0;
}

/* Register and write-protect every scanned mapping; one that refuses stays untracked. */
static int arm_vmas(struct eng__mem_dump *md, int pm_fd)
{
	struct eng__precopy *pc = &md->pc;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };

	if (ioctl(pc->uffd, UFFDIO_API, &api)) {
		pr_info("pid %d: UFFDIO_API(WP_ASYNC): %s; no pre-copy", md->pid, strerror(errno));
		return 1;
	}
	for (int i = 0; i < md->nr_vmas; i++) {
		const struct eng__vma *v = &md->vmas[i].v;
		struct uffdio_register reg = { .range = { v->start, v->end - v->start },
					       .mode = UFFDIO_REGISTER_MODE_WP };
		int ret;

		if (md->vmas[i].src != ENG_PG_SCAN_ANON && md->vmas[i].src != ENG_PG_SCAN_COW)
			continue;
		/* Whole mappings only: a partial range would split the process's VMA. */
		if (ioctl(pc->uffd, UFFDIO_REGISTER, &reg)) {
			pr_debug("pid %d: %#lx-%#lx not tracked: UFFDIO_REGISTER: %s", md->pid,
				 (unsigned long)v->start, (unsigned long)v->end, strerror(errno));
			continue;
		}
		ret = eng__write_protect(pm_fd, v->start, v->end);
		if (ret)
			return pr_errno(ret, "pid %d: write-protecting %#lx-%#lx", md->pid,
					(unsigned long)v->start, (unsigned long)v->end);
		ret = add_armed(pc, v->start, v->end);
		if (ret)
			return ret;
	}
	return 0;
}

int eng__precopy_take_uffd(pid_t pid, int *uffd)
{
	struct eng_victim *v;
	int ret = eng_seize(pid, &v);

	if (ret)
		return ret;
	ret = eng_infect(v);
	if (!ret)
		ret = take_uffd(v, uffd);
	if (!ret)
		ret = eng_cure(v);
	eng_release(v);
	return ret;
}

/* The short stop: plan, take a uffd, arm. 1 when the kernel cannot track. */
static int arm(pid_t pid, struct eng__mem_dump *md)
{
	struct eng_victim *v;
	char path[64];
	uint64_t t0;
	int ret, pm_fd;

	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pm_fd < 0)
		return pr_errno(-errno, "pid %d: %s", pid, path);
	/* smaps (for the flags) costs a page walk: read it now, maps only once stopped. */
	ret = eng__vma_flags_snapshot(pid, md);
	t0 = now_us();
	if (!ret)
		ret = eng_seize(pid, &v);
	if (ret) {
		close(pm_fd);
		return ret;
	}
	/* Plan again, stopped: registration must match the mappings exactly. */
	ret = eng__vma_plan(pid, md);
	if (!ret)
		ret = eng_infect(v);
	if (!ret)
		ret = take_uffd(v, &md->pc.uffd);
	if (!ret)
		ret = eng_cure(v);
	if (!ret)
		ret = arm_vmas(md, pm_fd);
	eng_release(v);
	md->pc.arm_us = now_us() - t0;
	close(pm_fd);
	return ret;
}

int eng__mem_precopy(pid_t pid, struct eng__mem_dump *md, bool always)
{
	struct eng__precopy *pc = &md->pc;
	int ret;

	if (md->trk)	/* the tracker's uffd is armed already: its own rounds */
		return eng__track_live(md->trk, md);
	/* Below ENG_BIG_MM, one more stop costs more than the pre-copy saves. */
	if (!always && md->buf_used < ENG_BIG_MM)
		return 0;
	ret = arm(pid, md);
	if (ret || !pc->nr_armed) {
		eng__precopy_end(pc);
		return ret < 0 ? ret : 0;
	}
	/* The live pass: what the frozen one would do, from offset 0 of the buffer. */
	md->fresh_base = 0;
	ret = eng__pages_find(md);
	if (!ret)
		ret = eng__pages_copy(md);
	if (ret) {
		/* Pages may vanish under a running process: start over frozen, untracked. */
		pr_info("pid %d: pre-copy pass failed; copying everything while frozen", pid);
		eng__precopy_end(pc);
		return 0;
	}
	pc->runs = md->runs;
	pc->nr_runs = md->nr_runs;
	md->runs = NULL;
	md->nr_runs = md->cap_runs = 0;
	md->fresh_base = md->buf_used;
	pr_debug("pid %d: pre-copied %zu MiB in %zu runs, %d mappings tracked", pid, md->buf_used >> 20,
		 pc->nr_runs, pc->nr_armed);
	/* The flags the freeze will match its maps against, as close to it as we can. */
	return eng__vma_flags_snapshot(pid, md);
}

bool eng__precopy_owns(const struct eng__precopy *pc, uint64_t start, uint64_t end)
{
	for (int i = 0; i < pc->nr_armed; i++)
		if (start >= pc->armed[i].start && end <= pc->armed[i].end)
			return true;
	return false;
}

/* The first pre-copied run that ends after addr (runs are in address order). */
static size_t first_run_after(const struct eng__precopy *pc, uint64_t addr)
{
	size_t lo = 0, hi = pc->nr_runs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (pc->runs[mid].vaddr + pc->runs[mid].len <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A present range of a tracked mapping: where the live pass copied it, reuse that copy
 * (unwritten) or copy again over it (written); what it did not see, append. */
static int place_range(struct eng__mem_dump *md, int vma, uint64_t a, uint64_t end, bool written)
{
	const struct eng__precopy *pc = &md->pc;
	int how = eng__pages_read_how(&md->vmas[vma]);
	size_t k = first_run_after(pc, a);
	int ret = 0;

	while (a < end && !ret) {
		const struct eng__page_run *r = k < pc->nr_runs ? &pc->runs[k] : NULL;
		uint64_t stop, off;

		if (!r || r->vaddr >= end) {
			ret = eng__pages_add(md, vma, a, end - a, how, 0);
			break;
		}
		if (a < r->vaddr) {	/* faulted in after the live pass */
			ret = eng__pages_add(md, vma, a, r->vaddr - a, how, 0);
			a = r->vaddr;
			continue;
		}
		stop = r->vaddr + r->len < end ? r->vaddr + r->len : end;
		off = r->off + (a - r->vaddr);
		if (written) {
			ret = eng__pages_add_at(md, vma, a, stop - a, how, 0, off);
		} else {
			ret = eng__pages_add_reuse(md, vma, a, stop - a, off);
			md->pc.pages_reused += (stop - a) / ENG_PAGE_SIZE;
		}
		a = stop;
		k++;
	}
	return ret;
}

int eng__precopy_scan(struct eng__mem_dump *md, int vma, int pm_fd)
{
	const struct eng__vma_dump *d = &md->vmas[vma];
	uint64_t skip = PAGE_IS_PFNZERO | (d->src == ENG_PG_SCAN_COW ? PAGE_IS_FILE : 0);
	struct page_region reg[SCAN_VEC];
	struct pm_scan_arg a = {
		.size = sizeof(a), .start = d->v.start, .end = d->v.end,
		.vec = (uintptr_t)reg, .vec_len = SCAN_VEC,
		.category_inverted = skip, .category_mask = skip,
		.category_anyof_mask = PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
		.return_mask = PAGE_IS_WRITTEN,	/* no WP_MATCHING: this scan re-arms nothing */
	};

	do {
		long n = ioctl(pm_fd, PAGEMAP_SCAN, &a);

		if (n < 0)
			return pr_errno(-errno, "pid %d: PAGEMAP_SCAN of tracked %#lx-%#lx", md->pid,
					(unsigned long)d->v.start, (unsigned long)d->v.end);
		for (long k = 0; k < n; k++) {
			int ret = place_range(md, vma, reg[k].start, reg[k].end,
					      reg[k].categories & PAGE_IS_WRITTEN);

			if (ret)
				return ret;
		}
		a.start = a.walk_end;
	} while (a.walk_end < d->v.end);
	return 0;
}

void eng__precopy_end(struct eng__precopy *pc)
{
	if (!pc)
		return;
	/* The last reference to the uffd: the kernel unregisters every range. */
	if (pc->uffd >= 0)
		close(pc->uffd);
	pc->uffd = -1;
	free(pc->armed);
	pc->armed = NULL;
	pc->nr_armed = 0;
}
