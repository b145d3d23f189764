/*
 * Fuzzes the image reader: the input is written as the file of every image kind in a
 * scratch directory, which then goes through eng_image_verify (open, frame checks,
 * unpack, field checks, cross-checks, page hashing) and eng_image_show (the generic
 * printer, text or JSON, of whatever unpacked).
 *
 * Input: one mode byte, then the file.
 *   bit 0  fix each file up first: every record checksum and the end marker's count,
 *          so that mutations reach protobuf-c and the field checks instead of dying
 *          at a checksum the fuzzer cannot forge
 *   bit 1  overwrite the header with a valid one for each kind
 *   bit 2  show as JSON
 *   bit 3  the rest is a bundle of files, (u8 kind index, u32 length, bytes)..., each
 *          written as that kind alone: a whole valid directory as a seed lets
 *          mutations of one file reach the cross-checks against the others
 * Seeds: tests/unit/image/mkseeds.c writes them from the sample checkpoint.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "ha/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TAG(s) ((uint32_t)(s)[0] | (uint32_t)(s)[1] << 8 | (uint32_t)(s)[2] << 16 | (uint32_t)(s)[3] << 24)

/* The on-disk format, as engine/image.h documents it. The ids are the seeds' (the
 * sample's pid 4242, its file 1), so that mutated seeds get past the name checks. */
static const struct { const char *file, *tag; uint32_t id; bool raw; } kinds[] = {
	{ "inventory.img", "INVT", 0, false }, { "pstree.img", "TREE", 0, false },
	{ "files.img", "FILE", 0, false }, { "core-4242.img", "CORE", 4242, false },
	{ "mm-4242.img", "MMAP", 4242, false }, { "pagemap-4242.img", "PMAP", 4242, false },
	{ "fds-4242.img", "FDTB", 4242, false }, { "pages-4242.img", "PAGE", 4242, true },
	{ "ghost-1.img", "GHST", 1, true },
};

#define NR_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static char dir[64];
static int dirfd = -1;
static FILE *devnull;

/* The scratch directory goes when the process does (ctest replays run often). */
static void cleanup(void)
{
	for (unsigned k = 0; k < NR_KINDS; k++)
		unlinkat(dirfd, kinds[k].file, 0);
	rmdir(dir);
}

static void init(void)
{
	eng_set_log(NULL, 0, NULL);
	strcpy(dir, access("/dev/shm", W_OK) ? "/tmp/hacd-fuzz-XXXXXX" : "/dev/shm/hacd-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	devnull = fopen("/dev/null", "w");
	if (dirfd < 0 || !devnull)
		abort();
	atexit(cleanup);
}

static void fix_frames(uint8_t *b, size_t len, size_t off)
{
	uint32_t n = 0, rlen, sum;

	while (off <= len && len - off >= 8) {
		memcpy(&rlen, b + off, 4);
		if (rlen == 0xffffffff) {
			memcpy(b + off + 4, &n, 4);
			return;
		}
		if (rlen > len - off - 8)
			return;
		sum = (uint32_t)XXH3_64bits(b + off + 8, rlen);
		memcpy(b + off + 4, &sum, 4);
		off += 8 + rlen;
		n++;
	}
}

static void put_file(unsigned k, const uint8_t *data, size_t len, uint8_t mode)
{
	uint32_t h[4] = { 0x44434148, TAG(kinds[k].tag), ENG_IMG_VERSION, kinds[k].id };
	uint8_t *b = malloc(len + 1);
	int fd;

	if (!b)
		abort();
	memcpy(b, data, len);
	if (mode & 2)
		memcpy(b, h, len < 16 ? len : 16);
	if ((mode & 1) && !kinds[k].raw)
		fix_frames(b, len, 16);
	fd = openat(dirfd, kinds[k].file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, b, len) != (ssize_t)len)
		abort();
	close(fd);
	free(b);
}

/* A whole directory: (u8 kind index, u32 length, bytes)... */
static void put_bundle(const uint8_t *p, size_t left, uint8_t mode)
{
	for (unsigned k = 0; k < NR_KINDS; k++)
		unlinkat(dirfd, kinds[k].file, 0);
	while (left >= 5) {
		unsigned k = p[0] % NR_KINDS;
		uint32_t len;

		memcpy(&len, p + 1, 4);
		p += 5;
		left -= 5;
		if (len > left)
			len = left;
		put_file(k, p, len, mode);
		p += len;
		left -= len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct eng_image_stats st;

	if (!size)
		return 0;
	if (dirfd < 0)
		init();
	if (data[0] & 8) {
		put_bundle(data + 1, size - 1, data[0]);
	} else {
		for (unsigned k = 0; k < NR_KINDS; k++)
			put_file(k, data + 1, size - 1, data[0]);
	}
	eng_image_verify(dir, &st);
	eng_image_show(dir, devnull, data[0] & 4);
	return 0;
}
