/*
 * test_conf_parse.c: configurations that must load, and what they load to: every key
 * of the schema, the defaults, conf_service_equal() as a reload uses it, and line
 * numbers that stay right after comments (libconfuse 3.3 miscounts them).
 */
#include <limits.h>
#include <syslog.h>
#include <unistd.h>

#include "conf_test.h"

static char tmpdir[] = "/tmp/hacd-conf-parse-XXXXXX";

static void write_file(const char *name, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	if (!mkdtemp(tmpdir))
		return -1;
	write_file("ca.pem", "ca\n");
	write_file("cert.pem", "cert\n");
	write_file("key.pem", "key\n");
	setenv("PATH", "/usr/bin:/bin", 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

static const char full_fmt[] =
	"# a configuration that sets every key\n"			/* 1 */
	"node = \"alpha\"\n"
	"state_dir = \"/var/lib/hacd-test\"\n"
	"control_socket = \"/run/hacd/test.sock\"\n"
	"status_group = \"daemon\"\n"					/* 5 */
	"log_level = \"debug\"\n"
	"listen = \"*:7788\"\n"
	"tls {\n"
	"  ca = \"%1$s/ca.pem\"\n"
	"  cert = \"%1$s/cert.pem\"\n"					/* 10 */
	"  key = \"%1$s/key.pem\"\n"
	"}\n"
	"service \"cache\" {\n"
	"  command = \"true --port 6390 --save ''\"\n"
	"  interval = \"250ms\"\n"					/* 15 */
	"  keep = 5\n"
	"  keep_hourly = 24\n"
	"  keep_daily = 7\n"
	"  user = \"daemon\"\n"
	"  restart = \"scratch\"\n"					/* 20 */
	"  replication = \"sync\"\n"
	"  precopy = false; checkpoint = \"full\"\n"
	"  stop_timeout = \"1m\"; checkpoint_timeout = \"5s\"\n"
	"}\n"
	"service \"web\" {\n"						/* 25 */
	"  pidfile = \"/run/web.pid\"\n"
	"}\n"
	"service \"batch\" { cgroup = \"/sys/fs/cgroup/unified/batch\"; restart = none }\n"
	"peer \"beta\" {\n"
	"  address = \"10.0.0.2:7788\"\n"				/* 30 */
	"  bandwidth = \"100M\"\n"
	"}\n"
	"peer \"gamma\" { address = \"[2001:db8::1]:7789\" }\n";

static void check_cache(const struct conf_service *s)
{
	assert_string_equal(s->name, "cache");
	assert_int_equal(s->target, CONF_TARGET_COMMAND);
	assert_string_equal(s->command, "true --port 6390 --save ''");
	assert_int_equal(s->argc, 5);
	assert_string_equal(s->argv[0], "true");
	assert_string_equal(s->argv[2], "6390");
	assert_string_equal(s->argv[4], "");
	assert_null(s->argv[5]);
	assert_string_equal(s->program, "/usr/bin/true");
	assert_null(s->pidfile);
	assert_null(s->cgroup);
	assert_int_equal(s->interval_us, 250000);
	assert_int_equal(s->keep, 5);
	assert_int_equal(s->keep_hourly, 24);
	assert_int_equal(s->keep_daily, 7);
	assert_string_equal(s->user, "daemon");
	assert_int_equal(s->restart, CONF_RESTART_SCRATCH);
	assert_int_equal(s->replication, CONF_REPLICATION_SYNC);
	assert_false(s->precopy);
	assert_int_equal(s->checkpoint, CONF_CHECKPOINT_FULL);
	assert_int_equal(s->stop_timeout_us, 60000000);
	assert_int_equal(s->checkpoint_timeout_us, 5000000);
	assert_string_equal(s->file, "t.conf");
	assert_int_equal(s->line, 13);
}

static void check_peers(const struct conf *c)
{
	const struct conf_peer *p = conf_peer_find(c, "beta");

	assert_int_equal(c->n_peers, 2);
	assert_non_null(p);
	assert_string_equal(p->address, "10.0.0.2:7788");
	assert_string_equal(p->host, "10.0.0.2");
	assert_int_equal(p->port, 7788);
	assert_int_equal(p->bandwidth, 100 << 20);
	assert_int_equal(p->line, 29);
	p = conf_peer_find(c, "gamma");
	assert_non_null(p);
	assert_string_equal(p->host, "2001:db8::1");
	assert_int_equal(p->port, 7789);
	assert_int_equal(p->bandwidth, 0);
	assert_null(conf_peer_find(c, "alpha"));
}

static void test_full(void **state)
{
	const struct conf_service *s;
	struct conf *c;
	char *text;

	assert_true(asprintf(&text, full_fmt, tmpdir) > 0);
	c = load_ok(text, 0);
	assert_string_equal(c->path, "t.conf");
	assert_string_equal(c->node, "alpha");
	assert_string_equal(c->state_dir, "/var/lib/hacd-test");
	assert_string_equal(c->control_socket, "/run/hacd/test.sock");
	assert_string_equal(c->status_group, "daemon");
	assert_int_equal(c->log_level, LOG_DEBUG);
	assert_string_equal(c->listen, "*:7788");
	assert_null(c->listen_host);
	assert_int_equal(c->listen_port, 7788);
	assert_non_null(strstr(c->tls_ca, "/ca.pem"));
	assert_non_null(strstr(c->tls_cert, "/cert.pem"));
	assert_non_null(strstr(c->tls_key, "/key.pem"));
	assert_int_equal(c->n_services, 3);
	check_cache(conf_service_find(c, "cache"));
	s = conf_service_find(c, "web");
	assert_int_equal(s->target, CONF_TARGET_PIDFILE);
	assert_string_equal(s->pidfile, "/run/web.pid");
	assert_null(s->argv);
	s = conf_service_find(c, "batch");
	assert_int_equal(s->target, CONF_TARGET_CGROUP);
	assert_string_equal(s->cgroup, "/sys/fs/cgroup/unified/batch");
	assert_int_equal(s->restart, CONF_RESTART_NONE);
	assert_int_equal(s->line, 28);
	assert_null(conf_service_find(c, "nope"));
	check_peers(c);
	conf_free(c);
	free(text);
}

static void test_defaults(void **state)
{
	struct conf *c = load_ok("service \"s\" { command = \"true\" }\n", 0);
	const struct conf_service *s = &c->services[0];
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	assert_string_equal(c->node, host);
	assert_string_equal(c->state_dir, "/var/lib/hacd");
	assert_string_equal(c->control_socket, "/run/hacd/hactl.sock");
	assert_null(c->status_group);
	assert_int_equal(c->log_level, LOG_INFO);
	assert_null(c->listen);
	assert_null(c->tls_ca);
	assert_int_equal(c->n_peers, 0);
	assert_string_equal(s->program, "/usr/bin/true");
	assert_null(s->user);
	assert_int_equal(s->interval_us, 1000000);
	assert_int_equal(s->keep, 20);
	assert_int_equal(s->keep_hourly, 0);
	assert_int_equal(s->keep_daily, 0);
	assert_int_equal(s->restart, CONF_RESTART_RESTORE);
	assert_int_equal(s->replication, CONF_REPLICATION_ASYNC);
	assert_true(s->precopy);
	assert_int_equal(s->checkpoint, CONF_CHECKPOINT_INCREMENTAL);
	assert_int_equal(s->stop_timeout_us, 10000000);
	assert_int_equal(s->checkpoint_timeout_us, 60000000);
	conf_free(c);
}

/* checkpoint_timeout follows the interval unless set: ten of them, at least a minute. */
static void test_checkpoint_timeout_default(void **state)
{
	struct conf *c = load_ok("service \"a\" { command = \"true\"; interval = \"30s\" }\n"
				 "service \"b\" { command = \"true\"; interval = \"5s\" }\n"
				 "service \"c\" { command = \"true\"; interval = \"1000000000h\" }\n"
				 "service \"d\" { command = \"true\"; interval = \"1h\";\n"
				 "  checkpoint_timeout = \"100ms\" }\n", 0);

	assert_int_equal(conf_service_find(c, "a")->checkpoint_timeout_us, 300000000);
	assert_int_equal(conf_service_find(c, "b")->checkpoint_timeout_us, 60000000);
	assert_true(conf_service_find(c, "c")->checkpoint_timeout_us == INT64_MAX);
	assert_int_equal(conf_service_find(c, "d")->checkpoint_timeout_us, 100000);
	conf_free(c);
}

/* An empty file and a file of comments are valid: a standby may guard nothing yet. */
static void test_empty(void **state)
{
	struct conf *c = load_ok("", 0);

	assert_int_equal(c->n_services, 0);
	conf_free(c);
	c = load_ok("# nothing\n/* at all */\n", 0);
	assert_int_equal(c->n_services, 0);
	conf_free(c);
}

/* Numbers are decimal: libconfuse's own int parsing would read 010 as 8. */
static void test_decimal(void **state)
{
	struct conf *c = load_ok("service \"s\" { pidfile = /p; keep = 010 }\n", 0);

	assert_int_equal(c->services[0].keep, 10);
	conf_free(c);
}

static const char reload_a[] =
	"service \"a\" { command = \"true x 'y z'\"; interval = \"1s\" }\n"
	"service \"b\" { pidfile = \"/run/b.pid\" }\n";
static const char reload_b[] =
	"# edited: b moved and a comment added, a's command requoted\n"
	"service \"b\" { pidfile = \"/run/b.pid\" }\n"
	"service \"a\" {\n  command = \"true   x \\\"y z\\\"\"\n  interval = \"1000ms\"\n}\n";
static const char reload_c[] =
	"service \"a\" { command = \"true x 'y z'\"; interval = \"2s\" }\n"
	"service \"b\" { pidfile = \"/run/b.pid\"; keep = 21 }\n";

static void test_equal(void **state)
{
	struct conf *a = load_ok(reload_a, 0), *b = load_ok(reload_b, 0);
	struct conf *c = load_ok(reload_c, 0);

	assert_true(conf_service_equal(conf_service_find(a, "a"), conf_service_find(b, "a")));
	assert_true(conf_service_equal(conf_service_find(a, "b"), conf_service_find(b, "b")));
	/* A changed interval (or keep) restarts that service only. */
	assert_false(conf_service_equal(conf_service_find(a, "a"), conf_service_find(c, "a")));
	assert_false(conf_service_equal(conf_service_find(a, "b"), conf_service_find(c, "b")));
	assert_false(conf_service_equal(conf_service_find(a, "a"), conf_service_find(a, "b")));
	assert_false(conf_service_equal(conf_service_find(a, "a"), NULL));
	conf_free(a);
	conf_free(b);
	conf_free(c);
}

/* Every kind of comment, then an error: the line must be the real one. */
static void test_lines_after_comments(void **state)
{
	expect_error("# one\n"					/* 1 */
		     "## two\n"
		     "// three\n"
		     "/* four\n"
		     "   five */ node = \"a\" # six\n"		/* 5 */
		     "service \"s\" { /* seven */ pidfile = \"/p\"\n"
		     "  /**/ keep = 1 // eight\n"
		     "  bogus = 1\n"
		     "}\n",
		     "t.conf:8: service \"s\": unknown key \"bogus\"", NULL);
}

/* What the lexer treats as words, strings and comments, as the prescan must agree. */
static void test_lexer_agreement(void **state)
{
	struct conf *c = load_ok("state_dir = /a//b # comment\n"
				 "control_socket = \"/x/*not a comment*/\" /* one */\n"
				 "service \"t\" { pidfile = '/run/#x' // two\n}\n"
				 "service \"s\" { command = \"true '{' \\\"}\\\"\" }\n", 0);

	assert_string_equal(c->state_dir, "/a//b");
	assert_string_equal(c->control_socket, "/x/*not a comment*/");
	assert_string_equal(c->services[0].pidfile, "/run/#x");
	assert_int_equal(c->services[1].argc, 3);
	assert_string_equal(c->services[1].argv[1], "{");
	assert_string_equal(c->services[1].argv[2], "}");
	conf_free(c);
}

/* Without host checks nothing is looked up: the fuzzer and foreign configs rely on it. */
static void test_no_host_checks(void **state)
{
	struct conf *c = load_ok("status_group = \"no-such-group-hacd\"\n"
				 "service \"s\" { command = \"no-such-prog-hacd a\"; "
				 "user = \"no-such-user-hacd\" }\n", CONF_NO_HOST_CHECKS);

	assert_string_equal(c->services[0].program, "no-such-prog-hacd");
	assert_string_equal(c->services[0].user, "no-such-user-hacd");
	conf_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_checkpoint_timeout_default),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_decimal),
		cmocka_unit_test(test_equal),
		cmocka_unit_test(test_lines_after_comments),
		cmocka_unit_test(test_lexer_agreement),
		cmocka_unit_test(test_no_host_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
