/*
 * Per-peer replication state of complete generations (the second machine drawn in
 * ha/catalog.h). The replica sender moves a generation to SENDING before it reads the
 * generation's packs, to CONSISTENT when the standby acknowledges having verified every
 * checksum, to FAILED when the transfer breaks; it may retry from FAILED. SENDING pins the
 * generation against retention (invariant 6), and cat_recover() turns a SENDING left by
 * a crash into FAILED so that the pin cannot outlive the sender.
 * Setting the state a peer already has is allowed and only refreshes updated_us: a
 * duplicate acknowledgement or a "still sending" is not an error.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "catalog-int.h"

static const char *const peer_state_names[] = {
	[CAT_PEER_NONE] = "none",
	[CAT_PEER_SENDING] = "sending",
	[CAT_PEER_CONSISTENT] = "consistent",
	[CAT_PEER_FAILED] = "failed",
};

/* allowed[from][to], the edges of the drawing plus the refreshes. */
static const bool allowed[4][4] = {
	[CAT_PEER_NONE] = { [CAT_PEER_SENDING] = true },
	[CAT_PEER_SENDING] = { [CAT_PEER_SENDING] = true, [CAT_PEER_CONSISTENT] = true,
			       [CAT_PEER_FAILED] = true },
	[CAT_PEER_CONSISTENT] = { [CAT_PEER_CONSISTENT] = true },
	[CAT_PEER_FAILED] = { [CAT_PEER_SENDING] = true, [CAT_PEER_FAILED] = true },
};

const char *cat_peer_state_name(enum cat_peer_state s)
{
	return (unsigned)s <= CAT_PEER_FAILED ? peer_state_names[s] : "?";
}

static int peer_state_parse(const char *s, enum cat_peer_state *out)
{
	unsigned i;

	for (i = CAT_PEER_SENDING; s && i <= CAT_PEER_FAILED; i++) {
		if (!strcmp(s, peer_state_names[i])) {
			*out = i;
			return 0;
		}
	}
	return -EUCLEAN;
}

static int peer_get(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state *out)
{
	static const char sql[] = "SELECT state FROM gen_peer WHERE generation = ?1 AND "
				  "peer = ?2";
	sqlite3_stmt *st;
	int rc, ret = 0;

	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = CAT_PEER_NONE;
	if (rc == SQLITE_ROW &&
	    peer_state_parse((const char *)sqlite3_column_text(st, 0), out))
		ret = cat__err(c, -EUCLEAN, "generation %lld, peer %s: unknown state",
			       (long long)gen, peer);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		ret = cat__sqlerr(c, rc, "reading a peer state");
	cat__done(st);
	return ret;
}

int cat_gen_peer_get(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state *st)
{
	int ret;

	cat__clear(c);
	if ((ret = cat__check_name(c, "peer", peer)))
		return ret;
	return peer_get(c, gen, peer, st);
}

static int gen_is_complete(struct cat *c, int64_t gen)
{
	static const char sql[] = "SELECT state FROM generation WHERE id = ?1";
	const unsigned char *s;
	sqlite3_stmt *st;
	int rc, ret = 0;

	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		ret = cat__err(c, -ENOENT, "no generation %lld", (long long)gen);
	} else if (rc != SQLITE_ROW) {
		ret = cat__sqlerr(c, rc, "reading a generation's state");
	} else {
		s = sqlite3_column_text(st, 0);
		if (!s || strcmp((const char *)s, "complete"))
			ret = cat__err(c, -EINVAL, "generation %lld is %s: only a complete "
				       "generation is replicated", (long long)gen,
				       s ? (const char *)s : "?");
	}
	cat__done(st);
	return ret;
}

static int peer_write(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state from,
		      enum cat_peer_state to)
{
	static const char ins[] = "INSERT INTO gen_peer (generation, peer, state, updated_us) "
				  "VALUES (?1, ?2, ?3, ?4)";
	static const char upd[] = "UPDATE gen_peer SET state = ?3, updated_us = ?4 "
				  "WHERE generation = ?1 AND peer = ?2";
	sqlite3_stmt *st;
	int ret;

	/* Not an upsert: the insert trigger must only see real inserts. */
	if ((ret = cat__stmt(c, from == CAT_PEER_NONE ? ins : upd, &st)))
		return ret;
	sqlite3_bind_int64(st, 1, gen);
	sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, peer_state_names[to], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, cat__now(c));
	return cat__exec(c, st, "setting a peer state");
}

int cat_gen_peer_set(struct cat *c, int64_t gen, const char *peer, enum cat_peer_state to)
{
	enum cat_peer_state from;
	int ret;

	cat__clear(c);
	if ((ret = cat__check_name(c, "peer", peer)))
		return ret;
	if ((unsigned)to > CAT_PEER_FAILED)
		return cat__err(c, -EINVAL, "peer %s: no peer state %d", peer, (int)to);
	if ((ret = cat__begin(c)))
		return ret;
	if ((ret = gen_is_complete(c, gen)) || (ret = peer_get(c, gen, peer, &from)))
		goto err;
	if (!allowed[from][to]) {
		ret = cat__err(c, -EINVAL, "generation %lld, peer %s: %s -> %s is not a "
			       "replication state transition", (long long)gen, peer,
			       peer_state_names[from], peer_state_names[to]);
		goto err;
	}
	if ((ret = peer_write(c, gen, peer, from, to)))
		goto err;
	return cat__commit(c);
err:
	cat__rollback(c);
	return ret;
}

int cat_gen_peers(struct cat *c, int64_t gen, struct cat_gen_peer **out, size_t *n)
{
	static const char sql[] = "SELECT peer, state, updated_us FROM gen_peer "
				  "WHERE generation = ?1 ORDER BY peer";
	struct cat_gen_peer *arr = NULL, *p;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *st;
	int rc, ret;

	cat__clear(c);
	*out = NULL;
	*n = 0;
	if ((ret = cat__stmt_id(c, sql, gen, &st)))
		return ret;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (cat__grow((void **)&arr, &cap, cnt, sizeof(*arr))) {
			ret = cat__err(c, -ENOMEM, "no memory for the peer list");
			goto err;
		}
		p = &arr[cnt++];
		cat__column_text(st, 0, p->peer, sizeof(p->peer));
		if (peer_state_parse((const char *)sqlite3_column_text(st, 1), &p->state)) {
			ret = cat__err(c, -EUCLEAN, "generation %lld, peer %s: unknown state",
				       (long long)gen, p->peer);
			goto err;
		}
		p->updated_us = sqlite3_column_int64(st, 2);
	}
	if (rc != SQLITE_DONE) {
		ret = cat__sqlerr(c, rc, "listing peer states");
		goto err;
	}
	cat__done(st);
	*out = arr;
	*n = cnt;
	return 0;
err:
	cat__done(st);
	free(arr);
	return ret;
}
