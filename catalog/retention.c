/*
 * Retention: which complete generations of a service survive, and forgetting old rows.
 *
 * The policy (struct cat_retention in ha/catalog.h) is evaluated on the complete
 * generations, newest first, in one write transaction. The hourly and daily buckets are
 * UTC clock hours and days, not windows sliding with `now`: once an hour is over, its
 * newest generation stays the newest of that hour, so the generation we keep for it today
 * is the one we keep for it tomorrow. With sliding windows each run would pick a different
 * representative and prune yesterday's, until nothing old was left.
 *
 * Pins (invariant 6) override the policy:
 *  - the newest complete generation: the one a failover or restart would restore;
 *  - a generation with a peer in SENDING: the sender is reading its packs, and in sync
 *    mode it is not yet known to be safe on the standby. This holds in async mode too,
 *    because pruning it would let GC unlink packs under the sender. The pin ends when the
 *    peer acknowledges or fails, or when cat_recover() fails a SENDING left by a crash;
 *  - the parent of a pending generation: an incremental checkpoint's page map points into
 *    its parent's packs before it has referenced them all (cat_pack_ref() comes as pages
 *    are mapped), and the parent's references are what keep those packs alive meanwhile.
 * Pruning drops the generation's pack references in the same transaction (cat__gen_end);
 * the pack data goes at the next GC.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "catalog-int.h"

#define US_PER_HOUR (3600LL * 1000000)
#define US_PER_DAY (24 * US_PER_HOUR)

struct ret_gen {
	int64_t id, committed_us;
	bool keep;
};

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* The complete generations of `service`, newest first, with their pins as `keep`. */
static int load(struct cat *c, int64_t service, struct ret_gen **out, size_t *n)
{
	static const char sql[] = "SELECT g.id, g.committed_us, "
		"EXISTS (SELECT 1 FROM gen_peer p WHERE p.generation = g.id AND "
		"p.state = 'sending') OR "
		"EXISTS (SELECT 1 FROM generation k WHERE k.parent = g.id AND "
		"k.state = 'pending') "
		"FROM generation g INDEXED BY generation_state "
		"WHERE g.service = ?1 AND g.state = 'complete' "
		"ORDER BY g.id DESC";
	struct ret_gen *arr = NULL;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cat__grow((void **)&arr, &cap, cnt, sizeof(*arr))) {
			cat__done(st);
			free(arr);
			return cat__err(c, -ENOMEM, "no memory for retention");
		}
		arr[cnt].id = sqlite3_column_int64(st, 0);
		arr[cnt].committed_us = sqlite3_column_int64(st, 1);
		arr[cnt].keep = sqlite3_column_int(st, 2) || cnt == 0;	/* pinned or newest */
		cnt++;
	}
	cat__done(st);
	if (rc != SQLITE_DONE) {
		free(arr);
		return cat__sqlerr(c, rc, "reading generations for retention");
	}
	*out = arr;
	*n = cnt;
	return 0;
}

/* Keep the newest generation of each of the last `count` buckets of `width` us. */
static void keep_buckets(struct ret_gen *g, size_t n, unsigned count, int64_t width,
			 int64_t now_us)
{
	int64_t oldest = floor_div(now_us, width) - count + 1;
	int64_t b, last = INT64_MIN;
	size_t i;

	if (!count)
		return;
	for (i = 0; i < n; i++) {
		b = floor_div(g[i].committed_us, width);
		if (b < oldest)
			continue;
		/* Newest first: the first one seen in a bucket is its newest. */
		if (b != last)
			g[i].keep = true;
		last = b;
	}
}

static int forget(struct cat *c, int64_t service, int64_t before_us)
{
	/* A range of the (service, state, ended_us) index: the rows it deletes, not the
	 * day of history it keeps (cat_gen_latest_complete says why INDEXED BY). */
	static const char sql[] = "DELETE FROM generation INDEXED BY generation_state "
				  "WHERE service = ?1 AND state IN ('failed', 'pruned') AND "
				  "ended_us < ?2";
	sqlite3_stmt *st;
	int ret;

	/* Their pack references are gone already; gen_peer rows go by ON DELETE CASCADE,
	 * children's parent becomes NULL. Ids are AUTOINCREMENT: never reused. */
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	sqlite3_bind_int64(st, 2, before_us);
	return cat__exec(c, st, "forgetting old generations");
}

static int apply(struct cat *c, int64_t service, const struct cat_retention *p,
		 int64_t now_us, int *pruned)
{
	struct ret_gen *g = NULL;
	size_t i, n = 0;
	int ret;

	if ((ret = load(c, service, &g, &n)))
		return ret;
	for (i = 0; i < n && i < p->keep_last; i++)
		g[i].keep = true;
	for (i = 0; i < n && p->keep_from > 0; i++)
		g[i].keep |= g[i].id >= p->keep_from;
	keep_buckets(g, n, p->keep_hourly, US_PER_HOUR, now_us);
	keep_buckets(g, n, p->keep_daily, US_PER_DAY, now_us);
	for (i = 0; i < n && !ret; i++) {
		if (g[i].keep)
			continue;
		ret = cat__gen_end(c, g[i].id, CAT_GEN_PRUNED, now_us);
		if (!ret)
			(*pruned)++;
	}
	free(g);
	if (!ret && p->forget_after_s > 0)
		ret = forget(c, service, now_us - p->forget_after_s * 1000000);
	return ret;
}

int cat_retention_apply(struct cat *c, int64_t service, const struct cat_retention *policy,
			int64_t now_us, int *pruned)
{
	int ret, nr = 0;

	cat__clear(c);
	if (pruned)
		*pruned = 0;
	if (!policy)
		return cat__err(c, -EINVAL, "retention: no policy");
	/* A century bounds every field, so that no product below can overflow. */
	if (policy->forget_after_s < 0 || policy->forget_after_s > 100LL * 366 * 86400 ||
	    policy->keep_hourly > 24 * 366 * 100 || policy->keep_daily > 366 * 100)
		return cat__err(c, -EINVAL, "retention: policy out of range");
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = apply(c, service, policy, now_us, &nr))) {
		cat__rollback(c);
		return ret;
	}
	if ((ret = cat__commit(c)))
		return ret;
	if (pruned)
		*pruned = nr;
	return 0;
}
