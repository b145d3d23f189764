/*
 * zdtm-style helpers for victim programs (after CRIU's zdtm): a victim sets up state,
 * reports "ready" with facts the runner checks (key=value words on one line), is then
 * operated on from outside, finally verifies its own state and exits 0 (pass) or 1.
 *
 * The runner passes the write end of its ready pipe in HA_READY_FD and asks a victim to
 * finish with SIGTERM; victims that block in a syscall finish by themselves.
 */
#ifndef HA_ZDTM_H
#define HA_ZDTM_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t zdtm_stop;

static void zdtm_on_term(int sig)
{
	(void)sig;
	zdtm_stop = 1;
}

/* Install the SIGTERM handler the runner uses to end the test. */
static inline void zdtm_init(void)
{
	struct sigaction sa = { .sa_handler = zdtm_on_term };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
}

/* Tell the runner we are set up; fmt adds key=value facts to the ready line. */
static inline void zdtm_ready(const char *fmt, ...)
{
	char line[1024];
	const char *s = getenv("HA_READY_FD");
	int fd = s ? atoi(s) : -1, n;
	va_list ap;

	n = snprintf(line, sizeof(line), "ready ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (fd < 0 || write(fd, line, n) != n) {
		fprintf(stderr, "victim: cannot report ready (HA_READY_FD=%s)\n", s ? s : "unset");
		exit(2);
	}
	close(fd);
}

#define zdtm_fail(fmt, ...)                                                          \
	do {                                                                          \
		fprintf(stderr, "FAIL %s:%d: " fmt "\n", __FILE__, __LINE__, ##__VA_ARGS__); \
		exit(1);                                                              \
	} while (0)

static inline void zdtm_pass(void)
{
	exit(0);
}

#endif
