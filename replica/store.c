/*
 * store.c: the file-system side of replication: hashing a generation's files, making
 * and removing the directories a received generation is assembled in, fsyncing them.
 * A generation directory holds plain files only, which is all rep__rmtree() removes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "replica-int.h"

int rep__fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

int rep__rmtree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int ret = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && !ret)
			ret = -errno;
	}
	closedir(d);
	if (rmdir(path) < 0 && !ret)
		ret = -errno;
	return ret;
}

int rep__file_xxh3(int dirfd, const char *name, uint64_t *hash, uint64_t *size)
{
	XXH3_state_t *st = XXH3_createState();
	size_t bufsz = 1 << 20;
	char *buf = malloc(bufsz);
	uint64_t total = 0;
	ssize_t n;
	int fd = -1, ret = 0;

	if (!st || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	XXH3_64bits_reset(st);
	while ((n = read(fd, buf, bufsz)) > 0) {
		XXH3_64bits_update(st, buf, (size_t)n);
		total += (uint64_t)n;
	}
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	*hash = XXH3_64bits_digest(st);
	*size = total;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	XXH3_freeState(st);
	return ret;
}

int rep__mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}
