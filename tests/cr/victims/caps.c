/*
 * Capabilities of a root process: CAP_SYS_ADMIN, CAP_NET_RAW and CAP_MKNOD dropped from
 * the bounding set; CAP_SYS_MODULE and CAP_SYS_RAWIO dropped from permitted, CAP_NET_ADMIN
 * from effective; CAP_NET_BIND_SERVICE and CAP_CHOWN inheritable, CAP_NET_BIND_SERVICE
 * ambient; securebits NOROOT (locked), KEEP_CAPS and NO_SETUID_FIXUP; no_new_privs. A
 * second thread inherits it. After restore everything reads back the same in both
 * threads, and the locked securebit cannot be cleared.
 */
#include <linux/capability.h>
#include <linux/securebits.h>
#include <pthread.h>
#include <sys/prctl.h>

#include "../zdtm.h"

#define BITS (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP)

static struct __user_cap_data_struct want[2];
static int last_cap;
static int bset0[64];	/* the bounding set we started with */
static char errs[2][160];

static int cap_get(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };

	return (int)syscall(SYS_capget, &h, d);
}

static void drop(struct __user_cap_data_struct d[2], uint32_t *field_of_0, int cap)
{
	(void)d;
	field_of_0[cap / 32 * 3] &= ~(1u << (cap % 32));
}

static void check(int who)
{
	struct __user_cap_data_struct d[2];
	char *w = errs[who];

	if (cap_get(d) || memcmp(d, want, sizeof(d))) {
		snprintf(w, 160, "caps eff %#x:%#x perm %#x:%#x inh %#x:%#x", d[1].effective, d[0].effective,
			 d[1].permitted, d[0].permitted, d[1].inheritable, d[0].inheritable);
		return;
	}
	for (int c = 0; c <= last_cap; c++) {
		int in = prctl(PR_CAPBSET_READ, c);
		int out = c == CAP_SYS_ADMIN || c == CAP_NET_RAW || c == CAP_MKNOD || !bset0[c];

		if (in != !out) {
			snprintf(w, 160, "capability %d %s the bounding set", c, in ? "back in" : "missing from");
			return;
		}
	}
	for (int c = 0; c <= last_cap; c++)
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) != (c == CAP_NET_BIND_SERVICE)) {
			snprintf(w, 160, "ambient capability %d wrong", c);
			return;
		}
	if (prctl(PR_GET_SECUREBITS) != BITS) {
		snprintf(w, 160, "securebits %#x, want %#x", prctl(PR_GET_SECUREBITS), BITS);
		return;
	}
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		snprintf(w, 160, "no_new_privs lost");
}

int main(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	struct zdtm_twin twin = { .check = check, .check_at_start = 1 };

	zdtm_init();
	if (!f || fscanf(f, "%d", &last_cap) != 1)
		zdtm_fail("cap_last_cap");
	fclose(f);
	for (int c = 0; c <= last_cap && c < 64; c++)
		bset0[c] = prctl(PR_CAPBSET_READ, c) == 1;
	if (prctl(PR_CAPBSET_DROP, CAP_SYS_ADMIN) || prctl(PR_CAPBSET_DROP, CAP_NET_RAW) ||
	    prctl(PR_CAPBSET_DROP, CAP_MKNOD))
		zdtm_fail("PR_CAPBSET_DROP: %m");
	cap_get(want);
	/* want[i] = { effective, permitted, inheritable } */
	drop(want, &want[0].permitted, CAP_SYS_MODULE);
	drop(want, &want[0].permitted, CAP_SYS_RAWIO);
	drop(want, &want[0].effective, CAP_SYS_MODULE);
	drop(want, &want[0].effective, CAP_SYS_RAWIO);
	drop(want, &want[0].effective, CAP_NET_ADMIN);
	want[0].inheritable = (1u << CAP_NET_BIND_SERVICE) | (1u << CAP_CHOWN);
	want[1].inheritable = 0;
	if (syscall(SYS_capset, &h, want))
		zdtm_fail("capset: %m");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0))
		zdtm_fail("ambient raise: %m");
	if (prctl(PR_SET_SECUREBITS, BITS))
		zdtm_fail("securebits: %m");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		zdtm_fail("no_new_privs: %m");
	check(0);
	zdtm_check(!errs[0][0], "before: %s", errs[0]);
	zdtm_twin_start(&twin);
	zdtm_ready("threads=2 securebits=%#x", BITS);
	zdtm_twin_end(&twin, errs[0], errs[1]);
	zdtm_check(prctl(PR_SET_SECUREBITS, BITS & ~SECBIT_NOROOT) == -1 && errno == EPERM,
		   "a locked securebit could be cleared");
	zdtm_pass();
}
