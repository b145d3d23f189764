/*
 * One open file description shared by a parent and its child (opened before the fork,
 * no O_APPEND): both write fixed-size records through it, so each write lands where
 * the other's ended. They hold still while checkpointed (the runner compares the
 * offset), and after restore the parent writes, then the child, then the parent again:
 * kcmp() must still say it is one file, and the records up to the shared offset must
 * be exactly the ones each process counted. Two descriptions would each go on from the
 * dumped offset and overwrite each other.
 */
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "../zdtm.h"

#define REC 16
#define KCMP_FILE 0

static void put(int fd, char who, unsigned long n)
{
	char rec[REC + 1];

	snprintf(rec, sizeof(rec), "%c%014lu\n", who, n);
	if (write(fd, rec, REC) != REC)
		zdtm_fail("%c: write: %m", who);
}

int main(void)
{
	char path[512], cpath[512], rec[REC];
	unsigned long np = 0, nc = 0, seen_p = 0, seen_c = 0;
	const char *rfd = getenv("HA_READY_FD");
	pid_t child;
	off_t off;
	int fd, st;
	FILE *f;

	zdtm_init();
	snprintf(path, sizeof(path), "%s/shared.dat", zdtm_dir());
	snprintf(cpath, sizeof(cpath), "%s/child.count", zdtm_dir());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		zdtm_fail("open %s: %m", path);
	child = fork();
	if (child == 0) {
		if (rfd)
			close(atoi(rfd));
		for (int i = 0; i < 20; i++) {
			put(fd, 'C', nc++);
			zdtm_sleep_ms(1);
		}
		while (!zdtm_stop)
			zdtm_sleep_ms(5);
		for (int i = 0; i < 10; i++)
			put(fd, 'C', nc++);
		f = fopen(cpath, "we");
		if (!f || fprintf(f, "%lu\n", nc) < 0 || fclose(f))
			zdtm_fail("child: writing %s", cpath);
		exit(0);
	}
	for (int i = 0; i < 20; i++) {
		put(fd, 'P', np++);
		zdtm_sleep_ms(1);
	}
	for (int i = 0; i < 5000 && lseek(fd, 0, SEEK_CUR) != 40 * REC; i++)
		zdtm_sleep_ms(1);
	zdtm_check(lseek(fd, 0, SEEK_CUR) == 40 * REC, "the child did not write its 20 records");
	zdtm_ready("child=%d", child);
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	zdtm_check(syscall(SYS_kcmp, zdtm_getpid(), child, KCMP_FILE, fd, fd) == 0,
		   "parent and child fd %d are not one open file any more", fd);
	for (int i = 0; i < 10; i++)
		put(fd, 'P', np++);
	kill(child, SIGTERM);
	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			zdtm_fail("waitpid: %m");
	zdtm_check(WIFEXITED(st) && !WEXITSTATUS(st), "child ended with %#x", st);
	for (int i = 0; i < 10; i++)
		put(fd, 'P', np++);
	f = fopen(cpath, "re");
	zdtm_check(f && fscanf(f, "%lu", &nc) == 1, "no child count in %s", cpath);
	fclose(f);
	off = lseek(fd, 0, SEEK_CUR);
	zdtm_check(off == (off_t)((np + nc) * REC), "offset %ld, want (%lu + %lu) * %d", (long)off, np, nc, REC);
	for (off_t at = 0; at < off; at += REC) {
		zdtm_check(pread(fd, rec, REC, at) == REC, "short read at %ld", (long)at);
		if (rec[0] == 'P')
			zdtm_check(strtoul(rec + 1, NULL, 10) == seen_p++, "P record out of order at %ld", (long)at);
		else if (rec[0] == 'C')
			zdtm_check(strtoul(rec + 1, NULL, 10) == seen_c++, "C record out of order at %ld", (long)at);
		else
			zdtm_fail("garbage at %ld", (long)at);
	}
	zdtm_check(seen_p == np && seen_c == nc, "%lu/%lu P and %lu/%lu C records", seen_p, np, seen_c, nc);
	zdtm_pass();
}
