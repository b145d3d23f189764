/*
 * Restore, task state: what the new process sets with ordinary syscalls before the
 * restorer (signal actions, umask, personality, rlimits, cwd and root), and what hactl
 * sets for each thread at the very end through ptrace: registers, xstate, signal mask.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/user.h>
#include <elf.h>
#include <unistd.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"


/* The kernel's own struct sigaction for rt_sigaction. */
struct k_sigaction {
	uint64_t handler, flags, restorer, mask;
};

static int restore_sigactions(const ImgCore *core)
{
	if (core->n_sigactions != 64)
		return pr_errno(-EINVAL, "core-%u.img: %zu signal actions, expected 64", core->pid, core->n_sigactions);
	for (int sig = 1; sig <= 64; sig++) {
		const ImgSigaction *s = core->sigactions[sig - 1];
		struct k_sigaction ka = { s->handler, s->flags, s->restorer, s->mask };

		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, &ka, NULL, 8))
			return pr_errno(-errno, "signal %d: rt_sigaction", sig);
	}
	return 0;
}

static int restore_rlimits(const ImgCore *core)
{
	for (size_t i = 0; i < core->n_rlimits && i < RLIM_NLIMITS; i++) {
		struct rlimit rl = { core->rlimits[i]->cur, core->rlimits[i]->max }, now;

		getrlimit(i, &now);
		if (rl.rlim_max > now.rlim_max && geteuid() != 0)
			return pr_errno(-EPERM, "rlimit %zu: hard limit %lu is above ours (%lu)", i,
					(unsigned long)rl.rlim_max, (unsigned long)now.rlim_max);
		if (setrlimit(i, &rl))
			return pr_errno(-errno, "rlimit %zu: cannot set %lu/%lu%s", i, (unsigned long)rl.rlim_cur,
					(unsigned long)rl.rlim_max,
					errno == EPERM ? " (a hard limit above hacd's own needs CAP_SYS_RESOURCE)" : "");
	}
	return 0;
}

int rst__task_prepare(struct rst_ctx *c)
{
	const ImgCore *core = c->proc.core;
	int ret;

	ret = restore_sigactions(core);
	if (ret)
		return ret;
	umask(core->umask);
	if (personality(core->personality) < 0)
		return pr_errno(-errno, "personality %#x", core->personality);
	/* cwd first: both paths are as seen from our root, and chroot keeps the cwd. */
	if (core->cwd && chdir(core->cwd))
		return pr_errno(-errno, "cannot chdir to %s", core->cwd);
	if (core->root && strcmp(core->root, "/") && chroot(core->root))
		return pr_errno(-errno, "cannot chroot to %s", core->root);
	return restore_rlimits(core);
}

#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/*
 * -ERESTART_RESTARTBLOCK asks the kernel to call restart_syscall, which continues from a
 * restart block in the kernel (the rest of a sleep, a timed futex wait, a timed poll):
 * that block did not survive the checkpoint, and restart_syscall would fail with EINTR.
 * Ask instead for the original call to be run again: exact for absolute deadlines, a
 * full-length wait for relative ones; and for nanosleep and relative clock_nanosleep,
 * whose remaining time the kernel wrote to *rem when they were interrupted, sleep just
 * for that remainder. -ERESTARTNOHAND, not -ERESTARTNOINTR: a signal whose handler runs
 * before the thread is back in its call (the restored thread may wait for a CPU while
 * another thread signals it) must end the call with EINTR, as it would have ended the
 * original; -ERESTARTNOINTR restarted it after the handler, and a sleeper woken by a
 * signal slept on (cr_sleepers hung under load).
 */
static void restart_block_fixup(struct user_regs_struct *r)
{
	if ((int64_t)r->orig_rax < 0 || (int64_t)r->rax != -ERESTART_RESTARTBLOCK)
		return;
	if (r->orig_rax == SYS_nanosleep && r->rsi)
		r->rdi = r->rsi;
	if (r->orig_rax == SYS_clock_nanosleep && !(r->rsi & TIMER_ABSTIME) && r->r10)
		r->rdx = r->r10;
	r->rax = -ERESTARTNOHAND;
}

/*
 * The thread sits in its int3 signal-delivery stop (or, the leader, in the exit stop of
 * the munmap that removed the restorer). Its registers go back exactly as seized, with
 * orig_rax and an -ERESTART* rax if it was inside a syscall: on detach the kernel passes
 * through its signal path (PTRACE_DETACH sets TIF_SIGPENDING), delivers what is pending
 * and then decides about the restart itself, with the kernel's own rules (ERESTARTNOHAND
 * becomes EINTR when a handler ran, and so on). Emulating that here could only be worse.
 */
int rst__thread_finish(const struct rst_proc *p, size_t i, pid_t tid)
{
	const ImgThread *t = p->threads[i];
	const ImgRegs *g = t->regs;
	struct iovec iov = { t->xstate.data, t->xstate.len };
	struct user_regs_struct r;

	if (ptrace(PTRACE_GETREGS, tid, 0, &r))
		return pr_errno(-errno, "thread %d: PTRACE_GETREGS", tid);
	if (g->cs != r.cs || g->ss != r.ss)
		return pr_errno(-ENOTSUP, "core-%d.img: thread %u: segments cs %#lx ss %#lx are not 64-bit user ones",
				p->pid, t->tid, (unsigned long)g->cs, (unsigned long)g->ss);
	r = (struct user_regs_struct){
		.r15 = g->r15, .r14 = g->r14, .r13 = g->r13, .r12 = g->r12, .rbp = g->rbp, .rbx = g->rbx,
		.r11 = g->r11, .r10 = g->r10, .r9 = g->r9, .r8 = g->r8, .rax = g->rax, .rcx = g->rcx,
		.rdx = g->rdx, .rsi = g->rsi, .rdi = g->rdi, .orig_rax = g->orig_rax, .rip = g->rip,
		.cs = g->cs, .eflags = g->eflags, .rsp = g->rsp, .ss = g->ss, .fs_base = g->fs_base,
		.gs_base = g->gs_base, .ds = g->ds, .es = g->es, .fs = g->fs, .gs = g->gs,
	};
	restart_block_fixup(&r);
	if (ptrace(PTRACE_SETREGS, tid, 0, &r))
		return pr_errno(-errno, "thread %d: PTRACE_SETREGS", tid);
	if (ptrace(PTRACE_SETREGSET, tid, NT_X86_XSTATE, &iov))
		return pr_errno(-errno, "core-%d.img: thread %u: the kernel refused its xstate", p->pid, t->tid);
	if (ptrace(PTRACE_SETSIGMASK, tid, sizeof(t->sigmask), &t->sigmask))
		return pr_errno(-errno, "thread %d: PTRACE_SETSIGMASK", tid);
	return 0;
}
