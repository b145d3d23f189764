/*
 * hacd-worker.c: the engine worker of one guarded service, and hacd's end of its pipe.
 *
 * DESIGN
 * hacd's event loop never calls the engine (STYLE.md, OpenBSD privsep): each service
 * gets one long-lived worker, forked from hacd, that runs eng_launch, eng_dump and
 * eng_restore on request. A crash or a hang in a dump takes down the worker, not the
 * agent. Requests and replies are protobuf-c messages (rpc/worker.proto), one per
 * SOCK_SEQPACKET packet of a socketpair, one request at a time.
 *
 *   hacd (loop)                                    worker (blocking)
 *   hacd_worker_start: socketpair, fork ---------> worker_main: own signals, fds 0-2 and
 *                                                  the socket only, dies with hacd
 *   hacd_worker_send(req) -----------------------> eng_launch / eng_dump / eng_restore
 *   worker_cb: decode, check <-------------------- reply (status, pids, stats)
 *   SIGCHLD for the worker: svc_worker_died() restarts it
 *
 * Invariants:
 *  1. The worker holds nothing of hacd's: not the control socket, not the catalog's
 *     sqlite connection (never used across fork), not libevent's signal pipe.
 *  2. The worker reaps its own children (the services it launched or restored) between
 *     requests, so that a dead service's pid is free again for its restore.
 *  3. A reply is trusted only after its seq matches the request in flight and its pids
 *     are plausible: a confused worker is killed and restarted, not believed.
 *  4. A checkpoint in progress is never cut short by hacd's death. The worker dies with
 *     hacd (PR_SET_PDEATHSIG), but by SIGTERM, which it blocks around eng_dump: had it
 *     been killed with the parasite inside the service, the service would run on into
 *     the parasite's trap with no tracer and die. The dump ends (cured, released),
 *     the worker removes what no hacd will ever commit, then takes the signal.
 *  5. Incremental checkpoints (conf checkpoint = "incremental"): the worker keeps one
 *     tracked target (eng_track) of its service between requests, open on the pid it
 *     was last asked for; it holds the service's page store locked, so the worker is
 *     the store's only writer, and deletions go through it (STORE_GC). A new worker
 *     whose predecessor (outliving a killed hacd) still holds the lock gets -EBUSY:
 *     that generation fails and the next tick tries again; never two writers. A
 *     store generation the worker committed and hacd never did is removed by the next
 *     STORE_GC, which hacd sends before its first incremental checkpoint.
 *     A store generation it restores for an incremental service stays tracked from
 *     that generation (eng_track_restore): the first checkpoint after a kill -9
 *     restore, a rollback or a promote stores only what changed since.
 *  6. A checkpoint is bounded (conf checkpoint_timeout): past it, hacd abandons it and
 *     SIGTERMs the worker. SIGTERM is held off while the engine has the service (4),
 *     so the worker stops at the next safe point: before the engine takes the
 *     service, or once it has cured and released it, never committing a reply. What
 *     it wrote is cleaned as for a dead hacd (4, 5). A worker still there after
 *     WORKER_TERM_GRACE_US is stuck inside the engine and gets SIGKILL: the kernel
 *     detaches a tracer's tracees when it exits, and a thread stopped with its own
 *     registers resumes untouched (interrupted syscalls restart, engine/infect.c
 *     invariant 3). Only a thread caught running our injected code (a remote syscall
 *     or a parasite command, a few milliseconds per dump) would resume in it and
 *     probably die: the service's restart policy then applies. The parasite's pages
 *     stay mapped in the service then; nothing else of ours does (the uffd dies with
 *     the worker, the store's lock too). Either way hacd fails the generation when
 *     the worker is gone and a new worker takes the next request.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "ha/engine.h"
#include "hacd.h"
#include "worker.pb-c.h"

/* The fd the worker finds its socket on. */
#define WORKER_FD 3

static const char *worker_name;
static int worker_log_level;
static pid_t worker_parent;
/* Invariant 5: the tracked service, and the pid and store it was opened for. */
static struct eng_track *track;
static pid_t track_pid;
static char track_store[4096];
/* Readable once the tracked process has exited: the tracker (and the store's lock) is
 * let go then, not at the next request, so that a node turned standby does not keep
 * its receiver out of the store. */
static int track_pidfd = -1;

static void track_drop(void)
{
	eng_track_close(track);
	track = NULL;
	track_pid = 0;
	track_store[0] = 0;
	if (track_pidfd >= 0)
		close(track_pidfd);
	track_pidfd = -1;
}

static void worker_log(int level, const char *msg, void *opaque)
{
	if (level <= worker_log_level)
		dprintf(STDERR_FILENO, "<%d>worker %s: %s\n", level, worker_name, msg);
}

static void reap_children(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void do_launch(const Hacd__WorkerRequest *req, Hacd__WorkerReply *rep)
{
	struct eng_launch_opts o = { .pidns = HACD_LAUNCH_PIDNS, .user = req->user,
				     .log_path = req->log_path };
	const char **argv = calloc(req->n_argv + 1, sizeof(*argv));
	pid_t init, pid;

	if (!argv) {
		rep->status = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < req->n_argv; i++)
		argv[i] = req->argv[i];
	rep->status = eng_launch(argv, &o, &init, &pid);
	free(argv);
	if (rep->status)
		return;
	rep->has_init = rep->has_pid = 1;
	rep->init = (uint32_t)init;
	rep->pid = (uint32_t)pid;
}

static void hold_term(bool hold)
{
	sigset_t term;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(hold ? SIG_BLOCK : SIG_UNBLOCK, &term, NULL);
}

/* We are to stop when hacd is gone (our parent changed, or its death signal waits) or
 * hacd abandoned the request (the same SIGTERM): invariants 4 and 6. */
static bool hacd_gone(void)
{
	sigset_t pend;

	if (getppid() != worker_parent)
		return true;
	return !sigpending(&pend) && sigismember(&pend, SIGTERM) == 1;
}

/*
 * Tests only (tests/integration/agent-stuck.sh): HACD_TEST_STALL_CHECKPOINT=FILE makes
 * the first checkpoint request that finds FILE hold its service seized, every thread
 * stopped under our ptrace as in a dump stuck in the engine, for the milliseconds
 * FILE holds (0 or nothing: until we are killed), then release it. FILE is removed
 * first: one request stalls.
 */
static void test_stall(const Hacd__WorkerRequest *req)
{
	const char *path = getenv("HACD_TEST_STALL_CHECKPOINT");
	struct eng_victim *v = NULL;
	char buf[32];
	ssize_t n;
	long ms;
	int fd;

	if (!path || !*path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	unlink(path);
	buf[n > 0 ? n : 0] = 0;
	ms = strtol(buf, NULL, 10);
	if (eng_seize((pid_t)req->pid, &v))
		return;
	dprintf(STDERR_FILENO, "<%d>worker %s: test: pid %d held seized for %ld ms%s\n",
		LOG_NOTICE, worker_name, (int)req->pid, ms, ms > 0 ? "" : " (until killed)");
	/* By the clock: a loaded machine stretches sleeps, and the test times the
	 * stall against the timeout and the grace. */
	for (uint64_t end = hacd_now_us() + (uint64_t)(ms > 0 ? ms : 0) * 1000;
	     ms <= 0 || hacd_now_us() < end;)
		usleep(10000);
	eng_release(v);
}

/* A safe point before the engine takes the service (invariant 6): nothing to undo. */
static void exit_if_told(void)
{
	if (!hacd_gone())
		return;
	worker_log(LOG_NOTICE, "told to stop before the checkpoint began: exiting", NULL);
	_exit(0);
}

/* A generation directory nobody will commit: a restarted hacd has failed it already. */
static void rm_orphan_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	struct dirent *e;
	DIR *d;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(path);
}

/*
 * A tracked generation of the store req->dir. The tracker is (re)opened when there is
 * none or it follows another process: the service was restored or launched again, and
 * that first generation stores every page.
 */
static void do_checkpoint_incr(const Hacd__WorkerRequest *req, Hacd__WorkerReply *rep)
{
	/* precopy off: one live round (0 would be the engine's default of 8). */
	struct eng_track_opts o = { .max_rounds = req->precopy ? 0 : 1 };
	struct eng_track_stats st = { 0 };
	int ret = 0;

	hold_term(true);	/* invariant 4 */
	test_stall(req);
	exit_if_told();
	if (track && (track_pid != (pid_t)req->pid || strcmp(track_store, req->dir)))
		track_drop();
	if (!track) {
		ret = eng_track_open((pid_t)req->pid, req->dir, &o, &track);
		if (!ret) {
			track_pid = (pid_t)req->pid;
			snprintf(track_store, sizeof(track_store), "%s", req->dir);
			track_pidfd = (int)syscall(SYS_pidfd_open, track_pid, 0);
		}
	}
	if (!ret)
		ret = eng_track_checkpoint(track, &o, &st);
	if (hacd_gone()) {
		/* A generation the store committed but no hacd will: the next STORE_GC
		 * removes it (the catalog has no complete row for it). */
		worker_log(LOG_NOTICE, "told to stop during a checkpoint (hacd died, or it "
			   "timed out): the service is released; exiting", NULL);
		_exit(0);
	}
	hold_term(false);
	rep->status = ret;
	if (ret) {
		/* Gone, or failed (the next generation would be full anyway): the next
		 * request opens afresh on whatever runs then. */
		track_drop();
		return;
	}
	rep->has_frozen_us = rep->has_total_us = rep->has_pages_written = 1;
	rep->has_pages_scanned = rep->has_bytes_written = rep->has_store_gen = 1;
	rep->has_precopy_us = rep->has_rounds = rep->has_pages_total = rep->has_full = 1;
	rep->frozen_us = st.pause_us;
	rep->total_us = st.total_us;
	rep->pages_written = st.pages_written;
	rep->pages_scanned = st.pages_scanned;
	rep->bytes_written = st.bytes_written;
	rep->store_gen = st.generation;
	rep->precopy_us = st.precopy_us;
	rep->rounds = st.precopy_rounds;
	rep->pages_total = st.pages_total;
	rep->full = st.full;
}

static void do_checkpoint(const Hacd__WorkerRequest *req, Hacd__WorkerReply *rep)
{
	struct eng_dump_opts o = {
		.leave_running = true,
		.precopy = req->precopy ? ENG_PRECOPY_AUTO : ENG_PRECOPY_NEVER,
	};
	struct eng_dump_stats st = { 0 };

	hold_term(true);	/* invariant 4: until the service is released */
	test_stall(req);
	exit_if_told();
	rep->status = eng_dump((pid_t)req->pid, req->dir, &o, &st);
	if (hacd_gone()) {
		worker_log(LOG_NOTICE, "told to stop during a checkpoint (hacd died, or it "
			   "timed out): the service is released, the generation's directory "
			   "removed; exiting", NULL);
		rm_orphan_dir(req->dir);
		_exit(0);
	}
	hold_term(false);
	if (rep->status)
		return;
	rep->has_frozen_us = rep->has_total_us = rep->has_pages_written = 1;
	rep->has_pages_scanned = rep->has_bytes_written = 1;
	rep->frozen_us = st.frozen_us;
	rep->total_us = st.total_us;
	rep->pages_written = st.pages_written;
	rep->pages_scanned = st.pages_scanned;
	rep->bytes_written = st.bytes_written;
}

static void do_restore(const Hacd__WorkerRequest *req, Hacd__WorkerReply *rep)
{
	/*
	 * The checkpoint decides: a service launched in its own namespaces comes back in
	 * new ones under a new init (the image says so), an attached one with its pids in
	 * ours, as it was.
	 */
	struct eng_restore_opts o = { .pidns = false, .generation = req->store_gen };
	struct eng_track *adopted = NULL;
	pid_t init, pid;

	/* Whatever was tracked is gone. A store generation restored for an incremental
	 * service comes back tracked from that generation (invariant 5): its next
	 * generation stores only what it wrote since. Otherwise (or when the engine could
	 * not adopt it) it gets a tracker of its own at its first checkpoint, a full one. */
	track_drop();
	/* A restore cut short could leave a half-restored process running. Once it is
	 * done, the service is a process like any other: the next hacd adopts it. */
	hold_term(true);
	if (req->incremental && req->store_gen)
		rep->status = eng_track_restore(req->dir, &o, NULL, &init, &pid, &adopted);
	else
		rep->status = eng_restore_pids(req->dir, &o, &init, &pid);
	if (hacd_gone()) {
		worker_log(LOG_NOTICE, "hacd died during a restore: exiting once it is done",
			   NULL);
		_exit(0);
	}
	hold_term(false);
	if (rep->status)
		return;
	if (adopted) {
		track = adopted;
		track_pid = pid;
		snprintf(track_store, sizeof(track_store), "%s", req->dir);
		track_pidfd = (int)syscall(SYS_pidfd_open, track_pid, 0);
		rep->has_adopted = rep->adopted = 1;
	}
	rep->has_init = rep->has_pid = 1;
	rep->init = (uint32_t)init;
	/* Under an init, the service is its child: the pid to checkpoint and signal. */
	rep->pid = (uint32_t)pid;
}

static bool kept(const Hacd__WorkerRequest *req, uint32_t gen)
{
	for (size_t i = 0; i < req->n_keep; i++)
		if (req->keep[i] == gen)
			return true;
	return false;
}

/*
 * Delete every generation of the store req->dir that req->keep does not name, through
 * the tracker when it holds the store (invariant 5). Replies with what remains, which
 * hacd checks against its complete generations. -EBUSY: another writer holds the store
 * (an old worker, a receiving standby): hacd tries again later.
 */
static void do_store_gc(const Hacd__WorkerRequest *req, Hacd__WorkerReply *rep)
{
	uint32_t *gens = NULL, *left;
	size_t nr = 0, n_left = 0;
	int ret;

	ret = eng_store_is(req->dir);
	if (ret <= 0) {
		/* No store yet: nothing to delete, nothing remains. */
		rep->status = ret < 0 ? ret : 0;
		return;
	}
	ret = eng_store_list(req->dir, &gens, &nr);
	if (ret) {
		rep->status = ret;
		return;
	}
	/* The prunes that made these deletable must outlive a power loss first (hacd-gen.c
	 * DESIGN): a row coming back complete would name data that is gone. */
	if (req->sync_path && (ret = cat_sync_path(req->sync_path))) {
		free(gens);
		rep->status = ret;
		rep->error = "fdatasync of the catalog failed: nothing deleted";
		return;
	}
	left = calloc(nr ? nr : 1, sizeof(*left));
	if (!left) {
		free(gens);
		rep->status = -ENOMEM;
		return;
	}
	hold_term(true);	/* a deletion is short, and ends whole */
	for (size_t i = 0; i < nr && !ret; i++) {
		uint64_t freed = 0;

		if (kept(req, gens[i])) {
			left[n_left++] = gens[i];
			continue;
		}
		if (track && !strcmp(track_store, req->dir))
			ret = eng_track_delete(track, gens[i], &freed);
		else
			ret = eng_store_delete(req->dir, gens[i], &freed);
		if (!ret) {
			char msg[96];

			snprintf(msg, sizeof(msg), "store generation %u deleted, %llu bytes freed",
				 gens[i], (unsigned long long)freed);
			worker_log(LOG_INFO, msg, NULL);
		} else {
			left[n_left++] = gens[i];
		}
	}
	hold_term(false);
	free(gens);
	rep->status = ret;
	if (!ret) {
		rep->n_store_gens = n_left;
		rep->store_gens = left;
		return;
	}
	free(left);
}

static int handle(const uint8_t *buf, size_t len)
{
	Hacd__WorkerReply rep = HACD__WORKER_REPLY__INIT;
	Hacd__WorkerRequest *req = hacd__worker_request__unpack(NULL, len, buf);
	uint8_t out[WORKER_MSG_MAX];
	size_t n;

	rep.has_seq = rep.has_status = 1;
	if (!req) {
		rep.status = -EBADMSG;
		rep.error = "request is not a WorkerRequest";
		goto send;
	}
	rep.seq = req->seq;
	switch (req->op) {
	case HACD__WORKER_OP__WORKER_OP_LAUNCH:
		if (req->n_argv)
			do_launch(req, &rep);
		else
			rep.status = -EINVAL;
		break;
	case HACD__WORKER_OP__WORKER_OP_CHECKPOINT:
		if (req->pid && req->dir && req->incremental)
			do_checkpoint_incr(req, &rep);
		else if (req->pid && req->dir)
			do_checkpoint(req, &rep);
		else
			rep.status = -EINVAL;
		break;
	case HACD__WORKER_OP__WORKER_OP_STORE_GC:
		if (req->dir)
			do_store_gc(req, &rep);
		else
			rep.status = -EINVAL;
		break;
	case HACD__WORKER_OP__WORKER_OP_RESTORE:
		if (req->dir)
			do_restore(req, &rep);
		else
			rep.status = -EINVAL;
		break;
	default:
		rep.status = -EPROTO;
	}
	if (rep.status && !rep.error)
		rep.error = (char *)(eng_last_error()[0] ? eng_last_error() : strerror(-rep.status));
send:
	n = hacd__worker_reply__get_packed_size(&rep);
	if (n > sizeof(out)) {
		rep.error = "error message too long";
		n = hacd__worker_reply__get_packed_size(&rep);
	}
	hacd__worker_reply__pack(&rep, out);
	free(rep.store_gens);
	if (req)
		hacd__worker_request__free_unpacked(req, NULL);
	return send(WORKER_FD, out, n, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

static void __attribute__((noreturn)) worker_main(int fd, pid_t parent)
{
	static uint8_t buf[WORKER_MSG_MAX];
	struct sigaction sa = { .sa_handler = SIG_DFL };
	char comm[16];
	sigset_t none;

	/* libevent's handlers point into hacd's loop, which is not ours (invariant 1). */
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Die with hacd: a worker without its agent would hold ptrace and uffd for no one.
	 * SIGTERM (default action: exit), so a dump can hold it off (invariant 4). */
	worker_parent = parent;
	setpriority(PRIO_PROCESS, 0, 0);	/* not hacd's HACD_NICE: see hacd.c */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(1);
	if (fd != WORKER_FD && dup2(fd, WORKER_FD) < 0)
		_exit(1);
	close_range(WORKER_FD + 1, ~0u, 0);
	snprintf(comm, sizeof(comm), "hacd-w %s", worker_name);
	prctl(PR_SET_NAME, comm);
	eng_set_log(worker_log, worker_log_level, NULL);
	for (;;) {
		struct pollfd p[2] = { { .fd = WORKER_FD, .events = POLLIN },
				       { .fd = track_pidfd, .events = POLLIN } };
		int r = poll(p, 2, 200);
		ssize_t n;

		reap_children();	/* invariant 2 */
		if (r < 0 && errno != EINTR)
			_exit(1);
		if (r > 0 && track_pidfd >= 0 && (p[1].revents & POLLIN))
			track_drop();
		if (r <= 0 || !(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recv(WORKER_FD, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EINTR))
			_exit(0);	/* hacd closed its end: we are done */
		if (n > 0 && handle(buf, (size_t)n) < 0)
			_exit(1);
	}
}

/* ---- hacd's side ------------------------------------------------------------------- */

static const char *worker_op_name(int op)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&hacd__worker_op__descriptor, op);

	return v ? v->name : "?";
}

static void worker_read(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	uint8_t buf[WORKER_MSG_MAX];
	Hacd__WorkerReply *rep;
	ssize_t n;
	int op;

	n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* It died or closed: SIGCHLD brings svc_worker_died(). Stop listening. */
		event_del(s->w_ev);
		if (s->w_pid > 0)
			kill(s->w_pid, SIGKILL);
		return;
	}
	rep = hacd__worker_reply__unpack(NULL, (size_t)n, buf);
	/* Invariant 3. */
	if (!rep || !rep->has_seq || !rep->has_status || rep->seq != s->w_seq || !s->w_op ||
	    (!rep->status && (s->w_op == HACD__WORKER_OP__WORKER_OP_LAUNCH ||
			      s->w_op == HACD__WORKER_OP__WORKER_OP_RESTORE) &&
	     (!rep->init || !rep->pid || rep->init > INT32_MAX || rep->pid > INT32_MAX))) {
		hacd_log(LOG_ERR, "service %s: worker %d sent a malformed or unexpected reply: "
			 "restarting it", s->name, (int)s->w_pid);
		if (rep)
			hacd__worker_reply__free_unpacked(rep, NULL);
		event_del(s->w_ev);
		kill(s->w_pid, SIGKILL);
		return;
	}
	if (s->w_abandoned) {
		/* Invariant 6: it is being stopped, and its generation failed when it is
		 * gone; a reply that crossed the SIGTERM changes nothing. */
		hacd_log(LOG_INFO, "service %s: worker %d: reply to an abandoned checkpoint "
			 "ignored", s->name, (int)s->w_pid);
		hacd__worker_reply__free_unpacked(rep, NULL);
		return;
	}
	if (s->w_timer)
		evtimer_del(s->w_timer);
	op = s->w_op;
	s->w_op = 0;
	hacd_held_detail("service %s, %s", s->name, worker_op_name(op));
	svc_worker_reply(s, op, rep);
	hacd__worker_reply__free_unpacked(rep, NULL);
}
HACD_LOOP_CB(worker_cb, worker_read, "worker reply")

/* A worker that got SIGTERM and is still there after this is stuck in the engine. */
#define WORKER_TERM_GRACE_US	5000000

/* A year stands for "never" (a huge checkpoint_timeout): libevent adds it to now. */
#define TIMER_MAX_US		(366ull * 86400 * 1000000)

static void arm_us(struct event *ev, uint64_t us)
{
	struct timeval tv;

	if (us > TIMER_MAX_US)
		us = TIMER_MAX_US;
	tv.tv_sec = (time_t)(us / 1000000);
	tv.tv_usec = (suseconds_t)(us % 1000000);
	evtimer_add(ev, &tv);
}

/* Invariant 6: the checkpoint in flight is late, or its worker did not stop. */
static void worker_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct svc *s = arg;
	uint64_t waited = hacd_now_us() - s->w_sent_us;

	if (!s->w_op || s->w_pid <= 0)
		return;
	if (!s->w_abandoned) {
		s->w_abandoned = true;
		svc_event(s, LOG_ERR, "checkpoint", "generation %lld: no reply from worker %d "
			  "after %.1f s (checkpoint_timeout): abandoned; stopping the worker",
			  (long long)s->gen, (int)s->w_pid, waited / 1e6);
		kill(s->w_pid, SIGTERM);
		arm_us(s->w_timer, WORKER_TERM_GRACE_US);
		return;
	}
	svc_event(s, LOG_ERR, "worker", "worker %d still running %.1f s after SIGTERM, stuck "
		  "in the engine: SIGKILL (the kernel lets the service go)", (int)s->w_pid,
		  WORKER_TERM_GRACE_US / 1e6);
	kill(s->w_pid, SIGKILL);
}
HACD_LOOP_CB(worker_timeout_cb, worker_timeout, "worker timeout")

int hacd_worker_start(struct svc *s)
{
	pid_t parent = getpid(), pid;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		hacd_log(LOG_ERR, "service %s: worker socketpair: %s", s->name, strerror(errno));
		return -errno;
	}
	worker_name = s->name;
	worker_log_level = s->d->conf->log_level;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		worker_main(sv[1], parent);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		hacd_log(LOG_ERR, "service %s: fork of its worker: %s", s->name, strerror(errno));
		return -errno;
	}
	evutil_make_socket_nonblocking(sv[0]);
	s->w_fd = sv[0];
	s->w_pid = pid;
	s->w_op = 0;
	s->w_abandoned = false;
	s->w_ev = event_new(s->d->base, sv[0], EV_READ | EV_PERSIST, worker_cb, s);
	if (!s->w_ev || event_add(s->w_ev, NULL) < 0) {
		hacd_worker_stop(s);
		return -ENOMEM;
	}
	hacd_log(LOG_INFO, "service %s: worker %d started", s->name, (int)pid);
	return 0;
}

/* Closes our end: the worker exits on EOF (it is reaped by the SIGCHLD handler). */
void hacd_worker_stop(struct svc *s)
{
	if (s->w_ev)
		event_free(s->w_ev);
	s->w_ev = NULL;
	if (s->w_timer)
		event_free(s->w_timer);
	s->w_timer = NULL;
	if (s->w_fd >= 0)
		close(s->w_fd);
	s->w_fd = -1;
	s->w_op = 0;
}

int hacd_worker_send(struct svc *s, Hacd__WorkerRequest *req)
{
	uint8_t buf[WORKER_MSG_MAX];
	size_t n;

	if (s->w_fd < 0 || s->w_op)
		return -EBUSY;
	req->has_seq = req->has_op = 1;
	req->seq = ++s->w_seq;
	n = hacd__worker_request__get_packed_size(req);
	if (n > sizeof(buf))
		return -EMSGSIZE;
	hacd__worker_request__pack(req, buf);
	if (send(s->w_fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		hacd_log(LOG_ERR, "service %s: worker %d: send: %s", s->name, (int)s->w_pid,
			 strerror(errno));
		return -errno;
	}
	s->w_op = req->op;
	s->w_sent_us = hacd_now_us();
	/* Invariant 6. Restores and launches are not bounded here: they end with the
	 * service running or failed, and the restore's retries have their own clock. */
	if (req->op == HACD__WORKER_OP__WORKER_OP_CHECKPOINT) {
		if (!s->w_timer)
			s->w_timer = evtimer_new(s->d->base, worker_timeout_cb, s);
		if (s->w_timer)
			arm_us(s->w_timer, s->cs ? s->cs->checkpoint_timeout_us : 60000000);
		else
			hacd_log(LOG_ERR, "service %s: no memory for its checkpoint timer: this "
				 "checkpoint is not bounded", s->name);
	}
	return 0;
}
