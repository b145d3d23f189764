/*
 * hacd-gen.c: a service's generations: checkpoints on schedule, their commit into the
 * catalog, retention and garbage collection of their directories, and the control
 * requests that wait for them. The state machine that calls these is hacd-svc.c; its
 * invariants 1, 2 and 4 are kept here.
 *
 * DESIGN: two kinds of generations.
 *  - full (checkpoint = "full", and every generation of older hacds): a whole eng_dump
 *    into STATE_DIR/services/NAME/gen-ID, named in the catalog as a pack row before it
 *    exists; GC removes the directory once the pack is dead (hacd-svc.c invariant 2).
 *  - incremental (checkpoint = "incremental"): a tracked generation of the service's
 *    page store (svc_store_dir, engine/store.c), written by the worker, which holds the
 *    store's lock (hacd-worker.c invariant 5). The catalog row records its number there
 *    (stats.store_gen) and has NO pack rows: the store is the authority on its page
 *    data and frees what no store generation refers to. The row is begun pending before
 *    the request, committed complete only after the store committed the generation.
 *    Deleting goes through the worker (STORE_GC), queued like any request, with the
 *    store generations to keep: those of every complete or pending row. Hence:
 *      a kill of hacd between the store's commit and the catalog's leaves a store
 *      generation no complete row names: the next STORE_GC (sent once at start, before
 *      the first checkpoint) deletes it;
 *      a complete row whose store generation is missing (a power loss took back the
 *      store's rename, or someone deleted it) is pruned by cat_gen_lost with an event;
 *      retention prunes rows, then sets store_gc_due; the worker fdatasyncs the
 *      catalog's WAL before deleting anything (a power loss cannot bring back a row
 *      whose data is gone; invariant 2's rule, kept without an fsync in the loop).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/engine.h"
#include "hacd.h"
#include "worker.pb-c.h"

/* Failed and pruned generations stay listed this long: an hour is 3600 rows per
 * service at a 1 s interval (hactl list shows 1000 at most), a day was 86400, which
 * made the catalog of 20 such services grow by about 250 MB before anything went. */
#define FORGET_AFTER_S		3600

/* ---- waiting control requests (invariant 4) ---------------------------------------- */

void svc_waiters_arm(struct svc *s, enum svc_wait_kind kind)
{
	struct svc_waiter *w;

	TAILQ_FOREACH(w, &s->waiters, link)
		if (w->kind == kind)
			w->armed = true;
}

/* Answer every waiter of `kind` (armed ones only unless `all`). */
void svc_waiters_done(struct svc *s, enum svc_wait_kind kind, bool all, int status,
			 const char *error, int64_t gen)
{
	struct svc_waiter *w, *tmp;

	TAILQ_FOREACH_SAFE(w, &s->waiters, link, tmp) {
		if (w->kind != kind || (!w->armed && !all))
			continue;
		hacd_ctl_reply_done(w->fd, status, error, s->d->cat, gen);
		close(w->fd);
		TAILQ_REMOVE(&s->waiters, w, link);
		free(w);
	}
}

int svc_waiter_add(struct svc *s, enum svc_wait_kind kind, int fd)
{
	struct svc_waiter *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->kind = kind;
	TAILQ_INSERT_TAIL(&s->waiters, w, link);
	return 0;
}

/* ---- retention and garbage collection (invariant 2) ------------------------------- */

static int rm_gen_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *dir;
	struct dirent *e;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(fd, e->d_name, 0);
	closedir(dir);
	if (rmdir(path) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int retention(struct svc *s)
{
	struct cat_retention p = {
		.keep_last = s->cs ? s->cs->keep : 1,
		.keep_hourly = s->cs ? s->cs->keep_hourly : 0,
		.keep_daily = s->cs ? s->cs->keep_daily : 0,
		.forget_after_s = FORGET_AFTER_S,
		.keep_from = hacd_replica_sync_floor(s),
	};
	int pruned = 0, ret;

	s->retention_due = false;
	ret = cat_retention_apply(s->d->cat, s->cat_id, &p, svc_wall_us(), &pruned);
	/* Store generations among them: the worker deletes their data (DESIGN). */
	if (!ret && pruned && svc_has_store(s))
		s->store_gc_due = true;
	return ret;
}

static struct svc *svc_by_cat_id(struct hacd *d, int64_t id)
{
	struct svc *s;

	TAILQ_FOREACH(s, &d->services, link)
		if (s->cat_id == id)
			return s;
	return NULL;
}

/*
 * GC in the helper thread (hacd-bg.c): the catalog's dead packs become durable first
 * (cat_sync_path: catalog.c invariant 5 holds across a power loss too), then their
 * directories go and each service directory is fsynced; the loop forgets them after.
 */
struct gc_item {
	int64_t pack;
	char *path;		/* the generation's directory */
	char *parent;		/* the service's directory, fsynced once emptied of it */
	bool gone;
};

struct gc_job {
	struct hacd_bg_job j;	/* first */
	char wal[4096];
	size_t n;
	struct gc_item items[];
};

static void gc_work(struct hacd_bg_job *j)
{
	struct gc_job *g = (struct gc_job *)j;
	int ret = cat_sync_path(g->wal);

	if (ret) {
		hacd_log(LOG_ERR, "gc: %s: fdatasync: %s: nothing unlinked", g->wal,
			 strerror(-ret));
		return;
	}
	for (size_t i = 0; i < g->n; i++) {
		ret = rm_gen_dir(g->items[i].path);
		if (ret)
			hacd_log(LOG_ERR, "gc: %s: %s", g->items[i].path, strerror(-ret));
		g->items[i].gone = !ret;
	}
	for (size_t i = 0; i < g->n; i++) {
		int dfd;

		/* Items come service by service: one fsync per directory. */
		if (i + 1 < g->n && !strcmp(g->items[i].parent, g->items[i + 1].parent))
			continue;
		dfd = open(g->items[i].parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			ha_fsync_dir(dfd);
			close(dfd);
		}
	}
}

static void gc_done(struct hacd *d, struct hacd_bg_job *j)
{
	struct gc_job *g = (struct gc_job *)j;
	struct cat *c = d->cat;
	int ret;

	d->gc_busy = false;
	ret = cat_batch_begin(c);
	for (size_t i = 0; i < g->n && !ret; i++)
		if (g->items[i].gone)
			ret = cat_gc_done(c, g->items[i].pack);
	if (ret)
		cat_batch_end(c);
	else
		ret = cat_batch_end(c);
	if (ret)
		hacd_log(LOG_ERR, "catalog: gc: %s", cat_errmsg(c));
}

static void gc_free(struct hacd_bg_job *j)
{
	struct gc_job *g = (struct gc_job *)j;

	for (size_t i = 0; i < g->n; i++) {
		free(g->items[i].path);
		free(g->items[i].parent);
	}
	free(g);
}

static int cmp_pack_service(const void *a, const void *b)
{
	const struct cat_pack *x = a, *y = b;

	return x->service < y->service ? -1 : x->service > y->service;
}

static void gc_submit(struct hacd *d, struct cat_pack *packs, size_t n, bool now)
{
	struct gc_job *g = calloc(1, sizeof(*g) + n * sizeof(g->items[0]));
	struct svc *s;

	if (!g)
		return;
	g->j.work = gc_work;
	g->j.done = gc_done;
	g->j.free = gc_free;
	cat_wal_path(d->cat, g->wal, sizeof(g->wal));
	qsort(packs, n, sizeof(*packs), cmp_pack_service);
	for (size_t i = 0; i < n; i++) {
		struct gc_item *it = &g->items[g->n];

		/* A service no longer configured: its packs wait until it comes back. */
		if (!(s = svc_by_cat_id(d, packs[i].service)))
			continue;
		if (asprintf(&it->parent, "%s/services/%s", d->conf->state_dir, s->name) < 0) {
			it->parent = NULL;
			break;
		}
		if (asprintf(&it->path, "%s/%s", it->parent, packs[i].file) < 0) {
			free(it->parent);
			it->path = it->parent = NULL;
			break;
		}
		it->pack = packs[i].id;
		g->n++;
	}
	if (!g->n) {
		gc_free(&g->j);
		return;
	}
	if (now) {
		gc_work(&g->j);
		gc_done(d, &g->j);
		gc_free(&g->j);
		return;
	}
	d->gc_busy = true;
	hacd_bg_submit(d, &g->j);
}

/*
 * Retention of every service still due (svc_ckpt_done applies it at each commit; a
 * service that was stopping or restoring then, or whose retention failed, is due
 * here), then GC: one batch makes the unreferenced packs dead (before any unlink:
 * invariant 2), the helper thread makes that durable and removes the directories, and
 * one more batch forgets them. Run once a second; one GC job at a time.
 */
static void gc_round(struct hacd *d, bool now)
{
	struct cat *c = d->cat;
	struct cat_pack *packs = NULL;
	size_t n = 0;
	struct svc *s;
	int ret;

	ret = cat_batch_begin(c);
	TAILQ_FOREACH(s, &d->services, link) {
		/* A generation being restored, or about to be, must stay. */
		if (ret || !s->retention_due || s->stop_pending || s->state == SVC_STOPPING ||
		    s->state == SVC_RESTORING)
			continue;
		ret = retention(s);
	}
	/* Dead packs are returned until cat_gc_done(): not twice into the thread. */
	if (!ret && !d->gc_busy)
		ret = cat_gc_begin(c, &packs, &n);
	if (ret)
		cat_batch_end(c);
	else
		ret = cat_batch_end(c);
	if (ret)
		hacd_log(LOG_ERR, "catalog: retention and gc: %s", cat_errmsg(c));
	else if (n)
		gc_submit(d, packs, n, now);
	free(packs);
	TAILQ_FOREACH(s, &d->services, link)
		svc_store_gc_next(s);
}

void hacd_gc(struct hacd *d)
{
	gc_round(d, false);
}

/* At start, before anything is served: no directory of a generation cat_recover()
 * failed outlives the start. */
void hacd_gc_now(struct hacd *d)
{
	gc_round(d, true);
}

/*
 * Directories gen-ID of `s` the catalog does not know. Only a power loss makes them:
 * it can undo the last commits (catalog.c DURABILITY), among them a generation's
 * begin, after its directory was made; its id would then be given again.
 */
void svc_sweep_unknown(struct svc *s)
{
	char path[4096];
	struct dirent *e;
	DIR *dir;
	int dfd = svc_dir_open(s);

	if (dfd < 0 || !(dir = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return;
	}
	while ((e = readdir(dir))) {
		struct cat_gen g;
		char *end;
		long long id;

		if (strncmp(e->d_name, "gen-", 4) || e->d_name[4] < '1' || e->d_name[4] > '9')
			continue;
		id = strtoll(e->d_name + 4, &end, 10);
		if (*end || id <= 0 || cat_gen_get(s->d->cat, id, &g) != -ENOENT)
			continue;
		snprintf(path, sizeof(path), "%s/services/%s/%s", s->d->conf->state_dir,
			 s->name, e->d_name);
		hacd_log(LOG_NOTICE, "service %s: %s: unknown to the catalog (a power loss "
			 "undid its last commits): removed", s->name, e->d_name);
		rm_gen_dir(path);
	}
	ha_fsync_dir(dirfd(dir));
	closedir(dir);
}

/*
 * Generation hooks (replication) run once the commit is durable: a peer must never
 * hold a generation a power loss could make us forget, and give the id again. Commits
 * close together share one fdatasync of the WAL, in the helper thread.
 */
#define SYNC_GENS 64

struct sync_job {
	struct hacd_bg_job j;	/* first */
	char wal[4096];
	int err;
	size_t n;
	struct { int64_t service, gen; uint32_t store_gen; } gens[SYNC_GENS];
};

static void sync_work(struct hacd_bg_job *j)
{
	struct sync_job *sj = (struct sync_job *)j;

	sj->err = cat_sync_path(sj->wal);
}

static void sync_done(struct hacd *d, struct hacd_bg_job *j)
{
	struct sync_job *sj = (struct sync_job *)j;
	char dir[4096];

	if (d->sync_job == j)
		d->sync_job = NULL;
	if (sj->err) {
		hacd_log(LOG_ERR, "catalog: %s: fdatasync: %s: %zu generation(s) not shipped "
			 "until hacd restarts", sj->wal, strerror(-sj->err), sj->n);
		return;
	}
	for (size_t i = 0; i < sj->n; i++) {
		struct svc *s = svc_by_cat_id(d, sj->gens[i].service);

		if (!s)
			continue;
		/* Where the hook finds it (hacd.h): a store generation has no gen-ID. */
		if (sj->gens[i].store_gen)
			svc_store_dir(s, dir, sizeof(dir));
		else
			svc_gen_dir(s, sj->gens[i].gen, dir, sizeof(dir));
		for (struct hacd_gen_hook *h = d->gen_hooks; h; h = h->next)
			h->fn(s, sj->gens[i].gen, dir, sj->gens[i].store_gen, h->opaque);
	}
}

static void sync_free(struct hacd_bg_job *j)
{
	free(j);
}

struct gen_ref {
	int64_t service, gen;
	uint32_t store_gen;
	bool added;
};

static void sync_add(struct hacd_bg_job *j, void *arg)
{
	struct sync_job *sj = (struct sync_job *)j;
	struct gen_ref *r = arg;

	if (sj->n == SYNC_GENS)
		return;
	sj->gens[sj->n].service = r->service;
	sj->gens[sj->n].gen = r->gen;
	sj->gens[sj->n].store_gen = r->store_gen;
	sj->n++;
	r->added = true;
}

static void gen_hooks_when_durable(struct svc *s, int64_t gen, int64_t store_gen)
{
	struct hacd *d = s->d;
	struct gen_ref r = { s->cat_id, gen,
			     store_gen > 0 && store_gen <= UINT32_MAX ? (uint32_t)store_gen : 0,
			     false };
	struct sync_job *sj;

	if (!d->gen_hooks)
		return;
	if (d->sync_job && hacd_bg_amend(d, d->sync_job, sync_add, &r) && r.added)
		return;
	sj = calloc(1, sizeof(*sj));
	if (!sj) {
		hacd_log(LOG_ERR, "service %s: generation %lld: no memory to ship it", s->name,
			 (long long)gen);
		return;
	}
	sj->j.work = sync_work;
	sj->j.done = sync_done;
	sj->j.free = sync_free;
	cat_wal_path(d->cat, sj->wal, sizeof(sj->wal));
	sync_add(&sj->j, &r);
	d->sync_job = &sj->j;
	hacd_bg_submit(d, &sj->j);
}

/* sqlite's WAL checkpoints, which the loop's connection no longer runs (catalog.c). */
struct ckpt_job {
	struct hacd_bg_job j;	/* first */
	char db[4096];
	int err;
};

static void ckpt_work(struct hacd_bg_job *j)
{
	struct ckpt_job *cj = (struct ckpt_job *)j;

	cj->err = cat_checkpoint_path(cj->db);
}

static void ckpt_done(struct hacd *d, struct hacd_bg_job *j)
{
	struct ckpt_job *cj = (struct ckpt_job *)j;

	d->cat_ckpt_busy = false;
	if (cj->err)
		hacd_log(LOG_WARNING, "catalog %s: WAL checkpoint: %s", cj->db,
			 strerror(-cj->err));
}

void hacd_catalog_checkpoint(struct hacd *d)
{
	struct ckpt_job *cj;

	if (!d->bg || d->cat_ckpt_busy || !(cj = calloc(1, sizeof(*cj))))
		return;
	cj->j.work = ckpt_work;
	cj->j.done = ckpt_done;
	cj->j.free = sync_free;
	snprintf(cj->db, sizeof(cj->db), "%s/catalog.db", d->conf->state_dir);
	d->cat_ckpt_busy = true;
	hacd_bg_submit(d, &cj->j);
}

static bool waiters_armed(const struct svc *s, enum svc_wait_kind kind)
{
	const struct svc_waiter *w;

	TAILQ_FOREACH(w, &s->waiters, link)
		if (w->kind == kind && w->armed)
			return true;
	return false;
}

/* ---- checkpoints ------------------------------------------------------------------- */

void svc_ckpt_start(struct svc *s)
{
	Hacd__WorkerRequest req = HACD__WORKER_REQUEST__INIT;
	struct cat *c = s->d->cat;
	char dir[4096], file[64];
	int ret, dfd;
	bool tick = s->tick_waits;

	s->want_ckpt = s->tick_waits = false;
	if ((dfd = svc_dir_open(s)) < 0) {
		svc_event(s, LOG_ERR, "checkpoint", "cannot open its state directory: %s",
			  strerror(-dfd));
		svc_waiters_done(s, SVC_WAIT_CHECKPOINT, true, dfd, s->last_error, 0);
		return;
	}
	close(dfd);
	/* What a killed hacd's worker left in the store goes first (DESIGN). */
	if (svc_incremental(s) && s->store_gc_due) {
		s->want_ckpt = true;
		s->tick_waits = tick;
		if (svc_store_gc_next(s))
			return;
		s->want_ckpt = s->tick_waits = false;
	}
	/* Lateness of a scheduled one; libevent may fire a hair early by our clock. */
	if (tick) {
		uint64_t now = hacd_now_us();

		s->late[s->n_late++ % SVC_LATE_SAMPLES] = now > s->due_us ? now - s->due_us : 0;
	}
	s->gen = s->pack = 0;
	/* Invariant 1: the catalog knows the directory before it exists. A store
	 * generation has no pack row (DESIGN): its pending row is enough. */
	ret = cat_batch_begin(c);
	if (!ret)
		ret = cat_gen_begin(c, s->cat_id, 0, &s->gen);
	if (!ret && !svc_incremental(s)) {
		snprintf(file, sizeof(file), "gen-%lld", (long long)s->gen);
		ret = cat_pack_add(c, s->cat_id, file, &s->pack);
	}
	if (ret)
		cat_batch_end(c);
	else
		ret = cat_batch_end(c);
	if (ret) {
		/* Rolled back together: neither row exists. */
		s->gen = s->pack = 0;
		svc_event(s, LOG_ERR, "checkpoint", "catalog: %s", cat_errmsg(c));
		goto fail;
	}
	if (svc_incremental(s)) {
		svc_store_dir(s, dir, sizeof(dir));
		req.has_incremental = req.incremental = 1;
	} else {
		svc_gen_dir(s, s->gen, dir, sizeof(dir));
	}
	req.op = HACD__WORKER_OP__WORKER_OP_CHECKPOINT;
	req.has_pid = req.has_precopy = 1;
	req.pid = (uint32_t)s->pid;
	req.dir = dir;
	req.precopy = s->cs ? s->cs->precopy : true;
	ret = hacd_worker_send(s, &req);
	if (ret) {
		svc_event(s, LOG_ERR, "checkpoint", "worker unavailable: %s", strerror(-ret));
		goto fail;
	}
	svc_waiters_arm(s, SVC_WAIT_CHECKPOINT);
	return;
fail:
	if (s->gen && !cat_batch_begin(c)) {
		if (s->pack)
			cat_pack_seal(c, s->pack, 0);
		cat_gen_fail(c, s->gen);
		cat_batch_end(c);
	}
	s->gen = s->pack = 0;
	s->n_failed++;
	svc_waiters_done(s, SVC_WAIT_CHECKPOINT, true, ret, s->last_error, 0);
}

void svc_ckpt_done(struct svc *s, const Hacd__WorkerReply *rep)
{
	struct cat *c = s->d->cat;
	struct cat_gen_stats st = { 0 };
	int64_t gen = s->gen;
	int ret = rep ? rep->status : -ECHILD;

	/* A worker that died may have committed a store generation first: no row will
	 * name it, the next STORE_GC deletes it. */
	if (!rep && !s->pack && svc_has_store(s))
		s->store_gc_due = true;

	if (!ret && !s->pack && (!rep->has_store_gen || !rep->store_gen)) {
		svc_event(s, LOG_ERR, "checkpoint", "generation %lld: the worker named no store "
			  "generation", (long long)gen);
		ret = -EPROTO;
	}
	if (!ret) {
		st.pause_us = (int64_t)rep->frozen_us;
		st.bytes_new = st.bytes_total = (int64_t)rep->bytes_written;
		st.pages = (int64_t)rep->pages_written;
		if (!s->pack) {
			st.store_gen = rep->store_gen;
			st.pages = (int64_t)rep->pages_total;
			st.bytes_total = (int64_t)rep->pages_total * 4096;
		}
		/* Invariant 1: one transaction, in this order. */
		ret = cat_batch_begin(c);
		if (!ret && s->pack)
			ret = cat_pack_ref(c, gen, s->pack, st.bytes_new);
		if (!ret && s->pack)
			ret = cat_pack_seal(c, s->pack, st.bytes_new);
		if (!ret)
			ret = cat_gen_commit(c, gen, &st);
		if (ret)
			cat_batch_end(c);
		else
			ret = cat_batch_end(c);
		if (ret)
			svc_event(s, LOG_ERR, "checkpoint", "generation %lld: catalog: %s",
				  (long long)gen, cat_errmsg(c));
	} else if (!rep) {
		svc_event(s, LOG_WARNING, "checkpoint", "generation %lld failed: %s",
			  (long long)gen, s->w_abandoned ? "abandoned after checkpoint_timeout, "
			  "its worker stopped" : "the worker died");
	} else {
		svc_event(s, LOG_WARNING, "checkpoint", "generation %lld failed: %s",
			  (long long)gen, rep->error ? rep->error : strerror(-ret));
	}
	if (ret) {
		if (!cat_batch_begin(c)) {
			if (s->pack)
				cat_pack_seal(c, s->pack, 0);
			cat_gen_fail(c, gen);
			if (cat_batch_end(c))
				hacd_log(LOG_ERR, "service %s: generation %lld: catalog: %s", s->name,
					 (long long)gen, cat_errmsg(c));
		}
		s->n_failed++;
		svc_waiters_done(s, SVC_WAIT_CHECKPOINT, false, ret, s->last_error, 0);
	} else {
		s->n_ckpt++;
		if (st.store_gen)
			hacd_log(rep->full ? LOG_INFO : LOG_DEBUG, "service %s: generation %lld "
				 "complete (store generation %lld%s), pause %lld us, pre-copy %llu us "
				 "in %u rounds, %llu of %lld pages written, %lld bytes",
				 s->name, (long long)gen, (long long)st.store_gen,
				 rep->full ? ", full" : "", (long long)st.pause_us,
				 (unsigned long long)rep->precopy_us, rep->rounds,
				 (unsigned long long)rep->pages_written, (long long)st.pages,
				 (long long)st.bytes_new);
		else
			hacd_log(LOG_DEBUG, "service %s: generation %lld complete, pause %lld us",
				 s->name, (long long)gen, (long long)st.pause_us);
		gen_hooks_when_durable(s, gen, st.store_gen);
		/* hactl checkpoint is told only what a power loss cannot undo; rare enough
		 * to fsync here. */
		if (waiters_armed(s, SVC_WAIT_CHECKPOINT) && cat_sync(c))
			hacd_log(LOG_ERR, "catalog: %s", cat_errmsg(c));
		svc_waiters_done(s, SVC_WAIT_CHECKPOINT, false, 0, NULL, gen);
	}
	s->gen = s->pack = 0;
	s->retention_due = true;
	/*
	 * Retention now, not in the next once-a-second round: what it prunes of a page
	 * store is deleted by a STORE_GC, which svc_next sends as soon as this returns, so
	 * that it is over long before the next tick instead of sitting in front of it
	 * (lateness p50 27 ms, p99 104 ms at 20 services when the round's phase fell just
	 * before the ticks'). The order of DESIGN holds: the prunes are committed here,
	 * and the worker fdatasyncs the WAL before it deletes anything. A service about to
	 * stop or be restored keeps it for hacd_gc, which skips such services.
	 */
	if (!ret && s->state == SVC_RUNNING && !s->stop_pending && !s->dead_seen &&
	    retention(s)) {
		hacd_log(LOG_ERR, "service %s: retention: catalog: %s", s->name, cat_errmsg(c));
		s->retention_due = true;	/* the round tries again */
	}
}

/* ---- the page store (DESIGN) -------------------------------------------------------- */

bool svc_incremental(const struct svc *s)
{
	return s->cs && s->cs->checkpoint == CONF_CHECKPOINT_INCREMENTAL;
}

bool svc_has_store(const struct svc *s)
{
	char path[4096];
	struct stat st;

	svc_store_dir(s, path, sizeof(path));
	return !lstat(path, &st) && S_ISDIR(st.st_mode);
}

/* Retry after a failed STORE_GC: soon when another writer held the store. */
#define STORE_GC_BUSY_US	1000000
#define STORE_GC_RETRY_US	10000000

bool svc_store_gc_next(struct svc *s)
{
	Hacd__WorkerRequest req = HACD__WORKER_REQUEST__INIT;
	char dir[4096], wal[4096];
	struct cat_gen *g = NULL;
	uint32_t *keep;
	size_t n = 0, nk = 0;
	int ret;

	/* A running active service only: a standby's store belongs to its receiver. */
	if (!s->store_gc_due || s->w_op || s->w_fd < 0 || s->state != SVC_RUNNING ||
	    s->stop_pending || s->dead_seen || hacd_now_us() < s->store_gc_retry_us)
		return false;
	ret = cat_gen_list(s->d->cat, s->cat_id,
			   CAT_GEN_MASK(CAT_GEN_COMPLETE) | CAT_GEN_MASK(CAT_GEN_PENDING), 0, &g, &n);
	if (ret) {
		hacd_log(LOG_ERR, "service %s: store gc: catalog: %s", s->name,
			 cat_errmsg(s->d->cat));
		s->store_gc_retry_us = hacd_now_us() + STORE_GC_RETRY_US;
		return false;
	}
	keep = calloc(n ? n : 1, sizeof(*keep));
	if (!keep) {
		free(g);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if (g[i].stats.store_gen > 0 && g[i].stats.store_gen <= UINT32_MAX)
			keep[nk++] = (uint32_t)g[i].stats.store_gen;
	free(g);
	svc_store_dir(s, dir, sizeof(dir));
	cat_wal_path(s->d->cat, wal, sizeof(wal));
	req.op = HACD__WORKER_OP__WORKER_OP_STORE_GC;
	req.dir = dir;
	req.sync_path = wal;
	req.keep = keep;
	req.n_keep = nk;
	ret = hacd_worker_send(s, &req);
	free(keep);
	if (ret) {
		hacd_log(LOG_ERR, "service %s: store gc: worker: %s", s->name, strerror(-ret));
		s->store_gc_retry_us = hacd_now_us() + STORE_GC_RETRY_US;
		return false;
	}
	return true;
}

static bool gen_listed(const Hacd__WorkerReply *rep, int64_t store_gen)
{
	for (size_t i = 0; i < rep->n_store_gens; i++)
		if (rep->store_gens[i] == store_gen)
			return true;
	return false;
}

void svc_store_gc_done(struct svc *s, const Hacd__WorkerReply *rep)
{
	struct cat *c = s->d->cat;
	struct cat_gen *g = NULL;
	size_t n = 0;

	if (!rep || rep->status) {
		int busy = rep && rep->status == -EBUSY;

		if (busy)
			hacd_log(LOG_INFO, "service %s: store gc: %s; trying again", s->name,
				 rep->error ? rep->error : "busy");
		else
			svc_event(s, LOG_WARNING, "store", "deleting store generations: %s",
				  rep && rep->error ? rep->error : "the worker died");
		s->store_gc_retry_us = hacd_now_us() + (busy ? STORE_GC_BUSY_US : STORE_GC_RETRY_US);
		return;
	}
	s->store_gc_due = false;
	/* The store now holds exactly what it lists: a complete row whose data is not
	 * there can never be restored. */
	if (cat_gen_list(c, s->cat_id, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n)) {
		hacd_log(LOG_ERR, "service %s: store gc: catalog: %s", s->name, cat_errmsg(c));
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!g[i].stats.store_gen || gen_listed(rep, g[i].stats.store_gen))
			continue;
		if (cat_gen_lost(c, g[i].id)) {
			hacd_log(LOG_ERR, "service %s: catalog: %s", s->name, cat_errmsg(c));
			continue;
		}
		svc_event(s, LOG_ERR, "store", "generation %lld: its store generation %lld is "
			  "missing from the page store (a power loss?): pruned", (long long)g[i].id,
			  (long long)g[i].stats.store_gen);
	}
	free(g);
}

void svc_timer_arm(struct svc *s)
{
	uint64_t now = hacd_now_us(), d = s->next_us > now ? s->next_us - now : 0;
	struct timeval tv = { .tv_sec = (time_t)(d / 1000000), .tv_usec = (suseconds_t)(d % 1000000) };

	evtimer_add(s->timer, &tv);
}

/* Due times advance by the interval from the first one, so lateness never drifts. */
void svc_tick(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	uint64_t now = hacd_now_us(), iv = s->cs ? s->cs->interval_us : 1000000;

	hacd_held_detail("service %s", s->name);
	s->due_us = s->next_us;
	s->next_us += iv;
	while (s->next_us <= now) {
		s->next_us += iv;
		s->n_missed++;
	}
	svc_timer_arm(s);
	if (s->state != SVC_RUNNING || s->stop_pending) {
		s->tick_waits = false;
		return;
	}
	if (s->tick_waits || (s->w_op && s->w_op != HACD__WORKER_OP__WORKER_OP_STORE_GC)) {
		s->n_missed++;	/* the previous one is still running: never overlap */
		return;
	}
	s->tick_waits = true;
	/* A store GC takes milliseconds and normally ends long before the tick (it
	 * follows the commit, svc_ckpt_done); one retried after a busy store, or the one
	 * at start, may still be running: the tick waits for it rather than count as
	 * missed (when retention ran on its own timer, that cost the load test half its
	 * checkpoints). */
	if (s->w_op) {
		s->want_ckpt = true;
		return;
	}
	svc_ckpt_start(s);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void svc_lateness(const struct svc *s, uint64_t *p50, uint64_t *p99)
{
	uint64_t v[SVC_LATE_SAMPLES];
	size_t n = s->n_late < SVC_LATE_SAMPLES ? s->n_late : SVC_LATE_SAMPLES;

	*p50 = *p99 = 0;
	if (!n)
		return;
	memcpy(v, s->late, n * sizeof(v[0]));
	qsort(v, n, sizeof(v[0]), cmp_u64);
	*p50 = v[n / 2];
	*p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
}
