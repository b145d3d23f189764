/*
 * Services and generations: the generation state machine drawn in ha/catalog.h, and
 * start-up recovery. Each transition is one write transaction that reads the current state
 * first, so that a refused transition gets a message naming the generation and its state;
 * the triggers of schema.c refuse the same transitions again should the C code be wrong.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "catalog-int.h"

static const char *const gen_state_names[] = {
	[CAT_GEN_PENDING] = "pending",
	[CAT_GEN_COMPLETE] = "complete",
	[CAT_GEN_FAILED] = "failed",
	[CAT_GEN_PRUNED] = "pruned",
};

#define GEN_COLUMNS "id, service, parent, state, started_us, committed_us, ended_us, " \
	"pause_us, bytes_new, bytes_total, pages, checksum, origin, origin_gen, store_gen"

const char *cat_gen_state_name(enum cat_gen_state s)
{
	return (unsigned)s <= CAT_GEN_PRUNED ? gen_state_names[s] : "?";
}

const char *cat__gen_state_sql(enum cat_gen_state s)
{
	return cat_gen_state_name(s);
}

int cat__gen_state_parse(const char *s, enum cat_gen_state *out)
{
	unsigned i;

	for (i = 0; s && i <= CAT_GEN_PRUNED; i++) {
		if (!strcmp(s, gen_state_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EUCLEAN;
}

/* ---- services ----------------------------------------------------------------------- */

static int service_lookup(struct cat *c, const char *name, int64_t *id)
{
	static const char sql[] = "SELECT id FROM service WHERE name = ?1";
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = cat__stmt(c, sql, &st)))
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	cat__done(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE)
		return -ENOENT;
	return cat__sqlerr(c, rc, "looking up a service");
}

int cat_service_ensure(struct cat *c, const char *name, int64_t *id)
{
	static const char sql[] = "INSERT INTO service (name, created_us) VALUES (?1, ?2) "
				  "ON CONFLICT (name) DO NOTHING";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__check_name(c, "service", name)))
		return ret;
	/* The common case reads only: no write lock, no fsync. */
	ret = service_lookup(c, name, id);
	if (ret != -ENOENT)
		return ret;
	if ((ret = cat__stmt(c, sql, &st)))
		return ret;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, cat__now(c));
	if ((ret = cat__exec(c, st, "adding a service")))
		return ret;
	ret = service_lookup(c, name, id);
	if (ret == -ENOENT)
		ret = cat__err(c, -EIO, "service %s vanished after it was added", name);
	return ret;
}

/* ---- reading generations ------------------------------------------------------------ */

static int row_to_gen(struct cat *c, sqlite3_stmt *st, struct cat_gen *g)
{
	memset(g, 0, sizeof(*g));
	g->id = sqlite3_column_int64(st, 0);
	g->service = sqlite3_column_int64(st, 1);
	g->parent = sqlite3_column_int64(st, 2);	/* NULL reads as 0 */
	if (cat__gen_state_parse((const char *)sqlite3_column_text(st, 3), &g->state))
		return cat__err(c, -EUCLEAN, "generation %lld: unknown state",
				(long long)g->id);
	g->started_us = sqlite3_column_int64(st, 4);
	g->committed_us = sqlite3_column_int64(st, 5);
	g->ended_us = sqlite3_column_int64(st, 6);
	g->stats.pause_us = sqlite3_column_int64(st, 7);
	g->stats.bytes_new = sqlite3_column_int64(st, 8);
	g->stats.bytes_total = sqlite3_column_int64(st, 9);
	g->stats.pages = sqlite3_column_int64(st, 10);
	g->stats.checksum = (uint64_t)sqlite3_column_int64(st, 11);
	cat__column_text(st, 12, g->origin, sizeof(g->origin));
	g->origin_gen = sqlite3_column_int64(st, 13);
	g->stats.store_gen = sqlite3_column_int64(st, 14);	/* NULL reads as 0 */
	return 0;
}

/* Step `st` for at most one generation: 0, -ENOENT, or an error. Resets `st`. */
static int one_gen(struct cat *c, sqlite3_stmt *st, struct cat_gen *out, const char *what)
{
	int rc = sqlite3_step(st), ret;

	if (rc == SQLITE_ROW)
		ret = row_to_gen(c, st, out);
	else if (rc == SQLITE_DONE)
		ret = -ENOENT;
	else
		ret = cat__sqlerr(c, rc, what);
	cat__done(st);
	return ret;
}

int cat_gen_get(struct cat *c, int64_t gen, struct cat_gen *out)
{
	static const char sql[] = "SELECT " GEN_COLUMNS " FROM generation WHERE id = ?1";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	ret = one_gen(c, st, out, "reading a generation");
	if (ret == -ENOENT)
		cat__err(c, ret, "no generation %lld", (long long)gen);
	return ret;
}

int cat_gen_latest_complete(struct cat *c, int64_t service, struct cat_gen *out)
{
	/* INDEXED BY: with no statistics sqlite prefers generation_service, whose order
	 * saves a sort, and walks a day of pruned rows to find the newest complete one. */
	static const char sql[] = "SELECT " GEN_COLUMNS " FROM generation "
				  "INDEXED BY generation_state "
				  "WHERE service = ?1 AND state = 'complete' "
				  "ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	ret = one_gen(c, st, out, "reading the latest generation");
	if (ret == -ENOENT)
		cat__err(c, ret, "service %lld has no complete generation", (long long)service);
	return ret;
}

/* Step `st` for at most one id: 0 with *id, -ENOENT (no message), or an error naming
 * `what`. Resets `st`. */
static int one_id(struct cat *c, sqlite3_stmt *st, int64_t *id, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		*id = sqlite3_column_int64(st, 0);
	cat__done(st);
	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : cat__sqlerr(c, rc, what);
}

int cat_gen_find_store(struct cat *c, int64_t service, int64_t store_gen, int64_t *gen)
{
	static const char sql[] = "SELECT id FROM generation WHERE service = ?1 AND "
				  "store_gen = ?2 AND state = 'complete'";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	sqlite3_bind_int64(st, 2, store_gen);
	ret = one_id(c, st, gen, "finding a page-store generation");
	if (ret == -ENOENT)
		cat__err(c, ret, "service %lld has no complete generation %lld in its page store",
			 (long long)service, (long long)store_gen);
	return ret;
}

int cat_gen_find_origin(struct cat *c, const char *origin, int64_t origin_gen, int64_t *gen)
{
	static const char sql[] = "SELECT id FROM generation WHERE origin = ?1 AND "
				  "origin_gen = ?2 AND state IN ('pending', 'complete')";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__check_name(c, "origin", origin)) || (ret = cat__stmt(c, sql, &st)))
		return ret;
	sqlite3_bind_text(st, 1, origin, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, origin_gen);
	ret = one_id(c, st, gen, "finding a received generation");
	if (ret == -ENOENT)
		cat__err(c, ret, "no generation %lld from %s", (long long)origin_gen, origin);
	return ret;
}

int cat_gen_list(struct cat *c, int64_t service, unsigned states, size_t limit,
		 struct cat_gen **out, size_t *n)
{
	/* One state per slot, NULL in the unused ones (IN (NULL) matches nothing), through
	 * the (service, state) index: anything else visits every row of the service, a
	 * day of pruned history included (see cat_gen_latest_complete). LIMIT -1 is none. */
	static const char some[] = "SELECT " GEN_COLUMNS " FROM generation INDEXED BY "
		"generation_state WHERE service = ?1 AND state IN (?3, ?4, ?5, ?6) "
		"ORDER BY id DESC LIMIT ?2";
	static const char all[] = "SELECT " GEN_COLUMNS " FROM generation WHERE service = ?1 "
		"ORDER BY id DESC LIMIT ?2";
	struct cat_gen *arr = NULL;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *st;
	int rc, ret;

	cat__clear(c);
	*out = NULL;
	*n = 0;
	if ((ret = cat__stmt(c, states ? some : all, &st)))
		return ret;
	sqlite3_bind_int64(st, 1, service);
	sqlite3_bind_int64(st, 2, limit ? (int64_t)limit : -1);
	for (int i = CAT_GEN_PENDING; states && i <= CAT_GEN_PRUNED; i++)
		if (states & CAT_GEN_MASK(i))
			sqlite3_bind_text(st, 3 + i, cat__gen_state_sql(i), -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cat__grow((void **)&arr, &cap, cnt, sizeof(*arr))) {
			ret = cat__err(c, -ENOMEM, "no memory for the generation list");
			goto err;
		}
		if ((ret = row_to_gen(c, st, &arr[cnt++])))
			goto err;
	}
	if (rc != SQLITE_DONE) {
		ret = cat__sqlerr(c, rc, "listing generations");
		goto err;
	}
	cat__done(st);
	*out = arr;
	*n = cnt;
	return 0;
err:
	cat__done(st);
	free(arr);
	return ret;
}

/* ---- transitions -------------------------------------------------------------------- */

/* State and service of `gen`, inside the caller's transaction. */
static int gen_state(struct cat *c, int64_t gen, enum cat_gen_state *state, int64_t *service)
{
	static const char sql[] = "SELECT state, service FROM generation WHERE id = ?1";
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		ret = cat__gen_state_parse((const char *)sqlite3_column_text(st, 0), state);
		if (ret)
			cat__err(c, ret, "generation %lld: unknown state", (long long)gen);
		if (service)
			*service = sqlite3_column_int64(st, 1);
	} else if (rc == SQLITE_DONE) {
		ret = cat__err(c, -ENOENT, "no generation %lld", (long long)gen);
	} else {
		ret = cat__sqlerr(c, rc, "reading a generation's state");
	}
	cat__done(st);
	return ret;
}

/* Inside the transaction: the service exists, and so does the parent, complete and its. */
static int check_begin(struct cat *c, int64_t service, int64_t parent)
{
	static const char sql[] = "SELECT 1 FROM service WHERE id = ?1";
	enum cat_gen_state pstate;
	int64_t pservice;
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	rc = sqlite3_step(st);
	cat__done(st);
	if (rc == SQLITE_DONE)
		return cat__err(c, -ENOENT, "no service %lld", (long long)service);
	if (rc != SQLITE_ROW)
		return cat__sqlerr(c, rc, "checking a service");
	if (!parent)
		return 0;
	if ((ret = gen_state(c, parent, &pstate, &pservice)))
		return ret;
	if (pservice != service)
		return cat__err(c, -EINVAL, "parent generation %lld belongs to service %lld, "
				"not %lld", (long long)parent, (long long)pservice,
				(long long)service);
	if (pstate != CAT_GEN_COMPLETE)
		return cat__err(c, -EINVAL, "parent generation %lld is %s: only a complete one "
				"can be the base of a new one", (long long)parent,
				cat_gen_state_name(pstate));
	return 0;
}

static int gen_begin(struct cat *c, int64_t service, int64_t parent, const char *origin,
		     int64_t origin_gen, int64_t *gen)
{
	static const char sql[] = "INSERT INTO generation (service, parent, state, started_us, "
				  "origin, origin_gen) VALUES (?1, ?2, 'pending', ?3, ?4, ?5)";
	sqlite3_stmt *st;
	int ret;

	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = check_begin(c, service, parent)) || (ret = cat__stmt_id(c, sql, service, &st)))
		goto err;
	if (parent)
		sqlite3_bind_int64(st, 2, parent);
	sqlite3_bind_int64(st, 3, cat__now(c));
	if (origin) {
		sqlite3_bind_text(st, 4, origin, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, origin_gen);
	}
	ret = cat__exec(c, st, "adding a generation");
	if (ret == -EEXIST)
		cat__err(c, ret, "generation %lld from %s is already here", (long long)origin_gen,
			 origin);
	if (ret)
		goto err;
	*gen = sqlite3_last_insert_rowid(c->db);
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

int cat_gen_begin(struct cat *c, int64_t service, int64_t parent, int64_t *gen)
{
	cat__clear(c);
	return gen_begin(c, service, parent, NULL, 0, gen);
}

int cat_gen_begin_from(struct cat *c, int64_t service, int64_t parent, const char *origin,
		       int64_t origin_gen, int64_t *gen)
{
	int ret;

	cat__clear(c);
	if ((ret = cat__check_name(c, "origin", origin)))
		return ret;
	if (origin_gen <= 0)
		return cat__err(c, -EINVAL, "origin generation id %lld from %s is not > 0",
				(long long)origin_gen, origin);
	return gen_begin(c, service, parent, origin, origin_gen, gen);
}

static int check_stats(struct cat *c, int64_t gen, const struct cat_gen_stats *s)
{
	if (!s)
		return cat__err(c, -EINVAL, "generation %lld: commit without stats",
				(long long)gen);
	if (s->pause_us < 0 || s->bytes_new < 0 || s->bytes_total < 0 || s->pages < 0 ||
	    s->store_gen < 0)
		return cat__err(c, -EINVAL, "generation %lld: negative pause, size, page "
				"count or store generation", (long long)gen);
	return 0;
}

/* In the commit's transaction: the unique index would refuse it too, less clearly. */
static int store_gen_free(struct cat *c, int64_t gen, int64_t store_gen)
{
	static const char sql[] = "SELECT o.id FROM generation o, generation g WHERE "
		"g.id = ?1 AND o.service = g.service AND o.store_gen = ?2 AND "
		"o.state = 'complete'";
	sqlite3_stmt *st;
	int64_t other = 0;
	int ret;

	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	sqlite3_bind_int64(st, 2, store_gen);
	ret = one_id(c, st, &other, "checking a store generation");
	if (!ret)
		return cat__err(c, -EEXIST, "generation %lld: store generation %lld is already "
				"complete generation %lld of its service", (long long)gen,
				(long long)store_gen, (long long)other);
	return ret == -ENOENT ? 0 : ret;
}

int cat_gen_commit(struct cat *c, int64_t gen, const struct cat_gen_stats *s)
{
	static const char sql[] = "UPDATE generation SET state = 'complete', committed_us = ?2, "
		"pause_us = ?3, bytes_new = ?4, bytes_total = ?5, pages = ?6, checksum = ?7, "
		"store_gen = ?8 WHERE id = ?1";
	enum cat_gen_state state;
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = check_stats(c, gen, s)) || (ret = cat__begin(c)))
		return ret;
	if ((ret = gen_state(c, gen, &state, NULL)))
		goto err;
	if (state != CAT_GEN_PENDING) {
		ret = cat__err(c, -EINVAL, "generation %lld is %s: only a pending generation "
			       "can be committed", (long long)gen, cat_gen_state_name(state));
		goto err;
	}
	if (s->store_gen && (ret = store_gen_free(c, gen, s->store_gen)))
		goto err;
	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		goto err;
	sqlite3_bind_int64(st, 2, cat__now(c));
	sqlite3_bind_int64(st, 3, s->pause_us);
	sqlite3_bind_int64(st, 4, s->bytes_new);
	sqlite3_bind_int64(st, 5, s->bytes_total);
	sqlite3_bind_int64(st, 6, s->pages);
	sqlite3_bind_int64(st, 7, (int64_t)s->checksum);	/* the bit pattern */
	if (s->store_gen)
		sqlite3_bind_int64(st, 8, s->store_gen);
	if ((ret = cat__exec(c, st, "committing a generation")))
		goto err;
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

int cat__gen_end(struct cat *c, int64_t gen, enum cat_gen_state to, int64_t now)
{
	static const char upd[] = "UPDATE generation SET state = ?2, ended_us = ?3 WHERE id = ?1";
	static const char del[] = "DELETE FROM gen_pack_ref WHERE generation = ?1";
	sqlite3_stmt *st;
	int ret;

	if ((ret = cat__stmt_id(c, upd, gen, &st)))
		return ret;
	sqlite3_bind_text(st, 2, cat__gen_state_sql(to), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	if ((ret = cat__exec(c, st, "ending a generation")))
		return ret;
	/* Invariant 3: its packs become collectable in the same transaction. */
	if ((ret = cat__stmt_id(c, del, gen, &st)))
		return ret;
	return cat__exec(c, st, "dropping a generation's pack references");
}

/* One edge of the state machine out of `from` into an end state, in one transaction. */
static int gen_end(struct cat *c, int64_t gen, enum cat_gen_state from, enum cat_gen_state to)
{
	enum cat_gen_state state;
	int ret;

	cat__clear(c);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = gen_state(c, gen, &state, NULL)))
		goto err;
	if (state != from) {
		ret = cat__err(c, -EINVAL, "generation %lld is %s: only a %s generation can become "
			       "%s", (long long)gen, cat_gen_state_name(state),
			       cat_gen_state_name(from), cat_gen_state_name(to));
		goto err;
	}
	if ((ret = cat__gen_end(c, gen, to, cat__now(c))))
		goto err;
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

int cat_gen_fail(struct cat *c, int64_t gen)
{
	return gen_end(c, gen, CAT_GEN_PENDING, CAT_GEN_FAILED);
}

int cat_gen_lost(struct cat *c, int64_t gen)
{
	return gen_end(c, gen, CAT_GEN_COMPLETE, CAT_GEN_PRUNED);
}

int cat_gen_retire(struct cat *c, int64_t gen, const char *why)
{
	struct cat_gen g;
	char msg[CAT_MSG_MAX];
	int ret;

	if ((ret = cat_gen_get(c, gen, &g)) || (ret = cat_gen_lost(c, gen)))
		return ret;
	snprintf(msg, sizeof(msg), "generation %lld retired: %s", (long long)gen, why);
	return cat_event_add(c, g.service, LOG_WARNING, "diverged", msg);
}

/* ---- start-up recovery ------------------------------------------------------------ */

int cat_recover(struct cat *c)
{
	static const char fail[] = "UPDATE generation SET state = 'failed', ended_us = ?1 "
				   "WHERE state = 'pending'";
	static const char refs[] = "DELETE FROM gen_pack_ref WHERE generation IN "
				   "(SELECT id FROM generation WHERE state IN ('failed', 'pruned'))";
	static const char peers[] = "UPDATE gen_peer SET state = 'failed', updated_us = ?1 "
				    "WHERE state = 'sending'";
	static const char packs[] = "UPDATE pack SET state = 'sealed' WHERE state = 'open'";
	static const char *const steps[] = { fail, refs, peers, packs };
	int64_t now = cat__now(c);
	char msg[128];
	sqlite3_stmt *st;
	int i, nr = 0, ret;

	cat__clear(c);
	if ((ret = cat__begin(c)))
		return ret;
	/* One transaction: a crash during recovery leaves it to be done again whole. */
	for (i = 0; i < 4; i++) {
		if ((ret = cat__stmt(c, steps[i], &st)))
			goto err;
		if (sqlite3_bind_parameter_count(st))
			sqlite3_bind_int64(st, 1, now);
		if ((ret = cat__exec(c, st, "recovering the catalog")))
			goto err;
		if (i == 0)
			nr = sqlite3_changes(c->db);
	}
	if (nr) {
		snprintf(msg, sizeof(msg), "%d unfinished generation%s marked failed at "
			 "start-up", nr, nr == 1 ? "" : "s");
		if ((ret = cat__event_insert(c, 0, 4, "recover", msg)))
			goto err;
	}
	if ((ret = cat__commit(c)))
		return ret;
	return nr;
err:
	cat__rollback(c);
	return ret;
}
