/*
 * Engine logging: one message per failure, at its origin, with context. The agent plugs
 * in its own sink; hactl uses the default (stderr with "<N>" syslog priority prefixes,
 * which journald understands). The last error is kept per thread so that a caller can
 * report the first cause of a failed operation to the user.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ha/engine.h"
#include "log.h"

static eng_log_fn log_fn;
static void *log_opaque;
static int log_max = ENG_LOG_INFO;
static __thread char last_error[512];
static __thread int quiet;

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

void eng__clear_error(void)
{
	last_error[0] = 0;
}
