/*
 * hacd: the high-availability checkpoint agent (issue 6).
 *
 * DESIGN
 * One process, one libevent loop on an explicit event_base. The loop only ever does
 * short things: it answers the control socket, handles signals and schedules
 * checkpoints that engine worker processes carry out; it never calls the engine.
 *
 *   hacd -f FILE     run with that config (default /etc/hacd/hacd.conf)
 *   hacd -t [-f F]   check the config and exit: 0, or 78 with file:line on stderr
 *
 * Signals: SIGTERM/SIGINT stop cleanly (launched services are stopped with their
 * stop_timeout, the socket removed, exit 0); SIGHUP reloads: the new config is parsed
 * and validated as a whole, then swapped in, and only services whose section changed
 * are restarted (hacd-svc.c); a bad one is logged with its file:line and the running
 * config stays. SIGCHLD reaps workers (restarted when they die) and orphans. systemd Type=notify is told
 * READY=1, RELOADING=1 and STOPPING=1 with a STATUS line, and WATCHDOG=1 when
 * WatchdogSec= is set (hacd-log.c).
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "hacd.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: hacd [-f FILE] [-t]\n"
		   "  -f FILE  configuration (default %s)\n"
		   "  -t       check the configuration and exit (0 ok, 78 invalid)\n",
		CONF_DEFAULT_PATH);
}

static void status_notify(const struct hacd *d)
{
	hacd_notifyf("READY=1\nSTATUS=node %s, %zu service(s), config %s",
		     d->conf->node, d->conf->n_services, d->conf->path);
}

int hacd_reload(struct hacd *d)
{
	struct conf *conf;
	char err[512];
	int ret;

	/* MONOTONIC_USEC lets systemd match RELOADING=1 to this reload (v253+). */
	hacd_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
		     (unsigned long long)hacd_now_us(), d->conf_path);
	ret = conf_load(d->conf_path, 0, &conf, err, sizeof(err));
	if (ret) {
		hacd_log(LOG_ERR, "reload refused, keeping the running config: %s", err);
		status_notify(d);
		return ret;
	}
	if (strcmp(conf->control_socket, hacd_ctl_path(d->ctl)))
		hacd_log(LOG_WARNING, "control_socket changed to %s: takes effect on restart",
			 conf->control_socket);
	if (!conf->status_group != !d->conf->status_group ||
	    (conf->status_group && strcmp(conf->status_group, d->conf->status_group)))
		hacd_log(LOG_WARNING, "status_group changed: the socket's group changes on "
			 "restart, membership is checked against the new one now");
	if (strcmp(conf->state_dir, d->conf->state_dir))
		hacd_log(LOG_WARNING, "state_dir changed to %s: takes effect on restart",
			 conf->state_dir);
	{
		struct conf *old = d->conf;

		/* Services compare their old section with the new one, then let go of it. */
		d->conf = conf;
		hacd_svcs_reload(d);
		/* Replication borrows the config too (hacd-replica.c). */
		hacd_replica_reload(d);
		conf_free(old);
	}
	hacd_log_set_level(conf->log_level);
	hacd_log(LOG_NOTICE, "reloaded %s: %zu service(s)", conf->path, conf->n_services);
	status_notify(d);
	return 0;
}

int hacd_gen_hook_add(struct hacd *d, hacd_gen_hook_fn fn, void *opaque)
{
	struct hacd_gen_hook *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->fn = fn;
	h->opaque = opaque;
	h->next = d->gen_hooks;
	d->gen_hooks = h;
	return 0;
}

static void signal_got(evutil_socket_t sig, short what, void *arg)
{
	struct hacd *d = arg;
	int st;
	pid_t pid;

	if (sig == SIGCHLD) {
		/* Workers, and services a dead worker left to us (we are their subreaper). */
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
			hacd_svcs_reaped(d, pid, st);
		return;
	}
	if (sig == SIGHUP) {
		hacd_reload(d);
		return;
	}
	hacd_log(LOG_NOTICE, "%s: stopping", strsignal((int)sig));
	hacd_notify("STOPPING=1\nSTATUS=stopping");
	event_base_loopbreak(d->base);
}
HACD_LOOP_CB(signal_cb, signal_got, "signal")

static void watchdog_tick(evutil_socket_t fd, short what, void *arg)
{
	hacd_notify("WATCHDOG=1");
}
HACD_LOOP_CB(watchdog_cb, watchdog_tick, "watchdog")

/*
 * systemd's WatchdogSec= arrives as WATCHDOG_USEC (with WATCHDOG_PID, which must be
 * us: a child could inherit the variables). The ping comes from the loop itself, so
 * a stuck loop is what the watchdog catches. Pinged at half the period.
 */
static int watchdog_start(struct hacd *d, struct event **out)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long us;
	struct timeval tv;
	char *end;

	*out = NULL;
	if (!usec || (pid && strtol(pid, NULL, 10) != getpid()))
		return 0;
	us = strtoull(usec, &end, 10);
	if (*end || us == 0) {
		hacd_log(LOG_WARNING, "WATCHDOG_USEC=%s: not a period, no watchdog", usec);
		return 0;
	}
	us /= 2;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	*out = event_new(d->base, -1, EV_PERSIST, watchdog_cb, d);
	if (!*out || event_add(*out, &tv) < 0)
		return -ENOMEM;
	return 0;
}

static int catalog_open(struct hacd *d)
{
	char path[4096];
	int ret;

	snprintf(path, sizeof(path), "%s/catalog.db", d->conf->state_dir);
	ret = cat_open(path, &d->cat);
	if (ret) {
		hacd_log(LOG_ERR, "catalog %s: %s", path, cat_errmsg(NULL));
		return ret;
	}
	/* Generations a previous hacd left half-done: never restorable, collect them. */
	ret = cat_recover(d->cat);
	if (ret < 0) {
		hacd_log(LOG_ERR, "catalog %s: recovery: %s", path, cat_errmsg(d->cat));
		return ret;
	}
	if (ret > 0)
		hacd_log(LOG_NOTICE, "catalog: %d incomplete generation(s) marked failed", ret);
	return 0;
}

static int run(struct hacd *d)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	struct event *ev[4] = { NULL }, *wd = NULL;
	int ret = -ENOMEM;

	d->base = event_base_new();
	if (!d->base)
		return -ENOMEM;
	if (event_base_priority_init(d->base, HACD_NR_PRIOS) < 0)
		goto out;
	for (size_t i = 0; i < 4; i++) {
		ev[i] = evsignal_new(d->base, sigs[i], signal_cb, d);
		if (!ev[i] || event_add(ev[i], NULL) < 0)
			goto out;
	}
	ret = catalog_open(d);
	if (ret)
		goto out;
	ret = hacd_bg_start(d);
	/* The helper thread checkpoints the WAL: the loop's commits never fsync. */
	if (!ret && cat_checkpoints_elsewhere(d->cat))
		hacd_log(LOG_WARNING, "catalog: %s", cat_errmsg(d->cat));
	if (!ret)
		ret = hacd_ctl_open(d, &d->ctl);
	if (!ret)
		ret = watchdog_start(d, &wd);
	if (!ret)
		ret = hacd_replica_open(d);
	if (!ret)
		ret = hacd_svcs_start(d);
	if (ret)
		goto out;
	hacd_log(LOG_NOTICE, "started: node %s, %zu service(s), config %s",
		 d->conf->node, d->conf->n_services, d->conf->path);
	status_notify(d);
	if (event_base_dispatch(d->base) < 0)
		ret = -EIO;
out:
	hacd_replica_close(d);
	if (wd)
		event_free(wd);
	if (d->services.tqh_first || d->services.tqh_last)
		hacd_svcs_stop(d);
	hacd_bg_stop(d);
	d->sync_job = NULL;
	while (d->gen_hooks) {
		struct hacd_gen_hook *h = d->gen_hooks;

		d->gen_hooks = h->next;
		free(h);
	}
	hacd_ctl_close(d->ctl);
	d->ctl = NULL;
	cat_close(d->cat);
	d->cat = NULL;
	for (size_t i = 0; i < 4; i++)
		if (ev[i])
			event_free(ev[i]);
	event_base_free(d->base);
	d->base = NULL;
	return ret;
}

int main(int argc, char **argv)
{
	struct hacd d = { .conf_path = CONF_DEFAULT_PATH };
	char err[512];
	bool check = false;
	int opt, ret;

	while ((opt = getopt(argc, argv, "f:th")) != -1) {
		switch (opt) {
		case 'f':
			d.conf_path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return HACD_EXIT_OK;
		default:
			usage(stderr);
			return HACD_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return HACD_EXIT_USAGE;
	}
	ret = conf_load(d.conf_path, 0, &d.conf, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "%shacd: %s\n", check ? "" : "<3>", err);
		return HACD_EXIT_CONFIG;
	}
	if (check) {
		printf("hacd: %s: configuration ok, %zu service(s)\n", d.conf_path,
		       d.conf->n_services);
		conf_free(d.conf);
		return HACD_EXIT_OK;
	}
	hacd_log_set_level(d.conf->log_level);
	hacd_log_libevent();
	/* A hactl that vanishes mid-reply must not kill the agent. */
	signal(SIGPIPE, SIG_IGN);
	/*
	 * Services outlive a worker that dies: as subreaper we inherit them (not pid 1,
	 * which may reap late and keep their pids taken), and their pidfds still tell.
	 */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	/*
	 * The loop answers hactl, the OCF agent and keepalived, and schedules every
	 * checkpoint; it works little but must not wait behind its own workers' dumps on
	 * a busy machine (corosync runs SCHED_RR for the same reason). Workers go back to
	 * nice 0 (hacd-worker.c), and so do the services they launch.
	 */
	if (setpriority(PRIO_PROCESS, 0, HACD_NICE) < 0)
		hacd_log(LOG_INFO, "nice %d: %s", HACD_NICE, strerror(errno));
	d.started_us = hacd_now_us();
	ret = run(&d);
	conf_free(d.conf);
	if (ret) {
		hacd_log(LOG_ERR, "exiting: %s", strerror(-ret));
		return HACD_EXIT_FAIL;
	}
	hacd_log(LOG_NOTICE, "stopped");
	return HACD_EXIT_OK;
}
