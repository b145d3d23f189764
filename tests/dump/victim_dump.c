/*
 * The dump victim: four threads computing checksum chains (one on its own sigaltstack),
 * a buffer with a known pattern (one page of it all zero), a SIGUSR1 handler, a POSIX
 * timer, queued signals (one for the process, one for the main thread), and fds of
 * every supported kind: a file at a known position plus a dup of it, an O_APPEND file,
 * a file deleted while open, a directory, /dev/null and /dev/urandom. And mappings of
 * every kind whose pages the dump must store: shared anonymous memory, a private map
 * of a deleted file (one page COWed), a shared map of a memfd whose fd is closed, and
 * an anonymous page made PROT_NONE after it was written. With --socket or --tty it
 * also holds an unsupported fd, for the refusal test.
 *
 * The runner reads the facts from the ready line, dumps, checks the images against
 * them, then sends SIGTERM: the victim verifies that nothing changed under it (threads
 * kept computing correctly, memory, positions, handler, timer, queued signals) and
 * exits 0, or 1 with the reason on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>

#include "../cr/zdtm.h"

#define NR_THREADS 4
#define BUF_PAGES 1027
#define ZERO_PAGE 100
#define FILE_POS 7
#define GHOST "ghost-contents-of-a-deleted-file"

static struct zdtm_work works[NR_THREADS];
static int started;
static uint8_t *buf;
static char sas_stack[65536];
static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	usr1++;
}

static uint8_t pattern(size_t i)
{
	return i / 4096 == ZERO_PAGE ? 0 : (uint8_t)((i * 2654435761u) >> 13) | 1;
}

/* Contents of the extra mappings: region `r`, byte i (never zero). */
static uint8_t pattern2(int r, size_t i)
{
	return (uint8_t)(((i + r * 7919u) * 2654435761u) >> 13) | 1;
}

struct region {
	const char *name;
	uint8_t *p;
	size_t pages;
	int seed;		/* page 0 of "delmap" has seed 3: its COWed copy */
};

static struct region regions[] = {
	{ "shm", NULL, 4, 1 }, { "delmap", NULL, 3, 2 }, { "memfdmap", NULL, 2, 4 },
	{ "protnone", NULL, 1, 5 },
};

static uint8_t region_byte(const struct region *r, size_t i)
{
	return pattern2(!strcmp(r->name, "delmap") && i < 4096 ? 3 : r->seed, i);
}

static void *map_file(int fd, size_t len, int flags)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		zdtm_fail("mmap: %m");
	return p;
}

static void make_regions(const char *dir)
{
	char path[512];
	uint8_t page[4096];
	int fd;

	regions[0].p = map_file(-1, 4 * 4096, MAP_SHARED | MAP_ANONYMOUS);
	for (size_t i = 0; i < 4 * 4096; i++)
		regions[0].p[i] = pattern2(1, i);
	snprintf(path, sizeof(path), "%s/delmap", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	for (size_t pg = 0; fd >= 0 && pg < 3; pg++) {
		for (size_t i = 0; i < 4096; i++)
			page[i] = pattern2(2, pg * 4096 + i);
		if (write(fd, page, 4096) != 4096)
			zdtm_fail("write %s: %m", path);
	}
	if (fd < 0)
		zdtm_fail("%s: %m", path);
	regions[1].p = map_file(fd, 3 * 4096, MAP_PRIVATE);
	unlink(path);
	close(fd);
	for (size_t i = 0; i < 4096; i++)	/* COW page 0 only */
		regions[1].p[i] = pattern2(3, i);
	fd = memfd_create("dumpme", 0);
	if (fd < 0 || ftruncate(fd, 2 * 4096))
		zdtm_fail("memfd: %m");
	regions[2].p = map_file(fd, 2 * 4096, MAP_SHARED);
	close(fd);
	for (size_t i = 0; i < 2 * 4096; i++)
		regions[2].p[i] = pattern2(4, i);
	regions[3].p = map_file(-1, 4096, MAP_PRIVATE | MAP_ANONYMOUS);
	for (size_t i = 0; i < 4096; i++)
		regions[3].p[i] = pattern2(5, i);
	mprotect(regions[3].p, 4096, PROT_NONE);
}

static void check_regions(void)
{
	mprotect(regions[3].p, 4096, PROT_READ);
	for (size_t r = 0; r < sizeof(regions) / sizeof(regions[0]); r++)
		for (size_t i = 0; i < regions[r].pages * 4096; i++)
			if (regions[r].p[i] != region_byte(&regions[r], i))
				zdtm_fail("%s: byte %zu changed", regions[r].name, i);
}

static void *worker(void *arg)
{
	struct zdtm_work *w = arg;
	stack_t ss = { .ss_sp = sas_stack, .ss_size = sizeof(sas_stack) }, old;

	w->tid = syscall(SYS_gettid);
	if (w == &works[1] && sigaltstack(&ss, &old))
		zdtm_fail("sigaltstack: %m");
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	zdtm_work_run(w, (uint64_t)(w - works) + 1);
	/* Put back what the thread had, for whoever frees it at thread exit. */
	if (w == &works[1] && sigaltstack(&old, NULL))
		zdtm_fail("sigaltstack: %m");
	return NULL;
}

static int open_file(const char *dir, const char *name, int flags, const char *content)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, flags | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content))
		zdtm_fail("%s: %m", path);
	return fd;
}

/* An fd the dump must refuse: a netlink socket (--socket), or a pseudo-terminal
 * master (--tty) with its slave in `other`. */
static int bad_fd(const char *mode, int *other)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK };
	int m, s;

	*other = -1;
	if (!strcmp(mode, "--tty")) {
		m = posix_openpt(O_RDWR | O_NOCTTY);
		if (m < 0 || grantpt(m) || unlockpt(m) || (*other = open(ptsname(m), O_RDWR | O_NOCTTY)) < 0)
			zdtm_fail("pty: %m");
		return m;
	}
	s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)))
		zdtm_fail("socket: %m");
	return s;
}

static void check_bad_fd(const char *mode, int fd, int other)
{
	char c = 0;

	if (!strcmp(mode, "--tty")) {
		/* A whole line: the slave side is in canonical mode. */
		if (write(fd, "x\n", 2) != 2 || read(other, &c, 1) != 1 || c != 'x')
			zdtm_fail("the pty no longer works");
	} else {
		struct sockaddr_nl a;
		socklen_t len = sizeof(a);

		if (getsockname(fd, (struct sockaddr *)&a, &len) || a.nl_family != AF_NETLINK)
			zdtm_fail("the socket no longer works");
	}
}

static void check_all(int file_fd, int ghost_fd, timer_t tm)
{
	struct itimerspec its;
	sigset_t pend;
	char g[64] = { 0 };

	zdtm_work_check(works, NR_THREADS);
	for (size_t i = 0; i < BUF_PAGES * 4096ul; i++)
		if (buf[i] != pattern(i))
			zdtm_fail("buffer byte %zu changed", i);
	if (lseek(file_fd, 0, SEEK_CUR) != FILE_POS)
		zdtm_fail("file position moved");
	if (pread(ghost_fd, g, sizeof(g) - 1, 0) != (ssize_t)strlen(GHOST) || strcmp(g, GHOST))
		zdtm_fail("deleted file holds '%s'", g);
	if (timer_gettime(tm, &its) || its.it_value.tv_sec < 100)
		zdtm_fail("the POSIX timer is no longer armed");
	if (sigpending(&pend) || !sigismember(&pend, SIGRTMIN + 1) || !sigismember(&pend, SIGRTMIN + 2))
		zdtm_fail("queued signals are gone");
	raise(SIGUSR1);
	if (usr1 != 1)
		zdtm_fail("SIGUSR1 handler did not run");
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
	struct sigevent sev = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGALRM };
	struct itimerspec its = { .it_value = { 1000, 0 }, .it_interval = { 5, 0 } };
	const char *dir = getenv("HA_WORKDIR"), *mode = argc > 1 ? argv[1] : "";
	pthread_t th[NR_THREADS];
	int file_fd, dup_fd, app_fd, ghost_fd, dir_fd, null_fd, rnd_fd, bad = -1, other = -1;
	union sigval val = { .sival_int = 0x1234 };
	sigset_t block;
	timer_t tm;
	char path[512];

	zdtm_init();
	if (!dir)
		zdtm_fail("HA_WORKDIR is not set");
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, SIGUSR2);
	sigaction(SIGUSR1, &sa, NULL);
	/* Queued signals stay queued: blocked in every thread (they inherit the mask). */
	sigemptyset(&block);
	sigaddset(&block, SIGRTMIN + 1);
	sigaddset(&block, SIGRTMIN + 2);
	sigaddset(&block, SIGALRM);
	sigprocmask(SIG_BLOCK, &block, NULL);
	buf = mmap(NULL, BUF_PAGES * 4096ul, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		zdtm_fail("mmap: %m");
	for (size_t i = 0; i < BUF_PAGES * 4096ul; i++)
		buf[i] = pattern(i);
	file_fd = open_file(dir, "file", O_RDWR, "0123456789abcdef");
	lseek(file_fd, FILE_POS, SEEK_SET);
	dup_fd = dup(file_fd);
	app_fd = open_file(dir, "append", O_WRONLY | O_APPEND, "log\n");
	ghost_fd = open_file(dir, "ghost", O_RDWR, GHOST);
	snprintf(path, sizeof(path), "%s/ghost", dir);
	unlink(path);
	dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	null_fd = open("/dev/null", O_RDWR);
	rnd_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (*mode)
		bad = bad_fd(mode, &other);
	make_regions(dir);
	if (timer_create(CLOCK_MONOTONIC, &sev, &tm) || timer_settime(tm, 0, &its, NULL))
		zdtm_fail("timer: %m");
	if (sigqueue(getpid(), SIGRTMIN + 1, val) ||
	    syscall(SYS_tgkill, getpid(), getpid(), SIGRTMIN + 2))
		zdtm_fail("queueing signals: %m");
	for (int i = 0; i < NR_THREADS; i++)
		pthread_create(&th[i], NULL, worker, &works[i]);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR_THREADS)
		usleep(1000);
	zdtm_ready("threads=%d handler_usr1=%#lx buf=%#lx buf_pages=%d zero_page=%d file_fd=%d dup_fd=%d "
		   "file_pos=%d app_fd=%d ghost_fd=%d ghost=%s dir_fd=%d null_fd=%d rnd_fd=%d bad_fd=%d "
		   "sas_tid=%d sas_sp=%#lx shm=%p delmap=%p memfdmap=%p protnone=%p",
		   NR_THREADS + 1, (unsigned long)on_usr1, (unsigned long)buf, BUF_PAGES, ZERO_PAGE,
		   file_fd, dup_fd, FILE_POS, app_fd, ghost_fd, GHOST, dir_fd, null_fd, rnd_fd, bad,
		   works[1].tid, (unsigned long)sas_stack, regions[0].p, regions[1].p, regions[2].p,
		   regions[3].p);
	for (int i = 0; i < NR_THREADS; i++)
		pthread_join(th[i], NULL);
	check_all(file_fd, ghost_fd, tm);
	check_regions();
	if (*mode)
		check_bad_fd(mode, bad, other);
	zdtm_pass();
}
