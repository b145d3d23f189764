/*
 * epoll: every watched fd with its events and data, from fdinfo's
 * "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x" lines.
 *
 * The kernel keys a watch by (file, fd number) in the process that added it, and
 * fdinfo names the number only. A process may have closed that number (the watch lives
 * on while the file is open elsewhere) or reused it for another file: kcmp's
 * KCMP_EPOLL_TFD says whether fd tfd of the process is the very file being watched,
 * and anything else is refused, as are epoll sets watching epoll sets (their restore
 * order is not done yet).
 *
 * Restore: the epoll fd is created like any other description, and filled with
 * EPOLL_CTL_ADD by target fd number once every other fd of the process is in place
 * (rst-files.c orders it). The flag bits (EPOLLET, EPOLLONESHOT, EPOLLEXCLUSIVE,
 * EPOLLWAKEUP) are part of the events fdinfo shows, and a one-shot watch that already
 * fired shows those bits alone: added back as they are, it stays disarmed. Readiness
 * is not stored: ADD polls each target, so what is ready after restore is reported.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

#define KCMP_EPOLL_TFD 7

struct kcmp_epoll_slot {
	uint32_t efd, tfd, toff;
};

struct tfd_line {
	int tfd;
	uint32_t events;
	uint64_t data;
	unsigned long ino;
};

/* The next "tfd:" line from *pos on: 1, 0 at the end, -EPROTO when malformed. */
static int next_tfd(const char **pos, struct tfd_line *t)
{
	const char *l = *pos;

	while (l && *l && strncmp(l, "tfd:", 4))
		l = strchr(l, '\n'), l = l ? l + 1 : NULL;
	if (!l || !*l)
		return 0;
	if (sscanf(l, "tfd: %d events: %" SCNx32 " data: %" SCNx64 " pos:%*d ino:%lx", &t->tfd, &t->events,
		   &t->data, &t->ino) != 4)
		return -EPROTO;
	*pos = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL;
	return 1;
}

static int check_target(pid_t pid, const struct eng__fd_probe *p, const struct tfd_line *t)
{
	struct kcmp_epoll_slot slot = { p->fd, t->tfd, 0 };
	char name[32], link[256];
	long r;

	r = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, t->tfd, &slot);
	if (r != 0)
		return eng__refuse("pid %d: fd %d: epoll watches fd %d (inode %lu), which %s: not supported yet",
				   pid, p->fd, t->tfd, t->ino,
				   r < 0 ? "is closed since" : "now holds another file");
	snprintf(name, sizeof(name), "fd/%d", t->tfd);
	if (!eng__proc_link(pid, name, link, sizeof(link)) && !strcmp(link, "anon_inode:[eventpoll]"))
		return eng__refuse("pid %d: fd %d: epoll watching epoll fd %d is not supported yet", pid,
				   p->fd, t->tfd);
	return 0;
}

int eng__epoll_check(pid_t pid, const struct eng__fd_probe *p)
{
	const char *pos = p->fdinfo;
	struct tfd_line t;
	int ret;

	while ((ret = next_tfd(&pos, &t)) > 0) {
		ret = check_target(pid, p, &t);
		if (ret)
			return ret;
	}
	if (ret)
		return pr_errno(ret, "pid %d: fd %d: unreadable epoll target in fdinfo", pid, p->fd);
	return 0;
}

int eng__epoll_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f)
{
	const char *pos = p->fdinfo;
	struct tfd_line t;
	ImgEpoll *ep = calloc(1, sizeof(*ep));
	int ret;

	if (!ep)
		return -ENOMEM;
	img_epoll__init(ep);
	f->ep = ep;
	ret = eng__epoll_check(pid, p);
	while (!ret && (ret = next_tfd(&pos, &t)) > 0) {
		ImgEpollTarget *e = calloc(1, sizeof(*e));
		void *n = realloc(ep->targets, (ep->n_targets + 1) * sizeof(*ep->targets));

		if (n)
			ep->targets = n;
		if (!e || !n) {
			free(e);
			return -ENOMEM;
		}
		img_epoll_target__init(e);
		e->has_tfd = e->has_events = e->has_data = 1;
		e->tfd = t.tfd;
		e->events = t.events;
		e->data = t.data;
		ep->targets[ep->n_targets++] = e;
		ret = 0;
	}
	if (ret < 0)
		return pr_errno(ret, "pid %d: fd %d: unreadable epoll target in fdinfo", pid, p->fd);
	pr_debug("pid %d: fd %d: epoll with %zu targets", pid, p->fd, ep->n_targets);
	return 0;
}

int rst__epoll_fill(struct rst_ctx *c, const ImgFile *f, int epfd)
{
	(void)c;
	for (size_t i = 0; i < f->epoll->n_targets; i++) {
		const ImgEpollTarget *t = f->epoll->targets[i];
		struct epoll_event ev = { .events = t->events, .data.u64 = t->data };

		if (epoll_ctl(epfd, EPOLL_CTL_ADD, t->tfd, &ev))
			return pr_errno(-errno, "file %u: epoll: watching fd %d (events 0x%x)", f->id, t->tfd,
					t->events);
	}
	return 0;
}
