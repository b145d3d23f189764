/*
 * Task probes: clone3 with set_tid, pidfd_getfd, time namespaces, rseq (with the
 * ptrace view of a stopped tracee, which also gives the NT_X86_XSTATE size), and the
 * cgroup2 freezer.
 *
 * These need other processes: a pid namespace to create pids in, a child to take an fd
 * from, a grandchild to see a time offset, a tracee to read registers from, a child to
 * freeze. Every process started here is waited for before the probe returns, and the
 * probe cgroup is removed.
 */
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/rseq.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/sched.h>

#include "kerndat.h"
#include "log.h"

#ifndef AT_RSEQ_FEATURE_SIZE
#define AT_RSEQ_FEATURE_SIZE 27		/* 6.3; Debian 12's headers predate it */
#endif

/* A pid free in any fresh pid namespace, and not 1: the case of a whole restored tree. */
#define KD_NS_PID 42

static int kd_wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -ECHILD;
	return WEXITSTATUS(status);
}

/* Exit code of a grandchild: a failed syscall's errno (< KD_EXIT_WRONG), or WRONG. */
static int kd_exit_code(int err)
{
	return -err > 0 && -err < KD_EXIT_WRONG ? -err : KD_EXIT_WRONG;
}

/*
 * Raw clone3 without CLONE_VM behaves like fork, but glibc's atfork handlers do not
 * run and its cached tid is stale: the new process may only make raw syscalls and
 * _exit, which is all it does here.
 */
static pid_t kd_clone3(uint64_t flags, pid_t tid)
{
	struct clone_args ca = {
		.flags = flags,
		.exit_signal = SIGCHLD,
		.set_tid = (uintptr_t)&tid,
		.set_tid_size = 1,
	};

	return syscall(SYS_clone3, &ca, sizeof(ca));
}

/* Pid 1 of the new namespace: create KD_NS_PID in it, as restore does for a tree. */
static int kd_ns_init(void)
{
	pid_t pid;
	int code;

	if (getpid() != 1)
		return KD_EXIT_WRONG;
	pid = kd_clone3(0, KD_NS_PID);
	if (pid == 0)
		_exit(getpid() == KD_NS_PID ? 0 : KD_EXIT_WRONG);
	if (pid < 0)
		return kd_exit_code(-errno);
	code = kd_wait_exit(pid);
	return code < 0 ? kd_exit_code(code) : code;
}

static int kd_clone3_child(void *arg, struct kd_res *res)
{
	pid_t pid;
	int code;

	/* CLONE_NEWPID via clone3, never unshare(): an unshared task cannot make threads. */
	pid = kd_clone3(CLONE_NEWPID, 1);
	if (pid == 0)
		_exit(kd_ns_init());
	if (pid < 0)
		return eng__kd_fail(res, -errno, "clone3(CLONE_NEWPID, set_tid={1})");
	code = kd_wait_exit(pid);
	if (code < 0)
		return eng__kd_fail(res, code, "waiting for the pid-ns init");
	if (code == KD_EXIT_WRONG)
		return eng__kd_wrong(res, -EIO, "a set_tid child got the wrong pid");
	if (code)
		return eng__kd_fail(res, -code, "clone3(set_tid={%d}) in a new pid ns", KD_NS_PID);
	return 0;
}

int eng__kd_clone3(struct eng_kerndat *kd)
{
	struct kd_res r;
	int err = eng__kd_in_child(kd_clone3_child, NULL, &r);

	kd->clone3_set_tid = !err && !r.err;
	eng__kd_set(kd, ENG_KD_CLONE3_SET_TID, r.err, NULL, "%s", kd->clone3_set_tid ?
		    "pid 1 of a new pid ns, then pid 42 in it" : r.msg);
	return err;
}

/* A child that opens a memfd, says its fd number and waits for EOF on `hold`. */
static void kd_fd_holder(int tell, int hold)
{
	int fd = memfd_create("hacd-kd", 0);

	if (fd < 0 || write(fd, "hacd-kd", 7) != 7)
		fd = -1;
	if (write(tell, &fd, sizeof(fd)) == sizeof(fd))
		while (read(hold, &fd, 1) < 0 && errno == EINTR)
			;
	_exit(0);
}

static int kd_getfd_try(pid_t pid, int tfd, struct kd_res *res)
{
	char buf[8] = "";
	int pidfd, fd;

	pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0)
		return eng__kd_fail(res, -errno, "pidfd_open");
	fd = syscall(SYS_pidfd_getfd, pidfd, tfd, 0);
	close(pidfd);
	if (fd < 0)
		return eng__kd_fail(res, -errno, "pidfd_getfd");
	/* Same file, not just some fd: read what the child wrote into its memfd. */
	if (pread(fd, buf, 7, 0) != 7 || strcmp(buf, "hacd-kd"))
		eng__kd_wrong(res, -EIO, "pidfd_getfd returned a different file");
	close(fd);
	return res->err;
}

int eng__kd_pidfd_getfd(struct eng_kerndat *kd)
{
	int tell[2], hold[2], tfd = -1, err = 0;
	struct kd_res r = { 0 };
	pid_t pid;

	if (pipe2(tell, O_CLOEXEC)) {
		err = eng__kd_fail(&r, -errno, "pipe");
		goto out;
	}
	if (pipe2(hold, O_CLOEXEC)) {
		err = eng__kd_fail(&r, -errno, "pipe");
		close(tell[0]);
		close(tell[1]);
		goto out;
	}
	pid = fork();
	if (pid == 0) {
		close(hold[1]);
		kd_fd_holder(tell[1], hold[0]);
	}
	if (pid < 0)
		err = eng__kd_fail(&r, -errno, "fork");
	close(tell[1]);
	close(hold[0]);
	if (pid > 0 && read(tell[0], &tfd, sizeof(tfd)) == sizeof(tfd) && tfd >= 0)
		kd_getfd_try(pid, tfd, &r);
	else if (pid > 0)
		eng__kd_wrong(&r, -EIO, "the fd holder could not make a memfd");
	close(tell[0]);
	close(hold[1]);		/* EOF: the holder exits */
	if (pid > 0)
		kd_wait_exit(pid);
out:
	kd->pidfd_getfd = !r.err;
	eng__kd_set(kd, ENG_KD_PIDFD_GETFD, r.err, NULL, "%s", r.err ? r.msg :
		    "took a child's memfd and read what it wrote");
	return err;
}

static double kd_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * unshare(CLONE_NEWTIME) only affects children (time_for_children), and offsets can be
 * written only until the first task enters: so write them, then fork and let the
 * grandchild see its CLOCK_MONOTONIC a day ahead of ours.
 */
static int kd_timens_child(void *arg, struct kd_res *res)
{
	const char off[] = "monotonic 86400 0\n";
	double before;
	int fd, code;
	pid_t pid;

	if (unshare(CLONE_NEWTIME))
		return eng__kd_fail(res, -errno, "unshare(CLONE_NEWTIME)");
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return eng__kd_fail(res, -errno, "open /proc/self/timens_offsets");
	if (write(fd, off, sizeof(off) - 1) != sizeof(off) - 1)
		return eng__kd_fail(res, -errno, "writing timens_offsets");
	close(fd);
	before = kd_monotonic();
	pid = fork();
	if (pid == 0) {
		double d = kd_monotonic() - before;

		_exit(d > 86400 - 60 && d < 86400 + 60 ? 0 : KD_EXIT_WRONG);
	}
	if (pid < 0)
		return eng__kd_fail(res, -errno, "fork into the time namespace");
	code = kd_wait_exit(pid);
	if (code)
		return eng__kd_wrong(res, -EIO, "offset written, not seen by a child");
	return 0;
}

int eng__kd_timens(struct eng_kerndat *kd)
{
	struct kd_res r;
	int err = eng__kd_in_child(kd_timens_child, NULL, &r);

	kd->timens = !err && !r.err;
	eng__kd_set(kd, ENG_KD_TIMENS, r.err, NULL, "%s", kd->timens ?
		    "a child saw CLOCK_MONOTONIC offset by 1 day" : r.msg);
	return err;
}

/* Read the stopped tracee's rseq configuration and xstate regset size. */
static int kd_rseq_tracee(struct eng_kerndat *kd, pid_t pid, struct kd_res *res)
{
	struct __ptrace_rseq_configuration conf = { 0 };
	struct iovec iov;
	long n;

	/* The regset is as large as the kernel's XSAVE layout: up to ~11 KiB with AMX. */
	iov.iov_len = 64 << 10;
	iov.iov_base = malloc(iov.iov_len);
	if (iov.iov_base && !ptrace(PTRACE_GETREGSET, pid, NT_X86_XSTATE, &iov))
		kd->xstate_regset_size = iov.iov_len;
	free(iov.iov_base);
	n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof(conf), &conf);
	if (n < 0)
		return eng__kd_fail(res, -errno, "PTRACE_GET_RSEQ_CONFIGURATION");
	/* A fork copies the calling thread: the tracee's area is the caller's. */
	kd->rseq_addr = conf.rseq_abi_pointer;
	kd->rseq_len = conf.rseq_abi_size;
	kd->rseq_sig = conf.signature;
	return 0;
}

static int kd_rseq_ptrace(struct eng_kerndat *kd, struct kd_res *res)
{
	int status = 0;
	pid_t pid;

	pid = fork();
	if (pid == 0) {
		/* Stop where the parent can look; PTRACE_TRACEME needs no attach rights. */
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) == 0)
			raise(SIGSTOP);
		_exit(0);
	}
	if (pid < 0)
		return eng__kd_fail(res, -errno, "fork");	/* could not run */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSTOPPED(status))
		kd_rseq_tracee(kd, pid, res);
	else
		eng__kd_wrong(res, -ESRCH, "tracee did not stop");
	kill(pid, SIGKILL);
	kd_wait_exit(pid);
	return 0;
}

int eng__kd_rseq(struct eng_kerndat *kd)
{
	struct kd_res r = { 0 };
	int err;

	kd->rseq_feature_size = getauxval(AT_RSEQ_FEATURE_SIZE);
	/* Bad arguments on purpose: any answer but ENOSYS means the kernel has rseq. */
	if (syscall(SYS_rseq, NULL, 0, 0, 0) < 0 && errno == ENOSYS) {
		eng__kd_set(kd, ENG_KD_RSEQ, 0, "n/a", "kernel without rseq: nothing to save");
		return 0;
	}
	err = kd_rseq_ptrace(kd, &r);
	kd->rseq = !r.err;
	if (r.err)
		eng__kd_set(kd, ENG_KD_RSEQ, r.err, NULL, "%s", r.msg);
	else if (!kd->rseq_addr)
		eng__kd_set(kd, ENG_KD_RSEQ, 0, NULL, "ptrace reads it; libc registered none "
			    "(__rseq_size %u)", __rseq_size);
	else
		eng__kd_set(kd, ENG_KD_RSEQ, 0, NULL, "registered by libc: len %u, sig %#x, "
			    "feature size %u", kd->rseq_len, kd->rseq_sig, kd->rseq_feature_size);
	return err;
}

/* Undo mountinfo's octal escapes (\040 for a space, \011, \012, \134). */
static void kd_unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d = (s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0');
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = 0;
}

/* The first cgroup2 mount: hybrid systems (like this one) mount it beside v1. */
static int kd_cgroup2_mount(char *out, size_t len)
{
	char line[4096], mnt[4096];
	int err = -ENOENT;
	char *sep;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (err && fgets(line, sizeof(line), f)) {
		/* Optional fields come before " - ", the fs type right after it. */
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
			continue;
		kd_unescape(mnt);
		err = snprintf(out, len, "%s", mnt) < (int)len ? 0 : -ENAMETOOLONG;
	}
	fclose(f);
	return err;
}

static int kd_cg_write(const char *dir, const char *file, const char *val)
{
	char path[PATH_MAX];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, val, strlen(val)) < 0)
		err = -errno;
	close(fd);
	return err;
}

/* Freezing is asynchronous: cgroup.freeze is the request, cgroup.events the state. */
static int kd_cg_wait_frozen(const char *dir, int want)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	char path[PATH_MAX], buf[256], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	for (int i = 0; i < 400; i++) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		p = strstr(buf, "frozen ");
		if (p && p[7] - '0' == want)
			return 0;
		nanosleep(&tick, NULL);
	}
	return -ETIMEDOUT;
}

static int kd_freezer_try(const char *dir, pid_t pid, struct kd_res *res)
{
	char num[16];
	int err;

	snprintf(num, sizeof(num), "%d", pid);
	err = kd_cg_write(dir, "cgroup.procs", num);
	if (err)
		return eng__kd_fail(res, err, "moving a child into %s", dir);
	/* cgroup.freeze is absent before 5.2 (ENOENT): the v2 freezer is not a controller. */
	err = kd_cg_write(dir, "cgroup.freeze", "1");
	if (err)
		return eng__kd_fail(res, err, "writing 1 to cgroup.freeze");
	err = kd_cg_wait_frozen(dir, 1);
	if (err)
		return eng__kd_fail(res, err, "cgroup.events never said frozen 1");
	err = kd_cg_write(dir, "cgroup.freeze", "0");
	if (!err)
		err = kd_cg_wait_frozen(dir, 0);
	if (err)
		return eng__kd_fail(res, err, "thawing");
	return 0;
}

/* A throwaway child cgroup with one sleeping child in it, frozen and thawed. */
static int kd_freezer(const char *mnt, struct kd_res *res)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	char dir[PATH_MAX], c;
	int hold[2], i;
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/hacd-kd-%d", mnt, getpid());
	if (mkdir(dir, 0700)) {
		eng__kd_fail(res, -errno, "mkdir %s", dir);
		return 0;
	}
	if (pipe2(hold, O_CLOEXEC)) {
		rmdir(dir);
		return eng__kd_fail(res, -errno, "pipe");
	}
	pid = fork();
	if (pid == 0) {
		close(hold[1]);
		while (read(hold[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (pid > 0 && kd_freezer_try(dir, pid, res))
		kd_cg_write(dir, "cgroup.freeze", "0");
	else if (pid < 0)
		eng__kd_fail(res, -errno, "fork");
	close(hold[0]);
	close(hold[1]);		/* EOF: the child exits, once thawed */
	if (pid > 0) {
		if (res->err)	/* fatal signals get through a v2 freeze */
			kill(pid, SIGKILL);
		kd_wait_exit(pid);
	}
	/* The cgroup empties when the child exits; give the kernel a moment. */
	for (i = 0; rmdir(dir) && errno == EBUSY && i < 200; i++)
		nanosleep(&tick, NULL);
	if (access(dir, F_OK) == 0)
		pr_warn("kerndat: could not remove probe cgroup %s", dir);
	return pid < 0 ? res->err : 0;
}

int eng__kd_cgroup2(struct eng_kerndat *kd)
{
	struct kd_res r = { 0 };
	struct statfs st;
	int err;

	err = kd_cgroup2_mount(kd->cgroup2_mnt, sizeof(kd->cgroup2_mnt));
	if (!err && statfs(kd->cgroup2_mnt, &st))
		err = -errno;
	else if (!err && st.f_type != CGROUP2_SUPER_MAGIC)
		err = -EXDEV;	/* over-mounted since mountinfo was read */
	if (err) {
		eng__kd_set(kd, ENG_KD_CGROUP2, err, NULL, "no usable cgroup2 mount: %s",
			    strerror(-err));
		eng__kd_set(kd, ENG_KD_FREEZER, err, NULL, "no cgroup2");
		kd->cgroup2_mnt[0] = 0;
		return 0;
	}
	if (strlen(kd->cgroup2_mnt) < sizeof(kd->items[0].value))
		eng__kd_set(kd, ENG_KD_CGROUP2, 0, kd->cgroup2_mnt, NULL);
	else
		eng__kd_set(kd, ENG_KD_CGROUP2, 0, NULL, "%s", kd->cgroup2_mnt);
	err = kd_freezer(kd->cgroup2_mnt, &r);
	kd->cgroup2_freezer = !r.err;
	eng__kd_set(kd, ENG_KD_FREEZER, r.err, NULL, "%s", r.err ? r.msg :
		    "a child cgroup froze and thawed");
	return err;
}
