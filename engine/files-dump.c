/*
 * Dumping the fd table (fds-PID.img) and the open files behind it (files.img, and
 * ghost-ID.img for files deleted while open).
 *
 * DESIGN
 * What restore can reopen: regular files (by path, or from a ghost copy when
 * unlinked), directories, the character devices that are the same everywhere
 * (/dev/null, zero, full, random, urandom), and the kinds of fd-kinds.h: pipes and
 * FIFOs with their queued data, eventfd, timerfd, signalfd, epoll, memfds (their
 * objects in shmem.c), inotify, and TCP/UDP sockets (listening, bound; established
 * ones by the close policy), unix sockets (sk-unix.c). Everything else (other
 * anonymous inodes, ttys, other devices, other socket families) is refused by
 * eng__files_precheck() before the process is seized, naming the fd, its kind and its
 * /proc link; collect checks again while frozen, because the table may have changed
 * in between.
 * Two fds share one open file description (dup, fork) when kcmp(KCMP_FILE) says so;
 * they then name one ImgFile, so position and flags stay shared after restore. Only fds
 * of the same inode are compared, so this is linear for ordinary tables.
 * Positions and f_flags come from fdinfo. O_CLOEXEC there is the fd's FD_CLOEXEC, so
 * it goes to ImgFd.flags and is cleared from ImgFile.flags.
 * Ghost contents are copied while the process is frozen, through /proc/PID/fd/N, so
 * they match the position and the memory dumped with them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <xxhash.h>

#include "dump.h"
#include "fd-kinds.h"
#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "image.h"
#include "log.h"

#define DELETED " (deleted)"
#define KCMP_FILE 0
#define GHOST_CHUNK (1u << 20)

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return x < y ? -1 : x > y;
}

/* The fd numbers of pid, ascending. */
static int list_fds(pid_t pid, int **out, int *nr)
{
	char path[64];
	struct dirent *de;
	int *v = NULL, n = 0, cap = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return pr_errno(-errno, "pid %d: %s", pid, path);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			int *p = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (!p) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = p;
		}
		v[n++] = atoi(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_int);
	*out = v;
	*nr = n;
	return 0;
}

/* A socket's family and type, from the process's own socket. An fd closed since it
 * was listed is -ENOENT, as for the rest of the probe (a server accepts and closes
 * connections while we look). */
static int sock_kind(pid_t pid, struct eng__fd_probe *p)
{
	int pidfd = syscall(SYS_pidfd_open, pid, 0), sk, ret = 0;
	socklen_t len = sizeof(int);

	if (pidfd < 0)
		return errno == ESRCH ? -ENOENT : pr_errno(-errno, "pid %d: pidfd_open", pid);
	sk = syscall(SYS_pidfd_getfd, pidfd, p->fd, 0);
	if (sk < 0)
		ret = errno == EBADF ? -ENOENT : pr_errno(-errno, "pid %d: fd %d: pidfd_getfd", pid, p->fd);
	close(pidfd);
	if (ret)
		return ret;
	if (getsockopt(sk, SOL_SOCKET, SO_DOMAIN, &p->sk_family, &len))
		p->sk_family = 0;
	len = sizeof(int);
	if (getsockopt(sk, SOL_SOCKET, SO_TYPE, &p->sk_type, &len))
		p->sk_type = 0;
	close(sk);
	return 0;
}

/* Link, inode and fdinfo of one fd; p->fdinfo is the caller's to free. */
static int probe_fd(pid_t pid, int fd, struct eng__fd_probe *p)
{
	char name[32], path[64];
	int ret;

	p->fd = fd;
	p->fdinfo = NULL;
	snprintf(name, sizeof(name), "fd/%d", fd);
	ret = eng__proc_link(pid, name, p->link, sizeof(p->link));
	if (ret)
		return ret;
	/* stat() follows the magic link to the open file's inode, deleted or not. */
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	if (stat(path, &p->st))
		return pr_errno(-errno, "pid %d: fd %d: stat %s", pid, fd, path);
	p->sk_family = p->sk_type = 0;
	if (S_ISSOCK(p->st.st_mode)) {
		ret = sock_kind(pid, p);
		if (ret)
			return ret;
	}
	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	ret = eng__proc_read(pid, name, &p->fdinfo, NULL);
	if (!ret) {
		uint64_t v;

		ret = eng__fdinfo_u64(p->fdinfo, "flags", 8, &v);
		p->flags = v;
		if (ret)
			ret = pr_errno(-EPROTO, "pid %d: fdinfo/%d: no flags", pid, fd);
	}
	return ret;
}

static void probe_done(struct eng__fd_probe *p)
{
	free(p->fdinfo);
	p->fdinfo = NULL;
}

int eng__fdinfo_u64(const char *info, const char *key, int base, uint64_t *out)
{
	size_t kl = strlen(key);

	for (const char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == ':') {
			*out = strtoull(l + kl + 1, NULL, base);
			return 0;
		}
	return -ENOENT;
}

int eng__fd_grab(pid_t pid, int fd)
{
	int pidfd = syscall(SYS_pidfd_open, pid, 0), ret;

	if (pidfd < 0)
		return pr_errno(-errno, "pid %d: pidfd_open", pid);
	ret = syscall(SYS_pidfd_getfd, pidfd, fd, 0);
	if (ret < 0)
		ret = pr_errno(-errno, "pid %d: fd %d: pidfd_getfd", pid, fd);
	close(pidfd);
	return ret;
}

static bool ends_with_deleted(const char *s)
{
	size_t n = strlen(s), m = strlen(DELETED);

	return n >= m && !strcmp(s + n - m, DELETED);
}

static bool plain_chrdev(dev_t rdev)
{
	/* mem.c's minors: null 3, zero 5, full 7, random 8, urandom 9. */
	unsigned min = minor(rdev);

	return major(rdev) == 1 && (min == 3 || min == 5 || min == 7 || min == 8 || min == 9);
}

/* The ImgFileKind restore would recreate it as, or 0 and what it is, for the message. */
static int classify(const struct eng__fd_probe *p, const char **what)
{
	unsigned maj = major(p->st.st_rdev);
	int k;

	*what = NULL;
	if (!strncmp(p->link, "socket:", 7) || S_ISSOCK(p->st.st_mode))
		return p->sk_family == AF_UNIX ? IMG_FILE_KIND__FILE_UNIX_SK
					       : IMG_FILE_KIND__FILE_INET_SK;	/* which family: eng__sk_check */
	if (!strncmp(p->link, "pipe:", 5))
		return IMG_FILE_KIND__FILE_PIPE;
	if (!strncmp(p->link, "anon_inode:", 11)) {
		if (!strcmp(p->link, "anon_inode:[eventpoll]"))
			return IMG_FILE_KIND__FILE_EPOLL;
		if (!strcmp(p->link, "anon_inode:inotify"))
			return IMG_FILE_KIND__FILE_INOTIFY;
		k = eng__anon_kind(p->link);
		*what = k ? NULL : "anonymous inode";
		return k;
	}
	if (S_ISFIFO(p->st.st_mode))
		return IMG_FILE_KIND__FILE_FIFO;
	if (S_ISREG(p->st.st_mode)) {
		if (!strncmp(p->link, "/memfd:", 7) && ends_with_deleted(p->link) && !p->st.st_nlink)
			return IMG_FILE_KIND__FILE_MEMFD;
		if (p->link[0] != '/')
			*what = "file outside our file system tree";
		return *what ? 0 : IMG_FILE_KIND__FILE_REG;
	}
	if (S_ISDIR(p->st.st_mode)) {
		*what = p->st.st_nlink ? NULL : "deleted directory";
		return *what ? 0 : IMG_FILE_KIND__FILE_DIR;
	}
	if (S_ISCHR(p->st.st_mode)) {
		if (plain_chrdev(p->st.st_rdev))
			return IMG_FILE_KIND__FILE_CHR;
		*what = maj == 4 || maj == 5 || (maj >= 136 && maj <= 143) ? "tty" : "character device";
		return 0;
	}
	if (S_ISBLK(p->st.st_mode))
		*what = "block device";
	else if (S_ISLNK(p->st.st_mode))
		*what = "symbolic link (O_PATH)";
	else
		*what = "file of unknown type";
	return 0;
}

static int check_fd(pid_t pid, const struct eng__fd_probe *p)
{
	const char *what;

	switch (classify(p, &what)) {
	case 0:
		return eng__refuse("pid %d: fd %d: %s (%s) is not supported yet", pid, p->fd, what,
				   p->link);
	case IMG_FILE_KIND__FILE_PIPE:
	case IMG_FILE_KIND__FILE_FIFO:
		return eng__pipe_check(pid, p);
	case IMG_FILE_KIND__FILE_EPOLL:
		return eng__epoll_check(pid, p);
	case IMG_FILE_KIND__FILE_INET_SK:
		return eng__sk_check(pid, p);
	case IMG_FILE_KIND__FILE_UNIX_SK:
		return eng__unix_check(pid, p);
	case IMG_FILE_KIND__FILE_MEMFD:
		return eng__memfd_check(pid, p->fd, p->link);
	default:
		return 0;
	}
}

int eng__files_precheck(pid_t pid)
{
	struct eng__fd_probe *p = malloc(sizeof(*p));
	int *fds = NULL, n = 0, ret;

	if (!p)
		return -ENOMEM;
	ret = list_fds(pid, &fds, &n);
	for (int i = 0; i < n && !ret; i++) {
		ret = probe_fd(pid, fds[i], p);
		if (ret == -ENOENT)	/* closed meanwhile */
			ret = 0;
		else if (!ret)
			ret = check_fd(pid, p);
		probe_done(p);
	}
	free(fds);
	free(p);
	return ret;
}

/* ---- collecting, frozen ----------------------------------------------------------- */

static int copy_ghost(pid_t pid, int dirfd, struct eng__files_dump *fd, struct eng__file_dump *f)
{
	char path[64];
	struct eng_img *img = NULL;
	XXH3_state_t *h = XXH3_createState();
	uint8_t *buf = malloc(GHOST_CHUNK);
	int src, ret;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, f->first_fd);
	/* Reopening through the magic link works for a deleted file, whatever the target
	 * opened it for (root passes the inode's permission check). */
	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		ret = pr_errno(-errno, "pid %d: fd %d: reopening deleted %s", pid, f->first_fd, f->path);
	else if (!h || !buf)
		ret = -ENOMEM;
	else
		ret = eng_img_create(dirfd, ENG_IMG_GHOST, f->id, &img);
	if (!ret)
		XXH3_64bits_reset(h);
	f->size = 0;
	while (!ret) {
		ssize_t r = read(src, buf, GHOST_CHUNK);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			ret = pr_errno(-errno, "pid %d: fd %d: reading deleted %s", pid, f->first_fd,
				       f->path);
		if (r <= 0)
			break;
		XXH3_64bits_update(h, buf, r);
		ret = eng_img_write_raw(img, buf, r);
		f->size += r;
	}
	if (!ret) {
		f->xxh3 = XXH3_64bits_digest(h);
		f->ghost = fd->nr_ghosts;
		fd->ghosts[fd->nr_ghosts++] = img;
		fd->ghost_bytes += f->size;
	} else {
		eng_img_abort(img);
	}
	if (src >= 0)
		close(src);
	XXH3_freeState(h);
	free(buf);
	return ret;
}

/* Kinds with a path to reopen them by. */
static bool path_kind(int kind)
{
	return kind == IMG_FILE_KIND__FILE_REG || kind == IMG_FILE_KIND__FILE_DIR ||
	       kind == IMG_FILE_KIND__FILE_CHR || kind == IMG_FILE_KIND__FILE_FIFO;
}

static int new_file(pid_t pid, struct eng__files_dump *fd, const struct eng__fd_probe *p,
		    const struct eng__fdinfo *fi)
{
	struct eng__file_dump *f = &fd->files[fd->nr_files];
	size_t len = strlen(p->link);
	const char *what;
	int ret = 0;

	memset(f, 0, sizeof(*f));
	f->id = fd->id_base + fd->nr_files + 1;
	f->first_fd = p->fd;
	f->ghost = -1;
	f->flags = fi->flags & ~(uint32_t)O_CLOEXEC;
	f->pos = fi->pos;
	f->mode = p->st.st_mode;
	f->dev = p->st.st_dev;
	f->ino = p->st.st_ino;
	f->kind = classify(p, &what);
	switch (f->kind) {
	case IMG_FILE_KIND__FILE_REG:
		f->size = p->st.st_size;
		/* " (deleted)" may also be part of a real name: the link count decides. */
		f->unlinked = p->st.st_nlink == 0;
		if (f->unlinked && ends_with_deleted(p->link))
			len -= strlen(DELETED);
		break;
	case IMG_FILE_KIND__FILE_CHR:
		f->rdev = p->st.st_rdev;
		break;
	case IMG_FILE_KIND__FILE_PIPE:
	case IMG_FILE_KIND__FILE_FIFO:
		ret = eng__pipe_dump(pid, p, f, fd);
		break;
	case IMG_FILE_KIND__FILE_EVENTFD:
	case IMG_FILE_KIND__FILE_TIMERFD:
	case IMG_FILE_KIND__FILE_SIGNALFD:
		ret = eng__anon_dump(pid, p, f);
		break;
	case IMG_FILE_KIND__FILE_EPOLL:
		ret = eng__epoll_dump(pid, p, f);
		break;
	case IMG_FILE_KIND__FILE_INET_SK:
		ret = eng__sk_dump(pid, p, f);
		break;
	case IMG_FILE_KIND__FILE_UNIX_SK:
		ret = eng__unix_dump(pid, p, f);
		break;
	case IMG_FILE_KIND__FILE_INOTIFY:
		ret = eng__inotify_dump(pid, p->fd, p->fdinfo, &f->inotify);
		break;
	case IMG_FILE_KIND__FILE_MEMFD:
		/* The object and its id: eng__shm_collect, once the tree is collected. */
		f->memfd = malloc(sizeof(*f->memfd));
		if (f->memfd)
			*f->memfd = (ImgMemfd)IMG_MEMFD__INIT;
		ret = f->memfd ? 0 : -ENOMEM;
		if (f->memfd)
			f->memfd->has_shm = 1;
		break;
	default:
		break;
	}
	if (!ret && path_kind(f->kind) && !(f->path = strndup(p->link, len)))
		ret = -ENOMEM;
	fd->nr_files++;	/* counted even on failure: eng__files_free frees its parts */
	return ret;
}

/* The file an earlier fd already opened (same description), or -1. */
static int shared_file(pid_t pid, const struct eng__files_dump *fd, const struct eng__fd_probe *p)
{
	for (int i = 0; i < fd->nr_files; i++) {
		const struct eng__file_dump *f = &fd->files[i];
		long r;

		if (f->dev != (uint64_t)p->st.st_dev || f->ino != (uint64_t)p->st.st_ino)
			continue;
		r = syscall(SYS_kcmp, pid, pid, KCMP_FILE, f->first_fd, p->fd);
		if (r == 0)
			return i;
		if (r < 0) {	/* no kcmp (CONFIG_KCMP): each fd its own file, say so */
			pr_warn("pid %d: kcmp of fds %d and %d: %s; dumping them as separate files", pid,
				f->first_fd, p->fd, strerror(errno));
			return -1;
		}
	}
	return -1;
}

static int collect_fd(pid_t pid, int dirfd, struct eng__files_dump *fd, int nr)
{
	struct eng__fd_dump *d = &fd->fds[fd->nr_fds];
	struct eng__fd_probe *p = malloc(sizeof(*p));
	struct eng__fdinfo fi;
	int ret, file;

	if (!p)
		return -ENOMEM;
	ret = probe_fd(pid, nr, p);
	if (!ret)
		ret = check_fd(pid, p);
	if (!ret)
		ret = eng__parse_fdinfo(pid, nr, p->fdinfo, &fi);	/* read once, by probe_fd */
	if (ret)
		goto out;
	file = shared_file(pid, fd, p);
	if (file < 0) {
		file = fd->nr_files;
		ret = new_file(pid, fd, p, &fi);
		if (!ret && fd->files[file].unlinked)
			ret = copy_ghost(pid, dirfd, fd, &fd->files[file]);
		if (ret)
			goto out;
	}
	d->fd = nr;
	d->cloexec = fi.flags & O_CLOEXEC;
	d->file = file;
	fd->nr_fds++;
out:
	probe_done(p);
	free(p);
	return ret;
}

int eng__files_collect(pid_t pid, int dirfd, uint32_t id_base, struct eng__files_dump *fd)
{
	int *fds = NULL, n = 0, ret;

	memset(fd, 0, sizeof(*fd));
	fd->pid = pid;
	fd->id_base = id_base;
	ret = list_fds(pid, &fds, &n);
	if (ret)
		return ret;
	fd->files = calloc(n + 1, sizeof(*fd->files));
	fd->fds = calloc(n + 1, sizeof(*fd->fds));
	fd->ghosts = calloc(n + 1, sizeof(*fd->ghosts));
	if (!fd->files || !fd->fds || !fd->ghosts)
		ret = -ENOMEM;
	/* Frozen: no fd can come or go, so a vanished one is an error like any other. */
	for (int i = 0; i < n && !ret; i++)
		ret = collect_fd(pid, dirfd, fd, fds[i]);
	free(fds);
	return ret;
}

/* ---- writing ---------------------------------------------------------------------- */

static int write_files(struct eng_img *img, const struct eng__files_dump *fd)
{
	int ret = 0;

	for (int i = 0; i < fd->nr_files && !ret; i++) {
		const struct eng__file_dump *f = &fd->files[i];
		ImgFile m = IMG_FILE__INIT;

		if (f->foreign)
			continue;
		m.has_id = m.has_kind = m.has_flags = m.has_pos = m.has_mode = 1;
		m.id = f->id;
		m.kind = f->kind;
		m.flags = f->flags;
		m.pos = f->pos;
		m.path = f->path;
		m.mode = f->mode;
		m.has_dev = m.has_ino = 1;
		m.dev = f->dev;
		m.ino = f->ino;
		if (f->kind == IMG_FILE_KIND__FILE_REG) {
			m.has_size = 1;
			m.size = f->size;
		}
		if (f->kind == IMG_FILE_KIND__FILE_CHR) {
			m.has_rdev = 1;
			m.rdev = f->rdev;
		}
		m.pipe = f->pipe;
		m.eventfd = f->efd;
		m.timerfd = f->tfd;
		m.signalfd = f->sfd;
		m.epoll = f->ep;
		m.inet = f->inet;
		m.unix_sk = f->usk;
		m.memfd = f->memfd;
		m.inotify = f->inotify;
		if (f->unlinked) {
			m.has_unlinked = m.has_content_xxh3 = 1;
			m.unlinked = true;
			m.content_xxh3 = f->xxh3;
		}
		ret = eng_img_write(img, &m.base);
	}
	return ret;
}

/* Ids ascend through files.img: each process's are above the ones before it. */
int eng__files_write_table(int dirfd, struct eng__files_dump *const *all, int n, struct eng__imgq *q)
{
	struct eng_img *img;
	int ret = eng_img_create(dirfd, ENG_IMG_FILES, 0, &img);

	if (!ret)
		ret = eng__imgq_add(q, img);
	for (int i = 0; i < n && !ret; i++)
		ret = write_files(img, all[i]);
	return ret;
}

int eng__files_write(pid_t pid, int dirfd, struct eng__files_dump *fd, struct eng__imgq *q)
{
	struct eng_img *img;
	int ret = 0;

	/* Ghosts before files.img, which refers to them: the queue owns them from here. A
	 * foreign file's ghost is the earlier process's. */
	for (int i = 0; i < fd->nr_files; i++)
		if (fd->files[i].foreign && fd->files[i].ghost >= 0) {
			eng_img_abort(fd->ghosts[fd->files[i].ghost]);
			fd->ghosts[fd->files[i].ghost] = NULL;
		}
	for (int i = 0; i < fd->nr_ghosts && !ret; i++) {
		if (fd->ghosts[i])
			ret = eng__imgq_add(q, fd->ghosts[i]);
		fd->ghosts[i] = NULL;
	}
	if (!ret)
		ret = eng_img_create(dirfd, ENG_IMG_FDS, pid, &img);
	if (!ret)
		ret = eng__imgq_add(q, img);
	for (int i = 0; i < fd->nr_fds && !ret; i++) {
		const struct eng__fd_dump *d = &fd->fds[i];
		ImgFd m = IMG_FD__INIT;

		m.has_fd = m.has_flags = m.has_kind = m.has_id = 1;
		m.fd = d->fd;
		m.flags = d->cloexec ? FD_CLOEXEC : 0;
		m.kind = fd->files[d->file].kind;
		m.id = fd->files[d->file].id;
		ret = eng_img_write(img, &m.base);
	}
	return ret;
}

void eng__files_free(struct eng__files_dump *fd)
{
	if (!fd)
		return;
	for (int i = 0; i < fd->nr_files; i++) {
		struct eng__file_dump *f = &fd->files[i];

		free(f->path);
		if (f->pipe)
			free(f->pipe->data.data);
		free(f->pipe);
		free(f->efd);
		free(f->tfd);
		free(f->sfd);
		if (f->ep) {
			for (size_t k = 0; k < f->ep->n_targets; k++)
				free(f->ep->targets[k]);
			free(f->ep->targets);
		}
		free(f->ep);
		if (f->inet) {
			free(f->inet->addr.data);
			free(f->inet->peer_addr.data);
		}
		free(f->inet);
		eng__unix_free(f->usk);
		free(f->memfd);
		eng__inotify_free(f->inotify);
	}
	for (int i = 0; i < fd->nr_ghosts; i++)
		eng_img_abort(fd->ghosts[i]);
	free(fd->files);
	free(fd->fds);
	free(fd->ghosts);
	memset(fd, 0, sizeof(*fd));
}
