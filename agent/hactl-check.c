/*
 * hactl check: what this kernel and CPU let the engine do. The engine probes each
 * feature by really using it (engine/kerndat*.c); this file only prints the result,
 * one aligned line per item or one JSON object with --json.
 *
 * Exit 0 when every required item is there, even if optional ones (cgroup2 freezer,
 * TCP repair, CAP_SYS_RESOURCE, ...) are missing: those cost a feature, not the engine.
 * Otherwise exit 1 and name the missing items on stderr.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ha/engine.h"
#include "hactl.h"

#define CHECK_JSON_API 1

static void check_usage(FILE *f)
{
	fprintf(f, "usage: hactl check [--json]\n"
		   "  probe what this kernel supports; exit 0 when the engine has all it needs\n");
}

static void print_text(const struct eng_kerndat *kd)
{
	for (int i = 0; i < ENG_KD_NR; i++) {
		const struct eng_kerndat_item *it = &kd->items[i];

		if (it->detail[0])
			printf("%-17s %-22s (%s)\n", it->name, it->value, it->detail);
		else
			printf("%-17s %s\n", it->name, it->value);
	}
}

static void print_json_items(const struct eng_kerndat *kd)
{
	printf("  \"items\": [\n");
	for (int i = 0; i < ENG_KD_NR; i++) {
		const struct eng_kerndat_item *it = &kd->items[i];
		const char *ename = it->err ? strerrorname_np(-it->err) : NULL;

		printf("    {\"name\": ");
		ctl_json_str(stdout, it->name);
		printf(", \"ok\": %s, \"required\": %s, \"value\": ", it->ok ? "true" : "false",
		       it->required ? "true" : "false");
		ctl_json_str(stdout, it->value);
		printf(", \"detail\": ");
		ctl_json_str(stdout, it->detail);
		printf(", \"errno\": ");
		if (ename)
			ctl_json_str(stdout, ename);
		else
			printf(it->err ? "%d" : "null", -it->err);
		printf("}%s\n", i + 1 < ENG_KD_NR ? "," : "");
	}
	printf("  ],\n");
}

/* The numbers later stages use, for scripts that want them without parsing details. */
static void print_json_values(const struct eng_kerndat *kd)
{
	printf("  \"values\": {\n    \"cgroup2_mount\": ");
	ctl_json_str(stdout, kd->cgroup2_mnt);
	printf(",\n    \"uffd_features\": %" PRIu64 ",\n", kd->uffd_features);
	printf("    \"mm_map_size\": %u,\n", kd->mm_map_size);
	printf("    \"vvar_size\": %" PRIu64 ",\n    \"vvar_vclock_size\": %" PRIu64
	       ",\n    \"vdso_size\": %" PRIu64 ",\n", kd->vvar.size, kd->vvar_vclock.size,
	       kd->vdso.size);
	printf("    \"xcr0\": %" PRIu64 ",\n    \"xstate_size\": %u,\n"
	       "    \"xstate_regset_size\": %u,\n", kd->xcr0, kd->xstate_size,
	       kd->xstate_regset_size);
	printf("    \"rseq_len\": %u,\n    \"rseq_sig\": %u,\n    \"rseq_feature_size\": %u\n",
	       kd->rseq_len, kd->rseq_sig, kd->rseq_feature_size);
	printf("  }\n");
}

static void print_json(const struct eng_kerndat *kd)
{
	bool first = true;

	printf("{\n  \"api_version\": %d,\n", CHECK_JSON_API);
	printf("  \"ok\": %s,\n", eng_kerndat_nr_missing(kd) ? "false" : "true");
	printf("  \"missing\": [");
	for (int i = 0; i < ENG_KD_NR; i++) {
		if (!kd->items[i].required || kd->items[i].ok)
			continue;
		printf("%s", first ? "" : ", ");
		ctl_json_str(stdout, kd->items[i].name);
		first = false;
	}
	printf("],\n  \"dirty_method\": ");
	ctl_json_str(stdout, eng_dirty_method_name(kd->dirty_method));
	printf(",\n");
	print_json_items(kd);
	print_json_values(kd);
	printf("}\n");
}

static void print_missing(const struct eng_kerndat *kd)
{
	bool first = true;

	fprintf(stderr, "hactl check: missing: ");
	for (int i = 0; i < ENG_KD_NR; i++) {
		if (!kd->items[i].required || kd->items[i].ok)
			continue;
		fprintf(stderr, "%s%s", first ? "" : ", ", kd->items[i].name);
		first = false;
	}
	fputc('\n', stderr);
}

int ctl_cmd_check(int argc, char **argv)
{
	struct eng_kerndat kd;
	bool json = false;
	int err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			check_usage(stdout);
			return CTL_EXIT_OK;
		} else {
			fprintf(stderr, "hactl check: unknown argument '%s'\n", argv[i]);
			check_usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	err = eng_kerndat_probe(&kd);
	if (json)
		print_json(&kd);
	else
		print_text(&kd);
	fflush(stdout);
	if (err) {
		fprintf(stderr, "hactl check: a probe could not run: %s\n", eng_last_error());
		return CTL_EXIT_FAIL;
	}
	if (eng_kerndat_nr_missing(&kd)) {
		print_missing(&kd);
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}
