/*
 * cat_verify(): check the database file and the catalog's invariants (catalog.c) from the
 * outside, for `hactl check` and for the crash tests. Each invariant that a query can
 * observe has one query returning the first offending row; the constraints and triggers
 * should make every one of them return nothing, and this is where we find out if they
 * do not. It only reads, so it can run while the agent works.
 */
#include <errno.h>
#include <string.h>

#include "catalog-int.h"

struct check {
	const char *what;	/* the invariant, as a message */
	const char *row;	/* what the id the query returns names */
	const char *sql;	/* the id of a row that breaks it, or no row */
};

static const struct check checks[] = {
	{ "invariant 1: stats set iff complete or pruned", "generation",
	  "SELECT id FROM generation WHERE (state IN ('complete', 'pruned')) != "
	  "(committed_us IS NOT NULL AND pause_us IS NOT NULL AND bytes_new IS NOT NULL AND "
	  "bytes_total IS NOT NULL AND pages IS NOT NULL AND checksum IS NOT NULL) LIMIT 1" },
	{ "invariant 2: known generation states", "generation",
	  "SELECT id FROM generation WHERE state NOT IN "
	  "('pending', 'complete', 'failed', 'pruned') LIMIT 1" },
	{ "invariant 3: only pending and complete generations hold packs", "generation",
	  "SELECT r.generation FROM gen_pack_ref r JOIN generation g ON g.id = r.generation "
	  "WHERE g.state NOT IN ('pending', 'complete') LIMIT 1" },
	{ "invariant 4: no dead pack is referenced", "pack",
	  "SELECT p.id FROM pack p JOIN gen_pack_ref r ON r.pack = p.id "
	  "WHERE p.state = 'dead' LIMIT 1" },
	{ "invariant 6: a service with pruned generations has a complete one", "service",
	  "SELECT service FROM generation GROUP BY service "
	  "HAVING sum(state = 'pruned') > 0 AND sum(state = 'complete') = 0 LIMIT 1" },
	{ "a parent belongs to the same service", "generation",
	  "SELECT g.id FROM generation g JOIN generation p ON p.id = g.parent "
	  "WHERE p.service != g.service LIMIT 1" },
	{ "only complete generations are replicated", "generation",
	  "SELECT p.generation FROM gen_peer p JOIN generation g ON g.id = p.generation "
	  "WHERE g.state NOT IN ('complete', 'pruned') LIMIT 1" },
	{ "pack file names are one path component", "pack",
	  "SELECT id FROM pack WHERE file = '' OR file = '.' OR file = '..' OR "
	  "instr(file, '/') > 0 LIMIT 1" },
};

/* The first row of a one-column query: 0 with *id, 1 when there is none, or -errno. */
static int first_row(struct cat *c, const char *sql, int64_t *id, char *text, size_t size)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cat__sqlerr(c, rc, "preparing a check");
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		if (text)
			cat__column_text(st, 0, text, size);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return 1;
	return cat__sqlerr(c, rc, "running a check");
}

static int check_file(struct cat *c)
{
	char text[256];
	int64_t id;
	int ret;

	ret = first_row(c, "PRAGMA integrity_check", &id, text, sizeof(text));
	if (ret < 0)
		return ret;
	if (ret == 1 || strcmp(text, "ok"))
		return cat__err(c, -EUCLEAN, "integrity_check: %s", ret == 1 ? "no answer" : text);
	ret = first_row(c, "PRAGMA foreign_key_check", &id, text, sizeof(text));
	if (ret < 0)
		return ret;
	if (ret == 0)
		return cat__err(c, -EUCLEAN, "foreign_key_check: table %s has a dangling "
				"reference", text);
	return 0;
}

int cat_verify(struct cat *c)
{
	int64_t id;
	size_t i;
	int rc, ret;

	cat__clear(c);
	/* One read transaction: every check sees the same snapshot of a busy catalog. */
	rc = sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return cat__sqlerr(c, rc, "starting a check");
	if ((ret = check_file(c)))
		goto out;
	for (i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		ret = first_row(c, checks[i].sql, &id, NULL, 0);
		if (ret < 0)
			goto out;
		if (ret == 0) {
			ret = cat__err(c, -EUCLEAN, "%s: broken by %s %lld", checks[i].what,
				       checks[i].row, (long long)id);
			goto out;
		}
	}
	ret = 0;
out:
	cat__rollback(c);
	return ret;
}
