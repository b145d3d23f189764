/*
 * Retention with synthetic commit times: keep-last, hourly and daily UTC buckets, the
 * pins that override the policy (newest complete, SENDING peer, parent of a pending
 * generation), idempotence, and forgetting old rows.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "helpers.h"

#define MIN (60LL * 1000000)

/* A complete generation of t->svc committed at `at` (+1 us). */
static int64_t gen_at(struct tctx *t, int64_t at)
{
	t->now = at;
	return t_commit(t, 0);
}

/* Assert that the complete generations are exactly `ids` (newest first). */
static void expect_complete(struct tctx *t, const int64_t *ids, size_t nr)
{
	struct cat_gen *list;
	size_t n, i;

	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &list,
				      &n), 0);
	for (i = 0; i < n && i < nr; i++)
		if (list[i].id != ids[i])
			fprintf(stderr, "kept[%zu] = %lld, expected %lld\n", i,
				(long long)list[i].id, (long long)ids[i]);
	assert_int_equal(n, nr);
	for (i = 0; i < n; i++)
		assert_int_equal(list[i].id, ids[i]);
	free(list);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_keep_last(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 3 };
	int64_t ids[10];
	int i, pruned;

	for (i = 0; i < 10; i++)
		ids[i] = gen_at(t, T_EPOCH_US + i * T_HOUR);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 10 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 7);
	expect_complete(t, (int64_t[]){ ids[9], ids[8], ids[7] }, 3);
	/* Applying it again changes nothing. */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 10 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 0);
}

/* Sync replication's floor: the acknowledged generation and all after it survive
 * keep_last; older ones go as usual. */
static void test_keep_from(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 2 };
	int64_t ids[8];
	int i, pruned;

	for (i = 0; i < 8; i++)
		ids[i] = gen_at(t, T_EPOCH_US + i * T_HOUR);
	p.keep_from = ids[3];
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 8 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 3);
	expect_complete(t, (int64_t[]){ ids[7], ids[6], ids[5], ids[4], ids[3] }, 5);
	/* Acknowledged up to the newest: keep_last rules again. */
	p.keep_from = ids[7];
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 8 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 3);
	expect_complete(t, (int64_t[]){ ids[7], ids[6] }, 2);
}

static void test_never_prunes_newest(void **state)
{
	struct tctx *t = *state;
	struct cat_retention none = { 0 };
	struct cat_gen g;
	int64_t ids[4], pending;
	int i, pruned;

	for (i = 0; i < 4; i++)
		ids[i] = gen_at(t, T_EPOCH_US + i * T_DAY);
	/* A newer pending one (no parent) is not a complete one: it does not count. */
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &pending), 0);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &none, T_EPOCH_US + 400 * T_DAY,
					     &pruned), 0);
	assert_int_equal(pruned, 3);
	expect_complete(t, &ids[3], 1);
	assert_int_equal(cat_gen_get(t->c, ids[0], &g), 0);
	assert_int_equal(g.state, CAT_GEN_PRUNED);
	assert_int_equal(g.ended_us, T_EPOCH_US + 400 * T_DAY);
	assert_memory_not_equal(&g.stats, &(struct cat_gen_stats){ 0 }, sizeof(g.stats));
	/* Failing the pending one and applying again still keeps the newest complete. */
	assert_int_equal(cat_gen_fail(t->c, pending), 0);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &none, T_EPOCH_US + 401 * T_DAY,
					     &pruned), 0);
	assert_int_equal(pruned, 0);
	expect_complete(t, &ids[3], 1);
	/* A pruned generation cannot be committed, failed or pruned again. */
	assert_int_equal(cat_gen_fail(t->c, ids[0]), -EINVAL);
	assert_int_equal(cat_retention_apply(t->c, t->svc, NULL, 0, &pruned), -EINVAL);
}

static void test_hourly(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 1, .keep_hourly = 3 };
	int64_t base = T_EPOCH_US + 100 * T_HOUR, ids[12];
	int h, pruned;

	/* Two generations an hour, at :10 and :50, in hours 0..5. */
	for (h = 0; h < 6; h++) {
		ids[2 * h] = gen_at(t, base + h * T_HOUR + 10 * MIN);
		ids[2 * h + 1] = gen_at(t, base + h * T_HOUR + 50 * MIN);
	}
	/* Now is 5:55: the last 3 clock hours are 3, 4 and 5; each keeps its :50. */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, base + 5 * T_HOUR + 55 * MIN,
					     &pruned), 0);
	assert_int_equal(pruned, 9);
	expect_complete(t, (int64_t[]){ ids[11], ids[9], ids[7] }, 3);
	/* An hour later hour 3 leaves the window: its representative goes, the others stay. */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, base + 6 * T_HOUR + 1 * MIN,
					     &pruned), 0);
	assert_int_equal(pruned, 1);
	expect_complete(t, (int64_t[]){ ids[11], ids[9] }, 2);
}

/* Four generations a day, at 00:01, 06:01, 12:01 and 18:01, for days 0..9; ids[d][k]. */
static void four_a_day(struct tctx *t, int64_t base, int64_t ids[10][4])
{
	int d, k;

	for (d = 0; d < 10; d++)
		for (k = 0; k < 4; k++)
			ids[d][k] = gen_at(t, base + d * T_DAY + k * 6 * T_HOUR + MIN);
}

static void test_daily(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 1, .keep_daily = 3 };
	int64_t base = T_EPOCH_US + 10 * T_DAY, ids[10][4], extra;
	int pruned;

	four_a_day(t, base, ids);
	extra = gen_at(t, base + 9 * T_DAY + 22 * T_HOUR + 5 * MIN);	/* day 9, 22:05 */
	/* Day 9's newest is now `extra`; days 8 and 7 keep their 18:01. */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, base + 9 * T_DAY + 23 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 38);
	expect_complete(t, (int64_t[]){ extra, ids[8][3], ids[7][3] }, 3);
}

static void test_hourly_and_daily(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 2, .keep_hourly = 6, .keep_daily = 2 };
	int64_t base = T_EPOCH_US + 10 * T_DAY, ids[10][4], extra;
	int pruned;

	four_a_day(t, base, ids);
	extra = gen_at(t, base + 9 * T_DAY + 22 * T_HOUR + 5 * MIN);
	/*
	 * keep_last 2: extra, day 9 18:01. Hours 18..23 of day 9: extra, 18:01 again.
	 * Days 8 and 9: day 8's 18:01, extra. Everything else goes.
	 */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, base + 9 * T_DAY + 23 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 38);
	expect_complete(t, (int64_t[]){ extra, ids[9][3], ids[8][3] }, 3);
}

static void test_pins(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 1 };
	int64_t g[5], pending;
	int i, pruned;

	for (i = 0; i < 5; i++)
		g[i] = gen_at(t, T_EPOCH_US + i * T_HOUR);
	/* g[1] is the base of a checkpoint in progress; g[2] is being sent. */
	assert_int_equal(cat_gen_begin(t->c, t->svc, g[1], &pending), 0);
	assert_int_equal(cat_gen_peer_set(t->c, g[2], "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peer_set(t->c, g[3], "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peer_set(t->c, g[3], "beta", CAT_PEER_CONSISTENT), 0);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 6 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 2);	/* g[0], and g[3] whose send is over */
	expect_complete(t, (int64_t[]){ g[4], g[2], g[1] }, 3);
	/* The pins end with the checkpoint and with the transfer. */
	assert_int_equal(cat_gen_fail(t->c, pending), 0);
	assert_int_equal(cat_gen_peer_set(t->c, g[2], "beta", CAT_PEER_FAILED), 0);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, T_EPOCH_US + 7 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 2);
	expect_complete(t, &g[4], 1);
}

static void test_forget(void **state)
{
	struct tctx *t = *state;
	struct cat_retention keep = { .keep_last = 1 };
	struct cat_retention forget = { .keep_last = 1, .forget_after_s = 3600 };
	struct cat_gen g;
	int64_t old, failed, child, last;
	int pruned;

	old = gen_at(t, T_EPOCH_US);
	assert_int_equal(cat_gen_peer_set(t->c, old, "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peer_set(t->c, old, "beta", CAT_PEER_CONSISTENT), 0);
	t->now = T_EPOCH_US + T_HOUR;
	assert_int_equal(cat_gen_begin(t->c, t->svc, old, &failed), 0);
	assert_int_equal(cat_gen_fail(t->c, failed), 0);
	t->now = T_EPOCH_US + 2 * T_HOUR;
	assert_int_equal(cat_gen_begin(t->c, t->svc, old, &child), 0);
	assert_int_equal(cat_gen_commit(t->c, child, &(struct cat_gen_stats){ 0 }), 0);
	last = gen_at(t, T_EPOCH_US + 3 * T_HOUR);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &keep, T_EPOCH_US + 3 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(pruned, 2);	/* old, child */
	/* Ended 3 h ago (failed at +1 h) and just now (pruned at +3 h): one goes. */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &forget, T_EPOCH_US + 4 * T_HOUR - 1,
					     &pruned), 0);
	assert_int_equal(pruned, 0);
	assert_int_equal(cat_gen_get(t->c, failed, &g), -ENOENT);
	assert_int_equal(cat_gen_get(t->c, old, &g), 0);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &forget, T_EPOCH_US + 5 * T_HOUR,
					     &pruned), 0);
	assert_int_equal(cat_gen_get(t->c, old, &g), -ENOENT);
	assert_int_equal(cat_gen_get(t->c, child, &g), -ENOENT);
	assert_int_equal(cat_gen_get(t->c, last, &g), 0);
	assert_int_equal(cat_verify(t->c), 0);
	/* New ids never reuse forgotten ones. */
	assert_true(gen_at(t, T_EPOCH_US + 6 * T_HOUR) > last);
}

/*
 * A service checkpointed every second keeps 86400 pruned rows a day until they are
 * forgotten. What runs every second (retention, the store GC's and the sender's lists
 * of complete generations, status's newest one) must not walk them: its cost in VM
 * steps with 20000 pruned rows stays that of an empty history.
 */
static int64_t hot_queries(struct tctx *t)
{
	struct cat_retention p = { .keep_last = 5, .forget_after_s = 86400 };
	struct cat_gen *list, g;
	size_t n;
	int pruned;

	cat_vm_steps(t->c, true);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, t->now, &pruned), 0);
	assert_int_equal(pruned, 0);
	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &list, &n), 0);
	assert_int_equal(n, 5);
	free(list);
	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_COMPLETE) |
				      CAT_GEN_MASK(CAT_GEN_PENDING), 0, &list, &n), 0);
	assert_int_equal(n, 5);
	free(list);
	assert_int_equal(cat_gen_latest_complete(t->c, t->svc, &g), 0);
	return (int64_t)cat_vm_steps(t->c, false);
}

static void test_history_cost(void **state)
{
	struct tctx *t = *state;
	struct cat_retention p = { .keep_last = 5 };
	int64_t before, after, hist;
	char sql[1024];
	int i, pruned;

	for (i = 0; i < 10; i++)
		gen_at(t, T_EPOCH_US + i * MIN);
	assert_int_equal(cat_retention_apply(t->c, t->svc, &p, t->now, &pruned), 0);
	assert_int_equal(pruned, 5);
	before = hot_queries(t);
	/* The history, forged: created pending, then through complete to pruned, as the
	 * triggers allow; ended a minute ago, so not forgotten. */
	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
		 "INSERT INTO generation (service, state, started_us) SELECT %lld, 'pending', "
		 "%lld FROM n; "
		 "UPDATE generation SET state = 'complete', committed_us = started_us, "
		 "pause_us = 0, bytes_new = 0, bytes_total = 0, pages = 0, checksum = 0 "
		 "WHERE state = 'pending'; "
		 "UPDATE generation SET state = 'pruned', ended_us = %lld WHERE state = "
		 "'complete' AND started_us = %lld;",
		 (long long)t->svc, (long long)(t->now - 2 * MIN), (long long)(t->now - MIN),
		 (long long)(t->now - 2 * MIN));
	assert_int_equal(t_sql_exec(t->path, sql), 0);
	assert_int_equal(t_sql_int(t->path, "SELECT count(*) FROM generation WHERE state = "
				   "'pruned'", &hist), 0);
	assert_int_equal(hist, 20005);
	after = hot_queries(t);
	fprintf(stderr, "hot queries: %lld VM steps with no history, %lld with 20000 pruned "
		"rows\n", (long long)before, (long long)after);
	/* Walking the history would cost several steps per row: 100000s. */
	assert_true(after < 2 * before + 1000);
	assert_int_equal(cat_verify(t->c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keep_last, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_keep_from, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_never_prunes_newest, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_hourly, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_daily, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_hourly_and_daily, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_pins, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_forget, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_history_cost, t_setup, t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
