/* dump_check.h: the dump runner's victims and its image checks (dump_check.c). */
#ifndef HA_TESTS_DUMP_CHECK_H
#define HA_TESTS_DUMP_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MAX_FACTS 32

struct victim {
	pid_t pid;
	char line[2048];	/* the ready line, split into key=value facts */
	const char *keys[MAX_FACTS];
	const char *vals[MAX_FACTS];
	int nr_facts;
};

/* tests/cr/runner.c: prints "FAIL: ..." and returns 1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *fact(const struct victim *v, const char *key);
/* The fact as a number (0x... allowed), -1 when missing. */
long fact_num(const struct victim *v, const char *key);
void kill_victim(struct victim *v);
/* The value after `key` on its line of a /proc file, into buf: 0 or -1. */
int proc_field(const char *path, const char *key, char *buf, size_t len);
/* The images in dir verify and hold what victim_dump announced. */
int check_images(const char *dir, const struct victim *v, const char *workdir);
/* The images of victim_dirty hold one consistent generation of its pages. */
int check_dirty(const char *dir, const struct victim *v);

#endif
