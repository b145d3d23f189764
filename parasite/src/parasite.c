/*
 * The parasite: runs inside a seized target, one command per run (see ha/parasite.h).
 * It asks the kernel what only the process itself can be asked: its signal actions,
 * its interval timers, per thread its alternate signal stack, clear-tid address and
 * securebits, and its file descriptors (sent back over SCM_RIGHTS).
 * No heap, no globals beyond the socket: the injector owns all state.
 */
#include "lib.h"
#include "ha/parasite.h"

static int par_sock = -1;

static long cmd_sigactions(struct par_area *a)
{
	for (int sig = 1; sig <= PAR_NSIG; sig++) {
		long r = sys4(__NR_rt_sigaction, sig, 0, &a->res.sigactions[sig - 1], 8);

		if (r < 0)
			return r;
	}
	return 0;
}

static long cmd_itimers(struct par_area *a)
{
	for (int which = 0; which < 3; which++) {
		/* struct itimerval is {interval, value}, each {sec, usec}: par_itimer's layout. */
		long r = sys2(__NR_getitimer, which, &a->res.itimers[which]);

		if (r < 0)
			return r;
	}
	return 0;
}

static long cmd_send_fd(struct par_area *a)
{
	char byte = 'F';
	struct blob_iovec iov = { &byte, 1 };
	struct blob_cmsg_fd cm = {
		.len = 16 + sizeof(int),	/* CMSG_LEN(sizeof(int)) */
		.level = BLOB_SOL_SOCKET,
		.type = BLOB_SCM_RIGHTS,
		.fd = a->args.send_fd.fd,
	};
	struct blob_msghdr mh = {
		.iov = &iov, .iovlen = 1, .control = &cm, .controllen = sizeof(cm),
	};
	long r;

	if (par_sock < 0)
		return -EINVAL;
	r = sys3(__NR_sendmsg, par_sock, &mh, 0x4000 /* MSG_NOSIGNAL */);
	return r < 0 ? r : 0;
}

#define PR_GET_PDEATHSIG 2
#define PR_GET_SECUREBITS 27
#define PR_GET_CHILD_SUBREAPER 37
#define PR_GET_TID_ADDRESS 40

static long cmd_thread(struct par_thread *t, int32_t *failed)
{
	long r = sys2(__NR_sigaltstack, 0, &t->ss_sp);

	if (r < 0)
		return *failed = PAR_DUMP_SIGALTSTACK, r;
	r = sys2(__NR_prctl, PR_GET_TID_ADDRESS, &t->clear_tid);
	if (r < 0)
		return *failed = PAR_DUMP_TID_ADDRESS, r;
	r = sys1(__NR_prctl, PR_GET_SECUREBITS);
	if (r < 0)
		return *failed = PAR_DUMP_SECUREBITS, r;
	t->securebits = r;
	return 0;
}

static long cmd_dump(struct par_area *a)
{
	struct par_dump *d = &a->res.dump;
	long r = cmd_sigactions(a);

	if (r < 0)
		return d->failed = PAR_DUMP_SIGACTION, r;
	for (int which = 0; which < 3; which++) {
		r = sys2(__NR_getitimer, which, &d->itimers[which]);
		if (r < 0)
			return d->failed = PAR_DUMP_ITIMER, r;
	}
	r = cmd_thread(&d->th, &d->failed);
	if (r < 0)
		return r;
	r = sys2(__NR_prctl, PR_GET_CHILD_SUBREAPER, &d->subreaper);
	if (r < 0)
		return d->failed = PAR_DUMP_SUBREAPER, r;
	r = sys2(__NR_prctl, PR_GET_PDEATHSIG, &d->pdeathsig);
	if (r < 0)
		return d->failed = PAR_DUMP_PDEATHSIG, r;
	d->brk = sys1(__NR_brk, 0);	/* cannot fail: the current break */
	return 0;
}

long parasite_main(struct par_area *a);
long parasite_main(struct par_area *a)
{
	long r;

	if (a->abi != PAR_ABI_VERSION)
		return a->ret = -EPROTO;
	switch (a->cmd) {
	case PAR_CMD_INIT:
		par_sock = a->args.init.sock;
		r = 0;
		break;
	case PAR_CMD_SIGACTIONS:
		r = cmd_sigactions(a);
		break;
	case PAR_CMD_ITIMERS:
		r = cmd_itimers(a);
		break;
	case PAR_CMD_SEND_FD:
		r = cmd_send_fd(a);
		break;
	case PAR_CMD_DUMP:
		a->res.dump.failed = 0;
		r = cmd_dump(a);
		break;
	case PAR_CMD_THREAD:
		a->res.dump.failed = 0;
		r = cmd_thread(&a->res.dump.th, &a->res.dump.failed);
		break;
	default:
		r = -EINVAL;
	}
	return a->ret = r;
}
