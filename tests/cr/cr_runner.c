/*
 * cr_runner: checkpoint/restore round trips of one zdtm-style victim (issue 3).
 *
 * usage: cr_runner [MODE] [--hactl PATH] [--keep] VICTIM
 *
 * MODE (default: round trip, the dump kills the victim)
 *   (none)              start, snapshot /proc, `hactl dump` (victim must die of it),
 *                       `hactl restore --detach` (same pid back, our child again as we
 *                       are its subreaper), snapshot again and compare, SIGTERM, exit 0
 *   --leave-running     dump with --leave-running: the original must be unchanged and
 *                       pass its own checks; then restore the image (the pid is free
 *                       once the original is reaped) and the copy must pass too
 *   --no-checkpoint     no hactl at all: snapshot, let it run, compare, finish. Proves
 *                       the victim and its snapshot stability on their own
 *   --expect-dump-fail  the victim holds an fd the dumper does not support (facts
 *                       bad_fd=N kind=a|b): the dump must fail, name pid, fd and kind,
 *                       and leave the victim running and passing its checks
 *   --pidns-beside      dump --leave-running, then `hactl restore --pidns` while the
 *                       original still runs (its pids are taken here): the copy must
 *                       come back in new pid, ipc and uts namespaces under our init with
 *                       its pid inside and the dumped host name; both must pass
 *   --launched          `hactl run --pidns` starts the victim as a service does, pid 2
 *                       under our init in new pid, ipc, uts and mount namespaces (the runner
 *                       names its host); `hactl dump -t INIT` kills it, `hactl restore`
 *                       (no --pidns: the image says so) must bring back a new init with
 *                       the victim at its pid inside, the same /proc state (threads
 *                       numbered inside) and host name; the init ends with its status
 *   --launched-leave    the same with dump -t SERVICE --leave-running, and the copy
 *                       restored beside the original, which runs on: both must pass
 *   --corrupt           dump once, then for every *.img file flip its middle byte, and
 *                       separately cut it in half: each restore must fail, name the
 *                       file, and leave no process with the victim's pid; finally the
 *                       intact image must restore and pass
 *
 * --keep keeps the scratch dir of a passing test; --no-compare skips the /proc
 * comparison (to see what a victim's own checks say about a restore that is known to
 * differ; never used by ctest).
 *
 * Every victim runs in a fresh scratch dir with stdio on /dev/null and a log file, and
 * without the input pipe: pipes are not dumpable. Prints "PASS name" or "FAIL name: why"
 * on stdout, details on stderr; a failed test keeps its scratch dir.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crlib.h"

enum mode { M_ROUNDTRIP, M_LEAVE, M_SELF, M_DUMPFAIL, M_CORRUPT, M_PIDNS, M_LAUNCHED, M_LAUNCHED_LEAVE };

struct test {
	enum mode mode;
	const char *hactl;
	char *path;		/* realpath() of the victim, ours to free */
	char name[128];
	struct cr_dir dir;
	struct victim v;
	struct proc_snapshot before;
	int no_compare;		/* --no-compare: diagnosis only, never in ctest */
	char why[512];
};

static int why(struct test *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why(struct test *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->why[0]) {
		va_start(ap, fmt);
		vsnprintf(t->why, sizeof(t->why), fmt, ap);
		va_end(ap);
	}
	return 1;
}

static int start(struct test *t)
{
	struct victim_opts o = { .dir = t->dir.work, .log = t->dir.log, .no_input = 1 };

	if (victim_start_opts(t->path, &o, &t->v))
		return why(t, "victim did not start");
	if (cr_snapshot_settled(t->v.pid, &t->before, 2000))
		return why(t, "no snapshot of the victim");
	return 0;
}

/* Snapshot of a (restored or surviving) victim against the one taken at start. */
static int compare_pid(struct test *t, pid_t pid, const char *when)
{
	if (t->no_compare)
		return 0;
	if (cr_compare_settled(pid, &t->before, 2000))
		return why(t, "/proc state %s differs from before the dump", when);
	return 0;
}

static int compare(struct test *t, const char *when)
{
	return compare_pid(t, t->v.pid, when);
}

static int finish(struct test *t, const char *which)
{
	if (victim_finish(&t->v))
		return why(t, "the %s victim failed its own checks", which);
	return 0;
}

/*
 * A victim that finishes by itself (blocks=, no wake=) may be done at any moment after
 * its restore: nanosleep_abs restored after its deadline returns at once. Once it has
 * exited, its exit status is what tells whether it carried on correctly.
 */
static int self_finishing(const struct test *t)
{
	return victim_fact(&t->v, "blocks") && !victim_fact(&t->v, "wake");
}

/* Its verdict from its wait status, once reaped. */
static int verdict(struct test *t, int st)
{
	t->v.pid = 0;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : why(t, "restored victim finished with status %#x", st);
}

/* The restored victim: running under its pid, our child, snapshot equal, passes. */
static int restore_and_check(struct test *t, const char *img)
{
	pid_t pid = t->v.pid, r;
	char diff[sizeof(t->why)];
	int st, rc;

	rc = cr_restore(t->hactl, img, t->dir.hlog, NULL);
	if (rc)
		return why(t, "hactl restore exited %d", rc);
	r = waitpid(pid, &st, WNOHANG);
	if (r < 0)
		return why(t, "restored pid %d is not our child (not reparented to the runner)", pid);
	if (r == pid)
		return self_finishing(t) ? verdict(t, st) : why(t, "the restored victim ended with status %#x", st);
	if (!compare(t, "after restore"))
		return finish(t, "restored");
	/* Nothing to compare with once it has finished by itself meanwhile. */
	if (self_finishing(t) && waitpid(pid, &st, WNOHANG) == pid) {
		snprintf(diff, sizeof(diff), "%s", t->why);
		t->why[0] = 0;
		fprintf(stderr, "note: the restored victim finished during the comparison (%s)\n", diff);
		return verdict(t, st);
	}
	return 1;
}

/* The victim started, left to exercise its state a little, dumped (leave: and left
 * running) into t->dir.img. */
static int start_and_dump(struct test *t, int leave)
{
	int rc;

	if (start(t))
		return 1;
	usleep(50000);
	rc = cr_dump(t->hactl, t->v.pid, t->dir.img, leave, t->dir.hlog, NULL);
	if (rc)
		return why(t, "hactl dump%s exited %d", leave ? " --leave-running" : "", rc);
	return 0;
}

static int run_roundtrip(struct test *t)
{
	if (start_and_dump(t, 0))
		return 1;
	if (cr_wait_killed(t->v.pid, 10000))
		return why(t, "the dumped victim was not killed");
	if (cr_wait_pid_gone(t->v.pid, 5000))
		return why(t, "pid %d still exists after the dump", t->v.pid);
	return restore_and_check(t, t->dir.img);
}

static int run_leave_running(struct test *t)
{
	pid_t pid;

	if (start_and_dump(t, 1))
		return 1;
	pid = t->v.pid;
	if (!cr_pid_alive(pid))
		return why(t, "the victim did not survive dump --leave-running");
	if (compare(t, "after dump --leave-running"))
		return 1;
	usleep(50000);
	if (finish(t, "original (left running)"))
		return 1;
	/* The original is reaped: its pid is free for the restored copy. */
	if (cr_wait_pid_gone(pid, 5000))
		return why(t, "pid %d still exists after the original exited", pid);
	t->v.pid = pid;
	return restore_and_check(t, t->dir.img);
}

/* Do processes a and b (0: ourselves) live in different namespaces ns? */
static int ns_differs_from(pid_t a, pid_t b, const char *ns)
{
	char pa[64], pb[64], la[128] = "", lb[128] = "";

	snprintf(pa, sizeof(pa), "/proc/%d/ns/%s", a, ns);
	if (b)
		snprintf(pb, sizeof(pb), "/proc/%d/ns/%s", b, ns);
	else
		snprintf(pb, sizeof(pb), "/proc/self/ns/%s", ns);
	return readlink(pa, la, sizeof(la) - 1) > 0 && readlink(pb, lb, sizeof(lb) - 1) > 0 && strcmp(la, lb);
}

static int ns_differs(pid_t pid, const char *ns)
{
	return ns_differs_from(pid, 0, ns);
}

/* pid as its own pid namespace sees it (the last NSpid), 0 when unknown. */
static pid_t inner_pid(pid_t pid)
{
	char path[64], line[256], *v;
	pid_t inner = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "NSpid:", 6) && (v = strrchr(line, '\t')))
			inner = atoi(v + 1);
	if (f)
		fclose(f);
	return inner;
}

/* The copy under --pidns: the init's only child, its pid inside the one dumped. */
static int check_pidns_copy(struct test *t, pid_t init, pid_t pid, pid_t *copy)
{
	char path[64];
	pid_t inner;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", init, init);
	*copy = 0;
	f = fopen(path, "re");
	if (!f || fscanf(f, "%d", copy) != 1)
		*copy = 0;
	if (f)
		fclose(f);
	if (*copy <= 0)
		return why(t, "the restore's init %d has no child", init);
	inner = inner_pid(*copy);
	if (inner != pid)
		return why(t, "copy %d is pid %d inside its namespace, not %d", *copy, inner, pid);
	for (const char *const *ns = (const char *const[]){ "pid", "ipc", "uts", "mnt", NULL }; *ns; ns++)
		if (!ns_differs(*copy, *ns))
			return why(t, "copy %d shares our %s namespace", *copy, *ns);
	return 0;
}

static int run_pidns(struct test *t)
{
	char *argv[] = { (char *)t->hactl, "restore", "-D", t->dir.img, "--detach", "--pidns", NULL };
	char *out = NULL;
	pid_t pid, init = 0, copy;
	int rc, st;

	if (start_and_dump(t, 1))
		return 1;
	pid = t->v.pid;
	rc = cr_run(argv, t->dir.hlog, 60000, &out);
	if (rc || !out || sscanf(out, "restored pid %d", &init) != 1 || init <= 0) {
		free(out);
		return why(t, "hactl restore --pidns exited %d", rc);
	}
	free(out);
	if (check_pidns_copy(t, init, pid, &copy)) {
		kill(init, SIGKILL);
		waitpid(init, NULL, 0);
		return 1;
	}
	if (!cr_pid_alive(pid) || compare(t, "beside its copy"))
		return why(t, "the original changed while its copy was restored beside it");
	if (finish(t, "original (beside its copy)"))
		return 1;
	/* The init (ours since hactl exited: we are the subreaper) ends with the copy's
	 * status. */
	kill(copy, SIGTERM);
	for (int i = 0; i < 30000 && waitpid(init, &st, WNOHANG) != init; i++)
		usleep(1000);
	if (cr_pid_alive(init)) {
		kill(init, SIGKILL);
		waitpid(init, NULL, 0);
		return why(t, "the copy did not finish");
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return why(t, "the copy under --pidns failed its own checks (init status %#x)", st);
	return 0;
}

/* ---- --launched: a service in its own namespaces ---------------------------------- */

/* One launched service: its init and itself as we see them, itself inside. */
struct service {
	pid_t init, pid, inner;
};

/* The host name of pid's uts namespace (set it first when set is not NULL), from a
 * child that joins it. 0 when done. */
static int uts_name(pid_t pid, const char *set, char name[65])
{
	int p[2], st;
	pid_t c;

	if (pipe(p))
		return -1;
	c = fork();
	if (c == 0) {
		char path[64];
		struct utsname u;
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/ns/uts", pid);
		fd = open(path, O_RDONLY);
		if (fd < 0 || setns(fd, CLONE_NEWUTS) || (set && sethostname(set, strlen(set))) || uname(&u))
			_exit(1);
		_exit(write(p[1], u.nodename, 65) == 65 ? 0 : 1);
	}
	close(p[1]);
	st = c > 0 && read(p[0], name, 65) == 65 ? 0 : -1;
	close(p[0]);
	if (c > 0)
		waitpid(c, NULL, 0);
	name[64] = 0;
	return st;
}

static int launch(struct test *t, struct service *s)
{
	char *argv[] = { (char *)t->hactl, "run", "--pidns", "--log", t->dir.log, "--cwd", t->dir.work,
			 "--", t->path, NULL };
	char *out = NULL, host[65], want[65];
	int rc;

	/* The init is ours once hactl exits. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	rc = cr_run(argv, t->dir.hlog, 30000, &out);
	if (rc || !out || sscanf(out, "init %d service %d", &s->init, &s->pid) != 2) {
		free(out);
		return why(t, "hactl run --pidns exited %d", rc);
	}
	free(out);
	if (victim_attach(&t->v, s->pid, t->dir.log, 20000))
		return why(t, "the launched victim did not start");
	s->inner = inner_pid(s->pid);
	if (s->inner <= 1)
		return why(t, "the launched victim is pid %d inside", s->inner);
	/* A name of its own, which restore must give its new uts namespace. */
	snprintf(want, sizeof(want), "cr-%.40s", t->name);
	if (uts_name(s->pid, want, host) || strcmp(host, want))
		return why(t, "cannot name the service's host");
	if (cr_snapshot_settled(s->pid, &t->before, 2000))
		return why(t, "no snapshot of the victim");
	return 0;
}

/* Wait for an init of ours (our child) to end: its status, or -1 after timeout_ms. */
static int wait_init(pid_t init, int timeout_ms)
{
	int st;

	for (int i = 0; i < timeout_ms; i++) {
		pid_t r = waitpid(init, &st, WNOHANG);

		if (r == init)
			return st;
		if (r < 0)
			return -1;
		usleep(1000);
	}
	return -1;
}

/* Ask a launched victim to finish: its init must end with the victim's exit 0. */
static int finish_service(struct test *t, const struct service *s, const char *which)
{
	int st;

	if (!victim_fact(&t->v, "blocks") || victim_fact(&t->v, "wake"))
		kill(s->pid, SIGTERM);
	st = wait_init(s->init, 30000);
	if (st == -1) {
		kill(s->init, SIGKILL);
		waitpid(s->init, NULL, 0);
		return why(t, "the %s victim did not finish", which);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		return why(t, "the %s victim failed its own checks (its init ended with %#x)", which, st);
	return 0;
}

/* The copy: a new init of ours, the victim its child with the same pid inside, in
 * namespaces other than ours, with the host name and /proc state it was dumped with. */
static int check_service_copy(struct test *t, const struct service *orig, const struct service *copy)
{
	char path[64], comm[32] = "", host[65], want[65];
	int ppid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", copy->init);
	f = fopen(path, "re");
	if (!f || !fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	if (f)
		fclose(f);
	if (strcmp(comm, "hacd-init\n"))
		return why(t, "the restored init %d is %s", copy->init, comm);
	/* ...and holds no fd (pidns.c, invariant 1): else the next dump refuses it. */
	snprintf(path, sizeof(path), "/proc/%d/fd", copy->init);
	{
		DIR *d = opendir(path);
		struct dirent *de;
		int nfd = 0;

		while (d && (de = readdir(d)))
			nfd += de->d_name[0] != '.';
		if (d)
			closedir(d);
		if (!d || nfd)
			return why(t, "the restored init %d holds %d fds once hactl restore is done", copy->init, nfd);
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", copy->pid);
	f = fopen(path, "re");
	if (!f || fscanf(f, "%*d (%*[^)]) %*c %d", &ppid) != 1)
		ppid = 0;
	if (f)
		fclose(f);
	if (ppid != copy->init)
		return why(t, "the restored victim %d is the child of %d, not of its init %d", copy->pid, ppid,
			   copy->init);
	if (inner_pid(copy->pid) != orig->inner)
		return why(t, "the restored victim is pid %d inside, was %d", inner_pid(copy->pid), orig->inner);
	for (const char *const *ns = (const char *const[]){ "pid", "ipc", "uts", "mnt", NULL }; *ns; ns++)
		if (!ns_differs(copy->pid, *ns) || (orig->pid != copy->pid && cr_pid_alive(orig->pid) &&
						     !ns_differs_from(copy->pid, orig->pid, *ns)))
			return why(t, "the restored victim %d shares a %s namespace", copy->pid, *ns);
	snprintf(want, sizeof(want), "cr-%.40s", t->name);
	if (uts_name(copy->pid, NULL, host) || strcmp(host, want))
		return why(t, "the restored victim's host name is %s, not %s", host, want);
	return compare_pid(t, copy->pid, "after restore");
}

static int restore_service(struct test *t, struct service *copy)
{
	char *out = NULL;
	int rc = cr_restore(t->hactl, t->dir.img, t->dir.hlog, &out);

	if (rc || !out || sscanf(out, "restored pid %d service %d", &copy->init, &copy->pid) != 2) {
		free(out);
		return why(t, "hactl restore exited %d, or did not name an init and a service", rc);
	}
	free(out);
	return 0;
}

static int run_launched(struct test *t, int leave)
{
	struct service s = { 0 }, copy = { 0 };
	int rc, st, ret;

	if (launch(t, &s))
		return 1;
	t->v.pid = 0;	/* not our child: finished through its init */
	usleep(50000);
	/* The round trip dumps the init, the other the service: both name the same tree. */
	rc = cr_dump(t->hactl, leave ? s.pid : s.init, t->dir.img, leave, t->dir.hlog, NULL);
	if (rc) {
		kill(s.init, SIGKILL);
		waitpid(s.init, NULL, 0);
		return why(t, "hactl dump%s -t %d exited %d", leave ? " --leave-running" : "", leave ? s.pid : s.init,
			   rc);
	}
	if (!leave) {
		st = wait_init(s.init, 10000);
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 128 + SIGKILL)
			return why(t, "the dumped victim was not killed (its init: %#x)", st);
	} else if (!cr_pid_alive(s.pid) || compare_pid(t, s.pid, "after dump --leave-running")) {
		return why(t, "the original changed with dump --leave-running");
	}
	if (restore_service(t, &copy)) {
		if (leave)
			finish_service(t, &s, "original");
		return 1;
	}
	ret = check_service_copy(t, &s, &copy);
	/* Beside each other, each in its own namespaces: both must pass. */
	if (!ret && leave)
		ret = finish_service(t, &s, "original (left running)");
	if (!ret)
		return finish_service(t, &copy, "restored");
	kill(copy.init, SIGKILL);
	waitpid(copy.init, NULL, 0);
	if (leave) {
		kill(s.init, SIGKILL);
		waitpid(s.init, NULL, 0);
	}
	return 1;
}

static int run_self(struct test *t)
{
	if (start(t))
		return 1;
	usleep(200000);
	if (compare(t, "200 ms later"))
		return 1;
	return finish(t, "unchecked");
}

/* Does text contain word as a whole token (not part of a longer number or name)? */
static int has_token(const char *text, const char *word)
{
	size_t l = strlen(word);

	for (const char *p = text; (p = strcasestr(p, word)); p++) {
		int before = p == text || !isalnum((unsigned char)p[-1]);
		int after = !isalnum((unsigned char)p[l]);

		/* A kind may be a prefix of a longer word ("socket" in "sockets"): only
		 * numbers must match exactly. */
		if (before && (after || !isdigit((unsigned char)word[0])))
			return 1;
	}
	return 0;
}

static int run_dump_fail(struct test *t)
{
	const char *fd = NULL, *kind = NULL;
	char spid[16], kinds[128], *out = NULL, *k, *save;
	int rc, named = 0;

	if (start(t))
		return 1;
	fd = victim_fact(&t->v, "bad_fd");
	if (!fd)	/* a refusal about a process of the tree rather than an fd */
		fd = victim_fact(&t->v, "bad_pid");
	kind = victim_fact(&t->v, "kind");
	if (!fd || !kind)
		return why(t, "victim did not say bad_fd= (or bad_pid=) and kind=");
	rc = cr_dump(t->hactl, t->v.pid, t->dir.img, 0, t->dir.hlog, &out);
	snprintf(spid, sizeof(spid), "%d", t->v.pid);
	snprintf(kinds, sizeof(kinds), "%s", kind);
	for (k = strtok_r(kinds, "|", &save); k; k = strtok_r(NULL, "|", &save))
		named |= has_token(out, k);
	if (!rc)
		why(t, "hactl dump succeeded on an unsupported fd");
	else if (rc < 0)
		why(t, "hactl dump crashed or hung");
	else if (!has_token(out, spid) || !has_token(out, fd) || !named)
		why(t, "the dump's error does not name pid %s, fd %s and kind %s: %s", spid, fd, kind,
		    out[0] ? out : "(no output)");
	free(out);
	if (t->why[0])
		return 1;
	if (!cr_pid_alive(t->v.pid))
		return why(t, "the victim did not survive the failed dump");
	if (compare(t, "after the failed dump"))
		return 1;
	return finish(t, "refused");
}

/* One corrupted copy of the image: the restore must fail, name the file, leave no
 * process behind. */
static int try_corrupt(struct test *t, const char *file, int truncate_it)
{
	char bad[400], p[700], *out = NULL;
	const char *how = truncate_it ? "cut in half" : "middle byte flipped";
	struct stat st;
	int rc, fd;

	snprintf(bad, sizeof(bad), "%s/img-bad", t->dir.top);
	cr_dir_remove(bad);
	if (cr_copy_dir(t->dir.img, bad))
		return why(t, "cannot copy the image");
	snprintf(p, sizeof(p), "%s/%s", bad, file);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		return why(t, "open %s: %m", p);
	if (truncate_it) {
		if (ftruncate(fd, st.st_size / 2))
			return why(t, "truncate %s: %m", p);
	} else {
		unsigned char c;
		off_t mid = st.st_size / 2;

		if (pread(fd, &c, 1, mid) != 1)
			return why(t, "read %s: %m", p);
		c ^= 0xff;
		if (pwrite(fd, &c, 1, mid) != 1)
			return why(t, "write %s: %m", p);
	}
	close(fd);
	rc = cr_restore(t->hactl, bad, t->dir.hlog, &out);
	fprintf(stderr, "%s %s: restore exited %d: %.*s\n", file, how, rc, (int)strcspn(out, "\n"), out);
	if (rc == 0)
		why(t, "restore of %s with %s succeeded", file, how);
	else if (rc < 0)
		why(t, "restore of %s with %s crashed or hung", file, how);
	else if (!strstr(out, file))
		why(t, "restore of %s with %s failed without naming the file: %s", file, how,
		    out[0] ? out : "(no output)");
	free(out);
	if (cr_wait_pid_gone(t->v.pid, 3000)) {
		kill(t->v.pid, SIGKILL);
		cr_wait_pid_gone(t->v.pid, 3000);
		return why(t, "restore of %s with %s left pid %d behind", file, how, t->v.pid);
	}
	/* Nor anything else: whatever it forked would have been reparented to us. */
	{
		char comm[16];
		pid_t left = cr_live_child(2000, comm);

		if (left) {
			kill(left, SIGKILL);
			cr_wait_pid_gone(left, 3000);
			return why(t, "restore of %s with %s left process %d (%s) behind", file, how, left, comm);
		}
	}
	return t->why[0] ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_corrupt(struct test *t)
{
	char *files[256];
	int n = 0, rc, ret = 0;
	struct dirent *de;
	DIR *d;

	if (start(t))
		return 1;
	rc = cr_dump(t->hactl, t->v.pid, t->dir.img, 0, t->dir.hlog, NULL);
	if (rc)
		return why(t, "hactl dump exited %d", rc);
	if (cr_wait_killed(t->v.pid, 10000) || cr_wait_pid_gone(t->v.pid, 5000))
		return why(t, "the dumped victim was not killed");
	d = opendir(t->dir.img);
	while (d && (de = readdir(d)) && n < 256) {
		size_t l = strlen(de->d_name);

		if (l > 4 && !strcmp(de->d_name + l - 4, ".img"))
			files[n++] = strdup(de->d_name);
	}
	if (d)
		closedir(d);
	if (!n)
		return why(t, "the dump wrote no *.img files");
	qsort(files, n, sizeof(files[0]), cmp_str);
	/* Go on after a failure: the report lists every file kind that is not refused. */
	for (int i = 0; i < n; i++) {
		for (int trunc = 0; trunc < 2; trunc++)
			if (try_corrupt(t, files[i], trunc)) {
				fprintf(stderr, "FAIL: %s\n", t->why);
				t->why[0] = 0;
				ret++;
			}
		free(files[i]);
	}
	if (ret)
		return why(t, "%d of %d corrupted images not refused cleanly (see above)", ret, 2 * n);
	fprintf(stderr, "%d image files, each refused flipped and cut; now the intact image\n", n);
	return restore_and_check(t, t->dir.img);
}

static void usage(void)
{
	fprintf(stderr, "usage: cr_runner [--leave-running|--no-checkpoint|--expect-dump-fail|--corrupt|--pidns-beside|"
			"--launched|--launched-leave] "
			"[--hactl PATH] [--keep] VICTIM\n");
	exit(64);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "leave-running", no_argument, NULL, 'l' }, { "no-checkpoint", no_argument, NULL, 's' },
		{ "expect-dump-fail", no_argument, NULL, 'f' }, { "corrupt", no_argument, NULL, 'c' },
		{ "hactl", required_argument, NULL, 'H' }, { "keep", no_argument, NULL, 'k' },
		{ "no-compare", no_argument, NULL, 'n' }, { "pidns-beside", no_argument, NULL, 'p' },
		{ "launched", no_argument, NULL, 'L' }, { "launched-leave", no_argument, NULL, 'B' },
		{ NULL, 0, NULL, 0 },
	};
	struct test t = { .mode = M_ROUNDTRIP, .hactl = "hactl" };
	const char *base;
	int opt, ret, keep = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': t.mode = M_LEAVE; break;
		case 's': t.mode = M_SELF; break;
		case 'f': t.mode = M_DUMPFAIL; break;
		case 'c': t.mode = M_CORRUPT; break;
		case 'p': t.mode = M_PIDNS; break;
		case 'L': t.mode = M_LAUNCHED; break;
		case 'B': t.mode = M_LAUNCHED_LEAVE; break;
		case 'H': t.hactl = optarg; break;
		case 'k': keep = 1; break;
		case 'n': t.no_compare = 1; break;
		default: usage();
		}
	}
	if (optind != argc - 1)
		usage();
	/* The victim runs in its scratch dir: a relative path would not reach it. */
	t.path = realpath(argv[optind], NULL);
	if (!t.path) {
		fprintf(stderr, "%s: %m\n", argv[optind]);
		return 64;
	}
	base = strrchr(t.path, '/') ? strrchr(t.path, '/') + 1 : t.path;
	snprintf(t.name, sizeof(t.name), "%s", strncmp(base, "victim_", 7) ? base : base + 7);
	if (cr_dir_make(&t.dir, t.name)) {
		printf("FAIL %s: no scratch dir\n", t.name);
		return 1;
	}
	switch (t.mode) {
	case M_ROUNDTRIP: ret = run_roundtrip(&t); break;
	case M_LEAVE: ret = run_leave_running(&t); break;
	case M_SELF: ret = run_self(&t); break;
	case M_DUMPFAIL: ret = run_dump_fail(&t); break;
	case M_PIDNS: ret = run_pidns(&t); break;
	case M_LAUNCHED: ret = run_launched(&t, 0); break;
	case M_LAUNCHED_LEAVE: ret = run_launched(&t, 1); break;
	default: ret = run_corrupt(&t); break;
	}
	if (t.v.pid > 0)
		victim_kill(&t.v);
	cr_reap_strays(0);
	proc_snapshot_free(&t.before);
	free(t.path);
	if (ret) {
		cr_show("victim log", t.dir.log);
		cr_show("hactl log", t.dir.hlog);
		printf("FAIL %s: %s (scratch dir %s kept)\n", t.name, t.why[0] ? t.why : "see above", t.dir.top);
		return 1;
	}
	if (!keep)
		cr_dir_remove(t.dir.top);
	printf("PASS %s\n", t.name);
	return 0;
}
