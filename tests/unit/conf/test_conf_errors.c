/*
 * test_conf_errors.c: configurations that must be refused, each with the exact
 * "file:LINE:" of the fault and the gist of the message.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "conf_test.h"

#define SVC(body) "node = \"alpha\"\nservice \"s\" {\n" body "}\n"	/* body on line 3 */

static void test_unknown_key(void **state)
{
	expect_error(SVC("  command = \"/usr/bin/true\"\n  intervall = \"1s\"\n"),
		     "t.conf:4: service \"s\": unknown key \"intervall\"", NULL);
	expect_error("node = \"a\"\nnodes = \"b\"\n", "t.conf:2: unknown key \"nodes\"", NULL);
	expect_error("services \"x\" {\n}\n", "t.conf:1: unknown key \"services\"", NULL);
	expect_error("tls {\n  certificate = \"/c\"\n}\n",
		     "t.conf:2: tls: unknown key \"certificate\"", NULL);
	/* The section-start hook is not a key users can write. */
	expect_error(SVC("  pidfile = \"/p\"\n  __section_start()\n"),
		     "t.conf:4: service \"s\": unknown key \"__section_start\"", NULL);
}

static void test_bad_duration(void **state)
{
	expect_error(SVC("  pidfile = \"/p\"\n  interval = \"1x\"\n"),
		     "t.conf:4: service \"s\": bad interval \"1x\": expected a number "
		     "followed by ms, s, m or h", NULL);
	expect_error(SVC("  interval = \"0s\"\n"),
		     "t.conf:3: service \"s\": bad interval \"0s\": must be greater than zero",
		     NULL);
	expect_error(SVC("  interval = \"-1s\"\n"), "t.conf:3: service \"s\": bad interval",
		     "expected a number");
	expect_error(SVC("  interval = \"1\"\n"), "t.conf:3:", "expected a number");
	expect_error(SVC("  stop_timeout = \"99999999999999999999h\"\n"),
		     "t.conf:3: service \"s\": bad stop_timeout", "too large");
	expect_error(SVC("  stop_timeout = \"2562047789h\"\n"), "t.conf:3:", "too large");
	expect_error(SVC("  pidfile = \"/p\"\n  checkpoint_timeout = \"0ms\"\n"),
		     "t.conf:4: service \"s\": bad checkpoint_timeout \"0ms\": must be greater "
		     "than zero", NULL);
	expect_error(SVC("  checkpoint_timeout = \"soon\"\n"),
		     "t.conf:3: service \"s\": bad checkpoint_timeout", "expected a number");
}

static void test_bad_values(void **state)
{
	expect_error(SVC("  keep = 0\n"), "t.conf:3: service \"s\": bad keep \"0\"",
		     "from 1 to 1000000");
	expect_error(SVC("  keep_daily = -1\n"), "t.conf:3:", "from 0 to 1000000");
	expect_error(SVC("  keep = 0x10\n"), "t.conf:3:", "whole number");
	expect_error(SVC("  restart = \"sometimes\"\n"),
		     "t.conf:3: service \"s\": bad restart \"sometimes\": expected restore, "
		     "scratch or none", NULL);
	expect_error(SVC("  replication = \"semi\"\n"), "t.conf:3:", "expected async or sync");
	expect_error(SVC("  precopy = \"maybe\"\n"), "t.conf:3:", "expected true or false");
	expect_error(SVC("\n  checkpoint = \"delta\"\n"),
		     "t.conf:4: service \"s\": bad checkpoint \"delta\": expected full or "
		     "incremental", NULL);
	expect_error(SVC("  pidfile = \"run/x.pid\"\n"), "t.conf:3:", "absolute path");
	expect_error("log_level = \"verbose\"\n", "t.conf:1: bad log_level", "debug");
	expect_error("state_dir = \"var/lib\"\n", "t.conf:1:", "absolute path");
	expect_error("control_socket = \"/run/hacd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"\n",
		     "t.conf:1: bad control_socket", "unix socket");
	expect_error("\n\nnode = \"al/pha\"\n", "t.conf:3: bad node \"al/pha\"", "letters");
	expect_error(SVC("  interval = \"1s\"\n  interval = \"2s\"\n"),
		     "t.conf:4: service \"s\": interval is already set at t.conf:3", NULL);
}

static void test_duplicate_service(void **state)
{
	expect_error("service \"s\" {\n  pidfile = \"/a\"\n}\n\n"
		     "service \"s\" {\n  pidfile = \"/b\"\n}\n",
		     "t.conf:5: duplicate service \"s\" (first defined at t.conf:1)", NULL);
	expect_error("tls { ca = /a; cert = /b; key = /c }\nlisten = \"*:1\"\n"
		     "peer \"p\" { address = \"h:1\" }\npeer \"p\" { address = \"h:2\" }\n",
		     "t.conf:4: duplicate peer \"p\" (first defined at t.conf:3)", NULL);
}

static void test_targets(void **state)
{
	expect_error(SVC("  command = \"/usr/bin/true\"\n  pidfile = \"/run/x.pid\"\n"),
		     "t.conf:4: service \"s\": pidfile conflicts with command (line 3)", NULL);
	expect_error(SVC("  cgroup = \"/sys/fs/cgroup/x\"\n  keep = 3\n  pidfile = \"/p\"\n"),
		     "t.conf:5: service \"s\": pidfile conflicts with cgroup (line 3)", NULL);
	expect_error(SVC("  keep = 3\n"),
		     "t.conf:2: service \"s\": needs one of command, pidfile or cgroup", NULL);
	expect_error(SVC("  pidfile = \"/p\"\n  user = \"daemon\"\n"),
		     "t.conf:4: service \"s\": user only applies", NULL);
	expect_error(SVC("  pidfile = \"/p\"\n  restart = scratch\n"),
		     "t.conf:4: service \"s\": restart = \"scratch\" needs a command", NULL);
}

static void test_command(void **state)
{
	char dir[] = "/tmp/hacd-conf-cmd-XXXXXX", path[64], text[256];
	FILE *f;

	expect_error(SVC("  command = \"/nonexistent/hacd-prog --flag\"\n"),
		     "t.conf:3: service \"s\": command \"/nonexistent/hacd-prog\": "
		     "No such file or directory", NULL);
	setenv("PATH", "/usr/bin:/bin", 1);
	expect_error(SVC("  command = \"no-such-prog-hacd\"\n"),
		     "t.conf:3: service \"s\": command \"no-such-prog-hacd\": program not "
		     "found in PATH", NULL);
	expect_error(SVC("  command = \"bin/true\"\n"), "t.conf:3:", "absolute path or a name");
	expect_error(SVC("  command = \"/usr/bin\"\n"), "t.conf:3:", "not a regular file");
	expect_error(SVC("  command = \"/usr/bin/true | cat\"\n"), "t.conf:3:",
		     "shell syntax is not supported");
	expect_error(SVC("  command = \"/usr/bin/true 'a\"\n"), "t.conf:3:", "unterminated quote");
	expect_error(SVC("  command = \"  \"\n"), "t.conf:3:", "empty command");
	/* A file without any execute bit, even for root. */
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/prog", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	chmod(path, 0644);
	snprintf(text, sizeof(text), SVC("  command = \"%s\"\n"), path);
	expect_error(text, "t.conf:3:", "not executable");
	unlink(path);
	rmdir(dir);
}

static void test_user_group(void **state)
{
	expect_error(SVC("  command = \"/usr/bin/true\"\n  user = \"no-such-user-hacd\"\n"),
		     "t.conf:4: service \"s\": unknown user \"no-such-user-hacd\"", NULL);
	expect_error(SVC("  command = \"/usr/bin/true\"\n  user = \"../root\"\n"),
		     "t.conf:4: service \"s\": bad user", NULL);
	expect_error("\nstatus_group = \"no-such-group-hacd\"\n",
		     "t.conf:2: unknown group \"no-such-group-hacd\"", NULL);
}

static void test_unsafe_names(void **state)
{
	static const char *const names[] = { "../x", ".", "..", "a/b", ".hidden", "-x", "",
					     "a b", "x\\ny" };
	char text[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(text, sizeof(text), "\nservice \"%s\" {\n  pidfile = \"/p\"\n}\n",
			 names[i]);
		expect_error(text, "t.conf:2: service \"", "bad name");
	}
	expect_error_flags("tls { ca = /a; cert = /b; key = /c }\n\npeer \"../x\" { address = "
			   "h:1 }\n", CONF_NO_HOST_CHECKS, "t.conf:3: peer \"../x\": bad name", NULL);
}

static void test_peers(void **state)
{
	static const char tls[] = "tls { ca = /a; cert = /b; key = /c }\n";
	static const struct { const char *addr, *why; } bad[] = {
		{ "10.0.0.2", "expected HOST:PORT" },
		{ "10.0.0.2:0", "port must be" },
		{ "10.0.0.2:65536", "port must be" },
		{ "10.0.0.2:77x", "port must be" },
		{ "::1:7788", "brackets" },
		{ "[::1:7788", "missing ']'" },
		{ "[fe80::zz]:1", "bad IPv6" },
		{ "*:7788", "only allowed for listen" },
		{ "bad_host:1", "bad host" },
		{ "999.1.1.1:1", "bad host" },
		{ ":1", "expected HOST:PORT" },
	};
	char text[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s\npeer \"beta\" {\n  address = \"%s\"\n}\n",
			 tls, bad[i].addr);
		expect_error_flags(text, CONF_NO_HOST_CHECKS,
				   "t.conf:4: peer \"beta\": bad address", bad[i].why);
	}
	expect_error("node = alpha\nlisten = \"*:1\"\n", "t.conf:2: replication needs tls",
		     NULL);
	expect_error_flags("tls { ca = /a; cert = /b; key = /c }\nnode = alpha\npeer \"alpha\" "
			   "{ address = h:1 }\n", CONF_NO_HOST_CHECKS, "t.conf:3: peer \"alpha\": "
			   "this is the name of this node", NULL);
	expect_error("\npeer \"beta\" { address = h:1 }\n",
		     "t.conf:2: peer \"beta\": replication needs tls", NULL);
	expect_error_flags("tls {\n  ca = /a\n  key = /c\n}\n", CONF_NO_HOST_CHECKS,
			   "t.conf:2: tls: ca, cert and key go together: cert is missing", NULL);
	expect_error_flags("tls { ca = /a; cert = /b; key = /c }\npeer \"b\" {\n}\n",
			   CONF_NO_HOST_CHECKS, "t.conf:2: peer \"b\": needs an address", NULL);
	expect_error_flags("tls { ca = /a; cert = /b; key = /c }\npeer \"b\" {\n  address = "
			   "h:1\n  bandwidth = \"10X\"\n}\n", CONF_NO_HOST_CHECKS,
			   "t.conf:4: peer \"b\": bad bandwidth \"10X\"", "K, M, G or T");
	expect_error(SVC("  pidfile = \"/p\"\n  replication = sync\n"),
		     "t.conf:4: service \"s\": replication = \"sync\" needs at least one peer",
		     NULL);
	expect_error("tls {\n  ca = \"/nonexistent/ca.pem\"\n  cert = /b\n  key = /c\n}\n",
		     "t.conf:2: tls: cannot read ca \"/nonexistent/ca.pem\"", NULL);
}

/* The silent failures of libconfuse 3.3 that the prescan turns into errors. */
static void test_truncated(void **state)
{
	expect_error("node = \"a\"\n/* never\nclosed\n", "t.conf:2: unterminated /* comment",
		     NULL);
	expect_error("node = \"a\"\n\"never closed\nservice s {}\n",
		     "t.conf:2: unterminated string", NULL);
	expect_error("node = \"a\"\nservice \"s\" {\n  pidfile = \"/p\"\n",
		     "t.conf:2: '{' is never closed", NULL);
	expect_error("node = 'a\n", "t.conf:1: unterminated string", NULL);
}

static void test_syntax(void **state)
{
	expect_error("node \"a\"\n", "t.conf:1: missing equal sign", NULL);
	expect_error("\n}\n", "t.conf:2: unexpected closing brace", NULL);
	expect_error("\nservice {\n}\n", "t.conf:2: missing title", NULL);
	/* libconfuse says nothing about an empty key: we still say where. */
	expect_error("\n'' = x\n", "t.conf:2: syntax error", NULL);
	expect_error("service \"s\" {\n  pidfile = /p\n  \"\" = x\n}\n",
		     "t.conf:3: service \"s\": syntax error", NULL);
	expect_error("\ninclude(\"x.conf\")\n",
		     "t.conf:2: include() is only available in configuration files", NULL);
	/* A trailing ',' is libconfuse syntax: the prescan must let it through. */
	expect_error("\ninclude(\"x.conf\",)\n", "t.conf:2: include() is only", NULL);
	/* Malformed calls, which would make libconfuse leak: refused by the prescan. */
	expect_error("\ninclude(\"a\" \"b\")\n", "t.conf:2: syntax error in the arguments",
		     NULL);
	expect_error("\ninclude(\"a\",\n,)\n", "t.conf:3: syntax error in the arguments",
		     NULL);
	expect_error("\ninclude(\"a\"\n\n", "t.conf:2: '(' is never closed", NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_duplicate_service),
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_command),
		cmocka_unit_test(test_user_group),
		cmocka_unit_test(test_unsafe_names),
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_syntax),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
