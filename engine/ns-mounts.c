/*
 * Mounts a service made inside the mount namespace our init gave it: refused at dump,
 * since they are not checkpointed and a restore would silently come back without them.
 *
 * DESIGN
 * Our init's mount namespace (eng__ns_mount_proc) is a copy of hacd's taken at the
 * clone, plus one proc mount over /proc. Everything mounted after that proc mount is
 * the service's. Mount ids of /proc/PID/mountinfo are reused and say nothing about
 * order; the 64-bit unique ids of listmount(2)/statmount(2) (Linux 6.8, another
 * namespace's by NS_GET_MNTNS_ID since 6.11) only grow. So: find our proc mount, and
 * refuse any mount whose unique id is higher, naming it. Ours is the one whose source
 * is "hacd-proc" (eng__ns_mount_proc): hacd's own namespace may hold stacked proc mounts
 * too (`unshare --mount-proc`), copied into the service's with ids in tree order, so
 * the position alone does not tell ours. A namespace made before the source was set
 * (or a kernel whose statmount lacks sb_source, before 6.11): the topmost proc mount at
 * /proc, which is ours unless the service stacked one itself.
 *
 * Comparing mount tables instead would refuse falsely whenever the host's mounts change
 * after the launch (`ip netns add` and `del` do), and host changes never reach the
 * service's namespace (private propagation).
 *
 * Not seen: mounts the service unmounted (a restore gives them back as they were at the
 * launch, which is what the service saw before it unmounted them).
 * A kernel without listmount is not checked, with a warning that says what is at stake.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"

/* Linux's uapi (linux/mount.h, linux/nsfs.h), newer than Debian 12's headers. */
#ifndef __NR_statmount
#define __NR_statmount 457
#endif
#ifndef __NR_listmount
#define __NR_listmount 458
#endif
#define HA_NS_GET_MNTNS_ID _IOR(0xb7, 0x5, uint64_t)
#define HA_LSMT_ROOT 0xffffffffffffffffULL
#define HA_MNT_ID_REQ_SIZE_VER1 32
#define HA_STATMOUNT_MNT_BASIC 0x2
#define HA_STATMOUNT_MNT_POINT 0x10
#define HA_STATMOUNT_FS_TYPE 0x20
#define HA_STATMOUNT_SB_SOURCE 0x200

struct ha_mnt_id_req {
	uint32_t size, spare;
	uint64_t mnt_id, param, mnt_ns_id;
};

struct ha_statmount {
	uint32_t size, mnt_opts;
	uint64_t mask;
	uint32_t sb_dev_major, sb_dev_minor;
	uint64_t sb_magic;
	uint32_t sb_flags, fs_type;
	uint64_t mnt_id, mnt_parent_id;
	uint32_t mnt_id_old, mnt_parent_id_old;
	uint64_t mnt_attr, mnt_propagation, mnt_peer_group, mnt_master, propagate_from;
	uint32_t mnt_root, mnt_point;
	uint64_t mnt_ns_id;
	uint32_t fs_subtype, sb_source;
	uint64_t spare2[48];
	char str[];
};

struct mnt {
	uint64_t id, parent;
	char point[256], type[32], source[32];
};

#define MNT_MAX 4096
#define STATMOUNT_BUF 8192

static int stat_one(uint64_t ns_id, uint64_t id, struct ha_statmount *sm, struct mnt *m)
{
	struct ha_mnt_id_req q = {
		.size = HA_MNT_ID_REQ_SIZE_VER1, .mnt_id = id, .mnt_ns_id = ns_id,
		.param = HA_STATMOUNT_MNT_BASIC | HA_STATMOUNT_MNT_POINT | HA_STATMOUNT_FS_TYPE |
			 HA_STATMOUNT_SB_SOURCE,
	};
	const uint64_t need = HA_STATMOUNT_MNT_BASIC | HA_STATMOUNT_MNT_POINT | HA_STATMOUNT_FS_TYPE;

	if (syscall(__NR_statmount, &q, sm, STATMOUNT_BUF, 0))
		return -errno;
	/* Strings are offsets into str[]; the kernel NUL-terminates them within size. */
	if ((sm->mask & need) != need || sm->size > STATMOUNT_BUF ||
	    sm->mnt_point >= sm->size - sizeof(*sm) || sm->fs_type >= sm->size - sizeof(*sm))
		return -EPROTO;
	m->id = sm->mnt_id;
	m->parent = sm->mnt_parent_id;
	snprintf(m->point, sizeof(m->point), "%s", sm->str + sm->mnt_point);
	snprintf(m->type, sizeof(m->type), "%s", sm->str + sm->fs_type);
	m->source[0] = 0;
	if ((sm->mask & HA_STATMOUNT_SB_SOURCE) && sm->sb_source < sm->size - sizeof(*sm))
		snprintf(m->source, sizeof(m->source), "%s", sm->str + sm->sb_source);
	return 0;
}

int eng__ns_check_mounts(pid_t init)
{
	struct ha_mnt_id_req req = { .size = HA_MNT_ID_REQ_SIZE_VER1, .mnt_id = HA_LSMT_ROOT };
	struct ha_statmount *sm = NULL;
	uint64_t *ids = NULL, ours = 0;
	struct mnt *m = NULL;
	char path[64];
	long n;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/ns/mnt", init);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pr_errno(-errno, "init %d: %s", init, path);
	if (ioctl(fd, HA_NS_GET_MNTNS_ID, &req.mnt_ns_id)) {
		ret = -errno;
		close(fd);
		if (ret == -ENOTTY || ret == -EINVAL) {
			pr_warn("init %d: this kernel cannot list another namespace's mounts "
				"(NS_GET_MNTNS_ID, Linux 6.11): mounts the service made itself are "
				"not checked, and a restore would come back without them", init);
			return 0;
		}
		return pr_errno(ret, "init %d: NS_GET_MNTNS_ID", init);
	}
	close(fd);
	ids = calloc(MNT_MAX, sizeof(*ids));
	m = calloc(MNT_MAX, sizeof(*m));
	sm = malloc(STATMOUNT_BUF);
	if (!ids || !m || !sm) {
		ret = -ENOMEM;
		goto out;
	}
	n = syscall(__NR_listmount, &req, ids, MNT_MAX, 0);
	if (n < 0) {
		ret = -errno;
		if (ret == -ENOSYS)
			pr_warn("init %d: no listmount(2) (Linux 6.8): mounts the service made "
				"itself are not checked, and a restore would come back without them",
				init);
		else
			ret = pr_errno(ret, "init %d: listmount of its mount namespace", init);
		ret = ret == -ENOSYS ? 0 : ret;
		goto out;
	}
	if (n == MNT_MAX) {
		ret = eng__refuse("init %d: its mount namespace holds %d mounts or more: too many to "
				  "check for mounts the service made", init, MNT_MAX);
		goto out;
	}
	for (long i = 0; i < n; i++) {
		ret = stat_one(req.mnt_ns_id, ids[i], sm, &m[i]);
		/* Unmounted between the two calls: not there any more, not ours to judge. */
		if (ret == -ENOENT) {
			m[i].id = 0;
			ret = 0;
		}
		if (ret) {
			ret = pr_errno(ret, "init %d: statmount of mount %llu", init,
				       (unsigned long long)ids[i]);
			goto out;
		}
	}
	for (long i = 0; i < n; i++)
		if (m[i].id && !strcmp(m[i].point, "/proc") && !strcmp(m[i].type, "proc") &&
		    !strcmp(m[i].source, ENG_NS_PROC_SOURCE) && (!ours || m[i].id < ours))
			ours = m[i].id;
	if (!ours) {
		for (long i = 0; i < n; i++)
			if (m[i].id && !strcmp(m[i].point, "/proc") && !strcmp(m[i].type, "proc") &&
			    m[i].id > ours)
				ours = m[i].id;
		if (ours)
			pr_info("init %d: no /proc of source %s (an older hacd made the namespace): "
				"the topmost proc mount is taken for ours", init, ENG_NS_PROC_SOURCE);
	}
	if (!ours) {
		ret = eng__refuse("init %d: its mount namespace has no /proc of ours over the host's: "
				  "not the namespace hacd's init makes", init);
		goto out;
	}
	for (long i = 0; i < n; i++)
		if (m[i].id > ours) {
			ret = eng__refuse("init %d: %s (%s) was mounted inside the service's mount namespace: "
					  "mounts a service makes are not checkpointed", init,
					  m[i].point[0] ? m[i].point : "?", m[i].type);
			goto out;
		}
out:
	free(ids);
	free(m);
	free(sm);
	return ret;
}
