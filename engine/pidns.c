/*
 * A tree that lives in a pid namespace of its own under our init: recognising the init,
 * the ids the tree sees, and what of the namespaces the images must carry.
 *
 * DESIGN
 * eng_launch (and restore --pidns) starts a service as the only child of a minimal
 * init of ours, pid 1 of new pid, ipc, uts and mount namespaces (the mount namespace
 * differs from hacd's only by a /proc of the new pid namespace: eng__ns_mount_proc). That init holds no state of
 * the service's: no fds, one thread, it only reaps and exits with the service's status.
 * So it is not dumped: the tree is the init's only child and everything below it, and
 * restore creates a fresh init of ours in new namespaces, which forks the root back.
 *
 *   outer view (hactl's /proc)           inside the namespace       pstree.img
 *   init    4711  "hacd-init"            1                          (recreated)
 *   service 4712                         2                          pid 2, outer_pid 4712
 *   worker  4730                         9                          pid 9, ppid 2
 *
 * Everything the dump reads through /proc and ptrace is in outer pids; the images hold
 * the inner ones (pid, ppid, pgid, sid, tids, timer targets), read from the NSpid,
 * NSpgid and NSsid lines of /proc/PID/status while the tree is frozen. pgid and sid
 * cannot be translated through the processes: a group whose leader exited has no
 * process to look up, but NSpgid still names it.
 *
 * INVARIANTS
 * 1. Only our init is taken for one: comm "hacd-init", one thread, no fd, pid 1 of a
 *    pid namespace one level below ours. A foreign init (a container's, `unshare
 *    --fork`'s shell) holds state we would drop: refused, naming it.
 * 2. The init has exactly one child. Orphans reparented to it (a double fork inside)
 *    would need several roots: refused, naming them.
 * 3. The ipc namespace holds no SysV semaphores or message queues (they are not
 *    dumped yet, and a new namespace at restore would lose them silently): refused,
 *    naming the kind. Shared memory segments are dumped (sysv-shm.c).
 * 4. The mount namespace holds no mount the service made (they are not dumped, and a
 *    restore would come back without them): refused, naming it (ns-mounts.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"

#define INIT_COMM "hacd-init"

/* The ids of a status text's NS* line: the innermost (last) one and how many. */
static pid_t last_id(const char *status, const char *key, int *levels)
{
	size_t kl = strlen(key);
	pid_t id = 0;

	if (levels)
		*levels = 0;
	for (const char *l = status; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
		char *end;

		if (strncmp(l, key, kl) || l[kl] != ':')
			continue;
		for (const char *s = l + kl + 1;; s = end) {
			long v = strtol(s, &end, 10);

			if (end == s)
				break;
			id = v;
			if (levels)
				++*levels;
		}
		break;
	}
	return id;
}

struct ns_ids {
	pid_t pid, pgid, sid, ppid;	/* pid, pgid, sid innermost; ppid outer */
	int levels;			/* entries on NSpid: 1 in the initial namespace */
};

static int read_ids(pid_t pid, pid_t tid, struct ns_ids *ids)
{
	char name[48], *buf;
	int ret;

	ret = eng__proc_read_task(pid, tid, "status", name, &buf);
	if (ret)
		return ret;
	ids->pid = last_id(buf, "NSpid", &ids->levels);
	ids->pgid = last_id(buf, "NSpgid", NULL);
	ids->sid = last_id(buf, "NSsid", NULL);
	ids->ppid = last_id(buf, "PPid", NULL);
	free(buf);
	if (ids->levels < 1 || ids->pid <= 0)
		return pr_errno(-EPROTO, "pid %d: /proc/%d/%s has no NSpid line", pid, pid, name);
	return 0;
}

static int ns_ino(pid_t pid, const char *ns, struct stat *st)
{
	char path[64];

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", pid, ns);
	else
		snprintf(path, sizeof(path), "/proc/self/ns/%s", ns);
	if (stat(path, st))
		return pr_errno(-errno, "pid %d: %s", pid ? pid : getpid(), path);
	return 0;
}

int eng__ns_same(pid_t a, pid_t b, const char *ns)
{
	struct stat sa, sb;
	int ret = ns_ino(a, ns, &sa);

	if (!ret)
		ret = ns_ino(b, ns, &sb);
	if (ret)
		return ret;
	return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* Children of a one-thread process (the init), as a space-separated list. */
static int init_children(pid_t init, pid_t *first, int *n, char *list, size_t len)
{
	char name[64], *buf, *s, *end;
	size_t used = 0;
	int ret;

	snprintf(name, sizeof(name), "task/%d/children", init);
	ret = eng__proc_read(init, name, &buf, NULL);
	if (ret)
		return ret;
	*n = 0;
	list[0] = 0;
	for (s = buf;; s = end) {
		long c = strtol(s, &end, 10);

		if (end == s)
			break;
		if (!(*n)++)
			*first = c;
		if (used < len)
			used += snprintf(list + used, len - used, "%s%ld", used ? " " : "", c);
	}
	free(buf);
	return 0;
}

/* Invariant 1: the init is one of ours. */
static int check_ours(pid_t init)
{
	char comm[32] = "", name[64], *buf;
	struct eng__stat st;
	struct dirent *de;
	int nfd = 0, ret;
	DIR *d;

	ret = eng__proc_read(init, "comm", &buf, NULL);
	if (ret)
		return ret;
	snprintf(comm, sizeof(comm), "%.*s", (int)strcspn(buf, "\n"), buf);
	free(buf);
	if (strcmp(comm, INIT_COMM))
		return eng__refuse("pid %d (%s) is pid 1 of another pid namespace and not hacd's init: "
				   "a foreign pid namespace is not supported (dump a service hacd or "
				   "`hactl run --pidns` launched)", init, comm);
	snprintf(name, sizeof(name), "/proc/%d/fd", init);
	d = opendir(name);
	if (!d)
		return pr_errno(-errno, "pid %d: %s", init, name);
	while ((de = readdir(d)))
		nfd += de->d_name[0] != '.';
	closedir(d);
	ret = eng__parse_stat(init, 0, &st);
	if (ret)
		return ret;
	if (nfd || st.nr_threads != 1)
		return eng__refuse("pid %d is named %s but holds %d fds and %d threads: not hacd's init, "
				   "not supported", init, INIT_COMM, nfd, st.nr_threads);
	return 0;
}

/*
 * Invariant 3, and the host name: from a child that joins the init's uts and ipc
 * namespaces (/proc/sys and /proc/sysvipc show the reader's own), so that we stay in
 * ours.
 */
struct probe_reply {
	int err;
	char what[64];
	char host[65];
};

static int sysvipc_count(const char *file)
{
	char buf[4096];
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC), lines = 0;

	if (fd < 0)
		return 0;	/* a kernel without SysV IPC holds none */
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	close(fd);
	return lines > 1 ? lines - 1 : 0;	/* a header line first */
}

static void __attribute__((noreturn)) probe_child(pid_t init, int out)
{
	/* Shared memory segments are dumped (sysv-shm.c). */
	static const char *const kinds[][2] = {
		{ "/proc/sysvipc/sem", "SysV semaphore sets" },
		{ "/proc/sysvipc/msg", "SysV message queues" },
	};
	struct probe_reply r = { 0 };
	struct utsname u;
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/ns/uts", init);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWUTS) || uname(&u)) {
		r.err = errno;
		snprintf(r.what, sizeof(r.what), "joining its uts namespace");
		goto out;
	}
	memcpy(r.host, u.nodename, sizeof(r.host) - 1);
	close(fd);
	snprintf(path, sizeof(path), "/proc/%d/ns/ipc", init);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWIPC)) {
		r.err = errno;
		snprintf(r.what, sizeof(r.what), "joining its ipc namespace");
		goto out;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int n = sysvipc_count(kinds[i][0]);

		if (n) {
			r.err = -1;
			snprintf(r.what, sizeof(r.what), "%d %s", n, kinds[i][1]);
			break;
		}
	}
out:
	if (write(out, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	_exit(0);
}

static int probe(struct eng__pidns *ns)
{
	struct probe_reply r;
	int p[2], st;
	ssize_t n;
	pid_t c;

	if (pipe2(p, O_CLOEXEC))
		return pr_errno(-errno, "pipe");
	c = fork();
	if (c == 0) {
		close(p[0]);
		probe_child(ns->init, p[1]);
	}
	close(p[1]);
	if (c < 0) {
		close(p[0]);
		return pr_errno(-errno, "fork");
	}
	while ((n = read(p[0], &r, sizeof(r))) < 0 && errno == EINTR)
		;
	close(p[0]);
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	if (n != sizeof(r))
		return pr_errno(-EIO, "pid %d: probing the namespaces of its init %d failed", ns->root, ns->init);
	if (r.err > 0)
		return pr_errno(-r.err, "init %d: %s", ns->init, r.what);
	if (r.err)
		return eng__refuse("pid %d: its ipc namespace (of init %d) holds %s: not supported yet", ns->root,
				   ns->init, r.what);
	memcpy(ns->hostname, r.host, sizeof(ns->hostname));
	ns->hostname[sizeof(ns->hostname) - 1] = 0;
	return 0;
}

/*
 * In our init, pid 1 of the new pid namespace and first process of the new mount
 * namespace, before it forks: a /proc of that pid namespace over the host's, so that a
 * service reading /proc/self or /proc/<its pid> finds itself. Private first, so that
 * neither this mount nor any the service makes reaches hacd's namespace; everything
 * else is the host's file system as it was at the clone. -errno, nothing logged: the
 * callers are forked children that report it their own way.
 */
int eng__ns_mount_proc(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL))
		return -errno;
	if (mount(ENG_NS_PROC_SOURCE, "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
		return -errno;
	return 0;
}

int eng__pidns_resolve(pid_t pid, struct eng__pidns *ns)
{
	struct ns_ids ids, self;
	char list[256];
	pid_t init, child = 0;
	int n, ret;

	memset(ns, 0, sizeof(*ns));
	ns->root = pid;
	ret = eng__ns_same(pid, 0, "pid");
	if (ret)
		return ret < 0 ? ret : 0;
	ret = read_ids(pid, 0, &ids);
	if (!ret)
		ret = read_ids(getpid(), 0, &self);
	if (ret)
		return ret;
	if (ids.levels != self.levels + 1)
		return eng__refuse("pid %d lives in a pid namespace %d levels below hacd's: only the one "
				   "hacd's init makes for a service is supported", pid, ids.levels - self.levels);
	init = pid;
	if (ids.pid != 1) {
		struct ns_ids pids;

		/* The service's pid rather than the init's: the same tree. */
		init = ids.ppid;
		ret = read_ids(init, 0, &pids);
		if (ret || pids.pid != 1 || pids.levels != ids.levels)
			return ret ? ret : eng__refuse("pid %d (%d in its pid namespace) lives in another pid "
						       "namespace than hacd and is not the top of a tree "
						       "hacd launched: not supported", pid, ids.pid);
	}
	ret = check_ours(init);
	if (!ret)
		ret = init_children(init, &child, &n, list, sizeof(list));
	if (ret)
		return ret;
	if (!n)
		return pr_errno(-ESRCH, "init %d: its service has exited", init);
	/* Invariant 2. */
	if (n > 1)
		return eng__refuse("init %d of pid %d's namespace has %d children (%s): processes "
				   "reparented to it after their parent exited are not supported yet",
				   init, pid, n, list);
	if (pid != init && child != pid)
		return pr_errno(-ESRCH, "pid %d: no longer the child of init %d", pid, init);
	ns->init = init;
	ns->root = child;
	ret = probe(ns);
	if (!ret)
		ret = eng__ns_check_mounts(init);
	if (!ret)
		pr_debug("pid %d: the tree of %d in the pid namespace of our init %d (host name %s)", pid, child,
			 init, ns->hostname);
	return ret;
}

static int add_id(struct eng__tree *t, pid_t outer, pid_t inner)
{
	if (t->nr_ids == t->cap_ids) {
		int cap = t->cap_ids ? t->cap_ids * 2 : 32;
		void *p = realloc(t->ids, cap * sizeof(*t->ids));

		if (!p)
			return -ENOMEM;
		t->ids = p;
		t->cap_ids = cap;
	}
	t->ids[t->nr_ids].outer = outer;
	t->ids[t->nr_ids].inner = inner;
	t->nr_ids++;
	return 0;
}

int eng__tree_inner(struct eng__tree *t, int i, const struct eng_victim *v)
{
	struct eng__tree_proc *p = &t->p[i];
	struct ns_ids ids;
	int ret = read_ids(p->pid, 0, &ids);

	if (ret)
		return ret;
	/* Pid 1 is the init, which is not in the tree. */
	if (ids.pid <= 1 || ids.levels < 2)
		return pr_errno(-EPROTO, "pid %d: %d in its pid namespace, which is no process of a service",
				p->pid, ids.pid);
	p->ipid = ids.pid;
	p->ipgid = ids.pgid;
	p->isid = ids.sid;
	t->inner = true;
	ret = add_id(t, p->pid, ids.pid);
	for (int k = 0; v && k < v->nr_threads && !ret; k++) {
		struct ns_ids th;

		if (v->th[k].tid == p->pid)
			continue;
		ret = read_ids(p->pid, v->th[k].tid, &th);
		if (!ret)
			ret = add_id(t, v->th[k].tid, th.pid);
	}
	return ret;
}

pid_t eng__tree_inner_id(const struct eng__tree *t, pid_t outer)
{
	for (int i = 0; i < t->nr_ids; i++)
		if (t->ids[i].outer == outer)
			return t->ids[i].inner;
	return 0;
}
