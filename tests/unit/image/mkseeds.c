/*
 * Writes the fuzz seeds for tests/fuzz/fuzz_engine_image.c: every file of the sample
 * checkpoint, prefixed with the harness's mode byte (see there), once as it is and
 * once with the harness fixing checksums and headers; and the whole sample as one
 * bundle, so mutations reach the cross-file checks. Usage: image_mkseeds OUTDIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sample.h"

/* mode, then (kind index, u32 length, file) for every file. */
static int bundle(int dfd, int out, const struct sample_file *f, size_t n, int mode)
{
	uint8_t *seed = malloc(1), *buf;
	size_t len, total = 1;
	char name[32];
	int ret;

	seed[0] = mode;
	for (size_t i = 0; i < n; i++) {
		uint32_t l;

		buf = sample_slurp(dfd, sample_name(&f[i]), &len);
		seed = realloc(seed, total + 5 + len);
		seed[total] = f[i].kind - 1;
		l = len;
		memcpy(seed + total + 1, &l, 4);
		memcpy(seed + total + 5, buf, len);
		total += 5 + len;
		free(buf);
	}
	snprintf(name, sizeof(name), "seed-%d-bundle", mode);
	ret = sample_spit(out, name, seed, total);
	free(seed);
	return ret;
}

int main(int argc, char **argv)
{
	char *dir = sample_tmpdir();
	int dfd = dir ? ha_dir_open(dir, false) : -1;
	int out = argc == 2 ? ha_dir_open(argv[1], false) : -1;
	const struct sample_file *f;
	size_t n, len;

	if (dfd < 0 || out < 0 || sample_write(dfd)) {
		fprintf(stderr, "usage: %s OUTDIR (an existing directory)\n", argv[0]);
		return 2;
	}
	f = sample_files(&n);
	if (bundle(dfd, out, f, n, 8) || bundle(dfd, out, f, n, 8 | 3) ||
	    bundle(dfd, out, f, n, 8 | 4 | 3))
		return 1;
	for (size_t i = 0; i < n; i++) {
		const char *name = sample_name(&f[i]);
		uint8_t *buf = sample_slurp(dfd, name, &len), *seed = malloc(len + 1);
		char sname[80];

		for (int mode = 0; mode < 4; mode += 3) {
			seed[0] = mode;
			memcpy(seed + 1, buf, len);
			snprintf(sname, sizeof(sname), "seed-%d-%s", mode, name);
			if (sample_spit(out, sname, seed, len + 1))
				return 1;
		}
		free(seed);
		free(buf);
	}
	close(dfd);
	sample_rmdir(dir);
	return 0;
}
