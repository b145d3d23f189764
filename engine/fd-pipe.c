/*
 * Pipes and FIFOs, with the bytes queued in them.
 *
 * DESIGN
 * A pipe is one inode with any number of open file descriptions (read ends, write
 * ends, a FIFO's O_RDWR opens). Each description is its own ImgFile; all of one pipe
 * carry its (dev, ino), and the first one dumped is the owner: it carries the buffer
 * size and the queued bytes, once per process that holds it (each process's dump sees
 * only its own descriptions; restore fills a pipe once, from its first owner).
 *
 * Dump: the queued bytes are read without being consumed, so that a dump with
 * --leave-running (or a failed one) leaves the pipe as it was: we open the pipe again
 * through /proc/PID/fd/N as a reader (the magic link reaches the inode whichever end
 * the process holds), tee() every buffer into a spare pipe of the same size (tee links
 * buffers, it does not drain them), and read the spare. FIONREAD before and the tee's
 * count must agree: the process is frozen, nobody else may be writing.
 *
 * Restore: the owner creates the pipe (pipe2, or an O_RDWR open of the FIFO's path,
 * which never blocks and holds both sides), sets its size and writes the bytes back.
 * A pipe's first read and write descriptions are pipe2's own ends (so their flags read
 * exactly as before: a reopened pipe gains O_LARGEFILE); any other description, and
 * every FIFO one, is a new open of /proc/self/fd/HOLDER with its access mode. The
 * holders are closed once every fd is installed (rst__pipes_close).
 *
 * Refused: packet-mode pipes (O_DIRECT, which F_SETFL cannot set back) and FIFOs
 * whose path was deleted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

struct rst_pipe {
	int kind;
	uint64_t dev, ino;
	int r, w;		/* FIFO: both the O_RDWR holder */
	bool r_used, w_used;
	bool filled;		/* size and bytes set (several owners say the same) */
};

int eng__pipe_check(pid_t pid, const struct eng__fd_probe *p)
{
	if (p->flags & O_DIRECT)
		return eng__refuse("pid %d: fd %d: packet-mode pipe (O_DIRECT) (%s) is not supported yet",
				   pid, p->fd, p->link);
	if (S_ISFIFO(p->st.st_mode) && strncmp(p->link, "pipe:", 5) &&
	    (p->st.st_nlink == 0 || p->link[0] != '/'))
		return eng__refuse("pid %d: fd %d: FIFO whose path is gone (%s) is not supported yet", pid,
				   p->fd, p->link);
	return 0;
}

/* Copy the queued bytes of the pipe behind `src` without taking them out. */
static int peek_pipe(pid_t pid, int fd, int src, ImgPipe *m)
{
	int spare[2] = { -1, -1 }, queued = 0, ret = 0;
	ssize_t n;
	size_t got = 0;

	if (ioctl(src, FIONREAD, &queued))
		return pr_errno(-errno, "pid %d: fd %d: FIONREAD", pid, fd);
	if (!queued)
		return 0;
	if (pipe2(spare, O_NONBLOCK | O_CLOEXEC))
		return pr_errno(-errno, "pid %d: fd %d: a spare pipe", pid, fd);
	if (fcntl(spare[1], F_SETPIPE_SZ, m->size) < 0) {
		ret = pr_errno(-errno, "pid %d: fd %d: spare pipe of %u bytes", pid, fd, m->size);
		goto out;
	}
	m->data.data = malloc(queued);
	if (!m->data.data) {
		ret = -ENOMEM;
		goto out;
	}
	n = tee(src, spare[1], queued, SPLICE_F_NONBLOCK);
	if (n != queued) {
		ret = pr_errno(n < 0 ? -errno : -EIO, "pid %d: fd %d: tee of %d queued bytes gave %zd", pid,
			       fd, queued, n);
		goto out;
	}
	while (got < (size_t)queued) {
		n = read(spare[0], m->data.data + got, queued - got);
		if (n <= 0) {
			ret = pr_errno(n < 0 ? -errno : -EIO, "pid %d: fd %d: reading the pipe's copy", pid, fd);
			goto out;
		}
		got += n;
	}
	m->data.len = queued;
	m->has_data = 1;
out:
	close(spare[0]);
	close(spare[1]);
	return ret;
}

int eng__pipe_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f,
		   const struct eng__files_dump *files)
{
	ImgPipe *m = calloc(1, sizeof(*m));
	char path[64];
	int src, size, ret;

	if (!m)
		return -ENOMEM;
	img_pipe__init(m);
	f->pipe = m;
	m->has_ino = 1;
	m->ino = p->st.st_ino;
	for (int i = 0; i < files->nr_files; i++) {
		const struct eng__file_dump *o = &files->files[i];

		if (o != f && o->kind == f->kind && o->pipe && o->dev == f->dev && o->ino == f->ino &&
		    o->pipe->owner)
			return 0;
	}
	m->has_owner = m->has_size = 1;
	m->owner = true;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, p->fd);
	src = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (src < 0)
		return pr_errno(-errno, "pid %d: fd %d: opening %s as a reader", pid, p->fd, p->link);
	size = fcntl(src, F_GETPIPE_SZ);
	if (size <= 0) {
		ret = pr_errno(-errno, "pid %d: fd %d: F_GETPIPE_SZ", pid, p->fd);
	} else {
		m->size = size;
		ret = peek_pipe(pid, p->fd, src, m);
	}
	close(src);
	if (!ret)
		pr_debug("pid %d: fd %d: %s, %u byte buffer, %zu bytes queued", pid, p->fd, p->link,
			 m->size, m->data.len);
	return ret;
}

/* ---- restore ---------------------------------------------------------------------- */

static int create_pipe(struct rst_ctx *c, const ImgFile *f, struct rst_pipe *pp)
{
	int p[2];

	memset(pp, 0, sizeof(*pp));
	pp->kind = f->kind;
	pp->dev = f->dev;
	pp->ino = f->pipe->ino;
	pp->r = pp->w = -1;
	if (f->kind == IMG_FILE_KIND__FILE_PIPE) {
		if (pipe2(p, O_CLOEXEC))
			return pr_errno(-errno, "file %u: pipe2", f->id);
		pp->r = rst__fd_high(c, p[0]);
		pp->w = rst__fd_high(c, p[1]);
		if (pp->r < 0 || pp->w < 0)
			return pp->r < 0 ? pp->r : pp->w;
		return 0;
	}
	/* O_RDWR on a FIFO opens without waiting for a peer (fifo(7)) and keeps it open for
	 * the other descriptions to come. */
	p[0] = open(f->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (p[0] < 0)
		return pr_errno(-errno, "file %u: opening FIFO %s", f->id, f->path);
	{
		struct stat st;

		if (fstat(p[0], &st) || !S_ISFIFO(st.st_mode)) {
			close(p[0]);
			return pr_errno(-ENOTSUP, "file %u: %s is not a FIFO any more", f->id, f->path);
		}
	}
	pp->r = pp->w = rst__fd_high(c, p[0]);
	return pp->r < 0 ? pp->r : 0;
}

static int fill_pipe(const ImgFile *f, const struct rst_pipe *pp)
{
	const ImgPipe *m = f->pipe;
	size_t off = 0;

	if (m->size && fcntl(pp->w, F_SETPIPE_SZ, m->size) < (int)m->size)
		return pr_errno(-errno, "file %u: pipe buffer of %u bytes (F_SETPIPE_SZ)", f->id, m->size);
	while (off < m->data.len) {
		ssize_t n = write(pp->w, m->data.data + off, m->data.len - off);

		if (n <= 0)
			return pr_errno(n < 0 ? -errno : -EIO, "file %u: putting %zu bytes back in the pipe",
					f->id, m->data.len);
		off += n;
	}
	return 0;
}

static struct rst_pipe *find_pipe(struct rst_ctx *c, const ImgFile *f)
{
	for (size_t i = 0; i < c->nr_pipes; i++) {
		struct rst_pipe *pp = &c->pipes[i];

		if (pp->kind == (int)f->kind && pp->dev == f->dev && pp->ino == f->pipe->ino)
			return pp;
	}
	return NULL;
}

int rst__pipe_open(struct rst_ctx *c, const ImgFile *f)
{
	struct rst_pipe *pp = find_pipe(c, f);
	int acc = f->flags & O_ACCMODE, fd = -1, ret;
	char path[64];

	if (!pp) {
		void *n = realloc(c->pipes, (c->nr_pipes + 1) * sizeof(*c->pipes));

		if (!n)
			return -ENOMEM;
		c->pipes = n;
		pp = &c->pipes[c->nr_pipes++];
		ret = create_pipe(c, f, pp);
		if (ret)
			return ret;
	}
	if (f->pipe->owner && !pp->filled) {
		pp->filled = true;
		ret = fill_pipe(f, pp);
		if (ret)
			return ret;
	}
	if (f->kind == IMG_FILE_KIND__FILE_PIPE && acc == O_RDONLY && !pp->r_used) {
		pp->r_used = true;
		fd = fcntl(pp->r, F_DUPFD_CLOEXEC, 0);
	} else if (f->kind == IMG_FILE_KIND__FILE_PIPE && acc == O_WRONLY && !pp->w_used) {
		pp->w_used = true;
		fd = fcntl(pp->w, F_DUPFD_CLOEXEC, 0);
	} else {
		/* Non-blocking: a FIFO's O_WRONLY open would wait for a reader otherwise (our
		 * holder is one, but say so explicitly). The process's own flag comes next. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d", pp->r);
		fd = open(path, acc | O_NONBLOCK | O_CLOEXEC);
	}
	if (fd < 0)
		return pr_errno(-errno, "file %u: opening the %s %s", f->id,
				acc == O_RDONLY ? "read end of" : acc == O_WRONLY ? "write end of" : "",
				f->kind == IMG_FILE_KIND__FILE_PIPE ? "pipe" : f->path);
	if (fcntl(fd, F_SETFL, f->flags)) {
		ret = pr_errno(-errno, "file %u: F_SETFL 0%o", f->id, f->flags);
		close(fd);
		return ret;
	}
	return fd;
}

void rst__pipes_close(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nr_pipes; i++) {
		if (c->pipes[i].r >= 0)
			close(c->pipes[i].r);
		if (c->pipes[i].w >= 0 && c->pipes[i].w != c->pipes[i].r)
			close(c->pipes[i].w);
	}
	free(c->pipes);
	c->pipes = NULL;
	c->nr_pipes = 0;
}
