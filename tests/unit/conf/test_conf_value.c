/*
 * test_conf_value.c: the value syntax of the public helpers: durations, sizes, names.
 */
#include "conf_test.h"

static void test_duration(void **state)
{
	static const struct { const char *s; int rc; uint64_t us; } cases[] = {
		{ "250ms", 0, 250000 },
		{ "1s", 0, 1000000 },
		{ "5m", 0, 300000000 },
		{ "1h", 0, 3600000000ULL },
		{ "2562047788h", 0, 2562047788ULL * 3600000000ULL },
		{ "9223372036854ms", 0, 9223372036854000ULL },
		{ "0s", -EDOM, 0 },
		{ "000ms", -EDOM, 0 },
		{ "2562047789h", -ERANGE, 0 },
		{ "9223372036854775808ms", -ERANGE, 0 },
		{ "99999999999999999999999999s", -ERANGE, 0 },
		{ "", -EINVAL, 0 },
		{ "1", -EINVAL, 0 },
		{ "s", -EINVAL, 0 },
		{ "-1s", -EINVAL, 0 },
		{ "+1s", -EINVAL, 0 },
		{ "1.5s", -EINVAL, 0 },
		{ "1 s", -EINVAL, 0 },
		{ " 1s", -EINVAL, 0 },
		{ "1S", -EINVAL, 0 },
		{ "1us", -EINVAL, 0 },
		{ "1d", -EINVAL, 0 },
		{ "1sx", -EINVAL, 0 },
		{ "1x", -EINVAL, 0 },
		{ "99999999999999999999999999x", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t us = 12345;
		int rc = conf_parse_duration(cases[i].s, &us);

		if (rc != cases[i].rc)
			fail_msg("\"%s\": got %d, want %d", cases[i].s, rc, cases[i].rc);
		if (!rc && us != cases[i].us)
			fail_msg("\"%s\": got %llu us", cases[i].s, (unsigned long long)us);
	}
	assert_int_equal(conf_parse_duration(NULL, NULL), -EINVAL);
}

static void test_size(void **state)
{
	static const struct { const char *s; int rc; uint64_t n; } cases[] = {
		{ "1", 0, 1 },
		{ "100M", 0, 100ULL << 20 },
		{ "1k", 0, 1024 },
		{ "3G", 0, 3ULL << 30 },
		{ "2t", 0, 2ULL << 40 },
		{ "8388607T", 0, 8388607ULL << 40 },
		{ "8388608T", -ERANGE, 0 },
		{ "9223372036854775807", 0, 9223372036854775807ULL },
		{ "9223372036854775808", -ERANGE, 0 },
		{ "0", -EDOM, 0 },
		{ "0K", -EDOM, 0 },
		{ "", -EINVAL, 0 },
		{ "M", -EINVAL, 0 },
		{ "1X", -EINVAL, 0 },
		{ "1MB", -EINVAL, 0 },
		{ "1E", -EINVAL, 0 },
		{ "-1M", -EINVAL, 0 },
		{ "1.5M", -EINVAL, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t n = 12345;
		int rc = conf_parse_size(cases[i].s, &n);

		if (rc != cases[i].rc)
			fail_msg("\"%s\": got %d, want %d", cases[i].s, rc, cases[i].rc);
		if (!rc && n != cases[i].n)
			fail_msg("\"%s\": got %llu", cases[i].s, (unsigned long long)n);
	}
}

static void test_names(void **state)
{
	static const char *const good[] = { "cache", "a.b-c_d", "A1", "_x", "9", "x..y",
		"0123456789012345678901234567890123456789012345678901234567890123" };
	static const char *const bad[] = { "", ".", "..", "../x", "a/b", "/x", ".hidden",
		"-x", "a b", "a\n", "caf\xc3\xa9", "x:y",
		"01234567890123456789012345678901234567890123456789012345678901234" };

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (!conf_name_valid(good[i]))
			fail_msg("\"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (conf_name_valid(bad[i]))
			fail_msg("\"%s\" accepted", bad[i]);
	assert_false(conf_name_valid(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_size),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
