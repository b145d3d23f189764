/*
 * Checks of a dump of victim_dump against the facts it announced: the images must
 * verify, and every record must say what the victim knows to be true of itself. Read
 * back through the engine's own reader (eng_img_open/eng_img_read), as restore will.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "core.pb-c.h"
#include "dump_check.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "ha/engine.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "shmem.pb-c.h"

#define GHOST "ghost-contents-of-a-deleted-file"

struct msgs {
	ProtobufCMessage **m;
	size_t n;
};

int proc_field(const char *path, const char *key, char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen(path, "re");
	int ret = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, strlen(key))) {
			snprintf(buf, len, "%s", line + strlen(key) + strspn(line + strlen(key), " \t"));
			buf[strcspn(buf, "\n")] = 0;
			ret = 0;
			break;
		}
	if (f)
		fclose(f);
	return ret;
}

static void msgs_free(struct msgs *m)
{
	for (size_t i = 0; i < m->n; i++)
		protobuf_c_message_free_unpacked(m->m[i], NULL);
	free(m->m);
	m->m = NULL;
	m->n = 0;
}

/* Every record of an image: record 0 of type head (if any), the others of type entry. */
static int read_all(int dirfd, enum eng_img_kind kind, uint32_t id, const ProtobufCMessageDescriptor *head,
		    const ProtobufCMessageDescriptor *entry, struct msgs *out)
{
	struct eng_img *img;
	ProtobufCMessage *m;
	int r;

	out->m = NULL;
	out->n = 0;
	if (eng_img_open(dirfd, kind, id, &img))
		return fail("open image kind %d id %u: %s", kind, id, eng_last_error());
	while ((r = eng_img_read(img, head && !out->n ? head : entry, &m)) == 1) {
		out->m = realloc(out->m, (out->n + 1) * sizeof(*out->m));
		out->m[out->n++] = m;
	}
	eng_img_close(img);
	if (r < 0) {
		msgs_free(out);
		return fail("reading image kind %d: %s", kind, eng_last_error());
	}
	return 0;
}

static int check_core_head(const ImgCore *c, const struct victim *v)
{
	const ImgSigaction *usr1 = c->sigactions[SIGUSR1 - 1];
	bool queued = false;
	mode_t um = umask(0);

	umask(um);
	if (c->pid != (uint32_t)v->pid || c->umask != um || c->n_sigactions != 64 || c->n_rlimits != 16)
		return fail("core: pid %u umask %o sigactions %zu rlimits %zu", c->pid, c->umask,
			    c->n_sigactions, c->n_rlimits);
	if (usr1->handler != (uint64_t)victim_fact_num(v, "handler_usr1") || !(usr1->flags & SA_RESTART) ||
	    usr1->mask != 1ull << (SIGUSR2 - 1))
		return fail("core: SIGUSR1 action %#lx flags %#lx mask %#lx", (long)usr1->handler,
			    (long)usr1->flags, (long)usr1->mask);
	for (size_t i = 0; i < c->n_shared_pending; i++) {
		siginfo_t si;

		memcpy(&si, c->shared_pending[i].data, sizeof(si));
		queued |= si.si_signo == SIGRTMIN + 1 && si.si_value.sival_int == 0x1234 &&
			  si.si_pid == v->pid;
	}
	if (!queued)
		return fail("core: SIGRTMIN+1 with value 0x1234 is not in shared_pending (%zu queued)",
			    c->n_shared_pending);
	if (c->n_posix_timers != 1 || c->posix_timers[0]->sigev_signo != SIGALRM ||
	    c->posix_timers[0]->sigev_notify != SIGEV_SIGNAL ||
	    c->posix_timers[0]->clock_id != CLOCK_MONOTONIC || c->posix_timers[0]->interval_sec != 5 ||
	    c->posix_timers[0]->value_sec < 900 || c->posix_timers[0]->value_sec > 1000)
		return fail("core: the POSIX timer is not as armed (%zu timers)", c->n_posix_timers);
	if (!c->creds || c->creds->euid != geteuid() || c->creds->cap_eff == 0)
		return fail("core: credentials");
	{
		struct rlimit rl;

		getrlimit(RLIMIT_NOFILE, &rl);
		if (c->rlimits[RLIMIT_NOFILE]->cur != rl.rlim_cur || c->rlimits[RLIMIT_NOFILE]->max != rl.rlim_max)
			return fail("core: RLIMIT_NOFILE %lu/%lu", (long)c->rlimits[RLIMIT_NOFILE]->cur,
				    (long)c->rlimits[RLIMIT_NOFILE]->max);
	}
	return 0;
}

static int check_thread(const ImgThread *t, const struct victim *v, size_t i)
{
	bool sas = t->tid == (uint32_t)victim_fact_num(v, "sas_tid");

	if (!t->regs || t->xstate.len < 576 || !t->rseq || t->rseq->sig != 0x53053053 || !t->has_clear_tid_addr ||
	    !t->clear_tid_addr || !t->sigaltstack)
		return fail("thread %u: missing regs, xstate, rseq, clear_tid_addr or sigaltstack", t->tid);
	if (i == 0 && t->tid != (uint32_t)v->pid)
		return fail("thread 0 is %u, not the leader %d", t->tid, v->pid);
	if (sas && (t->sigaltstack->sp != (uint64_t)victim_fact_num(v, "sas_sp") || t->sigaltstack->size != 65536 ||
		    t->sigaltstack->flags != 0))
		return fail("thread %u: sigaltstack %#lx/%lu/%#x", t->tid, (long)t->sigaltstack->sp,
			    (long)t->sigaltstack->size, t->sigaltstack->flags);
	if (!sas && t->sigaltstack->flags != SS_DISABLE)
		return fail("thread %u: sigaltstack flags %#x", t->tid, t->sigaltstack->flags);
	if (!(t->sigmask & (1ull << (SIGRTMIN + 1 - 1))))
		return fail("thread %u: SIGRTMIN+1 not blocked in sigmask %#lx", t->tid, (long)t->sigmask);
	if (i == 0) {
		siginfo_t si;

		if (t->n_pending != 1)
			return fail("leader: %zu signals queued, expected 1", t->n_pending);
		memcpy(&si, t->pending[0].data, sizeof(si));
		if (si.si_signo != SIGRTMIN + 2)
			return fail("leader: queued signal %d", si.si_signo);
	}
	return 0;
}

static int check_core(int dirfd, const struct victim *v)
{
	struct msgs m, p;
	int ret;

	if (read_all(dirfd, ENG_IMG_CORE, v->pid, &img_core__descriptor, &img_thread__descriptor, &m))
		return 1;
	ret = check_core_head((ImgCore *)m.m[0], v);
	if (!ret && m.n - 1 != (size_t)victim_fact_num(v, "threads"))
		ret = fail("core: %zu threads, the victim has %ld", m.n - 1, victim_fact_num(v, "threads"));
	for (size_t i = 1; i < m.n && !ret; i++)
		ret = check_thread((ImgThread *)m.m[i], v, i - 1);
	if (!ret && !read_all(dirfd, ENG_IMG_PSTREE, 0, NULL, &img_pstree_entry__descriptor, &p)) {
		const ImgPstreeEntry *e = (ImgPstreeEntry *)p.m[0];

		if (p.n != 1 || e->pid != (uint32_t)v->pid || e->n_tids != m.n - 1 || e->ppid != 0)
			ret = fail("pstree: %zu entries, pid %u, %zu tids", p.n, e->pid, e->n_tids);
		msgs_free(&p);
	}
	msgs_free(&m);
	return ret;
}

static uint8_t pattern(size_t i, long zero_page)
{
	return (long)(i / 4096) == zero_page ? 0 : (uint8_t)((i * 2654435761u) >> 13) | 1;
}

static uint8_t pattern2(int r, size_t i)
{
	return (uint8_t)(((i + r * 7919u) * 2654435761u) >> 13) | 1;
}

/* What the victim wrote at byte `off` of the region named `what`. */
static uint8_t expected(const char *what, long zp, size_t off)
{
	if (!strcmp(what, "buf"))
		return pattern(off, zp);
	if (!strcmp(what, "shm"))
		return pattern2(1, off);
	if (!strcmp(what, "delmap"))
		return pattern2(off < 4096 ? 3 : 2, off);
	if (!strcmp(what, "memfdmap"))
		return pattern2(4, off);
	return pattern2(5, off);	/* protnone */
}

/* A page of shared object `id` (shmem.img, shmdata-ID.img) at file offset `off`:
 * 1 when found (a hole reads zero), 0 when the object has no such id. */
static int obj_page(int dirfd, uint32_t id, uint64_t off, uint8_t *page)
{
	struct msgs so;
	uint64_t at = 0;
	int found = 0;

	if (read_all(dirfd, ENG_IMG_SHMEM, 0, NULL, &img_shmem__descriptor, &so))
		return -1;
	memset(page, 0, 4096);
	for (size_t i = 0; i < so.n && !found; i++) {
		const ImgShmem *o = (ImgShmem *)so.m[i];
		struct eng_img *d;

		if (o->id != id)
			continue;
		found = 1;
		for (size_t k = 0; k + 1 < o->n_extents; at += o->extents[k + 1], k += 2) {
			if (off < o->extents[k] || off >= o->extents[k] + o->extents[k + 1])
				continue;
			if (eng_img_open(dirfd, ENG_IMG_SHMDATA, id, &d) ||
			    eng_img_read_raw(d, at + off - o->extents[k], page, 4096))
				found = fail("shmdata-%u: %s", id, eng_last_error());
			eng_img_close(d);
			break;
		}
	}
	msgs_free(&so);
	return found;
}

/* The page at a: from the pagemap, else (a mapping of a shared object) from the
 * object: 0, or 1 with a message; *zero tells a PM_ZERO run. */
static int page_at(int dirfd, const struct msgs *pm, struct eng_img *pages, const ImgVma *m, uint64_t a,
		   uint8_t *page, bool *zero)
{
	*zero = false;
	for (size_t i = 1; i < pm->n; i++) {
		const ImgPagemapEntry *e = (ImgPagemapEntry *)pm->m[i];

		if (a < e->vaddr || a >= e->vaddr + e->nr_pages * 4096)
			continue;
		if (e->flags == IMG_PAGEMAP_FLAG__PM_ZERO) {
			memset(page, 0, 4096);
			*zero = true;
			return 0;
		}
		if (e->flags != IMG_PAGEMAP_FLAG__PM_IN_PAGES ||
		    eng_img_read_raw(pages, e->offset + (a - e->vaddr), page, 4096))
			return fail("pages: page %#lx: flags %#x, %s", (long)a, e->flags, eng_last_error());
		return 0;
	}
	if (m && m->has_shm && obj_page(dirfd, m->shm, m->pgoff + (a - m->start), page) == 1)
		return 0;
	return fail("pagemap: page %#lx is neither in the page map nor in a shared object", (long)a);
}

/* Every page of [start, start + pages) must be in the pagemap, or in the shared
 * object the mapping m maps, with the victim's bytes. */
static int check_range(int dirfd, const struct msgs *pm, struct eng_img *pages, const ImgVma *m,
		       const char *what, uint64_t start, uint64_t nr, long zp)
{
	uint8_t page[4096];
	bool zero;
	int ret = 0;

	for (uint64_t k = 0; k < nr && !ret; k++) {
		uint64_t a = start + k * 4096;

		ret = page_at(dirfd, pm, pages, m, a, page, &zero);
		if (!ret && !strcmp(what, "buf") && (long)k == zp && !zero)
			ret = fail("pagemap: the all-zero page %#lx is not a PM_ZERO run", (long)a);
		for (size_t b = 0; b < 4096 && !ret; b++)
			if (page[b] != expected(what, zp, k * 4096 + b))
				ret = fail("pages: %s byte %#lx is %#x, the victim has %#x", what, (long)(a + b),
					   page[b], expected(what, zp, k * 4096 + b));
	}
	return ret;
}

static const ImgVma *vma_at(const struct msgs *mm, uint64_t addr)
{
	for (size_t i = 1; i < mm->n; i++)
		if (((ImgVma *)mm->m[i])->start == addr)
			return (ImgVma *)mm->m[i];
	return NULL;
}

/* The extra mappings: kind of mapping as the victim made it, and their pages. */
static int check_regions(int dirfd, const struct msgs *mm, const struct msgs *pm, struct eng_img *pages,
			 const struct victim *v)
{
	static const struct {
		const char *name;
		uint64_t pages;
		uint32_t flags;
		bool unlinked;
		uint32_t prot;
	} r[] = {
		{ "shm", 4, MAP_SHARED | MAP_ANONYMOUS, false, PROT_READ | PROT_WRITE },
		{ "delmap", 3, MAP_PRIVATE, true, PROT_READ | PROT_WRITE },
		{ "memfdmap", 2, MAP_SHARED, true, PROT_READ | PROT_WRITE },
		{ "protnone", 1, MAP_PRIVATE | MAP_ANONYMOUS, false, PROT_NONE },
	};
	int ret = 0;

	for (size_t i = 0; i < sizeof(r) / sizeof(r[0]) && !ret; i++) {
		uint64_t a = victim_fact_num(v, r[i].name);
		const ImgVma *m = vma_at(mm, a);

		if (!m || m->end != a + r[i].pages * 4096 || m->flags != r[i].flags ||
		    m->unlinked != r[i].unlinked || m->prot != r[i].prot)
			return fail("mm: %s at %#lx: %s", r[i].name, (long)a, m ? "wrong kind" : "no such VMA");
		if (r[i].unlinked && (!m->path || m->path[0] != '/' || strstr(m->path, "(deleted)")))
			return fail("mm: %s: path %s", r[i].name, m->path ? m->path : "(none)");
		ret = check_range(dirfd, pm, pages, m, r[i].name, a, r[i].pages, -1);
	}
	return ret;
}

/* Every page of the victim's buffer and extra mappings, exactly, through pagemap+pages. */
static int check_pages(int dirfd, const struct victim *v)
{
	struct eng_img *pages;
	struct msgs pm, mm;
	int ret;

	if (read_all(dirfd, ENG_IMG_PAGEMAP, v->pid, &img_pagemap_head__descriptor,
		     &img_pagemap_entry__descriptor, &pm))
		return 1;
	if (read_all(dirfd, ENG_IMG_MM, v->pid, &img_mm__descriptor, &img_vma__descriptor, &mm)) {
		msgs_free(&pm);
		return 1;
	}
	if (eng_img_open(dirfd, ENG_IMG_PAGES, v->pid, &pages)) {
		msgs_free(&pm);
		msgs_free(&mm);
		return fail("pages: %s", eng_last_error());
	}
	ret = check_range(dirfd, &pm, pages, NULL, "buf", victim_fact_num(v, "buf"), victim_fact_num(v, "buf_pages"),
			  victim_fact_num(v, "zero_page"));
	if (!ret)
		ret = check_regions(dirfd, &mm, &pm, pages, v);
	eng_img_close(pages);
	msgs_free(&pm);
	msgs_free(&mm);
	return ret;
}

static const ImgFile *file_of(const struct msgs *files, const struct msgs *fds, long fd, bool *cloexec)
{
	for (size_t i = 0; i < fds->n; i++) {
		const ImgFd *d = (ImgFd *)fds->m[i];

		if (d->fd != fd)
			continue;
		*cloexec = d->flags & FD_CLOEXEC;
		for (size_t k = 0; k < files->n; k++)
			if (((ImgFile *)files->m[k])->id == d->id)
				return (ImgFile *)files->m[k];
	}
	return NULL;
}

static int check_ghost(int dirfd, const ImgFile *f)
{
	char buf[64] = { 0 };
	struct eng_img *g;
	int ret = 0;

	if (!f->unlinked || f->size != strlen(GHOST))
		return fail("ghost file: unlinked %d size %lu", f->unlinked, (long)f->size);
	if (eng_img_open(dirfd, ENG_IMG_GHOST, f->id, &g))
		return fail("ghost-%u.img: %s", f->id, eng_last_error());
	if (eng_img_read_raw(g, 0, buf, f->size) || strcmp(buf, GHOST))
		ret = fail("ghost-%u.img holds '%s'", f->id, buf);
	eng_img_close(g);
	return ret;
}

static int check_fds(int dirfd, const struct victim *v, const char *workdir)
{
	const ImgFile *file, *dup, *app, *ghost, *dir, *null, *rnd, *out;
	bool ce[8] = { 0 };
	struct msgs files, fds;
	char path[160];
	int ret = 1;

	if (read_all(dirfd, ENG_IMG_FILES, 0, NULL, &img_file__descriptor, &files))
		return 1;
	if (read_all(dirfd, ENG_IMG_FDS, v->pid, NULL, &img_fd__descriptor, &fds)) {
		msgs_free(&files);
		return 1;
	}
	file = file_of(&files, &fds, victim_fact_num(v, "file_fd"), &ce[0]);
	dup = file_of(&files, &fds, victim_fact_num(v, "dup_fd"), &ce[1]);
	app = file_of(&files, &fds, victim_fact_num(v, "app_fd"), &ce[2]);
	ghost = file_of(&files, &fds, victim_fact_num(v, "ghost_fd"), &ce[3]);
	dir = file_of(&files, &fds, victim_fact_num(v, "dir_fd"), &ce[4]);
	null = file_of(&files, &fds, victim_fact_num(v, "null_fd"), &ce[5]);
	rnd = file_of(&files, &fds, victim_fact_num(v, "rnd_fd"), &ce[6]);
	out = file_of(&files, &fds, 1, &ce[7]);
	snprintf(path, sizeof(path), "%s/file", workdir);
	if (fds.n != 10)
		fail("fds: %zu descriptors, the victim has 10", fds.n);
	else if (!file || !dup || !app || !ghost || !dir || !null || !rnd || !out)
		fail("fds: a descriptor of the victim is missing");
	else if (file != dup || file->kind != IMG_FILE_KIND__FILE_REG || file->pos != (uint64_t)victim_fact_num(v, "file_pos") ||
		 (file->flags & O_ACCMODE) != O_RDWR || strcmp(file->path, path) || file->size != 16)
		fail("files: the file at fd %ld (and its dup) is wrong", victim_fact_num(v, "file_fd"));
	else if (!(app->flags & O_APPEND) || !(out->flags & O_APPEND) || app == out)
		fail("files: O_APPEND lost");
	else if (dir->kind != IMG_FILE_KIND__FILE_DIR || strcmp(dir->path, workdir) || !ce[4] || ce[0])
		fail("files: the directory fd, or FD_CLOEXEC");
	else if (null->kind != IMG_FILE_KIND__FILE_CHR || null->rdev != makedev(1, 3) ||
		 rnd->rdev != makedev(1, 9) || !ce[6])
		fail("files: the character devices");
	else
		ret = check_ghost(dirfd, ghost);
	msgs_free(&files);
	msgs_free(&fds);
	return ret;
}

static int check_inventory(int dirfd, const struct victim *v)
{
	const ImgInventory *inv;
	struct msgs m;
	int ret = 0;

	if (read_all(dirfd, ENG_IMG_INVENTORY, 0, &img_inventory__descriptor, NULL, &m))
		return 1;
	inv = (ImgInventory *)m.m[0];
	if (inv->root_pid != (uint32_t)v->pid || inv->n_pids != 1 || inv->page_size != 4096 ||
	    inv->n_vdso < 1 || !inv->has_vdso_hash || !inv->kernel_release)
		ret = fail("inventory: root %u, %zu pids, %zu vdso parts", inv->root_pid, inv->n_pids,
			   inv->n_vdso);
	msgs_free(&m);
	return ret;
}

int check_images(const char *dir, const struct victim *v, const char *workdir)
{
	struct eng_image_stats st;
	int dirfd, ret;

	if (eng_image_verify(dir, &st))
		return fail("hactl image verify %s: %s", dir, eng_last_error());
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail("%s: %m", dir);
	ret = check_inventory(dirfd, v);
	if (!ret)
		ret = check_core(dirfd, v);
	if (!ret)
		ret = check_pages(dirfd, v);
	if (!ret)
		ret = check_fds(dirfd, v, workdir);
	close(dirfd);
	if (!ret)
		printf("%s: %u files, %u records, %lu data bytes: as the victim said\n", dir, st.files,
		       st.records, (unsigned long)st.data_bytes);
	return ret;
}

/* Bytes at vaddr as the images hold them (pagemap + pages), for checks of memory. */
static int image_read(const struct msgs *pm, struct eng_img *pages, uint64_t vaddr, void *buf, size_t len)
{
	for (size_t i = 1; i < pm->n; i++) {
		const ImgPagemapEntry *e = (ImgPagemapEntry *)pm->m[i];
		uint64_t end = e->vaddr + e->nr_pages * 4096;

		if (vaddr < e->vaddr || vaddr + len > end)
			continue;
		if (e->flags == IMG_PAGEMAP_FLAG__PM_ZERO) {
			memset(buf, 0, len);
			return 0;
		}
		return eng_img_read_raw(pages, e->offset + (vaddr - e->vaddr), buf, len);
	}
	return fail("no pagemap run holds [%#lx, +%zu)", (long)vaddr, len);
}

/* victim_dirty: every page holds the last generation up to the image's last_gen that
 * chose it; the page of last_gen + 1 may be part written. */
int check_dirty(const char *dir, const struct victim *v)
{
	uint64_t mem = victim_fact_num(v, "mem"), pages = victim_fact_num(v, "pages"), g, *latest, w[512];
	struct eng_img *img;
	struct msgs pm;
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret;

	if (dirfd < 0 || read_all(dirfd, ENG_IMG_PAGEMAP, v->pid, &img_pagemap_head__descriptor,
				  &img_pagemap_entry__descriptor, &pm))
		return fail("%s: cannot read its pagemap", dir);
	ret = eng_img_open(dirfd, ENG_IMG_PAGES, v->pid, &img);
	close(dirfd);
	latest = calloc(pages, sizeof(*latest));
	if (ret || !latest || image_read(&pm, img, victim_fact_num(v, "last_gen"), &g, sizeof(g))) {
		ret = fail("pages: %s", eng_last_error());
		goto out;
	}
	for (uint64_t k = 1; k <= g; k++)
		latest[(k * 2654435761u) % pages] = k;
	for (uint64_t p = 0; p < pages && !ret; p++) {
		uint64_t want = latest[p] << 24 | (p + 1), next = (g + 1) << 24 | (p + 1);
		bool inflight = (g + 1) * 2654435761u % pages == p;

		ret = image_read(&pm, img, mem + p * 4096, w, sizeof(w));
		for (int i = 0; i < 512 && !ret; i++)
			if (w[i] != want && !(inflight && w[i] == next))
				ret = fail("image of page %lu, word %d: %#lx; at last_gen %lu it holds %#lx",
					   (long)p, i, (long)w[i], (long)g, (long)want);
	}
	if (!ret)
		printf("%s: %lu pages consistent at generation %lu\n", dir, (long)pages, (long)g);
out:
	free(latest);
	eng_img_close(img);
	msgs_free(&pm);
	return ret;
}
