/*
 * Restore, file descriptors: every fd of the checkpoint is reopened at its number with
 * its flags and offset. Files deleted while open come back from their ghost image:
 * recreated under their old name when it is free (so /proc/PID/fd reads the same),
 * filled, opened, and unlinked again.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"

/* Flags that describe how a file was made, not how it is open: O_TMPFILE (which
 * includes O_DIRECTORY) would make a new file, O_CREAT|O_TRUNC could clobber one. */
#define OPEN_MASK (~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_NOCTTY | O_TMPFILE))

static const ImgFile *find_file(const struct rst_ctx *c, uint32_t id)
{
	for (size_t i = 0; i < c->nr_files; i++)
		if (c->files[i]->id == id)
			return c->files[i];
	return NULL;
}

static int copy_ghost(struct rst_ctx *c, const ImgFile *f, int fd)
{
	static char buf[1 << 16];
	XXH3_state_t *st = XXH3_createState();
	struct eng_img *img;
	uint64_t off = 0, size;
	int ret;

	if (!st)
		return -ENOMEM;
	XXH3_64bits_reset(st);
	ret = eng_img_open(c->dirfd, ENG_IMG_GHOST, f->id, &img);
	if (ret)
		goto out;
	size = eng_img_raw_size(img);
	while (!ret && off < size) {
		size_t n = size - off < sizeof(buf) ? size - off : sizeof(buf);

		ret = eng_img_read_raw(img, off, buf, n);
		if (!ret && ha_write_full(fd, buf, n))
			ret = pr_errno(-errno, "writing the contents of deleted file %s", f->path);
		XXH3_64bits_update(st, buf, n);
		off += n;
	}
	if (!ret && XXH3_64bits_digest(st) != f->content_xxh3)
		ret = pr_errno(-EBADMSG, "%s: contents of %s: checksum mismatch", eng_img_name(img), f->path);
	eng_img_close(img);
out:
	XXH3_freeState(st);
	return ret;
}

/*
 * The fd must read "PATH (deleted)" as before, so the ghost is opened under its old
 * name. When that name belongs to a new file by now, the new file is linked aside,
 * the ghost renamed over the name and opened, and the new file renamed back, which
 * unlinks the ghost's name again: the new file keeps its inode and contents.
 */
static int open_ghost(struct rst_ctx *c, const ImgFile *f)
{
	char tmp[4200], save[4200];
	int wfd, fd, ret;
	bool taken = false;

	wfd = open(f->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, f->mode & 07777);
	if (wfd < 0 && errno == EEXIST) {
		taken = true;
		snprintf(tmp, sizeof(tmp), "%s.hacd-ghost-%u-%d", f->path, f->id, (int)getpid());
		snprintf(save, sizeof(save), "%s.hacd-save-%u-%d", f->path, f->id, (int)getpid());
		wfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, f->mode & 07777);
	}
	if (wfd < 0)
		return pr_errno(-errno, "recreating deleted file %s", f->path);
	ret = copy_ghost(c, f, wfd);
	close(wfd);
	if (ret) {
		unlink(taken ? tmp : f->path);
		return ret;
	}
	if (taken && (link(f->path, save) || rename(tmp, f->path))) {
		ret = pr_errno(-errno, "putting deleted file %s back under its name", f->path);
		unlink(tmp);
		unlink(save);
		return ret;
	}
	fd = open(f->path, f->flags & OPEN_MASK);
	if (fd < 0)
		ret = pr_errno(-errno, "reopening deleted file %s", f->path);
	if (taken ? rename(save, f->path) : unlink(f->path))
		ret = pr_errno(-errno, "unlinking deleted file %s again", f->path);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

static int open_file(struct rst_ctx *c, const ImgFile *f)
{
	struct stat st;
	int fd;

	if (f->kind == IMG_FILE_KIND__FILE_REG && f->unlinked)
		fd = open_ghost(c, f);
	else if (f->kind == IMG_FILE_KIND__FILE_DIR)
		fd = open(f->path, (f->flags & OPEN_MASK) | O_DIRECTORY);
	else
		fd = open(f->path, f->flags & OPEN_MASK);
	if (fd < 0)
		return fd == -1 ? pr_errno(-errno, "file %u: cannot open %s", f->id, f->path) : fd;
	if (fstat(fd, &st)) {
		close(fd);
		return pr_errno(-errno, "file %u: fstat of %s", f->id, f->path);
	}
	if (f->kind == IMG_FILE_KIND__FILE_CHR ? st.st_rdev != f->rdev || !S_ISCHR(st.st_mode)
	    : f->kind == IMG_FILE_KIND__FILE_REG && !f->unlinked && st.st_ino != f->ino) {
		close(fd);
		return pr_errno(-ESTALE, "file %u: %s is not the file that was open (inode %lu, was %lu)", f->id,
				f->path, (unsigned long)st.st_ino, (unsigned long)f->ino);
	}
	/* O_PATH descriptors have no offset (lseek gives EBADF). */
	if (f->kind != IMG_FILE_KIND__FILE_CHR && !(f->flags & O_PATH) && lseek(fd, f->pos, SEEK_SET) != (off_t)f->pos) {
		close(fd);
		return pr_errno(-errno, "file %u: cannot seek %s to %lu", f->id, f->path, (unsigned long)f->pos);
	}
	return fd;
}

static int shared_fd(const struct rst_ctx *c, uint32_t id)
{
	for (size_t i = 0; c->shared_fd && i < c->nr_files; i++)
		if (c->files[i]->id == id)
			return c->shared_fd[i];
	return -1;
}

/*
 * In the root, before it forks: every file description that fds of several processes
 * name is opened here once, above every fd number of the checkpoint, and inherited by
 * the whole tree; rst__files() then dups it into place, so offset and flags stay
 * shared as they were.
 */
int rst__files_shared(struct rst_ctx *c)
{
	int top = 2;

	c->shared_fd = malloc((c->nr_files + 1) * sizeof(*c->shared_fd));
	if (!c->shared_fd)
		return -ENOMEM;
	for (size_t i = 0; i < c->nr_procs; i++)
		for (size_t k = 0; k < c->procs[i].nr_fds; k++)
			if (c->procs[i].fds[k]->fd > top)
				top = c->procs[i].fds[k]->fd;
	for (size_t i = 0; i < c->nr_files; i++) {
		uint32_t id = c->files[i]->id;
		int users = 0, fd, nfd;

		c->shared_fd[i] = -1;
		for (size_t p = 0; p < c->nr_procs && users < 2; p++) {
			bool uses = false;

			for (size_t k = 0; k < c->procs[p].nr_fds; k++)
				uses |= c->procs[p].fds[k]->id == id;
			users += uses;
		}
		if (users < 2)
			continue;
		fd = open_file(c, c->files[i]);
		if (fd < 0)
			return fd;
		nfd = fcntl(fd, F_DUPFD_CLOEXEC, top + 1);
		close(fd);
		if (nfd < 0)
			return pr_errno(-errno, "file %u: moving it above fd %d", id, top);
		c->shared_fd[i] = nfd;
	}
	return 0;
}

/*
 * Our own descriptors must not sit where the checkpoint's go: `keep` are moved above
 * every fd number of the image (and updated), everything else of ours is closed.
 * keep[0] must be c->dirfd, which ghost files are read through.
 */
int rst__files(struct rst_ctx *c, int *keep, int nr_keep)
{
	struct rst_proc *p = &c->proc;
	int top = 2, maxkeep = 0, ret = 0;

	for (size_t i = 0; i < p->nr_fds; i++)
		if (p->fds[i]->fd > top)
			top = p->fds[i]->fd;
	for (int k = 0; k < nr_keep; k++) {
		int nfd = fcntl(keep[k], F_DUPFD_CLOEXEC, top + 1 + k);

		if (nfd < 0)
			return pr_errno(-errno, "moving our fd %d above %d", keep[k], top);
		if (nfd != keep[k])
			close(keep[k]);
		keep[k] = nfd;
	}
	c->dirfd = keep[0];
	/* F_DUPFD may have had to go higher than top + 1 + k: close around the kept ones,
	 * and everything above them that hactl inherited. */
	for (int k = 0; k < nr_keep; k++)
		if (keep[k] > maxkeep)
			maxkeep = keep[k];
	for (size_t i = 0; c->shared_fd && i < c->nr_files; i++)
		if (c->shared_fd[i] > maxkeep)
			maxkeep = c->shared_fd[i];
	for (int fd = 0; fd <= maxkeep; fd++) {
		bool ours = false;

		for (int k = 0; k < nr_keep; k++)
			ours |= keep[k] == fd;
		for (size_t i = 0; c->shared_fd && i < c->nr_files; i++)
			ours |= c->shared_fd[i] == fd;
		if (!ours)
			close(fd);
	}
	close_range(maxkeep + 1, ~0u, 0);
	for (size_t i = 0; i < p->nr_fds && !ret; i++) {
		const ImgFd *d = p->fds[i];
		const ImgFile *f = find_file(c, d->id);
		int fd = -1;

		if (!f)
			return pr_errno(-EINVAL, "fds-%d.img: fd %d names file %u, not in files.img", p->pid, d->fd, d->id);
		/* Several fds of one open file description: dup the first. */
		for (size_t j = 0; j < i && fd < 0; j++)
			if (p->fds[j]->id == d->id)
				fd = fcntl(p->fds[j]->fd, F_DUPFD, 0);
		if (fd < 0 && shared_fd(c, d->id) >= 0)
			fd = fcntl(shared_fd(c, d->id), F_DUPFD, 0);
		if (fd < 0)
			fd = open_file(c, f);
		if (fd < 0)
			return fd;
		if (fd != d->fd && dup2(fd, d->fd) < 0)
			ret = pr_errno(-errno, "dup2 to fd %d", d->fd);
		if (fd != d->fd)
			close(fd);
		if (!ret && fcntl(d->fd, F_SETFD, (d->flags & FD_CLOEXEC) ? FD_CLOEXEC : 0))
			ret = pr_errno(-errno, "fd %d: F_SETFD", d->fd);
	}
	for (size_t i = 0; c->shared_fd && i < c->nr_files; i++)
		if (c->shared_fd[i] >= 0)
			close(c->shared_fd[i]);
	return ret;
}
