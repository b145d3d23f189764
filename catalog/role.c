/*
 * role.c: each service's role on this node, active or standby (issue 7).
 *
 * The role is a fact about this node, not about a generation, so it sits on the
 * service row. It is written in its own transaction (or the caller's batch): a crash
 * right after `hactl promote` answered must not bring the node back standby while
 * the service it restored is gone, and one before the answer leaves the old role,
 * which is what the caller was told (nothing).
 */
#include <errno.h>
#include <string.h>

#include "catalog-int.h"

const char *cat_role_name(enum cat_role r)
{
	switch (r) {
	case CAT_ROLE_ACTIVE:
		return "active";
	case CAT_ROLE_STANDBY:
		return "standby";
	default:
		return "none";
	}
}

int cat_role_get(struct cat *c, int64_t service, enum cat_role *role)
{
	static const char sql[] = "SELECT role FROM service WHERE id = ?1";
	sqlite3_stmt *st;
	int rc, ret;

	cat__clear(c);
	*role = CAT_ROLE_NONE;
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT) {
		const char *s = (const char *)sqlite3_column_text(st, 0);

		if (!strcmp(s, "active"))
			*role = CAT_ROLE_ACTIVE;
		else if (!strcmp(s, "standby"))
			*role = CAT_ROLE_STANDBY;
	}
	cat__done(st);
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return 0;
	return cat__sqlerr(c, rc, "reading a service's role");
}

int cat_role_set(struct cat *c, int64_t service, enum cat_role role)
{
	static const char sql[] = "UPDATE service SET role = ?2, role_us = ?3 "
				  "WHERE id = ?1 AND role IS NOT ?2";
	sqlite3_stmt *st;
	int ret;

	cat__clear(c);
	if (role != CAT_ROLE_ACTIVE && role != CAT_ROLE_STANDBY)
		return cat__err(c, -EINVAL, "service %lld: role %d is neither active nor standby",
				(long long)service, (int)role);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		goto out;
	sqlite3_bind_text(st, 2, cat_role_name(role), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, cat__now(c));
	ret = cat__exec(c, st, "setting a service's role");
out:
	if (ret) {
		cat__rollback(c);
		return ret;
	}
	return cat__commit(c);
}
