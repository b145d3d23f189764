/*
 * The records of a dumped task (task-dump.c collected it): core-PID.img (ImgCore, then
 * one ImgThread per thread, the leader first). Messages are built on
 * the stack or in one scratch allocation per record, pointing into the dump's own
 * buffers, and written through the image writer, which checks each as a reader would.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core.pb-c.h"
#include "dump.h"
#include "image.h"
#include "log.h"

/* Scratch for ImgCore's repeated fields. */
struct core_msgs {
	ImgSigaction sa[64];
	ImgSigaction *sap[64];
	ImgItimer it[3];
	ImgItimer *itp[3];
	ImgRlimit rl[ENG_NR_RLIMITS];
	ImgRlimit *rlp[ENG_NR_RLIMITS];
	ImgCreds creds;
	ImgPosixTimer *pt, **ptp;
	ImgSeccompFilter *sf, **sfp;
	ProtobufCBinaryData *pending;
};

static void fill_signals(const struct eng__task_dump *td, ImgCore *c, struct core_msgs *m)
{
	for (int i = 0; i < 64; i++) {
		img_sigaction__init(&m->sa[i]);
		m->sa[i].has_handler = m->sa[i].has_flags = m->sa[i].has_restorer = m->sa[i].has_mask = 1;
		m->sa[i].handler = td->sigactions[i].handler;
		m->sa[i].flags = td->sigactions[i].flags;
		m->sa[i].restorer = td->sigactions[i].restorer;
		m->sa[i].mask = td->sigactions[i].mask;
		m->sap[i] = &m->sa[i];
	}
	c->n_sigactions = 64;
	c->sigactions = m->sap;
	for (int i = 0; i < 3; i++) {
		img_itimer__init(&m->it[i]);
		m->it[i].has_interval_sec = m->it[i].has_interval_usec = 1;
		m->it[i].has_value_sec = m->it[i].has_value_usec = 1;
		m->it[i].interval_sec = td->itimers[i].interval_sec;
		m->it[i].interval_usec = td->itimers[i].interval_usec;
		m->it[i].value_sec = td->itimers[i].value_sec;
		m->it[i].value_usec = td->itimers[i].value_usec;
		m->itp[i] = &m->it[i];
	}
	c->n_itimers = 3;
	c->itimers = m->itp;
	for (size_t i = 0; i < td->nr_shared_pending; i++) {
		m->pending[i].data = td->shared_pending + i * ENG_SIGINFO_SIZE;
		m->pending[i].len = ENG_SIGINFO_SIZE;
	}
	c->n_shared_pending = td->nr_shared_pending;
	c->shared_pending = m->pending;
}

static void fill_timers(const struct eng__task_dump *td, ImgCore *c, struct core_msgs *m)
{
	for (int i = 0; i < td->nr_timers; i++) {
		const struct eng__ptimer_dump *t = &td->timers[i];
		ImgPosixTimer *p = &m->pt[i];

		img_posix_timer__init(p);
		p->has_id = p->has_clock_id = p->has_sigev_notify = p->has_sigev_signo = 1;
		p->has_sigev_value = p->has_interval_sec = p->has_interval_nsec = 1;
		p->has_value_sec = p->has_value_nsec = p->has_overrun = 1;
		p->id = t->t.id;
		p->clock_id = t->t.clock_id;
		p->sigev_notify = t->t.notify;
		p->sigev_signo = t->t.signo;
		p->sigev_value = t->t.sigval;
		if (t->t.notify & SIGEV_THREAD_ID) {
			p->has_notify_tid = 1;
			p->notify_tid = t->t.notify_pid;
		}
		p->interval_sec = t->interval_sec;
		p->interval_nsec = t->interval_nsec;
		p->value_sec = t->value_sec;
		p->value_nsec = t->value_nsec;
		p->overrun = t->overrun;
		m->ptp[i] = p;
	}
	c->n_posix_timers = td->nr_timers;
	c->posix_timers = m->ptp;
}

static void fill_creds(const struct eng__task_dump *td, ImgCore *c, struct core_msgs *m)
{
	const struct eng__status *s = &td->status;
	ImgCreds *cr = &m->creds;

	img_creds__init(cr);
	cr->has_uid = cr->has_euid = cr->has_suid = cr->has_fsuid = 1;
	cr->has_gid = cr->has_egid = cr->has_sgid = cr->has_fsgid = 1;
	cr->uid = s->uid[0], cr->euid = s->uid[1], cr->suid = s->uid[2], cr->fsuid = s->uid[3];
	cr->gid = s->gid[0], cr->egid = s->gid[1], cr->sgid = s->gid[2], cr->fsgid = s->gid[3];
	cr->n_groups = s->nr_groups;
	cr->groups = s->groups;
	cr->has_cap_inh = cr->has_cap_prm = cr->has_cap_eff = cr->has_cap_bnd = cr->has_cap_amb = 1;
	cr->cap_inh = s->cap_inh;
	cr->cap_prm = s->cap_prm;
	cr->cap_eff = s->cap_eff;
	cr->cap_bnd = s->cap_bnd;
	cr->cap_amb = s->cap_amb;
	cr->has_securebits = cr->has_no_new_privs = 1;
	cr->securebits = td->securebits;
	cr->no_new_privs = s->no_new_privs;
	c->creds = cr;
	for (int i = 0; i < ENG_NR_RLIMITS; i++) {
		img_rlimit__init(&m->rl[i]);
		m->rl[i].has_cur = m->rl[i].has_max = 1;
		m->rl[i].cur = td->rlimits[i].cur;
		m->rl[i].max = td->rlimits[i].max;
		m->rlp[i] = &m->rl[i];
	}
	c->n_rlimits = ENG_NR_RLIMITS;
	c->rlimits = m->rlp;
	for (size_t i = 0; i < td->nr_filters; i++) {
		img_seccomp_filter__init(&m->sf[i]);
		m->sf[i].has_bpf = m->sf[i].has_prev = m->sf[i].has_flags = 1;
		m->sf[i].bpf.data = td->filters[i].bpf;
		m->sf[i].bpf.len = td->filters[i].len;
		m->sf[i].prev = td->filters[i].prev;
		m->sf[i].flags = td->filters[i].flags;
		m->sfp[i] = &m->sf[i];
	}
	c->n_seccomp_filters = td->nr_filters;
	c->seccomp_filters = m->sfp;
}

static int write_core_head(struct eng_img *img, const struct eng__task_dump *td)
{
	ImgCore c = IMG_CORE__INIT;
	struct core_msgs *m = calloc(1, sizeof(*m));
	int ret = -ENOMEM;

	if (!m)
		return -ENOMEM;
	m->pt = calloc(td->nr_timers + 1, sizeof(*m->pt));
	m->ptp = calloc(td->nr_timers + 1, sizeof(*m->ptp));
	m->sf = calloc(td->nr_filters + 1, sizeof(*m->sf));
	m->sfp = calloc(td->nr_filters + 1, sizeof(*m->sfp));
	m->pending = calloc(td->nr_shared_pending + 1, sizeof(*m->pending));
	if (m->pt && m->ptp && m->sf && m->sfp && m->pending) {
		c.has_pid = c.has_personality = c.has_umask = 1;
		c.pid = td->pid;
		c.comm = (char *)td->comm;
		c.personality = td->personality;
		c.umask = td->status.umask;
		c.has_child_subreaper = c.has_pdeathsig = 1;
		c.child_subreaper = td->child_subreaper;
		c.pdeathsig = td->pdeathsig;
		c.cwd = (char *)td->cwd;
		c.root = (char *)td->root;
		fill_signals(td, &c, m);
		fill_timers(td, &c, m);
		fill_creds(td, &c, m);
		ret = eng_img_write(img, &c.base);
	}
	free(m->pt);
	free(m->ptp);
	free(m->sf);
	free(m->sfp);
	free(m->pending);
	free(m);
	return ret;
}

static void fill_regs(ImgRegs *r, const struct user_regs_struct *u)
{
	img_regs__init(r);
#define R(f) (r->has_##f = 1, r->f = u->f)
	R(r15); R(r14); R(r13); R(r12); R(rbp); R(rbx); R(r11); R(r10); R(r9); R(r8);
	R(rax); R(rcx); R(rdx); R(rsi); R(rdi); R(orig_rax); R(rip); R(cs); R(eflags);
	R(rsp); R(ss); R(fs_base); R(gs_base); R(ds); R(es); R(fs); R(gs);
#undef R
}

static int write_thread(struct eng_img *img, const struct eng__task_dump *td,
			const struct eng__thread_dump *t)
{
	ImgThread m = IMG_THREAD__INIT;
	ImgRegs regs;
	ImgRseq rseq = IMG_RSEQ__INIT;
	ImgSigaltstack sas = IMG_SIGALTSTACK__INIT;
	ProtobufCBinaryData *pend = calloc(t->nr_pending + 1, sizeof(*pend));
	int ret;

	if (!pend)
		return -ENOMEM;
	m.has_tid = m.has_xstate = m.has_xcr0 = m.has_sigmask = m.has_seccomp_mode = 1;
	m.tid = t->tid;
	m.comm = (char *)t->comm;
	fill_regs(&regs, &t->regs);
	m.regs = &regs;
	m.xstate.data = t->xstate;
	m.xstate.len = t->xstate_len;
	m.xcr0 = td->xcr0;
	m.sigmask = t->sigmask;
	rseq.has_addr = rseq.has_len = rseq.has_sig = rseq.has_flags = 1;
	rseq.addr = t->rseq.addr;
	rseq.len = t->rseq.len;
	rseq.sig = t->rseq.sig;
	rseq.flags = t->rseq.flags;
	m.rseq = &rseq;
	for (size_t i = 0; i < t->nr_pending; i++) {
		pend[i].data = t->pending + i * ENG_SIGINFO_SIZE;
		pend[i].len = ENG_SIGINFO_SIZE;
	}
	m.n_pending = t->nr_pending;
	m.pending = pend;
	m.seccomp_mode = t->seccomp_mode;
	m.has_seccomp_filter = t->seccomp_filter != 0;
	m.seccomp_filter = t->seccomp_filter;
	if (t->has_sas) {
		sas.has_sp = sas.has_size = sas.has_flags = 1;
		sas.sp = t->sas_sp;
		sas.size = t->sas_size;
		sas.flags = t->sas_flags;
		m.sigaltstack = &sas;
	}
	m.has_clear_tid_addr = t->has_clear_tid;
	m.clear_tid_addr = t->clear_tid;
	ret = eng_img_write(img, &m.base);
	free(pend);
	return ret;
}

int eng__task_write(int dirfd, struct eng__task_dump *td, struct eng__imgq *q)
{
	struct eng_img *img;
	int ret = eng_img_create(dirfd, ENG_IMG_CORE, td->pid, &img);

	if (!ret)
		ret = eng__imgq_add(q, img);
	if (!ret)
		ret = write_core_head(img, td);
	for (int i = 0; i < td->nr_threads && !ret; i++)
		ret = write_thread(img, td, &td->th[i]);
	return ret;
}
