/*
 * ha/catalog.h: the catalog of generations, the only catalog header other modules include.
 *
 * One sqlite database (WAL, synchronous=FULL) per node records the guarded services, their
 * generations (checkpoints), the pack files holding page data and which generation refers
 * to which pack, the per-peer replication state of each generation, and an event log.
 * Pack *data* lives in files the page store writes; the catalog only names them.
 * Generations with a store_gen (incremental, agent/hacd-gen.c) have no pack rows: the
 * page store (engine/store.c) is the authority on their page data and frees it itself
 * when hacd deletes a store generation; pack rows and GC below concern plain image
 * directories (store_gen 0) only.
 *
 * Calls return 0 or -errno; on failure cat_errmsg() says why, with context. A struct cat
 * is one sqlite connection: use it from one thread at a time, never across fork().
 * Times are microseconds since the epoch (CLOCK_REALTIME), ids are > 0 and never reused.
 *
 * Generation states (one row per generation; invariants are numbered in catalog.c):
 *
 *        cat_gen_begin[_from]
 *                |
 *                v
 *          +-----------+  cat_gen_fail, cat_recover   +--------+
 *          |  PENDING  |----------------------------->| FAILED |
 *          +-----------+                              +--------+
 *                | cat_gen_commit
 *                v
 *          +-----------+  cat_retention_apply         +--------+
 *          | COMPLETE  |----------------------------->| PRUNED |
 *          +-----------+                              +--------+
 *
 *   transition            function              effect besides the state
 *   (none) -> pending     cat_gen_begin[_from]  started_us = now
 *   pending -> complete   cat_gen_commit        stats and committed_us recorded
 *   pending -> failed     cat_gen_fail          its pack references dropped
 *   pending -> failed     cat_recover           same, for every pending one, at start-up
 *   complete -> pruned    cat_retention_apply   its pack references dropped
 *   complete -> pruned    cat_gen_lost          same (its data was found missing)
 *   complete -> pruned    cat_gen_retire        same, and a "diverged" event
 *   failed, pruned -> (row deleted)  cat_retention_apply, after policy.forget_after_s
 * Any other transition is refused with -EINVAL (and by a trigger in the database).
 * On a standby, a received generation is begun with cat_gen_begin_from() and committed
 * only once every checksum was verified: there, COMPLETE means "consistent".
 *
 * Replication state of a COMPLETE generation, per peer (no row = NONE):
 *
 *   NONE --sending--> SENDING --consistent--> CONSISTENT      (cat_gen_peer_set)
 *                      |   ^
 *               failed v   | sending
 *                     FAILED            SENDING -> FAILED also by cat_recover
 *
 * Pack states: OPEN (being written) --cat_pack_seal--> SEALED --cat_gc_begin--> DEAD
 * --cat_gc_done--> (row deleted). cat_recover seals packs left open by a crash.
 */
#ifndef HA_CATALOG_H
#define HA_CATALOG_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#define CAT_NAME_MAX 128	/* service, peer and origin names, with the NUL */
#define CAT_FILE_MAX 256	/* pack file names: one path component, with the NUL */
#define CAT_KIND_MAX 32		/* event kinds, with the NUL */
#define CAT_MSG_MAX 1024	/* event messages, with the NUL; longer ones are cut */

struct cat;

/* ---- open, close, errors (catalog.c) --------------------------------------------- */

/*
 * Open or create the catalog at `path` and bring its schema up to date. The file is
 * created 0600; its directory is created 0700 if missing, and otherwise must be ours and
 * closed to group and others (-EPERM). A catalog written by a newer hacd is refused with
 * -ENOTSUP, anything that is not a hacd catalog with -EINVAL or -EUCLEAN.
 * cat_open() does not recover: the agent calls cat_recover() once, at start-up, while
 * hactl may open the same catalog at any time (WAL: readers never block the agent).
 */
int cat_open(const char *path, struct cat **out);
void cat_close(struct cat *c);
/* Why the last failed call on `c` failed; with c == NULL, the last failed cat_open()
 * of this thread. Never NULL. */
const char *cat_errmsg(const struct cat *c);
/* The schema version this code writes (PRAGMA user_version). */
int cat_schema_version(void);

typedef int64_t (*cat_clock_fn)(void *opaque);
/* Replace the clock used for started/committed/event times (tests); NULL restores it. */
void cat_set_clock(struct cat *c, cat_clock_fn fn, void *opaque);

/*
 * Batches: the calls between cat_batch_begin() and cat_batch_end() make one
 * transaction (one fsync instead of one per call, for an agent checkpointing many
 * services a second). If any of them fails, the whole batch is rolled back, every
 * later call in it fails with -ECANCELED, and cat_batch_end() returns that error:
 * stop at the first failure and end the batch. Batches do not nest.
 */
int cat_batch_begin(struct cat *c);
int cat_batch_end(struct cat *c);

/*
 * Durability (catalog.c DURABILITY): commits survive a crash of the process at once,
 * a power loss only after cat_sync(). Call it between a commit and anything done
 * outside the catalog because of it (shipping, replying, unlinking). cat_wal_path()
 * and cat_sync_path() do the same from another thread, which must not use `c`.
 */
int cat_sync(struct cat *c);

/* The sqlite VM steps the catalog's statements took since the last reset: what a query
 * costs, counted the same on any machine (tests hold hot queries to it). */
uint64_t cat_vm_steps(struct cat *c, bool reset);
void cat_wal_path(const struct cat *c, char *buf, size_t len);
int cat_sync_path(const char *wal_path);
/* No automatic WAL checkpoints in commits on `c` (each one fsyncs twice); the caller
 * then runs cat_checkpoint_path() now and then, from a thread of its own if it likes. */
int cat_checkpoints_elsewhere(struct cat *c);
int cat_checkpoint_path(const char *db_path);

/*
 * Check the database and the invariants listed in catalog.c (integrity_check,
 * foreign_key_check, then one query per invariant). 0 or -EUCLEAN with the first
 * problem in cat_errmsg(). For `hactl check` and the tests.
 */
int cat_verify(struct cat *c);

/* ---- services and generations (gen.c) ------------------------------------------- */

enum cat_gen_state { CAT_GEN_PENDING, CAT_GEN_COMPLETE, CAT_GEN_FAILED, CAT_GEN_PRUNED };
#define CAT_GEN_MASK(s) (1u << (s))

struct cat_gen_stats {
	int64_t pause_us;	/* freeze -> release */
	int64_t bytes_new;	/* page data this generation wrote */
	int64_t bytes_total;	/* page data it refers to, its own and older (store
				 * generations: the raw size of every page its map holds,
				 * what a full dump would write) */
	int64_t pages;		/* pages in its page map */
	uint64_t checksum;	/* XXH3-64 of its page map and images, from the engine */
	int64_t store_gen;	/* its number in the service's page store (engine/store.c);
				 * 0: a plain image directory. Unique among the service's
				 * complete generations (-EEXIST at commit otherwise). */
};

struct cat_gen {
	int64_t id, service;
	int64_t parent;		/* 0: none (a full checkpoint) */
	enum cat_gen_state state;
	int64_t started_us;
	int64_t committed_us;	/* 0 unless complete or pruned */
	int64_t ended_us;	/* when it failed or was pruned, else 0 */
	struct cat_gen_stats stats;	/* valid when complete or pruned */
	char origin[CAT_NAME_MAX];	/* node that took it; "" = this node */
	int64_t origin_gen;	/* its id there; 0 when local */
};

const char *cat_gen_state_name(enum cat_gen_state s);

/* The id of service `name`, created if new. */
int cat_service_ensure(struct cat *c, const char *name, int64_t *id);

/*
 * The role of a service on this node (role.c): ACTIVE runs and checkpoints it, STANDBY
 * receives its generations. It survives restarts so that a node that failed over stays
 * active, and a node that was failed over from comes back standby. NONE: never set.
 */
enum cat_role { CAT_ROLE_NONE, CAT_ROLE_ACTIVE, CAT_ROLE_STANDBY };
const char *cat_role_name(enum cat_role r);
/* NONE when the service has never had a role (or is unknown). */
int cat_role_get(struct cat *c, int64_t service, enum cat_role *role);
/* Records the role and when; setting the role it already has changes nothing. */
int cat_role_set(struct cat *c, int64_t service, enum cat_role role);

/* A new pending generation of `service`; `parent` is 0 or a complete one of it. */
int cat_gen_begin(struct cat *c, int64_t service, int64_t parent, int64_t *gen);
/* Same for a generation received from node `origin` where its id is `origin_gen`. */
int cat_gen_begin_from(struct cat *c, int64_t service, int64_t parent, const char *origin,
		       int64_t origin_gen, int64_t *gen);
/* pending -> complete. Call only once its data and images are fsynced (DESIGN 2.6). */
int cat_gen_commit(struct cat *c, int64_t gen, const struct cat_gen_stats *st);
/* pending -> failed. */
int cat_gen_fail(struct cat *c, int64_t gen);
/* complete -> pruned, outside retention: its data is gone (a page store generation a
 * power loss took back after the catalog committed it). The caller logs an event. */
int cat_gen_lost(struct cat *c, int64_t gen);
/* complete -> pruned, with a "diverged" event saying why: a standby's generation that
 * is not part of the history its active peer now ships (after a failover). */
int cat_gen_retire(struct cat *c, int64_t gen, const char *why);

int cat_gen_get(struct cat *c, int64_t gen, struct cat_gen *out);
/* The complete generation of `service` whose page-store number is `store_gen`: -ENOENT. */
int cat_gen_find_store(struct cat *c, int64_t service, int64_t store_gen, int64_t *gen);
/* The pending or complete generation received from `origin` as `origin_gen`: -ENOENT. */
int cat_gen_find_origin(struct cat *c, const char *origin, int64_t origin_gen, int64_t *gen);
/* -ENOENT when the service has no complete generation. */
int cat_gen_latest_complete(struct cat *c, int64_t service, struct cat_gen *out);
/*
 * Generations of `service`, newest (highest id) first, into a malloc'ed array the caller
 * frees. `states`: OR of CAT_GEN_MASK(), 0 for all; `limit`: 0 for no limit.
 */
int cat_gen_list(struct cat *c, int64_t service, unsigned states, size_t limit,
		 struct cat_gen **out, size_t *n);

/*
 * Start-up recovery, before any generation is begun: every pending generation becomes
 * failed (its pack data is then collected by GC), every SENDING peer state becomes
 * FAILED, every open pack is sealed. Returns how many generations it failed, or -errno.
 */
int cat_recover(struct cat *c);

/* ---- replication state (gen.c) ---------------------------------------------------- */

enum cat_peer_state { CAT_PEER_NONE, CAT_PEER_SENDING, CAT_PEER_CONSISTENT, CAT_PEER_FAILED };

struct cat_gen_peer {
	char peer[CAT_NAME_MAX];
	enum cat_peer_state state;
	int64_t updated_us;
};

const char *cat_peer_state_name(enum cat_peer_state s);
/* Move `peer`'s state of complete generation `gen` along the edges drawn above. */
int cat_gen_peer_set(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state st);
/* NONE when there is no row. */
int cat_gen_peer_get(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state *st);
/* Every peer row of `gen`, sorted by peer name; malloc'ed, caller frees. */
int cat_gen_peers(struct cat *c, int64_t gen, struct cat_gen_peer **out, size_t *n);

/* ---- packs and garbage collection (pack.c) -------------------------------------- */

enum cat_pack_state { CAT_PACK_OPEN, CAT_PACK_SEALED, CAT_PACK_DEAD };

struct cat_pack {
	int64_t id, service;
	char file[CAT_FILE_MAX];	/* relative to the page store's directory */
	int64_t size;		/* bytes, as given to cat_pack_seal() */
	enum cat_pack_state state;
	int64_t bytes_ref;	/* cat_gen_packs(): bytes that generation refers to */
};

/*
 * Record a new pack file (OPEN) *before* creating it, so the catalog knows every file
 * that may exist. `file` is one path component: no '/', not "." or "..".
 */
int cat_pack_add(struct cat *c, int64_t service, const char *file, int64_t *pack);
/* OPEN -> SEALED, with its final size. Reference its data first (invariant 8). */
int cat_pack_seal(struct cat *c, int64_t pack, int64_t size);
/* Pending generation `gen` refers to `bytes` more bytes of `pack` (added up). */
int cat_pack_ref(struct cat *c, int64_t gen, int64_t pack, int64_t bytes);
int cat_pack_get(struct cat *c, int64_t pack, struct cat_pack *out);
/* The packs `gen` refers to, by pack id; malloc'ed, caller frees. */
int cat_gen_packs(struct cat *c, int64_t gen, struct cat_pack **out, size_t *n);

/*
 * Garbage collection, crash-safe in three steps:
 *   1. cat_gc_begin(): in one transaction, every sealed pack no generation refers to
 *      becomes DEAD; returns every DEAD pack, including ones a crash left behind.
 *   2. the caller unlinks each file (ENOENT is fine) and fsyncs the directory;
 *   3. cat_gc_done(pack) deletes the row. -ENOENT if already gone.
 * `out` is malloc'ed (NULL when *n == 0); the caller frees it.
 */
int cat_gc_begin(struct cat *c, struct cat_pack **out, size_t *n);
int cat_gc_done(struct cat *c, int64_t pack);

/* ---- retention (retention.c) ------------------------------------------------------ */

/*
 * Which complete generations of a service survive; every other one is pruned. Kept:
 * the keep_last newest; the newest of each UTC hour among those committed in the last
 * keep_hourly hours; the newest of each UTC day among those of the last keep_daily days.
 * Never pruned whatever the policy (invariant 6): the newest complete generation, one a
 * peer is being sent (SENDING: the sender reads its packs, and in sync mode it is not
 * yet safe on the standby), and the parent of a pending generation (whose page map may
 * point into the parent's packs before it has referenced them).
 * Failed and pruned rows are deleted forget_after_s after they ended (0: kept forever).
 */
struct cat_retention {
	unsigned keep_last;
	unsigned keep_hourly;
	unsigned keep_daily;
	int64_t forget_after_s;
	int64_t keep_from;	/* also keep every generation with id >= keep_from (sync
				 * replication: the newest one the standby acknowledged and
				 * all after it); 0: no such floor */
};

int cat_retention_apply(struct cat *c, int64_t service, const struct cat_retention *policy,
			int64_t now_us, int *pruned);

/* ---- event log (event.c) ---------------------------------------------------------- */

struct cat_event {
	int64_t id, ts_us;
	int64_t service;	/* 0: the agent itself */
	int level;		/* syslog priority, 0..7 */
	char kind[CAT_KIND_MAX];
	char message[CAT_MSG_MAX];
};

/* Append an event; the log keeps the newest CAT_EVENT_KEEP. */
#define CAT_EVENT_KEEP 10000
int cat_event_add(struct cat *c, int64_t service, int level, const char *kind,
		  const char *message);
/* The newest `n` events, newest first; service 0 for all. malloc'ed, caller frees. */
int cat_event_last(struct cat *c, int64_t service, size_t n, struct cat_event **out,
		   size_t *count);

#endif
