/*
 * A chrooted process: chroot into "root" below the scratch dir, cwd "/" there. After
 * restore "/" is still that directory: /marker (only there) reads back, getcwd() is
 * "/", "/.." is "/" itself, and the real root's /proc is not reachable.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

int main(void)
{
	char buf[64] = { 0 }, cwd[256];
	struct stat a, b;
	int fd;

	zdtm_init();
	mkdir("root", 0755);
	fd = open("root/marker", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "inside the chroot\n", 18) != 18)
		zdtm_fail("marker: %m");
	close(fd);
	if (chroot("root") || chdir("/"))
		zdtm_fail("chroot: %m");
	zdtm_ready("root=root");
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	fd = open("/marker", O_RDONLY);
	zdtm_check(fd >= 0 && read(fd, buf, sizeof(buf) - 1) == 18 && !strcmp(buf, "inside the chroot\n"),
		   "/marker not readable: not in the chroot (%m)");
	close(fd);
	zdtm_check(getcwd(cwd, sizeof(cwd)) && !strcmp(cwd, "/"), "cwd '%s', want '/'", cwd);
	zdtm_check(!stat("/", &a) && !stat("/..", &b) && a.st_ino == b.st_ino && a.st_dev == b.st_dev,
		   "/.. is not / : the root is not a root");
	zdtm_check(access("/proc/self/status", F_OK) && errno == ENOENT, "the real /proc is visible");
	zdtm_pass();
}
