/*
 * wire.c: the replication protocol's framing and the checks every received message
 * passes before anything looks at it.
 *
 * A frame is a u32 big-endian length then one RepMsg. The length is checked against
 * REP_FRAME_MAX before a byte of the payload is buffered for it, so a peer cannot make
 * us allocate more than that. Then, in order (invariants a handler relies on):
 *  1. the payload decodes as a RepMsg with exactly one message set;
 *  2. every name (node, service, file) is a plain name (rep_name_valid): nothing
 *     received can address a path outside the directory it is joined to;
 *  3. every count and size is within the REP_*_MAX limits, ids are positive, a Have's
 *     need[] is strictly increasing, an Offer's file names are unique.
 * What needs context (an index inside the offer in progress, an offset that follows the
 * last one) is checked by the receiver and the sender themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "replica-int.h"

bool rep_name_valid(const char *name)
{
	size_t n = 0;

	if (!name || !*name || *name == '.' || *name == '-')
		return false;
	for (const char *c = name; *c; c++, n++) {
		if (n >= REP_NAME_MAX)
			return false;
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		      (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' || *c == '-'))
			return false;
	}
	return true;
}

int rep_gen_path(char *buf, size_t len, const char *store, const char *service, int64_t gen)
{
	int n = snprintf(buf, len, "%s/%s/gen-%lld", store, service, (long long)gen);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int rep_store_path(char *buf, size_t len, const char *store, const char *service)
{
	int n = snprintf(buf, len, "%s/%s/store", store, service);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

const char *rep__msg_name(const RepMsg *m)
{
	if (m->hello)
		return "Hello";
	if (m->offer)
		return "Offer";
	if (m->have)
		return "Have";
	if (m->data)
		return "Data";
	if (m->commit)
		return "Commit";
	if (m->ack)
		return "Ack";
	if (m->roles)
		return "Roles";
	return "(empty)";
}

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return -EBADMSG; } while (0)

static int check_name(const char *what, const char *field, const char *v, char *err,
		      size_t errlen)
{
	if (!v)
		BAD("%s: %s missing", what, field);
	if (!rep_name_valid(v))
		BAD("%s: %s is not a plain name", what, field);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int check_services(const char *what, RepService *const *sv, size_t n, char *err,
			  size_t errlen)
{
	if (n > REP_FILES_MAX)
		BAD("%s: %zu services, at most %u", what, n, REP_FILES_MAX);
	for (size_t i = 0; i < n; i++) {
		if (check_name(what, "services.name", sv[i]->name, err, errlen))
			return -EBADMSG;
		if (sv[i]->newest < 0)
			BAD("%s: services[%zu].newest is negative", what, i);
		if (sv[i]->role > REP_ROLE_STANDBY)
			BAD("%s: services[%zu].role is %u, not a role", what, i, sv[i]->role);
	}
	return 0;
}

static int check_hello(const RepHello *h, char *err, size_t errlen)
{
	if (!h->has_version)
		BAD("Hello: version missing");
	if (check_name("Hello", "node", h->node, err, errlen))
		return -EBADMSG;
	return check_services("Hello", h->services, h->n_services, err, errlen);
}

static int check_offer(const RepOffer *o, char *err, size_t errlen)
{
	const char **names;
	int ret = 0;

	if (check_name("Offer", "service", o->service, err, errlen))
		return -EBADMSG;
	if (!o->has_gen || o->gen <= 0)
		BAD("Offer: gen missing or not positive");
	if (o->parent < 0 || o->committed_us < 0 || o->pause_us < 0 || o->newest < 0 ||
	    o->newest_us < 0)
		BAD("Offer: parent, committed_us, pause_us, newest or newest_us negative");
	if (!o->n_files || o->n_files > REP_FILES_MAX)
		BAD("Offer: %zu files, expected 1..%u", o->n_files, REP_FILES_MAX);
	for (size_t i = 0; i < o->n_files; i++) {
		const RepFile *f = o->files[i];

		if (check_name("Offer", "files.name", f->name, err, errlen))
			return -EBADMSG;
		if (!f->has_size || f->size > REP_FILE_SIZE_MAX)
			BAD("Offer: files[%zu] (%s): size missing or above %llu", i, f->name,
			    (unsigned long long)REP_FILE_SIZE_MAX);
		if (!f->has_xxh3)
			BAD("Offer: files[%zu] (%s): xxh3 missing", i, f->name);
	}
	/* v3: the packs of a page-store generation. Numbers are checked here because
	 * they become file names on the standby (pack-NNNNNNNN.pack). */
	if (o->n_packs && !o->store_gen)
		BAD("Offer: packs without a store_gen");
	if (o->store_gen > REP_STORE_GEN_MAX)
		BAD("Offer: store_gen %u above %u", o->store_gen, REP_STORE_GEN_MAX);
	if (o->n_packs > REP_PACKS_MAX)
		BAD("Offer: %zu packs, at most %u", o->n_packs, REP_PACKS_MAX);
	for (size_t i = 0; i < o->n_packs; i++) {
		const RepPack *p = o->packs[i];

		if (!p->has_num || !p->num || p->num > o->store_gen)
			BAD("Offer: packs[%zu]: number %u not in 1..store_gen (%u)", i, p->num,
			    o->store_gen);
		if (i && p->num <= o->packs[i - 1]->num)
			BAD("Offer: packs[%zu]: number %u not increasing", i, p->num);
		if (!p->has_size || p->size < REP_PACK_SIZE_MIN || p->size > REP_FILE_SIZE_MAX)
			BAD("Offer: packs[%zu] (pack %u): size missing or not in %u..%llu", i, p->num,
			    REP_PACK_SIZE_MIN, (unsigned long long)REP_FILE_SIZE_MAX);
		if (!p->has_ident)
			BAD("Offer: packs[%zu] (pack %u): ident missing", i, p->num);
	}
	names = malloc(o->n_files * sizeof(*names));
	if (!names)
		BAD("Offer: out of memory");
	for (size_t i = 0; i < o->n_files; i++)
		names[i] = o->files[i]->name;
	qsort(names, o->n_files, sizeof(*names), cmp_str);
	for (size_t i = 1; i < o->n_files && !ret; i++)
		if (!strcmp(names[i - 1], names[i])) {
			snprintf(err, errlen, "Offer: file %s listed twice", names[i]);
			ret = -EBADMSG;
		}
	free(names);
	return ret;
}

static int check_have(const RepHave *h, char *err, size_t errlen)
{
	if (check_name("Have", "service", h->service, err, errlen))
		return -EBADMSG;
	if (!h->has_gen || h->gen <= 0)
		BAD("Have: gen missing or not positive");
	if (h->n_need > REP_FILES_MAX)
		BAD("Have: %zu files needed, at most %u", h->n_need, REP_FILES_MAX);
	if (h->present && h->n_need)
		BAD("Have: present, yet files needed");
	if (h->n_pack_have > REP_PACKS_MAX)
		BAD("Have: %zu pack_have, at most %u", h->n_pack_have, REP_PACKS_MAX);
	if (h->present && h->n_pack_have)
		BAD("Have: present, yet pack bytes listed");
	for (size_t i = 0; i < h->n_pack_have; i++)
		if (h->pack_have[i] > REP_FILE_SIZE_MAX)
			BAD("Have: pack_have[%zu] above %llu", i, (unsigned long long)REP_FILE_SIZE_MAX);
	for (size_t i = 0; i < h->n_need; i++) {
		if (h->need[i] >= REP_FILES_MAX)
			BAD("Have: need[%zu] = %u out of range", i, h->need[i]);
		if (i && h->need[i] <= h->need[i - 1])
			BAD("Have: need[] not increasing at %zu", i);
	}
	return 0;
}

static int check_data(const RepData *d, char *err, size_t errlen)
{
	if (d->has_file == d->has_pack)
		BAD("Data: %s of file and pack set, expected one", d->has_file ? "both" : "none");
	if ((d->has_file && d->file >= REP_FILES_MAX) || (d->has_pack && d->pack >= REP_PACKS_MAX))
		BAD("Data: file or pack index out of range");
	if (!d->has_offset || d->offset >= REP_FILE_SIZE_MAX)
		BAD("Data: offset missing or out of range");
	if (!d->has_data || !d->data.len || d->data.len > REP_CHUNK)
		BAD("Data: %zu bytes, expected 1..%u", d->has_data ? d->data.len : 0, REP_CHUNK);
	if (!d->has_xxh3)
		BAD("Data: xxh3 missing");
	return 0;
}

static int check_ack(const RepAck *a, char *err, size_t errlen)
{
	if (check_name("Ack", "service", a->service, err, errlen))
		return -EBADMSG;
	if (!a->has_gen || a->gen <= 0)
		BAD("Ack: gen missing or not positive");
	if (!a->has_ok)
		BAD("Ack: ok missing");
	if (a->error && strlen(a->error) > 1024)
		BAD("Ack: error longer than 1024 bytes");
	return 0;
}

int rep__decode(const uint8_t *buf, size_t len, RepMsg **out, char *err, size_t errlen)
{
	RepMsg *m;
	int set, ret = 0;

	*out = NULL;
	if (len > REP_FRAME_MAX)
		BAD("frame of %zu bytes, at most %u", len, REP_FRAME_MAX);
	m = rep_msg__unpack(NULL, len, buf);
	if (!m)
		BAD("frame of %zu bytes does not decode as a message", len);
	set = !!m->hello + !!m->offer + !!m->have + !!m->data + !!m->commit + !!m->ack +
	      !!m->roles;
	if (set != 1) {
		snprintf(err, errlen, "frame carries %d messages, expected 1", set);
		ret = -EBADMSG;
	} else if (m->hello) {
		ret = check_hello(m->hello, err, errlen);
	} else if (m->offer) {
		ret = check_offer(m->offer, err, errlen);
	} else if (m->have) {
		ret = check_have(m->have, err, errlen);
	} else if (m->data) {
		ret = check_data(m->data, err, errlen);
	} else if (m->commit) {
		if (check_name("Commit", "service", m->commit->service, err, errlen))
			ret = -EBADMSG;
		else if (!m->commit->has_gen || m->commit->gen <= 0) {
			snprintf(err, errlen, "Commit: gen missing or not positive");
			ret = -EBADMSG;
		}
	} else if (m->roles) {
		ret = check_services("Roles", m->roles->services, m->roles->n_services, err,
				     errlen);
	} else {
		ret = check_ack(m->ack, err, errlen);
	}
	if (ret) {
		rep_msg__free_unpacked(m, NULL);
		return ret;
	}
	*out = m;
	return 0;
}

int rep_wire_check(const void *buf, size_t len, char *err, size_t errlen)
{
	RepMsg *m;
	int ret = rep__decode(buf, len, &m, err, errlen);

	if (!ret)
		rep_msg__free_unpacked(m, NULL);
	return ret;
}

int rep__send(struct bufferevent *bev, const RepMsg *m)
{
	size_t len = rep_msg__get_packed_size(m);
	struct evbuffer *out = bufferevent_get_output(bev);
	struct evbuffer_iovec v;
	uint8_t *p;

	if (len > REP_FRAME_MAX)
		return -EMSGSIZE;
	if (evbuffer_reserve_space(out, len + 4, &v, 1) < 1 || v.iov_len < len + 4)
		return -ENOMEM;
	p = v.iov_base;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	rep_msg__pack(m, p + 4);
	v.iov_len = len + 4;
	return evbuffer_commit_space(out, &v, 1) ? -ENOMEM : 0;
}

int rep__recv(struct bufferevent *bev, RepMsg **out, char *err, size_t errlen)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[4], *p;
	size_t len;
	int ret;

	*out = NULL;
	if (evbuffer_copyout(in, hdr, 4) < 4)
		return 0;
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > REP_FRAME_MAX)
		BAD("length field says %zu bytes, at most %u", len, REP_FRAME_MAX);
	if (evbuffer_get_length(in) < len + 4)
		return 0;
	evbuffer_drain(in, 4);
	p = evbuffer_pullup(in, (ev_ssize_t)len);
	if (!p && len)
		BAD("out of memory for a %zu-byte frame", len);
	ret = rep__decode(p ? p : (const uint8_t *)"", len, out, err, errlen);
	evbuffer_drain(in, len);
	return ret ? ret : 1;
}

void rep__log(rep_log_fn fn, void *opaque, int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Peers send us strings that end up here: one line, no control characters. */
	for (char *c = msg; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	if (fn)
		fn(prio, msg, opaque);
	else
		fprintf(stderr, "<%d>replica: %s\n", prio, msg);
}

static uint64_t clock_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t rep__now_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

void rep__held_begin(struct rep__held *h)
{
	h->wall_us = clock_us(CLOCK_MONOTONIC);
	h->cpu_us = clock_us(CLOCK_THREAD_CPUTIME_ID);
}

void rep__held_end(const struct rep__held *h, rep_held_fn fn, void *opaque, const char *what,
		   const char *detail)
{
	if (fn)
		fn(opaque, clock_us(CLOCK_MONOTONIC) - h->wall_us,
		   clock_us(CLOCK_THREAD_CPUTIME_ID) - h->cpu_us, what, detail);
}

void rep__held_note(char *buf, size_t len, const char *fmt, ...)
{
	size_t used = strnlen(buf, len);
	va_list ap;

	if (used + 3 >= len)
		return;
	if (used) {
		memcpy(buf + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(buf + used, len - used, fmt, ap);
	va_end(ap);
}

void rep__keepalive(int fd)
{
	/* A peer that vanished (power, cable, veth down) sends no FIN: without probes an
	 * idle connection would look up for hours. ~25 s to notice. */
	int on = 1, idle = 10, intvl = 5, cnt = 3;

	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

const char *rep_role_name(enum rep_role r)
{
	return r == REP_ROLE_ACTIVE ? "active" : r == REP_ROLE_STANDBY ? "standby" : "unknown";
}

int rep__send_roles(struct bufferevent *bev, const char *const *services, size_t n,
		    rep_role_fn fn, void *opaque, enum rep_role dflt)
{
	RepMsg m = REP_MSG__INIT;
	RepRoles r = REP_ROLES__INIT;
	RepService *sv = calloc(n + 1, sizeof(*sv)), **psv = calloc(n + 1, sizeof(*psv));
	int ret;

	if (!sv || !psv) {
		free(sv);
		free(psv);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		rep_service__init(&sv[i]);
		sv[i].name = (char *)services[i];
		sv[i].has_role = 1;
		sv[i].role = fn ? fn(opaque, services[i]) : dflt;
		psv[i] = &sv[i];
	}
	r.services = psv;
	r.n_services = n;
	m.roles = &r;
	ret = rep__send(bev, &m);
	free(sv);
	free(psv);
	return ret;
}

void rep__roles_heard(RepService *const *sv, size_t n_sv, const char *const *services,
		      size_t n, uint8_t *last, rep_peer_role_fn fn, void *opaque,
		      const char *peer)
{
	for (size_t i = 0; i < n_sv; i++) {
		enum rep_role role = sv[i]->has_role ? (enum rep_role)sv[i]->role :
				     REP_ROLE_UNKNOWN;
		bool change;
		size_t j;

		for (j = 0; j < n && strcmp(services[j], sv[i]->name); j++)
			;
		if (j == n || role == REP_ROLE_UNKNOWN)
			continue;
		change = last[j] != REP_ROLE_UNKNOWN && last[j] != role;
		last[j] = (uint8_t)role;
		if (fn)
			fn(opaque, peer, services[j], role, change);
	}
}
