/*
 * hacd-role.c: each service is active (run, guarded, checkpointed, its generations
 * pushed to the peers) or standby (not run here, receiving) on this node
 * (docs/cluster.md, "Roles"). The role is kept in the catalog.
 *
 * DESIGN
 * Which node runs a service is decided by a cluster manager or a person, never by hacd
 * alone: hacd does not fence. What hacd does is refuse what it can see is wrong (a
 * promotion while a reachable peer reports the service active) and avoid the two ways
 * a node would otherwise start a second copy on its own:
 *  - at start, a node with peers and no recorded role is standby (two nodes booting
 *    together do not both launch the service);
 *  - a node whose catalog says active (hacd restarted, or the node came back) first
 *    listens to its peers for up to ROLE_WAIT_US: if one of them reports the service
 *    active (it took over while we were gone), we come back standby; otherwise we go on
 *    guarding it (adopting the service if it still runs).
 *
 *   (start) --no peers--------------------------------------------> ACTIVE
 *   (start) --peers, role none or standby--------------------------> STANDBY
 *   (start) --peers, role active: wait--+--a peer reports active---> STANDBY
 *                                       +--none does, or timeout---> ACTIVE
 *   STANDBY --hactl promote: restore newest consistent (or launch, --force)--> ACTIVE
 *   ACTIVE  --hactl demote: last checkpoint, acks (bounded), kill--> STANDBY
 *   ACTIVE  --a peer's role changes to active on a live link------> STANDBY (no checkpoint)
 *
 *   transition                 function
 *   (start)                    hacd_role_init, role_timer_cb
 *   STANDBY -> ACTIVE          hacd_role_promote, hacd_role_restored
 *   ACTIVE -> STANDBY          hacd_role_demote, role_timer_cb, hacd_role_stopped
 *   peer active                hacd_role_peer_active
 *
 * Invariants:
 *  1. The catalog says active only once the service runs here (the restore of a
 *     promotion succeeded), and says standby before the demote is answered.
 *  2. A standby service has no process, no checkpoint timer and no pid file: the next
 *     hacd does not adopt anything of it.
 *  3. Every role change is told to the peers at once (Roles), and again every few
 *     seconds by the replica heartbeat.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/replica.h"
#include "hacd.h"

/* How long a node that was active listens to its peers before it runs the service. */
#define ROLE_WAIT_US		3000000
/* How long a demotion waits for the peers to acknowledge its last checkpoint. */
#define DEMOTE_ACK_WAIT_US	20000000
#define ROLE_TICK_US		50000

static void role_tick(struct svc *s)
{
	struct timeval tv = { 0, ROLE_TICK_US };

	evtimer_add(s->role_timer, &tv);
}

static void role_set(struct svc *s, enum cat_role r, const char *why)
{
	if (cat_role_set(s->d->cat, s->cat_id, r))
		hacd_log(LOG_ERR, "service %s: catalog: role: %s", s->name,
			 cat_errmsg(s->d->cat));
	if (s->role != (int)r || s->role_wait)
		svc_event(s, LOG_NOTICE, "role", "%s: %s", cat_role_name(r), why);
	s->role = r;
	s->role_wait = false;
	hacd_replica_roles_changed(s->d);
	if (r == CAT_ROLE_ACTIVE)
		hacd_replica_backlog(s->d, s->name);
}

const char *hacd_role_name(const struct svc *s)
{
	return cat_role_name(s->role);
}

static void demote_answer(struct svc *s, int status, const char *err)
{
	if (s->demote_fd >= 0) {
		hacd_ctl_reply_done(s->demote_fd, status, err, s->d->cat,
				    status ? 0 : s->demote_gen);
		close(s->demote_fd);
	}
	s->demote_fd = -1;
	s->demote = DEMOTE_NONE;
}

/* Invariant 2: nothing of the service is left for anyone to adopt. */
static void become_standby(struct svc *s, const char *why)
{
	char path[4096];

	evtimer_del(s->timer);
	s->state = SVC_STOPPED;
	s->init = s->pid = 0;
	snprintf(path, sizeof(path), "%s/services/%s/service.pid", s->d->conf->state_dir,
		 s->name);
	unlink(path);
	role_set(s, CAT_ROLE_STANDBY, why);
	demote_answer(s, 0, NULL);
}

static bool peer_reports_active(struct svc *s, const char **who)
{
	for (size_t i = 0; i < s->d->conf->n_peers; i++) {
		const char *p = s->d->conf->peers[i].name;

		if (hacd_replica_peer_role(s->d, p, s->name) == REP_ROLE_ACTIVE) {
			*who = p;
			return true;
		}
	}
	return false;
}

static bool peers_all_heard(struct svc *s)
{
	for (size_t i = 0; i < s->d->conf->n_peers; i++)
		if (hacd_replica_peer_role(s->d, s->d->conf->peers[i].name, s->name) ==
		    REP_ROLE_UNKNOWN)
			return false;
	return true;
}

/* Did every peer we can reach acknowledge generation `gen`? */
static bool peers_acked(struct svc *s, int64_t gen)
{
	enum cat_peer_state ps;

	for (size_t i = 0; i < s->d->conf->n_peers; i++) {
		const char *p = s->d->conf->peers[i].name;

		if (!hacd_replica_reachable(s->d, p))
			continue;	/* it gets it when it comes back, as standby */
		if (cat_gen_peer_get(s->d->cat, gen, p, &ps) || ps != CAT_PEER_CONSISTENT)
			return false;
	}
	return true;
}

static void role_timer(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	uint64_t now = hacd_now_us();
	const char *who = NULL;
	struct cat_gen g;

	if (s->role_wait) {
		if (peer_reports_active(s, &who)) {
			char why[256];

			snprintf(why, sizeof(why), "peer %s runs it now: this node comes back "
				 "standby", who);
			become_standby(s, why);
			return;
		}
		if (!peers_all_heard(s) && now < s->role_deadline_us) {
			role_tick(s);
			return;
		}
		role_set(s, CAT_ROLE_ACTIVE, "it was active here and no peer reports it active");
		svc_begin(s);
		return;
	}
	switch (s->demote) {
	case DEMOTE_CKPT:
		if (s->state == SVC_RUNNING && s->n_ckpt + s->n_failed == s->demote_ckpts) {
			role_tick(s);
			return;
		}
		s->demote_gen = cat_gen_latest_complete(s->d->cat, s->cat_id, &g) ? 0 : g.id;
		s->demote = DEMOTE_ACKS;
		s->role_deadline_us = now + DEMOTE_ACK_WAIT_US;
		__attribute__((fallthrough));
	case DEMOTE_ACKS:
		if (s->demote_gen && !peers_acked(s, s->demote_gen) && now < s->role_deadline_us) {
			role_tick(s);
			return;
		}
		if (s->demote_gen && !peers_acked(s, s->demote_gen))
			svc_event(s, LOG_WARNING, "role", "demote: generation %lld not acknowledged "
				  "by every peer within %d s: stopping anyway",
				  (long long)s->demote_gen, DEMOTE_ACK_WAIT_US / 1000000);
		s->demote = DEMOTE_STOP;
		svc_stop_standby(s);
		break;
	default:
		break;
	}
}
HACD_LOOP_CB(role_timer_cb, role_timer, "role timer")

bool hacd_role_init(struct svc *s)
{
	enum cat_role r = CAT_ROLE_NONE;

	s->role_timer = evtimer_new(s->d->base, role_timer_cb, s);
	if (cat_role_get(s->d->cat, s->cat_id, &r))
		hacd_log(LOG_ERR, "service %s: catalog: role: %s", s->name, cat_errmsg(s->d->cat));
	if (!s->d->conf->n_peers) {
		s->role = CAT_ROLE_ACTIVE;
		if (r != CAT_ROLE_ACTIVE && cat_role_set(s->d->cat, s->cat_id, CAT_ROLE_ACTIVE))
			hacd_log(LOG_ERR, "service %s: catalog: role: %s", s->name,
				 cat_errmsg(s->d->cat));
		return false;
	}
	s->state = SVC_STOPPED;
	if (r == CAT_ROLE_ACTIVE && s->role_timer) {
		s->role = CAT_ROLE_ACTIVE;
		s->role_wait = true;
		s->role_deadline_us = hacd_now_us() + ROLE_WAIT_US;
		hacd_log(LOG_NOTICE, "service %s: was active here: asking the peers first",
			 s->name);
		role_tick(s);
		return true;
	}
	s->role = CAT_ROLE_STANDBY;
	if (cat_role_set(s->d->cat, s->cat_id, CAT_ROLE_STANDBY))
		hacd_log(LOG_ERR, "service %s: catalog: role: %s", s->name, cat_errmsg(s->d->cat));
	svc_event(s, LOG_NOTICE, "role", "standby: receiving its generations until hactl "
		  "promote says this node runs it");
	return true;
}

void hacd_role_free(struct svc *s)
{
	if (s->role_timer)
		event_free(s->role_timer);
	s->role_timer = NULL;
	demote_answer(s, -ESRCH, "the service is no longer guarded");
}

int hacd_role_promote(struct svc *s, bool force, int fd, char *err, size_t errlen)
{
	int ret;

	if (s->role == CAT_ROLE_ACTIVE && !s->role_wait)
		return 1;	/* already: nothing to do */
	if (s->demote != DEMOTE_NONE || s->promoting) {
		snprintf(err, errlen, "service %s is changing role: try again", s->name);
		return -EAGAIN;
	}
	ret = hacd_replica_promote_check(s->d, s->name, force, err, errlen);
	if (ret == -ENOENT && force && s->launched) {
		/* The first start of a new cluster: nothing to restore, launch it. */
		evtimer_del(s->role_timer);
		role_set(s, CAT_ROLE_ACTIVE, "promoted (forced) without a generation: "
			 "launching it");
		svc_begin(s);
		return 1;
	}
	if (ret)
		return ret;
	evtimer_del(s->role_timer);
	s->role_wait = false;
	s->promoting = true;
	ret = svc_request_rollback(s, 0, fd, err, errlen);
	if (ret)
		s->promoting = false;
	return ret;
}

void hacd_role_restored(struct svc *s, bool ok)
{
	if (!s->promoting)
		return;
	s->promoting = false;
	if (ok) {
		role_set(s, CAT_ROLE_ACTIVE, "promoted: restored here and guarded");
		return;
	}
	/* docs/cluster.md: a failed promotion leaves the service stopped, standby. */
	s->state = SVC_STOPPED;
	s->role = CAT_ROLE_STANDBY;
}

int hacd_role_demote(struct svc *s, int fd, char *err, size_t errlen)
{
	if (s->role == CAT_ROLE_STANDBY && !s->promoting)
		return 1;
	if (s->role_wait) {
		evtimer_del(s->role_timer);
		become_standby(s, "demoted before it ran here");
		return 1;
	}
	if (s->demote != DEMOTE_NONE || s->promoting || s->state == SVC_STARTING ||
	    s->state == SVC_RESTORING || s->state == SVC_STOPPING) {
		snprintf(err, errlen, "service %s is %s: try again", s->name,
			 s->demote != DEMOTE_NONE || s->promoting ? "changing role" :
			 svc_state_name(s->state));
		return -EAGAIN;
	}
	if (s->state != SVC_RUNNING) {
		become_standby(s, "demoted (it was not running)");
		return 1;
	}
	svc_event(s, LOG_NOTICE, "role", "demote: a last checkpoint, then stopping it here");
	s->demote = DEMOTE_CKPT;
	s->demote_fd = fd;
	s->demote_ckpts = s->n_ckpt + s->n_failed;
	s->demote_gen = 0;
	s->want_ckpt = true;
	if (!s->w_op)
		svc_ckpt_start(s);
	role_tick(s);
	return 0;
}

void hacd_role_stopped(struct svc *s)
{
	char why[128];

	if (s->demote_gen)
		snprintf(why, sizeof(why), "demoted after generation %lld",
			 (long long)s->demote_gen);
	else
		snprintf(why, sizeof(why), "demoted");
	become_standby(s, why);
}

void hacd_role_peer_active(struct svc *s, const char *peer, bool change)
{
	char why[256];

	if (s->role_wait) {
		role_tick(s);	/* decided at the next tick */
		return;
	}
	if (s->role != CAT_ROLE_ACTIVE || s->promoting || s->demote != DEMOTE_NONE)
		return;
	if (!change) {
		/* Both active from the first word: a split brain hacd cannot settle. */
		svc_event(s, LOG_ERR, "role", "peer %s reports the service active too: two "
			  "active nodes; fencing one is the cluster manager's job", peer);
		return;
	}
	/* It was promoted while we are connected (--force: the caller vouched that we are
	 * fenced, and we are not): step down rather than run it twice. */
	snprintf(why, sizeof(why), "peer %s was promoted: stepping down", peer);
	svc_event(s, LOG_WARNING, "role", "%s", why);
	if (s->state == SVC_RUNNING || s->state == SVC_STOPPING) {
		s->demote = DEMOTE_STOP;
		svc_stop_standby(s);
		return;
	}
	become_standby(s, why);
}
