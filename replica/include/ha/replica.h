/*
 * ha/replica.h: replication of complete generations to a standby node (issue 7).
 *
 * The active node runs one rep_sender per peer; the standby runs one rep_server. Both
 * live in the caller's libevent loop (an explicit event_base) and talk TLS 1.3 with
 * mutual authentication: each side presents a certificate signed by the configured CA,
 * and each checks that the other's certificate names the node it expects (a configured
 * peer). The protocol (replica/wire/replica.proto, checks in wire.c), per connection:
 *
 *   sender                         standby
 *   Hello{version,node,services} ->
 *                                <- Hello{version,node,services+newest consistent gen}
 *   per queued generation:
 *   Offer{service,gen,files+XXH3} ->
 *                                <- Have{present | need[]}   (files it lacks; identical
 *                                                             ones are hard-linked from
 *                                                             its newest generation)
 *   Data{file,offset,bytes,XXH3} ... (only needed files, in order)
 *   Commit{service,gen}          ->
 *                                <- Ack{ok | error}           (only after every
 *                                   checksum matched, every byte and directory was
 *                                   fsynced and the catalog says COMPLETE)
 *
 * Page-store generations (v3; catalog stats.store_gen = N > 0) live in the service's
 * page store <store>/<service>/store (engine/store.c): the Offer names the files of
 * STORE/gen-N and the packs its page map refers to (number, size, ident); the Have says
 * per pack how many bytes the standby holds, and Data carries only the missing files and
 * the missing tail of each pack. The standby assembles them with the sender's numbers
 * (engine eng_store_rx_*), retiring first its own generations from the first number
 * where its history and the sender's part (after a failover), and checks every blob
 * the generation's page map names before its catalog says consistent.
 *
 * A generation lives in a directory of files, <store>/<service>/gen-<id> (the ids are
 * each node's own catalog ids; hacd's store is <state_dir>/services, the layout its
 * checkpoints use too). The standby writes a received one under
 * <store>/<service>/.gen-<id>.part and renames it into place only once it is whole and
 * verified; on its catalog, COMPLETE means consistent (see ha/catalog.h).
 *
 * Calls return 0 or -errno; failures are logged once, through the log callback, naming
 * the peer and the message. Nothing received is ever used as a path: names are checked
 * to be plain names (rep_name_valid()).
 */
#ifndef HA_REPLICA_H
#define HA_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct cat;

/* 2: roles in Hello, and the Roles message (a v1 peer would choke on it).
 * 3: page-store generations: packs in Offer, pack_have in Have, pack Data. */
#define REP_PROTO_VERSION 3
#define REP_CHUNK (256u << 10)		/* data bytes per Data message */
#define REP_FRAME_MAX (REP_CHUNK + 4096u)	/* longest frame either side accepts */
#define REP_FILES_MAX 4096u		/* files per generation */
#define REP_FILE_SIZE_MAX (1ull << 40)	/* bytes per file */
#define REP_NAME_MAX 128u		/* names on the wire, without the NUL */
#define REP_STORE_GEN_MAX 99999999u	/* store numbers have 8 digits (engine/store.c) */
#define REP_PACK_SIZE_MIN 64u		/* a pack's header */
/* Packs one store generation may name: its Offer (~25 bytes a pack) must fit a frame.
 * A service whose live pages are spread over more packs cannot be shipped (the sender
 * says so); its store would need compacting. */
#define REP_PACKS_MAX 8192u

typedef void (*rep_log_fn)(int prio, const char *msg, void *opaque);
/*
 * Loop timing. Each callback the library runs in the caller's loop reports, as it
 * returns, how long it held the loop: wall_us, and cpu_us of this thread's CPU time in
 * it (wall far above CPU: it waited for a disk or the scheduler). `what` is its kind
 * ("replica receiver read"), `detail` the peer and what it did there. Called for every
 * callback: the caller decides which are worth a line (hacd logs those of 20 ms or
 * more, as it does its own callbacks).
 */
typedef void (*rep_held_fn)(void *opaque, uint64_t wall_us, uint64_t cpu_us,
			    const char *what, const char *detail);

/*
 * Roles (issue 7). Each side tells the other its role of every service it names: in its
 * Hello, then in a Roles message whenever one changes and every REP_ROLES_HEARTBEAT_MS.
 * A standby refuses generations of a service that is active on its own node.
 */
enum rep_role { REP_ROLE_UNKNOWN, REP_ROLE_ACTIVE, REP_ROLE_STANDBY };
#define REP_ROLES_HEARTBEAT_MS 5000
const char *rep_role_name(enum rep_role r);
/* Our role of `service`, asked when we tell the peer and when it offers a generation. */
typedef enum rep_role (*rep_role_fn)(void *opaque, const char *service);
/* The peer told its role of `service`: `change` when this connection had heard another
 * role of it before (a promotion or demotion over there, not a first report). */
typedef void (*rep_peer_role_fn)(void *opaque, const char *peer, const char *service,
				 enum rep_role role, bool change);

/* True for a name usable as one directory entry: [A-Za-z0-9_.-]+, not starting with
 * '.' or '-', at most REP_NAME_MAX characters. */
bool rep_name_valid(const char *name);

/* <store>/<service>/gen-<gen> into buf; -ENAMETOOLONG when it does not fit. */
int rep_gen_path(char *buf, size_t len, const char *store, const char *service, int64_t gen);
/* <store>/<service>/store, the service's page store, into buf. */
int rep_store_path(char *buf, size_t len, const char *store, const char *service);

/*
 * Decode and check one frame payload (after the length prefix) the way a receiver does.
 * 0, or -EBADMSG with the reason in err. For the fuzzer and the tests.
 */
int rep_wire_check(const void *buf, size_t len, char *err, size_t errlen);

/* ---- TLS (tls.c) ----------------------------------------------------------------- */

struct rep_tls;

/* A TLS 1.3-only context with our certificate and key, trusting only `ca`. */
int rep_tls_new(const char *ca, const char *cert, const char *key, struct rep_tls **out,
		char *err, size_t errlen);
void rep_tls_free(struct rep_tls *t);

/* ---- standby (receiver.c) ---------------------------------------------------------- */

/* Called once a received generation is consistent here (local id `gen`). */
typedef void (*rep_gen_fn)(void *opaque, const char *peer, const char *service,
			   int64_t gen, int64_t origin_gen);

struct rep_server_opts {
	const char *node;		/* our name, as our certificate says */
	const char *host;		/* NULL: every address */
	uint16_t port;			/* 0: any free port (rep_server_port()) */
	const char *store;		/* where generations go */
	const char *const *peers;	/* nodes allowed to send us generations */
	size_t n_peers;
	const char *const *services;	/* services we accept */
	size_t n_services;
	struct rep_tls *tls;		/* borrowed */
	struct cat *cat;		/* borrowed: our catalog */
	rep_log_fn log;
	void *log_opaque;
	rep_gen_fn on_consistent;	/* may be NULL */
	rep_role_fn role;		/* may be NULL: every service is standby here */
	rep_peer_role_fn on_peer_role;	/* may be NULL */
	rep_held_fn held;		/* may be NULL: not timed */
	void *opaque;
	/* Test hooks: while PATH exists, a commit's file job (fsyncs, rename) or sync
	 * job (the catalog's WAL) creates PATH.held and waits (at most a minute). */
	const char *test_hold_files, *test_hold_sync;
};

struct rep_server;

/* Listens, and removes the .part directories a crash left in the store. */
int rep_server_new(struct event_base *base, const struct rep_server_opts *o,
		   struct rep_server **out);
void rep_server_free(struct rep_server *s);
uint16_t rep_server_port(const struct rep_server *s);
/* Connections currently open (authenticated or not). */
size_t rep_server_nr_conns(const struct rep_server *s);

/* What a standby knows of one service replicated from one peer (hactl status). */
struct rep_standby_status {
	bool connected;			/* the peer is connected and authenticated */
	int64_t held;			/* newest generation from it consistent here, by
					 * the peer's id; 0 = none */
	int64_t held_local;		/* the same, our catalog id */
	int64_t active_newest;		/* the peer's newest complete one, as last heard
					 * (0 = not heard since we started) */
	uint32_t lag_generations;	/* complete generations the peer has newer than
					 * `held`, as last heard */
	double lag_seconds;		/* how much older `held` is than active_newest */
};
void rep_server_status(struct rep_server *s, const char *peer, const char *service,
		       struct rep_standby_status *st);
/* Our roles changed: tell every connected peer now. */
void rep_server_roles_changed(struct rep_server *s);

/* ---- active (sender.c) ------------------------------------------------------------- */

/*
 * Outcome of one pushed generation: 0 consistent on the peer (in sync mode: only now is
 * it safe), -ESTALE skipped because a newer one of the service superseded it while the
 * peer was behind, -EBADMSG refused by the peer (it retries after a reconnect),
 * -ENOENT its files are gone here, -EPERM the service is no longer active here (it is
 * not ours to ship). Called from the loop.
 */
typedef void (*rep_ack_fn)(void *opaque, const char *peer, const char *service,
			   int64_t gen, int status);

/* DRBD's connection-state words, the ones that apply. */
enum rep_link {
	REP_LINK_STANDALONE,		/* not trying (stopped) */
	REP_LINK_CONNECTING,		/* connecting, or waiting to retry */
	REP_LINK_CONNECTED,		/* handshake done, nothing queued */
	REP_LINK_SYNCSOURCE,		/* sending a generation */
};
const char *rep_link_name(enum rep_link l);

struct rep_sender_opts {
	const char *node;		/* our name */
	const char *peer;		/* the peer's name: its certificate must say so */
	const char *host;
	uint16_t port;
	uint64_t bandwidth;		/* bytes/s, 0 = unlimited (a token bucket) */
	const char *store;		/* where our generations are */
	const char *const *services;	/* services we replicate, for the handshake */
	size_t n_services;
	unsigned catchup_skip;		/* more queued than this per service: send only
					 * the newest; 0 = default (2) */
	struct rep_tls *tls;		/* borrowed */
	struct cat *cat;		/* borrowed: generation facts, per-peer state */
	rep_log_fn log;
	void *log_opaque;
	rep_ack_fn on_ack;
	rep_role_fn role;		/* may be NULL: every service is active here; only
					 * generations of services active here are offered */
	rep_peer_role_fn on_peer_role;	/* may be NULL */
	rep_held_fn held;		/* may be NULL: not timed */
	void *opaque;
	/* Test hook: flip one bit of the data byte at this offset of every file sent
	 * (after its checksum was taken), as a link that damages data would; in a
	 * page-store generation, of every pack sent instead (its files are left). 0 = off. */
	uint64_t test_corrupt_at;
};

struct rep_sender_status {
	enum rep_link link;
	size_t queued;			/* generations waiting, incl. the one in flight */
	int64_t acked_gen;		/* newest generation the peer acknowledged, 0 = none */
	int64_t acked_us;		/* when (CLOCK_REALTIME us) */
	uint64_t bytes_sent;		/* file and pack data sent since start */
};

struct rep_sender;

/* Starts connecting at once, and again with backoff (0.25 s doubling to 30 s). */
int rep_sender_new(struct event_base *base, const struct rep_sender_opts *o,
		   struct rep_sender **out);
void rep_sender_free(struct rep_sender *s);
/* Queue complete generation `gen` of `service` (from our catalog) for the peer. */
int rep_sender_push(struct rep_sender *s, const char *service, int64_t gen);
void rep_sender_status(const struct rep_sender *s, struct rep_sender_status *st);
/* Our roles changed: tell the peer now (when connected). */
void rep_sender_roles_changed(struct rep_sender *s);

#endif /* HA_REPLICA_H */
