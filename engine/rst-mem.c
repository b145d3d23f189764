/*
 * Restore, memory: premap every VMA of the checkpoint in a free stretch of address
 * space, fill it from the page images (rst-fill.c, every run checked), and lay out the
 * restorer region; the restorer then only has to unmap hactl and mremap things into
 * place. mremap moves page tables, not data, so the frozen copy is done exactly once.
 *
 * Layout of the reservation, in one place that is free both in this process and in the
 * checkpoint's address space (so no mremap can land on something still needed):
 *
 *   rsv                                                    region
 *   | slot VMA 0 | pad | slot VMA 1 | ... | vdso scratch | blob | args | tables | stacks |
 *
 * Padding keeps slots from merging into one VMA, and leaves the stack guard gap free
 * below a MAP_GROWSDOWN slot.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "blob-restorer.h"
#include "ha/engine.h"
#include "log.h"
#include "restore.h"

#define PAGE 4096ul
#define TASK_TOP 0x7ffffffff000ul
#define GUARD_GAP (1ul << 20)
#define PMD (2ul << 20)
#define LOW_LIMIT (1ul << 32)

struct range {
	unsigned long s, e;
};

static unsigned long page_up(unsigned long x)
{
	return (x + PAGE - 1) & ~(PAGE - 1);
}

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->s < y->s ? -1 : x->s > y->s;
}

/* Our own mappings, and where our vdso parts are (0 when absent). */
static int self_maps(struct range **out, size_t *n, struct range vdso[3])
{
	static const char *const names[3] = { "[vvar]", "[vvar_vclock]", "[vdso]" };
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	size_t cap = 64;

	*n = 0;
	*out = malloc(cap * sizeof(**out));
	memset(vdso, 0, 3 * sizeof(*vdso));
	if (!f || !*out) {
		if (f)
			fclose(f);
		return -ENOMEM;
	}
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || s >= TASK_TOP)
			continue;
		for (int i = 0; i < 3; i++)
			if (strstr(line, names[i]) && line[strlen(line) - 2] == ']')
				vdso[i] = (struct range){ s, e };
		if (*n == cap)
			*out = realloc(*out, (cap *= 2) * sizeof(**out));
		(*out)[(*n)++] = (struct range){ s, e };
	}
	fclose(f);
	return 0;
}

static bool is_vdso_part(const ImgVma *v)
{
	return v->kind == IMG_VMA_KIND__VMA_VDSO || v->kind == IMG_VMA_KIND__VMA_VVAR ||
	       v->kind == IMG_VMA_KIND__VMA_VVAR_VCLOCK;
}

static int vdso_index(const ImgVma *v)
{
	return v->kind == IMG_VMA_KIND__VMA_VVAR ? 0 : v->kind == IMG_VMA_KIND__VMA_VVAR_VCLOCK ? 1 : 2;
}

/* The lowest gap of `need` bytes above LOW_LIMIT, free of ours and of the image's. */
static int find_gap(struct rst_ctx *c, const struct range *mine, size_t nr_mine, unsigned long need,
		    unsigned long *at)
{
	struct rst_proc *p = &c->proc;
	size_t n = 0;
	struct range *all = malloc((nr_mine + p->nr_vmas + 1) * sizeof(*all));
	unsigned long cur = LOW_LIMIT;

	if (!all)
		return -ENOMEM;
	for (size_t i = 0; i < nr_mine; i++)
		all[n++] = mine[i];
	for (size_t i = 0; i < p->nr_vmas; i++)
		all[n++] = (struct range){ p->vmas[i]->start, p->vmas[i]->end };
	qsort(all, n, sizeof(*all), cmp_range);
	for (size_t i = 0; i <= n; i++) {
		unsigned long next = i < n ? all[i].s : TASK_TOP;

		if (next > cur && next - cur >= need + 2 * GUARD_GAP + PMD) {
			*at = (cur + GUARD_GAP + PMD - 1) & ~(PMD - 1);	/* see plan_slots() */
			free(all);
			return 0;
		}
		if (i < n && all[i].e > cur)
			cur = page_up(all[i].e);
	}
	free(all);
	return pr_errno(-ENOMEM, "no free %lu bytes of address space to premap into", need);
}

static int open_mapped(const ImgVma *v, int *fd)
{
	struct stat st;

	/* A shared mapping of a file opened for writing is VM_SHARED|VM_MAYWRITE even when
	 * mapped read-only (it can be mprotect()ed writable): open it so whenever we may. */
	*fd = -1;
	if (v->flags & MAP_SHARED)
		*fd = open(v->path, O_RDWR | O_CLOEXEC);
	if (*fd < 0 && (v->flags & MAP_SHARED) && (v->prot & PROT_WRITE))
		return pr_errno(-errno, "mapping %#lx-%#lx: cannot open %s for writing", (unsigned long)v->start,
				(unsigned long)v->end, v->path);
	if (*fd < 0)
		*fd = open(v->path, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return pr_errno(-errno, "mapping %#lx-%#lx: cannot open %s", (unsigned long)v->start,
				(unsigned long)v->end, v->path);
	/* The dump may record st_dev as stat gives it or in the kernel's own encoding. */
	if (fstat(*fd, &st) || st.st_ino != v->ino ||
	    (st.st_dev != v->dev && ((major(st.st_dev) << 20) | minor(st.st_dev)) != v->dev)) {
		close(*fd);
		return pr_errno(-ESTALE, "mapping %#lx-%#lx: %s is not the file that was mapped (inode %lu, was %lu)",
				(unsigned long)v->start, (unsigned long)v->end, v->path,
				(unsigned long)st.st_ino, (unsigned long)v->ino);
	}
	return 0;
}

/* A mapping of a shared object (shmem.c): the root created it filled, for every
 * process; a private one gets its copied-on-write pages from the page map after. */
static int premap_shm(struct rst_ctx *c, const ImgVma *v, unsigned long slot, int flags)
{
	char who[64];
	int fd, prot = (v->flags & MAP_SHARED) ? (int)v->prot : PROT_READ | PROT_WRITE;
	const ImgShmem *o = rst__shm_obj(c, v->shm);

	/* A System V attachment must be shmat's own, for shmdt and shm_nattch. */
	if (o && o->kind == IMG_SHMEM_KIND__SHM_SYSV)
		return rst__sysv_attach(o, v, slot);
	snprintf(who, sizeof(who), "mm-%d.img: mapping %#lx", c->proc.pid, (unsigned long)v->start);
	fd = rst__shm_fd(c, v->shm, who);
	if (fd < 0)
		return fd;
	if (mmap((void *)slot, v->end - v->start, prot, flags & ~MAP_ANONYMOUS, fd, v->pgoff) == MAP_FAILED)
		return pr_errno(-errno, "premapping %#lx-%#lx from shared object %u", (unsigned long)v->start,
				(unsigned long)v->end, v->shm);
	return 0;
}

/* Map one VMA at its slot, writable for filling unless it is a shared file mapping
 * (whose contents live in the file and are never written by us). */
static int premap_vma(struct rst_ctx *c, const ImgVma *v, unsigned long slot)
{
	unsigned long len = v->end - v->start;
	int prot = PROT_READ | PROT_WRITE, flags = MAP_FIXED, fd = -1, ret;
	void *m;

	flags |= (v->flags & MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (v->flags & MAP_GROWSDOWN)
		flags |= MAP_GROWSDOWN;
	if (v->flags & MAP_NORESERVE)
		flags |= MAP_NORESERVE;
	if (v->has_shm)
		return premap_shm(c, v, slot, flags);
	if (v->flags & MAP_ANONYMOUS || !v->path || !v->path[0]) {
		flags |= MAP_ANONYMOUS;
	} else {
		if (v->unlinked)
			return pr_errno(-ENOTSUP, "mapping %#lx-%#lx: deleted file %s is not supported yet",
					(unsigned long)v->start, (unsigned long)v->end, v->path);
		ret = open_mapped(v, &fd);
		if (ret)
			return ret;
		if (flags & MAP_SHARED)
			prot = v->prot;
	}
	m = mmap((void *)slot, len, prot, flags, fd, fd < 0 ? 0 : v->pgoff);
	if (fd >= 0)
		close(fd);
	if (m == MAP_FAILED)
		return pr_errno(-errno, "premapping %#lx-%#lx (%s)", (unsigned long)v->start,
				(unsigned long)v->end, v->path && v->path[0] ? v->path : "anonymous");
	return 0;
}

bool rst__slot_uffd(const ImgVma *v)
{
	return !is_vdso_part(v) && !v->has_shm && !(v->flags & MAP_SHARED) &&
	       (v->flags & MAP_ANONYMOUS || !v->path || !v->path[0]);
}

/*
 * Anonymous private slots go into a userfaultfd so that the fill puts each page with
 * UFFDIO_COPY (rst-fill.c): allocated and copied, never zeroed first. All of them or
 * none (hactl, filling from outside, must know which are). -1: none.
 */
static int uffd_register(struct rst_ctx *c, const unsigned long *slots)
{
	struct rst_proc *p = &c->proc;
	struct uffdio_api api = { .api = UFFD_API };
	int uffd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api)) {
		pr_debug("pid %d: no userfaultfd (%s): pages are zeroed before they are filled", p->pid,
			 strerror(errno));
		if (uffd >= 0)
			close(uffd);
		return -1;
	}
	for (size_t i = 0; i < p->nr_vmas; i++) {
		const ImgVma *v = p->vmas[i];
		struct uffdio_register r = { .range = { slots[i], v->end - v->start }, .mode = UFFDIO_REGISTER_MODE_MISSING };

		if (rst__slot_uffd(v) && ioctl(uffd, UFFDIO_REGISTER, &r)) {
			pr_debug("pid %d: mapping %#lx: UFFDIO_REGISTER: %s: pages are zeroed before they are filled",
				 p->pid, (unsigned long)v->start, strerror(errno));
			close(uffd);	/* unregisters what was */
			return -1;
		}
	}
	return uffd;
}

/*
 * Filled by hactl's workers (rst-fill.c says why there): tell it where the slots are
 * and which fd the userfaultfd is, and stop until it has put every page. A SIGSTOP
 * cannot be blocked; hactl, our tracer, takes its stop and lets us go without it. If
 * the fill fails hactl kills us with the rest of the tree.
 */
static int filled_by_hactl(struct rst_ctx *c, int uffd)
{
	struct rst_msg m = { .pid = getpid(), .kind = RST_MSG_FILL, .region = c->rsv, .region_len = (uint64_t)uffd };

	if (write(c->status_w, &m, sizeof(m)) != sizeof(m))
		return pr_errno(-errno, "pid %d: asking hactl for the fill", c->proc.pid);
	syscall(SYS_tgkill, getpid(), getpid(), SIGSTOP);
	return 0;
}

/* The uffd is closed once filled, which unregisters every slot: nothing may touch a
 * registered page that was not filled (a zero page) before that, or it would wait for
 * a fault handler forever (UFFD_USER_MODE_ONLY: a kernel access fails instead). */
static int fill_pages(struct rst_ctx *c, const unsigned long *slots)
{
	struct rst_proc *p = &c->proc;
	bool *reg = calloc(p->nr_vmas + 1, sizeof(*reg));
	struct rst_fill_args a = { .p = p, .slots = slots, .dirfd = c->dirfd, .dir = c->dir, .store = c->store,
				   .gen = c->gen, .registered = reg, .workers = 1 };
	int ret;

	if (!reg)
		return -ENOMEM;
	a.uffd = uffd_register(c, slots);
	for (size_t i = 0; i < p->nr_vmas; i++)
		reg[i] = a.uffd >= 0 && rst__slot_uffd(p->vmas[i]);
	ret = c->fill_workers > 1 ? filled_by_hactl(c, a.uffd) : rst__fill(&a, &c->t);
	if (a.uffd >= 0)
		close(a.uffd);
	free(reg);
	return ret;
}

static void apply_madvise(const ImgVma *v, unsigned long slot)
{
	for (int adv = 0; adv < 64; adv++)
		if ((v->madv >> adv) & 1)
			if (madvise((void *)slot, v->end - v->start, adv))
				pr_warn("mapping %#lx: madvise(%d): %s", (unsigned long)v->start, adv, strerror(errno));
}

/* Bump allocator over the restorer region. */
struct bump {
	unsigned long at, end;
};

static void *bump(struct bump *b, unsigned long size)
{
	unsigned long p = b->at;

	b->at = (b->at + size + 63) & ~63ul;
	if (b->at <= b->end)
		return (void *)p;
	pr_err("restorer region too small by %lu bytes (a bug in region_size)", b->at - b->end);
	return NULL;
}

/* Room for pending siginfos, seccomp programs (per thread, a chain each) and groups. */
static unsigned long sigq_and_filters(const struct rst_proc *p)
{
	unsigned long n = p->core->n_shared_pending * 128 + 64 + p->core->n_posix_timers * 64 + 64, bpf = 0;

	for (size_t i = 0; i < p->core->n_seccomp_filters; i++)
		bpf += p->core->seccomp_filters[i]->bpf.len + 64 + sizeof(struct rst_filter);
	for (size_t i = 0; i < p->nr_threads; i++)
		n += p->threads[i]->n_pending * 128 + 128 + bpf;
	if (p->core->creds)
		n += p->core->creds->n_groups * 4 + 64;
	return n;
}

static unsigned long region_size(const struct rst_proc *p)
{
	return page_up(ha_blob_restorer.mem_size) + page_up(sizeof(struct rst_args)) + PAGE +
	       page_up((p->nr_vmas + 4) * sizeof(struct rst_move) + 64) +
	       page_up(p->mm->n_auxv * 8 + 64) + page_up(p->nr_threads * (sizeof(struct rst_thread) + 64)) +
	       p->nr_threads * RST_STACK_SIZE + page_up(sigq_and_filters(p) + p->nr_threads * 1024) +
	       (64ul << 10);	/* slack for alignment: running short would fail the restore */
}

/* What the restorer unmaps first: everything but the reservation and the vdso parts
 * that are about to move. */
static int fill_unmap(struct rst_ctx *c, struct bump *b, const struct range *keep, size_t nr_keep)
{
	struct rst_range *un = bump(b, (nr_keep + 1) * sizeof(*un));
	struct range sorted[8];
	unsigned long cur = PAGE;
	size_t n = 0;

	if (!un || nr_keep > 8)
		return -ENOMEM;
	memcpy(sorted, keep, nr_keep * sizeof(*keep));
	qsort(sorted, nr_keep, sizeof(*sorted), cmp_range);
	for (size_t i = 0; i <= nr_keep; i++) {
		unsigned long next = i < nr_keep ? sorted[i].s : TASK_TOP;

		if (next > cur)
			un[n++] = (struct rst_range){ cur, next };
		if (i < nr_keep)
			cur = sorted[i].e;
	}
	c->args->unmap = (uint64_t)un;
	c->args->nr_unmap = n;
	return 0;
}

/* Copy `n` siginfos (128 bytes each) into the region. */
static int fill_sigq(struct bump *b, ProtobufCBinaryData *const *si, size_t n, uint64_t *at, uint64_t *nr,
		     ProtobufCBinaryData *flat)
{
	char *q = bump(b, n * 128 + 8);

	if (!q)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const ProtobufCBinaryData *d = si ? si[i] : &flat[i];

		if (d->len != 128)
			return pr_errno(-EINVAL, "a pending siginfo of %zu bytes, expected 128", d->len);
		memcpy(q + i * 128, d->data, 128);
	}
	*at = (uint64_t)q;
	*nr = n;
	return 0;
}

/* A thread's seccomp chain, oldest filter first (ImgSeccompFilter.prev links back). */
static int fill_seccomp(struct rst_ctx *c, struct bump *b, const ImgThread *t, struct rst_thread *rt)
{
	const ImgCore *core = c->proc.core;
	uint32_t chain[64], n = 0;
	struct rst_filter *f;

	for (uint32_t idx = t->seccomp_filter; idx; idx = core->seccomp_filters[idx - 1]->prev) {
		if (idx > core->n_seccomp_filters || n == 64)
			return pr_errno(-EINVAL, "core-%d.img: thread %u: bad seccomp filter chain", c->proc.pid, t->tid);
		chain[n++] = idx;
	}
	f = bump(b, n * sizeof(*f) + 8);
	if (!f)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const ImgSeccompFilter *sf = core->seccomp_filters[chain[n - 1 - i] - 1];
		void *insns = bump(b, sf->bpf.len + 8);

		if (!insns || sf->bpf.len % 8)
			return pr_errno(-EINVAL, "core-%d.img: seccomp filter of %zu bytes", c->proc.pid, sf->bpf.len);
		if (sf->bpf.len)
			memcpy(insns, sf->bpf.data, sf->bpf.len);
		f[i] = (struct rst_filter){ sf->bpf.len / 8, (uint64_t)insns, sf->flags, 0 };
	}
	rt->seccomp = (uint64_t)f;
	rt->nr_seccomp = n;
	return 0;
}

static int fill_threads(struct rst_ctx *c, struct bump *b)
{
	struct rst_proc *p = &c->proc;
	struct rst_thread *th = bump(b, p->nr_threads * sizeof(*th));
	unsigned long stacks;
	int ret = 0;

	if (!th)
		return -ENOMEM;
	stacks = (unsigned long)bump(b, p->nr_threads * RST_STACK_SIZE);
	if (!stacks)
		return -ENOMEM;
	for (size_t i = 0; i < p->nr_threads && !ret; i++) {
		const ImgThread *t = p->threads[i];

		memset(&th[i], 0, sizeof(th[i]));
		th[i].tid = t->tid;
		th[i].stack_top = (stacks + (i + 1) * RST_STACK_SIZE) & ~15ul;
		if (t->rseq && t->rseq->addr) {
			th[i].rseq_addr = t->rseq->addr;
			th[i].rseq_len = t->rseq->len;
			th[i].rseq_sig = t->rseq->sig;
		}
		th[i].clear_tid = t->clear_tid_addr;
		th[i].ss_flags = 2;	/* SS_DISABLE */
		if (t->sigaltstack && !(t->sigaltstack->flags & 2)) {
			th[i].ss_sp = t->sigaltstack->sp;
			th[i].ss_size = t->sigaltstack->size;
			th[i].ss_flags = t->sigaltstack->flags;
		}
		snprintf(th[i].comm, sizeof(th[i].comm), "%s", t->comm ? t->comm : "");
		ret = fill_sigq(b, NULL, t->n_pending, &th[i].sigq, &th[i].nr_sigq, t->pending);
		if (!ret)
			ret = fill_seccomp(c, b, t, &th[i]);
	}
	c->args->threads = (uint64_t)th;
	c->args->nr_threads = p->nr_threads;
	if (!ret)
		ret = fill_sigq(b, NULL, p->core->n_shared_pending, &c->args->sigq, &c->args->nr_sigq,
				p->core->shared_pending);
	return ret;
}

static int fill_timers(struct rst_ctx *c, struct bump *b)
{
	const ImgCore *core = c->proc.core;
	struct rst_timer *t = bump(b, core->n_posix_timers * sizeof(*t) + 8);

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < core->n_posix_timers; i++) {
		const ImgPosixTimer *p = core->posix_timers[i];

		t[i] = (struct rst_timer){
			.id = p->id, .clock = p->clock_id, .notify = p->sigev_notify, .signo = p->sigev_signo,
			.value = p->sigev_value, .tid = p->notify_tid, .interval_sec = p->interval_sec,
			.interval_nsec = p->interval_nsec, .value_sec = p->value_sec, .value_nsec = p->value_nsec,
		};
	}
	c->args->timers = (uint64_t)t;
	c->args->nr_timers = core->n_posix_timers;
	return 0;
}

static int fill_creds(struct rst_ctx *c, struct bump *b)
{
	const ImgCreds *k = c->proc.core->creds;
	struct rst_creds *r = &c->args->creds;
	uint32_t *groups;
	FILE *f;

	if (!k)
		return pr_errno(-EINVAL, "core-%d.img: no credentials", c->proc.pid);
	groups = bump(b, k->n_groups * 4 + 8);
	if (!groups)
		return -ENOMEM;
	if (k->n_groups)	/* protobuf-c leaves an empty array NULL */
		memcpy(groups, k->groups, k->n_groups * 4);
	*r = (struct rst_creds){
		.uid = k->uid, .euid = k->euid, .suid = k->suid, .fsuid = k->fsuid,
		.gid = k->gid, .egid = k->egid, .sgid = k->sgid, .fsgid = k->fsgid,
		.groups = (uint64_t)groups, .nr_groups = k->n_groups, .securebits = k->securebits,
		.cap_inh = k->cap_inh, .cap_prm = k->cap_prm, .cap_eff = k->cap_eff,
		.cap_bnd = k->cap_bnd, .cap_amb = k->cap_amb, .no_new_privs = k->no_new_privs,
		.last_cap = 40,
	};
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%u", &r->last_cap) != 1)
			r->last_cap = 40;
		fclose(f);
	}
	return 0;
}

static int fill_mm(struct rst_ctx *c, struct bump *b)
{
	const ImgMm *mm = c->proc.mm;
	struct rst_mm_map *m = &c->args->mm;
	uint64_t *auxv = bump(b, mm->n_auxv * 8 + 8);
	struct stat sa, sb;
	int fd;

	if (!auxv)
		return -ENOMEM;
	if (mm->n_auxv)
		memcpy(auxv, mm->auxv, mm->n_auxv * 8);
	*m = (struct rst_mm_map){
		.start_code = mm->start_code, .end_code = mm->end_code,
		.start_data = mm->start_data, .end_data = mm->end_data,
		.start_brk = mm->start_brk, .brk = mm->brk, .start_stack = mm->start_stack,
		.arg_start = mm->arg_start, .arg_end = mm->arg_end,
		.env_start = mm->env_start, .env_end = mm->env_end,
		.auxv = (uint64_t)auxv, .auxv_size = mm->n_auxv * 8,
	};
	fd = open(mm->exe_path, O_RDONLY);
	if (fd < 0)
		return pr_errno(-errno, "cannot open the executable %s", mm->exe_path);
	/* The kernel refuses to replace an exe file that is still mapped (EBUSY): when we
	 * run the same binary as the checkpoint (a forked service of ours), it already is
	 * the right one, so leave it. */
	if (!fstat(fd, &sa) && !stat("/proc/self/exe", &sb) && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino) {
		close(fd);
		fd = -1;
	}
	m->exe_fd = fd;
	return 0;
}

unsigned long rst__plan_slots(const struct rst_proc *p, unsigned long *off)
{
	unsigned long at = 0;

	for (size_t i = 0; i < p->nr_vmas; i++) {
		const ImgVma *v = p->vmas[i];

		off[i] = 0;
		if (is_vdso_part(v))
			continue;
		if (v->flags & MAP_GROWSDOWN)
			at += GUARD_GAP;
		/* Same offset within a 2 MiB page table as the final address: mremap then moves
		 * whole page tables (and huge pages) instead of every PTE. */
		if (v->end - v->start >= PMD)
			at += (v->start - at) & (PMD - 1);
		off[i] = at;
		at += v->end - v->start + PAGE;
	}
	return at;
}

static int plan_vdso(struct rst_ctx *c, const struct range cur[3], struct rst_move *mv, size_t *nr,
		     struct range *keep, size_t *nr_keep, unsigned long *scratch_len)
{
	static const char *const names[3] = { "[vvar]", "[vvar_vclock]", "[vdso]" };
	const struct rst_proc *p = &c->proc;
	bool wanted[3] = { false, false, false };

	for (size_t i = 0; i < p->nr_vmas; i++) {
		const ImgVma *v = p->vmas[i];
		int k;

		if (!is_vdso_part(v))
			continue;
		k = vdso_index(v);
		if (cur[k].e - cur[k].s != v->end - v->start)
			return pr_errno(-ENOTSUP, "%s was %lu bytes at dump, this kernel has %lu: restoring onto a different vdso is not supported yet",
					names[k], (unsigned long)(v->end - v->start), cur[k].e - cur[k].s);
		wanted[k] = true;
		mv[(*nr)++] = (struct rst_move){ cur[k].s, v->start, v->end - v->start };
		keep[(*nr_keep)++] = cur[k];
		*scratch_len += v->end - v->start;
	}
	/* A part this kernel has and the checkpoint had not is unmapped with the rest. */
	for (int k = 0; k < 3; k++)
		if (!wanted[k] && cur[k].e && !strcmp(names[k], "[vdso]"))
			return pr_errno(-ENOTSUP, "the checkpoint has no [vdso]: not supported");
	return 0;
}

int rst__mem_prepare(struct rst_ctx *c)
{
	struct rst_proc *p = &c->proc;
	struct range *mine = NULL, cur_vdso[3], keep[8];
	unsigned long *off = calloc(p->nr_vmas + 1, sizeof(*off)), slots_len, scratch_len = 0, rlen, at;
	struct rst_move vmv[3];
	size_t nr_mine = 0, nr_vmv = 0, nr_keep = 0;
	struct rst_move *mv;
	struct bump b;
	int ret;

	if (!off)
		return -ENOMEM;
	ret = self_maps(&mine, &nr_mine, cur_vdso);
	if (!ret)
		ret = plan_vdso(c, cur_vdso, vmv, &nr_vmv, keep, &nr_keep, &scratch_len);
	if (ret)
		goto out;
	slots_len = rst__plan_slots(p, off);
	rlen = region_size(p);
	c->rsv_len = slots_len + page_up(scratch_len) + rlen;
	ret = find_gap(c, mine, nr_mine, c->rsv_len, &c->rsv);
	if (ret)
		goto out;
	if (mmap((void *)c->rsv, c->rsv_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) ==
	    MAP_FAILED) {
		ret = pr_errno(-errno, "reserving %lu bytes at %#lx", c->rsv_len, c->rsv);
		goto out;
	}
	c->t.premap = rst__now_us();
	for (size_t i = 0; i < p->nr_vmas && !ret; i++) {
		off[i] += c->rsv;
		if (!is_vdso_part(p->vmas[i]))
			ret = premap_vma(c, p->vmas[i], off[i]);
	}
	c->t.fill = rst__now_us();
	c->t.premap = c->t.fill - c->t.premap;
	if (!ret)
		ret = fill_pages(c, off);
	c->t.protect = rst__now_us();
	c->t.fill = c->t.protect - c->t.fill;
	for (size_t i = 0; i < p->nr_vmas && !ret; i++) {
		const ImgVma *v = p->vmas[i];

		if (is_vdso_part(v))
			continue;
		if (!(v->flags & MAP_SHARED) && mprotect((void *)off[i], v->end - v->start, v->prot))
			ret = pr_errno(-errno, "mprotect of the premapped %#lx", (unsigned long)v->start);
		apply_madvise(v, off[i]);
	}
	c->t.protect = rst__now_us() - c->t.protect;
	if (ret)
		goto out;

	c->region = c->rsv + c->rsv_len - rlen;
	c->region_len = rlen;
	if (mmap((void *)c->region, rlen, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED) {
		ret = pr_errno(-errno, "mapping the restorer");
		goto out;
	}
	memcpy((void *)c->region, ha_blob_restorer.data, ha_blob_restorer.size);
	b = (struct bump){ c->region + page_up(ha_blob_restorer.mem_size), c->region + rlen };
	c->args = bump(&b, sizeof(*c->args));
	memset(c->args, 0, sizeof(*c->args));
	c->args->abi = RST_ABI_VERSION;
	keep[nr_keep++] = (struct range){ c->rsv, c->rsv + c->rsv_len };
	mv = bump(&b, (p->nr_vmas + 3) * sizeof(*mv));
	if (nr_vmv)
		memcpy(mv, vmv, nr_vmv * sizeof(*mv));
	at = nr_vmv;
	for (size_t i = 0; i < p->nr_vmas; i++)
		if (!is_vdso_part(p->vmas[i]))
			mv[at++] = (struct rst_move){ off[i], p->vmas[i]->start, p->vmas[i]->end - p->vmas[i]->start };
	c->args->moves = (uint64_t)mv;
	c->args->nr_moves = at;
	c->args->nr_vdso_moves = nr_vmv;
	c->args->vdso_scratch = c->rsv + slots_len;
	c->args->post_unmap = (struct rst_range){ c->rsv, c->region };
	ret = fill_unmap(c, &b, keep, nr_keep);
	if (!ret)
		ret = fill_threads(c, &b);
	if (!ret)
		ret = fill_mm(c, &b);
	if (!ret)
		ret = fill_creds(c, &b);
	if (!ret)
		ret = fill_timers(c, &b);
	for (int w = 0; w < 3 && !ret && p->core->n_itimers == 3; w++) {
		const ImgItimer *it = p->core->itimers[w];

		c->args->itimers[w] = (struct par_itimer){ it->interval_sec, it->interval_usec, it->value_sec,
							   it->value_usec };
		/* Caught between expiry and re-arming, a periodic timer reads 0 left (its
		 * signal is in the pending queue we restore); 0 would disarm it for good. */
		if (!it->value_sec && !it->value_usec && (it->interval_sec || it->interval_usec)) {
			c->args->itimers[w].value_sec = it->interval_sec;
			c->args->itimers[w].value_usec = it->interval_usec;
		}
	}
out:
	free(mine);
	free(off);
	return ret;
}

void rst__mem_jump(struct rst_ctx *c)
{
	struct rst_thread *leader = (struct rst_thread *)c->args->threads;

	__asm__ volatile("mov %0, %%rsp\n\t"
			 "jmp *%1"
			 :
			 : "r"(leader->stack_top), "r"(c->region + HA_BLOB_RESTORER_RST_ENTRY), "D"(c->args)
			 : "memory");
	__builtin_unreachable();
}
