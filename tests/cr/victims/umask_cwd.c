/*
 * umask 027 and a working directory "dir with space/sub" (below the scratch dir) holding
 * a file. After restore: umask() answers 027 and a new file gets mode 0640, getcwd() is
 * the same directory, and a relative open finds the file there.
 */
#include <fcntl.h>
#include <sys/stat.h>

#include "../zdtm.h"

int main(void)
{
	char cwd[4096], now[4096], buf[32] = { 0 };
	struct stat st;
	mode_t m;
	int fd;

	zdtm_init();
	mkdir("dir with space", 0755);
	mkdir("dir with space/sub", 0755);
	if (chdir("dir with space/sub") || !getcwd(cwd, sizeof(cwd)))
		zdtm_fail("chdir: %m");
	fd = open("here.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "I am here\n", 10) != 10)
		zdtm_fail("here.txt: %m");
	close(fd);
	umask(027);
	zdtm_ready("umask=027");
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	m = umask(022);
	zdtm_check(m == 027, "umask %03o, want 027", m);
	umask(027);
	zdtm_check(getcwd(now, sizeof(now)) && !strcmp(now, cwd), "cwd '%s', want '%s'", now, cwd);
	fd = open("here.txt", O_RDONLY);
	zdtm_check(fd >= 0 && read(fd, buf, sizeof(buf) - 1) == 10 && !strcmp(buf, "I am here\n"),
		   "relative open of here.txt: %m");
	close(fd);
	unlink("probe");
	fd = open("probe", O_WRONLY | O_CREAT | O_EXCL, 0666);
	zdtm_check(fd >= 0 && !fstat(fd, &st), "creating probe: %m");
	zdtm_check((st.st_mode & 0777) == 0640, "new file mode %03o, want 0640 under umask 027", st.st_mode & 0777);
	close(fd);
	unlink("probe");
	zdtm_pass();
}
