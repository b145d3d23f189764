/*
 * The catalog: opening the sqlite database and the helpers every other catalog file uses
 * (errors, prepared statements, transactions). The schema and its migrations are in
 * schema.c, generations in gen.c, packs and GC in pack.c, retention in retention.c, the
 * event log in event.c, and the invariant checks in verify.c.
 *
 * DESIGN
 * The catalog is the commit point of a checkpoint (DESIGN.md 2.6): page data and images
 * are written and fsynced first, then one sqlite transaction marks the generation
 * complete. Readers (hactl) never block the agent's writer in WAL mode.
 *
 * DURABILITY: synchronous=NORMAL, and cat_sync() where the outside world is told.
 * FULL fsyncs the WAL at every commit: an agent checkpointing 20 services a second paid
 * 40+ fsyncs a second inside its event loop (status answered in 200 ms under load).
 * With NORMAL in WAL mode a commit only appends to the WAL; the WAL is fsynced before
 * each checkpoint (of the WAL into the database) and the database after it. So:
 *  - a process crash (kill -9 of hacd, at any instant) loses nothing committed: the
 *    appended frames are in the kernel's page cache, and the next open replays them;
 *  - a power loss or kernel crash may lose the LAST transactions, never a middle one,
 *    and never leaves the database inconsistent: the WAL's frames carry cumulative
 *    checksums and a commit marker, and recovery stops at the first frame that does
 *    not check, i.e. it rolls back to an earlier commit, whole.
 * What must not be lost is whatever someone outside the catalog acts on: a generation
 * shipped to a peer or reported complete to hactl, a pack dead before its files are
 * unlinked (invariant 5), an Ack to a sender. cat_sync() (an fdatasync of the WAL:
 * exactly what FULL would have done at each commit, once for all of them) comes
 * between the commit and that act. A power loss otherwise can at worst undo generations
 * nobody was told about (their directories are collected as unknown at the next
 * start) and events. cat_sync() needs no transaction, so the agent runs it in a helper
 * thread on the path from cat_wal_path(), off its event loop. The other fsyncs of
 * NORMAL are the WAL checkpoint's (WAL, then database, every 1000 pages by default,
 * inside whichever commit crosses that): the agent turns those off on its connection
 * (cat_checkpoints_elsewhere) and checkpoints from the helper thread on a connection of
 * its own (cat_checkpoint_path). Left is one fsync of the WAL's header by the next
 * commit after a checkpoint that emptied it, when the WAL starts over.
 * Every multi-statement change is one BEGIN IMMEDIATE transaction, so a kill -9 at any
 * instant leaves the database as before or after each call, never between. What a kill
 * *can* leave is a protocol half-done across calls: a pending generation (cat_recover()
 * fails it), a pack left open (cat_recover() seals it), a pack marked dead whose file
 * may or may not be unlinked yet (cat_gc_begin() returns it again).
 * The invariants below are enforced in sqlite itself where they can be (CHECK
 * constraints, foreign keys, triggers), so that even a hand-edited catalog cannot break
 * them, and the C code checks first to give a useful message.
 *
 * INVARIANTS
 *  1. A generation is complete or pruned iff its stats (committed_us, pause_us, bytes,
 *     pages, checksum) are set. [CHECK constraint]
 *  2. A generation only moves along the edges drawn in ha/catalog.h; it is created
 *     pending. [triggers generation_insert, generation_transition]
 *  3. Only pending and complete generations hold pack references. References are added
 *     only while a generation is pending [trigger gen_pack_ref_insert] and removed in the
 *     transaction that fails or prunes it [cat__gen_end].
 *  4. No dead pack is referenced: a pack becomes dead only once no generation refers to
 *     it, and a dead pack cannot be referenced. [triggers pack_transition,
 *     gen_pack_ref_insert] Hence every pack a complete generation needs still exists:
 *     the page store unlinks only packs the catalog has made dead.
 *  5. A pack file is unlinked only after its row is dead and committed, and the row is
 *     deleted only after the unlink. A crash in GC leaves a dead row (returned again by
 *     cat_gc_begin()) or nothing, never a row without its file or a referenced gap.
 *  6. Retention never prunes the newest complete generation of a service, one with a
 *     peer in SENDING, or the parent of a pending generation. So a service that ever
 *     committed a generation always has a complete one to restore.
 *  7. After cat_recover(): no generation is pending, no peer SENDING, no pack open.
 *  8. (Caller's duty) A pending generation references a pack's data before the pack is
 *     sealed; open packs are never collected, sealed unreferenced ones are.
 *  9. (Caller's duty) Data and images are fsynced before cat_gen_commit().
 * 10. PRAGMA user_version is the number of migrations applied; each migration commits
 *     together with its version bump (schema.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "catalog-int.h"

#define CAT_BUSY_TIMEOUT_MS 5000

/* cat_open() has no handle to keep its error in when it fails. */
static __thread char open_err[1024];

/* ---- errors ------------------------------------------------------------------------ */

const char *cat_errmsg(const struct cat *c)
{
	return c ? c->err : open_err;
}

void cat__clear(struct cat *c)
{
	c->err[0] = 0;
}

int cat__err(struct cat *c, int err, const char *fmt, ...)
{
	va_list ap;

	if (c->err[0])		/* keep the first cause, callers only propagate */
		return err;
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return err;
}

int cat__errno(int rc)
{
	switch (rc) {
	case SQLITE_OK:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EUCLEAN;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT;
	}
	if ((rc & 0xff) == SQLITE_CONSTRAINT)	/* CHECK, NOT NULL, our triggers */
		return -EINVAL;
	return -EIO;
}

int cat__sqlerr(struct cat *c, int rc, const char *what)
{
	return cat__err(c, cat__errno(rc), "%s: %s (sqlite %d)", what,
			c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc), rc);
}

/* ---- time --------------------------------------------------------------------------- */

static int64_t realtime_us(void *opaque)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void cat_set_clock(struct cat *c, cat_clock_fn fn, void *opaque)
{
	c->clock = fn ? fn : realtime_us;
	c->clock_opaque = opaque;
}

int64_t cat__now(struct cat *c)
{
	return c->clock(c->clock_opaque);
}

/* ---- statements and transactions ---------------------------------------------------- */

int cat__stmt(struct cat *c, const char *sql, sqlite3_stmt **out)
{
	struct cat__stmt *s;
	size_t i;
	int rc;

	/* A failed batch was rolled back: nothing may run in autocommit in its name. */
	if (c->batch && c->batch_failed)
		return cat__err(c, c->batch_failed, "catalog: an earlier call of this batch failed");
	for (i = 0; i < c->nr_stmts; i++) {
		if (c->stmts[i].sql == sql) {
			cat__done(c->stmts[i].st);
			*out = c->stmts[i].st;
			return 0;
		}
	}
	if (cat__grow((void **)&c->stmts, &c->max_stmts, c->nr_stmts, sizeof(*s)))
		return cat__err(c, -ENOMEM, "no memory for a prepared statement");
	s = &c->stmts[c->nr_stmts];
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st, NULL);
	if (rc != SQLITE_OK)
		return cat__sqlerr(c, rc, "preparing a catalog statement");
	s->sql = sql;
	c->nr_stmts++;
	*out = s->st;
	return 0;
}

int cat__stmt_id(struct cat *c, const char *sql, int64_t id, sqlite3_stmt **out)
{
	int ret = cat__stmt(c, sql, out);

	if (!ret)
		sqlite3_bind_int64(*out, 1, id);
	return ret;
}

void cat__done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

uint64_t cat_vm_steps(struct cat *c, bool reset)
{
	uint64_t n = 0;

	for (size_t i = 0; i < c->nr_stmts; i++)
		n += (uint64_t)sqlite3_stmt_status(c->stmts[i].st, SQLITE_STMTSTATUS_VM_STEP, reset);
	return n;
}

int cat__exec(struct cat *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	cat__done(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return cat__sqlerr(c, rc, what);
}

static int exec_static(struct cat *c, const char *sql, const char *what)
{
	sqlite3_stmt *st;
	int ret = cat__stmt(c, sql, &st);

	return ret ? ret : cat__exec(c, st, what);
}

/*
 * Inside a batch, each call's transaction is the batch's: begin and commit do nothing,
 * and a rollback undoes the whole batch and makes every later call of it fail.
 */
int cat__begin(struct cat *c)
{
	static const char sql[] = "BEGIN IMMEDIATE";

	if (c->batch)
		return c->batch_failed;
	return exec_static(c, sql, "starting a catalog transaction");
}

int cat__commit(struct cat *c)
{
	static const char sql[] = "COMMIT";
	int ret;

	if (c->batch)
		return c->batch_failed;
	ret = exec_static(c, sql, "committing a catalog transaction");
	if (ret)
		cat__rollback(c);
	return ret;
}

void cat__rollback(struct cat *c)
{
	if (c->batch && !c->batch_failed)
		c->batch_failed = -ECANCELED;
	/* Not cached: it must work even when preparing new statements would fail. */
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

int cat_batch_begin(struct cat *c)
{
	int ret;

	cat__clear(c);
	if (c->batch)
		return cat__err(c, -EBUSY, "catalog: a batch is already open");
	ret = cat__begin(c);
	if (!ret) {
		c->batch = true;
		c->batch_failed = 0;
	}
	return ret;
}

int cat_batch_end(struct cat *c)
{
	int failed = c->batch_failed;

	if (!c->batch)
		return cat__err(c, -EINVAL, "catalog: no batch open");
	c->batch = false;
	c->batch_failed = 0;
	if (failed) {
		cat__rollback(c);
		return failed;
	}
	cat__clear(c);
	return cat__commit(c);
}

/* ---- small helpers ------------------------------------------------------------------ */

int cat__check_name(struct cat *c, const char *what, const char *s)
{
	size_t i, len;

	if (!s || !s[0])
		return cat__err(c, -EINVAL, "%s: empty name", what);
	len = strnlen(s, CAT_NAME_MAX);
	if (len >= CAT_NAME_MAX)
		return cat__err(c, -EINVAL, "%s: name longer than %d bytes", what,
				CAT_NAME_MAX - 1);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return cat__err(c, -EINVAL, "%s: control character in name", what);
	return 0;
}

void cat__column_text(sqlite3_stmt *st, int col, char *buf, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(buf, size, "%s", t ? (const char *)t : "");
}

int cat__grow(void **arr, size_t *cap, size_t n, size_t size)
{
	size_t ncap;
	void *p;

	if (n < *cap)
		return 0;
	ncap = *cap ? *cap * 2 : 16;
	p = reallocarray(*arr, ncap, size);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* ---- open and close ----------------------------------------------------------------- */

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * The catalog names every pack file and the packs sit beside it: its directory must be
 * ours alone. We create it 0700 when missing but never chmod an existing one (the path
 * could be /tmp): we refuse it, with the fix in the message, as sshd's StrictModes does.
 */
static int check_dir(struct cat *c, const char *dir)
{
	char *copy, *parent;
	struct stat st;
	int ret;

	if (mkdir(dir, 0700) == 0) {
		copy = strdup(dir);
		if (!copy)
			return cat__err(c, -ENOMEM, "%s: no memory", dir);
		parent = dirname(copy);
		ret = fsync_dir(parent);	/* the new directory entry must survive */
		free(copy);
		if (ret)
			return cat__err(c, ret, "fsync %s: %s", parent, strerror(-ret));
		return 0;
	}
	if (errno != EEXIST)
		return cat__err(c, -errno, "mkdir %s: %s", dir, strerror(errno));
	if (stat(dir, &st))
		return cat__err(c, -errno, "stat %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cat__err(c, -ENOTDIR, "%s: not a directory", dir);
	/* Whoever owns it can swap the catalog or the packs under us. */
	if (st.st_uid != geteuid())
		return cat__err(c, -EPERM, "%s: owned by uid %u, not by us (uid %u)", dir,
				(unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & 0077)
		return cat__err(c, -EPERM, "%s: mode %03o lets group or others in; the catalog "
				"directory must be private (chmod 700 %s)", dir,
				(unsigned)(st.st_mode & 0777), dir);
	return 0;
}

/*
 * Create the database file ourselves so that it is 0600 whatever the umask; sqlite then
 * gives its -wal and -shm files the same mode as the database file.
 */
static int create_file(struct cat *c, const char *path, const char *dir)
{
	struct stat st;
	int fd, ret = 0;
	bool created = true;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == EEXIST) {
		created = false;
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0)
		return cat__err(c, -errno, "open %s: %s", path, strerror(errno));
	if (fstat(fd, &st))
		ret = cat__err(c, -errno, "stat %s: %s", path, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		ret = cat__err(c, -EINVAL, "%s: not a regular file", path);
	else if ((st.st_mode & 0077) && fchmod(fd, 0600))
		ret = cat__err(c, -errno, "chmod 600 %s: %s", path, strerror(errno));
	close(fd);
	if (!ret && created && (ret = fsync_dir(dir)))
		cat__err(c, ret, "fsync %s: %s", dir, strerror(-ret));
	return ret;
}

static int prepare_files(struct cat *c, const char *path)
{
	char *copy = strdup(path);
	char *dir;
	int ret;

	if (!copy)
		return cat__err(c, -ENOMEM, "%s: no memory", path);
	dir = dirname(copy);
	ret = check_dir(c, dir);
	if (!ret)
		ret = create_file(c, path, dir);
	free(copy);
	return ret;
}

/* One "PRAGMA x = y" whose result row, if any, must equal `expect`. */
static int pragma(struct cat *c, const char *sql, const char *expect)
{
	sqlite3_stmt *st;
	const unsigned char *v;
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cat__sqlerr(c, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && expect) {
		v = sqlite3_column_text(st, 0);
		if (!v || strcmp((const char *)v, expect))
			ret = cat__err(c, -EIO, "%s: got '%s', expected '%s'", sql,
				       v ? (const char *)v : "", expect);
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		ret = cat__sqlerr(c, rc, sql);
	}
	sqlite3_finalize(st);
	return ret;
}

static int configure(struct cat *c)
{
	int ret;

	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, CAT_BUSY_TIMEOUT_MS);
	/* A tampered catalog must not run SQL functions with side effects from its schema. */
	if ((ret = pragma(c, "PRAGMA trusted_schema = OFF", NULL)))
		return ret;
	if ((ret = pragma(c, "PRAGMA foreign_keys = ON", NULL)))
		return ret;
	/* The page cache is most of hacd's heap growth: it fills as the catalog grows
	 * (measured: sqlite's heap and malloc's in-use bytes grew alike, 2.3 KB/s with 20
	 * services at 1 s). Named here so that its cap is ours, not a build default. The
	 * hot queries go through indexes (migration 5); 1 MiB holds their pages. */
	if ((ret = pragma(c, "PRAGMA cache_size = -1024", NULL)))
		return ret;
	/* Persistent in the file; returns the mode actually in force. */
	if ((ret = pragma(c, "PRAGMA journal_mode = WAL", "wal")))
		return ret;
	/* Per connection: commits are durable at the next cat_sync() (DURABILITY above). */
	return pragma(c, "PRAGMA synchronous = NORMAL", NULL);
}

void cat_wal_path(const struct cat *c, char *buf, size_t len)
{
	snprintf(buf, len, "%s-wal", c->path);
}

int cat_sync_path(const char *wal)
{
	int fd = open(wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), ret = 0;

	/* No WAL: sqlite removed it on a clean close, after checkpointing it into the
	 * database and syncing that. */
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fdatasync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int cat_checkpoints_elsewhere(struct cat *c)
{
	cat__clear(c);
	return pragma(c, "PRAGMA wal_autocheckpoint = 0", NULL);
}

int cat_checkpoint_path(const char *db_path)
{
	sqlite3 *db = NULL;
	int rc;

	/* A connection of its own: the caller's thread must not share the agent's. */
	rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	/* PASSIVE: what no reader still needs, without waiting for anyone. Syncs the WAL,
	 * copies it into the database, syncs that. */
	if (rc == SQLITE_OK)
		rc = sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : cat__errno(rc);
}

int cat_sync(struct cat *c)
{
	char wal[PATH_MAX + 8];
	int ret;

	cat__clear(c);
	cat_wal_path(c, wal, sizeof(wal));
	ret = cat_sync_path(wal);
	return ret ? cat__err(c, ret, "%s: fdatasync: %s", wal, strerror(-ret)) : 0;
}

int cat_open(const char *path, struct cat **out)
{
	struct cat *c;
	int rc, ret;

	*out = NULL;
	open_err[0] = 0;
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(open_err, sizeof(open_err), "no memory for the catalog");
		return -ENOMEM;
	}
	cat_set_clock(c, NULL, NULL);
	if (!path || !path[0] || strlen(path) >= PATH_MAX) {
		ret = cat__err(c, -EINVAL, "catalog path empty or too long");
		goto err;
	}
	c->path = strdup(path);
	if (!c->path) {
		ret = cat__err(c, -ENOMEM, "no memory for the catalog");
		goto err;
	}
	if ((ret = prepare_files(c, path)))
		goto err;
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW |
			     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		ret = cat__sqlerr(c, rc, path);
		goto err;
	}
	if ((ret = configure(c)) || (ret = cat__migrate(c)))
		goto err;
	*out = c;
	return 0;
err:
	snprintf(open_err, sizeof(open_err), "catalog %.256s: %s", path ? path : "(null)", c->err);
	cat_close(c);
	return ret;
}

void cat_close(struct cat *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->nr_stmts; i++)
		sqlite3_finalize(c->stmts[i].st);
	free(c->stmts);
	/* With every statement finalized this cannot be busy; it checkpoints the WAL. */
	sqlite3_close(c->db);
	free(c->path);
	free(c);
}
