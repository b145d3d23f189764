/*
 * TCP and UDP sockets, IPv4 and IPv6.
 *
 * DESIGN
 * What comes back as it was: listening TCP sockets (address, port, backlog, options),
 * TCP sockets never connected (bound or not), UDP sockets (bound, connected).
 * What comes back by policy: a TCP connection in any other state (established,
 * half-closed, connecting) is restored *closed*, as CRIU's --tcp-close does, and the
 * dump log says so: the process holds a socket at the same fd number that reads EOF,
 * fails writes with EPIPE and polls EPOLLIN|EPOLLHUP|EPOLLRDHUP, so its usual error
 * path closes it. The peer saw the connection end when the original was killed.
 * Connections waiting in a listener's accept queue are lost the same way (logged).
 * Everything else (raw, SCTP, packet, netlink, unix for now) is refused.
 *
 * Read from the socket itself: pidfd_getfd hands us the process's own open file, on
 * which getsockname, getsockopt and TCP_INFO answer as they would for it (TCP_INFO of
 * a listener: tcpi_sacked is the backlog asked for, tcpi_unacked the queued
 * connections).
 *
 * Restore binds with SO_REUSEADDR on, then sets the dumped value: connections of the
 * old process may linger on the port (FIN_WAIT, TIME_WAIT), and SO_REUSEADDR matters
 * only at bind and listen time. Those connections block the port all the same when the
 * old listener did not set SO_REUSEADDR (they inherited its "no reuse"), exactly as
 * they would block the service restarting; the error says so. (TCP_REPAIR binds past
 * them, but listen() checks again and repair cannot be turned off on a listener.) A closed connection is a new socket shut down in both directions:
 * inet_shutdown() marks an unconnected socket shut (and says ENOTCONN), which is what
 * gives reads their EOF.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

struct sk_id {
	int family, type, proto;
	struct tcp_info ti;	/* TCP only */
};

static int sockopt_int(int fd, int level, int name, int *v)
{
	socklen_t len = sizeof(*v);

	return getsockopt(fd, level, name, v, &len) ? -errno : 0;
}

static int identify(pid_t pid, int fd, int sk, struct sk_id *id)
{
	socklen_t len = sizeof(id->ti);

	memset(id, 0, sizeof(*id));
	if (sockopt_int(sk, SOL_SOCKET, SO_DOMAIN, &id->family) ||
	    sockopt_int(sk, SOL_SOCKET, SO_TYPE, &id->type) ||
	    sockopt_int(sk, SOL_SOCKET, SO_PROTOCOL, &id->proto))
		return pr_errno(-errno, "pid %d: fd %d: socket domain, type, protocol", pid, fd);
	if ((id->family == AF_INET || id->family == AF_INET6) && id->type == SOCK_STREAM &&
	    id->proto == IPPROTO_TCP && getsockopt(sk, IPPROTO_TCP, TCP_INFO, &id->ti, &len))
		return pr_errno(-errno, "pid %d: fd %d: TCP_INFO", pid, fd);
	return 0;
}

static const char *family_name(int f)
{
	return f == AF_UNIX ? "unix" : f == AF_NETLINK ? "netlink" : f == AF_PACKET ? "packet" :
	       f == AF_INET ? "IPv4" : f == AF_INET6 ? "IPv6" : "other";
}

static int check_id(pid_t pid, const struct eng__fd_probe *p, const struct sk_id *id)
{
	bool inet = id->family == AF_INET || id->family == AF_INET6;

	if (inet && id->type == SOCK_STREAM && id->proto == IPPROTO_TCP)
		return 0;
	if (inet && id->type == SOCK_DGRAM && id->proto == IPPROTO_UDP)
		return 0;
	return eng__refuse("pid %d: fd %d: %s socket (type %d, protocol %d) (%s) is not supported yet", pid,
			   p->fd, family_name(id->family), id->type, id->proto, p->link);
}

int eng__sk_check(pid_t pid, const struct eng__fd_probe *p)
{
	struct sk_id id;
	int sk = eng__fd_grab(pid, p->fd), ret;

	if (sk < 0)
		return sk;
	ret = identify(pid, p->fd, sk, &id);
	close(sk);
	return ret ? ret : check_id(pid, p, &id);
}

/* Address and port of a sockaddr into bytes the image keeps. */
static int addr_of(const struct sockaddr_storage *ss, ProtobufCBinaryData *addr, uint32_t *port)
{
	const void *src;
	size_t len;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		src = &in->sin_addr, len = 4, *port = ntohs(in->sin_port);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		src = &in6->sin6_addr, len = 16, *port = ntohs(in6->sin6_port);
	}
	addr->data = malloc(len);
	if (!addr->data)
		return -ENOMEM;
	memcpy(addr->data, src, len);
	addr->len = len;
	return 0;
}

static int dump_opts(int sk, const struct sk_id *id, ImgInetSk *m)
{
	int v;

	if (!sockopt_int(sk, SOL_SOCKET, SO_REUSEADDR, &v))
		m->has_reuseaddr = 1, m->reuseaddr = v;
	if (!sockopt_int(sk, SOL_SOCKET, SO_REUSEPORT, &v))
		m->has_reuseport = 1, m->reuseport = v;
	if (!sockopt_int(sk, SOL_SOCKET, SO_KEEPALIVE, &v))
		m->has_keepalive = 1, m->keepalive = v;
	if (id->family == AF_INET6 && !sockopt_int(sk, IPPROTO_IPV6, IPV6_V6ONLY, &v))
		m->has_v6only = 1, m->v6only = v;
	if (id->proto == IPPROTO_TCP && !sockopt_int(sk, IPPROTO_TCP, TCP_NODELAY, &v))
		m->has_nodelay = 1, m->nodelay = v;
	return 0;
}

static int dump_sk(pid_t pid, const struct eng__fd_probe *p, int sk, ImgInetSk *m)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct sk_id id;
	uint32_t port;
	int ret;

	ret = identify(pid, p->fd, sk, &id);
	if (!ret)
		ret = check_id(pid, p, &id);
	if (ret)
		return ret;
	m->has_family = m->has_type = m->has_proto = m->has_state = 1;
	m->family = id.family;
	m->type = id.type;
	m->proto = id.proto;
	m->state = id.proto == IPPROTO_TCP ? id.ti.tcpi_state : TCP_CLOSE;
	if (getsockname(sk, (struct sockaddr *)&ss, &len))
		return pr_errno(-errno, "pid %d: fd %d: getsockname", pid, p->fd);
	ret = addr_of(&ss, &m->addr, &port);
	if (ret)
		return ret;
	m->has_addr = m->has_port = 1;
	m->port = port;
	len = sizeof(ss);
	if (!getpeername(sk, (struct sockaddr *)&ss, &len)) {
		ret = addr_of(&ss, &m->peer_addr, &port);
		if (ret)
			return ret;
		m->has_peer_addr = m->has_peer_port = 1;
		m->peer_port = port;
	}
	dump_opts(sk, &id, m);
	if (m->state == TCP_LISTEN) {
		m->has_backlog = 1;
		m->backlog = id.ti.tcpi_sacked;
		if (id.ti.tcpi_unacked)
			pr_warn("pid %d: fd %d: %u connections not accepted yet on port %u are closed by the dump",
				pid, p->fd, id.ti.tcpi_unacked, m->port);
	} else if (id.proto == IPPROTO_TCP && m->state != TCP_CLOSE) {
		char peer[INET6_ADDRSTRLEN] = "?";

		m->has_closed = 1;
		m->closed = true;
		if (m->has_peer_addr)
			inet_ntop(id.family, m->peer_addr.data, peer, sizeof(peer));
		pr_warn("pid %d: fd %d: TCP connection from port %u to %s port %u (state %d) is restored closed",
			pid, p->fd, m->port, peer, m->peer_port, m->state);
	}
	return 0;
}

int eng__sk_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f)
{
	int sk, ret;

	f->inet = calloc(1, sizeof(*f->inet));
	if (!f->inet)
		return -ENOMEM;
	img_inet_sk__init(f->inet);
	sk = eng__fd_grab(pid, p->fd);
	if (sk < 0)
		return sk;
	ret = dump_sk(pid, p, sk, f->inet);
	close(sk);
	return ret;
}

/* ---- restore ---------------------------------------------------------------------- */

static socklen_t sockaddr_of(const ImgInetSk *m, const ProtobufCBinaryData *a, uint32_t port,
			     struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (m->family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		memcpy(&in->sin_addr, a->data, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	memcpy(&in6->sin6_addr, a->data, 16);
	return sizeof(*in6);
}

static int set_int(const ImgFile *f, int sk, int level, int name, const char *what, int v)
{
	if (setsockopt(sk, level, name, &v, sizeof(v)))
		return pr_errno(-errno, "file %u: socket option %s = %d", f->id, what, v);
	return 0;
}

static int restore_sk(const ImgFile *f, int sk)
{
	static const char busy[] = " (connections of the old process may linger on it, and it did "
				   "not set SO_REUSEADDR)";
	const ImgInetSk *m = f->inet;
	struct sockaddr_storage ss;
	socklen_t len;
	int ret = 0;

	if (m->has_v6only)
		ret = set_int(f, sk, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY", m->v6only);
	if (!ret && m->reuseport)
		ret = set_int(f, sk, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT", 1);
	if (!ret && m->keepalive)
		ret = set_int(f, sk, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
	if (!ret && m->nodelay)
		ret = set_int(f, sk, IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", 1);
	if (ret)
		return ret;
	if (m->closed) {
		/* ENOTCONN, but the socket is marked shut both ways all the same. */
		shutdown(sk, SHUT_RDWR);
		return set_int(f, sk, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", m->reuseaddr);
	}
	if (m->port) {
		len = sockaddr_of(m, &m->addr, m->port, &ss);
		ret = set_int(f, sk, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", 1);
		if (!ret && bind(sk, (struct sockaddr *)&ss, len))
			ret = pr_errno(-errno, "file %u: binding to port %u%s", f->id, m->port,
				       errno == EADDRINUSE && !m->reuseaddr ? busy : "");
	}
	if (!ret && m->state == TCP_LISTEN && listen(sk, m->backlog))
		ret = pr_errno(-errno, "file %u: listen on port %u%s", f->id, m->port,
			       errno == EADDRINUSE && !m->reuseaddr ? busy : "");
	if (!ret)
		ret = set_int(f, sk, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR", m->reuseaddr);
	if (!ret && m->type == SOCK_DGRAM && m->has_peer_addr) {
		len = sockaddr_of(m, &m->peer_addr, m->peer_port, &ss);
		if (connect(sk, (struct sockaddr *)&ss, len))
			ret = pr_errno(-errno, "file %u: connecting to port %u", f->id, m->peer_port);
	}
	return ret;
}

int rst__inet_open(struct rst_ctx *c, const ImgFile *f)
{
	int sk, ret;

	(void)c;
	sk = socket(f->inet->family, f->inet->type | SOCK_CLOEXEC, f->inet->proto);
	if (sk < 0)
		return pr_errno(-errno, "file %u: socket(%d, %d, %d)", f->id, f->inet->family, f->inet->type,
				f->inet->proto);
	ret = restore_sk(f, sk);
	if (!ret && fcntl(sk, F_SETFL, f->flags))
		ret = pr_errno(-errno, "file %u: F_SETFL 0%o", f->id, f->flags);
	if (ret) {
		close(sk);
		return ret;
	}
	return sk;
}
