/*
 * The parasite: runs inside a seized target, one command per run (see ha/parasite.h).
 * It asks the kernel what only the process itself can be asked: its signal actions,
 * its interval timers, and its file descriptors (sent back over SCM_RIGHTS).
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
	default:
		r = -EINVAL;
	}
	return a->ret = r;
}
