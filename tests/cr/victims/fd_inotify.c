/*
 * inotify: watches on a file and on a directory of our scratch directory, one removed
 * before ready so that the numbers have a gap (wd 1 and 3). After restore the watch
 * descriptors are the same, and touching the file or creating a file in the directory
 * gives an event with the right wd, mask and name. Events queued at the checkpoint are
 * lost by design, so none is queued then (the queue is drained before ready).
 */
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "../zdtm.h"

static int next_event(int fd, struct inotify_event *ev, size_t len)
{
	struct pollfd p = { fd, POLLIN, 0 };

	if (poll(&p, 1, 10000) != 1)
		zdtm_fail("no inotify event within 10 s");
	return read(fd, ev, len);
}

int main(void)
{
	char dir[4096], file[4096], name[4096 + 32], evbuf[4096];
	struct inotify_event *ev = (struct inotify_event *)evbuf;
	int fd, wf, wgap, wd, f;

	zdtm_init();
	snprintf(dir, sizeof(dir), "%s/watched", zdtm_dir());
	snprintf(file, sizeof(file), "%s/file", zdtm_dir());
	if (mkdir(dir, 0755) && errno != EEXIST)
		zdtm_fail("mkdir: %m");
	f = open(file, O_WRONLY | O_CREAT, 0644);
	if (f < 0)
		zdtm_fail("open: %m");
	close(f);
	fd = inotify_init1(IN_CLOEXEC);
	if (fd < 0)
		zdtm_fail("inotify_init1: %m");
	wf = inotify_add_watch(fd, file, IN_MODIFY | IN_ATTRIB);
	wgap = inotify_add_watch(fd, zdtm_dir(), IN_ALL_EVENTS);
	wd = inotify_add_watch(fd, dir, IN_CREATE | IN_DELETE);
	if (wf != 1 || wgap != 2 || wd != 3 || inotify_rm_watch(fd, wgap))
		zdtm_fail("watches %d %d %d: %m", wf, wgap, wd);
	next_event(fd, ev, sizeof(evbuf));	/* the IN_IGNORED of the removed watch */
	zdtm_check(ev->wd == wgap && (ev->mask & IN_IGNORED), "expected IN_IGNORED, got wd %d mask %#x", ev->wd,
		   ev->mask);
	zdtm_ready("inotify=%d", fd);

	while (!zdtm_stop)
		zdtm_sleep_ms(5);

	zdtm_check(fcntl(fd, F_GETFD) == FD_CLOEXEC, "FD_CLOEXEC lost");
	zdtm_check(!(fcntl(fd, F_GETFL) & O_NONBLOCK), "the fd became non-blocking");
	f = open(file, O_WRONLY | O_APPEND);
	if (f < 0 || write(f, "x", 1) != 1)
		zdtm_fail("append: %m");
	close(f);
	zdtm_check(next_event(fd, ev, sizeof(evbuf)) > 0, "read: %m");
	zdtm_check(ev->wd == wf && (ev->mask & IN_MODIFY), "file: wd %d mask %#x, want wd %d IN_MODIFY", ev->wd, ev->mask,
		   wf);
	snprintf(name, sizeof(name), "%s/new-%d", dir, zdtm_getpid());
	f = open(name, O_WRONLY | O_CREAT | O_EXCL, 0644);
	if (f < 0)
		zdtm_fail("create %s: %m", name);
	close(f);
	unlink(name);
	zdtm_check(next_event(fd, ev, sizeof(evbuf)) > 0, "read: %m");
	zdtm_check(ev->wd == wd && (ev->mask & IN_CREATE) && ev->len && !strncmp(ev->name, "new-", 4),
		   "dir: wd %d mask %#x name %s, want wd %d IN_CREATE new-", ev->wd, ev->mask, ev->len ? ev->name : "",
		   wd);
	zdtm_pass();
}
