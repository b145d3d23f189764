/*
 * conf_test.h: helpers shared by the conf/ unit tests (header-only, each test is its
 * own executable).
 */
#ifndef CONF_TEST_H
#define CONF_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ha/conf.h"

/* Loads text as "t.conf"; fails the test unless it loads. */
static inline struct conf *load_ok(const char *text, unsigned int flags)
{
	struct conf *c = NULL;
	char err[1024];
	int rc;

	rc = conf_load_string(text, "t.conf", flags, &c, err, sizeof(err));
	if (rc)
		fail_msg("expected success, got %d: %s", rc, err);
	assert_non_null(c);
	return c;
}

/*
 * Loads text as "t.conf", wants -EINVAL and a message that starts with prefix (the
 * exact "file:LINE: ") and contains what, if given.
 */
#define expect_error(text, prefix, what) expect_error_flags(text, 0, prefix, what)
#define expect_error_flags(text, flags, prefix, what) do {				\
	struct conf *c_ = NULL;								\
	char err_[1024];								\
	int rc_ = conf_load_string(text, "t.conf", flags, &c_, err_, sizeof(err_));	\
	assert_int_equal(rc_, -EINVAL);							\
	assert_null(c_);								\
	check_message(err_, prefix, what);						\
} while (0)

#define check_message(err, prefix, what) do {						\
	if (strncmp(err, prefix, strlen(prefix)))					\
		fail_msg("message \"%s\" does not start with \"%s\"", err, prefix);	\
	if ((what) && !strstr(err, what ? what : ""))					\
		fail_msg("message \"%s\" does not contain \"%s\"", err, what);		\
} while (0)

#endif /* CONF_TEST_H */
