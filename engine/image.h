/*
 * image.h: private to the image code. image.c frames and does the I/O, image-check.c
 * holds the per-message field checks, image-show.c prints any message generically
 * from its descriptor, image-verify.c checks a whole directory and its cross-references.
 *
 * On-disk layout (little-endian):
 *
 *   header   u32 magic "HACD"  u32 kind tag  u32 format version  u32 id      16 bytes
 *   record   u32 length  u32 low 32 bits of XXH3-64(payload)  payload (protobuf)
 *   ...
 *   end      u32 0xffffffff  u32 number of records
 *
 * Raw kinds (pages, ghost) have the header zero-padded to 4096 bytes, then data, so
 * that page data sits page-aligned in the file (a restorer can mmap or O_DIRECT it).
 *
 * Invariants a reader relies on, each refused with a named error otherwise:
 *  1. The header's id equals the id in the file name: a file copied or renamed onto
 *     another process's name is caught.
 *  2. Record 0 is the kind's head message when it has one; all others its entry message.
 *  3. No length exceeds the limit for its message, nor the bytes left in the file.
 *  4. The end marker is present, counts the records, and is the last thing in the file:
 *     a file cut at a record boundary is as wrong as one cut inside a record.
 *  5. Every checksum matches before anything is unpacked (eng_img_open walks them all).
 */
#ifndef HA_ENGINE_IMAGE_H
#define HA_ENGINE_IMAGE_H

#include <endian.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "ha/engine.h"

#define IMG_MAGIC 0x44434148u		/* "HACD" */
#define IMG_HDR_SIZE 16u
#define IMG_RAW_HDR_SIZE 4096u
#define IMG_FRAME_SIZE 8u
#define IMG_END_MARK 0xffffffffu	/* no record may be this long */
#define IMG_FILE_MAX (512u << 20)	/* metadata files are read whole */
#define IMG_PAGE_SIZE 4096u		/* the only page size the format supports */

struct eng_img;

/* One kind of image file: its name, tag, record types, limits and checks. */
struct eng__img_kind {
	const char *name;	/* "core": core-ID.img; "files": files.img */
	uint32_t tag;		/* e.g. "CORE" as a little-endian u32 */
	bool per_id;		/* the name carries a pid or file id */
	bool raw;		/* header, then data: no records */
	const ProtobufCMessageDescriptor *head;		/* record 0, or NULL */
	const ProtobufCMessageDescriptor *entry;	/* the others, or NULL */
	uint32_t head_max, entry_max;			/* payload limits */
	int (*check_head)(struct eng_img *img, const ProtobufCMessage *msg);
	int (*check_entry)(struct eng_img *img, const ProtobufCMessage *msg);
};

/* What field checks carry from one record to the next (ordering, the head's totals). */
union eng__img_state {
	struct { uint64_t prev_end; } mm;
	struct { uint64_t prev_end, pages_size; } pm;
	struct { uint32_t nr_filters; } core;
	struct { int64_t next_fd; } fds;	/* the lowest fd the next record may have */
	struct { uint32_t prev_id; } files;
	struct { uint32_t prev_id; } shm;
};

struct eng_img {
	const struct eng__img_kind *k;
	enum eng_img_kind kind;
	uint32_t id;
	char name[48];
	bool writing;
	int fd;			/* reading: the open file (raw kinds) */
	uint32_t rec;		/* index of the next record */
	uint32_t cur_rec;	/* index of the record being handled, for messages */
	const ProtobufCMessageDescriptor *cur;	/* and its type */
	union eng__img_state st;
	/* reading */
	uint8_t *buf;		/* the whole file (record kinds) */
	size_t size, off;
	uint32_t nr_records, last_len;
	uint64_t raw_size;
	/* writing */
	struct ha_atomic_file af;
	uint8_t *wbuf;
	size_t wlen;
	int err;		/* first failure; commit returns it */
};

/* Log a message that says it all (no strerror appended) and return err. */
#define eng__img_fail(err, fmt, ...) (pr_err(fmt, ##__VA_ARGS__), (err))

const struct eng__img_kind *eng__img_kind(enum eng_img_kind kind);
/* "core-12.img" -> ENG_IMG_CORE, 12; -EINVAL for a name no kind has (not logged). */
int eng__img_parse_name(const char *name, enum eng_img_kind *kind, uint32_t *id);
/* Allocate img for kind/id with its file name; no I/O. */
int eng__img_new(enum eng_img_kind kind, uint32_t id, struct eng_img **out);
/* eng_img_open() without clearing the kept error, for show and verify; and by name. */
int eng__img_open(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out);
int eng__img_open_name(int dirfd, const char *name, struct eng_img **out);
/* The message type record `rec` must have, or NULL when there may be no such record. */
const ProtobufCMessageDescriptor *eng__img_rec_desc(const struct eng_img *img, uint32_t rec);
/* Its payload limit. */
uint32_t eng__img_rec_max(const struct eng_img *img, uint32_t rec);
/* Unpack the next record without field checks (show prints it first): 1, 0 or -errno. */
int eng__img_unpack(struct eng_img *img, ProtobufCMessage **msg);

/* image-check.c: field checks of one message, generic (enums) then per kind. */
int eng__img_check(struct eng_img *img, const ProtobufCMessage *msg);
/* qsort/bsearch order of uint32_t. */
int eng__cmp_u32(const void *a, const void *b);
/* Log "FILE: record N (Type): field F: why" and return -EINVAL. */
int eng__img_bad(struct eng_img *img, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

int eng__check_inventory(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_pstree(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_file(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_core(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_thread(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_mm(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_vma(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_pagemap_head(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_pagemap_entry(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_fd(struct eng_img *img, const ProtobufCMessage *msg);
int eng__check_shmem(struct eng_img *img, const ProtobufCMessage *msg);

static inline uint32_t eng__get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static inline void eng__put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

/* A record's checksum: XXH3 is the fastest hash we link, and 32 bits are plenty to
 * catch damage (it is no defence against a forger, nor meant to be). */
static inline uint32_t eng__img_csum(const void *p, size_t len)
{
	return (uint32_t)XXH3_64bits(p, len);
}

/* image-show.c: the files of an image directory, in kind order (inventory first),
 * then by id; names that are no image sort last. */
struct eng__img_dir {
	int dirfd;
	struct dirent **ents;
	int n;
};
int eng__img_dir_open(const char *dir, struct eng__img_dir *d);
void eng__img_dir_close(struct eng__img_dir *d);

/* image-print.c: a message as text (fields at indent) or as one JSON object. */
void eng__print_msg(FILE *out, const ProtobufCMessage *m, bool json, int indent);
/* A quoted, escaped string (JSON or C escapes). */
void eng__print_str(FILE *out, const char *s, bool json);

/* Generic field access, for the printer and the generic checks. */
static inline const void *eng__pb_field(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	return (const char *)m + f->offset;
}

/* How many values field f holds: 0 when absent, the count when repeated. */
static inline size_t eng__pb_count(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f)
{
	const char *q = (const char *)m + f->quantifier_offset;

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		return *(const size_t *)q;
	if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
		return *(const uint32_t *)q == f->id;
	if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE)
		return *(const void *const *)eng__pb_field(m, f) != NULL;
	if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
		return *(const protobuf_c_boolean *)q;
	return 1;
}

size_t eng__pb_elem_size(ProtobufCType type);

/* Value i of field f (0 for a singular field). */
static inline const void *eng__pb_value(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
					size_t i)
{
	const void *p = eng__pb_field(m, f);

	if (f->label != PROTOBUF_C_LABEL_REPEATED)
		return p;
	return *(const char *const *)p + i * eng__pb_elem_size(f->type);
}

#endif
