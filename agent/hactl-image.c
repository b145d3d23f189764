/*
 * hactl image: look inside a checkpoint without restoring it (CRIU's crit).
 *   hactl image show DIR [--json]   decode and print every file and record
 *   hactl image verify DIR          every check, every page and ghost checksum,
 *                                   and the files against each other
 * DIR may also be given as -D STORE [--generation G] for one generation of a page
 * store (hactl dump --track); verify then also checks every pack blob it refers to.
 * Exit 0 when all is well, 65 (EX_DATAERR) when an image is damaged or wrong, with
 * the first problem named on stderr; 1 when DIR cannot be read at all.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/engine.h"
#include "hactl.h"

static int usage(FILE *f)
{
	fprintf(f, "usage: hactl image show DIR|-D STORE [--generation G] [--json]\n"
		   "       hactl image verify DIR|-D STORE [--generation G]\n");
	return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

static int exit_code(int err)
{
	if (!err)
		return CTL_EXIT_OK;
	if (err == -EBADMSG || err == -EINVAL)
		return CTL_EXIT_DATAERR;
	return CTL_EXIT_FAIL;
}

/* DIR, or -D STORE [--generation G]: 0, or an exit code. */
static int parse_target(int argc, char **argv, const char **dir, const char **store, uint32_t *gen,
			bool *json)
{
	for (int i = 2; i < argc; i++) {
		char *end;

		if (json && !strcmp(argv[i], "--json")) {
			*json = true;
		} else if (!strcmp(argv[i], "-D") && i + 1 < argc && !*store) {
			*store = argv[++i];
		} else if (!strcmp(argv[i], "--generation") && i + 1 < argc) {
			unsigned long g = strtoul(argv[++i], &end, 10);

			if (*end || !g || g > UINT32_MAX) {
				fprintf(stderr, "hactl image: bad generation '%s'\n", argv[i]);
				return CTL_EXIT_USAGE;
			}
			*gen = g;
		} else if (!*dir && argv[i][0] != '-') {
			*dir = argv[i];
		} else {
			return usage(stderr);
		}
	}
	if (!*dir == !*store || (*gen && !*store))
		return usage(stderr);
	return 0;
}

static int cmd_show(int argc, char **argv)
{
	const char *dir = NULL, *store = NULL;
	char path[4200];
	uint32_t gen = 0;
	bool json = false;
	int ret = parse_target(argc, argv, &dir, &store, &gen, &json);

	if (ret)
		return ret;
	if (store) {
		ret = eng_store_gen_path(store, gen, path, sizeof(path));
		if (ret) {
			fprintf(stderr, "hactl image show: %s\n", eng_last_error());
			return exit_code(ret);
		}
		dir = path;
	}
	ret = eng_image_show(dir, stdout, json);
	fflush(stdout);
	return exit_code(ret);
}

static int cmd_verify(int argc, char **argv)
{
	struct eng_image_stats st = { 0 };
	const char *dir = NULL, *store = NULL;
	uint32_t gen = 0;
	int ret = parse_target(argc, argv, &dir, &store, &gen, NULL);

	if (ret)
		return ret;
	ret = store ? eng_store_verify(store, gen, &st) : eng_image_verify(dir, &st);
	if (ret && ret != -EBADMSG && ret != -EINVAL) {
		fprintf(stderr, "hactl image verify: %s\n", eng_last_error());
		return exit_code(ret);
	}
	if (!dir)
		dir = store;
	if (ret)
		fprintf(stderr, "hactl image verify: %s: %u problems, the first: %s\n", dir,
			st.errors, eng_last_error());
	else
		printf("%s: ok: %u files, %u records, %llu data bytes checked\n", dir, st.files,
		       st.records, (unsigned long long)st.data_bytes);
	return exit_code(ret);
}

int ctl_cmd_image(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))
		return usage(stdout);
	if (!strcmp(argv[1], "show"))
		return cmd_show(argc, argv);
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc, argv);
	return usage(stderr);
}
