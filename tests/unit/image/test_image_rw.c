/*
 * The image writer and reader: every kind written and read back equal, raw data at
 * page-aligned offsets, the writer refusing what the reader would refuse, and the
 * crash-safe commit (no temp file after abort, the old file intact when a writer dies
 * before commit, 0700/0600 whatever the umask).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "inventory.pb-c.h"
#include "core.pb-c.h"
#include "mm.pb-c.h"
#include "sample.h"

static void assert_same_msg(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
	size_t la = protobuf_c_message_get_packed_size(a);
	size_t lb = protobuf_c_message_get_packed_size(b);
	uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);

	assert_ptr_equal(a->descriptor, b->descriptor);
	assert_int_equal(la, lb);
	protobuf_c_message_pack(a, pa);
	protobuf_c_message_pack(b, pb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

/* Names of the directory's entries, "a b c", for asserting what is left there. */
static void list_dir(int dirfd, char *out, size_t len)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;

	out[0] = 0;
	rewinddir(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			snprintf(out + strlen(out), len - strlen(out), "%s ", de->d_name);
	closedir(d);
}

static void check_file(int dirfd, const struct sample_file *f)
{
	struct eng_img *img;
	ProtobufCMessage *m;
	uint8_t *buf;

	assert_int_equal(eng_img_open(dirfd, f->kind, f->id, &img), 0);
	assert_string_equal(eng_img_name(img), sample_name(f));
	for (size_t i = 0; i < f->n; i++) {
		assert_int_equal(eng_img_read(img, f->recs[i]->descriptor, &m), 1);
		assert_same_msg(m, f->recs[i]);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	if (f->data) {
		assert_int_equal(eng_img_raw_size(img), f->len);
		buf = malloc(f->len);
		assert_int_equal(eng_img_read_raw(img, 0, buf, f->len), 0);
		assert_memory_equal(buf, f->data, f->len);
		assert_int_equal(eng_img_read_raw(img, 1, buf, f->len), -EBADMSG);
		free(buf);
	} else {
		assert_int_equal(eng_img_read(img, NULL, &m), 0);
		assert_null(m);
	}
	eng_img_close(img);
}

static void test_roundtrip_every_kind(void **state)
{
	struct sample_dir *fx = *state;
	size_t n;
	const struct sample_file *f = sample_files(&n);

	assert_int_equal(sample_write(fx->dirfd), 0);
	for (size_t i = 0; i < n; i++)
		check_file(fx->dirfd, &f[i]);
}

static void test_verify_sample(void **state)
{
	struct sample_dir *fx = *state;
	struct eng_image_stats st;

	assert_int_equal(sample_write(fx->dirfd), 0);
	assert_int_equal(eng_image_verify(fx->dir, &st), 0);
	assert_int_equal(st.files, 9);
	assert_int_equal(st.records, 1 + 1 + 3 + 3 + 5 + 4 + 4);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.data_bytes, 3 * 4096 + 5000);	/* two runs in pages + the ghost */
}

/* Raw data bigger than the write buffer, page-aligned in the file. */
static void test_raw_large(void **state)
{
	struct sample_dir *fx = *state;
	size_t len = 3 << 20;
	uint8_t *data = malloc(len), *back = malloc(len);
	struct eng_img *img;
	struct stat st;

	for (size_t i = 0; i < len; i++)
		data[i] = i * 31 + (i >> 12);
	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_PAGES, 7, &img), 0);
	assert_int_equal(eng_img_write_raw(img, data, 4096), 0);
	assert_int_equal(eng_img_raw_size(img), 4096);
	assert_int_equal(eng_img_write_raw(img, data + 4096, len - 4096), 0);
	assert_int_equal(eng_img_commit(img), 0);
	assert_int_equal(fstatat(fx->dirfd, "pages-7.img", &st, 0), 0);
	assert_int_equal(st.st_size, 4096 + len);
	assert_int_equal(eng_img_open(fx->dirfd, ENG_IMG_PAGES, 7, &img), 0);
	assert_int_equal(eng_img_read_raw(img, 0, back, len), 0);
	assert_memory_equal(back, data, len);
	eng_img_close(img);
	free(data);
	free(back);
}

static void test_permissions(void **state)
{
	struct sample_dir *fx = *state;
	mode_t old = umask(0);
	char sub[4096];
	struct stat st;
	size_t n;
	const struct sample_file *f = sample_files(&n);
	int dfd;

	snprintf(sub, sizeof(sub), "%s/ckpt", fx->dir);
	dfd = ha_dir_open(sub, true);
	assert_true(dfd >= 0);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(sample_write(dfd), 0);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(fstatat(dfd, sample_name(&f[i]), &st, 0), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
	}
	close(dfd);
	/* A directory others can read is refused rather than filled. */
	assert_int_equal(chmod(sub, 0755), 0);
	assert_int_equal(ha_dir_open(sub, true), -EPERM);
	assert_non_null(strstr(eng_last_error(), "must be 0700"));
	umask(old);
	assert_int_equal(chmod(sub, 0700), 0);
	dfd = ha_dir_open(sub, false);
	for (size_t i = 0; i < n; i++)
		unlinkat(dfd, sample_name(&f[i]), 0);
	close(dfd);
	rmdir(sub);
}

static void test_read_wrong_type(void **state)
{
	struct sample_dir *fx = *state;
	struct eng_img *img;
	ProtobufCMessage *m;

	assert_int_equal(sample_write(fx->dirfd), 0);
	assert_int_equal(eng_img_open(fx->dirfd, ENG_IMG_CORE, SAMPLE_PID, &img), 0);
	assert_int_equal(eng_img_read(img, &img_thread__descriptor, &m), -EINVAL);
	assert_non_null(strstr(eng_last_error(), "core-4242.img: record 0 is ImgCore"));
	eng_img_close(img);
	assert_int_equal(eng_img_open(fx->dirfd, ENG_IMG_CORE, 999, &img), -ENOENT);
	assert_null(img);
	assert_non_null(strstr(eng_last_error(), "core-999.img"));
}

/* The writer checks each message as the reader would, and a refused one sinks the file. */
static void test_writer_refuses(void **state)
{
	struct sample_dir *fx = *state;
	const struct sample_file *mmf = sample_file(ENG_IMG_MM);
	ImgVma bad = *(const ImgVma *)mmf->recs[1];
	struct eng_img *img;
	char ls[512];

	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_MM, SAMPLE_PID, &img), 0);
	assert_int_equal(eng_img_write(img, mmf->recs[1]), -EINVAL);	/* a VMA before ImgMm */
	assert_non_null(strstr(eng_last_error(), "mm-4242.img: record 0 must be ImgMm, not ImgVma"));
	assert_int_equal(eng_img_write(img, mmf->recs[0]), -EINVAL);	/* sticky */
	assert_int_equal(eng_img_commit(img), -EINVAL);

	bad.start = 0x8000;
	bad.end = 0x7000;
	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_MM, SAMPLE_PID, &img), 0);
	assert_int_equal(eng_img_write(img, mmf->recs[0]), 0);
	assert_int_equal(eng_img_write(img, &bad.base), -EINVAL);
	assert_string_equal(eng_last_error(),
			    "mm-4242.img: record 1 (ImgVma): field end: 0x7000 is not above start 0x8000");
	assert_int_equal(eng_img_commit(img), -EINVAL);

	/* A head-only kind takes one record; a kind with a head needs it. */
	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_INVENTORY, 0, &img), 0);
	assert_int_equal(eng_img_write(img, sample_file(ENG_IMG_INVENTORY)->recs[0]), 0);
	assert_int_equal(eng_img_write(img, sample_file(ENG_IMG_INVENTORY)->recs[0]), -EINVAL);
	assert_non_null(strstr(eng_last_error(), "holds one record only"));
	eng_img_abort(img);
	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_CORE, SAMPLE_PID, &img), 0);
	assert_int_equal(eng_img_commit(img), -EINVAL);
	assert_non_null(strstr(eng_last_error(), "core-4242.img: no ImgCore record written"));
	assert_int_equal(eng_img_create(fx->dirfd, ENG_IMG_CORE, 0, &img), -EINVAL);

	list_dir(fx->dirfd, ls, sizeof(ls));
	assert_string_equal(ls, "");	/* nothing half-written, no temp files */
}

static void write_inventory(int dirfd, uint32_t root, bool commit)
{
	ImgInventory inv = *(const ImgInventory *)sample_file(ENG_IMG_INVENTORY)->recs[0];
	uint32_t pids[1] = { root };
	struct eng_img *img;

	inv.root_pid = root;
	inv.pids = pids;
	assert_int_equal(eng_img_create(dirfd, ENG_IMG_INVENTORY, 0, &img), 0);
	assert_int_equal(eng_img_write(img, &inv.base), 0);
	if (commit)
		assert_int_equal(eng_img_commit(img), 0);
	else
		eng_img_abort(img);
}

static uint32_t read_root(int dirfd)
{
	struct eng_img *img;
	ImgInventory *inv;
	uint32_t root;

	assert_int_equal(eng_img_open(dirfd, ENG_IMG_INVENTORY, 0, &img), 0);
	assert_int_equal(eng_img_read(img, &img_inventory__descriptor, (ProtobufCMessage **)&inv), 1);
	root = inv->root_pid;
	protobuf_c_message_free_unpacked(&inv->base, NULL);
	eng_img_close(img);
	return root;
}

static void test_abort_and_replace(void **state)
{
	struct sample_dir *fx = *state;
	char ls[512];

	write_inventory(fx->dirfd, 100, true);
	write_inventory(fx->dirfd, 200, false);		/* aborted: no trace */
	list_dir(fx->dirfd, ls, sizeof(ls));
	assert_string_equal(ls, "inventory.img ");
	assert_int_equal(read_root(fx->dirfd), 100);
	write_inventory(fx->dirfd, 300, true);		/* committed: replaced whole */
	list_dir(fx->dirfd, ls, sizeof(ls));
	assert_string_equal(ls, "inventory.img ");
	assert_int_equal(read_root(fx->dirfd), 300);
}

/* A writer that dies before commit (the crash) leaves the old file as it was. */
static void test_crash_before_commit(void **state)
{
	struct sample_dir *fx = *state;
	struct eng_img *img;
	struct stat st;
	char ls[512], *tmp;
	int status;
	pid_t pid;

	write_inventory(fx->dirfd, 100, true);
	pid = fork();
	if (!pid) {
		ImgInventory inv = *(const ImgInventory *)sample_file(ENG_IMG_INVENTORY)->recs[0];

		if (eng_img_create(fx->dirfd, ENG_IMG_INVENTORY, 0, &img) ||
		    eng_img_write(img, &inv.base))
			_exit(1);
		_exit(0);	/* no commit, no abort: as if killed */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(status, 0);
	assert_int_equal(read_root(fx->dirfd), 100);
	list_dir(fx->dirfd, ls, sizeof(ls));
	tmp = strstr(ls, ".inventory.img.");
	assert_non_null(tmp);
	*strchr(tmp, ' ') = 0;
	assert_int_equal(fstatat(fx->dirfd, tmp, &st, 0), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* show and verify report the leftover rather than skip it. */
	assert_int_equal(eng_image_verify(fx->dir, NULL), -EINVAL);
	assert_int_equal(unlinkat(fx->dirfd, tmp, 0), 0);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, sample_setup, sample_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_roundtrip_every_kind),
		TEST(test_verify_sample),
		TEST(test_raw_large),
		TEST(test_permissions),
		TEST(test_read_wrong_type),
		TEST(test_writer_refuses),
		TEST(test_abort_and_replace),
		TEST(test_crash_before_commit),
	};

	eng_set_log(NULL, 0, NULL);	/* errors are asserted through eng_last_error() */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
