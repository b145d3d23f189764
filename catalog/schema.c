/*
 * The catalog schema and its migrations.
 *
 * PRAGMA user_version counts the migrations applied to a catalog. Migration i (1-based)
 * is one static SQL string, applied together with "user_version = i" in one transaction,
 * so a crash mid-upgrade leaves the catalog at version i-1 or i and the next open goes on
 * from there (invariant 10). A catalog whose version is newer than this code knows was
 * written by a newer hacd that may rely on tables or rules we do not know: we refuse it
 * rather than guess, since writing to it could break the invariants of the newer code.
 *
 * Rules for whoever adds a migration: append, never edit a released one (a catalog at
 * that version already ran it); prefer ADD COLUMN and new tables; if a table must be
 * rebuilt, follow sqlite's 12-step ALTER recipe and add a foreign_key_check.
 *
 * Migration 1 is the single-node catalog, migration 2 adds replication and the event log,
 * migration 3 the services' roles (active, standby), migration 4 the page-store
 * generation number of each generation, migration 5 an index that keeps lookups by
 * state independent of how much history a service has.
 * They were written together; the split exists so that the upgrade path is exercised by
 * the tests from the first day instead of from the first upgrade.
 */
#include <errno.h>
#include <stdio.h>

#include "catalog-int.h"

/* "hacd" in PRAGMA application_id, so that `file` and we can tell our catalogs apart. */
#define CAT_APPLICATION_ID 0x68616364

static const char migration_1[] =
	"PRAGMA application_id = 1751212900;\n"	/* CAT_APPLICATION_ID */
	"CREATE TABLE service (\n"
	"	id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	name TEXT NOT NULL UNIQUE,\n"
	"	created_us INTEGER NOT NULL\n"
	");\n"
	/* AUTOINCREMENT: ids of forgotten rows are never handed out again, so an id a
	 * peer, a log line or a crashed GC remembers can never name another row. */
	"CREATE TABLE generation (\n"
	"	id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	service INTEGER NOT NULL REFERENCES service(id),\n"
	"	parent INTEGER REFERENCES generation(id) ON DELETE SET NULL,\n"
	"	state TEXT NOT NULL\n"
	"		CHECK (state IN ('pending', 'complete', 'failed', 'pruned')),\n"
	"	started_us INTEGER NOT NULL,\n"
	"	committed_us INTEGER,\n"
	"	ended_us INTEGER,\n"
	"	pause_us INTEGER CHECK (pause_us >= 0),\n"
	"	bytes_new INTEGER CHECK (bytes_new >= 0),\n"
	"	bytes_total INTEGER CHECK (bytes_total >= 0),\n"
	"	pages INTEGER CHECK (pages >= 0),\n"
	"	checksum INTEGER,\n"
	/* invariant 1 */
	"	CHECK ((state IN ('complete', 'pruned')) =\n"
	"	       (committed_us IS NOT NULL AND pause_us IS NOT NULL AND\n"
	"	        bytes_new IS NOT NULL AND bytes_total IS NOT NULL AND\n"
	"	        pages IS NOT NULL AND checksum IS NOT NULL))\n"
	");\n"
	"CREATE INDEX generation_service ON generation(service);\n"
	"CREATE INDEX generation_parent ON generation(parent);\n"
	"CREATE INDEX generation_pending ON generation(state) WHERE state = 'pending';\n"
	"CREATE TABLE pack (\n"
	"	id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	service INTEGER NOT NULL REFERENCES service(id),\n"
	"	file TEXT NOT NULL UNIQUE,\n"
	"	size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),\n"
	"	state TEXT NOT NULL CHECK (state IN ('open', 'sealed', 'dead')),\n"
	"	created_us INTEGER NOT NULL\n"
	");\n"
	"CREATE INDEX pack_state ON pack(state);\n"
	/* No ON DELETE on pack: deleting a referenced pack row is an error (invariant 4). */
	"CREATE TABLE gen_pack_ref (\n"
	"	generation INTEGER NOT NULL REFERENCES generation(id) ON DELETE CASCADE,\n"
	"	pack INTEGER NOT NULL REFERENCES pack(id),\n"
	"	bytes INTEGER NOT NULL CHECK (bytes >= 0),\n"
	"	PRIMARY KEY (generation, pack)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX gen_pack_ref_pack ON gen_pack_ref(pack);\n"
	/* invariant 2 */
	"CREATE TRIGGER generation_insert BEFORE INSERT ON generation\n"
	"WHEN NEW.state IS NOT 'pending'\n"
	"BEGIN SELECT RAISE(ABORT, 'a generation is created pending'); END;\n"
	"CREATE TRIGGER generation_transition BEFORE UPDATE OF state ON generation\n"
	"WHEN NEW.state IS NOT OLD.state AND NOT (\n"
	"	(OLD.state = 'pending' AND NEW.state IN ('complete', 'failed')) OR\n"
	"	(OLD.state = 'complete' AND NEW.state = 'pruned'))\n"
	"BEGIN SELECT RAISE(ABORT, 'invalid generation state transition'); END;\n"
	/* invariants 3 and 4; fires for the insert half of an upsert too */
	"CREATE TRIGGER gen_pack_ref_insert BEFORE INSERT ON gen_pack_ref\n"
	"WHEN (SELECT state FROM generation WHERE id = NEW.generation) IS NOT 'pending'\n"
	"  OR (SELECT state FROM pack WHERE id = NEW.pack) IS 'dead'\n"
	"BEGIN SELECT RAISE(ABORT, 'pack reference from a generation that is not pending"
	" or to a dead pack'); END;\n"
	"CREATE TRIGGER pack_insert BEFORE INSERT ON pack\n"
	"WHEN NEW.state IS NOT 'open'\n"
	"BEGIN SELECT RAISE(ABORT, 'a pack is created open'); END;\n"
	"CREATE TRIGGER pack_transition BEFORE UPDATE OF state ON pack\n"
	"WHEN NEW.state IS NOT OLD.state AND NOT (\n"
	"	(OLD.state = 'open' AND NEW.state = 'sealed') OR\n"
	"	(OLD.state = 'sealed' AND NEW.state = 'dead' AND\n"
	"	 NOT EXISTS (SELECT 1 FROM gen_pack_ref WHERE pack = NEW.id)))\n"
	"BEGIN SELECT RAISE(ABORT, 'invalid pack state transition'); END;\n";

static const char migration_2[] =
	/* Received generations: where they were taken, and their id there. */
	"ALTER TABLE generation ADD COLUMN origin TEXT;\n"
	"ALTER TABLE generation ADD COLUMN origin_gen INTEGER;\n"
	/* A failed receive must not block receiving the same generation again. */
	"CREATE UNIQUE INDEX generation_origin ON generation(origin, origin_gen)\n"
	"	WHERE origin IS NOT NULL AND state IN ('pending', 'complete');\n"
	/* No row means NONE: most generations are never sent to most peers. */
	"CREATE TABLE gen_peer (\n"
	"	generation INTEGER NOT NULL REFERENCES generation(id) ON DELETE CASCADE,\n"
	"	peer TEXT NOT NULL,\n"
	"	state TEXT NOT NULL CHECK (state IN ('sending', 'consistent', 'failed')),\n"
	"	updated_us INTEGER NOT NULL,\n"
	"	PRIMARY KEY (generation, peer)\n"
	") WITHOUT ROWID;\n"
	"CREATE INDEX gen_peer_state ON gen_peer(state);\n"
	"CREATE TRIGGER gen_peer_insert BEFORE INSERT ON gen_peer\n"
	"WHEN NEW.state IS NOT 'sending'\n"
	"  OR (SELECT state FROM generation WHERE id = NEW.generation) IS NOT 'complete'\n"
	"BEGIN SELECT RAISE(ABORT, 'only a complete generation is sent, starting with"
	" sending'); END;\n"
	"CREATE TRIGGER gen_peer_transition BEFORE UPDATE OF state ON gen_peer\n"
	"WHEN NEW.state IS NOT OLD.state AND NOT (\n"
	"	(OLD.state = 'sending' AND NEW.state IN ('consistent', 'failed')) OR\n"
	"	(OLD.state = 'failed' AND NEW.state = 'sending'))\n"
	"BEGIN SELECT RAISE(ABORT, 'invalid peer state transition'); END;\n"
	"CREATE TABLE event (\n"
	"	id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"	ts_us INTEGER NOT NULL,\n"
	"	service INTEGER REFERENCES service(id) ON DELETE SET NULL,\n"
	"	level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 7),\n"
	"	kind TEXT NOT NULL,\n"
	"	message TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX event_service ON event(service, id);\n";

/*
 * Migration 3: the role of each service on this node (issue 7). NULL means never
 * decided here: hacd picks the default from the config (ha/catalog.h, cat_role_get).
 */
static const char migration_3[] =
	"ALTER TABLE service ADD COLUMN role TEXT CHECK (role IN ('active', 'standby'));\n"
	"ALTER TABLE service ADD COLUMN role_us INTEGER;\n";

/*
 * Migration 4: where a generation's data lives when the agent checkpoints into a page
 * store (engine/store.c): its generation number there. NULL: a plain image directory
 * (gen-<id>, what agents before this migration wrote). The store numbers its
 * generations itself and a standby keeps the active node's numbers (page maps name
 * packs by them), so it is a column of its own, not the id. Two complete generations
 * of a service never share a store generation: a standby that receives a number it
 * already holds from elsewhere must retire its own first.
 */
static const char migration_4[] =
	"ALTER TABLE generation ADD COLUMN store_gen INTEGER CHECK (store_gen > 0);\n"
	"CREATE UNIQUE INDEX generation_store ON generation(service, store_gen)\n"
	"	WHERE store_gen IS NOT NULL AND state = 'complete';\n";

/*
 * Migration 5: generations by service and state. A service checkpointed every second
 * leaves 86400 pruned rows a day until they are forgotten (the agent's FORGET_AFTER_S),
 * and every lookup of a service's complete or pending generations (retention each
 * second, the store GC, the sender, status) used to walk all of them through
 * generation_service. ended_us last: forgetting takes the old ones as a range.
 */
static const char migration_5[] =
	"CREATE INDEX generation_state ON generation(service, state, ended_us);\n";

static const char *const migrations[] = { migration_1, migration_2, migration_3,
					   migration_4, migration_5 };
#define NR_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int cat_schema_version(void)
{
	return NR_MIGRATIONS;
}

static int pragma_int(struct cat *c, const char *sql, int *v)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return cat__sqlerr(c, rc, sql);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW)
		return cat__sqlerr(c, rc, sql);
	return 0;
}

static int check_version(struct cat *c, int *version)
{
	int app, ret;

	if ((ret = pragma_int(c, "PRAGMA application_id", &app)) ||
	    (ret = pragma_int(c, "PRAGMA user_version", version)))
		return ret;
	if (app != 0 && app != CAT_APPLICATION_ID)
		return cat__err(c, -EINVAL, "not a hacd catalog (application_id %#x)",
				(unsigned)app);
	if (*version > NR_MIGRATIONS || *version < 0)
		return cat__err(c, -ENOTSUP, "schema version %d is newer than the %d this "
				"hacd knows: the catalog was written by a newer hacd; upgrade "
				"hacd (downgrading a catalog is not supported)", *version,
				NR_MIGRATIONS);
	return 0;
}

/* Apply migration `to` (1-based) if the catalog is still at version to - 1. */
static int migrate_one(struct cat *c, int to)
{
	char sql[64], *msg = NULL;
	int version, rc, ret;

	if ((ret = cat__begin(c)))
		return ret;
	/* Another process may have upgraded it between our read and our lock. */
	if ((ret = check_version(c, &version)) || version >= to)
		goto out;
	rc = sqlite3_exec(c->db, migrations[to - 1], NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		ret = cat__err(c, cat__errno(rc), "schema migration %d: %s", to,
			       msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		goto out;
	}
	/* A PRAGMA takes no bound parameters; `to` is our own integer. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", to);
	rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		ret = cat__sqlerr(c, rc, sql);
out:
	if (ret) {
		cat__rollback(c);
		return ret;
	}
	return cat__commit(c);
}

int cat__migrate(struct cat *c)
{
	int version, to, ret;

	if ((ret = check_version(c, &version)))
		return ret;
	for (to = version + 1; to <= NR_MIGRATIONS; to++)
		if ((ret = migrate_one(c, to)))
			return ret;
	return 0;
}
