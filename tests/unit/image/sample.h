/*
 * A complete sample checkpoint (one process, two threads, every kind of image and every
 * message type, with real page and ghost data) for the image tests and the fuzz seeds.
 */
#ifndef HA_TEST_IMAGE_SAMPLE_H
#define HA_TEST_IMAGE_SAMPLE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/engine.h"

#define SAMPLE_PID 4242

struct sample_file {
	enum eng_img_kind kind;
	uint32_t id;
	const ProtobufCMessage *recs[8];	/* record kinds */
	size_t n;
	const uint8_t *data;			/* raw kinds */
	size_t len;
};

/* Every file of the sample, in the order eng_image_show lists them. */
const struct sample_file *sample_files(size_t *n);
const struct sample_file *sample_file(enum eng_img_kind kind);
/* "core-4242.img" */
const char *sample_name(const struct sample_file *f);
int sample_write_file(int dirfd, const struct sample_file *f);
int sample_write(int dirfd);

/* cmocka fixtures: *state is a struct sample_dir, a fresh directory, empty or with the
 * whole sample written into it. */
struct sample_dir {
	char *dir;
	int dirfd;
};
int sample_setup(void **state);
int sample_setup_written(void **state);
int sample_teardown(void **state);

/* A fresh 0700 directory under $TMPDIR (or /dev/shm, /tmp); and rm -r of one. */
char *sample_tmpdir(void);
void sample_rmdir(char *dir);
/* Whole file into a malloc'd buffer; NULL on failure. */
uint8_t *sample_slurp(int dirfd, const char *name, size_t *len);
int sample_spit(int dirfd, const char *name, const void *buf, size_t len);

#endif
