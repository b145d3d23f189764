/*
 * Generations: the state machine (every edge, and refusals of the others), parents,
 * list order and filters, received generations, peer replication states, recovery, and
 * the event log.
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

static void test_commit_and_stats(void **state)
{
	struct tctx *t = *state;
	struct cat_gen_stats st;
	struct cat_gen g;
	int64_t gen;

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &gen), 0);
	assert_int_equal(cat_gen_get(t->c, gen, &g), 0);
	assert_int_equal(g.state, CAT_GEN_PENDING);
	assert_int_equal(g.committed_us, 0);
	assert_int_equal(g.started_us, T_EPOCH_US + 1);	/* clock read once by setup */
	t_stats(gen, &st);
	assert_int_equal(cat_gen_commit(t->c, gen, &st), 0);
	assert_int_equal(cat_gen_get(t->c, gen, &g), 0);
	assert_int_equal(g.state, CAT_GEN_COMPLETE);
	assert_true(g.committed_us > g.started_us);
	assert_memory_equal(&g.stats, &st, sizeof(st));
	assert_string_equal(cat_gen_state_name(g.state), "complete");
}

/*
 * Store generation numbers: recorded at commit, found again, and never shared by two
 * complete generations of one service (a standby must retire its own first), while
 * another service may use the same number and a failed one frees it.
 */
static void test_store_gen(void **state)
{
	struct tctx *t = *state;
	struct cat_gen_stats st;
	struct cat_gen g;
	int64_t a, b, c, other, found, svc2;

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &a), 0);
	t_stats(a, &st);
	st.store_gen = 7;
	assert_int_equal(cat_gen_commit(t->c, a, &st), 0);
	assert_int_equal(cat_gen_get(t->c, a, &g), 0);
	assert_int_equal(g.stats.store_gen, 7);
	assert_int_equal(cat_gen_find_store(t->c, t->svc, 7, &found), 0);
	assert_int_equal(found, a);
	assert_int_equal(cat_gen_find_store(t->c, t->svc, 8, &found), -ENOENT);

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &b), 0);
	assert_int_equal(cat_gen_commit(t->c, b, &st), -EEXIST);
	assert_non_null(strstr(cat_errmsg(t->c), "store generation 7"));
	assert_int_equal(cat_gen_get(t->c, b, &g), 0);
	assert_int_equal(g.state, CAT_GEN_PENDING);
	st.store_gen = -1;
	assert_int_equal(cat_gen_commit(t->c, b, &st), -EINVAL);
	st.store_gen = 0;	/* a plain directory: no number, no conflict */
	assert_int_equal(cat_gen_commit(t->c, b, &st), 0);
	assert_int_equal(cat_gen_get(t->c, b, &g), 0);
	assert_int_equal(g.stats.store_gen, 0);

	assert_int_equal(cat_service_ensure(t->c, "other", &svc2), 0);
	assert_int_equal(cat_gen_begin(t->c, svc2, 0, &other), 0);
	st.store_gen = 7;
	assert_int_equal(cat_gen_commit(t->c, other, &st), 0);

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &c), 0);
	assert_int_equal(cat_gen_fail(t->c, c), 0);
	assert_int_equal(cat_verify(t->c), 0);

	/* Its store generation went missing: complete -> pruned, and its number is free. */
	assert_int_equal(cat_gen_lost(t->c, c), -EINVAL);	/* failed, not complete */
	assert_int_equal(cat_gen_lost(t->c, a), 0);
	assert_int_equal(cat_gen_get(t->c, a, &g), 0);
	assert_int_equal(g.state, CAT_GEN_PRUNED);
	assert_true(g.ended_us > 0);
	assert_int_equal(cat_gen_find_store(t->c, t->svc, 7, &found), -ENOENT);
	assert_int_equal(cat_gen_lost(t->c, a), -EINVAL);
	assert_int_equal(cat_verify(t->c), 0);
}

/* A standby's generation outside its active peer's history: pruned, said in an event,
 * and its store number free for the peer's generation. */
static void test_retire(void **state)
{
	struct tctx *t = *state;
	struct cat_gen_stats st;
	struct cat_event *ev;
	struct cat_gen g;
	int64_t mine, theirs, found;
	size_t n;

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &mine), 0);
	t_stats(mine, &st);
	st.store_gen = 3;
	assert_int_equal(cat_gen_commit(t->c, mine, &st), 0);
	assert_int_equal(cat_gen_retire(t->c, mine, "diverged: test"), 0);
	assert_int_equal(cat_gen_get(t->c, mine, &g), 0);
	assert_int_equal(g.state, CAT_GEN_PRUNED);
	assert_int_equal(cat_gen_find_store(t->c, t->svc, 3, &found), -ENOENT);
	assert_int_equal(cat_gen_retire(t->c, mine, "again"), -EINVAL);
	assert_int_equal(cat_event_last(t->c, t->svc, 1, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].kind, "diverged");
	assert_non_null(strstr(ev[0].message, "diverged: test"));
	free(ev);
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "alpha", 3, &theirs), 0);
	assert_int_equal(cat_gen_commit(t->c, theirs, &st), 0);
	assert_int_equal(cat_gen_retire(t->c, 999, "none"), -ENOENT);
	assert_int_equal(cat_verify(t->c), 0);
}

/* A batch is one transaction: all of it lands, or (after a failure) none of it. */
static void test_batch(void **state)
{
	struct tctx *t = *state;
	struct cat_gen_stats st;
	struct cat_gen g;
	int64_t gen, pack, other;

	assert_int_equal(cat_batch_begin(t->c), 0);
	assert_int_equal(cat_batch_begin(t->c), -EBUSY);
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &gen), 0);
	assert_int_equal(cat_pack_add(t->c, t->svc, "gen-1", &pack), 0);
	assert_int_equal(cat_pack_ref(t->c, gen, pack, 4096), 0);
	assert_int_equal(cat_pack_seal(t->c, pack, 4096), 0);
	t_stats(gen, &st);
	assert_int_equal(cat_gen_commit(t->c, gen, &st), 0);
	assert_int_equal(cat_batch_end(t->c), 0);
	assert_int_equal(cat_gen_get(t->c, gen, &g), 0);
	assert_int_equal(g.state, CAT_GEN_COMPLETE);
	assert_int_equal(cat_verify(t->c), 0);

	/* A failing call undoes what the batch did before it, and stops the rest. */
	assert_int_equal(cat_batch_begin(t->c), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &other), 0);
	assert_int_equal(cat_gen_fail(t->c, gen), -EINVAL);	/* complete -> failed */
	assert_int_equal(cat_pack_add(t->c, t->svc, "gen-x", &pack), -ECANCELED);
	assert_int_equal(cat_batch_end(t->c), -ECANCELED);
	assert_int_equal(cat_gen_get(t->c, other, &g), -ENOENT);
	assert_int_equal(cat_batch_end(t->c), -EINVAL);
	/* And the catalog works normally afterwards. */
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &other), 0);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_invalid_transitions(void **state)
{
	struct tctx *t = *state;
	struct cat_gen_stats st = { 0 };
	struct cat_gen g;
	int64_t failed, done;

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &failed), 0);
	assert_int_equal(cat_gen_fail(t->c, failed), 0);
	/* failed -> complete */
	assert_int_equal(cat_gen_commit(t->c, failed, &st), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "is failed"));
	/* failed -> failed */
	assert_int_equal(cat_gen_fail(t->c, failed), -EINVAL);
	done = t_commit(t, 0);
	/* complete -> complete, complete -> failed */
	assert_int_equal(cat_gen_commit(t->c, done, &st), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "only a pending generation"));
	assert_int_equal(cat_gen_fail(t->c, done), -EINVAL);
	/* missing ones, bad stats */
	assert_int_equal(cat_gen_commit(t->c, 999, &st), -ENOENT);
	assert_int_equal(cat_gen_fail(t->c, 999), -ENOENT);
	assert_int_equal(cat_gen_get(t->c, 999, &g), -ENOENT);
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &failed), 0);
	assert_int_equal(cat_gen_commit(t->c, failed, NULL), -EINVAL);
	st.bytes_new = -1;
	assert_int_equal(cat_gen_commit(t->c, failed, &st), -EINVAL);
	/* refusals changed nothing */
	assert_int_equal(cat_gen_get(t->c, failed, &g), 0);
	assert_int_equal(g.state, CAT_GEN_PENDING);
	assert_int_equal(cat_gen_get(t->c, done, &g), 0);
	assert_int_equal(g.state, CAT_GEN_COMPLETE);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_parents(void **state)
{
	struct tctx *t = *state;
	int64_t other, full, failed, gen;

	assert_int_equal(cat_service_ensure(t->c, "other", &other), 0);
	full = t_commit(t, 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, full, &gen), 0);	/* incremental */
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &failed), 0);
	assert_int_equal(cat_gen_fail(t->c, failed), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, failed, &gen), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "only a complete one"));
	assert_int_equal(cat_gen_begin(t->c, other, full, &gen), -EINVAL);
	assert_int_equal(cat_gen_begin(t->c, t->svc, 12345, &gen), -ENOENT);
	assert_int_equal(cat_gen_begin(t->c, 777, 0, &gen), -ENOENT);
}

static void test_list_order(void **state)
{
	struct tctx *t = *state;
	struct cat_gen *list, g;
	int64_t ids[6], other, og;
	size_t n, i;

	assert_int_equal(cat_service_ensure(t->c, "other", &other), 0);
	for (i = 0; i < 6; i++) {
		if (i == 2 || i == 4) {
			assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &ids[i]), 0);
			if (i == 2)
				assert_int_equal(cat_gen_fail(t->c, ids[i]), 0);
		} else {
			ids[i] = t_commit(t, 0);
		}
		/* interleave another service's rows */
		assert_int_equal(cat_gen_begin(t->c, other, 0, &og), 0);
	}
	assert_int_equal(cat_gen_list(t->c, t->svc, 0, 0, &list, &n), 0);
	assert_int_equal(n, 6);
	for (i = 0; i < n; i++)
		assert_int_equal(list[i].id, ids[5 - i]);	/* newest first, ours only */
	free(list);

	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &list,
				      &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(list[0].id, ids[5]);
	assert_int_equal(list[3].id, ids[0]);
	free(list);
	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_PENDING) |
				      CAT_GEN_MASK(CAT_GEN_FAILED), 0, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, ids[4]);
	assert_int_equal(list[1].id, ids[2]);
	free(list);
	assert_int_equal(cat_gen_list(t->c, t->svc, 0, 2, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[1].id, ids[4]);
	free(list);
	assert_int_equal(cat_gen_list(t->c, 999, 0, 0, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_null(list);

	assert_int_equal(cat_gen_latest_complete(t->c, t->svc, &g), 0);
	assert_int_equal(g.id, ids[5]);
	assert_int_equal(cat_gen_latest_complete(t->c, other, &g), -ENOENT);
}

static void test_received(void **state)
{
	struct tctx *t = *state;
	struct cat_gen g;
	int64_t gen, again, found;

	/* A standby records a generation taken on node "alpha" as 41 there. */
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "alpha", 41, &gen), 0);
	assert_int_equal(cat_gen_find_origin(t->c, "alpha", 41, &found), 0);
	assert_int_equal(found, gen);
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "alpha", 41, &again), -EEXIST);
	/* A failed receive does not block receiving it again. */
	assert_int_equal(cat_gen_fail(t->c, gen), 0);
	assert_int_equal(cat_gen_find_origin(t->c, "alpha", 41, &found), -ENOENT);
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "alpha", 41, &again), 0);
	assert_int_equal(cat_gen_get(t->c, again, &g), 0);
	assert_string_equal(g.origin, "alpha");
	assert_int_equal(g.origin_gen, 41);
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "", 42, &again), -EINVAL);
	assert_int_equal(cat_gen_begin_from(t->c, t->svc, 0, "alpha", 0, &again), -EINVAL);
}

static void test_peer_states(void **state)
{
	struct tctx *t = *state;
	enum cat_peer_state ps;
	struct cat_gen_peer *peers;
	int64_t gen, pending;
	size_t n;

	gen = t_commit(t, 0);
	assert_int_equal(cat_gen_peer_get(t->c, gen, "beta", &ps), 0);
	assert_int_equal(ps, CAT_PEER_NONE);
	/* NONE -> CONSISTENT and NONE -> FAILED skip SENDING */
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_CONSISTENT), -EINVAL);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_FAILED), -EINVAL);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_FAILED), 0);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_CONSISTENT), 0);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_CONSISTENT), 0);
	/* CONSISTENT is final; NONE cannot be set */
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_SENDING), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "consistent -> sending"));
	assert_int_equal(cat_gen_peer_set(t->c, gen, "beta", CAT_PEER_NONE), -EINVAL);
	assert_int_equal(cat_gen_peer_set(t->c, gen, "gamma", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_peers(t->c, gen, &peers, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(peers[0].peer, "beta");
	assert_int_equal(peers[0].state, CAT_PEER_CONSISTENT);
	assert_string_equal(peers[1].peer, "gamma");
	assert_int_equal(peers[1].state, CAT_PEER_SENDING);
	free(peers);
	/* Only complete generations are sent. */
	assert_int_equal(cat_gen_begin(t->c, t->svc, gen, &pending), 0);
	assert_int_equal(cat_gen_peer_set(t->c, pending, "beta", CAT_PEER_SENDING), -EINVAL);
	assert_int_equal(cat_gen_peer_set(t->c, 999, "beta", CAT_PEER_SENDING), -ENOENT);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_recover(void **state)
{
	struct tctx *t = *state;
	enum cat_peer_state ps;
	struct cat_event *ev;
	struct cat_pack p;
	struct cat_gen *list;
	int64_t a, b, done, pack;
	size_t n;

	done = t_commit(t, 0);
	assert_int_equal(cat_gen_peer_set(t->c, done, "beta", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, done, &a), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &b), 0);
	assert_int_equal(cat_pack_add(t->c, t->svc, "pack-a", &pack), 0);
	assert_int_equal(cat_pack_ref(t->c, a, pack, 100), 0);

	/* As after a kill: reopen and recover. */
	cat_close(t->c);
	assert_int_equal(cat_open(t->path, &t->c), 0);
	cat_set_clock(t->c, t_clock, t);
	assert_int_equal(cat_recover(t->c), 2);
	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_PENDING), 0, &list,
				      &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(cat_gen_list(t->c, t->svc, CAT_GEN_MASK(CAT_GEN_FAILED), 0, &list,
				      &n), 0);
	assert_int_equal(n, 2);
	assert_true(list[0].ended_us > 0);
	free(list);
	assert_int_equal(cat_gen_peer_get(t->c, done, "beta", &ps), 0);
	assert_int_equal(ps, CAT_PEER_FAILED);
	assert_int_equal(cat_pack_get(t->c, pack, &p), 0);
	assert_int_equal(p.state, CAT_PACK_SEALED);
	assert_int_equal(cat_event_last(t->c, 0, 10, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ev[0].kind, "recover");
	free(ev);
	/* Nothing left to do the second time. */
	assert_int_equal(cat_recover(t->c), 0);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_events(void **state)
{
	struct tctx *t = *state;
	char big[3 * CAT_MSG_MAX];
	struct cat_event *ev;
	int64_t other, count;
	size_t n, i;

	assert_int_equal(cat_service_ensure(t->c, "other", &other), 0);
	for (i = 0; i < 10; i++) {
		snprintf(big, sizeof(big), "event %zu", i);
		assert_int_equal(cat_event_add(t->c, i % 2 ? other : t->svc, 6, "test", big), 0);
	}
	assert_int_equal(cat_event_add(t->c, 0, 3, "agent", "agent-wide"), 0);
	assert_int_equal(cat_event_last(t->c, 0, 3, &ev, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ev[0].message, "agent-wide");
	assert_int_equal(ev[0].service, 0);
	assert_string_equal(ev[1].message, "event 9");
	assert_true(ev[0].id > ev[1].id && ev[1].id > ev[2].id);
	free(ev);
	assert_int_equal(cat_event_last(t->c, t->svc, 100, &ev, &n), 0);
	assert_int_equal(n, 5);
	assert_string_equal(ev[0].message, "event 8");
	assert_int_equal(ev[0].level, 6);
	free(ev);
	/* Long messages are cut, never split inside a UTF-8 character. */
	memset(big, 'x', sizeof(big));
	memcpy(big + CAT_MSG_MAX - 2, "\xc3\xa9", 2);	/* straddles the cut */
	big[sizeof(big) - 1] = 0;
	assert_int_equal(cat_event_add(t->c, 0, 4, "long", big), 0);
	assert_int_equal(cat_event_last(t->c, 0, 1, &ev, &n), 0);
	assert_int_equal(strlen(ev[0].message), CAT_MSG_MAX - 2);
	free(ev);
	/* The log keeps the newest CAT_EVENT_KEEP: fill it behind the library's back. */
	assert_int_equal(t_sql_exec(t->path, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
				    "SELECT i + 1 FROM n WHERE i < 10000) INSERT INTO event "
				    "(ts_us, level, kind, message) SELECT i, 6, 'fill', 'x' "
				    "FROM n"), 0);
	assert_int_equal(cat_event_add(t->c, 0, 6, "last", "one more"), 0);
	assert_int_equal(t_sql_int(t->path, "SELECT count(*) FROM event", &count), 0);
	assert_int_equal(count, CAT_EVENT_KEEP);
	assert_int_equal(cat_event_last(t->c, 0, 1, &ev, &n), 0);
	assert_string_equal(ev[0].kind, "last");
	free(ev);
	assert_int_equal(cat_event_add(t->c, 0, 8, "bad", "level"), -EINVAL);
	assert_int_equal(cat_event_add(t->c, 0, 1, "", "kind"), -EINVAL);
	assert_int_equal(cat_event_add(t->c, 4242, 1, "svc", "missing"), -ENOENT);
}

/* A service's role: none until set, set once per change, kept across a reopen. */
static void test_roles(void **state)
{
	struct tctx *t = *state;
	enum cat_role r;
	int64_t us, us2, other;

	assert_int_equal(cat_service_ensure(t->c, "other", &other), 0);
	assert_int_equal(cat_role_get(t->c, t->svc, &r), 0);
	assert_int_equal(r, CAT_ROLE_NONE);
	assert_int_equal(cat_role_set(t->c, t->svc, CAT_ROLE_STANDBY), 0);
	assert_int_equal(cat_role_set(t->c, other, CAT_ROLE_ACTIVE), 0);
	assert_int_equal(t_sql_int(t->path, "SELECT role_us FROM service WHERE name = 'svc'",
				   &us), 0);
	/* Setting the role it has is not a change: its time stays. */
	assert_int_equal(cat_role_set(t->c, t->svc, CAT_ROLE_STANDBY), 0);
	assert_int_equal(t_sql_int(t->path, "SELECT role_us FROM service WHERE name = 'svc'",
				   &us2), 0);
	assert_int_equal(us2, us);
	assert_int_equal(cat_role_set(t->c, t->svc, CAT_ROLE_NONE), -EINVAL);
	cat_close(t->c);
	assert_int_equal(cat_open(t->path, &t->c), 0);
	assert_int_equal(cat_role_get(t->c, t->svc, &r), 0);
	assert_int_equal(r, CAT_ROLE_STANDBY);
	assert_string_equal(cat_role_name(r), "standby");
	assert_int_equal(cat_role_get(t->c, other, &r), 0);
	assert_int_equal(r, CAT_ROLE_ACTIVE);
	assert_int_equal(cat_role_set(t->c, t->svc, CAT_ROLE_ACTIVE), 0);
	assert_int_equal(cat_role_get(t->c, t->svc, &r), 0);
	assert_int_equal(r, CAT_ROLE_ACTIVE);
	/* The database refuses any other word. */
	assert_int_not_equal(t_sql_exec(t->path, "UPDATE service SET role = 'primary'"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_commit_and_stats, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_invalid_transitions, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_batch, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_store_gen, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_retire, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_parents, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_list_order, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_received, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_peer_states, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_recover, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_events, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_roles, t_setup, t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
