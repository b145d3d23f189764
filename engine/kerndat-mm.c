/*
 * Memory probes: dirty-page tracking (uffd async write-protect + PAGEMAP_SCAN,
 * soft-dirty, hash), userfaultfd itself, PR_SET_MM_MAP and the vdso layout.
 *
 * Each tracking method is tried the way incremental dumps will use it: arm, write one
 * page, scan, and require that exactly that page is reported. A method that reports
 * nothing, or everything, is as useless as one whose syscall fails.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/prctl.h>

#include "kerndat.h"
#include "log.h"
#include "uapi-pagemap.h"

#define KD_PAGES 4

static int kd_map(struct kd_res *res, size_t len, char **out)
{
	*out = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*out == MAP_FAILED)
		return eng__kd_fail(res, -errno, "mmap(%zu)", len);
	return 0;
}

/* One PAGEMAP_SCAN that reports written pages and write-protects them again. */
static int kd_scan_written(int pm, char *mem, size_t len, struct page_region *vec, int nvec)
{
	struct pm_scan_arg a = {
		.size = sizeof(a),
		.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
		.start = (uintptr_t)mem,
		.end = (uintptr_t)mem + len,
		.vec = (uintptr_t)vec,
		.vec_len = nvec,
		.category_mask = PAGE_IS_WRITTEN,
		.return_mask = PAGE_IS_WRITTEN,
	};
	int n = ioctl(pm, PAGEMAP_SCAN, &a);

	return n < 0 ? -errno : n;
}

/* Runs in a child: the uffd registration and the mapping die with it. */
static int kd_uffd_wp_child(void *arg, struct kd_res *res)
{
	struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_WP_ASYNC };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_WP };
	long psz = sysconf(_SC_PAGESIZE);
	size_t len = KD_PAGES * psz;
	struct page_region vec[KD_PAGES];
	int uffd, pm, n;
	char *mem;

	/* USER_MODE_ONLY: what we inject into targets; it needs no privilege. */
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return eng__kd_fail(res, -errno, "userfaultfd(UFFD_USER_MODE_ONLY)");
	if (ioctl(uffd, UFFDIO_API, &api))
		return eng__kd_fail(res, -errno, "UFFDIO_API(WP_ASYNC)");
	if (kd_map(res, len, &mem))
		return res->err;
	/* Populate first: without WP_UNPOPULATED, never-touched pages cannot be protected. */
	memset(mem, 1, len);
	reg.range.start = (uintptr_t)mem;
	reg.range.len = len;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return eng__kd_fail(res, -errno, "UFFDIO_REGISTER(MODE_WP)");
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return eng__kd_fail(res, -errno, "open /proc/self/pagemap");
	/* Registration alone protects nothing: every page reads as written until the
	 * first scan arms it, so the first scan must report the whole range. */
	n = kd_scan_written(pm, mem, len, vec, KD_PAGES);
	if (n < 0)
		return eng__kd_fail(res, n, "PAGEMAP_SCAN");
	if (n != 1 || vec[0].start != (uintptr_t)mem || vec[0].end != (uintptr_t)mem + len)
		return eng__kd_wrong(res, -EIO, "arming scan reported %d regions, not the range", n);
	mem[2 * psz] = 2;
	n = kd_scan_written(pm, mem, len, vec, KD_PAGES);
	if (n < 0)
		return eng__kd_fail(res, n, "PAGEMAP_SCAN after a write");
	if (n != 1 || vec[0].start != (uintptr_t)mem + 2 * psz ||
	    vec[0].end != (uintptr_t)mem + 3 * psz)
		return eng__kd_wrong(res, -EIO, "after writing page 2 the scan reported %d "
				     "regions, not exactly page 2", n);
	n = kd_scan_written(pm, mem, len, vec, KD_PAGES);
	if (n < 0)
		return eng__kd_fail(res, n, "PAGEMAP_SCAN after re-arming");
	if (n != 0)
		return eng__kd_wrong(res, -EIO, "scan did not re-arm (%d regions)", n);
	return 0;
}

static int kd_pagemap_entry(int pm, const void *addr, long psz, uint64_t *e)
{
	off_t off = (uintptr_t)addr / psz * sizeof(*e);

	return pread(pm, e, sizeof(*e), off) == sizeof(*e) ? 0 : -EIO;
}

static int kd_soft_dirty_child(void *arg, struct kd_res *res)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t e0 = 0, e1 = 0;
	int cr, pm;
	char *mem;

	if (kd_map(res, 2 * psz, &mem))
		return res->err;
	memset(mem, 1, 2 * psz);
	/* A new VMA is wholly soft-dirty (VM_SOFTDIRTY) until clear_refs: clear after mmap. */
	cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
	if (cr < 0)
		return eng__kd_fail(res, -errno, "open /proc/self/clear_refs");
	if (write(cr, "4", 1) != 1)
		return eng__kd_fail(res, -errno, "write \"4\" to clear_refs");
	mem[0] = 2;
	pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return eng__kd_fail(res, -errno, "open /proc/self/pagemap");
	if (kd_pagemap_entry(pm, mem, psz, &e0) || kd_pagemap_entry(pm, mem + psz, psz, &e1))
		return eng__kd_wrong(res, -EIO, "short pagemap read");
	/* Kernels without CONFIG_MEM_SOFT_DIRTY accept the "4" and never set the bit. */
	if (!(e0 & PM_ENTRY_SOFT_DIRTY))
		return eng__kd_wrong(res, -EOPNOTSUPP, "clear_refs took \"4\", but bit 55 "
				     "stays 0 after a write");
	if (e1 & PM_ENTRY_SOFT_DIRTY)
		return eng__kd_wrong(res, -EIO, "bit 55 set on a page not written");
	return 0;
}

int eng__kd_dirty(struct eng_kerndat *kd)
{
	struct kd_res wp, sd;
	char why[sizeof(kd->items[0].detail)] = "";
	int err;

	err = eng__kd_in_child(kd_uffd_wp_child, NULL, &wp);
	if (!err)
		err = eng__kd_in_child(kd_soft_dirty_child, NULL, &sd);
	else
		sd = wp;
	kd->uffd_wp_scan = !err && !wp.err;
	kd->soft_dirty = !err && !sd.err;
	/* XXH3 of every present page needs nothing from the kernel: always the floor. */
	if (kd->uffd_wp_scan)
		kd->dirty_method = ENG_DIRTY_UFFD_WP;
	else if (kd->soft_dirty)
		kd->dirty_method = ENG_DIRTY_SOFT_DIRTY;
	else
		kd->dirty_method = ENG_DIRTY_HASH;
	if (!kd->uffd_wp_scan)
		snprintf(why, sizeof(why), "; uffd-wp: %s", wp.msg);
	if (!kd->soft_dirty)
		snprintf(why + strlen(why), sizeof(why) - strlen(why), "; soft-dirty: %s", sd.msg);
	eng__kd_set(kd, ENG_KD_DIRTY, 0, eng_dirty_method_name(kd->dirty_method),
		    "%ssoft-dirty: %s, hash: yes%s", kd->uffd_wp_scan ? "" : "uffd-wp: no, ",
		    kd->soft_dirty ? "yes" : "no", why);
	return err;
}

/*
 * Plain userfaultfd as restore uses it for lazy pages: register a never-touched page
 * for missing faults and fill it with UFFDIO_COPY (no fault, so no handler needed).
 */
static int kd_uffd_child(void *arg, struct kd_res *res)
{
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_copy cp = { 0 };
	long psz = sysconf(_SC_PAGESIZE);
	char *mem, *src;
	int uffd;

	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (uffd < 0)
		return eng__kd_fail(res, -errno, "userfaultfd(UFFD_USER_MODE_ONLY)");
	/* features 0 in, every supported feature out. */
	if (ioctl(uffd, UFFDIO_API, &api))
		return eng__kd_fail(res, -errno, "UFFDIO_API");
	res->val[0] = api.features;
	if (kd_map(res, 2 * psz, &mem))
		return res->err;
	src = mem + psz;
	memset(src, 0x5a, psz);
	reg.range.start = (uintptr_t)mem;
	reg.range.len = psz;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		return eng__kd_fail(res, -errno, "UFFDIO_REGISTER(MODE_MISSING)");
	cp.dst = (uintptr_t)mem;
	cp.src = (uintptr_t)src;
	cp.len = psz;
	if (ioctl(uffd, UFFDIO_COPY, &cp) || cp.copy != psz)
		return eng__kd_fail(res, -errno, "UFFDIO_COPY");
	if (memcmp(mem, src, psz))
		return eng__kd_wrong(res, -EIO, "UFFDIO_COPY: page content differs");
	return 0;
}

int eng__kd_uffd(struct eng_kerndat *kd)
{
	struct kd_res r;
	int err = eng__kd_in_child(kd_uffd_child, NULL, &r);

	kd->uffd = !err && !r.err;
	kd->uffd_features = r.val[0];
	if (kd->uffd)
		eng__kd_set(kd, ENG_KD_UFFD, 0, NULL, "features %#" PRIx64 ", UFFDIO_COPY ok",
			    kd->uffd_features);
	else
		eng__kd_set(kd, ENG_KD_UFFD, r.err, NULL, "%s", r.msg);
	return err;
}

/* Numeric fields of /proc/self/stat, f[n] = field n (1-based, as in proc(5)). */
static int kd_stat_fields(uint64_t *f, int nf)
{
	char buf[1024], *p, *tok, *save;
	ssize_t n;
	int fd, i;

	fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	/* comm (field 2) may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	for (i = 3, tok = strtok_r(p + 1, " \n", &save); tok && i < nf;
	     i++, tok = strtok_r(NULL, " \n", &save))
		f[i] = strtoull(tok, NULL, 10);
	return i == nf ? 0 : -EIO;
}

/*
 * PR_SET_MM_MAP as the restorer calls it, with exe_fd -1 (EBUSY while the restorer's
 * own executable is mapped, and needs CAP_CHECKPOINT_RESTORE). Unlike the single
 * PR_SET_MM_* calls it needs no CAP_SYS_RESOURCE. To see that it really applied, move
 * the arg area to a buffer of ours and read it back through /proc/self/cmdline.
 */
static int kd_mm_map_child(void *arg, struct kd_res *res)
{
	/* On the stack, not static: /proc/PID/cmdline reads the arg area with FOLL_ANON,
	 * which refuses file-backed mappings such as our .data (the read returns 0). */
	char args[] = "hacd-kd";
	struct prctl_mm_map map = { .exe_fd = (uint32_t)-1 };
	uint64_t f[52] = { 0 }, auxv[128];
	unsigned int size = 0;
	char cmd[32] = "";
	ssize_t n;
	int fd;

	if (prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &size, 0, 0))
		return eng__kd_fail(res, -errno, "PR_SET_MM_MAP_SIZE");
	res->val[0] = size;
	if (size != sizeof(map))
		return eng__kd_wrong(res, -EINVAL, "kernel's prctl_mm_map is %u bytes, ours %zu",
				     size, sizeof(map));
	if (kd_stat_fields(f, 52))
		return eng__kd_wrong(res, -EIO, "parsing /proc/self/stat");
	fd = open("/proc/self/auxv", O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, auxv, sizeof(auxv));
	if (n <= 0)
		return eng__kd_fail(res, -errno, "reading /proc/self/auxv");
	close(fd);
	map.start_code = f[26];
	map.end_code = f[27];
	map.start_stack = f[28];
	map.start_data = f[45];
	map.end_data = f[46];
	map.start_brk = f[47];
	map.brk = syscall(SYS_brk, 0);	/* not in stat; brk(0) returns the current one */
	map.arg_start = (uintptr_t)args;
	map.arg_end = (uintptr_t)args + sizeof(args);
	map.env_start = f[50];
	map.env_end = f[51];
	map.auxv = (__u64 *)auxv;
	map.auxv_size = n;
	if (prctl(PR_SET_MM, PR_SET_MM_MAP, &map, sizeof(map), 0))
		return eng__kd_fail(res, -errno, "prctl(PR_SET_MM_MAP)");
	fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || read(fd, cmd, sizeof(cmd) - 1) < 0)
		return eng__kd_fail(res, -errno, "reading /proc/self/cmdline");
	close(fd);
	if (strcmp(cmd, args))
		return eng__kd_wrong(res, -EIO, "PR_SET_MM_MAP accepted, cmdline still "
				     "'%s'", cmd);
	return 0;
}

int eng__kd_mm_map(struct eng_kerndat *kd)
{
	struct kd_res r;
	int err = eng__kd_in_child(kd_mm_map_child, NULL, &r);

	kd->mm_map = !err && !r.err;
	kd->mm_map_size = r.val[0];
	if (kd->mm_map)
		eng__kd_set(kd, ENG_KD_MM_MAP, 0, NULL, "struct %u bytes, exe_fd -1",
			    kd->mm_map_size);
	else
		eng__kd_set(kd, ENG_KD_MM_MAP, r.err, NULL, "%s", r.msg);
	return err;
}

static void kd_vdso_detail(struct eng_kerndat *kd)
{
	/* This kernel puts [vvar] [vvar_vclock] [vdso] back to back; restore moves each
	 * whole (partial mremaps get EINVAL), so say whether they are contiguous. */
	bool contig = kd->vvar.start + kd->vvar.size ==
		      (kd->vvar_vclock.size ? kd->vvar_vclock.start : kd->vdso.start) &&
		      (!kd->vvar_vclock.size ||
		       kd->vvar_vclock.start + kd->vvar_vclock.size == kd->vdso.start);

	eng__kd_set(kd, ENG_KD_VDSO, 0, NULL, "vvar %" PRIu64 ", vvar_vclock %" PRIu64
		    ", vdso %" PRIu64 " bytes%s", kd->vvar.size, kd->vvar_vclock.size,
		    kd->vdso.size, contig ? ", contiguous" : "");
}

int eng__kd_vdso(struct eng_kerndat *kd)
{
	unsigned long s, e, ehdr = getauxval(AT_SYSINFO_EHDR);
	struct eng_kd_map *m;
	char line[512];
	FILE *f;

	f = fopen("/proc/self/maps", "re");
	if (!f) {
		eng__kd_set(kd, ENG_KD_VDSO, -errno, NULL, "open /proc/self/maps: %m");
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		/* Recent kernels split [vvar_vclock] out of [vvar]; older ones have one. */
		if (strstr(line, "[vvar]"))
			m = &kd->vvar;
		else if (strstr(line, "[vvar_vclock]"))
			m = &kd->vvar_vclock;
		else if (strstr(line, "[vdso]"))
			m = &kd->vdso;
		else
			continue;
		m->start = s;
		m->size = e - s;
	}
	fclose(f);
	if (kd->vdso.size)
		kd_vdso_detail(kd);
	else if (!ehdr)
		eng__kd_set(kd, ENG_KD_VDSO, 0, "none", "no vdso mapped (vdso=0?): nothing to move");
	else
		eng__kd_set(kd, ENG_KD_VDSO, -ENOENT, NULL, "AT_SYSINFO_EHDR %#lx but no [vdso] "
			    "in /proc/self/maps", ehdr);
	return 0;
}
