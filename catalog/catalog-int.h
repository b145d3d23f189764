/*
 * Catalog internals shared by catalog.c, schema.c, gen.c, pack.c, retention.c, event.c
 * and verify.c. Only catalog/ includes sqlite3.h: the public header stays free of it.
 */
#ifndef HA_CATALOG_INT_H
#define HA_CATALOG_INT_H

#include <sqlite3.h>
#include <stdbool.h>

#include "ha/catalog.h"

/*
 * UPSERT needs 3.24, SQLITE_OPEN_NOFOLLOW and PRAGMA trusted_schema 3.31. We avoid
 * STRICT tables and RETURNING (3.35+) so that RHEL 9's sqlite (3.34) can run us.
 */
#if SQLITE_VERSION_NUMBER < 3031000
#error "hacd's catalog needs sqlite 3.31 or newer"
#endif

struct cat__stmt {
	const char *sql;	/* a static string: its address is the cache key */
	sqlite3_stmt *st;
};

struct cat {
	sqlite3 *db;
	char *path;
	cat_clock_fn clock;
	void *clock_opaque;
	struct cat__stmt *stmts;
	size_t nr_stmts, max_stmts;
	char err[512];
	bool batch;		/* inside cat_batch_begin/end: one outer transaction */
	int batch_failed;	/* a call in the batch failed: the batch is rolled back */
};

/* Forget the previous error: every public call that can fail starts with it. */
void cat__clear(struct cat *c);
/* Record the first error of the current call and return `err` (a -errno). */
int cat__err(struct cat *c, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same for a sqlite result code: maps it to -errno, appends sqlite's message. */
int cat__sqlerr(struct cat *c, int rc, const char *what);
int cat__errno(int rc);

int64_t cat__now(struct cat *c);

/*
 * The prepared statement for the static string `sql`, prepared on first use and kept
 * until cat_close(). It comes back reset with no bindings; callers must cat__done() it
 * before returning, because an un-reset SELECT keeps a read transaction (and thus an old
 * WAL snapshot) open on the connection.
 */
int cat__stmt(struct cat *c, const char *sql, sqlite3_stmt **out);
/* The same, with ?1 bound to id (most statements look up one row by its id). */
int cat__stmt_id(struct cat *c, const char *sql, int64_t id, sqlite3_stmt **out);
void cat__done(sqlite3_stmt *st);
/* Step a statement that returns no row, then cat__done() it. */
int cat__exec(struct cat *c, sqlite3_stmt *st, const char *what);

/*
 * Write transactions are BEGIN IMMEDIATE: the write lock is taken (waiting up to the busy
 * timeout) before anything is read, so that what we check is still true when we write
 * and a reader-turned-writer can never be refused with SQLITE_BUSY halfway.
 */
int cat__begin(struct cat *c);
int cat__commit(struct cat *c);
void cat__rollback(struct cat *c);

/* -EINVAL unless `s` is a name: 1..CAT_NAME_MAX-1 bytes, no control characters. */
int cat__check_name(struct cat *c, const char *what, const char *s);
/* Text column `col` of the current row into `buf` (always terminated). */
void cat__column_text(sqlite3_stmt *st, int col, char *buf, size_t size);
/* Make room for one more element of `size` bytes in a malloc'ed array. */
int cat__grow(void **arr, size_t *cap, size_t n, size_t size);

/* schema.c: bring the schema to cat_schema_version(), refusing newer ones. */
int cat__migrate(struct cat *c);

/* event.c: insert an event inside the caller's transaction. */
int cat__event_insert(struct cat *c, int64_t service, int level, const char *kind,
		      const char *message);

/* gen.c */
const char *cat__gen_state_sql(enum cat_gen_state s);
int cat__gen_state_parse(const char *s, enum cat_gen_state *out);
/* pending|complete -> failed|pruned: the state, ended_us, and its pack references. */
int cat__gen_end(struct cat *c, int64_t gen, enum cat_gen_state to, int64_t now);

#endif
