/*
 * conf-int.h: what the files of conf/ share.
 *
 * DESIGN. libconfuse gives us the grammar (keys, titled sections, quoting, comments),
 * but we keep our own record of every value: libconfuse remembers neither the line a
 * value came from nor where a section started, and a reload needs many files merged
 * into one struct. So:
 *
 *   file text --conf__prescan()--cfg_parse_fp()--callbacks--> struct conf__sec
 *               (prescan.c)      (schema.c)                 records: one per
 *                                                           section, plus the root
 *                                                           and tls scopes
 *   records --conf__build()--> struct conf (build.c), checked as a whole
 *
 * Invariants:
 *  1. Every value the user writes passes through conf__on_value() while libconfuse
 *     still knows its file and line, is checked there, and is recorded with them.
 *  2. A key may be set once per scope. Root and tls keys share one scope across all
 *     included files, so two files cannot silently override each other.
 *  3. Each file is parsed on its own (its own cfg_t, freed right after), so flex's
 *     global include stack is never used and error lines are always the file's own.
 *  4. The first error wins; everything after it only unwinds.
 */
#ifndef HA_CONF_INT_H
#define HA_CONF_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <confuse.h>

#include "ha/conf.h"

#define CONF__ERR_MAX		1024
#define CONF__INCLUDE_DEPTH	8		/* nesting, counting the main file */
#define CONF__FILE_MAX		(1 << 20)	/* bytes per file */
#define CONF__COUNT_MAX		1000000		/* keep, keep_hourly, keep_daily */

enum conf__kind {
	CONF__ROOT,
	CONF__TLS,
	CONF__SERVICE,
	CONF__PEER,
};

enum conf__type {
	CONF__T_NAME,		/* conf_name_valid() */
	CONF__T_ACCOUNT,	/* user or group name */
	CONF__T_PATH,		/* absolute path */
	CONF__T_SOCKET,		/* absolute path that fits in sun_path */
	CONF__T_DURATION,
	CONF__T_SIZE,
	CONF__T_COUNT,		/* 0 .. CONF__COUNT_MAX */
	CONF__T_COUNT1,		/* 1 .. CONF__COUNT_MAX */
	CONF__T_BOOL,
	CONF__T_ENUM,
	CONF__T_ADDRESS,	/* HOST:PORT */
	CONF__T_LISTEN,		/* HOST:PORT or *:PORT */
	CONF__T_COMMAND,
};

struct conf__key {
	enum conf__kind kind;
	const char *name;
	enum conf__type type;
	const char *def;		/* NULL: unset unless written */
	const char *const *choices;	/* CONF__T_ENUM: NULL-terminated */
};

struct conf__val {
	const struct conf__key *key;
	char *value;
	char *file;
	unsigned int line;
};

struct conf__sec {
	enum conf__kind kind;
	char *title;			/* services and peers */
	char *file;			/* where the section opens */
	unsigned int line;
	struct conf__val *vals;
	size_t n_vals;
};

struct conf__include {
	char *pattern;
	char *file;
	unsigned int line;
};

/* One load: everything the libconfuse callbacks need, reached through a global. */
struct conf__parse {
	unsigned int flags;
	bool allow_include;
	bool failed;
	bool nomem;
	char err[CONF__ERR_MAX];
	struct conf__sec *secs;		/* [0] root scope, [1] tls scope, then sections */
	size_t n_secs;
	size_t open;			/* index of the service or peer being parsed, or 0 */
	cfg_t *open_cfg;		/* its libconfuse section, for its line */
	const char *file;		/* the file being parsed: libconfuse leaves the
					 * tls section's cfg->filename NULL */
	struct conf__include *incs;	/* include() calls of the file being parsed */
	size_t n_incs;
};

/* schema.c */
extern const struct conf__key conf__keys[];
const struct conf__key *conf__key_find(enum conf__kind kind, const char *name);
const char *conf__kind_name(enum conf__kind kind);
int conf__parse_init(struct conf__parse *p, unsigned int flags, bool allow_include);
void conf__parse_release(struct conf__parse *p);
int conf__parse_text(struct conf__parse *p, const char *file, const char *text, size_t len);
const char *conf__get(const struct conf__sec *sec, const char *key,
		      const struct conf__val **where);
void conf__error(struct conf__parse *p, const char *file, unsigned int line,
		 const struct conf__sec *sec, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void conf__verror(struct conf__parse *p, const char *file, unsigned int line,
		  const struct conf__sec *sec, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));
void conf__oom(struct conf__parse *p);

/* value.c */
extern const char conf__name_rules[];
int conf__check_value(const struct conf__key *key, const char *value, char *why, size_t n);
int conf__choice(const struct conf__key *key, const char *value);
int conf__parse_bool(const char *value);
int conf__parse_count(const char *value, unsigned int *out);
int conf__parse_hostport(const char *s, bool wildcard, char **host, uint16_t *port,
			 const char **why);
int conf__split_command(const char *cmd, char ***argv, size_t *argc, const char **why);

/* prescan.c */
int conf__prescan(char *text, size_t len, unsigned int *line, const char **why);

/* build.c */
int conf__build(struct conf__parse *p, const char *path, struct conf **out);

#endif /* HA_CONF_INT_H */
