/*
 * conf.c: loading a configuration: files, include() globs, the public entry points.
 *
 * A load reads the main file, parses it (schema.c), then each file its include()
 * calls match, depth first, each parsed on its own; only when every file parsed does
 * conf__build() turn the records into a struct conf. The first error stops it all.
 *
 * include("pattern"): relative patterns are resolved against the directory of the
 * file that includes them; matches are read in strcmp() order (not the locale's); a
 * glob matching nothing is fine (an empty conf.d/), a plain file name matching
 * nothing is an error (a typo); a file read twice is an error, which also stops loops.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf-int.h"

/* libconfuse's lexer is one global flex scanner: one load at a time. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* The files of one load, to refuse reading one twice. */
struct seen {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct loader {
	struct conf__parse p;
	struct seen *seen;
	size_t n_seen;
};

/* Reads a whole regular file of at most CONF__FILE_MAX bytes; 0 or -errno. */
static int read_file(const char *path, char **text, size_t *len, struct stat *st)
{
	size_t cap, n = 0;
	ssize_t r;
	char *buf;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st)) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = S_ISDIR(st->st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	cap = st->st_size < CONF__FILE_MAX ? st->st_size + 1 : CONF__FILE_MAX + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (n < cap && (r = read(fd, buf + n, cap - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			break;
		}
		n += r;
	}
	if (!rc && n > CONF__FILE_MAX)
		rc = -EFBIG;
	if (rc) {
		free(buf);
	} else {
		*text = buf;
		*len = n;
	}
out:
	close(fd);
	return rc;
}

/* Records st as read; the path of an earlier read of the same file, if any. */
static const char *seen_before(struct loader *l, const char *path, const struct stat *st)
{
	struct seen *s;

	for (size_t i = 0; i < l->n_seen; i++)
		if (l->seen[i].dev == st->st_dev && l->seen[i].ino == st->st_ino)
			return l->seen[i].path;
	s = realloc(l->seen, (l->n_seen + 1) * sizeof(*s));
	if (!s)
		return NULL;
	l->seen = s;
	s[l->n_seen].dev = st->st_dev;
	s[l->n_seen].ino = st->st_ino;
	s[l->n_seen].path = strdup(path);
	if (s[l->n_seen].path)
		l->n_seen++;
	return NULL;
}

static int expand_include(struct loader *l, const struct conf__include *inc,
			  unsigned int depth);

/* Parses path and, after it, what it includes. site: the include() that named it. */
static int parse_file(struct loader *l, const char *path, unsigned int depth,
		      const struct conf__include *site)
{
	struct conf__include *incs;
	const char *prev;
	struct stat st;
	size_t len = 0, n;
	char *text = NULL;
	int rc;

	rc = read_file(path, &text, &len, &st);
	if (rc && !site) {
		conf__error(&l->p, path, 0, NULL, "%s", rc == -EFBIG ? "file too large" :
			    rc == -EINVAL ? "not a regular file" : strerror(-rc));
		return rc;
	}
	if (rc) {
		conf__error(&l->p, site->file, site->line, NULL, "include \"%s\": %s: %s",
			    site->pattern, path, rc == -EFBIG ? "file too large" :
			    rc == -EINVAL ? "not a regular file" : strerror(-rc));
		return rc == -ENOMEM ? rc : -EINVAL;
	}
	prev = seen_before(l, path, &st);
	if (prev) {
		conf__error(&l->p, site->file, site->line, NULL, "include \"%s\": %s is "
			    "already read (as %s): includes must not repeat or loop",
			    site->pattern, path, prev);
		free(text);
		return -EINVAL;
	}
	rc = conf__parse_text(&l->p, path, text, len);
	free(text);
	/* This file's include() calls, taken before its children add theirs. */
	incs = l->p.incs;
	n = l->p.n_incs;
	l->p.incs = NULL;
	l->p.n_incs = 0;
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = expand_include(l, &incs[i], depth);
		free(incs[i].pattern);
		free(incs[i].file);
	}
	free(incs);
	return rc;
}

static int cmp_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The pattern as glob() needs it: relative to the including file's directory. */
static int include_pattern(struct loader *l, const struct conf__include *inc,
			   char *buf, size_t n)
{
	const char *slash = strrchr(inc->file, '/');
	int len;

	if (inc->pattern[0] == '/' || !slash)
		len = snprintf(buf, n, "%s", inc->pattern);
	else
		len = snprintf(buf, n, "%.*s/%s", (int)(slash - inc->file), inc->file,
			       inc->pattern);
	if (len < (int)n)
		return 0;
	conf__error(&l->p, inc->file, inc->line, NULL, "include \"%s\": path too long",
		    inc->pattern);
	return -EINVAL;
}

/*
 * A directory glob() cannot read: a missing one is just no match (conf.d/ may not
 * exist), anything else (EACCES) fails the include rather than hiding files.
 * glob() passes no user pointer; the load lock covers these.
 */
static char glob_path[PATH_MAX];
static int glob_errno;

static int glob_error(const char *path, int err)
{
	if (err == ENOENT || err == ENOTDIR)
		return 0;
	snprintf(glob_path, sizeof(glob_path), "%s", path);
	glob_errno = err;
	return 1;
}

static int expand_include(struct loader *l, const struct conf__include *inc,
			  unsigned int depth)
{
	char pattern[PATH_MAX];
	glob_t g;
	int rc;

	if (depth >= CONF__INCLUDE_DEPTH) {
		conf__error(&l->p, inc->file, inc->line, NULL, "include \"%s\": includes "
			    "nested more than %d deep", inc->pattern, CONF__INCLUDE_DEPTH);
		return -EINVAL;
	}
	rc = include_pattern(l, inc, pattern, sizeof(pattern));
	if (rc)
		return rc;
	glob_errno = 0;
	rc = glob(pattern, GLOB_NOSORT, glob_error, &g);
	if (rc == GLOB_NOMATCH && strpbrk(inc->pattern, "*?["))
		return 0;
	if (rc) {
		conf__error(&l->p, inc->file, inc->line, NULL, "include \"%s\": %s%s%s",
			    inc->pattern, rc == GLOB_NOMATCH ? "no such file" :
			    rc == GLOB_NOSPACE ? "out of memory" : glob_path,
			    rc == GLOB_ABORTED ? ": " : "",
			    rc == GLOB_ABORTED ? strerror(glob_errno) : "");
		return rc == GLOB_NOSPACE ? -ENOMEM : -EINVAL;
	}
	qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_paths);
	for (size_t i = 0; i < g.gl_pathc && !rc; i++)
		rc = parse_file(l, g.gl_pathv[i], depth + 1, inc);
	globfree(&g);
	return rc;
}

static int finish(struct loader *l, int rc, char *err, size_t errlen)
{
	if (err && errlen)
		snprintf(err, errlen, "%s", !rc ? "" : l->p.err[0] ? l->p.err :
			 rc == -ENOMEM ? "out of memory" : "invalid configuration");
	for (size_t i = 0; i < l->n_seen; i++)
		free(l->seen[i].path);
	free(l->seen);
	conf__parse_release(&l->p);
	pthread_mutex_unlock(&load_lock);
	return rc;
}

int conf_load(const char *path, unsigned int flags, struct conf **out,
	      char *err, size_t errlen)
{
	struct loader l = { 0 };
	int rc;

	if (out)
		*out = NULL;
	if (!path || !out)
		return -EINVAL;
	pthread_mutex_lock(&load_lock);
	rc = conf__parse_init(&l.p, flags, true);
	if (!rc)
		rc = parse_file(&l, path, 1, NULL);
	if (!rc)
		rc = conf__build(&l.p, path, out);
	return finish(&l, rc, err, errlen);
}

int conf_load_string(const char *text, const char *name, unsigned int flags,
		     struct conf **out, char *err, size_t errlen)
{
	struct loader l = { 0 };
	int rc;

	if (out)
		*out = NULL;
	if (!text || !out)
		return -EINVAL;
	if (!name)
		name = "<string>";
	pthread_mutex_lock(&load_lock);
	rc = conf__parse_init(&l.p, flags, false);
	if (!rc)
		rc = conf__parse_text(&l.p, name, text, strlen(text));
	if (!rc)
		rc = conf__build(&l.p, name, out);
	return finish(&l, rc, err, errlen);
}
