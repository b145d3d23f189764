/* Shared fixtures of the catalog unit tests: a private directory, a catalog in it with a
 * test clock, and raw sqlite access to the same file. */
#ifndef HA_TEST_CATALOG_HELPERS_H
#define HA_TEST_CATALOG_HELPERS_H

#include <limits.h>
#include <stdint.h>

#include "ha/catalog.h"

/* Room for a directory of PATH_MAX plus a file name, so that snprintf cannot cut. */
#define T_PATH_MAX (PATH_MAX + 64)

struct tctx {
	char dir[PATH_MAX];
	char path[T_PATH_MAX];
	struct cat *c;
	int64_t now;		/* the test clock; each reading advances it by 1 us */
	int64_t svc;		/* service "svc", created by t_setup */
};

/* 2024-01-01T00:00:00Z: far from 0 so that hour and day buckets are ordinary. */
#define T_EPOCH_US 1704067200000000LL
#define T_HOUR (3600LL * 1000000)
#define T_DAY (24 * T_HOUR)

int t_setup(void **state);
int t_teardown(void **state);
int64_t t_clock(void *opaque);
/* A private temporary directory into buf (PATH_MAX). */
void t_mkdtemp(char *buf);
void t_rmrf(const char *dir);

/* Raw sqlite on `path` (created if missing): run `sql`, or read the first column of its
 * first row. */
int t_sql_exec(const char *path, const char *sql);
int t_sql_int(const char *path, const char *sql, int64_t *v);
int t_sql_text(const char *path, const char *sql, char *buf, size_t size);
/* Same, with `arg` bound to ?1. */
int t_sql_int_arg(const char *path, const char *sql, const char *arg, int64_t *v);

/* The stats t_commit() writes for generation `gen`, so that tests can check them. */
void t_stats(int64_t gen, struct cat_gen_stats *st);
/* Begin and commit a generation of t->svc at t->now; its id. */
int64_t t_commit(struct tctx *t, int64_t parent);

#endif
