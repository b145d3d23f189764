/*
 * A victim under a seccomp filter that kills it on socketpair() and fails mmap() and
 * munmap() with EPERM: exactly the syscalls an injection makes. It must survive the
 * injection (PTRACE_O_SUSPEND_SECCOMP), keep its filter, and keep computing.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "../zdtm.h"

static void install_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socketpair, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mmap, 1, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog))
		zdtm_fail("installing the seccomp filter: %m");
}

int main(void)
{
	volatile uint64_t x = 1, n = 0;

	zdtm_init();
	install_filter();
	zdtm_ready("seccomp=2");
	while (!zdtm_stop) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		n++;
	}
	if (syscall(__NR_munmap, 0, 4096) != -1 || errno != EPERM)
		zdtm_fail("the seccomp filter is gone after the injection");
	if (n == 0)
		zdtm_fail("did not run");
	zdtm_pass();
}
