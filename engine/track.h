/*
 * track.h: private to incremental checkpoints. track.c keeps a tracked target between
 * generations (userfaultfd, page map, staging buffer) and plugs into the dump's memory
 * stages (mem-dump.c, mem-pages.c, mem-precopy.c call the eng__track_* hooks when
 * md->trk is set); store.c owns the on-disk layout (packs, generation directories);
 * store-blob.c reads and writes pack blobs for the tracker, restore and verify.
 */
#ifndef HA_ENGINE_TRACK_H
#define HA_ENGINE_TRACK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump.h"

#define TRK_BLOB_PAGES 256u		/* pages per blob: 1 MiB raw, one zstd frame */
#define PACK_MAGIC 0x4b504148u		/* "HAPK" */
#define PACK_VERSION 1u
#define PACK_HDR_SIZE 64u
#define BLOB_MAGIC 0x424f4c42u		/* "BLOB" */
#define BLOB_HDR_SIZE 32u
#define SLOT_ZERO 1ull			/* eng__area.slot: present and all zero */

/* ---- store.c ---------------------------------------------------------------------- */

struct eng__store {
	char *path;
	int fd, packs_fd, lock_fd;
	uint32_t next_gen;
};

/* Open (creating it 0700) and lock a store for writing, cleaning what a crashed writer
 * left: temp generation directories, half-deleted ones, packs of no complete
 * generation. */
int eng__store_open(const char *path, struct eng__store *s);
void eng__store_close(struct eng__store *s);
/* ".gen-NNNNNNNN.tmp" and "gen-NNNNNNNN". */
void eng__store_tmp_name(uint32_t gen, char *buf, size_t len);
void eng__store_gen_name(uint32_t gen, char *buf, size_t len);
void eng__store_pack_name(uint32_t pack, char *buf, size_t len);
/* Rename the finished temp directory into place and make it durable. */
int eng__store_commit_gen(struct eng__store *s, uint32_t gen);
/* eng_store_gen_path, telling which generation 0 (the newest) was. */
int eng__store_gen_find(const char *store_dir, uint32_t *gen, char *buf, size_t len);
/* Remove a directory of plain files (a temp or deleted generation). */
int eng__store_rm_dir(int dirfd, const char *name);
/* Delete with the lock already held (eng_store_delete, eng_track_delete). */
int eng__store_delete_locked(struct eng__store *s, uint32_t gen, uint64_t *freed);

/* ---- store-blob.c ----------------------------------------------------------------- */

/* One blob as the pack holds it: header fields after validation. */
struct eng__blob_hdr {
	uint32_t nr_pages, clen, pack;
	uint64_t xxh3;
};
/* Read and check the blob at off of pack fd (named name, for messages; gen too) and
 * decompress it into out (TRK_BLOB_PAGES pages). cbuf: at least eng__blob_cbound(). */
int eng__blob_read(int fd, const char *name, uint32_t gen, uint64_t off, uint64_t want_xxh3,
		   void *cbuf, void *out, struct eng__blob_hdr *h);
size_t eng__blob_cbound(void);
/* Every blob a pagemap of the generation directory gfd (at path, for messages) names,
 * sorted by (pack, offset); a blob named by several runs appears once per run. */
struct eng__blob_ref {
	uint32_t pack;
	uint64_t off, xxh3;
	uint32_t last_page;	/* highest page the run uses */
};
int eng__gen_blob_refs(int gfd, const char *path, struct eng__blob_ref **v, size_t *n);
/* Open packs/pack-N.pack of the store a generation dirfd lives in (via ".."). */
int eng__pack_open(int gen_dirfd, uint32_t pack);

/* ---- track.c ---------------------------------------------------------------------- */

struct eng__blob {
	uint64_t off;
	uint64_t xxh3;
	uint32_t pack;
	uint32_t nr_pages;
};

/* The pages of one mapping as the last generation stored them, and as this checkpoint
 * has copied them so far. */
struct eng__area {
	uint64_t start, end;
	uint64_t *slot;		/* per page: 0 absent, SLOT_ZERO, or
				 * (blob index + 1) << 8 | page in the blob */
	uint32_t *stg;		/* per page: staging page + 1 of this checkpoint's copy */
	uint64_t *hash;		/* ENG_DIRTY_HASH: XXH3 of the slot's page */
	/* Every page present at the last full scan of it has a slot or a staged copy, and
	 * a page that became present since was written (or maps the zero page): from then
	 * on only written and vanished pages need looking at (track.c, scan_frozen_fast). */
	bool complete;
};

struct eng_track {
	pid_t pid;
	int pidfd, uffd, pm_fd;
	enum eng_dirty_method method;
	struct eng_track_opts o;
	struct eng__store st;
	struct eng__range *armed;	/* ranges registered with our uffd */
	int nr_armed;
	struct eng__area *areas;
	int nr_areas;
	struct eng__blob *blobs;
	size_t nr_blobs, cap_blobs;
	uint8_t *buf;			/* staging: page copies of this checkpoint */
	size_t buf_cap;
	pid_t *children;
	int nr_children;
	bool reset;			/* the next generation stores every page */
	uint32_t gen;			/* being written */
	struct eng_track_stats *cur;	/* of the checkpoint under way */
	bool writing;			/* slots may point into the new pack */
	uint64_t pack_bytes;
	/* The generation whose page map the slots are (the last one written, or the one a
	 * restored process was adopted from): deleting it voids them. */
	uint32_t slots_gen;
};

/* Hooks for the dump's memory stages (md->trk set). */
bool eng__track_owns(const struct eng_track *t, uint64_t start, uint64_t end);
bool eng__track_overlaps(const struct eng_track *t, uint64_t start, uint64_t end);
/* Write-protect every page of a registered range (mem-precopy.c): the scan re-arms
 * what it reports, and registration alone protects nothing. */
int eng__write_protect(int pm_fd, uint64_t start, uint64_t end);
int eng__track_live(struct eng_track *t, struct eng__mem_dump *md);
int eng__track_last_round(struct eng_track *t, struct eng__mem_dump *md);
/* A dump attempt starts over (its tree changed): what earlier attempts staged is in a
 * buffer about to be reused, and was re-armed: forget it, so that it is copied again. */
void eng__track_unstage(struct eng_track *t);
int eng__track_frozen_begin(struct eng_track *t, struct eng__mem_dump *md);
int eng__track_scan(struct eng_track *t, struct eng__mem_dump *md, int vma, int pm_fd);
int eng__track_absorb(struct eng_track *t, struct eng__mem_dump *md);
int eng__track_write(struct eng_track *t, int dirfd, struct eng__mem_dump *md, struct eng__imgq *q);
/* track-adopt.c: what eng_track_open and a first generation would set up besides the
 * uffd and the slots, for a stopped process: every scannable mapping of plan md
 * registered (not yet write-protected), the children noted, the fast scan probed. */
int eng__track_adopt_arm(struct eng_track *t, struct eng__mem_dump *md);
/* dump.c: eng_dump() into dir with the tracker's hooks, leaving the process running. */
int eng__dump_tracked(struct eng_track *t, const char *dir, struct eng_dump_stats *st);

#endif
