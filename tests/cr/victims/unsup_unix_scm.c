/*
 * A unix socket with a file descriptor in flight (SCM_RIGHTS sent, not received yet):
 * not dumpable yet. The dump must refuse it, naming pid, fd and kind, and leave us
 * running with the message intact: afterwards we receive it, and the fd that arrives
 * is the read end of our pipe, with its byte.
 */
#include <sys/socket.h>

#include "../zdtm.h"

int main(void)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 }, c = 0, buf[4] = { 0 };
	struct iovec iov = { &c, 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int sv[2], p[2], got;

	zdtm_init();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(p) || write(p[1], "x", 1) != 1)
		zdtm_fail("setup: %m");
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
	c = 'm';
	if (sendmsg(sv[0], &mh, 0) != 1)
		zdtm_fail("sendmsg: %m");
	zdtm_ready("bad_fd=%d kind=unix|SCM_RIGHTS", sv[1]);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	memset(ctl, 0, sizeof(ctl));
	mh.msg_controllen = sizeof(ctl);
	c = 0;
	zdtm_check(recvmsg(sv[1], &mh, MSG_DONTWAIT) == 1 && c == 'm', "the message is gone: %m");
	cm = CMSG_FIRSTHDR(&mh);
	zdtm_check(cm && cm->cmsg_type == SCM_RIGHTS, "the fd in flight is gone");
	memcpy(&got, CMSG_DATA(cm), sizeof(int));
	zdtm_check(read(got, buf, sizeof(buf)) == 1 && buf[0] == 'x', "the fd received is not our pipe");
	zdtm_pass();
}
