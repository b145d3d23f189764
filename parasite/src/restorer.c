/*
 * The restorer (see ha/parasite.h for the whole story). It runs with every signal
 * blocked, in memory that hactl's libc will never touch again, so it is plain
 * straight-line code on raw syscalls; any failure ends the process with
 * exit_group(100 + step), which the tracing hactl reports.
 */
#include "lib.h"
#include "ha/parasite.h"

#define MREMAP_MAYMOVE 1
#define MREMAP_FIXED 2
#define PR_SET_NAME 15
#define PR_SET_MM 35
#define PR_SET_MM_MAP 14
#define CLONE_VM 0x100
#define CLONE_FS 0x200
#define CLONE_FILES 0x400
#define CLONE_SIGHAND 0x800
#define CLONE_THREAD 0x10000
#define CLONE_SYSVSEM 0x40000

struct clone_args_ {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

long rst_clone3(struct clone_args_ *ca, size_t size, void *args, long index);
void rst_thread_main(struct rst_args *a, long index);
long restorer_main(struct rst_args *a);

static void __attribute__((noreturn)) fail(struct rst_args *a, int step)
{
	a->failed_step = step;
	for (;;)
		sys1(__NR_exit_group, 100 + step);
}

static long move(uint64_t src, uint64_t len, uint64_t dst)
{
	if (src == dst)
		return 0;
	return sys6(__NR_mremap, src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst, 0) == (long)dst ? 0 : -1;
}

#define PR_CAPBSET_DROP 24
#define PR_SET_SECUREBITS 28
#define PR_SET_NO_NEW_PRIVS 38
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_RAISE 2
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#define SECBIT_NO_SETUID_FIXUP (1 << 2)
#define CAP_SETPCAP 8
#define SECCOMP_SET_MODE_FILTER 1

struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t eff, prm, inh;
};

static long set_caps(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct cap_header h = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct cap_data d[2] = {
		{ (uint32_t)eff, (uint32_t)prm, (uint32_t)inh },
		{ (uint32_t)(eff >> 32), (uint32_t)(prm >> 32), (uint32_t)(inh >> 32) },
	};

	return sys2(__NR_capset, &h, d);
}

/*
 * The order matters: bounding set while we still may; uids under NO_SETUID_FIXUP so the
 * kernel leaves capabilities alone; CAP_SETPCAP kept until ambient caps and the final
 * securebits are set; then exactly the checkpoint's capabilities.
 */
static long restore_creds(const struct rst_creds *c)
{
	uint64_t setpcap = 1ull << CAP_SETPCAP;

	for (uint32_t cap = 0; cap <= c->last_cap; cap++)
		if (!((c->cap_bnd >> cap) & 1) && sys2(__NR_prctl, PR_CAPBSET_DROP, cap))
			return -1;
	if (sys2(__NR_prctl, PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP) ||
	    sys2(__NR_setgroups, c->nr_groups, c->groups) ||
	    sys3(__NR_setresgid, c->gid, c->egid, c->sgid) ||
	    sys3(__NR_setresuid, c->uid, c->euid, c->suid))
		return -1;
	sys1(__NR_setfsgid, c->fsgid);
	sys1(__NR_setfsuid, c->fsuid);
	if (set_caps(c->cap_eff | setpcap, c->cap_prm | setpcap, c->cap_inh) ||
	    sys2(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL))
		return -1;
	for (uint32_t cap = 0; cap <= c->last_cap; cap++)
		if (((c->cap_amb >> cap) & 1) && sys3(__NR_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap))
			return -1;
	if (sys2(__NR_prctl, PR_SET_SECUREBITS, c->securebits) || set_caps(c->cap_eff, c->cap_prm, c->cap_inh))
		return -1;
	if (c->no_new_privs && sys2(__NR_prctl, PR_SET_NO_NEW_PRIVS, 1))
		return -1;
	return 0;
}

static long queue_signals(long tid, uint64_t sigq, uint64_t n)
{
	long pid = sys0(__NR_getpid);

	for (uint64_t i = 0; i < n; i++) {
		const int32_t *si = (const int32_t *)(sigq + i * 128);
		long r = tid ? sys4(__NR_rt_tgsigqueueinfo, pid, tid, si[0], si)
			     : sys3(__NR_rt_sigqueueinfo, pid, si[0], si);

		if (r)
			return r;
	}
	return 0;
}

#define PR_TIMER_CREATE_RESTORE_IDS 77

/* Threads exist by now, so timers aimed at one (SIGEV_THREAD_ID) can be made. */
static long restore_timers(const struct rst_timer *t, uint64_t n)
{
	if (!n)
		return 0;
	if (sys2(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 1))
		return -1;
	for (uint64_t i = 0; i < n; i++) {
		struct { uint64_t value; int32_t signo, notify, tid, pad[11]; } sev = {
			t[i].value, t[i].signo, t[i].notify, t[i].tid, { 0 }
		};
		struct { int64_t is, ins, vs, vns; } its = {
			t[i].interval_sec, t[i].interval_nsec, t[i].value_sec, t[i].value_nsec
		};
		int32_t id = t[i].id;

		if (sys3(__NR_timer_create, t[i].clock, &sev, &id) || id != t[i].id ||
		    sys4(__NR_timer_settime, id, 0, &its, 0))
			return -1;
	}
	return sys2(__NR_prctl, PR_TIMER_CREATE_RESTORE_IDS, 0);
}

/* Everything a thread sets for itself, then it stops for hactl on int3. */
void rst_thread_main(struct rst_args *a, long index)
{
	struct rst_thread *t = (struct rst_thread *)a->threads + index;
	const struct rst_filter *f = (const struct rst_filter *)t->seccomp;

	if (t->rseq_addr && sys4(__NR_rseq, t->rseq_addr, t->rseq_len, 0, t->rseq_sig))
		fail(a, RST_STEP_RSEQ_ON);
	sys2(__NR_prctl, PR_SET_NAME, t->comm);
	sys1(__NR_set_tid_address, t->clear_tid);
	if (!(t->ss_flags & 2 /* SS_DISABLE */)) {
		struct { uint64_t sp; int32_t flags; int32_t pad; uint64_t size; } ss = {
			t->ss_sp, t->ss_flags & ~1 /* SS_ONSTACK is a state, not a setting */, 0, t->ss_size
		};

		if (sys2(__NR_sigaltstack, &ss, 0))
			fail(a, RST_STEP_ALTSTACK);
	}
	/* All signals are blocked: these stay pending until rt_sigreturn sets the mask. */
	if (queue_signals(t->tid, t->sigq, t->nr_sigq))
		fail(a, RST_STEP_SIGNALS);
	if (restore_creds(&a->creds))
		fail(a, RST_STEP_CREDS);
	for (uint64_t i = 0; i < t->nr_seccomp; i++) {
		struct { uint16_t len; uint64_t filter; } prog = { (uint16_t)f[i].len, f[i].insns };

		if (sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, f[i].flags, &prog))
			fail(a, RST_STEP_SECCOMP);
	}
	t->started = 1;
	for (;;)
		__asm__ volatile("int3" ::: "memory");
}

long restorer_main(struct rst_args *a)
{
	struct rst_range *un = (struct rst_range *)a->unmap;
	struct rst_move *mv = (struct rst_move *)a->moves;
	struct rst_thread *th = (struct rst_thread *)a->threads;

	if (a->abi != RST_ABI_VERSION)
		fail(a, RST_STEP_ABI);
	for (uint64_t i = 0; i < a->nr_unmap; i++)
		if (sys2(__NR_munmap, un[i].start, un[i].end - un[i].start))
			fail(a, RST_STEP_UNMAP);
	/* vdso parts may have to go where another part sits now: hop through scratch. */
	for (uint64_t i = 0, off = 0; i < a->nr_vdso_moves; off += mv[i].len, i++)
		if (move(mv[i].src, mv[i].len, a->vdso_scratch + off))
			fail(a, RST_STEP_VDSO);
	for (uint64_t i = 0, off = 0; i < a->nr_vdso_moves; off += mv[i].len, i++)
		if (move(a->vdso_scratch + off, mv[i].len, mv[i].dst))
			fail(a, RST_STEP_VDSO);
	for (uint64_t i = a->nr_vdso_moves; i < a->nr_moves; i++)
		if (move(mv[i].src, mv[i].len, mv[i].dst))
			fail(a, RST_STEP_MOVE);
	if (a->post_unmap.end > a->post_unmap.start &&
	    sys2(__NR_munmap, a->post_unmap.start, a->post_unmap.end - a->post_unmap.start))
		fail(a, RST_STEP_UNMAP);
	if (sys4(__NR_prctl, PR_SET_MM, PR_SET_MM_MAP, &a->mm, sizeof(a->mm)))
		fail(a, RST_STEP_MM);
	if (a->mm.exe_fd != (uint32_t)-1)
		sys1(__NR_close, a->mm.exe_fd);
	for (uint64_t i = 1; i < a->nr_threads; i++) {
		int64_t tid = th[i].tid;
		struct clone_args_ ca = {
			.flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
				 CLONE_SYSVSEM,
			.stack = th[i].stack_top - RST_STACK_SIZE,
			.stack_size = RST_STACK_SIZE,
			.set_tid = (uint64_t)&tid,
			.set_tid_size = 1,
		};

		if (rst_clone3(&ca, sizeof(ca), a, i) != tid)
			fail(a, RST_STEP_CLONE);
	}
	for (int w = 0; w < 3; w++)
		if (sys3(__NR_setitimer, w, &a->itimers[w], 0))
			fail(a, RST_STEP_ITIMER);
	if (queue_signals(0, a->sigq, a->nr_sigq))
		fail(a, RST_STEP_SIGNALS);
	if (restore_timers((const struct rst_timer *)a->timers, a->nr_timers))
		fail(a, RST_STEP_TIMERS);
	rst_thread_main(a, 0);
	return 0;
}
