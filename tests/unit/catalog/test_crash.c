/*
 * Crash test: a child process plays the agent and the page store in a loop (begin a
 * generation, add a pack, write and fsync its file, reference it and the parent's packs,
 * seal, commit or fail, set peer states, apply retention, collect garbage) while the
 * parent SIGKILLs it after a random 0-20 ms, counted from the fork in even rounds (kills
 * during open, migration, recovery) and from the start of the loop in odd ones. After
 * every kill the parent checks the database (PRAGMA integrity_check through raw sqlite,
 * cat_verify), recovers it, and checks what a restore depends on: no pending generation is left, every complete one has
 * the stats it was committed with, every pack it refers to is alive and its file is there
 * with the size and bytes written, and no pack file exists that the catalog does not name.
 * The next child starts from that catalog, as a restarted agent would.
 *
 * Environment: HA_CRASH_ROUNDS (default 50), HA_CRASH_MAX_MS (default 20), HA_CRASH_SEED
 * (default: time and pid; printed so that the kill delays can be replayed).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

enum phase {
	PH_START, PH_OPEN, PH_RECOVER, PH_GC_BEGIN, PH_UNLINK, PH_GC_DONE, PH_BEGIN,
	PH_PACK_ADD, PH_PACK_WRITE, PH_REF, PH_SEAL, PH_COMMIT, PH_PEER, PH_RETENTION,
	NR_PHASES
};

static const char *const phase_names[] = {
	"fork", "open", "recover", "gc_begin", "unlink", "gc_done", "gen_begin", "pack_add",
	"pack_write", "pack_ref", "pack_seal", "commit", "peer_set", "retention",
};

/* Shared with the child: where it was when it died. */
struct shared {
	volatile int phase;
	volatile int ready;	/* past open, recovery and start-up GC */
	volatile long iterations;
};

struct totals {
	long kills_in[NR_PHASES];
	long iterations, recovered, dead_left, open_left, complete_checked;
};

static char packdir[T_PATH_MAX];

/* ---- the child ------------------------------------------------------------------------ */

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(struct shared *sh, const char *what, struct cat *c)
{
	fprintf(stderr, "crash child: %s failed in phase %s: %s\n", what,
		phase_names[sh->phase], cat_errmsg(c));
	_exit(2);
}

static void pack_path(char *buf, size_t size, const char *file)
{
	snprintf(buf, size, "%s/%s", packdir, file);
}

static int64_t pack_size(int64_t pack)
{
	return 512 + (pack % 8) * 512;
}

static void child_gc(struct cat *c, struct shared *sh)
{
	char path[2 * T_PATH_MAX];
	struct cat_pack *dead;
	size_t n, i;

	sh->phase = PH_GC_BEGIN;
	if (cat_gc_begin(c, &dead, &n))
		die(sh, "cat_gc_begin", c);
	for (i = 0; i < n; i++) {
		sh->phase = PH_UNLINK;
		pack_path(path, sizeof(path), dead[i].file);
		if (unlink(path) && errno != ENOENT)
			die(sh, "unlink", c);
		sh->phase = PH_GC_DONE;
		if (cat_gc_done(c, dead[i].id))
			die(sh, "cat_gc_done", c);
	}
	free(dead);
}

/* The page store's part: a pack file of pack_size(pack) bytes, each the pack id's low byte. */
static void write_pack(struct cat *c, struct shared *sh, int64_t pack, const char *file)
{
	char path[2 * T_PATH_MAX], buf[4096];
	int64_t size = pack_size(pack);
	int fd;

	sh->phase = PH_PACK_WRITE;
	memset(buf, (int)(pack & 0xff), sizeof(buf));
	pack_path(path, sizeof(path), file);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, buf, size) != size || fsync(fd))
		die(sh, "writing a pack", c);
	close(fd);
}

/* Reuse the parent's data: reference the newest two of its packs. */
static void ref_parent(struct cat *c, struct shared *sh, int64_t gen, int64_t parent)
{
	struct cat_pack *packs;
	size_t n, i;

	if (!parent)
		return;
	if (cat_gen_packs(c, parent, &packs, &n))
		die(sh, "cat_gen_packs", c);
	for (i = n > 2 ? n - 2 : 0; i < n; i++)
		if (cat_pack_ref(c, gen, packs[i].id, packs[i].bytes_ref / 2))
			die(sh, "cat_pack_ref (parent)", c);
	free(packs);
}

static void one_checkpoint(struct cat *c, struct shared *sh, int64_t svc, unsigned *seed)
{
	struct cat_gen_stats st;
	struct cat_gen latest;
	int64_t gen, pack, parent = 0;
	char file[64];

	sh->phase = PH_BEGIN;
	if (cat_gen_latest_complete(c, svc, &latest) == 0)
		parent = latest.id;
	if (cat_gen_begin(c, svc, parent, &gen))
		die(sh, "cat_gen_begin", c);
	sh->phase = PH_PACK_ADD;
	snprintf(file, sizeof(file), "pk-%d-%lld", (int)getpid(), (long long)gen);
	if (cat_pack_add(c, svc, file, &pack))
		die(sh, "cat_pack_add", c);
	write_pack(c, sh, pack, file);
	sh->phase = PH_REF;
	if (cat_pack_ref(c, gen, pack, pack_size(pack)))
		die(sh, "cat_pack_ref", c);
	ref_parent(c, sh, gen, parent);
	sh->phase = PH_SEAL;
	if (cat_pack_seal(c, pack, pack_size(pack)))
		die(sh, "cat_pack_seal", c);
	sh->phase = PH_COMMIT;
	if (rand_r(seed) % 8 == 0) {
		if (cat_gen_fail(c, gen))
			die(sh, "cat_gen_fail", c);
		return;
	}
	t_stats(gen, &st);
	if (cat_gen_commit(c, gen, &st))
		die(sh, "cat_gen_commit", c);
	sh->phase = PH_PEER;
	if (rand_r(seed) % 3 == 0) {
		if (cat_gen_peer_set(c, gen, "standby", CAT_PEER_SENDING))
			die(sh, "cat_gen_peer_set", c);
		if (rand_r(seed) % 2 &&
		    cat_gen_peer_set(c, gen, "standby", CAT_PEER_CONSISTENT))
			die(sh, "cat_gen_peer_set", c);
	}
}

static void child(const char *path, struct shared *sh, unsigned seed)
{
	struct cat_retention policy = { .keep_last = 3, .keep_hourly = 2, .keep_daily = 1,
					.forget_after_s = 1 };
	struct cat *c;
	int64_t svc;
	int pruned;
	long i;

	sh->phase = PH_OPEN;
	if (cat_open(path, &c))
		die(sh, "cat_open", NULL);
	sh->phase = PH_RECOVER;
	if (cat_recover(c) < 0)
		die(sh, "cat_recover", c);
	if (cat_service_ensure(c, "svc", &svc))
		die(sh, "cat_service_ensure", c);
	/* As the agent starts: recover, apply retention, collect what a crash left. */
	for (i = 0;; i++) {
		if (i % 3 == 0) {
			sh->phase = PH_RETENTION;
			if (cat_retention_apply(c, svc, &policy, now_us(), &pruned))
				die(sh, "cat_retention_apply", c);
			child_gc(c, sh);
		}
		sh->ready = 1;
		one_checkpoint(c, sh, svc, &seed);
		sh->iterations++;
	}
}

/* ---- the parent's checks -------------------------------------------------------------- */

static int64_t sql_count(const char *path, const char *sql)
{
	int64_t v = -1;

	assert_int_equal(t_sql_int(path, sql, &v), 0);
	return v;
}

/* What a restore of `g` needs: its stats, and every pack alive with its bytes on disk. */
static void check_complete(struct cat *c, const struct cat_gen *g)
{
	char path[2 * T_PATH_MAX], buf[4096];
	struct cat_gen_stats want;
	struct cat_pack *packs;
	struct stat st;
	ssize_t len, i;
	size_t n, k;
	int fd;

	t_stats(g->id, &want);
	assert_memory_equal(&g->stats, &want, sizeof(want));
	assert_true(g->committed_us >= g->started_us && g->started_us > 0);
	assert_int_equal(cat_gen_packs(c, g->id, &packs, &n), 0);
	assert_true(n >= 1);
	for (k = 0; k < n; k++) {
		assert_int_equal(packs[k].state, CAT_PACK_SEALED);
		assert_int_equal(packs[k].size, pack_size(packs[k].id));
		pack_path(path, sizeof(path), packs[k].file);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			fprintf(stderr, "generation %lld: pack %s: %s\n", (long long)g->id,
				packs[k].file, strerror(errno));
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(st.st_size, packs[k].size);
		len = read(fd, buf, sizeof(buf));
		assert_int_equal(len, packs[k].size);
		for (i = 0; i < len; i++)
			assert_int_equal((unsigned char)buf[i], packs[k].id & 0xff);
		close(fd);
	}
	free(packs);
}

/* No file in the pack directory that the catalog does not name (it could never be freed). */
static void check_no_orphans(const char *path)
{
	struct dirent *d;
	int64_t v;
	DIR *dir;

	dir = opendir(packdir);
	assert_non_null(dir);
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		assert_int_equal(t_sql_int_arg(path, "SELECT count(*) FROM pack WHERE file = ?1",
					       d->d_name, &v), 0);
		if (v != 1)
			fprintf(stderr, "orphan pack file %s\n", d->d_name);
		assert_int_equal(v, 1);
	}
	closedir(dir);
}

static void check_after_kill(const char *path, struct totals *tot)
{
	char ok[64];
	struct cat_gen *gens;
	struct cat_gen_peer *peers;
	struct cat *c;
	int64_t svc;
	size_t n, np, i, k;
	int recovered;

	if (access(path, F_OK))
		return;		/* killed before it created the catalog */
	assert_int_equal(t_sql_text(path, "PRAGMA integrity_check", ok, sizeof(ok)), 0);
	assert_string_equal(ok, "ok");
	if (cat_open(path, &c))
		fail_msg("cat_open after a kill: %s", cat_errmsg(NULL));
	if (cat_verify(c))
		fail_msg("cat_verify after a kill: %s", cat_errmsg(c));
	/* After cat_open: a kill before the first migration committed leaves no tables. */
	tot->dead_left += sql_count(path, "SELECT count(*) FROM pack WHERE state = 'dead'");
	tot->open_left += sql_count(path, "SELECT count(*) FROM pack WHERE state = 'open'");
	recovered = cat_recover(c);
	assert_true(recovered >= 0);
	tot->recovered += recovered;
	if (cat_service_ensure(c, "svc", &svc) == 0 &&
	    cat_gen_list(c, svc, 0, 0, &gens, &n) == 0) {
		for (i = 0; i < n; i++) {
			assert_int_not_equal(gens[i].state, CAT_GEN_PENDING);
			if (gens[i].state != CAT_GEN_COMPLETE)
				continue;
			check_complete(c, &gens[i]);
			tot->complete_checked++;
			assert_int_equal(cat_gen_peers(c, gens[i].id, &peers, &np), 0);
			for (k = 0; k < np; k++)
				assert_int_not_equal(peers[k].state, CAT_PEER_SENDING);
			free(peers);
		}
		free(gens);
	}
	assert_int_equal(cat_verify(c), 0);
	cat_close(c);

	/* The same invariants, asked without the library. */
	assert_int_equal(sql_count(path, "SELECT count(*) FROM generation "
				   "WHERE state = 'pending'"), 0);
	assert_int_equal(sql_count(path, "SELECT count(*) FROM pack WHERE state = 'open'"), 0);
	assert_int_equal(sql_count(path, "SELECT count(*) FROM gen_peer "
				   "WHERE state = 'sending'"), 0);
	assert_int_equal(sql_count(path, "SELECT count(*) FROM generation WHERE state = "
				   "'complete' AND (committed_us IS NULL OR checksum IS NULL)"), 0);
	assert_int_equal(sql_count(path, "SELECT count(*) FROM gen_pack_ref r "
				   "JOIN pack p ON p.id = r.pack "
				   "JOIN generation g ON g.id = r.generation "
				   "WHERE p.state = 'dead' AND g.state IN ('pending', 'complete')"),
			 0);
	check_no_orphans(path);
}

static void wait_ready(struct shared *sh, pid_t pid)
{
	struct timespec tick = { 0, 100000 };
	int i, status;

	for (i = 0; i < 100000 && !sh->ready; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			fail_msg("the child exited by itself (status %#x)", status);
		nanosleep(&tick, NULL);
	}
	assert_true(sh->ready);
}

static void print_totals(const struct totals *tot, int rounds, unsigned seed)
{
	int i;

	fprintf(stderr, "crash: %d kills (seed %u), %ld checkpoints done between them, "
		"%ld pending generations recovered, %ld dead and %ld open packs found after "
		"kills, %ld complete generations checked restorable\ncrash: killed in:",
		rounds, seed, tot->iterations, tot->recovered, tot->dead_left, tot->open_left,
		tot->complete_checked);
	for (i = 0; i < NR_PHASES; i++)
		if (tot->kills_in[i])
			fprintf(stderr, " %s %ld", phase_names[i], tot->kills_in[i]);
	fprintf(stderr, "\n");
}

static void test_kill9_loop(void **state)
{
	const char *env_rounds = getenv("HA_CRASH_ROUNDS"), *env_seed = getenv("HA_CRASH_SEED");
	const char *env_ms = getenv("HA_CRASH_MAX_MS");
	int rounds = env_rounds ? atoi(env_rounds) : 50;
	int max_us = (env_ms ? atoi(env_ms) : 20) * 1000;
	unsigned seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 0) :
			(unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
	struct totals tot = { 0 };
	struct shared *sh;
	struct timespec delay;
	char dir[PATH_MAX], path[T_PATH_MAX];
	int round, status;
	pid_t pid;

	t_mkdtemp(dir);
	snprintf(path, sizeof(path), "%s/state/catalog.db", dir);
	snprintf(packdir, sizeof(packdir), "%s/packs", dir);
	assert_int_equal(mkdir(packdir, 0700), 0);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(sh != MAP_FAILED);
	srand(seed);

	for (round = 0; round < rounds; round++) {
		sh->phase = PH_START;
		sh->ready = 0;
		sh->iterations = 0;
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0)
			child(path, sh, seed + round);
		/* Odd rounds count the delay from the loop, not from the fork: start-up takes
		 * most of 20 ms, and the kills must land inside checkpoints too. */
		if (round % 2)
			wait_ready(sh, pid);
		delay.tv_sec = 0;
		delay.tv_nsec = (long)(rand() % (max_us + 1)) * 1000;	/* 0-20 ms */
		nanosleep(&delay, NULL);
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			fail_msg("round %d: the child exited by itself (status %#x)", round,
				 status);
		tot.kills_in[sh->phase]++;
		tot.iterations += sh->iterations;
		check_after_kill(path, &tot);
	}
	print_totals(&tot, rounds, seed);
	/* It must have been killed inside a checkpoint at least once to mean anything. */
	assert_true(tot.recovered > 0);
	munmap(sh, sizeof(*sh));
	t_rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kill9_loop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
