/*
 * The page store: where a tracked target's generations live (engine/track.c writes
 * it, eng_restore and hactl image read it, replication ships it).
 *
 * LAYOUT (every directory 0700, every file 0600; numbers are decimal, 8 digits)
 *
 *   STORE/
 *     FORMAT                 "hacd-store 1\n": what makes a directory a store
 *     .lock                  flock()ed by the one writer (tracker, delete)
 *     gen-00000007/          a complete generation: an image directory like any
 *                            eng_dump one (inventory.img, core-PID.img, mm-PID.img,
 *                            pagemap-PID.img, pages-PID.img (empty), files.img,
 *                            fds-PID.img, pstree.img). Its pagemap lists EVERY page
 *                            of the process as PM_IN_PACK runs: (pack, offset of the
 *                            blob, first page in the blob, blob XXH3). Absent pages
 *                            are zero. No generation needs another's metadata.
 *     .gen-00000008.tmp/     being written (or left by a crash): removed on open
 *     .del-00000003/         being deleted (or left by a crash): removed on open
 *     packs/pack-00000007.pack   the page data generation 7 added
 *
 *   pack file (little-endian), appended by one generation only, immutable once that
 *   generation is committed; later generations refer to its blobs:
 *     header  64 bytes: u32 "HAPK", u32 version 1, u32 pack number (= generation), u32 0,
 *             u64 random nonce (identifies this pack among other nodes' of its number), 0...
 *     blob    32 bytes: u32 "BLOB", u32 nr_pages (1-256), u32 clen, u32 pack number,
 *                       u64 XXH3-64 of the clen bytes that follow, u64 0
 *             clen bytes: one zstd frame of nr_pages * 4096 bytes
 *     ...
 *   Freed data: a blob no generation refers to any more is punched out
 *   (FALLOC_FL_PUNCH_HOLE, reads as zeros, file size unchanged); a pack no generation
 *   refers to is unlinked. Offsets never move.
 *
 * For replication: a generation G needs gen-G/ and the packs its pagemap names. Ship
 * the packs the standby lacks (whole, or the tail past what it has: packs only grow
 * while their generation is written), fsync them, then gen-G/ as .gen-G.tmp/, fsync,
 * rename: the same commit as here.
 *
 * CRASH SAFETY
 * 1. The pack of G is written and fsynced (file and packs/) before any image of G is
 *    committed; the images are committed (fsync, rename, fsync) in .gen-G.tmp/, which
 *    is renamed to gen-G/ and STORE/ fsynced last. gen-G/ exists only complete.
 * 2. On open (the writer's lock held): temp (.gen-N.tmp) and half-deleted (.del-N) directories are removed, and packs
 *    numbered above the newest complete generation (written by a generation that
 *    never committed) are unlinked.
 * 3. Deleting renames gen-G/ to .del-G/ first (atomic: G is gone or whole), then frees.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image.h"
#include "log.h"
#include "pagemap.pb-c.h"
#include "track.h"

#define FORMAT_FILE "FORMAT"
#define FORMAT_TEXT "hacd-store 1\n"

void eng__store_tmp_name(uint32_t gen, char *buf, size_t len)
{
	snprintf(buf, len, ".gen-%08u.tmp", gen);
}

void eng__store_gen_name(uint32_t gen, char *buf, size_t len)
{
	snprintf(buf, len, "gen-%08u", gen);
}

void eng__store_pack_name(uint32_t pack, char *buf, size_t len)
{
	snprintf(buf, len, "pack-%08u.pack", pack);
}

/* "gen-00000012" -> 12 (prefix "gen-", 8 digits, nothing after); 0 when no match. */
static uint32_t parse_num(const char *name, const char *prefix, const char *suffix)
{
	size_t n = strlen(prefix), m = strlen(suffix);
	uint32_t v = 0;

	if (strncmp(name, prefix, n) || strlen(name) != n + 8 + m || strcmp(name + n + 8, suffix))
		return 0;
	for (int i = 0; i < 8; i++) {
		if (name[n + i] < '0' || name[n + i] > '9')
			return 0;
		v = v * 10 + (name[n + i] - '0');
	}
	return v;
}

int eng__store_rm_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(fd, de->d_name, 0);
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR))
		return pr_errno(-errno, "removing %s", name);
	return 0;
}

struct listing {
	uint32_t *gens;
	size_t nr;
	uint32_t max_pack;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Complete generations (sorted); with clean, also remove what crashes left. */
static int scan(int fd, int packs_fd, const char *path, bool clean, struct listing *l)
{
	int dfd = dup(fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	struct dirent *de;
	uint32_t g, max = 0;

	memset(l, 0, sizeof(*l));
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return pr_errno(-errno, "%s: reading the store", path);
	}
	rewinddir(d);	/* a dup shares the offset of an earlier listing */
	while ((de = readdir(d))) {
		if ((g = parse_num(de->d_name, "gen-", ""))) {
			void *p = realloc(l->gens, (l->nr + 1) * sizeof(*l->gens));

			if (!p) {
				closedir(d);
				return -ENOMEM;
			}
			l->gens = p;
			l->gens[l->nr++] = g;
			max = g > max ? g : max;
		} else if (clean && (parse_num(de->d_name, ".gen-", ".tmp") || parse_num(de->d_name, ".del-", ""))) {
			pr_info("%s/%s: left by an interrupted writer: removed", path, de->d_name);
			eng__store_rm_dir(fd, de->d_name);
		}
	}
	closedir(d);
	if (l->nr)
		qsort(l->gens, l->nr, sizeof(*l->gens), cmp_u32);
	if (packs_fd < 0)
		return 0;
	dfd = dup(packs_fd);
	d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return pr_errno(-errno, "%s/packs: reading", path);
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		g = parse_num(de->d_name, "pack-", ".pack");
		if (clean && g > max) {
			pr_info("%s/packs/%s: of no complete generation: removed", path, de->d_name);
			unlinkat(packs_fd, de->d_name, 0);
			continue;
		}
		l->max_pack = g > l->max_pack ? g : l->max_pack;
	}
	closedir(d);
	if (clean)
		ha_fsync_dir(packs_fd);
	return 0;
}

static int check_format(int fd, const char *path, bool create)
{
	char buf[32] = { 0 };
	int f = openat(fd, FORMAT_FILE, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (f < 0 && errno == ENOENT && create)
		return ha_atomic_write_file(fd, FORMAT_FILE, FORMAT_TEXT, strlen(FORMAT_TEXT));
	if (f < 0)
		return pr_errno(-errno, "%s/%s", path, FORMAT_FILE);
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n < 0 || strcmp(buf, FORMAT_TEXT))
		return pr_errno(-EINVAL, "%s/%s: not a hacd page store of format 1", path, FORMAT_FILE);
	return 0;
}

static int lock_store(struct eng__store *s)
{
	s->lock_fd = openat(s->fd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0)
		return pr_errno(-errno, "%s/.lock", s->path);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB))
		return pr_errno(errno == EWOULDBLOCK ? -EBUSY : -errno,
				"%s: another writer holds the store", s->path);
	return 0;
}

static int store_open(const char *path, struct eng__store *s, bool create)
{
	struct listing l;
	struct stat st;
	bool empty;
	int ret;

	memset(s, 0, sizeof(*s));
	s->fd = s->packs_fd = s->lock_fd = -1;
	s->path = strdup(path);
	if (!s->path)
		return -ENOMEM;
	s->fd = ha_dir_open(path, create);
	if (s->fd < 0)
		return s->fd;
	empty = fstatat(s->fd, FORMAT_FILE, &st, 0) && errno == ENOENT;
	/* A plain image directory is not a store: never turn one into one. */
	if (empty && !fstatat(s->fd, "inventory.img", &st, 0))
		return pr_errno(-EINVAL, "%s: an image directory, not a page store", path);
	ret = lock_store(s);
	if (!ret)
		ret = check_format(s->fd, path, create);
	if (ret)
		return ret;
	if (mkdirat(s->fd, "packs", 0700) && errno != EEXIST)
		return pr_errno(-errno, "%s/packs: mkdir", path);
	s->packs_fd = openat(s->fd, "packs", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (s->packs_fd < 0)
		return pr_errno(-errno, "%s/packs", path);
	ret = scan(s->fd, s->packs_fd, path, true, &l);
	if (ret)
		return ret;
	s->next_gen = (l.nr ? l.gens[l.nr - 1] : 0);
	s->next_gen = (l.max_pack > s->next_gen ? l.max_pack : s->next_gen) + 1;
	free(l.gens);
	ha_fsync_dir(s->fd);
	return 0;
}

int eng__store_open(const char *path, struct eng__store *s)
{
	return store_open(path, s, true);
}

void eng__store_close(struct eng__store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	if (s->packs_fd >= 0)
		close(s->packs_fd);
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	memset(s, 0, sizeof(*s));
	s->fd = s->packs_fd = s->lock_fd = -1;
}

int eng__store_commit_gen(struct eng__store *s, uint32_t gen)
{
	char tmp[64], name[64];

	eng__store_tmp_name(gen, tmp, sizeof(tmp));
	eng__store_gen_name(gen, name, sizeof(name));
	if (renameat(s->fd, tmp, s->fd, name))
		return pr_errno(-errno, "%s: renaming %s to %s", s->path, tmp, name);
	if (ha_fsync_dir(s->fd))
		return pr_errno(-EIO, "%s: fsync", s->path);
	return 0;
}

/* ---- readers ----------------------------------------------------------------------- */

int eng_store_is(const char *dir)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, FORMAT_FILE);
	return !stat(path, &st) && S_ISREG(st.st_mode);
}

int eng_store_list(const char *store_dir, uint32_t **gens, size_t *nr)
{
	struct listing l;
	int fd, ret;

	*gens = NULL;
	*nr = 0;
	if (!eng_store_is(store_dir))
		return pr_errno(-EINVAL, "%s: not a hacd page store (no %s)", store_dir, FORMAT_FILE);
	fd = ha_dir_open(store_dir, false);
	if (fd < 0)
		return fd;
	ret = scan(fd, -1, store_dir, false, &l);
	close(fd);
	if (ret)
		return ret;
	*gens = l.gens;
	*nr = l.nr;
	return 0;
}

int eng_store_gen_path(const char *store_dir, uint32_t gen, char *buf, size_t len)
{
	return eng__store_gen_find(store_dir, &gen, buf, len);
}

int eng__store_gen_find(const char *store_dir, uint32_t *genp, char *buf, size_t len)
{
	uint32_t gen = *genp;
	char name[64];
	uint32_t *g;
	size_t n;
	bool found = false;
	int ret = eng_store_list(store_dir, &g, &n);

	if (ret)
		return ret;
	if (!gen && n)
		gen = g[n - 1], found = true;
	for (size_t i = 0; i < n && !found; i++)
		found = g[i] == gen;
	free(g);
	if (!found)
		return pr_errno(-ENOENT, gen ? "%s: no complete generation %u" : "%s: no complete generation%.0u",
				store_dir, gen);
	*genp = gen;
	eng__store_gen_name(gen, name, sizeof(name));
	if ((size_t)snprintf(buf, len, "%s/%s", store_dir, name) >= len)
		return pr_errno(-ENAMETOOLONG, "%s: path too long", store_dir);
	return 0;
}

/* ---- deleting and freeing ---------------------------------------------------------- */

struct ref {
	uint32_t pack;
	uint64_t off;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;

	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

/* Every blob generation gen's pagemaps refer to, appended to *refs. */
static int pagemap_refs(int fd, uint32_t id, struct ref **refs, size_t *nr, size_t *cap)
{
	struct eng_img *img;
	ProtobufCMessage *m;
	int ret = eng_img_open(fd, ENG_IMG_PAGEMAP, id, &img);

	while (!ret && (ret = eng_img_read(img, eng__img_rec_desc(img, img->rec), &m)) > 0) {
		const ImgPagemapEntry *e = (const ImgPagemapEntry *)m;

		ret = 0;
		if (img->cur_rec && (e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK) &&
		    (!*nr || (*refs)[*nr - 1].pack != e->pack || (*refs)[*nr - 1].off != e->offset)) {
			if (*nr == *cap) {
				size_t c = *cap ? *cap * 2 : 4096;
				void *p = realloc(*refs, c * sizeof(**refs));

				if (p)
					*refs = p, *cap = c;
				else
					ret = -ENOMEM;
			}
			if (!ret)
				(*refs)[(*nr)++] = (struct ref){ e->pack, e->offset };
		}
		protobuf_c_message_free_unpacked(m, NULL);
	}
	eng_img_close(img);
	return ret < 0 ? ret : 0;
}

static int gen_refs(int store_fd, uint32_t gen, struct ref **refs, size_t *nr, size_t *cap)
{
	char name[64];
	struct dirent *de;
	DIR *d;
	int fd, ret = 0;

	eng__store_gen_name(gen, name, sizeof(name));
	fd = openat(store_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "%s: open", name);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	while (!ret && (de = readdir(d))) {
		enum eng_img_kind kind;
		uint32_t id;

		if (!eng__img_parse_name(de->d_name, &kind, &id) && kind == ENG_IMG_PAGEMAP)
			ret = pagemap_refs(fd, id, refs, nr, cap);
	}
	closedir(d);
	return ret;
}

static uint64_t blocks_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) ? 0 : (uint64_t)st.st_blocks * 512;
}

/* Punch what lies between referenced blobs of one pack; 0 or -errno. */
static int punch_pack(struct eng__store *s, uint32_t pack, const struct ref *r, size_t n, uint64_t *freed)
{
	char name[64];
	uint64_t at = PACK_HDR_SIZE, before;
	struct stat st;
	int fd;

	eng__store_pack_name(pack, name, sizeof(name));
	fd = openat(s->packs_fd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "%s/packs/%s", s->path, name);
	before = blocks_of(fd);
	fstat(fd, &st);
	for (size_t i = 0; i <= n; i++) {
		uint64_t next = i < n ? r[i].off : (uint64_t)st.st_size;
		uint8_t hdr[BLOB_HDR_SIZE];

		/* Whole pages only: a partial page would just be zeroed, not freed. */
		if (next > at) {
			uint64_t a = (at + 4095) & ~4095ull, b = next & ~4095ull;

			if (b > a && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a, b - a))
				pr_warn("%s/packs/%s: punching [%lu, %lu): %s", s->path, name, (unsigned long)a,
					(unsigned long)b, strerror(errno));
		}
		if (i == n)
			break;
		if (pread(fd, hdr, sizeof(hdr), r[i].off) != sizeof(hdr) || eng__get32(hdr) != BLOB_MAGIC) {
			close(fd);
			return pr_errno(-EBADMSG, "%s/packs/%s: no blob at offset %lu", s->path, name,
					(unsigned long)r[i].off);
		}
		at = r[i].off + BLOB_HDR_SIZE + eng__get32(hdr + 8);
	}
	*freed += before - blocks_of(fd);
	if (fsync(fd))
		pr_warn("%s/packs/%s: fsync: %s", s->path, name, strerror(errno));
	close(fd);
	return 0;
}

/* Free pack data no complete generation refers to. */
static int gc(struct eng__store *s, uint64_t *freed)
{
	struct listing l;
	struct ref *refs = NULL;
	size_t nr = 0, cap = 0;
	int ret = scan(s->fd, s->packs_fd, s->path, false, &l);

	for (size_t i = 0; !ret && i < l.nr; i++)
		ret = gen_refs(s->fd, l.gens[i], &refs, &nr, &cap);
	if (!ret && nr)
		qsort(refs, nr, sizeof(*refs), cmp_ref);
	for (uint32_t p = 1; !ret && p <= l.max_pack; p++) {
		char name[64];
		struct stat st;
		size_t i = 0, k;

		eng__store_pack_name(p, name, sizeof(name));
		if (fstatat(s->packs_fd, name, &st, 0))
			continue;
		while (i < nr && refs[i].pack < p)
			i++;
		for (k = i; k < nr && refs[k].pack == p; k++)
			;
		if (k == i) {
			*freed += (uint64_t)st.st_blocks * 512;
			if (unlinkat(s->packs_fd, name, 0))
				ret = pr_errno(-errno, "%s/packs/%s: unlink", s->path, name);
			continue;
		}
		{
			size_t m = 0;

			for (size_t j = i; j < k; j++)
				if (!m || refs[i + m - 1].off != refs[j].off)
					refs[i + m++] = refs[j];
			ret = punch_pack(s, p, refs + i, m, freed);
		}
	}
	if (!ret)
		ha_fsync_dir(s->packs_fd);
	free(refs);
	free(l.gens);
	return ret;
}

int eng__store_delete_locked(struct eng__store *s, uint32_t gen, uint64_t *freed)
{
	char name[64], del[64];
	uint64_t local = 0;

	if (!freed)
		freed = &local;
	*freed = 0;
	eng__store_gen_name(gen, name, sizeof(name));
	snprintf(del, sizeof(del), ".del-%08u", gen);
	if (renameat(s->fd, name, s->fd, del))
		return pr_errno(-errno, "%s/%s: cannot delete", s->path, name);
	if (ha_fsync_dir(s->fd))
		return pr_errno(-EIO, "%s: fsync", s->path);
	eng__store_rm_dir(s->fd, del);
	return gc(s, freed);
}

int eng_store_delete(const char *store_dir, uint32_t gen, uint64_t *bytes_freed)
{
	struct eng__store s;
	int ret;

	eng__clear_error();
	if (!eng_store_is(store_dir))
		return pr_errno(-EINVAL, "%s: not a hacd page store", store_dir);
	ret = store_open(store_dir, &s, false);
	if (!ret)
		ret = eng__store_delete_locked(&s, gen, bytes_freed);
	eng__store_close(&s);
	return ret;
}
