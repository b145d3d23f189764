/*
 * A victim for incremental checkpoints (issue 5): it changes its memory in every way a
 * tracker must follow, and records in its own memory which version of each page it
 * wrote, so that a process restored from ANY generation can tell whether every page is
 * as it was at that generation's freeze.
 *
 *   writers (2 threads)  N MiB (argv[1]) of pages; thread k stamps the pages p with
 *                        p % 2 == k, version v in every word: v << 24 | (p + 1), at a
 *                        known rate (16 pages, then 1 ms of sleep), publishing ver[p] = v
 *                        after the page is whole. Pages chosen pseudo-randomly.
 *   mapper               a table of 8 small regions: mmap + fill, mremap (grow, often
 *                        moving), munmap, MADV_DONTNEED (must read back as zeros),
 *                        rewrite; each recorded in the table after it is done. Region
 *                        0 is mapped right above the writers' pages when that is free.
 *   thp                  4 MiB of transparent huge pages (MADV_HUGEPAGE): each 2 MiB
 *                        half in turn filled whole, or dropped whole with
 *                        MADV_DONTNEED, which leaves no page table at all there (a
 *                        tracker must see those pages gone: they read back as zeros)
 *   filer                what the dumper may take over from its previous look instead
 *                        of asking again (track.c, mem-dump.c plan_again): a window of
 *                        4 pages mapped MAP_FIXED|MAP_SHARED from memfd A or memfd B
 *                        in turn (same place, size and offset: only the inode tells),
 *                        each stamped through the mapping (the other keeps its stamp,
 *                        read through its fd); a private map of regular file X or Y
 *                        at another fixed place, page 0 written (copy-on-write) and
 *                        page 1 the file's own; fd 100 a pipe or /dev/null in turn;
 *                        the SIGUSR2 handler one of two. Restored, each must be the
 *                        one recorded at that generation's freeze. Only with
 *                        INCR_FILER set in the environment (the incr_* tests).
 *   forker               on SIGUSR1 (the runner sends it between two generations, so
 *                        that no dump catches the short-lived child): fork; the child
 *                        writes to a few pages (its own copies) and exits at once; the
 *                        parent reaps it. Every page it shared is copy-on-write after.
 * After SIGTERM the threads finish what they were doing (a restored process resumes
 * mid-write and completes it), then every page and region is checked against the
 * records: a page the tracker missed holds an older version than recorded, a page it
 * took from a later generation a newer one.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../cr/zdtm.h"

#define NR_REG 8

static uint64_t *mem;
static uint64_t pages;
static uint32_t *ver;		/* version of each page, published after the page */
static uint64_t writes[2];

struct region {
	uint64_t *addr;		/* NULL: none */
	uint64_t npages;
	uint64_t stamp;		/* 0: zero (after MADV_DONTNEED) */
};
static struct region reg[NR_REG];
static volatile uint64_t mapper_ops, forks, thp_ops;

#define HUGE (2ul << 20)
static uint64_t *huge;		/* 2 * HUGE, HUGE-aligned */
static uint64_t huge_stamp[2];	/* 0: dropped */

static void stamp_page(uint64_t *w, uint64_t v)
{
	for (int i = 0; i < 512; i++)
		w[i] = v;
}

static void *writer(void *arg)
{
	uint64_t k = (uintptr_t)arg, x = 0x9e3779b97f4a7c15ull * (k + 1);

	while (!zdtm_stop) {
		for (int i = 0; i < 16; i++) {
			uint64_t p;

			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			p = (x % (pages / 2)) * 2 + k;
			stamp_page(mem + p * 512, (uint64_t)(ver[p] + 1) << 24 | (p + 1));
			__atomic_store_n(&ver[p], ver[p] + 1, __ATOMIC_RELEASE);
			writes[k]++;
		}
		zdtm_sleep_ms(1);
	}
	return NULL;
}

static void fill_region(struct region *r, uint64_t s)
{
	for (uint64_t p = 0; p < r->npages; p++)
		stamp_page(r->addr + p * 512, s << 32 | p);
	r->stamp = s;
}

static void *mapper(void *arg)
{
	uint64_t s = 1;

	(void)arg;
	while (!zdtm_stop) {
		struct region *r = &reg[mapper_ops % NR_REG];
		int op = (mapper_ops / NR_REG + mapper_ops) % 5;

		if (!r->addr || op == 0) {
			if (r->addr)
				munmap(r->addr, r->npages * 4096);
			r->addr = NULL;
			r->npages = 1 + mapper_ops % 13;
			/* Region 0 right above the writers' pages when that is free: while no
			 * tracker holds us it merges into their mapping, which the next tracker
			 * registers whole; replacing it then pulls the ground from under a scan
			 * of that mapping half-way (track.c, lose_range). */
			r->addr = mmap(r == reg ? (void *)(mem + pages * 512) : NULL, r->npages * 4096,
				       PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (r->addr == MAP_FAILED)
				zdtm_fail("mmap: %m");
			fill_region(r, s++);
		} else if (op == 1) {
			/* Grow; a neighbour usually makes it move. */
			void *n = mremap(r->addr, r->npages * 4096, (r->npages + 3) * 4096, MREMAP_MAYMOVE);

			if (n == MAP_FAILED)
				zdtm_fail("mremap: %m");
			r->addr = n;
			r->npages += 3;
			fill_region(r, s++);
		} else if (op == 2) {
			madvise(r->addr, r->npages * 4096, MADV_DONTNEED);
			r->stamp = 0;
		} else if (op == 3) {
			munmap(r->addr, r->npages * 4096);
			r->addr = NULL;
		} else {
			fill_region(r, s++);
		}
		mapper_ops++;
		zdtm_sleep_ms(3);
	}
	return NULL;
}

static void *thp(void *arg)
{
	uint64_t s = 1;

	(void)arg;
	while (!zdtm_stop) {
		int half = s % 2;
		uint64_t *h = huge + half * (HUGE / 8);

		if ((s / 2) % 2) {
			if (madvise(h, HUGE, MADV_DONTNEED))
				zdtm_fail("madvise(MADV_DONTNEED): %m");
			huge_stamp[half] = 0;
		} else {
			for (uint64_t p = 0; p < HUGE / 4096; p++)
				stamp_page(h + p * 512, s << 32 | p);
			huge_stamp[half] = s;
		}
		s++;
		thp_ops++;
		zdtm_sleep_ms(20);	/* each half changes about once a generation */
	}
	return NULL;
}

#define WIN_PAGES 4
#define FDN 100
static int mfd[2];			/* memfds A and B */
static char fpath[2][64];		/* files X and Y, in the runner's work directory */
static int ffd[2];
static uint8_t *win, *pwin;		/* the shared window, the private file window */
static volatile uint64_t win_stamp[2], pwin_stamp;
static volatile int win_which, pwin_which, fdn_pipe, usr2_which;
static volatile uint64_t filer_ops;

static void on_usr2_a(int sig) { (void)sig; }
static void on_usr2_b(int sig) { (void)sig; }

static void map_win(int which, uint64_t s)
{
	if (mmap(win, WIN_PAGES * 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, mfd[which], 0) == MAP_FAILED)
		zdtm_fail("mmap of memfd %d: %m", which);
	for (int i = 0; i < WIN_PAGES * 4096 / 8; i++)
		((uint64_t *)win)[i] = s;
	win_stamp[which] = s;
	win_which = which;
}

static void map_pwin(int which, uint64_t s)
{
	if (mmap(pwin, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, ffd[which], 0) == MAP_FAILED)
		zdtm_fail("mmap of %s: %m", fpath[which]);
	for (int i = 0; i < 4096 / 8; i++)
		((uint64_t *)pwin)[i] = s;
	pwin_stamp = s;
	pwin_which = which;
}

static void *filer(void *arg)
{
	uint64_t s = 1;

	(void)arg;
	while (!zdtm_stop) {
		switch (filer_ops % 4) {
		case 0:
			map_win(!win_which, s++ << 8 | 0xa);
			break;
		case 1:
			map_pwin(!pwin_which, s++ << 8 | 0xb);
			break;
		case 2: {
			int p[2], now = !fdn_pipe;

			if (now) {
				if (pipe(p) || dup2(p[0], FDN) < 0)
					zdtm_fail("pipe onto fd %d: %m", FDN);
				close(p[0]), close(p[1]);
			} else {
				int n = open("/dev/null", O_RDONLY);

				if (n < 0 || dup2(n, FDN) < 0)
					zdtm_fail("/dev/null onto fd %d: %m", FDN);
				close(n);
			}
			fdn_pipe = now;
			break;
		}
		default: {
			struct sigaction sa = { .sa_handler = usr2_which ? on_usr2_a : on_usr2_b };

			if (sigaction(SIGUSR2, &sa, NULL))
				zdtm_fail("sigaction: %m");
			usr2_which = !usr2_which;
		}
		}
		filer_ops++;
		zdtm_sleep_ms(7);
	}
	return NULL;
}

static void filer_setup(void)
{
	uint8_t page[4096];

	for (int k = 0; k < 2; k++) {
		mfd[k] = memfd_create(k ? "incr-b" : "incr-a", 0);
		if (mfd[k] < 0 || ftruncate(mfd[k], WIN_PAGES * 4096))
			zdtm_fail("memfd: %m");
		snprintf(fpath[k], sizeof(fpath[k]), "incr-file-%d-%c", (int)getpid(), k ? 'Y' : 'X');
		ffd[k] = open(fpath[k], O_RDWR | O_CREAT | O_TRUNC, 0600);
		memset(page, k ? 'Y' : 'X', sizeof(page));
		if (ffd[k] < 0 || write(ffd[k], page, 4096) != 4096 || write(ffd[k], page, 4096) != 4096)
			zdtm_fail("%s: %m", fpath[k]);
	}
	win = mmap(NULL, WIN_PAGES * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pwin = mmap(NULL, 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (win == MAP_FAILED || pwin == MAP_FAILED)
		zdtm_fail("mmap: %m");
	map_win(1, 1), map_win(0, 2);
	map_pwin(0, 3);
	{
		int n = open("/dev/null", O_RDONLY);

		if (n < 0 || dup2(n, FDN) < 0)
			zdtm_fail("/dev/null onto fd %d: %m", FDN);
		close(n);
	}
	signal(SIGUSR2, on_usr2_a);
	usr2_which = 0;
}

static void filer_check(void)
{
	struct sigaction sa;
	struct stat st;
	uint64_t w;

	for (int i = 0; i < WIN_PAGES * 4096 / 8; i++)
		if (((uint64_t *)win)[i] != win_stamp[win_which])
			zdtm_fail("window word %d: %#lx, memfd %c recorded with %#lx", i,
				  (unsigned long)((uint64_t *)win)[i], 'A' + win_which,
				  (unsigned long)win_stamp[win_which]);
	if (pread(mfd[!win_which], &w, 8, 4096) != 8 || w != win_stamp[!win_which])
		zdtm_fail("memfd %c (unmapped) holds %#lx, recorded %#lx", 'A' + !win_which, (unsigned long)w,
			  (unsigned long)win_stamp[!win_which]);
	if (((uint64_t *)pwin)[5] != pwin_stamp)
		zdtm_fail("private file window page 0: %#lx, recorded %#lx", (unsigned long)((uint64_t *)pwin)[5],
			  (unsigned long)pwin_stamp);
	if (pwin[4096 + 17] != (pwin_which ? 'Y' : 'X'))
		zdtm_fail("private file window page 1: '%c', the file mapped is %s", pwin[4096 + 17],
			  fpath[pwin_which]);
	if (fstat(FDN, &st) || (fdn_pipe ? !S_ISFIFO(st.st_mode) : !S_ISCHR(st.st_mode)))
		zdtm_fail("fd %d is not the %s recorded", FDN, fdn_pipe ? "pipe" : "/dev/null");
	if (sigaction(SIGUSR2, NULL, &sa) || sa.sa_handler != (usr2_which ? on_usr2_b : on_usr2_a))
		zdtm_fail("SIGUSR2 handler %p is not the one recorded", (void *)sa.sa_handler);
}

static void *idle(void *arg)
{
	(void)arg;
	while (!zdtm_stop)
		zdtm_sleep_ms(10);
	return NULL;
}

static void *forker(void *arg)
{
	struct timespec ts = { 0, 100000000 };
	sigset_t usr1;

	(void)arg;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	while (!zdtm_stop) {
		pid_t c;

		if (sigtimedwait(&usr1, NULL, &ts) != SIGUSR1)
			continue;
		c = fork();
		if (c == 0) {
			for (uint64_t p = 0; p < pages && p < 64; p++)
				mem[p * 512 + 7] = 0xdead;	/* the child's own copies */
			_exit(0);
		}
		if (c > 0) {
			while (waitpid(c, NULL, 0) < 0 && errno == EINTR)
				;
			forks++;
		}
	}
	return NULL;
}

static void check(void)
{
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t want = (uint64_t)ver[p] << 24 | (p + 1);

		for (int i = 0; i < 512; i++)
			if (mem[p * 512 + i] != want)
				zdtm_fail("page %lu word %d: %#lx, recorded version %u", (unsigned long)p, i,
					  (unsigned long)mem[p * 512 + i], ver[p]);
	}
	for (int k = 0; k < NR_REG; k++) {
		const struct region *r = &reg[k];

		for (uint64_t p = 0; r->addr && p < r->npages; p++)
			for (int i = 0; i < 512; i++) {
				uint64_t want = r->stamp ? r->stamp << 32 | p : 0;

				if (r->addr[p * 512 + i] != want)
					zdtm_fail("region %d (%p, %lu pages) page %lu word %d: %#lx, expected %#lx",
						  k, (void *)r->addr, (unsigned long)r->npages, (unsigned long)p, i,
						  (unsigned long)r->addr[p * 512 + i], (unsigned long)want);
			}
	}
	for (int half = 0; half < 2; half++)
		for (uint64_t p = 0; p < HUGE / 4096; p++)
			for (int i = 0; i < 512; i++) {
				uint64_t want = huge_stamp[half] ? huge_stamp[half] << 32 | p : 0;
				uint64_t got = huge[half * (HUGE / 8) + p * 512 + i];

				if (got != want)
					zdtm_fail("huge half %d page %lu word %d: %#lx, expected %#lx", half,
						  (unsigned long)p, i, (unsigned long)got, (unsigned long)want);
			}
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 16;
	pthread_t th[6];
	uint8_t *h;
	sigset_t usr1;

	zdtm_init();
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);	/* taken by the forker's sigtimedwait */
	pages = (mib << 20) / 4096;
	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ver = mmap(NULL, pages * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	h = mmap(NULL, 3 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED || ver == MAP_FAILED || h == MAP_FAILED)
		zdtm_fail("memory: %m");
	huge = (uint64_t *)(((uintptr_t)h + HUGE - 1) & ~(HUGE - 1));
	madvise(huge, 2 * HUGE, MADV_HUGEPAGE);	/* a kernel without THP: plain pages */
	for (uint64_t p = 0; p < pages; p++)
		stamp_page(mem + p * 512, p + 1);
	pthread_create(&th[0], NULL, writer, (void *)0);
	pthread_create(&th[1], NULL, writer, (void *)1);
	pthread_create(&th[2], NULL, mapper, NULL);
	pthread_create(&th[3], NULL, forker, NULL);
	pthread_create(&th[4], NULL, thp, NULL);
	/* the incr_* tests of tests/dump set it */
	if (getenv("INCR_FILER"))
		filer_setup();
	pthread_create(&th[5], NULL, getenv("INCR_FILER") ? filer : idle, NULL);
	zdtm_ready("mem=%p pages=%lu", (void *)mem, (unsigned long)pages);
	for (int i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
	check();
	if (win)
		filer_check();
	printf("pass: %lu+%lu page writes, %lu mapping changes, %lu huge fills and drops, %lu forks, "
	       "%lu file, fd and handler changes\n", (unsigned long)writes[0], (unsigned long)writes[1],
	       (unsigned long)mapper_ops, (unsigned long)thp_ops, (unsigned long)forks, (unsigned long)filer_ops);
	zdtm_pass();
}
