/*
 * inotify descriptors: every watch (wd, mask, and the watched inode by file handle, as
 * fdinfo shows them). Events queued at the dump are lost (the dump log says how many
 * descriptors that may concern); the watches go on reporting after restore.
 *
 * DESIGN
 * Dump: fdinfo gives each watch's handle; the handle is opened (open_by_handle_at, on
 * a mount of the same device found in mountinfo) to learn the watched path, which is
 * kept beside the handle. A watch on a deleted inode is refused: nothing could name
 * it again.
 * Restore: the handle is opened again (a file renamed since the dump is still found),
 * else the path, whose inode must be the dumped one. Watch descriptors come back with
 * their numbers: the kernel hands them out cyclically from the last one given, so a
 * watch is added, removed and added again until it gets its number; the IN_IGNORED
 * events the removals queue are drained before the fd is used.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "dump.h"
#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

#define MAX_HANDLE 128
#define WD_TRIES (1 << 20)

struct handle {
	struct file_handle h;
	unsigned char bytes[MAX_HANDLE];
};

void eng__inotify_free(ImgInotify *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n_watches; i++) {
		free(in->watches[i]->fhandle.data);
		free(in->watches[i]->path);
		free(in->watches[i]);
	}
	free(in->watches);
	free(in);
}

/* A directory on the file system of kernel device number sdev, from our mountinfo
 * (opened for reading: open_by_handle_at takes no O_PATH mount fd). */
static int mount_of(uint64_t sdev)
{
	unsigned maj = sdev >> 20, min = sdev & 0xfffff, a, b;
	char line[4096 + 256], mnt[4096];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int fd = -1;

	if (!f)
		return -errno;
	while (fd < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &a, &b, mnt) == 3 && a == maj && b == min)
			fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fclose(f);
	return fd < 0 ? -ENOENT : fd;
}

/* "f_handle:0011aabb" into bytes. */
static int hex_bytes(const char *s, unsigned char *out, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EPROTO;
		out[i] = v;
	}
	return 0;
}

/* One "inotify wd:..." line of fdinfo. */
static int parse_watch(pid_t pid, int fd, const char *l, ImgInotifyWatch *w)
{
	unsigned long long ino, sdev;
	unsigned mask, bytes, wd;
	int type, n = 0;

	if (sscanf(l, "inotify wd:%x ino:%llx sdev:%llx mask:%x ignored_mask:%*x fhandle-bytes:%x fhandle-type:%x f_handle:%n",
		   &wd, &ino, &sdev, &mask, &bytes, &type, &n) != 6 || !n || bytes == 0 || bytes > MAX_HANDLE)
		return pr_errno(-EPROTO, "pid %d: fd %d: fdinfo line \"%.80s\"", pid, fd, l);
	*w = (ImgInotifyWatch)IMG_INOTIFY_WATCH__INIT;
	w->has_wd = w->has_mask = w->has_ino = w->has_sdev = w->has_fhandle_type = w->has_fhandle = 1;
	w->wd = wd;
	w->mask = mask;
	w->ino = ino;
	w->sdev = sdev;
	w->fhandle_type = type;
	w->fhandle.len = bytes;
	w->fhandle.data = malloc(bytes);
	if (!w->fhandle.data)
		return -ENOMEM;
	return hex_bytes(l + n, w->fhandle.data, bytes) ? pr_errno(-EPROTO, "pid %d: fd %d: f_handle of wd %d", pid,
								   fd, wd) : 0;
}

/* The path of the watched inode, through its handle. */
static int watch_path(pid_t pid, int fd, ImgInotifyWatch *w)
{
	struct handle h = { .h = { .handle_bytes = w->fhandle.len, .handle_type = w->fhandle_type } };
	char self[64], buf[PATH_MAX];
	int mfd = mount_of(w->sdev), tfd;
	struct stat st;
	ssize_t n;

	memcpy(h.h.f_handle, w->fhandle.data, w->fhandle.len);
	if (mfd < 0)
		return eng__refuse("pid %d: fd %d: inotify wd %d: no mount of device %u:%u here", pid, fd, w->wd,
				   (unsigned)(w->sdev >> 20), (unsigned)(w->sdev & 0xfffff));
	tfd = open_by_handle_at(mfd, &h.h, O_PATH | O_CLOEXEC);
	close(mfd);
	if (tfd < 0)
		return pr_errno(-errno, "pid %d: fd %d: inotify wd %d: open_by_handle_at", pid, fd, w->wd);
	snprintf(self, sizeof(self), "/proc/self/fd/%d", tfd);
	n = readlink(self, buf, sizeof(buf) - 1);
	if (n >= 0 && fstat(tfd, &st))
		n = -1;
	close(tfd);
	if (n < 0)
		return pr_errno(-errno, "pid %d: fd %d: inotify wd %d: its path", pid, fd, w->wd);
	buf[n] = 0;
	if (!st.st_nlink && !S_ISDIR(st.st_mode))
		return eng__refuse("pid %d: fd %d: inotify wd %d watches deleted %s: not supported yet", pid, fd, w->wd,
				   buf);
	if (buf[0] != '/')
		return eng__refuse("pid %d: fd %d: inotify wd %d watches %s, outside our file system tree", pid, fd,
				   w->wd, buf);
	w->path = strdup(buf);
	return w->path ? 0 : -ENOMEM;
}

static int cmp_wd(const void *a, const void *b)
{
	int x = (*(ImgInotifyWatch *const *)a)->wd, y = (*(ImgInotifyWatch *const *)b)->wd;

	return x < y ? -1 : x > y;
}

int eng__inotify_dump(pid_t pid, int fd, const char *fdinfo, ImgInotify **out)
{
	ImgInotify *in = calloc(1, sizeof(*in));
	int ret = in ? 0 : -ENOMEM;

	if (in)
		*in = (ImgInotify)IMG_INOTIFY__INIT;
	for (const char *l = fdinfo; !ret && l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		ImgInotifyWatch *w, **nw;

		if (strncmp(l, "inotify wd:", 11))
			continue;
		w = malloc(sizeof(*w));
		nw = w ? realloc(in->watches, (in->n_watches + 1) * sizeof(*nw)) : NULL;
		if (!nw) {
			free(w);
			ret = -ENOMEM;
			break;
		}
		in->watches = nw;
		in->watches[in->n_watches++] = w;
		*w = (ImgInotifyWatch)IMG_INOTIFY_WATCH__INIT;
		ret = parse_watch(pid, fd, l, w);
		if (!ret)
			ret = watch_path(pid, fd, w);
	}
	/* fdinfo lists them newest first; restore adds them by ascending wd. */
	if (!ret && in->n_watches > 1)
		qsort(in->watches, in->n_watches, sizeof(*in->watches), cmp_wd);
	for (size_t i = 1; !ret && i < in->n_watches; i++)
		if (in->watches[i]->wd == in->watches[i - 1]->wd)
			ret = pr_errno(-EPROTO, "pid %d: fd %d: two inotify watches with wd %d", pid, fd,
				       in->watches[i]->wd);
	if (!ret)
		pr_info("pid %d: fd %d: inotify with %zu watches; events queued now are not kept", pid, fd,
			in->n_watches);
	if (ret)
		eng__inotify_free(in);
	else
		*out = in;
	return ret;
}

/* What to watch: an O_PATH fd of the dumped inode (by handle, else by path). */
static int open_target(const ImgFile *f, const ImgInotifyWatch *w)
{
	struct handle h = { .h = { .handle_bytes = w->fhandle.len, .handle_type = w->fhandle_type } };
	char dir[PATH_MAX];
	struct stat st;
	int mfd = -1, tfd = -1;

	snprintf(dir, sizeof(dir), "%s", w->path ? w->path : "/");
	/* Any directory of the same file system serves as the handle's mount. */
	while (mfd < 0) {
		char *slash = strrchr(dir, '/');

		/* Not O_PATH: open_by_handle_at refuses those as mount fds (EBADF). */
		mfd = open(dir[0] ? dir : "/", O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (mfd >= 0 && (fstat(mfd, &st) || ((major(st.st_dev) << 20) | minor(st.st_dev)) != w->sdev)) {
			close(mfd);
			mfd = -1;
		}
		if (mfd >= 0 || !slash || !dir[0])
			break;
		*slash = 0;
	}
	if (mfd >= 0 && w->has_fhandle) {
		memcpy(h.h.f_handle, w->fhandle.data, w->fhandle.len);
		tfd = open_by_handle_at(mfd, &h.h, O_PATH | O_CLOEXEC);
	}
	if (mfd >= 0)
		close(mfd);
	if (tfd < 0 && w->path)
		tfd = open(w->path, O_PATH | O_CLOEXEC);
	if (tfd < 0)
		return pr_errno(-errno, "file %u: inotify wd %d: cannot open %s", f->id, w->wd,
				w->path ? w->path : "its inode");
	if (w->has_ino && (fstat(tfd, &st) || st.st_ino != w->ino)) {
		close(tfd);
		return pr_errno(-ESTALE, "file %u: inotify wd %d: %s is not the inode that was watched (%lu, was %lu)",
				f->id, w->wd, w->path ? w->path : "?", (unsigned long)st.st_ino,
				(unsigned long)w->ino);
	}
	return tfd;
}

/* Add watch w so that it gets its own wd (see the top). */
static int add_watch(int ifd, const ImgFile *f, const ImgInotifyWatch *w)
{
	char self[64];
	int tfd = open_target(f, w), wd = -1;

	if (tfd < 0)
		return tfd;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", tfd);
	for (int tries = 0; tries < WD_TRIES; tries++) {
		wd = inotify_add_watch(ifd, self, w->mask);
		if (wd < 0 || wd >= w->wd)
			break;
		inotify_rm_watch(ifd, wd);
	}
	close(tfd);
	if (wd < 0)
		return pr_errno(-errno, "file %u: inotify_add_watch %s (wd %d)", f->id, w->path ? w->path : "?",
				w->wd);
	if (wd != w->wd)
		return pr_errno(-EEXIST, "file %u: inotify watch %s came back as wd %d, not %d", f->id,
				w->path ? w->path : "?", wd, w->wd);
	return 0;
}

int rst__inotify_open(struct rst_ctx *c, const ImgFile *f)
{
	char buf[4096];
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC), ret = 0;

	(void)c;
	if (fd < 0)
		return pr_errno(-errno, "file %u: inotify_init1", f->id);
	for (size_t i = 0; i < f->inotify->n_watches && !ret; i++)
		ret = add_watch(fd, f, f->inotify->watches[i]);
	/* The IN_IGNORED of every watch removed on the way: not the application's. */
	while (!ret && read(fd, buf, sizeof(buf)) > 0)
		;
	if (!ret && !(f->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, 0))
		ret = pr_errno(-errno, "file %u: inotify: F_SETFL", f->id);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}
