/*
 * schema.c: the keys of hacd.conf, and the libconfuse side of parsing one file.
 *
 * One table (conf__keys) says every key's section, type and default; the libconfuse
 * option arrays are generated from it, so a key cannot be known to the grammar and
 * unknown to the checks. Every value is a string option whose parse callback,
 * on_value(), checks it and records it with its file and line (conf-int.h, invariant
 * 1): libconfuse's own int and bool parsing accepts "010" as octal and reads a stale
 * errno for range errors, so we do not use it.
 *
 * libconfuse calls back without a user pointer, and its flex lexer is global anyway,
 * so the load in progress is reached through `cur`; conf.c serializes loads.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf-int.h"

static struct conf__parse *cur;

static const char *const restart_choices[] = { "restore", "scratch", "none", NULL };
static const char *const replication_choices[] = { "async", "sync", NULL };
static const char *const checkpoint_choices[] = { "full", "incremental", NULL };
static const char *const log_choices[] = { "error", "warning", "notice", "info", "debug", NULL };

const struct conf__key conf__keys[] = {
	{ CONF__ROOT, "node", CONF__T_NAME, NULL, NULL },
	{ CONF__ROOT, "state_dir", CONF__T_PATH, CONF_DEFAULT_STATE_DIR, NULL },
	{ CONF__ROOT, "control_socket", CONF__T_SOCKET, CONF_DEFAULT_CONTROL_SOCKET, NULL },
	{ CONF__ROOT, "status_group", CONF__T_ACCOUNT, NULL, NULL },
	{ CONF__ROOT, "log_level", CONF__T_ENUM, "info", log_choices },
	{ CONF__ROOT, "listen", CONF__T_LISTEN, NULL, NULL },
	{ CONF__TLS, "ca", CONF__T_PATH, NULL, NULL },
	{ CONF__TLS, "cert", CONF__T_PATH, NULL, NULL },
	{ CONF__TLS, "key", CONF__T_PATH, NULL, NULL },
	{ CONF__SERVICE, "command", CONF__T_COMMAND, NULL, NULL },
	{ CONF__SERVICE, "pidfile", CONF__T_PATH, NULL, NULL },
	{ CONF__SERVICE, "cgroup", CONF__T_PATH, NULL, NULL },
	{ CONF__SERVICE, "user", CONF__T_ACCOUNT, NULL, NULL },
	{ CONF__SERVICE, "interval", CONF__T_DURATION, "1s", NULL },
	{ CONF__SERVICE, "keep", CONF__T_COUNT1, "20", NULL },
	{ CONF__SERVICE, "keep_hourly", CONF__T_COUNT, "0", NULL },
	{ CONF__SERVICE, "keep_daily", CONF__T_COUNT, "0", NULL },
	{ CONF__SERVICE, "restart", CONF__T_ENUM, "restore", restart_choices },
	{ CONF__SERVICE, "replication", CONF__T_ENUM, "async", replication_choices },
	{ CONF__SERVICE, "precopy", CONF__T_BOOL, "yes", NULL },
	{ CONF__SERVICE, "checkpoint", CONF__T_ENUM, "incremental", checkpoint_choices },
	{ CONF__SERVICE, "stop_timeout", CONF__T_DURATION, "10s", NULL },
	/* No default here: it follows the interval (build.c). */
	{ CONF__SERVICE, "checkpoint_timeout", CONF__T_DURATION, NULL, NULL },
	{ CONF__PEER, "address", CONF__T_ADDRESS, NULL, NULL },
	{ CONF__PEER, "bandwidth", CONF__T_SIZE, NULL, NULL },
	{ 0, NULL, 0, NULL, NULL },
};

const struct conf__key *conf__key_find(enum conf__kind kind, const char *name)
{
	for (const struct conf__key *k = conf__keys; k->name; k++)
		if (k->kind == kind && !strcmp(k->name, name))
			return k;
	return NULL;
}

const char *conf__kind_name(enum conf__kind kind)
{
	static const char *const names[] = { "root", "tls", "service", "peer" };

	return names[kind];
}

/* --- errors --- */

void conf__verror(struct conf__parse *p, const char *file, unsigned int line,
		  const struct conf__sec *sec, const char *fmt, va_list ap)
{
	size_t n = sizeof(p->err), off = 0;

	if (p->failed)
		return;
	p->failed = true;
	if (file && line)
		off = snprintf(p->err, n, "%s:%u: ", file, line);
	else if (file)
		off = snprintf(p->err, n, "%s: ", file);
	if (off < n && sec && sec->title)
		off += snprintf(p->err + off, n - off, "%s \"%s\": ",
				conf__kind_name(sec->kind), sec->title);
	else if (off < n && sec && sec->kind == CONF__TLS)
		off += snprintf(p->err + off, n - off, "tls: ");
	if (off < n)
		vsnprintf(p->err + off, n - off, fmt, ap);
	/* One line whatever the values held: strings may contain newlines. */
	for (char *c = p->err; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

void conf__error(struct conf__parse *p, const char *file, unsigned int line,
		 const struct conf__sec *sec, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf__verror(p, file, line, sec, fmt, ap);
	va_end(ap);
}

void conf__oom(struct conf__parse *p)
{
	p->nomem = true;
	conf__error(p, NULL, 0, NULL, "out of memory");
}

/* --- records --- */

static struct conf__sec *sec_add(struct conf__parse *p, enum conf__kind kind)
{
	struct conf__sec *secs;

	secs = realloc(p->secs, (p->n_secs + 1) * sizeof(*secs));
	if (!secs)
		return NULL;
	p->secs = secs;
	memset(&secs[p->n_secs], 0, sizeof(*secs));
	secs[p->n_secs].kind = kind;
	return &secs[p->n_secs++];
}

/*
 * The record values of cfg go to. Services and peers cannot nest, so a service or
 * peer cfg is the one section open; we do not compare cfg_t pointers, as libconfuse
 * frees and reallocates a section whose title repeats.
 */
static struct conf__sec *sec_of(cfg_t *cfg)
{
	if (!strcmp(cfg->name, "root"))
		return &cur->secs[0];
	if (!strcmp(cfg->name, "tls"))
		return &cur->secs[1];
	return cur->open ? &cur->secs[cur->open] : NULL;
}

static const struct conf__val *val_find(const struct conf__sec *sec, const char *key)
{
	for (size_t i = 0; i < sec->n_vals; i++)
		if (!strcmp(sec->vals[i].key->name, key))
			return &sec->vals[i];
	return NULL;
}

const char *conf__get(const struct conf__sec *sec, const char *key,
		      const struct conf__val **where)
{
	const struct conf__val *v = val_find(sec, key);

	if (where)
		*where = v;
	return v ? v->value : conf__key_find(sec->kind, key)->def;
}

static int val_add(struct conf__sec *sec, const struct conf__key *key, const char *value,
		   const char *file, unsigned int line)
{
	struct conf__val *vals, *v;

	vals = realloc(sec->vals, (sec->n_vals + 1) * sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	sec->vals = vals;
	v = &vals[sec->n_vals];
	v->key = key;
	v->line = line;
	v->value = strdup(value);
	v->file = strdup(file);
	if (!v->value || !v->file) {
		free(v->value);
		free(v->file);
		return -ENOMEM;
	}
	sec->n_vals++;
	return 0;
}

/* Values go into messages between quotes; keep them short. */
static const char *shorten(const char *v, char *buf, size_t n)
{
	if (strlen(v) < n)
		return v;
	snprintf(buf, n, "%.*s...", (int)n - 4, v);
	return buf;
}

/* --- libconfuse callbacks --- */

__attribute__((format(printf, 2, 0)))
static void on_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	struct conf__sec *sec = sec_of(cfg);

	/* libconfuse's wording for our most common mistake is the least clear one. */
	if (!strcmp(fmt, "no such option '%s'")) {
		char buf[72];

		conf__error(cur, cur->file, cfg->line, sec, "unknown key \"%s\"",
			    shorten(va_arg(ap, const char *), buf, sizeof(buf)));
		return;
	}
	conf__verror(cur, cur->file, cfg->line, sec, fmt, ap);
}

static int on_value(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct conf__sec *sec = sec_of(cfg);
	const struct conf__val *prev;
	const struct conf__key *key;
	char why[256], buf[72];
	int rc;

	if (!sec)		/* its record could not be allocated: already failed */
		return -1;
	key = conf__key_find(sec->kind, opt->name);
	prev = val_find(sec, opt->name);
	if (prev) {
		conf__error(cur, cur->file, cfg->line, sec, "%s is already set at %s:%u",
			    key->name, prev->file, prev->line);
		return -1;
	}
	rc = conf__check_value(key, value, why, sizeof(why));
	if (!rc)
		rc = val_add(sec, key, value, cur->file, cfg->line);
	if (rc == -ENOMEM)
		conf__oom(cur);
	else if (rc)
		conf__error(cur, cur->file, cfg->line, sec, "bad %s \"%s\": %s",
			    key->name, shorten(value, buf, sizeof(buf)), why);
	*(const char **)result = value;
	return rc;
}

/*
 * Called when a service or peer section opens: libconfuse parses the "default value"
 * of this function option ("__section_start()") as soon as it creates the section,
 * at the line of its '{'. That is the only moment we can learn where a section
 * starts, and it also sees duplicates before libconfuse silently merges them.
 * It must return 0: a failing default makes libconfuse abort().
 */
static int on_section_start(cfg_t *cfg, cfg_opt_t *opt, int argc, const char **argv)
{
	enum conf__kind kind = !strcmp(cfg->name, "service") ? CONF__SERVICE : CONF__PEER;
	struct conf__sec *sec;

	if (cur->open) {	/* inside a section body: written by hand in the file */
		cfg_error(cfg, "no such option '%s'", opt->name);
		return 1;
	}
	for (size_t i = 2; i < cur->n_secs; i++) {
		sec = &cur->secs[i];
		if (sec->kind == kind && sec->title && !strcmp(sec->title, cfg->title))
			conf__error(cur, cur->file, cfg->line, NULL,
				    "duplicate %s \"%s\" (first defined at %s:%u)",
				    conf__kind_name(kind), cfg->title, sec->file, sec->line);
	}
	sec = sec_add(cur, kind);
	if (!sec) {
		conf__oom(cur);
		return 0;
	}
	cur->open = sec - cur->secs;
	cur->open_cfg = cfg;
	sec->title = strdup(cfg->title);
	sec->file = strdup(cur->file);
	sec->line = cfg->line;
	if (!sec->title || !sec->file)
		conf__oom(cur);
	return 0;
}

/* libconfuse validates a section once its '}' is read: the section is closed. */
static int on_section_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cur->open = 0;
	cur->open_cfg = NULL;
	return 0;
}

/*
 * include("pattern"): only recorded here. The file is parsed after this one, on its
 * own (invariant 3): libconfuse's include() neither globs nor survives an error in an
 * included file (it leaves its global include stack and the FILE behind).
 */
static int on_include(cfg_t *cfg, cfg_opt_t *opt, int argc, const char **argv)
{
	struct conf__include *incs, *inc;

	if (!cur->allow_include) {
		cfg_error(cfg, "include() is only available in configuration files");
		return 1;
	}
	if (argc != 1 || !argv[0][0]) {
		cfg_error(cfg, "include() takes one file name or glob pattern");
		return 1;
	}
	incs = realloc(cur->incs, (cur->n_incs + 1) * sizeof(*incs));
	if (!incs)
		goto oom;
	cur->incs = incs;
	inc = &incs[cur->n_incs];
	inc->line = cfg->line;
	inc->pattern = strdup(argv[0]);
	inc->file = strdup(cur->file);
	if (!inc->pattern || !inc->file) {
		free(inc->pattern);
		free(inc->file);
		goto oom;
	}
	cur->n_incs++;
	return 0;
oom:
	conf__oom(cur);
	return 1;
}

/* --- the grammar --- */

static cfg_opt_t root_opts[16], tls_opts[8], service_opts[24], peer_opts[8];

static void add_keys(cfg_opt_t *opts, int n, enum conf__kind kind, bool start)
{
	static const cfg_opt_t start_opt = {
		.name = "__section_start", .type = CFGT_FUNC, .func = on_section_start,
		.def = { .parsed = (char *)"__section_start()" },
	};

	for (const struct conf__key *k = conf__keys; k->name; k++)
		if (k->kind == kind)
			opts[n++] = (cfg_opt_t)CFG_STR_CB(k->name, NULL, CFGF_NONE, on_value);
	if (start)
		opts[n++] = start_opt;
	opts[n] = (cfg_opt_t)CFG_END();
}

static void init_grammar(void)
{
	static bool done;

	if (done)
		return;
	add_keys(tls_opts, 0, CONF__TLS, false);
	add_keys(service_opts, 0, CONF__SERVICE, true);
	add_keys(peer_opts, 0, CONF__PEER, true);
	root_opts[0] = (cfg_opt_t)CFG_FUNC("include", on_include);
	root_opts[1] = (cfg_opt_t)CFG_SEC("service", service_opts, CFGF_MULTI | CFGF_TITLE);
	root_opts[1].validcb = on_section_end;
	root_opts[2] = (cfg_opt_t)CFG_SEC("peer", peer_opts, CFGF_MULTI | CFGF_TITLE);
	root_opts[2].validcb = on_section_end;
	root_opts[3] = (cfg_opt_t)CFG_SEC("tls", tls_opts, CFGF_NONE);
	add_keys(root_opts, 4, CONF__ROOT, false);
	done = true;
}

int conf__parse_init(struct conf__parse *p, unsigned int flags, bool allow_include)
{
	memset(p, 0, sizeof(*p));
	p->flags = flags;
	p->allow_include = allow_include;
	if (!sec_add(p, CONF__ROOT) || !sec_add(p, CONF__TLS))
		return -ENOMEM;
	return 0;
}

void conf__parse_release(struct conf__parse *p)
{
	for (size_t i = 0; i < p->n_secs; i++) {
		for (size_t j = 0; j < p->secs[i].n_vals; j++) {
			free(p->secs[i].vals[j].value);
			free(p->secs[i].vals[j].file);
		}
		free(p->secs[i].vals);
		free(p->secs[i].title);
		free(p->secs[i].file);
	}
	free(p->secs);
	for (size_t i = 0; i < p->n_incs; i++) {
		free(p->incs[i].pattern);
		free(p->incs[i].file);
	}
	free(p->incs);
	memset(p, 0, sizeof(*p));
}

static int run_parser(struct conf__parse *p, const char *file, char *text, size_t len)
{
	FILE *fp = fmemopen(text, len, "r");
	cfg_t *cfg;
	int rc;

	if (!fp)
		return -errno;
	cfg = cfg_init(root_opts, CFGF_NONE);
	if (!cfg || !(cfg->filename = strdup(file))) {
		if (cfg)
			cfg_free(cfg);
		fclose(fp);
		return -ENOMEM;
	}
	cfg_set_error_function(cfg, on_error);
	rc = cfg_parse_fp(cfg, fp);
	/* libconfuse fails without a word on an empty key name ('' = x). */
	if (rc != CFG_SUCCESS && !p->failed)
		conf__error(p, file, p->open_cfg ? p->open_cfg->line : cfg->line,
			    p->open ? &p->secs[p->open] : NULL, "syntax error");
	p->open = 0;
	p->open_cfg = NULL;
	/* Freeing the root also resets flex's global state for the next file. */
	cfg_free(cfg);
	fclose(fp);
	return 0;
}

/* Parses one file's text into p's records; its include() calls are left in p->incs. */
int conf__parse_text(struct conf__parse *p, const char *file, const char *text, size_t len)
{
	const char *why;
	unsigned int line;
	char *copy;
	int rc;

	init_grammar();
	copy = malloc(len + 1);
	if (!copy) {
		conf__oom(p);
		return -ENOMEM;
	}
	memcpy(copy, text, len);
	copy[len] = 0;
	rc = conf__prescan(copy, len, &line, &why);
	if (rc) {
		conf__error(p, file, line, NULL, "%s", why);
	} else if (len) {	/* fmemopen() of 0 bytes fails on older glibc */
		cur = p;
		p->file = file;
		p->open = 0;
		p->open_cfg = NULL;
		rc = run_parser(p, file, copy, len);
		p->file = NULL;
		cur = NULL;
		if (rc)
			conf__error(p, file, 0, NULL, "%s", strerror(-rc));
	}
	free(copy);
	if (p->nomem)
		return -ENOMEM;
	return p->failed ? -EINVAL : rc;
}
