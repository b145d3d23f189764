/*
 * hacd-svc.c: what hacd does for each guarded service, driven from the event loop.
 *
 * DESIGN
 * Each service has a state machine, a scheduler timer and an engine worker
 * (hacd-worker.c) that does the slow work; this file only sequences it and keeps the
 * catalog. One worker request is in flight per service at most, so checkpoints of one
 * service never overlap: a tick that finds the worker busy counts as missed.
 *
 *                  launch / attach / adopt
 *        +-------------> STARTING ----fails----> DEAD
 *        |                  | ok
 *        |                  v         tick: CHECKPOINT (stays RUNNING)
 *        |    +--------> RUNNING <------------------------------------+
 *        |    |            |  \  rollback, reload, removal: svc_stop  |
 *        |    |            |   +---------> STOPPING                   |
 *        |    |   died:    |                  | died: after_stop      |
 *        |    |   policy   v                  v                       |
 *  scratch    |         (restore) ------> RESTORING --------ok--------+
 *  (launch)   |                               | fails
 *        |    |                               v
 *        +----+---------------------------- DEAD   (policy none: straight here)
 *
 *   transition                    function               catalog
 *   -> STARTING                   svc_start              event "launch"/"attach"
 *   STARTING -> RUNNING           svc_running            event, pid file written
 *   RUNNING: tick                 svc_ckpt_start/svc_ckpt_done   generation pending ->
 *                                                        complete/failed, retention, GC
 *   RUNNING -> (died)             pidfd_cb/svc_died      event "died"
 *   -> RESTORING                  svc_restore            event "restore"
 *   RUNNING -> STOPPING           svc_stop               event "stop"
 *
 * Invariants:
 *  1. A generation is committed only after the worker says its images are fsynced
 *     (eng_dump commits each image crash-safe): pack ref -> pack seal -> gen commit,
 *     each one transaction, so a kill -9 of hacd anywhere leaves a pending generation
 *     (failed by cat_recover at the next start) and an open or unreferenced pack
 *     (sealed, then collected by GC), never a complete generation without its images.
 *  2. A generation's directory is removed only by GC, after the catalog made its pack
 *     dead (catalog.c invariant 5).
 *  3. Death of the service is seen through a pidfd of its init, whoever its parent is
 *     (the worker, or hacd as subreaper once a worker died); it is acted on only once
 *     the worker is idle.
 *  4. Every control request waiting on a service is answered exactly once: when its
 *     operation ends, fails, or the service stops being guarded.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/engine.h"
#include "hacd.h"
#include "worker.pb-c.h"

/* A restore whose pid is still taken (an orphan not yet reaped) is retried this often. */
#define RESTORE_RETRY_US	500000
#define RESTORE_RETRIES		60


static void svc_next(struct svc *s);
static void svc_died(struct svc *s);

const char *svc_state_name(enum svc_state st)
{
	/* "failed": it died and hacd could not (or, by policy, would not) bring it back. */
	static const char *const names[] = { "starting", "running", "stopping", "restoring",
					     "failed", "stopped" };

	return st <= SVC_STOPPED ? names[st] : "?";
}

int64_t svc_wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void svc_event(struct svc *s, int level, const char *kind, const char *fmt, ...)
{
	char msg[CAT_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hacd_log(level, "service %s: %s", s->name, msg);
	if (level <= LOG_WARNING)
		snprintf(s->last_error, sizeof(s->last_error), "%s", msg);
	if (cat_event_add(s->d->cat, s->cat_id, level, kind, msg))
		hacd_log(LOG_ERR, "catalog: event: %s", cat_errmsg(s->d->cat));
}

void svc_gen_dir(const struct svc *s, int64_t gen, char *buf, size_t len)
{
	snprintf(buf, len, "%s/services/%s/gen-%lld", s->d->conf->state_dir, s->name,
		 (long long)gen);
}

void svc_store_dir(const struct svc *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s/services/%s/store", s->d->conf->state_dir, s->name);
}

/* STATE_DIR/services/NAME, 0700, created as needed; an fd or -errno. */
int svc_dir_open(const struct svc *s)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/services", s->d->conf->state_dir);
	fd = ha_dir_open(path, true);
	if (fd < 0)
		return fd;
	close(fd);
	snprintf(path, sizeof(path), "%s/services/%s", s->d->conf->state_dir, s->name);
	return ha_dir_open(path, true);
}

/* ---- the service's process --------------------------------------------------------- */

/* Field 22 of /proc/PID/stat: with the pid, it names one process across pid reuse. */
static unsigned long long proc_starttime(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long t = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* comm may hold spaces and parentheses */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
			 "%*d %*d %*d %llu", &t) != 1)
		return 0;
	return t;
}

/* service.pid: "INIT PID STARTTIME", so a restarted hacd finds what it guarded. */
static void pidfile_write(struct svc *s)
{
	char buf[96];
	int dfd = svc_dir_open(s), n;

	if (dfd < 0)
		return;
	n = snprintf(buf, sizeof(buf), "%d %d %llu\n", (int)s->init, (int)s->pid,
		     proc_starttime(s->init));
	if (ha_atomic_write_file(dfd, "service.pid", buf, (size_t)n))
		hacd_log(LOG_WARNING, "service %s: cannot write service.pid: %s", s->name,
			 eng_last_error());
	close(dfd);
}

static bool pidfile_adopt(struct svc *s)
{
	char path[4096], buf[96];
	unsigned long long t;
	int init, pid, fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/services/%s/service.pid", s->d->conf->state_dir,
		 s->name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	if (sscanf(buf, "%d %d %llu", &init, &pid, &t) != 3 || init <= 0 || pid <= 0 || !t)
		return false;
	if (proc_starttime(init) != t)
		return false;	/* gone, or its pid now belongs to another process */
	s->init = init;
	s->pid = pid;
	return true;
}

static void pidfd_exited(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;

	event_free(s->pidfd_ev);
	s->pidfd_ev = NULL;
	close(s->pidfd);
	s->pidfd = -1;
	/* Ours to reap once a dead worker left it to us as subreaper; ECHILD otherwise. */
	waitpid(s->init, NULL, WNOHANG);
	s->init = s->pid = 0;
	if (s->w_op) {
		s->dead_seen = true;	/* invariant 3 */
		return;
	}
	svc_died(s);
}
HACD_LOOP_CB(svc_timer_cb, svc_tick, "checkpoint tick")
HACD_LOOP_CB(pidfd_cb, pidfd_exited, "service exit")

static uint64_t svc_interval_us(const struct svc *s)
{
	return s->cs && s->cs->interval_us ? s->cs->interval_us : 1000000;
}

static int cmp_offset(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* A service's ticks counted in one interval of another: past this, they cover it. */
#define TICKS_SEEN_MAX	64

/*
 * When the first tick of a service that just started is due: within one interval,
 * in the middle of the widest gap between the ticks the other services have coming
 * in that interval. Services with one interval started together otherwise tick
 * together: 20 at 1 s froze at once, their 20 workers queued for 2 CPUs, each pause
 * grew by the wait (p50 4.7 ms against 2 ms alone), and a status client waited up to
 * 18 ms for a CPU (perf sched). Spread, the same work is a checkpoint every 50 ms.
 */
static uint64_t svc_first_tick(const struct svc *s, uint64_t now)
{
	uint64_t iv = svc_interval_us(s), *off = NULL, best = iv, widest = 0;
	const struct svc *o;
	size_t n = 0, cap = 0;

	TAILQ_FOREACH(o, &s->d->services, link) {
		uint64_t oiv = svc_interval_us(o), t = o->next_us;

		if (o == s || !o->timer || !evtimer_pending(o->timer, NULL))
			continue;
		if (t < now)	/* due, its callback not run yet: its phase is what counts */
			t += ((now - t) / oiv + 1) * oiv;
		for (int k = 0; t < now + iv && k < TICKS_SEEN_MAX; k++, t += oiv) {
			if (n == cap) {
				uint64_t *m = realloc(off, (cap = cap ? 2 * cap : 32) * sizeof(*off));

				if (!m)
					goto out;	/* no memory: one interval, as if alone */
				off = m;
			}
			off[n++] = t - now;
		}
	}
	if (!n)
		goto out;
	qsort(off, n, sizeof(*off), cmp_offset);
	/* On a circle of one interval: the gaps between neighbours, and the one that
	 * wraps from the last tick round to the first. */
	for (size_t i = 0; i < n; i++) {
		uint64_t gap = i + 1 < n ? off[i + 1] - off[i] : off[0] + iv - off[i];

		if (gap > widest) {
			widest = gap;
			best = (off[i] + gap / 2) % iv;
		}
	}
	if (!best)
		best = iv;
out:
	free(off);
	return now + best;
}

static int svc_running(struct svc *s, pid_t init, pid_t pid, const char *how)
{
	int fd = (int)syscall(SYS_pidfd_open, init, 0);

	if (fd < 0) {
		svc_event(s, LOG_ERR, "start", "pid %d: pidfd_open: %s", (int)init, strerror(errno));
		return -errno;
	}
	s->init = init;
	s->pid = pid;
	s->pidfd = fd;
	s->pidfd_ev = event_new(s->d->base, fd, EV_READ, pidfd_cb, s);
	if (!s->pidfd_ev || event_add(s->pidfd_ev, NULL) < 0)
		return -ENOMEM;
	s->state = SVC_RUNNING;
	s->retries = 0;
	s->last_error[0] = 0;
	pidfile_write(s);
	svc_event(s, LOG_NOTICE, how, "%s: pid %d%s", how, (int)pid,
		  init != pid ? " (under its init)" : "");
	if (!evtimer_pending(s->timer, NULL)) {
		s->next_us = svc_first_tick(s, hacd_now_us());
		svc_timer_arm(s);
	}
	return 0;
}

static void svc_set_dead(struct svc *s)
{
	s->state = SVC_DEAD;
	evtimer_del(s->timer);
	svc_waiters_done(s, SVC_WAIT_CHECKPOINT, true, -ESRCH, "the service is not running", 0);
	svc_waiters_done(s, SVC_WAIT_ROLLBACK, true, -ESRCH,
		     s->last_error[0] ? s->last_error : "the service is not running", 0);
}

/* A pid from a pidfile or the only process of a cgroup. */
static int attach_pid(struct svc *s, pid_t *pid)
{
	const struct conf_service *cs = s->cs;
	char path[4096], buf[64];
	int fd, v;
	ssize_t n;

	if (cs->target == CONF_TARGET_PIDFILE)
		snprintf(path, sizeof(path), "%s", cs->pidfile);
	else
		snprintf(path, sizeof(path), "%s/cgroup.procs", cs->cgroup);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -ESRCH;
	buf[n] = 0;
	if (sscanf(buf, "%d", &v) != 1 || v <= 0)
		return -EINVAL;
	*pid = v;
	return 0;
}

static void svc_start(struct svc *s)
{
	Hacd__WorkerRequest req = HACD__WORKER_REQUEST__INIT;
	char log[4096];
	pid_t pid = 0;
	int ret;

	s->state = SVC_STARTING;
	s->after_stop = SVC_AFTER_NOTHING;
	if (!s->cs) {
		svc_set_dead(s);
		return;
	}
	if (s->cs->target != CONF_TARGET_COMMAND) {
		ret = attach_pid(s, &pid);
		if (ret) {
			svc_event(s, LOG_ERR, "attach", "cannot attach to %s: %s",
				  s->cs->target == CONF_TARGET_PIDFILE ? s->cs->pidfile : s->cs->cgroup,
				  strerror(-ret));
			svc_set_dead(s);
			return;
		}
		if (svc_running(s, pid, pid, "attach"))
			svc_set_dead(s);
		return;
	}
	s->launched = true;
	/* Its output.log lives there. */
	ret = svc_dir_open(s);
	if (ret < 0) {
		svc_event(s, LOG_ERR, "launch", "cannot create its state directory: %s",
			  strerror(-ret));
		svc_set_dead(s);
		return;
	}
	close(ret);
	req.op = HACD__WORKER_OP__WORKER_OP_LAUNCH;
	req.n_argv = s->cs->argc;
	req.argv = (char **)s->cs->argv;
	/* argv[0] as resolved through PATH when the config was loaded. */
	req.argv[0] = (char *)s->cs->program;
	req.user = (char *)s->cs->user;
	snprintf(log, sizeof(log), "%s/services/%s/output.log", s->d->conf->state_dir, s->name);
	req.log_path = log;
	ret = hacd_worker_send(s, &req);
	if (ret) {
		svc_event(s, LOG_ERR, "launch", "worker unavailable: %s", strerror(-ret));
		svc_set_dead(s);
	}
}

static void retry_due(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;

	svc_next(s);
}
HACD_LOOP_CB(retry_cb, retry_due, "restart retry")

/* Restore generation `gen` (0: the newest complete one) of a service that is gone. */
static void svc_restore(struct svc *s, int64_t gen)
{
	Hacd__WorkerRequest req = HACD__WORKER_REQUEST__INIT;
	struct cat_gen g;
	char dir[4096];
	int ret;

	ret = gen ? cat_gen_get(s->d->cat, gen, &g) : cat_gen_latest_complete(s->d->cat, s->cat_id, &g);
	if (ret || g.service != s->cat_id || g.state != CAT_GEN_COMPLETE) {
		if (gen) {
			/* The service is already stopped: bring back the newest one instead. */
			svc_event(s, LOG_ERR, "restore", "no complete generation %lld to restore: "
				  "restoring the newest one", (long long)gen);
			svc_waiters_done(s, SVC_WAIT_ROLLBACK, true, -ENOENT, s->last_error, 0);
			svc_restore(s, 0);
			return;
		}
		if (s->launched && s->cs) {
			svc_event(s, LOG_WARNING, "restore", "no complete generation: launching "
				  "it from scratch");
			svc_start(s);
			return;
		}
		svc_event(s, LOG_ERR, "restore", "no complete generation to restore");
		svc_set_dead(s);
		return;
	}
	if (g.stats.store_gen > 0 && g.stats.store_gen <= UINT32_MAX) {
		svc_store_dir(s, dir, sizeof(dir));
		req.has_store_gen = 1;
		req.store_gen = (uint32_t)g.stats.store_gen;
		/* The worker keeps tracking what it restores: the next generation is
		 * incremental from this one. */
		req.has_incremental = 1;
		req.incremental = svc_incremental(s);
	} else {
		svc_gen_dir(s, g.id, dir, sizeof(dir));
	}
	req.op = HACD__WORKER_OP__WORKER_OP_RESTORE;
	req.dir = dir;
	s->state = SVC_RESTORING;
	s->restore_gen = g.id;
	ret = hacd_worker_send(s, &req);
	if (ret) {
		svc_event(s, LOG_ERR, "restore", "worker unavailable: %s", strerror(-ret));
		svc_set_dead(s);
		return;
	}
	svc_waiters_arm(s, SVC_WAIT_ROLLBACK);
}

static void restore_done(struct svc *s, const Hacd__WorkerReply *rep)
{
	int64_t gen = s->restore_gen;
	char how[64];

	if (rep && !rep->status) {
		snprintf(how, sizeof(how), "restore of generation %lld", (long long)gen);
		if (svc_running(s, (pid_t)rep->init, (pid_t)rep->pid, "restore")) {
			svc_set_dead(s);
			return;
		}
		svc_event(s, LOG_NOTICE, "restore", "%s: done%s", how,
			  rep->has_adopted && rep->adopted ? " (tracked from it: the next generation "
			  "stores only what changed)" : "");
		hacd_role_restored(s, true);
		svc_waiters_done(s, SVC_WAIT_ROLLBACK, false, 0, NULL, gen);
		return;
	}
	/* An orphan of a dead hacd may hold the pid until init reaps it: wait a little. */
	if (rep && rep->status == -EEXIST && s->retries++ < RESTORE_RETRIES) {
		struct timeval tv = { 0, RESTORE_RETRY_US };

		hacd_log(LOG_INFO, "service %s: %s; retrying", s->name, rep->error ? rep->error : "");
		s->state = SVC_STOPPING;
		s->after_stop = SVC_AFTER_RESTORE;
		s->dead_seen = false;
		evtimer_add(s->retry, &tv);
		return;
	}
	svc_event(s, LOG_ERR, "restore", "generation %lld: %s", (long long)gen,
		  rep && rep->error ? rep->error : "the worker died");
	svc_set_dead(s);
	hacd_role_restored(s, false);
}

void svc_worker_reply(struct svc *s, int op, const Hacd__WorkerReply *rep)
{
	switch (op) {
	case HACD__WORKER_OP__WORKER_OP_LAUNCH:
		if (rep && !rep->status) {
			if (svc_running(s, (pid_t)rep->init, (pid_t)rep->pid, "launch"))
				svc_set_dead(s);
		} else {
			svc_event(s, LOG_ERR, "launch", "%s",
				  rep && rep->error ? rep->error : "the worker died");
			svc_set_dead(s);
		}
		break;
	case HACD__WORKER_OP__WORKER_OP_CHECKPOINT:
		svc_ckpt_done(s, rep);
		break;
	case HACD__WORKER_OP__WORKER_OP_RESTORE:
		restore_done(s, rep);
		break;
	case HACD__WORKER_OP__WORKER_OP_STORE_GC:
		svc_store_gc_done(s, rep);
		break;
	}
	svc_next(s);
}

/* The service ended (invariant 3): purposefully stopped, or by itself. */
static void svc_died(struct svc *s)
{
	s->dead_seen = false;
	if (s->kill_timer)
		evtimer_del(s->kill_timer);
	if (s->state == SVC_STOPPING || s->after_stop != SVC_AFTER_NOTHING) {
		int after = s->after_stop;

		s->after_stop = SVC_AFTER_NOTHING;
		switch (after) {
		case SVC_AFTER_RESTORE:
			svc_restore(s, s->restore_gen);
			return;
		case SVC_AFTER_START:
			svc_start(s);
			return;
		case SVC_AFTER_FREE:
			s->state = SVC_DEAD;
			return;	/* hacd_svcs_reaped/svc_next frees it */
		case SVC_AFTER_STANDBY:
			hacd_role_stopped(s);
			return;
		}
	}
	if (s->state == SVC_DEAD)
		return;
	svc_event(s, LOG_WARNING, "died", "the service ended");
	svc_waiters_done(s, SVC_WAIT_CHECKPOINT, true, -ESRCH, "the service ended", 0);
	switch (s->cs ? s->cs->restart : CONF_RESTART_NONE) {
	case CONF_RESTART_RESTORE:
		svc_restore(s, 0);
		break;
	case CONF_RESTART_SCRATCH:
		if (s->launched) {
			svc_start(s);
			break;
		}
		/* an attached service cannot be started by us */
		__attribute__((fallthrough));
	case CONF_RESTART_NONE:
		svc_set_dead(s);
		break;
	}
}

static void kill_due(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;

	if (s->init > 0) {
		hacd_log(LOG_WARNING, "service %s: still running after its stop timeout: SIGKILL",
			 s->name);
		kill(s->init, SIGKILL);
	}
}
HACD_LOOP_CB(kill_cb, kill_due, "kill timer")

/* Stop the service on purpose, then do `after`. SIGKILL when `now`, else SIGTERM first. */
static void svc_stop(struct svc *s, int after, bool now)
{
	uint64_t t = s->stop_timeout_us;
	struct timeval tv = { .tv_sec = (time_t)(t / 1000000), .tv_usec = (suseconds_t)(t % 1000000) };

	s->after_stop = after;
	if (s->w_op) {
		s->stop_pending = true;
		return;
	}
	s->stop_pending = false;
	if (s->init <= 0 || s->pidfd < 0) {
		svc_died(s);
		return;
	}
	s->state = SVC_STOPPING;
	if (now || !s->launched) {
		/* An attached service is not ours to stop gracefully: rollback only. */
		kill(s->init, SIGKILL);
		return;
	}
	kill(s->pid, SIGTERM);
	evtimer_add(s->kill_timer, &tv);
}

void svc_stop_standby(struct svc *s)
{
	svc_stop(s, SVC_AFTER_STANDBY, true);
}

static void svc_free(struct svc *s)
{
	struct svc_waiter *w;

	hacd_role_free(s);
	while ((w = TAILQ_FIRST(&s->waiters))) {
		hacd_ctl_reply_done(w->fd, -ESRCH, "the service is no longer guarded", NULL, 0);
		close(w->fd);
		TAILQ_REMOVE(&s->waiters, w, link);
		free(w);
	}
	hacd_worker_stop(s);
	if (s->pidfd_ev)
		event_free(s->pidfd_ev);
	if (s->pidfd >= 0)
		close(s->pidfd);
	if (s->timer)
		event_free(s->timer);
	if (s->retry)
		event_free(s->retry);
	if (s->kill_timer)
		event_free(s->kill_timer);
	TAILQ_REMOVE(&s->d->services, s, link);
	free(s);
}

/* What to do now that the worker may be idle. */
static void svc_next(struct svc *s)
{
	if (s->w_op)
		return;
	if (s->dead_seen) {
		svc_died(s);
		if (s->w_op)
			return;
	}
	if (s->stop_pending) {
		svc_stop(s, s->after_stop, true);
		if (s->w_op)
			return;
	}
	if (s->state == SVC_STOPPING && s->after_stop == SVC_AFTER_RESTORE && s->init <= 0 &&
	    !evtimer_pending(s->retry, NULL)) {
		s->after_stop = SVC_AFTER_NOTHING;
		svc_restore(s, s->restore_gen);
		return;
	}
	if (svc_store_gc_next(s))
		return;
	if (s->state == SVC_RUNNING && s->want_ckpt)
		svc_ckpt_start(s);
	if (s->state == SVC_DEAD && s->after_stop == SVC_AFTER_NOTHING && !s->cs && s->init <= 0)
		svc_free(s);
}

/* ---- control requests ------------------------------------------------------------- */

int svc_request_checkpoint(struct svc *s, int fd)
{
	int ret;

	if (s->state != SVC_RUNNING)
		return -EAGAIN;
	ret = svc_waiter_add(s, SVC_WAIT_CHECKPOINT, fd);
	if (ret)
		return ret;
	s->want_ckpt = true;
	svc_next(s);
	return 0;
}

int svc_request_rollback(struct svc *s, int64_t gen, int fd, char *err, size_t errlen)
{
	struct cat_gen g;
	int ret;

	ret = gen ? cat_gen_get(s->d->cat, gen, &g) : cat_gen_latest_complete(s->d->cat, s->cat_id, &g);
	if (ret || g.service != s->cat_id || g.state != CAT_GEN_COMPLETE) {
		snprintf(err, errlen, "service %s has no complete generation %lld", s->name,
			 (long long)gen);
		return -ENOENT;
	}
	if (s->state == SVC_STARTING || s->state == SVC_RESTORING ||
	    (s->state == SVC_STOPPING && s->after_stop != SVC_AFTER_NOTHING)) {
		snprintf(err, errlen, "service %s is %s: try again", s->name,
			 svc_state_name(s->state));
		return -EAGAIN;
	}
	ret = svc_waiter_add(s, SVC_WAIT_ROLLBACK, fd);
	if (ret)
		return ret;
	svc_event(s, LOG_NOTICE, "rollback", "rollback to generation %lld requested",
		  (long long)g.id);
	s->restore_gen = g.id;
	s->retries = 0;
	svc_stop(s, SVC_AFTER_RESTORE, true);
	return 0;
}

/* ---- the set of services ------------------------------------------------------------ */

struct svc *hacd_svc_find(struct hacd *d, const char *name)
{
	struct svc *s;

	TAILQ_FOREACH(s, &d->services, link)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static int svc_new(struct hacd *d, const struct conf_service *cs)
{
	struct svc *s = calloc(1, sizeof(*s));
	int ret;

	if (!s)
		return -ENOMEM;
	s->d = d;
	s->cs = cs;
	snprintf(s->name, sizeof(s->name), "%s", cs->name);
	s->pidfd = s->w_fd = s->demote_fd = -1;
	s->stop_timeout_us = cs->stop_timeout_us;
	TAILQ_INIT(&s->waiters);
	TAILQ_INSERT_TAIL(&d->services, s, link);
	s->timer = evtimer_new(d->base, svc_timer_cb, s);
	s->retry = evtimer_new(d->base, retry_cb, s);
	s->kill_timer = evtimer_new(d->base, kill_cb, s);
	if (!s->timer || !s->retry || !s->kill_timer) {
		svc_free(s);
		return -ENOMEM;
	}
	ret = cat_service_ensure(d->cat, s->name, &s->cat_id);
	if (ret) {
		hacd_log(LOG_ERR, "service %s: catalog: %s", s->name, cat_errmsg(d->cat));
		svc_free(s);
		return ret;
	}
	svc_sweep_unknown(s);
	/* What a killed hacd's worker left in the page store: before the first checkpoint
	 * (hacd-gen.c DESIGN). */
	s->store_gc_due = svc_has_store(s);
	ret = hacd_worker_start(s);
	if (ret) {
		svc_event(s, LOG_ERR, "worker", "cannot start its worker: %s", strerror(-ret));
		svc_set_dead(s);
		return 0;
	}
	s->launched = cs->target == CONF_TARGET_COMMAND;
	if (!hacd_role_init(s))
		svc_begin(s);
	return 0;
}

void svc_begin(struct svc *s)
{
	/* A previous hacd's service still running: guard it, do not launch a second one. */
	if (pidfile_adopt(s)) {
		pid_t init = s->init, pid = s->pid;

		s->init = s->pid = 0;
		if (!svc_running(s, init, pid, "adopt"))
			return;
	}
	svc_start(s);
}

static void gc_round(evutil_socket_t fd, short what, void *arg)
{
	struct hacd *d = arg;

	hacd_gc(d);
	/* ~1 MB of WAL a second under load: copied into the database every 5 s. */
	if (++d->gc_rounds % 5 == 0)
		hacd_catalog_checkpoint(d);
}
HACD_LOOP_CB(gc_cb, gc_round, "store GC round")

int hacd_svcs_start(struct hacd *d)
{
	int ret;

	TAILQ_INIT(&d->services);
	for (size_t i = 0; i < d->conf->n_services; i++) {
		ret = svc_new(d, &d->conf->services[i]);
		if (ret)
			return ret;
	}
	hacd_gc_now(d);	/* what cat_recover() just failed, and any GC a crash cut short */
	{
		struct timeval tv = { 1, 0 };

		d->gc_ev = event_new(d->base, -1, EV_PERSIST, gc_cb, d);
		if (!d->gc_ev || event_add(d->gc_ev, &tv) < 0)
			return -ENOMEM;
	}
	return 0;
}

void hacd_svcs_reload(struct hacd *d)
{
	struct svc *s, *tmp;

	TAILQ_FOREACH_SAFE(s, &d->services, link, tmp) {
		const struct conf_service *ncs = conf_service_find(d->conf, s->name);

		if (!ncs) {
			svc_event(s, LOG_NOTICE, "reload", "removed from the config: stopping");
			s->cs = NULL;
			evtimer_del(s->timer);
			if (s->launched)
				svc_stop(s, SVC_AFTER_FREE, false);
			else
				s->state = SVC_DEAD;
			svc_next(s);
			continue;
		}
		if (s->cs && conf_service_equal(s->cs, ncs)) {
			s->cs = ncs;
			continue;
		}
		s->cs = ncs;
		s->stop_timeout_us = ncs->stop_timeout_us;
		if (s->state == SVC_STOPPED)
			continue;	/* standby: nothing runs here to restart */
		svc_event(s, LOG_NOTICE, "reload", "its section changed: restarting it");
		evtimer_del(s->timer);
		if (s->launched || s->state == SVC_RUNNING)
			svc_stop(s, SVC_AFTER_START, false);
		else
			svc_start(s);
	}
	for (size_t i = 0; i < d->conf->n_services; i++)
		if (!hacd_svc_find(d, d->conf->services[i].name))
			svc_new(d, &d->conf->services[i]);
}

void hacd_svcs_reaped(struct hacd *d, pid_t pid, int status)
{
	struct svc *s;
	bool abandoned;
	int op;

	TAILQ_FOREACH(s, &d->services, link)
		if (s->w_pid == pid)
			break;
	if (!s)
		return;	/* a service a dead worker left to us: its pidfd tells */
	op = s->w_op;
	abandoned = s->w_abandoned;
	s->w_pid = 0;
	hacd_worker_stop(s);
	if (d->stopping)
		return;
	if (abandoned)
		svc_event(s, LOG_NOTICE, "worker", "worker %d stopped (%s %d) after its checkpoint "
			  "was abandoned: restarting it", (int)pid,
			  WIFSIGNALED(status) ? "signal" : "status",
			  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	else if (WIFSIGNALED(status) || WEXITSTATUS(status))
		svc_event(s, LOG_ERR, "worker", "worker %d died (%s %d): restarting it",
			  (int)pid, WIFSIGNALED(status) ? "signal" : "status",
			  WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	s->w_restarts++;
	if (hacd_worker_start(s)) {
		svc_set_dead(s);
		return;
	}
	if (op) {
		/* svc_ckpt_done says why the generation failed. */
		s->w_abandoned = abandoned;
		svc_worker_reply(s, op, NULL);
		s->w_abandoned = false;
	} else {
		svc_next(s);
	}
}

/*
 * At stop: a worker exits on EOF when idle, and at once after the checkpoint it is in
 * (hacd-worker.c invariants 4 and 6; SIGTERM says so even if the EOF is not read for
 * a while); one stuck in the engine gets SIGKILL rather than hold hacd's exit forever.
 */
#define WORKER_STOP_GRACE_MS	10000

static void worker_reap(pid_t w)
{
	kill(w, SIGTERM);
	for (int ms = 0; ms < WORKER_STOP_GRACE_MS; ms += 10) {
		if (waitpid(w, NULL, WNOHANG) != 0)
			return;
		usleep(10000);
	}
	hacd_log(LOG_WARNING, "worker %d still running %d s after SIGTERM, stuck in the "
		 "engine: SIGKILL", (int)w, WORKER_STOP_GRACE_MS / 1000);
	kill(w, SIGKILL);
	waitpid(w, NULL, 0);
}

void hacd_svcs_stop(struct hacd *d)
{
	uint64_t deadline = 0, now = hacd_now_us();
	struct svc *s;

	d->stopping = true;
	if (d->gc_ev)
		event_free(d->gc_ev);
	d->gc_ev = NULL;
	TAILQ_FOREACH(s, &d->services, link) {
		evtimer_del(s->timer);
		if (s->launched && s->pid > 0 && s->pidfd >= 0) {
			kill(s->pid, SIGTERM);
			if (now + s->stop_timeout_us > deadline)
				deadline = now + s->stop_timeout_us;
		}
	}
	/* Blocking is fine now: the loop has stopped serving. */
	TAILQ_FOREACH(s, &d->services, link) {
		struct pollfd p = { .fd = s->pidfd, .events = POLLIN };
		uint64_t t = hacd_now_us();
		char path[4096];

		if (!s->launched || s->pidfd < 0)
			continue;
		if (poll(&p, 1, t < deadline ? (int)((deadline - t) / 1000) + 1 : 0) <= 0) {
			hacd_log(LOG_WARNING, "service %s: still running after its stop timeout: "
				 "SIGKILL", s->name);
			kill(s->init, SIGKILL);
			poll(&p, 1, 5000);
		}
		/* Stopped on purpose: the next hacd launches it afresh. */
		snprintf(path, sizeof(path), "%s/services/%s/service.pid", d->conf->state_dir,
			 s->name);
		unlink(path);
	}
	while ((s = TAILQ_FIRST(&d->services))) {
		pid_t w = s->w_pid;

		svc_free(s);
		if (w > 0)
			worker_reap(w);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}
