/*
 * memfd descriptors. The object behind one (name, size, contents, seals) is a shared
 * memory object of shmem.c, stored once for every descriptor and mapping of it; the
 * description itself is its flags and offset, in ImgFile. MFD_CLOEXEC is the fd's
 * FD_CLOEXEC (ImgFd.flags); MFD_ALLOW_SEALING is in the seals (without it a memfd has
 * F_SEAL_SEAL from birth).
 *
 * Restore opens a new description on the object the root created, through
 * /proc/self/fd (as open() on the magic link does for any memfd), with the dumped
 * access mode and status flags, and seeks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "dump.h"
#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

int eng__memfd_check(pid_t pid, int fd, const char *link)
{
	char path[64];
	struct statfs sf;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	if (statfs(path, &sf))
		return pr_errno(-errno, "pid %d: fd %d: statfs %s", pid, fd, path);
	if (sf.f_type == HUGETLBFS_MAGIC)
		return eng__refuse("pid %d: fd %d: a hugetlb memfd (%s) is not supported yet", pid, fd, link);
	return 0;
}

int rst__memfd_open(struct rst_ctx *c, const ImgFile *f)
{
	const int keep = O_ACCMODE | O_APPEND | O_NONBLOCK | O_LARGEFILE | O_NOATIME | O_DIRECT;
	char who[48], path[64];
	int obj, fd;

	snprintf(who, sizeof(who), "files.img: memfd %u", f->id);
	obj = rst__shm_fd(c, f->memfd->shm, who);
	if (obj < 0)
		return obj;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", obj);
	fd = open(path, (f->flags & keep) | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "file %u: reopening memfd object %u", f->id, f->memfd->shm);
	if (lseek(fd, f->pos, SEEK_SET) != (off_t)f->pos) {
		close(fd);
		return pr_errno(-errno, "file %u: memfd: seek to %llu", f->id, (unsigned long long)f->pos);
	}
	return fd;
}
