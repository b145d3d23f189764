/*
 * sender.c: the active node's side, one rep_sender per peer. Keeps a queue of complete
 * generations to ship, keeps a connection to the peer (reconnecting with backoff), and
 * sends each generation as Offer, the Data the peer lacks, Commit, then waits for its Ack.
 *
 * DESIGN
 *
 *   (none) --rep_sender_new / retry timer-------------------> CONNECTING
 *   CONNECTING --TLS up (peer's certificate names the peer)--> HELLO   (Hello sent)
 *   HELLO  --Hello back: drop what the peer already holds----> READY
 *   READY  --queue not empty: Offer sent---------------------> OFFERED
 *   OFFERED --Have{present}: acked---------------------------> READY
 *   OFFERED --Have{need}-------------------------------------> DATA
 *   DATA   --last needed byte queued: Commit sent------------> COMMITTED
 *   COMMITTED --Ack{ok}: acked, popped-----------------------> READY
 *   any    --Ack{refused}, EOF, error, bad message-----------> (none), retry timer
 *
 *   transition          function
 *   -> CONNECTING       conn_start
 *   -> HELLO            on_event (BEV_EVENT_CONNECTED)
 *   HELLO -> READY      on_hello
 *   READY -> OFFERED    offer_next
 *   OFFERED -> DATA     on_have, pump
 *   DATA -> COMMITTED   pump
 *   COMMITTED -> READY  on_ack
 *   -> (none)           conn_drop
 *
 * Invariants:
 *  1. A generation leaves the queue only when the peer acknowledged it (or already had
 *     it), when a newer one of its service supersedes it while more than catchup_skip
 *     are queued, or when its files are gone; each way calls on_ack once. A refusal by
 *     the peer also reports (-EBADMSG) but keeps it queued: it is sent again.
 *  2. Data is read from the files at the time it is sent and checked against the sizes
 *     announced in the Offer: a file that changed under us fails the generation here,
 *     before the peer could take it for consistent (the peer checks XXH3 as well).
 *     Packs of a page-store generation likewise: the agent may delete older generations
 *     meanwhile, which punches holes only in blobs no remaining generation uses (never
 *     ones of this generation, in SENDING state, which retention keeps), so the bytes
 *     it names read the same; a pack shorter than announced fails the generation.
 *  3. At most about 1 MiB of frames wait in the output buffer (write watermark): memory
 *     stays flat whatever the generation's size, and the token bucket paces the socket.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <xxhash.h>

#include "ha/catalog.h"
#include "ha/engine.h"
#include "replica-int.h"

#define OUT_HIGH (1u << 20)
#define OUT_LOW (512u << 10)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000

enum sstate { S_NONE, S_CONNECTING, S_HELLO, S_READY, S_OFFERED, S_DATA, S_COMMITTED };

struct qgen {
	struct qgen *next;
	char service[REP_NAME_MAX + 1];
	int64_t gen;
};

struct rep_sender {
	struct event_base *base;
	struct rep_sender_opts o;
	struct bufferevent *bev;
	struct ev_token_bucket_cfg *rl;
	struct event *retry;
	unsigned backoff_ms;
	enum sstate st;
	struct qgen *head;
	size_t queued;
	/* The generation in flight (head). */
	RepFile *files;
	size_t n_files;
	int dirfd;
	uint32_t *need;
	size_t n_need, cur;
	int fd;
	uint64_t off;
	/* A page-store generation: its store, packs and what the peer holds of each. */
	uint32_t store_gen;
	char store[PATH_MAX];
	struct eng_store_pack *packs;
	size_t n_packs, pcur;
	uint64_t *pack_have;
	uint8_t *chunk;
	int64_t *peer_newest;		/* per o.services[]: newest the peer holds */
	uint8_t *peer_role;		/* per o.services[]: its role, as heard on this
					 * connection (enum rep_role) */
	struct event *hb;		/* roles heartbeat */
	/* Status. */
	int64_t acked_gen, acked_us;
	uint64_t bytes_sent;
	/* What the loop callback running now did, for its timing (rep_held_fn). */
	char held[256];
	uint64_t held_sent;
};

#define LOG(s, prio, ...) rep__log((s)->o.log, (s)->o.log_opaque, prio, __VA_ARGS__)

static void conn_start(struct rep_sender *s);
static void on_read_cb(struct bufferevent *bev, void *arg);
static void on_write_cb(struct bufferevent *bev, void *arg);
static void on_event_cb(struct bufferevent *bev, short what, void *arg);

#define HELD_NOTE(s, ...) rep__held_note((s)->held, sizeof((s)->held), __VA_ARGS__)

static enum rep_role my_role(struct rep_sender *s, const char *service)
{
	return s->o.role ? s->o.role(s->o.opaque, service) : REP_ROLE_ACTIVE;
}

const char *rep_link_name(enum rep_link l)
{
	static const char *const names[] = { "StandAlone", "Connecting", "Connected",
					     "SyncSource" };

	return l <= REP_LINK_SYNCSOURCE ? names[l] : "?";
}

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void peer_state(struct rep_sender *s, int64_t gen, enum cat_peer_state st)
{
	enum cat_peer_state cur;

	if (!s->o.cat || cat_gen_peer_get(s->o.cat, gen, s->o.peer, &cur) || cur == st)
		return;
	/* CONSISTENT is reached through SENDING only (ha/catalog.h). */
	if (st == CAT_PEER_CONSISTENT && cur != CAT_PEER_SENDING)
		cat_gen_peer_set(s->o.cat, gen, s->o.peer, CAT_PEER_SENDING);
	if (st == CAT_PEER_FAILED && cur != CAT_PEER_SENDING)
		return;
	if (cat_gen_peer_set(s->o.cat, gen, s->o.peer, st))
		LOG(s, LOG_WARNING, "catalog: generation %lld, peer %s: %s", (long long)gen,
		    s->o.peer, cat_errmsg(s->o.cat));
}

/*
 * Writes that make no progress for 15 s mean a dead link (TCP would retry for many
 * minutes). Reads are timed only while an answer is due: during Data the standby has
 * nothing to say, and an idle connection is watched by keepalive probes.
 */
static void wait_answer(struct rep_sender *s, bool due)
{
	struct timeval rd = { 60, 0 }, wr = { 15, 0 };

	bufferevent_set_timeouts(s->bev, due ? &rd : NULL, &wr);
}

/* ---- the generation in flight ---------------------------------------------------- */

static void gen_reset(struct rep_sender *s)
{
	for (size_t i = 0; i < s->n_files; i++)
		free(s->files[i].name);
	free(s->files);
	s->files = NULL;
	s->n_files = 0;
	if (s->dirfd >= 0)
		close(s->dirfd);
	if (s->fd >= 0)
		close(s->fd);
	s->dirfd = s->fd = -1;
	free(s->need);
	s->need = NULL;
	s->n_need = s->cur = 0;
	s->off = 0;
	free(s->packs);
	free(s->pack_have);
	s->packs = NULL;
	s->pack_have = NULL;
	s->n_packs = s->pcur = 0;
	s->store_gen = 0;
}

static int64_t *peer_newest(struct rep_sender *s, const char *service)
{
	for (size_t i = 0; i < s->o.n_services; i++)
		if (!strcmp(s->o.services[i], service))
			return &s->peer_newest[i];
	return NULL;
}

static void peer_holds(struct rep_sender *s, const char *service, int64_t gen)
{
	int64_t *p = peer_newest(s, service);

	if (p && gen > *p)
		*p = gen;
}

/* What the peer shows as its lag: our newest of the service, and how many complete
 * ones we have newer than what it holds, and than `gen`. */
static void lag_facts(struct rep_sender *s, const char *service, int64_t gen, RepOffer *o)
{
	const int64_t *held = peer_newest(s, service);
	struct cat_gen *g;
	int64_t sid;
	size_t n;

	if (cat_service_ensure(s->o.cat, service, &sid) ||
	    cat_gen_list(s->o.cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return;
	o->has_newest = o->has_newest_us = o->has_behind = o->has_newer = 1;
	for (size_t i = 0; i < n; i++) {
		if (g[i].id > o->newest) {
			o->newest = g[i].id;
			o->newest_us = g[i].committed_us;
		}
		o->behind += g[i].id > (held ? *held : 0);
		o->newer += g[i].id > gen;
	}
	free(g);
}

/* Take the head off the queue, reporting `status` for it (invariant 1). */
static void pop(struct rep_sender *s, int status)
{
	struct qgen *q = s->head;

	gen_reset(s);
	if (!q)
		return;
	s->head = q->next;
	s->queued--;
	if (!status) {
		s->acked_gen = q->gen;
		s->acked_us = now_us();
		peer_holds(s, q->service, q->gen);
		peer_state(s, q->gen, CAT_PEER_CONSISTENT);
	}
	if (s->o.on_ack)
		s->o.on_ack(s->o.opaque, s->o.peer, q->service, q->gen, status);
	free(q);
}

/* Drop queued generations of `service` that are <= upto, or all but the newest when
 * more than catchup_skip of it wait. The head is in flight only when st > S_READY. */
static void prune_queue(struct rep_sender *s, const char *name, int64_t upto)
{
	unsigned skip = s->o.catchup_skip ? s->o.catchup_skip : 2;
	struct qgen **p = &s->head, *newest = NULL;
	char service[REP_NAME_MAX + 1];
	size_t count = 0;

	/* `name` may be the head's own (offer_next), which pop() frees. */
	snprintf(service, sizeof(service), "%s", name);

	for (struct qgen *q = s->head; q; q = q->next)
		if (!strcmp(q->service, service) && q->gen > upto) {
			count++;
			if (!newest || q->gen > newest->gen)
				newest = q;
		}
	while (*p) {
		struct qgen *q = *p;
		int status = 1;

		if (strcmp(q->service, service))
			status = 1;
		else if (q->gen <= upto)
			status = 0;
		else if (count > skip && q != newest)
			status = -ESTALE;
		if (status == 1) {
			p = &q->next;
			continue;
		}
		if (status == -ESTALE)
			LOG(s, LOG_NOTICE, "peer %s: service %s generation %lld superseded by %lld "
			    "while the peer is behind: skipped", s->o.peer, service,
			    (long long)q->gen, (long long)newest->gen);
		if (q == s->head) {
			pop(s, status);
			p = &s->head;
			continue;
		}
		*p = q->next;
		s->queued--;
		if (!status)
			peer_state(s, q->gen, CAT_PEER_CONSISTENT);
		if (s->o.on_ack)
			s->o.on_ack(s->o.opaque, s->o.peer, q->service, q->gen, status);
		free(q);
	}
}

static int cmp_file(const void *a, const void *b)
{
	return strcmp(((const RepFile *)a)->name, ((const RepFile *)b)->name);
}

/* Every plain file of the generation's directory, with its size and XXH3. */
static int list_files(struct rep_sender *s, const char *path)
{
	DIR *d;
	struct dirent *e;
	size_t cap = 0;
	int ret = 0;

	s->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0 || !(d = fdopendir(dup(s->dirfd))))
		return -errno;
	while ((e = readdir(d)) && !ret) {
		RepFile *f;

		if (e->d_name[0] == '.')
			continue;
		if (!rep_name_valid(e->d_name) || s->n_files >= REP_FILES_MAX) {
			LOG(s, LOG_ERR, "%s/%s: not a name the protocol carries", path, e->d_name);
			ret = -EINVAL;
			break;
		}
		if (s->n_files == cap) {
			RepFile *n = realloc(s->files, (cap = cap ? 2 * cap : 16) * sizeof(*n));

			if (!n) {
				ret = -ENOMEM;
				break;
			}
			s->files = n;
		}
		f = &s->files[s->n_files];
		rep_file__init(f);
		f->name = strdup(e->d_name);
		if (!f->name) {
			ret = -ENOMEM;
			break;
		}
		s->n_files++;
		f->has_size = f->has_xxh3 = 1;
		ret = rep__file_xxh3(s->dirfd, f->name, &f->xxh3, &f->size);
		if (ret)
			LOG(s, LOG_ERR, "%s/%s: %s", path, f->name, strerror(-ret));
	}
	closedir(d);
	if (!ret && !s->n_files)
		ret = -ENOENT;
	if (!ret)
		qsort(s->files, s->n_files, sizeof(*s->files), cmp_file);
	return ret;
}

/* A page-store generation: the files of STORE/gen-N and the packs it names. */
static int store_gen_files(struct rep_sender *s, const char *service, uint32_t sg, char *path,
			   size_t len)
{
	int ret = rep_store_path(s->store, sizeof(s->store), s->o.store, service);

	if (ret || (ret = eng_store_gen_path(s->store, sg, path, len)))
		return ret;
	if ((ret = list_files(s, path)))
		return ret;
	if ((ret = eng_store_gen_packs(s->store, sg, &s->packs, &s->n_packs))) {
		LOG(s, LOG_ERR, "service %s store generation %u: %s", service, sg, eng_last_error());
		return ret;
	}
	if (s->n_packs > REP_PACKS_MAX) {
		LOG(s, LOG_ERR, "service %s store generation %u names %zu packs, the protocol "
		    "carries %u: not sent", service, sg, s->n_packs, REP_PACKS_MAX);
		return -E2BIG;
	}
	s->store_gen = sg;
	return 0;
}

static void offer_next(struct rep_sender *s)
{
	RepMsg m = REP_MSG__INIT;
	RepOffer o = REP_OFFER__INIT;
	RepFile **pf = NULL;
	RepPack *pk = NULL, **ppk = NULL;
	struct cat_gen g;
	char path[PATH_MAX];
	int ret;

	while (s->head) {
		struct qgen *q = s->head;

		prune_queue(s, q->service, 0);
		if (q != s->head)
			continue;
		if (my_role(s, q->service) != REP_ROLE_ACTIVE) {
			LOG(s, LOG_NOTICE, "service %s generation %lld: not sent to %s, the "
			    "service is not active here", q->service, (long long)q->gen,
			    s->o.peer);
			pop(s, -EPERM);
			continue;
		}
		if (cat_gen_get(s->o.cat, q->gen, &g) || g.state != CAT_GEN_COMPLETE) {
			LOG(s, LOG_WARNING, "service %s generation %lld is no longer complete here: "
			    "not sent to %s", q->service, (long long)q->gen, s->o.peer);
			pop(s, -ENOENT);
			continue;
		}
		if (g.stats.store_gen > 0 && g.stats.store_gen <= REP_STORE_GEN_MAX)
			ret = store_gen_files(s, q->service, (uint32_t)g.stats.store_gen, path,
					      sizeof(path));
		else if (!(ret = rep_gen_path(path, sizeof(path), s->o.store, q->service, q->gen)))
			ret = list_files(s, path);
		if (ret) {
			LOG(s, LOG_ERR, "service %s generation %lld: reading %s: %s", q->service,
			    (long long)q->gen, path, strerror(-ret));
			pop(s, -ENOENT);
			continue;
		}
		break;
	}
	if (!s->head) {
		s->st = S_READY;
		wait_answer(s, false);
		return;
	}
	pf = malloc(s->n_files * sizeof(*pf));
	pk = calloc(s->n_packs + 1, sizeof(*pk));
	ppk = calloc(s->n_packs + 1, sizeof(*ppk));
	if (!pf || !pk || !ppk) {
		free(pf);
		free(pk);
		free(ppk);
		pop(s, -ENOMEM);
		return;
	}
	for (size_t i = 0; i < s->n_packs; i++) {
		rep_pack__init(&pk[i]);
		pk[i].has_num = pk[i].has_size = pk[i].has_ident = 1;
		pk[i].num = s->packs[i].num;
		pk[i].size = s->packs[i].size;
		pk[i].ident = s->packs[i].ident;
		ppk[i] = &pk[i];
	}
	o.has_store_gen = s->store_gen > 0;
	o.store_gen = s->store_gen;
	o.packs = ppk;
	o.n_packs = s->n_packs;
	for (size_t i = 0; i < s->n_files; i++)
		pf[i] = &s->files[i];
	o.service = s->head->service;
	o.has_gen = o.has_parent = o.has_committed_us = o.has_pause_us = o.has_checksum = 1;
	o.gen = g.id;
	o.parent = g.parent;
	o.committed_us = g.committed_us;
	o.pause_us = g.stats.pause_us;
	o.checksum = g.stats.checksum;
	o.files = pf;
	o.n_files = s->n_files;
	lag_facts(s, o.service, g.id, &o);
	m.offer = &o;
	ret = rep__send(s->bev, &m);
	free(pf);
	free(pk);
	free(ppk);
	if (ret) {
		LOG(s, LOG_ERR, "service %s generation %lld: its offer (%zu files, %zu packs) does "
		    "not fit a frame: not sent to %s", s->head->service, (long long)g.id,
		    s->n_files, s->n_packs, s->o.peer);
		pop(s, ret);
		offer_next(s);
		return;
	}
	HELD_NOTE(s, "Offer of %s generation %lld", o.service, (long long)g.id);
	peer_state(s, g.id, CAT_PEER_SENDING);
	s->st = S_OFFERED;
	wait_answer(s, true);
}

/*
 * The source of the next Data frame: the needed file in turn, then the next pack with a
 * missing tail. Opens it (s->fd, s->off) and returns its index and size through *idx,
 * *size, *is_pack; 1 when everything was sent, 0, or -errno.
 */
static int next_source(struct rep_sender *s, uint32_t *idx, uint64_t *size, bool *is_pack)
{
	char name[PATH_MAX + 64];
	struct stat sb;

	for (;;) {
		if (s->cur < s->n_need) {
			const RepFile *f = &s->files[s->need[s->cur]];

			if (s->fd < 0) {
				s->fd = openat(s->dirfd, f->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				s->off = 0;
				if (s->fd < 0) {
					LOG(s, LOG_ERR, "service %s generation %lld: %s: %s",
					    s->head->service, (long long)s->head->gen, f->name,
					    strerror(errno));
					return -errno;
				}
			}
			if (s->off < f->size) {
				*idx = s->need[s->cur];
				*size = f->size;
				*is_pack = false;
				return 0;
			}
		} else if (s->pcur < s->n_packs) {
			const struct eng_store_pack *p = &s->packs[s->pcur];

			if (s->fd < 0 && s->pack_have[s->pcur] < p->size) {
				snprintf(name, sizeof(name), "%s/packs/pack-%08u.pack", s->store, p->num);
				s->fd = open(name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				s->off = s->pack_have[s->pcur];
				if (s->fd < 0 || fstat(s->fd, &sb) || (uint64_t)sb.st_size != p->size) {
					LOG(s, LOG_ERR, "service %s generation %lld: %s: %s", s->head->service,
					    (long long)s->head->gen, name, s->fd < 0 ? strerror(errno) :
					    "its size changed since the offer");
					return -EIO;
				}
			}
			if (s->fd >= 0 && s->off < p->size) {
				*idx = (uint32_t)s->pcur;
				*size = p->size;
				*is_pack = true;
				return 0;
			}
		} else {
			return 1;
		}
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
		if (s->cur < s->n_need)
			s->cur++;
		else
			s->pcur++;
	}
}

/* Queue Data frames while the output buffer has room; then the Commit. */
static int pump(struct rep_sender *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	while (s->st == S_DATA && evbuffer_get_length(out) < OUT_HIGH) {
		RepMsg m = REP_MSG__INIT;
		RepData d = REP_DATA__INIT;
		uint64_t size = 0;
		uint32_t idx = 0;
		bool is_pack = false;
		size_t want;
		ssize_t n;
		int ret = next_source(s, &idx, &size, &is_pack);

		if (ret < 0)
			return ret;
		if (ret) {
			RepCommit c = REP_COMMIT__INIT;

			c.service = s->head->service;
			c.has_gen = 1;
			c.gen = s->head->gen;
			m.commit = &c;
			rep__send(s->bev, &m);
			s->st = S_COMMITTED;
			wait_answer(s, true);
			break;
		}
		want = size - s->off < REP_CHUNK ? (size_t)(size - s->off) : REP_CHUNK;
		n = pread(s->fd, s->chunk, want, (off_t)s->off);
		if (n != (ssize_t)want) {
			if (is_pack)
				LOG(s, LOG_ERR, "service %s generation %lld: pack %u changed while "
				    "being sent", s->head->service, (long long)s->head->gen,
				    s->packs[idx].num);
			else
				LOG(s, LOG_ERR, "service %s generation %lld: %s changed while being "
				    "sent", s->head->service, (long long)s->head->gen,
				    s->files[idx].name);
			return -EIO;
		}
		if (is_pack) {
			d.has_pack = 1;
			d.pack = idx;
		} else {
			d.has_file = 1;
			d.file = idx;
		}
		d.has_offset = d.has_data = d.has_xxh3 = 1;
		d.offset = s->off;
		d.data.data = s->chunk;
		d.data.len = want;
		d.xxh3 = XXH3_64bits(s->chunk, want);
		if (s->o.test_corrupt_at && (is_pack || !s->n_packs) &&
		    s->o.test_corrupt_at >= s->off &&
		    s->o.test_corrupt_at < s->off + want)
			s->chunk[s->o.test_corrupt_at - s->off] ^= 0x10;
		m.data = &d;
		if (rep__send(s->bev, &m))
			return -ENOMEM;
		s->off += want;
		s->bytes_sent += want;
	}
	return 0;
}

/* ---- connection ------------------------------------------------------------------ */

static void conn_drop(struct rep_sender *s)
{
	unsigned ms = s->backoff_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	if (s->head && s->st > S_READY)
		peer_state(s, s->head->gen, CAT_PEER_FAILED);
	gen_reset(s);
	if (s->bev)
		bufferevent_free(s->bev);
	s->bev = NULL;
	s->st = S_NONE;
	s->backoff_ms = ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : ms * 2;
	evtimer_add(s->retry, &tv);
}

static int on_hello(struct rep_sender *s, const RepHello *h)
{
	if (h->version != REP_PROTO_VERSION || strcmp(h->node, s->o.peer)) {
		LOG(s, LOG_ERR, "peer %s: answered as node %s, protocol version %u (we speak %u)",
		    s->o.peer, h->node, h->version, REP_PROTO_VERSION);
		return -EPROTO;
	}
	s->backoff_ms = BACKOFF_MIN_MS;
	LOG(s, LOG_NOTICE, "peer %s: connected", s->o.peer);
	rep__roles_heard(h->services, h->n_services, s->o.services, s->o.n_services,
			 s->peer_role, s->o.on_peer_role, s->o.opaque, s->o.peer);
	for (size_t i = 0; i < h->n_services; i++) {
		int64_t *p = peer_newest(s, h->services[i]->name);

		if (p)
			*p = h->services[i]->newest;
		prune_queue(s, h->services[i]->name, h->services[i]->newest);
	}
	offer_next(s);
	return 0;
}

static int on_have(struct rep_sender *s, const RepHave *h)
{
	if (strcmp(h->service, s->head->service) || h->gen != s->head->gen) {
		LOG(s, LOG_ERR, "peer %s: Have for service %s generation %lld, we offered %s %lld",
		    s->o.peer, h->service, (long long)h->gen, s->head->service,
		    (long long)s->head->gen);
		return -EPROTO;
	}
	if (h->present) {
		pop(s, 0);
		offer_next(s);
		return 0;
	}
	for (size_t i = 0; i < h->n_need; i++)
		if (h->need[i] >= s->n_files) {
			LOG(s, LOG_ERR, "peer %s: Have: need[%zu] = %u, we offered %zu files",
			    s->o.peer, i, h->need[i], s->n_files);
			return -EPROTO;
		}
	if (h->n_pack_have != s->n_packs) {
		LOG(s, LOG_ERR, "peer %s: Have: %zu pack sizes, we offered %zu packs", s->o.peer,
		    h->n_pack_have, s->n_packs);
		return -EPROTO;
	}
	for (size_t i = 0; i < h->n_pack_have; i++)
		if (h->pack_have[i] > s->packs[i].size) {
			LOG(s, LOG_ERR, "peer %s: Have: holds %llu bytes of pack %u, ours has %llu",
			    s->o.peer, (unsigned long long)h->pack_have[i], s->packs[i].num,
			    (unsigned long long)s->packs[i].size);
			return -EPROTO;
		}
	s->pack_have = malloc((s->n_packs + 1) * sizeof(*s->pack_have));
	s->need = malloc((h->n_need + 1) * sizeof(*s->need));
	if (!s->need || !s->pack_have)
		return -ENOMEM;
	if (s->n_packs)
		memcpy(s->pack_have, h->pack_have, s->n_packs * sizeof(*s->pack_have));
	s->pcur = 0;
	if (h->n_need)
		memcpy(s->need, h->need, h->n_need * sizeof(*s->need));
	s->n_need = h->n_need;
	s->cur = 0;
	s->st = S_DATA;
	wait_answer(s, false);
	return pump(s);
}

static int on_ack(struct rep_sender *s, const RepAck *a)
{
	if (!s->head || strcmp(a->service, s->head->service) || a->gen != s->head->gen) {
		LOG(s, LOG_ERR, "peer %s: Ack for service %s generation %lld, not in flight",
		    s->o.peer, a->service, (long long)a->gen);
		return -EPROTO;
	}
	if (!a->ok) {
		LOG(s, LOG_ERR, "peer %s refused service %s generation %lld: %s", s->o.peer,
		    a->service, (long long)a->gen, a->error ? a->error : "(no reason)");
		peer_state(s, a->gen, CAT_PEER_FAILED);
		if (s->o.on_ack)
			s->o.on_ack(s->o.opaque, s->o.peer, a->service, a->gen, -EBADMSG);
		return -EBADMSG;	/* the peer closes; we retry the generation later */
	}
	if (s->st != S_COMMITTED) {
		LOG(s, LOG_ERR, "peer %s: Ack before our Commit", s->o.peer);
		return -EPROTO;
	}
	HELD_NOTE(s, "Ack of %s generation %lld", a->service, (long long)a->gen);
	pop(s, 0);
	offer_next(s);
	return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct rep_sender *s = arg;
	char err[256];
	RepMsg *m;
	int ret;

	while (s->bev && (ret = rep__recv(bev, &m, err, sizeof(err))) != 0) {
		if (ret < 0) {
			LOG(s, LOG_ERR, "peer %s: bad message: %s", s->o.peer, err);
			conn_drop(s);
			return;
		}
		if (m->hello && s->st == S_HELLO)
			ret = on_hello(s, m->hello);
		else if (m->have && s->st == S_OFFERED)
			ret = on_have(s, m->have);
		else if (m->ack && s->st >= S_OFFERED)
			ret = on_ack(s, m->ack);
		else if (m->roles && s->st >= S_READY) {
			rep__roles_heard(m->roles->services, m->roles->n_services,
					 s->o.services, s->o.n_services, s->peer_role,
					 s->o.on_peer_role, s->o.opaque, s->o.peer);
			ret = 0;
		}
		else {
			LOG(s, LOG_ERR, "peer %s: unexpected %s message", s->o.peer,
			    rep__msg_name(m));
			ret = -EPROTO;
		}
		rep_msg__free_unpacked(m, NULL);
		if (ret) {
			conn_drop(s);
			return;
		}
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct rep_sender *s = arg;

	if (s->st == S_DATA && pump(s))
		conn_drop(s);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rep_sender *s = arg;
	RepMsg m = REP_MSG__INIT;
	RepHello h = REP_HELLO__INIT;
	RepService *svc, **psvc;
	char why[512];

	if (what & BEV_EVENT_CONNECTED) {
		svc = calloc(s->o.n_services + 1, sizeof(*svc));
		psvc = calloc(s->o.n_services + 1, sizeof(*psvc));
		if (!svc || !psvc) {
			free(svc);
			free(psvc);
			conn_drop(s);
			return;
		}
		for (size_t i = 0; i < s->o.n_services; i++) {
			rep_service__init(&svc[i]);
			svc[i].name = (char *)s->o.services[i];
			svc[i].has_role = 1;
			svc[i].role = my_role(s, s->o.services[i]);
			psvc[i] = &svc[i];
		}
		h.has_version = 1;
		h.version = REP_PROTO_VERSION;
		h.node = (char *)s->o.node;
		h.services = psvc;
		h.n_services = s->o.n_services;
		m.hello = &h;
		rep__send(bev, &m);
		free(svc);
		free(psvc);
		rep__keepalive(bufferevent_getfd(bev));
		memset(s->peer_role, 0, s->o.n_services);
		s->st = S_HELLO;
		return;
	}
	rep__bev_errors(bev, why, sizeof(why));
	if (!why[0] && (what & BEV_EVENT_TIMEOUT))
		snprintf(why, sizeof(why), "no progress for %s s", what & BEV_EVENT_WRITING ?
			 "15" : "60");
	LOG(s, s->st == S_CONNECTING ? LOG_WARNING : LOG_ERR,
	    "peer %s (%s:%u): %s%s%s; retrying in %u ms", s->o.peer, s->o.host, s->o.port,
	    s->st <= S_CONNECTING ? "cannot connect" : s->st == S_HELLO ? "refused us" :
	    "connection lost", why[0] ? ": " : "", why, s->backoff_ms);
	conn_drop(s);
}

static void conn_start(struct rep_sender *s)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char port[8];
	SSL *ssl;
	int ret;

	snprintf(port, sizeof(port), "%u", s->o.port);
	ret = getaddrinfo(s->o.host, port, &hints, &ai);
	if (ret) {
		LOG(s, LOG_WARNING, "peer %s: cannot resolve %s: %s", s->o.peer, s->o.host,
		    gai_strerror(ret));
		goto retry;
	}
	ssl = rep__tls_ssl(s->o.tls, s->o.peer);
	if (!ssl)
		goto retry;
	s->bev = bufferevent_openssl_socket_new(s->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
						BEV_OPT_CLOSE_ON_FREE);
	if (!s->bev) {
		SSL_free(ssl);
		goto retry;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
	bufferevent_setcb(s->bev, on_read_cb, on_write_cb, on_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, OUT_LOW, 0);
	if (s->rl)
		bufferevent_set_rate_limit(s->bev, s->rl);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->st = S_CONNECTING;
	if (bufferevent_socket_connect(s->bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
		freeaddrinfo(ai);
		conn_drop(s);
		return;
	}
	freeaddrinfo(ai);
	return;
retry:
	if (ai)
		freeaddrinfo(ai);
	s->bev = NULL;
	conn_drop(s);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	conn_start(arg);
}

static void send_roles(struct rep_sender *s)
{
	if (s->bev && s->st >= S_READY)
		rep__send_roles(s->bev, s->o.services, s->o.n_services, s->o.role, s->o.opaque,
				REP_ROLE_ACTIVE);
}

/* Roles now and then: the peer learns a change it missed, and hears we are alive. */
static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	send_roles(arg);
}

void rep_sender_roles_changed(struct rep_sender *s)
{
	send_roles(s);
}

/* ---- the loop callbacks, timed (o.held): the peer, and what they did ---------------- */

static void held_begin(struct rep_sender *s, struct rep__held *h)
{
	if (!s->o.held)
		return;
	snprintf(s->held, sizeof(s->held), "peer %s", s->o.peer);
	s->held_sent = s->bytes_sent;
	rep__held_begin(h);
}

static void held_end(struct rep_sender *s, const struct rep__held *h, const char *what)
{
	if (!s->o.held)
		return;
	if (s->bytes_sent > s->held_sent)
		HELD_NOTE(s, "%llu bytes of data queued",
			  (unsigned long long)(s->bytes_sent - s->held_sent));
	rep__held_end(h, s->o.held, s->o.opaque, what, s->held);
}

static void on_read_cb(struct bufferevent *bev, void *arg)
{
	struct rep__held h = { 0 };

	held_begin(arg, &h);
	on_read(bev, arg);
	held_end(arg, &h, "replica sender read");
}

static void on_write_cb(struct bufferevent *bev, void *arg)
{
	struct rep__held h = { 0 };

	held_begin(arg, &h);
	on_write(bev, arg);
	held_end(arg, &h, "replica sender write");
}

static void on_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct rep__held h = { 0 };

	held_begin(arg, &h);
	on_event(bev, what, arg);
	held_end(arg, &h, "replica sender event");
}

static void on_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rep__held h = { 0 };

	held_begin(arg, &h);
	on_retry(fd, what, arg);
	held_end(arg, &h, "replica sender connect");
}

static void on_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct rep__held h = { 0 };

	held_begin(arg, &h);
	on_heartbeat(fd, what, arg);
	held_end(arg, &h, "replica sender roles heartbeat");
}

int rep_sender_new(struct event_base *base, const struct rep_sender_opts *o,
		   struct rep_sender **out)
{
	struct rep_sender *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->base = base;
	s->o = *o;
	s->dirfd = s->fd = -1;
	s->backoff_ms = BACKOFF_MIN_MS;
	s->chunk = malloc(REP_CHUNK);
	s->peer_newest = calloc(o->n_services + 1, sizeof(*s->peer_newest));
	s->peer_role = calloc(o->n_services + 1, 1);
	s->retry = evtimer_new(base, on_retry_cb, s);
	s->hb = event_new(base, -1, EV_PERSIST, on_heartbeat_cb, s);
	if (o->bandwidth) {
		/* Ticks of 100 ms keep the pace even; a burst of one tick's worth. */
		struct timeval tick = { 0, 100000 };
		size_t per_tick = o->bandwidth / 10 ? (size_t)(o->bandwidth / 10) : 1;

		/* Reads unlimited in effect; not EV_RATE_LIMIT_MAX, which the refill
		 * arithmetic overflows (reads then stall for good). */
		s->rl = ev_token_bucket_cfg_new((size_t)1 << 30, (size_t)1 << 30, per_tick,
						per_tick, &tick);
	}
	if (!s->chunk || !s->retry || !s->peer_newest || !s->peer_role || !s->hb ||
	    (o->bandwidth && !s->rl)) {
		rep_sender_free(s);
		return -ENOMEM;
	}
	{
		struct timeval hb = { REP_ROLES_HEARTBEAT_MS / 1000,
				      (REP_ROLES_HEARTBEAT_MS % 1000) * 1000 };

		event_add(s->hb, &hb);
	}
	conn_start(s);
	*out = s;
	return 0;
}

void rep_sender_free(struct rep_sender *s)
{
	if (!s)
		return;
	gen_reset(s);
	if (s->bev)
		bufferevent_free(s->bev);
	if (s->retry)
		event_free(s->retry);
	if (s->hb)
		event_free(s->hb);
	if (s->rl)
		ev_token_bucket_cfg_free(s->rl);
	while (s->head) {
		struct qgen *q = s->head;

		s->head = q->next;
		free(q);
	}
	free(s->chunk);
	free(s->peer_newest);
	free(s->peer_role);
	free(s);
}

int rep_sender_push(struct rep_sender *s, const char *service, int64_t gen)
{
	struct qgen *q, **p;

	if (!rep_name_valid(service) || gen <= 0)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	snprintf(q->service, sizeof(q->service), "%s", service);
	q->gen = gen;
	for (p = &s->head; *p; p = &(*p)->next)
		;
	*p = q;
	s->queued++;
	if (s->st == S_READY)
		offer_next(s);
	return 0;
}

void rep_sender_status(const struct rep_sender *s, struct rep_sender_status *st)
{
	memset(st, 0, sizeof(*st));
	st->link = s->st == S_READY ? REP_LINK_CONNECTED : s->st > S_READY ?
		   REP_LINK_SYNCSOURCE : REP_LINK_CONNECTING;
	st->queued = s->queued;
	st->acked_gen = s->acked_gen;
	st->acked_us = s->acked_us;
	st->bytes_sent = s->bytes_sent;
}
