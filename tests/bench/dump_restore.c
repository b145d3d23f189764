/*
 * Full dump (--leave-running, with pre-copy) and restore of a single-threaded process
 * holding N MiB of random, non-zero anonymous memory: dump time, pause, restore time, image bytes and GB/s, next to
 * this machine's memcpy bandwidth measured in the same run. The restored process checks
 * its memory against a checksum it took before the dump, so a fast wrong restore fails.
 *
 * usage: bench_dump_restore [DIR] [MiB...]     (default /var/tmp, 64 512 2048)
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "bench.h"
#include "ha/engine.h"

static volatile sig_atomic_t check;

static void on_usr1(int sig)
{
	check = 1;
}

/* Fill, checksum, then wait; on SIGUSR1 verify and exit 0 (same) or 1. */
static void victim(size_t mib, int ready)
{
	size_t len = mib << 20;
	uint64_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t x = 0x9e3779b97f4a7c15ull, sum;

	signal(SIGUSR1, on_usr1);
	for (size_t i = 0; i < len / 8; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		m[i] = x | 1;
	}
	sum = XXH3_64bits(m, len);
	/* Only dumpable fds: whatever launched the bench may have given us pipes. The
	 * parent waits for EOF on `ready`, so all are closed before it dumps. */
	{
		int null = open("/dev/null", O_RDWR);

		for (int fd = 0; fd < 3; fd++)
			dup2(null, fd);
		if (write(ready, "r", 1) != 1)
			_exit(2);
		close_range(3, ~0u, 0);
	}
	while (!check)
		pause();
	_exit(XXH3_64bits(m, len) == sum ? 0 : 1);
}

static int run(const char *base, size_t mib, double mc)
{
	/* --leave-running, as the agent dumps: frozen_us is then the service's real pause,
	 * not the time to write and fsync images of a process that is killed anyway. */
	struct eng_dump_opts dopts = { .leave_running = true };
	struct eng_restore_opts ropts = { 0 };
	struct eng_dump_stats st = { 0 };
	char dir[4096], cmd[4200];
	int p[2], status;
	double t0, t_dump, t_rst;
	pid_t pid, rpid;
	char c;

	snprintf(dir, sizeof(dir), "%s/hacd-bench-%zu.%d", base, mib, getpid());
	if (pipe(p))
		return 1;
	pid = fork();
	if (!pid) {
		close(p[0]);
		victim(mib, p[1]);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1 || read(p[0], &c, 1) != 0)
		return fprintf(stderr, "victim did not start\n"), 1;
	close(p[0]);
	t0 = bench_now_us();
	if (eng_dump(pid, dir, &dopts, &st))
		return fprintf(stderr, "dump: %s\n", eng_last_error()), 1;
	t_dump = bench_now_us() - t0;
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	/* Drop the page cache's copy? No: a standby restores from a file it just wrote too. */
	t0 = bench_now_us();
	if (eng_restore(dir, &ropts, &rpid))
		return fprintf(stderr, "restore: %s\n", eng_last_error()), 1;
	t_rst = bench_now_us() - t0;
	kill(rpid, SIGUSR1);
	waitpid(rpid, &status, 0);
	printf("%5zu MiB  dump %7.1f ms  paused %5.1f ms (+ %4.1f ms arming pre-copy)  restore %7.1f ms  images %6.1f MiB  "
	       "dump %.2f GB/s  restore %.2f GB/s  (memcpy %.1f GB/s)  %s\n",
	       mib, t_dump / 1e3, st.frozen_us / 1e3, st.arm_us / 1e3, t_rst / 1e3, st.bytes_written / 1048576.0,
	       (mib << 20) / t_dump / 1e3, (mib << 20) / t_rst / 1e3, mc,
	       WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "memory verified" : "MEMORY WRONG");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "could not remove %s\n", dir);
	return !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(int argc, char **argv)
{
	static const size_t defaults[] = { 64, 512, 2048 };
	const char *dir = argc > 1 ? argv[1] : "/var/tmp";
	double mc = bench_memcpy_gbps();
	int ret = 0;

	eng_set_log(NULL, ENG_LOG_WARN, NULL);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	printf("full dump/restore, one thread, random non-zero anonymous memory, images in %s\n", dir);
	if (argc > 2)
		for (int i = 2; i < argc; i++)
			ret |= run(dir, strtoul(argv[i], NULL, 0), mc);
	else
		for (size_t i = 0; i < 3; i++)
			ret |= run(dir, defaults[i], mc);
	return ret;
}
