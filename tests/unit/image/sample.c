/*
 * The sample checkpoint: values are what a small real process on this machine has
 * (x86-64, XCR0 0xe7, 2688-byte xstate, the 6.18 vvar/vvar_vclock/vdso layout), so
 * that every field check passes and every message type appears at least once.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "core.pb-c.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "sample.h"

#define P SAMPLE_PID
#define GHOST_LEN 5000
#define NR_FILES 9

static uint8_t pages[3 * 4096], ghost[GHOST_LEN];
static struct sample_file files[NR_FILES];

static ImgVdsoArea vdso[3] = { IMG_VDSO_AREA__INIT, IMG_VDSO_AREA__INIT, IMG_VDSO_AREA__INIT };
static ImgVdsoArea *vdso_p[3] = { &vdso[0], &vdso[1], &vdso[2] };
static uint32_t inv_pids[] = { P };
static ImgInventory inv = IMG_INVENTORY__INIT;
static uint32_t tids[] = { P, P + 1 };
static ImgPstreeEntry tree = IMG_PSTREE_ENTRY__INIT;
static ImgFile file[3] = { IMG_FILE__INIT, IMG_FILE__INIT, IMG_FILE__INIT };
static ImgFd fds_rec[4] = { IMG_FD__INIT, IMG_FD__INIT, IMG_FD__INIT, IMG_FD__INIT };

static void build_inventory(void)
{
	static const ImgVdsoPart parts[] = { IMG_VDSO_PART__VDSO_PART_VVAR,
		IMG_VDSO_PART__VDSO_PART_VVAR_VCLOCK, IMG_VDSO_PART__VDSO_PART_VDSO };
	static const uint64_t at[] = { 0x7ffff7fb8000, 0x7ffff7fbc000, 0x7ffff7fbe000, 0x7ffff7fc0000 };

	for (int i = 0; i < 3; i++) {
		vdso[i].has_part = vdso[i].has_start = vdso[i].has_end = 1;
		vdso[i].part = parts[i];
		vdso[i].start = at[i];
		vdso[i].end = at[i + 1];
	}
	inv.has_img_version = inv.has_root_pid = inv.has_created_usec = inv.has_xcr0 = 1;
	inv.has_xstate_size = inv.has_page_size = inv.has_vdso_hash = 1;
	inv.img_version = ENG_IMG_VERSION;
	inv.hacd_version = "0.1.0";
	inv.root_pid = P;
	inv.n_pids = 1;
	inv.pids = inv_pids;
	inv.created_usec = 1764000000000000ull;
	inv.kernel_release = "6.18.0-test";
	inv.xcr0 = 0xe7;
	inv.xstate_size = 2688;
	inv.page_size = 4096;
	inv.n_vdso = 3;
	inv.vdso = vdso_p;
	inv.vdso_hash = 0x1234abcd5678ef00ull;
	tree.has_pid = tree.has_ppid = tree.has_pgid = tree.has_sid = 1;
	tree.pid = tree.pgid = tree.sid = P;
	tree.n_tids = 2;
	tree.tids = tids;
}

static void build_files(void)
{
	static const char *const paths[] = { "/tmp/gone", "/", "/dev/null" };
	static const ImgFileKind kinds[] = { IMG_FILE_KIND__FILE_REG, IMG_FILE_KIND__FILE_DIR,
		IMG_FILE_KIND__FILE_CHR };
	static const uint32_t modes[] = { S_IFREG | 0600, S_IFDIR | 0755, S_IFCHR | 0666 };
	static const struct { int fd, file; uint32_t flags; } fds[] = {
		{ 0, 2, 0 }, { 1, 2, 0 }, { 3, 0, FD_CLOEXEC }, { 7, 1, FD_CLOEXEC } };

	for (int i = 0; i < 3; i++) {
		ImgFile *f = &file[i];

		f->has_id = f->has_kind = f->has_flags = f->has_mode = 1;
		f->id = i + 1;
		f->kind = kinds[i];
		f->flags = i == 0 ? O_RDWR | O_APPEND : i == 1 ? O_RDONLY | O_DIRECTORY : O_RDWR;
		f->path = (char *)paths[i];
		f->mode = modes[i];
		f->has_dev = f->has_ino = i != 2;
		f->dev = makedev(254, 1);
		f->ino = 1000 + i;
	}
	file[0].has_pos = file[0].has_size = file[0].has_unlinked = file[0].has_content_xxh3 = 1;
	file[0].pos = 1234;
	file[0].size = GHOST_LEN;
	file[0].unlinked = 1;
	file[0].content_xxh3 = XXH3_64bits(ghost, GHOST_LEN);
	file[2].has_rdev = 1;
	file[2].rdev = makedev(1, 3);
	for (int i = 0; i < 4; i++) {
		ImgFd *d = &fds_rec[i];

		d->has_fd = d->has_flags = d->has_kind = d->has_id = 1;
		d->fd = fds[i].fd;
		d->flags = fds[i].flags;
		d->kind = kinds[fds[i].file];
		d->id = fds[i].file + 1;
	}
}

static ImgSigaction sa[64], *sa_p[64];
static ImgItimer itv[3], *itv_p[3];
static ImgPosixTimer ptimer = IMG_POSIX_TIMER__INIT, *ptimer_p[1] = { &ptimer };
static uint8_t siginfo[2][128];
static ProtobufCBinaryData pend_shared[1], pend_thread[1];
static uint32_t groups[] = { 0, 4, 27 };
static ImgCreds creds = IMG_CREDS__INIT;
static ImgRlimit rl[16], *rl_p[16];
static uint8_t bpf[16] = { 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f, 0x06, 0, 0, 0, 0, 0, 0xff, 0x7f };
static ImgSeccompFilter filter = IMG_SECCOMP_FILTER__INIT, *filter_p[1] = { &filter };
static ImgCore core = IMG_CORE__INIT;

static void build_core(void)
{
	for (int i = 0; i < 64; i++) {
		img_sigaction__init(&sa[i]);
		sa[i].has_handler = sa[i].has_flags = sa[i].has_restorer = sa[i].has_mask = 1;
		sa_p[i] = &sa[i];
	}
	sa[1].handler = 0x401136;		/* SIGINT */
	sa[1].flags = 0x04000000;		/* SA_RESTORER */
	sa[1].restorer = 0x7ffff7df1050;
	for (int i = 0; i < 3; i++) {
		img_itimer__init(&itv[i]);
		itv_p[i] = &itv[i];
	}
	itv[0].has_interval_sec = itv[0].has_value_usec = 1;
	itv[0].interval_sec = 1;
	itv[0].value_usec = 500000;
	ptimer.has_id = ptimer.has_clock_id = ptimer.has_sigev_notify = ptimer.has_sigev_signo = 1;
	ptimer.clock_id = 1;
	ptimer.sigev_signo = 14;
	ptimer.has_value_nsec = 1;
	ptimer.value_nsec = 999999999;
	siginfo[0][0] = 10;			/* SIGUSR1 */
	siginfo[1][0] = 12;			/* SIGUSR2 */
	pend_shared[0] = (ProtobufCBinaryData){ 128, siginfo[0] };
	pend_thread[0] = (ProtobufCBinaryData){ 128, siginfo[1] };
	creds.has_uid = creds.has_euid = creds.has_suid = creds.has_fsuid = 1;
	creds.has_gid = creds.has_egid = creds.has_sgid = creds.has_fsgid = 1;
	creds.has_cap_inh = creds.has_cap_prm = creds.has_cap_eff = creds.has_cap_bnd = 1;
	creds.has_cap_amb = creds.has_securebits = creds.has_no_new_privs = 1;
	creds.uid = creds.euid = creds.suid = creds.fsuid = 1000;
	creds.gid = creds.egid = creds.sgid = creds.fsgid = 1000;
	creds.n_groups = 3;
	creds.groups = groups;
	creds.cap_bnd = 0x1ffffffffffull;
	for (int i = 0; i < 16; i++) {
		img_rlimit__init(&rl[i]);
		rl[i].has_cur = rl[i].has_max = 1;
		rl[i].cur = i == 7 ? 1024 : UINT64_MAX;	/* RLIMIT_NOFILE */
		rl[i].max = i == 7 ? 4096 : UINT64_MAX;
		rl_p[i] = &rl[i];
	}
	filter.has_bpf = filter.has_flags = 1;
	filter.bpf = (ProtobufCBinaryData){ sizeof(bpf), bpf };
	core.has_pid = core.has_personality = core.has_umask = 1;
	core.pid = P;
	core.comm = "sample";
	core.umask = 022;
	core.cwd = "/srv/sample";
	core.root = "/";
	core.n_sigactions = 64;
	core.sigactions = sa_p;
	core.n_itimers = 3;
	core.itimers = itv_p;
	core.n_posix_timers = 1;
	core.posix_timers = ptimer_p;
	core.n_shared_pending = 1;
	core.shared_pending = pend_shared;
	core.creds = &creds;
	core.n_rlimits = 16;
	core.rlimits = rl_p;
	core.n_seccomp_filters = 1;
	core.seccomp_filters = filter_p;
}

static ImgRegs regs[2];
static uint8_t xstate[2][2688];
static ImgRseq rseq[2];
static ImgSigaltstack sas = IMG_SIGALTSTACK__INIT;
static ImgThread thread[2];

static void build_threads(void)
{
	const ProtobufCMessageDescriptor *d = &img_regs__descriptor;

	for (int t = 0; t < 2; t++) {
		img_regs__init(&regs[t]);
		/* Every register set, each to a value of its own. */
		for (unsigned i = 0; i < d->n_fields; i++) {
			*(protobuf_c_boolean *)((char *)&regs[t] + d->fields[i].quantifier_offset) = 1;
			*(uint64_t *)((char *)&regs[t] + d->fields[i].offset) = 0x1000 * (t + 1) + i;
		}
		xstate[t][0] = 0x7f;
		xstate[t][1] = 0x03;			/* FCW */
		xstate[t][512] = 0x07;			/* XSTATE_BV: x87 | SSE | AVX */
		img_rseq__init(&rseq[t]);
		rseq[t].has_addr = rseq[t].has_len = rseq[t].has_sig = 1;
		rseq[t].addr = 0x7ffff7d8e6a0 + 0x1000 * t;
		rseq[t].len = 32;
		rseq[t].sig = 0x53053053;
		img_thread__init(&thread[t]);
		thread[t].has_tid = thread[t].has_xstate = thread[t].has_xcr0 = 1;
		thread[t].has_sigmask = thread[t].has_seccomp_mode = thread[t].has_seccomp_filter = 1;
		thread[t].tid = P + t;
		thread[t].comm = t ? "worker" : "sample";
		thread[t].regs = &regs[t];
		thread[t].xstate = (ProtobufCBinaryData){ sizeof(xstate[t]), xstate[t] };
		thread[t].xcr0 = 0xe7;
		thread[t].sigmask = t ? 1ull << 9 : 0;
		thread[t].rseq = &rseq[t];
		thread[t].seccomp_mode = 2;
		thread[t].seccomp_filter = 1;
	}
	thread[1].n_pending = 1;
	thread[1].pending = pend_thread;
	sas.has_sp = sas.has_size = sas.has_flags = 1;
	sas.sp = 0x7ffff0000000;
	sas.size = 65536;
	thread[1].sigaltstack = &sas;
}

static uint64_t auxv[] = { 6, 4096, 33, 0x7ffff7fbe000, 0, 0 };	/* AT_PAGESZ, AT_SYSINFO_EHDR, AT_NULL */
static ImgMm mm = IMG_MM__INIT;
static ImgVma vma[5];
static ImgPagemapHead pm_head = IMG_PAGEMAP_HEAD__INIT;
static ImgPagemapEntry run[3];

static void build_mm(void)
{
	static const struct { uint64_t start, end; uint32_t prot, flags; ImgVmaKind kind; } v[] = {
		{ 0x400000, 0x401000, PROT_READ | PROT_EXEC, MAP_PRIVATE, IMG_VMA_KIND__VMA_PLAIN },
		{ 0x401000, 0x404000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		  IMG_VMA_KIND__VMA_HEAP },
		{ 0x7ffff7fbe000, 0x7ffff7fc0000, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
		  IMG_VMA_KIND__VMA_VDSO },
		{ 0x7ffffffde000, 0x7ffffffff000, PROT_READ | PROT_WRITE,
		  MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN, IMG_VMA_KIND__VMA_STACK },
	};
	static const struct { uint64_t vaddr, nr; uint32_t flags; uint64_t off; } r[] = {
		{ 0x401000, 2, IMG_PAGEMAP_FLAG__PM_IN_PAGES, 0 },
		{ 0x403000, 1, IMG_PAGEMAP_FLAG__PM_ZERO, 0 },
		{ 0x7fffffffe000, 1, IMG_PAGEMAP_FLAG__PM_IN_PAGES, 8192 },
	};
	const ProtobufCMessageDescriptor *d = &img_mm__descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		if (d->fields[i].label == PROTOBUF_C_LABEL_REPEATED ||
		    d->fields[i].type != PROTOBUF_C_TYPE_FIXED64)
			continue;
		*(protobuf_c_boolean *)((char *)&mm + d->fields[i].quantifier_offset) = 1;
		*(uint64_t *)((char *)&mm + d->fields[i].offset) = 0x400000 + 0x100 * i;
	}
	mm.n_auxv = 6;
	mm.auxv = auxv;
	mm.exe_path = "/usr/bin/sample";
	for (int i = 0; i < 4; i++) {
		img_vma__init(&vma[i]);
		vma[i].has_start = vma[i].has_end = vma[i].has_prot = vma[i].has_flags = 1;
		vma[i].has_kind = 1;
		vma[i].start = v[i].start;
		vma[i].end = v[i].end;
		vma[i].prot = v[i].prot;
		vma[i].flags = v[i].flags;
		vma[i].kind = v[i].kind;
	}
	vma[0].path = "/usr/bin/sample";
	vma[0].has_dev = vma[0].has_ino = vma[0].has_pgoff = 1;
	vma[0].dev = makedev(254, 1);
	vma[0].ino = 4711;
	vma[3].has_madv = 1;
	vma[3].madv = 1ull << 16;		/* MADV_DONTDUMP */
	for (size_t i = 0; i < sizeof(pages); i++)
		pages[i] = (uint8_t)(i * 7 + i / 4096);
	pm_head.has_pages_size = 1;
	pm_head.pages_size = sizeof(pages);
	for (int i = 0; i < 3; i++) {
		img_pagemap_entry__init(&run[i]);
		run[i].has_vaddr = run[i].has_nr_pages = run[i].has_flags = 1;
		run[i].vaddr = r[i].vaddr;
		run[i].nr_pages = r[i].nr;
		run[i].flags = r[i].flags;
		if (r[i].flags != IMG_PAGEMAP_FLAG__PM_IN_PAGES)
			continue;
		run[i].has_offset = run[i].has_xxh3 = 1;
		run[i].offset = r[i].off;
		run[i].xxh3 = XXH3_64bits(pages + r[i].off, r[i].nr * 4096);
	}
}

static void add(int i, enum eng_img_kind kind, uint32_t id, const void *const *recs, size_t n)
{
	files[i].kind = kind;
	files[i].id = id;
	files[i].n = n;
	for (size_t j = 0; j < n; j++)
		files[i].recs[j] = recs[j];
}

const struct sample_file *sample_files(size_t *n)
{
	static int built;

	*n = NR_FILES;
	if (built)
		return files;
	built = 1;
	for (int i = 0; i < GHOST_LEN; i++)
		ghost[i] = "ghost data "[i % 11];
	build_inventory();
	build_files();
	build_core();
	build_threads();
	build_mm();
	add(0, ENG_IMG_INVENTORY, 0, (const void *[]){ &inv }, 1);
	add(1, ENG_IMG_PSTREE, 0, (const void *[]){ &tree }, 1);
	add(2, ENG_IMG_FILES, 0, (const void *[]){ &file[0], &file[1], &file[2] }, 3);
	add(3, ENG_IMG_CORE, P, (const void *[]){ &core, &thread[0], &thread[1] }, 3);
	add(4, ENG_IMG_MM, P, (const void *[]){ &mm, &vma[0], &vma[1], &vma[2], &vma[3] }, 5);
	add(5, ENG_IMG_PAGEMAP, P, (const void *[]){ &pm_head, &run[0], &run[1], &run[2] }, 4);
	add(6, ENG_IMG_FDS, P, (const void *[]){ &fds_rec[0], &fds_rec[1], &fds_rec[2], &fds_rec[3] }, 4);
	add(7, ENG_IMG_PAGES, P, NULL, 0);
	files[7].data = pages;
	files[7].len = sizeof(pages);
	add(8, ENG_IMG_GHOST, 1, NULL, 0);
	files[8].data = ghost;
	files[8].len = GHOST_LEN;
	return files;
}

const struct sample_file *sample_file(enum eng_img_kind kind)
{
	size_t n;
	const struct sample_file *f = sample_files(&n);

	for (size_t i = 0; i < n; i++)
		if (f[i].kind == kind)
			return &f[i];
	return NULL;
}

const char *sample_name(const struct sample_file *f)
{
	static const char *const stem[] = { NULL, "inventory", "pstree", "files", "core", "mm",
		"pagemap", "fds", "pages", "ghost" };
	static char buf[64];

	if (f->id)
		snprintf(buf, sizeof(buf), "%s-%u.img", stem[f->kind], f->id);
	else
		snprintf(buf, sizeof(buf), "%s.img", stem[f->kind]);
	return buf;
}

int sample_write_file(int dirfd, const struct sample_file *f)
{
	struct eng_img *img;
	int ret = eng_img_create(dirfd, f->kind, f->id, &img);

	if (ret)
		return ret;
	for (size_t i = 0; i < f->n && !ret; i++)
		ret = eng_img_write(img, f->recs[i]);
	/* In two pieces, as a dumper appends run after run. */
	if (!ret && f->data)
		ret = eng_img_write_raw(img, f->data, f->len / 2);
	if (!ret && f->data)
		ret = eng_img_write_raw(img, f->data + f->len / 2, f->len - f->len / 2);
	if (ret) {
		eng_img_abort(img);
		return ret;
	}
	return eng_img_commit(img);
}

int sample_write(int dirfd)
{
	size_t n;
	const struct sample_file *f = sample_files(&n);
	int ret = 0;

	for (size_t i = 0; i < n && !ret; i++)
		ret = sample_write_file(dirfd, &f[i]);
	return ret;
}

int sample_setup(void **state)
{
	struct sample_dir *d = calloc(1, sizeof(*d));

	assert_non_null(d);
	d->dir = sample_tmpdir();
	assert_non_null(d->dir);
	d->dirfd = ha_dir_open(d->dir, false);
	assert_true(d->dirfd >= 0);
	*state = d;
	return 0;
}

int sample_setup_written(void **state)
{
	sample_setup(state);
	assert_int_equal(sample_write(((struct sample_dir *)*state)->dirfd), 0);
	return 0;
}

int sample_teardown(void **state)
{
	struct sample_dir *d = *state;

	close(d->dirfd);
	sample_rmdir(d->dir);
	free(d);
	return 0;
}

char *sample_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *dir;

	/* tmpfs when there is one: the corruption test rewrites files 25000 times. */
	if (!t || !*t)
		t = access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm";
	if (asprintf(&dir, "%s/hacd-image-XXXXXX", t) < 0)
		return NULL;
	if (!mkdtemp(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

void sample_rmdir(char *dir)
{
	DIR *d;
	struct dirent *de;

	if (!dir)
		return;
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		char p[4096];

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(dir);
}

uint8_t *sample_slurp(int dirfd, const char *name, size_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	uint8_t *buf = NULL;

	if (fd < 0)
		return NULL;
	if (!fstat(fd, &st) && (buf = malloc(st.st_size + 1)) &&
	    read(fd, buf, st.st_size) != st.st_size) {
		free(buf);
		buf = NULL;
	}
	*len = st.st_size;
	close(fd);
	return buf;
}

int sample_spit(int dirfd, const char *name, const void *buf, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0)
		return -1;
	ret = write(fd, buf, len) == (ssize_t)len ? 0 : -1;
	close(fd);
	return ret;
}
