/*
 * receiver.c: the standby's side. Accepts TLS connections from configured peers, takes
 * the generations they offer, and makes each one consistent here, or nothing.
 *
 * DESIGN
 * A connection goes through these states (one generation at a time):
 *
 *   accept --TLS handshake, certificate names a configured peer--> HELLO
 *   HELLO  --Hello (version, node = certificate's name)---------->  IDLE
 *   IDLE   --Offer: already consistent: Have{present}------------>  IDLE
 *   IDLE   --Offer: catalog PENDING, .part dir, Have{need}------->  DATA (or COMMIT)
 *   DATA   --Data of the last needed byte--------------------------> COMMIT
 *   COMMIT --Commit: job: fsync files and dir, rename, fsync store--> SYNC
 *   SYNC   --job done: catalog COMPLETE, job: fdatasync WAL, Ack{ok}> IDLE
 *   any    --bad checksum, refused generation: Ack{error}--------> REFUSED
 *   REFUSED --whatever the sender had in flight: discarded; it closes on the Ack
 *   any    --bad message, EOF, error, timeout in REFUSED--------->  gen_abort(), close
 *
 *   transition                 function
 *   accept                     on_accept, on_event (BEV_EVENT_CONNECTED)
 *   HELLO -> IDLE              on_hello
 *   IDLE -> DATA/COMMIT        on_offer
 *   DATA -> COMMIT             on_data, file_next
 *   COMMIT -> SYNC             on_commit
 *   SYNC -> IDLE               files_done, sync_done (in the loop, after each job)
 *   -> REFUSED                 gen_refuse
 *   -> closed                  conn_close_soon, conn_free
 *
 * Invariants:
 *  1. A generation is COMPLETE (consistent) in our catalog only after every file matched
 *     its XXH3, was fsynced, its directory was fsynced, renamed from .gen-ID.part to gen-ID, and
 *     the store directory fsynced: a crash at any point leaves a PENDING row (failed by
 *     cat_recover) and a .part directory (removed by rep_server_new), never a COMPLETE
 *     generation with missing data.
 *  2. Every received name was checked plain (wire.c) before it is joined to a path, and
 *     files are created with O_EXCL | O_NOFOLLOW inside a directory we just made.
 *  3. A damaged Data message fails the whole generation: we never ask for a chunk again,
 *     the sender starts the generation over on a new connection.
 *  4. The fsyncs of a commit (and a page store's GC) never run in the caller's loop,
 *     where status requests wait behind them: jobs on the library's helper thread
 *     (jobs.c) do, in invariant 1's order, with the catalog's commit in the loop between
 *     them. While a connection's job runs, the loop touches none of its generation's
 *     files; a connection closed meanwhile is detached and freed by the job's done(),
 *     which undoes what the catalog does not name (a crash there leaves what invariant 1
 *     says).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <xxhash.h>

#include "ha/catalog.h"
#include "ha/engine.h"
#include "replica-int.h"

enum rstate { R_TLS, R_HELLO, R_IDLE, R_BUSY, R_DATA, R_COMMIT, R_SYNC, R_REFUSED, R_CLOSING };

/* A commit's disk waits, on the helper thread (jobs.c), in this order. */
enum rjob { J_NONE, J_FILES, J_SYNC };

struct rconn {
	struct rep_server *s;
	struct rconn *next;
	struct bufferevent *bev;
	char addr[64];
	char peer[REP_NAME_MAX + 1];
	enum rstate st;
	/* The generation being received. */
	RepMsg *offer_msg;
	const RepOffer *offer;
	int64_t local;			/* its pending id here, 0 = none */
	int64_t pack;			/* its directory as a catalog pack, 0 = none */
	char svcdir[PATH_MAX], tmp[PATH_MAX];
	int dirfd;
	uint32_t *need;
	size_t n_need, cur;
	int fd;				/* need[cur], being written */
	uint64_t written;
	XXH3_state_t *xs;
	uint64_t bytes, linked;
	bool refused_timer;
	uint8_t *peer_role;		/* per o.services[]: as heard (enum rep_role) */
	/* A page-store generation (offer->store_gen > 0): the store, locked while it is
	 * received; its packs, what we held of each, the one being appended. */
	struct eng_store_rx *rx;
	struct eng_store_pack *packs;
	uint64_t *pack_have;
	size_t pcur;
	uint64_t pwritten;
	struct event *busy;		/* the store was locked by another writer: retry */
	/* The commit's job (R_SYNC): the loop leaves rx, packs, dirfd, fd, tmp and final
	 * to the thread meanwhile and reads nothing from the peer. */
	struct rep__job job;
	enum rjob job_kind;
	int job_ret;
	char job_err[2 * PATH_MAX + 64];
	bool renamed;			/* plain: tmp is now final */
	bool gone;			/* closed while the job ran: its done() frees it */
	struct eng_store_rx_stats es;
	char final[PATH_MAX];
	uint64_t job_us;		/* when it was submitted */
};

/* What we last heard from a peer about a service, for rep_server_status(). */
struct rlag {
	char peer[REP_NAME_MAX + 1], service[REP_NAME_MAX + 1];
	int64_t active_newest, active_newest_us;
	int64_t held, held_us;		/* the peer's id and commit time of our newest */
	uint32_t lag;
};

struct rep_server {
	struct event_base *base;
	struct rlag *lags;
	size_t n_lags;
	struct rep_server_opts o;
	struct evconnlistener *lis;
	uint16_t port;
	struct rconn *conns;
	size_t n_conns;
	struct event *hb;		/* roles heartbeat */
	/* What the loop callback running now did, for its timing (rep_held_fn). */
	char held[256];
	unsigned held_msgs;
	struct rep__jobs *jobs;		/* the commits' disk waits */
	char wal[PATH_MAX + 8];		/* our catalog's WAL, fdatasynced by a job */
};

static const struct timeval xfer_timeout = { 60, 0 };

#define LOG(s, prio, ...) rep__log((s)->o.log, (s)->o.log_opaque, prio, __VA_ARGS__)

/* Every loop callback of ours is timed for the caller (o.held); held[] says for whom and
 * what it did: the peer, and the Offers, Commits and store GCs it ran. */
static void held_begin(struct rep_server *s, struct rep__held *h, const struct rconn *c)
{
	if (!s->o.held)
		return;
	s->held[0] = 0;
	s->held_msgs = 0;
	if (c)
		snprintf(s->held, sizeof(s->held), "peer %s (%s)", c->peer, c->addr);
	rep__held_begin(h);
}

static void held_end(struct rep_server *s, const struct rep__held *h, const char *what)
{
	if (!s->o.held)
		return;
	if (s->held_msgs)
		rep__held_note(s->held, sizeof(s->held), "%u messages", s->held_msgs);
	rep__held_end(h, s->o.held, s->o.opaque, what, s->held);
}

#define HELD_NOTE(s, ...) rep__held_note((s)->held, sizeof((s)->held), __VA_ARGS__)

/* The timed wrappers (at the end) of the loop callbacks. */
static void on_read_cb(struct bufferevent *bev, void *arg);
static void on_flushed_cb(struct bufferevent *bev, void *arg);
static void on_event_cb(struct bufferevent *bev, short what, void *arg);
static void on_busy_cb(evutil_socket_t fd, short what, void *arg);

static enum rep_role my_role(const struct rep_server *s, const char *service)
{
	return s->o.role ? s->o.role(s->o.opaque, service) : REP_ROLE_STANDBY;
}

static bool service_ok(const struct rep_server *s, const char *name)
{
	for (size_t i = 0; i < s->o.n_services; i++)
		if (!strcmp(s->o.services[i], name))
			return true;
	return false;
}

/* The newest generation of `service` from `origin` consistent here (its id there). */
static int64_t newest_from(struct cat *cat, int64_t sid, const char *origin)
{
	struct cat_gen *g;
	size_t n;
	int64_t best = 0;

	if (cat_gen_list(cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(g[i].origin, origin) && g[i].origin_gen > best)
			best = g[i].origin_gen;
	free(g);
	return best;
}

static struct rlag *lag_get(struct rep_server *s, const char *peer, const char *service,
			    bool create)
{
	struct rlag *l;

	for (size_t i = 0; i < s->n_lags; i++)
		if (!strcmp(s->lags[i].peer, peer) && !strcmp(s->lags[i].service, service))
			return &s->lags[i];
	if (!create || !(l = realloc(s->lags, (s->n_lags + 1) * sizeof(*l))))
		return NULL;
	s->lags = l;
	l = &s->lags[s->n_lags++];
	memset(l, 0, sizeof(*l));
	snprintf(l->peer, sizeof(l->peer), "%s", peer);
	snprintf(l->service, sizeof(l->service), "%s", service);
	return l;
}

/* ---- one generation ------------------------------------------------------------ */

static void gen_abort(struct rconn *c)
{
	struct rep_server *s = c->s;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->dirfd >= 0)
		close(c->dirfd);
	c->dirfd = -1;
	if (c->tmp[0])
		rep__rmtree(c->tmp);
	c->tmp[0] = 0;
	if (c->local) {
		struct cat_gen g;

		if (!cat_gen_get(s->o.cat, c->local, &g) && g.state == CAT_GEN_PENDING &&
		    cat_gen_fail(s->o.cat, c->local))
			LOG(s, LOG_ERR, "catalog: failing generation %lld: %s",
			    (long long)c->local, cat_errmsg(s->o.cat));
	}
	c->local = 0;
	eng_store_rx_close(c->rx);	/* drops .gen-N.tmp; partial packs stay, resumable */
	c->rx = NULL;
	free(c->packs);
	free(c->pack_have);
	c->packs = NULL;
	c->pack_have = NULL;
	c->pcur = 0;
	c->pwritten = 0;
	if (c->busy)
		event_del(c->busy);
	/* Unreferenced once sealed: GC removes what is left of its directory. */
	if (c->pack && cat_pack_seal(s->o.cat, c->pack, 0))
		LOG(s, LOG_ERR, "catalog: sealing pack %lld: %s", (long long)c->pack,
		    cat_errmsg(s->o.cat));
	c->pack = 0;
	free(c->need);
	c->need = NULL;
	c->n_need = c->cur = 0;
	if (c->offer_msg)
		rep_msg__free_unpacked(c->offer_msg, NULL);
	c->offer_msg = NULL;
	c->offer = NULL;
	c->bytes = c->linked = 0;
}

static void conn_destroy(struct rconn *c)
{
	gen_abort(c);
	XXH3_freeState(c->xs);
	free(c->peer_role);
	free(c);
}

/* Closed, and out of the server's list; with a job running, the job's done() destroys
 * it once the thread is done with its files (files_done, sync_done). */
static void conn_free(struct rconn *c)
{
	struct rep_server *s = c->s;

	for (struct rconn **p = &s->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	s->n_conns--;
	if (c->bev)
		bufferevent_free(c->bev);
	c->bev = NULL;
	if (c->busy) {
		event_free(c->busy);
		c->busy = NULL;
	}
	if (c->job_kind != J_NONE) {
		c->gone = true;
		return;
	}
	conn_destroy(c);
}

static void on_flushed(struct bufferevent *bev, void *arg)
{
	struct rconn *c = arg;

	if (!evbuffer_get_length(bufferevent_get_output(bev)))
		conn_free(c);
}

/* Stop reading, let what we queued (an Ack with the reason) reach the peer, close. */
static void conn_close_soon(struct rconn *c)
{
	c->st = R_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_setcb(c->bev, NULL, on_flushed_cb, NULL, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
	if (!evbuffer_get_length(bufferevent_get_output(c->bev)))
		conn_free(c);
}

static void send_ack(struct rconn *c, const char *service, int64_t gen, const char *error)
{
	RepMsg m = REP_MSG__INIT;
	RepAck a = REP_ACK__INIT;

	a.service = (char *)service;
	a.has_gen = a.has_ok = 1;
	a.gen = gen;
	a.ok = !error;
	a.error = (char *)error;
	m.ack = &a;
	rep__send(c->bev, &m);
}

/* Refuse the generation in progress: log, tell the peer, fail it here, close. */
__attribute__((format(printf, 2, 3)))
static int gen_refuse(struct rconn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	LOG(c->s, LOG_ERR, "peer %s (%s): service %s generation %lld refused: %s", c->peer,
	    c->addr, c->offer->service, (long long)c->offer->gen, msg);
	send_ack(c, c->offer->service, c->offer->gen, msg);
	gen_abort(c);
	c->st = R_REFUSED;
	return -EBADMSG;
}

/* Open need[cur] for writing; files of size 0 are done at once. */
static int file_next(struct rconn *c)
{
	for (; c->cur < c->n_need; c->cur++) {
		const RepFile *f = c->offer->files[c->need[c->cur]];

		c->fd = openat(c->dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			       O_CLOEXEC, 0600);
		if (c->fd < 0)
			return gen_refuse(c, "creating %s/%s: %s", c->tmp, f->name,
					  strerror(errno));
		c->written = 0;
		XXH3_64bits_reset(c->xs);
		if (f->size)
			break;
		if (XXH3_64bits_digest(c->xs) != f->xxh3)
			return gen_refuse(c, "file %s: empty, yet its checksum is not", f->name);
		close(c->fd);
		c->fd = -1;
	}
	if (c->cur < c->n_need) {
		c->st = R_DATA;
		return 0;
	}
	/* Then the tail of each pack we lack (none in a plain generation). */
	while (c->offer && c->pcur < c->offer->n_packs &&
	       c->pack_have[c->pcur] >= c->packs[c->pcur].size)
		c->pcur++;
	if (c->offer && c->pcur < c->offer->n_packs) {
		c->pwritten = c->pack_have[c->pcur];
		c->st = R_DATA;
		return 0;
	}
	c->st = R_COMMIT;
	return 0;
}

/* Is prev/name the same file as f? Then it need not cross the link. */
static bool same_file(int prevfd, const RepFile *f)
{
	struct stat sb;
	uint64_t h, size;

	if (prevfd < 0 || fstatat(prevfd, f->name, &sb, AT_SYMLINK_NOFOLLOW) ||
	    !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size != f->size)
		return false;
	return !rep__file_xxh3(prevfd, f->name, &h, &size) && h == f->xxh3 && size == f->size;
}

/* prev: the directory of our newest generation of the same kind, NULL: none. */
static int plan_files(struct rconn *c, const char *prev)
{
	const RepOffer *o = c->offer;
	int prevfd = -1;

	c->need = calloc(o->n_files, sizeof(*c->need));
	if (!c->need)
		return -ENOMEM;
	/* Images are never modified once committed, so a hard link is a safe copy. */
	if (prev)
		prevfd = open(prev, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (size_t i = 0; i < o->n_files; i++) {
		if (same_file(prevfd, o->files[i]) &&
		    !linkat(prevfd, o->files[i]->name, c->dirfd, o->files[i]->name, 0)) {
			c->linked++;
			continue;
		}
		c->need[c->n_need++] = (uint32_t)i;
	}
	if (prevfd >= 0)
		close(prevfd);
	return 0;
}

/* ---- page-store generations (v3) ------------------------------------------------ */

/* Another writer (the agent's worker deleting a generation) holds the store: take the
 * offer up again shortly, reading nothing meanwhile. Never written without the lock. */
static int store_busy(struct rconn *c)
{
	struct timeval tv = { 0, 100000 };

	if (!c->busy && !(c->busy = evtimer_new(c->s->base, on_busy_cb, c)))
		return gen_refuse(c, "out of memory");
	c->st = R_BUSY;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_add(c->busy, &tv);
	return 0;
}

/*
 * Our generations from `from` on are not the sender's history (after a failover, this
 * node took numbers the new active node now uses): out of the catalog (pruned, with a
 * "diverged" event) and out of the store, which frees our packs of those numbers.
 */
static int retire_from(struct rconn *c, int64_t sid, uint32_t from)
{
	struct rep_server *s = c->s;
	const RepOffer *o = c->offer;
	struct cat_gen *g = NULL;
	uint32_t *gens = NULL;
	size_t n = 0;
	char why[256];
	int ret;

	snprintf(why, sizeof(why), "diverged: peer %s now ships its own store generation %u "
		 "(its %lld) and the ones after", c->peer, from, (long long)o->gen);
	if (cat_gen_list(s->o.cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
	for (size_t i = 0; i < n; i++) {
		if (g[i].stats.store_gen < from)
			continue;
		LOG(s, LOG_WARNING, "service %s: generation %lld (store %lld, from %s) is not in "
		    "peer %s's history: retired", o->service, (long long)g[i].id,
		    (long long)g[i].stats.store_gen, g[i].origin[0] ? g[i].origin : "this node",
		    c->peer);
		if (cat_gen_retire(s->o.cat, g[i].id, why)) {
			free(g);
			return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
		}
	}
	free(g);
	if ((ret = eng_store_rx_list(c->rx, &gens, &n)))
		return gen_refuse(c, "page store: %s", eng_last_error());
	for (size_t i = 0; i < n && !ret; i++)
		if (gens[i] >= from)
			ret = eng_store_rx_delete(c->rx, gens[i]);
	free(gens);
	if (ret)
		return gen_refuse(c, "page store: retiring diverged generations: %s",
				  eng_last_error());
	return 0;
}

/* What we hold of each offered pack; *diverge: the lowest number that is not the
 * sender's (its pack, or the generation itself), 0 when none. */
static int store_haves(struct rconn *c, int64_t sid, uint32_t *diverge)
{
	const RepOffer *o = c->offer;
	int64_t local;
	int ret;

	*diverge = 0;
	/* Offered generation N is not here from this peer (cat_gen_find_origin said so):
	 * a gen-N here is someone else's. */
	if (eng_store_rx_has_gen(c->rx, o->store_gen) ||
	    !cat_gen_find_store(c->s->o.cat, sid, o->store_gen, &local))
		*diverge = o->store_gen;
	for (size_t k = 0; k < o->n_packs; k++) {
		ret = eng_store_rx_pack_have(c->rx, &c->packs[k], &c->pack_have[k]);
		if (ret == -ESTALE && (!*diverge || c->packs[k].num < *diverge))
			*diverge = c->packs[k].num;
		else if (ret && ret != -ESTALE)
			return gen_refuse(c, "page store: %s", eng_last_error());
	}
	return 0;
}

static int offer_store(struct rconn *c, int64_t sid, int64_t parent)
{
	struct rep_server *s = c->s;
	const RepOffer *o = c->offer;
	RepMsg r = REP_MSG__INIT;
	RepHave h = REP_HAVE__INIT;
	char sdir[PATH_MAX], prev[PATH_MAX];
	struct cat_gen *g = NULL;
	size_t n = 0;
	uint32_t diverge;
	int ret, dirfd;

	if (snprintf(c->svcdir, sizeof(c->svcdir), "%s/%s", s->o.store, o->service) >=
		    (int)sizeof(c->svcdir) || rep_store_path(sdir, sizeof(sdir), s->o.store, o->service))
		return gen_refuse(c, "store path too long");
	if (rep__mkdir_p(c->svcdir, 0700))
		return gen_refuse(c, "creating %s: %s", c->svcdir, strerror(errno));
	ret = eng_store_rx_open(sdir, &c->rx);
	if (ret == -EBUSY)
		return store_busy(c);
	if (ret)
		return gen_refuse(c, "page store: %s", eng_last_error());
	c->packs = calloc(o->n_packs + 1, sizeof(*c->packs));
	c->pack_have = calloc(o->n_packs + 1, sizeof(*c->pack_have));
	if (!c->packs || !c->pack_have)
		return gen_refuse(c, "out of memory");
	for (size_t k = 0; k < o->n_packs; k++)
		c->packs[k] = (struct eng_store_pack){ o->packs[k]->num, o->packs[k]->size,
						       o->packs[k]->ident };
	if (store_haves(c, sid, &diverge))
		return -EBADMSG;
	if (diverge) {
		if (retire_from(c, sid, diverge) || store_haves(c, sid, &diverge))
			return -EBADMSG;
		if (diverge)
			return gen_refuse(c, "store generation or pack %u of another node is still "
					  "here after retiring ours", diverge);
	}
	if (cat_gen_begin_from(s->o.cat, sid, parent, c->peer, o->gen, &c->local))
		return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
	if (eng_store_rx_begin(c->rx, o->store_gen, &dirfd) || (c->dirfd = dup(dirfd)) < 0)
		return gen_refuse(c, "page store: %s", eng_last_error());
	if (snprintf(c->tmp, sizeof(c->tmp), "%s/.gen-%08u.tmp", sdir, o->store_gen) >=
	    (int)sizeof(c->tmp))
		return gen_refuse(c, "store path too long");
	/* Metadata files equal to those of our newest store generation are linked. */
	prev[0] = 0;
	if (!cat_gen_list(s->o.cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n)) {
		for (size_t i = 0; i < n && !prev[0]; i++)
			if (g[i].stats.store_gen > 0 && g[i].stats.store_gen <= REP_STORE_GEN_MAX &&
			    eng_store_gen_path(sdir, (uint32_t)g[i].stats.store_gen, prev, sizeof(prev)))
				prev[0] = 0;
		free(g);
	}
	if (plan_files(c, prev[0] ? prev : NULL))
		return gen_refuse(c, "out of memory");
	h.service = o->service;
	h.has_gen = 1;
	h.gen = o->gen;
	h.need = c->need;
	h.n_need = c->n_need;
	h.pack_have = c->pack_have;
	h.n_pack_have = o->n_packs;
	r.have = &h;
	rep__send(c->bev, &r);
	bufferevent_set_timeouts(c->bev, &xfer_timeout, NULL);
	c->cur = c->pcur = 0;
	return file_next(c);
}

static int on_offer(struct rconn *c, RepMsg *m)
{
	struct rep_server *s = c->s;
	const RepOffer *o = m->offer;
	RepMsg r = REP_MSG__INIT;
	RepHave h = REP_HAVE__INIT;
	int64_t sid, existing, parent = 0;
	struct cat_gen g;

	c->offer_msg = m;
	c->offer = o;
	HELD_NOTE(s, "Offer of %s generation %lld", o->service, (long long)o->gen);
	if (!service_ok(s, o->service))
		return gen_refuse(c, "service %s is not configured here", o->service);
	/* Two active nodes (a split brain, or a promotion the peer has not heard of yet):
	 * each keeps its own history; taking the peer's would overwrite ours. */
	if (my_role(s, o->service) == REP_ROLE_ACTIVE)
		return gen_refuse(c, "service %s is active here: generation %lld of peer %s "
				  "not taken", o->service, (long long)o->gen, c->peer);
	if (cat_service_ensure(s->o.cat, o->service, &sid))
		return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
	if (o->has_newest) {
		struct rlag *l = lag_get(s, c->peer, o->service, true);

		if (l) {
			l->active_newest = o->newest;
			l->active_newest_us = o->newest_us;
			l->lag = o->behind;
		}
	}
	h.service = o->service;
	h.has_gen = 1;
	h.gen = o->gen;
	if (!cat_gen_find_origin(s->o.cat, c->peer, o->gen, &existing)) {
		if (cat_gen_get(s->o.cat, existing, &g) || g.state != CAT_GEN_COMPLETE)
			return gen_refuse(c, "it is being received on another connection");
		/* COMPLETE by a connection that closed before its sync job ran, maybe: the
		 * Have{present} is an Ack too, durable first. Cheap when nothing is dirty. */
		if (cat_sync(s->o.cat))
			return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
		h.has_present = h.present = 1;
		r.have = &h;
		rep__send(c->bev, &r);
		rep_msg__free_unpacked(m, NULL);
		c->offer_msg = NULL;
		c->offer = NULL;
		return 0;
	}
	if (o->parent && !cat_gen_find_origin(s->o.cat, c->peer, o->parent, &existing) &&
	    !cat_gen_get(s->o.cat, existing, &g) && g.state == CAT_GEN_COMPLETE)
		parent = existing;
	if (o->store_gen)
		return offer_store(c, sid, parent);
	if (cat_gen_begin_from(s->o.cat, sid, parent, c->peer, o->gen, &c->local))
		return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
	/*
	 * The directory is recorded as a pack before it exists, as hacd records its own
	 * generations: retention then prunes received generations like local ones, and
	 * GC removes their directories.
	 */
	{
		char name[64];

		snprintf(name, sizeof(name), "gen-%lld", (long long)c->local);
		if (cat_pack_add(s->o.cat, sid, name, &c->pack))
			return gen_refuse(c, "catalog: %s", cat_errmsg(s->o.cat));
	}
	if (snprintf(c->svcdir, sizeof(c->svcdir), "%s/%s", s->o.store, o->service) >=
		    (int)sizeof(c->svcdir) ||
	    snprintf(c->tmp, sizeof(c->tmp), "%s/.gen-%lld.part", c->svcdir,
		     (long long)c->local) >= (int)sizeof(c->tmp))
		return gen_refuse(c, "store path too long");
	if (rep__mkdir_p(c->svcdir, 0700) || mkdir(c->tmp, 0700)) {
		int e = errno;

		c->tmp[0] = 0;	/* not ours to remove */
		return gen_refuse(c, "creating %s: %s", c->svcdir, strerror(e));
	}
	c->dirfd = open(c->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	{
		struct cat_gen prev;
		char path[PATH_MAX];
		bool have_prev = !cat_gen_latest_complete(s->o.cat, sid, &prev) &&
				 !rep_gen_path(path, sizeof(path), s->o.store, o->service, prev.id);

		if (c->dirfd < 0 || plan_files(c, have_prev ? path : NULL))
			return gen_refuse(c, "opening %s: %s", c->tmp, strerror(errno));
	}
	h.need = c->need;
	h.n_need = c->n_need;
	r.have = &h;
	rep__send(c->bev, &r);
	/* Mid-generation, a silent sender is a lost one: keepalive probes cannot tell, as
	 * a stalled sender's kernel still answers them. */
	bufferevent_set_timeouts(c->bev, &xfer_timeout, NULL);
	c->cur = 0;
	return file_next(c);
}

/* The next bytes of the pack in turn: checked in transit, appended (invariant 3). */
static int on_pack_data(struct rconn *c, const RepData *d)
{
	const struct eng_store_pack *p;

	if (!c->rx || c->cur < c->n_need || c->pcur >= c->offer->n_packs ||
	    d->pack != c->pcur || d->offset != c->pwritten)
		return gen_refuse(c, "Data for pack index %u at offset %llu, expected %s %zu at %llu",
				  d->pack, (unsigned long long)d->offset,
				  c->cur < c->n_need ? "file" : "pack",
				  c->cur < c->n_need ? (size_t)c->need[c->cur] : c->pcur,
				  (unsigned long long)(c->cur < c->n_need ? c->written : c->pwritten));
	p = &c->packs[c->pcur];
	if (d->data.len > p->size - c->pwritten)
		return gen_refuse(c, "Data runs past the end of pack %u (%llu bytes)", p->num,
				  (unsigned long long)p->size);
	if (XXH3_64bits(d->data.data, d->data.len) != d->xxh3)
		return gen_refuse(c, "Data for pack %u at offset %llu: checksum mismatch (damaged in "
				  "transit)", p->num, (unsigned long long)d->offset);
	if (eng_store_rx_pack_write(c->rx, p, d->offset, d->data.data, d->data.len))
		return gen_refuse(c, "page store: %s", eng_last_error());
	c->pwritten += d->data.len;
	c->bytes += d->data.len;
	if (c->pwritten < p->size)
		return 0;
	c->pcur++;
	return file_next(c);
}

static int on_data(struct rconn *c, const RepData *d)
{
	const RepFile *f;

	if (c->st != R_DATA)
		return -EPROTO;
	if (d->has_pack)
		return on_pack_data(c, d);
	if (c->cur >= c->n_need)
		return gen_refuse(c, "Data for file %u, expected pack data", d->file);
	f = c->offer->files[c->need[c->cur]];
	if (d->file != c->need[c->cur] || d->offset != c->written)
		return gen_refuse(c, "Data for file %u at offset %llu, expected file %u at %llu",
				  d->file, (unsigned long long)d->offset, c->need[c->cur],
				  (unsigned long long)c->written);
	if (d->data.len > f->size - c->written)
		return gen_refuse(c, "Data runs past the end of %s (%llu bytes)", f->name,
				  (unsigned long long)f->size);
	if (XXH3_64bits(d->data.data, d->data.len) != d->xxh3)
		return gen_refuse(c, "Data for %s at offset %llu: checksum mismatch (damaged in "
				  "transit)", f->name, (unsigned long long)d->offset);
	for (size_t off = 0; off < d->data.len;) {
		ssize_t n = write(c->fd, d->data.data + off, d->data.len - off);

		if (n < 0)
			return gen_refuse(c, "writing %s/%s: %s", c->tmp, f->name, strerror(errno));
		off += (size_t)n;
	}
	XXH3_64bits_update(c->xs, d->data.data, d->data.len);
	c->written += d->data.len;
	c->bytes += d->data.len;
	if (c->written < f->size)
		return 0;
	if (XXH3_64bits_digest(c->xs) != f->xxh3)
		return gen_refuse(c, "file %s: checksum mismatch over its %llu bytes", f->name,
				  (unsigned long long)f->size);
	/* Fsynced by the commit's job, before its directory (invariant 1). */
	close(c->fd);
	c->fd = -1;
	c->cur++;
	return file_next(c);
}

/* Both kinds, once durable and COMPLETE here: log, Ack, status, callback. */
static void consistent(struct rconn *c, const char *what)
{
	struct rep_server *s = c->s;
	int64_t local = c->local, origin = c->offer->gen;
	char service[REP_NAME_MAX + 1];

	LOG(s, LOG_INFO, "service %s: generation %lld from %s consistent here as %lld "
	    "(%llu bytes received, %s)", c->offer->service, (long long)origin, c->peer,
	    (long long)local, (unsigned long long)c->bytes, what);
	/* Durable already (the sync job), as the Ack says (catalog.c DURABILITY). */
	if (c->bev)
		send_ack(c, c->offer->service, origin, NULL);
	{
		struct rlag *l = lag_get(s, c->peer, c->offer->service, true);

		if (l) {
			l->held = origin;
			l->held_us = c->offer->committed_us;
			l->lag = c->offer->newer;
			if (origin >= l->active_newest) {
				l->active_newest = origin;
				l->active_newest_us = c->offer->committed_us;
			}
		}
	}
	snprintf(service, sizeof(service), "%s", c->offer->service);
	c->local = c->pack = 0;	/* committed: gen_abort must leave them */
	c->tmp[0] = 0;
	gen_abort(c);
	c->st = R_IDLE;
	if (c->bev)
		bufferevent_set_timeouts(c->bev, NULL, NULL);
	if (s->o.on_consistent)
		s->o.on_consistent(s->o.opaque, c->peer, service, local, origin);
}

/*
 * A standby's store: once a received generation is committed and the retention it
 * triggers (on_consistent) has pruned older rows, delete every store generation no
 * complete row names, so their pack data is freed (eng_store_delete). No worker runs
 * for a standby service, so this is the only place its store shrinks. After the
 * commit, never before: the new generation's blobs must count as referenced. The
 * catalog is read here, the store changed by a job (its renames, punches and fsyncs
 * off the loop). Busy (a tracker or a connection holds the lock, which it took after
 * this list was made, before any generation of its could be committed): the next
 * commit tries again.
 */
struct gc_job {
	struct rep__job job;
	struct rep_server *s;
	char sdir[PATH_MAX], service[REP_NAME_MAX + 1];
	uint32_t *named;
	size_t n_named;
	/* What the thread has to say, logged by done() in the loop. */
	struct { int prio; char msg[320]; } log[8];
	unsigned n_log;
};

__attribute__((format(printf, 3, 4)))
static void gc_say(struct gc_job *g, int prio, const char *fmt, ...)
{
	va_list ap;

	if (g->n_log >= sizeof(g->log) / sizeof(g->log[0]))
		return;
	g->log[g->n_log].prio = prio;
	va_start(ap, fmt);
	vsnprintf(g->log[g->n_log].msg, sizeof(g->log[0].msg), fmt, ap);
	va_end(ap);
	g->n_log++;
}

static void gc_work(struct rep__job *j)
{
	struct gc_job *g = (struct gc_job *)j;
	struct eng_store_rx *rx = NULL;
	uint32_t *gens = NULL;
	size_t ng = 0;

	if (eng_store_rx_open(g->sdir, &rx))
		return;
	if (eng_store_rx_list(rx, &gens, &ng)) {
		gc_say(g, LOG_ERR, "service %s: store gc: %s", g->service, eng_last_error());
		goto out;
	}
	for (size_t i = 0; i < ng; i++) {
		bool named = false;

		for (size_t k = 0; k < g->n_named && !named; k++)
			named = g->named[k] == gens[i];
		if (named)
			continue;
		if (eng_store_rx_delete(rx, gens[i]))
			gc_say(g, LOG_WARNING, "service %s: deleting store generation %u: %s",
			       g->service, gens[i], eng_last_error());
		else
			gc_say(g, LOG_INFO, "service %s: store generation %u deleted: no complete "
			       "generation names it", g->service, gens[i]);
	}
out:
	free(gens);
	eng_store_rx_close(rx);
}

static void gc_done(struct rep__job *j)
{
	struct gc_job *g = (struct gc_job *)j;

	for (unsigned i = 0; i < g->n_log; i++)
		LOG(g->s, g->log[i].prio, "%s", g->log[i].msg);
	free(g->named);
	free(g);
}

static void store_gc(struct rep_server *s, const char *service)
{
	struct gc_job *g = calloc(1, sizeof(*g));
	struct cat_gen *cg = NULL;
	size_t n = 0;
	int64_t sid;

	if (!g || rep_store_path(g->sdir, sizeof(g->sdir), s->o.store, service) ||
	    cat_service_ensure(s->o.cat, service, &sid))
		goto err;
	if (cat_gen_list(s->o.cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &cg, &n)) {
		LOG(s, LOG_ERR, "service %s: store gc: catalog: %s", service, cat_errmsg(s->o.cat));
		goto err;
	}
	g->named = calloc(n + 1, sizeof(*g->named));
	if (!g->named)
		goto err;
	for (size_t k = 0; k < n; k++)
		if (cg[k].stats.store_gen > 0 && cg[k].stats.store_gen <= REP_STORE_GEN_MAX)
			g->named[g->n_named++] = (uint32_t)cg[k].stats.store_gen;
	free(cg);
	g->s = s;
	snprintf(g->service, sizeof(g->service), "%s", service);
	g->job.work = gc_work;
	g->job.done = gc_done;
	rep__jobs_submit(s->jobs, &g->job);
	return;
err:
	free(cg);
	if (g)
		free(g->named);
	free(g);
}

/* ---- a commit, off the loop ------------------------------------------------------- */

/*
 * A Commit runs as two jobs on the helper thread, with the catalog's part in the loop
 * between them, so that the order of invariant 1 stays exactly as it was when all of
 * it ran here: files fsynced, directory fsynced, renamed into place, the store
 * directory fsynced (J_FILES) -> catalog COMPLETE (loop) -> the WAL fdatasynced
 * (J_SYNC) -> Ack{ok} (loop). Meanwhile the connection takes up no message: its peer
 * waits for the Ack before it sends anything but Roles. Closed meanwhile (EOF, replaced by a
 * newer connection of the peer, the server freed), it is only detached: the job's
 * done() undoes what the catalog does not name yet and frees it.
 *
 *   R_COMMIT --Commit--> R_SYNC (J_FILES) --catalog COMPLETE--> R_SYNC (J_SYNC)
 *            --Ack{ok}--> R_IDLE;   a failed J_FILES or catalog: Ack{error}, R_REFUSED
 */
#define JOB_ERR(c, ...) snprintf((c)->job_err, sizeof((c)->job_err), __VA_ARGS__)

/* Test hook (o.test_hold_*): while PATH exists, the job says so in PATH.held and waits
 * (a minute at most). */
static void test_hold(const char *path)
{
	char held[PATH_MAX + 8];
	int fd;

	if (!path || access(path, F_OK))
		return;
	snprintf(held, sizeof(held), "%s.held", path);
	fd = open(held, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	for (int i = 0; i < 6000 && !access(path, F_OK); i++)
		usleep(10000);
}

/* Thread: invariant 1's file-system half. Touches only c's files, rx and packs. */
static void files_work(struct rep__job *j)
{
	struct rconn *c = (struct rconn *)((char *)j - offsetof(struct rconn, job));
	const RepOffer *o = c->offer;

	test_hold(c->s->o.test_hold_files);
	c->job_ret = -EIO;
	if (fsync(c->dirfd)) {
		JOB_ERR(c, "fsync %s: %s", c->tmp, strerror(errno));
		return;
	}
	if (c->rx) {
		if (eng_store_rx_commit(c->rx, c->packs, o->n_packs, &c->es))
			JOB_ERR(c, "page store: %s", eng_last_error());
		else
			c->job_ret = 0;
		return;
	}
	for (size_t i = 0; i < c->n_need; i++) {
		const char *name = o->files[c->need[i]]->name;
		int fd = openat(c->dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0 || fsync(fd)) {
			JOB_ERR(c, "fsync %s/%s: %s", c->tmp, name, strerror(errno));
			if (fd >= 0)
				close(fd);
			return;
		}
		close(fd);
	}
	if (fsync(c->dirfd)) {
		JOB_ERR(c, "fsync %s: %s", c->tmp, strerror(errno));
		return;
	}
	if (rename(c->tmp, c->final)) {
		JOB_ERR(c, "rename %s: %s", c->tmp, strerror(errno));
		return;
	}
	c->renamed = true;
	if (rep__fsync_dir(c->svcdir)) {
		JOB_ERR(c, "fsync %s: %s", c->svcdir, strerror(errno));
		return;
	}
	c->job_ret = 0;
}

/* Thread: the catalog's commit durable, before the Ack (catalog.c DURABILITY). */
static void sync_work(struct rep__job *j)
{
	struct rconn *c = (struct rconn *)((char *)j - offsetof(struct rconn, job));

	test_hold(c->s->o.test_hold_sync);
	c->job_ret = cat_sync_path(c->s->wal);
}

static void files_done(struct rep__job *j);
static void sync_done(struct rep__job *j);

static void job_submit(struct rconn *c, enum rjob kind)
{
	c->job_kind = kind;
	c->job_ret = 0;
	c->job_err[0] = 0;
	c->job.work = kind == J_FILES ? files_work : sync_work;
	c->job.done = kind == J_FILES ? files_done : sync_done;
	c->job_us = rep__now_us();
	rep__jobs_submit(c->s->jobs, &c->job);
}

/* A refused connection waits for its peer to close, then closes itself. */
static void refused_wait(struct rconn *c)
{
	/* Closing now would reset the connection under the Ack: the sender closes once it
	 * read it; give it 30 s. */
	struct timeval tv = { 30, 0 };

	if (c->st != R_REFUSED || c->refused_timer)
		return;
	c->refused_timer = true;
	bufferevent_set_timeouts(c->bev, &tv, NULL);
}

static void on_read(struct bufferevent *bev, void *arg);

/* The job is over: what arrived meanwhile is taken up. May free c. */
static void conn_resume(struct rconn *c)
{
	refused_wait(c);
	on_read(c->bev, c);
}

/* What the catalog does not name must not stay: a store generation the job committed,
 * a plain one it renamed into place (a failed store job left its .tmp to gen_abort). */
static void files_undo(struct rconn *c)
{
	if (c->rx && !c->job_ret)
		eng_store_rx_delete(c->rx, c->offer->store_gen);
	else if (!c->rx && c->renamed)
		rep__rmtree(c->final);
}

static void files_done(struct rep__job *j)
{
	struct rconn *c = (struct rconn *)((char *)j - offsetof(struct rconn, job));
	struct rep_server *s = c->s;
	struct cat_gen_stats st = { 0 };
	const RepOffer *o = c->offer;
	char msg[sizeof(c->job_err)];

	c->job_kind = J_NONE;
	HELD_NOTE(s, "peer %s: files of %s generation %lld durable after %.1f ms", c->peer,
		  o->service, (long long)o->gen, (rep__now_us() - c->job_us) / 1e3);
	if (c->renamed)
		c->tmp[0] = 0;	/* not ours to remove any more: final is */
	if (c->gone) {
		files_undo(c);
		conn_destroy(c);
		return;
	}
	if (c->job_ret) {
		files_undo(c);
		snprintf(msg, sizeof(msg), "%s", c->job_err);
		gen_refuse(c, "%s", msg);
		conn_resume(c);
		return;
	}
	st.pause_us = o->pause_us;
	st.bytes_new = (int64_t)c->bytes;
	st.checksum = o->checksum;
	if (c->rx) {
		for (size_t k = 0; k < o->n_packs; k++)
			st.bytes_total += (int64_t)c->packs[k].size;
		st.store_gen = o->store_gen;
		if (cat_gen_commit(s->o.cat, c->local, &st)) {
			snprintf(msg, sizeof(msg), "%s", cat_errmsg(s->o.cat));
			files_undo(c);	/* no row names it: not a generation of ours */
			gen_refuse(c, "catalog: %s", msg);
			conn_resume(c);
			return;
		}
	} else {
		for (size_t i = 0; i < o->n_files; i++)
			st.bytes_total += (int64_t)o->files[i]->size;
		if (cat_pack_ref(s->o.cat, c->local, c->pack, st.bytes_total) ||
		    cat_pack_seal(s->o.cat, c->pack, st.bytes_total) ||
		    cat_gen_commit(s->o.cat, c->local, &st)) {
			snprintf(msg, sizeof(msg), "%s", cat_errmsg(s->o.cat));
			files_undo(c);
			gen_refuse(c, "catalog: %s", msg);
			conn_resume(c);
			return;
		}
	}
	job_submit(c, J_SYNC);
}

/* COMPLETE and durable: the Ack (unless the peer is gone: it learns at its next
 * Offer that we hold it), then the store's GC. */
static void sync_done(struct rep__job *j)
{
	struct rconn *c = (struct rconn *)((char *)j - offsetof(struct rconn, job));
	struct rep_server *s = c->s;
	const RepOffer *o = c->offer;
	char what[256], service[REP_NAME_MAX + 1];
	bool store = c->rx != NULL;

	c->job_kind = J_NONE;
	HELD_NOTE(s, "peer %s: %s generation %lld committed after %.1f ms", c->peer, o->service,
		  (long long)o->gen, (rep__now_us() - c->job_us) / 1e3);
	if (c->job_ret)
		LOG(s, LOG_ERR, "%s: fdatasync: %s", s->wal, strerror(-c->job_ret));
	if (store)
		snprintf(what, sizeof(what), "store generation %u, %u of %zu packs received, %llu "
			 "blobs checked: %llu bytes read, %llu by header", o->store_gen,
			 c->es.packs_received, o->n_packs, (unsigned long long)c->es.blobs,
			 (unsigned long long)c->es.bytes_checked,
			 (unsigned long long)c->es.bytes_headers);
	else
		snprintf(what, sizeof(what), "%llu of %zu files linked from the previous one",
			 (unsigned long long)c->linked, o->n_files);
	snprintf(service, sizeof(service), "%s", o->service);
	consistent(c, what);
	if (store)
		store_gc(s, service);
	if (c->gone)
		conn_destroy(c);
	else
		conn_resume(c);
}

static int on_commit(struct rconn *c, const RepCommit *cm)
{
	struct rep_server *s = c->s;

	if (c->st != R_COMMIT || strcmp(cm->service, c->offer->service) ||
	    cm->gen != c->offer->gen)
		return c->offer ? gen_refuse(c, "Commit out of turn") : -EPROTO;
	HELD_NOTE(s, "Commit of %s generation %lld", cm->service, (long long)cm->gen);
	if (!c->rx && rep_gen_path(c->final, sizeof(c->final), s->o.store, c->offer->service,
				   c->local))
		return gen_refuse(c, "store path too long");
	c->renamed = false;
	/* Reading stays on, so that an EOF is seen now (the connection is detached, the
	 * job goes on); what arrives waits in the input buffer (on_read) until the job
	 * ends: the peer sends nothing but Roles before our Ack. */
	c->st = R_SYNC;
	job_submit(c, J_FILES);
	return 0;
}

static int on_hello(struct rconn *c, const RepHello *h)
{
	struct rep_server *s = c->s;
	RepMsg r = REP_MSG__INIT;
	RepHello me = REP_HELLO__INIT;
	RepService *svc = NULL, **psvc = NULL;
	size_t n = 0;

	if (h->version != REP_PROTO_VERSION) {
		LOG(s, LOG_ERR, "peer %s (%s): speaks protocol version %u, we speak %u", c->peer,
		    c->addr, h->version, REP_PROTO_VERSION);
		return -EPROTO;
	}
	if (strcmp(h->node, c->peer)) {
		LOG(s, LOG_ERR, "peer %s (%s): Hello says it is node %s: refused", c->peer,
		    c->addr, h->node);
		return -EPERM;
	}
	/* A peer runs one sender for us: an older connection of it is one whose end
	 * vanished without a FIN (link cut, peer restarted). Drop it, and with it the
	 * generation it held PENDING, which this connection is about to offer again. */
	for (struct rconn *o = s->conns, *next; o; o = next) {
		next = o->next;
		if (o != c && o->st >= R_HELLO && o->st != R_CLOSING && !strcmp(o->peer, c->peer)) {
			LOG(s, LOG_NOTICE, "peer %s (%s): replaces its older connection from %s",
			    c->peer, c->addr, o->addr);
			conn_free(o);
		}
	}
	svc = calloc(h->n_services + 1, sizeof(*svc));
	psvc = calloc(h->n_services + 1, sizeof(*psvc));
	if (!svc || !psvc) {
		free(svc);
		free(psvc);
		return -ENOMEM;
	}
	for (size_t i = 0; i < h->n_services; i++) {
		int64_t sid;

		if (!service_ok(s, h->services[i]->name)) {
			LOG(s, LOG_WARNING, "peer %s: service %s is not configured here: its "
			    "generations will be refused", c->peer, h->services[i]->name);
			continue;
		}
		rep_service__init(&svc[n]);
		svc[n].name = h->services[i]->name;
		svc[n].has_newest = svc[n].has_role = 1;
		svc[n].role = my_role(s, svc[n].name);
		if (!cat_service_ensure(s->o.cat, svc[n].name, &sid))
			svc[n].newest = newest_from(s->o.cat, sid, c->peer);
		psvc[n] = &svc[n];
		n++;
	}
	me.has_version = 1;
	me.version = REP_PROTO_VERSION;
	me.node = (char *)s->o.node;
	me.services = psvc;
	me.n_services = n;
	r.hello = &me;
	rep__send(c->bev, &r);
	free(svc);
	free(psvc);
	c->st = R_IDLE;
	/* Authenticated and introduced: idle connections are the normal case now. */
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	LOG(s, LOG_NOTICE, "peer %s (%s) connected", c->peer, c->addr);
	rep__roles_heard(h->services, h->n_services, s->o.services, s->o.n_services,
			 c->peer_role, s->o.on_peer_role, s->o.opaque, c->peer);
	return 0;
}

/* 0 keeps the connection; anything else closes it (after a pending Ack). */
static int dispatch(struct rconn *c, RepMsg *m)
{
	int ret;

	c->s->held_msgs++;
	if (m->roles && c->st >= R_IDLE && c->st != R_CLOSING) {
		rep__roles_heard(m->roles->services, m->roles->n_services, c->s->o.services,
				 c->s->o.n_services, c->peer_role, c->s->o.on_peer_role,
				 c->s->o.opaque, c->peer);
		rep_msg__free_unpacked(m, NULL);
		return 0;
	}
	if (c->st == R_REFUSED) {
		rep_msg__free_unpacked(m, NULL);
		return 0;
	}
	if (m->hello && c->st == R_HELLO)
		ret = on_hello(c, m->hello);
	else if (m->offer && c->st == R_IDLE)
		return on_offer(c, m);	/* keeps m */
	else if (m->data && c->st == R_DATA)
		ret = on_data(c, m->data);
	else if (m->commit && (c->st == R_COMMIT || c->st == R_DATA))
		ret = on_commit(c, m->commit);
	else {
		LOG(c->s, LOG_ERR, "peer %s (%s): unexpected %s message: closing", c->peer,
		    c->addr, rep__msg_name(m));
		ret = -EPROTO;
	}
	rep_msg__free_unpacked(m, NULL);
	return ret;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct rconn *c = arg;
	char err[256];
	RepMsg *m;
	int ret;

	while (c->st != R_CLOSING && c->st != R_BUSY && c->st != R_SYNC &&
	       (ret = rep__recv(bev, &m, err, sizeof(err))) != 0) {
		if (ret < 0) {
			LOG(c->s, LOG_ERR, "peer %s (%s): bad message: %s: closing", c->peer,
			    c->addr, err);
			if (c->offer)
				gen_refuse(c, "bad message: %s", err);
			conn_close_soon(c);
			return;
		}
		if (dispatch(c, m) && c->st != R_REFUSED) {
			conn_close_soon(c);
			return;
		}
		refused_wait(c);
	}
}

/* The store was busy: take the offer up again, then whatever arrived meanwhile. */
static void on_busy(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;
	RepMsg *m = c->offer_msg;

	c->offer_msg = NULL;
	c->offer = NULL;
	c->st = R_IDLE;
	bufferevent_enable(c->bev, EV_READ);
	if (on_offer(c, m) && c->st != R_REFUSED) {
		conn_close_soon(c);
		return;
	}
	if (c->st == R_BUSY)
		return;
	on_read(c->bev, c);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rconn *c = arg;
	struct rep_server *s = c->s;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	char why[512], subj[256];
	int i;

	if (what & BEV_EVENT_CONNECTED) {
		i = rep__tls_peer_match(ssl, s->o.peers, s->o.n_peers);
		if (i < 0) {
			rep__tls_peer_subject(ssl, subj, sizeof(subj));
			LOG(s, LOG_ERR, "refused replication connection from %s: certificate %s "
			    "names no configured peer", c->addr, subj);
			conn_free(c);
			return;
		}
		snprintf(c->peer, sizeof(c->peer), "%s", s->o.peers[i]);
		c->st = R_HELLO;
		return;
	}
	if (c->st == R_TLS) {
		rep__bev_errors(bev, why, sizeof(why));
		LOG(s, LOG_ERR, "refused replication connection from %s: TLS handshake failed: %s",
		    c->addr, why[0] ? why : (what & BEV_EVENT_TIMEOUT) ? "timed out" :
		    "connection closed");
	} else if (c->st == R_REFUSED) {
		LOG(s, LOG_NOTICE, "peer %s (%s) disconnected after a refusal", c->peer, c->addr);
	} else if (c->offer) {
		LOG(s, LOG_WARNING, "peer %s (%s): connection lost while receiving service %s "
		    "generation %lld: dropped, the previous consistent one stays", c->peer,
		    c->addr, c->offer->service, (long long)c->offer->gen);
	} else {
		LOG(s, LOG_NOTICE, "peer %s (%s) disconnected", c->peer, c->addr);
	}
	conn_free(c);
}

static void on_accept(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct rep_server *s = arg;
	struct rconn *c = calloc(1, sizeof(*c));
	struct timeval hs = { 30, 0 };
	char host[INET6_ADDRSTRLEN] = "?";
	SSL *ssl;

	if (!c || !(c->peer_role = calloc(s->o.n_services + 1, 1)) ||
	    !(c->xs = XXH3_createState()) || !(ssl = rep__tls_ssl(s->o.tls, NULL))) {
		if (c) {
			XXH3_freeState(c->xs);
			free(c->peer_role);
		}
		free(c);
		evutil_closesocket(fd);
		return;
	}
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, host, sizeof(host));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, host, sizeof(host));
	snprintf(c->addr, sizeof(c->addr), "%s:%u", host,
		 ntohs(((struct sockaddr_in *)sa)->sin_port));
	snprintf(c->peer, sizeof(c->peer), "?");
	c->s = s;
	c->fd = c->dirfd = -1;
	c->bev = bufferevent_openssl_socket_new(s->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		SSL_free(ssl);
		XXH3_freeState(c->xs);
		free(c->peer_role);
		free(c);
		evutil_closesocket(fd);
		return;
	}
	rep__keepalive(fd);
	c->next = s->conns;
	s->conns = c;
	s->n_conns++;
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, on_read_cb, NULL, on_event_cb, c);
	/* A peer that never finishes the handshake or never says Hello holds nothing. */
	bufferevent_set_timeouts(c->bev, &hs, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

void rep_server_roles_changed(struct rep_server *s)
{
	for (struct rconn *c = s->conns; c; c = c->next)
		if (c->st >= R_IDLE && c->st != R_CLOSING)
			rep__send_roles(c->bev, s->o.services, s->o.n_services, s->o.role,
					s->o.opaque, REP_ROLE_STANDBY);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	rep_server_roles_changed(arg);
}

/* ---- the loop callbacks, timed ---------------------------------------------------- */

/* The connection may be freed inside: only the server is touched after. */
static void on_read_cb(struct bufferevent *bev, void *arg)
{
	struct rconn *c = arg;
	struct rep_server *s = c->s;
	struct rep__held h = { 0 };

	held_begin(s, &h, c);
	on_read(bev, c);
	held_end(s, &h, "replica receiver read");
}

static void on_flushed_cb(struct bufferevent *bev, void *arg)
{
	struct rconn *c = arg;
	struct rep_server *s = c->s;
	struct rep__held h = { 0 };

	held_begin(s, &h, c);
	on_flushed(bev, c);
	held_end(s, &h, "replica receiver flushed");
}

static void on_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rconn *c = arg;
	struct rep_server *s = c->s;
	struct rep__held h = { 0 };

	held_begin(s, &h, c);
	on_event(bev, what, c);
	held_end(s, &h, "replica receiver event");
}

static void on_busy_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rconn *c = arg;
	struct rep_server *s = c->s;
	struct rep__held h = { 0 };

	held_begin(s, &h, c);
	on_busy(fd, what, c);
	held_end(s, &h, "replica receiver store retry");
}

static void on_accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
			 int salen, void *arg)
{
	struct rep_server *s = arg;
	struct rep__held h = { 0 };

	held_begin(s, &h, NULL);
	on_accept(lis, fd, sa, salen, s);
	held_end(s, &h, "replica receiver accept");
}

/* The helper thread finished jobs: their done() in the loop (commits go on). */
static void on_jobs_ready(void *arg)
{
	struct rep_server *s = arg;
	struct rep__held h = { 0 };
	unsigned n;

	held_begin(s, &h, NULL);
	n = rep__jobs_run_done(s->jobs);
	HELD_NOTE(s, "%u jobs", n);
	held_end(s, &h, "replica receiver commit");
}

static void on_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rep_server *s = arg;
	struct rep__held h = { 0 };

	held_begin(s, &h, NULL);
	on_heartbeat(fd, what, s);
	held_end(s, &h, "replica receiver roles heartbeat");
}

/* .part directories are generations a crash interrupted: their rows are failed by
 * cat_recover(), their files go here. */
static void sweep_parts(struct rep_server *s)
{
	char dir[PATH_MAX], path[PATH_MAX + 64];

	for (size_t i = 0; i < s->o.n_services; i++) {
		DIR *d;
		struct dirent *e;

		snprintf(dir, sizeof(dir), "%s/%s", s->o.store, s->o.services[i]);
		if (!(d = opendir(dir)))
			continue;
		while ((e = readdir(d))) {
			size_t n = strlen(e->d_name);

			if (e->d_name[0] != '.' || n < 6 || strcmp(e->d_name + n - 5, ".part"))
				continue;
			snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
			LOG(s, LOG_NOTICE, "removing %s, left by an interrupted transfer", path);
			rep__rmtree(path);
		}
		closedir(d);
	}
}

int rep_server_new(struct event_base *base, const struct rep_server_opts *o,
		   struct rep_server **out)
{
	struct rep_server *s = calloc(1, sizeof(*s));
	struct sockaddr_storage ss = { 0 };
	socklen_t sl = sizeof(ss);
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->o = *o;
	if ((ret = rep__mkdir_p(o->store, 0700))) {
		LOG(s, LOG_ERR, "store %s: %s", o->store, strerror(-ret));
		goto err;
	}
	sweep_parts(s);
	cat_wal_path(o->cat, s->wal, sizeof(s->wal));
	if ((ret = rep__jobs_new(base, on_jobs_ready, s, &s->jobs))) {
		LOG(s, LOG_ERR, "helper thread: %s", strerror(-ret));
		goto err;
	}
	if (!o->host || inet_pton(AF_INET, o->host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(o->port);
		sl = sizeof(*sin);
	} else if (inet_pton(AF_INET6, o->host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(o->port);
		sl = sizeof(*sin6);
	} else {
		LOG(s, LOG_ERR, "listen: %s is not a numeric address", o->host);
		ret = -EINVAL;
		goto err;
	}
	s->lis = evconnlistener_new_bind(base, on_accept_cb, s, LEV_OPT_CLOSE_ON_FREE |
					 LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 16,
					 (struct sockaddr *)&ss, (int)sl);
	if (!s->lis) {
		ret = -errno ? -errno : -EADDRINUSE;
		LOG(s, LOG_ERR, "listen on %s:%u: %s", o->host ? o->host : "*", o->port,
		    strerror(-ret));
		goto err;
	}
	s->hb = event_new(base, -1, EV_PERSIST, on_heartbeat_cb, s);
	if (!s->hb) {
		ret = -ENOMEM;
		goto err;
	}
	{
		struct timeval hb = { REP_ROLES_HEARTBEAT_MS / 1000,
				      (REP_ROLES_HEARTBEAT_MS % 1000) * 1000 };

		event_add(s->hb, &hb);
	}
	sl = sizeof(ss);
	getsockname(evconnlistener_get_fd(s->lis), (struct sockaddr *)&ss, &sl);
	s->port = ntohs(ss.ss_family == AF_INET6 ? sin6->sin6_port : sin->sin_port);
	*out = s;
	return 0;
err:
	if (s->lis)
		evconnlistener_free(s->lis);
	if (s->hb)
		event_free(s->hb);
	rep__jobs_free(s->jobs);
	free(s);
	return ret;
}

void rep_server_free(struct rep_server *s)
{
	if (!s)
		return;
	while (s->conns)
		conn_free(s->conns);
	/* Commits in flight end (without an Ack: their peers are closed), and the GCs
	 * they start; then nothing refers to s. */
	rep__jobs_free(s->jobs);
	if (s->lis)
		evconnlistener_free(s->lis);
	if (s->hb)
		event_free(s->hb);
	free(s->lags);
	free(s);
}

void rep_server_status(struct rep_server *s, const char *peer, const char *service,
		       struct rep_standby_status *st)
{
	const struct rlag *l = lag_get(s, peer, service, false);
	int64_t sid, held_us = 0;
	struct cat_gen *g;
	size_t n;

	memset(st, 0, sizeof(*st));
	for (const struct rconn *c = s->conns; c; c = c->next)
		if (c->st >= R_IDLE && c->st <= R_REFUSED && !strcmp(c->peer, peer))
			st->connected = true;
	if (!cat_service_ensure(s->o.cat, service, &sid) &&
	    !cat_gen_list(s->o.cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n)) {
		for (size_t i = 0; i < n; i++)
			if (!strcmp(g[i].origin, peer) && g[i].origin_gen > st->held) {
				st->held = g[i].origin_gen;
				st->held_local = g[i].id;
				held_us = g[i].committed_us;	/* ours: close enough */
			}
		free(g);
	}
	if (!l)
		return;
	if (l->held == st->held && l->held_us)
		held_us = l->held_us;
	st->active_newest = l->active_newest;
	st->lag_generations = l->lag;
	if (l->lag && l->active_newest_us > held_us)
		st->lag_seconds = (double)(l->active_newest_us - held_us) / 1e6;
}

uint16_t rep_server_port(const struct rep_server *s)
{
	return s->port;
}

size_t rep_server_nr_conns(const struct rep_server *s)
{
	return s->n_conns;
}
