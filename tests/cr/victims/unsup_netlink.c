/*
 * Holds a netlink socket (NETLINK_ROUTE, bound): not dumpable yet. A dump must refuse
 * it, saying which pid, which fd and what kind, and leave us running. After that the
 * socket still works: the kernel answers a request on it.
 */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "../zdtm.h"

int main(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { { sizeof(req), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 }, { AF_UNSPEC } };
	static char buf[65536];
	int s;

	zdtm_init();
	s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (s < 0 || bind(s, (void *)&sa, sizeof(sa)))
		zdtm_fail("netlink: %m");
	zdtm_ready("bad_fd=%d kind=netlink", s);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(send(s, &req, sizeof(req), 0) == sizeof(req), "send: %m");
	zdtm_check(recv(s, buf, sizeof(buf), 0) > (ssize_t)sizeof(struct nlmsghdr), "no answer: %m");
	zdtm_pass();
}
