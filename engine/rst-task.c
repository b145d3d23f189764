/*
 * Restore, task state: what the new process sets with ordinary syscalls before the
 * restorer (signal actions, umask, personality, rlimits, cwd and root), and what hactl
 * sets for each thread at the very end, tracing it at its int3 stop: an rt_sigframe on
 * the thread's own stack holding its registers, FPU/xstate, signal mask and
 * sigaltstack, entered with rt_sigreturn from a syscall instruction in the vdso.
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
#include <sys/user.h>
#include <unistd.h>

#include "ha/engine.h"
#include "log.h"
#include "restore.h"

#define UC_FP_XSTATE 0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define ERESTARTSYS 512
#define ERESTARTNOINTR 513
#define ERESTARTNOHAND 514
#define ERESTART_RESTARTBLOCK 516

/* The kernel's x86-64 signal frame (arch/x86/include/asm/sigframe.h, uapi sigcontext.h). */
struct k_sigcontext {
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags;
	uint16_t cs, gs, fs, ss;
	uint64_t err, trapno, oldmask, cr2, fpstate, reserved1[8];
};
struct k_ucontext {
	uint64_t flags, link;
	uint64_t ss_sp;
	int32_t ss_flags, pad;
	uint64_t ss_size;
	struct k_sigcontext mc;
	uint64_t sigmask;
};
struct k_rt_sigframe {
	uint64_t pretcode;
	struct k_ucontext uc;
	uint8_t info[128];
};
_Static_assert(sizeof(struct k_sigcontext) == 256, "sigcontext ABI");
_Static_assert(sizeof(struct k_ucontext) == 304, "ucontext ABI");

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

/* A thread stopped inside a syscall that the kernel would have restarted: do what the
 * kernel would have done on its way back to user space. */
static void syscall_restart(struct k_sigcontext *mc, const ImgRegs *r)
{
	if ((int64_t)r->orig_rax < 0)
		return;
	switch ((int64_t)r->rax) {
	case -ERESTARTSYS:
	case -ERESTARTNOINTR:
	case -ERESTARTNOHAND:
		mc->rax = r->orig_rax;
		mc->rip -= 2;
		break;
	case -ERESTART_RESTARTBLOCK:
		/* The kernel's restart block (the rest of a nanosleep, say) did not survive:
		 * the call returns EINTR, which callers of sleeping syscalls handle. */
		mc->rax = -EINTR;
		break;
	}
}

static void fill_mcontext(struct k_sigcontext *mc, const ImgRegs *r)
{
	*mc = (struct k_sigcontext){
		.r8 = r->r8, .r9 = r->r9, .r10 = r->r10, .r11 = r->r11, .r12 = r->r12, .r13 = r->r13,
		.r14 = r->r14, .r15 = r->r15, .rdi = r->rdi, .rsi = r->rsi, .rbp = r->rbp, .rbx = r->rbx,
		.rdx = r->rdx, .rax = r->rax, .rcx = r->rcx, .rsp = r->rsp, .rip = r->rip,
		.eflags = r->eflags, .cs = r->cs, .gs = r->gs, .fs = r->fs, .ss = r->ss,
	};
	syscall_restart(mc, r);
}

/* Frame and fpstate below the thread's red zone, fpstate 64-byte aligned. */
static int write_frame(pid_t tid, const ImgThread *t, uint64_t *frame_at)
{
	size_t xlen = t->xstate.len, len;
	uint64_t fp = (t->regs->rsp - 128 - xlen - 4) & ~63ul;
	uint64_t f = (fp - sizeof(struct k_rt_sigframe)) & ~15ul;
	struct k_rt_sigframe *fr;
	char path[64], *buf;
	uint32_t magic2 = FP_XSTATE_MAGIC2, sw[12];
	int fd, ret = 0;

	if (xlen < 576 + 64)
		return pr_errno(-EINVAL, "thread %d: xstate of %zu bytes is too short", tid, xlen);
	len = fp + xlen + 4 - f;
	buf = calloc(1, len);
	if (!buf)
		return -ENOMEM;
	fr = (struct k_rt_sigframe *)buf;
	fr->uc.flags = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS;
	fr->uc.ss_flags = SS_DISABLE;
	if (t->sigaltstack && !(t->sigaltstack->flags & SS_DISABLE)) {
		fr->uc.ss_sp = t->sigaltstack->sp;
		fr->uc.ss_size = t->sigaltstack->size;
		fr->uc.ss_flags = t->sigaltstack->flags;
	}
	fill_mcontext(&fr->uc.mc, t->regs);
	fr->uc.mc.fpstate = fp;
	fr->uc.sigmask = t->sigmask;
	memcpy(buf + (fp - f), t->xstate.data, xlen);
	/* The software-reserved bytes of the fxsave area tell rt_sigreturn how much xstate
	 * follows; ptrace fills them, but make sure, then the end marker. */
	memcpy(sw, buf + (fp - f) + 464, sizeof(sw));
	if (sw[0] != FP_XSTATE_MAGIC1 || sw[4] != xlen) {
		sw[0] = FP_XSTATE_MAGIC1;
		sw[1] = xlen + 4;
		memcpy(&sw[2], &t->xcr0, 8);
		sw[4] = xlen;
		memcpy(buf + (fp - f) + 464, sw, sizeof(sw));
	}
	memcpy(buf + (fp - f) + xlen, &magic2, 4);
	/* /proc/PID/mem writes whatever the protection of the stack mapping. */
	snprintf(path, sizeof(path), "/proc/%d/mem", tid);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, buf, len, f) != (ssize_t)len)
		ret = pr_errno(-errno, "thread %d: writing its signal frame at %#lx", tid, (unsigned long)f);
	if (fd >= 0)
		close(fd);
	free(buf);
	*frame_at = f;
	return ret;
}

int rst__thread_finish(struct rst_ctx *c, size_t i, pid_t tid, unsigned long syscall_ip)
{
	const ImgThread *t = c->proc.threads[i];
	struct user_regs_struct r;
	uint64_t f;
	int ret;

	ret = write_frame(tid, t, &f);
	if (ret)
		return ret;
	if (ptrace(PTRACE_GETREGS, tid, 0, &r))
		return pr_errno(-errno, "thread %d: PTRACE_GETREGS", tid);
	r.rip = syscall_ip;
	r.rax = SYS_rt_sigreturn;
	r.orig_rax = -1;
	r.rsp = f + 8;		/* rt_sigreturn finds the frame just below rsp */
	/* rt_sigreturn does not touch the TLS bases: set them here. */
	r.fs_base = t->regs->fs_base;
	r.gs_base = t->regs->gs_base;
	if (ptrace(PTRACE_SETREGS, tid, 0, &r))
		return pr_errno(-errno, "thread %d: PTRACE_SETREGS", tid);
	return 0;
}
