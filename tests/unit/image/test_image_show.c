/*
 * eng_image_show (text and JSON), and hactl image show/verify as a user runs them:
 * every record printed with its fields, bad files and bad records reported in place
 * while the rest is still shown, and the exit codes 0, 65 (damaged), 64 (usage), 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sample.h"

static const char *hactl;

static char *show(const char *dir, bool json, int *ret)
{
	char *out = NULL;
	size_t len;
	FILE *f = open_memstream(&out, &len);

	*ret = eng_image_show(dir, f, json);
	fclose(f);
	return out;
}

static void has(const char *out, const char *what)
{
	if (!strstr(out, what))
		fail_msg("output lacks \"%s\":\n%s", what, out);
}

static void test_text(void **state)
{
	struct sample_dir *fx = *state;
	int ret;
	char *out = show(fx->dir, false, &ret);

	assert_int_equal(ret, 0);
	/* Kind order: inventory first, raw data last. */
	assert_true(strstr(out, "inventory.img:") == out);
	assert_true(strstr(out, "pstree.img:") < strstr(out, "core-4242.img:"));
	assert_true(strstr(out, "fds-4242.img:") < strstr(out, "pages-4242.img:"));
	has(out, "inventory.img:\n  header: magic \"HACD\", kind inventory, format 1, id 0\n"
		 "  1 records, ");
	has(out, "  record 0 (ImgInventory, ");
	has(out, "    pids: [4242]\n");
	has(out, "    vdso[2] { part: VDSO_PART_VDSO start: 0x7ffff7fbe000 end: 0x7ffff7fc0000 }\n");
	has(out, "    umask: 022\n");
	has(out, "    sigactions[1] { handler: 0x401136 flags: 0x4000000 restorer: 0x7ffff7df1050 mask: 0x0 }\n");
	has(out, "    creds {\n      uid: 1000\n");
	has(out, "      groups: [0, 4, 27]\n");
	has(out, "    rlimits[0] { cur: 18446744073709551615 max: 18446744073709551615 }\n");
	has(out, "    regs {\n      r15: 0x1000\n");
	has(out, "      gs: 0x101a\n    }\n");
	has(out, "    xstate: <2688 bytes 7f030000000000000000000000000000...>\n");
	has(out, "    shared_pending[0]: <128 bytes 0a000000000000000000000000000000...>\n");
	has(out, "  record 4 (ImgVma, ");
	has(out, "    kind: VMA_STACK\n");
	has(out, "    path: \"/usr/bin/sample\"\n");
	has(out, "    mode: 0100600\n");
	has(out, "pages-4242.img:\n  header: magic \"HACD\", kind pages, format 1, id 4242\n"
		 "  12288 bytes of data\n");
	has(out, "ghost-1.img:\n  header: magic \"HACD\", kind ghost, format 1, id 1\n");
	free(out);
}

/* The JSON is checked by a real parser when python3 is there. */
static void test_json(void **state)
{
	struct sample_dir *fx = *state;
	int ret;
	char *out = show(fx->dir, true, &ret);
	FILE *py;

	assert_int_equal(ret, 0);
	has(out, "{\"dir\": \"");
	has(out, "\"file\": \"core-4242.img\", \"kind\": \"core\", \"format\": 1, \"id\": 4242");
	has(out, "\"xstate\": {\"len\": 2688, \"hex\": \"7f03");
	has(out, "\"kind\": \"VMA_HEAP\"");
	has(out, "\"errors\": 0}");
	if (system("python3 -c '' 2>/dev/null")) {
		free(out);
		skip();
	}
	py = popen("python3 -c 'import json,sys; d=json.load(sys.stdin); "
		   "assert len(d[\"files\"]) == 9; "
		   "assert d[\"files\"][3][\"records\"][1][\"fields\"][\"regs\"][\"rip\"] == 0x1010; "
		   "assert d[\"files\"][4][\"records\"][3][\"fields\"][\"start\"] == 0x7ffff7fbe000'", "w");
	fputs(out, py);
	assert_int_equal(pclose(py), 0);
	free(out);
}

static void test_bad_files_reported_in_place(void **state)
{
	struct sample_dir *fx = *state;
	int ret;
	char *out;
	size_t len;
	uint8_t *mm = sample_slurp(fx->dirfd, "mm-4242.img", &len);

	assert_int_equal(sample_spit(fx->dirfd, "notes.txt", "hi", 2), 0);
	mm[len - 20] ^= 1;		/* in the last VMA's payload */
	assert_int_equal(sample_spit(fx->dirfd, "mm-4242.img", mm, len), 0);
	out = show(fx->dir, false, &ret);
	assert_int_equal(ret, -EBADMSG);
	has(out, "mm-4242.img:\n  error: mm-4242.img: record 4 (ImgVma, offset ");
	has(out, "notes.txt:\n  error: notes.txt: not an image file name\n");
	has(out, "pagemap-4242.img:\n  header:");	/* the walk went on */
	has(eng_last_error(), ": 2 of 10 files are not valid images");
	free(out);
	out = show(fx->dir, true, &ret);
	has(out, "{\"file\": \"notes.txt\", \"error\": \"notes.txt: not an image file name\"}");
	has(out, "\"errors\": 2}");
	free(out);
	free(mm);
}

/* Runs hactl with args, stdout and stderr into out (both), returns the exit code. */
static int run_hactl(char *out, size_t len, const char *a1, const char *a2, const char *a3,
		     const char *a4)
{
	int p[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (!pid) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		execl(hactl, "hactl", a1, a2, a3, a4, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], out + got, len - 1 - got)) > 0)
		got += n;
	out[got] = 0;
	close(p[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void test_hactl(void **state)
{
	struct sample_dir *fx = *state;
	static char out[1 << 20];
	size_t len;
	uint8_t *buf;

	assert_int_equal(run_hactl(out, sizeof(out), "image", "show", fx->dir, NULL), 0);
	has(out, "  record 3 (ImgPagemapEntry, ");
	assert_int_equal(run_hactl(out, sizeof(out), "image", "show", fx->dir, "--json"), 0);
	has(out, "\"errors\": 0}");
	assert_int_equal(run_hactl(out, sizeof(out), "image", "verify", fx->dir, NULL), 0);
	has(out, ": ok: 9 files, 21 records, 17288 data bytes checked\n");
	assert_int_equal(run_hactl(out, sizeof(out), "image", NULL, NULL, NULL), 64);
	assert_int_equal(run_hactl(out, sizeof(out), "image", "show", NULL, NULL), 64);
	assert_int_equal(run_hactl(out, sizeof(out), "image", "verify", "/nonexistent", NULL), 1);

	buf = sample_slurp(fx->dirfd, "pages-4242.img", &len);
	buf[len - 1] ^= 1;
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", buf, len), 0);
	assert_int_equal(run_hactl(out, sizeof(out), "image", "show", fx->dir, NULL), 0);
	assert_int_equal(run_hactl(out, sizeof(out), "image", "verify", fx->dir, NULL), 65);
	has(out, "1 problems, the first: pagemap-4242.img: record 3 (ImgPagemapEntry): field xxh3");
	buf[len - 1] ^= 1;
	buf[3] ^= 1;
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", buf, len), 0);
	assert_int_equal(run_hactl(out, sizeof(out), "image", "show", fx->dir, NULL), 65);
	has(out, "pages-4242.img: header: magic 0x45434148 is not \"HACD\"");
	free(buf);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, sample_setup_written, sample_teardown)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		TEST(test_text),
		TEST(test_json),
		TEST(test_bad_files_reported_in_place),
		TEST(test_hactl),
	};

	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH-TO-HACTL\n", argv[0]);
		return 2;
	}
	hactl = argv[1];
	eng_set_log(NULL, 0, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
