/*
 * Restore orchestration. Stages, and who runs them:
 *
 *   hactl                                new process (pid = the dumped pid)
 *   -----                                ---------------------------------
 *   load + check every image
 *   clone3(set_tid = pid) -------------> waits for "go"
 *   PTRACE_SEIZE, "go" ----------------> files: fds at their numbers
 *                                        memory: premap, fill + check pages
 *                                        task: sigactions, umask, cwd, root, rlimits
 *                                        ---- point of no return ----
 *                                        restorer: unmap hactl, mremap into place,
 *                                        PR_SET_MM_MAP, clone3 threads (set_tid),
 *   each thread stops on int3 <--------- rseq, comm, creds, seccomp...; int3
 *   munmap the restorer (a syscall from
 *   the vdso), set registers, xstate and
 *   signal masks, detach -------------> running again
 *
 * Failure before the point of no return: the process reports through the status pipe
 * and exits. After it: exit_group(100 + step). Either way nothing is left running, and
 * PTRACE_O_EXITKILL kills the process if hactl itself dies half way.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"

#define RSEQ_SIG_ 0x53053053

struct ready_msg {
	uint64_t zero;
	uint64_t region, region_len;
};

static void child_fail(int status_fd)
{
	const char *e = eng_last_error();

	if (status_fd >= 0 && write(status_fd, e, strlen(e)) < 0)
		_exit(2);
	_exit(1);
}

/* glibc registered rseq for this thread; the area goes away with hactl's memory. */
static void drop_own_rseq(void)
{
	void *area = (char *)__builtin_thread_pointer() + __rseq_offset;

	if (!__rseq_size)
		return;
	if (syscall(SYS_rseq, area, 32, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_) &&
	    syscall(SYS_rseq, area, __rseq_size, RSEQ_FLAG_UNREGISTER, RSEQ_SIG_))
		pr_warn("cannot unregister our rseq area: %s", strerror(errno));
}

/*
 * Session and process group, for what a single process can have by itself: leading its
 * own session or group. Joining a group led by a process outside the checkpoint is
 * possible only inside our session. A group or session of 0 was led from outside the
 * dumper's pid namespace: the process stays in ours, as CRIU's --shell-job does.
 */
static int restore_session(struct rst_ctx *c)
{
	const ImgPstreeEntry *e = c->proc.pst;
	pid_t pid = getpid();

	if (e->sid == (uint32_t)c->proc.pid && setsid() < 0)
		return pr_errno(-errno, "pid %d: setsid", c->proc.pid);
	if (e->pgid == (uint32_t)c->proc.pid && getpgid(0) != pid && setpgid(0, 0))
		return pr_errno(-errno, "pid %d: setpgid", c->proc.pid);
	if (e->pgid && e->pgid != (uint32_t)c->proc.pid && getpgid(0) != (pid_t)e->pgid &&
	    setpgid(0, e->pgid))
		pr_debug("pid %d: cannot join process group %u: %s", c->proc.pid, e->pgid, strerror(errno));
	return 0;
}

static void __attribute__((noreturn)) child_main(struct rst_ctx *c, int go_fd, int status_fd)
{
	int keep[2] = { c->dirfd, status_fd };
	sigset_t all;
	char b;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	if (read(go_fd, &b, 1) != 1)
		_exit(1);
	if (restore_session(c))
		child_fail(status_fd);
	/* The pages image is reopened after the fds are in place, so that it cannot sit
	 * on a number the checkpoint needs. */
	eng_img_close(c->proc.pages);
	c->proc.pages = NULL;
	if (rst__files(c, keep, 2))
		child_fail(keep[1]);
	c->dirfd = keep[0];
	status_fd = keep[1];
	if (eng_img_open(c->dirfd, ENG_IMG_PAGES, c->proc.pid, &c->proc.pages) || rst__mem_prepare(c))
		child_fail(status_fd);
	eng_img_close(c->proc.pages);
	if (rst__task_prepare(c))
		child_fail(status_fd);
	/* hactl unmaps the restorer at the end: tell it where. A failure message is text,
	 * this record starts with a NUL. */
	{
		struct ready_msg m = { 0, c->region, c->region_len };

		if (write(status_fd, &m, sizeof(m)) != sizeof(m))
			_exit(1);
	}
	close(c->dirfd);
	close(status_fd);
	drop_own_rseq();
	rst__mem_jump(c);
}

static pid_t clone_with_pid(pid_t pid)
{
	pid_t tid = pid;
	struct clone_args ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)&tid,
		.set_tid_size = 1,
	};

	return syscall(SYS_clone3, &ca, sizeof(ca));
}

/* Offset of a `syscall` instruction in our vdso: the restored process has the same one. */
static long vdso_syscall_off(unsigned long *vdso_len)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[256];
	long off = -1;

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (!strstr(line, "[vdso]") || sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		for (unsigned long a = s; a + 1 < e && off < 0; a++)
			if (((unsigned char *)a)[0] == 0x0f && ((unsigned char *)a)[1] == 0x05)
				off = a - s;
		*vdso_len = e - s;
	}
	if (f)
		fclose(f);
	return off;
}

static const char *const step_names[] = {
	[RST_STEP_ABI] = "restorer ABI check", [RST_STEP_UNMAP] = "unmapping hactl",
	[RST_STEP_VDSO] = "moving the vdso", [RST_STEP_MOVE] = "moving memory into place",
	[RST_STEP_MM] = "PR_SET_MM_MAP", [RST_STEP_CLONE] = "creating threads with their TIDs",
	[RST_STEP_RSEQ_ON] = "registering rseq", [RST_STEP_ITIMER] = "setting itimers",
	[RST_STEP_SIGNALS] = "queueing pending signals", [RST_STEP_CREDS] = "setting credentials",
	[RST_STEP_SECCOMP] = "installing seccomp filters", [RST_STEP_ALTSTACK] = "setting sigaltstack",
	[RST_STEP_TIMERS] = "creating POSIX timers with their ids",
};

static int child_died(pid_t pid, int st, int status_fd)
{
	char msg[512];
	ssize_t n = read(status_fd, msg, sizeof(msg) - 1);

	if (n > 0 && !msg[0])	/* it got past the point of no return */
		n = 0;
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;

	if (n > 0) {
		msg[n] = 0;
		return pr_errno(-EINVAL, "restore of pid %d failed: %s", pid, msg);
	}
	if (code > 100 && code - 100 < (int)(sizeof(step_names) / sizeof(step_names[0])) && step_names[code - 100])
		return pr_errno(-EIO, "restore of pid %d failed in the restorer: %s", pid, step_names[code - 100]);
	if (WIFSIGNALED(st))
		return pr_errno(-EIO, "restore of pid %d failed: killed by signal %d", pid, WTERMSIG(st));
	return pr_errno(-EIO, "restore of pid %d failed: exit status %d", pid, code);
}

/* The thread's id in its own (innermost) pid namespace, from /proc/TID/status NSpid. */
static pid_t inner_tid(pid_t tid)
{
	char path[64], line[256];
	pid_t inner = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f)) {
		char *p = line + 6, *end;

		if (strncmp(line, "NSpid:", 6))
			continue;
		for (long v; (v = strtol(p, &end, 10)), end != p; p = end)
			inner = v;
	}
	if (f)
		fclose(f);
	return inner;
}

/* Let the process run until every thread sits on its final int3; note each thread's
 * tid as we see it (outer), which differs from its own with --pidns. */
static int wait_all_trapped(struct rst_ctx *c, pid_t pid, int status_fd, pid_t *outer)
{
	size_t done = 0, n = c->proc.nr_threads;

	while (done < n) {
		int st, ev, sig;
		pid_t w = waitpid(-1, &st, __WALL), in;

		if (w < 0)
			return pr_errno(-errno, "waiting for pid %d", pid);
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (w == pid)
				return child_died(pid, st, status_fd);
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		ev = st >> 16;
		sig = WSTOPSIG(st);
		if (!ev && sig == SIGTRAP) {
			in = inner_tid(w);
			for (size_t i = 0; i < n; i++)
				if ((pid_t)c->proc.threads[i]->tid == in)
					outer[i] = w;
			done++;
			continue;
		}
		/* Clone events and new threads' first stops: go on. A real signal (all are
		 * blocked, so a fault) is delivered and ends the process. */
		ptrace(PTRACE_CONT, w, 0, ev ? 0 : sig);
	}
	for (size_t i = 0; i < n; i++)
		if (!outer[i])
			return pr_errno(-ESRCH, "pid %d: thread %u did not come back", pid, c->proc.threads[i]->tid);
	return 0;
}

static int unmap_restorer(struct rst_ctx *c, pid_t pid, unsigned long ip)
{
	struct user_regs_struct r;
	int st;

	if (ptrace(PTRACE_GETREGS, pid, 0, &r))
		return pr_errno(-errno, "pid %d: PTRACE_GETREGS", pid);
	r.rip = ip;
	r.rax = SYS_munmap;
	r.rdi = c->region;
	r.rsi = c->region_len;
	r.orig_rax = -1;
	if (ptrace(PTRACE_SETREGS, pid, 0, &r))
		return pr_errno(-errno, "pid %d: PTRACE_SETREGS", pid);
	for (int i = 0; i < 2; i++)
		if (ptrace(PTRACE_SYSCALL, pid, 0, 0) || waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st))
			return pr_errno(-EIO, "pid %d: stepping munmap of the restorer", pid);
	if (ptrace(PTRACE_GETREGS, pid, 0, &r) || r.rax)
		return pr_errno(-EIO, "pid %d: munmap of the restorer returned %lld", pid, (long long)r.rax);
	return 0;
}

static int read_ready(struct rst_ctx *c, pid_t pid, int status_fd)
{
	struct ready_msg m;

	if (read(status_fd, &m, sizeof(m)) != sizeof(m) || m.zero || !m.region)
		return pr_errno(-EPROTO, "pid %d: no word from the restore about its restorer", pid);
	c->region = m.region;
	c->region_len = m.region_len;
	return 0;
}

static int finish(struct rst_ctx *c, pid_t pid, int status_fd, const pid_t *outer)
{
	const ImgVma *vdso = NULL;
	unsigned long vlen = 0, ip;
	long off = vdso_syscall_off(&vlen);
	int ret;

	for (size_t i = 0; i < c->proc.nr_vmas; i++)
		if (c->proc.vmas[i]->kind == IMG_VMA_KIND__VMA_VDSO)
			vdso = c->proc.vmas[i];
	if (!vdso || off < 0 || vdso->end - vdso->start != vlen)
		return pr_errno(-ENOTSUP, "pid %d: no vdso syscall instruction to return through", pid);
	ip = vdso->start + off;
	ret = read_ready(c, pid, status_fd);
	if (!ret)
		ret = unmap_restorer(c, pid, ip);
	for (size_t i = 0; i < c->proc.nr_threads && !ret; i++)
		ret = rst__thread_finish(c, i, outer[i]);
	return ret;
}

static int check_cpu(const struct rst_ctx *c)
{
	uint32_t lo, hi;
	uint64_t xcr0;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	xcr0 = ((uint64_t)hi << 32) | lo;
	if (c->inv->xcr0 & ~xcr0)
		return pr_errno(-ENOTSUP, "inventory.img: the process used CPU state %#lx that this CPU lacks (XCR0 %#lx)",
				(unsigned long)c->inv->xcr0, (unsigned long)xcr0);
	return 0;
}

/*
 * --pidns: a minimal init becomes pid 1 of a new pid namespace and creates the process
 * with its dumped pid inside it; it reaps what gets orphaned there and exits with the
 * process's status. The process's outer pid is read from the init's children.
 */
static void __attribute__((noreturn)) init_main(struct rst_ctx *c, int *go, int *status)
{
	pid_t pid = clone_with_pid(c->proc.pid);
	int st;

	if (pid == 0) {
		close(go[1]);
		close(status[0]);
		child_main(c, go[0], status[1]);
	}
	if (pid < 0) {
		pr_err("clone3 with pid %d in the new pid namespace: %s", c->proc.pid, strerror(errno));
		child_fail(status[1]);
	}
	prctl(PR_SET_NAME, "hacd-init");
	/* It lives as long as the service: it must not hold hactl's stdio (a caller
	 * reading hactl's output would wait for the service to end) or anything else. */
	close_range(0, ~0u, 0);
	for (;;) {
		pid_t w = wait(&st);

		if (w == pid)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		if (w < 0 && errno != EINTR)
			_exit(127);
	}
}

static pid_t outer_child(pid_t init)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", init, init);
	for (int i = 0; i < 5000; i++) {
		FILE *f = fopen(path, "re");
		int pid = 0;

		if (f) {
			if (fscanf(f, "%d", &pid) != 1)
				pid = 0;
			fclose(f);
		}
		if (pid > 0)
			return pid;
		usleep(1000);
	}
	return -1;
}

static pid_t spawn(struct rst_ctx *c, bool pidns, int *go, int *status, pid_t *init)
{
	pid_t pid;

	*init = 0;
	if (!pidns) {
		pid = clone_with_pid(c->proc.pid);
		if (pid == 0) {
			close(go[1]);
			close(status[0]);
			child_main(c, go[0], status[1]);
		}
		if (pid < 0)
			return errno == EEXIST ? pr_errno(-EEXIST, "pid %d is in use by another process", c->proc.pid)
					       : pr_errno(-errno, "clone3 with pid %d", c->proc.pid);
		return pid;
	}
	{
		struct clone_args ca = { .flags = CLONE_NEWPID, .exit_signal = SIGCHLD };

		*init = syscall(SYS_clone3, &ca, sizeof(ca));
	}
	if (*init == 0)
		init_main(c, go, status);
	if (*init < 0)
		return pr_errno(-errno, "clone3 of an init in a new pid namespace");
	pid = outer_child(*init);
	if (pid < 0) {
		kill(*init, SIGKILL);
		waitpid(*init, NULL, 0);
		return pr_errno(-ESRCH, "the restore's init %d created no process", *init);
	}
	return pid;
}

int eng_restore(const char *dir, const struct eng_restore_opts *opts, pid_t *out)
{
	struct rst_ctx c;
	int go[2] = { -1, -1 }, status[2] = { -1, -1 }, ret;
	pid_t pid, init, *outer = NULL;

	eng__clear_error();
	ret = rst__load(&c, dir);
	if (!ret)
		ret = check_cpu(&c);
	if (!ret && (pipe2(go, O_CLOEXEC) || pipe2(status, O_CLOEXEC)))
		ret = pr_errno(-errno, "pipe");
	if (!ret && !(outer = calloc(c.proc.nr_threads, sizeof(*outer))))
		ret = -ENOMEM;
	if (ret)
		goto out;
	fflush(NULL);
	pid = spawn(&c, opts && opts->pidns, go, status, &init);
	if (pid < 0) {
		ret = pid;
		goto out;
	}
	close(go[0]);
	close(status[1]);
	go[0] = status[1] = -1;
	if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACECLONE | PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL |
					 PTRACE_O_SUSPEND_SECCOMP))
		ret = pr_errno(-errno, "pid %d: PTRACE_SEIZE", pid);
	if (!ret && write(go[1], "g", 1) != 1)
		ret = pr_errno(-errno, "starting the restore");
	if (!ret)
		ret = wait_all_trapped(&c, pid, status[0], outer);
	if (!ret)
		ret = finish(&c, pid, status[0], outer);
	if (ret) {
		/* Nothing half-restored stays behind; reap only what is ours to reap. */
		kill(pid, SIGKILL);
		if (init)
			kill(init, SIGKILL);
		for (size_t i = 0; i < c.proc.nr_threads; i++)
			if (outer[i] && outer[i] != pid)
				while (waitpid(outer[i], NULL, __WALL) < 0 && errno == EINTR)
					;
		while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
			;
		if (init)
			while (waitpid(init, NULL, 0) < 0 && errno == EINTR)
				;
		goto out;
	}
	for (size_t i = 0; i < c.proc.nr_threads; i++)
		if (ptrace(PTRACE_DETACH, outer[i], 0, 0))
			pr_warn("thread %d: detach: %s", outer[i], strerror(errno));
	*out = init ? init : pid;
out:
	for (int i = 0; i < 2; i++) {
		if (go[i] >= 0)
			close(go[i]);
		if (status[i] >= 0)
			close(status[i]);
	}
	free(outer);
	rst__free(&c);
	return ret;
}
