/*
 * A victim for two ways a tracker could keep a page it should have copied again, each
 * made to happen at the worst moment on purpose: the runner's tracker signals it
 * (SIGUSR2, HA_TEST_TRACK_LIVE_SIGNAL: engine/track.c live_hook) after planning a
 * generation's live rounds and before scanning; the victim changes its memory, records
 * what it did, and stops itself until the tracker goes on.
 *
 *   replace  one anonymous mapping of 80 pages, which the tracker registered whole in
 *            the first generation; on the signal the lower 64 pages are written again
 *            (version 2) and the upper 16 replaced with a fresh mapping (MAP_FIXED),
 *            written too. The tracker's plan still has one mapping: its scan re-arms
 *            the lower pages it finds written, then fails where the new mapping starts
 *            (not registered). Those pages must not be taken as unchanged.
 *   cowdrop  a private map of a 2-page file, page 0 written (copy-on-write) and armed by
 *            the first generation; on the signal page 0 is dropped with MADV_DONTNEED:
 *            the process reads the file's page there again, and the kernel leaves a
 *            write-protect marker that reads as "swapped, not written".
 * On SIGTERM every page is checked against the record: a page from before the signal
 * where the record says after is what a restored generation must never give.
 */
#include <fcntl.h>
#include <sys/mman.h>

#include "../cr/zdtm.h"

#define PG 4096ul
#define LOWER 64
#define UPPER 16
#define PM_SWAP (1ull << 62)
#define PM_PRESENT (1ull << 63)
#define PM_UFFD_WP (1ull << 57)

static uint8_t *area;			/* replace: LOWER + UPPER pages */
static volatile uint64_t lower_ver = 1, upper_ver = 1;
static uint8_t *fmap;			/* cowdrop: the file's 2 pages, private */
static volatile int dropped;
static char fpath[64];

static void stamp(uint8_t *p, uint64_t v)
{
	for (size_t i = 0; i < PG / 8; i++)
		((uint64_t *)p)[i] = v;
}

static uint64_t pagemap(void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0 || pread(fd, &e, 8, (uintptr_t)addr / PG * 8) != 8)
		zdtm_fail("/proc/self/pagemap: %m");
	close(fd);
	return e;
}

/* The mapping holding addr, as smaps shows it: bounds and whether "uw" (uffd write-protect) is in VmFlags. */
static void smaps_of(void *addr, uintptr_t *start, uintptr_t *end, int *uf)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	int in = 0;

	if (!f)
		zdtm_fail("/proc/self/smaps: %m");
	*uf = -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {	/* a mapping's first line */
			in = s <= (uintptr_t)addr && (uintptr_t)addr < e;
			if (in)
				*start = s, *end = e;
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			*uf = strstr(line, " uw") != NULL;
			break;
		}
	}
	fclose(f);
	if (*uf < 0)
		zdtm_fail("no mapping holds %p in smaps", addr);
}

static void do_replace(void)
{
	uintptr_t s, e;
	int uf;

	/* What makes the tracker's scan fail half-way: one registered mapping. */
	smaps_of(area, &s, &e, &uf);
	if (!uf || s > (uintptr_t)area || e < (uintptr_t)area + (LOWER + UPPER) * PG)
		zdtm_fail("%p: the tracker should have registered the %lu pages as one mapping: %#lx-%#lx%s",
			  (void *)area, (unsigned long)(LOWER + UPPER), (unsigned long)s, (unsigned long)e,
			  uf ? "" : ", not registered");
	for (uint64_t p = 0; p < LOWER; p++)
		stamp(area + p * PG, 2ull << 32 | p);
	lower_ver = 2;
	if (mmap(area + LOWER * PG, UPPER * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		zdtm_fail("mmap MAP_FIXED: %m");
	for (uint64_t p = 0; p < UPPER; p++)
		stamp(area + (LOWER + p) * PG, 3ull << 32 | p);
	upper_ver = 3;
}

static void do_cowdrop(void)
{
	uint64_t e = pagemap(fmap);

	/* What leaves the marker: a copied-on-write page the tracker write-protected. */
	if ((e & (PM_PRESENT | PM_UFFD_WP)) != (PM_PRESENT | PM_UFFD_WP))
		zdtm_fail("page 0 of the private file map should be present and write-protected by the "
			  "tracker: pagemap %#llx", (unsigned long long)e);
	if (madvise(fmap, PG, MADV_DONTNEED))
		zdtm_fail("madvise(MADV_DONTNEED): %m");
	dropped = 1;
	e = pagemap(fmap);
	printf("page 0 after MADV_DONTNEED: pagemap %#llx%s\n", (unsigned long long)e,
	       (e & PM_SWAP) && (e & PM_UFFD_WP) ? " (a write-protect marker)" : "");
	fflush(stdout);
}

static void check(int replace)
{
	if (replace) {
		for (uint64_t p = 0; p < LOWER + UPPER; p++) {
			uint64_t want = p < LOWER ? lower_ver << 32 | p : upper_ver << 32 | (p - LOWER);

			for (size_t i = 0; i < PG / 8; i++)
				if (((uint64_t *)(area + p * PG))[i] != want)
					zdtm_fail("page %lu word %zu: %#lx, recorded %#lx", (unsigned long)p, i,
						  (unsigned long)((uint64_t *)(area + p * PG))[i], (unsigned long)want);
		}
		return;
	}
	for (size_t i = 0; i < 2 * PG; i++) {
		uint8_t want = i < PG && !dropped ? 0x5a : 'F';

		if (fmap[i] != want)
			zdtm_fail("private file map byte %zu: %#x, expected %#x (%s)", i, fmap[i], want,
				  dropped ? "dropped: the file's page" : "the page written");
	}
}

int main(int argc, char **argv)
{
	int replace = argc > 1 && !strcmp(argv[1], "replace");
	struct timespec ts = { 0, 100000000 };
	sigset_t usr2;

	if (argc < 2 || (!replace && strcmp(argv[1], "cowdrop")))
		zdtm_fail("usage: victim_lost replace|cowdrop");
	zdtm_init();
	sigemptyset(&usr2);
	sigaddset(&usr2, SIGUSR2);
	sigprocmask(SIG_BLOCK, &usr2, NULL);
	if (replace) {
		area = mmap(NULL, (LOWER + UPPER) * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (area == MAP_FAILED)
			zdtm_fail("mmap: %m");
		for (uint64_t p = 0; p < LOWER + UPPER; p++)
			stamp(area + p * PG, 1ull << 32 | (p < LOWER ? p : p - LOWER));
	} else {
		uint8_t page[PG];
		int fd;

		snprintf(fpath, sizeof(fpath), "lost-file-%d", (int)getpid());
		fd = open(fpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
		memset(page, 'F', sizeof(page));
		if (fd < 0 || write(fd, page, PG) != PG || write(fd, page, PG) != PG)
			zdtm_fail("%s: %m", fpath);
		fmap = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		close(fd);
		if (fmap == MAP_FAILED)
			zdtm_fail("mmap of %s: %m", fpath);
		memset(fmap, 0x5a, PG);
	}
	zdtm_ready("mode=%s", argv[1]);
	while (!zdtm_stop) {
		if (sigtimedwait(&usr2, NULL, &ts) != SIGUSR2)
			continue;
		if (replace)
			do_replace();
		else
			do_cowdrop();
		/* the tracker waits for this stop, then lets us go on */
		kill(zdtm_getpid(), SIGSTOP);
	}
	check(replace);
	printf("pass: %s\n", replace ? (lower_ver == 2 ? "lower pages rewritten, upper replaced" : "untouched")
				     : (dropped ? "page 0 dropped" : "untouched"));
	zdtm_pass();
}
