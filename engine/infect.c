/*
 * Seizing a process and running our code inside it (the engine's compel).
 *
 * DESIGN
 * Every thread is PTRACE_SEIZEd and PTRACE_INTERRUPTed, so it sits in a ptrace
 * event-stop inside the kernel's signal path, with its registers, xstate and signal
 * mask saved. One thread (th[0]) then executes for us:
 *   - remote syscalls: its rip is pointed at a `syscall` instruction that already exists
 *     in the target (the vdso has several), stepped with PTRACE_SYSCALL to the exit stop.
 *     No code is written into the target, so text pages are never COWed.
 *   - parasite commands: the blob is mapped with a remote mmap, relocated and written
 *     with process_vm_writev; each command is one run from __export_head to its int3.
 * The parasite talks back through a shared command area (read with process_vm_readv)
 * and a SOCK_SEQPACKET socketpair made by the target itself, whose other end we take
 * with pidfd_getfd: no socket namespace or path is involved. The socket is made on the
 * first command that needs it (eng__par_channel): a dump needs none, and each remote
 * syscall is two round trips through the scheduler paid while the process is frozen.
 *
 * INVARIANTS
 * 1. Every path out of eng_seize() either fails with nothing seized or returns a victim
 *    whose every thread is stopped; eng_release() always detaches them all.
 * 2. th[0] runs our code with every signal blocked (PTRACE_SETSIGMASK), so no handler
 *    of the target ever runs on the parasite's stack.
 * 3. A thread is detached with its own registers back, whatever stop it is in. Syscall
 *    restart (-ERESTARTSYS and friends, restart_syscall for nanosleep) is decided by the
 *    kernel on the way out to user space, from the registers then in place, and
 *    PTRACE_DETACH of a traced task always sets TIF_SIGPENDING (__ptrace_unlink), so
 *    that decision is taken even when we detach from a syscall-exit stop: the
 *    interrupted syscall resumes exactly as if we had never been there. (Tested by the
 *    blocked_read and nanosleep victims.)
 * 4. orig_rax = -1 in every register set we install, so that the kernel does not try to
 *    "restart" the syscall the thread was in when it stopped.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "blob-parasite.h"
#include "infect.h"
#include "log.h"

#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif
#define XSTATE_MAX 16384

static int wait_event_stop(pid_t tid);
static int find_syscall_ip(struct eng_victim *v);

int eng__remote_read(struct eng_victim *v, unsigned long addr, void *buf, size_t len)
{
	struct iovec l = { buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_readv(v->pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

int eng__remote_write(struct eng_victim *v, unsigned long addr, const void *buf, size_t len)
{
	struct iovec l = { (void *)buf, len }, r = { (void *)addr, len };
	ssize_t n = process_vm_writev(v->pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	return n < 0 ? -errno : -EIO;
}

/* ---- seizing ---------------------------------------------------------------------- */

static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", pid, tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* comm may contain spaces and parentheses */
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * Wait for the event-stop that PTRACE_INTERRUPT (or a group stop) produces. A signal
 * that was already on its way shows up first as a signal-delivery-stop: let it through
 * (that is what would have happened without us); the interrupt trap stays pending and
 * the thread stops again right after.
 */
static int wait_event_stop(pid_t tid)
{
	for (;;) {
		int st;

		if (waitpid(tid, &st, __WALL) < 0)
			return -errno;
		if (WIFEXITED(st) || WIFSIGNALED(st))
			return -ESRCH;
		if (!WIFSTOPPED(st))
			continue;
		if (st >> 16 == PTRACE_EVENT_STOP)
			return 0;
		if (ptrace(PTRACE_CONT, tid, 0, (st >> 16) ? 0 : WSTOPSIG(st)))
			return -errno;
	}
}

static int save_thread(struct eng_thread *t)
{
	struct iovec iov;

	if (ptrace(PTRACE_GETREGS, t->tid, 0, &t->regs))
		return pr_errno(-errno, "thread %d: PTRACE_GETREGS", t->tid);
	t->xstate = malloc(XSTATE_MAX);
	if (!t->xstate)
		return -ENOMEM;
	iov.iov_base = t->xstate;
	iov.iov_len = XSTATE_MAX;
	if (ptrace(PTRACE_GETREGSET, t->tid, NT_X86_XSTATE, &iov))
		return pr_errno(-errno, "thread %d: PTRACE_GETREGSET NT_X86_XSTATE", t->tid);
	t->xstate_len = iov.iov_len;
	if (ptrace(PTRACE_GETSIGMASK, t->tid, sizeof(t->sigmask), &t->sigmask))
		return pr_errno(-errno, "thread %d: PTRACE_GETSIGMASK", t->tid);
	return 0;
}

/*
 * Seize and interrupt one thread without waiting for it: all threads of a pass are
 * interrupted first and waited for after, so that they stop within one scheduling
 * round instead of one after the other (on a busy machine each wait is a time slice).
 * 1: seized; 0: the thread is gone or a zombie, skip it; <0: error.
 */
static int seize_thread(struct eng_victim *v, pid_t tid)
{
	struct eng_thread *t;

	/* A zombie thread never reaches the interrupt stop: waiting for it would hang. */
	if (thread_state(v->pid, tid) == 'Z')
		return 0;
	if (v->nr_threads == v->cap_threads) {
		int cap = v->cap_threads ? v->cap_threads * 2 : 8;
		void *p = realloc(v->th, cap * sizeof(*v->th));

		if (!p)
			return -ENOMEM;
		v->th = p;
		v->cap_threads = cap;
	}
	if (ptrace(PTRACE_SEIZE, tid, 0, PTRACE_O_SUSPEND_SECCOMP | PTRACE_O_TRACESYSGOOD)) {
		if (errno == ESRCH)
			return 0;
		return pr_errno(-errno, "pid %d: cannot seize thread %d", v->pid, tid);
	}
	t = &v->th[v->nr_threads++];
	memset(t, 0, sizeof(*t));
	t->tid = tid;
	if (ptrace(PTRACE_INTERRUPT, tid, 0, 0) && errno != ESRCH)
		return pr_errno(-errno, "thread %d: PTRACE_INTERRUPT", tid);
	return 1;
}

/* Wait for every seized thread not stopped yet; drop the ones that exited meanwhile
 * (the kernel has detached them). */
static int wait_seized(struct eng_victim *v)
{
	int ret = 0;

	for (int i = 0; i < v->nr_threads; i++) {
		struct eng_thread *t = &v->th[i];
		int r;

		if (t->stopped)
			continue;
		r = wait_event_stop(t->tid);
		if (r == -ESRCH) {
			v->th[i--] = v->th[--v->nr_threads];
			continue;
		}
		if (r) {
			ret = ret ? ret : pr_errno(r, "thread %d: waiting for the interrupt stop", t->tid);
			continue;
		}
		t->stopped = true;
		if (!ret)
			ret = save_thread(t);
	}
	return ret;
}

static bool have_thread(const struct eng_victim *v, pid_t tid)
{
	for (int i = 0; i < v->nr_threads; i++)
		if (v->th[i].tid == tid)
			return true;
	return false;
}

/*
 * Threads may be created while we seize the others, so read the task list again until a
 * pass finds nothing new: once every listed thread is stopped, none can clone.
 */
static int seize_all(struct eng_victim *v)
{
	char path[64];
	int added, ret;

	snprintf(path, sizeof(path), "/proc/%d/task", v->pid);
	do {
		DIR *d = opendir(path);
		struct dirent *de;

		if (!d)
			return pr_errno(-errno, "pid %d: %s", v->pid, path);
		added = 0;
		while ((de = readdir(d))) {
			pid_t tid = atoi(de->d_name);

			if (tid <= 0 || have_thread(v, tid))
				continue;
			ret = seize_thread(v, tid);
			if (ret < 0) {
				closedir(d);
				return ret;
			}
			added += ret;
		}
		closedir(d);
		ret = wait_seized(v);
		if (ret)
			return ret;
	} while (added);
	return v->nr_threads ? 0 : pr_errno(-ESRCH, "pid %d: no live thread to seize", v->pid);
}

static int check_leader(pid_t pid)
{
	char path[64], line[256];
	FILE *f;
	int tgid = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return pr_errno(-errno, "pid %d: no such process", pid);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(f);
	if (tgid != pid)
		return pr_errno(-EINVAL, "pid %d is a thread of process %d, not a process", pid, tgid);
	return 0;
}

int eng_seize(pid_t pid, struct eng_victim **out)
{
	struct eng_victim *v;
	int ret;

	eng__clear_error();
	if (pid <= 0 || pid == getpid())
		return pr_errno(-EINVAL, "pid %d: cannot seize that process", pid);
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->pid = pid;
	v->sock = -1;
	v->remote_sock = -1;
	/* pidfd_open() without PIDFD_THREAD refuses a thread that is not a group leader
	 * (EINVAL): the check costs nothing more, where reading status took ~25 us of the
	 * pause. check_leader() only says whose thread it is. */
	v->pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (v->pidfd < 0) {
		int err = errno;

		ret = err == EINVAL ? check_leader(pid) : 0;
		if (!ret)
			ret = err == ESRCH ? pr_errno(-ESRCH, "pid %d: no such process", pid)
					   : pr_errno(-err, "pid %d: pidfd_open", pid);
		free(v);
		return ret;
	}
	ret = seize_all(v);
	if (ret) {
		eng_release(v);
		return ret;
	}
	/* Prefer the leader to run our code; a zombie leader was skipped above. */
	for (int i = 1; i < v->nr_threads; i++)
		if (v->th[i].tid == pid) {
			struct eng_thread tmp = v->th[0];

			v->th[0] = v->th[i];
			v->th[i] = tmp;
		}
	*out = v;
	return 0;
}

pid_t eng_victim_pid(const struct eng_victim *v)
{
	return v->pid;
}

int eng_victim_nr_threads(const struct eng_victim *v)
{
	return v->nr_threads;
}

pid_t eng_victim_tid(const struct eng_victim *v, int i)
{
	return i >= 0 && i < v->nr_threads ? v->th[i].tid : -1;
}

/* ---- running code in th[0] -------------------------------------------------------- */

/* Resume thread t with `req` and wait for its next stop; fail on anything unexpected. */
static int step(struct eng_victim *v, struct eng_thread *t, int req, int *status)
{
	if (ptrace(req, t->tid, 0, 0))
		return pr_errno(-errno, "thread %d: resume", t->tid);
	for (;;) {
		if (waitpid(t->tid, status, __WALL) < 0)
			return pr_errno(-errno, "thread %d: wait", t->tid);
		if (WIFEXITED(*status) || WIFSIGNALED(*status))
			return pr_errno(-ESRCH, "pid %d: died while running injected code", v->pid);
		if (WIFSTOPPED(*status))
			return 0;
	}
}

/* Invariant 2, for any thread we run code in. */
static int block_signals(struct eng_thread *t)
{
	uint64_t all = ~0ull;

	if (t->masked)
		return 0;
	t->dirty = true;
	if (ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(all), &all))
		return pr_errno(-errno, "thread %d: PTRACE_SETSIGMASK", t->tid);
	t->masked = true;
	return 0;
}

static int set_regs(struct eng_thread *t, struct user_regs_struct *r)
{
	t->dirty = true;
	if (ptrace(PTRACE_SETREGS, t->tid, 0, r))
		return pr_errno(-errno, "thread %d: PTRACE_SETREGS", t->tid);
	return 0;
}

int eng__remote_syscall_on(struct eng_victim *v, int idx, long *ret, long nr, long a1, long a2, long a3,
			   long a4, long a5, long a6)
{
	struct eng_thread *t;
	struct user_regs_struct r;
	int st, err;

	if (idx < 0 || idx >= v->nr_threads)
		return -EINVAL;
	t = &v->th[idx];
	r = t->regs;
	if (!v->syscall_ip && (err = find_syscall_ip(v)))
		return err;
	err = block_signals(t);
	if (err)
		return err;
	r.rax = nr;
	r.rdi = a1, r.rsi = a2, r.rdx = a3, r.r10 = a4, r.r8 = a5, r.r9 = a6;
	r.rip = v->syscall_ip;
	r.orig_rax = -1;	/* invariant 4 */
	err = set_regs(t, &r);
	if (err)
		return err;
	/* Two stops: syscall entry, then exit with the result in rax. */
	for (int i = 0; i < 2; i++) {
		err = step(v, t, PTRACE_SYSCALL, &st);
		if (err)
			return err;
		if (WSTOPSIG(st) != (SIGTRAP | 0x80))
			return pr_errno(-EPROTO, "pid %d: syscall %ld: unexpected stop (status %#x)",
					v->pid, nr, st);
	}
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r))
		return pr_errno(-errno, "thread %d: PTRACE_GETREGS", t->tid);
	*ret = r.rax;
	return 0;
}

int eng__remote_syscall(struct eng_victim *v, long *ret, long nr, long a1, long a2, long a3,
			long a4, long a5, long a6)
{
	return eng__remote_syscall_on(v, 0, ret, nr, a1, a2, a3, a4, a5, a6);
}

int eng__par_call(struct eng_victim *v, struct par_area *a, uint32_t cmd)
{
	struct eng_thread *t = &v->th[0];
	struct user_regs_struct r = t->regs;
	unsigned long trap = v->remote_base + HA_BLOB_PARASITE_END_TRAP;
	siginfo_t si;
	int st, err;

	a->abi = PAR_ABI_VERSION;
	a->cmd = cmd;
	a->ret = -ENOSYS;
	err = eng__remote_write(v, v->area_addr, a, sizeof(*a));
	if (err)
		return pr_errno(err, "pid %d: writing the parasite command area", v->pid);
	r.rip = v->remote_base + HA_BLOB_PARASITE_HEAD;
	r.rsp = v->stack_top;
	r.rdi = v->area_addr;
	r.orig_rax = -1;
	r.eflags &= ~0x400ul;	/* the C ABI wants DF clear on entry */
	err = set_regs(t, &r);
	if (!err)
		err = step(v, t, PTRACE_CONT, &st);
	if (err)
		return err;
	/* The parasite ends on int3: a SIGTRAP stop with rip just past it. Anything else is
	 * a fault in our code (or a SIGKILL): the command failed, the target is unharmed
	 * once release puts its registers back. */
	if (ptrace(PTRACE_GETREGS, t->tid, 0, &r) || ptrace(PTRACE_GETSIGINFO, t->tid, 0, &si))
		return pr_errno(-errno, "thread %d: reading state after parasite command %u", t->tid, cmd);
	if (WSTOPSIG(st) != SIGTRAP || r.rip != trap)
		return pr_errno(-EFAULT, "pid %d: parasite command %u stopped by signal %d at %#llx (addr %p)",
				v->pid, cmd, WSTOPSIG(st), r.rip, si.si_addr);
	err = eng__remote_read(v, v->area_addr, a, sizeof(*a));
	if (err)
		return pr_errno(err, "pid %d: reading the parasite command area", v->pid);
	return (int)a->ret;
}

/* ---- infection and cure ----------------------------------------------------------- */

/* Find a `syscall` instruction to borrow, preferring the vdso: it is in every process
 * and never written to by us. */
static int find_syscall_ip(struct eng_victim *v)
{
	char path[64], line[512];
	unsigned long best_lo = 0, best_hi = 0;
	unsigned char *buf;
	FILE *f;
	int ret = -ENOENT;

	snprintf(path, sizeof(path), "/proc/%d/maps", v->pid);
	f = fopen(path, "re");
	if (!f)
		return pr_errno(-errno, "pid %d: %s", v->pid, path);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		char perms[8];

		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3 || perms[2] != 'x')
			continue;
		if (strstr(line, "[vdso]")) {
			best_lo = lo, best_hi = hi;
			break;
		}
		if (!best_lo && perms[0] == 'r')
			best_lo = lo, best_hi = hi;
	}
	fclose(f);
	if (!best_lo)
		return pr_errno(-ENOENT, "pid %d: no executable mapping to run syscalls from", v->pid);
	if (best_hi - best_lo > (1ul << 20))
		best_hi = best_lo + (1ul << 20);
	buf = malloc(best_hi - best_lo);
	if (!buf)
		return -ENOMEM;
	if (!eng__remote_read(v, best_lo, buf, best_hi - best_lo))
		for (unsigned long i = 0; i + 1 < best_hi - best_lo; i++)
			if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
				v->syscall_ip = best_lo + i;
				ret = 0;
				break;
			}
	free(buf);
	if (ret)
		pr_err("pid %d: no syscall instruction found at %#lx", v->pid, best_lo);
	return ret;
}

/* Our own vdso: its size, hash, and the offset of a syscall instruction in it. */
static struct {
	uint64_t len, hash, off;
	bool ok;
} own_vdso;

static void own_vdso_find(void)
{
	uint64_t start = getauxval(AT_SYSINFO_EHDR), lo, hi;
	char line[512];
	FILE *f;

	if (!start || !(f = fopen("/proc/self/maps", "re")))
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo == start && strstr(line, "[vdso]")) {
			const unsigned char *p = (const unsigned char *)start;

			for (uint64_t i = 0; i + 1 < hi - lo && !own_vdso.ok; i++)
				if (p[i] == 0x0f && p[i + 1] == 0x05) {
					own_vdso.off = i;
					own_vdso.ok = true;
				}
			own_vdso.len = hi - lo;
			own_vdso.hash = XXH3_64bits(p, hi - lo);
			break;
		}
	fclose(f);
}

void eng__syscall_ip_hint(struct eng_victim *v, uint64_t vdso_start, uint64_t vdso_len, uint64_t vdso_hash)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, own_vdso_find);
	if (own_vdso.ok && own_vdso.len == vdso_len && own_vdso.hash == vdso_hash)
		v->syscall_ip = vdso_start + own_vdso.off;
}

static int load_blob(struct eng_victim *v, const struct ha_blob *b)
{
	unsigned char *img = malloc(b->size);
	int ret;

	if (!img)
		return -ENOMEM;
	memcpy(img, b->data, b->size);
	for (unsigned long i = 0; i < b->nr_relocs; i++) {
		uint64_t w;

		memcpy(&w, img + b->relocs[i], 8);
		w += v->remote_base;
		memcpy(img + b->relocs[i], &w, 8);
	}
	ret = eng__remote_write(v, v->remote_base, img, b->size);
	free(img);
	return ret ? pr_errno(ret, "pid %d: writing the parasite", v->pid) : 0;
}

static bool remote_failed(long r)
{
	return r < 0 && r > -4096;
}

int eng__par_channel(struct eng_victim *v)
{
	struct par_area a;
	int32_t sv[2];
	long r;
	int ret;

	if (v->sock >= 0)
		return 0;
	ret = eng__remote_syscall(v, &r, __NR_socketpair, AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
				  v->area_addr + offsetof(struct par_area, args.sv), 0, 0);
	if (ret)
		return ret;
	if (r)
		return pr_errno((int)r, "pid %d: socketpair in the target", v->pid);
	ret = eng__remote_read(v, v->area_addr + offsetof(struct par_area, args.sv), sv, sizeof(sv));
	if (ret)
		return pr_errno(ret, "pid %d: reading the socketpair", v->pid);
	v->remote_sock = sv[1];
	v->sock = syscall(SYS_pidfd_getfd, v->pidfd, sv[0], 0);
	ret = v->sock < 0 ? pr_errno(-errno, "pid %d: pidfd_getfd of its fd %d", v->pid, sv[0]) : 0;
	if (!eng__remote_syscall(v, &r, __NR_close, sv[0], 0, 0, 0, 0, 0) && r)
		pr_warn("pid %d: closing its fd %d: %s", v->pid, sv[0], strerror((int)-r));
	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	a.args.init.sock = sv[1];
	ret = eng__par_call(v, &a, PAR_CMD_INIT);
	return ret ? pr_errno(ret, "pid %d: parasite init", v->pid) : 0;
}

int eng_infect(struct eng_victim *v)
{
	const struct ha_blob *b = &ha_blob_parasite;
	struct eng_thread *t = &v->th[0];
	unsigned long area_off, top_off, len;
	long r;
	int ret;

	eng__clear_error();
	if (v->infected)
		return 0;
	ret = v->syscall_ip ? 0 : find_syscall_ip(v);
	eng__tmark("syscall-ip");
	if (!ret)
		ret = block_signals(t);
	if (ret)
		return ret;
	area_off = (b->mem_size + 63) & ~63ul;
	top_off = (area_off + PAR_AREA_SIZE + PAR_STACK_SIZE + 15) & ~15ul;
	len = (top_off + 4095) & ~4095ul;
	ret = eng__remote_syscall(v, &r, __NR_mmap, 0, len, PROT_READ | PROT_WRITE | PROT_EXEC,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	eng__tmark("mmap");
	if (ret)
		return ret;
	if (remote_failed(r))
		return pr_errno((int)r, "pid %d: mmap of %lu bytes for the parasite", v->pid, len);
	v->infected = true;
	v->remote_base = r;
	v->remote_len = len;
	v->area_addr = r + area_off;
	v->stack_top = r + top_off;
	ret = load_blob(v, b);
	eng__tmark("load");
	if (ret) {
		int keep = ret;

		eng_cure(v);
		return keep;
	}
	pr_debug("pid %d: parasite at %#lx (%lu bytes), syscalls via %#lx", v->pid, v->remote_base,
		 v->remote_len, v->syscall_ip);
	return 0;
}

int eng_cure(struct eng_victim *v)
{
	int ret = 0, err;
	long r;

	if (!v || !v->infected)
		return 0;
	if (v->remote_sock >= 0) {
		err = eng__remote_syscall(v, &r, __NR_close, v->remote_sock, 0, 0, 0, 0, 0);
		if (err || r)
			ret = pr_errno(err ? err : (int)r, "pid %d: closing the parasite socket", v->pid);
		v->remote_sock = -1;
	}
	err = eng__remote_syscall(v, &r, __NR_munmap, v->remote_base, v->remote_len, 0, 0, 0, 0);
	if (err || r)
		ret = pr_errno(err ? err : (int)r, "pid %d: unmapping the parasite at %#lx", v->pid,
			       v->remote_base);
	if (v->sock >= 0)
		close(v->sock);
	v->sock = -1;
	v->infected = false;
	return ret;
}

/* ---- release ---------------------------------------------------------------------- */

static void put_back_thread(struct eng_thread *t)
{
	struct iovec iov = { t->xstate, t->xstate_len };

	/* PTRACE_DETACH needs a stopped tracee; an error path may leave one on its way. */
	if (!t->stopped && wait_event_stop(t->tid))
		return;
	if (t->dirty) {
		if (ptrace(PTRACE_SETREGS, t->tid, 0, &t->regs))
			pr_err("thread %d: restoring registers: %s", t->tid, strerror(errno));
		if (t->xstate && ptrace(PTRACE_SETREGSET, t->tid, NT_X86_XSTATE, &iov))
			pr_err("thread %d: restoring xstate: %s", t->tid, strerror(errno));
		if (ptrace(PTRACE_SETSIGMASK, t->tid, sizeof(t->sigmask), &t->sigmask))
			pr_err("thread %d: restoring the signal mask: %s", t->tid, strerror(errno));
	}
	if (ptrace(PTRACE_DETACH, t->tid, 0, 0) && errno != ESRCH)
		pr_err("thread %d: detach: %s", t->tid, strerror(errno));
}

void eng_release(struct eng_victim *v)
{
	if (!v)
		return;
	eng_cure(v);
	for (int i = 0; i < v->nr_threads; i++) {
		put_back_thread(&v->th[i]);
		free(v->th[i].xstate);
	}
	if (v->pidfd >= 0)
		close(v->pidfd);
	free(v->th);
	free(v);
}
