/*
 * Reading pack blobs (layout: store.c), for restore (rst-mem.c) and verify: every
 * field of the blob header is checked against the page map entry that led to it and
 * against the file, the compressed bytes against their XXH3, and the frame must
 * decompress to exactly nr_pages pages. Messages name the generation, the pack file
 * and the offset.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "image.h"
#include "log.h"
#include "pagemap.pb-c.h"
#include "track.h"

size_t eng__blob_cbound(void)
{
	return ZSTD_compressBound(TRK_BLOB_PAGES * ENG_PAGE_SIZE);
}

int eng__pack_open(int gen_dirfd, uint32_t pack)
{
	char name[96], pn[64];
	int fd;

	eng__store_pack_name(pack, pn, sizeof(pn));
	/* Our own layout, a number we format: nothing read from disk becomes a path. */
	snprintf(name, sizeof(name), "../packs/%s", pn);
	fd = openat(gen_dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "packs/%s: open (is this generation inside its store?)", pn);
	return fd;
}

static int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = pread(fd, buf, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -ENODATA;
		buf = (char *)buf + r;
		len -= r;
		off += r;
	}
	return 0;
}

int eng__blob_read(int fd, const char *name, uint32_t gen, uint64_t off, uint64_t want_xxh3,
		   void *cbuf, void *out, struct eng__blob_hdr *h)
{
	uint8_t hdr[BLOB_HDR_SIZE];
	uint64_t sum;
	size_t r;
	int ret = pread_all(fd, hdr, sizeof(hdr), off);

	if (ret)
		return pr_errno(ret == -ENODATA ? -EBADMSG : ret,
				"generation %u: %s offset %lu: blob header past the end of the pack", gen, name,
				(unsigned long)off);
	h->nr_pages = eng__get32(hdr + 4);
	h->clen = eng__get32(hdr + 8);
	h->pack = eng__get32(hdr + 12);
	memcpy(&h->xxh3, hdr + 16, 8);
	h->xxh3 = le64toh(h->xxh3);
	if (eng__get32(hdr) != BLOB_MAGIC || !h->nr_pages || h->nr_pages > TRK_BLOB_PAGES ||
	    h->clen > eng__blob_cbound() || !h->clen)
		return pr_errno(-EBADMSG, "generation %u: %s offset %lu: no valid blob header (magic %#x, %u pages, "
				"%u bytes)", gen, name, (unsigned long)off, eng__get32(hdr), h->nr_pages, h->clen);
	if (h->xxh3 != want_xxh3)
		return pr_errno(-EBADMSG, "generation %u: %s offset %lu: blob checksum %016llx, the page map "
				"says %016llx", gen, name, (unsigned long)off, (unsigned long long)h->xxh3,
				(unsigned long long)want_xxh3);
	ret = pread_all(fd, cbuf, h->clen, off + BLOB_HDR_SIZE);
	if (ret)
		return pr_errno(ret == -ENODATA ? -EBADMSG : ret, "generation %u: %s offset %lu: blob of %u bytes "
				"cut short", gen, name, (unsigned long)off, h->clen);
	sum = XXH3_64bits(cbuf, h->clen);
	if (sum != want_xxh3)
		return pr_errno(-EBADMSG, "generation %u: %s offset %lu: blob data sums to %016llx, expected "
				"%016llx (damaged)", gen, name, (unsigned long)off, (unsigned long long)sum,
				(unsigned long long)want_xxh3);
	if (!out)
		return 0;
	r = ZSTD_decompress(out, (size_t)h->nr_pages * ENG_PAGE_SIZE, cbuf, h->clen);
	if (ZSTD_isError(r) || r != (size_t)h->nr_pages * ENG_PAGE_SIZE)
		return pr_errno(-EBADMSG, "generation %u: %s offset %lu: blob does not decompress to %u pages: %s",
				gen, name, (unsigned long)off, h->nr_pages,
				ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
	return 0;
}

/* ---- verify ------------------------------------------------------------------------ */

static int cmp_vblob(const void *a, const void *b)
{
	const struct eng__blob_ref *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int collect(int gfd, uint32_t id, struct eng__blob_ref **v, size_t *n, size_t *cap)
{
	struct eng_img *img;
	ProtobufCMessage *m;
	int ret = eng_img_open(gfd, ENG_IMG_PAGEMAP, id, &img);

	while (!ret && (ret = eng_img_read(img, eng__img_rec_desc(img, img->rec), &m)) > 0) {
		const ImgPagemapEntry *e = (const ImgPagemapEntry *)m;

		ret = 0;
		if (img->cur_rec && (e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK)) {
			if (*n == *cap) {
				size_t c = *cap ? *cap * 2 : 1024;
				void *p = realloc(*v, c * sizeof(**v));

				if (!p)
					ret = -ENOMEM;
				else
					*v = p, *cap = c;
			}
			if (!ret)
				(*v)[(*n)++] = (struct eng__blob_ref){ e->pack, e->offset, e->xxh3,
							       e->blob_page + (uint32_t)e->nr_pages - 1 };
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	eng_img_close(img);
	return ret < 0 ? ret : 0;
}

int eng__gen_blob_refs(int gfd, const char *path, struct eng__blob_ref **out, size_t *nr)
{
	struct eng__blob_ref *v = NULL;
	struct eng__img_dir d;
	size_t n = 0, cap = 0;
	int ret;

	*out = NULL;
	*nr = 0;
	/* The generation's pids: its pagemap files. */
	ret = eng__img_dir_open(path, &d);
	for (int i = 0; !ret && i < d.n; i++) {
		enum eng_img_kind kind;
		uint32_t id;

		if (!eng__img_parse_name(d.ents[i]->d_name, &kind, &id) && kind == ENG_IMG_PAGEMAP)
			ret = collect(gfd, id, &v, &n, &cap);
	}
	if (!ret || d.ents)
		eng__img_dir_close(&d);
	if (ret) {
		free(v);
		return ret;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_vblob);
	*out = v;
	*nr = n;
	return 0;
}

int eng_store_verify(const char *store_dir, uint32_t gen, struct eng_image_stats *st)
{
	struct eng_image_stats local;
	char path[4200];
	struct eng__blob_ref *v = NULL;
	size_t n = 0;
	uint8_t *cbuf = NULL, *out = NULL;
	int ret, gfd = -1, pfd = -1;
	uint32_t cur_pack = 0, *g;
	size_t ng;

	if (!st)
		st = &local;
	eng__clear_error();
	ret = eng_store_gen_path(store_dir, gen, path, sizeof(path));
	if (ret)
		return ret;
	if (!gen) {
		ret = eng_store_list(store_dir, &g, &ng);
		if (ret)
			return ret;
		gen = g[ng - 1];
		free(g);
	}
	ret = eng_image_verify(path, st);
	if (ret)
		return ret;
	gfd = ha_dir_open(path, false);
	if (gfd < 0)
		return gfd;
	ret = eng__gen_blob_refs(gfd, path, &v, &n);
	cbuf = malloc(eng__blob_cbound());
	out = malloc(TRK_BLOB_PAGES * ENG_PAGE_SIZE);
	if (!ret && (!cbuf || !out))
		ret = -ENOMEM;
	for (size_t i = 0; !ret && i < n;) {
		struct eng__blob_hdr h;
		char name[64];
		uint32_t last = v[i].last_page;
		size_t k = i + 1;

		for (; k < n && v[k].pack == v[i].pack && v[k].off == v[i].off; k++) {
			if (v[k].xxh3 != v[i].xxh3)
				ret = pr_errno(-EBADMSG, "generation %u: two runs name the blob at pack %u offset %lu "
					       "with different checksums", gen, v[i].pack, (unsigned long)v[i].off);
			last = v[k].last_page > last ? v[k].last_page : last;
		}
		eng__store_pack_name(v[i].pack, name, sizeof(name));
		if (!ret && (pfd < 0 || cur_pack != v[i].pack)) {
			if (pfd >= 0)
				close(pfd);
			pfd = eng__pack_open(gfd, v[i].pack);
			cur_pack = v[i].pack;
			if (pfd < 0)
				ret = pfd;
		}
		if (!ret)
			ret = eng__blob_read(pfd, name, gen, v[i].off, v[i].xxh3, cbuf, out, &h);
		if (!ret && last >= h.nr_pages)
			ret = pr_errno(-EBADMSG, "generation %u: %s offset %lu: a run uses page %u of a %u-page blob",
				       gen, name, (unsigned long)v[i].off, last, h.nr_pages);
		if (!ret)
			st->data_bytes += h.clen;
		i = k;
	}
	if (ret)
		st->errors++;
	if (pfd >= 0)
		close(pfd);
	close(gfd);
	free(cbuf);
	free(out);
	free(v);
	return ret;
}
