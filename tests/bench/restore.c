/*
 * bench_restore: how long a restore takes, which on failover is the outage. For each
 * size (default 512 MiB and 2 GiB of half-random pages, about 2:1 compressible), it
 * times the restore of
 *   - a page store's first generation (every page in its own pack),
 *   - its newest generation after GENS more (each with ~2% of the pages written anew, so
 *     its pages come from every older generation's packs),
 *   - a plain image directory (eng_dump, pages-PID.img),
 * each the best of RUNS, filled by one worker (the process itself) and by one per CPU
 * (hactl's threads, as eng_restore does by default), with GB/s of restored memory and
 * this machine's memcpy bandwidth and load average measured in the same run, and the
 * CPU time each restore took (on a loaded machine: the work, apart from the wait).
 * Every restored process is checked against the original's memory (a digest of all its
 * pages read from /proc/PID/mem before and after), so a fast wrong restore is reported,
 * not timed.
 *
 * usage: bench_restore [-v] [MIB...]   (as root; -v: the engine's per-step timing;
 * env HACD_BENCH_RUNS (3), HACD_BENCH_GENS (10), HACD_BENCH_KEEP (keep the stores and
 * images, for perf and hactl))
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench.h"
#include "ha/engine.h"

static char workdir[64];

static volatile sig_atomic_t dirty;

static void on_usr1(int sig)
{
	(void)sig;
	dirty = 1;
}

static void page(uint64_t *w, uint64_t *x)
{
	for (int i = 0; i < 256; i++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		w[i] = *x;
	}
	memset(w + 256, 0, 2048);
}

/*
 * The victim: mib MiB of half-random pages (about 2:1 compressible; one in 16 all
 * zero), idle in pause() between checkpoints so that each generation's memory is known
 * exactly; on SIGUSR1 it writes 2% of its pages anew and then counts the round in the
 * file ctr (a regular file: dumped like any other).
 */
static void __attribute__((noreturn)) victim(int mib, const char *ctr)
{
	uint64_t pages = ((uint64_t)mib << 20) / 4096, x = 0x2545F4914F6CDD1Dull, n = 0;
	uint64_t *mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = open(ctr, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), null = open("/dev/null", O_RDWR);
	sigset_t none;

	if (mem == MAP_FAILED || fd < 0)
		_exit(1);
	signal(SIGUSR1, on_usr1);
	for (uint64_t p = 0; p < pages; p++)
		if (p % 16)
			page(mem + p * 512, &x);
	dup2(null, 0), dup2(null, 1), dup2(null, 2);
	dup2(fd, 3);
	syscall(SYS_close_range, 4, ~0u, 0);
	sigemptyset(&none);
	for (;;) {
		char line[32];
		int len = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)n);

		if (pwrite(3, line, len, 0) != len)
			_exit(1);
		while (!dirty)
			sigsuspend(&none);
		dirty = 0;
		for (uint64_t i = 0; i < pages / 50; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			page(mem + (x % pages) * 512, &x);
		}
		n++;
	}
}

static unsigned long long rounds(const char *ctr)
{
	unsigned long long n = ~0ull;
	FILE *f = fopen(ctr, "re");

	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = ~0ull;
		fclose(f);
	}
	return n;
}

/* Wait until the victim has counted round n (it is idle then). */
static int wait_round(pid_t pid, const char *ctr, unsigned long long n)
{
	while (rounds(ctr) != n)
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return -1;
		else
			usleep(2000);
	return 0;
}

/* XXH3 of the process's big anonymous mapping (the victim's pages), 0 when not found. */
static uint64_t digest(pid_t pid, int mib)
{
	char path[64], line[512];
	unsigned long s, e, want = (unsigned long)mib << 20;
	uint64_t h = 0;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	while (f && fd >= 0 && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || e - s != want)
			continue;
		{
			/* in pieces: a read returns at most 2 GiB - 4 KiB */
			size_t piece = 64ul << 20;
			char *buf = malloc(piece);
			XXH3_state_t *st = XXH3_createState();
			unsigned long at = 0;

			XXH3_64bits_reset(st);
			for (size_t n = piece; buf && at < want; at += n) {
				n = want - at < piece ? want - at : piece;
				if (pread(fd, buf, n, s + at) != (ssize_t)n)
					break;
				XXH3_64bits_update(st, buf, n);
			}
			if (at >= want)
				h = XXH3_64bits_digest(st);
			XXH3_freeState(st);
			free(buf);
		}
		break;
	}
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	return h;
}

static double loadavg(void)
{
	double l = 0;
	FILE *f = fopen("/proc/loadavg", "re");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = 0;
		fclose(f);
	}
	return l;
}

static double cpu_us(int who)
{
	struct rusage ru;

	getrusage(who, &ru);
	return ru.ru_utime.tv_sec * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1e6 + ru.ru_stime.tv_usec;
}

/*
 * Best of runs restores of dir (generation gen of a store); -1 on failure. Also the CPU
 * time the restore took (ours: hactl's fill threads; the restored process's, counted
 * once it is reaped: its own fill with one worker): on a loaded machine it tells work
 * from waiting for a CPU.
 */
static double time_restore(const char *what, const char *dir, uint32_t gen, int mib, uint64_t want, int runs,
			   int workers)
{
	struct eng_restore_opts ro = { .generation = gen, .fill_workers = workers };
	double best = -1, best_cpu = -1;

	for (int r = 0; r < runs; r++) {
		double t = bench_now_us(), cpu = cpu_us(RUSAGE_SELF), kids = cpu_us(RUSAGE_CHILDREN);
		uint64_t got;
		pid_t rp;

		if (eng_restore(dir, &ro, &rp)) {
			fprintf(stderr, "restore of %s: %s\n", what, eng_last_error());
			return -1;
		}
		t = bench_now_us() - t;
		cpu = cpu_us(RUSAGE_SELF) - cpu;
		got = digest(rp, mib);
		bench_kill_wait(rp);
		cpu += cpu_us(RUSAGE_CHILDREN) - kids;
		if (!got || got != want) {
			fprintf(stderr, "%s: the restored memory differs from the checkpoint's\n", what);
			return -1;
		}
		if (best < 0 || t < best)
			best = t;
		if (best_cpu < 0 || cpu < best_cpu)
			best_cpu = cpu;
	}
	printf("  %-28s %d worker%s %8.1f ms  %5.2f GB/s  cpu %7.1f ms  (load %.1f)\n", what, workers,
	       workers > 1 ? "s" : " ", best / 1e3, ((double)mib * 1048576) / (best * 1e3), best_cpu / 1e3, loadavg());
	fflush(stdout);
	return best;
}

static int one(int mib, int gens, int runs, int workers)
{
	struct eng_dump_opts dopts = { 0 };
	struct eng_track_stats st;
	char ctr[128], store[128], plain[128];
	uint64_t first_sum = 0, last_sum = 0, plain_sum;
	uint32_t first = 0, last = 0;
	struct eng_track *tr;
	int ret = 0;
	pid_t pid;

	snprintf(ctr, sizeof(ctr), "%s/counter", workdir);
	snprintf(store, sizeof(store), "%s/store-%d", workdir, mib);
	snprintf(plain, sizeof(plain), "%s/plain-%d", workdir, mib);
	unlink(ctr);
	pid = fork();
	if (!pid)
		victim(mib, ctr);
	if (pid < 0 || wait_round(pid, ctr, 0))
		return 1;
	if (eng_track_open(pid, store, NULL, &tr)) {
		fprintf(stderr, "eng_track_open: %s\n", eng_last_error());
		bench_kill_wait(pid);
		return 1;
	}
	for (int i = 0; i <= gens && !ret; i++) {
		if (i) {
			kill(pid, SIGUSR1);
			if (wait_round(pid, ctr, i)) {
				fprintf(stderr, "the victim died\n");
				ret = 1;
				break;
			}
		}
		if (eng_track_checkpoint(tr, NULL, &st)) {
			fprintf(stderr, "checkpoint: %s\n", eng_last_error());
			ret = 1;
		}
		if (!ret && i == 0) {
			first = st.generation;
			first_sum = digest(pid, mib);
		}
		last = st.generation;
	}
	eng_track_close(tr);
	last_sum = digest(pid, mib);
	/* A plain image directory of the same state. */
	dopts.leave_running = true;
	if (!ret && eng_dump(pid, plain, &dopts, NULL)) {
		fprintf(stderr, "dump: %s\n", eng_last_error());
		ret = 1;
	}
	plain_sum = last_sum;
	bench_kill_wait(pid);
	if (ret)
		goto out;
	printf("%d MiB (generation %u is the first, %u the newest of %d):\n", mib, first, last, gens + 1);
	for (int k = 0; k < 2; k++) {
		int nw = k ? workers : 1;

		if (k && workers == 1)
			break;
		ret |= time_restore("store, first generation", store, first, mib, first_sum, runs, nw) < 0;
		ret |= time_restore("store, newest generation", store, last, mib, last_sum, runs, nw) < 0;
		ret |= time_restore("plain image directory", plain, 0, mib, plain_sum, runs, nw) < 0;
	}
out:
	if (getenv("HACD_BENCH_KEEP")) {
		printf("kept %s and %s\n", store, plain);
		return ret;
	}
	bench_rmrf(store);
	bench_rmrf(plain);
	return ret;
}

int main(int argc, char **argv)
{
	static const int sizes[] = { 512, 2048 };
	int runs = getenv("HACD_BENCH_RUNS") ? atoi(getenv("HACD_BENCH_RUNS")) : 3;
	int gens = getenv("HACD_BENCH_GENS") ? atoi(getenv("HACD_BENCH_GENS")) : 10;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int ret = 0, a = 1, workers = cpus > 8 ? 8 : cpus < 1 ? 1 : (int)cpus;

	if (argc > 1 && !strcmp(argv[1], "-v")) {
		eng_set_log(NULL, ENG_LOG_DEBUG, NULL);
		a++;
	}
	if (geteuid()) {
		fprintf(stderr, "usage (as root): bench_restore [-v] [MIB...]\n");
		return 64;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(workdir, sizeof(workdir), "/var/tmp/hacd-bench-XXXXXX");
	if (!mkdtemp(workdir))
		return 1;
	printf("memcpy %.1f GB/s, %ld CPUs online, load %.1f\n", bench_memcpy_gbps(), sysconf(_SC_NPROCESSORS_ONLN),
	       loadavg());
	for (int s = 0; s < (argc > a ? argc - a : 2) && !ret; s++)
		ret = one(argc > a ? atoi(argv[a + s]) : sizes[s], gens, runs < 1 ? 1 : runs, workers);
	if (!getenv("HACD_BENCH_KEEP"))
		bench_rmrf(workdir);
	return ret;
}
