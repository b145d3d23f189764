/*
 * The event log: what happened to the guarded services (checkpoints failed, failovers,
 * recoveries), kept in the catalog so that `hactl status` can show recent history after a
 * restart and a standby can show what it was told. It is bounded: each insert drops the
 * rows more than CAT_EVENT_KEEP ids old, in the same transaction, so the table never needs
 * a separate cleaner. Ids are AUTOINCREMENT and thus increasing, which makes "the newest
 * N" an index range on the rowid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "catalog-int.h"

/* Cut `msg` to fit `size` with its NUL, never inside a UTF-8 sequence. */
static void cut_message(char *buf, size_t size, const char *msg)
{
	size_t len = strnlen(msg, size);

	if (len >= size) {
		len = size - 1;
		while (len && ((unsigned char)msg[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(buf, msg, len);
	buf[len] = 0;
}

int cat__event_insert(struct cat *c, int64_t service, int level, const char *kind,
		      const char *message)
{
	static const char ins[] = "INSERT INTO event (ts_us, service, level, kind, message) "
				  "VALUES (?1, ?2, ?3, ?4, ?5)";
	static const char trim[] = "DELETE FROM event WHERE id <= ?1";
	char buf[CAT_MSG_MAX];
	sqlite3_stmt *st;
	int64_t id;
	int ret;

	cut_message(buf, sizeof(buf), message);
	if ((ret = cat__stmt_id(c, ins, cat__now(c), &st)))
		return ret;
	if (service)
		sqlite3_bind_int64(st, 2, service);
	sqlite3_bind_int(st, 3, level);
	sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, buf, -1, SQLITE_STATIC);
	ret = cat__exec(c, st, "adding an event");
	if (ret == -ENOENT)
		cat__err(c, ret, "event: no service %lld", (long long)service);
	if (ret)
		return ret;
	id = sqlite3_last_insert_rowid(c->db);
	if (id <= CAT_EVENT_KEEP)
		return 0;
	if ((ret = cat__stmt_id(c, trim, id - CAT_EVENT_KEEP, &st)))
		return ret;
	return cat__exec(c, st, "trimming the event log");
}

int cat_event_add(struct cat *c, int64_t service, int level, const char *kind,
		  const char *message)
{
	int ret;

	cat__clear(c);
	if (level < 0 || level > 7)
		return cat__err(c, -EINVAL, "event: level %d is not a syslog priority", level);
	if (!kind || !kind[0] || strnlen(kind, CAT_KIND_MAX) >= CAT_KIND_MAX)
		return cat__err(c, -EINVAL, "event: kind empty or longer than %d bytes",
				CAT_KIND_MAX - 1);
	if (!message)
		return cat__err(c, -EINVAL, "event %s: no message", kind);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = cat__event_insert(c, service, level, kind, message))) {
		cat__rollback(c);
		return ret;
	}
	return cat__commit(c);
}

int cat_event_last(struct cat *c, int64_t service, size_t n, struct cat_event **out,
		   size_t *count)
{
	static const char sql[] = "SELECT id, ts_us, service, level, kind, message FROM event "
				  "WHERE ?1 = 0 OR service = ?1 ORDER BY id DESC LIMIT ?2";
	struct cat_event *arr = NULL, *e;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *st;
	int rc, ret;

	cat__clear(c);
	*out = NULL;
	*count = 0;
	if (!n)
		return 0;
	if ((ret = cat__stmt_id(c, sql, service, &st)))
		return ret;
	sqlite3_bind_int64(st, 2, n > INT64_MAX ? INT64_MAX : (int64_t)n);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cat__grow((void **)&arr, &cap, cnt, sizeof(*arr))) {
			cat__done(st);
			free(arr);
			return cat__err(c, -ENOMEM, "no memory for the event list");
		}
		e = &arr[cnt++];
		e->id = sqlite3_column_int64(st, 0);
		e->ts_us = sqlite3_column_int64(st, 1);
		e->service = sqlite3_column_int64(st, 2);
		e->level = sqlite3_column_int(st, 3);
		cat__column_text(st, 4, e->kind, sizeof(e->kind));
		cat__column_text(st, 5, e->message, sizeof(e->message));
	}
	cat__done(st);
	if (rc != SQLITE_DONE) {
		free(arr);
		return cat__sqlerr(c, rc, "reading events");
	}
	*out = arr;
	*count = cnt;
	return 0;
}
