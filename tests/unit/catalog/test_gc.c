/*
 * Packs and garbage collection: the reference rules, GC returning exactly the sealed packs
 * no pending or complete generation refers to (by hand, then against a model over random
 * histories), and GC surviving a real kill between cat_gc_begin() and cat_gc_done().
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

static int64_t pack(struct tctx *t, const char *name, bool seal)
{
	int64_t id;

	assert_int_equal(cat_pack_add(t->c, t->svc, name, &id), 0);
	if (seal)
		assert_int_equal(cat_pack_seal(t->c, id, 4096), 0);
	return id;
}

/* cat_gc_begin() must return exactly `ids`, in id order. */
static void expect_gc(struct tctx *t, const int64_t *ids, size_t nr)
{
	struct cat_pack *dead;
	size_t n, i;

	assert_int_equal(cat_gc_begin(t->c, &dead, &n), 0);
	for (i = 0; i < n; i++)
		if (i >= nr || dead[i].id != ids[i])
			fprintf(stderr, "gc[%zu] = pack %lld\n", i, (long long)dead[i].id);
	assert_int_equal(n, nr);
	for (i = 0; i < n; i++) {
		assert_int_equal(dead[i].id, ids[i]);
		assert_int_equal(dead[i].state, CAT_PACK_DEAD);
	}
	free(dead);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_pack_rules(void **state)
{
	struct tctx *t = *state;
	struct cat_pack *packs, p;
	char longname[CAT_FILE_MAX + 1];
	int64_t gen, done, a, b, id;
	size_t n;

	assert_int_equal(cat_pack_add(t->c, t->svc, "../etc/passwd", &id), -EINVAL);
	assert_int_equal(cat_pack_add(t->c, t->svc, "a/b", &id), -EINVAL);
	assert_int_equal(cat_pack_add(t->c, t->svc, "..", &id), -EINVAL);
	assert_int_equal(cat_pack_add(t->c, t->svc, "", &id), -EINVAL);
	memset(longname, 'p', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(cat_pack_add(t->c, t->svc, longname, &id), -ENAMETOOLONG);
	assert_int_equal(cat_pack_add(t->c, 999, "orphan", &id), -ENOENT);
	a = pack(t, "pack-a", false);
	assert_int_equal(cat_pack_add(t->c, t->svc, "pack-a", &id), -EEXIST);

	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &gen), 0);
	assert_int_equal(cat_pack_ref(t->c, gen, a, 100), 0);
	assert_int_equal(cat_pack_ref(t->c, gen, a, 50), 0);	/* adds up */
	assert_int_equal(cat_pack_ref(t->c, gen, a, -1), -EINVAL);
	assert_int_equal(cat_pack_ref(t->c, gen, 999, 1), -ENOENT);
	assert_int_equal(cat_pack_seal(t->c, a, 150), 0);
	assert_int_equal(cat_pack_seal(t->c, a, 150), -EINVAL);
	assert_int_equal(cat_gen_packs(t->c, gen, &packs, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(packs[0].bytes_ref, 150);
	assert_int_equal(packs[0].size, 150);
	assert_string_equal(packs[0].file, "pack-a");
	free(packs);
	assert_int_equal(cat_gen_commit(t->c, gen, &(struct cat_gen_stats){ 0 }), 0);
	done = gen;
	/* A complete generation is immutable: no new references. */
	b = pack(t, "pack-b", true);
	assert_int_equal(cat_pack_ref(t->c, done, b, 1), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "only a pending generation"));
	/* A dead pack cannot be referenced, nor collected twice, nor a live one at all. */
	expect_gc(t, &b, 1);
	assert_int_equal(cat_gen_begin(t->c, t->svc, done, &gen), 0);
	assert_int_equal(cat_pack_ref(t->c, gen, b, 1), -EINVAL);
	assert_non_null(strstr(cat_errmsg(t->c), "dead"));
	assert_int_equal(cat_gc_done(t->c, a), -EINVAL);
	assert_int_equal(cat_gc_done(t->c, b), 0);
	assert_int_equal(cat_gc_done(t->c, b), -ENOENT);
	assert_int_equal(cat_pack_get(t->c, b, &p), -ENOENT);
	assert_int_equal(cat_pack_get(t->c, a, &p), 0);
	assert_int_equal(p.state, CAT_PACK_SEALED);
}

static void test_gc_exact(void **state)
{
	struct tctx *t = *state;
	struct cat_retention keep1 = { .keep_last = 1 };
	int64_t g1, g2, g3, g4, p[7];
	int pruned;

	p[1] = pack(t, "p1", false);
	p[2] = pack(t, "p2", false);
	p[3] = pack(t, "p3", false);
	p[4] = pack(t, "p4", false);
	p[5] = pack(t, "p5", false);	/* stays open: being written */
	p[6] = pack(t, "p6", true);	/* sealed, never referenced */
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &g1), 0);
	assert_int_equal(cat_pack_ref(t->c, g1, p[1], 10), 0);
	assert_int_equal(cat_pack_ref(t->c, g1, p[2], 10), 0);
	assert_int_equal(cat_gen_commit(t->c, g1, &(struct cat_gen_stats){ 0 }), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, g1, &g2), 0);
	assert_int_equal(cat_pack_ref(t->c, g2, p[2], 5), 0);	/* reuses g1's data */
	assert_int_equal(cat_pack_ref(t->c, g2, p[3], 10), 0);
	assert_int_equal(cat_gen_commit(t->c, g2, &(struct cat_gen_stats){ 0 }), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, g2, &g3), 0);
	assert_int_equal(cat_pack_ref(t->c, g3, p[4], 10), 0);
	assert_int_equal(cat_gen_fail(t->c, g3), 0);
	assert_int_equal(cat_gen_begin(t->c, t->svc, g2, &g4), 0);	/* in progress */
	assert_int_equal(cat_pack_ref(t->c, g4, p[5], 10), 0);
	assert_int_equal(cat_pack_ref(t->c, g4, p[3], 10), 0);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(cat_pack_seal(t->c, p[i], 4096), 0);

	/* Only p4 (its generation failed) and p6 (nobody's) are garbage. */
	expect_gc(t, (int64_t[]){ p[4], p[6] }, 2);
	/* keep_last 1 keeps g2 (newest) and can prune g1: p1 goes, p2 stays (g2). */
	assert_int_equal(cat_retention_apply(t->c, t->svc, &keep1, T_EPOCH_US + T_DAY,
					     &pruned), 0);
	assert_int_equal(pruned, 1);
	expect_gc(t, (int64_t[]){ p[1], p[4], p[6] }, 3);
	/* The pending g4 holds p3 and its open p5 even once it fails... until p5 is sealed. */
	assert_int_equal(cat_gen_fail(t->c, g4), 0);
	expect_gc(t, (int64_t[]){ p[1], p[4], p[6] }, 3);
	assert_int_equal(cat_pack_seal(t->c, p[5], 1), 0);
	expect_gc(t, (int64_t[]){ p[1], p[4], p[5], p[6] }, 4);
	assert_int_equal(cat_gc_done(t->c, p[4]), 0);
	expect_gc(t, (int64_t[]){ p[1], p[5], p[6] }, 3);
}

/*
 * A real crash between the steps: a child marks four packs dead, unlinks and forgets
 * the first, unlinks the second without forgetting it, and is killed. The next GC must
 * return the other three again, and nothing else.
 */
static void test_gc_killed_midway(void **state)
{
	struct tctx *t = *state;
	char file[T_PATH_MAX + CAT_FILE_MAX];
	struct cat_pack *dead;
	struct cat *c;
	int64_t p[4];
	size_t n, i;
	int status, fd;
	pid_t pid;

	for (i = 0; i < 4; i++) {
		snprintf(file, sizeof(file), "gc-%zu", i);
		p[i] = pack(t, file, true);
		snprintf(file, sizeof(file), "%s/gc-%zu", t->dir, i);
		fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}
	cat_close(t->c);	/* never across fork() */
	t->c = NULL;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (cat_open(t->path, &c) || cat_gc_begin(c, &dead, &n) || n != 4)
			_exit(2);
		snprintf(file, sizeof(file), "%s/%s", t->dir, dead[0].file);
		if (unlink(file) || cat_gc_done(c, dead[0].id))
			_exit(3);
		snprintf(file, sizeof(file), "%s/%s", t->dir, dead[1].file);
		if (unlink(file))
			_exit(4);
		raise(SIGKILL);
		_exit(5);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);

	assert_int_equal(cat_open(t->path, &t->c), 0);
	assert_int_equal(cat_verify(t->c), 0);
	assert_int_equal(cat_gc_begin(t->c, &dead, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(dead[0].id, p[1]);
	assert_int_equal(dead[1].id, p[2]);
	assert_int_equal(dead[2].id, p[3]);
	for (i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", t->dir, dead[i].file);
		assert_true(unlink(file) == 0 || (i == 0 && errno == ENOENT));
		assert_int_equal(cat_gc_done(t->c, dead[i].id), 0);
	}
	free(dead);
	expect_gc(t, NULL, 0);
}

/* ---- against a model ------------------------------------------------------------------ */

#define M_GENS 40
#define M_PACKS 40

struct model {
	int64_t gen[M_GENS], pack[M_PACKS];
	int nr_gens, nr_packs;
	bool sealed[M_PACKS], dead[M_PACKS];
	bool ref[M_GENS][M_PACKS];	/* ever referenced; the gen's state decides */
};

static bool gen_live(struct tctx *t, int64_t id)
{
	struct cat_gen g;

	assert_int_equal(cat_gen_get(t->c, id, &g), 0);
	return g.state == CAT_GEN_PENDING || g.state == CAT_GEN_COMPLETE;
}

static bool gen_pending(struct tctx *t, int64_t id)
{
	struct cat_gen g;

	assert_int_equal(cat_gen_get(t->c, id, &g), 0);
	return g.state == CAT_GEN_PENDING;
}

static void model_step(struct tctx *t, struct model *m, unsigned *seed)
{
	struct cat_retention keep = { .keep_last = rand_r(seed) % 3 };
	int g = m->nr_gens ? rand_r(seed) % m->nr_gens : -1;
	int p = m->nr_packs ? rand_r(seed) % m->nr_packs : -1;
	char name[32];
	int pruned;

	switch (rand_r(seed) % 7) {
	case 0:
		if (m->nr_gens < M_GENS)
			assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &m->gen[m->nr_gens++]),
					 0);
		break;
	case 1:
		if (m->nr_packs < M_PACKS) {
			snprintf(name, sizeof(name), "m-%d", m->nr_packs);
			assert_int_equal(cat_pack_add(t->c, t->svc, name,
						      &m->pack[m->nr_packs++]), 0);
		}
		break;
	case 2:
		if (g >= 0 && p >= 0 && gen_pending(t, m->gen[g]) && !m->dead[p]) {
			assert_int_equal(cat_pack_ref(t->c, m->gen[g], m->pack[p], 1), 0);
			m->ref[g][p] = true;
		}
		break;
	case 3:
		if (p >= 0 && !m->sealed[p]) {
			assert_int_equal(cat_pack_seal(t->c, m->pack[p], 1), 0);
			m->sealed[p] = true;
		}
		break;
	case 4:
		if (g >= 0 && gen_pending(t, m->gen[g]))
			assert_int_equal(cat_gen_commit(t->c, m->gen[g],
							&(struct cat_gen_stats){ 0 }), 0);
		break;
	case 5:
		if (g >= 0 && gen_pending(t, m->gen[g]))
			assert_int_equal(cat_gen_fail(t->c, m->gen[g]), 0);
		break;
	case 6:
		assert_int_equal(cat_retention_apply(t->c, t->svc, &keep, T_EPOCH_US, &pruned),
				 0);
		break;
	}
}

/* GC against the model: returns exactly what the model says is dead; then forget some. */
static void model_gc(struct tctx *t, struct model *m, unsigned *seed)
{
	struct cat_pack *dead;
	size_t n, k = 0;
	int g, p;
	bool held;

	for (p = 0; p < m->nr_packs; p++) {
		held = false;
		for (g = 0; g < m->nr_gens && !held; g++)
			held = m->ref[g][p] && gen_live(t, m->gen[g]);
		if (m->sealed[p] && !held)
			m->dead[p] = true;
	}
	assert_int_equal(cat_gc_begin(t->c, &dead, &n), 0);
	for (p = 0; p < m->nr_packs; p++) {
		if (!m->dead[p] || m->pack[p] == 0)
			continue;
		assert_true(k < n);
		assert_int_equal(dead[k].id, m->pack[p]);
		k++;
		if (rand_r(seed) % 2) {
			assert_int_equal(cat_gc_done(t->c, m->pack[p]), 0);
			m->pack[p] = 0;	/* gone; never referenced or sealed again */
			m->sealed[p] = true;
		}
	}
	assert_int_equal(k, n);
	free(dead);
	assert_int_equal(cat_verify(t->c), 0);
}

static void test_gc_model(void **state)
{
	struct tctx *t = *state;
	struct model *m;
	unsigned seed, round, i;

	for (round = 0; round < 16; round++) {
		seed = round * 7919 + 1;
		m = calloc(1, sizeof(*m));
		assert_non_null(m);
		assert_int_equal(cat_service_ensure(t->c, "svc", &t->svc), 0);
		for (i = 0; i < 120; i++) {
			model_step(t, m, &seed);
			if (i % 20 == 19)
				model_gc(t, m, &seed);
		}
		model_gc(t, m, &seed);
		free(m);
		/* Next round: a fresh catalog. */
		cat_close(t->c);
		t_rmrf(t->dir);
		t_mkdtemp(t->dir);
		snprintf(t->path, sizeof(t->path), "%s/catalog.db", t->dir);
		assert_int_equal(cat_open(t->path, &t->c), 0);
		cat_set_clock(t->c, t_clock, t);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pack_rules, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_gc_exact, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_gc_killed_midway, t_setup, t_teardown),
		cmocka_unit_test_setup_teardown(test_gc_model, t_setup, t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
