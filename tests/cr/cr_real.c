/*
 * cr_real: checkpoint/restore of programs nobody here wrote (issue 3).
 *
 * usage: cr_real [--leave-running|--no-checkpoint] [--hactl PATH] [--python PATH]
 *                [--script sha_chain.py] bash|python
 *
 *  bash    `i=0; while :; do echo $i >> count; i=$((i+1)); sleep 0.01; done`: bash
 *          forks /bin/sleep all the time, so the dump meets a process tree. After
 *          restore the numbers in count must go on without a gap or a restart.
 *  python  real/sha_chain.py: a SHA-256 chain with its state in the interpreter's
 *          memory, progress lines every 1000 steps. After restore it carries on; asked
 *          to stop, its final answer (steps, list length, digest, list sum) must equal
 *          a fresh uninterrupted computation of as many steps, and the progress lines
 *          must go on without a gap or a restart.
 *
 * Default: dump (kills), restore, carry on. --leave-running: the original carries on and
 * is checked, then the image is restored and the copy carries on from where the dump
 * saw it (anywhere between what was written before the dump and what the original
 * wrote after). --no-checkpoint: the same checks without hactl (proves the scenario).
 */
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crlib.h"

enum mode { M_ROUNDTRIP, M_LEAVE, M_SELF };

struct real {
	enum mode mode;
	const char *hactl, *python, *script, *prog;
	struct cr_dir dir;
	struct victim v;
	char file[400];		/* count (bash) or progress (python) */
	long step;		/* 1 for bash, 1000 for python */
	char why[600];
};

static int why(struct real *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int why(struct real *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->why[0]) {
		va_start(ap, fmt);
		vsnprintf(r->why, sizeof(r->why), fmt, ap);
		va_end(ap);
	}
	return 1;
}

/* The first number of every line of the file; returns how many (-1: unreadable). */
static long read_numbers(const char *path, long **out)
{
	char *s = cr_slurp(path), *line, *save;
	long n = 0, cap = 1024, *v = malloc(cap * sizeof(long));

	if (!s) {
		free(v);
		*out = NULL;
		return -1;
	}
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (n == cap)
			v = realloc(v, (cap *= 2) * sizeof(long));
		v[n++] = strtol(line, NULL, 10);
	}
	free(s);
	*out = v;
	return n;
}

static long last_number(const char *path)
{
	long *v, n = read_numbers(path, &v), last = n > 0 ? v[n - 1] : -1;

	free(v);
	return last;
}

/* Wait until the file's last number is at least `want` (the program carries on). */
static int wait_number(struct real *r, long want, const char *when)
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (last_number(r->file) < want) {
		if (cr_ms_since(&t0) > 40000)
			return why(r, "%s: the program did not get to %ld (last %ld)", when, want, last_number(r->file));
		usleep(10000);
	}
	return 0;
}

/*
 * Lines [from, n) must count on by r->step without gap or repeat, starting at
 * first_min..first_max.
 */
static int check_run(struct real *r, const long *v, long from, long n, long first_min, long first_max,
		     const char *what)
{
	if (from >= n)
		return why(r, "%s: no lines", what);
	if (v[from] < first_min || v[from] > first_max)
		return why(r, "%s: starts at %ld, must be within %ld..%ld", what, v[from], first_min, first_max);
	for (long i = from + 1; i < n; i++)
		if (v[i] != v[i - 1] + r->step)
			return why(r, "%s: line %ld is %ld after %ld (%s)", what, i + 1, v[i], v[i - 1],
				   v[i] > v[i - 1] ? "a gap" : "a restart");
	return 0;
}

static int start(struct real *r)
{
	static const char loop[] =
		"echo \"ready pid=$$\" >&$HA_READY_FD; eval \"exec $HA_READY_FD>&-\"; "
		"i=0; while :; do echo $i >> \"$HA_DIR/count\"; i=$((i+1)); sleep 0.01; done";
	char *bash_argv[] = { "/bin/bash", "-c", (char *)loop, NULL };
	char *py_argv[] = { (char *)r->python, (char *)r->script, NULL };
	struct victim_opts o = { .dir = r->dir.work, .log = r->dir.log, .no_input = 1 };
	int bash = !strcmp(r->prog, "bash");

	o.argv = bash ? bash_argv : py_argv;
	r->step = bash ? 1 : 1000;
	snprintf(r->file, sizeof(r->file), "%s/%s", r->dir.work, bash ? "count" : "progress");
	if (victim_start_opts(bash ? bash_argv[0] : r->python, &o, &r->v))
		return why(r, "%s did not start", r->prog);
	return wait_number(r, 20 * r->step, "at start");
}

/* End the program and reap it: bash dies of SIGTERM, python stops when asked and must
 * exit 0 with a result equal to a fresh computation. */
static int stop_and_check(struct real *r, const char *which)
{
	char stop[400], res[400], *got, *fresh = NULL, count[32];
	int st, rc;

	if (!strcmp(r->prog, "bash")) {
		kill(r->v.pid, SIGTERM);
		waitpid(r->v.pid, &st, 0);
		r->v.pid = 0;
		usleep(50000);		/* its last sleep child, reparented to us */
		cr_reap_strays(0);
		if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
			return why(r, "%s bash ended with status %#x, not by our SIGTERM", which, st);
		return 0;
	}
	snprintf(stop, sizeof(stop), "%s/stop", r->dir.work);
	snprintf(res, sizeof(res), "%s/result", r->dir.work);
	close(open(stop, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
	if (victim_reap(&r->v, 40000)) {
		victim_kill(&r->v);
		return why(r, "%s python did not stop and exit 0", which);
	}
	unlink(stop);
	got = cr_slurp(res);
	if (!got)
		return why(r, "%s python wrote no result", which);
	unlink(res);
	snprintf(count, sizeof(count), "%ld", strtol(got, NULL, 10));
	{
		char *argv[] = { (char *)r->python, (char *)r->script, "--fresh", count, NULL };

		rc = cr_run(argv, r->dir.hlog, 60000, &fresh);
	}
	if (rc || strcmp(got, fresh))
		why(r, "%s python's answer '%.*s' differs from a fresh computation's '%.*s'", which,
		    (int)strcspn(got, "\n"), got, (int)strcspn(fresh ? fresh : "", "\n"), fresh ? fresh : "");
	free(got);
	free(fresh);
	return r->why[0] ? 1 : 0;
}

static int restore(struct real *r, pid_t pid)
{
	int rc = cr_restore(r->hactl, r->dir.img, r->dir.hlog, NULL);

	if (rc)
		return why(r, "hactl restore exited %d", rc);
	if (!cr_pid_alive(pid))
		return why(r, "hactl restore succeeded but pid %d is not running", pid);
	if (waitpid(pid, NULL, WNOHANG) != 0)
		return why(r, "restored pid %d is not our child", pid);
	r->v.pid = pid;
	return 0;
}

static int run(struct real *r)
{
	long before, *v = NULL, n, orig_n;
	pid_t pid;
	int rc;

	if (start(r))
		return 1;
	pid = r->v.pid;
	if (r->mode == M_SELF) {
		before = last_number(r->file);
		if (wait_number(r, before + 20 * r->step, "running") || stop_and_check(r, "the"))
			return 1;
		n = read_numbers(r->file, &v);
		rc = check_run(r, v, 0, n, r->step == 1 ? 0 : r->step, r->step == 1 ? 0 : r->step, "the output");
		free(v);
		return rc;
	}
	before = last_number(r->file);
	rc = cr_dump(r->hactl, pid, r->dir.img, r->mode == M_LEAVE, r->dir.hlog, NULL);
	if (rc)
		return why(r, "hactl dump exited %d", rc);
	if (r->mode == M_ROUNDTRIP) {
		if (cr_wait_killed(pid, 10000))
			return why(r, "the dumped %s was not killed", r->prog);
		r->v.pid = 0;
		usleep(50000);
		if (cr_wait_pid_gone(pid, 5000))
			return why(r, "pid %d still exists after the dump", pid);
		orig_n = read_numbers(r->file, &v);
		free(v);
	} else {
		if (!cr_pid_alive(pid))
			return why(r, "%s did not survive dump --leave-running", r->prog);
		if (wait_number(r, before + 20 * r->step, "after dump --leave-running") ||
		    stop_and_check(r, "the original"))
			return 1;
		orig_n = read_numbers(r->file, &v);
		rc = check_run(r, v, 0, orig_n, r->step == 1 ? 0 : r->step, r->step == 1 ? 0 : r->step,
			       "the original's output");
		free(v);
		if (rc || cr_wait_pid_gone(pid, 5000))
			return rc ? 1 : why(r, "pid %d still exists after the original ended", pid);
	}
	if (restore(r, pid))
		return 1;
	if (wait_number(r, last_number(r->file) + 20 * r->step, "after restore") || stop_and_check(r, "the restored"))
		return 1;
	n = read_numbers(r->file, &v);
	if (r->mode == M_ROUNDTRIP) {
		rc = check_run(r, v, 0, n, r->step == 1 ? 0 : r->step, r->step == 1 ? 0 : r->step,
			       "the output across dump and restore");
	} else {
		/* The copy goes on from the dump: after `before`, at most right after what
		 * the original wrote last. */
		rc = check_run(r, v, orig_n, n, before + r->step, v[orig_n - 1] + r->step, "the restored copy's output");
	}
	free(v);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "leave-running", no_argument, NULL, 'l' }, { "no-checkpoint", no_argument, NULL, 's' },
		{ "hactl", required_argument, NULL, 'H' }, { "python", required_argument, NULL, 'p' },
		{ "script", required_argument, NULL, 'S' }, { NULL, 0, NULL, 0 },
	};
	char *script = NULL, *python = NULL;
	struct real r = { .mode = M_ROUNDTRIP, .hactl = "hactl", .python = "/usr/bin/python3",
			  .script = "sha_chain.py" };
	char name[64];
	int opt, ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': r.mode = M_LEAVE; break;
		case 's': r.mode = M_SELF; break;
		case 'H': r.hactl = optarg; break;
		case 'p': r.python = optarg; break;
		case 'S': r.script = optarg; break;
		default: return 64;
		}
	}
	if (optind != argc - 1 || (strcmp(argv[optind], "bash") && strcmp(argv[optind], "python"))) {
		fprintf(stderr, "usage: cr_real [--leave-running|--no-checkpoint] [--hactl PATH] [--python PATH] "
				"[--script PATH] bash|python\n");
		return 64;
	}
	r.prog = argv[optind];
	script = realpath(r.script, NULL);
	python = realpath(r.python, NULL);
	if (!script || !python) {
		fprintf(stderr, "cr_real: python or script: %m\n");
		return 64;
	}
	r.script = script;
	r.python = python;
	snprintf(name, sizeof(name), "real_%s%s", r.prog,
		 r.mode == M_LEAVE ? "_leave_running" : r.mode == M_SELF ? "_self" : "");
	if (cr_dir_make(&r.dir, name)) {
		printf("FAIL %s: no scratch dir\n", name);
		return 1;
	}
	ret = run(&r);
	if (r.v.pid > 0)
		victim_kill(&r.v);
	cr_reap_strays(0);
	free(script);
	free(python);
	if (ret) {
		cr_show("program log", r.dir.log);
		cr_show("hactl log", r.dir.hlog);
		printf("FAIL %s: %s (scratch dir %s kept)\n", name, r.why[0] ? r.why : "see above", r.dir.top);
		return 1;
	}
	cr_dir_remove(r.dir.top);
	printf("PASS %s\n", name);
	return 0;
}
