/*
 * Restore, the process tree: what each restored process does from its birth until it
 * jumps into the restorer. hactl (restore.c) creates the root; every process forks its
 * own children with their pids, so parents, sessions and groups come back as they were.
 *
 * DESIGN
 * Three phases, each ended by hactl once every participant (process, zombie, group
 * helper) has reported on the shared status pipe:
 *
 *   BORN    setsid() if it leads a session, setpgid(0, 0) if it leads a group, then
 *           fork its children (clone3 set_tid) and the helpers it hosts (a session
 *           helper forks the members of its session itself); say BORN
 *   JOINED  (after phase pipe 0) join its group when another process leads it: every
 *           group exists by now, led by its process or by a helper; say JOINED
 *   GO      (after phase pipe 1) helpers exit and are reaped by their host; zombies
 *           exit with their dumped status and stay unreaped; processes restore their
 *           files, memory and task state and enter the restorer
 *
 * Order matters only where the kernel says so: a session leader calls setsid() before
 * it forks (children inherit the session, and setsid() fails for a group leader);
 * setpgid() to another group needs that group to exist in the caller's session.
 *
 * Processes are forked traced (hactl follows forks with PTRACE_O_TRACEFORK, so none
 * runs a step hactl did not see start); zombies and helpers are CLONE_UNTRACED: they
 * only exit, and their exit must reach their parent, not hactl.
 *
 * Each phase pipe carries one byte per participant and is used once, so a fast
 * process cannot take a byte of the next phase.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/rseq.h>
#include <time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"

#define RSEQ_SIG_ 0x53053053

uint64_t rst__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000ull + ts.tv_nsec / 1000;
}

pid_t rst__clone_pid(pid_t pid, unsigned long flags)
{
	pid_t tid = pid;
	struct clone_args ca = {
		.flags = flags,
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)&tid,
		.set_tid_size = 1,
	};

	return syscall(SYS_clone3, &ca, sizeof(ca));
}

size_t rst__nr_participants(const struct rst_ctx *c)
{
	return c->nr_procs + c->nr_helpers;
}

static void send_msg(struct rst_ctx *c, uint32_t kind, const char *text)
{
	struct rst_msg m = { .pid = getpid(), .kind = kind };

	if (text)
		snprintf(m.text, sizeof(m.text), "%s", text);
	if (kind == RST_MSG_READY) {
		const struct rst_times *t = &c->t;

		m.region = c->region;
		m.region_len = c->region_len;
		snprintf(m.text, sizeof(m.text),
			 "files %lu, premap %lu, fill %lu (read+check %lu, unpack %lu, copy %lu; %lu MiB read, "
			 "%lu MiB filled), protect %lu, task %lu us",
			 (unsigned long)t->files, (unsigned long)t->premap, (unsigned long)t->fill,
			 (unsigned long)t->fill_read, (unsigned long)t->fill_unpack, (unsigned long)t->fill_copy,
			 (unsigned long)(t->bytes_read >> 20), (unsigned long)(t->bytes_filled >> 20),
			 (unsigned long)t->protect, (unsigned long)t->task);
	}
	if (write(c->status_w, &m, sizeof(m)) != sizeof(m))
		_exit(1);
}

static void __attribute__((noreturn)) fail(struct rst_ctx *c)
{
	send_msg(c, RST_MSG_FAIL, eng_last_error());
	_exit(1);
}

static void wait_phase(struct rst_ctx *c, int phase)
{
	char b;

	while (read(c->phase_r[phase], &b, 1) != 1)
		if (errno != EINTR)
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

/* Is pgid led by a process or helper of ours (rather than from outside the tree)? */
static bool group_ours(const struct rst_ctx *c, pid_t pgid)
{
	for (size_t i = 0; i < c->nr_procs; i++)
		if (c->procs[i].pid == pgid)
			return true;
	for (size_t i = 0; i < c->nr_helpers; i++)
		if (c->helpers[i].pgid == pgid)
			return true;
	return false;
}

/*
 * Birth: lead what we led. For the root a session or group led from outside the tree
 * (or 0: from an ancestor pid namespace) is the restorer's own, as CRIU's --shell-job
 * does.
 */
static int lead(const ImgPstreeEntry *e)
{
	pid_t pid = getpid();

	if (e->sid == (uint32_t)pid && getsid(0) != pid && setsid() < 0)
		return pr_errno(-errno, "pid %d: setsid", pid);
	if (e->pgid == (uint32_t)pid && getpgid(0) != pid && setpgid(0, 0))
		return pr_errno(-errno, "pid %d: setpgid(0, 0)", pid);
	return 0;
}

static int join(const struct rst_ctx *c, const ImgPstreeEntry *e)
{
	pid_t pid = getpid();

	if (!e->pgid || e->pgid == (uint32_t)pid || getpgid(0) == (pid_t)e->pgid)
		return 0;
	if (!group_ours(c, e->pgid)) {
		/* The root's group from outside: stay in the restorer's (see lead()). */
		pr_debug("pid %d: process group %u is not the tree's; staying in %d", pid, e->pgid, getpgid(0));
		return 0;
	}
	if (setpgid(0, e->pgid))
		return pr_errno(-errno, "pid %d: joining process group %u", pid, e->pgid);
	return 0;
}

/*
 * The kernel sets a wait status's core-dump bit (WCOREDUMP) only when a core dump was
 * really written. A zombie that had one dumps again, as small as it can be (no mapping:
 * coredump_filter 0), into a scratch directory hactl removes after the restore; that
 * works when core_pattern is a plain file name (written in the dumper's cwd). A pipe
 * or a path elsewhere would be a side effect of restoring: the bit is lost then.
 */
/* Set in hactl before the tree is forked, so every restored process has it; "": none. */
static char core_dir[64];

int rst__core_dir_make(const struct rst_ctx *c)
{
	char pat[256] = "";
	bool any = false;
	int fd;

	core_dir[0] = 0;
	for (size_t i = 0; i < c->nr_procs; i++)
		any |= c->procs[i].zombie && (c->procs[i].pst->exit_status & 0x80);
	if (!any)
		return 0;
	fd = open("/proc/sys/kernel/core_pattern", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, pat, sizeof(pat) - 1);

		pat[n > 0 ? n : 0] = 0;
		pat[strcspn(pat, "\n")] = 0;
		close(fd);
	}
	if (!pat[0] || pat[0] == '|' || strchr(pat, '/')) {
		pr_warn("a zombie's wait status loses its core-dump bit: core_pattern \"%s\" would not write "
			"the core into our scratch directory", pat);
		return 0;
	}
	snprintf(core_dir, sizeof(core_dir), "/tmp/hacd-core-XXXXXX");
	if (!mkdtemp(core_dir)) {
		core_dir[0] = 0;
		return pr_errno(-errno, "mkdtemp for the zombies' core files");
	}
	return 0;
}

void rst__core_dir_remove(void)
{
	struct dirent *de;
	DIR *d;

	if (!core_dir[0])
		return;
	d = opendir(core_dir);
	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	if (d)
		closedir(d);
	if (rmdir(core_dir))
		pr_warn("%s: rmdir: %s", core_dir, strerror(errno));
	core_dir[0] = 0;
}

/* Exit as the dumped zombie did, so that its parent reaps that very status. */
static void __attribute__((noreturn)) exit_like(int status)
{
	int sig = status & 0x7f;
	struct rlimit core = { 0, 0 };
	sigset_t all;

	if (!sig)
		_exit((status >> 8) & 0xff);
	if ((status & 0x80) && core_dir[0] && !chdir(core_dir)) {
		int fd = open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(128 + sig);
		close(fd);
		getrlimit(RLIMIT_CORE, &core);
		core.rlim_cur = core.rlim_max;
		prctl(PR_SET_DUMPABLE, 1);
	}
	/* Otherwise no core file: it would be a side effect of restoring. */
	setrlimit(RLIMIT_CORE, &core);
	signal(sig, SIG_DFL);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	syscall(SYS_tgkill, getpid(), getpid(), sig);
	_exit(128 + sig);
}

/* A zombie or a group helper: lead, join, then exit on GO. */
static void __attribute__((noreturn)) minor_main(struct rst_ctx *c, const ImgPstreeEntry *e, pid_t pgid)
{
	if (e ? lead(e) : setpgid(0, 0) ? pr_errno(-errno, "helper %d of process group %d: setpgid", pgid, pgid) : 0)
		fail(c);
	send_msg(c, RST_MSG_BORN, NULL);
	wait_phase(c, 0);
	if (e && join(c, e))
		fail(c);
	send_msg(c, RST_MSG_JOINED, NULL);
	wait_phase(c, 1);
	if (e)
		exit_like(e->exit_status);
	_exit(0);
}

static int fork_one(struct rst_ctx *c, size_t i)
{
	const struct rst_proc *p = &c->procs[i];
	pid_t pid = rst__clone_pid(p->pid, p->zombie ? CLONE_UNTRACED : 0);

	if (pid == 0) {
		if (p->zombie)
			minor_main(c, p->pst, 0);
		rst__proc_main(c, i, -1);
	}
	if (pid < 0)
		return pr_errno(-errno, "clone3 with pid %d%s", p->pid,
				errno == EEXIST ? ": the pid is in use by another process" : "");
	return 0;
}

/*
 * A session helper: the leader of a session that had lost it. It forks the session's
 * members (traced, as hactl must see them start, hence traced itself) and exits on GO,
 * telling hactl first so that the exit of a traced task is not taken for a failure;
 * its members are reparented to its host, a child subreaper.
 */
static void __attribute__((noreturn)) session_main(struct rst_ctx *c, int k)
{
	pid_t sid = c->helpers[k].pgid;

	if (setsid() < 0) {
		(void)pr_errno(-errno, "helper %d of session %d: setsid", sid, sid);
		fail(c);
	}
	for (size_t i = 1; i < c->nr_procs; i++)
		if (c->procs[i].via == k && fork_one(c, i))
			fail(c);
	send_msg(c, RST_MSG_BORN, NULL);
	wait_phase(c, 0);
	send_msg(c, RST_MSG_JOINED, NULL);
	wait_phase(c, 1);
	send_msg(c, RST_MSG_GONE, NULL);
	_exit(0);
}

/* Our children, in dump order, and the helpers we host. */
static int fork_children(struct rst_ctx *c)
{
	int ret = 0;

	for (size_t i = 0; i < c->nr_helpers && !ret; i++) {
		pid_t pgid = c->helpers[i].pgid, pid;
		bool session = c->helpers[i].session;

		if (c->helpers[i].host != c->me)
			continue;
		/* Its members come to us when it exits only if we are a subreaper. */
		if (session && !c->proc.core->child_subreaper)
			return pr_errno(-ENOTSUP, "pid %d: the parent of members of session %d (whose leader exited) "
					"is no child subreaper", c->proc.pid, pgid);
		pid = rst__clone_pid(pgid, session ? 0 : CLONE_UNTRACED);
		if (pid == 0 && session)
			session_main(c, i);
		if (pid == 0)
			minor_main(c, NULL, pgid);
		if (pid < 0)
			ret = pr_errno(-errno, "clone3 of a helper with pid %d for its exited leader's process group%s",
				       pgid, errno == EEXIST ? ": the pid is in use by another process" : "");
	}
	for (size_t i = 1; i < c->nr_procs && !ret; i++)
		if (c->procs[i].parent == c->me && c->procs[i].via < 0)
			ret = fork_one(c, i);
	return ret;
}

/*
 * After GO: our helpers are reaped, our zombies waited for (not reaped: WNOWAIT), and the
 * SIGCHLD their exits queued for us is taken back: it is not the checkpoint's (a
 * SIGCHLD that was pending at the dump is requeued by the restorer from the image).
 */
static int settle_children(struct rst_ctx *c)
{
	struct timespec zero = { 0, 0 };
	sigset_t chld;
	siginfo_t si;

	for (size_t i = 0; i < c->nr_helpers; i++) {
		int st;

		if (c->helpers[i].host != c->me)
			continue;
		while (waitpid(c->helpers[i].pgid, &st, 0) < 0)
			if (errno != EINTR)
				return pr_errno(-errno, "pid %d: reaping the helper of process group %d", c->proc.pid,
						c->helpers[i].pgid);
	}
	for (size_t i = 1; i < c->nr_procs; i++) {
		if (c->procs[i].parent != c->me || !c->procs[i].zombie)
			continue;
		while (waitid(P_PID, c->procs[i].pid, &si, WEXITED | WNOWAIT) < 0)
			if (errno != EINTR)
				return pr_errno(-errno, "pid %d: waiting for zombie %d to exit", c->proc.pid,
						c->procs[i].pid);
	}
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	while (sigtimedwait(&chld, NULL, &zero) == SIGCHLD)
		;
	return 0;
}

void rst__proc_main(struct rst_ctx *c, int me, int go_fd)
{
	int ret;
	sigset_t all;
	char b;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	c->me = me;
	c->proc = c->procs[me];
	/* The root starts once hactl traces it: then every fork below is traced too. */
	if (go_fd >= 0 && read(go_fd, &b, 1) != 1)
		_exit(1);
	if (go_fd >= 0)
		close(go_fd);
	/* Before the children: one orphaned while the tree comes back must come to us. */
	if (c->proc.core->child_subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1)) {
		(void)pr_errno(-errno, "pid %d: PR_SET_CHILD_SUBREAPER", c->proc.pid);
		fail(c);
	}
	if (lead(c->proc.pst) || (me == 0 && (rst__shm_create(c) || rst__files_shared(c))) || fork_children(c))
		fail(c);
	send_msg(c, RST_MSG_BORN, NULL);
	wait_phase(c, 0);
	if (join(c, c->proc.pst))
		fail(c);
	send_msg(c, RST_MSG_JOINED, NULL);
	wait_phase(c, 1);
	if (settle_children(c))
		fail(c);
	close(c->phase_r[0]);
	close(c->phase_r[1]);
	/* The pages image is reopened after the fds are in place, so that it cannot sit
	 * on a number the checkpoint needs. */
	eng_img_close(c->proc.pages);
	/* Shared objects' fds move with these (rst-mem.c maps them, memfds reopen them). */
	c->keep[RST_KEEP_DIR] = c->dirfd;
	c->keep[RST_KEEP_STATUS] = c->status_w;
	c->t.files = rst__now_us();
	ret = rst__files(c, c->keep, RST_KEEP_SHM + c->nr_shm);
	c->t.files = rst__now_us() - c->t.files;
	c->dirfd = c->keep[RST_KEEP_DIR];
	c->status_w = c->keep[RST_KEEP_STATUS];
	if (ret)
		fail(c);
	c->proc.pages = NULL;
	if (eng_img_open(c->dirfd, ENG_IMG_PAGES, c->proc.pid, &c->proc.pages) || rst__mem_prepare(c))
		fail(c);
	eng_img_close(c->proc.pages);
	rst__shm_close(c);
	c->t.task = rst__now_us();
	if (rst__task_prepare(c))
		fail(c);
	c->t.task = rst__now_us() - c->t.task;
	/* hactl unmaps the restorer at the end: tell it where. */
	send_msg(c, RST_MSG_READY, NULL);
	close(c->dirfd);
	close(c->status_w);
	drop_own_rseq();
	rst__mem_jump(c);
}
