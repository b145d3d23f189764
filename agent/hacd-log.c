/*
 * hacd-log.c: logging and the systemd notification protocol, by hand.
 *
 * Logs go to stderr, one line each, prefixed "<N>" with the syslog priority: journald
 * turns the prefix into the entry's priority (SyslogLevelPrefix=yes, the default), and
 * on a terminal it stays readable. No libsystemd: sd_notify is one datagram to the
 * socket named by $NOTIFY_SOCKET, where a leading '@' means the abstract namespace.
 */
#include <errno.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hacd.h"

static int log_level = LOG_INFO;

void hacd_log_set_level(int level)
{
	log_level = level;
}

void hacd_log(int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	if (prio > log_level)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* One write per line, so lines from a future worker never interleave. */
	dprintf(STDERR_FILENO, "<%d>%s\n", prio, line);
}

uint64_t hacd_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

int hacd_notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t salen;
	size_t len;
	int fd, ret = 0;

	if (!path || !*path)
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, len);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';	/* abstract: the name is not NUL-terminated */
	salen = offsetof(struct sockaddr_un, sun_path) + len;

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
		ret = -errno;
		hacd_log(LOG_DEBUG, "sd_notify to %s: %s", path, strerror(errno));
	}
	close(fd);
	return ret;
}

int hacd_notifyf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return hacd_notify(buf);
}

/* libevent's own warnings would otherwise go to stderr without a priority. */
static void libevent_log_cb(int severity, const char *msg)
{
	static const int prio[] = {
		[EVENT_LOG_DEBUG] = LOG_DEBUG, [EVENT_LOG_MSG] = LOG_INFO,
		[EVENT_LOG_WARN] = LOG_WARNING, [EVENT_LOG_ERR] = LOG_ERR,
	};

	if (severity < 0 || severity > EVENT_LOG_ERR)
		severity = EVENT_LOG_ERR;
	hacd_log(prio[severity], "libevent: %s", msg);
}

void hacd_log_libevent(void)
{
	event_set_log_callback(libevent_log_cb);
}

/*
 * The loop's callbacks are timed (HACD_LOOP_CB): a status request waits for whatever
 * callback holds the loop when it arrives, so one that holds it past HELD_SLOW_US is
 * logged with what it was doing, its wall time and its CPU time. Wall far above CPU
 * means it waited (a disk, a lock, or the scheduler); CPU near wall means it computed.
 */
#define HELD_SLOW_US	20000

/* HACD_LOOP_HELD_MS lowers (or raises) it for a measurement: 1 logs nearly every
 * callback that did any disk or catalog work, for the distribution of their times. */
static uint64_t held_slow_us(void)
{
	static uint64_t us;

	if (!us) {
		const char *e = getenv("HACD_LOOP_HELD_MS");
		long ms = e ? strtol(e, NULL, 10) : 0;

		us = ms > 0 ? (uint64_t)ms * 1000 : HELD_SLOW_US;
	}
	return us;
}

static char held_what[128];

static uint64_t thread_cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

void hacd_held_begin(struct hacd_held *h)
{
	held_what[0] = 0;
	h->wall_us = hacd_now_us();
	h->cpu_us = thread_cpu_us();
}

void hacd_held_detail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(held_what, sizeof(held_what), fmt, ap);
	va_end(ap);
}

void hacd_held_report(uint64_t wall_us, uint64_t cpu_us, const char *what, const char *detail)
{
	if (wall_us < held_slow_us())
		return;
	hacd_log(LOG_NOTICE, "loop held %.1f ms (%.1f ms CPU) by %s%s%s", wall_us / 1e3,
		 cpu_us / 1e3, what, detail && detail[0] ? ": " : "", detail ? detail : "");
}

void hacd_held_end(const struct hacd_held *h, const char *what)
{
	uint64_t wall = hacd_now_us() - h->wall_us;

	if (wall >= held_slow_us())
		hacd_held_report(wall, thread_cpu_us() - h->cpu_us, what, held_what);
}
