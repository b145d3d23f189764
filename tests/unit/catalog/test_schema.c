/*
 * Catalog schema: creation and reopening, file and directory modes, WAL, migration of a
 * version-1 catalog written by hand, refusal of a newer or foreign database.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers.h"

/* Migration 1 as released, frozen here: a catalog of that version must keep opening. */
static const char v1_schema[] =
	"PRAGMA application_id = 1751212900;"
	"CREATE TABLE service (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, created_us INTEGER NOT NULL);"
	"CREATE TABLE generation (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" service INTEGER NOT NULL REFERENCES service(id),"
	" parent INTEGER REFERENCES generation(id) ON DELETE SET NULL,"
	" state TEXT NOT NULL CHECK (state IN ('pending', 'complete', 'failed', 'pruned')),"
	" started_us INTEGER NOT NULL, committed_us INTEGER, ended_us INTEGER,"
	" pause_us INTEGER CHECK (pause_us >= 0), bytes_new INTEGER CHECK (bytes_new >= 0),"
	" bytes_total INTEGER CHECK (bytes_total >= 0), pages INTEGER CHECK (pages >= 0),"
	" checksum INTEGER,"
	" CHECK ((state IN ('complete', 'pruned')) = (committed_us IS NOT NULL AND"
	" pause_us IS NOT NULL AND bytes_new IS NOT NULL AND bytes_total IS NOT NULL AND"
	" pages IS NOT NULL AND checksum IS NOT NULL)));"
	"CREATE INDEX generation_service ON generation(service);"
	"CREATE INDEX generation_parent ON generation(parent);"
	"CREATE INDEX generation_pending ON generation(state) WHERE state = 'pending';"
	"CREATE TABLE pack (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" service INTEGER NOT NULL REFERENCES service(id), file TEXT NOT NULL UNIQUE,"
	" size INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),"
	" state TEXT NOT NULL CHECK (state IN ('open', 'sealed', 'dead')),"
	" created_us INTEGER NOT NULL);"
	"CREATE INDEX pack_state ON pack(state);"
	"CREATE TABLE gen_pack_ref ("
	" generation INTEGER NOT NULL REFERENCES generation(id) ON DELETE CASCADE,"
	" pack INTEGER NOT NULL REFERENCES pack(id), bytes INTEGER NOT NULL CHECK (bytes >= 0),"
	" PRIMARY KEY (generation, pack)) WITHOUT ROWID;"
	"CREATE INDEX gen_pack_ref_pack ON gen_pack_ref(pack);"
	"PRAGMA user_version = 1;";

static const char v1_rows[] =
	"INSERT INTO service VALUES (1, 'web', 1000);"
	"INSERT INTO generation (id, service, parent, state, started_us, committed_us,"
	" pause_us, bytes_new, bytes_total, pages, checksum)"
	" VALUES (1, 1, NULL, 'complete', 2000, 3000, 50, 4096, 4096, 1, -42);"
	"INSERT INTO generation (id, service, parent, state, started_us)"
	" VALUES (2, 1, 1, 'pending', 4000);"
	"INSERT INTO pack VALUES (1, 1, 'pack-1', 4096, 'sealed', 2500);"
	"INSERT INTO gen_pack_ref VALUES (1, 1, 4096);";

static void make_dir_path(char *dir, char *path)
{
	t_mkdtemp(dir);
	snprintf(path, T_PATH_MAX, "%s/catalog.db", dir);
}

static void test_create_reopen(void **state)
{
	char dir[PATH_MAX], sub[T_PATH_MAX], path[T_PATH_MAX + 64], mode[16];
	struct cat *c;
	struct stat st;
	int64_t svc, again, v;

	t_mkdtemp(dir);
	/* The directory is created 0700 when missing. */
	snprintf(sub, sizeof(sub), "%s/state", dir);
	snprintf(path, sizeof(path), "%s/catalog.db", sub);
	assert_int_equal(cat_open(path, &c), 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(cat_service_ensure(c, "web", &svc), 0);
	assert_int_equal(cat_verify(c), 0);
	cat_close(c);

	assert_int_equal(t_sql_int(path, "PRAGMA user_version", &v), 0);
	assert_int_equal(v, cat_schema_version());
	assert_int_equal(t_sql_text(path, "PRAGMA journal_mode", mode, sizeof(mode)), 0);
	assert_string_equal(mode, "wal");

	/* Reopen: same schema, same rows, nothing migrated twice. */
	assert_int_equal(cat_open(path, &c), 0);
	assert_int_equal(cat_service_ensure(c, "web", &again), 0);
	assert_int_equal(again, svc);
	assert_int_equal(cat_service_ensure(c, "db", &again), 0);
	assert_true(again != svc);
	assert_int_equal(cat_service_ensure(c, "", &again), -EINVAL);
	assert_int_equal(cat_service_ensure(c, "a\nb", &again), -EINVAL);
	assert_non_null(strstr(cat_errmsg(c), "control character"));
	cat_close(c);
	cat_close(NULL);
	t_rmrf(dir);
}

static void test_dir_must_be_private(void **state)
{
	char dir[PATH_MAX], path[T_PATH_MAX];
	struct cat *c = (void *)1;

	make_dir_path(dir, path);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(cat_open(path, &c), -EPERM);
	assert_null(c);
	assert_non_null(strstr(cat_errmsg(NULL), "chmod 700"));
	assert_int_equal(cat_open("", &c), -EINVAL);
	/* Private but someone else's: refused too (only root can give it away). */
	assert_int_equal(chmod(dir, 0700), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, 65534, 65534), 0);
		assert_int_equal(cat_open(path, &c), -EPERM);
		assert_non_null(strstr(cat_errmsg(NULL), "owned by uid 65534"));
	}
	t_rmrf(dir);
}

static void test_migrate_from_v1(void **state)
{
	char dir[PATH_MAX], path[T_PATH_MAX];
	struct cat_gen g;
	struct cat_pack *packs;
	struct cat_event *ev;
	struct cat *c;
	struct stat st;
	int64_t v, svc;
	size_t n;

	make_dir_path(dir, path);
	assert_int_equal(t_sql_exec(path, v1_schema), 0);	/* raw sqlite: mode 0644 */
	assert_int_equal(t_sql_exec(path, v1_rows), 0);

	assert_int_equal(cat_open(path, &c), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(t_sql_int(path, "PRAGMA user_version", &v), 0);
	assert_int_equal(v, cat_schema_version());
	assert_int_equal(cat_verify(c), 0);

	/* The old rows survived and read with the new columns. */
	assert_int_equal(cat_service_ensure(c, "web", &svc), 0);
	assert_int_equal(svc, 1);
	assert_int_equal(cat_gen_get(c, 1, &g), 0);
	assert_int_equal(g.state, CAT_GEN_COMPLETE);
	assert_int_equal(g.stats.checksum, (uint64_t)-42);
	assert_string_equal(g.origin, "");
	assert_int_equal(cat_gen_packs(c, 1, &packs, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(packs[0].file, "pack-1");
	free(packs);

	/* What migration 2 added works on them. */
	assert_int_equal(cat_gen_peer_set(c, 1, "standby", CAT_PEER_SENDING), 0);
	assert_int_equal(cat_event_add(c, svc, 6, "migrated", "hello"), 0);
	assert_int_equal(cat_event_last(c, 0, 5, &ev, &n), 0);
	assert_int_equal(n, 1);
	free(ev);
	/* And migration 3: an old service has no role until hacd gives it one. */
	{
		enum cat_role r;

		assert_int_equal(cat_role_get(c, svc, &r), 0);
		assert_int_equal(r, CAT_ROLE_NONE);
		assert_int_equal(cat_role_set(c, svc, CAT_ROLE_ACTIVE), 0);
		assert_int_equal(cat_role_get(c, svc, &r), 0);
		assert_int_equal(r, CAT_ROLE_ACTIVE);
	}
	/* The old pending generation is recovered like any other. */
	assert_int_equal(cat_recover(c), 1);
	cat_close(c);
	t_rmrf(dir);
}

static void test_refuse_newer(void **state)
{
	char dir[PATH_MAX], path[T_PATH_MAX];
	struct cat *c;
	int64_t v;

	make_dir_path(dir, path);
	assert_int_equal(cat_open(path, &c), 0);
	cat_close(c);
	assert_int_equal(t_sql_exec(path, "PRAGMA user_version = 99"), 0);
	assert_int_equal(cat_open(path, &c), -ENOTSUP);
	assert_null(c);
	assert_non_null(strstr(cat_errmsg(NULL), "newer"));
	assert_non_null(strstr(cat_errmsg(NULL), path));
	/* Refused without being touched. */
	assert_int_equal(t_sql_int(path, "PRAGMA user_version", &v), 0);
	assert_int_equal(v, 99);
	t_rmrf(dir);
}

static void test_refuse_foreign(void **state)
{
	char dir[PATH_MAX], path[T_PATH_MAX];
	struct cat *c;
	FILE *f;

	make_dir_path(dir, path);
	assert_int_equal(t_sql_exec(path, "PRAGMA application_id = 7; "
				    "CREATE TABLE t (x)"), 0);
	assert_int_equal(cat_open(path, &c), -EINVAL);
	assert_non_null(strstr(cat_errmsg(NULL), "not a hacd catalog"));
	assert_int_equal(remove(path), 0);

	/* Not a database at all. */
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not an sqlite database, but it is long enough to have a header....\n"
	      "................................................................\n", f);
	fclose(f);
	assert_int_equal(cat_open(path, &c), -EUCLEAN);
	t_rmrf(dir);
}

static void test_triggers_guard_raw_sql(void **state)
{
	struct tctx *t = *state;
	int64_t gen;

	/* Even SQL that bypasses the library cannot break the state machine. */
	assert_int_equal(cat_gen_begin(t->c, t->svc, 0, &gen), 0);
	assert_int_not_equal(t_sql_exec(t->path, "UPDATE generation SET state = 'pruned'"), 0);
	assert_int_not_equal(t_sql_exec(t->path, "UPDATE generation SET state = 'complete'"),
			     0);	/* no stats: CHECK */
	assert_int_not_equal(t_sql_exec(t->path, "INSERT INTO generation (service, state, "
					 "started_us) VALUES (1, 'failed', 1)"), 0);
	assert_int_equal(cat_verify(t->c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_reopen),
		cmocka_unit_test(test_dir_must_be_private),
		cmocka_unit_test(test_migrate_from_v1),
		cmocka_unit_test(test_refuse_newer),
		cmocka_unit_test(test_refuse_foreign),
		cmocka_unit_test_setup_teardown(test_triggers_guard_raw_sql, t_setup, t_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
