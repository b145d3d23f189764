/*
 * hacd-ctl.c: the control socket hactl talks to.
 *
 * DESIGN
 * An AF_UNIX SOCK_SEQPACKET listener at the config's control_socket. Sequenced packets
 * keep message boundaries, so one packet is one request and one reply; a client that
 * sends garbage gets an error reply and the next packet is read as a fresh request.
 *
 * Invariants:
 *  1. Every connection is classified once, at accept, from SO_PEERCRED (and
 *     SO_PEERGROUPS for the status group): root may do anything, a status_group
 *     member may only read the status, anyone else gets a log line naming uid and
 *     pid, one error reply to its first request, and is closed.
 *  2. The socket is created 0600 (0660 and group status_group when one is set, so its
 *     members can connect at all) with its mode set by the umask at bind() and its
 *     group set before listen(): there is no window in which anyone else connects.
 *  3. A request never blocks the loop: replies are sent MSG_DONTWAIT, and a client
 *     that does not read its replies is dropped.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ha/agent.h"
#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/replica.h"
#include "hacd.h"

/* Beyond this, new connections are refused: the fds are ours to keep. */
#define CTL_MAX_CLIENTS		64

enum ctl_perm {
	CTL_PERM_NONE,
	CTL_PERM_STATUS,
	CTL_PERM_ALL,
};

struct ctl_client {
	struct hacd_ctl *ctl;
	struct event *ev;
	int fd;
	enum ctl_perm perm;
	struct ucred cred;
	TAILQ_ENTRY(ctl_client) link;
};

struct hacd_ctl {
	struct hacd *d;
	int fd;
	struct event *ev;
	char *path;
	unsigned int n_clients;
	TAILQ_HEAD(, ctl_client) clients;
};

static void client_free(struct ctl_client *c)
{
	if (!c)
		return;
	if (c->ev)
		event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	TAILQ_REMOVE(&c->ctl->clients, c, link);
	c->ctl->n_clients--;
	free(c);
}

/* rep to fd, with our API version, this status and (when it failed) why. */
static int reply_send(int fd, Hactl__CtlReply *rep, int status, const char *error)
{
	uint8_t buf[CTL_REPLY_MAX];
	size_t len;

	rep->has_api_version = rep->has_status = 1;
	rep->api_version = CTL_API_VERSION;
	rep->status = status;
	rep->error = (char *)error;
	len = hactl__ctl_reply__get_packed_size(rep);
	if (len > sizeof(buf))
		return -EMSGSIZE;
	hactl__ctl_reply__pack(rep, buf);
	if (send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static int reply_error(int fd, int status, const char *msg)
{
	Hactl__CtlReply rep = HACTL__CTL_REPLY__INIT;

	return reply_send(fd, &rep, status, msg);
}

/*
 * A repeated message field of a reply: n zeroed messages of sz bytes behind the n
 * pointers to them that protobuf-c wants, in one block that one free() releases.
 * NULL when n is 0 or memory is short.
 */
static void *msg_vec(size_t n, size_t sz)
{
	void **v = n ? calloc(n, sizeof(*v) + sz) : NULL;

	for (size_t i = 0; v && i < n; i++)
		v[i] = (char *)(v + n) + i * sz;
	return v;
}

static const char *target_name(enum conf_target t)
{
	switch (t) {
	case CONF_TARGET_COMMAND:
		return "command";
	case CONF_TARGET_PIDFILE:
		return "pidfile";
	case CONF_TARGET_CGROUP:
		return "cgroup";
	}
	return "?";
}

static const char *target_what(const struct conf_service *s)
{
	switch (s->target) {
	case CONF_TARGET_COMMAND:
		return s->command;
	case CONF_TARGET_PIDFILE:
		return s->pidfile;
	case CONF_TARGET_CGROUP:
		return s->cgroup;
	}
	return "";
}

/* What the service's state machine and the catalog say about it. */
static void status_svc(struct hacd *d, const struct svc *sv, Hactl__CtlService *out)
{
	struct cat_gen g;
	uint64_t now = hacd_now_us(), p50, p99;

	if (!sv)
		return;
	out->state = (char *)svc_state_name(sv->state);
	out->has_pid = out->has_checkpoints = out->has_failed = out->has_missed = 1;
	out->has_worker_restarts = out->has_late_p50_us = out->has_late_p99_us = 1;
	out->pid = sv->pid > 0 ? (uint32_t)sv->pid : 0;
	out->checkpoints = sv->n_ckpt;
	out->failed = sv->n_failed;
	out->missed = sv->n_missed;
	out->worker_restarts = sv->w_restarts;
	svc_lateness(sv, &p50, &p99);
	out->late_p50_us = p50;
	out->late_p99_us = p99;
	if (sv->last_error[0])
		out->error = (char *)sv->last_error;
	if (sv->state == SVC_RUNNING) {
		out->has_next_checkpoint_us = 1;
		out->next_checkpoint_us = sv->next_us > now ? sv->next_us - now : 0;
	}
	if (!cat_gen_latest_complete(d->cat, sv->cat_id, &g)) {
		struct timespec ts;
		int64_t wall;

		clock_gettime(CLOCK_REALTIME, &ts);
		wall = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
		out->has_last_generation = out->has_last_age_us = 1;
		out->has_last_pause_us = out->has_last_bytes = 1;
		out->last_generation = g.id;
		out->last_age_us = wall > g.committed_us ? (uint64_t)(wall - g.committed_us) : 0;
		out->last_pause_us = (uint64_t)g.stats.pause_us;
		out->last_bytes = (uint64_t)g.stats.bytes_total;
		out->has_last_bytes_new = 1;
		out->last_bytes_new = (uint64_t)g.stats.bytes_new;
	}
	if (sv->cs)
		out->checkpoint = sv->cs->checkpoint == CONF_CHECKPOINT_INCREMENTAL ? "incremental"
										: "full";
}

static void gen_to_msg(const struct cat_gen *g, Hactl__CtlGeneration *m)
{
	hactl__ctl_generation__init(m);
	m->has_id = m->has_started_us = 1;
	m->id = g->id;
	m->state = (char *)cat_gen_state_name(g->state);
	m->started_us = g->started_us;
	if (g->state == CAT_GEN_COMPLETE || g->state == CAT_GEN_PRUNED) {
		m->has_committed_us = m->has_pause_us = m->has_bytes_new = 1;
		m->has_bytes_total = m->has_pages = 1;
		m->committed_us = g->committed_us;
		m->pause_us = g->stats.pause_us;
		m->bytes_new = g->stats.bytes_new;
		m->bytes_total = g->stats.bytes_total;
		m->pages = g->stats.pages;
		m->has_store_gen = 1;
		m->store_gen = g->stats.store_gen;
	}
}

/* Generations of a service, newest first; what fits in a reply. */
#define CTL_LIST_MAX	1000
#define CTL_LOG_DEFAULT	50
#define CTL_LOG_MAX	200

static void event_to_msg(const struct cat_event *e, Hactl__CtlEvent *m)
{
	hactl__ctl_event__init(m);
	m->has_ts_us = m->has_level = 1;
	m->ts_us = e->ts_us;
	m->level = e->level;
	m->kind = (char *)e->kind;
	m->message = (char *)e->message;
}

static int reply_list(struct hacd *d, int fd, const struct svc *sv, const Hactl__CtlRequest *req)
{
	Hactl__CtlReply rep = HACTL__CTL_REPLY__INIT;
	Hactl__CtlGeneration **m;
	struct cat_gen *g = NULL;
	size_t n = 0, lim = req->limit && req->limit < CTL_LIST_MAX ? req->limit : CTL_LIST_MAX;
	int ret;

	ret = cat_gen_list(d->cat, sv->cat_id, 0, lim, &g, &n);
	if (ret)
		return reply_error(fd, ret, cat_errmsg(d->cat));
	m = msg_vec(n, sizeof(**m));
	for (size_t i = 0; m && i < n; i++)
		gen_to_msg(&g[i], m[i]);
	rep.n_generations = n;
	rep.generations = m;
	ret = n && !m ? -ENOMEM : reply_send(fd, &rep, 0, NULL);
	free(g);
	free(m);
	return ret;
}

static int reply_log(struct hacd *d, int fd, const struct svc *sv, const Hactl__CtlRequest *req)
{
	Hactl__CtlReply rep = HACTL__CTL_REPLY__INIT;
	Hactl__CtlEvent **m;
	struct cat_event *e = NULL;
	size_t n = 0, lim = req->limit ? req->limit : CTL_LOG_DEFAULT;
	int ret;

	if (lim > CTL_LOG_MAX)
		lim = CTL_LOG_MAX;
	ret = cat_event_last(d->cat, sv->cat_id, lim, &e, &n);
	if (ret)
		return reply_error(fd, ret, cat_errmsg(d->cat));
	m = msg_vec(n, sizeof(**m));
	for (size_t i = 0; m && i < n; i++)
		event_to_msg(&e[i], m[i]);
	rep.n_events = n;
	rep.events = m;
	ret = n && !m ? -ENOMEM : reply_send(fd, &rep, 0, NULL);
	free(e);
	free(m);
	return ret;
}

void hacd_ctl_reply_done(int fd, int status, const char *error, struct cat *cat, int64_t gen)
{
	Hactl__CtlReply rep = HACTL__CTL_REPLY__INIT;
	Hactl__CtlGeneration m;
	struct cat_gen g;

	if (!status && cat && gen > 0 && !cat_gen_get(cat, gen, &g)) {
		gen_to_msg(&g, &m);
		rep.generation = &m;
	}
	/* The client may be gone: nothing to do about it. */
	reply_send(fd, &rep, status, status ? (error && *error ? error : strerror(-status)) : NULL);
}

/* Checkpoint and rollback answer later, on a dup of the client's socket. */
static int request_wait(struct hacd *d, struct ctl_client *c, struct svc *sv,
			const Hactl__CtlRequest *req)
{
	char err[256] = "";
	int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0), ret;

	if (fd < 0)
		return reply_error(c->fd, -errno, "out of file descriptors");
	if (req->type == HACTL__CTL_TYPE__CTL_TYPE_CHECKPOINT) {
		ret = svc_request_checkpoint(sv, fd);
		if (ret == -EAGAIN)
			snprintf(err, sizeof(err), "service %s is %s, not running", sv->name,
				 svc_state_name(sv->state));
	} else if (req->type == HACTL__CTL_TYPE__CTL_TYPE_PROMOTE ||
		   req->type == HACTL__CTL_TYPE__CTL_TYPE_DEMOTE) {
		ret = req->type == HACTL__CTL_TYPE__CTL_TYPE_PROMOTE ?
		      hacd_role_promote(sv, req->force, fd, err, sizeof(err)) :
		      hacd_role_demote(sv, fd, err, sizeof(err));
		if (ret == 1) {
			/* Nothing to wait for: done (docs/cluster.md: it succeeds). */
			close(fd);
			return reply_error(c->fd, 0, NULL);
		}
	} else if (sv->role != CAT_ROLE_ACTIVE) {
		snprintf(err, sizeof(err), "service %s is standby here: promote it first",
			 sv->name);
		ret = -EPERM;
	} else {
		ret = svc_request_rollback(sv, req->generation, fd, err, sizeof(err));
	}
	if (ret) {
		close(fd);
		return reply_error(c->fd, ret, err[0] ? err : strerror(-ret));
	}
	return 0;
}

/* The peer's copy of an active service, from our catalog's per-peer states. */
static const char *peer_disk(struct hacd *d, const struct svc *sv, const char *peer)
{
	enum cat_peer_state ps;
	struct cat_gen *g;
	const char *disk = "Inconsistent";
	size_t n;

	if (cat_gen_list(d->cat, sv->cat_id, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n))
		return "DUnknown";
	for (size_t i = 0; i < n; i++)
		if (!strcmp(g[i].origin, peer) ||
		    (!cat_gen_peer_get(d->cat, g[i].id, peer, &ps) && ps == CAT_PEER_CONSISTENT)) {
			disk = i ? "Outdated" : "UpToDate";
			break;
		}
	free(g);
	return disk;
}

/* Role, disk and peers of one service; ps[] has room for every peer. */
static void status_roles(struct hacd *d, const struct svc *sv, Hactl__CtlService *out,
			 Hactl__CtlServicePeer *ps, Hactl__CtlServicePeer **pps)
{
	bool active_peer = false;

	if (!sv)
		return;
	out->role = (char *)(sv->role_wait ? "active (asking peers)" : hacd_role_name(sv));
	out->replication = (char *)(sv->cs && sv->cs->replication == CONF_REPLICATION_SYNC ?
				    "sync" : "async");
	for (size_t i = 0; d->replica && i < d->conf->n_peers; i++) {
		const char *name = d->conf->peers[i].name;
		int role = hacd_replica_peer_role(d, name, sv->name);

		hactl__ctl_service_peer__init(&ps[i]);
		ps[i].name = (char *)name;
		ps[i].connection = (char *)(hacd_replica_reachable(d, name) ? "Connected" :
					    "Connecting");
		ps[i].role = (char *)rep_role_name(role);
		active_peer |= role == REP_ROLE_ACTIVE;
		ps[i].peer_disk = (char *)(sv->role == CAT_ROLE_ACTIVE ?
					   peer_disk(d, sv, name) :
					   role == REP_ROLE_ACTIVE ? "UpToDate" : "DUnknown");
		pps[i] = &ps[i];
		out->n_peers++;
	}
	out->peers = pps;
	if (sv->role == CAT_ROLE_ACTIVE && sv->cs &&
	    sv->cs->replication == CONF_REPLICATION_SYNC && d->conf->n_peers) {
		static char why[256];
		int64_t safe = hacd_replica_safe((struct svc *)sv);
		size_t down = 0;

		for (size_t i = 0; i < d->conf->n_peers; i++)
			down += !hacd_replica_reachable(d, d->conf->peers[i].name);
		out->has_safe_generation = 1;
		out->safe_generation = safe;
		/* On a sync service only what the standby acknowledged is consistent. */
		out->newest_consistent_generation = safe;
		if (down)
			snprintf(why, sizeof(why), "%zu peer(s) not connected: generations after "
				 "%lld are kept until acknowledged", down, (long long)safe);
		else if (out->last_generation > safe)
			snprintf(why, sizeof(why), "waiting for acknowledgements after %lld",
				 (long long)safe);
		else
			snprintf(why, sizeof(why), "in sync");
		out->sync_state = why;
	}
	if (sv->role == CAT_ROLE_ACTIVE)
		out->disk = (char *)"UpToDate";
	else if (!out->newest_consistent_generation)
		out->disk = (char *)"Inconsistent";
	else if (out->lag_generations)
		out->disk = (char *)"Outdated";
	else
		out->disk = (char *)(active_peer ? "UpToDate" : "Consistent");
}

static int reply_status(struct hacd *d, int fd, const Hactl__CtlRequest *req)
{
	Hactl__CtlServicePeer *sp = NULL, **psp = NULL;
	const struct conf *conf = d->conf;
	Hactl__CtlReply rep = HACTL__CTL_REPLY__INIT;
	Hactl__CtlStatus st = HACTL__CTL_STATUS__INIT;
	Hactl__CtlService *svc = NULL, **psvc = NULL;
	Hactl__CtlPeer *peers = NULL, **ppeers = NULL;
	size_t n = 0;
	int ret = -ENOMEM;

	if (conf->n_services) {
		svc = calloc(conf->n_services, sizeof(*svc));
		psvc = calloc(conf->n_services, sizeof(*psvc));
		sp = calloc(conf->n_services * conf->n_peers + 1, sizeof(*sp));
		psp = calloc(conf->n_services * conf->n_peers + 1, sizeof(*psp));
		if (!svc || !psvc || !sp || !psp)
			goto out;
	}
	for (size_t i = 0; i < conf->n_services; i++) {
		const struct conf_service *s = &conf->services[i];

		if (req->service && strcmp(req->service, s->name))
			continue;
		hactl__ctl_service__init(&svc[n]);
		svc[n].name = (char *)s->name;
		svc[n].target = (char *)target_name(s->target);
		svc[n].what = (char *)target_what(s);
		svc[n].has_interval_us = svc[n].has_keep = 1;
		svc[n].interval_us = s->interval_us;
		svc[n].keep = s->keep;
		status_svc(d, hacd_svc_find(d, s->name), &svc[n]);
		if (d->replica) {
			svc[n].has_newest_consistent_generation = svc[n].has_lag_generations = 1;
			svc[n].has_lag_seconds = 1;
			hacd_replica_service_lag(d, s->name, &svc[n].newest_consistent_generation,
						 &svc[n].lag_generations, &svc[n].lag_seconds);
		}
		status_roles(d, hacd_svc_find(d, s->name), &svc[n], &sp[n * conf->n_peers],
			     &psp[n * conf->n_peers]);
		psvc[n] = &svc[n];
		n++;
	}
	if (req->service && !n) {
		ret = reply_error(fd, -ENOENT, "no such service");
		goto out;
	}
	st.node = (char *)conf->node;
	st.config_path = (char *)conf->path;
	st.has_uptime_us = st.has_pid = 1;
	st.uptime_us = hacd_now_us() - d->started_us;
	st.pid = (uint32_t)getpid();
	st.n_services = n;
	st.services = psvc;
	if (d->replica && conf->n_peers) {
		peers = calloc(conf->n_peers, sizeof(*peers));
		ppeers = calloc(conf->n_peers, sizeof(*ppeers));
		if (!peers || !ppeers)
			goto out;
		for (size_t i = 0; i < conf->n_peers; i++) {
			Hactl__CtlPeer *p = &peers[i];
			struct rep_sender_status rs;

			hactl__ctl_peer__init(p);
			p->name = (char *)conf->peers[i].name;
			p->address = (char *)conf->peers[i].address;
			if (!hacd_replica_sender_status(d, p->name, &rs)) {
				p->connection = (char *)rep_link_name(rs.link);
				p->has_queued = p->has_acked_generation = p->has_bytes_sent = 1;
				p->queued = rs.queued;
				p->acked_generation = rs.acked_gen;
				p->bytes_sent = rs.bytes_sent;
			}
			p->has_standby_of = 1;
			p->standby_of = hacd_replica_standby_of(d, p->name);
			ppeers[i] = p;
		}
		st.n_peers = conf->n_peers;
		st.peers = ppeers;
	}
	rep.status_info = &st;
	ret = reply_send(fd, &rep, 0, NULL);
out:
	free(svc);
	free(psvc);
	free(sp);
	free(psp);
	free(peers);
	free(ppeers);
	return ret;
}

static int client_request(struct ctl_client *c, const void *buf, size_t len)
{
	struct hacd *d = c->ctl->d;
	Hactl__CtlRequest *req;
	struct svc *sv = NULL;
	char err[256];
	int ret;

	ret = ctl_request_decode(buf, len, &req, err, sizeof(err));
	if (ret) {
		hacd_log(LOG_WARNING, "control: pid %d uid %u: %s", (int)c->cred.pid,
			 (unsigned)c->cred.uid, err);
		return reply_error(c->fd, ret, err);
	}
	hacd_held_detail("%s from pid %d", ctl_type_name(req->type), (int)c->cred.pid);
	if (req->type != HACTL__CTL_TYPE__CTL_TYPE_STATUS &&
	    req->type != HACTL__CTL_TYPE__CTL_TYPE_LIST &&
	    req->type != HACTL__CTL_TYPE__CTL_TYPE_LOG && c->perm != CTL_PERM_ALL) {
		hacd_log(LOG_WARNING, "control: pid %d uid %u: %s refused: root only",
			 (int)c->cred.pid, (unsigned)c->cred.uid, ctl_type_name(req->type));
		ret = reply_error(c->fd, -EPERM, "permission denied: root only");
		goto out;
	}
	if (req->type != HACTL__CTL_TYPE__CTL_TYPE_STATUS &&
	    req->type != HACTL__CTL_TYPE__CTL_TYPE_RELOAD &&
	    !(sv = hacd_svc_find(d, req->service))) {
		ret = reply_error(c->fd, -ENOENT, "no such service");
		goto out;
	}
	switch (req->type) {
	case HACTL__CTL_TYPE__CTL_TYPE_LIST:
		ret = reply_list(d, c->fd, sv, req);
		break;
	case HACTL__CTL_TYPE__CTL_TYPE_LOG:
		ret = reply_log(d, c->fd, sv, req);
		break;
	case HACTL__CTL_TYPE__CTL_TYPE_CHECKPOINT:
	case HACTL__CTL_TYPE__CTL_TYPE_ROLLBACK:
	case HACTL__CTL_TYPE__CTL_TYPE_PROMOTE:
	case HACTL__CTL_TYPE__CTL_TYPE_DEMOTE:
		ret = request_wait(d, c, sv, req);
		break;
	case HACTL__CTL_TYPE__CTL_TYPE_STATUS:
		ret = reply_status(d, c->fd, req);
		break;
	case HACTL__CTL_TYPE__CTL_TYPE_RELOAD:
		ret = hacd_reload(d);
		ret = reply_error(c->fd, ret, ret ? "reload failed: see hacd's log" : NULL);
		break;
	default:
		ret = reply_error(c->fd, -EPROTO, "unknown request type");
	}
out:
	hactl__ctl_request__free_unpacked(req, NULL);
	return ret;
}

static void client_read(evutil_socket_t fd, short what, void *arg)
{
	struct ctl_client *c = arg;
	/* One byte more than a request may be, so an oversized one shows as MSG_TRUNC. */
	uint8_t buf[CTL_REQ_MAX + 1];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;
	int ret;

	n = recvmsg(fd, &mh, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_free(c);
		return;
	}
	if (c->perm == CTL_PERM_NONE) {
		reply_error(fd, -EPERM, "permission denied");
		client_free(c);
		return;
	}
	if (mh.msg_flags & MSG_TRUNC) {
		hacd_log(LOG_WARNING, "control: pid %d uid %u: request over %d bytes",
			 (int)c->cred.pid, (unsigned)c->cred.uid, CTL_REQ_MAX);
		ret = reply_error(fd, -EMSGSIZE, "request too large");
	} else {
		ret = client_request(c, buf, (size_t)n);
	}
	if (ret == -EAGAIN || ret == -EPIPE || ret == -ECONNRESET) {
		hacd_log(LOG_INFO, "control: pid %d: dropped, not reading its replies",
			 (int)c->cred.pid);
		client_free(c);
	}
}
HACD_LOOP_CB(client_cb, client_read, "control request")

/* Is gid the peer's primary group or one of its supplementary groups? */
static bool peer_in_group(int fd, const struct ucred *cred, gid_t gid)
{
	gid_t groups[NGROUPS_MAX];
	socklen_t len = sizeof(groups);

	if (cred->gid == gid)
		return true;
	/* SO_PEERGROUPS (4.13): the groups as they were at connect(), like SO_PEERCRED. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (groups[i] == gid)
			return true;
	return false;
}

static enum ctl_perm peer_perm(struct hacd_ctl *ctl, int fd, const struct ucred *cred)
{
	const char *group = ctl->d->conf->status_group;
	struct group *gr;

	if (cred->uid == 0)
		return CTL_PERM_ALL;
	if (!group)
		return CTL_PERM_NONE;
	/* Looked up per connection: a reload may name another group. */
	gr = getgrnam(group);
	if (gr && peer_in_group(fd, cred, gr->gr_gid))
		return CTL_PERM_STATUS;
	return CTL_PERM_NONE;
}

static void accept_one(evutil_socket_t lfd, short what, void *arg)
{
	struct hacd_ctl *ctl = arg;
	struct ctl_client *c;
	socklen_t len;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			hacd_log(LOG_ERR, "control: accept: %s", strerror(errno));
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->ctl = ctl;
	c->fd = fd;
	TAILQ_INSERT_TAIL(&ctl->clients, c, link);
	ctl->n_clients++;
	len = sizeof(c->cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
		hacd_log(LOG_ERR, "control: SO_PEERCRED: %s", strerror(errno));
		goto drop;
	}
	c->perm = peer_perm(ctl, fd, &c->cred);
	/*
	 * A refused peer is answered when its first request arrives, not here: closing
	 * with its request unread would make its recv() fail with ECONNRESET instead of
	 * showing it our error reply.
	 */
	if (c->perm == CTL_PERM_NONE)
		hacd_log(LOG_WARNING, "control: refused uid %u pid %d: not root%s",
			 (unsigned)c->cred.uid, (int)c->cred.pid,
			 ctl->d->conf->status_group ? " nor in the status group" : "");
	if (ctl->n_clients > CTL_MAX_CLIENTS) {
		hacd_log(LOG_WARNING, "control: refused pid %d: %d clients already",
			 (int)c->cred.pid, CTL_MAX_CLIENTS);
		reply_error(fd, -EBUSY, "too many clients");
		goto drop;
	}
	c->ev = event_new(ctl->d->base, fd, EV_READ | EV_PERSIST, client_cb, c);
	if (!c->ev || event_priority_set(c->ev, HACD_PRIO_CTL) < 0 || event_add(c->ev, NULL) < 0)
		goto drop;
	return;
drop:
	client_free(c);
}
HACD_LOOP_CB(accept_cb, accept_one, "control accept")

/* mkdir -p of the socket's directory, 0755: hactl must reach the socket to connect. */
static int mkdir_parents(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *p;

	snprintf(dir, sizeof(dir), "%s", path);
	p = strrchr(dir, '/');
	if (!p || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			hacd_log(LOG_ERR, "control: mkdir %s: %s", dir, strerror(errno));
			return -errno;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

/*
 * A socket file left by a crashed hacd is removed; one that answers belongs to a
 * running hacd, and two agents guarding the same services must never both run.
 */
static int stale_remove(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
		hacd_log(LOG_ERR, "control: %s: another hacd is running", sa->sun_path);
		ret = -EADDRINUSE;
	} else if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
		ret = -errno;
		hacd_log(LOG_ERR, "control: unlink %s: %s", sa->sun_path, strerror(errno));
	}
	close(fd);
	return ret;
}

static int listen_open(const struct conf *conf, int *out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = conf->control_socket;
	struct group *gr = NULL;
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;	/* conf refuses it already */
	strcpy(sa.sun_path, path);
	if (conf->status_group && !(gr = getgrnam(conf->status_group))) {
		hacd_log(LOG_ERR, "control: status_group %s: no such group", conf->status_group);
		return -ENOENT;
	}
	ret = mkdir_parents(path);
	if (!ret)
		ret = stale_remove(&sa);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* bind() creates the file with ~umask: set the mode there, not after (inv. 2). */
	old = umask(gr ? 0117 : 0177);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0)
		goto err;
	if (gr && chown(path, 0, gr->gr_gid) < 0)
		goto err_unlink;
	if (listen(fd, 16) < 0)
		goto err_unlink;
	*out = fd;
	return 0;
err_unlink:
	ret = -errno;
	unlink(path);
	close(fd);
	hacd_log(LOG_ERR, "control: %s: %s", path, strerror(-ret));
	return ret;
err:
	ret = -errno;
	close(fd);
	hacd_log(LOG_ERR, "control: bind %s: %s", path, strerror(-ret));
	return ret;
}

int hacd_ctl_open(struct hacd *d, struct hacd_ctl **out)
{
	struct hacd_ctl *ctl;
	int ret;

	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->d = d;
	ctl->fd = -1;
	TAILQ_INIT(&ctl->clients);
	ctl->path = strdup(d->conf->control_socket);
	if (!ctl->path) {
		ret = -ENOMEM;
		goto err;
	}
	ret = listen_open(d->conf, &ctl->fd);
	if (ret)
		goto err;
	ctl->ev = event_new(d->base, ctl->fd, EV_READ | EV_PERSIST, accept_cb, ctl);
	if (!ctl->ev || event_priority_set(ctl->ev, HACD_PRIO_CTL) < 0 ||
	    event_add(ctl->ev, NULL) < 0) {
		ret = -ENOMEM;
		goto err;
	}
	hacd_log(LOG_INFO, "control: listening on %s", ctl->path);
	*out = ctl;
	return 0;
err:
	hacd_ctl_close(ctl);
	return ret;
}

void hacd_ctl_close(struct hacd_ctl *ctl)
{
	if (!ctl)
		return;
	while (!TAILQ_EMPTY(&ctl->clients))
		client_free(TAILQ_FIRST(&ctl->clients));
	if (ctl->ev)
		event_free(ctl->ev);
	if (ctl->fd >= 0) {
		close(ctl->fd);
		unlink(ctl->path);
	}
	free(ctl->path);
	free(ctl);
}

const char *hacd_ctl_path(const struct hacd_ctl *ctl)
{
	return ctl->path;
}
