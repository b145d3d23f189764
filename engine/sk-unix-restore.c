/*
 * Unix sockets at restore: every unix socket of the checkpoint is made by the root
 * before it forks (rst-files.c treats them like pipes).
 *
 * DESIGN
 * Sockets refer to each other (peers, listeners, senders' names), so they are made in
 * stages, each over all of them:
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
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "restore.h"
#include "sk-unix.h"

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
			return pr_errno(-errno, "file %u: socketpair(%s)", e->f->id, eng__unix_type_name(m->type));
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
		return pr_errno(-errno, "file %u: socket(AF_UNIX, %s)", e->f->id, eng__unix_type_name(m->type));
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
				"can send it", e->f->id, eng__unix_type_name(m->type), (unsigned long)m->ino);
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
