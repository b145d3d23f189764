/*
 * Kernel feature probes ("kerndat", after CRIU's kerndat.c): what this kernel and CPU
 * let the engine do, found by really trying each feature, never by reading a version
 * number or trusting that a write to a control file was accepted (on this kernel
 * clear_refs accepts "4" and soft-dirty still does not work).
 *
 * DESIGN
 * eng_kerndat_probe() runs every probe in a fixed order and fills struct eng_kerndat:
 * the values later stages use (dirty-tracking method, vdso layout, XCR0, cgroup2 mount)
 * and one item per feature for `hactl check`. Probes that change process state run in
 * a forked child (eng__kd_in_child), so the caller is left exactly as it was.
 *
 * Invariants:
 *  1. Every item is set exactly once per probe run; an item never set reads as failed.
 *  2. item.ok == (item.err == 0).
 *  3. dirty_method is the best method whose probe succeeded; hash always succeeds.
 *  4. A missing feature is not an error of eng_kerndat_probe(); only a probe that could
 *     not run at all (fork, pipe) makes it return -errno.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kerndat.h"
#include "log.h"

static const struct {
	const char *name;
	bool required;
	const char *without;	/* what the engine loses when it is missing */
} kd_items[ENG_KD_NR] = {
	[ENG_KD_DIRTY] = { "dirty-tracking", true, "no way to find changed pages" },
	[ENG_KD_UFFD] = { "userfaultfd", false,
			  "no uffd-wp dirty tracking and no lazy (post-copy) restore" },
	[ENG_KD_CLONE3_SET_TID] = { "clone3-set-tid", true,
				    "restore cannot give tasks their pids back" },
	[ENG_KD_MM_MAP] = { "pr-set-mm-map", true,
			    "restore cannot set brk, arg/env areas and auxv" },
	[ENG_KD_PIDFD_GETFD] = { "pidfd-getfd", false,
				 "the target's fds must come over the parasite socket" },
	[ENG_KD_CGROUP2] = { "cgroup2", false, "no cgroup freezer" },
	[ENG_KD_FREEZER] = { "cgroup2-freezer", false,
			     "tasks are stopped one by one with ptrace: a longer pause" },
	[ENG_KD_TCP_REPAIR] = { "tcp-repair", false,
				"established TCP connections cannot be checkpointed" },
	[ENG_KD_TIMENS] = { "time-namespace", false,
			    "restored services see CLOCK_MONOTONIC jump to the standby's" },
	[ENG_KD_RSEQ] = { "rseq", true, "rseq registrations (glibc makes one per thread) "
				      "cannot be dumped" },
	[ENG_KD_VDSO] = { "vdso", true, "the vdso cannot be found and moved" },
	[ENG_KD_XSTATE] = { "xstate", true, "FPU/AVX state cannot be saved or checked" },
	[ENG_KD_CAP_SYS_RESOURCE] = { "cap-sys-resource", false,
				      "hard rlimits can't be raised above hacd's own and "
				      "prlimit on other users' processes is refused" },
};

int eng__kd_fail(struct kd_res *res, int err, const char *fmt, ...)
{
	const char *name;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	n = strlen(res->msg);
	/* The errno's name (EPERM), not its text: it is what man pages list per call. */
	name = err ? strerrorname_np(-err) : NULL;
	if (err && n < sizeof(res->msg))
		snprintf(res->msg + n, sizeof(res->msg) - n, ": %s", name ? name : strerror(-err));
	return res->err = err;
}

int eng__kd_wrong(struct kd_res *res, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
	va_end(ap);
	return res->err = err;
}

void eng__kd_set(struct eng_kerndat *kd, enum eng_kd_item i, int err, const char *value,
		 const char *fmt, ...)
{
	struct eng_kerndat_item *it = &kd->items[i];
	va_list ap;

	it->err = err;
	it->ok = !err;
	snprintf(it->value, sizeof(it->value), "%s", value ? value : err ? "missing" : "yes");
	it->detail[0] = 0;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(it->detail, sizeof(it->detail), fmt, ap);
		va_end(ap);
	}
}

static int kd_read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		n = read(fd, (char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += n;
	}
	return done == len ? 0 : -EPIPE;
}

int eng__kd_in_child(kd_child_fn fn, void *arg, struct kd_res *res)
{
	int p[2], status = 0, err;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe2(p, O_CLOEXEC))
		return eng__kd_fail(res, -errno, "pipe");
	pid = fork();
	if (pid < 0) {
		err = eng__kd_fail(res, -errno, "fork");
		close(p[0]);
		close(p[1]);
		return err;
	}
	if (pid == 0) {
		/* _exit: no atexit handlers, no stdio flush, no sanitizer leak pass. */
		close(p[0]);
		res->err = fn(arg, res);
		_exit(write(p[1], res, sizeof(*res)) == sizeof(*res) ? 0 : 1);
	}
	close(p[1]);
	err = kd_read_full(p[0], res, sizeof(*res));
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err) {
		/* The probe itself crashed: that is its outcome, not a failure to run. */
		memset(res, 0, sizeof(*res));
		eng__kd_wrong(res, -ECHILD, "probe child died (%s %d)",
			      WIFSIGNALED(status) ? "signal" : "status",
			      WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	}
	return 0;
}

/*
 * TCP repair: setting TCP_REPAIR can succeed and mean little, so also do what restore
 * does first: pick the send queue and set its sequence number (accepted only in repair
 * mode on a closed socket), then read it back.
 */
static void kd_tcp_repair(struct eng_kerndat *kd)
{
	int one = 1, q = TCP_SEND_QUEUE, seq = 0x5eed1234, got = 0;
	socklen_t len = sizeof(got);
	struct kd_res r = { 0 };
	int s;

	s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		eng__kd_fail(&r, -errno, "socket(AF_INET)");
	else if (setsockopt(s, SOL_TCP, TCP_REPAIR, &one, sizeof(one)))
		eng__kd_fail(&r, -errno, "setsockopt(TCP_REPAIR)");
	else if (setsockopt(s, SOL_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q)))
		eng__kd_fail(&r, -errno, "setsockopt(TCP_REPAIR_QUEUE)");
	else if (setsockopt(s, SOL_TCP, TCP_QUEUE_SEQ, &seq, sizeof(seq)))
		eng__kd_fail(&r, -errno, "setsockopt(TCP_QUEUE_SEQ)");
	else if (getsockopt(s, SOL_TCP, TCP_QUEUE_SEQ, &got, &len))
		eng__kd_fail(&r, -errno, "getsockopt(TCP_QUEUE_SEQ)");
	else if (got != seq)
		eng__kd_wrong(&r, -EIO, "TCP_QUEUE_SEQ read back %#x, set %#x", got, seq);
	if (s >= 0)
		close(s);
	kd->tcp_repair = !r.err;
	eng__kd_set(kd, ENG_KD_TCP_REPAIR, r.err, NULL, "%s", r.err ? r.msg :
		    "send queue seq set and read back in repair mode");
}

static void kd_xstate(struct eng_kerndat *kd)
{
#if defined(__x86_64__)
	unsigned int a, b, c, d, lo, hi;

	/*
	 * xgetbv raises #UD unless the OS set CR4.OSXSAVE, which CPUID.1:ECX bit 27
	 * mirrors: check it first or the probe dies with SIGILL.
	 */
	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE)) {
		eng__kd_set(kd, ENG_KD_XSTATE, -EOPNOTSUPP, NULL, "XSAVE not enabled by the OS");
		return;
	}
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	kd->xcr0 = (uint64_t)hi << 32 | lo;
	/* Leaf 0xd sub-leaf 0: EBX is the XSAVE area size for the features XCR0 enables. */
	__cpuid_count(0xd, 0, a, b, c, d);
	kd->xstate_size = b;
	if (kd->xstate_regset_size && kd->xstate_regset_size != kd->xstate_size)
		eng__kd_set(kd, ENG_KD_XSTATE, 0, "yes", "xcr0 %#llx, %u bytes, "
			    "ptrace NT_X86_XSTATE %u bytes", (unsigned long long)kd->xcr0,
			    kd->xstate_size, kd->xstate_regset_size);
	else
		eng__kd_set(kd, ENG_KD_XSTATE, 0, "yes", "xcr0 %#llx, %u bytes",
			    (unsigned long long)kd->xcr0, kd->xstate_size);
#else
	eng__kd_set(kd, ENG_KD_XSTATE, 0, "n/a", "not x86-64");
#endif
}

/*
 * Raising a hard limit is exactly what CAP_SYS_RESOURCE allows, so try it: lower
 * RLIMIT_NOFILE's hard limit by one in a child, then put it back.
 */
static int kd_rlimit_child(void *arg, struct kd_res *res)
{
	struct rlimit orig, low;

	if (getrlimit(RLIMIT_NOFILE, &orig))
		return eng__kd_fail(res, -errno, "getrlimit(RLIMIT_NOFILE)");
	low.rlim_max = orig.rlim_max - 1;
	low.rlim_cur = orig.rlim_cur < low.rlim_max ? orig.rlim_cur : low.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &low))
		return eng__kd_fail(res, -errno, "lowering RLIMIT_NOFILE");
	if (setrlimit(RLIMIT_NOFILE, &orig))
		return eng__kd_fail(res, -errno, "raising RLIMIT_NOFILE's hard limit back");
	return 0;
}

static int kd_cap_sys_resource(struct eng_kerndat *kd)
{
	cap_flag_value_t v = CAP_CLEAR;
	struct kd_res r;
	cap_t caps;
	int err;

	caps = cap_get_proc();
	if (caps) {
		cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	err = eng__kd_in_child(kd_rlimit_child, NULL, &r);
	if (err)
		r.err = err;
	kd->cap_sys_resource = !r.err;
	/* The try decides; say so when libcap's view disagrees (e.g. a user namespace). */
	if (!r.err != (v == CAP_SET))
		eng__kd_set(kd, ENG_KD_CAP_SYS_RESOURCE, r.err, NULL, "%s%slibcap says %s", r.msg,
			    r.msg[0] ? "; " : "", v == CAP_SET ? "set" : "clear");
	else
		eng__kd_set(kd, ENG_KD_CAP_SYS_RESOURCE, r.err, NULL, "%s", r.msg);
	return err;
}

/* Prefix each missing item's detail with what its absence costs. */
static void kd_finish_items(struct eng_kerndat *kd)
{
	char buf[sizeof(kd->items[0].detail)];

	for (int i = 0; i < ENG_KD_NR; i++) {
		struct eng_kerndat_item *it = &kd->items[i];

		it->name = kd_items[i].name;
		it->required = kd_items[i].required;
		if (it->ok)
			continue;
		snprintf(buf, sizeof(buf), "%s: %s%s%s", it->required ? "required" : "optional",
			 kd_items[i].without, it->detail[0] ? "; " : "", it->detail);
		memcpy(it->detail, buf, sizeof(buf));
		pr_debug("kerndat: %s missing (%s)", it->name, it->detail);
	}
}

int eng_kerndat_probe(struct eng_kerndat *kd)
{
	int (*const probes[])(struct eng_kerndat *) = {
		eng__kd_dirty, eng__kd_uffd, eng__kd_clone3, eng__kd_mm_map,
		eng__kd_pidfd_getfd, eng__kd_cgroup2, eng__kd_timens, eng__kd_rseq,
		eng__kd_vdso, kd_cap_sys_resource,
	};
	int err, first = 0;

	eng__clear_error();
	memset(kd, 0, sizeof(*kd));
	/* Invariant 1: anything a probe forgets to set reads as failed. */
	for (int i = 0; i < ENG_KD_NR; i++)
		eng__kd_set(kd, i, -ENODATA, NULL, "not probed");
	for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
		err = probes[i](kd);
		if (err && !first)
			first = err;
	}
	kd_tcp_repair(kd);
	kd_xstate(kd);		/* after eng__kd_rseq: it compares with the ptrace size */
	kd_finish_items(kd);
	if (first)
		pr_err("kerndat: a probe could not run: %s", strerror(-first));
	return first;
}

int eng_kerndat_nr_missing(const struct eng_kerndat *kd)
{
	int n = 0;

	for (int i = 0; i < ENG_KD_NR; i++)
		n += kd->items[i].required && !kd->items[i].ok;
	return n;
}

const char *eng_dirty_method_name(enum eng_dirty_method m)
{
	switch (m) {
	case ENG_DIRTY_UFFD_WP:
		return "uffd-wp+pagemap-scan";
	case ENG_DIRTY_SOFT_DIRTY:
		return "soft-dirty";
	case ENG_DIRTY_HASH:
		return "hash";
	case ENG_DIRTY_FULL:
		return "full";
	}
	return "?";
}
