/*
 * Harness for real-process tests. PID 1 on our machines reaps orphans late, so the
 * runner makes itself a child subreaper and reaps everything it started itself.
 *
 * Snapshots record what a checkpoint (or an injection) must leave exactly as it was,
 * and only that: anything a running victim changes by itself (pending signals that are
 * about to be delivered, counters) is left out, so that a difference is always a bug.
 * Two normalisations make kernel-internal differences invisible:
 *  - adjacent VMAs that the kernel could merge (same flags, same file, contiguous
 *    offsets) are merged: a restore that maps in one go what the kernel had split
 *    is not wrong;
 *  - the inode of an object a restore must recreate (deleted files, memfd, shmem)
 *    is not compared: it is necessarily new. Pipes and sockets in the fd table are
 *    numbered by first appearance instead ("pipe:[#1]"), which keeps which fds share
 *    one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

int fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 1;
}

/* Is /proc/pid there (a zombie counts)? */
static int proc_exists(pid_t pid)
{
	char p[32];

	snprintf(p, sizeof(p), "/proc/%d", pid);
	return !access(p, F_OK);
}

char *cr_slurp(const char *path)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t r;

	if (fd < 0 || !buf) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while ((r = read(fd, buf + n, cap - n - 1)) > 0) {
		n += r;
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	close(fd);
	buf[n] = 0;
	return buf;
}

void cr_show(const char *heading, const char *path)
{
	char *s = cr_slurp(path);

	fprintf(stderr, "---- %s (%s)\n%s%s---- end\n", heading, path, s ? s : "(none)\n",
		s && *s && s[strlen(s) - 1] != '\n' ? "\n" : "");
	free(s);
}

/* A growing string. */
struct sb {
	char *s;
	size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (!b->s || b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 4096;
		b->s = realloc(b->s, b->cap);
	}
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, n + 1, fmt, ap);
	va_end(ap);
	b->len += n;
}

static char *sb_done(struct sb *b)
{
	if (!b->s)
		sb_printf(b, "%s", "");
	return b->s;
}

static void parse_facts(struct victim *v)
{
	char *save, *w;

	v->nr_facts = 0;
	for (w = strtok_r(v->line, " \n", &save); w && v->nr_facts < VICTIM_MAX_FACTS;
	     w = strtok_r(NULL, " \n", &save)) {
		char *eq = strchr(w, '=');

		if (!eq)
			continue;
		*eq = 0;
		v->keys[v->nr_facts] = w;
		v->vals[v->nr_facts++] = eq + 1;
	}
}

const char *victim_fact(const struct victim *v, const char *key)
{
	for (int i = 0; i < v->nr_facts; i++)
		if (!strcmp(v->keys[i], key))
			return v->vals[i];
	return NULL;
}

long victim_fact_num(const struct victim *v, const char *key)
{
	const char *s = victim_fact(v, key);

	return s ? strtol(s, NULL, 0) : -1;
}

/* x86-64 numbers of the syscalls victims block in; -1: any syscall will do. */
static long syscall_nr(const char *name)
{
	static const struct { const char *name; long nr; } tab[] = {
		{ "read", 0 }, { "pause", 34 }, { "nanosleep", 35 }, { "wait4", 61 },
		{ "rt_sigsuspend", 130 }, { "futex", 202 }, { "clock_nanosleep", 230 },
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strcmp(tab[i].name, name))
			return tab[i].nr;
	return -1;
}

/* The syscall a thread sits in, -1 when it runs or is not in one. */
static long in_syscall(pid_t pid, const char *tid)
{
	char path[96], *s;
	long nr;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/syscall", pid, tid);
	s = cr_slurp(path);
	/* "running" while on a CPU, "-1 ..." outside a syscall: only a number counts. */
	nr = s && s[0] >= '0' && s[0] <= '9' ? strtol(s, NULL, 10) : -1;
	free(s);
	return nr;
}

static int all_threads_blocked(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int ok = 1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return 0;
	while (ok && (de = readdir(d)))
		if (de->d_name[0] != '.' && in_syscall(pid, de->d_name) < 0)
			ok = 0;
	closedir(d);
	return ok;
}

/* A victim that announced blocks=X is only ready once the kernel shows it in a syscall. */
int victim_wait_blocked(struct victim *v)
{
	const char *b = victim_fact(v, "blocks");
	const char *all = victim_fact(v, "blocks_all");
	long want = b ? syscall_nr(b) : -1;
	char tid[16];

	if (!b)
		return 0;
	snprintf(tid, sizeof(tid), "%d", v->pid);
	for (int i = 0; i < 10000; i++) {
		long nr = in_syscall(v->pid, tid);

		/* glibc's nanosleep() is the clock_nanosleep syscall. */
		int match = want < 0 || nr == want || (want == 35 && nr == 230);

		if (nr >= 0 && match && (!all || all_threads_blocked(v->pid)))
			return 0;
		usleep(1000);
	}
	return fail("victim %d never blocked in %s", v->pid, b);
}

int victim_start(const char *path, struct victim *v)
{
	return victim_start_opts(path, NULL, v);
}

/* In the child: stdio and working directory as asked. */
static void child_setup(const struct victim_opts *o)
{
	if (o->dir && (chdir(o->dir) || setenv("HA_DIR", o->dir, 1))) {
		fprintf(stderr, "victim: chdir %s: %m\n", o->dir);
		_exit(127);
	}
	if (o->log) {
		int in = open("/dev/null", O_RDONLY);
		int out = open(o->log, O_WRONLY | O_APPEND | O_CREAT, 0600);

		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
			fprintf(stderr, "victim: stdio to %s: %m\n", o->log);
			_exit(127);
		}
		close(in);
		close(out);
	}
}

int victim_start_opts(const char *path, const struct victim_opts *o, struct victim *v)
{
	static const struct victim_opts none;
	int ready[2], input[2] = { -1, -1 };
	struct pollfd pfd;
	ssize_t n = 0, r;

	if (!o)
		o = &none;
	memset(v, 0, sizeof(*v));
	v->input_fd = -1;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (pipe2(ready, O_CLOEXEC) || (!o->no_input && pipe2(input, O_CLOEXEC)))
		return fail("pipe: %m");
	fflush(stdout);
	fflush(stderr);
	v->pid = fork();
	if (v->pid < 0)
		return fail("fork: %m");
	if (!v->pid) {
		char a[16], b[16];

		/* Nothing of the runner's leaks into the victim but what is passed below. */
		syscall(SYS_close_range, 3, ~0u, 4 /* CLOSE_RANGE_CLOEXEC */);
		child_setup(o);
		/* The victim keeps exactly its test fds: dup() clears CLOEXEC on them. */
		snprintf(a, sizeof(a), "%d", dup(ready[1]));
		setenv("HA_READY_FD", a, 1);
		if (!o->no_input) {
			snprintf(b, sizeof(b), "%d", dup(input[0]));
			setenv("HA_INPUT_FD", b, 1);
		} else {
			unsetenv("HA_INPUT_FD");
		}
		if (o->argv)
			execv(path, o->argv);
		else
			execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %m\n", path);
		_exit(127);
	}
	close(ready[1]);
	if (!o->no_input) {
		close(input[0]);
		v->input_fd = input[1];
	}
	pfd.fd = ready[0];
	pfd.events = POLLIN;
	/* Read to EOF, not to the newline: EOF means the victim has closed its end, so the
	 * snapshot taken next does not race with that close. */
	while (n < (ssize_t)sizeof(v->line) - 1) {
		if (poll(&pfd, 1, 20000) != 1)
			break;
		r = read(ready[0], v->line + n, sizeof(v->line) - 1 - n);
		if (r <= 0)
			break;
		n += r;
	}
	close(ready[0]);
	if (strncmp(v->line, "ready", 5)) {
		victim_kill(v);
		return fail("%s did not report ready", path);
	}
	parse_facts(v);
	if (victim_wait_blocked(v)) {
		victim_kill(v);
		return 1;
	}
	return 0;
}

int victim_attach(struct victim *v, pid_t pid, const char *log, int timeout_ms)
{
	memset(v, 0, sizeof(*v));
	v->input_fd = -1;
	for (int waited = 0; waited < timeout_ms; waited += 5) {
		char *s = cr_slurp(log), *l;

		for (l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
			if (!strncmp(l, "ready", 5) && strchr(l, '\n')) {
				snprintf(v->line, sizeof(v->line), "%.*s", (int)strcspn(l, "\n"), l);
				break;
			}
		free(s);
		if (v->line[0]) {
			v->pid = pid;
			parse_facts(v);
			return victim_wait_blocked(v);
		}
		if (!proc_exists(pid))
			break;
		usleep(5000);
	}
	return fail("victim %d wrote no ready line to %s", pid, log);
}

int victim_reap(struct victim *v, int timeout_ms)
{
	struct timespec t0, t;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(v->pid, &st, WNOHANG);

		if (r == v->pid) {
			v->pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				return 0;
			if (WIFEXITED(st))
				return fail("victim exited with status %d", WEXITSTATUS(st));
			return fail("victim killed by signal %d", WTERMSIG(st));
		}
		if (r < 0)
			return fail("waitpid %d: %m", v->pid);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > timeout_ms)
			return fail("victim %d did not exit in %d ms", v->pid, timeout_ms);
		usleep(1000);
	}
}

int victim_finish(struct victim *v)
{
	const char *b = victim_fact(v, "blocks");
	const char *w = victim_fact(v, "wake");
	int ret;

	if (b && !strcmp(b, "read") && v->input_fd >= 0) {
		if (write(v->input_fd, "after-injection", 15) != 15)
			return fail("writing to the victim: %m");
	} else if (!b || (w && !strcmp(w, "term"))) {
		kill(v->pid, SIGTERM);
	}
	ret = victim_reap(v, 30000);
	if (ret)
		victim_kill(v);
	if (v->input_fd >= 0)
		close(v->input_fd);
	v->input_fd = -1;
	return ret;
}

/* SIGKILL pid's descendants (every thread's children), deepest first: a victim that
 * is a tree must not leave its workers running when it fails. */
static void kill_below(pid_t pid, int depth)
{
	char path[64];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = depth < 64 ? opendir(path) : NULL;
	while (d && (de = readdir(d))) {
		char name[320];
		FILE *f;
		int c;

		if (atoi(de->d_name) <= 0)
			continue;
		snprintf(name, sizeof(name), "/proc/%d/task/%s/children", pid, de->d_name);
		f = fopen(name, "re");
		while (f && fscanf(f, "%d", &c) == 1) {
			kill_below(c, depth + 1);
			kill(c, SIGKILL);
		}
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

void victim_kill(struct victim *v)
{
	if (v->pid > 0) {
		kill(v->pid, SIGSTOP);	/* no new children while we look */
		kill_below(v->pid, 0);
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
		v->pid = 0;
	}
}

/* ---- snapshots ------------------------------------------------------------------- */

/* One fdinfo field ("pos", "flags") as text, "" when absent. */
static void fdinfo_field(const char *info, const char *key, char *out, size_t size)
{
	size_t kl = strlen(key);

	out[0] = 0;
	for (const char *l = info; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (!strncmp(l, key, kl) && l[kl] == ':') {
			l += kl + 1;
			l += strspn(l, " \t");
			snprintf(out, size, "%.*s", (int)strcspn(l, "\n"), l);
			return;
		}
}

/* "pipe:[12345]" -> "pipe:[#k]", k counting distinct inodes in fd order. */
static void anon_link(char *link, size_t size, unsigned long *seen, int *nr_seen)
{
	static const char *const kinds[] = { "pipe:[", "socket:[" };
	unsigned long ino;
	int k;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);

		if (strncmp(link, kinds[i], n) || sscanf(link + n, "%lu", &ino) != 1)
			continue;
		for (k = 0; k < *nr_seen && seen[k] != ino; k++)
			;
		if (k == *nr_seen && k < 1024)
			seen[(*nr_seen)++] = ino;
		snprintf(link + n, size - n, "#%d]", k + 1);
	}
}

static char *fd_table(pid_t pid)
{
	unsigned long seen[1024];
	int nr_seen = 0;
	char path[64], link[512], p[400], pos[32], flags[32];
	struct sb b = { 0 };
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		char *info;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = 0;
		anon_link(link, sizeof(link), seen, &nr_seen);
		snprintf(p, sizeof(p), "/proc/%d/fdinfo/%s", pid, de->d_name);
		info = cr_slurp(p);
		fdinfo_field(info, "pos", pos, sizeof(pos));
		fdinfo_field(info, "flags", flags, sizeof(flags));
		free(info);
		sb_printf(&b, "%s -> %s pos=%s flags=%s\n", de->d_name, link, pos, flags);
	}
	if (d)
		closedir(d);
	return sb_done(&b);
}

/* ---- maps, from smaps ---- */

struct vma {
	unsigned long start, end, off, ino;
	char perms[8], dev[16], path[512], flags[160];
};

/* VmFlags that are the dumper's or the kernel's business, not the process's state:
 * soft-dirty, userfaultfd registrations (a dump may register write-protection), and
 * "ac" (VM_ACCOUNT: commit accounting; a read-only private mapping that a restorer
 * mapped writable to fill and then mprotected keeps it, with no effect the process
 * could see). */
static void filter_vmflags(const char *in, char *out, size_t size)
{
	static const char *const skip[] = { "sd", "um", "uw", "ui", "ac", NULL };
	size_t n = 0;
	char w[8];
	int len;

	out[0] = 0;
	while (sscanf(in, " %7s%n", w, &len) == 1) {
		int drop = 0;

		in += len;
		for (int i = 0; skip[i]; i++)
			drop |= !strcmp(w, skip[i]);
		if (!drop && n + strlen(w) + 2 < size)
			n += sprintf(out + n, "%s%s", n ? " " : "", w);
	}
}

/* Objects a restore must create anew, so their inode cannot be the same. */
static int recreated(const struct vma *m)
{
	size_t l = strlen(m->path);

	return (l > 10 && !strcmp(m->path + l - 10, " (deleted)")) || !strncmp(m->path, "/memfd:", 7) ||
	       !strncmp(m->path, "/SYSV", 5);
}

static int mergeable(const struct vma *a, const struct vma *b)
{
	if (a->end != b->start || strcmp(a->perms, b->perms) || strcmp(a->dev, b->dev) ||
	    a->ino != b->ino || strcmp(a->path, b->path) || strcmp(a->flags, b->flags))
		return 0;
	/* [stack], [heap], [vdso]... are never merged with anything. */
	if (a->path[0] == '[')
		return 0;
	return a->ino == 0 || b->off == a->off + (a->end - a->start);
}

static void emit_vma(struct sb *b, const struct vma *m)
{
	sb_printf(b, "%lx-%lx %s %08lx %s %lu %s [%s]\n", m->start, m->end, m->perms, m->off, m->dev,
		  recreated(m) ? 0 : m->ino, m->path, m->flags);
}

static char *maps_state(pid_t pid)
{
	char path[64], *sm, *line, *save;
	struct vma cur, prev;
	int have_prev = 0, have_cur = 0;
	struct sb b = { 0 };

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	sm = cr_slurp(path);
	if (!sm)
		return NULL;
	for (line = strtok_r(sm, "\n", &save);; line = strtok_r(NULL, "\n", &save)) {
		struct vma m = { 0 };
		int n = 0;

		if (line && !strncmp(line, "VmFlags:", 8)) {
			if (have_cur)
				filter_vmflags(line + 8, cur.flags, sizeof(cur.flags));
			continue;
		}
		if (line && sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &m.start, &m.end, m.perms, &m.off, m.dev,
				   &m.ino, &n) < 6)
			continue;
		/* A new VMA (or the end): the current one is complete. */
		if (have_cur) {
			if (have_prev && mergeable(&prev, &cur)) {
				prev.end = cur.end;
			} else {
				if (have_prev)
					emit_vma(&b, &prev);
				prev = cur;
				have_prev = 1;
			}
		}
		if (!line)
			break;
		snprintf(m.path, sizeof(m.path), "%s", line + n);
		cur = m;
		have_cur = 1;
	}
	if (have_prev)
		emit_vma(&b, &prev);
	free(sm);
	return sb_done(&b);
}

/* ---- per-thread state ---- */

static int cmp_tid(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The thread ids of pid, sorted: the order in /proc/PID/task is creation order, which
 * a restore need not reproduce. */
static int list_tids(pid_t pid, int **out)
{
	char path[64];
	struct dirent *de;
	int n = 0, cap = 16, *t = malloc(cap * sizeof(int));
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d) {
		free(t);
		return -1;
	}
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			if (n == cap)
				t = realloc(t, (cap *= 2) * sizeof(int));
			t[n++] = atoi(de->d_name);
		}
	closedir(d);
	qsort(t, n, sizeof(int), cmp_tid);
	*out = t;
	return n;
}

static char *task_status(pid_t pid, int tid)
{
	char p[96];

	snprintf(p, sizeof(p), "/proc/%d/task/%d/status", pid, tid);
	return cr_slurp(p);
}

/* The value of "Key:" in a status text, "" when absent. */
static void status_field(const char *st, const char *key, char *out, size_t size)
{
	fdinfo_field(st, key, out, size);
}

static unsigned long long hexfield(const char *st, const char *key)
{
	char v[64];

	status_field(st, key, v, sizeof(v));
	return strtoull(v, NULL, 16);
}

/*
 * A thread's id as its own pid namespace numbers it (NSpid's last field): what a copy
 * restored in a new pid namespace keeps, and the tid itself everywhere else.
 */
static int inner_id(const char *status, int tid)
{
	const char *l = strstr(status, "\nNSpid:");
	char *end;
	int id = tid;

	for (const char *p = l ? l + 7 : ""; *p && *p != '\n'; p = end) {
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		id = v;
	}
	return id;
}

static char *sig_state(pid_t pid)
{
	static const char *const keys[] = { "SigBlk", "SigIgn", "SigCgt", NULL };
	unsigned long long all_blocked = ~0ull, shd = 0;
	struct sb b = { 0 };
	int *tids, n = list_tids(pid, &tids);
	char v[64];

	if (n < 0)
		return NULL;
	for (int i = 0; i < n; i++) {
		char *st = task_status(pid, tids[i]);
		unsigned long long blk;

		if (!st)
			continue;
		blk = hexfield(st, "SigBlk");
		all_blocked &= blk;
		shd = hexfield(st, "ShdPnd");
		for (int k = 0; keys[k]; k++) {
			status_field(st, keys[k], v, sizeof(v));
			sb_printf(&b, "%d: %s: %s\n", inner_id(st, tids[i]), keys[k], v);
		}
		/* A pending signal that is not blocked is about to be delivered: transient.
		 * One that is blocked is state (and must survive a checkpoint). */
		sb_printf(&b, "%d: SigPnd&SigBlk: %016llx\n", inner_id(st, tids[i]), hexfield(st, "SigPnd") & blk);
		free(st);
	}
	sb_printf(&b, "ShdPnd blocked in every thread: %016llx\n", n ? shd & all_blocked : 0);
	free(tids);
	return sb_done(&b);
}

static char *creds_state(pid_t pid)
{
	static const char *const keys[] = { "Name", "Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff",
					    "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters",
					    "Cpus_allowed_list", NULL };
	struct sb b = { 0 };
	int *tids, n = list_tids(pid, &tids);
	char v[256];

	if (n < 0)
		return NULL;
	for (int i = 0; i < n; i++) {
		char *st = task_status(pid, tids[i]);

		if (!st)
			continue;
		for (int k = 0; keys[k]; k++) {
			status_field(st, keys[k], v, sizeof(v));
			sb_printf(&b, "%d: %s: %s\n", inner_id(st, tids[i]), keys[k], v);
		}
		free(st);
	}
	free(tids);
	return sb_done(&b);
}

/* /proc/PID/timers names the thread or process a timer signals by our pid namespace's
 * id ("notify: signal/tid.1234"): numbered as the victim's own namespace does. */
static void add_timers(struct sb *b, pid_t pid)
{
	char p[64], *s, *l;

	snprintf(p, sizeof(p), "/proc/%d/timers", pid);
	s = cr_slurp(p);
	sb_printf(b, "== timers\n");
	for (l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
		int len = (int)strcspn(l, "\n"), id;
		const char *dot = memchr(l, '.', len);

		if (!strncmp(l, "notify:", 7) && dot && sscanf(dot + 1, "%d", &id) == 1) {
			char *st;

			snprintf(p, sizeof(p), "/proc/%d/task/%d/status", pid, id);
			st = cr_slurp(p);
			sb_printf(b, "%.*s.%d\n", (int)(dot - l), l, st ? inner_id(st, id) : id);
			free(st);
		} else {
			sb_printf(b, "%.*s\n", len, l);
		}
	}
	if (!s)
		sb_printf(b, "(unreadable)\n");
	free(s);
}

static void add_link(struct sb *b, pid_t pid, const char *name)
{
	char p[64], link[1024];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/%d/%s", pid, name);
	n = readlink(p, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = 0;
	sb_printf(b, "%s -> %s\n", name, link);
}

static void add_file(struct sb *b, pid_t pid, const char *name)
{
	char p[64], *s;

	snprintf(p, sizeof(p), "/proc/%d/%s", pid, name);
	s = cr_slurp(p);
	sb_printf(b, "== %s\n%s", name, s ? s : "(unreadable)\n");
	free(s);
}

static char *misc_state(pid_t pid)
{
	struct sb b = { 0 };
	char p[64], v[64], *st;

	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	st = cr_slurp(p);
	if (!st)
		return NULL;
	status_field(st, "Umask", v, sizeof(v));
	sb_printf(&b, "Umask: %s\n", v);
	free(st);
	add_link(&b, pid, "cwd");
	add_link(&b, pid, "root");
	add_link(&b, pid, "exe");
	add_file(&b, pid, "personality");
	add_file(&b, pid, "limits");
	add_timers(&b, pid);
	return sb_done(&b);
}

int proc_snapshot(pid_t pid, struct proc_snapshot *s)
{
	memset(s, 0, sizeof(*s));
	s->maps = maps_state(pid);
	s->fds = fd_table(pid);
	s->sigstate = sig_state(pid);
	s->creds = creds_state(pid);
	s->misc = misc_state(pid);
	if (!s->maps || !s->fds || !s->sigstate || !s->creds || !s->misc) {
		proc_snapshot_free(s);
		return fail("cannot read /proc/%d", pid);
	}
	return 0;
}

static int diff_text(const char *what, const char *a, const char *b)
{
	size_t i = 0, line = 1, start = 0;

	if (!strcmp(a, b))
		return 0;
	for (; a[i] && a[i] == b[i]; i++)
		if (a[i] == '\n')
			line++, start = i + 1;
	return fail("%s differ at line %zu:\n  before: %.*s\n  after:  %.*s", what, line,
		    (int)strcspn(a + start, "\n"), a + start, (int)strcspn(b + start, "\n"), b + start);
}

int proc_snapshot_diff(const struct proc_snapshot *a, const struct proc_snapshot *b)
{
	return diff_text("maps", a->maps, b->maps) || diff_text("fd tables", a->fds, b->fds) ||
	       diff_text("signal state", a->sigstate, b->sigstate) ||
	       diff_text("credentials", a->creds, b->creds) ||
	       diff_text("process state", a->misc, b->misc);
}

int proc_snapshot_same(const struct proc_snapshot *a, const struct proc_snapshot *b)
{
	return !strcmp(a->maps, b->maps) && !strcmp(a->fds, b->fds) && !strcmp(a->sigstate, b->sigstate) &&
	       !strcmp(a->creds, b->creds) && !strcmp(a->misc, b->misc);
}

void proc_snapshot_free(struct proc_snapshot *s)
{
	free(s->maps);
	free(s->fds);
	free(s->sigstate);
	free(s->creds);
	free(s->misc);
	memset(s, 0, sizeof(*s));
}
