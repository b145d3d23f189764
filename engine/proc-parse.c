/*
 * Parsers of /proc/PID files (see proc-parse.h). Files are read whole with read(2)
 * into one buffer and parsed there: /proc files are generated per read() call, and a
 * line-by-line stdio read of a big smaps or status could see two generations of it.
 * Formats are the kernel's, fs/proc/array.c, task_mmu.c, base.c and fd.c; each parser
 * says which fields it relies on, and refuses (-EPROTO, logged) a file it cannot read
 * rather than guessing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"
#include "proc-parse.h"

/* A process that is gone (-ENOENT from open, -ESRCH from read once it was reaped) is
 * reported quietly when the caller expects it may be. */
static int proc_read(pid_t pid, const char *name, char **buf, size_t *len, bool may_be_gone)
{
	char path[96];
	size_t cap = 16384, n = 0;
	char *b = NULL;
	int fd, ret = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && may_be_gone && errno == ENOENT)
		return -ENOENT;
	if (fd < 0)
		return pr_errno(-errno, "pid %d: %s", pid, path);
	for (;;) {
		ssize_t r;

		if (!b || n + 4096 > cap) {
			char *p = realloc(b, cap = b ? cap * 2 : cap);

			if (!p) {
				ret = -ENOMEM;
				break;
			}
			b = p;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && may_be_gone && errno == ESRCH) {
			ret = -ESRCH;
			break;
		}
		if (r < 0) {
			ret = pr_errno(-errno, "pid %d: reading %s", pid, path);
			break;
		}
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	if (ret) {
		free(b);
		return ret;
	}
	b[n] = 0;
	*buf = b;
	if (len)
		*len = n;
	return 0;
}

int eng__proc_read(pid_t pid, const char *name, char **buf, size_t *len)
{
	return proc_read(pid, name, buf, len, false);
}

int eng__proc_read_gone(pid_t pid, const char *name, char **buf, size_t *len)
{
	return proc_read(pid, name, buf, len, true);
}

int eng__proc_read_task(pid_t pid, pid_t tid, const char *file, char name[static 48], char **buf)
{
	if (tid)
		snprintf(name, 48, "task/%d/%s", tid, file);
	else
		snprintf(name, 48, "%s", file);
	return eng__proc_read(pid, name, buf, NULL);
}

int eng__proc_link(pid_t pid, const char *name, char *buf, size_t size)
{
	char path[96];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	n = readlink(path, buf, size);
	if (n < 0)
		return pr_errno(-errno, "pid %d: readlink %s", pid, path);
	if ((size_t)n >= size)
		return pr_errno(-ENAMETOOLONG, "pid %d: readlink %s", pid, path);
	buf[n] = 0;
	return 0;
}

/* ---- maps and smaps --------------------------------------------------------------- */

static const struct {
	char code[3];
	uint32_t bit;
} vmflag_names[] = {
	{ "gd", ENG_VMF_GROWSDOWN }, { "lo", ENG_VMF_LOCKED }, { "nr", ENG_VMF_NORESERVE },
	{ "dd", ENG_VMF_DONTDUMP }, { "dc", ENG_VMF_DONTCOPY }, { "wf", ENG_VMF_WIPEONFORK },
	{ "hg", ENG_VMF_HUGEPAGE }, { "nh", ENG_VMF_NOHUGEPAGE }, { "mg", ENG_VMF_MERGEABLE },
	{ "sr", ENG_VMF_SEQ_READ }, { "rr", ENG_VMF_RAND_READ }, { "io", ENG_VMF_IO },
	{ "pf", ENG_VMF_PFNMAP }, { "mm", ENG_VMF_MIXEDMAP }, { "ht", ENG_VMF_HUGETLB },
	{ "ss", ENG_VMF_SHADOW_STACK }, { "um", ENG_VMF_UFFD }, { "uw", ENG_VMF_UFFD },
	{ "ui", ENG_VMF_UFFD }, { "lf", ENG_VMF_LOCKONFAULT }, { "dp", ENG_VMF_DROPPABLE },
	{ "sl", ENG_VMF_SEALED }, { "sh", ENG_VMF_SHARED }, { "gu", ENG_VMF_GUARD },
};

static uint32_t parse_vmflags(const char *s)
{
	uint32_t f = 0;

	/* Two-letter codes separated by spaces, up to the end of the line. */
	while (*s && *s != '\n') {
		while (*s == ' ')
			s++;
		if (s[0] && s[0] != '\n' && s[1] && s[1] != '\n') {
			for (size_t i = 0; i < sizeof(vmflag_names) / sizeof(vmflag_names[0]); i++)
				if (s[0] == vmflag_names[i].code[0] && s[1] == vmflag_names[i].code[1])
					f |= vmflag_names[i].bit;
			s += 2;
		} else if (*s && *s != '\n') {
			s++;
		}
	}
	return f;
}

/* "start-end perms offset major:minor inode   path": 1 parsed, 0 not such a line. */
static int parse_map_line(const char *line, struct eng__vma *v)
{
	char perms[8];
	int path_at = 0;
	const char *p;

	/* smaps' "Key: value" lines never have '-' in their first word. */
	p = strchr(line, ' ');
	if (!p || !memchr(line, '-', p - line) || memchr(line, ':', p - line))
		return 0;
	memset(v, 0, sizeof(*v));
	if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %" SCNx64 " %x:%x %" SCNu64 "%n", &v->start,
		   &v->end, perms, &v->pgoff, &v->dev_major, &v->dev_minor, &v->ino, &path_at) < 7 ||
	    strlen(perms) != 4)
		return -EPROTO;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	/* Not "%n" after a space in the format: that would also skip the newline of a line
	 * without a path and take the next line as the path. */
	for (p = line + path_at; *p == ' ' || *p == '\t'; p++)
		;
	if (*p && *p != '\n') {
		size_t n = strcspn(p, "\n");

		v->path = strndup(p, n);
		if (!v->path)
			return -ENOMEM;
	}
	return 1;
}

static int add_vma(struct eng__vma **arr, int *nr, int *cap, const struct eng__vma *v)
{
	if (*nr == *cap) {
		int c = *cap ? *cap * 2 : 64;
		struct eng__vma *p = realloc(*arr, c * sizeof(*p));

		if (!p)
			return -ENOMEM;
		*arr = p;
		*cap = c;
	}
	(*arr)[(*nr)++] = *v;
	return 0;
}

int eng__parse_vmas(pid_t pid, bool with_flags, struct eng__vma **out, int *nr)
{
	struct eng__vma *arr = NULL, v;
	int n = 0, cap = 0, ret;
	char *buf, *line, *next;

	ret = eng__proc_read(pid, with_flags ? "smaps" : "maps", &buf, NULL);
	if (ret)
		return ret;
	for (line = buf; *line && !ret; line = next) {
		next = strchr(line, '\n');
		next = next ? next + 1 : line + strlen(line);
		ret = parse_map_line(line, &v);
		if (ret == 1) {
			ret = add_vma(&arr, &n, &cap, &v);
			if (ret)
				free(v.path);
			continue;
		}
		if (ret < 0)
			break;
		if (!n)
			continue;
		if (!strncmp(line, "VmFlags:", 8))
			arr[n - 1].vmflags = parse_vmflags(line + 8);
		else if (!strncmp(line, "ProtectionKey:", 14))
			arr[n - 1].pkey = atoi(line + 14);
	}
	if (ret == -EPROTO)
		pr_err("pid %d: /proc/%d/%s: cannot parse \"%.80s\"", pid, pid,
		       with_flags ? "smaps" : "maps", line);
	free(buf);
	if (ret < 0) {
		eng__vmas_free(arr, n);
		return ret;
	}
	*out = arr;
	*nr = n;
	return 0;
}

void eng__vmas_free(struct eng__vma *v, int nr)
{
	for (int i = 0; v && i < nr; i++)
		free(v[i].path);
	free(v);
}

/* ---- stat ------------------------------------------------------------------------- */

int eng__parse_stat(pid_t pid, pid_t tid, struct eng__stat *st)
{
	unsigned long long f[52] = { 0 };
	char name[48], *buf, *p, *end;
	int ret, i;

	ret = eng__proc_read_task(pid, tid, "stat", name, &buf);
	if (ret)
		return ret;
	/* comm (2) may hold spaces and ')': the fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2]) {
		free(buf);
		return pr_errno(-EPROTO, "pid %d: /proc/%d/%s: no state field", pid, pid, name);
	}
	memset(st, 0, sizeof(*st));
	st->state = p[2];
	p += 3;
	for (i = 4; i <= 51 && *p; i++) {
		f[i] = strtoull(p, &end, 10);
		if (end == p)
			break;
		p = end;
	}
	free(buf);
	if (i <= 51)
		return pr_errno(-EPROTO, "pid %d: /proc/%d/%s: %d fields, need 51", pid, pid, name, i - 1);
	st->ppid = f[4];
	st->pgrp = f[5];
	st->session = f[6];
	st->flags = f[9];
	st->nr_threads = f[20];
	st->start_code = f[26];
	st->end_code = f[27];
	st->start_stack = f[28];
	st->start_data = f[45];
	st->end_data = f[46];
	st->start_brk = f[47];
	st->arg_start = f[48];
	st->arg_end = f[49];
	st->env_start = f[50];
	st->env_end = f[51];
	return 0;
}

/* ---- status ----------------------------------------------------------------------- */

static int parse_groups(const char *s, struct eng__status *st)
{
	size_t cap = 0;

	while (*s && *s != '\n') {
		char *end;
		unsigned long g = strtoul(s, &end, 10);

		if (end == s) {
			s++;
			continue;
		}
		if (st->nr_groups == cap) {
			uint32_t *p = realloc(st->groups, (cap = cap ? cap * 2 : 16) * sizeof(*p));

			if (!p)
				return -ENOMEM;
			st->groups = p;
		}
		st->groups[st->nr_groups++] = g;
		s = end;
	}
	return 0;
}

static int count_words(const char *s)
{
	int n = 0;

	while (*s && *s != '\n') {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '\n')
			break;
		n++;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
	}
	return n;
}

enum {
	SK_STATE, SK_TGID, SK_PPID, SK_TRACER, SK_NSPID, SK_UID, SK_GID, SK_GROUPS, SK_CAPINH,
	SK_CAPPRM, SK_CAPEFF, SK_CAPBND, SK_CAPAMB, SK_NNP, SK_SECCOMP, SK_UMASK, SK_SIGIGN,
	SK_SIGCGT, SK_NR
};

static const char *const status_keys[SK_NR] = {
	"State", "Tgid", "PPid", "TracerPid", "NSpid", "Uid", "Gid", "Groups", "CapInh",
	"CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Umask", "SigIgn",
	"SigCgt",
};

static int status_line(const char *line, struct eng__status *st, unsigned *seen)
{
	const char *v = strchr(line, ':');
	int k;

	if (!v)
		return 0;
	for (k = 0; k < SK_NR; k++)
		if ((size_t)(v - line) == strlen(status_keys[k]) &&
		    !strncmp(line, status_keys[k], v - line))
			break;
	if (k == SK_NR)
		return 0;
	*seen |= 1u << k;
	v++;
	switch (k) {
	case SK_STATE: sscanf(v, " %c", &st->state); break;
	case SK_TGID: st->tgid = atoi(v); break;
	case SK_PPID: st->ppid = atoi(v); break;
	case SK_TRACER: st->tracer = atoi(v); break;
	case SK_NSPID: st->nspid_levels = count_words(v); break;
	case SK_UID:
		sscanf(v, "%u %u %u %u", &st->uid[0], &st->uid[1], &st->uid[2], &st->uid[3]);
		break;
	case SK_GID:
		sscanf(v, "%u %u %u %u", &st->gid[0], &st->gid[1], &st->gid[2], &st->gid[3]);
		break;
	case SK_GROUPS: return parse_groups(v, st);
	case SK_CAPINH: st->cap_inh = strtoull(v, NULL, 16); break;
	case SK_CAPPRM: st->cap_prm = strtoull(v, NULL, 16); break;
	case SK_CAPEFF: st->cap_eff = strtoull(v, NULL, 16); break;
	case SK_CAPBND: st->cap_bnd = strtoull(v, NULL, 16); break;
	case SK_CAPAMB: st->cap_amb = strtoull(v, NULL, 16); break;
	case SK_NNP: st->no_new_privs = atoi(v); break;
	case SK_SECCOMP: st->seccomp = atoi(v); break;
	case SK_UMASK: st->umask = strtoul(v, NULL, 8); break;
	case SK_SIGIGN: st->sig_ignored = strtoull(v, NULL, 16); break;
	case SK_SIGCGT: st->sig_caught = strtoull(v, NULL, 16); break;
	}
	return 0;
}

int eng__parse_status(pid_t pid, pid_t tid, struct eng__status *st)
{
	char name[48], *buf, *line;
	unsigned seen = 0;
	int ret;

	memset(st, 0, sizeof(*st));
	ret = eng__proc_read_task(pid, tid, "status", name, &buf);
	if (ret)
		return ret;
	for (line = buf; line && *line && !ret; line = strchr(line, '\n'), line = line ? line + 1 : NULL)
		ret = status_line(line, st, &seen);
	free(buf);
	/* Every key we know: a kernel that lacks one is refused, not guessed at. */
	for (int k = 0; k < SK_NR && !ret; k++)
		if (!(seen & 1u << k))
			ret = pr_errno(-EPROTO, "pid %d: /proc/%d/%s has no %s line", pid, pid, name,
				       status_keys[k]);
	if (ret)
		eng__status_free(st);
	return ret;
}

void eng__status_free(struct eng__status *st)
{
	free(st->groups);
	st->groups = NULL;
	st->nr_groups = 0;
}

bool eng__status_same_creds(const struct eng__status *a, const struct eng__status *b)
{
	return !memcmp(a->uid, b->uid, sizeof(a->uid)) && !memcmp(a->gid, b->gid, sizeof(a->gid)) &&
	       a->nr_groups == b->nr_groups &&
	       (!a->nr_groups || !memcmp(a->groups, b->groups, a->nr_groups * sizeof(*a->groups))) &&
	       a->cap_inh == b->cap_inh && a->cap_prm == b->cap_prm && a->cap_eff == b->cap_eff &&
	       a->cap_bnd == b->cap_bnd && a->cap_amb == b->cap_amb &&
	       a->no_new_privs == b->no_new_privs;
}

/* ---- limits, fdinfo, timers ------------------------------------------------------- */

static uint64_t limit_value(const char *s)
{
	return !strncmp(s, "unlimited", 9) ? RLIM_INFINITY : strtoull(s, NULL, 10);
}

int eng__parse_limits(pid_t pid, struct eng__rlimit out[ENG_NR_RLIMITS])
{
	char *buf, *line;
	int ret, n = 0;

	ret = eng__proc_read(pid, "limits", &buf, NULL);
	if (ret)
		return ret;
	/* proc_pid_limits(): a header, then one "%-25s %-20s %-20s %-10s" line per
	 * RLIMIT_* in index order; the name column is 25 wide and may hold spaces. */
	line = strchr(buf, '\n');
	while (line && *++line && n < ENG_NR_RLIMITS) {
		char cur[24], max[24];

		if (strlen(line) < 27 || sscanf(line + 26, "%23s %23s", cur, max) != 2)
			break;
		out[n].cur = limit_value(cur);
		out[n].max = limit_value(max);
		n++;
		line = strchr(line, '\n');
	}
	free(buf);
	if (n != ENG_NR_RLIMITS)
		return pr_errno(-EPROTO, "pid %d: /proc/%d/limits: %d limits, expected %d", pid, pid, n,
				ENG_NR_RLIMITS);
	return 0;
}

int eng__parse_fdinfo(pid_t pid, int fd, const char *info, struct eng__fdinfo *fi)
{
	const char *p;
	int seen = 0;

	memset(fi, 0, sizeof(*fi));
	for (p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (!strncmp(p, "pos:", 4))
			fi->pos = strtoull(p + 4, NULL, 10), seen |= 1;
		else if (!strncmp(p, "flags:", 6))
			fi->flags = strtoul(p + 6, NULL, 8), seen |= 2;
		else if (!strncmp(p, "mnt_id:", 7))
			fi->mnt_id = atoi(p + 7), seen |= 4;
	}
	if (seen != 7)
		return pr_errno(-EPROTO, "pid %d: /proc/%d/fdinfo/%d: no pos, flags or mnt_id", pid, pid, fd);
	return 0;
}

static int cmp_timer(const void *a, const void *b)
{
	const struct eng__ptimer *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* show_timer(): "ID: %d", "signal: %d/%px", "notify: %s/%s.%d", "ClockID: %d". */
static int timer_line(const char *line, struct eng__ptimer *t)
{
	char how[16], who[8];
	unsigned long long val;
	int n;

	if (sscanf(line, "signal: %d/%llx", &t->signo, &val) == 2) {
		t->sigval = val;
	} else if (sscanf(line, "notify: %15[a-z]/%7[a-z].%d", how, who, &n) == 3) {
		if (!strcmp(how, "signal"))
			t->notify = SIGEV_SIGNAL;
		else if (!strcmp(how, "none"))
			t->notify = SIGEV_NONE;
		else if (!strcmp(how, "thread"))
			t->notify = SIGEV_THREAD;
		else
			return -EPROTO;
		if (!strcmp(who, "tid"))
			t->notify |= SIGEV_THREAD_ID;
		t->notify_pid = n;
	} else if (sscanf(line, "ClockID: %d", &t->clock_id) != 1) {
		return -EPROTO;
	}
	return 0;
}

int eng__parse_timers(pid_t pid, struct eng__ptimer **out, int *nr)
{
	struct eng__ptimer *arr = NULL;
	int n = 0, cap = 0, ret;
	char *buf, *line;

	ret = eng__proc_read(pid, "timers", &buf, NULL);
	if (ret)
		return ret;
	for (line = buf; line && *line && !ret; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		int id;

		if (sscanf(line, "ID: %d", &id) == 1) {
			if (n == cap) {
				struct eng__ptimer *p = realloc(arr, (cap = cap ? 2 * cap : 8) * sizeof(*p));

				if (!p) {
					ret = -ENOMEM;
					break;
				}
				arr = p;
			}
			memset(&arr[n], 0, sizeof(arr[n]));
			arr[n++].id = id;
		} else if (n) {
			ret = timer_line(line, &arr[n - 1]);
		} else {
			ret = -EPROTO;
		}
	}
	if (ret == -EPROTO)
		pr_err("pid %d: /proc/%d/timers: cannot parse \"%.60s\"", pid, pid, line);
	free(buf);
	if (ret) {
		free(arr);
		return ret;
	}
	/* The kernel lists the newest first; images want ascending ids. */
	if (n)
		qsort(arr, n, sizeof(*arr), cmp_timer);
	*out = arr;
	*nr = n;
	return 0;
}
