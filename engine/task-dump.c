/*
 * Dumping what a process's threads are and share, besides memory and files: registers,
 * FPU/vector state, signals (masks, queues, actions, alternate stacks), credentials,
 * limits, timers, seccomp, rseq (core-PID.img), and its place in the tree (pstree.img).
 *
 * DESIGN
 * Sources, in the order collect reads them:
 *   ptrace, frozen    registers, xstate and mask as eng_seize saved them; rseq;
 *                     queued signals (PTRACE_PEEKSIGINFO: per thread, and the shared
 *                     queue); seccomp filters (PTRACE_SECCOMP_GET_FILTER/_METADATA)
 *   /proc             comm, personality, status (creds, umask, seccomp mode), stat
 *                     (pgid, sid), limits, cwd, root, timers
 *   parasite          signal actions, interval timers
 *   remote syscalls   per thread: sigaltstack(NULL, &old), prctl(PR_GET_TID_ADDRESS),
 *                     prctl(PR_GET_SECUREBITS); per process: timer_gettime and
 *                     timer_getoverrun of each POSIX timer, PR_GET_CHILD_SUBREAPER and
 *                     the leader's PR_GET_PDEATHSIG. Results that need memory
 *                     land in the parasite's command area, which is ours between
 *                     commands.
 * Registers are stored exactly as seized, including orig_rax and an -ERESTART* rax of
 * an interrupted syscall: the restore applies the restart rule itself.
 *
 * INVARIANTS
 * 1. th[0] is the thread-group leader (tid == pid): restore and pstree.img expect the
 *    leader first, and a process whose leader has exited is refused.
 * 2. Credentials are kept once per process (ImgCreds): threads that disagree are
 *    refused rather than silently unified.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dump.h"
#include "log.h"

#define PT_PEEKSIGINFO 0x4209
#define PT_PEEKSIGINFO_SHARED 1
#define PT_SECCOMP_GET_FILTER 0x420c
#define PT_SECCOMP_GET_METADATA 0x420d
#define PEEK_BATCH 32
#define SECCOMP_MODE_FILTER_ 2

/* The kernel's struct ptrace_peeksiginfo_args and seccomp_metadata: ours, because
 * glibc's and linux/ptrace.h cannot both be included. */
struct peeksiginfo_args {
	uint64_t off;
	uint32_t flags;
	int32_t nr;
};
struct seccomp_meta {
	uint64_t filter_off;
	uint64_t flags;
};

/* ---- before seizing --------------------------------------------------------------- */

/*
 * A tree shares every namespace with hacd, or (launched by hacd) lives in the pid, ipc,
 * uts and mount namespaces of our init (pidns.c), which restore recreates. Mounts made
 * inside that mount namespace are not dumped: restore gives the service the host's
 * file system and a /proc of its own, as eng_launch did.
 */
static int same_ns(pid_t pid, const char *ns, pid_t ns_init)
{
	bool init = ns_init && (!strcmp(ns, "pid") || !strcmp(ns, "ipc") || !strcmp(ns, "uts") ||
				!strcmp(ns, "mnt"));
	char self[64];
	int ret;

	snprintf(self, sizeof(self), "/proc/self/ns/%s", ns);
	if (access(self, F_OK))
		return errno == ENOENT ? 0 : pr_errno(-errno, "%s", self);	/* kernel without it */
	ret = eng__ns_same(pid, init ? ns_init : 0, ns);
	if (ret < 0)
		return ret;
	if (!ret && init)
		return eng__refuse("pid %d: lives in another %s namespace than its init %d: not supported yet",
				   pid, ns, ns_init);
	if (!ret)
		return eng__refuse("pid %d: lives in another %s namespace than hacd: "
				   "not supported yet", pid, ns);
	return 0;
}

int eng__task_precheck(pid_t pid, bool seized, pid_t ns_init)
{
	static const char *const ns[] = { "pid", "mnt", "user", "net", "ipc", "uts", "cgroup", "time" };
	struct eng__status st;
	int ret = eng__parse_status(pid, 0, &st);

	if (ret)
		return ret;
	eng__status_free(&st);
	if (st.tgid != pid)
		return pr_err("pid %d is a thread of process %d, not a process", pid, st.tgid), -EINVAL;
	/* ptrace allows one tracer: a debugger (or another dump) is in the way. */
	if (st.tracer && !(seized && st.tracer == getpid()))
		return pr_err("pid %d is already traced by pid %d", pid, st.tracer), -EBUSY;
	if (st.state == 'Z' || st.state == 'X')
		return pr_err("pid %d is a zombie", pid), -ESRCH;
	/* Job-control stops are not restored yet: the copy would come back running. */
	if (st.state == 'T' || (st.state == 't' && !seized))
		return eng__refuse("pid %d is stopped (state %c): not supported yet", pid, st.state);
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]) && !ret; i++)
		ret = same_ns(pid, ns[i], ns_init);
	return ret;
}

/* ---- frozen, through ptrace and /proc --------------------------------------------- */

static int read_comm(pid_t pid, const char *name, char comm[16])
{
	char *buf;
	int ret = eng__proc_read(pid, name, &buf, NULL);

	if (ret)
		return ret;
	buf[strcspn(buf, "\n")] = 0;
	snprintf(comm, 16, "%s", buf);
	free(buf);
	return 0;
}

/* Queued siginfos: the thread's own queue, or (shared) the process's. */
static int peek_signals(pid_t tid, bool shared, uint8_t **out, size_t *nr)
{
	struct peeksiginfo_args a = { 0, shared ? PT_PEEKSIGINFO_SHARED : 0, PEEK_BATCH };
	uint8_t *v = NULL;
	size_t n = 0;

	for (;;) {
		uint8_t *p = realloc(v, (n + PEEK_BATCH) * ENG_SIGINFO_SIZE);
		long r;

		if (!p) {
			free(v);
			return -ENOMEM;
		}
		v = p;
		a.off = n;
		r = ptrace(PT_PEEKSIGINFO, tid, &a, v + n * ENG_SIGINFO_SIZE);
		if (r < 0) {
			free(v);
			return pr_errno(-errno, "thread %d: PTRACE_PEEKSIGINFO%s", tid,
					shared ? " (shared)" : "");
		}
		n += r;
		if (r < PEEK_BATCH)
			break;
	}
	*out = v;
	*nr = n;
	return 0;
}

/* Filter `idx` of the thread's chain (0: the newest) into f; 1 past the oldest. */
static int get_filter(pid_t tid, long idx, struct eng__seccomp_dump *f)
{
	struct seccomp_meta md = { .filter_off = idx };
	long n = ptrace(PT_SECCOMP_GET_FILTER, tid, idx, NULL);

	if (n < 0 && errno == ENOENT)
		return 1;
	if (n <= 0)
		return pr_errno(n < 0 ? -errno : -EPROTO, "thread %d: PTRACE_SECCOMP_GET_FILTER %ld",
				tid, idx);
	f->len = n * 8;
	f->bpf = malloc(f->len);
	if (!f->bpf)
		return -ENOMEM;
	if (ptrace(PT_SECCOMP_GET_FILTER, tid, idx, f->bpf) != n)
		return pr_errno(-EPROTO, "thread %d: seccomp filter %ld changed size", tid, idx);
	if (ptrace(PT_SECCOMP_GET_METADATA, tid, sizeof(md), &md) < 0)
		return pr_errno(-errno, "thread %d: PTRACE_SECCOMP_GET_METADATA %ld", tid, idx);
	f->flags = md.flags;
	return 0;
}

/* Index (1-based) of an equal filter on the same chain below, adding it if new. Equal
 * programs on equal chains are one filter to restore: threads inherit theirs. */
static int intern_filter(struct eng__task_dump *td, struct eng__seccomp_dump *f, uint32_t *idx)
{
	void *p;

	for (size_t i = 0; i < td->nr_filters; i++) {
		struct eng__seccomp_dump *g = &td->filters[i];

		if (g->prev == f->prev && g->flags == f->flags && g->len == f->len &&
		    !memcmp(g->bpf, f->bpf, f->len)) {
			free(f->bpf);
			*idx = i + 1;
			return 0;
		}
	}
	p = realloc(td->filters, (td->nr_filters + 1) * sizeof(*td->filters));
	if (!p) {
		free(f->bpf);
		return -ENOMEM;
	}
	td->filters = p;
	td->filters[td->nr_filters++] = *f;
	*idx = td->nr_filters;
	return 0;
}

static int collect_seccomp(struct eng__task_dump *td, struct eng__thread_dump *t)
{
	struct eng__seccomp_dump *chain = NULL;
	int n = 0, ret = 0;
	uint32_t prev = 0;

	/* The kernel bounds a chain (MAX_INSNS_PER_PATH counts 4 extra per filter), not
	 * us: read until ENOENT. */
	while (!ret) {
		void *p = realloc(chain, (n + 1) * sizeof(*chain));

		if (!p) {
			ret = -ENOMEM;
			break;
		}
		chain = p;
		memset(&chain[n], 0, sizeof(chain[n]));
		ret = get_filter(t->tid, n, &chain[n]);
		if (ret)
			free(chain[n].bpf);
		else
			n++;
	}
	if (ret == 1)
		ret = 0;
	/* Oldest first, each pointing at the one below it. */
	for (int i = n - 1; i >= 0; i--) {
		if (ret) {
			free(chain[i].bpf);
			continue;
		}
		chain[i].prev = prev;
		ret = intern_filter(td, &chain[i], &prev);
	}
	free(chain);
	t->seccomp_filter = prev;
	return ret;
}

static int collect_thread(struct eng_victim *v, struct eng__task_dump *td, int i)
{
	struct eng__thread_dump *t = &td->th[i];
	const struct eng_thread *et = &v->th[i];
	struct eng__status st;
	char name[48];
	int ret;

	t->tid = et->tid;
	t->regs = et->regs;
	t->sigmask = et->sigmask;
	t->xstate = malloc(et->xstate_len);
	if (!t->xstate)
		return -ENOMEM;
	memcpy(t->xstate, et->xstate, et->xstate_len);
	t->xstate_len = et->xstate_len;
	ret = eng_thread_rseq(v, i, &t->rseq);
	if (!ret)
		ret = peek_signals(t->tid, false, &t->pending, &t->nr_pending);
	if (ret)
		return ret;
	/* /proc/PID/comm and status are the leader's own (proc_pid_status() of the group
	 * leader): collect_proc() read them already, frozen, two /proc reads ago. */
	if (t->tid == v->pid) {
		memcpy(t->comm, td->comm, sizeof(t->comm));
		t->seccomp_mode = td->status.seccomp;
		return t->seccomp_mode == SECCOMP_MODE_FILTER_ ? collect_seccomp(td, t) : 0;
	}
	snprintf(name, sizeof(name), "task/%d/comm", t->tid);
	ret = read_comm(v->pid, name, t->comm);
	if (!ret)
		ret = eng__parse_status(v->pid, t->tid, &st);
	if (ret)
		return ret;
	t->seccomp_mode = st.seccomp;
	if (!eng__status_same_creds(&st, &td->status))
		ret = eng__refuse("pid %d: thread %d has other credentials than the leader: "
				  "not supported yet", v->pid, t->tid);
	eng__status_free(&st);
	if (!ret && t->seccomp_mode == SECCOMP_MODE_FILTER_)
		ret = collect_seccomp(td, t);
	return ret;
}

static uint64_t read_xcr0(void)
{
	unsigned a, b, c, d;

	/* CPUID.1:ECX.OSXSAVE: the OS enabled XSAVE, so xgetbv is allowed. */
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
	return (uint64_t)d << 32 | a;
}

static int collect_proc(pid_t pid, struct eng__task_dump *td)
{
	char *buf;
	int ret;

	ret = read_comm(pid, "comm", td->comm);
	if (!ret)
		ret = eng__proc_read(pid, "personality", &buf, NULL);
	if (ret)
		return ret;
	td->personality = strtoul(buf, NULL, 16);
	free(buf);
	ret = eng__parse_status(pid, 0, &td->status);
	if (!ret)
		ret = eng__parse_stat(pid, 0, &td->stat);
	if (!ret)
		ret = eng__parse_limits(pid, td->rlimits);
	if (!ret)
		ret = eng__proc_link(pid, "cwd", td->cwd, sizeof(td->cwd));
	if (!ret)
		ret = eng__proc_link(pid, "root", td->root, sizeof(td->root));
	if (ret)
		return ret;
	/* Both read as paths from our root, which is what restore opens them by (a
	 * chrooted process's root is one of our directories). */
	if (strstr(td->cwd, " (deleted)") || td->cwd[0] != '/')
		return eng__refuse("pid %d: working directory %s: not supported yet", pid, td->cwd);
	if (strstr(td->root, " (deleted)") || td->root[0] != '/')
		return eng__refuse("pid %d: root directory %s: not supported yet", pid, td->root);
	return 0;
}

int eng__task_collect(struct eng_victim *v, struct eng__task_dump *td)
{
	int ret;

	memset(td, 0, sizeof(*td));
	td->pid = v->pid;
	td->xcr0 = read_xcr0();
	if (v->th[0].tid != v->pid)	/* invariant 1 */
		return eng__refuse("pid %d: its main thread has exited: not supported yet", v->pid);
	ret = collect_proc(v->pid, td);
	eng__tmark("task-proc");
	if (ret)
		return ret;
	td->th = calloc(v->nr_threads, sizeof(*td->th));
	if (!td->th)
		return -ENOMEM;
	td->nr_threads = v->nr_threads;
	for (int i = 0; i < v->nr_threads && !ret; i++)
		ret = collect_thread(v, td, i);
	if (!ret)
		ret = peek_signals(v->pid, true, &td->shared_pending, &td->nr_shared_pending);
	eng__tmark("threads");
	return ret;
}

/* ---- infected: parasite and remote syscalls --------------------------------------- */

/*
 * Remote syscalls run in th[0] (infect.c). To run one in thread i, make it th[0] for
 * the call. It gets every signal blocked first, as th[0] has (infect.c invariant 2):
 * otherwise a pending signal would be delivered in the middle of our syscall. Marking
 * it dirty makes release put its own registers and mask back.
 */
static int thread_syscall(struct eng_victim *v, int i, long *r, long nr, long a1, long a2)
{
	uint64_t all = ~0ull;
	struct eng_thread tmp;
	int ret;

	if (i) {
		v->th[i].dirty = true;
		if (ptrace(PTRACE_SETSIGMASK, v->th[i].tid, sizeof(all), &all))
			return pr_errno(-errno, "thread %d: PTRACE_SETSIGMASK", v->th[i].tid);
		tmp = v->th[0], v->th[0] = v->th[i], v->th[i] = tmp;
	}
	ret = eng__remote_syscall(v, r, nr, a1, a2, 0, 0, 0, 0);
	if (i)
		tmp = v->th[0], v->th[0] = v->th[i], v->th[i] = tmp;
	return ret;
}

static bool remote_failed(long r)
{
	return r < 0 && r > -4096;
}

static int thread_remote(struct eng_victim *v, struct eng__task_dump *td, int i)
{
	struct eng__thread_dump *t = &td->th[i];
	struct { uint64_t sp; int32_t flags; int32_t pad; uint64_t size; } ss;
	uint64_t tid_addr;
	long r;
	int ret;

	ret = thread_syscall(v, i, &r, __NR_sigaltstack, 0, v->area_addr);
	if (!ret && remote_failed(r))
		ret = pr_errno((int)r, "thread %d: sigaltstack", t->tid);
	if (!ret)
		ret = eng__remote_read(v, v->area_addr, &ss, sizeof(ss));
	if (ret)
		return ret;
	t->has_sas = true;
	t->sas_sp = ss.sp;
	t->sas_size = ss.size;
	t->sas_flags = ss.flags;
	/* The address CLONE_CHILD_CLEARTID or set_tid_address(2) gave: glibc's pthread_join
	 * waits on it, so it must survive the restore. */
	ret = thread_syscall(v, i, &r, __NR_prctl, PR_GET_TID_ADDRESS, v->area_addr);
	if (!ret && remote_failed(r))
		ret = pr_errno((int)r, "thread %d: prctl(PR_GET_TID_ADDRESS)", t->tid);
	if (!ret)
		ret = eng__remote_read(v, v->area_addr, &tid_addr, sizeof(tid_addr));
	if (ret)
		return ret;
	t->has_clear_tid = true;
	t->clear_tid = tid_addr;
	ret = thread_syscall(v, i, &r, __NR_prctl, PR_GET_SECUREBITS, 0);
	if (!ret && remote_failed(r))
		ret = pr_errno((int)r, "thread %d: prctl(PR_GET_SECUREBITS)", t->tid);
	if (ret)
		return ret;
	t->securebits = r;
	if (t->securebits != td->th[0].securebits)
		return eng__refuse("pid %d: thread %d has other securebits than the leader: "
				   "not supported yet", v->pid, t->tid);
	return 0;
}

/* prctl(PR_GET_*) that answer through an int in the parasite's area. */
static int remote_get_int(struct eng_victim *v, int op, const char *name, int *out)
{
	long r;
	int ret = eng__remote_syscall(v, &r, __NR_prctl, op, v->area_addr, 0, 0, 0, 0);

	if (!ret && remote_failed(r))
		ret = pr_errno((int)r, "pid %d: prctl(%s)", v->pid, name);
	if (!ret)
		ret = eng__remote_read(v, v->area_addr, out, sizeof(*out));
	return ret;
}

/* The subreaper bit, and the signal the leader gets when its parent dies. */
static int collect_prctl(struct eng_victim *v, struct eng__task_dump *td)
{
	int sub = 0, ret;

	ret = remote_get_int(v, PR_GET_CHILD_SUBREAPER, "PR_GET_CHILD_SUBREAPER", &sub);
	if (!ret)
		ret = remote_get_int(v, PR_GET_PDEATHSIG, "PR_GET_PDEATHSIG", &td->pdeathsig);
	td->child_subreaper = sub;
	return ret;
}

static int collect_timers(struct eng_victim *v, struct eng__task_dump *td)
{
	struct eng__ptimer *pt;
	int n, ret;

	ret = eng__parse_timers(v->pid, &pt, &n);
	if (ret)
		return ret;
	td->timers = calloc(n + 1, sizeof(*td->timers));
	if (!td->timers) {
		free(pt);
		return -ENOMEM;
	}
	for (int i = 0; i < n && !ret; i++) {
		struct eng__ptimer_dump *t = &td->timers[i];
		struct { int64_t isec, insec, vsec, vnsec; } its;
		long r;

		t->t = pt[i];
		ret = eng__remote_syscall(v, &r, __NR_timer_gettime, pt[i].id, v->area_addr, 0, 0, 0, 0);
		if (!ret && remote_failed(r))
			ret = pr_errno((int)r, "pid %d: timer_gettime(%d)", v->pid, pt[i].id);
		if (!ret)
			ret = eng__remote_read(v, v->area_addr, &its, sizeof(its));
		if (!ret)
			ret = eng__remote_syscall(v, &r, __NR_timer_getoverrun, pt[i].id, 0, 0, 0, 0, 0);
		if (!ret && remote_failed(r))
			ret = pr_errno((int)r, "pid %d: timer_getoverrun(%d)", v->pid, pt[i].id);
		if (ret)
			break;
		t->interval_sec = its.isec;
		t->interval_nsec = its.insec;
		t->value_sec = its.vsec;
		t->value_nsec = its.vnsec;
		t->overrun = r;
		td->nr_timers++;
	}
	free(pt);
	return ret;
}

static const char *const dump_steps[] = {
	[PAR_DUMP_SIGACTION] = "rt_sigaction",
	[PAR_DUMP_ITIMER] = "getitimer",
	[PAR_DUMP_SIGALTSTACK] = "sigaltstack",
	[PAR_DUMP_TID_ADDRESS] = "prctl(PR_GET_TID_ADDRESS)",
	[PAR_DUMP_SECUREBITS] = "prctl(PR_GET_SECUREBITS)",
	[PAR_DUMP_SUBREAPER] = "prctl(PR_GET_CHILD_SUBREAPER)",
	[PAR_DUMP_PDEATHSIG] = "prctl(PR_GET_PDEATHSIG)",
};

/* One parasite command in thread i (made th[0] for the call, as thread_syscall does). */
static int thread_par_call(struct eng_victim *v, int i, struct par_area *a, uint32_t cmd)
{
	uint64_t all = ~0ull;
	struct eng_thread tmp;
	int ret;

	if (i) {
		v->th[i].dirty = true;
		if (ptrace(PTRACE_SETSIGMASK, v->th[i].tid, sizeof(all), &all))
			return pr_errno(-errno, "thread %d: PTRACE_SETSIGMASK", v->th[i].tid);
		tmp = v->th[0], v->th[0] = v->th[i], v->th[i] = tmp;
	}
	ret = eng__par_call(v, a, cmd);
	if (i)
		tmp = v->th[0], v->th[0] = v->th[i], v->th[i] = tmp;
	if (ret) {
		int32_t f = a->res.dump.failed;

		return pr_errno(ret, "thread %d: parasite: %s", v->th[i].tid,
				f > 0 && f < (int32_t)(sizeof(dump_steps) / sizeof(*dump_steps)) && dump_steps[f]
					? dump_steps[f] : "its command");
	}
	return 0;
}

static void take_thread(struct eng__thread_dump *t, const struct par_thread *p)
{
	t->has_sas = true;
	t->sas_sp = p->ss_sp;
	t->sas_size = p->ss_size;
	t->sas_flags = p->ss_flags;
	/* The address CLONE_CHILD_CLEARTID or set_tid_address(2) gave: glibc's pthread_join
	 * waits on it, so it must survive the restore. */
	t->has_clear_tid = true;
	t->clear_tid = p->clear_tid;
	t->securebits = p->securebits;
}

/*
 * Everything only the process can tell, in one parasite run in the leader and one in
 * each other thread: each run is a round trip through the scheduler (two per remote
 * syscall), paid while the process is frozen. HA_TEST_REMOTE_SYSCALLS takes the old
 * way, a remote syscall at a time, for comparison.
 */
static int collect_by_parasite(struct eng_victim *v, struct eng__task_dump *td)
{
	struct par_area a;
	int ret;

	memset(&a, 0, sizeof(a));
	ret = thread_par_call(v, 0, &a, PAR_CMD_DUMP);
	if (ret)
		return ret;
	_Static_assert(sizeof(struct eng_sigaction) == sizeof(struct par_sigaction), "layout");
	_Static_assert(sizeof(struct eng_itimer) == sizeof(struct par_itimer), "layout");
	memcpy(td->sigactions, a.res.dump.sigactions, sizeof(td->sigactions));
	memcpy(td->itimers, a.res.dump.itimers, sizeof(td->itimers));
	take_thread(&td->th[0], &a.res.dump.th);
	td->child_subreaper = a.res.dump.subreaper;
	td->pdeathsig = a.res.dump.pdeathsig;
	v->brk = a.res.dump.brk;
	v->has_brk = true;
	for (int i = 1; i < v->nr_threads; i++) {
		memset(&a, 0, sizeof(a));
		ret = thread_par_call(v, i, &a, PAR_CMD_THREAD);
		if (ret)
			return ret;
		take_thread(&td->th[i], &a.res.dump.th);
		if (td->th[i].securebits != td->th[0].securebits)
			return eng__refuse("pid %d: thread %d has other securebits than the leader: "
					   "not supported yet", v->pid, td->th[i].tid);
	}
	return 0;
}

int eng__task_collect_infected(struct eng_victim *v, struct eng__task_dump *td)
{
	int ret = 0;

	if (!getenv("HA_TEST_REMOTE_SYSCALLS")) {
		ret = collect_by_parasite(v, td);
	} else {
		ret = eng_par_sigactions(v, td->sigactions);
		if (!ret)
			ret = eng_par_itimers(v, td->itimers);
		for (int i = 0; i < v->nr_threads && !ret; i++)
			ret = thread_remote(v, td, i);
		if (!ret)
			ret = collect_prctl(v, td);
	}
	eng__tmark("parasite");
	if (!ret)
		td->securebits = td->th[0].securebits;
	if (!ret)
		ret = collect_timers(v, td);
	eng__tmark("timers");
	return ret;
}

void eng__task_free(struct eng__task_dump *td)
{
	if (!td)
		return;
	for (int i = 0; i < td->nr_threads; i++) {
		free(td->th[i].xstate);
		free(td->th[i].pending);
	}
	for (size_t i = 0; i < td->nr_filters; i++)
		free(td->filters[i].bpf);
	free(td->filters);
	free(td->th);
	free(td->timers);
	free(td->shared_pending);
	eng__status_free(&td->status);
	memset(td, 0, sizeof(*td));
}
