/*
 * The parasite's commands as engine calls, and per-thread state that ptrace alone gives.
 */
#include <errno.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#include "infect.h"
#include "log.h"

#define PTRACE_GET_RSEQ_CONFIGURATION_ 0x420f

/* Our own copy: glibc's and the kernel's ptrace headers do not mix. */
struct rseq_config {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

static int need_infected(struct eng_victim *v)
{
	eng__clear_error();
	if (!v->infected)
		return pr_errno(-EINVAL, "pid %d: parasite command without eng_infect()", v->pid);
	return 0;
}

int eng_par_sigactions(struct eng_victim *v, struct eng_sigaction out[64])
{
	struct par_area a;
	int ret = need_infected(v);

	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	ret = eng__par_call(v, &a, PAR_CMD_SIGACTIONS);
	if (ret)
		return pr_errno(ret, "pid %d: reading signal actions", v->pid);
	_Static_assert(sizeof(struct eng_sigaction) == sizeof(struct par_sigaction), "layout");
	memcpy(out, a.res.sigactions, sizeof(a.res.sigactions));
	return 0;
}

int eng_par_itimers(struct eng_victim *v, struct eng_itimer out[3])
{
	struct par_area a;
	int ret = need_infected(v);

	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	ret = eng__par_call(v, &a, PAR_CMD_ITIMERS);
	if (ret)
		return pr_errno(ret, "pid %d: reading interval timers", v->pid);
	_Static_assert(sizeof(struct eng_itimer) == sizeof(struct par_itimer), "layout");
	memcpy(out, a.res.itimers, sizeof(a.res.itimers));
	return 0;
}

int eng_par_get_fd(struct eng_victim *v, int target_fd, int *local_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c;
	struct par_area a;
	int ret = need_infected(v);

	if (!ret)
		ret = eng__par_channel(v);
	if (ret)
		return ret;
	memset(&a, 0, sizeof(a));
	a.args.send_fd.fd = target_fd;
	ret = eng__par_call(v, &a, PAR_CMD_SEND_FD);
	if (ret)
		return pr_errno(ret, "pid %d: sending its fd %d", v->pid, target_fd);
	/* The parasite has returned, so the message is queued: never block here. */
	if (recvmsg(v->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) != 1)
		return pr_errno(-errno, "pid %d: receiving its fd %d", v->pid, target_fd);
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)) || (mh.msg_flags & MSG_CTRUNC))
		return pr_errno(-EPROTO, "pid %d: fd %d: no SCM_RIGHTS in the parasite's reply", v->pid,
				target_fd);
	memcpy(local_fd, CMSG_DATA(c), sizeof(int));
	return 0;
}

int eng_thread_rseq(struct eng_victim *v, int i, struct eng_rseq *out)
{
	struct rseq_config rc;
	pid_t tid = eng_victim_tid(v, i);

	if (tid < 0)
		return -EINVAL;
	memset(&rc, 0, sizeof(rc));
	if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION_, tid, sizeof(rc), &rc) < 0)
		return pr_errno(-errno, "thread %d: PTRACE_GET_RSEQ_CONFIGURATION", tid);
	out->addr = rc.rseq_abi_pointer;
	out->len = rc.rseq_abi_size;
	out->sig = rc.signature;
	out->flags = rc.flags;
	return 0;
}
