/*
 * crlib: scratch directories, hactl runs with a time limit, waiting and reaping for the
 * checkpoint/restore runners. See crlib.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crlib.h"

long cr_ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

int cr_dir_make(struct cr_dir *d, const char *name)
{
	snprintf(d->top, sizeof(d->top), "/tmp/hacd-cr-%s-XXXXXX", name);
	if (!mkdtemp(d->top))
		return fail("mkdtemp %s: %m", d->top);
	/* 0711: a victim that dropped its uid can still reach its cwd. */
	chmod(d->top, 0711);
	snprintf(d->work, sizeof(d->work), "%s/work", d->top);
	snprintf(d->img, sizeof(d->img), "%s/img", d->top);
	snprintf(d->log, sizeof(d->log), "%s/victim.log", d->top);
	snprintf(d->hlog, sizeof(d->hlog), "%s/hactl.log", d->top);
	if (mkdir(d->work, 0755) || mkdir(d->img, 0700))
		return fail("mkdir in %s: %m", d->top);
	return 0;
}

void cr_dir_remove(const char *path)
{
	struct dirent *de;
	DIR *dir = opendir(path);

	if (!dir) {
		unlink(path);
		return;
	}
	while ((de = readdir(dir))) {
		char p[1024];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (!lstat(p, &st) && S_ISDIR(st.st_mode))
			cr_dir_remove(p);
		else
			unlink(p);
	}
	closedir(dir);
	rmdir(path);
}

int cr_run(char *const argv[], const char *log, int timeout_ms, char **out)
{
	struct timespec t0;
	off_t start = 0;
	struct stat st;
	pid_t pid;
	int status, fd;

	fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail("open %s: %m", log);
	dprintf(fd, "$");
	for (int i = 0; argv[i]; i++)
		dprintf(fd, " %s", argv[i]);
	dprintf(fd, "\n");
	if (!fstat(fd, &st))
		start = st.st_size;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(fd);
		return fail("fork: %m");
	}
	if (!pid) {
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* hactl gets exactly 0, 1 and 2: whatever else it had would show up in a
		 * restored process that fails to close what it inherited. */
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		syscall(SYS_close_range, 3, ~0u, 4 /* CLOSE_RANGE_CLOEXEC */);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %m\n", argv[0]);
		_exit(127);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			break;
		if (cr_ms_since(&t0) > timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			dprintf(fd, "[runner: killed after %d ms]\n", timeout_ms);
			status = -1;
			break;
		}
		usleep(2000);
	}
	if (out) {
		char *all = cr_slurp(log);
		size_t len = all ? strlen(all) : 0;

		*out = strdup(all && (size_t)start <= len ? all + start : "");
		free(all);
	}
	dprintf(fd, "[exit %d]\n", status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	close(fd);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

int cr_dump(const char *hactl, pid_t pid, const char *dir, int leave_running, const char *log, char **out)
{
	char spid[16];
	char *argv[] = { (char *)hactl, "dump", "-t", spid, "-D", (char *)dir,
			 leave_running ? "--leave-running" : NULL, NULL };

	snprintf(spid, sizeof(spid), "%d", pid);
	return cr_run(argv, log, 60000, out);
}

int cr_restore(const char *hactl, const char *dir, const char *log, char **out)
{
	char *argv[] = { (char *)hactl, "restore", "-D", (char *)dir, "--detach", NULL };

	return cr_run(argv, log, 60000, out);
}

int cr_wait_killed(pid_t pid, int timeout_ms)
{
	struct timespec t0;
	int st;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (cr_ms_since(&t0) < timeout_ms) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			if (WIFSIGNALED(st))
				return 0;
			return fail("victim %d exited by itself (status %d) instead of being killed by the dump",
				    pid, WEXITSTATUS(st));
		}
		if (r < 0)
			return fail("waitpid %d: %m", pid);
		usleep(2000);
	}
	return fail("victim %d still running %d ms after a dump without --leave-running", pid, timeout_ms);
}

int cr_pid_alive(pid_t pid)
{
	char p[64], buf[512], *c;
	int fd, n;

	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	c = strrchr(buf, ')');
	return c && c[1] == ' ' && c[2] != 'Z' && c[2] != 'X';
}

void cr_reap_strays(pid_t keep)
{
	for (;;) {
		siginfo_t si = { 0 };

		/* Peek first so that `keep` is never reaped here. */
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) || !si.si_pid)
			return;
		if (si.si_pid == keep) {
			/* Look for others only: reap each non-keep child by pid. */
			DIR *d = opendir("/proc");
			struct dirent *de;

			while (d && (de = readdir(d))) {
				pid_t p = atoi(de->d_name);

				if (p > 0 && p != keep)
					waitpid(p, NULL, WNOHANG);
			}
			if (d)
				closedir(d);
			return;
		}
		waitpid(si.si_pid, NULL, 0);
	}
}

static pid_t find_live_child(char comm[16])
{
	struct dirent *de;
	pid_t found = 0, me = getpid();
	DIR *d = opendir("/proc");

	while (d && !found && (de = readdir(d))) {
		char p[64], buf[512], *c;
		pid_t pid = atoi(de->d_name);
		int fd, n, ppid;
		char state;

		if (pid <= 0)
			continue;
		snprintf(p, sizeof(p), "/proc/%d/stat", pid);
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = 0;
		c = strrchr(buf, ')');
		if (!c || sscanf(c + 2, "%c %d", &state, &ppid) != 2 || ppid != me || state == 'Z' || state == 'X')
			continue;
		found = pid;
		snprintf(comm, 16, "%.*s", (int)(c - strchr(buf, '(') - 1), strchr(buf, '(') + 1);
	}
	if (d)
		closedir(d);
	return found;
}

pid_t cr_live_child(int timeout_ms, char comm[16])
{
	struct timespec t0;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((pid = find_live_child(comm)) && cr_ms_since(&t0) < timeout_ms) {
		cr_reap_strays(0);
		usleep(5000);
	}
	return pid;
}

int cr_wait_pid_gone(pid_t pid, int timeout_ms)
{
	struct timespec t0;
	char p[64];

	snprintf(p, sizeof(p), "/proc/%d", pid);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (cr_ms_since(&t0) < timeout_ms) {
		cr_reap_strays(0);
		if (access(p, F_OK))
			return 0;
		usleep(5000);
	}
	return 1;
}

int cr_compare_settled(pid_t pid, const struct proc_snapshot *before, int timeout_ms)
{
	struct proc_snapshot after;
	struct timespec t0;
	int tries = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (proc_snapshot(pid, &after))
			return fail("no snapshot of %d", pid);
		tries++;
		if (proc_snapshot_same(before, &after)) {
			proc_snapshot_free(&after);
			if (tries > 1)
				fprintf(stderr, "note: snapshot of %d settled after %d tries\n", pid, tries);
			return 0;
		}
		if (cr_ms_since(&t0) > timeout_ms)
			break;
		proc_snapshot_free(&after);
		usleep(20000);
	}
	proc_snapshot_diff(before, &after);
	proc_snapshot_free(&after);
	return 1;
}

int cr_snapshot_settled(pid_t pid, struct proc_snapshot *s, int timeout_ms)
{
	struct proc_snapshot next;
	struct timespec t0;
	int tries = 1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (proc_snapshot(pid, s))
		return 1;
	for (;;) {
		usleep(20000);
		if (proc_snapshot(pid, &next)) {
			proc_snapshot_free(s);
			return fail("no snapshot of %d", pid);
		}
		tries++;
		if (proc_snapshot_same(s, &next)) {
			proc_snapshot_free(&next);
			if (tries > 2)
				fprintf(stderr, "note: the first snapshot of %d settled after %d tries\n", pid, tries);
			return 0;
		}
		if (cr_ms_since(&t0) > timeout_ms) {
			proc_snapshot_diff(s, &next);
			proc_snapshot_free(&next);
			proc_snapshot_free(s);
			return fail("the /proc state of %d never held still for 20 ms", pid);
		}
		proc_snapshot_free(s);
		*s = next;
	}
}

int cr_copy_dir(const char *src, const char *dst)
{
	struct dirent *de;
	DIR *d = opendir(src);
	char buf[65536];

	if (!d)
		return fail("opendir %s: %m", src);
	mkdir(dst, 0700);
	while ((de = readdir(d))) {
		char a[1024], b[1024];
		int in, out;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", src, de->d_name);
		snprintf(b, sizeof(b), "%s/%s", dst, de->d_name);
		in = open(a, O_RDONLY | O_CLOEXEC);
		out = open(b, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (in < 0 || out < 0) {
			closedir(d);
			return fail("copy %s: %m", a);
		}
		while ((n = read(in, buf, sizeof(buf))) > 0)
			if (write(out, buf, n) != n)
				break;
		close(in);
		close(out);
	}
	closedir(d);
	return 0;
}
