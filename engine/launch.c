/*
 * launch.c: start a service the way hacd guards it (eng_launch, ha/engine.h).
 *
 * DESIGN
 * A launched service lives in its own pid, ipc, uts and mount namespaces (the host's
 * file system with a /proc of its pid namespace: eng__ns_mount_proc), under a minimal
 * init of ours, so that a restore can later recreate exactly that: new namespaces, our init
 * as pid 1, the service with its pids (DESIGN.md 4). The caller gets two pids as seen
 * from its own namespace: the init (wait for it, or watch it with a pidfd: it exits
 * with the service's status) and the service's main process (the checkpoint target).
 *
 *   caller                 init (pid 1 inside)             service
 *   ------                 -------------------             -------
 *   user, groups, env      fork ------------------------>  setsid, stdio: /dev/null
 *   clone3(NEWPID|NEWIPC|  mounts /proc; closes every fd    and the log file, other fds
 *   NEWUTS|NEWNS) -> init  reaps orphans; exits with        closed, groups/gid/uid, cwd,
 *   read the error pipe    the service's status             execve (errors: error pipe)
 *   <--------------------------------------------------------------------------
 *   the service's pid: from the credentials of a hello it sent before execve
 *
 * Invariants:
 *  1. Nothing the caller holds leaks into the service: every fd but stdio is closed
 *     before execve (hacd's control socket, sqlite, the worker's socketpair), and the
 *     init closes everything, stdio included, so it holds no pipe a reader waits on.
 *  2. A failure before execve (no such program, bad user, unreadable cwd) is reported
 *     to the caller with the errno and the step, and no process is left behind.
 *  3. The init is the only process the caller must reap; it never exits before the
 *     service does.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#include "ha/engine.h"
#include "dump.h"
#include "log.h"

#define LAUNCH_MAX_GROUPS 256

/* What the child reports through the error pipe when a step before execve fails. */
struct launch_err {
	int step;
	int err;
};

enum { STEP_LOG, STEP_STDIN, STEP_GROUPS, STEP_GID, STEP_UID, STEP_CWD, STEP_EXEC, STEP_FORK, STEP_PROC };
static const char *const step_names[] = {
	"opening the log file", "opening /dev/null", "setgroups", "setgid", "setuid", "chdir",
	"execve", "fork inside the new pid namespace", "mounting /proc in the new mount namespace",
};

struct launch_ctx {
	const char *const *argv;
	const struct eng_launch_opts *o;
	char *const *env;
	uid_t uid;
	gid_t gid;
	gid_t groups[LAUNCH_MAX_GROUPS];
	int ngroups;		/* -1: keep ours (no user given) */
	int err_fd;		/* write end of the error pipe */
	int pid_fd;		/* the service says hello here: its pid, as we see it */
};

static void __attribute__((noreturn)) child_fail(const struct launch_ctx *c, int step, int err)
{
	struct launch_err e = { step, err };

	if (write(c->err_fd, &e, sizeof(e)) != sizeof(e))
		_exit(126);
	_exit(127);
}

/* Only async-signal-safe calls from here on: the caller may have had threads. */
static void __attribute__((noreturn)) service_exec(const struct launch_ctx *c)
{
	const struct eng_launch_opts *o = c->o;
	int fd;

	setsid();
	/*
	 * The caller has SO_PASSCRED on the other end: the kernel attaches our pid as the
	 * caller's pid namespace sees it. Sent before execve, so that a service that exits
	 * at once is still found (the init's children would no longer list it).
	 */
	if (c->pid_fd >= 0 && send(c->pid_fd, "p", 1, MSG_NOSIGNAL) != 1)
		child_fail(c, STEP_FORK, errno);
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 0) < 0)
		child_fail(c, STEP_STDIN, errno);
	if (o && o->log_path)
		fd = open(o->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
	else
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		child_fail(c, STEP_LOG, errno);
	/* Invariant 1: the error pipe goes at execve like the rest. */
	close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	if (c->ngroups >= 0) {
		if (setgroups((size_t)c->ngroups, c->groups) < 0)
			child_fail(c, STEP_GROUPS, errno);
		if (setgid(c->gid) < 0)
			child_fail(c, STEP_GID, errno);
		if (setuid(c->uid) < 0)
			child_fail(c, STEP_UID, errno);
	}
	if (chdir(o && o->cwd ? o->cwd : "/") < 0)
		child_fail(c, STEP_CWD, errno);
	signal(SIGPIPE, SIG_DFL);
	execve(c->argv[0], (char *const *)c->argv, c->env);
	child_fail(c, STEP_EXEC, errno);
}

/* Pid 1 of the new namespace: start the service, then reap until it is gone. */
static void __attribute__((noreturn)) init_main(const struct launch_ctx *c)
{
	sigset_t all;
	pid_t pid;
	int st, err;

	err = eng__ns_mount_proc();
	if (err)
		child_fail(c, STEP_PROC, -err);
	pid = fork();
	if (pid == 0)
		service_exec(c);
	if (pid < 0)
		child_fail(c, STEP_FORK, errno);
	prctl(PR_SET_NAME, "hacd-init");
	/* Invariant 1: not even stdio; the service has its own. */
	close_range(0, ~0u, 0);
	/* Signals from inside the namespace cannot reach pid 1 without a handler anyway;
	 * from outside only SIGKILL should: the service is stopped by signalling it. */
	sigfillset(&all);
	sigdelset(&all, SIGCHLD);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pid_t w = wait(&st);

		if (w == pid)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		if (w < 0 && errno != EINTR)
			_exit(127);
	}
}

static int resolve_user(struct launch_ctx *c, const char *user, char *home, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	int n = LAUNCH_MAX_GROUPS, ret;

	ret = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (!res)
		return pr_errno(ret ? -ret : -ENOENT, "user %s", user);
	c->uid = pw.pw_uid;
	c->gid = pw.pw_gid;
	if (getgrouplist(user, pw.pw_gid, c->groups, &n) < 0)
		return pr_errno(-E2BIG, "user %s: more than %d groups", user, LAUNCH_MAX_GROUPS);
	c->ngroups = n;
	snprintf(home, len, "%s", pw.pw_dir);
	return 0;
}

/* The service's pid as we see it, from the credentials of its hello (-1: none). */
static pid_t service_pid(int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(struct ucred))];
	} u;
	char b;
	struct iovec iov = { &b, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *cm;
	struct ucred cr;

	if (recvmsg(fd, &mh, MSG_DONTWAIT) != 1)
		return -1;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_CREDENTIALS) {
			memcpy(&cr, CMSG_DATA(cm), sizeof(cr));
			return cr.pid > 0 ? cr.pid : -1;
		}
	}
	return -1;
}

static pid_t spawn(struct launch_ctx *c, int *pipefd)
{
	bool pidns = c->o && c->o->pidns;
	struct clone_args ca = { .exit_signal = SIGCHLD };
	pid_t pid;

	if (pidns)
		ca.flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS;
	fflush(NULL);
	pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		close(pipefd[0]);
		if (pidns)
			init_main(c);
		service_exec(c);
	}
	if (pid < 0)
		return pr_errno(-errno, "clone3%s", pidns ? " into new pid, ipc, uts and mount namespaces" : "");
	return pid;
}

int eng_launch(const char *const *argv, const struct eng_launch_opts *o, pid_t *init_out,
	       pid_t *pid_out)
{
	struct launch_ctx c = { .argv = argv, .o = o, .ngroups = -1 };
	char home[1024] = "/", env_home[1100], env_user[128];
	char *def_env[] = {
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		env_home, env_user, "LANG=C.UTF-8", NULL,
	};
	struct launch_err e;
	int pipefd[2], sk[2] = { -1, -1 }, ret, st;
	ssize_t n;
	pid_t init, pid;

	eng__clear_error();
	if (!argv || !argv[0] || argv[0][0] != '/')
		return pr_errno(-EINVAL, "launch: the program must be an absolute path (%s)",
				argv && argv[0] ? argv[0] : "none");
	if (o && o->user && (ret = resolve_user(&c, o->user, home, sizeof(home))))
		return ret;
	snprintf(env_home, sizeof(env_home), "HOME=%s", home);
	snprintf(env_user, sizeof(env_user), "USER=%s", o && o->user ? o->user : "root");
	c.env = o && o->env ? (char *const *)o->env : def_env;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return pr_errno(-errno, "launch: pipe");
	c.err_fd = pipefd[1];
	c.pid_fd = -1;
	if (o && o->pidns) {
		int one = 1;

		if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sk) < 0 ||
		    setsockopt(sk[0], SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
			ret = pr_errno(-errno, "launch: socketpair");
			close(pipefd[0]);
			close(pipefd[1]);
			return ret;
		}
		c.pid_fd = sk[1];
	}
	init = spawn(&c, pipefd);
	close(pipefd[1]);
	if (init < 0) {
		close(pipefd[0]);
		if (c.pid_fd >= 0) {
			close(sk[0]);
			close(sk[1]);
		}
		return init;
	}
	/* EOF: every holder of the write end is gone, i.e. the execve happened. */
	while ((n = read(pipefd[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
	if (c.pid_fd >= 0) {
		close(c.pid_fd);
		pid = n == sizeof(e) ? -1 : service_pid(sk[0]);
		close(sk[0]);
		if (n != sizeof(e) && pid < 0) {
			kill(init, SIGKILL);
			while (waitpid(init, &st, 0) < 0 && errno == EINTR)
				;
			return pr_errno(-EPROTO, "launch %s: the service did not say its pid", argv[0]);
		}
	} else {
		pid = init;
	}
	if (n == sizeof(e)) {
		kill(init, SIGKILL);
		while (waitpid(init, &st, 0) < 0 && errno == EINTR)
			;
		return pr_errno(-e.err, "launch %s: %s", argv[0],
				e.step >= 0 && e.step <= STEP_PROC ? step_names[e.step] : "?");
	}
	*init_out = init;
	if (pid_out)
		*pid_out = pid;
	return 0;
}
