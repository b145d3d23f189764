/*
 * Unix sockets: stream, datagram and seqpacket; socketpairs within a process and
 * across the tree, bound (path and abstract names), listening with connections not
 * accepted yet, connected, with the data queued in them, shut down.
 *
 * DESIGN
 * Dump. sock_diag (NETLINK_SOCK_DIAG, one exact request per socket inode) tells the
 * name, the peer's inode, the clients waiting in a listener's queue (UNIX_DIAG_ICONS:
 * the *clients'* inodes), queue lengths and the shutdown bits. The receive queue is
 * copied without being consumed: on the process's own socket (pidfd_getfd) with
 * SO_PEEK_OFF set to 0, each MSG_PEEK moves the offset on instead of re-reading the
 * head; datagram kinds peek one message at a time, so boundaries and each sender's
 * name are kept. The process's own SO_PEEK_OFF is put back. Data a socket sent sits in
 * its peer's queue, so every socket carries only its own queue.
 * Refused: fds in flight (SCM_RIGHTS: peeking installs them in *our* table, we close
 * them and say so), a peer outside the dumped tree (eng__unix_resolve, once every
 * process is collected) except a datagram socket connected to a named one, which is
 * connected again by name at restore; a client whose connection waits in a listener
 * with bytes already sent (they sit in the kernel's embryo socket, which only accept()
 * reaches, and accept would take the connection from the process); relative path names.
 * A waiting connection from a client outside the tree is dropped with a warning (its
 * peer sees a reset, as it would when the service died).
 *
 * Restore. Every unix socket of the checkpoint is made by the root before it forks
 * (rst-files.c treats them like pipes), in stages, because sockets refer to each
 * other:
 *   1 create   pairs whose two ends are in the image: socketpair(); a stream whose
 *              peer was closed, and an unnamed datagram socket with queued data: a
 *              socketpair with a spare end that fills it and is then closed
 *   2 options  SO_PASSCRED, buffer sizes
 *   3 bind     names of listening, unconnected and datagram sockets (a stale path is
 *              unlinked only if it is a socket); listen
 *   4 fill     queues, from the peer end, the spare, the restored socket bound to the
 *              sender's name, or an unnamed temporary socket
 *   5 connect  waiting clients to their listener (in queue order: accept() returns
 *              them as before), datagram sockets to their peer's name
 *   6 finish   spares closed, shutdown bits, SO_PEEK_OFF
 * Connected stream ends get no name back (an accepted socket reports its listener's
 * name, which is bound once, by the listener).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

#ifndef SO_PEEK_OFF
#define SO_PEEK_OFF 42
#endif
#define PEEK_BUF (256u << 10)
#define MAX_FDS_PEEK 253	/* SCM_MAX_FD */

/* ---- sock_diag ---------------------------------------------------------------------- */

struct udiag {
	uint32_t ino, peer;
	int type, state;
	uint8_t name[sizeof(((struct sockaddr_un *)0)->sun_path)];
	size_t name_len;
	bool has_vfs;
	uint32_t vfs_ino, vfs_dev;
	uint32_t *icons;
	size_t nr_icons;
	uint32_t rq, wq;
	uint8_t shutdown;
};

static const char *type_name(int t)
{
	return t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "datagram" : t == SOCK_SEQPACKET ? "seqpacket" : "?";
}

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

/* Everything sock_diag knows of the unix socket with inode ino (in our net namespace). */
static int udiag_get(pid_t pid, int fd, uint32_t ino, struct udiag *u)
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

/* ---- dump ------------------------------------------------------------------------- */

int eng__unix_check(pid_t pid, const struct eng__fd_probe *p)
{
	int type = p->sk_type;

	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)
		return eng__refuse("pid %d: fd %d: unix socket of type %d (%s) is not supported yet", pid, p->fd,
				   type, p->link);
	return 0;
}

static int grow(ProtobufCBinaryData *d, size_t *cap, size_t more)
{
	if (d->len + more > *cap) {
		size_t n = (d->len + more) * 2;
		void *p = realloc(d->data, n);

		if (!p)
			return -ENOMEM;
		d->data = p;
		*cap = n;
	}
	return 0;
}

/* Any fds in flight: close what the peek gave us and refuse. */
static int check_cmsgs(pid_t pid, int fd, const ImgUnixSk *m, struct msghdr *mh)
{
	bool fds = mh->msg_flags & MSG_CTRUNC;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int *v = (int *)CMSG_DATA(c);
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < n; i++)
				close(v[i]);
			fds = true;
		}
	if (fds)
		return eng__refuse("pid %d: fd %d: unix %s socket (inode %lu) has file descriptors in flight "
				   "(SCM_RIGHTS) in its queue: not supported yet", pid, fd, type_name(m->type),
				   (unsigned long)m->ino);
	return 0;
}

static int add_msg(ImgUnixSk *m, uint32_t len, const struct sockaddr_un *from, socklen_t flen)
{
	size_t nl = flen > offsetof(struct sockaddr_un, sun_path) ? flen - offsetof(struct sockaddr_un, sun_path) : 0;
	uint32_t *l = realloc(m->msg_len, (m->n_msg_len + 1) * sizeof(*l));
	ProtobufCBinaryData *f;

	if (!l)
		return -ENOMEM;
	m->msg_len = l;
	l[m->n_msg_len++] = len;
	f = realloc(m->msg_from, (m->n_msg_from + 1) * sizeof(*f));
	if (!f)
		return -ENOMEM;
	m->msg_from = f;
	f[m->n_msg_from].len = 0;
	f[m->n_msg_from].data = NULL;
	if (nl) {
		/* A path's trailing NUL is not part of the name. */
		while (nl && from->sun_path[0] && !from->sun_path[nl - 1])
			nl--;
		f[m->n_msg_from].data = malloc(nl);
		if (!f[m->n_msg_from].data)
			return -ENOMEM;
		memcpy(f[m->n_msg_from].data, from->sun_path, nl);
		f[m->n_msg_from].len = nl;
	}
	m->n_msg_from++;
	return 0;
}

/* The receive queue, peeked from offset 0 on: one message per call for datagram kinds. */
static int peek_loop(pid_t pid, int fd, int sk, ImgUnixSk *m, const struct udiag *u, uint8_t *buf)
{
	static _Alignas(struct cmsghdr) char ctl[CMSG_SPACE(MAX_FDS_PEEK * sizeof(int)) +
						 CMSG_SPACE(sizeof(struct ucred))];
	bool dgram = m->type != SOCK_STREAM;
	size_t cap = 0;
	int ret;

	for (;;) {
		struct sockaddr_un from;
		struct iovec iov = { buf, PEEK_BUF };
		struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
				     .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		ssize_t n = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (dgram ? MSG_TRUNC : 0));
		size_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0)
			return pr_errno(-errno, "pid %d: fd %d: peeking the queue of unix socket %lu", pid, fd,
					(unsigned long)m->ino);
		ret = check_cmsgs(pid, fd, m, &mh);
		if (ret)
			return ret;
		got = (size_t)n < PEEK_BUF ? (size_t)n : PEEK_BUF;
		if (n == 0 && (!dgram || (m->type == SOCK_SEQPACKET && m->data.len >= u->rq &&
					  (u->shutdown & 1))))
			return 0;	/* end of stream (a seqpacket's EOF reads as an empty message) */
		if (dgram && (size_t)n > PEEK_BUF)
			return eng__refuse("pid %d: fd %d: unix %s socket %lu: a queued message of %zd bytes "
					   "(more than %u) is not supported yet", pid, fd, type_name(m->type),
					   (unsigned long)m->ino, n, PEEK_BUF);
		ret = grow(&m->data, &cap, got);
		if (!ret && dgram)
			ret = add_msg(m, got, &from, mh.msg_namelen);
		if (ret)
			return ret;
		memcpy(m->data.data + m->data.len, buf, got);
		m->data.len += got;
		if (m->data.len > (48u << 20))
			return eng__refuse("pid %d: fd %d: unix socket %lu: more than 48 MiB queued", pid, fd,
					   (unsigned long)m->ino);
	}
}

static int peek_queue(pid_t pid, int fd, int sk, ImgUnixSk *m, const struct udiag *u)
{
	socklen_t len = sizeof(int);
	int off = -1, zero = 0, ret;
	uint8_t *buf;

	if (getsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &off, &len))
		return pr_errno(-errno, "pid %d: fd %d: SO_PEEK_OFF", pid, fd);
	m->has_peek_off = 1;
	m->peek_off = off;
	buf = malloc(PEEK_BUF);
	if (!buf)
		return -ENOMEM;
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof(zero)))
		ret = pr_errno(-errno, "pid %d: fd %d: SO_PEEK_OFF 0", pid, fd);
	else
		ret = peek_loop(pid, fd, sk, m, u, buf);
	/* The process's own offset back, whatever happened. */
	if (setsockopt(sk, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)) && !ret)
		ret = pr_errno(-errno, "pid %d: fd %d: SO_PEEK_OFF back to %d", pid, fd, off);
	free(buf);
	if (!ret && m->data.len)
		m->has_data = 1;
	return ret;
}

static int set_name(pid_t pid, int fd, ImgUnixSk *m, const struct udiag *u)
{
	size_t n = u->name_len;
	struct stat st;
	char path[sizeof(u->name) + 1];

	if (!n)
		return 0;
	if (u->name[0]) {
		while (n && !u->name[n - 1])
			n--;
		if (u->name[0] != '/')
			return eng__refuse("pid %d: fd %d: unix socket bound to the relative path %.*s: "
					   "not supported yet", pid, fd, (int)n, (const char *)u->name);
		memcpy(path, u->name, n);
		path[n] = 0;
		/* The socket file: the name still leads to the inode bound, or it is gone. */
		if (u->has_vfs && !lstat(path, &st) && st.st_ino == u->vfs_ino && S_ISSOCK(st.st_mode)) {
			m->has_file_mode = m->has_file_uid = m->has_file_gid = 1;
			m->file_mode = st.st_mode & 07777;
			m->file_uid = st.st_uid;
			m->file_gid = st.st_gid;
		} else if (m->state != TCP_ESTABLISHED) {
			m->has_name_gone = 1;
			m->name_gone = true;
		}
	}
	m->name.data = malloc(n);
	if (!m->name.data)
		return -ENOMEM;
	memcpy(m->name.data, u->name, n);
	m->name.len = n;
	m->has_name = 1;
	return 0;
}

static int sockopt_int(int sk, int name, int *v)
{
	socklen_t len = sizeof(*v);

	return getsockopt(sk, SOL_SOCKET, name, v, &len) ? -errno : 0;
}

static int dump_sk(pid_t pid, const struct eng__fd_probe *p, int sk, struct eng__file_dump *f)
{
	ImgUnixSk *m = f->usk;
	struct udiag u;
	int ret, v;

	ret = udiag_get(pid, p->fd, p->st.st_ino, &u);
	if (ret)
		return ret;
	m->has_ino = m->has_type = m->has_state = m->has_peer = 1;
	m->ino = u.ino;
	m->type = u.type;
	m->state = u.state;
	m->peer = u.peer;
	f->usk_wqueue = u.wq;
	if (u.state != TCP_LISTEN && u.state != TCP_ESTABLISHED && u.state != TCP_CLOSE) {
		ret = eng__refuse("pid %d: fd %d: unix %s socket %u in state %d (connecting): not supported yet",
				  pid, p->fd, type_name(u.type), u.ino, u.state);
		goto out;
	}
	ret = set_name(pid, p->fd, m, &u);
	if (ret)
		goto out;
	m->has_shut_rd = m->has_shut_wr = 1;
	m->shut_rd = u.shutdown & 1;	/* RCV_SHUTDOWN */
	m->shut_wr = u.shutdown & 2;	/* SEND_SHUTDOWN */
	if (!sockopt_int(sk, SO_PASSCRED, &v))
		m->has_passcred = 1, m->passcred = v;
	if (!sockopt_int(sk, SO_RCVBUF, &v))
		m->has_rcvbuf = 1, m->rcvbuf = v;
	if (!sockopt_int(sk, SO_SNDBUF, &v))
		m->has_sndbuf = 1, m->sndbuf = v;
	if (u.state == TCP_LISTEN) {
		m->has_backlog = 1;
		m->backlog = u.wq;	/* a listener's wqueue is sk_max_ack_backlog */
		m->icons = calloc(u.nr_icons + 1, sizeof(*m->icons));
		if (!m->icons) {
			ret = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < u.nr_icons; i++)
			m->icons[i] = u.icons[i];
		m->n_icons = u.nr_icons;
	} else {
		ret = peek_queue(pid, p->fd, sk, m, &u);
	}
	if (!ret && u.peer) {
		/* Kept for eng__unix_resolve: a datagram peer outside the tree is connected
		 * again by name; any other is named in the refusal. */
		struct sockaddr_un sa;
		socklen_t len = sizeof(sa);

		if (!getpeername(sk, (void *)&sa, &len) && len > offsetof(struct sockaddr_un, sun_path)) {
			size_t n = len - offsetof(struct sockaddr_un, sun_path);

			while (n && sa.sun_path[0] && !sa.sun_path[n - 1])
				n--;
			m->peer_name.data = malloc(n);
			if (!m->peer_name.data) {
				ret = -ENOMEM;
				goto out;
			}
			memcpy(m->peer_name.data, sa.sun_path, n);
			m->peer_name.len = n;
		}
	}
	if (!ret)
		pr_debug("pid %d: fd %d: unix %s socket %u state %d peer %u, %zu bytes in %zu messages queued",
			 pid, p->fd, type_name(u.type), u.ino, u.state, u.peer, m->data.len, m->n_msg_len);
out:
	free(u.icons);
	return ret;
}

int eng__unix_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f)
{
	int sk, ret;

	f->usk = calloc(1, sizeof(*f->usk));
	if (!f->usk)
		return -ENOMEM;
	img_unix_sk__init(f->usk);
	sk = eng__fd_grab(pid, p->fd);
	if (sk < 0)
		return sk;
	ret = dump_sk(pid, p, sk, f);
	close(sk);
	return ret;
}

void eng__unix_free(ImgUnixSk *m)
{
	if (!m)
		return;
	free(m->name.data);
	free(m->data.data);
	free(m->msg_len);
	for (size_t i = 0; i < m->n_msg_from; i++)
		free(m->msg_from[i].data);
	free(m->msg_from);
	free(m->icons);
	free(m->peer_name.data);
	free(m);
}

/* ---- the tree's sockets together ---------------------------------------------------- */

struct usk_ref {
	pid_t pid;
	struct eng__file_dump *f;
};

static struct usk_ref *find_ino(struct usk_ref *v, int n, uint64_t ino)
{
	for (int i = 0; i < n; i++)
		if (v[i].f->usk->ino == ino)
			return &v[i];
	return NULL;
}

static void name_str(const ProtobufCBinaryData *n, char *out, size_t size)
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

/*
 * Listeners: each waiting client in the tree is marked with its listener (sock_diag
 * shows such a client's peer as 0: the embryo socket at the other end has no inode of
 * its own); a waiting client outside the tree cannot come back, it is dropped.
 */
static int mark_icons(struct usk_ref *v, int n, struct usk_ref *l)
{
	ImgUnixSk *m = l->f->usk;
	size_t k = 0;

	for (size_t i = 0; i < m->n_icons; i++) {
		struct usk_ref *cl = m->icons[i] ? find_ino(v, n, m->icons[i]) : NULL;

		if (!cl) {
			pr_warn("pid %d: fd %d: a connection from outside the tree (client inode %lu) waiting on "
				"unix socket %lu is dropped by the dump", l->pid, l->f->first_fd,
				(unsigned long)m->icons[i], (unsigned long)m->ino);
			continue;
		}
		if (cl->f->usk_wqueue)
			return eng__refuse("pid %d: fd %d: unix %s socket %lu sent data on a connection that "
					   "%lu has not accepted yet: not supported yet (only accept() reaches "
					   "those bytes)", cl->pid, cl->f->first_fd, type_name(cl->f->usk->type),
					   (unsigned long)cl->f->usk->ino, (unsigned long)m->ino);
		cl->f->usk->has_listener = 1;
		cl->f->usk->listener = m->ino;
		cl->f->usk->peer = 0;
		m->icons[k++] = m->icons[i];
	}
	m->n_icons = k;
	return 0;
}

static int resolve_peer(struct usk_ref *v, int n, struct usk_ref *x)
{
	ImgUnixSk *m = x->f->usk;
	struct usk_ref *p = find_ino(v, n, m->peer);
	char name[256];

	if (p) {
		if (p->f->usk->peer == m->ino || m->type != SOCK_DGRAM)
			return 0;
		if (p->f->usk->name.len)
			return 0;	/* connected by name: again at restore */
		return eng__refuse("pid %d: fd %d: unix datagram socket %lu is connected to unnamed socket %lu, "
				   "which is connected elsewhere: not supported yet", x->pid, x->f->first_fd,
				   (unsigned long)m->ino, (unsigned long)m->peer);
	}
	name_str(&m->peer_name, name, sizeof(name));
	if (m->type == SOCK_DGRAM && m->peer_name.len) {
		m->has_peer_name = 1;
		pr_info("pid %d: fd %d: unix datagram socket %lu is connected outside the tree, to %s: "
			"connected again by name at restore", x->pid, x->f->first_fd, (unsigned long)m->ino, name);
		return 0;
	}
	return eng__refuse("pid %d: fd %d: unix %s socket %lu is connected to socket %lu (%s) outside the "
			   "dumped tree: its peer cannot be restored", x->pid, x->f->first_fd, type_name(m->type),
			   (unsigned long)m->ino, (unsigned long)m->peer, name);
}

int eng__unix_resolve(struct eng__files_dump *const *all, int nr)
{
	struct usk_ref *v = NULL;
	int n = 0, ret = 0;

	for (int i = 0; i < nr; i++)
		for (int k = 0; k < all[i]->nr_files; k++) {
			struct eng__file_dump *f = &all[i]->files[k];
			void *p;

			if (f->kind != IMG_FILE_KIND__FILE_UNIX_SK || f->foreign || !f->usk)
				continue;
			p = realloc(v, (n + 1) * sizeof(*v));
			if (!p) {
				free(v);
				return -ENOMEM;
			}
			v = p;
			v[n].pid = all[i]->pid;
			v[n++].f = f;
		}
	for (int i = 0; i < n && !ret; i++)
		if (v[i].f->usk->state == TCP_LISTEN)
			ret = mark_icons(v, n, &v[i]);
	for (int i = 0; i < n && !ret; i++) {
		ImgUnixSk *m = v[i].f->usk;

		if (!ret && m->peer)
			ret = resolve_peer(v, n, &v[i]);
		/*
		 * Peer 0 and not shut down: connected to an embryo (a connection that a
		 * listener has not accepted) that is not one of ours, so a listener outside
		 * the tree. (A closed peer leaves both shutdown bits set.)
		 */
		if (!ret && m->type != SOCK_DGRAM && m->state == TCP_ESTABLISHED && !m->peer &&
		    !m->has_listener && !(m->shut_rd && m->shut_wr))
			ret = eng__refuse("pid %d: fd %d: unix %s socket %lu waits to be accepted by a listener "
					  "outside the dumped tree: its peer cannot be restored", v[i].pid,
					  v[i].f->first_fd, type_name(m->type), (unsigned long)m->ino);
		if (!m->has_peer_name) {
			free(m->peer_name.data);
			m->peer_name.data = NULL;
			m->peer_name.len = 0;
		}
	}
	free(v);
	return ret;
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
		r = udiag_get(v[i].pid, v[i].fd, v[i].ino, &u);
		eng__log_quiet(false);
		if (r)
			continue;
		free(u.icons);
		if (u.type == SOCK_DGRAM || !u.peer || has_ino(v, n, u.peer))
			continue;
		eng__log_quiet(true);
		r = udiag_get(v[i].pid, v[i].fd, u.peer, &pu);
		eng__log_quiet(false);
		if (!r)
			free(pu.icons);
		if (r || !pu.name_len) {
			snprintf(name, sizeof(name), "unnamed");
		} else {
			ProtobufCBinaryData b = { pu.name_len, pu.name };

			while (b.len && b.data[0] && !b.data[b.len - 1])
				b.len--;
			name_str(&b, name, sizeof(name));
		}
		ret = eng__refuse("pid %d: fd %d: unix %s socket %u is connected to socket %u (%s) outside the "
				  "dumped tree: its peer cannot be restored", v[i].pid, v[i].fd, type_name(u.type),
				  u.ino, u.peer, name);
	}
	free(v);
	return ret;
}

/* ---- restore ------------------------------------------------------------------------ */

struct rst_usk {
	const ImgFile *f;
	const ImgUnixSk *m;
	int fd, spare;
	bool paired;		/* made by one socketpair() with its peer */
};

static struct rst_usk *by_ino(struct rst_ctx *c, uint64_t ino)
{
	for (size_t i = 0; i < c->nr_usks; i++)
		if (c->usks[i].m->ino == ino)
			return &c->usks[i];
	return NULL;
}

static socklen_t addr_of(const ProtobufCBinaryData *name, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, name->data, name->len);
	/* A path is NUL-terminated (the image checks it fits with its NUL). */
	return offsetof(struct sockaddr_un, sun_path) + name->len + (name->data[0] ? 1 : 0);
}

static struct rst_usk *by_name(struct rst_ctx *c, const ProtobufCBinaryData *name, int type)
{
	for (size_t i = 0; i < c->nr_usks; i++) {
		const ImgUnixSk *m = c->usks[i].m;

		if (m->type == type && (type == SOCK_DGRAM || m->state != TCP_ESTABLISHED) && m->name.len == name->len &&
		    !memcmp(m->name.data, name->data, name->len) && !m->name_gone)
			return &c->usks[i];
	}
	return NULL;
}

/* A stream or seqpacket end whose peer was closed. (A datagram socket reads
 * ESTABLISHED as soon as another one connected to it: its state says nothing.) */
static bool dangling(const ImgUnixSk *m)
{
	return m->type != SOCK_DGRAM && m->state == TCP_ESTABLISHED && !m->peer && !m->has_listener;
}

static int create_one(struct rst_ctx *c, struct rst_usk *e)
{
	const ImgUnixSk *m = e->m;
	struct rst_usk *p = m->peer ? by_ino(c, m->peer) : NULL;
	/* Named datagram pairs too (SO_PASSCRED autobinds): bound after socketpair(). */
	bool pair = p && p->fd < 0 && p->m->peer == m->ino && p->m->type == m->type;
	int sv[2];

	if (pair || dangling(m) || (m->type == SOCK_DGRAM && m->n_msg_len && !m->name.len && !p)) {
		if (socketpair(AF_UNIX, m->type | SOCK_CLOEXEC, 0, sv))
			return pr_errno(-errno, "file %u: socketpair(%s)", e->f->id, type_name(m->type));
		e->fd = rst__fd_high(c, sv[0]);
		if (pair) {
			p->fd = rst__fd_high(c, sv[1]);
			e->paired = p->paired = true;
			return e->fd < 0 ? e->fd : p->fd < 0 ? p->fd : 0;
		}
		e->spare = rst__fd_high(c, sv[1]);
		return e->fd < 0 ? e->fd : e->spare < 0 ? e->spare : 0;
	}
	e->fd = socket(AF_UNIX, m->type | SOCK_CLOEXEC, 0);
	if (e->fd < 0)
		return pr_errno(-errno, "file %u: socket(AF_UNIX, %s)", e->f->id, type_name(m->type));
	e->fd = rst__fd_high(c, e->fd);
	return e->fd < 0 ? e->fd : 0;
}

/* Buffer sizes as getsockopt read them (the kernel doubles what is asked): only when
 * they differ from a new socket's, and past the sysctl limits (we are root). */
static int set_buf(const ImgFile *f, int sk, int opt, int force, int want, const char *what)
{
	int cur, v = want / 2;
	socklen_t len = sizeof(cur);

	if (getsockopt(sk, SOL_SOCKET, opt, &cur, &len) || cur == want)
		return 0;
	if (setsockopt(sk, SOL_SOCKET, force, &v, sizeof(v)) && setsockopt(sk, SOL_SOCKET, opt, &v, sizeof(v)))
		return pr_errno(-errno, "file %u: %s %d", f->id, what, want);
	return 0;
}

static int set_opts(struct rst_usk *e)
{
	const ImgUnixSk *m = e->m;
	int one = 1, ret = 0;

	if (m->passcred && setsockopt(e->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)))
		return pr_errno(-errno, "file %u: SO_PASSCRED", e->f->id);
	if (m->has_rcvbuf)
		ret = set_buf(e->f, e->fd, SO_RCVBUF, SO_RCVBUFFORCE, m->rcvbuf, "SO_RCVBUF");
	if (!ret && m->has_sndbuf)
		ret = set_buf(e->f, e->fd, SO_SNDBUF, SO_SNDBUFFORCE, m->sndbuf, "SO_SNDBUF");
	return ret;
}

/* Nobody holds the socket file's name: a stream connect says ECONNREFUSED (a live
 * stream listener accepts, a live socket of another type says EPROTOTYPE). */
static bool stale(const struct sockaddr_un *sa, socklen_t len)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;

	if (s < 0)
		return false;
	r = connect(s, (const void *)sa, len) ? errno : 0;
	close(s);
	return r == ECONNREFUSED;
}

static int bind_one(struct rst_usk *e)
{
	const ImgUnixSk *m = e->m;
	struct sockaddr_un sa;
	socklen_t len;
	struct stat st;

	if (!m->name.len || (m->type != SOCK_DGRAM && m->state == TCP_ESTABLISHED))
		return 0;
	len = addr_of(&m->name, &sa);
	if (sa.sun_path[0] && !lstat(sa.sun_path, &st)) {
		/* A stale socket file of the process we restore (it never unlinks itself when
		 * killed); anything else there is not ours to remove. */
		if (!S_ISSOCK(st.st_mode))
			return pr_errno(-EEXIST, "file %u: %s exists and is not a socket", e->f->id, sa.sun_path);
		if (!stale(&sa, len))
			return pr_errno(-EADDRINUSE, "file %u: %s belongs to a live socket (is the original still "
					"running?)", e->f->id, sa.sun_path);
		if (unlink(sa.sun_path) && errno != ENOENT)
			return pr_errno(-errno, "file %u: removing the stale socket %s", e->f->id, sa.sun_path);
	}
	if (bind(e->fd, (void *)&sa, len))
		return pr_errno(-errno, "file %u: binding unix socket to %s%s", e->f->id, sa.sun_path[0] ? "" : "@",
				sa.sun_path + !sa.sun_path[0]);
	if (sa.sun_path[0] && m->has_file_mode &&
	    (chown(sa.sun_path, m->file_uid, m->file_gid) || chmod(sa.sun_path, m->file_mode)))
		return pr_errno(-errno, "file %u: owner and mode of %s", e->f->id, sa.sun_path);
	if (m->state == TCP_LISTEN && listen(e->fd, m->backlog))
		return pr_errno(-errno, "file %u: listen on %s", e->f->id, sa.sun_path);
	return 0;
}

/* Send the whole of buf (a message, or a stretch of a stream) from `from`. */
static int send_all(const struct rst_usk *e, int from, const void *buf, size_t len, const struct sockaddr_un *to,
		    socklen_t tolen)
{
	size_t off = 0;

	do {
		ssize_t n = sendto(from, (const char *)buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL,
				   (const void *)to, tolen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pr_errno(-errno, "file %u: putting %zu queued bytes back into unix socket %lu",
					e->f->id, len, (unsigned long)e->m->ino);
		off += n;
	} while (off < len);
	return 0;
}

/* Room in the sender for all of it: the kernel charges the sender for what the
 * receiver has not read. The sender's own size is set again afterwards. */
static void widen(int sk, size_t bytes)
{
	int v = bytes * 2 + (1 << 20);

	if (v > 0)
		setsockopt(sk, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v));
}

static int fill_dgram(struct rst_ctx *c, struct rst_usk *e, int direct)
{
	const ImgUnixSk *m = e->m;
	struct sockaddr_un to;
	socklen_t tolen = m->name.len ? addr_of(&m->name, &to) : 0;
	size_t off = 0;
	int tmp = -1, ret = 0;

	for (size_t i = 0; i < m->n_msg_len && !ret; i++) {
		struct rst_usk *s = NULL;
		int from = direct;

		if (direct < 0 && i < m->n_msg_from && m->msg_from[i].len)
			s = by_name(c, &m->msg_from[i], SOCK_DGRAM);
		if (s && s != e && s->fd >= 0) {
			from = s->fd;
		} else if (direct < 0) {
			if (tmp < 0 && (tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
				return pr_errno(-errno, "file %u: a datagram socket to refill %lu", e->f->id,
						(unsigned long)m->ino);
			from = tmp;
		}
		widen(from, m->data.len);
		ret = send_all(e, from, m->data.data + off, m->msg_len[i], direct < 0 ? &to : NULL,
			       direct < 0 ? tolen : 0);
		off += m->msg_len[i];
	}
	if (tmp >= 0)
		close(tmp);
	return ret;
}

static int fill_one(struct rst_ctx *c, struct rst_usk *e)
{
	const ImgUnixSk *m = e->m;
	struct rst_usk *p = m->peer ? by_ino(c, m->peer) : NULL;
	int from = e->spare >= 0 ? e->spare : e->paired ? p->fd : -1;
	size_t off = 0;
	int ret = 0;

	if (!m->data.len && !m->n_msg_len)
		return 0;
	if (m->type == SOCK_DGRAM && (from >= 0 || m->name.len))
		return fill_dgram(c, e, from);
	if (from < 0)
		return pr_errno(-EINVAL, "file %u: unix %s socket %lu has queued data but nothing in the image "
				"can send it", e->f->id, type_name(m->type), (unsigned long)m->ino);
	widen(from, m->data.len);
	if (m->type == SOCK_STREAM)
		return send_all(e, from, m->data.data, m->data.len, NULL, 0);
	for (size_t i = 0; i < m->n_msg_len && !ret; i++) {
		ret = send_all(e, from, m->data.data + off, m->msg_len[i], NULL, 0);
		off += m->msg_len[i];
	}
	return ret;
}

static int connect_to(const struct rst_usk *e, const ProtobufCBinaryData *name, const char *what)
{
	struct sockaddr_un sa;
	socklen_t len = addr_of(name, &sa);
	int fl = fcntl(e->fd, F_GETFL);

	/* A full backlog would make us wait: fail instead. */
	fcntl(e->fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(e->fd, (void *)&sa, len))
		return pr_errno(-errno, "file %u: connecting unix socket %lu to %s %s%s", e->f->id,
				(unsigned long)e->m->ino, what, sa.sun_path[0] ? "" : "@", sa.sun_path + !sa.sun_path[0]);
	fcntl(e->fd, F_SETFL, fl);
	return 0;
}

static int connect_all(struct rst_ctx *c)
{
	int ret = 0;

	/* Listeners' queues in their order, so that accept() returns them as before. */
	for (size_t i = 0; i < c->nr_usks && !ret; i++) {
		const ImgUnixSk *l = c->usks[i].m;

		for (size_t k = 0; l->state == TCP_LISTEN && k < l->n_icons && !ret; k++) {
			struct rst_usk *cl = by_ino(c, l->icons[k]);

			if (!cl || !cl->m->has_listener || cl->m->listener != l->ino)
				return pr_errno(-EINVAL, "file %u: waiting client %lu of unix socket %lu is not in "
						"the image", c->usks[i].f->id, (unsigned long)l->icons[k],
						(unsigned long)l->ino);
			ret = connect_to(cl, &l->name, "its listener");
		}
	}
	for (size_t i = 0; i < c->nr_usks && !ret; i++) {
		struct rst_usk *e = &c->usks[i];
		struct rst_usk *p = e->m->peer ? by_ino(c, e->m->peer) : NULL;

		if (e->m->has_listener && !by_ino(c, e->m->listener))
			return pr_errno(-EINVAL, "file %u: listener %lu is not in the image", e->f->id,
					(unsigned long)e->m->listener);
		if (e->m->type != SOCK_DGRAM)
			continue;
		if (e->m->has_peer_name)
			ret = connect_to(e, &e->m->peer_name, "the outside socket");
		else if (p && !e->paired)
			ret = p->m->name.len ? connect_to(e, &p->m->name, "its peer")
					     : pr_errno(-EINVAL, "file %u: peer %lu has no name to connect to",
							e->f->id, (unsigned long)p->m->ino);
	}
	return ret;
}

/* This socket bound its name at restore (bind_one's rule). */
static bool bind_owner(const struct rst_usk *e)
{
	return e->m->type == SOCK_DGRAM || e->m->state != TCP_ESTABLISHED;
}

static int unlink_name(const struct rst_usk *e)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];

	memcpy(path, e->m->name.data, e->m->name.len);
	path[e->m->name.len] = 0;
	if (unlink(path))
		return pr_errno(-errno, "file %u: unlinking %s again", e->f->id, path);
	return 0;
}

static int finish_one(struct rst_usk *e)
{
	const ImgUnixSk *m = e->m;
	int how = m->shut_rd && m->shut_wr ? SHUT_RDWR : m->shut_rd ? SHUT_RD : SHUT_WR;

	if (e->spare >= 0) {
		struct sockaddr sa = { .sa_family = AF_UNSPEC };

		close(e->spare);
		e->spare = -1;
		/* A datagram socket connected to a closed one takes nothing from others. */
		if (m->type == SOCK_DGRAM && !m->peer && !m->has_peer_name && connect(e->fd, &sa, sizeof(sa)))
			return pr_errno(-errno, "file %u: disconnecting from the spare socket", e->f->id);
	}
	if (m->has_sndbuf)
		set_buf(e->f, e->fd, SO_SNDBUF, SO_SNDBUFFORCE, m->sndbuf, "SO_SNDBUF");
	/* Unlinked only now: waiting clients connected through the name first. */
	if (m->name_gone && m->name.data[0] && bind_owner(e)) {
		int ret = unlink_name(e);

		if (ret)
			return ret;
	}
	/* A connected end also marks its peer; the peer's own image says the same. */
	if ((m->shut_rd || m->shut_wr) && m->state != TCP_LISTEN && shutdown(e->fd, how) && errno != ENOTCONN)
		return pr_errno(-errno, "file %u: shutdown(%d)", e->f->id, how);
	if (m->has_peek_off && m->peek_off >= 0 &&
	    setsockopt(e->fd, SOL_SOCKET, SO_PEEK_OFF, &m->peek_off, sizeof(m->peek_off)))
		return pr_errno(-errno, "file %u: SO_PEEK_OFF %d", e->f->id, m->peek_off);
	return 0;
}

static int unix_prepare(struct rst_ctx *c)
{
	int ret = 0;

	for (size_t i = 0; i < c->nr_files; i++)
		if (c->files[i]->kind == IMG_FILE_KIND__FILE_UNIX_SK)
			c->nr_usks++;
	c->usks = calloc(c->nr_usks + 1, sizeof(*c->usks));
	if (!c->usks)
		return -ENOMEM;
	c->nr_usks = 0;
	for (size_t i = 0; i < c->nr_files; i++)
		if (c->files[i]->kind == IMG_FILE_KIND__FILE_UNIX_SK)
			c->usks[c->nr_usks++] = (struct rst_usk){ c->files[i], c->files[i]->unix_sk, -1, -1, false };
	for (size_t i = 0; i < c->nr_usks; i++)
		if (by_ino(c, c->usks[i].m->ino) != &c->usks[i])
			return pr_errno(-EINVAL, "files.img: unix socket inode %lu is in file %u and file %u",
					(unsigned long)c->usks[i].m->ino, by_ino(c, c->usks[i].m->ino)->f->id,
					c->usks[i].f->id);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		if (c->usks[i].fd < 0)
			ret = create_one(c, &c->usks[i]);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		if (c->usks[i].fd < 0)
			ret = pr_errno(-EINVAL, "file %u: unix socket %lu: its peer %lu is not in the image",
				       c->usks[i].f->id, (unsigned long)c->usks[i].m->ino,
				       (unsigned long)c->usks[i].m->peer);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		ret = set_opts(&c->usks[i]);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		ret = bind_one(&c->usks[i]);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		ret = fill_one(c, &c->usks[i]);
	if (!ret)
		ret = connect_all(c);
	for (size_t i = 0; i < c->nr_usks && !ret; i++)
		ret = finish_one(&c->usks[i]);
	return ret;
}

int rst__unix_open(struct rst_ctx *c, const ImgFile *f)
{
	struct rst_usk *e;
	int fd, ret;

	if (!c->usks) {
		ret = unix_prepare(c);
		if (ret)
			return ret;
	}
	e = by_ino(c, f->unix_sk->ino);
	if (!e || e->fd < 0)
		return pr_errno(-EINVAL, "file %u: unix socket %lu was not made", f->id,
				(unsigned long)f->unix_sk->ino);
	fd = fcntl(e->fd, F_DUPFD_CLOEXEC, c->fd_base);
	if (fd < 0)
		return pr_errno(-errno, "file %u: dup of unix socket %lu", f->id, (unsigned long)f->unix_sk->ino);
	if (fcntl(fd, F_SETFL, f->flags)) {
		ret = pr_errno(-errno, "file %u: F_SETFL 0%o", f->id, f->flags);
		close(fd);
		return ret;
	}
	return fd;
}

void rst__unix_close(struct rst_ctx *c)
{
	for (size_t i = 0; i < c->nr_usks; i++) {
		if (c->usks[i].fd >= 0)
			close(c->usks[i].fd);
		if (c->usks[i].spare >= 0)
			close(c->usks[i].spare);
	}
	free(c->usks);
	c->usks = NULL;
	c->nr_usks = 0;
}
