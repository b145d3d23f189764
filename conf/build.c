/*
 * build.c: from the checked records of every file to one immutable struct conf.
 *
 * Values were checked one by one while parsing (schema.c); here come the checks that
 * need several values or the host: exactly one target per service, the program of a
 * command, users and groups, replication settings that only make sense together.
 * Each error names the file and line of the value (or section) at fault.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "conf-int.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

static bool host_checks(const struct conf__parse *p)
{
	return !(p->flags & CONF_NO_HOST_CHECKS);
}

/* An error about a recorded value, at its file and line. */
#define val_error(p, sec, v, fmt, ...) \
	conf__error(p, (v)->file, (v)->line, sec, fmt, ##__VA_ARGS__)
#define sec_error(p, sec, fmt, ...) \
	conf__error(p, (sec)->file, (sec)->line, sec, fmt, ##__VA_ARGS__)

static int dup_str(struct conf__parse *p, const char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = strdup(src);
	if (*dst)
		return 0;
	conf__oom(p);
	return -ENOMEM;
}

/* The _r forms: the agent's other threads may use the static getpw/getgr buffers. */
static bool user_exists(const char *name)
{
	struct passwd pw, *res = NULL;
	char buf[16384];

	return !getpwnam_r(name, &pw, buf, sizeof(buf), &res) && res;
}

static bool group_exists(const char *name)
{
	struct group gr, *res = NULL;
	char buf[16384];

	return !getgrnam_r(name, &gr, buf, sizeof(buf), &res) && res;
}

static const char *exec_problem(const char *path)
{
	struct stat st;

	if (stat(path, &st))
		return strerror(errno);
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	if (access(path, X_OK))
		return "not executable";
	return NULL;
}

/* argv[0] to an absolute path the way execvp() would find it, but decided now. */
static int resolve_program(const char *arg0, char **out, const char **why)
{
	const char *path = getenv("PATH"), *dir, *end;
	char buf[PATH_MAX];

	if (strchr(arg0, '/')) {
		*why = arg0[0] != '/' ? "the program must be an absolute path or a name "
					"looked up in PATH" : exec_problem(arg0);
		if (*why)
			return -EINVAL;
		*out = strdup(arg0);
		return *out ? 0 : -ENOMEM;
	}
	for (dir = path && *path ? path : DEFAULT_PATH; *dir; dir = *end ? end + 1 : end) {
		end = strchrnul(dir, ':');
		/* Relative PATH entries would depend on hacd's working directory. */
		if (*dir != '/' || snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - dir), dir,
					    arg0) >= (int)sizeof(buf))
			continue;
		if (!exec_problem(buf)) {
			*out = strdup(buf);
			return *out ? 0 : -ENOMEM;
		}
	}
	*why = "program not found in PATH";
	return -EINVAL;
}

static int build_command(struct conf__parse *p, const struct conf__sec *sec,
			 const struct conf__val *v, struct conf_service *s)
{
	const char *why;
	char **argv;
	char *prog;
	int rc;

	/* The command passed its check while parsing: only memory can fail here. */
	rc = conf__split_command(v->value, &argv, &s->argc, &why);
	if (rc)
		goto oom;
	s->argv = (const char *const *)argv;
	if (dup_str(p, &s->command, v->value))
		return -ENOMEM;
	if (!host_checks(p))
		return dup_str(p, &s->program, argv[0]);
	rc = resolve_program(argv[0], &prog, &why);
	if (rc == -ENOMEM)
		goto oom;
	if (rc) {
		val_error(p, sec, v, "command \"%s\": %s", argv[0], why);
		return rc;
	}
	s->program = prog;
	return 0;
oom:
	conf__oom(p);
	return -ENOMEM;
}

/* Exactly one of command, pidfile, cgroup; the error points at the second one. */
static int build_target(struct conf__parse *p, const struct conf__sec *sec,
			struct conf_service *s)
{
	static const char *const keys[] = { "command", "pidfile", "cgroup" };
	const struct conf__val *v, *first = NULL, *second = NULL;

	for (size_t i = 0; i < sec->n_vals; i++) {
		v = &sec->vals[i];
		for (int t = 0; t < 3; t++) {
			if (strcmp(v->key->name, keys[t]))
				continue;
			if (first && !second)
				second = v;
			if (!first) {
				first = v;
				s->target = t;
			}
		}
	}
	if (!first) {
		sec_error(p, sec, "needs one of command, pidfile or cgroup");
		return -EINVAL;
	}
	if (second) {
		val_error(p, sec, second, "%s conflicts with %s (line %u): set exactly one of "
			  "command, pidfile or cgroup", second->key->name, first->key->name,
			  first->line);
		return -EINVAL;
	}
	if (s->target == CONF_TARGET_COMMAND)
		return build_command(p, sec, first, s);
	return dup_str(p, s->target == CONF_TARGET_PIDFILE ? &s->pidfile : &s->cgroup,
		       first->value);
}

static int build_user(struct conf__parse *p, const struct conf__sec *sec,
		      struct conf_service *s)
{
	const struct conf__val *v;
	const char *user = conf__get(sec, "user", &v);

	if (!user)
		return 0;
	if (s->target != CONF_TARGET_COMMAND) {
		val_error(p, sec, v, "user only applies to services hacd launches (command)");
		return -EINVAL;
	}
	if (host_checks(p) && !user_exists(user)) {
		val_error(p, sec, v, "unknown user \"%s\"", user);
		return -EINVAL;
	}
	return dup_str(p, &s->user, user);
}

/*
 * checkpoint_timeout when unset: ten intervals, and never under a minute, because a
 * first generation stores every page (seconds per GiB compressed, more on a loaded
 * machine): a timeout shorter than that would fail it again at every tick, and the
 * service would never get a generation at all.
 */
#define CKPT_TIMEOUT_MIN_US	(60 * 1000000ull)
#define CKPT_TIMEOUT_INTERVALS	10

static uint64_t default_ckpt_timeout(uint64_t interval_us)
{
	uint64_t t = interval_us > INT64_MAX / CKPT_TIMEOUT_INTERVALS ? INT64_MAX
			: interval_us * CKPT_TIMEOUT_INTERVALS;

	return t < CKPT_TIMEOUT_MIN_US ? CKPT_TIMEOUT_MIN_US : t;
}

/* The values already passed their checks in schema.c: these parses cannot fail. */
static void build_settings(const struct conf__sec *sec, struct conf_service *s)
{
	const char *ckpt_timeout = conf__get(sec, "checkpoint_timeout", NULL);

	conf_parse_duration(conf__get(sec, "interval", NULL), &s->interval_us);
	conf_parse_duration(conf__get(sec, "stop_timeout", NULL), &s->stop_timeout_us);
	if (ckpt_timeout)
		conf_parse_duration(ckpt_timeout, &s->checkpoint_timeout_us);
	else
		s->checkpoint_timeout_us = default_ckpt_timeout(s->interval_us);
	conf__parse_count(conf__get(sec, "keep", NULL), &s->keep);
	conf__parse_count(conf__get(sec, "keep_hourly", NULL), &s->keep_hourly);
	conf__parse_count(conf__get(sec, "keep_daily", NULL), &s->keep_daily);
	s->restart = conf__choice(conf__key_find(CONF__SERVICE, "restart"),
				  conf__get(sec, "restart", NULL));
	s->replication = conf__choice(conf__key_find(CONF__SERVICE, "replication"),
				      conf__get(sec, "replication", NULL));
	s->precopy = conf__parse_bool(conf__get(sec, "precopy", NULL)) == 1;
	s->checkpoint = conf__choice(conf__key_find(CONF__SERVICE, "checkpoint"),
				     conf__get(sec, "checkpoint", NULL));
}

static int build_service(struct conf__parse *p, const struct conf__sec *sec,
			 struct conf_service *s)
{
	const struct conf__val *v;
	int rc;

	s->line = sec->line;
	if (dup_str(p, &s->name, sec->title) || dup_str(p, &s->file, sec->file))
		return -ENOMEM;
	if (!conf_name_valid(sec->title)) {
		sec_error(p, sec, "bad name: %s", conf__name_rules);
		return -EINVAL;
	}
	rc = build_target(p, sec, s);
	if (!rc)
		rc = build_user(p, sec, s);
	if (rc)
		return rc;
	build_settings(sec, s);
	if (s->restart == CONF_RESTART_SCRATCH && s->target != CONF_TARGET_COMMAND) {
		conf__get(sec, "restart", &v);
		val_error(p, sec, v, "restart = \"scratch\" needs a command to launch");
		return -EINVAL;
	}
	return 0;
}

static int build_peer(struct conf__parse *p, const struct conf__sec *sec,
		      struct conf_peer *peer, const char *node)
{
	const char *addr = conf__get(sec, "address", NULL), *why;
	const char *bw = conf__get(sec, "bandwidth", NULL);
	char *host;

	peer->line = sec->line;
	if (dup_str(p, &peer->name, sec->title) || dup_str(p, &peer->file, sec->file))
		return -ENOMEM;
	if (!conf_name_valid(sec->title)) {
		sec_error(p, sec, "bad name: %s", conf__name_rules);
		return -EINVAL;
	}
	if (!strcmp(sec->title, node)) {
		sec_error(p, sec, "this is the name of this node (node = \"%s\")", node);
		return -EINVAL;
	}
	if (!addr) {
		sec_error(p, sec, "needs an address (address = \"HOST:PORT\")");
		return -EINVAL;
	}
	if (bw)
		conf_parse_size(bw, &peer->bandwidth);
	/* The address passed its check while parsing: only memory can fail here. */
	if (conf__parse_hostport(addr, false, &host, &peer->port, &why)) {
		conf__oom(p);
		return -ENOMEM;
	}
	peer->host = host;
	return dup_str(p, &peer->address, addr);
}

static int build_node(struct conf__parse *p, struct conf *c, const char *path)
{
	const char *node = conf__get(&p->secs[0], "node", NULL);
	char host[HOST_NAME_MAX + 1];

	if (!node) {
		if (gethostname(host, sizeof(host)))
			host[0] = 0;
		host[sizeof(host) - 1] = 0;
		if (!conf_name_valid(host)) {
			conf__error(p, path, 0, NULL, "this host's name \"%s\" is not a valid "
				    "node name: set node = \"NAME\"", host);
			return -EINVAL;
		}
		node = host;
	}
	return dup_str(p, &c->node, node);
}

static int build_root(struct conf__parse *p, struct conf *c, const char *path)
{
	const struct conf__sec *root = &p->secs[0];
	const char *group, *listen, *why;
	const struct conf__val *v;
	char *host;

	if (dup_str(p, &c->path, path) || build_node(p, c, path) ||
	    dup_str(p, &c->state_dir, conf__get(root, "state_dir", NULL)) ||
	    dup_str(p, &c->control_socket, conf__get(root, "control_socket", NULL)))
		return p->nomem ? -ENOMEM : -EINVAL;
	c->log_level = LOG_ERR + conf__choice(conf__key_find(CONF__ROOT, "log_level"),
					      conf__get(root, "log_level", NULL));
	group = conf__get(root, "status_group", &v);
	if (group && host_checks(p) && !group_exists(group)) {
		val_error(p, NULL, v, "unknown group \"%s\"", group);
		return -EINVAL;
	}
	if (dup_str(p, &c->status_group, group))
		return -ENOMEM;
	listen = conf__get(root, "listen", NULL);
	if (!listen)
		return 0;
	if (conf__parse_hostport(listen, true, &host, &c->listen_port, &why)) {
		conf__oom(p);
		return -ENOMEM;
	}
	c->listen_host = host;
	return dup_str(p, &c->listen, listen);
}

/* Replication is mutually authenticated TLS or nothing: all three files, or none. */
static int build_tls(struct conf__parse *p, struct conf *c)
{
	static const char *const keys[] = { "ca", "cert", "key" };
	const struct conf__sec *tls = &p->secs[1];
	const char **dst[] = { &c->tls_ca, &c->tls_cert, &c->tls_key };
	const struct conf__val *v, *set = NULL;
	const char *missing = NULL;

	for (int i = 0; i < 3; i++) {
		conf__get(tls, keys[i], &v);
		if (!v) {
			missing = missing ? missing : keys[i];
			continue;
		}
		set = set ? set : v;
		if (host_checks(p) && access(v->value, R_OK)) {
			val_error(p, tls, v, "cannot read %s \"%s\": %s", keys[i], v->value,
				  strerror(errno));
			return -EINVAL;
		}
		if (dup_str(p, dst[i], v->value))
			return -ENOMEM;
	}
	if (set && missing) {
		val_error(p, tls, set, "ca, cert and key go together: %s is missing", missing);
		return -EINVAL;
	}
	return 0;
}

/* Settings that are only wrong together, checked once everything is built. */
static int check_replication(struct conf__parse *p, const struct conf *c)
{
	const struct conf__val *v;
	const struct conf__sec *sec;

	for (size_t i = 2; i < p->n_secs; i++) {
		sec = &p->secs[i];
		if (sec->kind == CONF__SERVICE && !c->n_peers &&
		    !strcmp(conf__get(sec, "replication", &v), "sync")) {
			val_error(p, sec, v, "replication = \"sync\" needs at least one peer");
			return -EINVAL;
		}
	}
	if ((c->listen || c->n_peers) && !c->tls_ca) {
		conf__get(&p->secs[0], "listen", &v);
		if (v)
			val_error(p, NULL, v, "replication needs tls { ca, cert, key }");
		else
			conf__error(p, c->peers[0].file, c->peers[0].line, NULL, "peer \"%s\": "
				    "replication needs tls { ca, cert, key }", c->peers[0].name);
		return -EINVAL;
	}
	return 0;
}

static int build_sections(struct conf__parse *p, struct conf *c)
{
	struct conf_service *svcs;
	struct conf_peer *peers;
	size_t ns = 0, np = 0;
	int rc = 0;

	for (size_t i = 2; i < p->n_secs; i++) {
		ns += p->secs[i].kind == CONF__SERVICE;
		np += p->secs[i].kind == CONF__PEER;
	}
	c->services = svcs = calloc(ns ? ns : 1, sizeof(*svcs));
	c->peers = peers = calloc(np ? np : 1, sizeof(*peers));
	if (!svcs || !peers) {
		conf__oom(p);
		return -ENOMEM;
	}
	for (size_t i = 2; i < p->n_secs && !rc; i++) {
		if (p->secs[i].kind == CONF__SERVICE)
			rc = build_service(p, &p->secs[i], &svcs[c->n_services++]);
		else
			rc = build_peer(p, &p->secs[i], &peers[c->n_peers++], c->node);
	}
	return rc;
}

int conf__build(struct conf__parse *p, const char *path, struct conf **out)
{
	struct conf *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		conf__oom(p);
		return -ENOMEM;
	}
	rc = build_root(p, c, path);
	if (!rc)
		rc = build_tls(p, c);
	if (!rc)
		rc = build_sections(p, c);
	if (!rc)
		rc = check_replication(p, c);
	if (rc) {
		conf_free(c);
		return p->nomem ? -ENOMEM : -EINVAL;
	}
	*out = c;
	return 0;
}

/* --- the public struct --- */

static void free_service(const struct conf_service *s)
{
	free((void *)s->name);
	free((void *)s->command);
	free((void *)s->argv);		/* one allocation, words included */
	free((void *)s->program);
	free((void *)s->user);
	free((void *)s->pidfile);
	free((void *)s->cgroup);
	free((void *)s->file);
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_services; i++)
		free_service(&c->services[i]);
	for (size_t i = 0; i < c->n_peers; i++) {
		free((void *)c->peers[i].name);
		free((void *)c->peers[i].address);
		free((void *)c->peers[i].host);
		free((void *)c->peers[i].file);
	}
	free((void *)c->services);
	free((void *)c->peers);
	free((void *)c->path);
	free((void *)c->node);
	free((void *)c->state_dir);
	free((void *)c->control_socket);
	free((void *)c->status_group);
	free((void *)c->listen);
	free((void *)c->listen_host);
	free((void *)c->tls_ca);
	free((void *)c->tls_cert);
	free((void *)c->tls_key);
	free(c);
}

const struct conf_service *conf_service_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_services; i++)
		if (!strcmp(c->services[i].name, name))
			return &c->services[i];
	return NULL;
}

const struct conf_peer *conf_peer_find(const struct conf *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_peers; i++)
		if (!strcmp(c->peers[i].name, name))
			return &c->peers[i];
	return NULL;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

bool conf_service_equal(const struct conf_service *a, const struct conf_service *b)
{
	if (!a || !b)
		return a == b;
	if (!str_eq(a->name, b->name) || a->target != b->target || a->argc != b->argc ||
	    !str_eq(a->program, b->program) || !str_eq(a->user, b->user) ||
	    !str_eq(a->pidfile, b->pidfile) || !str_eq(a->cgroup, b->cgroup))
		return false;
	for (size_t i = 0; i < a->argc; i++)
		if (!str_eq(a->argv[i], b->argv[i]))
			return false;
	return a->interval_us == b->interval_us && a->keep == b->keep &&
	       a->keep_hourly == b->keep_hourly && a->keep_daily == b->keep_daily &&
	       a->restart == b->restart && a->replication == b->replication &&
	       a->precopy == b->precopy && a->checkpoint == b->checkpoint &&
	       a->stop_timeout_us == b->stop_timeout_us &&
	       a->checkpoint_timeout_us == b->checkpoint_timeout_us;
}
