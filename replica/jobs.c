/*
 * jobs.c: the replica library's helper thread, for the disk waits of a standby's
 * commits (fsyncs of packs, directories and the catalog's WAL, a page store's GC) that
 * must not hold the caller's loop, where status requests wait behind them.
 *
 * DESIGN
 * The shape of hacd's helper (agent/hacd-bg.c, redis bio.c), owned by the library so
 * that any loop it runs in gets it, the test driver as well as hacd: one thread runs
 * jobs in order, each a `work` function that touches only paths, fds and the engine's
 * store calls (never the catalog handle, never libevent); then the loop runs the job's
 * `done`, woken through a pipe whose readiness the owner's callback turns into
 * rep__jobs_run_done().
 *
 *   loop: rep__jobs_submit(j) --queue, cond--> thread: j->work(j)
 *   loop: j->done(j)   <--pipe byte----------- thread: moved to the done list
 *
 * Invariants:
 *  1. Jobs are worked on in submission order, one at a time.
 *  2. done() runs in the loop's thread only, after work() returned, once.
 *  3. The thread blocks every signal: they go to the loop's thread.
 *  4. rep__jobs_free() returns once every job submitted, including those submitted by a
 *     done() meanwhile, was worked on and its done() ran: an owner freeing itself never
 *     leaves a job touching what it frees.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "replica-int.h"

struct rep__jobs {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* work queued, or stop */
	pthread_cond_t idle;		/* a job was worked on */
	struct rep__job *todo, **todo_tail, *done, **done_tail;
	bool busy, stop;
	int pipe[2];
	struct event *ev;
	void (*ready)(void *arg);
	void *arg;
};

static struct rep__job *take(struct rep__job **head, struct rep__job ***tail)
{
	struct rep__job *j = *head;

	if (j) {
		*head = j->next;
		if (!*head)
			*tail = head;
		j->next = NULL;
	}
	return j;
}

static void put(struct rep__job ***tail, struct rep__job *j)
{
	j->next = NULL;
	**tail = j;
	*tail = &j->next;
}

static void *jobs_main(void *arg)
{
	struct rep__jobs *q = arg;
	struct rep__job *j;
	ssize_t w;
	char b = 1;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->stop && !q->todo)
			pthread_cond_wait(&q->cond, &q->lock);
		if (!(j = take(&q->todo, &q->todo_tail)))
			break;
		q->busy = true;
		pthread_mutex_unlock(&q->lock);
		j->work(j);
		pthread_mutex_lock(&q->lock);
		q->busy = false;
		put(&q->done_tail, j);
		pthread_cond_broadcast(&q->idle);
		/* The loop is woken with the lock released, as hacd-bg.c does: a wake-up
		 * that preempts this thread must not leave the loop waiting for its lock.
		 * Nothing to do on failure: a full pipe (EAGAIN) already holds a byte. */
		pthread_mutex_unlock(&q->lock);
		w = write(q->pipe[1], &b, 1);
		(void)w;
		pthread_mutex_lock(&q->lock);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
	struct rep__jobs *q = arg;
	char buf[64];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	q->ready(q->arg);
}

unsigned rep__jobs_run_done(struct rep__jobs *q)
{
	struct rep__job *j;
	unsigned n = 0;

	for (;;) {
		pthread_mutex_lock(&q->lock);
		j = take(&q->done, &q->done_tail);
		pthread_mutex_unlock(&q->lock);
		if (!j)
			return n;
		j->done(j);	/* invariant 2; may free j */
		n++;
	}
}

int rep__jobs_new(struct event_base *base, void (*ready)(void *arg), void *arg,
		  struct rep__jobs **out)
{
	struct rep__jobs *q = calloc(1, sizeof(*q));
	sigset_t all, old;
	int ret;

	*out = NULL;
	if (!q)
		return -ENOMEM;
	q->todo_tail = &q->todo;
	q->done_tail = &q->done;
	q->ready = ready;
	q->arg = arg;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	pthread_cond_init(&q->idle, NULL);
	if (pipe2(q->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		ret = -errno;
		goto err_sync;
	}
	q->ev = event_new(base, q->pipe[0], EV_READ | EV_PERSIST, on_ready, q);
	if (!q->ev || event_add(q->ev, NULL) < 0) {
		ret = -ENOMEM;
		goto err;
	}
	/* Invariant 3: the thread inherits this mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&q->thread, NULL, jobs_main, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		goto err;
	*out = q;
	return 0;
err:
	if (q->ev)
		event_free(q->ev);
	close(q->pipe[0]);
	close(q->pipe[1]);
err_sync:
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	pthread_cond_destroy(&q->idle);
	free(q);
	return ret;
}

void rep__jobs_submit(struct rep__jobs *q, struct rep__job *j)
{
	pthread_mutex_lock(&q->lock);
	put(&q->todo_tail, j);
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Invariant 4. */
void rep__jobs_free(struct rep__jobs *q)
{
	bool more;

	if (!q)
		return;
	do {
		pthread_mutex_lock(&q->lock);
		while (q->todo || q->busy)
			pthread_cond_wait(&q->idle, &q->lock);
		pthread_mutex_unlock(&q->lock);
		rep__jobs_run_done(q);
		pthread_mutex_lock(&q->lock);
		more = q->todo || q->busy || q->done;
		pthread_mutex_unlock(&q->lock);
	} while (more);
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	event_free(q->ev);
	close(q->pipe[0]);
	close(q->pipe[1]);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	pthread_cond_destroy(&q->idle);
	free(q);
}
