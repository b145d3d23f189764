/*
 * Field checks: what a record must hold to be usable, checked on read and on write
 * alike. A frame that passed its checksum can still carry a value no kernel would
 * accept, or a writer bug; restore must hear about it here, with the file, the record
 * and the field named, rather than as an EINVAL from some syscall halfway through.
 * The checks mirror what the kernel itself enforces where restore hands a value on
 * (PR_SET_MM_MAP's ordering, capability subsets, rseq alignment, XSTATE_BV vs XCR0).
 * Process state (core-PID.img) is in image-check-core.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "fds.pb-c.h"
#include "files.pb-c.h"
#include "image-check.h"
#include "inventory.pb-c.h"
#include "log.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "shmem.pb-c.h"

int eng__img_bad(struct eng_img *img, const char *field, const char *fmt, ...)
{
	char buf[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pr_err("%s: record %u (%s): field %s: %s", img->name, img->cur_rec,
	       img->cur ? img->cur->short_name : "?", field, buf);
	return -EINVAL;
}

size_t eng__pb_elem_size(ProtobufCType type)
{
	switch (type) {
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

static void field_path(char *buf, size_t len, const char *prefix, const ProtobufCFieldDescriptor *f,
		       size_t i)
{
	const char *dot = *prefix ? "." : "";

	if (f->label == PROTOBUF_C_LABEL_REPEATED)
		snprintf(buf, len, "%s%s%s[%zu]", prefix, dot, f->name, i);
	else
		snprintf(buf, len, "%s%s%s", prefix, dot, f->name);
}

/* Enum values must be known: protobuf-c keeps whatever number it finds. */
static int check_generic(struct eng_img *img, const ProtobufCMessage *m, const char *prefix)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	char path[128];
	int ret;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t n = eng__pb_count(m, f);

		if (f->type != PROTOBUF_C_TYPE_ENUM && f->type != PROTOBUF_C_TYPE_MESSAGE)
			continue;
		for (size_t j = 0; j < n; j++) {
			const void *v = eng__pb_value(m, f, j);
			const ProtobufCEnumDescriptor *ed = f->descriptor;

			field_path(path, sizeof(path), prefix, f, j);
			if (f->type == PROTOBUF_C_TYPE_ENUM) {
				if (!protobuf_c_enum_descriptor_get_value(ed, *(const int *)v))
					return eng__img_bad(img, path, "%d is no %s", *(const int *)v,
							    ed->short_name);
				continue;
			}
			if (!*(const ProtobufCMessage *const *)v)
				return eng__img_bad(img, path, "NULL message");
			ret = check_generic(img, *(const ProtobufCMessage *const *)v, path);
			if (ret)
				return ret;
		}
	}
	return 0;
}

int eng__img_check(struct eng_img *img, const ProtobufCMessage *msg)
{
	int (*fn)(struct eng_img *, const ProtobufCMessage *);
	int ret = check_generic(img, msg, "");

	if (ret)
		return ret;
	fn = img->k->head && img->cur_rec == 0 ? img->k->check_head : img->k->check_entry;
	return fn ? fn(img, msg) : 0;
}

int eng__check_path(struct eng_img *img, const char *field, const char *path)
{
	if (!path)
		return eng__img_bad(img, field, "missing");
	if (path[0] != '/')
		return eng__img_bad(img, field, "\"%.64s\" is not an absolute path", path);
	return 0;
}

int eng__check_pid(struct eng_img *img, const char *field, bool has, uint32_t pid)
{
	if (!has)
		return eng__img_bad(img, field, "missing");
	if (pid < 1 || pid > ENG__PID_MAX)
		return eng__img_bad(img, field, "%u is outside [1, %u]", pid, ENG__PID_MAX);
	return 0;
}

int eng__cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Every value a valid pid, none twice. */
static int check_pid_list(struct eng_img *img, const char *field, const uint32_t *v, size_t n)
{
	uint32_t *s;
	int ret = 0;

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 1 || v[i] > ENG__PID_MAX)
			return eng__img_bad(img, field, "[%zu] %u is outside [1, %u]", i, v[i],
					    ENG__PID_MAX);
	s = malloc(n * sizeof(*s) + 1);
	if (!s)
		return -ENOMEM;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), eng__cmp_u32);
	for (size_t i = 1; i < n && !ret; i++)
		if (s[i] == s[i - 1])
			ret = eng__img_bad(img, field, "%u is listed twice", s[i]);
	free(s);
	return ret;
}

static int check_vdso(struct eng_img *img, const ImgInventory *inv)
{
	unsigned seen = 0;

	for (size_t i = 0; i < inv->n_vdso; i++) {
		const ImgVdsoArea *a = inv->vdso[i];

		if (!a->has_part || !a->has_start || !a->has_end)
			return eng__img_bad(img, "vdso", "[%zu]: part, start and end are needed", i);
		if (seen & 1u << a->part)
			return eng__img_bad(img, "vdso", "[%zu]: part %d twice", i, a->part);
		seen |= 1u << a->part;
		if (a->start >= a->end || !ENG__PAGE_ALIGNED(a->start | a->end) ||
		    a->end > ENG__USER_END)
			return eng__img_bad(img, "vdso", "[%zu]: [0x%llx, 0x%llx) is no user mapping", i,
					    (unsigned long long)a->start, (unsigned long long)a->end);
	}
	return 0;
}

int eng__check_inventory(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgInventory *inv = (const ImgInventory *)msg;
	int ret;

	NEED(img, inv, img_version);
	if (inv->img_version != ENG_IMG_VERSION)
		return eng__img_bad(img, "img_version", "%u, this hacd reads %u", inv->img_version,
				    ENG_IMG_VERSION);
	ret = eng__check_pid(img, "root_pid", inv->has_root_pid, inv->root_pid);
	if (ret)
		return ret;
	if (!inv->n_pids || inv->pids[0] != inv->root_pid)
		return eng__img_bad(img, "pids", "must start with root_pid %u", inv->root_pid);
	ret = check_pid_list(img, "pids", inv->pids, inv->n_pids);
	if (ret)
		return ret;
	NEED(img, inv, xcr0);
	if ((inv->xcr0 & 3) != 3)
		return eng__img_bad(img, "xcr0", "0x%llx lacks x87|SSE, which every x86-64 has",
				    (unsigned long long)inv->xcr0);
	NEED(img, inv, xstate_size);
	if (inv->xstate_size < ENG__XSTATE_MIN || inv->xstate_size > ENG__XSTATE_MAX)
		return eng__img_bad(img, "xstate_size", "%u is outside [%u, %u]", inv->xstate_size,
				    ENG__XSTATE_MIN, ENG__XSTATE_MAX);
	if (inv->hostname && strlen(inv->hostname) > 64)
		return eng__img_bad(img, "hostname", "%zu bytes, a host name has at most 64", strlen(inv->hostname));
	NEED(img, inv, page_size);
	if (inv->page_size != IMG_PAGE_SIZE)
		return eng__img_bad(img, "page_size", "%u, only %u is supported", inv->page_size,
				    IMG_PAGE_SIZE);
	return check_vdso(img, inv);
}

int eng__check_pstree(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgPstreeEntry *e = (const ImgPstreeEntry *)msg;
	int ret;

	ret = eng__check_pid(img, "pid", e->has_pid, e->pid);
	if (ret)
		return ret;
	/*
	 * 0 is what /proc shows when the group or session leader lives in an ancestor pid
	 * namespace (a service started from a container's shell): legal, and restored by
	 * staying in the restorer's own group and session.
	 */
	NEED(img, e, pgid);
	if (e->pgid > ENG__PID_MAX)
		return eng__img_bad(img, "pgid", "%u is above %u", e->pgid, ENG__PID_MAX);
	NEED(img, e, sid);
	if (e->sid > ENG__PID_MAX)
		return eng__img_bad(img, "sid", "%u is above %u", e->sid, ENG__PID_MAX);
	NEED(img, e, ppid);
	if (e->ppid == e->pid || e->ppid > ENG__PID_MAX)
		return eng__img_bad(img, "ppid", "%u for pid %u", e->ppid, e->pid);
	if (e->zombie) {
		if (e->n_tids)
			return eng__img_bad(img, "tids", "%zu for zombie %u, which has none", e->n_tids,
					    e->pid);
		NEED(img, e, exit_status);
		/* A wait status: exit code << 8, or a signal (and the core bit). */
		if ((e->exit_status & 0x7f) ? (e->exit_status & ~0xff) || (e->exit_status & 0x7f) > 64
					    : (e->exit_status & ~0xff00))
			return eng__img_bad(img, "exit_status", "%#x is no exit status", e->exit_status);
		return 0;
	}
	if (!e->n_tids || e->tids[0] != e->pid)
		return eng__img_bad(img, "tids", "must start with the leader, pid %u", e->pid);
	return check_pid_list(img, "tids", e->tids, e->n_tids);
}

static int check_pipe(struct eng_img *img, const ImgFile *f)
{
	const ImgPipe *m = f->pipe;

	NEED(img, m, ino);
	if (!m->owner) {
		if (m->has_size || m->has_data)
			return eng__img_bad(img, "pipe.owner", "size or data on a description that is not the owner");
		return 0;
	}
	NEED(img, m, size);
	/* The kernel's floor is one page; 32 MiB is far above pipe-max-size (1 MiB) and
	 * keeps a record (files.img entries may hold 64 MiB) able to carry the data. */
	if (m->size < 4096 || m->size > (32u << 20))
		return eng__img_bad(img, "pipe.size", "%u is no pipe buffer size", m->size);
	if (m->data.len > m->size)
		return eng__img_bad(img, "pipe.data", "%zu bytes do not fit in the %u byte buffer",
				    m->data.len, m->size);
	return 0;
}

static int check_timerfd(struct eng_img *img, const ImgTimerfd *t)
{
	NEED(img, t, clockid);
	NEED(img, t, value_ns);
	NEED(img, t, interval_ns);
	if (t->clockid != CLOCK_REALTIME && t->clockid != CLOCK_MONOTONIC && t->clockid != CLOCK_BOOTTIME &&
	    t->clockid != CLOCK_REALTIME_ALARM && t->clockid != CLOCK_BOOTTIME_ALARM)
		return eng__img_bad(img, "timerfd.clockid", "%d is no timerfd clock", t->clockid);
	if (t->settime_flags & ~3u)
		return eng__img_bad(img, "timerfd.settime_flags", "0%o: unknown flags", t->settime_flags);
	if (t->value_ns > (uint64_t)INT64_MAX / 2 || t->interval_ns > (uint64_t)INT64_MAX / 2)
		return eng__img_bad(img, "timerfd.value_ns", "beyond any time the kernel keeps");
	return 0;
}

static int check_epoll(struct eng_img *img, const ImgEpoll *e)
{
	for (size_t i = 0; i < e->n_targets; i++) {
		NEED(img, e->targets[i], tfd);
		NEED(img, e->targets[i], events);
		if (e->targets[i]->tfd < 0)
			return eng__img_bad(img, "epoll.targets.tfd", "%d is negative", e->targets[i]->tfd);
	}
	return 0;
}

static int check_inet(struct eng_img *img, const ImgInetSk *m)
{
	size_t alen;

	NEED(img, m, family);
	NEED(img, m, type);
	NEED(img, m, state);
	NEED(img, m, addr);
	NEED(img, m, port);
	if (m->family != AF_INET && m->family != AF_INET6)
		return eng__img_bad(img, "inet.family", "%d is neither AF_INET nor AF_INET6", m->family);
	if (!(m->type == SOCK_STREAM && m->proto == IPPROTO_TCP) && !(m->type == SOCK_DGRAM && m->proto == IPPROTO_UDP))
		return eng__img_bad(img, "inet.type", "type %d protocol %d is neither TCP nor UDP", m->type, m->proto);
	alen = m->family == AF_INET ? 4 : 16;
	if (m->addr.len != alen || (m->has_peer_addr && m->peer_addr.len != alen))
		return eng__img_bad(img, "inet.addr", "%zu bytes for family %d", m->addr.len, m->family);
	if (m->port > 65535 || m->peer_port > 65535)
		return eng__img_bad(img, "inet.port", "%u is no port", m->port > 65535 ? m->port : m->peer_port);
	if (m->state < 1 || m->state > 12)
		return eng__img_bad(img, "inet.state", "%d is no TCP state", m->state);
	if (m->state == 10 && (!m->has_backlog || m->backlog < 0))	/* TCP_LISTEN */
		return eng__img_bad(img, "inet.backlog", "a listening socket needs one");
	return 0;
}

static bool unix_name_ok(const ProtobufCBinaryData *n, bool path_only)
{
	/* sun_path is 108 bytes; a path needs its NUL, has no other, and is absolute. */
	if (!n->len)
		return true;
	if (!n->data[0])
		return !path_only && n->len <= 108;
	return n->len < 108 && n->data[0] == '/' && !memchr(n->data, 0, n->len);
}

static int check_unix(struct eng_img *img, const ImgUnixSk *m)
{
	uint64_t sum = 0;

	NEED(img, m, ino);
	NEED(img, m, type);
	NEED(img, m, state);
	if (m->type != SOCK_STREAM && m->type != SOCK_DGRAM && m->type != SOCK_SEQPACKET)
		return eng__img_bad(img, "unix_sk.type", "%d is no stream, datagram or seqpacket type", m->type);
	if (m->state != 1 && m->state != 7 && m->state != 10)	/* ESTABLISHED, CLOSE, LISTEN */
		return eng__img_bad(img, "unix_sk.state", "%d is no unix socket state", m->state);
	if (!m->ino || m->peer == m->ino || m->listener == m->ino)
		return eng__img_bad(img, "unix_sk.peer", "inode %lu names itself", (unsigned long)m->ino);
	if (!unix_name_ok(&m->name, false) || !unix_name_ok(&m->peer_name, false))
		return eng__img_bad(img, "unix_sk.name", "not a unix socket name (absolute path or abstract, "
				    "at most 108 bytes)");
	if (m->has_peer_name && (m->type != SOCK_DGRAM || !m->peer_name.len))
		return eng__img_bad(img, "unix_sk.peer_name", "only a datagram socket reconnects by name");
	if (m->state == 10) {
		if (!m->has_backlog || m->backlog < 0 || !m->name.len)
			return eng__img_bad(img, "unix_sk.backlog", "a listening socket needs a name and a backlog");
		if (m->has_data || m->n_msg_len || m->type == SOCK_DGRAM)
			return eng__img_bad(img, "unix_sk.data", "on a listening socket");
	} else if (m->n_icons) {
		return eng__img_bad(img, "unix_sk.icons", "on a socket that is not listening");
	}
	if (m->has_listener && (m->state != 1 || m->type == SOCK_DGRAM))
		return eng__img_bad(img, "unix_sk.listener", "only a connected stream client waits in a listener");
	if (m->type == SOCK_STREAM && (m->n_msg_len || m->n_msg_from))
		return eng__img_bad(img, "unix_sk.msg_len", "a stream has no messages");
	if (m->type != SOCK_STREAM) {
		for (size_t i = 0; i < m->n_msg_len; i++)
			sum += m->msg_len[i];
		if (sum != m->data.len)
			return eng__img_bad(img, "unix_sk.msg_len", "messages of %lu bytes in %zu bytes of data",
					    (unsigned long)sum, m->data.len);
		if (m->n_msg_from && m->n_msg_from != m->n_msg_len)
			return eng__img_bad(img, "unix_sk.msg_from", "%zu senders for %zu messages", m->n_msg_from,
					    m->n_msg_len);
		for (size_t i = 0; i < m->n_msg_from; i++)
			if (!unix_name_ok(&m->msg_from[i], false))
				return eng__img_bad(img, "unix_sk.msg_from", "message %zu: not a unix socket name", i);
	}
	if ((m->has_rcvbuf && (m->rcvbuf < 0 || m->rcvbuf > (1 << 30))) ||
	    (m->has_sndbuf && (m->sndbuf < 0 || m->sndbuf > (1 << 30))))
		return eng__img_bad(img, "unix_sk.rcvbuf", "buffer sizes beyond 1 GiB");
	if (m->has_file_mode && (m->file_mode & ~07777u))
		return eng__img_bad(img, "unix_sk.file_mode", "0%o is no permission mode", m->file_mode);
	return 0;
}

static int check_inotify(struct eng_img *img, const ImgInotify *in)
{
	for (size_t i = 0; i < in->n_watches; i++) {
		const ImgInotifyWatch *w = in->watches[i];

		NEED(img, w, wd);
		NEED(img, w, mask);
		if (w->wd < 1 || (i && w->wd <= in->watches[i - 1]->wd))
			return eng__img_bad(img, "inotify.watches.wd", "%d: watch descriptors are positive and ascend",
					    w->wd);
		if (!w->has_fhandle && !w->path)
			return eng__img_bad(img, "inotify.watches.fhandle", "neither a handle nor a path for wd %d",
					    w->wd);
		if (w->has_fhandle && (w->fhandle.len == 0 || w->fhandle.len > 128 || !w->has_fhandle_type))
			return eng__img_bad(img, "inotify.watches.fhandle", "%zu bytes (1 to 128, with a type)",
					    w->fhandle.len);
		if (w->path && w->path[0] != '/')
			return eng__img_bad(img, "inotify.watches.path", "not an absolute path");
	}
	return 0;
}

/* Exactly the sub-message of the kind, if it has one. */
static int check_sub(struct eng_img *img, const ImgFile *f)
{
	const struct { const void *m; int kind; const char *name; } subs[] = {
		{ f->pipe, IMG_FILE_KIND__FILE_PIPE, "pipe" },
		{ f->eventfd, IMG_FILE_KIND__FILE_EVENTFD, "eventfd" },
		{ f->timerfd, IMG_FILE_KIND__FILE_TIMERFD, "timerfd" },
		{ f->signalfd, IMG_FILE_KIND__FILE_SIGNALFD, "signalfd" },
		{ f->epoll, IMG_FILE_KIND__FILE_EPOLL, "epoll" },
		{ f->inet, IMG_FILE_KIND__FILE_INET_SK, "inet" },
		{ f->unix_sk, IMG_FILE_KIND__FILE_UNIX_SK, "unix_sk" },
		{ f->memfd, IMG_FILE_KIND__FILE_MEMFD, "memfd" },
		{ f->inotify, IMG_FILE_KIND__FILE_INOTIFY, "inotify" },
	};
	int kind = f->kind == IMG_FILE_KIND__FILE_FIFO ? IMG_FILE_KIND__FILE_PIPE : f->kind;

	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (subs[i].kind == kind && !subs[i].m)
			return eng__img_bad(img, subs[i].name, "missing for kind %d", f->kind);
		if (subs[i].kind != kind && subs[i].m)
			return eng__img_bad(img, subs[i].name, "set on a file of kind %d", f->kind);
	}
	switch (f->kind) {
	case IMG_FILE_KIND__FILE_PIPE:
	case IMG_FILE_KIND__FILE_FIFO:
		return check_pipe(img, f);
	case IMG_FILE_KIND__FILE_EVENTFD:
		NEED(img, f->eventfd, count);
		if (f->eventfd->count == UINT64_MAX)
			return eng__img_bad(img, "eventfd.count", "an eventfd never holds 2^64-1");
		return 0;
	case IMG_FILE_KIND__FILE_TIMERFD:
		return check_timerfd(img, f->timerfd);
	case IMG_FILE_KIND__FILE_SIGNALFD:
		NEED(img, f->signalfd, sigmask);
		return 0;
	case IMG_FILE_KIND__FILE_EPOLL:
		return check_epoll(img, f->epoll);
	case IMG_FILE_KIND__FILE_INET_SK:
		return check_inet(img, f->inet);
	case IMG_FILE_KIND__FILE_UNIX_SK:
		return check_unix(img, f->unix_sk);
	case IMG_FILE_KIND__FILE_MEMFD:
		NEED(img, f->memfd, shm);
		return f->memfd->shm ? 0 : eng__img_bad(img, "memfd.shm", "0 names no object");
	case IMG_FILE_KIND__FILE_INOTIFY:
		return check_inotify(img, f->inotify);
	default:
		return 0;
	}
}

static int check_file_kind(struct eng_img *img, const ImgFile *f)
{
	static const unsigned fmt[] = { [IMG_FILE_KIND__FILE_REG] = S_IFREG,
		[IMG_FILE_KIND__FILE_DIR] = S_IFDIR, [IMG_FILE_KIND__FILE_CHR] = S_IFCHR,
		[IMG_FILE_KIND__FILE_PIPE] = S_IFIFO, [IMG_FILE_KIND__FILE_FIFO] = S_IFIFO,
		[IMG_FILE_KIND__FILE_INET_SK] = S_IFSOCK, [IMG_FILE_KIND__FILE_UNIX_SK] = S_IFSOCK };
	unsigned want = (unsigned)f->kind < sizeof(fmt) / sizeof(fmt[0]) ? fmt[f->kind] : 0;

	NEED(img, f, mode);
	if (want && (f->mode & S_IFMT) != want)
		return eng__img_bad(img, "mode", "0%o does not match kind %d", f->mode, f->kind);
	if (f->kind == IMG_FILE_KIND__FILE_CHR) {
		NEED(img, f, rdev);
	} else {
		NEED(img, f, dev);
		NEED(img, f, ino);
	}
	if (f->kind == IMG_FILE_KIND__FILE_REG)
		NEED(img, f, size);
	if (f->unlinked && f->kind != IMG_FILE_KIND__FILE_REG)
		return eng__img_bad(img, "unlinked", "only regular files' contents are kept");
	if (f->unlinked && !f->has_content_xxh3)
		return eng__img_bad(img, "content_xxh3", "missing for an unlinked file");
	if (!f->unlinked && f->has_content_xxh3)
		return eng__img_bad(img, "content_xxh3", "set for a file that was not unlinked");
	return check_sub(img, f);
}

static bool has_path(int kind)
{
	return kind == IMG_FILE_KIND__FILE_REG || kind == IMG_FILE_KIND__FILE_DIR ||
	       kind == IMG_FILE_KIND__FILE_CHR || kind == IMG_FILE_KIND__FILE_FIFO;
}

int eng__check_file(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgFile *f = (const ImgFile *)msg;
	int ret;

	NEED(img, f, id);
	if (!f->id || f->id <= img->st.files.prev_id)
		return eng__img_bad(img, "id", "%u does not ascend from %u", f->id,
				    img->st.files.prev_id);
	img->st.files.prev_id = f->id;
	NEED(img, f, kind);
	NEED(img, f, flags);
	if ((f->flags & O_ACCMODE) == O_ACCMODE)
		return eng__img_bad(img, "flags", "0x%x: no such access mode", f->flags);
	if (f->has_pos && f->pos > INT64_MAX)
		return eng__img_bad(img, "pos", "%llu is past any file offset",
				    (unsigned long long)f->pos);
	if (has_path(f->kind))
		ret = eng__check_path(img, "path", f->path);
	else
		ret = f->path ? eng__img_bad(img, "path", "set on a kind that has none") : 0;
	return ret ? ret : check_file_kind(img, f);
}

int eng__check_fd(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgFd *fd = (const ImgFd *)msg;

	NEED(img, fd, fd);
	if (fd->fd < 0)
		return eng__img_bad(img, "fd", "%d is negative", fd->fd);
	if (fd->fd < img->st.fds.next_fd)
		return eng__img_bad(img, "fd", "%d does not ascend from %lld", fd->fd,
				    (long long)img->st.fds.next_fd - 1);
	img->st.fds.next_fd = (int64_t)fd->fd + 1;
	if (fd->flags & ~(uint32_t)FD_CLOEXEC)
		return eng__img_bad(img, "flags", "0x%x: only FD_CLOEXEC is a fd flag", fd->flags);
	NEED(img, fd, kind);
	NEED(img, fd, id);
	if (!fd->id)
		return eng__img_bad(img, "id", "0 names no file");
	return 0;
}

int eng__check_pagemap_head(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgPagemapHead *h = (const ImgPagemapHead *)msg;

	NEED(img, h, pages_size);
	if (!ENG__PAGE_ALIGNED(h->pages_size))
		return eng__img_bad(img, "pages_size", "%llu is not a whole number of pages",
				    (unsigned long long)h->pages_size);
	img->st.pm.pages_size = h->pages_size;
	return 0;
}

/* A run in a page store's pack (engine/store.c): the blob's place and checksum. */
static int check_run_pack(struct eng_img *img, const ImgPagemapEntry *e)
{
	NEED(img, e, offset);
	NEED(img, e, xxh3);
	NEED(img, e, pack);
	NEED(img, e, blob_page);
	if (!e->pack)
		return eng__img_bad(img, "pack", "0 names no pack");
	if (e->offset < 64)
		return eng__img_bad(img, "offset", "%llu is inside the pack header",
				    (unsigned long long)e->offset);
	if (e->blob_page >= 256 || e->nr_pages > 256 - e->blob_page)
		return eng__img_bad(img, "blob_page", "pages [%u, +%llu) of a blob of at most 256",
				    e->blob_page, (unsigned long long)e->nr_pages);
	return 0;
}

static int check_run_data(struct eng_img *img, const ImgPagemapEntry *e, uint64_t len)
{
	if (e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK)
		return check_run_pack(img, e);
	if (e->has_pack || e->has_blob_page)
		return eng__img_bad(img, e->has_pack ? "pack" : "blob_page", "set on a run that is not in a pack");
	if (!(e->flags & IMG_PAGEMAP_FLAG__PM_IN_PAGES)) {
		if (e->has_offset || e->has_xxh3)
			return eng__img_bad(img, e->has_offset ? "offset" : "xxh3",
					    "set on a run that is not in the pages file");
		return 0;
	}
	NEED(img, e, offset);
	NEED(img, e, xxh3);
	if (!ENG__PAGE_ALIGNED(e->offset))
		return eng__img_bad(img, "offset", "0x%llx is not page aligned",
				    (unsigned long long)e->offset);
	if (e->offset > img->st.pm.pages_size || len > img->st.pm.pages_size - e->offset)
		return eng__img_bad(img, "offset", "run [0x%llx, +0x%llx) is past the %llu bytes of pages-%u.img",
				    (unsigned long long)e->offset, (unsigned long long)len,
				    (unsigned long long)img->st.pm.pages_size, img->id);
	return 0;
}

int eng__check_pagemap_entry(struct eng_img *img, const ProtobufCMessage *msg)
{
	const uint32_t known = IMG_PAGEMAP_FLAG__PM_IN_PAGES | IMG_PAGEMAP_FLAG__PM_ZERO |
			       IMG_PAGEMAP_FLAG__PM_FROM_FILE | IMG_PAGEMAP_FLAG__PM_IN_PACK;
	const ImgPagemapEntry *e = (const ImgPagemapEntry *)msg;
	uint64_t len;

	NEED(img, e, vaddr);
	NEED(img, e, nr_pages);
	NEED(img, e, flags);
	if (!ENG__PAGE_ALIGNED(e->vaddr) || e->vaddr >= ENG__USER_END)
		return eng__img_bad(img, "vaddr", "0x%llx is no user page", (unsigned long long)e->vaddr);
	if (e->vaddr < img->st.pm.prev_end)
		return eng__img_bad(img, "vaddr", "0x%llx is below the previous run's end 0x%llx",
				    (unsigned long long)e->vaddr, (unsigned long long)img->st.pm.prev_end);
	if (!e->nr_pages || e->nr_pages > (ENG__USER_END - e->vaddr) / IMG_PAGE_SIZE)
		return eng__img_bad(img, "nr_pages", "%llu pages from 0x%llx", (unsigned long long)e->nr_pages,
				    (unsigned long long)e->vaddr);
	len = e->nr_pages * IMG_PAGE_SIZE;
	img->st.pm.prev_end = e->vaddr + len;
	if ((e->flags & ~known) || __builtin_popcount(e->flags) != 1)
		return eng__img_bad(img, "flags", "0x%x: exactly one of IN_PAGES, ZERO, FROM_FILE, IN_PACK",
				    e->flags);
	return check_run_data(img, e, len);
}

/* One shared memory object: its extents lie inside it, in order, page aligned. */
int eng__check_shmem(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgShmem *o = (const ImgShmem *)msg;
	uint64_t prev = 0, lim;

	NEED(img, o, id);
	if (!o->id || o->id <= img->st.shm.prev_id)
		return eng__img_bad(img, "id", "%u does not ascend from %u", o->id, img->st.shm.prev_id);
	img->st.shm.prev_id = o->id;
	NEED(img, o, kind);
	NEED(img, o, size);
	NEED(img, o, mode);
	NEED(img, o, content_xxh3);
	if (o->size > (1ull << 46))
		return eng__img_bad(img, "size", "%llu bytes is more than we restore", (unsigned long long)o->size);
	if (o->kind == IMG_SHMEM_KIND__SHM_MEMFD && (!o->name || strlen(o->name) > 249))
		return eng__img_bad(img, "name", "a memfd needs a name of at most 249 bytes");
	if (o->kind == IMG_SHMEM_KIND__SHM_DELETED) {
		int ret = eng__check_path(img, "path", o->path);

		if (ret)
			return ret;
	}
	if (o->kind == IMG_SHMEM_KIND__SHM_SYSV) {
		NEED(img, o, sysv_id);
		NEED(img, o, sysv_key);
		if (o->sysv_id > INT32_MAX)
			return eng__img_bad(img, "sysv_id", "%u is no System V id", o->sysv_id);
	}
	if (o->n_extents % 2)
		return eng__img_bad(img, "extents", "%zu values: (offset, length) pairs", o->n_extents);
	lim = (o->size + 4095) & ~4095ull;
	for (size_t i = 0; i < o->n_extents; i += 2) {
		uint64_t off = o->extents[i], len = o->extents[i + 1];

		if (off % 4096 || len % 4096 || !len || off < prev || off > lim || len > lim - off)
			return eng__img_bad(img, "extents", "[%zu]: %#llx+%#llx: page aligned, ascending, within the %llu bytes",
					    i / 2, (unsigned long long)off, (unsigned long long)len,
					    (unsigned long long)o->size);
		prev = off + len;
	}
	return 0;
}
