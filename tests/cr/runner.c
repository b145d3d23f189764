/*
 * Harness for real-process tests. PID 1 on our machines reaps orphans late, so the
 * runner makes itself a child subreaper and reaps everything it started itself.
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
#include <sys/prctl.h>
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

static char *slurp(const char *path)
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

/* A victim that announced blocks=X is only ready once the kernel shows it in a syscall. */
static int wait_blocked(struct victim *v)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/syscall", v->pid);
	for (int i = 0; i < 5000; i++) {
		char *s = slurp(path);
		/* "running" while on a CPU: only a number means it sits in a syscall. */
		long nr = s && s[0] >= '0' && s[0] <= '9' ? strtol(s, NULL, 10) : -1;

		free(s);
		/* read, nanosleep, clock_nanosleep */
		if (nr == 0 || nr == 35 || nr == 230)
			return 0;
		usleep(1000);
	}
	return fail("victim %d never blocked in a syscall", v->pid);
}

int victim_start(const char *path, struct victim *v)
{
	int ready[2], input[2];
	struct pollfd pfd;
	ssize_t n = 0, r;

	memset(v, 0, sizeof(*v));
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (pipe2(ready, O_CLOEXEC) || pipe2(input, O_CLOEXEC))
		return fail("pipe: %m");
	v->pid = fork();
	if (v->pid < 0)
		return fail("fork: %m");
	if (!v->pid) {
		char a[16], b[16];

		/* The victim keeps exactly its two test fds: clear CLOEXEC on them. */
		snprintf(a, sizeof(a), "%d", dup(ready[1]));
		snprintf(b, sizeof(b), "%d", dup(input[0]));
		setenv("HA_READY_FD", a, 1);
		setenv("HA_INPUT_FD", b, 1);
		execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %m\n", path);
		_exit(127);
	}
	close(ready[1]);
	close(input[0]);
	v->input_fd = input[1];
	pfd.fd = ready[0];
	pfd.events = POLLIN;
	/* Read to EOF, not to the newline: EOF means the victim has closed its end, so the
	 * snapshot taken next does not race with that close. */
	while (n < (ssize_t)sizeof(v->line) - 1) {
		if (poll(&pfd, 1, 10000) != 1)
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
	if (victim_fact(v, "blocks") && wait_blocked(v)) {
		victim_kill(v);
		return 1;
	}
	return 0;
}

static int reap(struct victim *v, int timeout_ms)
{
	int st;

	for (int i = 0; i < timeout_ms; i++) {
		pid_t r = waitpid(v->pid, &st, WNOHANG);

		if (r == v->pid) {
			v->pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				return 0;
			if (WIFEXITED(st))
				return fail("victim exited with status %d", WEXITSTATUS(st));
			return fail("victim killed by signal %d", WTERMSIG(st));
		}
		usleep(1000);
	}
	return fail("victim %d did not exit in %d ms", v->pid, timeout_ms);
}

int victim_finish(struct victim *v)
{
	const char *b = victim_fact(v, "blocks");
	int ret;

	if (b && !strcmp(b, "read")) {
		if (write(v->input_fd, "after-injection", 15) != 15)
			return fail("writing to the victim: %m");
	} else if (!b) {
		kill(v->pid, SIGTERM);
	}
	ret = reap(v, 20000);
	if (ret)
		victim_kill(v);
	close(v->input_fd);
	return ret;
}

void victim_kill(struct victim *v)
{
	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
		v->pid = 0;
	}
}

static char *fd_table(pid_t pid)
{
	char path[64], link[512], line[900], p[400];
	size_t len = 0, cap = 4096;
	char *out = calloc(1, cap);
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	while (d && out && (de = readdir(d))) {
		ssize_t n;
		int l;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = 0;
		l = snprintf(line, sizeof(line), "%s -> %s\n", de->d_name, link);
		if (len + l + 1 > cap)
			out = realloc(out, cap *= 2);
		memcpy(out + len, line, l + 1);
		len += l;
	}
	if (d)
		closedir(d);
	return out;
}

static char *sig_state(pid_t pid)
{
	char path[64];
	size_t len = 0, cap = 4096;
	char *out = calloc(1, cap);
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && out && (de = readdir(d))) {
		char p[400], *st, *line, *save;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s/status", path, de->d_name);
		st = slurp(p);
		for (line = st ? strtok_r(st, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
			/* SigQ counts the whole user's queued signals: not this process's state. */
			if ((strncmp(line, "Sig", 3) && strncmp(line, "Seccomp", 7) && strncmp(line, "ShdPnd", 6)) ||
			    !strncmp(line, "SigQ", 4))
				continue;
			if (len + strlen(line) + 32 > cap)
				out = realloc(out, cap *= 2);
			len += sprintf(out + len, "%s: %s\n", de->d_name, line);
		}
		free(st);
	}
	if (d)
		closedir(d);
	return out;
}

int proc_snapshot(pid_t pid, struct proc_snapshot *s)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	s->maps = slurp(path);
	s->fds = fd_table(pid);
	s->sigstate = sig_state(pid);
	if (!s->maps || !s->fds || !s->sigstate) {
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
	       diff_text("signal state", a->sigstate, b->sigstate);
}

void proc_snapshot_free(struct proc_snapshot *s)
{
	free(s->maps);
	free(s->fds);
	free(s->sigstate);
	s->maps = s->fds = s->sigstate = NULL;
}
