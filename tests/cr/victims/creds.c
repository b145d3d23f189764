/*
 * Credentials: supplementary groups 1001-1003, real/effective/saved gids 2001/2002/2003
 * and uids 3001/3002/3003, fsuid 3004 and fsgid 2004, keeping (through KEEPCAPS and
 * capset) CAP_KILL effective and CAP_SETUID, CAP_SETGID, CAP_NET_BIND_SERVICE
 * permitted; a second thread inherits all of it. After restore, in both threads: every
 * id, the groups, the three capability sets, keepcaps and dumpable read back as set;
 * and they are in force: CAP_KILL lets us signal init, fsuid 3004 cannot open a
 * root-only file.
 */
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>

#include "../zdtm.h"

#define CAPS_PERM ((1u << CAP_KILL) | (1u << CAP_SETUID) | (1u << CAP_SETGID) | (1u << CAP_NET_BIND_SERVICE))
#define CAPS_EFF (1u << CAP_KILL)

static int dumpable0;
static char errs[2][160];

static int capset3(uint32_t eff, uint32_t perm, uint32_t inh)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { { eff, perm, inh }, { 0, 0, 0 } };

	return (int)syscall(SYS_capset, &h, d);
}

static void check(int who)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	uid_t r, e, s;
	gid_t rg, eg, sg, groups[8];
	int n;
	char *w = errs[who];

	getresuid(&r, &e, &s);
	getresgid(&rg, &eg, &sg);
	if (r != 3001 || e != 3002 || s != 3003) {
		snprintf(w, 160, "uids %d/%d/%d", r, e, s);
		return;
	}
	if (rg != 2001 || eg != 2002 || sg != 2003) {
		snprintf(w, 160, "gids %d/%d/%d", rg, eg, sg);
		return;
	}
	/* setfs*id(-1) changes nothing and answers the current value. */
	if (setfsuid(-1) != 3004 || setfsgid(-1) != 2004) {
		snprintf(w, 160, "fsuid %d fsgid %d", setfsuid(-1), setfsgid(-1));
		return;
	}
	n = getgroups(8, groups);
	if (n != 3 || groups[0] != 1001 || groups[1] != 1002 || groups[2] != 1003) {
		snprintf(w, 160, "%d supplementary groups (%d...)", n, n > 0 ? (int)groups[0] : -1);
		return;
	}
	if (syscall(SYS_capget, &h, d) || d[0].effective != CAPS_EFF || d[0].permitted != CAPS_PERM ||
	    d[0].inheritable != 0 || d[1].effective || d[1].permitted || d[1].inheritable) {
		snprintf(w, 160, "caps eff %#x perm %#x inh %#x", d[0].effective, d[0].permitted, d[0].inheritable);
		return;
	}
	if (prctl(PR_GET_KEEPCAPS) != 1) {
		snprintf(w, 160, "keepcaps %d", prctl(PR_GET_KEEPCAPS));
		return;
	}
}

int main(void)
{
	static const gid_t groups[] = { 1001, 1002, 1003 };
	struct zdtm_twin twin = { .check = check, .check_at_start = 1 };
	int fd;

	zdtm_init();
	fd = open("secret", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "root only\n", 10) != 10)
		zdtm_fail("secret: %m");
	close(fd);
	if (prctl(PR_SET_KEEPCAPS, 1) || setgroups(3, groups) || setresgid(2001, 2002, 2003) ||
	    setresuid(3001, 3002, 3003))
		zdtm_fail("dropping ids: %m");
	/* Effective caps were cleared by the uid change; take the two we need back. */
	if (capset3((1u << CAP_SETUID) | (1u << CAP_SETGID), CAPS_PERM, 0))
		zdtm_fail("capset: %m");
	setfsuid(3004);
	setfsgid(2004);
	if (setfsuid(-1) != 3004 || setfsgid(-1) != 2004)
		zdtm_fail("setfsuid/setfsgid did not take");
	if (capset3(CAPS_EFF, CAPS_PERM, 0))
		zdtm_fail("capset: %m");
	dumpable0 = prctl(PR_GET_DUMPABLE);
	check(0);
	zdtm_check(!errs[0][0], "before: %s", errs[0]);
	zdtm_twin_start(&twin);
	zdtm_check(!errs[1][0], "thread before: %s", errs[1]);
	zdtm_ready("uid=3001 euid=3002 dumpable=%d threads=2", dumpable0);
	zdtm_twin_end(&twin, errs[0], errs[1]);
	zdtm_check(prctl(PR_GET_DUMPABLE) == dumpable0, "dumpable %d, was %d", prctl(PR_GET_DUMPABLE), dumpable0);
	zdtm_check(kill(1, 0) == 0, "CAP_KILL not in force: kill(1, 0): %m");
	fd = open("secret", O_RDONLY);
	zdtm_check(fd < 0 && errno == EACCES, "fsuid 3004 could open a root-only file (fd %d, %m)", fd);
	zdtm_pass();
}
