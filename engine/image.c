/*
 * Image files: the kinds, their names, and the framing that both the writer and the
 * reader agree on (layout and invariants in image.h).
 *
 * DESIGN
 * Metadata files are small next to page data (a few MiB even for 65530 VMAs), so the
 * reader takes a whole file into memory at open and checks every frame there: a
 * restore learns that an image is damaged before it has acted on any of it, and the
 * record decoder works on plain memory, which is what the fuzzer exercises. Raw kinds
 * stay on disk and are read with pread at the offsets their metadata gives.
 * The writer checks each message with the reader's own field checks before writing it,
 * so a bug in a dumper shows up at dump time, named, not at failover.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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

#define TAG(a, b, c, d) ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)
#define KiB 1024u
#define MiB (1024u * 1024u)

/*
 * Limits are generous for real processes (a core head with every posix timer and
 * queued signal the default rlimits allow is a few MiB) and bound what a damaged or
 * hostile length can make the reader allocate.
 */
static const struct eng__img_kind kinds[ENG_IMG_NR_KINDS] = {
	[ENG_IMG_INVENTORY] = { "inventory", TAG('I', 'N', 'V', 'T'), false, false,
		&img_inventory__descriptor, NULL, 4 * MiB, 0, eng__check_inventory, NULL },
	[ENG_IMG_PSTREE] = { "pstree", TAG('T', 'R', 'E', 'E'), false, false,
		NULL, &img_pstree_entry__descriptor, 0, 1 * MiB, NULL, eng__check_pstree },
	[ENG_IMG_FILES] = { "files", TAG('F', 'I', 'L', 'E'), false, false,
		NULL, &img_file__descriptor, 0, 64 * MiB, NULL, eng__check_file },
	[ENG_IMG_CORE] = { "core", TAG('C', 'O', 'R', 'E'), true, false,
		&img_core__descriptor, &img_thread__descriptor, 16 * MiB, 16 * MiB,
		eng__check_core, eng__check_thread },
	[ENG_IMG_MM] = { "mm", TAG('M', 'M', 'A', 'P'), true, false,
		&img_mm__descriptor, &img_vma__descriptor, 64 * KiB, 64 * KiB,
		eng__check_mm, eng__check_vma },
	[ENG_IMG_PAGEMAP] = { "pagemap", TAG('P', 'M', 'A', 'P'), true, false,
		&img_pagemap_head__descriptor, &img_pagemap_entry__descriptor, 4 * KiB, 4 * KiB,
		eng__check_pagemap_head, eng__check_pagemap_entry },
	[ENG_IMG_FDS] = { "fds", TAG('F', 'D', 'T', 'B'), true, false,
		NULL, &img_fd__descriptor, 0, 4 * KiB, NULL, eng__check_fd },
	[ENG_IMG_PAGES] = { .name = "pages", .tag = TAG('P', 'A', 'G', 'E'), .per_id = true,
		.raw = true },
	[ENG_IMG_GHOST] = { .name = "ghost", .tag = TAG('G', 'H', 'S', 'T'), .per_id = true,
		.raw = true },
	[ENG_IMG_SHMEM] = { "shmem", TAG('S', 'H', 'M', 'O'), false, false,
		NULL, &img_shmem__descriptor, 0, 1 * MiB, NULL, eng__check_shmem },
	[ENG_IMG_SHMDATA] = { .name = "shmdata", .tag = TAG('S', 'H', 'M', 'D'), .per_id = true,
		.raw = true },
};

const struct eng__img_kind *eng__img_kind(enum eng_img_kind kind)
{
	if (kind < 1 || kind >= ENG_IMG_NR_KINDS)
		return NULL;
	return &kinds[kind];
}

int eng__img_parse_name(const char *name, enum eng_img_kind *kind, uint32_t *id)
{
	for (int i = 1; i < ENG_IMG_NR_KINDS; i++) {
		size_t n = strlen(kinds[i].name);
		const char *p = name + n;
		unsigned long long v = 0;

		if (strncmp(name, kinds[i].name, n))
			continue;
		if (!kinds[i].per_id) {
			if (strcmp(p, ".img"))
				continue;
		} else {
			/* Canonical decimal only: one file name per id. */
			if (*p++ != '-' || *p < '1' || *p > '9')
				continue;
			while (*p >= '0' && *p <= '9' && v <= UINT32_MAX)
				v = v * 10 + (*p++ - '0');
			if (v > UINT32_MAX || strcmp(p, ".img"))
				continue;
		}
		*kind = i;
		*id = v;
		return 0;
	}
	return -EINVAL;
}

const ProtobufCMessageDescriptor *eng__img_rec_desc(const struct eng_img *img, uint32_t rec)
{
	if (img->k->head && rec == 0)
		return img->k->head;
	return img->k->entry;
}

uint32_t eng__img_rec_max(const struct eng_img *img, uint32_t rec)
{
	return img->k->head && rec == 0 ? img->k->head_max : img->k->entry_max;
}

int eng__img_new(enum eng_img_kind kind, uint32_t id, struct eng_img **out)
{
	const struct eng__img_kind *k = eng__img_kind(kind);
	struct eng_img *img;

	if (!k)
		return pr_errno(-EINVAL, "image kind %d", (int)kind);
	if (k->per_id && !id)
		return pr_errno(-EINVAL, "%s image: id 0", k->name);
	img = calloc(1, sizeof(*img));
	if (!img)
		return -ENOMEM;
	img->k = k;
	img->kind = kind;
	img->id = k->per_id ? id : 0;
	img->fd = -1;
	img->af.fd = -1;
	if (k->per_id)
		snprintf(img->name, sizeof(img->name), "%s-%u.img", k->name, id);
	else
		snprintf(img->name, sizeof(img->name), "%s.img", k->name);
	*out = img;
	return 0;
}

const char *eng_img_name(const struct eng_img *img)
{
	return img->name;
}

void eng_img_close(struct eng_img *img)
{
	if (!img)
		return;
	if (img->writing) {
		eng_img_abort(img);
		return;
	}
	if (img->fd >= 0)
		close(img->fd);
	free(img->buf);
	free(img);
}

/* ---- reading ------------------------------------------------------------------- */

/* A damaged frame: log where, return -EBADMSG. */
__attribute__((format(printf, 2, 3)))
static int bad_frame(struct eng_img *img, const char *fmt, ...)
{
	char buf[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pr_err("%s: %s", img->name, buf);
	return -EBADMSG;
}

static int check_header(struct eng_img *img, const uint8_t *h, size_t len)
{
	uint32_t tag, v;

	if (len < IMG_HDR_SIZE)
		return bad_frame(img, "header: truncated, %zu of %u bytes", len, IMG_HDR_SIZE);
	v = eng__get32(h);
	if (v != IMG_MAGIC)
		return bad_frame(img, "header: magic 0x%08x is not \"HACD\" (0x%08x)", v, IMG_MAGIC);
	tag = eng__get32(h + 4);
	if (tag != img->k->tag) {
		for (int i = 1; i < ENG_IMG_NR_KINDS; i++)
			if (kinds[i].tag == tag)
				return bad_frame(img, "header: kind is %s, the file name says %s",
						 kinds[i].name, img->k->name);
		return bad_frame(img, "header: unknown kind 0x%08x", tag);
	}
	v = eng__get32(h + 8);
	if (v != ENG_IMG_VERSION)
		return bad_frame(img, "header: format version %u, this hacd reads version %u",
				 v, ENG_IMG_VERSION);
	v = eng__get32(h + 12);
	if (v != img->id)
		return bad_frame(img, "header: id %u, the file name says %u", v, img->id);
	return 0;
}

/* Invariants 2-5 of image.h, over the whole file, before any record is unpacked. */
static int check_frames(struct eng_img *img)
{
	const uint8_t *b = img->buf;
	size_t off = IMG_HDR_SIZE, left;
	uint32_t n = 0, len, sum;

	for (;;) {
		const ProtobufCMessageDescriptor *d = eng__img_rec_desc(img, n);

		left = img->size - off;
		if (left < 4)
			return bad_frame(img, "truncated after record %u (offset %zu): no end marker",
					 n, off);
		len = eng__get32(b + off);
		if (len == IMG_END_MARK)
			break;
		if (!d)
			return bad_frame(img, "record %u (offset %zu): a %s image holds one record only",
					 n, off, img->k->name);
		if (len > eng__img_rec_max(img, n))
			return bad_frame(img, "record %u (%s, offset %zu): length %u is above the %u-byte limit",
					 n, d->short_name, off, len, eng__img_rec_max(img, n));
		if (left < IMG_FRAME_SIZE || left - IMG_FRAME_SIZE < len)
			return bad_frame(img, "record %u (%s, offset %zu): length %u runs past the end of the file (%zu bytes left)",
					 n, d->short_name, off, len,
					 left < IMG_FRAME_SIZE ? 0 : left - IMG_FRAME_SIZE);
		sum = eng__img_csum(b + off + IMG_FRAME_SIZE, len);
		if (sum != eng__get32(b + off + 4))
			return bad_frame(img, "record %u (%s, offset %zu): checksum 0x%08x, the payload sums to 0x%08x",
					 n, d->short_name, off, eng__get32(b + off + 4), sum);
		off += IMG_FRAME_SIZE + len;
		n++;
	}
	if (left < 8)
		return bad_frame(img, "end marker (offset %zu): truncated", off);
	if (eng__get32(b + off + 4) != n)
		return bad_frame(img, "end marker (offset %zu): counts %u records, the file holds %u",
				 off, eng__get32(b + off + 4), n);
	if (left > 8)
		return bad_frame(img, "%zu bytes after the end marker (offset %zu)", left - 8, off);
	if (img->k->head && !n)
		return bad_frame(img, "no %s record", img->k->head->short_name);
	img->nr_records = n;
	img->off = IMG_HDR_SIZE;
	return 0;
}

static int read_all(struct eng_img *img, size_t size)
{
	size_t got = 0;
	ssize_t r;

	img->buf = malloc(size ? size : 1);
	if (!img->buf)
		return pr_errno(-ENOMEM, "%s: %zu bytes", img->name, size);
	while (got < size) {
		r = read(img->fd, img->buf + got, size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return pr_errno(-errno, "%s: read", img->name);
		if (r == 0)
			break;
		got += r;
	}
	img->size = got;	/* shrunk under us: the frame checks will say so */
	return 0;
}

static int open_raw(struct eng_img *img, off_t size)
{
	uint8_t h[IMG_RAW_HDR_SIZE];
	ssize_t r = pread(img->fd, h, sizeof(h), 0);
	int ret;

	if (r < 0)
		return pr_errno(-errno, "%s: read", img->name);
	ret = check_header(img, h, r);
	if (ret)
		return ret;
	if (r < (ssize_t)sizeof(h))
		return bad_frame(img, "header: truncated, %zd of %u bytes", r, IMG_RAW_HDR_SIZE);
	for (unsigned i = IMG_HDR_SIZE; i < sizeof(h); i++)
		if (h[i])
			return bad_frame(img, "header: padding byte %u is 0x%02x, not 0", i, h[i]);
	img->raw_size = size - IMG_RAW_HDR_SIZE;
	return 0;
}

static int img_load(struct eng_img *img, int dirfd)
{
	struct stat st;
	int ret;

	img->fd = openat(dirfd, img->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (img->fd < 0)
		return pr_errno(-errno, "%s: open", img->name);
	if (fstat(img->fd, &st))
		return pr_errno(-errno, "%s: stat", img->name);
	if (!S_ISREG(st.st_mode))
		return eng__img_fail(-EINVAL, "%s: not a regular file", img->name);
	if (img->k->raw)
		return open_raw(img, st.st_size);
	if (st.st_size > IMG_FILE_MAX)
		return eng__img_fail(-EFBIG, "%s: %lld bytes, above the %u-byte limit for metadata",
				img->name, (long long)st.st_size, IMG_FILE_MAX);
	ret = read_all(img, st.st_size);
	if (!ret)
		ret = check_header(img, img->buf, img->size);
	if (!ret)
		ret = check_frames(img);
	close(img->fd);
	img->fd = -1;
	return ret;
}

int eng__img_open(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out)
{
	struct eng_img *img;
	int ret;

	*out = NULL;
	ret = eng__img_new(kind, id, &img);
	if (ret)
		return ret;
	ret = img_load(img, dirfd);
	if (ret) {
		eng_img_close(img);
		return ret;
	}
	*out = img;
	return 0;
}

int eng_img_open(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out)
{
	eng__clear_error();
	return eng__img_open(dirfd, kind, id, out);
}

int eng__img_open_name(int dirfd, const char *name, struct eng_img **out)
{
	enum eng_img_kind kind;
	uint32_t id;

	if (eng__img_parse_name(name, &kind, &id)) {
		*out = NULL;
		return eng__img_fail(-EINVAL, "%s: not an image file name", name);
	}
	return eng__img_open(dirfd, kind, id, out);
}

int eng__img_unpack(struct eng_img *img, ProtobufCMessage **msg)
{
	const ProtobufCMessageDescriptor *d;
	uint32_t len;

	*msg = NULL;
	if (img->writing || img->k->raw || !img->buf)
		return pr_errno(-EINVAL, "%s: not open for reading records", img->name);
	if (img->rec >= img->nr_records)
		return 0;
	d = eng__img_rec_desc(img, img->rec);
	len = eng__get32(img->buf + img->off);
	img->cur = d;
	img->cur_rec = img->rec;
	img->last_len = len;
	*msg = protobuf_c_message_unpack(d, NULL, len, img->buf + img->off + IMG_FRAME_SIZE);
	img->off += IMG_FRAME_SIZE + len;
	img->rec++;
	if (!*msg) {
		/* The checksum matched, so the writer made these bytes: still not usable. */
		pr_err("%s: record %u (%s): not a valid protobuf message", img->name,
		       img->cur_rec, d->short_name);
		return -EBADMSG;
	}
	return 1;
}

int eng_img_read(struct eng_img *img, const struct ProtobufCMessageDescriptor *desc,
		 struct ProtobufCMessage **msg)
{
	const ProtobufCMessageDescriptor *want;
	int ret;

	*msg = NULL;
	if (!img->writing && !img->k->raw && img->rec < img->nr_records) {
		want = eng__img_rec_desc(img, img->rec);
		if (desc != want)
			return eng__img_fail(-EINVAL, "%s: record %u is %s, the caller asked for %s",
					img->name, img->rec, want->short_name,
					desc ? desc->short_name : "nothing");
	}
	ret = eng__img_unpack(img, msg);
	if (ret <= 0)
		return ret;
	ret = eng__img_check(img, *msg);
	if (ret) {
		protobuf_c_message_free_unpacked(*msg, NULL);
		*msg = NULL;
		return ret;
	}
	return 1;
}

uint64_t eng_img_raw_size(const struct eng_img *img)
{
	return img->raw_size;
}

int eng_img_read_raw(struct eng_img *img, uint64_t off, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t r;

	if (!img->k->raw || img->writing)
		return pr_errno(-EINVAL, "%s: not a raw image open for reading", img->name);
	if (off > img->raw_size || len > img->raw_size - off)
		return bad_frame(img, "data [%llu, +%zu) is past its end (%llu bytes)",
				 (unsigned long long)off, len, (unsigned long long)img->raw_size);
	while (got < len) {
		r = pread(img->fd, (char *)buf + got, len - got, IMG_RAW_HDR_SIZE + off + got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return pr_errno(-errno, "%s: read at %llu", img->name,
					(unsigned long long)(off + got));
		if (r == 0)
			return bad_frame(img, "data shrank under the reader at %llu",
					 (unsigned long long)(off + got));
		got += r;
	}
	return 0;
}
