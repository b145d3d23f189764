/*
 * eventfd, timerfd and signalfd: anonymous inodes whose whole state fdinfo shows.
 *
 *   eventfd    "eventfd-count: %16llx", "eventfd-semaphore: %d"
 *   timerfd    "clockid", "ticks", "settime flags" (octal), "it_value: (s, ns)" (the time
 *              left, even for an absolute timer), "it_interval: (s, ns)"
 *   signalfd   "sigmask: %016llx"
 *
 * Restore recreates each with its flags. A timerfd gets its time left and its period
 * back; an absolute one gets the absolute time that leaves the same remainder, so it
 * keeps TFD_TIMER_ABSTIME (and CANCEL_ON_SET). Expirations counted but not read yet
 * go back with TFD_IOC_SET_TICKS, the kernel's ioctl for exactly this.
 * The eventfd count may exceed eventfd()'s unsigned int argument: it is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "fd-kinds.h"
#include "log.h"
#include "restore.h"

#ifndef TFD_IOC_SET_TICKS
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif
#define NSEC 1000000000ull

int eng__anon_kind(const char *link)
{
	if (!strcmp(link, "anon_inode:[eventfd]"))
		return IMG_FILE_KIND__FILE_EVENTFD;
	if (!strcmp(link, "anon_inode:[timerfd]"))
		return IMG_FILE_KIND__FILE_TIMERFD;
	if (!strcmp(link, "anon_inode:[signalfd]"))
		return IMG_FILE_KIND__FILE_SIGNALFD;
	return 0;
}

/* "key: (sec, nsec)" in nanoseconds. */
static int fdinfo_time(const char *info, const char *key, uint64_t *ns)
{
	size_t kl = strlen(key);

	for (const char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		unsigned long long s, n;

		if (strncmp(l, key, kl) || l[kl] != ':')
			continue;
		if (sscanf(l + kl + 1, " (%llu, %llu)", &s, &n) != 2)
			return -EPROTO;
		*ns = s * NSEC + n;
		return 0;
	}
	return -ENOENT;
}

static int dump_timerfd(pid_t pid, const struct eng__fd_probe *p, ImgTimerfd *t)
{
	uint64_t clk, fl;
	int ret;

	ret = eng__fdinfo_u64(p->fdinfo, "clockid", 10, &clk);
	if (!ret)
		ret = eng__fdinfo_u64(p->fdinfo, "ticks", 10, &t->ticks);
	if (!ret)
		ret = eng__fdinfo_u64(p->fdinfo, "settime flags", 8, &fl);
	if (!ret)
		ret = fdinfo_time(p->fdinfo, "it_value", &t->value_ns);
	if (!ret)
		ret = fdinfo_time(p->fdinfo, "it_interval", &t->interval_ns);
	if (ret)
		return pr_errno(-EPROTO, "pid %d: fd %d: fdinfo of a timerfd without its settings", pid, p->fd);
	t->clockid = clk;
	t->settime_flags = fl;
	t->has_clockid = t->has_ticks = t->has_settime_flags = t->has_value_ns = t->has_interval_ns = 1;
	pr_debug("pid %d: fd %d: timerfd clock %d, %" PRIu64 " ns left, every %" PRIu64 " ns, %" PRIu64
		 " ticks", pid, p->fd, t->clockid, t->value_ns, t->interval_ns, t->ticks);
	return 0;
}

int eng__anon_dump(pid_t pid, const struct eng__fd_probe *p, struct eng__file_dump *f)
{
	uint64_t v;

	switch (f->kind) {
	case IMG_FILE_KIND__FILE_EVENTFD:
		if (!(f->efd = calloc(1, sizeof(*f->efd))))
			return -ENOMEM;
		img_eventfd__init(f->efd);
		if (eng__fdinfo_u64(p->fdinfo, "eventfd-count", 16, &f->efd->count))
			return pr_errno(-EPROTO, "pid %d: fd %d: fdinfo of an eventfd without its count", pid,
					p->fd);
		f->efd->has_count = f->efd->has_semaphore = 1;
		/* Older kernels do not say; their f_flags do not keep EFD_SEMAPHORE either. */
		f->efd->semaphore = !eng__fdinfo_u64(p->fdinfo, "eventfd-semaphore", 10, &v) && v;
		return 0;
	case IMG_FILE_KIND__FILE_TIMERFD:
		if (!(f->tfd = calloc(1, sizeof(*f->tfd))))
			return -ENOMEM;
		img_timerfd__init(f->tfd);
		return dump_timerfd(pid, p, f->tfd);
	case IMG_FILE_KIND__FILE_SIGNALFD:
		if (!(f->sfd = calloc(1, sizeof(*f->sfd))))
			return -ENOMEM;
		img_signalfd__init(f->sfd);
		if (eng__fdinfo_u64(p->fdinfo, "sigmask", 16, &f->sfd->sigmask))
			return pr_errno(-EPROTO, "pid %d: fd %d: fdinfo of a signalfd without its mask", pid,
					p->fd);
		f->sfd->has_sigmask = 1;
		return 0;
	default:
		return -EINVAL;
	}
}

/* ---- restore ---------------------------------------------------------------------- */

static int open_eventfd(const ImgFile *f)
{
	const ImgEventfd *e = f->eventfd;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (e->semaphore ? EFD_SEMAPHORE : 0));

	if (fd < 0)
		return pr_errno(-errno, "file %u: eventfd", f->id);
	if (e->count && write(fd, &e->count, 8) != 8) {
		close(fd);
		return pr_errno(-errno, "file %u: eventfd count 0x%" PRIx64, f->id, e->count);
	}
	return fd;
}

static struct timespec ts_of(uint64_t ns)
{
	return (struct timespec){ .tv_sec = ns / NSEC, .tv_nsec = ns % NSEC };
}

static int set_timerfd(const ImgFile *f, int fd)
{
	const ImgTimerfd *t = f->timerfd;
	struct itimerspec its = { .it_interval = ts_of(t->interval_ns), .it_value = ts_of(t->value_ns) };
	int flags = t->settime_flags & (TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);

	/* A periodic timer that expired and was not read since is not re-armed until it is
	 * read (timerfd_read forwards it): fdinfo shows nothing left. Its next expiry is
	 * at most a period away; the expirations are in the ticks. */
	if (!t->value_ns && t->interval_ns)
		its.it_value = its.it_interval;
	if (t->value_ns && (flags & TFD_TIMER_ABSTIME)) {
		struct timespec now;

		if (clock_gettime(t->clockid, &now))
			return pr_errno(-errno, "file %u: clock %d", f->id, t->clockid);
		its.it_value = ts_of(now.tv_sec * NSEC + now.tv_nsec + t->value_ns);
	}
	if (!t->value_ns && !t->interval_ns)
		flags = 0;	/* disarmed: nothing to be absolute about */
	else if (!t->value_ns && (flags & TFD_TIMER_ABSTIME)) {
		struct timespec now;

		if (clock_gettime(t->clockid, &now))
			return pr_errno(-errno, "file %u: clock %d", f->id, t->clockid);
		its.it_value = ts_of(now.tv_sec * NSEC + now.tv_nsec + t->interval_ns);
	}
	if (timerfd_settime(fd, flags, &its, NULL))
		return pr_errno(-errno, "file %u: timerfd_settime", f->id);
	if (t->ticks && ioctl(fd, TFD_IOC_SET_TICKS, &t->ticks))
		return pr_errno(-errno, "file %u: %" PRIu64 " unread expirations (TFD_IOC_SET_TICKS)", f->id,
				t->ticks);
	return 0;
}

int rst__anon_open(struct rst_ctx *c, const ImgFile *f)
{
	int fd = -1, ret;

	(void)c;
	switch (f->kind) {
	case IMG_FILE_KIND__FILE_EVENTFD:
		fd = open_eventfd(f);
		break;
	case IMG_FILE_KIND__FILE_TIMERFD:
		fd = timerfd_create(f->timerfd->clockid, TFD_CLOEXEC | TFD_NONBLOCK);
		if (fd < 0)
			return pr_errno(-errno, "file %u: timerfd_create(clock %d)", f->id, f->timerfd->clockid);
		ret = set_timerfd(f, fd);
		if (ret) {
			close(fd);
			return ret;
		}
		break;
	case IMG_FILE_KIND__FILE_SIGNALFD:
		/* The raw syscall: glibc's sigaddset() refuses its own signals 32 and 33. */
		fd = syscall(SYS_signalfd4, -1, &f->signalfd->sigmask, 8, SFD_CLOEXEC | SFD_NONBLOCK);
		if (fd < 0)
			return pr_errno(-errno, "file %u: signalfd", f->id);
		break;
	default:
		return pr_errno(-EINVAL, "file %u: kind %d is no anonymous inode", f->id, f->kind);
	}
	if (fd < 0)
		return fd;
	/* Created non-blocking so that filling them could not block; now the process's own. */
	if (fcntl(fd, F_SETFL, f->flags)) {
		ret = pr_errno(-errno, "file %u: F_SETFL 0%o", f->id, f->flags);
		close(fd);
		return ret;
	}
	return fd;
}
