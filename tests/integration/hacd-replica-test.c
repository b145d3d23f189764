/*
 * hacd-replica-test: drives the replica library from a hacd.conf until hacd's own
 * scheduler does (issue 7). Each node gets its config (node, state_dir, listen, tls,
 * peers, services); the catalog is <state_dir>/catalog.db and generations live in
 * <state_dir>/services/<service>/gen-<id>, the layout rep_gen_path() names and hacd uses.
 *
 *   hacd-replica-test -f CONF add SERVICE DIR    DIR (e.g. from hactl dump) becomes the
 *                                                 next complete generation; prints its id
 *   hacd-replica-test -f CONF add-store SERVICE N generation N of the service's page store
 *                                                 (<state_dir>/services/SERVICE/store, e.g.
 *                                                 from hactl dump --track) becomes the next
 *                                                 complete generation; prints its id
 *   hacd-replica-test -f CONF events SERVICE     prints "KIND MESSAGE" of its events
 *   hacd-replica-test -f CONF serve              the standby: receive until SIGTERM
 *                                                 (REP_TEST_HOLD_FILES, REP_TEST_HOLD_SYNC:
 *                                                 the test hooks of rep_server_opts)
 *   hacd-replica-test -f CONF push PEER [--once] [--fail-fast] [--corrupt-at N]
 *                                                 ship every complete generation to PEER;
 *                                                 --once: exit when all are acknowledged
 *   hacd-replica-test -f CONF newest SERVICE     prints "ID DIR ORIGIN ORIGIN_GEN" of the
 *                                                 newest consistent generation
 *   hacd-replica-test -f CONF count SERVICE      complete and pending generations
 *   hacd-replica-test -f CONF role SERVICE [ROLE] print, or record, its role here (a
 *                                                 node that was active before hacd ran)
 *
 * Exit: 0 ok, 1 failure, 64 usage, 78 bad config.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/replica.h"

struct drv {
	struct conf *conf;
	struct cat *cat;
	struct event_base *base;
	char store[PATH_MAX];
	bool once, fail_fast;
	int failed;
	size_t pending;
	struct rep_sender *snd;
	struct rep_server *srv;
};

static void log_cb(int prio, const char *msg, void *opaque)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(stderr, "<%d>%ld.%03ld %s\n", prio, (long)ts.tv_sec, ts.tv_nsec / 1000000, msg);
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_cat(struct drv *d)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/catalog.db", d->conf->state_dir);
	snprintf(d->store, sizeof(d->store), "%s/services", d->conf->state_dir);
	if (cat_open(path, &d->cat)) {
		fprintf(stderr, "catalog %s: %s\n", path, cat_errmsg(NULL));
		return -1;
	}
	return 0;
}

static int cmd_add(struct drv *d, const char *service, const char *dir)
{
	struct cat_gen_stats st = { 0 };
	struct cat_gen prev;
	char dst[PATH_MAX + 256], svc[PATH_MAX + 256];
	int64_t sid, gen, parent = 0;

	if (cat_service_ensure(d->cat, service, &sid))
		goto cat_err;
	if (!cat_gen_latest_complete(d->cat, sid, &prev))
		parent = prev.id;
	if (cat_gen_begin(d->cat, sid, parent, &gen))
		goto cat_err;
	snprintf(svc, sizeof(svc), "%s/%s", d->store, service);
	mkdir(d->store, 0700);
	mkdir(svc, 0700);
	rep_gen_path(dst, sizeof(dst), d->store, service, gen);
	if (rename(dir, dst)) {
		fprintf(stderr, "rename %s %s: %s\n", dir, dst, strerror(errno));
		cat_gen_fail(d->cat, gen);
		return 1;
	}
	if (cat_gen_commit(d->cat, gen, &st))
		goto cat_err;
	printf("%lld\n", (long long)gen);
	return 0;
cat_err:
	fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
	return 1;
}

static int cmd_add_store(struct drv *d, const char *service, const char *num)
{
	struct cat_gen_stats st = { 0 };
	struct cat_gen prev;
	int64_t sid, gen, parent = 0;

	st.store_gen = strtoll(num, NULL, 10);
	if (cat_service_ensure(d->cat, service, &sid))
		goto cat_err;
	if (!cat_gen_latest_complete(d->cat, sid, &prev))
		parent = prev.id;
	if (cat_gen_begin(d->cat, sid, parent, &gen) || cat_gen_commit(d->cat, gen, &st))
		goto cat_err;
	printf("%lld\n", (long long)gen);
	return 0;
cat_err:
	fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
	return 1;
}

static int cmd_events(struct drv *d, const char *service)
{
	struct cat_event *ev;
	size_t n;
	int64_t sid;

	if (cat_service_ensure(d->cat, service, &sid) || cat_event_last(d->cat, sid, 100, &ev, &n)) {
		fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
		return 1;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s %s\n", ev[i].kind, ev[i].message);
	free(ev);
	return 0;
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(arg);
}

static void on_consistent(void *opaque, const char *peer, const char *service, int64_t gen,
			  int64_t origin_gen)
{
	struct drv *d = opaque;
	struct rep_standby_status st;

	rep_server_status(d->srv, peer, service, &st);
	printf("consistent %s %lld from %s %lld; status: connected %d held %lld (here %lld) "
	       "active_newest %lld lag_generations %u lag_seconds %.3f\n", service,
	       (long long)gen, peer, (long long)origin_gen, st.connected, (long long)st.held,
	       (long long)st.held_local, (long long)st.active_newest, st.lag_generations,
	       st.lag_seconds);
	fflush(stdout);
}

/* The TLS context of d's config, and its services' names into svcs; 0, or 1 with the
 * reason printed. */
static int tls_and_services(struct drv *d, struct rep_tls **tls, const char **svcs)
{
	char err[512];

	if (rep_tls_new(d->conf->tls_ca, d->conf->tls_cert, d->conf->tls_key, tls, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t i = 0; i < d->conf->n_services; i++)
		svcs[i] = d->conf->services[i].name;
	return 0;
}

static int cmd_serve(struct drv *d)
{
	struct rep_server_opts o = { 0 };
	struct rep_server *srv = NULL;
	struct rep_tls *tls = NULL;
	const char **peers = calloc(d->conf->n_peers + 1, sizeof(char *));
	const char **svcs = calloc(d->conf->n_services + 1, sizeof(char *));
	struct event *sig = NULL;
	int ret = 1;

	if (!d->conf->listen) {
		fprintf(stderr, "%s: no listen address\n", d->conf->path);
		goto out;
	}
	if (cat_recover(d->cat) < 0) {
		fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
		goto out;
	}
	if (tls_and_services(d, &tls, svcs))
		goto out;
	for (size_t i = 0; i < d->conf->n_peers; i++)
		peers[i] = d->conf->peers[i].name;
	o.node = d->conf->node;
	o.host = d->conf->listen_host;
	o.port = d->conf->listen_port;
	o.store = d->store;
	o.peers = peers;
	o.n_peers = d->conf->n_peers;
	o.services = svcs;
	o.n_services = d->conf->n_services;
	o.tls = tls;
	o.cat = d->cat;
	o.log = log_cb;
	o.on_consistent = on_consistent;
	o.opaque = d;
	o.test_hold_files = getenv("REP_TEST_HOLD_FILES");
	o.test_hold_sync = getenv("REP_TEST_HOLD_SYNC");
	if (rep_server_new(d->base, &o, &srv))
		goto out;
	d->srv = srv;
	sig = evsignal_new(d->base, SIGTERM, on_signal, d->base);
	evsignal_add(sig, NULL);
	printf("listening on port %u\n", rep_server_port(srv));
	fflush(stdout);
	event_base_dispatch(d->base);
	ret = 0;
out:
	if (sig)
		event_free(sig);
	rep_server_free(srv);
	rep_tls_free(tls);
	free(peers);
	free(svcs);
	return ret;
}

static void on_ack(void *opaque, const char *peer, const char *service, int64_t gen,
		   int status)
{
	struct drv *d = opaque;

	printf("ack %s %lld %s\n", service, (long long)gen, status ? strerror(-status) : "ok");
	fflush(stdout);
	if (status == -EBADMSG) {
		d->failed++;
		if (d->fail_fast)
			event_base_loopbreak(d->base);
		return;
	}
	if (status && status != -ESTALE)
		d->failed++;
	if (d->pending && !--d->pending && d->once)
		event_base_loopbreak(d->base);
}

static int cmd_push(struct drv *d, const char *peer_name, uint64_t corrupt_at)
{
	const struct conf_peer *peer = conf_peer_find(d->conf, peer_name);
	struct rep_sender_opts o = { 0 };
	struct rep_sender_status st;
	struct rep_tls *tls = NULL;
	const char **svcs = calloc(d->conf->n_services + 1, sizeof(char *));
	struct event *sig = NULL;
	double t0;
	int ret = 1;

	if (!peer) {
		fprintf(stderr, "%s: no peer %s\n", d->conf->path, peer_name);
		goto out;
	}
	if (tls_and_services(d, &tls, svcs))
		goto out;
	o.node = d->conf->node;
	o.peer = peer->name;
	o.host = peer->host;
	o.port = peer->port;
	o.bandwidth = peer->bandwidth;
	o.store = d->store;
	o.services = svcs;
	o.n_services = d->conf->n_services;
	o.tls = tls;
	o.cat = d->cat;
	o.log = log_cb;
	o.on_ack = on_ack;
	o.opaque = d;
	o.test_corrupt_at = corrupt_at;
	if (rep_sender_new(d->base, &o, &d->snd))
		goto out;
	for (size_t i = 0; i < d->conf->n_services; i++) {
		struct cat_gen *g;
		size_t n;
		int64_t sid;

		if (cat_service_ensure(d->cat, svcs[i], &sid) ||
		    cat_gen_list(d->cat, sid, CAT_GEN_MASK(CAT_GEN_COMPLETE), 0, &g, &n)) {
			fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
			goto out;
		}
		for (size_t j = n; j-- > 0;)	/* oldest first */
			if (!rep_sender_push(d->snd, svcs[i], g[j].id))
				d->pending++;
		free(g);
	}
	sig = evsignal_new(d->base, SIGTERM, on_signal, d->base);
	evsignal_add(sig, NULL);
	t0 = mono();
	if (d->pending || !d->once)
		event_base_dispatch(d->base);
	rep_sender_status(d->snd, &st);
	printf("sent %llu bytes in %.3f s (%.1f MiB/s), %zu left queued, link %s\n",
	       (unsigned long long)st.bytes_sent, mono() - t0,
	       st.bytes_sent / 1048576.0 / (mono() - t0), st.queued, rep_link_name(st.link));
	ret = d->failed || st.queued ? 1 : 0;
out:
	if (sig)
		event_free(sig);
	rep_sender_free(d->snd);
	rep_tls_free(tls);
	free(svcs);
	return ret;
}

static int cmd_query(struct drv *d, const char *what, const char *service)
{
	struct cat_gen *g;
	size_t n, complete = 0, pending = 0;
	int64_t sid;
	char dir[PATH_MAX + 512];

	if (cat_service_ensure(d->cat, service, &sid) ||
	    cat_gen_list(d->cat, sid, 0, 0, &g, &n)) {
		fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		complete += g[i].state == CAT_GEN_COMPLETE;
		pending += g[i].state == CAT_GEN_PENDING;
	}
	if (!strcmp(what, "count")) {
		printf("complete %zu pending %zu\n", complete, pending);
	} else {
		size_t i = 0;

		while (i < n && g[i].state != CAT_GEN_COMPLETE)
			i++;
		if (i == n) {
			free(g);
			return 1;
		}
		rep_gen_path(dir, sizeof(dir), d->store, service, g[i].id);
		if (g[i].stats.store_gen)
			snprintf(dir, sizeof(dir), "%.3000s/%s/store/gen-%08lld", d->store, service,
				 (long long)g[i].stats.store_gen);
		printf("%lld %s %s %lld\n", (long long)g[i].id, dir,
		       g[i].origin[0] ? g[i].origin : "-", (long long)g[i].origin_gen);
	}
	free(g);
	return 0;
}

static int cmd_role(struct drv *d, const char *service, const char *role)
{
	enum cat_role r;
	int64_t sid;

	if (cat_service_ensure(d->cat, service, &sid) || cat_role_get(d->cat, sid, &r))
		goto cat_err;
	if (!role) {
		printf("%s\n", cat_role_name(r));
		return 0;
	}
	if (strcmp(role, "active") && strcmp(role, "standby"))
		return 64;
	if (cat_role_set(d->cat, sid, !strcmp(role, "active") ? CAT_ROLE_ACTIVE :
			 CAT_ROLE_STANDBY))
		goto cat_err;
	return 0;
cat_err:
	fprintf(stderr, "catalog: %s\n", cat_errmsg(d->cat));
	return 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hacd-replica-test -f CONF add SERVICE DIR | add-store SERVICE N | "
		"events SERVICE | serve | push PEER "
		"[--once] [--fail-fast] [--corrupt-at N] | newest SERVICE | count SERVICE | "
		"role SERVICE [active|standby]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "fail-fast", no_argument, NULL, 'F' },
		{ "corrupt-at", required_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	struct drv d = { 0 };
	const char *conf_path = NULL, *cmd;
	uint64_t corrupt_at = 0;
	char err[1024];
	int c, ret = 64;

	while ((c = getopt_long(argc, argv, "f:", opts, NULL)) != -1) {
		switch (c) {
		case 'f': conf_path = optarg; break;
		case 'o': d.once = true; break;
		case 'F': d.fail_fast = true; break;
		case 'c': corrupt_at = strtoull(optarg, NULL, 0); break;
		default: usage(stderr); return 64;
		}
	}
	if (!conf_path || optind >= argc) {
		usage(stderr);
		return 64;
	}
	cmd = argv[optind++];
	signal(SIGPIPE, SIG_IGN);
	if (conf_load(conf_path, CONF_NO_HOST_CHECKS, &d.conf, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 78;
	}
	d.base = event_base_new();
	if (!d.base || open_cat(&d)) {
		ret = 1;
		goto out;
	}
	if (!strcmp(cmd, "add") && optind + 2 == argc)
		ret = cmd_add(&d, argv[optind], argv[optind + 1]);
	else if (!strcmp(cmd, "add-store") && optind + 2 == argc)
		ret = cmd_add_store(&d, argv[optind], argv[optind + 1]);
	else if (!strcmp(cmd, "events") && optind + 1 == argc)
		ret = cmd_events(&d, argv[optind]);
	else if (!strcmp(cmd, "serve") && optind == argc)
		ret = cmd_serve(&d);
	else if (!strcmp(cmd, "push") && optind + 1 == argc)
		ret = cmd_push(&d, argv[optind], corrupt_at);
	else if ((!strcmp(cmd, "newest") || !strcmp(cmd, "count")) && optind + 1 == argc)
		ret = cmd_query(&d, cmd, argv[optind]);
	else if (!strcmp(cmd, "role") && (optind + 1 == argc || optind + 2 == argc))
		ret = cmd_role(&d, argv[optind], optind + 2 == argc ? argv[optind + 1] : NULL);
	else
		usage(stderr);
out:
	cat_close(d.cat);
	if (d.base)
		event_base_free(d.base);
	conf_free(d.conf);
	return ret;
}
