/*
 * Unix sockets: stream, datagram and seqpacket; socketpairs within a process and
 * across the tree, bound (path and abstract names), listening with connections not
 * accepted yet, connected, with the data queued in them, shut down. This file dumps
 * one socket (sock_diag in sk-unix-diag.c, its queue in sk-unix-peek.c), then checks
 * the tree's sockets together; sk-unix-restore.c makes them again.
 *
 * DESIGN
 * Every socket carries its own state and receive queue, and its peer's inode; the
 * peers are matched once every process is collected (eng__unix_resolve).
 * Refused: a peer outside the dumped tree, except a datagram socket connected to a
 * named one, which is connected again by name at restore; a client whose connection
 * waits in a listener with bytes already sent (they sit in the kernel's embryo socket,
 * which only accept() reaches, and accept would take the connection from the process);
 * relative path names. A waiting connection from a client outside the tree is dropped
 * with a warning (its peer sees a reset, as it would when the service died).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "sk-unix.h"

/* ---- dump ------------------------------------------------------------------------- */

int eng__unix_check(pid_t pid, const struct eng__fd_probe *p)
{
	int type = p->sk_type;

	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)
		return eng__refuse("pid %d: fd %d: unix socket of type %d (%s) is not supported yet", pid, p->fd,
				   type, p->link);
	return 0;
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

	ret = eng__udiag_get(pid, p->fd, p->st.st_ino, &u);
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
				  pid, p->fd, eng__unix_type_name(u.type), u.ino, u.state);
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
		ret = eng__unix_peek_queue(pid, p->fd, sk, m, &u);
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
			 pid, p->fd, eng__unix_type_name(u.type), u.ino, u.state, u.peer, m->data.len, m->n_msg_len);
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
					   "those bytes)", cl->pid, cl->f->first_fd, eng__unix_type_name(cl->f->usk->type),
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
	eng__unix_name_str(&m->peer_name, name, sizeof(name));
	if (m->type == SOCK_DGRAM && m->peer_name.len) {
		m->has_peer_name = 1;
		pr_info("pid %d: fd %d: unix datagram socket %lu is connected outside the tree, to %s: "
			"connected again by name at restore", x->pid, x->f->first_fd, (unsigned long)m->ino, name);
		return 0;
	}
	return eng__refuse("pid %d: fd %d: unix %s socket %lu is connected to socket %lu (%s) outside the "
			   "dumped tree: its peer cannot be restored", x->pid, x->f->first_fd, eng__unix_type_name(m->type),
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
					  v[i].f->first_fd, eng__unix_type_name(m->type), (unsigned long)m->ino);
		if (!m->has_peer_name) {
			free(m->peer_name.data);
			m->peer_name.data = NULL;
			m->peer_name.len = 0;
		}
	}
	free(v);
	return ret;
}
