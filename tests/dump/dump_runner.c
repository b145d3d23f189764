/*
 * Dump tests on real processes (issue 3, dump half). Each mode starts a victim with
 * /dev/null and a log file as stdio (pipes are not dumpable yet), waits for its ready
 * line, runs `hactl dump` on it as a separate process, and checks the result:
 *
 *   live   --leave-running, -c N times: every image verifies, and holds exactly what
 *          the victim announced (threads, handler, queued signals, sigaltstack, timer,
 *          the buffer's bytes through pagemap+pages, fds, positions, the deleted
 *          file's contents); then the victim must pass its own self-check.
 *   refuse the victim holds a netlink socket (--socket) or a pty (--tty): the dump must
 *          fail naming pid, fd and kind, leave no image, and the victim must pass.
 *   kill   without --leave-running: the victim must die of SIGKILL, the images verify.
 *   failat eng_dump (in-process, no --leave-running) fails on purpose at a stage
 *          (HA_TEST_DUMP_FAIL): the victim must survive untouched (not traced, not
 *          stopped, no uffd registration) and pass, the image directory the dump
 *          created must be gone, and no fd of ours leaked.
 *   bench  victim_mem of N MiB, dumped in-process (--never: without pre-copy): prints
 *          the timings, asserts only that the images verify and the victim passes.
 *   dirty  victim_dirty of N MiB keeps writing its pages during the dump (in-process,
 *          --leave-running, pre-copy always or never): the image must hold one
 *          consistent generation of every page, and the victim must pass.
 *
 * usage: dump_runner live|refuse|kill HACTL VICTIM [--socket|--tty] [-c N]
 *        dump_runner failat VICTIM STAGE
 *        dump_runner bench VICTIM_MEM MIB [--kill] [--never]
 *        dump_runner dirty VICTIM_DIRTY MIB always|never
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ha/engine.h"
#include "dump_check.h"

static char workdir[64], victim_log[96];

/* The victim's stdio: /dev/null in, victim.log out, and no input pipe, so that it holds
 * only what it opens itself (tests/cr/runner.c closes the rest). */
static int start_victim(char *const argv[], struct victim *v)
{
	struct victim_opts o = { .log = victim_log, .no_input = 1, .argv = argv };

	return victim_start_opts(argv[0], &o, v);
}

/* SIGTERM, then the victim's own verdict (its log when it failed). */
static int finish_victim(struct victim *v)
{
	if (!victim_finish(v))
		return 0;
	cr_show("victim log", victim_log);
	return 1;
}

/* Run hactl with args; its stderr into err (NUL-terminated). Returns its exit status. */
static int run_hactl(const char *hactl, char *const args[], char *err, size_t len)
{
	char path[128];
	char *argv[16];
	int n = 0, st, fd;
	pid_t pid;
	ssize_t r;

	argv[n++] = (char *)hactl;
	while (*args && n < 15)
		argv[n++] = *args++;
	argv[n] = NULL;
	snprintf(path, sizeof(path), "%s/hactl.err", workdir);
	pid = fork();
	if (!pid) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		execv(hactl, argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return fail("running hactl: %m"), -1;
	fd = open(path, O_RDONLY);
	r = fd >= 0 ? read(fd, err, len - 1) : 0;
	err[r > 0 ? r : 0] = 0;
	if (fd >= 0)
		close(fd);
	fputs(err, stderr);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int dump(const char *hactl, const struct victim *v, const char *dir, bool leave, char *err,
		size_t len)
{
	char pid[16];
	char *args[] = { "dump", "-t", pid, "-D", (char *)dir, leave ? "--leave-running" : NULL, NULL };


	snprintf(pid, sizeof(pid), "%d", v->pid);
	return run_hactl(hactl, args, err, len);
}

static int mode_live(const char *hactl, char *const vargv[], int cycles)
{
	struct victim v;
	char dir[128], err[4096];
	int ret = 0;

	if (start_victim(vargv, &v))
		return 1;
	for (int i = 0; i < cycles && !ret; i++) {
		snprintf(dir, sizeof(dir), "%s/img-%d", workdir, i);
		if (dump(hactl, &v, dir, true, err, sizeof(err)))
			ret = fail("hactl dump failed: %s", err);
		else
			ret = check_images(dir, &v, workdir);
		if (!ret && kill(v.pid, 0))
			ret = fail("the victim is gone after a --leave-running dump");
	}
	if (ret) {
		victim_kill(&v);
		return ret;
	}
	return finish_victim(&v);
}

static int mode_refuse(const char *hactl, char *const vargv[])
{
	struct victim v;
	char dir[128], err[4096], want[128], status[64];
	struct stat st;
	const char *kind = !strcmp(vargv[1], "--tty") ? "tty (/dev/ptmx)" : "netlink socket";
	int ret, rc;

	if (start_victim(vargv, &v))
		return 1;
	snprintf(dir, sizeof(dir), "%s/img", workdir);
	snprintf(want, sizeof(want), "pid %d: fd %ld: %s", v.pid, victim_fact_num(&v, "bad_fd"), kind);
	ret = 0;
	rc = dump(hactl, &v, dir, true, err, sizeof(err));
	if (rc != 1)
		ret = fail("hactl dump exited %d, expected 1", rc);
	else if (!strstr(err, want))
		ret = fail("the error does not say \"%s\"", want);
	else if (!stat(dir, &st))
		ret = fail("%s exists after a refused dump", dir);
	snprintf(status, sizeof(status), "/proc/%d/status", v.pid);
	if (!ret && proc_field(status, "TracerPid:", err, sizeof(err)) == 0 && strcmp(err, "0"))
		ret = fail("the victim is still traced by %s", err);
	if (ret) {
		victim_kill(&v);
		return ret;
	}
	return finish_victim(&v);
}

static int mode_kill(const char *hactl, char *const vargv[])
{
	struct victim v;
	char dir[128], err[4096];
	int ret, st = 0;

	if (start_victim(vargv, &v))
		return 1;
	snprintf(dir, sizeof(dir), "%s/img", workdir);
	if (dump(hactl, &v, dir, false, err, sizeof(err))) {
		victim_kill(&v);
		return fail("hactl dump failed: %s", err);
	}
	/* hactl waited for its death: the victim must already be a zombie for us. */
	if (waitpid(v.pid, &st, WNOHANG) != v.pid)
		ret = fail("the victim is still alive after a dump without --leave-running");
	else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
		ret = fail("the victim ended with status %#x, not by SIGKILL", st);
	else
		ret = 0;
	if (ret)
		victim_kill(&v);
	v.pid = ret ? 0 : v.pid;
	return ret ? ret : check_images(dir, &v, workdir);
}

static int mode_bench(char *const vargv[], bool kill_it, bool never)
{
	struct eng_dump_opts o = { .leave_running = !kill_it,
				   .precopy = never ? ENG_PRECOPY_NEVER : ENG_PRECOPY_AUTO };
	struct eng_dump_stats st;
	struct victim v;
	char dir[128];
	double frozen_mib;
	int ret, s;

	if (start_victim(vargv, &v))
		return 1;
	snprintf(dir, sizeof(dir), "%s/img", workdir);
	if (eng_dump(v.pid, dir, &o, &st)) {
		victim_kill(&v);
		return fail("eng_dump: %s", eng_last_error());
	}
	/* What the freeze itself copied: all of it, less what the pre-copy provided. */
	frozen_mib = (st.pages_written - st.pages_precopied) * 4096.0 / 1048576.0;
	printf("bench %s MiB%s%s: frozen %.1f ms (collect %.1f ms) + arm %.1f ms, total %.1f ms; "
	       "%lu pages, %lu pre-copied, %.0f MiB copied frozen (%.2f GB/s); %.1f MiB of images "
	       "(%.2f GB/s overall)\n",
	       vargv[1], kill_it ? " killed" : "", never ? " no-precopy" : "", st.frozen_us / 1e3,
	       st.collect_us / 1e3, st.arm_us / 1e3, st.total_us / 1e3, (long)st.pages_written,
	       (long)st.pages_precopied, frozen_mib, frozen_mib * 1048576.0 / (st.collect_us * 1e3),
	       st.bytes_written / 1048576.0, st.bytes_written / (st.total_us * 1e3));
	if (kill_it) {
		/* Our own child: the dump left reaping it to us. */
		ret = waitpid(v.pid, &s, 0) == v.pid && WIFSIGNALED(s) ? 0 : fail("victim not killed");
		v.pid = 0;
	} else {
		ret = finish_victim(&v);
	}
	if (!ret && eng_image_verify(dir, NULL))
		ret = fail("verify: %s", eng_last_error());
	return ret;
}

static int mode_dirty(char *const vargv[], const char *precopy)
{
	struct eng_dump_opts o = { .leave_running = true,
				   .precopy = strcmp(precopy, "never") ? ENG_PRECOPY_ALWAYS : ENG_PRECOPY_NEVER };
	struct eng_dump_stats st;
	struct victim v;
	char dir[128];
	int ret;

	if (start_victim(vargv, &v))
		return 1;
	usleep(200000);	/* let the writer get going */
	snprintf(dir, sizeof(dir), "%s/img", workdir);
	if (eng_dump(v.pid, dir, &o, &st)) {
		victim_kill(&v);
		return fail("eng_dump: %s", eng_last_error());
	}
	printf("dirty %s MiB, pre-copy %s: frozen %.1f ms, arm %.1f ms, %lu of %lu pages pre-copied\n",
	       vargv[1], precopy, st.frozen_us / 1e3, st.arm_us / 1e3, (long)st.pages_precopied,
	       (long)st.pages_written);
	ret = eng_image_verify(dir, NULL) ? fail("verify: %s", eng_last_error()) : check_dirty(dir, &v);
	if (!ret && !strcmp(precopy, "always") && (!st.pages_precopied || !st.arm_us))
		ret = fail("the pre-copy did not happen");
	if (ret) {
		victim_kill(&v);
		return ret;
	}
	return finish_victim(&v);
}

/* Any mapping still registered with a userfaultfd (VmFlags um/uw/ui)? */
static bool uffd_registered(pid_t pid)
{
	char path[64], line[512];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmFlags:", 8) && (strstr(line, " uw") || strstr(line, " um") || strstr(line, " ui")))
			found = true;
	if (f)
		fclose(f);
	return found;
}

static int count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* In-process, so that anything the engine leaks (an fd, a uffd still registered in
 * the victim) is still there to be seen when eng_dump returns. */
static int mode_failat(char *const vargv[], const char *stage)
{
	struct eng_dump_opts o = { .leave_running = false,
				   .precopy = !strcmp(stage, "precopied") ? ENG_PRECOPY_ALWAYS : ENG_PRECOPY_AUTO };
	char dir[128], status[64], tracer[64], state[64];
	struct victim v;
	struct stat st;
	int ret = 0, fds;

	if (start_victim(vargv, &v))
		return 1;
	snprintf(dir, sizeof(dir), "%s/img", workdir);
	fds = count_fds();
	setenv("HA_TEST_DUMP_FAIL", stage, 1);
	if (!eng_dump(v.pid, dir, &o, NULL) || !strstr(eng_last_error(), "on purpose"))
		ret = fail("eng_dump did not fail on purpose: %s", eng_last_error());
	unsetenv("HA_TEST_DUMP_FAIL");
	snprintf(status, sizeof(status), "/proc/%d/status", v.pid);
	if (ret)
		;
	else if (!stat(dir, &st))
		ret = fail("%s is still there after a failed dump", dir);
	else if (count_fds() != fds)
		ret = fail("the failed dump leaked %d fds", count_fds() - fds);
	else if (proc_field(status, "TracerPid:", tracer, sizeof(tracer)) || strcmp(tracer, "0") ||
		 proc_field(status, "State:", state, sizeof(state)) || state[0] == 't' || state[0] == 'T')
		ret = fail("the victim is traced (%s) or stopped (%s) after a failed dump", tracer, state);
	else if (uffd_registered(v.pid))
		ret = fail("a userfaultfd registration is left in the victim");
	if (ret) {
		victim_kill(&v);
		return ret;
	}
	return finish_victim(&v);
}

static bool has_arg(int argc, char **argv, const char *a)
{
	for (int i = 4; i < argc; i++)
		if (!strcmp(argv[i], a))
			return true;
	return false;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(int argc, char **argv)
{
	int cycles = 1, ret;
	char *vargv[4] = { NULL };

	if (argc < 4) {
		fprintf(stderr, "usage: dump_runner live|refuse|kill HACTL VICTIM [ARG] [-c N]\n"
				"       dump_runner failat VICTIM STAGE\n"
				"       dump_runner bench VICTIM_MEM MIB [--kill] [--never]\n");
		return 64;
	}
	/* Orphans we make (a victim whose runner died) are ours to reap. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(workdir, sizeof(workdir), "/tmp/hacd-dump-XXXXXX");
	if (!mkdtemp(workdir))
		return fail("mkdtemp: %m");
	snprintf(victim_log, sizeof(victim_log), "%s/victim.log", workdir);
	/* victim_dump's scratch files go there. */
	setenv("HA_WORKDIR", workdir, 1);
	vargv[0] = argv[3];
	for (int i = 4; i < argc && strcmp(argv[1], "bench"); i++)
		if (!strcmp(argv[i], "-c") && i + 1 < argc)
			cycles = atoi(argv[++i]);
		else
			vargv[1] = argv[i];
	if (!strcmp(argv[1], "live"))
		ret = mode_live(argv[2], vargv, cycles);
	else if (!strcmp(argv[1], "refuse"))
		ret = vargv[1] ? mode_refuse(argv[2], vargv) : fail("refuse needs --socket or --tty");
	else if (!strcmp(argv[1], "kill"))
		ret = mode_kill(argv[2], vargv);
	else if (!strcmp(argv[1], "failat"))
		ret = mode_failat((char *[]){ argv[2], NULL }, argv[3]);
	else if (!strcmp(argv[1], "dirty"))
		ret = argc > 4 ? mode_dirty((char *[]){ argv[2], argv[3], NULL }, argv[4])
			       : fail("dirty needs VICTIM MIB always|never");
	else if (!strcmp(argv[1], "bench"))
		ret = mode_bench((char *[]){ argv[2], argv[3], NULL }, has_arg(argc, argv, "--kill"),
				 has_arg(argc, argv, "--never"));
	else
		ret = fail("unknown mode %s", argv[1]);
	printf("%s dump_runner %s %s\n", ret ? "FAIL" : "PASS", argv[1], argv[3]);
	if (!ret)
		nftw(workdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	else
		fprintf(stderr, "kept %s for inspection\n", workdir);
	return ret ? 1 : 0;
}
