/*
 * The generic message printer of `hactl image show` (image-show.c): prints any
 * message from its protobuf-c descriptor, so a field added to a .proto shows up
 * without code here.
 *
 * Text conventions: fixed32/fixed64 fields are addresses, masks and flags, printed in
 * hex; fields named mode/umask in octal; bytes as their length and a hex prefix;
 * a message of a few scalars on one line. JSON: integers are plain (exact decimal)
 * numbers, enums their names, bytes {"len": N, "hex": "..."} in full.
 */
#include <stdio.h>
#include <string.h>

#include "image.h"

#define HEX_PREFIX 16		/* bytes of a bytes field shown in text */
#define INLINE_FIELDS 6		/* a message of at most this many scalars fits on one line */

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;

	if (p[0] >= 0xf8)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

void eng__print_str(FILE *out, const char *s, bool json)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', out);
	while (*p) {
		size_t n = *p >= 0x80 ? utf8_len(p) : 1;

		if (*p == '"' || *p == '\\') {
			fprintf(out, "\\%c", *p);
		} else if (*p < 0x20 || *p == 0x7f || !n) {
			fprintf(out, json ? "\\u%04x" : "\\x%02x", *p);
			n = 1;
		} else {
			fwrite(p, 1, n, out);
		}
		p += n;
	}
	fputc('"', out);
}

static void show_bytes(FILE *out, const ProtobufCBinaryData *b, bool json)
{
	size_t n = json ? b->len : b->len < HEX_PREFIX ? b->len : HEX_PREFIX;

	fprintf(out, json ? "{\"len\": %zu, \"hex\": \"" : "<%zu bytes", b->len);
	if (!json && n)
		fputc(' ', out);
	for (size_t i = 0; i < n; i++)
		fprintf(out, "%02x", b->data[i]);
	fputs(json ? "\"}" : n < b->len ? "...>" : ">", out);
}

/* Unix socket names (ImgUnixSk name, peer_name, msg_from) read as paths, abstract
 * ones with a leading '@', other bytes escaped. */
static bool sock_name_field(const ProtobufCFieldDescriptor *f)
{
	return !strcmp(f->name, "name") || !strcmp(f->name, "peer_name") || !strcmp(f->name, "msg_from");
}

static void show_sock_name(FILE *out, const ProtobufCBinaryData *b)
{
	fputc('"', out);
	for (size_t i = 0; i < b->len; i++) {
		unsigned char c = b->data[i];

		if (!i && !c)
			fputc('@', out);
		else if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void show_scalar(FILE *out, const ProtobufCFieldDescriptor *f, const void *v, bool json)
{
	bool octal = !json && (!strcmp(f->name, "mode") || !strcmp(f->name, "umask") ||
			       !strcmp(f->name, "file_mode"));
	const ProtobufCEnumValue *ev;

	switch (f->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(out, "%d", *(const int32_t *)v);
		break;
	case PROTOBUF_C_TYPE_UINT32:
		fprintf(out, octal ? "0%o" : "%u", *(const uint32_t *)v);
		break;
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(out, json ? "%u" : "0x%x", *(const uint32_t *)v);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(out, "%lld", (long long)*(const int64_t *)v);
		break;
	case PROTOBUF_C_TYPE_UINT64:
		fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)v);
		break;
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(out, json ? "%llu" : "0x%llx", (unsigned long long)*(const uint64_t *)v);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_DOUBLE: {
		double d = f->type == PROTOBUF_C_TYPE_FLOAT ? *(const float *)v : *(const double *)v;

		if (json && !__builtin_isfinite(d))
			fputs("null", out);
		else
			fprintf(out, "%.17g", d);
		break;
	}
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)v ? "true" : "false", out);
		break;
	case PROTOBUF_C_TYPE_ENUM:
		ev = protobuf_c_enum_descriptor_get_value(f->descriptor, *(const int *)v);
		if (!ev)
			fprintf(out, "%d", *(const int *)v);
		else
			fprintf(out, json ? "\"%s\"" : "%s", ev->name);
		break;
	case PROTOBUF_C_TYPE_STRING:
		eng__print_str(out, *(const char *const *)v, json);
		break;
	case PROTOBUF_C_TYPE_BYTES:
		if (!json && sock_name_field(f))
			show_sock_name(out, v);
		else
			show_bytes(out, v, json);
		break;
	case PROTOBUF_C_TYPE_MESSAGE:
		break;	/* the callers print messages */
	}
}

static bool fits_inline(const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	unsigned n = 0;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];

		if (!eng__pb_count(m, f))
			continue;
		if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
			return false;
		n++;
	}
	return n <= INLINE_FIELDS && !m->n_unknown_fields;
}

static void show_unknown(FILE *out, const ProtobufCMessage *m, int indent, bool json)
{
	for (unsigned i = 0; i < m->n_unknown_fields; i++) {
		const ProtobufCMessageUnknownField *u = &m->unknown_fields[i];

		if (json)
			fprintf(out, "%s{\"tag\": %u, \"wire_type\": %d, \"len\": %zu}", i ? ", " : "",
				u->tag, (int)u->wire_type, u->len);
		else
			fprintf(out, "%*sunknown field %u (wire type %d, %zu bytes)\n", indent, "",
				u->tag, (int)u->wire_type, u->len);
	}
}

static void show_text(FILE *out, const ProtobufCMessage *m, int indent);

static void show_text_value(FILE *out, const ProtobufCFieldDescriptor *f, const void *v, int indent)
{
	const ProtobufCMessage *sub;

	if (f->type != PROTOBUF_C_TYPE_MESSAGE) {
		fputs(": ", out);
		show_scalar(out, f, v, false);
		fputc('\n', out);
		return;
	}
	sub = *(const ProtobufCMessage *const *)v;
	if (fits_inline(sub)) {
		const ProtobufCMessageDescriptor *d = sub->descriptor;

		fputs(" {", out);
		for (unsigned i = 0; i < d->n_fields; i++) {
			if (!eng__pb_count(sub, &d->fields[i]))
				continue;
			fprintf(out, " %s: ", d->fields[i].name);
			show_scalar(out, &d->fields[i], eng__pb_field(sub, &d->fields[i]), false);
		}
		fputs(" }\n", out);
	} else {
		fputs(" {\n", out);
		show_text(out, sub, indent + 2);
		fprintf(out, "%*s}\n", indent, "");
	}
}

/* Repeated numbers (pids, groups, auxv) on one line: "tids: [4242, 4243]". */
static bool show_text_list(FILE *out, const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m,
			   size_t n, int indent)
{
	if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type == PROTOBUF_C_TYPE_MESSAGE ||
	    f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES)
		return false;
	fprintf(out, "%*s%s: [", indent, "", f->name);
	for (size_t j = 0; j < n; j++) {
		fputs(j ? ", " : "", out);
		show_scalar(out, f, eng__pb_value(m, f, j), false);
	}
	fputs("]\n", out);
	return true;
}

static void show_text(FILE *out, const ProtobufCMessage *m, int indent)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		size_t n = eng__pb_count(m, f);

		if (n && show_text_list(out, f, m, n, indent))
			continue;
		for (size_t j = 0; j < n; j++) {
			fprintf(out, "%*s%s", indent, "", f->name);
			if (f->label == PROTOBUF_C_LABEL_REPEATED)
				fprintf(out, "[%zu]", j);
			show_text_value(out, f, eng__pb_value(m, f, j), indent);
		}
	}
	show_unknown(out, m, indent, false);
}

static void show_json(FILE *out, const ProtobufCMessage *m)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *sep = "";

	fputc('{', out);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *f = &d->fields[i];
		bool rep = f->label == PROTOBUF_C_LABEL_REPEATED;
		size_t n = eng__pb_count(m, f);

		if (!n)
			continue;
		fprintf(out, "%s\"%s\": %s", sep, f->name, rep ? "[" : "");
		for (size_t j = 0; j < n; j++) {
			const void *v = eng__pb_value(m, f, j);

			if (j)
				fputs(", ", out);
			if (f->type == PROTOBUF_C_TYPE_MESSAGE)
				show_json(out, *(const ProtobufCMessage *const *)v);
			else
				show_scalar(out, f, v, true);
		}
		fputs(rep ? "]" : "", out);
		sep = ", ";
	}
	if (m->n_unknown_fields) {
		fprintf(out, "%s\"_unknown\": [", sep);
		show_unknown(out, m, 0, true);
		fputc(']', out);
	}
	fputc('}', out);
}

void eng__print_msg(FILE *out, const ProtobufCMessage *m, bool json, int indent)
{
	if (json)
		show_json(out, m);
	else
		show_text(out, m, indent);
}
