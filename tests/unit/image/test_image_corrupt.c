/*
 * Damaged images: every byte of every metadata file flipped, every truncation, huge
 * lengths, trailing junk, files renamed onto another id; page and ghost data damaged
 * behind their checksums; and well-framed records with wrong fields. Each must be
 * refused with -EBADMSG (damage) or -EINVAL (wrong field), and with a message that
 * names the file and the record or field.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "core.pb-c.h"
#include "fds.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "sample.h"

/* Open and read every record; the first error, or 0. */
static int read_all(int dirfd, const struct sample_file *f)
{
	struct eng_img *img;
	ProtobufCMessage *m;
	int ret = eng_img_open(dirfd, f->kind, f->id, &img);

	for (size_t i = 0; !ret && i < f->n; i++) {
		ret = eng_img_read(img, f->recs[i]->descriptor, &m);
		protobuf_c_message_free_unpacked(m, NULL);
		ret = ret == 1 ? 0 : ret ? ret : -ENODATA;
	}
	eng_img_close(img);
	return ret;
}

/* Write buf as f's file, read it, expect err and a message starting with the name. */
static void expect(int dirfd, const struct sample_file *f, const uint8_t *buf, size_t len,
		   int err, const char *what)
{
	const char *name = sample_name(f);

	assert_int_equal(sample_spit(dirfd, name, buf, len), 0);
	assert_int_equal(read_all(dirfd, f), err);
	if (err && (strncmp(eng_last_error(), name, strlen(name)) ||
		    (what && !strstr(eng_last_error(), what))))
		fail_msg("%s: got \"%s\", want \"%s\"", name, eng_last_error(), what ? what : "");
}

/* Offsets of record i's frame in the file. */
static size_t frame_at(const uint8_t *buf, unsigned rec)
{
	size_t off = 16;
	uint32_t len;

	for (unsigned i = 0; i < rec; i++) {
		memcpy(&len, buf + off, 4);
		off += 8 + len;
	}
	return off;
}

static void test_every_byte_and_cut(void **state)
{
	struct sample_dir *fx = *state;
	size_t n, len;
	const struct sample_file *files = sample_files(&n);

	for (size_t i = 0; i < n; i++) {
		const struct sample_file *f = &files[i];
		uint8_t *orig, *buf;

		if (f->data)
			continue;
		orig = sample_slurp(fx->dirfd, sample_name(f), &len);
		buf = malloc(len + 16);
		for (size_t b = 0; b < len; b++) {
			for (int x = 0; x < 2; x++) {
				memcpy(buf, orig, len);
				buf[b] ^= x ? 0xff : 0x01;
				expect(fx->dirfd, f, buf, len, -EBADMSG, NULL);
			}
		}
		for (size_t cut = 0; cut < len; cut++)
			expect(fx->dirfd, f, orig, cut, -EBADMSG, NULL);
		memcpy(buf, orig, len);
		memset(buf + len, 0, 16);
		expect(fx->dirfd, f, buf, len + 1, -EBADMSG, "1 bytes after the end marker");
		expect(fx->dirfd, f, orig, len, 0, NULL);
		free(buf);
		free(orig);
	}
}

static void test_named_damage(void **state)
{
	struct sample_dir *fx = *state;
	const struct sample_file *f = sample_file(ENG_IMG_CORE);
	size_t len, r1, r2;
	uint8_t *orig, *buf;
	uint32_t v;

	orig = sample_slurp(fx->dirfd, sample_name(f), &len);
	buf = malloc(len);
	r1 = frame_at(orig, 1);
	r2 = frame_at(orig, 2);
#define DAMAGE(off, val, what)						\
	do {								\
		memcpy(buf, orig, len);					\
		v = (val);						\
		memcpy(buf + (off), &v, 4);				\
		expect(fx->dirfd, f, buf, len, -EBADMSG, what);		\
	} while (0)
	DAMAGE(0, 0x44434149, "header: magic 0x44434149 is not \"HACD\"");
	DAMAGE(4, 0x50414d4d, "header: kind is mm, the file name says core");
	DAMAGE(4, 0x12345678, "header: unknown kind 0x12345678");
	DAMAGE(8, 2, "header: format version 2, this hacd reads version 1");
	DAMAGE(12, 4243, "header: id 4243, the file name says 4242");
	DAMAGE(r1, 0x7fffffff, "record 1 (ImgThread, offset");
	DAMAGE(r1, 0x7fffffff, "length 2147483647 is above the 16777216-byte limit");
	DAMAGE(r1, 0x00ffffff, "runs past the end of the file");
	DAMAGE(r2 + 4, 0, "record 2 (ImgThread, offset");
	DAMAGE(r2 + 4, 0, "): checksum 0x00000000, the payload sums to");
	DAMAGE(r1 + 20, orig[r1 + 20] ^ 0x55, "record 1 (ImgThread, offset");
	DAMAGE(len - 4, 2, "end marker (offset");
	DAMAGE(len - 4, 2, "counts 2 records, the file holds 3");
	DAMAGE(len - 8, 0, "record 3 (ImgThread, offset");
	expect(fx->dirfd, f, orig, 10, -EBADMSG, "core-4242.img: header: truncated, 10 of 16 bytes");
	expect(fx->dirfd, f, orig, r2, -EBADMSG, "truncated after record 2");
	expect(fx->dirfd, f, orig, r2 + 6, -EBADMSG, "record 2 (ImgThread, offset");
	expect(fx->dirfd, f, orig, len - 2, -EBADMSG, "end marker (offset");
	expect(fx->dirfd, f, orig, 16, -EBADMSG, "truncated after record 0");
#undef DAMAGE
	/* A file copied onto another process's name. */
	assert_int_equal(sample_spit(fx->dirfd, "core-4243.img", orig, len), 0);
	assert_int_equal(eng_img_open(fx->dirfd, ENG_IMG_CORE, 4243, &(struct eng_img *){ 0 }),
			 -EBADMSG);
	assert_string_equal(eng_last_error(), "core-4243.img: header: id 4242, the file name says 4243");
	unlinkat(fx->dirfd, "core-4243.img", 0);
	free(buf);
	free(orig);
}

static void expect_verify(const char *dir, const char *what)
{
	assert_int_equal(eng_image_verify(dir, NULL), -EINVAL);
	if (!strstr(eng_last_error(), what))
		fail_msg("verify: got \"%s\", want \"%s\"", eng_last_error(), what);
}

/* Page and ghost data have no checksums of their own: verify finds damage through the
 * sums their metadata records carry, and names both files. */
static void test_raw_damage(void **state)
{
	struct sample_dir *fx = *state;
	const struct sample_file *pages = sample_file(ENG_IMG_PAGES);
	const struct sample_file *ghost = sample_file(ENG_IMG_GHOST);
	size_t len, glen;
	uint8_t *orig = sample_slurp(fx->dirfd, "pages-4242.img", &len);
	uint8_t *gorig = sample_slurp(fx->dirfd, "ghost-1.img", &glen);
	uint8_t *buf = malloc(len);

	assert_int_equal(eng_image_verify(fx->dir, NULL), 0);
	for (size_t b = 0; b < 4096; b += 97) {		/* header and its zero padding */
		memcpy(buf, orig, len);
		buf[b] ^= 0x20;
		expect(fx->dirfd, pages, buf, len, -EBADMSG, "header");
	}
	memcpy(buf, orig, len);
	buf[4096 + 5000] ^= 1;				/* in run 1 (offset 0, 2 pages) */
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", buf, len), 0);
	expect_verify(fx->dir, "pagemap-4242.img: record 1 (ImgPagemapEntry): field xxh3: 0x");
	expect_verify(fx->dir, "but pages-4242.img [0, +8192) sums to 0x");
	memcpy(buf, orig, len);
	buf[len - 1] ^= 1;				/* in run 3 */
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", buf, len), 0);
	expect_verify(fx->dir, "pagemap-4242.img: record 3 (ImgPagemapEntry): field xxh3");
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", orig, len - 4096), 0);
	expect_verify(fx->dir, "pagemap-4242.img: record 0 (ImgPagemapHead): field pages_size: 12288, but pages-4242.img holds 8192 bytes");
	expect(fx->dirfd, pages, orig, 100, -EBADMSG, "header: truncated, 100 of 4096 bytes");
	assert_int_equal(sample_spit(fx->dirfd, "pages-4242.img", orig, len), 0);

	gorig[4096 + 17] ^= 0x80;
	assert_int_equal(sample_spit(fx->dirfd, "ghost-1.img", gorig, glen), 0);
	expect_verify(fx->dir, "files.img: record 0 (ImgFile): field content_xxh3: 0x");
	expect_verify(fx->dir, "but ghost-1.img sums to");
	assert_int_equal(sample_spit(fx->dirfd, "ghost-1.img", gorig, glen - 1), 0);
	expect_verify(fx->dir, "files.img: record 0 (ImgFile): field size: 5000, but ghost-1.img holds 4999 bytes");
	(void)ghost;
	free(buf);
	free(orig);
	free(gorig);
}

/* A file with valid frames around whatever payloads we like, as a buggy writer or a
 * forger could make: the field checks are what stands between it and restore. */
static void craft(int dirfd, const char *name, uint32_t tag, uint32_t id,
		  const ProtobufCMessage *const *msgs, const char *raw, size_t n)
{
	uint8_t buf[65536];
	uint32_t hdr[4] = { 0x44434148, tag, 1, id }, end[2] = { 0xffffffff, n };
	size_t off = sizeof(hdr);

	memcpy(buf, hdr, sizeof(hdr));
	for (size_t i = 0; i < n; i++) {
		uint32_t len = msgs[i] ? protobuf_c_message_get_packed_size(msgs[i]) : strlen(raw);
		uint32_t sum;

		if (msgs[i])
			protobuf_c_message_pack(msgs[i], buf + off + 8);
		else
			memcpy(buf + off + 8, raw, len);
		sum = (uint32_t)XXH3_64bits(buf + off + 8, len);
		memcpy(buf + off, &len, 4);
		memcpy(buf + off + 4, &sum, 4);
		off += 8 + len;
	}
	memcpy(buf + off, end, sizeof(end));
	assert_int_equal(sample_spit(dirfd, name, buf, off + sizeof(end)), 0);
}

#define CORE_TAG 0x45524f43
#define MM_TAG 0x50414d4d
#define PMAP_TAG 0x50414d50
#define FDTB_TAG 0x42544446

static void expect_field(int dirfd, enum eng_img_kind kind, unsigned rec, int err, const char *what)
{
	const struct sample_file *f = sample_file(kind);
	struct eng_img *img;
	ProtobufCMessage *m;
	int ret = 1;

	assert_int_equal(eng_img_open(dirfd, f->kind, f->id, &img), 0);
	for (unsigned i = 0; i <= rec && ret == 1; i++) {
		ret = eng_img_read(img, f->recs[i]->descriptor, &m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	eng_img_close(img);
	assert_int_equal(ret, err);
	if (strcmp(eng_last_error(), what))
		fail_msg("got \"%s\", want \"%s\"", eng_last_error(), what);
}

static void test_bad_fields(void **state)
{
	struct sample_dir *fx = *state;
	const struct sample_file *mm = sample_file(ENG_IMG_MM), *core = sample_file(ENG_IMG_CORE);
	const struct sample_file *pm = sample_file(ENG_IMG_PAGEMAP);
	ImgVma vma = *(const ImgVma *)mm->recs[1];
	ImgThread th = *(const ImgThread *)core->recs[1];
	ImgRegs regs = *th.regs;
	ImgCore co = *(const ImgCore *)core->recs[0];
	ImgPagemapEntry run = *(const ImgPagemapEntry *)pm->recs[1];
	ImgFd fd = IMG_FD__INIT;

	vma.start = 0x8000;
	vma.end = 0x7000;
	craft(fx->dirfd, "mm-4242.img", MM_TAG, 4242, (const ProtobufCMessage *[]){ mm->recs[0], &vma.base }, NULL, 2);
	expect_field(fx->dirfd, ENG_IMG_MM, 1, -EINVAL,
		     "mm-4242.img: record 1 (ImgVma): field end: 0x7000 is not above start 0x8000");
	vma = *(const ImgVma *)mm->recs[1];
	vma.kind = 99;
	craft(fx->dirfd, "mm-4242.img", MM_TAG, 4242, (const ProtobufCMessage *[]){ mm->recs[0], &vma.base }, NULL, 2);
	expect_field(fx->dirfd, ENG_IMG_MM, 1, -EINVAL,
		     "mm-4242.img: record 1 (ImgVma): field kind: 99 is no ImgVmaKind");
	craft(fx->dirfd, "mm-4242.img", MM_TAG, 4242, (const ProtobufCMessage *[]){ mm->recs[0], NULL }, "", 2);
	expect_field(fx->dirfd, ENG_IMG_MM, 1, -EINVAL,
		     "mm-4242.img: record 1 (ImgVma): field start: missing");
	craft(fx->dirfd, "mm-4242.img", MM_TAG, 4242, (const ProtobufCMessage *[]){ mm->recs[0], NULL }, "\xff\xff\xff", 2);
	expect_field(fx->dirfd, ENG_IMG_MM, 1, -EBADMSG,
		     "mm-4242.img: record 1 (ImgVma): not a valid protobuf message");

	regs.has_rip = 0;
	th.regs = &regs;
	craft(fx->dirfd, "core-4242.img", CORE_TAG, 4242, (const ProtobufCMessage *[]){ &co.base, &th.base }, NULL, 2);
	expect_field(fx->dirfd, ENG_IMG_CORE, 1, -EINVAL,
		     "core-4242.img: record 1 (ImgThread): field regs.rip: missing");
	th = *(const ImgThread *)core->recs[1];
	th.xstate.len = 100;
	craft(fx->dirfd, "core-4242.img", CORE_TAG, 4242, (const ProtobufCMessage *[]){ &co.base, &th.base }, NULL, 2);
	expect_field(fx->dirfd, ENG_IMG_CORE, 1, -EINVAL,
		     "core-4242.img: record 1 (ImgThread): field xstate: 100 bytes, outside [576, 65536]");
	co.pid = 1;
	craft(fx->dirfd, "core-4242.img", CORE_TAG, 4242, (const ProtobufCMessage *[]){ &co.base }, NULL, 1);
	expect_field(fx->dirfd, ENG_IMG_CORE, 0, -EINVAL,
		     "core-4242.img: record 0 (ImgCore): field pid: 1, the file name says 4242");

	run.offset = 8192;
	craft(fx->dirfd, "pagemap-4242.img", PMAP_TAG, 4242, (const ProtobufCMessage *[]){ pm->recs[0], &run.base }, NULL, 2);
	expect_field(fx->dirfd, ENG_IMG_PAGEMAP, 1, -EINVAL,
		     "pagemap-4242.img: record 1 (ImgPagemapEntry): field offset: run [0x2000, +0x2000) is past the 12288 bytes of pages-4242.img");

	fd.has_fd = fd.has_kind = fd.has_id = 1;
	fd.fd = -1;
	fd.kind = IMG_FILE_KIND__FILE_REG;
	fd.id = 1;
	craft(fx->dirfd, "fds-4242.img", FDTB_TAG, 4242, (const ProtobufCMessage *[]){ &fd.base }, NULL, 1);
	expect_field(fx->dirfd, ENG_IMG_FDS, 0, -EINVAL,
		     "fds-4242.img: record 0 (ImgFd): field fd: -1 is negative");
}

/* verify: page runs must lie in the process's VMAs (adjacent ones may share a run). */
static void test_runs_in_vmas(void **state)
{
	struct sample_dir *fx = *state;
	const struct sample_file *pm = sample_file(ENG_IMG_PAGEMAP);
	ImgPagemapEntry run = IMG_PAGEMAP_ENTRY__INIT;
	const ProtobufCMessage *recs[] = { pm->recs[0], pm->recs[1], &run.base, pm->recs[3] };

	run.has_vaddr = run.has_nr_pages = run.has_flags = 1;
	run.vaddr = 0x403000;		/* the heap's last page and the next three */
	run.nr_pages = 4;
	run.flags = IMG_PAGEMAP_FLAG__PM_ZERO;
	craft(fx->dirfd, "pagemap-4242.img", PMAP_TAG, 4242, recs, NULL, 4);
	expect_verify(fx->dir, "pagemap-4242.img: record 2 (ImgPagemapEntry): field vaddr: page 0x404000 of the run is in no VMA of mm-4242.img");
	run.vaddr = 0x400000;		/* across two adjacent VMAs */
	run.nr_pages = 3;
	recs[1] = &run.base;
	recs[2] = pm->recs[2];
	craft(fx->dirfd, "pagemap-4242.img", PMAP_TAG, 4242, recs, NULL, 4);
	assert_int_equal(eng_image_verify(fx->dir, NULL), 0);
}

/* One damaged file is one problem: its neighbours are not blamed for what it lacks. */
static void test_no_cascade(void **state)
{
	struct sample_dir *fx = *state;
	struct eng_image_stats st;
	size_t len;
	uint8_t *mm = sample_slurp(fx->dirfd, "mm-4242.img", &len);

	mm[30] ^= 1;
	assert_int_equal(sample_spit(fx->dirfd, "mm-4242.img", mm, len), 0);
	assert_int_equal(eng_image_verify(fx->dir, &st), -EBADMSG);
	assert_int_equal(st.errors, 1);
	free(mm);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, sample_setup_written, sample_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_every_byte_and_cut),
		TEST(test_named_damage),
		TEST(test_raw_damage),
		TEST(test_bad_fields),
		TEST(test_runs_in_vmas),
		TEST(test_no_cascade),
	};

	eng_set_log(NULL, 0, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
