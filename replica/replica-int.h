/* replica-int.h: private to replica/: the wire codec, framing and shared helpers. */
#ifndef HA_REPLICA_INT_H
#define HA_REPLICA_INT_H

#include <stdarg.h>
#include <stdint.h>

#include "ha/replica.h"
#include "replica.pb-c.h"

struct bufferevent;
struct event_base;
struct ssl_st;

/* wire.c */

/*
 * Decode a frame payload and check every field that can be checked without context:
 * exactly one message set, sizes within bounds, names plain. -EBADMSG with the message
 * type and field in err. The caller frees *out with rep_msg__free_unpacked().
 */
int rep__decode(const uint8_t *buf, size_t len, RepMsg **out, char *err, size_t errlen);
/* The name of the message a RepMsg carries, for logs. */
const char *rep__msg_name(const RepMsg *m);
/* Append one frame (u32 big-endian length, payload) to bev's output. */
int rep__send(struct bufferevent *bev, const RepMsg *m);
/*
 * Take the next whole frame from bev's input: 1 and *out set, 0 when more bytes are
 * needed, -EBADMSG (err says why: length field, decode) when the stream is bad.
 */
int rep__recv(struct bufferevent *bev, RepMsg **out, char *err, size_t errlen);

/* TCP keepalive probes on a replication socket. */
void rep__keepalive(int fd);
/* Send Roles: our role (fn) of each of `services`; fn NULL: `dflt` for all. */
int rep__send_roles(struct bufferevent *bev, const char *const *services, size_t n,
		    rep_role_fn fn, void *opaque, enum rep_role dflt);
/* Roles heard from `peer` (Hello or Roles): for each one of `services`, remember it in
 * last[] (indexed like services) and report it through fn. */
void rep__roles_heard(RepService *const *sv, size_t n_sv, const char *const *services,
		      size_t n, uint8_t *last, rep_peer_role_fn fn, void *opaque,
		      const char *peer);

/* jobs.c: the library's helper thread, for disk waits off the caller's loop. */
struct rep__job {
	struct rep__job *next;
	void (*work)(struct rep__job *j);	/* on the thread: paths, fds, the engine */
	void (*done)(struct rep__job *j);	/* then in the loop; may free j */
};
struct rep__jobs;
/* ready(arg) is called in the loop when jobs are done: it calls rep__jobs_run_done(). */
int rep__jobs_new(struct event_base *base, void (*ready)(void *arg), void *arg,
		  struct rep__jobs **out);
void rep__jobs_submit(struct rep__jobs *q, struct rep__job *j);
/* The done() of every job worked on so far, in order; how many. */
unsigned rep__jobs_run_done(struct rep__jobs *q);
/* Every job submitted (also by a done() meanwhile) worked on and done, then stop. */
void rep__jobs_free(struct rep__jobs *q);

/* store.c */
int rep__fsync_dir(const char *path);
/* Remove a directory we created and its plain files. */
int rep__rmtree(const char *path);
/* XXH3-64 of the whole file at dirfd/name, and its size. */
int rep__file_xxh3(int dirfd, const char *name, uint64_t *hash, uint64_t *size);
int rep__mkdir_p(const char *path, mode_t mode);

/* tls.c */
struct ssl_st *rep__tls_ssl(struct rep_tls *t, const char *expect_host);
/* Which of names[] the verified peer certificate names (CN or SAN), or -1. */
int rep__tls_peer_match(struct ssl_st *ssl, const char *const *names, size_t n);
/* The subject of the peer certificate, for logs. */
void rep__tls_peer_subject(struct ssl_st *ssl, char *buf, size_t len);
/* Why a TLS bufferevent failed, as one line ("" when it just closed). */
void rep__bev_errors(struct bufferevent *bev, char *buf, size_t len);
/* The OpenSSL errors queued on this thread, as one line (and cleared). */
void rep__tls_errors(char *buf, size_t len);

/* Timing of one loop callback (rep_held_fn): begin, then end with what it was. */
struct rep__held {
	uint64_t wall_us, cpu_us;
};
uint64_t rep__now_us(void);		/* CLOCK_MONOTONIC */
void rep__held_begin(struct rep__held *h);
void rep__held_end(const struct rep__held *h, rep_held_fn fn, void *opaque, const char *what,
		   const char *detail);
/* Append "; " and the formatted text to the detail in buf (what the callback did). */
__attribute__((format(printf, 3, 4)))
void rep__held_note(char *buf, size_t len, const char *fmt, ...);

__attribute__((format(printf, 4, 5)))
void rep__log(rep_log_fn fn, void *opaque, int prio, const char *fmt, ...);

#endif
