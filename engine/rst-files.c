/*
 * Restore, file descriptors: every open file description of the checkpoint is opened
 * (or created, for the kinds of fd-kinds.h) once, then installed at each fd number
 * that names it, with its fd flags. Files deleted while open come back from their
 * ghost image: recreated under their old name when it is free (so /proc/PID/fd reads
 * the same), filled, opened, and unlinked again.
 *
 * Order: descriptions that several processes use, and every pipe's (whose ends are
 * often in different processes), are opened by the root before it forks
 * (rst__files_shared) and inherited. Then each process opens its own others, parks
 * them above the image's highest fd number (fd_base), and installs them with dup2;
 * epoll sets come last, because the kernel keys each watch by the target's fd number
 * in the process that added it (fd-epoll.c): a shared set is filled by the first
 * process that uses it, the one whose fdinfo the dump read. Parked descriptors and
 * pipe holders are closed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "ha/engine.h"
#include "fd-kinds.h"
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

	switch (f->kind) {
	case IMG_FILE_KIND__FILE_PIPE:
	case IMG_FILE_KIND__FILE_FIFO:
		return rst__pipe_open(c, f);
	case IMG_FILE_KIND__FILE_EVENTFD:
	case IMG_FILE_KIND__FILE_TIMERFD:
	case IMG_FILE_KIND__FILE_SIGNALFD:
		return rst__anon_open(c, f);
	case IMG_FILE_KIND__FILE_INET_SK:
		return rst__inet_open(c, f);
	case IMG_FILE_KIND__FILE_UNIX_SK:
		return rst__unix_open(c, f);
	case IMG_FILE_KIND__FILE_MEMFD:
		return rst__memfd_open(c, f);
	case IMG_FILE_KIND__FILE_INOTIFY:
		return rst__inotify_open(c, f);
	case IMG_FILE_KIND__FILE_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		return fd < 0 ? pr_errno(-errno, "file %u: epoll_create1", f->id) : fd;
	default:
		break;
	}
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

int rst__fd_high(struct rst_ctx *c, int fd)
{
	int nfd;

	if (fd < 0 || fd >= c->fd_base)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, c->fd_base);
	if (nfd < 0)
		nfd = pr_errno(-errno, "moving fd %d above %d", fd, c->fd_base);
	close(fd);
	return nfd;
}

/* How many processes have an fd on file `id`, and the first of them (or -1). */
static int users_of(const struct rst_ctx *c, uint32_t id, int *first)
{
	int users = 0;

	*first = -1;
	for (size_t p = 0; p < c->nr_procs; p++) {
		bool uses = false;

		for (size_t k = 0; k < c->procs[p].nr_fds; k++)
			uses |= c->procs[p].fds[k]->id == id;
		if (uses && *first < 0)
			*first = p;
		users += uses;
	}
	return users;
}

/* Kinds whose descriptions refer to each other across processes: the root makes them
 * all (a pipe's two ends, a unix socket and its peer). */
static bool pipe_kind(const ImgFile *f)
{
	return f->kind == IMG_FILE_KIND__FILE_PIPE || f->kind == IMG_FILE_KIND__FILE_FIFO ||
	       f->kind == IMG_FILE_KIND__FILE_UNIX_SK;
}

/*
 * In the root, before it forks: every file description that fds of several processes
 * name, and every pipe's, is opened here once, above every fd number of the
 * checkpoint, and inherited by the whole tree; rst__files() then dups it into place,
 * so offset and flags stay shared as they were, and a pipe joins its two ends
 * whichever processes hold them.
 */
int rst__files_shared(struct rst_ctx *c)
{
	int top = 2, first, ret = 0;

	c->shared_fd = malloc((c->nr_files + 1) * sizeof(*c->shared_fd));
	if (!c->shared_fd)
		return -ENOMEM;
	for (size_t i = 0; i < c->nr_procs; i++)
		for (size_t k = 0; k < c->procs[i].nr_fds; k++)
			if (c->procs[i].fds[k]->fd > top)
				top = c->procs[i].fds[k]->fd;
	c->fd_base = top + 1;
	for (size_t i = 0; i < c->nr_files; i++)
		c->shared_fd[i] = -1;
	for (size_t i = 0; i < c->nr_files && !ret; i++) {
		int users = users_of(c, c->files[i]->id, &first);

		if (users < 2 && !(users && pipe_kind(c->files[i])))
			continue;
		c->shared_fd[i] = rst__fd_high(c, open_file(c, c->files[i]));
		if (c->shared_fd[i] < 0)
			ret = c->shared_fd[i];
	}
	/* Every description of every pipe and unix socket is open: the holders are not
	 * needed any more. */
	rst__pipes_close(c);
	rst__unix_close(c);
	return ret;
}

/* Our own descriptors must not sit where the checkpoint's go: `keep` are moved above
 * every fd number of the image (and updated), everything else of ours but the shared
 * descriptions is closed. */
static int clear_table(struct rst_ctx *c, int *keep, int nr_keep)
{
	struct rst_proc *p = &c->proc;
	int top = 2, maxkeep = 0;

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
	c->fd_base = top + 1;
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
	return 0;
}

/* Install every fd whose description is open (desc[file index] >= 0) and not done. */
static int install(struct rst_ctx *c, const int *desc, bool *done)
{
	struct rst_proc *p = &c->proc;

	for (size_t i = 0; i < p->nr_fds; i++) {
		const ImgFd *d = p->fds[i];
		int fd = -1;

		for (size_t k = 0; k < c->nr_files && fd < 0; k++)
			if (c->files[k]->id == d->id)
				fd = desc[k];
		if (done[i] || fd < 0)
			continue;
		if (dup2(fd, d->fd) < 0)
			return pr_errno(-errno, "dup2 to fd %d", d->fd);
		if (fcntl(d->fd, F_SETFD, (d->flags & FD_CLOEXEC) ? FD_CLOEXEC : 0))
			return pr_errno(-errno, "fd %d: F_SETFD", d->fd);
		done[i] = true;
	}
	return 0;
}

/* Open the descriptions `epoll` selects (epoll sets, or all others) that our fds name,
 * or take the root's when it opened them for everyone. */
static int open_descs(struct rst_ctx *c, int *desc, bool epoll)
{
	struct rst_proc *p = &c->proc;

	for (size_t k = 0; k < c->nr_files; k++) {
		const ImgFile *f = c->files[k];
		bool used = false;

		if ((f->kind == IMG_FILE_KIND__FILE_EPOLL) != epoll)
			continue;
		for (size_t i = 0; i < p->nr_fds && !used; i++)
			used = p->fds[i]->id == f->id;
		if (!used)
			continue;
		if (c->shared_fd && c->shared_fd[k] >= 0)
			desc[k] = c->shared_fd[k];
		else
			desc[k] = rst__fd_high(c, open_file(c, f));
		if (desc[k] < 0)
			return desc[k];
	}
	return 0;
}

/* Fill our epoll sets; a shared one only in its first process (see the top). */
static int fill_epolls(struct rst_ctx *c, const int *desc)
{
	int first, ret = 0;

	for (size_t k = 0; k < c->nr_files && !ret; k++) {
		if (c->files[k]->kind != IMG_FILE_KIND__FILE_EPOLL || desc[k] < 0)
			continue;
		if (c->nr_procs > 1 && (users_of(c, c->files[k]->id, &first), first != c->me))
			continue;
		ret = rst__epoll_fill(c, c->files[k], desc[k]);
	}
	return ret;
}

/* keep[0] must be c->dirfd, which ghost files are read through. */
int rst__files(struct rst_ctx *c, int *keep, int nr_keep)
{
	struct rst_proc *p = &c->proc;
	int *desc = malloc((c->nr_files + 1) * sizeof(*desc));
	bool *done = calloc(p->nr_fds + 1, sizeof(*done));
	int ret;

	if (!desc || !done) {
		free(desc);
		free(done);
		return -ENOMEM;
	}
	for (size_t k = 0; k < c->nr_files; k++)
		desc[k] = -1;
	ret = clear_table(c, keep, nr_keep);
	c->dirfd = keep[0];
	for (size_t i = 0; i < p->nr_fds && !ret; i++)
		if (!find_file(c, p->fds[i]->id))
			ret = pr_errno(-EINVAL, "fds-%d.img: fd %d names file %u, not in files.img", p->pid,
				       p->fds[i]->fd, p->fds[i]->id);
	if (!ret)
		ret = open_descs(c, desc, false);
	if (!ret)
		ret = install(c, desc, done);
	if (!ret)
		ret = open_descs(c, desc, true);
	if (!ret)
		ret = fill_epolls(c, desc);
	if (!ret)
		ret = install(c, desc, done);
	for (size_t k = 0; k < c->nr_files; k++)
		if (desc[k] >= 0)
			close(desc[k]);
	for (size_t k = 0; c->shared_fd && k < c->nr_files; k++)
		if (c->shared_fd[k] >= 0 && c->shared_fd[k] != desc[k])
			close(c->shared_fd[k]);
	rst__pipes_close(c);
	rst__unix_close(c);
	free(desc);
	free(done);
	return ret;
}
