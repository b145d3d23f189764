/*
 * hacd-replica.c: replication inside hacd (issue 7). With `listen` set, hacd receives
 * generations from its peers (a rep_server); with peers configured, it ships its own
 * generations to each of them (one rep_sender per peer). Both run in hacd's loop.
 *
 * What is shipped: complete generations of configured services whose origin is not
 * that peer (a generation received from a node never goes back to it). At start, every
 * such generation the peer does not hold consistent is queued (the sender skips what
 * the peer already has, and superseded ones when it is far behind); afterwards each
 * generation is pushed as it completes (the checkpoint code's generation hook).
 *
 * The library borrows strings from d->conf: hacd_reload() reopens replication on the
 * new config before it frees the old one (hacd_replica_reload()). The store and the
 * catalog stay those hacd started with, as state_dir does.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/replica.h"
#include "hacd.h"

struct hacd_replica {
	char store[PATH_MAX];
	struct rep_tls *tls;
	struct rep_server *srv;
	struct rep_sender **snd;
	size_t n_snd;
	const char **services, **peers;	/* into d->conf */
	uint8_t *heard;			/* [peer][service]: its role as last told
					 * (enum rep_role) */
};

static enum rep_role my_role(void *opaque, const char *service)
{
	struct svc *s = hacd_svc_find(opaque, service);

	/* A node still listening to its peers before it runs the service claims
	 * nothing (hacd-role.c). */
	if (!s || s->role_wait)
		return REP_ROLE_UNKNOWN;
	return s->role == CAT_ROLE_ACTIVE ? REP_ROLE_ACTIVE : REP_ROLE_STANDBY;
}

static void on_peer_role(void *opaque, const char *peer, const char *service,
			 enum rep_role role, bool change)
{
	struct hacd *d = opaque;
	struct hacd_replica *r = d->replica;
	struct svc *s;

	for (size_t p = 0; r && p < d->conf->n_peers; p++) {
		if (strcmp(d->conf->peers[p].name, peer))
			continue;
		for (size_t i = 0; i < d->conf->n_services; i++)
			if (!strcmp(d->conf->services[i].name, service)) {
				uint8_t *h = &r->heard[p * d->conf->n_services + i];

				if (*h != role)
					hacd_log(LOG_NOTICE, "service %s: peer %s reports it %s",
						 service, peer, rep_role_name(role));
				*h = (uint8_t)role;
			}
	}
	if (role == REP_ROLE_ACTIVE && (s = hacd_svc_find(d, service)))
		hacd_role_peer_active(s, peer, change);
}

static void rep_log(int prio, const char *msg, void *opaque)
{
	hacd_log(prio, "replica: %s", msg);
}

/* The library's loop callbacks are timed like hacd's own (HACD_LOOP_CB). */
static void rep_held(void *opaque, uint64_t wall_us, uint64_t cpu_us, const char *what,
		     const char *detail)
{
	hacd_held_report(wall_us, cpu_us, what, detail);
}

static void on_ack(void *opaque, const char *peer, const char *service, int64_t gen,
		   int status)
{
	if (!status)
		hacd_log(LOG_INFO, "service %s: generation %lld consistent on peer %s", service,
			 (long long)gen, peer);
	else if (status == -ESTALE)
		hacd_log(LOG_INFO, "service %s: generation %lld superseded before peer %s got it",
			 service, (long long)gen, peer);
	else
		hacd_log(LOG_WARNING, "service %s: generation %lld not replicated to %s: %s",
			 service, (long long)gen, peer, strerror(-status));
}

static void on_consistent(void *opaque, const char *peer, const char *service, int64_t gen,
			  int64_t origin_gen)
{
	struct hacd *d = opaque;
	int64_t sid;
	char msg[256];

	const struct conf_service *cs = conf_service_find(d->conf, service);
	int pruned = 0;

	snprintf(msg, sizeof(msg), "generation %lld from %s (its %lld) is consistent here",
		 (long long)gen, peer, (long long)origin_gen);
	if (cat_service_ensure(d->cat, service, &sid))
		return;
	cat_event_add(d->cat, sid, LOG_INFO, "replica", msg);
	/* A standby takes no checkpoints: its retention runs as generations arrive. */
	if (cs) {
		struct cat_retention p = {
			.keep_last = cs->keep, .keep_hourly = cs->keep_hourly,
			.keep_daily = cs->keep_daily, .forget_after_s = 86400,
		};

		if (cat_retention_apply(d->cat, sid, &p, svc_wall_us(), &pruned))
			hacd_log(LOG_ERR, "service %s: retention: %s", service, cat_errmsg(d->cat));
		if (pruned)
			hacd_gc(d);
	}
}

/* Queue, for one peer, what it may lack: oldest first, the sender prunes. */
static void queue_backlog(struct hacd *d, struct rep_sender *snd, const char *peer,
			  const char *only)
{
	for (size_t i = 0; i < d->conf->n_services; i++) {
		const char *name = d->conf->services[i].name;
		struct cat_gen *g;
		enum cat_peer_state st;
		int64_t sid;
		size_t n;

		/* Only the active node ships a service's generations. */
		if ((only && strcmp(only, name)) || my_role(d, name) != REP_ROLE_ACTIVE)
			continue;
		if (cat_service_ensure(d->cat, name, &sid) ||
		    cat_gen_list(d->cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n)) {
			hacd_log(LOG_ERR, "replica: catalog: %s", cat_errmsg(d->cat));
			continue;
		}
		for (size_t j = n; j-- > 0;) {
			if (!strcmp(g[j].origin, peer))
				continue;
			if (!cat_gen_peer_get(d->cat, g[j].id, peer, &st) &&
			    st == CAT_PEER_CONSISTENT)
				continue;
			rep_sender_push(snd, name, g[j].id);
		}
		free(g);
	}
}

static void replica_free(struct hacd_replica *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_snd; i++)
		rep_sender_free(r->snd[i]);
	free(r->snd);
	rep_server_free(r->srv);
	rep_tls_free(r->tls);
	free(r->services);
	free(r->peers);
	free(r->heard);
	free(r);
}

static int replica_new(struct hacd *d, const char *store, struct hacd_replica **out)
{
	const struct conf *c = d->conf;
	struct hacd_replica *r;
	char err[512];
	int ret = -ENOMEM;

	*out = NULL;
	if (!c->listen && !c->n_peers)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->store, sizeof(r->store), "%s", store);
	r->services = calloc(c->n_services + 1, sizeof(*r->services));
	r->peers = calloc(c->n_peers + 1, sizeof(*r->peers));
	r->snd = calloc(c->n_peers + 1, sizeof(*r->snd));
	r->heard = calloc(c->n_peers * c->n_services + 1, 1);
	if (!r->services || !r->peers || !r->snd || !r->heard)
		goto err;
	for (size_t i = 0; i < c->n_services; i++)
		r->services[i] = c->services[i].name;
	for (size_t i = 0; i < c->n_peers; i++)
		r->peers[i] = c->peers[i].name;
	ret = rep_tls_new(c->tls_ca, c->tls_cert, c->tls_key, &r->tls, err, sizeof(err));
	if (ret) {
		hacd_log(LOG_ERR, "replica: %s", err);
		goto err;
	}
	if (c->listen) {
		struct rep_server_opts o = {
			.node = c->node, .host = c->listen_host, .port = c->listen_port,
			.store = r->store, .peers = r->peers, .n_peers = c->n_peers,
			.services = r->services, .n_services = c->n_services, .tls = r->tls,
			.cat = d->cat, .log = rep_log, .on_consistent = on_consistent,
			.role = my_role, .on_peer_role = on_peer_role, .held = rep_held,
			.opaque = d,
		};

		ret = rep_server_new(d->base, &o, &r->srv);
		if (ret)
			goto err;
		hacd_log(LOG_NOTICE, "replica: listening on %s", c->listen);
	}
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct conf_peer *p = &c->peers[i];
		struct rep_sender_opts o = {
			.node = c->node, .peer = p->name, .host = p->host, .port = p->port,
			.bandwidth = p->bandwidth, .store = r->store, .services = r->services,
			.n_services = c->n_services, .tls = r->tls, .cat = d->cat,
			.log = rep_log, .on_ack = on_ack, .role = my_role,
			.on_peer_role = on_peer_role, .held = rep_held, .opaque = d,
		};

		ret = rep_sender_new(d->base, &o, &r->snd[i]);
		if (ret)
			goto err;
		r->n_snd++;
		queue_backlog(d, r->snd[i], p->name, NULL);
	}
	*out = r;
	return 0;
err:
	replica_free(r);
	return ret;
}

/* The checkpoint code's hook. The sender finds the generation by its catalog id (and
 * the store number in its row) under the same state_dir: `dir` is not needed. */
static void gen_complete(struct svc *s, int64_t gen, const char *dir, uint32_t store_gen,
			 void *opaque)
{
	hacd_replica_push(opaque, s->name, gen);
}

int hacd_replica_open(struct hacd *d)
{
	char store[PATH_MAX];
	int ret;

	snprintf(store, sizeof(store), "%s/services", d->conf->state_dir);
	ret = replica_new(d, store, &d->replica);
	if (!ret)
		ret = hacd_gen_hook_add(d, gen_complete, d);
	return ret;
}

void hacd_replica_close(struct hacd *d)
{
	replica_free(d->replica);
	d->replica = NULL;
}

int hacd_replica_reload(struct hacd *d)
{
	char store[PATH_MAX];
	int ret;

	snprintf(store, sizeof(store), "%s/services", d->conf->state_dir);
	if (d->replica)
		snprintf(store, sizeof(store), "%s", d->replica->store);
	/* Connections restart: a transfer in flight is offered again, nothing is lost. */
	hacd_replica_close(d);
	ret = replica_new(d, store, &d->replica);
	if (ret)
		hacd_log(LOG_ERR, "replica: not running after the reload: %s", strerror(-ret));
	return ret;
}

void hacd_replica_push(struct hacd *d, const char *service, int64_t gen)
{
	struct cat_gen g;

	if (!d->replica || cat_gen_get(d->cat, gen, &g))
		return;
	for (size_t i = 0; i < d->replica->n_snd; i++)
		if (strcmp(g.origin, d->conf->peers[i].name))
			rep_sender_push(d->replica->snd[i], service, gen);
}

int hacd_replica_sender_status(struct hacd *d, const char *peer, struct rep_sender_status *st)
{
	for (size_t i = 0; d->replica && i < d->replica->n_snd; i++)
		if (!strcmp(d->conf->peers[i].name, peer)) {
			rep_sender_status(d->replica->snd[i], st);
			return 0;
		}
	return -ENOENT;
}

int hacd_replica_standby_status(struct hacd *d, const char *peer, const char *service,
				struct rep_standby_status *st)
{
	if (!d->replica || !d->replica->srv)
		return -ENOENT;
	rep_server_status(d->replica->srv, peer, service, st);
	return 0;
}

/*
 * The replication side of a service's status. A standby (some peer told us of its
 * newest) reports its own lag as last heard; otherwise we are the source and report
 * our most lagging peer's, from the per-peer states in our catalog.
 */
void hacd_replica_service_lag(struct hacd *d, const char *service, int64_t *newest,
			      uint32_t *lag_gens, double *lag_s)
{
	struct cat_gen *g = NULL;
	int64_t sid;
	size_t n = 0;

	*newest = 0;
	*lag_gens = 0;
	*lag_s = 0;
	if (cat_service_ensure(d->cat, service, &sid) ||
	    cat_gen_list(d->cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return;
	if (n)
		*newest = g[0].id;
	for (size_t p = 0; d->replica && p < d->conf->n_peers; p++) {
		const char *peer = d->conf->peers[p].name;
		struct rep_standby_status st;
		enum cat_peer_state ps;
		uint32_t behind = 0;
		size_t i;

		if (d->replica->srv) {
			rep_server_status(d->replica->srv, peer, service, &st);
			if (st.active_newest) {
				*lag_gens = st.lag_generations;
				*lag_s = st.lag_seconds;
				break;
			}
		}
		for (i = 0; i < n; i++) {
			if (!strcmp(g[i].origin, peer))
				break;	/* it came from there: the peer has it and all before */
			if (!cat_gen_peer_get(d->cat, g[i].id, peer, &ps) &&
			    ps == CAT_PEER_CONSISTENT)
				break;
			behind++;
		}
		if (behind > *lag_gens)
			*lag_gens = behind;
		if (behind && i < n && g[0].committed_us > g[i].committed_us &&
		    (g[0].committed_us - g[i].committed_us) / 1e6 > *lag_s)
			*lag_s = (double)(g[0].committed_us - g[i].committed_us) / 1e6;
	}
	free(g);
}

bool hacd_replica_standby_of(struct hacd *d, const char *peer)
{
	struct rep_standby_status st;

	if (!d->replica || !d->replica->srv)
		return false;
	rep_server_status(d->replica->srv, peer, "", &st);
	return st.connected;
}

bool hacd_replica_reachable(struct hacd *d, const char *peer)
{
	struct rep_sender_status ss;

	if (!d->replica)
		return false;
	if (!hacd_replica_sender_status(d, peer, &ss) && ss.link >= REP_LINK_CONNECTED)
		return true;
	return hacd_replica_standby_of(d, peer);
}

int hacd_replica_peer_role(struct hacd *d, const char *peer, const char *service)
{
	struct hacd_replica *r = d->replica;

	if (!r || !hacd_replica_reachable(d, peer))
		return REP_ROLE_UNKNOWN;
	for (size_t p = 0; p < d->conf->n_peers; p++)
		for (size_t i = 0; i < d->conf->n_services; i++)
			if (!strcmp(d->conf->peers[p].name, peer) &&
			    !strcmp(d->conf->services[i].name, service))
				return r->heard[p * d->conf->n_services + i];
	return REP_ROLE_UNKNOWN;
}

void hacd_replica_roles_changed(struct hacd *d)
{
	struct hacd_replica *r = d->replica;

	if (!r)
		return;
	for (size_t i = 0; i < r->n_snd; i++)
		rep_sender_roles_changed(r->snd[i]);
	if (r->srv)
		rep_server_roles_changed(r->srv);
}

void hacd_replica_backlog(struct hacd *d, const char *service)
{
	for (size_t i = 0; d->replica && i < d->replica->n_snd; i++)
		queue_backlog(d, d->replica->snd[i], d->conf->peers[i].name, service);
}

/*
 * May this node take `service` over? hacd does not fence: that is the cluster
 * manager's job (STONITH) or the person's running hactl failover. What hacd can see,
 * it refuses: a peer we are connected to right now that reports the service active.
 * A standby with nothing consistent has nothing to restore.
 */
int hacd_replica_promote_check(struct hacd *d, const char *service, bool force, char *err,
			       size_t errlen)
{
	struct cat_gen g;
	int64_t sid;

	for (size_t i = 0; !force && i < d->conf->n_peers; i++)
		if (hacd_replica_peer_role(d, d->conf->peers[i].name, service) ==
		    REP_ROLE_ACTIVE) {
			snprintf(err, errlen, "peer %s is connected and reports %s active. "
				 "Fencing it is the cluster manager's job; once it is down, "
				 "promote again, or use --force if you know it is fenced (it "
				 "steps down when it hears of it)", d->conf->peers[i].name,
				 service);
			hacd_log(LOG_WARNING, "promote %s refused: %s", service, err);
			return -EBUSY;
		}
	if (cat_service_ensure(d->cat, service, &sid) ||
	    cat_gen_latest_complete(d->cat, sid, &g)) {
		snprintf(err, errlen, "no consistent generation of %s on this node", service);
		return -ENOENT;
	}
	hacd_log(LOG_NOTICE, "promote %s%s: restoring generation %lld%s%s", service,
		 force ? " (forced)" : "", (long long)g.id, g.origin[0] ? " from " : "",
		 g.origin);
	return 0;
}

/* ---- sync replication ---------------------------------------------------------------- */

int64_t hacd_replica_safe(struct svc *s)
{
	enum cat_peer_state ps;
	struct cat_gen *g;
	int64_t safe = 0;
	size_t n;

	if (cat_gen_list(s->d->cat, s->cat_id, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return 0;
	for (size_t i = 0; i < n && !safe; i++) {
		size_t p;

		for (p = 0; p < s->d->conf->n_peers; p++)
			if (strcmp(g[i].origin, s->d->conf->peers[p].name) &&
			    (cat_gen_peer_get(s->d->cat, g[i].id, s->d->conf->peers[p].name, &ps) ||
			     ps != CAT_PEER_CONSISTENT))
				break;
		if (p == s->d->conf->n_peers)
			safe = g[i].id;
	}
	free(g);
	return safe;
}

/*
 * No silent downgrade: while no standby acknowledges, every generation is kept (the
 * disk fills rather than the newest safe state being dropped) and the status says why.
 */
int64_t hacd_replica_sync_floor(struct svc *s)
{
	int64_t safe;

	if (!s->cs || s->cs->replication != CONF_REPLICATION_SYNC || !s->d->conf->n_peers ||
	    s->role != CAT_ROLE_ACTIVE)
		return 0;
	safe = hacd_replica_safe(s);
	return safe ? safe : 1;
}
