/*
 * test_conf_include.c: conf_load() of real files and include() globs, in a fresh
 * mkdtemp() directory per test.
 */
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_test.h"

struct dir {
	char path[64];
};

static int setup(void **state)
{
	struct dir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	strcpy(d->path, "/tmp/hacd-conf-inc-XXXXXX");
	if (!mkdtemp(d->path))
		return -1;
	setenv("PATH", "/usr/bin:/bin", 1);
	*state = d;
	return 0;
}

static int teardown(void **state)
{
	struct dir *d = *state;
	char cmd[128];
	int rc;

	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->path);
	rc = system(cmd);
	free(d);
	return rc;
}

/* Writes dir/name (making dir/sub for "sub/x"); returns the full path, static. */
static const char *put(const struct dir *d, const char *name, const char *text)
{
	static char path[PATH_MAX];
	const char *slash = strrchr(name, '/');
	FILE *f;

	if (slash) {
		snprintf(path, sizeof(path), "%s/%.*s", d->path, (int)(slash - name), name);
		mkdir(path, 0755);
	}
	snprintf(path, sizeof(path), "%s/%s", d->path, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(text, 1, strlen(text), f);
	fclose(f);
	return path;
}

/* conf_load() of dir/main.conf that must fail with a message starting "dir/prefix". */
static void load_fails(const struct dir *d, const char *prefix, const char *what)
{
	char path[PATH_MAX], want[PATH_MAX], err[1024];
	struct conf *c = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/main.conf", d->path);
	snprintf(want, sizeof(want), "%s/%s", d->path, prefix);
	rc = conf_load(path, 0, &c, err, sizeof(err));
	assert_int_equal(rc, -EINVAL);
	assert_null(c);
	check_message(err, want, what);
}

static struct conf *load_main(const struct dir *d)
{
	char path[PATH_MAX], err[1024];
	struct conf *c = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/main.conf", d->path);
	rc = conf_load(path, 0, &c, err, sizeof(err));
	if (rc)
		fail_msg("conf_load: %d: %s", rc, err);
	return c;
}

static void test_glob(void **state)
{
	struct dir *d = *state;
	struct conf *c;

	put(d, "main.conf", "node = \"alpha\"\ninclude(\"conf.d/*.conf\")\n"
	       "include(\"empty.d/*.conf\")\ninclude(\"missing/*.conf\")\n"
	       "service \"main\" { pidfile = /p }\n");
	put(d, "conf.d/20-b.conf", "service \"b\" { command = \"true b\" }\n");
	put(d, "conf.d/10-a.conf", "# a\nservice \"a\" { command = \"true a\" }\n"
	       "include(\"../extra.conf\")\n");
	put(d, "conf.d/README", "this is not a config file {\n");
	put(d, "empty.d/.keep", "");
	put(d, "extra.conf", "status_group = \"daemon\"\n");
	c = load_main(d);
	assert_int_equal(c->n_services, 3);
	/* The main file first, then includes depth first, each glob in strcmp order. */
	assert_string_equal(c->services[0].name, "main");
	assert_string_equal(c->services[1].name, "a");
	assert_string_equal(c->services[2].name, "b");
	assert_string_equal(c->services[2].argv[1], "b");
	assert_string_equal(c->status_group, "daemon");
	assert_non_null(strstr(c->services[1].file, "/conf.d/10-a.conf"));
	assert_int_equal(c->services[1].line, 2);
	conf_free(c);
}

/* An error inside an included file names that file and its own line. */
static void test_error_in_included(void **state)
{
	struct dir *d = *state;

	put(d, "main.conf", "# main\n\ninclude(\"conf.d/*.conf\")\nnode = \"alpha\"\n");
	put(d, "conf.d/a.conf", "service \"a\" { command = \"true\" }\n");
	put(d, "conf.d/b.conf", "/* comment\n */\nservice \"b\" {\n  command = \"true\"\n"
	       "  interval = \"1x\"\n}\n");
	load_fails(d, "conf.d/b.conf:5: service \"b\": bad interval \"1x\"", NULL);
}

static void test_duplicates_across_files(void **state)
{
	struct dir *d = *state;
	char want[PATH_MAX];

	put(d, "main.conf", "include(\"conf.d/*.conf\")\n");
	put(d, "conf.d/a.conf", "\nservice \"x\" { pidfile = /a }\n");
	put(d, "conf.d/b.conf", "\n\nservice \"x\" { pidfile = /b }\n");
	snprintf(want, sizeof(want), "(first defined at %s/conf.d/a.conf:2)", d->path);
	load_fails(d, "conf.d/b.conf:3: duplicate service \"x\"", want);

	put(d, "main.conf", "node = \"alpha\"\ninclude(\"node.conf\")\n");
	put(d, "node.conf", "node = \"beta\"\n");
	snprintf(want, sizeof(want), "node is already set at %s/main.conf:1", d->path);
	load_fails(d, "node.conf:1: ", want);
}

static void test_include_errors(void **state)
{
	struct dir *d = *state;

	put(d, "main.conf", "\ninclude(\"nope.conf\")\n");
	load_fails(d, "main.conf:2: include \"nope.conf\": no such file", NULL);

	put(d, "main.conf", "include(\"main.conf\")\n");
	load_fails(d, "main.conf:1: include \"main.conf\":", "already read");

	put(d, "main.conf", "include(\"loop/a.conf\")\n");
	put(d, "loop/a.conf", "include(\"b.conf\")\n");
	put(d, "loop/b.conf", "\ninclude(\"a.conf\")\n");
	load_fails(d, "loop/b.conf:2: include \"a.conf\":", "already read");

	put(d, "main.conf", "include(\"a.conf\", \"b.conf\")\n");
	load_fails(d, "main.conf:1: include() takes one", NULL);

	put(d, "main.conf", "include(\"sub\")\n");
	put(d, "sub/x", "");
	load_fails(d, "main.conf:1: include \"sub\":", "Is a directory");

	put(d, "main.conf", "service \"s\" {\n  include(\"x.conf\")\n}\n");
	load_fails(d, "main.conf:2: service \"s\": unknown key \"include\"", NULL);
}

static void test_depth(void **state)
{
	struct dir *d = *state;
	char name[32], text[64];

	put(d, "main.conf", "include(\"d1.conf\")\n");
	for (int i = 1; i <= 9; i++) {
		snprintf(name, sizeof(name), "d%d.conf", i);
		snprintf(text, sizeof(text), "\ninclude(\"d%d.conf\")\n", i + 1);
		put(d, name, text);
	}
	put(d, "d10.conf", "");
	load_fails(d, "d7.conf:2: include \"d8.conf\": includes nested more than 8", NULL);
}

static void test_main_file(void **state)
{
	struct dir *d = *state;
	char path[PATH_MAX], err[1024];
	struct conf *c = NULL;
	static const char nul[] = "node = \"a\"\n\nstate_dir = \"/x\0y\"\n";
	FILE *f;

	snprintf(path, sizeof(path), "%s/none.conf", d->path);
	assert_int_equal(conf_load(path, 0, &c, err, sizeof(err)), -ENOENT);
	assert_null(c);
	assert_non_null(strstr(err, "none.conf: No such file or directory"));
	assert_int_equal(conf_load(d->path, 0, &c, err, sizeof(err)), -EISDIR);

	snprintf(path, sizeof(path), "%s/main.conf", d->path);
	f = fopen(path, "w");
	assert_non_null(f);
	fwrite(nul, 1, sizeof(nul) - 1, f);
	fclose(f);
	load_fails(d, "main.conf:3: NUL byte", NULL);
}

/*
 * packaging/hacd.conf.example loads as shipped, and again with every commented-out
 * setting enabled ("#key", "#\tkey", "#}"), to the values its comments promise.
 */
static void test_example(void **state)
{
	struct dir *d = *state;
	char line[512], path[PATH_MAX], err[1024];
	const struct conf_service *s;
	struct conf *c = NULL;
	FILE *in, *out;

	assert_int_equal(conf_load(HACD_EXAMPLE, 0, &c, err, sizeof(err)), 0);
	assert_int_equal(c->n_services, 0);
	conf_free(c);

	in = fopen(HACD_EXAMPLE, "r");
	snprintf(path, sizeof(path), "%s/main.conf", d->path);
	out = fopen(path, "w");
	assert_non_null(in);
	assert_non_null(out);
	while (fgets(line, sizeof(line), in))
		fputs(line[0] == '#' && line[1] != ' ' && line[1] != '\n' ? line + 1 : line, out);
	fclose(in);
	fclose(out);
	assert_int_equal(conf_load(path, CONF_NO_HOST_CHECKS, &c, err, sizeof(err)), 0);
	assert_string_equal(c->node, "alpha");
	assert_string_equal(c->status_group, "adm");
	assert_int_equal(c->listen_port, 7788);
	s = conf_service_find(c, "cache");
	assert_non_null(s);
	assert_int_equal(s->target, CONF_TARGET_COMMAND);
	assert_int_equal(s->interval_us, 1000000);
	assert_int_equal(s->keep_hourly, 24);
	assert_int_equal(conf_peer_find(c, "beta")->bandwidth, 100 << 20);
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_glob, setup, teardown),
		cmocka_unit_test_setup_teardown(test_error_in_included, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates_across_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_include_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_main_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_example, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
