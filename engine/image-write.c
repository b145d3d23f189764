/*
 * The image writer: header, then records packed into a buffer and written in large
 * chunks, then the end marker; the file appears under its name only at commit, through
 * ha_atomic_*, so a crash mid-dump leaves the previous file (or none), never half of one.
 *
 * Every failure is kept in img->err and makes the commit fail: a dumper can write
 * record after record and check once, at commit, without producing a file with a hole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "log.h"

#define WBUF_SIZE (256u * 1024u)

static int wflush(struct eng_img *img)
{
	int ret;

	if (!img->wlen)
		return 0;
	ret = ha_write_full(img->af.fd, img->wbuf, img->wlen);
	img->wlen = 0;
	if (ret)
		return pr_errno(ret, "%s: write", img->name);
	return 0;
}

static int fail(struct eng_img *img, int err)
{
	if (!img->err)
		img->err = err;
	return err;
}

int eng_img_create(int dirfd, enum eng_img_kind kind, uint32_t id, struct eng_img **out)
{
	struct eng_img *img;
	size_t hdr;
	int ret;

	eng__clear_error();
	*out = NULL;
	ret = eng__img_new(kind, id, &img);
	if (ret)
		return ret;
	img->writing = true;
	img->wbuf = calloc(1, WBUF_SIZE);
	if (!img->wbuf) {
		free(img);
		return -ENOMEM;
	}
	ret = ha_atomic_open(&img->af, dirfd, img->name);
	if (ret) {
		free(img->wbuf);
		free(img);
		return ret;
	}
	/* Raw kinds: zero padding to a page, so data offsets are page-aligned on disk. */
	hdr = img->k->raw ? IMG_RAW_HDR_SIZE : IMG_HDR_SIZE;
	eng__put32(img->wbuf, IMG_MAGIC);
	eng__put32(img->wbuf + 4, img->k->tag);
	eng__put32(img->wbuf + 8, ENG_IMG_VERSION);
	eng__put32(img->wbuf + 12, img->id);
	img->wlen = hdr;
	*out = img;
	return 0;
}

static int check_type(struct eng_img *img, const ProtobufCMessage *msg)
{
	const ProtobufCMessageDescriptor *want;

	if (!img->writing || img->k->raw)
		return pr_errno(-EINVAL, "%s: not open for writing records", img->name);
	want = eng__img_rec_desc(img, img->rec);
	if (!want)
		return eng__img_fail(-EINVAL, "%s: record %u: a %s image holds one record only",
				img->name, img->rec, img->k->name);
	if (msg->descriptor != want)
		return eng__img_fail(-EINVAL, "%s: record %u must be %s, not %s", img->name, img->rec,
				want->short_name, msg->descriptor->short_name);
	return 0;
}

int eng_img_write(struct eng_img *img, const struct ProtobufCMessage *msg)
{
	uint32_t max = eng__img_rec_max(img, img->rec);
	uint8_t *rec, *own = NULL;
	size_t len;
	int ret;

	if (img->err)
		return img->err;
	ret = check_type(img, msg);
	if (ret)
		return fail(img, ret);
	img->cur = msg->descriptor;
	img->cur_rec = img->rec;
	ret = eng__img_check(img, msg);
	if (ret)
		return fail(img, ret);
	len = protobuf_c_message_get_packed_size(msg);
	if (len > max)
		return fail(img, pr_errno(-E2BIG, "%s: record %u (%s): %zu bytes, above the %u-byte limit",
					  img->name, img->rec, img->cur->short_name, len, max));
	if (img->wlen + IMG_FRAME_SIZE + len > WBUF_SIZE) {
		ret = wflush(img);
		if (ret)
			return fail(img, ret);
	}
	if (IMG_FRAME_SIZE + len <= WBUF_SIZE) {
		rec = img->wbuf + img->wlen;
	} else {
		rec = own = malloc(IMG_FRAME_SIZE + len);
		if (!own)
			return fail(img, -ENOMEM);
	}
	protobuf_c_message_pack(msg, rec + IMG_FRAME_SIZE);
	eng__put32(rec, len);
	eng__put32(rec + 4, eng__img_csum(rec + IMG_FRAME_SIZE, len));
	if (own) {
		ret = ha_write_full(img->af.fd, own, IMG_FRAME_SIZE + len);
		free(own);
		if (ret)
			return fail(img, pr_errno(ret, "%s: write", img->name));
	} else {
		img->wlen += IMG_FRAME_SIZE + len;
	}
	img->rec++;
	return 0;
}

int eng_img_write_raw(struct eng_img *img, const void *buf, size_t len)
{
	int ret;

	if (img->err)
		return img->err;
	if (!img->writing || !img->k->raw)
		return fail(img, pr_errno(-EINVAL, "%s: not a raw image open for writing", img->name));
	if (img->wlen + len > WBUF_SIZE) {
		ret = wflush(img);
		if (ret)
			return fail(img, ret);
	}
	if (len >= WBUF_SIZE) {
		ret = ha_write_full(img->af.fd, buf, len);
		if (ret)
			return fail(img, pr_errno(ret, "%s: write", img->name));
	} else {
		memcpy(img->wbuf + img->wlen, buf, len);
		img->wlen += len;
	}
	img->raw_size += len;
	return 0;
}

static int finish(struct eng_img *img)
{
	if (img->err)
		return img->err;
	if (!img->k->raw) {
		if (img->k->head && !img->rec)
			return eng__img_fail(-EINVAL, "%s: no %s record written", img->name,
					img->k->head->short_name);
		if (img->wlen + 8 > WBUF_SIZE) {
			int ret = wflush(img);

			if (ret)
				return ret;
		}
		eng__put32(img->wbuf + img->wlen, IMG_END_MARK);
		eng__put32(img->wbuf + img->wlen + 4, img->rec);
		img->wlen += 8;
	}
	return wflush(img);
}

int eng_img_commit(struct eng_img *img)
{
	int ret = finish(img);

	if (ret)
		ha_atomic_abort(&img->af);
	else
		ret = ha_atomic_commit(&img->af);
	free(img->wbuf);
	free(img);
	return ret;
}

int eng_img_sync(struct eng_img *img)
{
	int ret = finish(img);

	if (ret)
		ha_atomic_abort(&img->af);
	else
		ret = ha_atomic_sync(&img->af);
	return ret;
}

int eng_img_publish(struct eng_img *img)
{
	int ret = ha_atomic_publish(&img->af);

	free(img->wbuf);
	free(img);
	return ret;
}

void eng_img_abort(struct eng_img *img)
{
	if (!img)
		return;
	ha_atomic_abort(&img->af);
	free(img->wbuf);
	free(img);
}
