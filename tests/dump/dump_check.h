/* dump_check.h: the dump runner's victims and its image checks (dump_check.c). */
#ifndef HA_TESTS_DUMP_CHECK_H
#define HA_TESTS_DUMP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "runner.h"	/* struct victim, fail() (tests/cr/runner.c) */

/* The value after `key` on its line of a /proc file, into buf: 0 or -1. */
int proc_field(const char *path, const char *key, char *buf, size_t len);
/* The images in dir verify and hold what victim_dump announced. */
int check_images(const char *dir, const struct victim *v, const char *workdir);
/* The images of victim_dirty hold one consistent generation of its pages. */
int check_dirty(const char *dir, const struct victim *v);

#endif
