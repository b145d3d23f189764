/*
 * zdtm-style helpers for victim programs (after CRIU's zdtm): a victim sets up state,
 * reports "ready" with facts the runner checks (key=value words on one line), is then
 * operated on from outside, finally verifies its own state and exits 0 (pass) or 1.
 *
 * The runner passes the write end of its ready pipe in HA_READY_FD (a victim started by
 * `hactl run` has none and writes the line to its stdout) and asks a victim to
 * finish with SIGTERM; victims that block in a syscall finish by themselves (or say
 * wake=term). Under cr_runner a victim runs in its own scratch directory (its cwd, also
 * in HA_DIR), with stdin from /dev/null and stdout/stderr appended to a log file.
 *
 * Rules that keep the runner's before/after /proc comparison meaningful:
 *  - set everything up before zdtm_ready(); after it, change no mapping, fd, handler,
 *    mask or credential until zdtm_stop is set (no malloc that could grow the heap);
 *  - never call raise() in the loop: glibc blocks every signal around it, which a
 *    snapshot could catch; use zdtm_tkill();
 *  - after zdtm_stop, verify everything, also what only the kernel keeps;
 *  - write to files only deterministically: with --leave-running the original and the
 *    restored copy both run their checks on the same files, one after the other.
 */
#ifndef HA_ZDTM_H
#define HA_ZDTM_H

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t zdtm_stop;

static void zdtm_on_term(int sig)
{
	(void)sig;
	zdtm_stop = 1;
}

/* Install the SIGTERM handler the runner uses to end the test. */
static inline void zdtm_init(void)
{
	struct sigaction sa = { .sa_handler = zdtm_on_term };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
}

/* Tell the runner we are set up; fmt adds key=value facts to the ready line. */
static inline void __attribute__((format(printf, 1, 2))) zdtm_ready(const char *fmt, ...)
{
	char line[1024];
	const char *s = getenv("HA_READY_FD");
	int fd = s ? atoi(s) : -1, n;
	va_list ap;

	n = snprintf(line, sizeof(line), "ready ");
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	/* Launched by `hactl run` (cr_runner --launched): no pipe reaches us, the runner
	 * reads the line from our stdout, the service's log. */
	if (!s) {
		fflush(stdout);
		if (write(STDOUT_FILENO, line, n) != n)
			exit(2);
		return;
	}
	if (fd < 0 || write(fd, line, n) != n) {
		fprintf(stderr, "victim: cannot report ready (HA_READY_FD=%s)\n", s ? s : "unset");
		exit(2);
	}
	close(fd);
}

#define zdtm_fail(fmt, ...)                                                          \
	do {                                                                          \
		fprintf(stderr, "FAIL %s:%d: " fmt "\n", __FILE__, __LINE__, ##__VA_ARGS__); \
		fflush(stderr);                                                       \
		exit(1);                                                              \
	} while (0)

/* zdtm_check(cond, "what was wrong: %d", value) */
#define zdtm_check(cond, fmt, ...)                     \
	do {                                           \
		if (!(cond))                           \
			zdtm_fail(fmt, ##__VA_ARGS__); \
	} while (0)

/*
 * In a child a tree victim forks: only the root reports ready, and a child that kept
 * the runner's pipe open would hold its read end from ever seeing the root's EOF.
 */
static inline void zdtm_child_init(void)
{
	const char *s = getenv("HA_READY_FD");

	if (s)
		close(atoi(s));
}

/* waitpid for one child, through EINTR; returns its wait status. */
static inline int zdtm_reap(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			zdtm_fail("waitpid %d: %m", pid);
	return st;
}

/* Exactly n bytes from a blocking fd, through EINTR; fails the victim on EOF or error. */
static inline void zdtm_read_all(int fd, void *buf, size_t n, const char *what)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		zdtm_check(r > 0, "%s: read after %zu of %zu bytes: %zd %m", what, got, n, r);
		got += r;
	}
}

static inline void zdtm_pass(void)
{
	exit(0);
}

/* The scratch directory the runner gave us ("." when run by hand). */
static inline const char *zdtm_dir(void)
{
	const char *d = getenv("HA_DIR");

	return d ? d : ".";
}

/* The kernel's idea, not a cache: the raw syscalls. */
static inline pid_t zdtm_getpid(void)
{
	return (pid_t)syscall(SYS_getpid);
}

static inline pid_t zdtm_gettid(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* Send sig to thread tid of this process without glibc's all-signals-blocked window. */
static inline int zdtm_tkill(pid_t tid, int sig)
{
	return (int)syscall(SYS_tgkill, zdtm_getpid(), tid, sig);
}

/*
 * Turns between the processes of a tree victim: one byte over a pipe. A read or a
 * write that the dump or the restore interrupts is done again.
 */
static inline void zdtm_turn_wait(int fd)
{
	ssize_t r;
	char b;

	while ((r = read(fd, &b, 1)) != 1)
		zdtm_check(r < 0 && errno == EINTR, "pid %d: read: %zd %m", zdtm_getpid(), r);
}

static inline void zdtm_turn_give(int fd)
{
	ssize_t r;

	while ((r = write(fd, "x", 1)) != 1)
		zdtm_check(r < 0 && errno == EINTR, "pid %d: write: %zd %m", zdtm_getpid(), r);
}

/*
 * fork() with a pipe each way for the turns: 0 in the child, the child's pid in the
 * parent; *in and *out are this side's ends, the other side's are closed here.
 */
static inline pid_t zdtm_fork_turns(int *in, int *out)
{
	int p2c[2], c2p[2];
	pid_t pid;

	if (pipe(p2c) || pipe(c2p))
		zdtm_fail("pipe: %m");
	pid = fork();
	if (pid < 0)
		zdtm_fail("fork: %m");
	close(pid ? p2c[0] : p2c[1]);
	close(pid ? c2p[1] : c2p[0]);
	*in = pid ? c2p[0] : p2c[0];
	*out = pid ? p2c[1] : c2p[1];
	return pid;
}

/* Sleep, shrugging off EINTR: for loops, not for the blocking tests. */
static inline void zdtm_sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * n threads running fn((void *)i), created with SIGTERM blocked so that the runner's
 * SIGTERM is the main thread's to take; returns once each has added 1 to *ready.
 */
static inline void zdtm_threads_start(pthread_t *th, int n, void *(*fn)(void *),
				      volatile int *ready)
{
	sigset_t term;

	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &term, NULL);
	for (long i = 0; i < n; i++)
		if (pthread_create(&th[i], NULL, fn, (void *)i))
			zdtm_fail("pthread_create %ld", i);
	pthread_sigmask(SIG_UNBLOCK, &term, NULL);
	while (__atomic_load_n(ready, __ATOMIC_SEQ_CST) < n)
		zdtm_sleep_ms(1);
}

/*
 * Checksum chains for threads that must come through a checkpoint computing correctly:
 * each runs an integer and a floating-point chain and publishes steps, ix and fx
 * together every 1024 steps; a recomputation of that many steps must give the same. A
 * register or an xstate (SSE) that an injection or a restore clobbered shows.
 */
struct zdtm_work {
	uint64_t steps, ix;
	double fx;
	pid_t tid;	/* for the victim's own use */
};

static inline void zdtm_work_step(uint64_t *ix, double *fx, uint64_t seed)
{
	*ix ^= *ix << 13;
	*ix ^= *ix >> 7;
	*ix ^= *ix << 17;
	*fx = *fx * 0.999 + (double)(*ix & 0xffff) / 65536.0 + (double)seed;
}

/* Chain `seed` (not 0) into w until zdtm_stop, ending on a published boundary so that
 * steps, ix and fx agree. */
static inline void zdtm_work_run(struct zdtm_work *w, uint64_t seed)
{
	uint64_t ix = 0x9e3779b97f4a7c15ull * seed;
	double fx = 0;

	while (!zdtm_stop) {
		zdtm_work_step(&ix, &fx, seed);
		if (!(++w->steps & 1023)) {
			w->ix = ix;
			w->fx = fx;
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
		}
	}
	while (w->steps & 1023) {
		zdtm_work_step(&ix, &fx, seed);
		w->steps++;
	}
	w->ix = ix;
	w->fx = fx;
}

/* Chain i of w[0..n) ran with seed i + 1, at least 1024 steps, and computed right. */
static inline void zdtm_work_check(const struct zdtm_work *w, int n)
{
	for (int i = 0; i < n; i++) {
		uint64_t seed = i + 1, ix = 0x9e3779b97f4a7c15ull * seed;
		double fx = 0;

		for (uint64_t s = 0; s < w[i].steps; s++)
			zdtm_work_step(&ix, &fx, seed);
		zdtm_check(w[i].steps >= 1024, "thread %d did not run (%lu steps)", i,
			   (unsigned long)w[i].steps);
		zdtm_check(ix == w[i].ix && fx == w[i].fx,
			   "thread %d: after %lu steps got %#lx/%.17g, expected %#lx/%.17g", i,
			   (unsigned long)w[i].steps, (unsigned long)w[i].ix, w[i].fx,
			   (unsigned long)ix, fx);
	}
}

/*
 * A second thread for victims whose state is per thread (credentials, capabilities,
 * seccomp): check(1) runs on it after SIGTERM (and before ready with check_at_start),
 * check(0) on the main thread; each writes what is wrong into the victim's errs[who].
 */
struct zdtm_twin {
	void (*check)(int who);
	int check_at_start;
	int started;
	pthread_t th;
};

static inline void *zdtm_twin_main(void *arg)
{
	struct zdtm_twin *t = arg;

	if (t->check_at_start)
		t->check(1);
	__atomic_add_fetch(&t->started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	t->check(1);
	return NULL;
}

/* Start the twin; returns once it runs (and did its first check). */
static inline void zdtm_twin_start(struct zdtm_twin *t)
{
	if (pthread_create(&t->th, NULL, zdtm_twin_main, t))
		zdtm_fail("pthread_create");
	while (!__atomic_load_n(&t->started, __ATOMIC_SEQ_CST))
		zdtm_sleep_ms(1);
}

/* Until SIGTERM, then both checks: the main thread's error err0, the twin's err1. */
static inline void zdtm_twin_end(struct zdtm_twin *t, const char *err0, const char *err1)
{
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	t->check(0);
	pthread_join(t->th, NULL);
	zdtm_check(!err0[0], "main thread: %s", err0);
	zdtm_check(!err1[0], "second thread: %s", err1);
}

/* pause() until the runner's SIGTERM: anything else that ends it fails the victim. */
static inline void zdtm_pause_for_term(void)
{
	int r = pause(), e = errno;

	zdtm_check(r == -1 && e == EINTR && zdtm_stop, "pause ended without SIGTERM (%d %s)", r,
		   strerror(e));
}

static inline double zdtm_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Use sec seconds of this thread's CPU time (for CPU-time timers to tick). */
static inline void zdtm_burn(double sec)
{
	double end = zdtm_now(CLOCK_THREAD_CPUTIME_ID) + sec;
	volatile uint64_t x = 1;

	while (zdtm_now(CLOCK_THREAD_CPUTIME_ID) < end)
		for (int i = 0; i < 10000; i++)
			x = x * 31 + i;
}

/*
 * n expirations of a periodic CLOCK_MONOTONIC timer of period p (s) were counted
 * between two reads of it: the first made between times a0 and a1, the last between
 * b0 and b1 (zdtm_now(CLOCK_MONOTONIC) taken around each). Checks n against the
 * instants the period puts in that interval, whatever its length: a process may be
 * descheduled anywhere, for any time, under load, so the bound comes from the clock
 * around the reads, never from the time the victim meant to wait. One expiry more or
 * less is allowed: a timer interrupt served late counts it on the other side of a read.
 */
static inline void zdtm_check_period(const char *what, uint64_t n, double p, double a0, double a1, double b0,
				     double b1)
{
	long lo = (long)((b0 - a1) / p) - 1, hi = (long)((b1 - a0) / p) + 2;

	if ((long)n < lo || (long)n > hi) {
		fprintf(stderr, "FAIL %s: %llu expirations in %.3f-%.3f s at a %.0f ms period: want %ld..%ld\n", what,
			(unsigned long long)n, b0 - a1, b1 - a0, p * 1e3, lo, hi);
		fflush(stderr);
		exit(1);
	}
}

/* A deterministic byte pattern and a checksum that sees every byte and its place. */
static inline uint64_t zdtm_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	return x ^ (x >> 33);
}

static inline void zdtm_fill(void *p, size_t n, uint64_t seed)
{
	unsigned char *c = p;

	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = zdtm_mix(seed + i / 8);

		memcpy(c + i, &w, n - i < 8 ? n - i : 8);
	}
}

static inline uint64_t zdtm_csum(const void *p, size_t n)
{
	const unsigned char *c = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ull;
	return h;
}

/* One "Key:" line's value from /proc/self/status (or another file), "" if absent. */
static inline int zdtm_proc_field(const char *path, const char *key, char *out, size_t size)
{
	char line[512];
	size_t kl = strlen(key);
	FILE *f = fopen(path, "re");
	int found = -1;

	out[0] = 0;
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			char *v = line + kl + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = 0;
			snprintf(out, size, "%s", v);
			found = 0;
			break;
		}
	fclose(f);
	return found;
}

/*
 * Probing memory: zdtm_probe(addr, write) returns 0 when the access worked, else the
 * signal it raised (SIGSEGV, SIGBUS), with the fault address in zdtm_probe_addr and
 * the si_code in zdtm_probe_code. The
 * handler is installed once by zdtm_probe_init(), before ready, and stays.
 */
static __thread sigjmp_buf zdtm__probe_jb;
static __thread volatile int zdtm__probing;
static __thread volatile int zdtm__probe_sig;
static __thread void *volatile zdtm_probe_addr;
static __thread volatile int zdtm_probe_code;	/* si_code: SEGV_MAPERR, SEGV_ACCERR... */

static void __attribute__((unused)) zdtm__on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (!zdtm__probing) {
		signal(sig, SIG_DFL);	/* a real crash: let it happen */
		return;
	}
	zdtm__probe_sig = sig;
	zdtm_probe_addr = si->si_addr;
	zdtm_probe_code = si->si_code;
	siglongjmp(zdtm__probe_jb, 1);
}

static inline void zdtm_probe_init(void)
{
	struct sigaction sa = { .sa_sigaction = zdtm__on_fault, .sa_flags = SA_SIGINFO | SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static int __attribute__((noinline, unused)) zdtm_probe(volatile char *addr, int write)
{
	zdtm__probe_sig = 0;
	zdtm__probing = 1;
	if (sigsetjmp(zdtm__probe_jb, 1)) {
		zdtm__probing = 0;
		return zdtm__probe_sig;
	}
	if (write)
		*addr = *addr;
	else
		(void)*addr;
	zdtm__probing = 0;
	return 0;
}

#endif
