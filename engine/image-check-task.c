/*
 * Field checks of process state: core-PID.img (ImgCore, ImgThread) and mm-PID.img
 * (ImgMm, ImgVma). See image-check.c for why there are checks at all; here each bound
 * says which kernel rule it stands for, because restore will run into that rule.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>

#include "core.pb-c.h"
#include "image-check.h"
#include "mm.pb-c.h"

#define NSIG_KERNEL 64
#define SIGINFO_SIZE 128
#define COMM_MAX 15		/* TASK_COMM_LEN - 1 */
#define BPF_MAXINSNS 4096
#define RSEQ_ALIGN 32		/* __alignof__(struct rseq) */
#define AUXV_MAX_WORDS 128	/* the kernel's saved_auxv is smaller; restore checks it */
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1u << 31)	/* linux/signal.h; glibc 2.36 lacks it */
#endif

static int check_comm(struct eng_img *img, const char *field, const char *comm)
{
	if (comm && strlen(comm) > COMM_MAX)
		return eng__img_bad(img, field, "\"%.32s\" is longer than %d bytes", comm, COMM_MAX);
	return 0;
}

/* Queued signals: each a whole siginfo_t whose si_signo the kernel would accept. */
static int check_siginfos(struct eng_img *img, const char *field, const ProtobufCBinaryData *v,
			  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int32_t signo;

		if (v[i].len != SIGINFO_SIZE)
			return eng__img_bad(img, field, "[%zu]: %zu bytes, a siginfo is %d", i,
					    v[i].len, SIGINFO_SIZE);
		memcpy(&signo, v[i].data, sizeof(signo));
		if (signo < 1 || signo > NSIG_KERNEL)
			return eng__img_bad(img, field, "[%zu]: si_signo %d", i, signo);
	}
	return 0;
}

static int check_signals(struct eng_img *img, const ImgCore *c)
{
	if (c->n_sigactions != NSIG_KERNEL)
		return eng__img_bad(img, "sigactions", "%zu entries, need %d", c->n_sigactions,
				    NSIG_KERNEL);
	/* The kernel never lets these two change: anything else is damage. */
	if (c->sigactions[SIGKILL - 1]->handler || c->sigactions[SIGSTOP - 1]->handler)
		return eng__img_bad(img, "sigactions", "SIGKILL or SIGSTOP has a handler");
	if (c->n_itimers != 3)
		return eng__img_bad(img, "itimers", "%zu entries, need 3", c->n_itimers);
	for (size_t i = 0; i < 3; i++) {
		const ImgItimer *t = c->itimers[i];

		if (t->interval_sec < 0 || t->value_sec < 0 || t->interval_usec < 0 ||
		    t->interval_usec >= 1000000 || t->value_usec < 0 || t->value_usec >= 1000000)
			return eng__img_bad(img, "itimers", "[%zu]: not a valid timeval pair", i);
	}
	return check_siginfos(img, "shared_pending", c->shared_pending, c->n_shared_pending);
}

static int check_posix_timers(struct eng_img *img, const ImgCore *c)
{
	int64_t prev = -1;

	for (size_t i = 0; i < c->n_posix_timers; i++) {
		const ImgPosixTimer *t = c->posix_timers[i];
		char f[40];

		snprintf(f, sizeof(f), "posix_timers[%zu]", i);
		if (!t->has_id || !t->has_clock_id || !t->has_sigev_notify)
			return eng__img_bad(img, f, "id, clock_id and sigev_notify are needed");
		if (t->id <= prev)
			return eng__img_bad(img, f, "id %d does not ascend from %lld", t->id,
					    (long long)prev);
		prev = t->id;
		if (t->sigev_notify != SIGEV_NONE && (t->sigev_signo < 1 || t->sigev_signo > NSIG_KERNEL))
			return eng__img_bad(img, f, "sigev_signo %u", t->sigev_signo);
		if (t->sigev_notify == SIGEV_THREAD_ID && !t->notify_tid)
			return eng__img_bad(img, f, "SIGEV_THREAD_ID without notify_tid");
		if (t->interval_sec < 0 || t->value_sec < 0 || t->interval_nsec < 0 ||
		    t->interval_nsec >= 1000000000 || t->value_nsec < 0 || t->value_nsec >= 1000000000)
			return eng__img_bad(img, f, "not a valid timespec pair");
	}
	return 0;
}

static int check_creds(struct eng_img *img, const ImgCreds *cr)
{
	if (!cr)
		return eng__img_bad(img, "creds", "missing");
	if (!cr->has_uid || !cr->has_euid || !cr->has_suid || !cr->has_fsuid || !cr->has_gid ||
	    !cr->has_egid || !cr->has_sgid || !cr->has_fsgid)
		return eng__img_bad(img, "creds", "uids and gids (real, effective, saved, fs) are needed");
	if (cr->n_groups > 65536)
		return eng__img_bad(img, "creds.groups", "%zu, above NGROUPS_MAX", cr->n_groups);
	if (!cr->has_cap_inh || !cr->has_cap_prm || !cr->has_cap_eff || !cr->has_cap_bnd ||
	    !cr->has_cap_amb)
		return eng__img_bad(img, "creds", "the five capability sets are needed");
	/* capset(2) and PR_CAP_AMBIENT refuse anything else. */
	if (cr->cap_eff & ~cr->cap_prm)
		return eng__img_bad(img, "creds.cap_eff", "0x%llx is not within cap_prm 0x%llx",
				    (unsigned long long)cr->cap_eff, (unsigned long long)cr->cap_prm);
	if (cr->cap_amb & ~(cr->cap_prm & cr->cap_inh))
		return eng__img_bad(img, "creds.cap_amb", "0x%llx is not within cap_prm & cap_inh",
				    (unsigned long long)cr->cap_amb);
	return 0;
}

static int check_limits(struct eng_img *img, const ImgCore *c)
{
	if (c->n_rlimits != 16)
		return eng__img_bad(img, "rlimits", "%zu entries, need 16 (RLIM_NLIMITS)", c->n_rlimits);
	for (size_t i = 0; i < c->n_rlimits; i++) {
		const ImgRlimit *r = c->rlimits[i];

		if (!r->has_cur || !r->has_max || r->cur > r->max)
			return eng__img_bad(img, "rlimits", "[%zu]: cur and max needed, cur <= max", i);
	}
	for (size_t i = 0; i < c->n_seccomp_filters; i++) {
		const ImgSeccompFilter *s = c->seccomp_filters[i];
		size_t len = s->has_bpf ? s->bpf.len : 0;

		if (!len || len % 8 || len / 8 > BPF_MAXINSNS)
			return eng__img_bad(img, "seccomp_filters", "[%zu]: %zu bytes of BPF", i, len);
		/* prev points below itself: a chain, never a loop. */
		if (s->prev > i)
			return eng__img_bad(img, "seccomp_filters", "[%zu]: prev %u is not an older filter",
					    i, s->prev);
	}
	img->st.core.nr_filters = c->n_seccomp_filters;
	return 0;
}

int eng__check_core(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgCore *c = (const ImgCore *)msg;
	int ret;

	NEED(img, c, pid);
	if (c->pid != img->id)
		return eng__img_bad(img, "pid", "%u, the file name says %u", c->pid, img->id);
	if (c->has_pdeathsig && c->pdeathsig > 64)
		return eng__img_bad(img, "pdeathsig", "%u is no signal", c->pdeathsig);
	NEED(img, c, umask);
	if (c->umask > 0777)
		return eng__img_bad(img, "umask", "0%o", c->umask);
	ret = check_comm(img, "comm", c->comm);
	if (!ret)
		ret = eng__check_path(img, "cwd", c->cwd);
	if (!ret)
		ret = eng__check_path(img, "root", c->root);
	if (!ret)
		ret = check_signals(img, c);
	if (!ret)
		ret = check_posix_timers(img, c);
	if (!ret)
		ret = check_creds(img, c->creds);
	if (!ret)
		ret = check_limits(img, c);
	return ret;
}

static int check_regs(struct eng_img *img, const ImgRegs *regs)
{
	const ProtobufCMessageDescriptor *d = &img_regs__descriptor;
	char f[32];

	if (!regs)
		return eng__img_bad(img, "regs", "missing");
	for (unsigned i = 0; i < d->n_fields; i++) {
		if (eng__pb_count(&regs->base, &d->fields[i]))
			continue;
		snprintf(f, sizeof(f), "regs.%s", d->fields[i].name);
		return eng__img_bad(img, f, "missing");
	}
	return 0;
}

static int check_xstate(struct eng_img *img, const ImgThread *t)
{
	uint64_t bv;

	NEED(img, t, xstate);
	NEED(img, t, xcr0);
	if (t->xstate.len < ENG__XSTATE_MIN || t->xstate.len > ENG__XSTATE_MAX)
		return eng__img_bad(img, "xstate", "%zu bytes, outside [%u, %u]", t->xstate.len,
				    ENG__XSTATE_MIN, ENG__XSTATE_MAX);
	/* XSTATE_BV (XSAVE header, offset 512): XRSTOR faults on bits XCR0 lacks. */
	memcpy(&bv, t->xstate.data + 512, sizeof(bv));
	if (bv & ~t->xcr0)
		return eng__img_bad(img, "xstate", "XSTATE_BV 0x%llx has features outside xcr0 0x%llx",
				    (unsigned long long)bv, (unsigned long long)t->xcr0);
	return 0;
}

static int check_thread_misc(struct eng_img *img, const ImgThread *t)
{
	const ImgRseq *r = t->rseq;

	if (r && r->addr && (r->addr % RSEQ_ALIGN || r->len < 32 || !r->has_sig))
		return eng__img_bad(img, "rseq", "addr 0x%llx len %u: rseq(2) needs 32-byte alignment, len >= 32 and sig",
				    (unsigned long long)r->addr, r->len);
	if (t->seccomp_mode > 2)
		return eng__img_bad(img, "seccomp_mode", "%u", t->seccomp_mode);
	if ((t->seccomp_mode == 2) != (t->seccomp_filter != 0) ||
	    t->seccomp_filter > img->st.core.nr_filters)
		return eng__img_bad(img, "seccomp_filter", "%u with mode %u and %u filters",
				    t->seccomp_filter, t->seccomp_mode, img->st.core.nr_filters);
	if (t->sigaltstack && (t->sigaltstack->flags & ~(SS_ONSTACK | SS_DISABLE | SS_AUTODISARM)))
		return eng__img_bad(img, "sigaltstack.flags", "0x%x", t->sigaltstack->flags);
	return 0;
}

int eng__check_thread(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgThread *t = (const ImgThread *)msg;
	int ret;

	ret = eng__check_pid(img, "tid", t->has_tid, t->tid);
	if (!ret)
		ret = check_comm(img, "comm", t->comm);
	if (!ret)
		ret = check_regs(img, t->regs);
	if (!ret)
		ret = check_xstate(img, t);
	if (!ret)
		ret = check_siginfos(img, "pending", t->pending, t->n_pending);
	if (!ret)
		ret = check_thread_misc(img, t);
	return ret;
}

int eng__check_mm(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ImgMm *mm = (const ImgMm *)msg;
	const ProtobufCMessageDescriptor *d = mm->base.descriptor;
	/* The orderings prctl(PR_SET_MM_MAP) insists on (validate_prctl_map_addr). */
	const struct { const char *lo, *hi; uint64_t a, b; } pairs[] = {
		{ "start_code", "end_code", mm->start_code, mm->end_code },
		{ "start_data", "end_data", mm->start_data, mm->end_data },
		{ "start_brk", "brk", mm->start_brk, mm->brk },
		{ "arg_start", "arg_end", mm->arg_start, mm->arg_end },
		{ "env_start", "env_end", mm->env_start, mm->env_end },
	};

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (f->type != PROTOBUF_C_TYPE_FIXED64 || f->label == PROTOBUF_C_LABEL_REPEATED)
			continue;
		if (!eng__pb_count(msg, f))
			return eng__img_bad(img, f->name, "missing");
		if (*(const uint64_t *)eng__pb_field(msg, f) >= ENG__USER_END)
			return eng__img_bad(img, f->name, "0x%llx is no user address",
					    (unsigned long long)*(const uint64_t *)eng__pb_field(msg, f));
	}
	for (unsigned i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++)
		if (pairs[i].a > pairs[i].b)
			return eng__img_bad(img, pairs[i].hi, "0x%llx is below %s 0x%llx",
					    (unsigned long long)pairs[i].b, pairs[i].lo,
					    (unsigned long long)pairs[i].a);
	if (mm->n_auxv % 2 || mm->n_auxv > AUXV_MAX_WORDS ||
	    (mm->n_auxv && mm->auxv[mm->n_auxv - 2] != 0))
		return eng__img_bad(img, "auxv", "%zu words: (type, value) pairs ending with AT_NULL, at most %d",
				    mm->n_auxv, AUXV_MAX_WORDS);
	return eng__check_path(img, "exe_path", mm->exe_path);
}

static int check_vma_kind(struct eng_img *img, const ImgVma *v)
{
	bool anon = v->flags & MAP_ANONYMOUS;
	int ret;

	NEED(img, v, kind);
	if (v->kind >= IMG_VMA_KIND__VMA_VDSO && (!anon || !(v->flags & MAP_PRIVATE)))
		return eng__img_bad(img, "flags", "0x%x: a special mapping is private anonymous", v->flags);
	if (v->has_shm && !v->shm)
		return eng__img_bad(img, "shm", "0 names no object");
	if (anon) {
		if (v->path || v->unlinked)
			return eng__img_bad(img, v->path ? "path" : "unlinked", "set on an anonymous mapping");
		if (v->has_shm && !(v->flags & MAP_SHARED))
			return eng__img_bad(img, "shm", "set on private anonymous memory");
		return 0;
	}
	ret = eng__check_path(img, "path", v->path);
	if (ret)
		return ret;
	NEED(img, v, dev);
	NEED(img, v, ino);
	return 0;
}

int eng__check_vma(struct eng_img *img, const ProtobufCMessage *msg)
{
	const uint32_t known = MAP_SHARED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_GROWSDOWN |
			       MAP_LOCKED | MAP_NORESERVE;
	const ImgVma *v = (const ImgVma *)msg;

	NEED(img, v, start);
	NEED(img, v, end);
	if (!ENG__PAGE_ALIGNED(v->start) || v->start < img->st.mm.prev_end)
		return eng__img_bad(img, "start", "0x%llx: not page aligned or below the previous end 0x%llx",
				    (unsigned long long)v->start, (unsigned long long)img->st.mm.prev_end);
	if (v->end <= v->start)
		return eng__img_bad(img, "end", "0x%llx is not above start 0x%llx",
				    (unsigned long long)v->end, (unsigned long long)v->start);
	if (!ENG__PAGE_ALIGNED(v->end) || v->end > ENG__USER_END)
		return eng__img_bad(img, "end", "0x%llx: not page aligned or past user space",
				    (unsigned long long)v->end);
	img->st.mm.prev_end = v->end;
	if (!ENG__PAGE_ALIGNED(v->pgoff))
		return eng__img_bad(img, "pgoff", "0x%llx is not page aligned", (unsigned long long)v->pgoff);
	NEED(img, v, prot);
	if (v->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC))
		return eng__img_bad(img, "prot", "0x%x", v->prot);
	NEED(img, v, flags);
	if ((v->flags & ~known) || (v->flags & (MAP_SHARED | MAP_PRIVATE)) == 0 ||
	    (v->flags & (MAP_SHARED | MAP_PRIVATE)) == (MAP_SHARED | MAP_PRIVATE))
		return eng__img_bad(img, "flags", "0x%x: MAP_SHARED or MAP_PRIVATE, and only known flags",
				    v->flags);
	return check_vma_kind(img, v);
}
