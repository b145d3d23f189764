/*
 * Crash-safe files. A checkpoint is only worth keeping if every file in it is either
 * the complete old version or the complete new one after any crash, so nothing writes
 * in place: write a temp file in the same directory (rename is only atomic within one
 * file system), fsync it (or the rename may reach the disk before the data), rename it
 * over the final name, fsync the directory (or the rename itself may be lost).
 * Images are private to root: directories 0700, files 0600, created so from the start
 * rather than chmod-ed later, so there is no window where they are readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha/engine.h"
#include "log.h"

int ha_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t r = write(fd, p, len);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		len -= r;
	}
	return 0;
}

int ha_fsync_dir(int dirfd)
{
	return fsync(dirfd) ? -errno : 0;
}

int ha_dir_open(const char *path, bool create)
{
	struct stat st;
	int fd;

	if (create && mkdir(path, 0700) && errno != EEXIST)
		return pr_errno(-errno, "%s: mkdir", path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "%s: open", path);
	/* An existing directory others can read would leak every image put into it. */
	if (create && (fstat(fd, &st) || (st.st_mode & 077))) {
		close(fd);
		return pr_errno(-EPERM, "%s: mode %03o: image directories must be 0700", path,
				st.st_mode & 0777);
	}
	return fd;
}

int ha_atomic_open(struct ha_atomic_file *af, int dirfd, const char *name)
{
	static unsigned seq;

	af->dirfd = dirfd;
	af->fd = -1;
	af->tmp[0] = 0;
	if (!*name || strchr(name, '/') || strlen(name) >= sizeof(af->name))
		return pr_errno(-EINVAL, "'%s': not a plain file name", name);
	strcpy(af->name, name);
	/* O_EXCL: never open somebody else's temp file, whatever is left in the dir. */
	for (int tries = 0; tries < 100; tries++) {
		snprintf(af->tmp, sizeof(af->tmp), ".%s.%d.%u.tmp", name, (int)getpid(),
			 __atomic_fetch_add(&seq, 1, __ATOMIC_RELAXED));
		af->fd = openat(dirfd, af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (af->fd >= 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	af->tmp[0] = 0;
	return pr_errno(-errno, "%s: create temp file", name);
}

void ha_atomic_abort(struct ha_atomic_file *af)
{
	if (af->fd >= 0)
		close(af->fd);
	af->fd = -1;
	if (af->tmp[0])
		unlinkat(af->dirfd, af->tmp, 0);
	af->tmp[0] = 0;
}

int ha_atomic_sync(struct ha_atomic_file *af)
{
	int ret = 0;

	if (af->fd < 0)
		return pr_errno(-EBADF, "%s: commit of a file not open", af->name);
	if (fsync(af->fd))
		ret = pr_errno(-errno, "%s: fsync", af->name);
	/* close can report a deferred write error (NFS): then the data is not safe either. */
	if (close(af->fd) && !ret)
		ret = pr_errno(-errno, "%s: close", af->name);
	af->fd = -1;
	if (ret)
		ha_atomic_abort(af);
	return ret;
}

int ha_atomic_publish(struct ha_atomic_file *af)
{
	int ret = 0;

	if (af->fd >= 0 || !af->tmp[0])
		return pr_errno(-EBADF, "%s: publish of a file not synced", af->name);
	if (renameat(af->dirfd, af->tmp, af->dirfd, af->name)) {
		ret = pr_errno(-errno, "%s: rename", af->name);
		unlinkat(af->dirfd, af->tmp, 0);
	}
	af->tmp[0] = 0;
	return ret;
}

int ha_atomic_commit(struct ha_atomic_file *af)
{
	int ret = ha_atomic_sync(af);

	if (!ret)
		ret = ha_atomic_publish(af);
	if (ret)
		return ret;
	ret = ha_fsync_dir(af->dirfd);
	if (ret)
		return pr_errno(ret, "%s: fsync of its directory", af->name);
	return 0;
}

int ha_atomic_write_file(int dirfd, const char *name, const void *buf, size_t len)
{
	struct ha_atomic_file af;
	int ret = ha_atomic_open(&af, dirfd, name);

	if (ret)
		return ret;
	ret = ha_write_full(af.fd, buf, len);
	if (ret) {
		ha_atomic_abort(&af);
		return pr_errno(ret, "%s: write", name);
	}
	return ha_atomic_commit(&af);
}
