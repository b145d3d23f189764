/*
 * ha/conf.h: the declarative configuration of hacd (issue 6).
 *
 * A configuration file (/etc/hacd/hacd.conf by default, libconfuse syntax, with
 * include() of glob patterns such as conf.d/NAME.conf) is parsed and validated as a
 * whole into one
 * immutable struct conf. A reload builds a new one and swaps it in; the agent then
 * restarts only the services whose section changed (conf_service_equal()).
 *
 * Every rejected file gets one message naming where, for example
 *   /etc/hacd/hacd.conf:12: service "cache": bad interval "1x": expected a number
 *   followed by ms, s, m or h
 * and conf_load() returns -EINVAL (or -errno when the main file cannot be read).
 * The reference of every key is docs/hacd.conf.md.
 *
 * Parsing is serialized by a process-wide lock because libconfuse's lexer is a global
 * flex scanner; the resulting struct conf may be read from any thread.
 */
#ifndef HA_CONF_H
#define HA_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONF_DEFAULT_PATH		"/etc/hacd/hacd.conf"
#define CONF_DEFAULT_STATE_DIR		"/var/lib/hacd"
#define CONF_DEFAULT_CONTROL_SOCKET	"/run/hacd/hactl.sock"

/* Longest service, peer or node name: they become directory and file names. */
#define CONF_NAME_MAX			64

/* Flags of conf_load() and conf_load_string(). */
enum {
	/*
	 * Skip the checks that consult this host: the command's program (PATH lookup,
	 * executable bit), user and status_group (getpwnam/getgrnam), tls files
	 * (readable). For checking a config meant for another machine, and for fuzzing,
	 * which must not wander over the filesystem.
	 */
	CONF_NO_HOST_CHECKS = 1 << 0,
};

/* How a guarded service is found. */
enum conf_target {
	CONF_TARGET_COMMAND,		/* hacd launches it in its own namespaces */
	CONF_TARGET_PIDFILE,		/* attach to the tree whose root pid is in a file */
	CONF_TARGET_CGROUP,		/* attach to every task of a cgroup v2 */
};

/* What to do when a guarded service dies. */
enum conf_restart {
	CONF_RESTART_RESTORE,		/* restore the newest complete generation */
	CONF_RESTART_SCRATCH,		/* launch the command again from scratch */
	CONF_RESTART_NONE,		/* leave it dead */
};

enum conf_replication {
	CONF_REPLICATION_ASYNC,		/* a generation is safe once committed locally */
	CONF_REPLICATION_SYNC,		/* ... only once a standby has acknowledged it */
};

/* How each generation is taken (agent/hacd-worker.c). */
enum conf_checkpoint {
	CONF_CHECKPOINT_FULL,		/* a whole eng_dump into its own directory gen-ID */
	CONF_CHECKPOINT_INCREMENTAL,	/* a tracked generation of the service's page
					 * store: only what changed since the last one */
};

struct conf_service {
	const char *name;		/* safe name, unique among services */
	enum conf_target target;
	/* CONF_TARGET_COMMAND: the command split into words (no shell involved). */
	const char *command;		/* as written */
	const char *const *argv;	/* NULL-terminated words of command */
	size_t argc;
	const char *program;		/* argv[0] resolved through PATH (absolute),
					 * or argv[0] itself with CONF_NO_HOST_CHECKS */
	const char *user;		/* NULL: run as hacd's user */
	const char *pidfile;		/* CONF_TARGET_PIDFILE: absolute path */
	const char *cgroup;		/* CONF_TARGET_CGROUP: absolute path */
	uint64_t interval_us;		/* checkpoint period, > 0 */
	unsigned int keep;		/* keep the last N generations, >= 1 */
	unsigned int keep_hourly;	/* plus one per hour for N hours */
	unsigned int keep_daily;	/* plus one per day for N days */
	enum conf_restart restart;
	enum conf_replication replication;
	bool precopy;			/* copy dirty pages live before freezing */
	enum conf_checkpoint checkpoint;
	uint64_t stop_timeout_us;	/* SIGTERM to SIGKILL grace period */
	/* A checkpoint not answered by then is abandoned (its generation failed, the
	 * worker stopped); default max(1 min, 10 intervals) */
	uint64_t checkpoint_timeout_us;
	/* Where the section starts, for messages; not compared by conf_service_equal. */
	const char *file;
	unsigned int line;
};

struct conf_peer {
	const char *name;		/* the peer's node name */
	const char *address;		/* as written: HOST:PORT */
	const char *host;		/* host name or address, IPv6 without brackets */
	uint16_t port;
	uint64_t bandwidth;		/* bytes per second, 0 = unlimited */
	const char *file;
	unsigned int line;
};

struct conf {
	const char *path;		/* the main file, as given to conf_load() */
	const char *node;		/* this node's name (default: hostname) */
	const char *state_dir;
	const char *control_socket;
	const char *status_group;	/* NULL: only root reads the status */
	int log_level;			/* syslog priority: LOG_ERR .. LOG_DEBUG */
	/* Replication. listen is NULL when this node accepts no replication. */
	const char *listen;
	const char *listen_host;	/* NULL for "*" (every address) */
	uint16_t listen_port;
	const char *tls_ca;		/* all three set whenever listen or a peer is */
	const char *tls_cert;
	const char *tls_key;
	const struct conf_service *services;
	size_t n_services;
	const struct conf_peer *peers;
	size_t n_peers;
};

/*
 * Parses and validates the file at path (and what it includes) into *out.
 * Returns 0, -EINVAL for an invalid configuration, -ENOMEM, or -errno when the main
 * file cannot be read; on failure err holds a one-line message (file:line: ...).
 */
int conf_load(const char *path, unsigned int flags, struct conf **out,
	      char *err, size_t errlen);

/*
 * Same from a string; name stands for the file name in messages. include() is
 * refused: a string has no directory to resolve patterns against, and the fuzzer
 * must never make the parser open files.
 */
int conf_load_string(const char *text, const char *name, unsigned int flags,
		     struct conf **out, char *err, size_t errlen);

void conf_free(struct conf *conf);

const struct conf_service *conf_service_find(const struct conf *conf, const char *name);
const struct conf_peer *conf_peer_find(const struct conf *conf, const char *name);

/*
 * True when a and b describe the same guarded service (every setting, not the file
 * and line it came from): a reload leaves such a service running.
 */
bool conf_service_equal(const struct conf_service *a, const struct conf_service *b);

/*
 * Value syntax, shared with hactl. A duration is a decimal number followed by ms, s,
 * m or h ("250ms", "1s", "5m", "1h"); a size is a decimal number optionally followed
 * by K, M, G or T (powers of 1024). Return 0, -EINVAL (syntax), -EDOM (zero) or
 * -ERANGE (too large: durations stop at INT64_MAX microseconds).
 */
int conf_parse_duration(const char *s, uint64_t *usec);
int conf_parse_size(const char *s, uint64_t *bytes);

/* True for a name usable as a directory name: [A-Za-z0-9_.-], not starting with
 * '.' or '-', 1..CONF_NAME_MAX characters. */
bool conf_name_valid(const char *name);

#endif /* HA_CONF_H */
