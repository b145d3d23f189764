/*
 * Shared memory objects: MAP_SHARED|MAP_ANONYMOUS memory (a shmem file the kernel
 * calls "/dev/zero (deleted)"), memfds, and files deleted while mapped. Processes of a
 * tree share them through fork, and one process may map one twice: each is stored
 * once, in shmdata-ID.img, and every mapping (ImgVma.shm) and memfd descriptor
 * (ImgMemfd.shm) names it by id. Writes through one mapping must stay visible through
 * every other after restore, which per-process copies of the pages would break.
 *
 * DESIGN
 * Dump, frozen, after every process is collected (mem-dump.c kept an fd on each
 * candidate mapping's object, files-dump.c classified memfd fds): objects are keyed by
 * (st_dev, st_ino) across the tree; the data ranges of each (SEEK_DATA/SEEK_HOLE: holes
 * stay holes) are copied into memory while every process is stopped, so the contents
 * match every process's memory, and written to its shmdata image after release. There
 * is no pre-copy of objects yet: their whole data is copied while frozen.
 *
 *   kind          restore creates it as                                 /proc shows
 *   SHM_ANON      mmap(MAP_SHARED|MAP_ANONYMOUS), filled, then reopened  /dev/zero (deleted)
 *                 through /proc/self/map_files and unmapped
 *   SHM_MEMFD     memfd_create(name, MFD_ALLOW_SEALING), filled, seals   /memfd:NAME (deleted)
 *   SHM_DELETED   created at its old path, filled, opened, unlinked      PATH (deleted)
 *                 (a taken path: a name beside it, unlinked too)
 *   SHM_SYSV      shmget with its id and key in the new ipc namespace,   /SYSVKEY (deleted)
 *                 filled, attached by shmat in each process (sysv-shm.c)
 *
 * Restore: the root creates every object before it forks (rst__shm_create), so the
 * whole tree inherits the same objects; rst-mem.c maps each mapping from its object at
 * its offset, rst-files.c reopens memfd descriptors through /proc/self/fd. The object
 * fds are closed before the restorer runs: the mappings and descriptors hold them.
 *
 * Limits: F_SEAL_FUTURE_WRITE is applied when the memfd is created, so a writable
 * shared mapping made before that seal fails the restore (named); a deleted file that
 * is both mapped and open as an fd comes back as two files (the fd from its ghost).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "dump.h"
#include "image.h"
#include "log.h"
#include "restore.h"
#include "shmem.pb-c.h"

#define PG 4096ull
#define CHUNK (1u << 20)
#define DELETED " (deleted)"
#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

/* ---- dump ------------------------------------------------------------------------- */

static int add_ext(struct eng__shm_obj *o, uint64_t off, uint64_t len)
{
	uint64_t *p;

	if (o->nr_ext && o->ext[o->nr_ext - 2] + o->ext[o->nr_ext - 1] == off) {
		o->ext[o->nr_ext - 1] += len;
		return 0;
	}
	p = realloc(o->ext, (o->nr_ext + 2) * sizeof(*p));
	if (!p)
		return -ENOMEM;
	o->ext = p;
	o->ext[o->nr_ext++] = off;
	o->ext[o->nr_ext++] = len;
	return 0;
}

/* One data range [off, off + len) into the copy at `at`; past EOF reads zero. */
static int copy_range(struct eng__shm_obj *o, int fd, uint64_t off, uint64_t len, uint64_t at)
{
	for (uint64_t done = 0; done < len;) {
		size_t n = len - done < CHUNK ? len - done : CHUNK;
		ssize_t r = pread(fd, o->copy + at + done, n, off + done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return pr_errno(-errno, "shared object %u: reading offset %llu", o->id,
					(unsigned long long)(off + done));
		if (r == 0)	/* a shrunk file: the map reads zero there */
			r = n;
		memset(o->copy + at + done + r, 0, n - r);	/* the last page's tail */
		done += n;
	}
	return 0;
}

/* The object's data ranges (SEEK_DATA/SEEK_HOLE, page aligned) into o->ext. */
static int find_extents(struct eng__shm_obj *o, int fd)
{
	uint64_t end = (o->size + PG - 1) & ~(PG - 1), off = 0;
	int ret = 0;

	while (!ret && off < end) {
		off_t d = lseek(fd, off, SEEK_DATA), e;

		if (d < 0 && errno == ENXIO)
			break;
		if (d < 0)
			return pr_errno(-errno, "shared object %u: SEEK_DATA", o->id);
		e = lseek(fd, d, SEEK_HOLE);
		if (e < 0)
			return pr_errno(-errno, "shared object %u: SEEK_HOLE", o->id);
		d &= ~(PG - 1);
		e = ((uint64_t)e + PG - 1) & ~(PG - 1);
		if ((uint64_t)e > end)
			e = end;
		if ((uint64_t)d >= end || e <= d)
			break;
		ret = add_ext(o, d, e - d);
		off = e;
	}
	return ret;
}

/*
 * Frozen: the data ranges into memory, hashed. The image is written after the tree
 * is released (eng__shm_write), as page copies are: writing it here would keep every
 * process stopped for as long as the disk takes (1.4 s for 256 MiB under load).
 */
static int copy_data(struct eng__shm_obj *o, int fd)
{
	int ret = find_extents(o, fd);

	for (size_t i = 1; i < o->nr_ext; i += 2)
		o->copy_len += o->ext[i];
	o->xxh3 = XXH3_64bits("", 0);	/* all holes: nothing stored */
	if (ret || !o->copy_len)
		return ret;
	o->copy = mmap(NULL, o->copy_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (o->copy == MAP_FAILED) {
		o->copy = NULL;
		return pr_errno(-errno, "shared object %u: %llu bytes to copy it into", o->id,
				(unsigned long long)o->copy_len);
	}
	for (size_t i = 0, at = 0; !ret && i + 1 < o->nr_ext; at += o->ext[i + 1], i += 2)
		ret = copy_range(o, fd, o->ext[i], o->ext[i + 1], at);
	if (!ret)
		o->xxh3 = XXH3_64bits(o->copy, o->copy_len);
	return ret;
}

/* Kind, name or path from our fd's link: "/memfd:NAME (deleted)", "PATH (deleted)". */
static int describe(struct eng__shm_obj *o, int fd, int kind)
{
	char self[64], link[PATH_MAX + 16];
	ssize_t n;
	size_t len;

	if (kind) {
		o->kind = kind;
		return 0;
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	n = readlink(self, link, sizeof(link) - 1);
	if (n < 0)
		return pr_errno(-errno, "shared object %u: readlink %s", o->id, self);
	link[n] = 0;
	len = n;
	if (len > strlen(DELETED) && !strcmp(link + len - strlen(DELETED), DELETED))
		link[len - strlen(DELETED)] = 0;
	if (!strncmp(link, "/memfd:", 7)) {
		o->kind = IMG_SHMEM_KIND__SHM_MEMFD;
		o->name = strdup(link + 7);
		o->seals = fcntl(fd, F_GET_SEALS);
		o->has_seals = (int)o->seals >= 0;
		if (!o->has_seals)
			o->seals = 0;
		return o->name ? 0 : -ENOMEM;
	}
	if (link[0] != '/')
		return eng__refuse("shared object %s: not a file of our file system tree", link);
	o->kind = IMG_SHMEM_KIND__SHM_DELETED;
	o->path = strdup(link);
	return o->path ? 0 : -ENOMEM;
}

/* The object of that kind (SysV segments and shared anonymous memory live on one
 * internal mount, and a segment's inode number is its id, which can be any) already
 * found: its id, or 0. */
static uint32_t obj_find(const struct eng__shm_table *t, const struct stat *st, bool sysv)
{
	for (int i = 0; i < t->n; i++)
		if (t->o[i].dev == (uint64_t)st->st_dev && t->o[i].ino == (uint64_t)st->st_ino &&
		    (t->o[i].kind == IMG_SHMEM_KIND__SHM_SYSV) == sysv)
			return t->o[i].id;
	return 0;
}

/* The object behind fd (borrowed): its id, found or added (and copied). kind: SHM_ANON,
 * SHM_SYSV, or 0 (a memfd or deleted file, told by its name). */
int eng__shm_obj_of(struct eng__shm_table *t, int fd, int kind, uint32_t *id)
{
	struct eng__shm_obj *o;
	struct stat st;
	int ret;

	if (fstat(fd, &st))
		return pr_errno(-errno, "fstat of a shared object");
	*id = obj_find(t, &st, kind == IMG_SHMEM_KIND__SHM_SYSV);
	if (*id)
		return 0;
	if (t->n == t->cap) {
		void *p = realloc(t->o, (t->cap = t->cap ? 2 * t->cap : 8) * sizeof(*t->o));

		if (!p)
			return -ENOMEM;
		t->o = p;
	}
	o = &t->o[t->n++];
	memset(o, 0, sizeof(*o));
	o->id = t->n;
	o->dev = st.st_dev;
	o->ino = st.st_ino;
	o->size = st.st_size;
	o->mode = st.st_mode;
	*id = o->id;
	ret = describe(o, fd, kind);
	if (!ret)
		ret = copy_data(o, fd);
	if (!ret)
		pr_debug("shared object %u (%s): %llu bytes, %zu extents", o->id,
			 o->name ? o->name : o->path ? o->path : "anonymous", (unsigned long long)o->size,
			 o->nr_ext / 2);
	return ret;
}

static int memfd_obj(struct eng__shm_table *t, const struct eng__files_dump *fd,
		     struct eng__file_dump *f)
{
	char path[64];
	int src, ret;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", fd->pid, f->first_fd);
	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return pr_errno(-errno, "pid %d: fd %d: reopening its memfd", fd->pid, f->first_fd);
	ret = eng__shm_obj_of(t, src, 0, &f->memfd->shm);
	close(src);
	return ret;
}

int eng__shm_collect(struct eng__shm_table *t, struct eng__mem_dump *const *md,
		     struct eng__files_dump *const *fds, int n, pid_t ipc_pid)
{
	/* The segments first: every attachment must name one of them. */
	int ret = ipc_pid ? eng__sysv_collect(t, ipc_pid) : 0;

	for (int p = 0; p < n && !ret; p++) {
		for (int i = 0; i < md[p]->nr_vmas && !ret; i++) {
			struct eng__vma_dump *d = &md[p]->vmas[i];

			if (d->shm_kind == IMG_SHMEM_KIND__SHM_SYSV)
				ret = eng__sysv_attached(t, md[p]->pid, d);
			else if (d->shm_kind)
				ret = eng__shm_obj_of(t, d->file_fd,
						      d->shm_kind == IMG_SHMEM_KIND__SHM_ANON ? d->shm_kind : 0,
						      &d->shm);
		}
		for (int i = 0; i < fds[p]->nr_files && !ret; i++) {
			struct eng__file_dump *f = &fds[p]->files[i];

			if (f->kind == IMG_FILE_KIND__FILE_MEMFD && !f->foreign)
				ret = memfd_obj(t, fds[p], f);
		}
	}
	return ret;
}

int eng__shm_write(int dirfd, struct eng__shm_table *t, struct eng__imgq *q)
{
	struct eng_img *img;
	int ret = 0;

	if (!t->n)
		return 0;
	/* Data first: shmem.img refers to it. The queue owns each from here. */
	for (int i = 0; i < t->n && !ret; i++) {
		struct eng__shm_obj *o = &t->o[i];
		struct eng_img *data;

		ret = eng_img_create(dirfd, ENG_IMG_SHMDATA, o->id, &data);
		if (!ret)
			ret = eng__imgq_add(q, data);
		for (uint64_t at = 0; !ret && at < o->copy_len; at += CHUNK)
			ret = eng_img_write_raw(data, o->copy + at, o->copy_len - at < CHUNK ? o->copy_len - at : CHUNK);
		if (o->copy)
			munmap(o->copy, o->copy_len);
		o->copy = NULL;
	}
	if (!ret)
		ret = eng_img_create(dirfd, ENG_IMG_SHMEM, 0, &img);
	if (!ret)
		ret = eng__imgq_add(q, img);
	for (int i = 0; i < t->n && !ret; i++) {
		const struct eng__shm_obj *o = &t->o[i];
		ImgShmem m = IMG_SHMEM__INIT;

		m.has_id = m.has_kind = m.has_dev = m.has_ino = m.has_size = m.has_mode = 1;
		m.id = o->id;
		m.kind = o->kind;
		m.dev = o->dev;
		m.ino = o->ino;
		m.size = o->size;
		m.mode = o->mode;
		m.name = o->name;
		m.path = o->path;
		m.has_seals = o->has_seals;
		m.seals = o->seals;
		m.n_extents = o->nr_ext;
		m.extents = o->ext;
		m.has_content_xxh3 = 1;
		m.content_xxh3 = o->xxh3;
		if (o->kind == IMG_SHMEM_KIND__SHM_SYSV) {
			m.has_sysv_id = m.has_sysv_key = m.has_uid = m.has_gid = m.has_cuid = m.has_cgid = 1;
			m.sysv_id = o->sysv.id;
			m.sysv_key = o->sysv.key;
			m.uid = o->sysv.uid;
			m.gid = o->sysv.gid;
			m.cuid = o->sysv.cuid;
			m.cgid = o->sysv.cgid;
		}
		ret = eng_img_write(img, &m.base);
	}
	return ret;
}

void eng__shm_free(struct eng__shm_table *t)
{
	for (int i = 0; i < t->n; i++) {
		if (t->o[i].copy)
			munmap(t->o[i].copy, t->o[i].copy_len);
		free(t->o[i].name);
		free(t->o[i].path);
		free(t->o[i].ext);
	}
	free(t->o);
	memset(t, 0, sizeof(*t));
}

/* ---- restore ---------------------------------------------------------------------- */

/* Write the object's extents from its data image into fd, or into `map` when set. */
int rst__shm_fill(struct rst_ctx *c, const ImgShmem *o, int fd, char *map)
{
	XXH3_state_t *h = XXH3_createState();
	uint8_t *buf = map ? NULL : malloc(CHUNK);
	struct eng_img *img = NULL;
	uint64_t at = 0, want = 0;
	int ret = h && (map || buf) ? eng_img_open(c->dirfd, ENG_IMG_SHMDATA, o->id, &img) : -ENOMEM;

	for (size_t i = 1; i < o->n_extents; i += 2)
		want += o->extents[i];
	if (!ret && eng_img_raw_size(img) != want)
		ret = pr_errno(-EBADMSG, "%s: %llu bytes, shmem.img object %u has %llu", eng_img_name(img),
			       (unsigned long long)eng_img_raw_size(img), o->id, (unsigned long long)want);
	if (!ret)
		XXH3_64bits_reset(h);
	for (size_t i = 0; i + 1 < o->n_extents && !ret; i += 2) {
		for (uint64_t done = 0; done < o->extents[i + 1] && !ret; ) {
			uint64_t left = o->extents[i + 1] - done;
			size_t n = left < CHUNK ? left : CHUNK;
			uint8_t *dst = map ? (uint8_t *)map + o->extents[i] + done : buf;

			ret = eng_img_read_raw(img, at, dst, n);
			if (!ret)
				XXH3_64bits_update(h, dst, n);
			if (!ret && !map && pwrite(fd, buf, n, o->extents[i] + done) != (ssize_t)n)
				ret = pr_errno(-errno ?: -EIO, "shared object %u: writing its contents", o->id);
			at += n;
			done += n;
		}
	}
	if (!ret && XXH3_64bits_digest(h) != o->content_xxh3)
		ret = pr_errno(-EBADMSG, "%s: contents of shared object %u: checksum mismatch", eng_img_name(img),
			       o->id);
	eng_img_close(img);
	XXH3_freeState(h);
	free(buf);
	return ret;
}

static int create_anon(struct rst_ctx *c, const ImgShmem *o)
{
	size_t len = o->size ? (o->size + PG - 1) & ~(PG - 1) : PG;
	char path[96];
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ret, fd = -1;

	if (m == MAP_FAILED)
		return pr_errno(-errno, "shared object %u: mmap of %zu bytes", o->id, len);
	ret = rst__shm_fill(c, o, -1, m);
	/* The shmem file behind our mapping, to map it again in every process. */
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)m, (unsigned long)(m + len));
	if (!ret && (fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
		ret = pr_errno(-errno, "shared object %u: %s", o->id, path);
	munmap(m, len);
	return ret ? ret : fd;
}

static int create_memfd(struct rst_ctx *c, const ImgShmem *o)
{
	int fd = memfd_create(o->name, MFD_CLOEXEC | MFD_ALLOW_SEALING), ret = 0;

	if (fd < 0)
		return pr_errno(-errno, "shared object %u: memfd_create(\"%s\")", o->id, o->name);
	if (ftruncate(fd, o->size))
		ret = pr_errno(-errno, "memfd %s: ftruncate to %llu", o->name, (unsigned long long)o->size);
	if (!ret)
		ret = rst__shm_fill(c, o, fd, NULL);
	/* Extents are whole pages: the last one may have written past the size. */
	if (!ret && ftruncate(fd, o->size))
		ret = pr_errno(-errno, "memfd %s: ftruncate to %llu", o->name, (unsigned long long)o->size);
	if (!ret && fchmod(fd, o->mode & 07777))
		ret = pr_errno(-errno, "memfd %s: fchmod", o->name);
	/* Sealed last: the seals may forbid the writes above. */
	if (!ret && o->seals && fcntl(fd, F_ADD_SEALS, o->seals))
		ret = pr_errno(-errno, "memfd %s: F_ADD_SEALS %#x", o->name, o->seals);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int create_deleted(struct rst_ctx *c, const ImgShmem *o)
{
	char alt[PATH_MAX + 64];
	const char *name = o->path;
	int fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->mode & 07777), ret = 0;

	if (fd < 0 && errno == EEXIST) {
		snprintf(alt, sizeof(alt), "%s.hacd-shm-%u-%d", o->path, o->id, (int)getpid());
		name = alt;
		fd = open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, o->mode & 07777);
	}
	if (fd < 0)
		return pr_errno(-errno, "shared object %u: recreating deleted file %s", o->id, o->path);
	if (ftruncate(fd, o->size))
		ret = pr_errno(-errno, "deleted file %s: ftruncate", o->path);
	if (!ret)
		ret = rst__shm_fill(c, o, fd, NULL);
	if (!ret && ftruncate(fd, o->size))
		ret = pr_errno(-errno, "deleted file %s: ftruncate", o->path);
	if (unlink(name) && !ret)
		ret = pr_errno(-errno, "unlinking %s again", name);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int rst__shm_create(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nr_shm; i++) {
		const ImgShmem *o = c->shm[i];
		int fd;

		switch (o->kind) {
		case IMG_SHMEM_KIND__SHM_ANON: fd = create_anon(c, o); break;
		case IMG_SHMEM_KIND__SHM_MEMFD: fd = create_memfd(c, o); break;
		case IMG_SHMEM_KIND__SHM_SYSV: fd = rst__sysv_create(c, o); break;
		default: fd = create_deleted(c, o); break;
		}
		if (fd < 0)
			return fd;
		c->keep[RST_KEEP_SHM + i] = fd;
	}
	return 0;
}

int rst__shm_fd(const struct rst_ctx *c, uint32_t id, const char *who)
{
	for (size_t i = 0; i < c->nr_shm; i++)
		if (c->shm[i]->id == id)
			return c->keep[RST_KEEP_SHM + i];
	return pr_errno(-EINVAL, "%s names shared object %u, not in shmem.img", who, id);
}

const ImgShmem *rst__shm_obj(const struct rst_ctx *c, uint32_t id)
{
	for (size_t i = 0; i < c->nr_shm; i++)
		if (c->shm[i]->id == id)
			return c->shm[i];
	return NULL;
}

void rst__shm_close(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nr_shm; i++)
		if (c->keep[RST_KEEP_SHM + i] >= 0) {
			close(c->keep[RST_KEEP_SHM + i]);
			c->keep[RST_KEEP_SHM + i] = -1;
		}
}
