/*
 * Packs, the references generations hold on them, and garbage collection.
 *
 * The page store writes page data into append-only pack files; a generation's page map
 * points at byte ranges in them, its own or older generations'. The catalog does not know
 * the ranges, only which generation refers to which pack and how many bytes, which is
 * what GC needs: a sealed pack that no generation refers to is garbage. Failing or
 * pruning a generation drops its references (gen.c), so GC only has to look for sealed
 * packs without any reference.
 *
 * Order of operations for the page store, and why:
 *   cat_pack_add()   before the file exists: the catalog then knows every pack file
 *                    that may exist, so a crash can leave a row without a file (GC
 *                    unlinks it, ENOENT) but never a file nobody will delete;
 *   cat_pack_ref()   as the generation's page map points into it, before sealing
 *                    (invariant 8): an open pack is never collected, a sealed one is;
 *   cat_pack_seal()  once it is fsynced and will not grow.
 * GC is in three steps (ha/catalog.h) so that a crash never unlinks a file the catalog
 * still counts on, nor forgets one it has not yet unlinked (invariant 5).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog-int.h"

static const char *const pack_state_names[] = {
	[CAT_PACK_OPEN] = "open",
	[CAT_PACK_SEALED] = "sealed",
	[CAT_PACK_DEAD] = "dead",
};

#define PACK_COLUMNS "p.id, p.service, p.file, p.size, p.state"

static int pack_state_parse(const char *s, enum cat_pack_state *out)
{
	unsigned i;

	for (i = 0; s && i <= CAT_PACK_DEAD; i++) {
		if (!strcmp(s, pack_state_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EUCLEAN;
}

/*
 * GC hands these names to unlink(): accept one path component only, so that no catalog
 * content, damaged or forged, can make hacd unlink a file outside the pack directory.
 */
static int check_file(struct cat *c, const char *file)
{
	size_t len;

	if (!file || !file[0])
		return cat__err(c, -EINVAL, "pack: empty file name");
	len = strnlen(file, CAT_FILE_MAX);
	if (len >= CAT_FILE_MAX)
		return cat__err(c, -ENAMETOOLONG, "pack %.32s...: file name longer than %d bytes",
				file, CAT_FILE_MAX - 1);
	if (strchr(file, '/') || !strcmp(file, ".") || !strcmp(file, ".."))
		return cat__err(c, -EINVAL, "pack %s: a pack file name is one path component",
				file);
	return 0;
}

static int row_to_pack(struct cat *c, sqlite3_stmt *st, struct cat_pack *p)
{
	memset(p, 0, sizeof(*p));
	p->id = sqlite3_column_int64(st, 0);
	p->service = sqlite3_column_int64(st, 1);
	cat__column_text(st, 2, p->file, sizeof(p->file));
	p->size = sqlite3_column_int64(st, 3);
	if (pack_state_parse((const char *)sqlite3_column_text(st, 4), &p->state))
		return cat__err(c, -EUCLEAN, "pack %lld: unknown state", (long long)p->id);
	if (sqlite3_column_count(st) > 5)
		p->bytes_ref = sqlite3_column_int64(st, 5);
	/* Checked on the way in, checked again on the way to unlink(). */
	return check_file(c, p->file) ? -EUCLEAN : 0;
}

/* All rows of `st` into a malloc'ed array; resets `st`. */
static int pack_rows(struct cat *c, sqlite3_stmt *st, struct cat_pack **out, size_t *n)
{
	struct cat_pack *arr = NULL;
	size_t cap = 0, cnt = 0;
	int rc, ret = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cat__grow((void **)&arr, &cap, cnt, sizeof(*arr))) {
			ret = cat__err(c, -ENOMEM, "no memory for the pack list");
			break;
		}
		if ((ret = row_to_pack(c, st, &arr[cnt++])))
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = cat__sqlerr(c, rc, "listing packs");
	cat__done(st);
	if (ret) {
		free(arr);
		return ret;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int cat_pack_add(struct cat *c, int64_t service, const char *file, int64_t *pack)
{
	static const char sql[] = "INSERT INTO pack (service, file, state, created_us) "
				  "VALUES (?1, ?2, 'open', ?3)";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = check_file(c, file)) || (ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	sqlite3_bind_text(st, 2, file, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, cat__now(c));
	ret = cat__exec(c, st, "adding a pack");
	if (ret == -EEXIST)
		return cat__err(c, ret, "pack %s is already in the catalog", file);
	if (ret == -ENOENT)
		return cat__err(c, ret, "pack %s: no service %lld", file, (long long)service);
	if (ret)
		return ret;
	/* One statement, autocommit: the rowid is still this connection's last insert. */
	*pack = sqlite3_last_insert_rowid(c->db);
	return 0;
}

/* Inside the caller's transaction. */
static int pack_state(struct cat *c, int64_t pack, enum cat_pack_state *state)
{
	static const char sql[] = "SELECT state FROM pack WHERE id = ?1";
	sqlite3_stmt *st;
	int rc, ret = 0;

	if ((ret = cat__stmt_id(c, sql, pack, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		ret = cat__err(c, -ENOENT, "no pack %lld", (long long)pack);
	else if (rc != SQLITE_ROW)
		ret = cat__sqlerr(c, rc, "reading a pack's state");
	else if (pack_state_parse((const char *)sqlite3_column_text(st, 0), state))
		ret = cat__err(c, -EUCLEAN, "pack %lld: unknown state", (long long)pack);
	cat__done(st);
	return ret;
}

int cat_pack_seal(struct cat *c, int64_t pack, int64_t size)
{
	static const char sql[] = "UPDATE pack SET state = 'sealed', size = ?2 WHERE id = ?1";
	enum cat_pack_state state;
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if (size < 0)
		return cat__err(c, -EINVAL, "pack %lld: negative size", (long long)pack);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = pack_state(c, pack, &state)))
		goto err;
	if (state != CAT_PACK_OPEN) {
		ret = cat__err(c, -EINVAL, "pack %lld is %s: only an open pack can be sealed",
			       (long long)pack, pack_state_names[state]);
		goto err;
	}
	if ((ret = cat__stmt_id(c, sql, pack, &st)))
		goto err;
	sqlite3_bind_int64(st, 2, size);
	if ((ret = cat__exec(c, st, "sealing a pack")))
		goto err;
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

/* Inside the transaction: `gen` is pending and `pack` is not dead (invariants 3, 4). */
static int check_ref(struct cat *c, int64_t gen, int64_t pack)
{
	static const char sql[] = "SELECT state FROM generation WHERE id = ?1";
	enum cat_gen_state gstate;
	enum cat_pack_state pstate;
	sqlite3_stmt *st;
	int rc, ret;

	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    cat__gen_state_parse((const char *)sqlite3_column_text(st, 0), &gstate))
		ret = cat__err(c, -EUCLEAN, "generation %lld: unknown state", (long long)gen);
	else if (rc == SQLITE_DONE)
		ret = cat__err(c, -ENOENT, "no generation %lld", (long long)gen);
	else if (rc != SQLITE_ROW)
		ret = cat__sqlerr(c, rc, "reading a generation's state");
	cat__done(st);
	if (ret)
		return ret;
	if (gstate != CAT_GEN_PENDING)
		return cat__err(c, -EINVAL, "generation %lld is %s: only a pending generation "
				"can take pack references", (long long)gen,
				cat_gen_state_name(gstate));
	if ((ret = pack_state(c, pack, &pstate)))
		return ret;
	if (pstate == CAT_PACK_DEAD)
		return cat__err(c, -EINVAL, "pack %lld is dead (being collected): generation "
				"%lld cannot refer to it", (long long)pack, (long long)gen);
	return 0;
}

int cat_pack_ref(struct cat *c, int64_t gen, int64_t pack, int64_t bytes)
{
	static const char sql[] = "INSERT INTO gen_pack_ref (generation, pack, bytes) "
				  "VALUES (?1, ?2, ?3) ON CONFLICT (generation, pack) "
				  "DO UPDATE SET bytes = bytes + excluded.bytes";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if (bytes < 0)
		return cat__err(c, -EINVAL, "generation %lld, pack %lld: negative byte count",
				(long long)gen, (long long)pack);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = check_ref(c, gen, pack)) || (ret = cat__stmt_id(c, sql, gen, &st)))
		goto err;
	sqlite3_bind_int64(st, 2, pack);
	sqlite3_bind_int64(st, 3, bytes);
	if ((ret = cat__exec(c, st, "adding a pack reference")))
		goto err;
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

int cat_pack_get(struct cat *c, int64_t pack, struct cat_pack *out)
{
	static const char sql[] = "SELECT " PACK_COLUMNS " FROM pack p WHERE p.id = ?1";
	sqlite3_stmt *st;
	int rc, ret = 0;

	cat__clear(c);
	if ((ret = cat__stmt_id(c, sql, pack, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		ret = row_to_pack(c, st, out);
	else if (rc == SQLITE_DONE)
		ret = cat__err(c, -ENOENT, "no pack %lld", (long long)pack);
	else
		ret = cat__sqlerr(c, rc, "reading a pack");
	cat__done(st);
	return ret;
}

int cat_gen_packs(struct cat *c, int64_t gen, struct cat_pack **out, size_t *n)
{
	static const char sql[] = "SELECT " PACK_COLUMNS ", r.bytes FROM gen_pack_ref r "
				  "JOIN pack p ON p.id = r.pack WHERE r.generation = ?1 "
				  "ORDER BY p.id";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	*out = NULL;
	*n = 0;
	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	return pack_rows(c, st, out, n);
}

/* ---- garbage collection ------------------------------------------------------------- */

int cat_gc_begin(struct cat *c, struct cat_pack **out, size_t *n)
{
	static const char mark[] = "UPDATE pack SET state = 'dead' WHERE state = 'sealed' AND "
		"NOT EXISTS (SELECT 1 FROM gen_pack_ref r WHERE r.pack = pack.id)";
	static const char list[] = "SELECT " PACK_COLUMNS " FROM pack p "
				   "WHERE p.state = 'dead' ORDER BY p.id";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	*out = NULL;
	*n = 0;
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = cat__stmt(c, mark, &st)) || (ret = cat__exec(c, st, "marking dead packs")))
		goto err;
	/* Dead ones a crash left behind come back too: their unlink may not have happened. */
	if ((ret = cat__stmt(c, list, &st)) || (ret = pack_rows(c, st, out, n)))
		goto err;
	if ((ret = cat__commit(c))) {
		free(*out);
		*out = NULL;
		*n = 0;
	}
	return ret;
err:
	cat__rollback(c);
	return ret;
}

int cat_gc_done(struct cat *c, int64_t pack)
{
	static const char sql[] = "DELETE FROM pack WHERE id = ?1 AND state = 'dead'";
	enum cat_pack_state state;
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if ((ret = cat__stmt_id(c, sql, pack, &st)))
		return ret;
	if ((ret = cat__exec(c, st, "forgetting a collected pack")))
		return ret;
	if (sqlite3_changes(c->db) == 1)
		return 0;
	/* Nothing deleted: say why. */
	if ((ret = pack_state(c, pack, &state)))
		return ret;
	return cat__err(c, -EINVAL, "pack %lld is %s, not dead: it was not handed out by "
			"cat_gc_begin()", (long long)pack, pack_state_names[state]);
}
