/* hacd's private header: the daemon's state and the calls between its files. */
#ifndef HA_HACD_H
#define HA_HACD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <syslog.h>

#include <event2/util.h>

/* glibc's sys/queue.h lacks it. */
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	     (var) && ((tvar) = TAILQ_NEXT(var, field), 1);		\
	     (var) = (tvar))
#endif

struct event_base;
struct conf;
struct cat;
struct hacd_ctl;
struct event;
struct conf_service;
struct svc;
struct hacd_bg;
struct Hacd__WorkerRequest;
struct Hacd__WorkerReply;
struct hacd_replica;
struct rep_sender_status;
struct rep_standby_status;

/* Exit codes of hacd (sysexits). */
enum {
	HACD_EXIT_OK = 0,
	HACD_EXIT_FAIL = 1,
	HACD_EXIT_USAGE = 64,
	HACD_EXIT_CONFIG = 78,
};

struct hacd {
	struct event_base *base;
	const char *conf_path;
	struct conf *conf;		/* the current config; replaced whole on reload */
	struct cat *cat;
	struct hacd_ctl *ctl;
	struct hacd_replica *replica;	/* NULL: no listen, no peers */
	uint64_t started_us;		/* CLOCK_MONOTONIC, for the uptime */
	TAILQ_HEAD(, svc) services;
	struct hacd_gen_hook *gen_hooks;	/* fired when a generation becomes complete */
	struct event *gc_ev;		/* retention and GC, once a second */
	struct hacd_bg *bg;		/* the helper thread (hacd-bg.c) */
	struct hacd_bg_job *sync_job;	/* a catalog sync not yet begun, gens can join it */
	bool gc_busy;			/* a GC job is in the helper thread */
	bool cat_ckpt_busy;		/* a WAL checkpoint job is */
	unsigned gc_rounds;
	bool stopping;
};

/*
 * A job for the helper thread (hacd-bg.c): work() runs there and may touch only what
 * the job holds (paths, fds), done() then runs in the loop; free() releases the job.
 * Embed it first in the job's own struct.
 */
struct hacd_bg_job {
	void (*work)(struct hacd_bg_job *j);
	void (*done)(struct hacd *d, struct hacd_bg_job *j);
	void (*free)(struct hacd_bg_job *j);
	bool started;			/* taken by the thread: amending it is too late */
	TAILQ_ENTRY(hacd_bg_job) link;
};
int hacd_bg_start(struct hacd *d);
void hacd_bg_stop(struct hacd *d);
void hacd_bg_submit(struct hacd *d, struct hacd_bg_job *j);
bool hacd_bg_amend(struct hacd *d, struct hacd_bg_job *j,
		   void (*fn)(struct hacd_bg_job *, void *), void *arg);

/*
 * Launch services in their own pid, ipc, uts and mount namespaces under our init
 * (DESIGN.md 4): their pids are always free at restore, which recreates the namespaces
 * (the engine dumps such a tree through the init, with the pids it sees inside). Status
 * shows the service's pid as hacd sees it: a new one after each restore, the same
 * inside.
 */
#define HACD_LAUNCH_PIDNS	true

/* hacd's own scheduling priority (hacd.c); its workers and services run at 0. */
#define HACD_NICE		(-10)

/* Largest worker message: a request carries a command line, a reply an engine error. */
/* Event priorities (libevent runs every ready event of a lower number first): a
 * status request that arrives with 20 workers' replies is answered before their
 * catalog commits, not after. Everything else takes the default, the middle one. */
enum { HACD_PRIO_CTL, HACD_PRIO_DEFAULT, HACD_NR_PRIOS };

#define WORKER_MSG_MAX		(64 * 1024)

/* Lateness samples kept per service for the status (p50/p99). */
#define SVC_LATE_SAMPLES	256

/*
 * A guarded service's life, driven from the loop (hacd-svc.c draws the machine).
 */
enum svc_state {
	SVC_STARTING,		/* launch or attach in progress */
	SVC_RUNNING,		/* guarded: checkpoints on schedule */
	SVC_STOPPING,		/* killed on purpose (rollback, reload, stop): wait for it */
	SVC_RESTORING,		/* a generation is being restored */
	SVC_DEAD,		/* gone and not coming back (policy none, or failures) */
	SVC_STOPPED,		/* not run here: standby (hacd-role.c) */
};

enum svc_wait_kind { SVC_WAIT_CHECKPOINT, SVC_WAIT_ROLLBACK };

/* A control request waiting for an operation: answered on fd (a dup of the client's). */
struct svc_waiter {
	int fd;
	enum svc_wait_kind kind;
	bool armed;			/* its operation has started */
	TAILQ_ENTRY(svc_waiter) link;
};

enum { SVC_AFTER_NOTHING, SVC_AFTER_RESTORE, SVC_AFTER_START, SVC_AFTER_FREE,
       SVC_AFTER_STANDBY };

/* hacd-role.c: where a demotion is (see the machine there). */
enum svc_demote { DEMOTE_NONE, DEMOTE_CKPT, DEMOTE_ACKS, DEMOTE_STOP };

struct svc {
	struct hacd *d;
	const struct conf_service *cs;	/* in d->conf; re-pointed on reload */
	char name[72];
	int64_t cat_id;
	enum svc_state state;
	pid_t init;			/* what exits when the service does */
	pid_t pid;			/* the checkpoint target */
	int pidfd;
	struct event *pidfd_ev;
	char last_error[1024];
	/* scheduler */
	struct event *timer;
	uint64_t next_us;		/* CLOCK_MONOTONIC of the next due checkpoint */
	uint64_t due_us;		/* when the one in flight was due */
	uint64_t late[SVC_LATE_SAMPLES];
	unsigned n_late;
	uint64_t n_ckpt, n_failed, n_missed;
	/* the checkpoint in flight */
	int64_t gen, pack;
	/* page store (incremental): STORE_GC wanted (at start, after retention pruned),
	 * not before store_gc_retry_us (CLOCK_MONOTONIC) after a failed one */
	bool store_gc_due;
	uint64_t store_gc_retry_us;
	/* restore in flight, or wanted once the service is stopped */
	int64_t restore_gen;		/* 0: latest complete */
	bool want_ckpt;			/* asked by hactl checkpoint, or a tick waiting */
	bool tick_waits;		/* a due tick waits for a STORE_GC to end */
	bool retention_due;		/* committed since the last retention round */
	int after_stop;			/* SVC_AFTER_*: what a purposeful stop leads to */
	bool stop_pending;		/* stop once the op in flight ends */
	uint64_t stop_timeout_us;	/* copied: a removed service outlives its conf */
	bool launched;			/* we started it (command): we stop it */
	struct event *kill_timer;	/* SIGKILL after stop_timeout */
	bool dead_seen;			/* the process ended while an op was in flight */
	struct event *retry;		/* a restore that hit a still-taken pid */
	unsigned retries;
	/* worker */
	pid_t w_pid;
	int w_fd;
	struct event *w_ev;
	uint64_t w_seq;
	int w_op;			/* HACD__WORKER_OP__*: in flight, 0: idle */
	uint64_t w_sent_us;
	unsigned w_restarts;
	/* checkpoint_timeout of the request in flight, then the grace between the
	 * worker's SIGTERM and its SIGKILL (hacd-worker.c invariant 6) */
	struct event *w_timer;
	bool w_abandoned;		/* the checkpoint in flight timed out */
	TAILQ_HEAD(, svc_waiter) waiters;
	TAILQ_ENTRY(svc) link;
	/* role (hacd-role.c) */
	int role;			/* enum cat_role: ACTIVE or STANDBY here */
	bool role_wait;			/* active before: waiting to hear the peers first */
	bool promoting;			/* the restore in flight is a promotion */
	enum svc_demote demote;
	int demote_fd;			/* the hactl demote waiting, -1: none */
	uint64_t demote_ckpts;		/* n_ckpt + n_failed when it began */
	int64_t demote_gen;		/* the last checkpoint, to be acked */
	uint64_t role_deadline_us;	/* end of role_wait or of the wait for acks */
	struct event *role_timer;
};

/*
 * Called when generation `gen` (catalog id) of `s` becomes complete, once the catalog's
 * commit of it is durable: the place where replication (issue 7) hooks in. Where its
 * data is:
 *   store_gen 0 (checkpoint = "full"): `dir` is its image directory,
 *     STATE_DIR/services/NAME/gen-<gen>;
 *   store_gen N > 0 (incremental): `dir` is the service's page store (svc_store_dir):
 *     the images are in `dir`/gen-<N, 8 digits>, the page data in `dir`/packs, and
 *     eng_store_*, hactl image show|verify -D `dir` --generation N read it.
 */
typedef void (*hacd_gen_hook_fn)(struct svc *s, int64_t gen, const char *dir,
				 uint32_t store_gen, void *opaque);
struct hacd_gen_hook {
	hacd_gen_hook_fn fn;
	void *opaque;
	struct hacd_gen_hook *next;
};
int hacd_gen_hook_add(struct hacd *d, hacd_gen_hook_fn fn, void *opaque);

/* hacd-log.c: stderr with <N> priority prefixes (journald reads them), and sd_notify. */
void hacd_log_set_level(int level);
/* Routes libevent's messages through hacd_log(). */
void hacd_log_libevent(void);
__attribute__((format(printf, 2, 3)))
void hacd_log(int prio, const char *fmt, ...);
/* Sends "state" to $NOTIFY_SOCKET when set; 0 or -errno (logged once at debug). */
int hacd_notify(const char *state);
__attribute__((format(printf, 1, 2)))
int hacd_notifyf(const char *fmt, ...);
uint64_t hacd_now_us(void);
/* Every loop callback is defined through HACD_LOOP_CB, which times it: one that held
 * the loop long is logged (at notice) with `what` and the detail its body gave. */
struct hacd_held {
	uint64_t wall_us, cpu_us;
};
void hacd_held_begin(struct hacd_held *h);
void hacd_held_end(const struct hacd_held *h, const char *what);
/* The same line for a callback timed elsewhere (the replica library's, rep_held_fn). */
void hacd_held_report(uint64_t wall_us, uint64_t cpu_us, const char *what, const char *detail);
__attribute__((format(printf, 1, 2)))
void hacd_held_detail(const char *fmt, ...);
#define HACD_LOOP_CB(cb, body, what)						\
	static void cb(evutil_socket_t fd_, short ev_, void *arg_)		\
	{									\
		struct hacd_held h_;						\
									\
		hacd_held_begin(&h_);						\
		body(fd_, ev_, arg_);						\
		hacd_held_end(&h_, what);					\
	}

/* hacd-ctl.c: the control socket. */
int hacd_ctl_open(struct hacd *d, struct hacd_ctl **out);
void hacd_ctl_close(struct hacd_ctl *ctl);
/* The path it listens on: a reload does not move it. */
const char *hacd_ctl_path(const struct hacd_ctl *ctl);

/* hacd-worker.c: one engine worker per service. */
int hacd_worker_start(struct svc *s);
void hacd_worker_stop(struct svc *s);
int hacd_worker_send(struct svc *s, struct Hacd__WorkerRequest *req);

/* hacd-svc.c: the services' state machines, scheduler and generations. */
int hacd_svcs_start(struct hacd *d);
/* Guard a service whose role is active: adopt what a previous hacd left, or start it. */
void svc_begin(struct svc *s);
/* Kill it (a last checkpoint was taken) and then make it standby (hacd_role_stopped). */
void svc_stop_standby(struct svc *s);
/* After a reload: start new services, restart changed ones, stop removed ones. */
void hacd_svcs_reload(struct hacd *d);
/* SIGTERM: stop launched services (stop_timeout, then SIGKILL), free everything. */
void hacd_svcs_stop(struct hacd *d);
struct svc *hacd_svc_find(struct hacd *d, const char *name);
void svc_worker_reply(struct svc *s, int op, const struct Hacd__WorkerReply *rep);
/* A child of hacd was reaped (SIGCHLD): a worker, or a service adopted as subreaper. */
void hacd_svcs_reaped(struct hacd *d, pid_t pid, int status);
const char *svc_state_name(enum svc_state st);
/* Directory of generation `gen` of `s`: STATE_DIR/services/NAME/gen-ID. */
void svc_gen_dir(const struct svc *s, int64_t gen, char *buf, size_t len);
/* STATE_DIR/services/NAME/store: the service's page store (engine/store.c), where
 * generations with a store_gen live, as STORE/gen-<store_gen> and STORE/packs/. The
 * same on every node: a standby receives into it, and restores from it on failover. */
void svc_store_dir(const struct svc *s, char *buf, size_t len);
/* p50 and p99 of the scheduling lateness samples, in microseconds. */
void svc_lateness(const struct svc *s, uint64_t *p50, uint64_t *p99);

/*
 * Control requests that complete later (checkpoint, rollback): the reply goes to
 * `fd` (a dup of the client's socket) when the operation ends.
 */
int svc_request_checkpoint(struct svc *s, int fd);
int svc_request_rollback(struct svc *s, int64_t gen, int fd, char *err, size_t errlen);
/* Logged, kept as the service's last error when a warning or worse, and in the
 * catalog's event log. */
__attribute__((format(printf, 4, 5)))
void svc_event(struct svc *s, int level, const char *kind, const char *fmt, ...);
/* STATE_DIR/services/NAME, 0700, created as needed; an fd or -errno. */
int svc_dir_open(const struct svc *s);
int64_t svc_wall_us(void);

/* hacd-gen.c: checkpoints, retention, GC, waiting requests. */
void svc_ckpt_start(struct svc *s);
/* Whether `s` takes incremental checkpoints into its page store. */
bool svc_incremental(const struct svc *s);
/* The worker is idle: send a STORE_GC if one is due (true: sent). */
bool svc_store_gc_next(struct svc *s);
void svc_store_gc_done(struct svc *s, const struct Hacd__WorkerReply *rep);
/* Whether STATE_DIR/services/NAME/store exists. */
bool svc_has_store(const struct svc *s);
/* rep NULL: the worker died with it. */
void svc_ckpt_done(struct svc *s, const struct Hacd__WorkerReply *rep);
void svc_timer_arm(struct svc *s);
void svc_tick(evutil_socket_t fd, short what, void *arg);
/* Retention of services that committed since the last round, then collect every
 * pack (generation directory) the catalog says is dead. */
void hacd_gc(struct hacd *d);
/* The same, waiting for the unlinks here (at start). */
void hacd_gc_now(struct hacd *d);
/* At start: remove generation directories the catalog does not know. */
void svc_sweep_unknown(struct svc *s);
/* A WAL checkpoint of the catalog in the helper thread (the loop's commits run none). */
void hacd_catalog_checkpoint(struct hacd *d);
int svc_waiter_add(struct svc *s, enum svc_wait_kind kind, int fd);
void svc_waiters_arm(struct svc *s, enum svc_wait_kind kind);
/* Answer every waiter of `kind` (armed ones only unless `all`). */
void svc_waiters_done(struct svc *s, enum svc_wait_kind kind, bool all, int status,
		      const char *error, int64_t gen);

/* hacd-ctl.c: answer a waiting client: status, error, generation (0: none). */
void hacd_ctl_reply_done(int fd, int status, const char *error, struct cat *cat,
			 int64_t gen);

/* hacd.c: reload the config (SIGHUP, or a reload request); 0 or -errno. */
int hacd_reload(struct hacd *d);

/* hacd-role.c: active and standby (docs/cluster.md). */
/* At svc_new: the role from the catalog and the config; true: do not start it now. */
bool hacd_role_init(struct svc *s);
void hacd_role_free(struct svc *s);
/* promote: 1 done (nothing to wait for), 0 the reply goes to fd later, or -errno. */
int hacd_role_promote(struct svc *s, bool force, int fd, char *err, size_t errlen);
int hacd_role_demote(struct svc *s, int fd, char *err, size_t errlen);
/* The restore of a promotion ended (svc-hacd.c restore_done). */
void hacd_role_restored(struct svc *s, bool ok);
/* The service was stopped by svc_stop_standby. */
void hacd_role_stopped(struct svc *s);
/* A peer reported the service active (change: it was not before, on that link). */
void hacd_role_peer_active(struct svc *s, const char *peer, bool change);
const char *hacd_role_name(const struct svc *s);

/* hacd-replica.c: replication to and from the peers (ha/replica.h). */
int hacd_replica_open(struct hacd *d);
void hacd_replica_close(struct hacd *d);
/* After d->conf was replaced, before the old one is freed: the library borrows it. */
int hacd_replica_reload(struct hacd *d);
/* Queue a generation that just became complete for every peer. */
void hacd_replica_push(struct hacd *d, const char *service, int64_t gen);
int hacd_replica_sender_status(struct hacd *d, const char *peer,
			       struct rep_sender_status *st);
int hacd_replica_standby_status(struct hacd *d, const char *peer, const char *service,
				struct rep_standby_status *st);
/* For hactl status: newest complete generation, and the replication lag. */
void hacd_replica_service_lag(struct hacd *d, const char *service, int64_t *newest,
			      uint32_t *lag_gens, double *lag_s);
/* 0 when this node may restore `service` and become its active node; else why not. */
int hacd_replica_promote_check(struct hacd *d, const char *service, bool force, char *err,
			       size_t errlen);
/* Whether `peer` is connected to us, sending us its generations. */
bool hacd_replica_standby_of(struct hacd *d, const char *peer);
/* Whether a connection to or from `peer` is up and past its handshake. */
bool hacd_replica_reachable(struct hacd *d, const char *peer);
/* The role of `service` `peer` last reported on a connection that is still up, as an
 * enum rep_role (UNKNOWN when unreachable or not heard). */
int hacd_replica_peer_role(struct hacd *d, const char *peer, const char *service);
/* Our roles changed: tell the peers now. */
void hacd_replica_roles_changed(struct hacd *d);
/*
 * Sync replication (hacd-replica.c): a generation of an active service with
 * replication = "sync" is safe only once every configured peer acknowledged it.
 * hacd_replica_safe: the newest such generation (0: none yet). hacd_replica_sync_floor:
 * the retention floor (ha/catalog.h keep_from): the safe one and every newer one are
 * kept, all of them while none is safe; 0 for an async or standby service.
 */
int64_t hacd_replica_safe(struct svc *s);
int64_t hacd_replica_sync_floor(struct svc *s);
/* `service` became active here: queue what each peer lacks of it. */
void hacd_replica_backlog(struct hacd *d, const char *service);

#endif
