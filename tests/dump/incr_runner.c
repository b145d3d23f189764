/*
 * Incremental checkpoints on a real process (issue 5), through the engine API and
 * hactl. Every mode checks the restored processes' own verdicts (victim_incr verifies
 * every page against what it recorded).
 *
 *   track VICTIM MIB N MS [METHOD]
 *          N generations, one every MS ms, of victim_incr while its threads write,
 *          map, remap, unmap, zap and fork; then the victim is killed and a spread of
 *          10 generations (first and last included) is verified and restored, each
 *          passing its own check.
 *   crash HACTL VICTIM MIB
 *          `hactl dump --track` killed with SIGKILL at pseudo-random points, 10 times;
 *          after each, every complete generation verifies; the next writer removes
 *          the incomplete one; finally the newest and the oldest restore and pass.
 *   corrupt HACTL VICTIM MIB
 *          one byte of a pack flipped: verify fails naming the generation, the pack
 *          and the offset; restore of that generation fails and leaves no process;
 *          generations not using that blob still restore.
 *   hook VICTIM_LOST replace|cowdrop
 *          victim_lost changes its memory between the plan and the scans of a live
 *          round (see there); both generations restore and pass.
 *   adopt VICTIM MIB K N MS
 *          a restored generation tracked on from itself (see mode_adopt)
 *   fill VICTIM MIB N
 *          N generations restored with several fill workers and with one, then a
 *          damaged blob (see mode_fill).
 *   truncate VICTIM MIB
 *          a plain image's pages file truncated before and during restores (see
 *          mode_truncate).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ha/engine.h"
#include "pagemap.pb-c.h"
#include "runner.h"

static char workdir[64], victim_log[96];

/* /dev/null in, victim.log out, no input pipe (a pipe would be dumped with it); its
 * cwd is the work directory, where its files (victim_incr.c, filer) go. */
static pid_t start_victim(char *const argv[])
{
	struct victim_opts o = { .dir = workdir, .log = victim_log, .no_input = 1, .argv = argv };
	struct victim v;

	return victim_start_opts(argv[0], &o, &v) ? -1 : v.pid;
}

static void kill_wait(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* The root of a --pidns restore, as we see it: the init's child. */
static pid_t root_of(pid_t init)
{
	char path[64];
	int pid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", init, init);
	f = fopen(path, "re");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = -1;
		fclose(f);
	}
	return pid;
}

/* Wait for a restored tree's init after SIGTERM to its root: the victim's verdict. */
static int finish_restored(pid_t init, pid_t root, const char *what)
{
	int st;

	if (kill(root, SIGTERM)) {
		kill_wait(init);
		return fail("%s: the restored victim is gone before its check", what);
	}
	for (int i = 0; i < 20000; i++) {
		if (waitpid(init, &st, WNOHANG) == init) {
			if (WIFEXITED(st) && !WEXITSTATUS(st))
				return 0;
			cr_show("victim log", victim_log);
			return fail("%s: the restored victim failed its check (status %#x)", what, st);
		}
		usleep(1000);
	}
	kill_wait(init);
	return fail("%s: the restored victim did not finish", what);
}

/*
 * Restore generation gen of store, let it run, ask it to finish: its verdict. Into a new
 * pid namespace: pid_max is 32768 here and the machine busy, so the dumped pids (of a
 * forked child too, since dumps take the whole tree) may well be taken meanwhile.
 */
static int restore_and_check_with(const char *store, uint32_t gen, int workers)
{
	struct eng_restore_opts o = { .generation = gen, .pidns = true, .fill_workers = workers };
	pid_t init, root, w;
	char what[32];
	int st;

	/* eng_restore waits for any child: orphans left to us (we are a subreaper) first. */
	while ((w = waitpid(-1, &st, WNOHANG)) > 0)
		fprintf(stderr, "reaped %d (status %#x) before restoring\n", w, st);
	if (eng_restore(store, &o, &init))
		return fail("restore of generation %u: %s", gen, eng_last_error());
	usleep(150000);
	root = root_of(init);
	snprintf(what, sizeof(what), "generation %u", gen);
	if (root <= 0) {
		kill_wait(init);
		return fail("%s: the restored victim is gone before its check", what);
	}
	return finish_restored(init, root, what);
}

static int restore_and_check(const char *store, uint32_t gen)
{
	return restore_and_check_with(store, gen, 0);
}

/*
 * Where the pause went (eng_track_stats.steps): the steps tile the freeze, from the
 * seize to the release, so they add up to the pause, neither less (each step rounds
 * down to a microsecond: 100 us of slack) nor more: not the live rounds or the writing
 * around it (20 ms of slack for a preemption between two clock reads).
 */
static int check_steps(const struct eng_track_stats *st, int gen)
{
	uint64_t sum = 0;
	bool seize = false, release = false;

	for (int k = 0; k < st->steps.n; k++) {
		sum += st->steps.s[k].us;
		seize |= !strcmp(st->steps.s[k].what, "seize");
		release |= !strcmp(st->steps.s[k].what, "release");
	}
	if (!seize || !release)
		return fail("generation %d: %d pause steps, without %s", gen, st->steps.n, seize ? "release" : "seize");
	if (sum + 100 < st->pause_us || sum > st->pause_us + 20000)
		return fail("generation %d: the pause steps add up to %lu us, the pause is %lu us", gen,
			    (unsigned long)sum, (unsigned long)st->pause_us);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000ull + t.tv_nsec / 1000000;
}

static int mode_track(char *victim, const char *mib, int n, int ms, const char *method)
{
	char *argv[] = { victim, (char *)mib, NULL }, store[128];
	struct eng_track_opts o = { 0 };
	struct eng_track *t;
	uint64_t *pause = calloc(n, sizeof(*pause)), written = 0, full = 0, next;
	uint32_t *gens;
	size_t nr;
	pid_t pid;
	int ret = 0;

	if (method) {
		o.force_method = true;
		o.method = !strcmp(method, "hash") ? ENG_DIRTY_HASH : !strcmp(method, "full") ? ENG_DIRTY_FULL
												: ENG_DIRTY_UFFD_WP;
	}
	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_victim(argv);
	if (pid < 0)
		return 1;
	usleep(100000);
	if (eng_track_open(pid, store, &o, &t)) {
		kill_wait(pid);
		return fail("eng_track_open: %s", eng_last_error());
	}
	next = now_ms();
	for (int i = 0; i < n && !ret; i++) {
		struct eng_track_stats st;

		while (now_ms() < next)
			usleep(1000);
		next += ms;
		if (eng_track_checkpoint(t, NULL, &st)) {
			ret = fail("generation %d: %s", i + 1, eng_last_error());
			break;
		}
		ret = check_steps(&st, i + 1);
		if (ret)
			break;
		if (i % 10 == 5)
			kill(pid, SIGUSR1);	/* the victim forks (see victim_incr.c) */
		pause[i] = st.pause_us;
		written += st.pages_written;
		full += st.full;
		/* Retention while tracking: an old generation goes, the next ones still
		 * point at the blobs it shared with them. */
		if (i == n / 2 && n > 4 && eng_track_delete(t, 2, NULL))
			ret = fail("eng_track_delete of generation 2: %s", eng_last_error());
	}
	printf("%s: %d generations of %s MiB every %d ms: %lu pages written, %lu full generations\n",
	       eng_dirty_method_name(eng_track_method(t)), n, mib, ms, (unsigned long)written,
	       (unsigned long)full);
	eng_track_close(t);
	kill_wait(pid);
	if (ret) {
		free(pause);
		return ret;
	}
	qsort(pause, n, sizeof(*pause), cmp_u64);
	printf("pause p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", pause[n / 2] / 1e3, pause[n * 99 / 100] / 1e3,
	       pause[n - 1] / 1e3);
	free(pause);
	if (eng_store_list(store, &gens, &nr))
		return fail("list: %s", eng_last_error());
	if ((int)nr != n - (n > 4))
		ret = fail("%zu generations in the store, expected %d", nr, n - (n > 4));
	for (int k = 0; k < 10 && !ret; k++) {
		uint32_t g = gens[(nr - 1) * k / 9];

		if (eng_store_verify(store, g, NULL))
			ret = fail("verify of generation %u: %s", g, eng_last_error());
		else
			ret = restore_and_check(store, g);
		if (!ret)
			printf("generation %u: verified, restored, passed its own check\n", g);
	}
	/* Deleting a generation keeps the others whole. */
	if (!ret && nr > 2) {
		uint64_t freed;

		if (eng_store_delete(store, gens[0], &freed))
			ret = fail("delete of generation %u: %s", gens[0], eng_last_error());
		else if (eng_store_verify(store, gens[1], NULL) || restore_and_check(store, gens[1]))
			ret = fail("generation %u after deleting %u: %s", gens[1], gens[0], eng_last_error());
		else
			printf("deleted generation %u (%lu KiB freed); generation %u still restores\n", gens[0],
			       (unsigned long)(freed >> 10), gens[1]);
	}
	free(gens);
	return ret;
}

static bool has_prefix(const char *store, const char *prefix)
{
	DIR *d = opendir(store);
	struct dirent *de;
	bool found = false;

	while (d && (de = readdir(d)))
		found |= !strncmp(de->d_name, prefix, strlen(prefix));
	if (d)
		closedir(d);
	return found;
}

static bool has_tmp(const char *store)
{
	return has_prefix(store, ".gen-");
}

static pid_t run_hactl(const char *hactl, pid_t victim, const char *store, const char *count)
{
	char pid[16];
	pid_t c;

	snprintf(pid, sizeof(pid), "%d", victim);
	c = fork();
	if (!c) {
		char log[128];
		int null = open("/dev/null", O_WRONLY), err;

		/* what it said, for a failure's inspection (the directory is kept then) */
		snprintf(log, sizeof(log), "%s/hactl.log", workdir);
		err = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		dup2(null, 1);
		dup2(err >= 0 ? err : null, 2);
		execl(hactl, hactl, "dump", "-t", pid, "-D", store, "--track", "--count", count, "--interval", "20",
		      (char *)NULL);
		_exit(127);
	}
	return c;
}

static bool alive(pid_t pid)
{
	return waitpid(pid, NULL, WNOHANG) == 0;
}

/* Whether pid exits (and is reaped) within 5 s. */
static bool exits_soon(pid_t pid)
{
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(10000);
	}
	return false;
}

static int mode_crash(const char *hactl, char *victim, const char *mib)
{
	char *argv[] = { victim, (char *)mib, NULL }, store[128];
	unsigned seed = 12345;
	uint32_t *gens;
	size_t nr = 0;
	int ret = 0, st, kills = 0, tmp_seen = 0, victims = 1;
	pid_t pid, h;

	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_victim(argv);
	if (pid < 0)
		return 1;
	for (int i = 0; i < 10 && !ret; i++) {
		unsigned delay = 30 + rand_r(&seed) % 600;

		/* A dumper killed while its parasite runs in the victim takes the victim
		 * with it (as with CRIU): the store must survive; go on with a new one. */
		if (!alive(pid)) {
			pid = start_victim(argv);
			if (pid < 0)
				return 1;
			victims++;
		}
		h = run_hactl(hactl, pid, store, "1000");
		usleep(delay * 1000);
		kill(h, SIGKILL);
		waitpid(h, &st, 0);
		kills++;
		tmp_seen += has_tmp(store);
		/* Killed before it made the directory a store (FORMAT, written once the store
		 * is locked): no generation can be there yet, and the next writer makes it. */
		if (!eng_store_is(store) && !has_prefix(store, "gen-"))
			continue;
		if (eng_store_list(store, &gens, &nr)) {
			ret = fail("after kill %d: list: %s", i + 1, eng_last_error());
			break;
		}
		for (size_t k = 0; k < nr && !ret; k++)
			if (eng_store_verify(store, gens[k], NULL))
				ret = fail("after kill %d (at %u ms): generation %u: %s", i + 1, delay, gens[k],
					   eng_last_error());
		free(gens);
	}
	/* The victim may have been caught with the parasite in it: that is the price of a
	 * killed dumper; the store is what must survive. A victim the last kill left dying
	 * may still be exiting when the last writer starts, which then fails on it ("no
	 * Umask line": its files are gone already): that writer runs again, on a new one. */
	for (int again = 0; !ret && again < 2; again++) {
		if (!alive(pid)) {
			pid = start_victim(argv);
			if (pid < 0)
				return 1;
			victims++;
		}
		h = run_hactl(hactl, pid, store, "2");
		waitpid(h, &st, 0);
		if (WIFEXITED(st) && !WEXITSTATUS(st))
			break;
		if (again || !exits_soon(pid))
			ret = fail("hactl dump --track after the kills: status %#x", st);
		else
			fprintf(stderr, "the victim was dying when the last writer started: again\n");
	}
	if (!ret && has_tmp(store))
		ret = fail("an incomplete generation is still in the store after a writer opened it");
	kill_wait(pid);
	if (!ret && (eng_store_list(store, &gens, &nr) || !nr))
		ret = fail("no complete generation after %d kills: %s", kills, eng_last_error());
	printf("%d kills (%d victims), %d left an incomplete generation behind, %zu complete generations\n",
	       kills, victims, tmp_seen, nr);
	if (!ret) {
		ret = restore_and_check(store, gens[nr - 1]);
		if (!ret && nr > 1)
			ret = restore_and_check(store, gens[0]);
		free(gens);
	}
	return ret;
}

static int middle_blob(const char *store, uint32_t gen, pid_t pid, uint32_t *pack, uint64_t *off);

/* A victim started, left settle_us to set itself up, and tracked into store; -1 when
 * either step failed (said, and the victim gone). */
static pid_t start_tracked(char **argv, const char *store, useconds_t settle_us, struct eng_track **t)
{
	pid_t pid = start_victim(argv);

	if (pid < 0)
		return -1;
	if (settle_us)
		usleep(settle_us);
	if (eng_track_open(pid, store, NULL, t)) {
		kill_wait(pid);
		fail("eng_track_open: %s", eng_last_error());
		return -1;
	}
	return pid;
}

static int mode_corrupt(const char *hactl, char *victim, const char *mib)
{
	uint32_t bpack = 0;
	uint64_t boff = 0;
	char *argv[] = { victim, (char *)mib, NULL }, store[128], pack[256], want[64];
	uint32_t *gens;
	size_t nr;
	int ret = 0, st, fd;
	uint8_t b;
	pid_t pid, h;
	off_t at;

	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_victim(argv);
	if (pid < 0)
		return 1;
	h = run_hactl(hactl, pid, store, "3");
	waitpid(h, &st, 0);
	kill_wait(pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) || eng_store_list(store, &gens, &nr) || nr != 3)
		return fail("hactl dump --track --count 3: status %#x", st);
	/* A byte of a blob generation 1 uses. Not just the middle of its pack: with the
	 * filer thread, a page copied live and then unmapped or copied again leaves a blob
	 * no generation uses (CI under ASan hit one), and verify rightly ignores it. */
	if (middle_blob(store, gens[0], pid, &bpack, &boff))
		return 1;
	snprintf(pack, sizeof(pack), "%s/packs/pack-%08u.pack", store, bpack);
	fd = open(pack, O_RDWR);
	at = (off_t)boff + 32 + 1;	/* in the compressed data, after the blob's header (track.h) */
	if (fd < 0 || pread(fd, &b, 1, at) != 1 || (b ^= 0x40, pwrite(fd, &b, 1, at) != 1))
		return fail("%s: %m", pack);
	close(fd);
	snprintf(want, sizeof(want), "pack-%08u.pack offset", bpack);
	if (!eng_store_verify(store, gens[0], NULL))
		ret = fail("verify of generation %u passed with a damaged pack", gens[0]);
	else if (!strstr(eng_last_error(), want) || !strstr(eng_last_error(), "generation"))
		ret = fail("verify's error does not name the generation, pack and offset: %s", eng_last_error());
	else
		printf("verify: %s\n", eng_last_error());
	if (!ret) {
		struct eng_restore_opts o = { .generation = gens[0] };
		pid_t r;

		if (!eng_restore(store, &o, &r)) {
			kill_wait(r);
			ret = fail("restore of generation %u succeeded with a damaged pack", gens[0]);
		} else if (waitpid(-1, NULL, WNOHANG) > 0) {
			ret = fail("a failed restore left a process behind");
		} else {
			printf("restore refused: %s\n", eng_last_error());
		}
	}
	free(gens);
	return ret;
}

static int cmp_blob(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] != y[0] ? (x[0] < y[0] ? -1 : 1) : x[1] < y[1] ? -1 : x[1] > y[1];
}

/* The blob halfway through those generation gen of pid's pages come from. */
static int middle_blob(const char *store, uint32_t gen, pid_t pid, uint32_t *pack, uint64_t *off)
{
	char dir[4200];
	struct eng_img *img = NULL;
	ProtobufCMessage *m;
	uint64_t (*b)[2] = NULL;
	size_t n = 0, cap = 0;
	int dirfd = -1, ret;

	ret = eng_store_gen_path(store, gen, dir, sizeof(dir));
	if (!ret && (dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		ret = -errno;
	if (!ret)
		ret = eng_img_open(dirfd, ENG_IMG_PAGEMAP, pid, &img);
	if (!ret && (ret = eng_img_read(img, &img_pagemap_head__descriptor, &m)) == 1) {
		protobuf_c_message_free_unpacked(m, NULL);
		while ((ret = eng_img_read(img, &img_pagemap_entry__descriptor, &m)) == 1) {
			const ImgPagemapEntry *e = (const ImgPagemapEntry *)m;

			if ((e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK) && n == cap) {
				cap = cap ? cap * 2 : 1024;
				b = realloc(b, cap * sizeof(*b));
			}
			if ((e->flags & IMG_PAGEMAP_FLAG__PM_IN_PACK) && b) {
				b[n][0] = e->pack;
				b[n++][1] = e->offset;
			}
			protobuf_c_message_free_unpacked(m, NULL);
		}
	}
	eng_img_close(img);
	if (dirfd >= 0)
		close(dirfd);
	if (ret || !n) {
		free(b);
		return fail("generation %u: no blob found in its page map: %s", gen, eng_last_error());
	}
	qsort(b, n, sizeof(*b), cmp_blob);
	*pack = b[n / 2][0];
	*off = b[n / 2][1];
	free(b);
	return 0;
}

/*
 * The fill with several workers (engine/rst-fill.c): a victim of MIB MiB written over
 * n generations, whose newest generation takes its pages from blobs of every older one,
 * restored with 4 workers (more than this machine's CPUs, so that they interleave) and
 * a middle one with 1 (the process fills itself); each checks every page itself. Then a
 * byte of a blob the newest generation uses, halfway through its blobs, is damaged: the
 * restore of the newest must fail, naming the pack and offset, and leave no process
 * behind.
 */
static int mode_fill(char *victim, const char *mib, int n)
{
	char *argv[] = { victim, (char *)mib, NULL }, store[128], pack[256], want[256];
	uint32_t bpack = 0;
	uint64_t boff = 0;
	struct eng_track *t;
	uint32_t *gens;
	size_t nr;
	int ret = 0, fd;
	pid_t pid;
	off_t at;
	uint8_t b;

	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_tracked(argv, store, 100000, &t);
	if (pid < 0)
		return 1;
	for (int i = 0; i < n && !ret; i++) {
		struct eng_track_stats st;

		usleep(100000);
		if (eng_track_checkpoint(t, NULL, &st))
			ret = fail("generation %d: %s", i + 1, eng_last_error());
	}
	eng_track_close(t);
	kill_wait(pid);
	if (ret)
		return ret;
	if (eng_store_list(store, &gens, &nr) || nr != (size_t)n)
		return fail("%zu generations in the store, expected %d", nr, n);
	ret = restore_and_check_with(store, gens[nr - 1], 4);
	if (!ret)
		printf("generation %u: restored with 4 fill workers, passed its own check\n", gens[nr - 1]);
	if (!ret)
		ret = restore_and_check_with(store, gens[nr / 2], 1);
	if (!ret)
		printf("generation %u: restored filling itself, passed its own check\n", gens[nr / 2]);
	if (!ret)
		ret = middle_blob(store, gens[nr - 1], pid, &bpack, &boff);
	snprintf(pack, sizeof(pack), "%s/packs/pack-%08u.pack", store, bpack);
	fd = ret ? -1 : open(pack, O_RDWR);
	at = boff + 32 + 1;	/* in the compressed data, after the blob's header (track.h) */
	if (!ret && (fd < 0 || pread(fd, &b, 1, at) != 1 || (b ^= 0x40, pwrite(fd, &b, 1, at) != 1)))
		ret = fail("%s: %m", pack);
	if (fd >= 0)
		close(fd);
	/* The error names the store, the generation, the pack and the offset. */
	snprintf(want, sizeof(want), "generation %u: %s/packs/pack-%08u.pack offset %lu", gens[nr - 1], store, bpack,
		 (unsigned long)boff);
	if (!ret) {
		struct eng_restore_opts o = { .generation = gens[nr - 1], .pidns = true, .fill_workers = 4 };
		pid_t r;

		if (!eng_restore(store, &o, &r)) {
			kill_wait(r);
			ret = fail("restore of generation %u succeeded with a damaged pack", gens[nr - 1]);
		} else if (!strstr(eng_last_error(), want)) {
			ret = fail("the failed restore's error does not name the pack and offset: %s", eng_last_error());
		} else if (waitpid(-1, NULL, WNOHANG) > 0) {
			ret = fail("a failed restore left a process behind");
		} else {
			printf("restore with a damaged blob refused: %s\n", eng_last_error());
		}
	}
	free(gens);
	return ret;
}

/*
 * Two generations of victim_lost (MODE replace or cowdrop): between the plan of the
 * second one's live rounds and their first scan the tracker signals the victim, which
 * changes its memory and stops until the tracker goes on (HA_TEST_TRACK_LIVE_SIGNAL).
 * Both generations verify and restore, each passing the victim's own check.
 */
static int mode_hook(char *victim, const char *what)
{
	char *argv[] = { victim, (char *)what, NULL }, store[128];
	struct eng_track_stats st[2];
	struct eng_track *t;
	uint32_t *gens;
	size_t nr;
	pid_t pid;
	int ret = 0;

	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_tracked(argv, store, 0, &t);
	if (pid < 0)
		return 1;
	for (int i = 0; i < 2 && !ret; i++) {
		if (i)
			setenv("HA_TEST_TRACK_LIVE_SIGNAL", "12", 1);	/* SIGUSR2 */
		if (eng_track_checkpoint(t, NULL, &st[i]))
			ret = fail("generation %d: %s", i + 1, eng_last_error());
		unsetenv("HA_TEST_TRACK_LIVE_SIGNAL");
	}
	eng_track_close(t);
	kill_wait(pid);
	if (ret) {
		cr_show("victim log", victim_log);
		return ret;
	}
	printf("%s: generation 2 copied %lu pages live, %lu frozen, wrote %lu\n", what,
	       (unsigned long)st[1].pages_precopied, (unsigned long)st[1].pages_frozen,
	       (unsigned long)st[1].pages_written);
	if (eng_store_list(store, &gens, &nr) || nr != 2)
		return fail("%zu generations in the store, expected 2: %s", nr, eng_last_error());
	for (size_t k = 0; k < nr && !ret; k++) {
		if (eng_store_verify(store, gens[k], NULL))
			ret = fail("verify of generation %u: %s", gens[k], eng_last_error());
		else
			ret = restore_and_check(store, gens[k]);
		if (!ret)
			printf("generation %u: verified, restored, passed its own check\n", gens[k]);
	}
	free(gens);
	return ret;
}

/* n generations of a process, every ms. */
static int track_some(struct eng_track *t, pid_t pid, int n, int ms, int fork_at, struct eng_track_stats *st)
{
	uint64_t next = now_ms();

	for (int i = 0; i < n; i++) {
		while (now_ms() < next)
			usleep(1000);
		next += ms;
		if (eng_track_checkpoint(t, NULL, &st[i]))
			return fail("generation %d of %d: %s", i + 1, n, eng_last_error());
		if (i == fork_at)
			kill(pid, SIGUSR1);	/* the victim forks (see victim_incr.c) */
	}
	return 0;
}

/*
 * A restored process comes back tracked (engine/track-adopt.c): k generations of the
 * victim, then generation G (an older one: a rollback) restored with eng_track_restore
 * and checkpointed n more times while it writes, maps, zaps and forks. The first of
 * those must be incremental; generation G itself is deleted through the tracker after
 * it (retention), and every new generation is verified and restored, each checking every
 * page it recorded (pages untouched since G included: they come from G's blobs). The
 * adopted process finally checks itself. For the figures, G is also restored the old
 * way (a new tracker: its first generation stores every page).
 */
static int adopt_with(char *victim, const char *mib, int k, int n, int ms, struct eng_track_stats *st)
{
	char *argv[] = { victim, (char *)mib, NULL }, store[128];
	struct eng_restore_opts ro = { .pidns = true };
	struct eng_track *t;
	uint32_t *gens, g;
	size_t nr, before;
	pid_t pid, init, root;
	int ret;

	snprintf(store, sizeof(store), "%s/store", workdir);
	pid = start_tracked(argv, store, 100000, &t);
	if (pid < 0)
		return 1;
	ret = track_some(t, pid, k, ms, 1, st);
	eng_track_close(t);
	kill_wait(pid);
	if (ret)
		return ret;
	if (eng_store_list(store, &gens, &nr) || nr != (size_t)k)
		return fail("%zu generations in the store, expected %d", nr, k);
	g = gens[nr / 2];
	before = nr;
	free(gens);
	ro.generation = g;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	if (eng_track_restore(store, &ro, NULL, &init, &root, &t))
		return fail("eng_track_restore of generation %u: %s", g, eng_last_error());
	if (!t) {
		kill_wait(init);
		return fail("generation %u was restored but not adopted (see the log above)", g);
	}
	ret = track_some(t, root, 1, ms, -1, &st[0]);
	if (!ret && st[0].full)
		ret = fail("the first generation after the restore is full");
	/* It writes fast (a third of its pages within 50 ms, nearly all of them within the
	 * second a first generation may take under load): what holds under any load is
	 * that some pages come from G unchanged. */
	if (!ret && st[0].pages_written >= st[0].pages_total)
		ret = fail("the first generation after the restore stored %lu of its %lu pages",
			   (unsigned long)st[0].pages_written, (unsigned long)st[0].pages_total);
	if (!ret)
		printf("adopted from generation %u: first generation %u stored %lu of %lu pages (%lu KiB), pause "
		       "%.2f ms\n", g, st[0].generation, (unsigned long)st[0].pages_written,
		       (unsigned long)st[0].pages_total, (unsigned long)(st[0].bytes_written >> 10),
		       st[0].pause_us / 1e3);
	/* Retention: G goes; the generations after it still point at its blobs. */
	if (!ret && eng_track_delete(t, g, NULL))
		ret = fail("eng_track_delete of generation %u: %s", g, eng_last_error());
	if (!ret)
		ret = track_some(t, root, n - 1, ms, n - 3, &st[1]);
	if (!ret && st[1].full)
		ret = fail("generation %u (after deleting %u) is full", st[1].generation, g);
	for (int i = 1; i < n && !ret; i++)
		printf("then generation %u: %lu of %lu pages stored%s\n", st[i].generation,
		       (unsigned long)st[i].pages_written, (unsigned long)st[i].pages_total,
		       st[i].full ? " (full)" : "");
	eng_track_close(t);
	if (ret) {
		kill_wait(init);
		return ret;
	}
	/* The adopted process itself: the restore and the arming left it whole. */
	ret = finish_restored(init, root, "the adopted process");
	for (int i = 0; i < n && !ret; i++) {
		if (eng_store_verify(store, st[i].generation, NULL))
			ret = fail("verify of generation %u: %s", st[i].generation, eng_last_error());
		else
			ret = restore_and_check(store, st[i].generation);
		if (!ret)
			printf("generation %u: verified, restored, passed its own check\n", st[i].generation);
	}
	/* The old way, for comparison: a new tracker on a plain restore of the same one. */
	if (!ret && before > 1) {
		struct eng_track_stats full;

		ro.generation = st[0].generation;
		if (eng_restore_pids(store, &ro, &init, &root) || eng_track_open(root, store, NULL, &t)) {
			ret = fail("plain restore and track of generation %u: %s", ro.generation, eng_last_error());
			kill_wait(init);
		} else {
			ret = track_some(t, root, 1, ms, -1, &full);
			eng_track_close(t);
			kill_wait(init);
			if (!ret)
				printf("without adoption: the first generation stored %lu of %lu pages (%lu KiB), "
				       "pause %.2f ms\n", (unsigned long)full.pages_written,
				       (unsigned long)full.pages_total, (unsigned long)(full.bytes_written >> 10),
				       full.pause_us / 1e3);
		}
	}
	return ret;
}

static int mode_adopt(char *victim, const char *mib, int k, int n, int ms)
{
	struct eng_track_stats *st = calloc(n > k ? n : k, sizeof(*st));
	int ret = st ? adopt_with(victim, mib, k, n, ms, st) : 1;

	free(st);
	return ret;
}

/* rst-fill.c calls it before each task of a fill (in the restoring process itself when
 * it fills itself: a copy of ours, with the same pointer). */
extern void (*eng__test_fill_hook)(pid_t pid, size_t task, size_t nr_tasks);
static char trunc_path[192];
static bool trunc_middle;	/* at the middle task, else before the first */

static void truncate_pages(pid_t pid, size_t task, size_t nr_tasks)
{
	(void)pid;
	/* Only the header left: every run not read yet is past the end now. */
	if (task == (trunc_middle ? nr_tasks / 2 : 0) && truncate(trunc_path, 4096))
		fprintf(stderr, "truncate %s: %m\n", trunc_path);
}

static int copy_file(const char *from, const char *to)
{
	char buf[1 << 16];
	int in = open(from, O_RDONLY | O_CLOEXEC), out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ssize_t n = 0;

	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, n) != n)
			n = -1;
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out))
		n = -1;
	return in < 0 || out < 0 || n < 0 ? fail("copying %s to %s: %m", from, to) : 0;
}

/* A restore that must fail, naming the pages file, and leave no process at all. */
static int must_fail(const char *dir, int workers, const char *what, const char *want)
{
	struct eng_restore_opts o = { .pidns = true, .fill_workers = workers };
	pid_t r;
	int st;

	if (!eng_restore(dir, &o, &r)) {
		kill_wait(r);
		return fail("%s: the restore succeeded", what);
	}
	if (!strstr(eng_last_error(), want))
		return fail("%s: the error does not name %s: %s", what, want, eng_last_error());
	r = waitpid(-1, &st, WNOHANG);
	if (r != -1 || errno != ECHILD)
		return fail("%s: the failed restore left a process behind (%d)", what, r);
	printf("%s, %d worker%s: refused: %s\n", what, workers, workers > 1 ? "s" : "", eng_last_error());
	return 0;
}

/*
 * A plain image whose pages file shrinks: before the restore (refused while the images
 * are loaded, before any process exists), and during it, at the fill's middle task (one
 * worker: in the restoring process itself) and before its first (four workers: hactl's
 * threads). Each must fail cleanly, naming the file, and leave no process; the intact
 * image then restores and passes the victim's own check.
 */
static int mode_truncate(char *victim, const char *mib)
{
	char *argv[] = { victim, (char *)mib, NULL }, dir[128], orig[192], want[64];
	struct eng_dump_opts d = { 0 };
	pid_t pid;
	int ret = 0;

	snprintf(dir, sizeof(dir), "%s/img", workdir);
	pid = start_victim(argv);
	if (pid < 0)
		return 1;
	usleep(100000);
	if (eng_dump(pid, dir, &d, NULL)) {
		kill_wait(pid);
		return fail("eng_dump: %s", eng_last_error());
	}
	kill_wait(pid);	/* killed by the dump: reaped */
	snprintf(trunc_path, sizeof(trunc_path), "%s/pages-%d.img", dir, pid);
	snprintf(orig, sizeof(orig), "%s/pages.orig", workdir);
	snprintf(want, sizeof(want), "pages-%d.img", pid);
	ret = copy_file(trunc_path, orig);
	if (!ret && truncate(trunc_path, 4096 + 65536))
		ret = fail("truncate: %m");
	if (!ret)
		ret = must_fail(dir, 2, "truncated before the restore", want);
	if (!ret)
		ret = copy_file(orig, trunc_path);
	if (!ret) {
		trunc_middle = true;
		eng__test_fill_hook = truncate_pages;
		ret = must_fail(dir, 1, "truncated during the fill, at its middle run", want);
	}
	if (!ret)
		ret = copy_file(orig, trunc_path);
	if (!ret) {
		trunc_middle = false;
		ret = must_fail(dir, 4, "truncated during the fill, before its first run", want);
	}
	eng__test_fill_hook = NULL;
	if (!ret)
		ret = copy_file(orig, trunc_path);
	if (!ret)
		ret = restore_and_check_with(dir, 0, 2);
	if (!ret)
		printf("the intact image restored with 2 workers and passed its own check\n");
	return ret;
}

static int rm_one(const char *p, const struct stat *s, int f, struct FTW *w)
{
	(void)s, (void)f, (void)w;
	return remove(p);
}

int main(int argc, char **argv)
{
	int ret;

	if (argc < 2)
		goto usage;
	if (geteuid())
		return fail("needs root (ptrace, map_files)");
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	snprintf(workdir, sizeof(workdir), "/tmp/hacd-incr-XXXXXX");
	if (!mkdtemp(workdir))
		return fail("mkdtemp: %m");
	snprintf(victim_log, sizeof(victim_log), "%s/victim.log", workdir);
	if (!strcmp(argv[1], "track") && (argc == 6 || argc == 7))
		ret = mode_track(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), argc == 7 ? argv[6] : NULL);
	else if (!strcmp(argv[1], "crash") && argc == 5)
		ret = mode_crash(argv[2], argv[3], argv[4]);
	else if (!strcmp(argv[1], "corrupt") && argc == 5)
		ret = mode_corrupt(argv[2], argv[3], argv[4]);
	else if (!strcmp(argv[1], "fill") && argc == 5)
		ret = mode_fill(argv[2], argv[3], atoi(argv[4]));
	else if (!strcmp(argv[1], "hook") && argc == 4)
		ret = mode_hook(argv[2], argv[3]);
	else if (!strcmp(argv[1], "adopt") && argc == 7)
		ret = mode_adopt(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
	else if (!strcmp(argv[1], "truncate") && argc == 4)
		ret = mode_truncate(argv[2], argv[3]);
	else
		goto usage;
	if (!ret)
		nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "kept %s for inspection\n", workdir);
	return ret;
usage:
	fprintf(stderr, "usage: incr_runner track VICTIM MIB N MS [uffd-wp|hash|full]\n"
			"       incr_runner crash|corrupt HACTL VICTIM MIB\n"
			"       incr_runner fill VICTIM MIB N\n"
			"       incr_runner hook VICTIM_LOST replace|cowdrop\n"
			"       incr_runner adopt VICTIM MIB K N MS\n"
			"       incr_runner truncate VICTIM MIB\n");
	return 64;
}
