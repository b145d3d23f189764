/*
 * hacd-bg.c: hacd's helper thread, for the disk waits that must not stall the loop.
 *
 * DESIGN
 * Under load (20 services at 1 s) the loop spent most of each second in fsync: the
 * catalog's commits (synchronous=FULL) and GC's unlinks and directory fsyncs. The
 * catalog now commits without fsync (catalog.c DURABILITY) and the waits moved here:
 * one thread runs jobs in order, each a `work` function that touches only paths and
 * fds (never the catalog handle, never libevent, never a struct svc), then the loop
 * runs the job's `done` function, woken through a pipe (redis bio.c, in small).
 *
 *   loop: hacd_bg_submit(job) --queue, cond--> thread: job->work(job)
 *   loop: job->done(d, job)  <--pipe byte---- thread: moved to the done list
 *
 * Invariants:
 *  1. Jobs are worked on in submission order, one at a time: a job submitted after a
 *     commit works after every earlier job, and its cat_sync_path covers that commit.
 *  2. done() runs in the loop only, after work() returned; then the job is freed.
 *  3. The thread never forks and blocks every signal: workers are forked by the loop's
 *     thread (their PR_SET_PDEATHSIG follows it), signals go to libevent there.
 *  4. At stop, queued jobs are worked on (what they fsync or unlink is wanted) but their
 *     done() is not run: the catalog is closing. What done() would have recorded is
 *     redone at the next start (dead packs are returned by cat_gc_begin() again;
 *     unshipped generations are in the replication backlog).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "hacd.h"

struct hacd_bg {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	TAILQ_HEAD(, hacd_bg_job) todo, done;
	bool stop;
	int pipe[2];
	struct event *ev;
	struct hacd *d;
};

static void *bg_main(void *arg)
{
	struct hacd_bg *bg = arg;
	struct hacd_bg_job *j;
	char b = 1;

	pthread_mutex_lock(&bg->lock);
	for (;;) {
		while (!bg->stop && TAILQ_EMPTY(&bg->todo))
			pthread_cond_wait(&bg->cond, &bg->lock);
		if (TAILQ_EMPTY(&bg->todo))
			break;
		j = TAILQ_FIRST(&bg->todo);
		j->started = true;
		pthread_mutex_unlock(&bg->lock);
		j->work(j);
		pthread_mutex_lock(&bg->lock);
		TAILQ_REMOVE(&bg->todo, j, link);
		TAILQ_INSERT_TAIL(&bg->done, j, link);
		/* The loop is woken with the lock released: the wake-up may preempt this
		 * thread, and a loop woken into a lock held by a preempted thread waited
		 * for it up to 23 ms under a disk-heavy load (perf sched, futex waits in
		 * bg_ready). Full pipe: the loop has a byte to read already. */
		pthread_mutex_unlock(&bg->lock);
		if (write(bg->pipe[1], &b, 1) < 0 && errno != EAGAIN)
			hacd_log(LOG_ERR, "helper thread: wake-up pipe: %s", strerror(errno));
		pthread_mutex_lock(&bg->lock);
	}
	pthread_mutex_unlock(&bg->lock);
	return NULL;
}

static void bg_ready(evutil_socket_t fd, short what, void *arg)
{
	struct hacd_bg *bg = arg;
	struct hacd_bg_job *j;
	char buf[64];
	int n = 0;

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	for (;;) {
		pthread_mutex_lock(&bg->lock);
		j = TAILQ_FIRST(&bg->done);
		if (j)
			TAILQ_REMOVE(&bg->done, j, link);
		pthread_mutex_unlock(&bg->lock);
		if (!j)
			break;
		if (j->done)
			j->done(bg->d, j);	/* invariant 2 */
		j->free(j);
		n++;
	}
	hacd_held_detail("%d jobs", n);
}
HACD_LOOP_CB(bg_cb, bg_ready, "helper thread results")

int hacd_bg_start(struct hacd *d)
{
	struct hacd_bg *bg = calloc(1, sizeof(*bg));
	sigset_t all, old;
	int ret;

	if (!bg)
		return -ENOMEM;
	bg->d = d;
	TAILQ_INIT(&bg->todo);
	TAILQ_INIT(&bg->done);
	pthread_mutex_init(&bg->lock, NULL);
	pthread_cond_init(&bg->cond, NULL);
	if (pipe2(bg->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = -errno;
		free(bg);
		return ret;
	}
	bg->ev = event_new(d->base, bg->pipe[0], EV_READ | EV_PERSIST, bg_cb, bg);
	if (!bg->ev || event_add(bg->ev, NULL) < 0) {
		ret = -ENOMEM;
		goto err;
	}
	/* Invariant 3: the thread inherits this mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&bg->thread, NULL, bg_main, bg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto err;
	d->bg = bg;
	return 0;
err:
	hacd_log(LOG_ERR, "helper thread: %s", strerror(-ret));
	if (bg->ev)
		event_free(bg->ev);
	close(bg->pipe[0]);
	close(bg->pipe[1]);
	free(bg);
	return ret;
}

/* Invariant 4. */
void hacd_bg_stop(struct hacd *d)
{
	struct hacd_bg *bg = d->bg;
	struct hacd_bg_job *j;

	if (!bg)
		return;
	pthread_mutex_lock(&bg->lock);
	bg->stop = true;
	pthread_cond_signal(&bg->cond);
	pthread_mutex_unlock(&bg->lock);
	pthread_join(bg->thread, NULL);
	while ((j = TAILQ_FIRST(&bg->done))) {
		TAILQ_REMOVE(&bg->done, j, link);
		j->free(j);
	}
	event_free(bg->ev);
	close(bg->pipe[0]);
	close(bg->pipe[1]);
	pthread_mutex_destroy(&bg->lock);
	pthread_cond_destroy(&bg->cond);
	free(bg);
	d->bg = NULL;
}

/* Consumes j. Without a thread (not started, or stopped), work and done run here. */
void hacd_bg_submit(struct hacd *d, struct hacd_bg_job *j)
{
	struct hacd_bg *bg = d->bg;

	if (!bg) {
		j->started = true;
		j->work(j);
		if (j->done)
			j->done(d, j);
		j->free(j);
		return;
	}
	pthread_mutex_lock(&bg->lock);
	TAILQ_INSERT_TAIL(&bg->todo, j, link);
	pthread_mutex_unlock(&bg->lock);
	/* After the unlock, as the thread's wake-up is (bg_main). */
	pthread_cond_signal(&bg->cond);
}

/*
 * Run fn(j, arg) with the job's lock held if it has not started yet, and return true;
 * false once the thread took it. For adding to a queued job (a sync that has not
 * begun covers what is added to it).
 */
bool hacd_bg_amend(struct hacd *d, struct hacd_bg_job *j, void (*fn)(struct hacd_bg_job *, void *),
		   void *arg)
{
	struct hacd_bg *bg = d->bg;
	bool ok;

	if (!bg)
		return false;
	pthread_mutex_lock(&bg->lock);
	ok = !j->started;
	if (ok)
		fn(j, arg);
	pthread_mutex_unlock(&bg->lock);
	return ok;
}
