/*
 * Engine logging: one message per failure, at its origin, with context. The agent plugs
 * in its own sink; hactl uses the default (stderr with "<N>" syslog priority prefixes,
 * which journald understands). The last error is kept per thread so that a caller can
 * report the first cause of a failed operation to the user.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ha/engine.h"
#include "log.h"

static eng_log_fn log_fn;
static void *log_opaque;
static int log_max = ENG_LOG_INFO;
static __thread char last_error[512];
static __thread int quiet;

#define NR_MARKS 64
static __thread struct { const char *what; uint64_t ns, cpu; } marks[NR_MARKS];
static __thread int nr_marks;

void eng__log_quiet(bool on)
{
	quiet += on ? 1 : -1;
}

void eng_set_log(eng_log_fn fn, int max_level, void *opaque)
{
	log_fn = fn;
	log_max = max_level;
	log_opaque = opaque;
}

const char *eng_last_error(void)
{
	return last_error;
}

void eng__log(int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (quiet && level <= ENG_LOG_WARN)
		level = ENG_LOG_DEBUG;
	if (level <= ENG_LOG_ERR && !last_error[0])
		memcpy(last_error, buf, sizeof(buf));
	if (level > log_max)
		return;
	if (log_fn)
		log_fn(level, buf, log_opaque);
	else
		fprintf(stderr, "<%d>hacd: %s\n", level, buf);
}

void eng__keep_error(const char *msg)
{
	if (!last_error[0])
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

void eng__clear_error(void)
{
	last_error[0] = 0;
}

static uint64_t now_ns(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1000000000ull + t.tv_nsec;
}

void eng__tmarks_reset(void)
{
	nr_marks = 0;
	eng__tmark("start");
}

void eng__tmark(const char *what)
{
	if (nr_marks == NR_MARKS)
		return;
	marks[nr_marks].what = what;
	/* The thread's CPU time is a system call (the monotonic clock is the vdso's):
	 * only for the debug log, which prints it. */
	marks[nr_marks].cpu = log_max >= ENG_LOG_DEBUG ? now_ns(CLOCK_THREAD_CPUTIME_ID) : 0;
	marks[nr_marks++].ns = now_ns(CLOCK_MONOTONIC);
}

void eng__tmarks_take(struct eng_pause_steps *out)
{
	memset(out, 0, sizeof(*out));
	for (int i = 1; i < nr_marks; i++) {
		uint32_t us = (marks[i].ns - marks[i - 1].ns) / 1000;
		int k = 0;

		/* the same static string: the same step */
		while (k < out->n && out->s[k].what != marks[i].what)
			k++;
		if (k == ENG_PAUSE_STEPS)
			continue;
		if (k == out->n) {
			out->s[k].what = marks[i].what;
			out->n++;
		}
		out->s[k].us += us;
	}
}

void eng__tmarks_print(int pid)
{
	char buf[400];
	int len = 0;

	if (nr_marks < 2 || log_max < ENG_LOG_DEBUG) {
		nr_marks = 0;
		return;
	}
	eng__log(ENG_LOG_DEBUG, "pid %d: frozen %lu us, by step (us, wall/our cpu):", pid,
		 (unsigned long)(marks[nr_marks - 1].ns - marks[0].ns) / 1000);
	for (int i = 1; i < nr_marks; i++) {
		len += snprintf(buf + len, sizeof(buf) - len, " %s %lu/%lu", marks[i].what,
				(unsigned long)(marks[i].ns - marks[i - 1].ns) / 1000,
				(unsigned long)(marks[i].cpu - marks[i - 1].cpu) / 1000);
		if (len > (int)sizeof(buf) - 60 || i == nr_marks - 1) {
			eng__log(ENG_LOG_DEBUG, "pid %d: %s", pid, buf);
			len = 0;
		}
	}
	nr_marks = 0;
}
