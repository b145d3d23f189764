/*
 * Writing a tracked generation, after the process runs again: the staged pages into
 * this generation's pack, then the page map (pagemap-PID.img, every page of every
 * mapping, PM_IN_PACK runs) and an empty pages-PID.img, queued for dump.c to commit.
 *
 * Blobs are filled in address order, up to 256 pages each, whatever mappings they
 * come from: a page map run is a stretch of consecutive addresses held by consecutive
 * pages of one blob. Two threads compress (zstd, level 1 by default: ~3 ms per MiB
 * of pages per core here, while the pages are hot in the staging buffer); the pack is
 * written in blob order by the caller's thread, and fsynced with its directory before
 * any image that refers to it is committed.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "image.h"
#include "log.h"
#include "pagemap.pb-c.h"
#include "track.h"

#define PG ENG_PAGE_SIZE
#define BATCH 32		/* blobs compressed per batch (two threads) */

struct pending {		/* one blob being built */
	uint32_t nr;
	struct eng__area *a[TRK_BLOB_PAGES];
	uint32_t p[TRK_BLOB_PAGES];
	uint8_t *raw;		/* nr pages, gathered */
	uint8_t *c;		/* compressed */
	size_t clen;
	int err;
};

struct writer {
	struct eng_track *t;
	int fd;
	char name[64];
	uint64_t off;
	struct pending *b;	/* BATCH of them */
	int nb;
	ZSTD_CCtx *cctx[2];
	size_t cbound;
	uint64_t pages_written, pages_zero;
};

static bool page_is_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)p;

	for (size_t i = 0; i < PG / 8; i += 8)
		if (q[i] | q[i + 1] | q[i + 2] | q[i + 3] | q[i + 4] | q[i + 5] | q[i + 6] | q[i + 7])
			return false;
	return true;
}

struct cjob {
	struct writer *w;
	int first, step, ctx;
};

static void *compress_some(void *arg)
{
	struct cjob *j = arg;
	struct writer *w = j->w;

	for (int i = j->first; i < w->nb; i += j->step) {
		struct pending *b = &w->b[i];
		size_t r = ZSTD_compressCCtx(w->cctx[j->ctx], b->c, w->cbound, b->raw, (size_t)b->nr * PG,
					     w->t->o.zstd_level ? w->t->o.zstd_level : 1);

		if (ZSTD_isError(r))
			b->err = -EIO;
		else
			b->clen = r;
	}
	return NULL;
}

static int add_blob(struct eng_track *t, uint64_t off, uint64_t h, uint32_t nr)
{
	if (t->nr_blobs == t->cap_blobs) {
		size_t cap = t->cap_blobs ? t->cap_blobs * 2 : 1024;
		void *p = realloc(t->blobs, cap * sizeof(*t->blobs));

		if (!p)
			return -ENOMEM;
		t->blobs = p;
		t->cap_blobs = cap;
	}
	t->blobs[t->nr_blobs++] = (struct eng__blob){ .off = off, .xxh3 = h, .pack = t->gen, .nr_pages = nr };
	return 0;
}

/* Compress the batch, append it, and point its pages' slots at it. */
static int flush_batch(struct writer *w)
{
	struct cjob j[2] = { { w, 0, 2, 0 }, { w, 1, 2, 1 } };
	pthread_t th;
	bool two = w->nb > 1 && !pthread_create(&th, NULL, compress_some, &j[1]);
	int ret = 0;

	if (!two)
		j[0].step = 1;
	compress_some(&j[0]);
	if (two)
		pthread_join(th, NULL);
	for (int i = 0; i < w->nb && !ret; i++) {
		struct pending *b = &w->b[i];
		uint8_t hdr[BLOB_HDR_SIZE] = { 0 };
		uint64_t h, idx;

		if (b->err)
			return pr_errno(b->err, "%s: compressing a blob failed", w->name);
		h = XXH3_64bits(b->c, b->clen);
		eng__put32(hdr, BLOB_MAGIC);
		eng__put32(hdr + 4, b->nr);
		eng__put32(hdr + 8, b->clen);
		eng__put32(hdr + 12, w->t->gen);
		h = htole64(h);
		memcpy(hdr + 16, &h, 8);
		h = le64toh(h);
		ret = ha_write_full(w->fd, hdr, sizeof(hdr));
		if (!ret)
			ret = ha_write_full(w->fd, b->c, b->clen);
		if (ret)
			return pr_errno(ret, "%s: writing at offset %lu", w->name, (unsigned long)w->off);
		ret = add_blob(w->t, w->off, h, b->nr);
		idx = w->t->nr_blobs;	/* + 1 */
		for (uint32_t k = 0; k < b->nr && !ret; k++)
			b->a[k]->slot[b->p[k]] = idx << 8 | k;
		w->off += BLOB_HDR_SIZE + b->clen;
		w->pages_written += b->nr;
	}
	w->nb = 0;
	return ret;
}

/* Queue page p of area a (staged at src) into the current blob. */
static int queue_page(struct writer *w, struct eng__area *a, uint64_t p, const uint8_t *src)
{
	struct pending *b = &w->b[w->nb];

	memcpy(b->raw + (size_t)b->nr * PG, src, PG);
	b->a[b->nr] = a;
	b->p[b->nr] = p;
	if (++b->nr < TRK_BLOB_PAGES)
		return 0;
	w->nb++;
	if (w->nb < BATCH) {
		w->b[w->nb].nr = 0;
		w->b[w->nb].err = 0;
		return 0;
	}
	{
		int ret = flush_batch(w);

		w->b[0].nr = 0;
		w->b[0].err = 0;
		return ret;
	}
}

static int write_pack(struct eng_track *t, const uint8_t *buf, struct writer *w)
{
	uint8_t hdr[PACK_HDR_SIZE] = { 0 };
	int ret = 0;

	eng__put32(hdr, PACK_MAGIC);
	eng__put32(hdr + 4, PACK_VERSION);
	eng__put32(hdr + 8, t->gen);
	/* A nonce: another node's pack of the same number (after a failover both nodes
	 * write one) differs in its first 4 KiB, never punched, which replication compares
	 * (eng_store_pack_ident). Zero when the kernel has no entropy to give yet. */
	if (getrandom(hdr + 16, 8, GRND_NONBLOCK) != 8)
		memset(hdr + 16, 0, 8);
	unlinkat(t->st.packs_fd, w->name, 0);	/* a failed attempt's, if any */
	w->fd = openat(t->st.packs_fd, w->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return pr_errno(-errno, "%s/packs/%s: create", t->st.path, w->name);
	ret = ha_write_full(w->fd, hdr, sizeof(hdr));
	w->off = PACK_HDR_SIZE;
	for (int i = 0; i < t->nr_areas && !ret; i++) {
		struct eng__area *a = &t->areas[i];
		uint64_t np = (a->end - a->start) / PG;

		for (uint64_t p = 0; p < np && !ret; p++) {
			const uint8_t *src;
			uint64_t h = 0;

			if (!a->stg[p])
				continue;
			src = buf + (uint64_t)(a->stg[p] - 1) * PG;
			a->stg[p] = 0;
			if (page_is_zero(src)) {
				a->slot[p] = SLOT_ZERO;
				w->pages_zero++;
				continue;
			}
			if (a->hash) {
				h = XXH3_64bits(src, PG);
				if (a->slot[p] > SLOT_ZERO && a->hash[p] == h)
					continue;	/* unchanged: the old blob still holds it */
				a->hash[p] = h;
			}
			ret = queue_page(w, a, p, src);
		}
	}
	if (!ret && w->b[w->nb].nr)
		w->nb++;
	if (!ret && w->nb)
		ret = flush_batch(w);
	if (!ret && fsync(w->fd))
		ret = pr_errno(-errno, "%s/packs/%s: fsync", t->st.path, w->name);
	if (!ret && ha_fsync_dir(t->st.packs_fd))
		ret = pr_errno(-EIO, "%s/packs: fsync", t->st.path);
	close(w->fd);
	w->fd = -1;
	t->pack_bytes = w->off;
	return ret;
}

static int pm_entry(struct eng_track *t, struct eng_img *img, uint64_t vaddr, uint64_t nr, uint64_t slot)
{
	const struct eng__blob *b = &t->blobs[(slot >> 8) - 1];
	ImgPagemapEntry e = IMG_PAGEMAP_ENTRY__INIT;

	e.has_vaddr = e.has_nr_pages = e.has_flags = e.has_offset = e.has_xxh3 = 1;
	e.has_pack = e.has_blob_page = 1;
	e.vaddr = vaddr;
	e.nr_pages = nr;
	e.flags = IMG_PAGEMAP_FLAG__PM_IN_PACK;
	e.offset = b->off;
	e.xxh3 = b->xxh3;
	e.pack = b->pack;
	e.blob_page = slot & 0xff;
	return eng_img_write(img, &e.base);
}

/* Runs of consecutive pages in consecutive places of one blob. */
static int write_pagemap(struct eng_track *t, struct eng_img *img)
{
	ImgPagemapHead head = IMG_PAGEMAP_HEAD__INIT;
	int ret;

	head.has_pages_size = 1;
	head.pages_size = 0;
	ret = eng_img_write(img, &head.base);
	for (int i = 0; i < t->nr_areas && !ret; i++) {
		const struct eng__area *a = &t->areas[i];
		uint64_t np = (a->end - a->start) / PG;

		for (uint64_t p = 0; p < np && !ret;) {
			uint64_t q = p + 1;

			if (a->slot[p] <= SLOT_ZERO) {
				p++;
				continue;
			}
			while (q < np && a->slot[q] == a->slot[q - 1] + 1 && (a->slot[q] >> 8) == (a->slot[p] >> 8))
				q++;
			ret = pm_entry(t, img, a->start + p * PG, q - p, a->slot[p]);
			t->cur->pages_total += q - p;
			p = q;
		}
	}
	return ret;
}

int eng__track_write(struct eng_track *t, int dirfd, struct eng__mem_dump *md, struct eng__imgq *q)
{
	struct writer w = { .t = t, .fd = -1 };
	struct eng_img *pm = NULL, *pages = NULL;
	int ret = -ENOMEM;

	t->writing = true;
	eng__store_pack_name(t->gen, w.name, sizeof(w.name));
	w.cbound = ZSTD_compressBound(TRK_BLOB_PAGES * PG);
	w.b = calloc(BATCH, sizeof(*w.b));
	w.cctx[0] = ZSTD_createCCtx();
	w.cctx[1] = ZSTD_createCCtx();
	if (w.b && w.cctx[0] && w.cctx[1]) {
		ret = 0;
		for (int i = 0; i < BATCH && !ret; i++) {
			w.b[i].raw = malloc(TRK_BLOB_PAGES * PG);
			w.b[i].c = malloc(w.cbound);
			if (!w.b[i].raw || !w.b[i].c)
				ret = -ENOMEM;
		}
	}
	if (!ret)
		ret = write_pack(t, md->buf, &w);
	t->cur->pages_written = w.pages_written;
	md->pages_written = w.pages_written;
	md->pages_zero = w.pages_zero;
	md->buf_used = 0;
	if (!ret)
		ret = eng_img_create(dirfd, ENG_IMG_PAGEMAP, md->pid, &pm);
	if (!ret)
		ret = write_pagemap(t, pm);
	if (!ret)
		ret = eng__imgq_add(q, pm);
	else
		eng_img_abort(pm);
	if (!ret)
		ret = eng_img_create(dirfd, ENG_IMG_PAGES, md->pid, &pages);
	if (!ret)
		ret = eng__imgq_add(q, pages);
	for (int i = 0; w.b && i < BATCH; i++) {
		free(w.b[i].raw);
		free(w.b[i].c);
	}
	free(w.b);
	ZSTD_freeCCtx(w.cctx[0]);
	ZSTD_freeCCtx(w.cctx[1]);
	return ret;
}
