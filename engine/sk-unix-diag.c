/*
 * Unix sockets: what sock_diag says of each one, and the check made while the tree
 * still runs.
 *
 * DESIGN
 * sock_diag (NETLINK_SOCK_DIAG) answers one exact request per socket inode with its
 * name, the peer's inode, the clients waiting in a listener's queue (UNIX_DIAG_ICONS:
 * the *clients'* inodes), queue lengths and the shutdown bits; only for sockets of our
 * own network namespace (ENOENT otherwise). Before anything is stopped, every stream or
 * seqpacket socket of the tree is asked for its peer, and a peer that no process of the
 * tree holds refuses the dump there and then: stopping a tree only to refuse it costs
 * the service a pause for nothing. eng__unix_resolve (sk-unix.c) checks again, exactly,
 * once the tree is frozen.
 */
#include <dirent.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sk-unix.h"

/* ---- sock_diag ---------------------------------------------------------------------- */

static void udiag_attr(struct udiag *u, const struct nlattr *a, size_t len)
{
	const void *v = (const char *)a + NLA_HDRLEN;

	switch (a->nla_type) {
	case UNIX_DIAG_NAME:
		u->name_len = len < sizeof(u->name) ? len : sizeof(u->name);
		memcpy(u->name, v, u->name_len);
		break;
	case UNIX_DIAG_VFS:
		if (len >= sizeof(struct unix_diag_vfs)) {
			const struct unix_diag_vfs *vfs = v;

			u->has_vfs = true;
			u->vfs_ino = vfs->udiag_vfs_ino;
			u->vfs_dev = vfs->udiag_vfs_dev;
		}
		break;
	case UNIX_DIAG_PEER:
		if (len >= 4)
			memcpy(&u->peer, v, 4);
		break;
	case UNIX_DIAG_ICONS:
		free(u->icons);
		u->icons = malloc(len + 4);
		if (u->icons) {
			memcpy(u->icons, v, len);
			u->nr_icons = len / 4;
		}
		break;
	case UNIX_DIAG_RQLEN:
		if (len >= sizeof(struct unix_diag_rqlen)) {
			const struct unix_diag_rqlen *rq = v;

			u->rq = rq->udiag_rqueue;
			u->wq = rq->udiag_wqueue;
		}
		break;
	case UNIX_DIAG_SHUTDOWN:
		if (len >= 1)
			u->shutdown = *(const uint8_t *)v;
		break;
	}
}

int eng__udiag_get(pid_t pid, int fd, uint32_t ino, struct udiag *u)
{
	struct {
		struct nlmsghdr h;
		struct unix_diag_req r;
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
			 .nlmsg_flags = NLM_F_REQUEST, .nlmsg_seq = 1 },
		  .r = { .sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_ino = ino,
			 .udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER |
				       UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN,
			 .udiag_cookie = { ~0u, ~0u } } };
	static _Alignas(struct nlmsghdr) char buf[1 << 16];
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	const struct nlmsghdr *h = (const void *)buf;
	int nl, ret = 0;
	ssize_t n;

	memset(u, 0, sizeof(*u));
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return pr_errno(-errno, "pid %d: fd %d: NETLINK_SOCK_DIAG socket", pid, fd);
	if (sendto(nl, &req, sizeof(req), 0, (void *)&sa, sizeof(sa)) != sizeof(req)) {
		ret = pr_errno(-errno, "pid %d: fd %d: sock_diag request for inode %u", pid, fd, ino);
		goto out;
	}
	n = recv(nl, buf, sizeof(buf), 0);
	if (n < 0) {
		ret = pr_errno(-errno, "pid %d: fd %d: sock_diag answer for inode %u", pid, fd, ino);
		goto out;
	}
	if (!NLMSG_OK(h, (size_t)n)) {
		ret = pr_errno(-EPROTO, "pid %d: fd %d: sock_diag: short answer for inode %u", pid, fd, ino);
		goto out;
	}
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);

		ret = e->error ? e->error : -EPROTO;
		/* ENOENT: not a socket of our net namespace, or gone. */
		pr_err("pid %d: fd %d: sock_diag of unix socket inode %u: %s", pid, fd, ino, strerror(-ret));
		goto out;
	}
	if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg))) {
		ret = pr_errno(-EPROTO, "pid %d: fd %d: sock_diag: unexpected answer type %u", pid, fd, h->nlmsg_type);
		goto out;
	}
	{
		const struct unix_diag_msg *m = NLMSG_DATA(h);
		const char *p = (const char *)m + NLMSG_ALIGN(sizeof(*m));
		const char *end = (const char *)h + h->nlmsg_len;

		u->ino = m->udiag_ino;
		u->type = m->udiag_type;
		u->state = m->udiag_state;
		while (p + NLA_HDRLEN <= end) {
			const struct nlattr *a = (const void *)p;

			if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end)
				break;
			udiag_attr(u, a, a->nla_len - NLA_HDRLEN);
			p += NLA_ALIGN(a->nla_len);
		}
	}
out:
	close(nl);
	return ret;
}

void eng__unix_name_str(const ProtobufCBinaryData *n, char *out, size_t size)
{
	size_t k = 0;

	if (!n->len) {
		snprintf(out, size, "unnamed");
		return;
	}
	for (size_t i = 0; i < n->len && k + 2 < size; i++)
		out[k++] = n->data[i] ? (char)n->data[i] : '@';
	out[k] = 0;
}

/* ---- before seizing ---------------------------------------------------------------- */

struct ino_fd {
	uint32_t ino;
	pid_t pid;
	int fd;
};

/* The socket inodes of pid's fds ("socket:[N]" links), appended to *v. A process or
 * fd gone meanwhile is skipped: the frozen pass decides. */
static int list_socks(pid_t pid, struct ino_fd **v, int *n)
{
	char path[300], link[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned long ino;
		ssize_t len;
		void *p;

		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, de->d_name);
		len = readlink(path, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = 0;
		if (sscanf(link, "socket:[%lu]", &ino) != 1)
			continue;
		p = realloc(*v, (*n + 1) * sizeof(**v));
		if (!p) {
			closedir(d);
			return -ENOMEM;
		}
		*v = p;
		(*v)[(*n)++] = (struct ino_fd){ ino, pid, atoi(de->d_name) };
	}
	closedir(d);
	return 0;
}

static bool has_ino(const struct ino_fd *v, int n, uint32_t ino)
{
	for (int i = 0; i < n; i++)
		if (v[i].ino == ino)
			return true;
	return false;
}

/*
 * While the tree runs: a stream or seqpacket socket connected to one no process of
 * the tree holds is refused now, before anything is stopped (eng__unix_resolve checks
 * again, exactly, once the tree is frozen).
 */
int eng__unix_precheck(const struct eng__tree *t)
{
	struct ino_fd *v = NULL;
	int n = 0, ret = 0;

	for (int i = 0; i < t->n && !ret; i++)
		if (!t->p[i].zombie)
			ret = list_socks(t->p[i].pid, &v, &n);
	for (int i = 0; i < n && !ret; i++) {
		struct udiag u, pu;
		char name[256];
		int r;

		eng__log_quiet(true);	/* not a unix socket, or closed meanwhile */
		r = eng__udiag_get(v[i].pid, v[i].fd, v[i].ino, &u);
		eng__log_quiet(false);
		if (r)
			continue;
		free(u.icons);
		if (u.type == SOCK_DGRAM || !u.peer || has_ino(v, n, u.peer))
			continue;
		eng__log_quiet(true);
		r = eng__udiag_get(v[i].pid, v[i].fd, u.peer, &pu);
		eng__log_quiet(false);
		if (!r)
			free(pu.icons);
		if (r || !pu.name_len) {
			snprintf(name, sizeof(name), "unnamed");
		} else {
			ProtobufCBinaryData b = { pu.name_len, pu.name };

			while (b.len && b.data[0] && !b.data[b.len - 1])
				b.len--;
			eng__unix_name_str(&b, name, sizeof(name));
		}
		ret = eng__refuse("pid %d: fd %d: unix %s socket %u is connected to socket %u (%s) outside the "
				  "dumped tree: its peer cannot be restored", v[i].pid, v[i].fd, eng__unix_type_name(u.type),
				  u.ino, u.peer, name);
	}
	free(v);
	return ret;
}
