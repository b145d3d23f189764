/*
 * `hactl image show`: our crit. Decodes every file of an image directory, in kind
 * order (inventory first), and prints its header and every record, as text for people
 * or as one JSON document for scripts. A file that is not an image, a damaged frame
 * and a failed field check are each printed where they occur, and the walk goes on to
 * the next record or file: one run shows everything that is wrong.
 * The directory listing here is shared with image-verify.c.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "log.h"

struct show {
	FILE *out;
	bool json;
	unsigned files, errors;
	int first_err;
};

static int rank(const char *name, uint32_t *id)
{
	enum eng_img_kind kind;

	if (eng__img_parse_name(name, &kind, id))
		return ENG_IMG_NR_KINDS;
	return kind;
}

static int cmp_names(const struct dirent **a, const struct dirent **b)
{
	uint32_t ia = 0, ib = 0;
	int ra = rank((*a)->d_name, &ia), rb = rank((*b)->d_name, &ib);

	if (ra != rb)
		return ra - rb;
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
	return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

int eng__img_dir_open(const char *dir, struct eng__img_dir *d)
{
	d->ents = NULL;
	d->n = 0;
	d->dirfd = ha_dir_open(dir, false);
	if (d->dirfd < 0)
		return d->dirfd;
	d->n = scandirat(d->dirfd, ".", &d->ents, not_dots, cmp_names);
	if (d->n < 0) {
		int ret = pr_errno(-errno, "%s: list", dir);

		close(d->dirfd);
		d->n = 0;
		return ret;
	}
	return 0;
}

void eng__img_dir_close(struct eng__img_dir *d)
{
	for (int i = 0; i < d->n; i++)
		free(d->ents[i]);
	free(d->ents);
	close(d->dirfd);
}

static void error_here(struct show *s, int err, int indent)
{
	if (!s->first_err)
		s->first_err = err;
	if (s->json) {
		fputs(", \"error\": ", s->out);
		eng__print_str(s->out, eng_last_error(), true);
	} else {
		fprintf(s->out, "%*serror: %s\n", indent, "", eng_last_error());
	}
}

/* One record: printed even when its field checks fail, so the bad value can be seen. */
static int show_record(struct show *s, struct eng_img *img, int n)
{
	ProtobufCMessage *m;
	int ret, err;

	eng__clear_error();
	ret = eng__img_unpack(img, &m);
	if (ret == 0)
		return 0;
	if (s->json)
		fprintf(s->out, "%s\n    {\"index\": %u, \"type\": \"%s\", \"bytes\": %u", n ? "," : "",
			img->cur_rec, img->cur->short_name, img->last_len);
	else
		fprintf(s->out, "  record %u (%s, %u bytes)\n", img->cur_rec, img->cur->short_name,
			img->last_len);
	err = ret < 0 ? ret : eng__img_check(img, m);
	if (m && s->json)
		fputs(", \"fields\": ", s->out);
	if (m)
		eng__print_msg(s->out, m, s->json, 4);
	if (err)
		error_here(s, err, 4);
	if (s->json)
		fputc('}', s->out);
	protobuf_c_message_free_unpacked(m, NULL);
	return err ? err : 1;
}

static void show_header(struct show *s, struct eng_img *img)
{
	if (s->json) {
		fprintf(s->out, ", \"kind\": \"%s\", \"format\": %u, \"id\": %u", img->k->name,
			ENG_IMG_VERSION, img->id);
		if (img->k->raw)
			fprintf(s->out, ", \"data_bytes\": %llu", (unsigned long long)img->raw_size);
		else
			fprintf(s->out, ", \"bytes\": %zu, \"records\": [", img->size);
		return;
	}
	fprintf(s->out, "  header: magic \"HACD\", kind %s, format %u, id %u\n", img->k->name,
		ENG_IMG_VERSION, img->id);
	if (img->k->raw)
		fprintf(s->out, "  %llu bytes of data\n", (unsigned long long)img->raw_size);
	else
		fprintf(s->out, "  %u records, %zu bytes\n", img->nr_records, img->size);
}

static void show_file(struct show *s, int dirfd, const char *name)
{
	struct eng_img *img;
	int ret, n = 0, bad = 0;

	if (s->json) {
		fprintf(s->out, "%s\n  {\"file\": ", s->files ? "," : "");
		eng__print_str(s->out, name, true);
	} else {
		fprintf(s->out, "%s:\n", name);
	}
	s->files++;
	eng__clear_error();
	ret = eng__img_open_name(dirfd, name, &img);
	if (ret) {
		error_here(s, ret, 2);
		s->errors++;
		if (s->json)
			fputc('}', s->out);
		return;
	}
	show_header(s, img);
	while (!img->k->raw && (ret = show_record(s, img, n)) != 0) {
		bad |= ret < 0;
		n++;
	}
	s->errors += bad;
	if (s->json)
		fputs(img->k->raw ? "}" : "\n  ]}", s->out);
	eng_img_close(img);
}

int eng_image_show(const char *dir, FILE *out, bool json)
{
	struct show s = { .out = out, .json = json };
	struct eng__img_dir d;
	int ret;

	eng__clear_error();
	ret = eng__img_dir_open(dir, &d);
	if (ret)
		return ret;
	if (json) {
		fputs("{\"dir\": ", out);
		eng__print_str(out, dir, true);
		fputs(", \"files\": [", out);
	}
	for (int i = 0; i < d.n; i++)
		show_file(&s, d.dirfd, d.ents[i]->d_name);
	if (json)
		fprintf(out, "\n], \"errors\": %u}\n", s.errors);
	eng__img_dir_close(&d);
	if (s.errors) {
		/* Each error went out as it was found; this one is for eng_last_error(). */
		eng__clear_error();
		pr_err("%s: %u of %u files are not valid images", dir, s.errors, s.files);
	}
	return s.first_err;
}
