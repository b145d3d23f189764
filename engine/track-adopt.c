/*
 * A restored process comes back tracked: eng_track_restore() restores a generation G of
 * a page store and hands the restored root to a tracker whose page map is G's, so that
 * the first generation after a restore (kill -9 auto-restore, rollback, failover) stores
 * only what the process wrote since, instead of every page.
 *
 * DESIGN
 * When the restore is done, before the root runs a single instruction of its own, its
 * memory is G page for page: every page of G's page map was put in place from the blob
 * the map names (checked), and no other page of its private anonymous or copied-on-
 * write memory is present (zero pages are never touched). The restorer wrote nothing
 * there (it runs on its own region's stacks); the kernel may have refreshed rseq's
 * cpu fields in a thread's TLS, which it rewrites whenever the thread resumes anyway,
 * and which a full dump would take as it found them too.
 * That moment is the restore's last stop (restore.c, finish_proc: every thread on its
 * final int3, the restorer unmapped), and the hook there (struct rst_adopt) does what
 * eng_track_open and a first generation would have done, minus the copying:
 *
 *   restore.c    userfaultfd() made in the root by a remote syscall, taken with
 *                pidfd_getfd, closed there
 *   adopt_cb     UFFDIO_API(WP_ASYNC); plan the mappings as a checkpoint does;
 *                register every scannable one (eng__track_adopt_arm: the same
 *                register_new a first generation runs); write-protect each with one
 *                PAGEMAP_SCAN(WP_MATCHING) pass; slots from G's page map (the restore's
 *                copy of it, checked already), blobs by (pack, offset)
 *   then         the restore sets the registers and detaches: from the first write on,
 *                the kernel marks what changes
 *
 * Why not keep the fill's own userfaultfd (registered MISSING over the premapped
 * slots, UFFDIO_COPY_MODE_WP): the restorer then mremaps the slots into place, and
 * without UFFD_FEATURE_EVENT_REMAP the kernel drops the registration and clears the
 * WP bits of moved page tables (mm/mremap.c, vma_has_uffd_without_event_remap); with
 * EVENT_REMAP every mremap would wait for a reader of the event. And its UFFDIO_API
 * asked for no WP_ASYNC (an API handshake happens once per uffd).
 *
 * What the adopted tracker trusts is exactly what a tracker trusts after a generation:
 * slots of registered mappings whose pages the scans do not report written. Areas start
 * incomplete, so the first scan of each walks every page (scan_vma) and copies any
 * present page without a slot. The slots point at blobs of G, so G is the generation
 * whose deletion voids them (eng_track.slots_gen). If anything fails, nothing is
 * adopted: the restore stands and the first generation is full, as before.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "restore.h"
#include "track.h"
#include "uapi-pagemap.h"

#define PG ENG_PAGE_SIZE

struct adopt {
	struct eng_track *t;
	uint32_t gen;
	bool done;		/* t is armed and its slots are G's */
	int err;
	const char *why;	/* the step that failed */
};

static int cmp_blob(const void *x, const void *y)
{
	const struct eng__blob *a = x, *b = y;

	if (a->pack != b->pack)
		return a->pack < b->pack ? -1 : 1;
	return a->off < b->off ? -1 : a->off > b->off;
}

/* The blobs G's page map names, each once, sorted by (pack, offset). */
static int collect_blobs(struct eng_track *t, const struct rst_proc *p)
{
	size_t n = 0;

	t->blobs = calloc(p->nr_pm + 1, sizeof(*t->blobs));
	if (!t->blobs)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_pm; i++) {
		const ImgPagemapEntry *e = p->pm[i];

		if (!(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK))
			continue;
		if (e->blob_page >= TRK_BLOB_PAGES || e->nr_pages > TRK_BLOB_PAGES - e->blob_page)
			return -EBADMSG;
		t->blobs[n++] = (struct eng__blob){ .off = e->offset, .xxh3 = e->xxh3, .pack = e->pack,
						    .nr_pages = e->blob_page + e->nr_pages };
	}
	qsort(t->blobs, n, sizeof(*t->blobs), cmp_blob);
	t->nr_blobs = 0;
	for (size_t i = 0; i < n; i++) {
		struct eng__blob *last = t->nr_blobs ? &t->blobs[t->nr_blobs - 1] : NULL;

		if (last && !cmp_blob(last, &t->blobs[i])) {
			if (last->xxh3 != t->blobs[i].xxh3)
				return -EBADMSG;	/* one blob, two checksums */
			if (t->blobs[i].nr_pages > last->nr_pages)
				last->nr_pages = t->blobs[i].nr_pages;
			continue;
		}
		t->blobs[t->nr_blobs++] = t->blobs[i];
	}
	t->cap_blobs = p->nr_pm + 1;
	return 0;
}

static uint64_t blob_index(const struct eng_track *t, const ImgPagemapEntry *e)
{
	struct eng__blob key = { .off = e->offset, .pack = e->pack };
	const struct eng__blob *b = bsearch(&key, t->blobs, t->nr_blobs, sizeof(key), cmp_blob);

	return b - t->blobs;
}

/* One area per planned mapping, its slots from G's page map; every pack run must lie in
 * one (the restore put each in a mapping of the same bounds). */
static int build_areas(struct eng_track *t, const struct eng__mem_dump *md, const struct rst_proc *p)
{
	size_t i = 0;
	int n = 0;

	t->areas = calloc(md->nr_vmas + 1, sizeof(*t->areas));
	if (!t->areas)
		return -ENOMEM;
	for (int k = 0; k < md->nr_vmas; k++) {
		const struct eng__vma_dump *d = &md->vmas[k];
		struct eng__area *a = &t->areas[n];
		uint64_t np = (d->v.end - d->v.start) / PG;

		if (d->src == ENG_PG_NONE)
			continue;
		a->start = d->v.start;
		a->end = d->v.end;
		a->slot = calloc(np, sizeof(*a->slot));
		a->stg = calloc(np, sizeof(*a->stg));
		t->nr_areas = ++n;
		if (!a->slot || !a->stg)
			return -ENOMEM;
	}
	for (int k = 0; k < t->nr_areas; k++) {
		struct eng__area *a = &t->areas[k];

		for (; i < p->nr_pm && p->pm[i]->vaddr < a->end; i++) {
			const ImgPagemapEntry *e = p->pm[i];
			uint64_t idx;

			if (!(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK))
				continue;
			if (e->vaddr < a->start || e->nr_pages > (a->end - e->vaddr) / PG)
				return -ERANGE;
			idx = blob_index(t, e);
			for (uint64_t q = 0; q < e->nr_pages; q++)
				a->slot[(e->vaddr - a->start) / PG + q] = (idx + 1) << 8 | (e->blob_page + q);
		}
	}
	for (; i < p->nr_pm; i++)
		if (p->pm[i]->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK)
			return -ERANGE;
	return 0;
}

static int fail(struct adopt *a, int err, const char *why)
{
	a->err = err;
	a->why = why;
	return err;
}

/* The hook (struct rst_adopt): the root stopped for good, its memory G's. */
static void adopt_cb(void *arg, pid_t pid, const struct rst_proc *p, int uffd)
{
	struct adopt *a = arg;
	struct eng_track *t = a->t;
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct eng__mem_dump md = { .pid = pid, .trk = t };
	bool clean = !eng_last_error()[0];
	char path[64];
	int ret;

	/* Its failures are not the restore's: logged quietly, said once below. */
	eng__log_quiet(true);
	t->pid = pid;
	t->uffd = uffd;
	if (uffd < 0) {
		fail(a, -EOPNOTSUPP, "no userfaultfd in the restored process");
		goto out;
	}
	if (ioctl(uffd, UFFDIO_API, &api)) {
		fail(a, -errno, "UFFDIO_API(WP_ASYNC)");
		goto out;
	}
	t->pidfd = syscall(SYS_pidfd_open, pid, 0);
	snprintf(path, sizeof(path), "/proc/%d/pagemap", pid);
	t->pm_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (t->pidfd < 0 || t->pm_fd < 0) {
		fail(a, -errno, "pidfd_open or opening its pagemap");
		goto out;
	}
	ret = eng__vma_plan(pid, &md);
	if (ret) {
		fail(a, ret, "planning its mappings");
		goto out;
	}
	ret = eng__track_adopt_arm(t, &md);
	if (ret) {
		fail(a, ret, "registering its mappings");
		goto out;
	}
	for (int i = 0; i < t->nr_armed && !ret; i++)
		ret = eng__write_protect(t->pm_fd, t->armed[i].start, t->armed[i].end);
	if (ret) {
		fail(a, ret, "write-protecting its mappings");
		goto out;
	}
	ret = collect_blobs(t, p);
	if (!ret)
		ret = build_areas(t, &md, p);
	if (ret) {
		fail(a, ret, ret == -ENOMEM ? "memory for the page map" : "a page map run outside its mappings");
		goto out;
	}
	t->slots_gen = a->gen;
	a->done = true;
out:
	eng__vma_plan_free(&md);
	eng__log_quiet(false);
	if (clean)
		eng__clear_error();
}

int eng_track_restore(const char *store_dir, const struct eng_restore_opts *ropts,
		      const struct eng_track_opts *topts, pid_t *pid, pid_t *root, struct eng_track **out)
{
	struct eng_restore_opts ro = ropts ? *ropts : (struct eng_restore_opts){ 0 };
	struct eng_track_opts none = { 0 };
	struct adopt a = { 0 };
	struct rst_adopt hook = { adopt_cb, &a };
	uint32_t *gens = NULL;
	size_t nr = 0;
	int ret;

	eng__clear_error();
	*out = NULL;
	ret = eng_store_is(store_dir);
	if (ret <= 0)
		return ret ? ret : pr_errno(-ENOENT, "%s: not a page store", store_dir);
	a.t = calloc(1, sizeof(*a.t));
	if (!a.t)
		return -ENOMEM;
	a.t->uffd = a.t->pm_fd = a.t->pidfd = -1;
	a.t->st.fd = a.t->st.packs_fd = a.t->st.lock_fd = -1;
	a.t->o = topts ? *topts : none;
	a.t->method = ENG_DIRTY_UFFD_WP;
	/* The generation restored is the one adopted: name it once for both. */
	ret = eng_store_list(store_dir, &gens, &nr);
	if (!ret && !ro.generation)
		ro.generation = nr ? gens[nr - 1] : 0;
	free(gens);
	a.gen = ro.generation;
	if (!ret && a.t->o.force_method && a.t->o.method != ENG_DIRTY_UFFD_WP)
		ret = -EOPNOTSUPP, a.why = "another tracking method was asked for";
	else if (!ret && (ret = eng__store_open(store_dir, &a.t->st)))
		a.why = "opening the store for writing";
	if (ret) {
		/* Not adopted: a plain restore (which says what is wrong with the store). */
		pr_info("%s: the restored process will not be adopted (%s: %s): its first "
			"generation stores every page", store_dir, a.why ? a.why : "listing the store",
			strerror(-ret));
		eng_track_close(a.t);
		eng__clear_error();
		return eng_restore_pids(store_dir, &ro, pid, root);
	}
	ret = eng__restore_adopt(store_dir, &ro, pid, root, &hook);
	if (ret || !a.done) {
		if (!ret)
			pr_info("pid %d: not adopted (%s: %s): its first generation stores every page",
				a.t->pid, a.why ? a.why : "never asked", strerror(-a.err));
		eng_track_close(a.t);
		return ret;
	}
	a.t->reset = false;
	pr_debug("pid %d: adopted from generation %u of %s: %d mappings registered, %zu blobs", a.t->pid,
		 a.gen, store_dir, a.t->nr_armed, a.t->nr_blobs);
	*out = a.t;
	return 0;
}
