/*
 * `hactl image verify`: everything the reader checks, for every file of a directory,
 * plus what no single file can tell: every page run and every ghost file hashed
 * against the XXH3-64 its metadata carries, and the files against each other (the
 * inventory's pids have their pstree entry and their core, mm, pagemap and fds files;
 * every fd names an open file of its kind; every page run lies in the process's VMAs;
 * no pages or ghost file is left unreferenced).
 * Files are visited in kind order (inventory, pstree, files, then per process), so
 * each check finds what it refers to already read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "core.pb-c.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "image.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "shmem.pb-c.h"

#define HASH_CHUNK (256u << 10)

struct u32_set {
	uint32_t *v;
	size_t n, cap;
};

struct vma_span {
	uint32_t pid;
	uint64_t start, end;
};

struct verify {
	struct eng__img_dir d;
	struct eng_image_stats st;
	int first_err;
	const ImgInventory *inv;	/* NULL until inventory.img was read */
	struct u32_set inv_pids, tree_pids;
	struct u32_set file_ids, file_kinds, ghost_ids;	/* files.img, by ascending id */
	struct u32_set shm_ids;		/* shmem.img, ascending */
	struct vma_span *vmas;		/* every mm file's, by (pid, start) */
	struct u32_set mm_ok;		/* pids whose mm file read clean, ascending */
	size_t nr_vmas, vmas_cap;
	uint8_t *chunk;
};

static int set_add(struct u32_set *s, uint32_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		uint32_t *p = realloc(s->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

/* Index of v in the sorted set, or -1. */
static long set_find(const struct u32_set *s, uint32_t v)
{
	const uint32_t *p = s->n ? bsearch(&v, s->v, s->n, sizeof(v), eng__cmp_u32) : NULL;

	return p ? p - s->v : -1;
}

/* XXH3-64 of data [off, off + len) of a raw image. */
static int hash_raw(struct verify *v, struct eng_img *raw, uint64_t off, uint64_t len, uint64_t *h)
{
	XXH3_state_t *st = XXH3_createState();
	int ret = 0;

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	while (len) {
		size_t n = len < HASH_CHUNK ? len : HASH_CHUNK;

		ret = eng_img_read_raw(raw, off, v->chunk, n);
		if (ret)
			break;
		XXH3_64bits_update(st, v->chunk, n);
		off += n;
		len -= n;
		v->st.data_bytes += n;
	}
	*h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	return ret;
}

static int on_inventory(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgInventory *inv = (const ImgInventory *)m;

	for (size_t i = 0; i < inv->n_pids; i++)
		if (set_add(&v->inv_pids, inv->pids[i]))
			return -ENOMEM;
	if (v->inv_pids.n)
		qsort(v->inv_pids.v, v->inv_pids.n, sizeof(uint32_t), eng__cmp_u32);
	v->inv = inv;
	return 1;	/* keep the message: later checks read it */
}

static int in_inventory(struct verify *v, struct eng_img *img, const char *field, uint32_t pid)
{
	if (v->inv && set_find(&v->inv_pids, pid) < 0)
		return eng__img_bad(img, field, "%u is not in inventory.img's pids", pid);
	return 0;
}

static int on_pstree(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgPstreeEntry *e = (const ImgPstreeEntry *)m;

	/* Zombies have no images but their entry: inventory.img lists the live ones. */
	return set_add(&v->tree_pids, e->pid) ?: e->zombie ? 0 : in_inventory(v, img, "pid", e->pid);
}

/* A ghost file holds an unlinked file's contents: its size and hash are in ImgFile. */
static int check_ghost(struct verify *v, struct eng_img *img, const ImgFile *f)
{
	struct eng_img *g;
	uint64_t h;
	int ret = eng__img_open(v->d.dirfd, ENG_IMG_GHOST, f->id, &g);

	if (ret)
		return ret;
	if (eng_img_raw_size(g) != f->size)
		ret = eng__img_bad(img, "size", "%llu, but %s holds %llu bytes",
				   (unsigned long long)f->size, eng_img_name(g),
				   (unsigned long long)eng_img_raw_size(g));
	if (!ret)
		ret = hash_raw(v, g, 0, f->size, &h);
	if (!ret && h != f->content_xxh3)
		ret = eng__img_bad(img, "content_xxh3", "0x%016llx, but %s sums to 0x%016llx",
				   (unsigned long long)f->content_xxh3, eng_img_name(g),
				   (unsigned long long)h);
	eng_img_close(g);
	return ret;
}

static int on_file(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgFile *f = (const ImgFile *)m;

	if (set_add(&v->file_ids, f->id) || set_add(&v->file_kinds, f->kind) ||
	    (f->unlinked && set_add(&v->ghost_ids, f->id)))
		return -ENOMEM;
	return f->unlinked ? check_ghost(v, img, f) : 0;
}

/* A shared memory object's data file holds its extents, back to back. */
static int on_shmem(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgShmem *o = (const ImgShmem *)m;
	struct eng_img *g;
	uint64_t h, want = 0;
	int ret;

	if (set_add(&v->shm_ids, o->id))
		return -ENOMEM;
	for (size_t i = 1; i < o->n_extents; i += 2)
		want += o->extents[i];
	ret = eng__img_open(v->d.dirfd, ENG_IMG_SHMDATA, o->id, &g);
	if (ret)
		return ret;
	if (eng_img_raw_size(g) != want)
		ret = eng__img_bad(img, "extents", "%llu bytes, but %s holds %llu", (unsigned long long)want,
				   eng_img_name(g), (unsigned long long)eng_img_raw_size(g));
	if (!ret)
		ret = hash_raw(v, g, 0, want, &h);
	if (!ret && h != o->content_xxh3)
		ret = eng__img_bad(img, "content_xxh3", "0x%016llx, but %s sums to 0x%016llx",
				   (unsigned long long)o->content_xxh3, eng_img_name(g), (unsigned long long)h);
	eng_img_close(g);
	return ret;
}

static int on_fd(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgFd *fd = (const ImgFd *)m;
	long i = set_find(&v->file_ids, fd->id);

	if (i < 0)
		return eng__img_bad(img, "id", "%u is no file of files.img", fd->id);
	if ((int)v->file_kinds.v[i] != (int)fd->kind)
		return eng__img_bad(img, "kind", "%d, but file %u of files.img is %u", fd->kind,
				    fd->id, v->file_kinds.v[i]);
	return 0;
}

static int on_core(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgThread *t = (const ImgThread *)m;

	if (img->cur_rec == 0)
		return in_inventory(v, img, "pid", img->id);
	if (v->inv && t->xstate.len != v->inv->xstate_size)
		return eng__img_bad(img, "xstate", "%zu bytes, inventory.img says %u", t->xstate.len,
				    v->inv->xstate_size);
	return 0;
}

static int on_vma(struct verify *v, struct eng_img *img, const ProtobufCMessage *m)
{
	const ImgVma *vma = (const ImgVma *)m;

	if (img->cur_rec == 0)
		return 0;
	if (v->nr_vmas == v->vmas_cap) {
		size_t cap = v->vmas_cap ? 2 * v->vmas_cap : 256;
		struct vma_span *p = realloc(v->vmas, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		v->vmas = p;
		v->vmas_cap = cap;
	}
	/* mm files come by ascending pid, VMAs by ascending address: stays sorted. */
	v->vmas[v->nr_vmas++] = (struct vma_span){ img->id, vma->start, vma->end };
	return 0;
}

/* The first VMA of pid ending above addr, or NULL. */
static const struct vma_span *vma_after(const struct verify *v, uint32_t pid, uint64_t addr)
{
	size_t lo = 0, hi = v->nr_vmas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct vma_span *s = &v->vmas[mid];

		if (s->pid < pid || (s->pid == pid && s->end <= addr))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->nr_vmas && v->vmas[lo].pid == pid ? &v->vmas[lo] : NULL;
}

/* Restore can only fill pages of a mapping it created: a run must lie in VMAs. */
static int run_in_vmas(struct verify *v, struct eng_img *img, const ImgPagemapEntry *e)
{
	uint64_t addr = e->vaddr, end = e->vaddr + e->nr_pages * IMG_PAGE_SIZE;

	if (set_find(&v->mm_ok, img->id) < 0)
		return 0;	/* its mm file is bad or missing: that error is enough */
	while (addr < end) {
		const struct vma_span *s = vma_after(v, img->id, addr);

		if (!s || s->start > addr)
			return eng__img_bad(img, "vaddr", "page 0x%llx of the run is in no VMA of mm-%u.img",
					    (unsigned long long)addr, img->id);
		addr = s->end;
	}
	return 0;
}

static int on_pagemap(struct verify *v, struct eng_img *img, const ProtobufCMessage *m,
		      struct eng_img *pages)
{
	const ImgPagemapEntry *e = (const ImgPagemapEntry *)m;
	uint64_t h;
	int ret;

	if (img->cur_rec == 0) {
		if (eng_img_raw_size(pages) == img->st.pm.pages_size)
			return 0;
		return eng__img_bad(img, "pages_size", "%llu, but %s holds %llu bytes",
				    (unsigned long long)img->st.pm.pages_size, eng_img_name(pages),
				    (unsigned long long)eng_img_raw_size(pages));
	}
	ret = run_in_vmas(v, img, e);
	if (ret || !(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PAGES))
		return ret;
	ret = hash_raw(v, pages, e->offset, e->nr_pages * IMG_PAGE_SIZE, &h);
	if (!ret && h != e->xxh3)
		ret = eng__img_bad(img, "xxh3", "0x%016llx, but %s [%llu, +%llu) sums to 0x%016llx",
				   (unsigned long long)e->xxh3, eng_img_name(pages),
				   (unsigned long long)e->offset,
				   (unsigned long long)e->nr_pages * IMG_PAGE_SIZE, (unsigned long long)h);
	return ret;
}

/* Each record through its cross-check; 1 from a callback keeps the message. */
static int verify_records(struct verify *v, struct eng_img *img, struct eng_img *pages)
{
	ProtobufCMessage *m;
	int ret;

	while ((ret = eng_img_read(img, eng__img_rec_desc(img, img->rec), &m)) > 0) {
		v->st.records++;
		switch (img->kind) {
		case ENG_IMG_INVENTORY: ret = on_inventory(v, img, m); break;
		case ENG_IMG_PSTREE: ret = on_pstree(v, img, m); break;
		case ENG_IMG_FILES: ret = on_file(v, img, m); break;
		case ENG_IMG_CORE: ret = on_core(v, img, m); break;
		case ENG_IMG_MM: ret = on_vma(v, img, m); break;
		case ENG_IMG_PAGEMAP: ret = on_pagemap(v, img, m, pages); break;
		case ENG_IMG_FDS: ret = on_fd(v, img, m); break;
		case ENG_IMG_SHMEM: ret = on_shmem(v, img, m); break;
		default: ret = 0;
		}
		if (ret != 1)
			protobuf_c_message_free_unpacked(m, NULL);
		if (ret < 0)
			return ret;
	}
	return ret;
}

/* The files a raw kind or a pid needs beside it. */
static int need_file(struct verify *v, const char *name, const char *why)
{
	if (!faccessat(v->d.dirfd, name, F_OK, 0))
		return 0;
	return eng__img_fail(-EINVAL, "%s: missing (%s)", name, why);
}

static int verify_raw(struct verify *v, struct eng_img *img)
{
	char name[48];

	if (img->kind == ENG_IMG_GHOST) {
		if (set_find(&v->ghost_ids, img->id) < 0)
			return eng__img_fail(-EINVAL, "%s: no unlinked file of files.img has id %u",
					img->name, img->id);
		return 0;
	}
	if (img->kind == ENG_IMG_SHMDATA) {
		if (set_find(&v->shm_ids, img->id) < 0)
			return eng__img_fail(-EINVAL, "%s: no object of shmem.img has id %u", img->name, img->id);
		return 0;
	}
	snprintf(name, sizeof(name), "pagemap-%u.img", img->id);
	return need_file(v, name, "the pages file has no map");
}

static int verify_file(struct verify *v, const char *name)
{
	struct eng_img *img, *pages = NULL;
	int ret = eng__img_open_name(v->d.dirfd, name, &img);

	if (ret)
		return ret;
	v->st.files++;
	if (img->k->raw)
		ret = verify_raw(v, img);
	else if (img->kind == ENG_IMG_PAGEMAP)
		ret = eng__img_open(v->d.dirfd, ENG_IMG_PAGES, img->id, &pages);
	if (!ret && !img->k->raw)
		ret = verify_records(v, img, pages);
	if (!ret && img->kind == ENG_IMG_MM && set_add(&v->mm_ok, img->id))
		ret = -ENOMEM;
	eng_img_close(pages);
	eng_img_close(img);
	return ret;
}

/* Every process of the inventory, and only those, with its files. */
static int verify_pids(struct verify *v)
{
	static const char *const per_pid[] = { "pstree", "core", "mm", "pagemap", "fds" };
	int ret = 0;

	if (!v->inv)
		return eng__img_fail(-EINVAL, "inventory.img: missing (or unreadable)");
	if (v->tree_pids.n)
		qsort(v->tree_pids.v, v->tree_pids.n, sizeof(uint32_t), eng__cmp_u32);
	for (size_t i = 0; i < v->inv_pids.n && !ret; i++) {
		uint32_t pid = v->inv_pids.v[i];
		char name[48];

		if (set_find(&v->tree_pids, pid) < 0)
			ret = eng__img_fail(-EINVAL, "pstree.img: no entry for pid %u of inventory.img", pid);
		for (unsigned k = 1; k < sizeof(per_pid) / sizeof(per_pid[0]) && !ret; k++) {
			snprintf(name, sizeof(name), "%s-%u.img", per_pid[k], pid);
			ret = need_file(v, name, "inventory.img lists the pid");
		}
	}
	for (size_t i = 1; i < v->tree_pids.n && !ret; i++)
		if (v->tree_pids.v[i] == v->tree_pids.v[i - 1])
			ret = eng__img_fail(-EINVAL, "pstree.img: pid %u has two entries", v->tree_pids.v[i]);
	return ret;
}

static void note(struct verify *v, int ret)
{
	if (!ret)
		return;
	v->st.errors++;
	if (!v->first_err)
		v->first_err = ret;
}

int eng_image_verify(const char *dir, struct eng_image_stats *st)
{
	struct verify v = { 0 };
	int ret;

	eng__clear_error();
	ret = eng__img_dir_open(dir, &v.d);
	if (ret)
		return ret;
	v.chunk = malloc(HASH_CHUNK);
	if (!v.chunk) {
		eng__img_dir_close(&v.d);
		return -ENOMEM;
	}
	/* Errors are logged as found; eng_last_error() keeps the first. */
	for (int i = 0; i < v.d.n; i++) {
		ret = verify_file(&v, v.d.ents[i]->d_name);
		if (ret == -ENOMEM) {
			v.first_err = ret;
			break;
		}
		note(&v, ret);
	}
	if (v.first_err != -ENOMEM)
		note(&v, verify_pids(&v));
	if (st)
		*st = v.st;
	protobuf_c_message_free_unpacked((ProtobufCMessage *)v.inv, NULL);
	free(v.inv_pids.v);
	free(v.tree_pids.v);
	free(v.file_ids.v);
	free(v.file_kinds.v);
	free(v.ghost_ids.v);
	free(v.shm_ids.v);
	free(v.vmas);
	free(v.mm_ok.v);
	free(v.chunk);
	eng__img_dir_close(&v.d);
	return v.first_err;
}
