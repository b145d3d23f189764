/*
 * Restore orchestration, in hactl: create the root, trace the whole tree as it forks
 * itself back (rst-tree.c), pace its phases, and finish every thread at the end.
 *
 *   hactl                                each restored process (pid = its dumped pid)
 *   -----                                ----------------------------------------
 *   load + check every image
 *   clone3(set_tid = root) ------------> root waits for "go"
 *   PTRACE_SEIZE (+TRACEFORK), "go" ---> lead its session/group, fork its children
 *                                        and helpers (clone3 set_tid): BORN
 *   all BORN: phase 0 -----------------> join groups: JOINED
 *   all JOINED: phase 1 ---------------> zombies and helpers exit;
 *                                        files: fds at their numbers
 *                                        memory: premap, userfaultfd over the
 *   fill every page (rst-fill.c): <----- anonymous slots; FILL, SIGSTOP itself
 *   workers read, check, decompress,
 *   UFFDIO_COPY; PTRACE_CONT ----------> (one worker: the process fills itself)
 *                                        task: sigactions, umask, cwd, root, rlimits
 *                                        READY ---- point of no return ----
 *                                        restorer: unmap hactl, mremap into place,
 *                                        PR_SET_MM_MAP, clone3 threads (set_tid),
 *   each thread stops on int3 <--------- rseq, comm, creds, seccomp...; int3
 *   once every thread of every process
 *   is there: munmap each restorer (a
 *   syscall from the vdso), [adopted:
 *   the root's tracker armed, see
 *   track-adopt.c], set registers,
 *   xstate and signal masks,
 *   detach them all -------------------> running again
 *
 * All or nothing: a failure anywhere (a FAIL message before the point of no return,
 * exit_group(100 + step) after it, any traced task dying) kills every process of the
 * restore, and PTRACE_O_EXITKILL kills them if hactl itself dies half way.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>

#include "ha/engine.h"
#include "dump.h"
#include "log.h"
#include "restore.h"
#include "track.h"

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

/* hactl's view of one restored process while it comes back. */
struct rproc {
	pid_t *outer;		/* each thread's tid as we see it (differs under --pidns) */
	size_t trapped;		/* threads on their final int3 */
	bool ready;		/* READY received */
	unsigned long region, region_len;
	bool fill_asked;	/* FILL received: its slots' base and uffd number */
	unsigned long fill_rsv;
	int fill_uffd;
	pid_t fill_stopped;	/* its outer pid once stopped for the fill */
};

struct restore {
	struct rst_ctx c;
	struct rproc *rp;	/* rp[i] is c.procs[i]'s; unused for zombies */
	size_t nr_live;
	int go[2], status[2], phase[2][2];
	pid_t init, root;	/* as we see them */
	pid_t *seen;		/* every traced task we saw: killed on failure */
	size_t nr_seen, cap_seen;
	size_t born, joined, ready, trapped_procs;
	size_t gone;		/* session helpers about to exit (RST_MSG_GONE) */
	const struct rst_adopt *adopt;	/* the root goes to a tracker (track-adopt.c) */
};

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

static void note_seen(struct restore *r, pid_t w)
{
	for (size_t i = 0; i < r->nr_seen; i++)
		if (r->seen[i] == w)
			return;
	if (r->nr_seen == r->cap_seen) {
		size_t cap = r->cap_seen ? r->cap_seen * 2 : 64;
		void *p = realloc(r->seen, cap * sizeof(*r->seen));

		if (!p)
			return;	/* still killed through EXITKILL or its parent */
		r->seen = p;
		r->cap_seen = cap;
	}
	r->seen[r->nr_seen++] = w;
}

static int proc_by_pid(const struct restore *r, pid_t pid)
{
	for (size_t i = 0; i < r->c.nr_procs; i++)
		if (r->c.procs[i].pid == pid && !r->c.procs[i].zombie)
			return i;
	return -1;
}

/* A thread on its final int3: note its outer tid. */
static int on_trap(struct restore *r, pid_t w)
{
	pid_t in = inner_tid(w);

	for (size_t i = 0; i < r->c.nr_procs; i++) {
		const struct rst_proc *p = &r->c.procs[i];

		for (size_t k = 0; !p->zombie && k < p->nr_threads; k++) {
			if ((pid_t)p->threads[k]->tid != in)
				continue;
			if (r->rp[i].outer[k])
				return pr_errno(-EPROTO, "pid %d: thread %d trapped twice", p->pid, in);
			r->rp[i].outer[k] = w;
			if (++r->rp[i].trapped == p->nr_threads)
				r->trapped_procs++;
			return 0;
		}
	}
	return pr_errno(-EPROTO, "task %d (%d inside) stopped on a trap but is no thread of the checkpoint", w, in);
}

static int on_msg(struct restore *r, const struct rst_msg *m)
{
	int i;

	switch (m->kind) {
	case RST_MSG_FAIL:
		return pr_errno(-EINVAL, "restore of pid %d failed: %.*s", m->pid, (int)sizeof(m->text), m->text);
	case RST_MSG_BORN:
		r->born++;
		return 0;
	case RST_MSG_JOINED:
		r->joined++;
		return 0;
	case RST_MSG_GONE:
		r->gone++;
		return 0;
	case RST_MSG_FILL:
		i = proc_by_pid(r, m->pid);
		if (i < 0 || r->rp[i].fill_asked || r->c.fill_workers < 2)
			return pr_errno(-EPROTO, "a FILL from pid %d that is not expected", m->pid);
		r->rp[i].fill_asked = true;
		r->rp[i].fill_rsv = m->region;
		r->rp[i].fill_uffd = (int)m->region_len;
		return 0;
	case RST_MSG_READY:
		i = proc_by_pid(r, m->pid);
		if (i < 0 || r->rp[i].ready || !m->region)
			return pr_errno(-EPROTO, "a READY from pid %d that is not expected", m->pid);
		r->rp[i].ready = true;
		r->rp[i].region = m->region;
		r->rp[i].region_len = m->region_len;
		r->ready++;
		pr_debug("restore: pid %d ready: %.*s", m->pid, (int)sizeof(m->text), m->text);
		return 0;
	}
	return pr_errno(-EPROTO, "message %u from pid %d", m->kind, m->pid);
}

/* Messages first: a process that fails says why before it exits. */
static int drain_msgs(struct restore *r, int timeout_ms)
{
	struct pollfd pfd = { r->status[0], POLLIN, 0 };
	struct rst_msg m;

	while (poll(&pfd, 1, timeout_ms) > 0) {
		ssize_t n = read(r->status[0], &m, sizeof(m));
		int ret;

		if (n != sizeof(m))
			return n == 0 ? 0 : pr_errno(-EPROTO, "a short message on the restore's status pipe");
		ret = on_msg(r, &m);
		if (ret)
			return ret;
		timeout_ms = 0;
	}
	return 0;
}

static int died(struct restore *r, pid_t w, int st)
{
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	int ret = drain_msgs(r, 50);	/* its last words, if any */

	if (ret)
		return ret;
	/* A session helper is traced (rst-tree.c) and ends on purpose, after saying so. */
	if (code == 0 && r->gone) {
		r->gone--;
		return 0;
	}
	if (code > 100 && code - 100 < (int)(sizeof(step_names) / sizeof(step_names[0])) && step_names[code - 100])
		return pr_errno(-EIO, "restore of pid %d failed in the restorer: %s", inner_tid(w) > 0 ? inner_tid(w) : w,
				step_names[code - 100]);
	if (w == r->init)
		return pr_errno(-EIO, "the restore's init %d ended (status %#x)", w, st);
	if (WIFSIGNALED(st))
		return pr_errno(-EIO, "restore of task %d failed: killed by signal %d", w, WTERMSIG(st));
	return pr_errno(-EIO, "restore of task %d failed: exit status %d", w, code);
}

/* Every ptrace stop and exit that is waiting. */
static int drain_waits(struct restore *r)
{
	for (;;) {
		int st, ev, sig, ret;
		pid_t w = waitpid(-1, &st, __WALL | WNOHANG);

		if (w == 0 || (w < 0 && errno == ECHILD))
			return 0;
		if (w < 0)
			return errno == EINTR ? 0 : pr_errno(-errno, "waiting for the restored processes");
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return died(r, w, st);
		if (!WIFSTOPPED(st))
			continue;
		note_seen(r, w);
		ev = st >> 16;
		sig = WSTOPSIG(st);
		if (!ev && sig == SIGTRAP) {
			ret = on_trap(r, w);
			if (ret)
				return ret;
			continue;
		}
		/* A process stopped itself for its fill (it said FILL before): held until done. */
		if (!ev && sig == SIGSTOP && r->c.fill_workers > 1) {
			int i = proc_by_pid(r, inner_tid(w));

			if (i >= 0 && !r->rp[i].fill_stopped && !r->rp[i].ready) {
				r->rp[i].fill_stopped = w;
				continue;
			}
		}
		/* Fork and clone events, new tasks' first stops: go on. A real signal (all
		 * are blocked, so a fault) is delivered and ends the process. */
		ptrace(PTRACE_CONT, w, 0, ev ? 0 : sig);
	}
}

static int release_phase(struct restore *r, int phase)
{
	size_t n = rst__nr_participants(&r->c);
	char *b = calloc(n, 1);
	int ret = 0;

	if (!b || ha_write_full(r->phase[phase][1], b, n))
		ret = pr_errno(b ? -errno : -ENOMEM, "starting restore phase %d", phase);
	free(b);
	return ret;
}

/*
 * Put every page of process i from here, with c.fill_workers threads (rst-fill.c says
 * why): its userfaultfd taken with pidfd_getfd, its slots where its premap put them.
 */
static int fill_proc(struct restore *r, size_t i)
{
	const struct rst_proc *p = &r->c.procs[i];
	struct rproc *rp = &r->rp[i];
	unsigned long *slots = calloc(p->nr_vmas + 1, sizeof(*slots));
	bool *reg = calloc(p->nr_vmas + 1, sizeof(*reg));
	struct rst_fill_args a = { .p = p, .slots = slots, .dirfd = r->c.dirfd, .dir = r->c.dir, .store = r->c.store,
				   .gen = r->c.gen, .uffd = -1, .registered = reg, .remote = rp->fill_stopped,
				   .workers = r->c.fill_workers };
	struct rst_times t = { 0 };
	uint64_t t0 = rst__now_us();
	int pidfd = -1, ret = 0;

	if (!slots || !reg)
		ret = -ENOMEM;
	if (!ret && rp->fill_uffd >= 0) {
		pidfd = syscall(SYS_pidfd_open, rp->fill_stopped, 0);
		a.uffd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, rp->fill_uffd, 0);
		if (a.uffd < 0)
			ret = pr_errno(-errno, "pid %d: taking its userfaultfd (fd %d)", p->pid, rp->fill_uffd);
	}
	if (!ret) {
		rst__plan_slots(p, slots);
		for (size_t k = 0; k < p->nr_vmas; k++) {
			slots[k] += rp->fill_rsv;
			reg[k] = a.uffd >= 0 && rst__slot_uffd(p->vmas[k]);
		}
		ret = rst__fill(&a, &t);
	}
	if (!ret)
		pr_debug("restore: pid %d filled by %d workers in %lu us (summed over workers: read+check %lu, unpack "
			 "%lu, copy %lu; %lu MiB read, %lu MiB filled)", p->pid, a.workers,
			 (unsigned long)(rst__now_us() - t0), (unsigned long)t.fill_read, (unsigned long)t.fill_unpack,
			 (unsigned long)t.fill_copy, (unsigned long)(t.bytes_read >> 20),
			 (unsigned long)(t.bytes_filled >> 20));
	if (a.uffd >= 0)
		close(a.uffd);
	if (pidfd >= 0)
		close(pidfd);
	free(slots);
	free(reg);
	rp->fill_asked = false;
	if (!ret && ptrace(PTRACE_CONT, rp->fill_stopped, 0, 0))
		ret = pr_errno(-errno, "pid %d: resuming it after its fill", p->pid);
	return ret;
}

/* Run the tree until every thread of every process sits on its final int3. */
static int run_tree(struct restore *r)
{
	size_t n = rst__nr_participants(&r->c);
	bool p0 = false, p1 = false;
	int ret = 0;

	while (!ret && (r->trapped_procs < r->nr_live || r->ready < r->nr_live)) {
		ret = drain_msgs(r, 2);
		if (!ret)
			ret = drain_waits(r);
		if (!ret && !p0 && r->born == n) {
			p0 = true;
			ret = release_phase(r, 0);
		}
		if (!ret && !p1 && r->joined == n) {
			p1 = true;
			ret = release_phase(r, 1);
		}
		for (size_t i = 0; i < r->c.nr_procs && !ret; i++)
			if (r->rp[i].fill_asked && r->rp[i].fill_stopped > 0)
				ret = fill_proc(r, i);
	}
	return ret;
}

/* One syscall in a stopped thread, through the `syscall` instruction at ip; its
 * registers are set in full afterwards (rst__thread_finish). *rax: what it returned. */
static int remote_call(pid_t pid, unsigned long ip, long nr, long a1, long a2, const char *what, long *rax)
{
	struct user_regs_struct regs;
	int st;

	if (ptrace(PTRACE_GETREGS, pid, 0, &regs))
		return pr_errno(-errno, "pid %d: PTRACE_GETREGS", pid);
	regs.rip = ip;
	regs.rax = nr;
	regs.rdi = a1;
	regs.rsi = a2;
	regs.orig_rax = -1;
	if (ptrace(PTRACE_SETREGS, pid, 0, &regs))
		return pr_errno(-errno, "pid %d: PTRACE_SETREGS", pid);
	for (int i = 0; i < 2; i++)
		if (ptrace(PTRACE_SYSCALL, pid, 0, 0) || waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st))
			return pr_errno(-EIO, "pid %d: stepping %s", pid, what);
	if (ptrace(PTRACE_GETREGS, pid, 0, &regs))
		return pr_errno(-EIO, "pid %d: PTRACE_GETREGS after %s", pid, what);
	*rax = (long)regs.rax;
	return 0;
}

static int remote_syscall(pid_t pid, unsigned long ip, long nr, long a1, long a2, const char *what)
{
	long rax;
	int ret = remote_call(pid, ip, nr, a1, a2, what, &rax);

	if (!ret && rax)
		return pr_errno(-EIO, "pid %d: %s returned %ld", pid, what, rax);
	return ret;
}

/*
 * The root handed over to a tracker (struct rst_adopt): a userfaultfd made in it (the
 * registration belongs to the mm of the caller of userfaultfd()), taken, and closed
 * there again, so the process holds nothing new. The fill's own userfaultfd cannot be
 * kept for this: its slots were registered MISSING only, and the restorer's mremap
 * into place dropped the registration anyway (no UFFD_FEATURE_EVENT_REMAP). Not
 * fatal: without it the restore is as it always was; only a uffd left in the process
 * (its close failed) fails the restore, since no checkpoint of it could succeed.
 */
static int adopt_root(struct restore *r, unsigned long ip)
{
	pid_t pid = r->rp[0].outer[0];
	int pidfd = -1, uffd = -1, ret = 0;
	long fd = -1, rax = 0;

	/* A failure here is not the restore's: logged, not kept as its error. */
	eng__log_quiet(true);
	if (remote_call(pid, ip, SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY, 0,
			"userfaultfd", &fd))
		fd = -1;
	else if (fd < 0)
		pr_info("pid %d: userfaultfd in the restored process: %s", pid, strerror((int)-fd));
	if (fd >= 0) {
		pidfd = syscall(SYS_pidfd_open, pid, 0);
		uffd = pidfd < 0 ? -1 : syscall(SYS_pidfd_getfd, pidfd, (int)fd, 0);
		if (uffd < 0)
			pr_info("pid %d: taking its userfaultfd %ld: %s", pid, fd, strerror(errno));
		ret = remote_call(pid, ip, SYS_close, fd, 0, "close", &rax);
	}
	eng__log_quiet(false);
	if (pidfd >= 0)
		close(pidfd);
	/* A process left holding a userfaultfd could never be checkpointed: fail whole. */
	if (ret || (fd >= 0 && rax)) {
		if (uffd >= 0)
			close(uffd);
		return pr_errno(ret ? ret : -EIO, "pid %d: closing the userfaultfd %ld made in it", pid, fd);
	}
	r->adopt->fn(r->adopt->arg, pid, &r->c.procs[0], uffd);
	return 0;
}

static int finish_proc(struct restore *r, size_t i, long off, unsigned long vlen)
{
	const struct rst_proc *p = &r->c.procs[i];
	const ImgVma *vdso = NULL;
	int ret;

	for (size_t k = 0; k < p->nr_vmas; k++)
		if (p->vmas[k]->kind == IMG_VMA_KIND__VMA_VDSO)
			vdso = p->vmas[k];
	if (!vdso || off < 0 || vdso->end - vdso->start != vlen)
		return pr_errno(-ENOTSUP, "pid %d: no vdso syscall instruction to return through", p->pid);
	ret = remote_syscall(r->rp[i].outer[0], vdso->start + off, SYS_munmap, r->rp[i].region,
			     r->rp[i].region_len, "munmap of the restorer");
	/*
	 * Last, because a change of credentials (the restorer's) clears it. The root's
	 * parent is hactl, not the one it was dumped with, and gets none; under our init
	 * (--pidns, or a tree that lived in its own namespace) the root's parent is the
	 * init again, whose death ends the namespace anyway.
	 */
	if (!ret && (i || r->init > 0) && p->core->pdeathsig)
		ret = remote_syscall(r->rp[i].outer[0], vdso->start + off, SYS_prctl, PR_SET_PDEATHSIG,
				     p->core->pdeathsig, "prctl(PR_SET_PDEATHSIG)");
	if (!ret && !i && r->adopt)
		ret = adopt_root(r, vdso->start + off);
	for (size_t k = 0; k < p->nr_threads && !ret; k++)
		ret = rst__thread_finish(p, k, r->rp[i].outer[k]);
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

/* What every restored process inherits: the pipes' ends it uses. */
static void child_setup(struct restore *r)
{
	close(r->go[1]);
	close(r->status[0]);
	close(r->phase[0][1]);
	close(r->phase[1][1]);
	r->c.status_w = r->status[1];
	r->c.phase_r[0] = r->phase[0][0];
	r->c.phase_r[1] = r->phase[1][0];
}

/*
 * --pidns: a minimal init becomes pid 1 of new pid, ipc, uts and mount namespaces, names
 * the host as the checkpoint did, mounts /proc of its pid namespace, and creates the root with its dumped pid inside; it
 * reaps what gets orphaned there and exits with the root's status. The root's outer
 * pid is read from the init's children.
 */
static void __attribute__((noreturn)) init_fail(struct restore *r, const char *what)
{
	struct rst_msg m = { .pid = 1, .kind = RST_MSG_FAIL };

	snprintf(m.text, sizeof(m.text), "%s in the new namespaces: %s", what, strerror(errno));
	if (write(r->status[1], &m, sizeof(m)) < 0)
		_exit(2);
	_exit(1);
}

static void __attribute__((noreturn)) init_main(struct restore *r)
{
	const char *host = r->c.inv->hostname;
	char what[64];
	sigset_t all;
	pid_t pid;
	int st;

	if (host && sethostname(host, strlen(host)))
		init_fail(r, "sethostname");
	/* Before the root: the restore itself reads /proc/self, and the service its pids. */
	errno = -eng__ns_mount_proc();
	if (errno)
		init_fail(r, "mounting /proc");
	pid = rst__clone_pid(r->c.procs[0].pid, 0);
	if (pid == 0) {
		child_setup(r);
		rst__proc_main(&r->c, 0, r->go[0]);
	}
	snprintf(what, sizeof(what), "clone3 with pid %d", r->c.procs[0].pid);
	if (pid < 0)
		init_fail(r, what);
	/* For tests (HA_TEST_RST_INIT_DELAY_MS=N): an init that does not run for N ms
	 * after the clone, as one may not under load (see wait_init). */
	if (getenv("HA_TEST_RST_INIT_DELAY_MS"))
		usleep(atoi(getenv("HA_TEST_RST_INIT_DELAY_MS")) * 1000);
	/* The name, no fd and one thread are how a dump knows the init for ours (pidns.c). */
	prctl(PR_SET_NAME, "hacd-init");
	/* It lives as long as the service: it must not hold hactl's stdio (a caller
	 * reading hactl's output would wait for the service to end) or anything else. */
	close_range(0, ~0u, 0);
	/* As eng_launch's init: only SIGKILL from outside should end it. */
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

static int spawn(struct restore *r, bool pidns)
{
	pid_t pid = r->c.procs[0].pid;
	/* New ipc, uts and mount namespaces too, as eng_launch gives a service: its SysV
	 * ids, host name and /proc are its own. */
	struct clone_args ca = { .flags = CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS,
				 .exit_signal = SIGCHLD };

	if (!pidns) {
		r->root = rst__clone_pid(pid, 0);
		if (r->root == 0) {
			child_setup(r);
			rst__proc_main(&r->c, 0, r->go[0]);
		}
		if (r->root < 0)
			return errno == EEXIST ? pr_errno(-EEXIST, "pid %d is in use by another process", pid)
					       : pr_errno(-errno, "clone3 with pid %d", pid);
		return 0;
	}
	r->init = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r->init == 0)
		init_main(r);
	if (r->init < 0)
		return pr_errno(-errno, "clone3 of an init in a new pid namespace");
	r->root = outer_child(r->init);
	if (r->root < 0) {
		int ret = drain_msgs(r, 0);

		return ret ? ret : pr_errno(-ESRCH, "the restore's init %d created no process", r->init);
	}
	return 0;
}

/*
 * The init names itself and drops every fd it inherited, our status pipe's write end
 * among them, only after it has cloned the root, and nothing paces it: under load it
 * may not have run since, while the whole tree was restored. Until it has, it is not
 * ours to a dump (pidns.c, invariant 1: hacd's next checkpoint of the service would
 * be refused) and holds our pipes. Every restored process closed its copy before its
 * READY, so EOF on the pipe says the init is done. Messages now would be a bug.
 */
static int wait_init(struct restore *r)
{
	struct pollfd pfd = { r->status[0], POLLIN, 0 };
	struct rst_msg m;

	for (;;) {
		int n = poll(&pfd, 1, 30000);
		ssize_t got;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return pr_errno(n ? -errno : -ETIMEDOUT, "the restore's init %d: still holding our pipe after 30 s",
					r->init);
		got = read(r->status[0], &m, sizeof(m));
		if (got == 0)
			return 0;
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return pr_errno(-errno, "reading the restore's status pipe");
		return pr_errno(-EPROTO, "message %u from pid %d after every process was finished", m.kind, m.pid);
	}
}

/* All or nothing: every process we created or saw dies, and what is ours is reaped. */
static void kill_all(struct restore *r)
{
	if (r->init > 0)
		kill(r->init, SIGKILL);
	if (r->root > 0)
		kill(r->root, SIGKILL);
	for (size_t i = 0; i < r->nr_seen; i++)
		kill(r->seen[i], SIGKILL);
	for (size_t i = 0; i < r->nr_seen; i++)
		if (r->seen[i] != r->root)
			while (waitpid(r->seen[i], NULL, __WALL) < 0 && errno == EINTR)
				;
	if (r->root > 0)
		while (waitpid(r->root, NULL, __WALL) < 0 && errno == EINTR)
			;
	if (r->init > 0)
		while (waitpid(r->init, NULL, 0) < 0 && errno == EINTR)
			;
}

/* Fill workers: the caller's choice, else HACD_RESTORE_WORKERS, else one per online CPU
 * up to 8 (memory bandwidth, not CPUs, is the limit beyond that). */
static int fill_workers(const struct eng_restore_opts *opts)
{
	const char *env = getenv("HACD_RESTORE_WORKERS");
	long n = opts && opts->fill_workers ? opts->fill_workers : env ? atol(env) : sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 8 && !(opts && opts->fill_workers) && !env ? 8 : n > 64 ? 64 : (int)n;
}

static int setup(struct restore *r, const char *dir, const struct eng_restore_opts *opts)
{
	int ret = rst__load(&r->c, dir);

	r->c.fill_workers = fill_workers(opts);
	if (!ret)
		ret = check_cpu(&r->c);
	if (!ret)
		ret = rst__core_dir_make(&r->c);
	if (!ret && (pipe2(r->go, O_CLOEXEC) || pipe2(r->status, O_CLOEXEC) || pipe2(r->phase[0], O_CLOEXEC) ||
		     pipe2(r->phase[1], O_CLOEXEC)))
		ret = pr_errno(-errno, "pipe");
	if (!ret && !(r->rp = calloc(r->c.nr_procs, sizeof(*r->rp))))
		ret = -ENOMEM;
	for (size_t i = 0; i < r->c.nr_procs && !ret; i++) {
		if (r->c.procs[i].zombie)
			continue;
		r->nr_live++;
		r->rp[i].outer = calloc(r->c.procs[i].nr_threads, sizeof(pid_t));
		if (!r->rp[i].outer)
			ret = -ENOMEM;
	}
	return ret;
}

static void cleanup(struct restore *r)
{
	for (int i = 0; i < 2; i++) {
		if (r->go[i] >= 0)
			close(r->go[i]);
		if (r->status[i] >= 0)
			close(r->status[i]);
		for (int k = 0; k < 2; k++)
			if (r->phase[k][i] >= 0)
				close(r->phase[k][i]);
	}
	for (size_t i = 0; r->rp && i < r->c.nr_procs; i++)
		free(r->rp[i].outer);
	free(r->rp);
	free(r->seen);
	rst__core_dir_remove();
	rst__free(&r->c);
}

static int finish_all(struct restore *r)
{
	unsigned long vlen = 0;
	long off = vdso_syscall_off(&vlen);
	int ret = 0;

	for (size_t i = 0; i < r->c.nr_procs && !ret; i++)
		if (!r->c.procs[i].zombie)
			ret = finish_proc(r, i, off, vlen);
	if (ret)
		return ret;
	/* Children first, so that no parent runs while a child of it is still stopped. */
	for (size_t i = r->c.nr_procs; i-- > 0;)
		for (size_t k = 0; !r->c.procs[i].zombie && k < r->c.procs[i].nr_threads; k++)
			if (ptrace(PTRACE_DETACH, r->rp[i].outer[k], 0, 0))
				pr_warn("thread %d: detach: %s", r->rp[i].outer[k], strerror(errno));
	return 0;
}

/* dir named as a generation of a page store itself (STORE/gen-N): STORE, and N. */
static const char *store_of(const char *dir, char *buf, size_t len, uint32_t *gen)
{
	size_t n = strlen(dir);
	const char *base;
	unsigned g;
	int end = 0;

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n >= len)
		return NULL;
	memcpy(buf, dir, n);
	buf[n] = 0;
	base = strrchr(buf, '/');
	if (sscanf(base ? base + 1 : buf, "gen-%8u%n", &g, &end) != 1 || end != 12 || (base ? base + 1 : buf)[end])
		return NULL;
	if (!base)
		snprintf(buf, len, ".");
	else if (base == buf)
		buf[1] = 0;
	else
		buf[base - buf] = 0;
	if (!eng_store_is(buf))
		return NULL;
	*gen = g;
	return buf;
}

int eng_restore(const char *dir, const struct eng_restore_opts *opts, pid_t *out)
{
	return eng_restore_pids(dir, opts, out, NULL);
}

int eng_restore_pids(const char *dir, const struct eng_restore_opts *opts, pid_t *out, pid_t *root)
{
	return eng__restore_adopt(dir, opts, out, root, NULL);
}

int eng__restore_adopt(const char *dir, const struct eng_restore_opts *opts, pid_t *out, pid_t *root,
		       const struct rst_adopt *adopt)
{
	struct restore r = { .go = { -1, -1 }, .status = { -1, -1 }, .phase = { { -1, -1 }, { -1, -1 } },
			     .adopt = adopt };
	char gen_dir[4200], store_dir[4200];
	uint64_t t0 = rst__now_us(), t_load = 0, t_tree = 0;
	const char *store = NULL;
	uint32_t gen = opts ? opts->generation : 0;
	int ret;

	eng__clear_error();
	/* A page store (eng_track): one of its generations, each an image directory. */
	if (eng_store_is(dir)) {
		ret = eng__store_gen_find(dir, &gen, gen_dir, sizeof(gen_dir));
		if (ret)
			return ret;
		store = dir;
		dir = gen_dir;
	} else {
		store = store_of(dir, store_dir, sizeof(store_dir), &gen);
	}
	ret = setup(&r, dir, opts);
	r.c.store = store;
	r.c.gen = store ? gen : 0;
	if (ret)
		goto out;
	t_load = rst__now_us();
	fflush(NULL);
	/* A tree dumped in its own pid namespace has the ids it saw there: only a new one
	 * gives them back. */
	if (!ret && r.c.inv->pidns)
		pr_debug("%s: the tree lived in a pid namespace of its own: restored in a new one", dir);
	ret = spawn(&r, (opts && opts->pidns) || r.c.inv->pidns);
	if (ret)
		goto fail;
	close(r.go[0]);
	close(r.status[1]);
	close(r.phase[0][0]);
	close(r.phase[1][0]);
	r.go[0] = r.status[1] = r.phase[0][0] = r.phase[1][0] = -1;
	note_seen(&r, r.root);
	if (ptrace(PTRACE_SEIZE, r.root, 0, PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACESYSGOOD |
					       PTRACE_O_EXITKILL | PTRACE_O_SUSPEND_SECCOMP))
		ret = pr_errno(-errno, "pid %d: PTRACE_SEIZE", r.root);
	if (!ret && write(r.go[1], "g", 1) != 1)
		ret = pr_errno(-errno, "starting the restore");
	if (!ret)
		ret = run_tree(&r);
	t_tree = rst__now_us();
	if (!ret)
		ret = finish_all(&r);
	if (!ret)
		ret = wait_init(&r);
	if (!ret) {
		pr_debug("restore of %s: %lu us: images loaded and checked %lu, tree up to every thread trapped %lu, "
			 "finish %lu", dir, (unsigned long)(rst__now_us() - t0), (unsigned long)(t_load - t0),
			 (unsigned long)(t_tree - t_load), (unsigned long)(rst__now_us() - t_tree));
		*out = r.init ? r.init : r.root;
		if (root)
			*root = r.root;
		goto out;
	}
fail:
	kill_all(&r);
out:
	cleanup(&r);
	return ret;
}
