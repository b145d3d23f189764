/*
 * System V shared memory of a tree that has an ipc namespace of its own (a service
 * launched under our init): every segment of that namespace, attached or not, with
 * its id, key, owners, mode and contents; and each process's attachments.
 *
 * DESIGN
 * Segment ids are namespace-wide and chosen by the kernel, and the processes keep them
 * (in variables, in files), so a segment must come back with its very id. That is only
 * possible in a new ipc namespace, where every id is free: a tree in hacd's own ipc
 * namespace that attaches a segment is refused (the host's ids cannot be promised).
 *
 * Dump, frozen: a helper process joins the tree's ipc namespace (the ipc calls and
 * shm_next_id act on the caller's), walks every segment (SHM_INFO, SHM_STAT_ANY),
 * attaches each read-only, opens the shmem file behind its attachment through
 * /proc/self/map_files and passes that fd back (SCM_RIGHTS) with the segment's
 * IPC_STAT. Each fd becomes a shared object of kind SHM_SYSV (shmem.c copies its data
 * ranges, as for any shmem file); an attachment in a process (a mapping of /SYSVKEY,
 * whose inode number is the segment id) names its segment by that id.
 *
 *   segment state              restore, in the root, in the new ipc namespace
 *   key, id                    shm_next_id = id; shmget(key or IPC_PRIVATE, IPC_EXCL)
 *   uid, gid, mode & 0777      IPC_SET
 *   contents                   attached, filled, detached
 *   SHM_LOCKED                 SHM_LOCK
 *   SHM_DEST (IPC_RMID while   attached, IPC_RMID, and left attached: every process
 *   still attached)            forked after inherits that attachment (which keeps the
 *                              segment alive) until its restorer unmaps it; Linux lets
 *                              shmat attach a removed segment meanwhile
 *
 * Each process's attachments are made in its premap (rst-mem.c calls rst__sysv_attach)
 * with shmat(SHM_REMAP) at the slot, so they count in shm_nattch and shmdt works on
 * them; the restorer moves them into place like any mapping (mremap keeps a shm
 * mapping's bookkeeping).
 *
 * Limits: only whole attachments (an attachment partly unmapped or split by mprotect
 * is refused); the creator's uid/gid and pids (cuid, cgid, cpid, lpid) and the times
 * become the restore's; the helper's read-only attachment at dump touches shm_atime,
 * shm_dtime and shm_lpid; hugetlb segments are refused; semaphores and message queues
 * are refused (pidns.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"
#include "restore.h"
#include "shmem.pb-c.h"

#define PG 4096ull
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#define HUGETLBFS_MAGIC_ 0x958458f6

/* ---- dump ------------------------------------------------------------------------- */

/* One segment, from the helper; id -1 ends the list, err > 0 says it failed. */
struct seg_msg {
	int id;
	int err;
	char what[96];
	struct shmid_ds ds;
};

static int send_seg(int sk, const struct seg_msg *m, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { (void *)m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = sizeof(u.buf);
		CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
		CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
		CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), &fd, sizeof(int));
	}
	return sendmsg(sk, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(*m) ? 0 : -1;
}

static void __attribute__((noreturn)) helper_fail(int sk, int err, const char *what, int id)
{
	struct seg_msg m = { .id = id, .err = err };

	snprintf(m.what, sizeof(m.what), "%s", what);
	send_seg(sk, &m, -1);
	_exit(1);
}

/* One segment: attached read-only, its shmem file opened, detached. */
static int seg_fd(int sk, int id)
{
	char path[96];
	struct statfs sfs;
	struct shmid_ds ds;
	void *a;
	int fd;

	if (shmctl(id, IPC_STAT, &ds) < 0)
		helper_fail(sk, errno, "IPC_STAT", id);
	a = shmat(id, NULL, SHM_RDONLY);
	if (a == (void *)-1)
		helper_fail(sk, errno, "attaching it read-only", id);
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)a,
		 (unsigned long)a + (unsigned long)((ds.shm_segsz + PG - 1) & ~(PG - 1)));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		helper_fail(sk, errno, "opening its attachment through map_files", id);
	if (!fstatfs(fd, &sfs) && sfs.f_type == HUGETLBFS_MAGIC_)
		helper_fail(sk, EOPNOTSUPP, "a hugetlb segment (SHM_HUGETLB) is not supported yet", id);
	shmdt(a);
	return fd;
}

static void __attribute__((noreturn)) helper_main(pid_t ipc_pid, int sk)
{
	struct shm_info info;
	char path[64];
	int fd, max;

	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", ipc_pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWIPC))
		helper_fail(sk, errno, "joining the tree's ipc namespace", -1);
	close(fd);
	max = shmctl(0, SHM_INFO, (struct shmid_ds *)&info);
	if (max < 0)
		helper_fail(sk, errno, "SHM_INFO", -1);
	for (int idx = 0; idx <= max; idx++) {
		struct seg_msg m = { 0 };
		int id = shmctl(idx, SHM_STAT_ANY, &m.ds);

		if (id < 0)
			continue;	/* a free index */
		m.id = id;
		fd = seg_fd(sk, id);
		if (send_seg(sk, &m, fd))
			_exit(1);
		close(fd);
	}
	{
		struct seg_msg end = { .id = -1 };

		send_seg(sk, &end, -1);
	}
	_exit(0);
}

static int recv_seg(int sk, struct seg_msg *m, int *fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = { m, sizeof(*m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	ssize_t n;

	*fd = -1;
	while ((n = recvmsg(sk, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(*m))
		return -EPROTO;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
			memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return 0;
}

static int add_seg(struct eng__shm_table *t, const struct seg_msg *m, int fd)
{
	struct eng__shm_obj *o;
	uint32_t id;
	int ret = eng__shm_obj_of(t, fd, IMG_SHMEM_KIND__SHM_SYSV, &id);

	if (ret)
		return ret;
	o = &t->o[id - 1];
	/* The segment's size, not its shmem file's (rounded to pages). */
	o->size = m->ds.shm_segsz;
	o->mode = m->ds.shm_perm.mode;
	o->sysv.id = m->id;
	o->sysv.key = m->ds.shm_perm.__key;
	o->sysv.uid = m->ds.shm_perm.uid;
	o->sysv.gid = m->ds.shm_perm.gid;
	o->sysv.cuid = m->ds.shm_perm.cuid;
	o->sysv.cgid = m->ds.shm_perm.cgid;
	pr_debug("System V segment %d (key %#x, %zu bytes, mode %#o): shared object %u", m->id,
		 o->sysv.key, (size_t)m->ds.shm_segsz, o->mode, id);
	return 0;
}

/*
 * How many segments the ipc namespace of ipc_pid holds, asked from inside it by this
 * thread, which then goes back to its own (setns changes the calling thread's
 * namespace only; it never holds SysV semaphore undo state or segments it created,
 * which a change of ipc namespace drops). Most services have none, and then the
 * helper's fork is spared: a fork of a worker whose staging buffer is faulted in cost
 * 1.4-2.1 ms of pause here, more than all the rest of a small service's freeze.
 */
static int count_segments(pid_t ipc_pid, int *n)
{
	struct shm_info info;
	char path[64];
	int self, theirs, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", ipc_pid);
	self = open("/proc/thread-self/ns/ipc", O_RDONLY | O_CLOEXEC);
	theirs = self < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || theirs < 0) {
		ret = pr_errno(-errno, "pid %d: %s", ipc_pid, self < 0 ? "/proc/thread-self/ns/ipc" : path);
		goto out;
	}
	if (setns(theirs, CLONE_NEWIPC)) {
		ret = pr_errno(-errno, "pid %d: joining its ipc namespace", ipc_pid);
		goto out;
	}
	if (shmctl(0, SHM_INFO, (struct shmid_ds *)&info) < 0)
		ret = pr_errno(-errno, "pid %d: SHM_INFO in its ipc namespace", ipc_pid);
	else
		*n = info.used_ids;
	if (setns(self, CLONE_NEWIPC))
		ret = pr_errno(-errno, "back into our own ipc namespace");
out:
	if (self >= 0)
		close(self);
	if (theirs >= 0)
		close(theirs);
	return ret;
}

int eng__sysv_collect(struct eng__shm_table *t, pid_t ipc_pid)
{
	struct seg_msg m;
	int sk[2], ret, st, fd, n = 0;
	pid_t c;

	ret = count_segments(ipc_pid, &n);
	if (ret || !n)
		return ret;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sk))
		return pr_errno(-errno, "socketpair");
	c = fork();
	if (c == 0) {
		close(sk[0]);
		helper_main(ipc_pid, sk[1]);
	}
	close(sk[1]);
	if (c < 0) {
		close(sk[0]);
		return pr_errno(-errno, "fork");
	}
	for (;;) {
		ret = recv_seg(sk[0], &m, &fd);
		if (ret) {
			ret = pr_errno(ret, "pid %d: listing the System V segments of its ipc namespace: the helper "
				       "ended early", ipc_pid);
			break;
		}
		if (m.err) {
			m.what[sizeof(m.what) - 1] = 0;
			ret = m.err == EOPNOTSUPP
				      ? eng__refuse("pid %d: System V segment %d of its ipc namespace: %s", ipc_pid,
						    m.id, m.what)
				      : pr_errno(-m.err, "pid %d: System V segment %d of its ipc namespace: %s",
						 ipc_pid, m.id, m.what);
			break;
		}
		if (m.id < 0)
			break;
		if (fd < 0) {
			ret = pr_errno(-EPROTO, "System V segment %d: the helper sent no fd", m.id);
			break;
		}
		ret = add_seg(t, &m, fd);
		close(fd);
		if (ret)
			break;
	}
	close(sk[0]);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	return ret;
}

int eng__sysv_attached(struct eng__shm_table *t, pid_t pid, struct eng__vma_dump *d)
{
	const struct eng__shm_obj *o = NULL;
	struct stat st;

	if (fstat(d->file_fd, &st))
		return pr_errno(-errno, "pid %d: fstat of its System V attachment at %#lx", pid,
				(unsigned long)d->v.start);
	for (int i = 0; i < t->n && !o; i++)
		if (t->o[i].kind == IMG_SHMEM_KIND__SHM_SYSV && t->o[i].dev == (uint64_t)st.st_dev &&
		    t->o[i].ino == (uint64_t)st.st_ino)
			o = &t->o[i];
	if (!o)
		return eng__refuse("pid %d: mapping %#lx-%#lx: System V shared memory segment %lu of hacd's ipc "
				   "namespace (or another than its tree's): not supported (segment ids are "
				   "host-wide; launch the service with `hactl run --pidns`)", pid,
				   (unsigned long)d->v.start, (unsigned long)d->v.end, (unsigned long)st.st_ino);
	if (d->v.pgoff || d->v.end - d->v.start != ((o->size + PG - 1) & ~(PG - 1)))
		return eng__refuse("pid %d: mapping %#lx-%#lx: part of System V segment %d (%llu bytes): an "
				   "attachment partly unmapped or split by mprotect is not supported yet", pid,
				   (unsigned long)d->v.start, (unsigned long)d->v.end, o->sysv.id,
				   (unsigned long long)o->size);
	d->shm = o->id;
	return 0;
}

int eng__sysv_refuse_shared_ns(const struct eng__mem_dump *md)
{
	for (int i = 0; i < md->nr_vmas; i++) {
		const struct eng__vma_dump *d = &md->vmas[i];

		if (d->shm_kind == IMG_SHMEM_KIND__SHM_SYSV)
			return eng__refuse("pid %d: mapping %#lx-%#lx (%s): System V shared memory of hacd's own "
					   "ipc namespace is not supported (segment ids are host-wide; launch the "
					   "service with `hactl run --pidns`)", md->pid, (unsigned long)d->v.start,
					   (unsigned long)d->v.end, d->v.path ? d->v.path : "?");
	}
	return 0;
}

/* ---- restore ---------------------------------------------------------------------- */

static int set_next_id(int id)
{
	char buf[16];
	int fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC), n, ret = 0;

	if (fd < 0)
		return pr_errno(-errno, "/proc/sys/kernel/shm_next_id");
	n = snprintf(buf, sizeof(buf), "%d", id);
	if (write(fd, buf, n) != n)
		ret = pr_errno(-errno, "writing %d to /proc/sys/kernel/shm_next_id", id);
	close(fd);
	return ret;
}

int rst__sysv_create(struct rst_ctx *c, const ImgShmem *o)
{
	size_t len = (o->size + PG - 1) & ~(PG - 1);
	struct shmid_ds ds;
	char path[96];
	int id, fd = -1, ret;
	char *a;

	/* Only a new ipc namespace has every id free (see above). */
	if (!c->inv->pidns)
		return pr_errno(-EINVAL, "shmem.img: System V segment %u: the tree did not live in namespaces "
				"of its own (inventory.img has no pidns)", o->sysv_id);
	ret = set_next_id(o->sysv_id);
	if (ret)
		return ret;
	id = shmget(o->sysv_key ? (key_t)o->sysv_key : IPC_PRIVATE, o->size, IPC_CREAT | IPC_EXCL | (o->mode & 0777));
	if (id < 0)
		return pr_errno(-errno, "System V segment %u (key %#x): shmget of %llu bytes", o->sysv_id, o->sysv_key,
				(unsigned long long)o->size);
	if (id != (int)o->sysv_id) {
		shmctl(id, IPC_RMID, NULL);
		return pr_errno(-EEXIST, "System V segment %u: shmget gave id %d", o->sysv_id, id);
	}
	memset(&ds, 0, sizeof(ds));
	ds.shm_perm.uid = o->uid;
	ds.shm_perm.gid = o->gid;
	ds.shm_perm.mode = o->mode & 0777;
	if (shmctl(id, IPC_SET, &ds))
		return pr_errno(-errno, "System V segment %d: IPC_SET uid %u gid %u mode %#o", id, o->uid, o->gid,
				o->mode & 0777);
	if ((o->mode & SHM_LOCKED) && shmctl(id, SHM_LOCK, NULL))
		return pr_errno(-errno, "System V segment %d: SHM_LOCK", id);
	a = shmat(id, NULL, 0);
	if (a == (void *)-1)
		return pr_errno(-errno, "System V segment %d: shmat", id);
	ret = rst__shm_fill(c, o, -1, a);
	/* An fd on it like every object's, which rst-tree.c keeps alongside the others. */
	snprintf(path, sizeof(path), "/proc/self/map_files/%lx-%lx", (unsigned long)a, (unsigned long)(a + len));
	if (!ret && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		ret = pr_errno(-errno, "System V segment %d: %s", id, path);
	/* Removed while attached: our attachment keeps it until every process has its own. */
	if (!ret && (o->mode & SHM_DEST)) {
		if (shmctl(id, IPC_RMID, NULL))
			ret = pr_errno(-errno, "System V segment %d: IPC_RMID", id);
		return ret ? ret : fd;
	}
	shmdt(a);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

int rst__sysv_attach(const ImgShmem *o, const ImgVma *v, unsigned long slot)
{
	int flags = SHM_REMAP | (v->prot & PROT_WRITE ? 0 : SHM_RDONLY) | (v->prot & PROT_EXEC ? SHM_EXEC : 0);
	int prot = PROT_READ | (flags & SHM_RDONLY ? 0 : PROT_WRITE) | (flags & SHM_EXEC ? PROT_EXEC : 0);
	void *a = shmat(o->sysv_id, (void *)slot, flags);

	if (a == (void *)-1)
		return pr_errno(-errno, "attaching System V segment %u for mapping %#lx-%#lx", o->sysv_id,
				(unsigned long)v->start, (unsigned long)v->end);
	/* mprotect after shmat (PROT_NONE, or write without read). */
	if ((int)v->prot != prot && mprotect(a, v->end - v->start, v->prot))
		return pr_errno(-errno, "mprotect of System V attachment %#lx", (unsigned long)v->start);
	return 0;
}
