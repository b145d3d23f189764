/* ha_atomic_*: the crash-safe file writer everyone reuses. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sample.h"

static int nr_entries(int dirfd)
{
	DIR *d = fdopendir(dup(dirfd));
	int n = 0;

	rewinddir(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n - 2;
}

static void test_atomic_file(void **state)
{
	char *dir = sample_tmpdir();
	int dfd = ha_dir_open(dir, false);
	struct ha_atomic_file af;
	struct stat st;
	size_t len;
	uint8_t *buf;

	assert_int_equal(ha_atomic_write_file(dfd, "state", "one", 3), 0);
	assert_int_equal(ha_atomic_open(&af, dfd, "state"), 0);
	assert_int_equal(nr_entries(dfd), 2);			/* state + its temp */
	assert_int_equal(fstat(af.fd, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ha_write_full(af.fd, "two!", 4), 0);
	buf = sample_slurp(dfd, "state", &len);		/* not visible before commit */
	assert_int_equal(len, 3);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	ha_atomic_abort(&af);
	ha_atomic_abort(&af);					/* idempotent */
	assert_int_equal(nr_entries(dfd), 1);
	assert_int_equal(ha_atomic_open(&af, dfd, "state"), 0);
	assert_int_equal(ha_write_full(af.fd, "two!", 4), 0);
	assert_int_equal(ha_atomic_commit(&af), 0);
	ha_atomic_abort(&af);					/* no-op after commit */
	buf = sample_slurp(dfd, "state", &len);
	assert_int_equal(len, 4);
	assert_memory_equal(buf, "two!", 4);
	free(buf);
	assert_int_equal(nr_entries(dfd), 1);
	assert_int_equal(ha_atomic_open(&af, dfd, "a/b"), -EINVAL);
	assert_int_equal(ha_atomic_open(&af, dfd, ""), -EINVAL);
	assert_int_equal(ha_atomic_commit(&af), -EBADF);
	assert_int_equal(ha_dir_open("/nonexistent/hacd", false), -ENOENT);
	close(dfd);
	sample_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_atomic_file),
	};

	eng_set_log(NULL, 0, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
