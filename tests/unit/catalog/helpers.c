/* Fixtures of the catalog unit tests; see helpers.h. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "helpers.h"

void t_mkdtemp(char *buf)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(buf, PATH_MAX, "%s/hacd-cat-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	assert_non_null(mkdtemp(buf));
}

int64_t t_clock(void *opaque)
{
	struct tctx *t = opaque;

	return t->now++;
}

int t_setup(void **state)
{
	struct tctx *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t_mkdtemp(t->dir);
	snprintf(t->path, sizeof(t->path), "%s/catalog.db", t->dir);
	if (cat_open(t->path, &t->c)) {
		fprintf(stderr, "cat_open: %s\n", cat_errmsg(NULL));
		return -1;
	}
	t->now = T_EPOCH_US;
	cat_set_clock(t->c, t_clock, t);
	assert_int_equal(cat_service_ensure(t->c, "svc", &t->svc), 0);
	*state = t;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int type, struct FTW *ftw)
{
	return remove(p);
}

void t_rmrf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int t_teardown(void **state)
{
	struct tctx *t = *state;

	cat_close(t->c);
	t_rmrf(t->dir);
	free(t);
	return 0;
}

int t_sql_exec(const char *path, const char *sql)
{
	sqlite3 *db;
	char *msg = NULL;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(db, 5000);
		rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	}
	if (rc != SQLITE_OK)
		fprintf(stderr, "raw sql on %s: %s\n", path, msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc;
}

static int first(const char *path, const char *sql, const char *arg, int64_t *v, char *buf,
		 size_t size)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && arg)
		rc = sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (v)
			*v = sqlite3_column_int64(st, 0);
		if (buf)
			snprintf(buf, size, "%s", sqlite3_column_text(st, 0) ?
				 (const char *)sqlite3_column_text(st, 0) : "");
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_NOTFOUND;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

int t_sql_int(const char *path, const char *sql, int64_t *v)
{
	return first(path, sql, NULL, v, NULL, 0);
}

int t_sql_int_arg(const char *path, const char *sql, const char *arg, int64_t *v)
{
	return first(path, sql, arg, v, NULL, 0);
}

int t_sql_text(const char *path, const char *sql, char *buf, size_t size)
{
	return first(path, sql, NULL, NULL, buf, size);
}

void t_stats(int64_t gen, struct cat_gen_stats *st)
{
	st->pause_us = gen * 7;
	st->bytes_new = gen * 4096;
	st->bytes_total = gen * 8192;
	st->pages = gen * 2;
	st->checksum = (uint64_t)gen * 0x9e3779b97f4a7c15ULL;	/* uses the sign bit */
	st->store_gen = 0;
}

int64_t t_commit(struct tctx *t, int64_t parent)
{
	struct cat_gen_stats st;
	int64_t gen;

	assert_int_equal(cat_gen_begin(t->c, t->svc, parent, &gen), 0);
	t_stats(gen, &st);
	assert_int_equal(cat_gen_commit(t->c, gen, &st), 0);
	return gen;
}
