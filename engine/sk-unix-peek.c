/*
 * Unix sockets: the receive queue of one socket, copied without being consumed.
 *
 * DESIGN
 * The queue is read on the process's own socket (taken with pidfd_getfd) with
 * SO_PEEK_OFF set to 0, so that each MSG_PEEK moves the offset on instead of re-reading
 * the head; datagram kinds peek one message at a time, which keeps message boundaries
 * and each sender's name. The process's own SO_PEEK_OFF is put back whatever happens.
 * Data a socket sent sits in its peer's queue, so every socket carries only its own.
 * Fds in flight (SCM_RIGHTS) are refused: peeking installs them in *our* table, so they
 * are closed again and named in the refusal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sk-unix.h"

#define PEEK_BUF (256u << 10)
#define MAX_FDS_PEEK 253	/* SCM_MAX_FD */

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
				   "(SCM_RIGHTS) in its queue: not supported yet", pid, fd, eng__unix_type_name(m->type),
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
					   "(more than %u) is not supported yet", pid, fd, eng__unix_type_name(m->type),
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

int eng__unix_peek_queue(pid_t pid, int fd, int sk, ImgUnixSk *m, const struct udiag *u)
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
