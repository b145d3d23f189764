/*
 * hactl image: look inside a checkpoint without restoring it (CRIU's crit).
 *   hactl image show DIR [--json]   decode and print every file and record
 *   hactl image verify DIR          every check, every page and ghost checksum,
 *                                   and the files against each other
 * Exit 0 when all is well, 65 (EX_DATAERR) when an image is damaged or wrong, with
 * the first problem named on stderr; 1 when DIR cannot be read at all.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ha/engine.h"
#include "hactl.h"

static int usage(FILE *f)
{
	fprintf(f, "usage: hactl image show DIR [--json]\n"
		   "       hactl image verify DIR\n");
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

static int cmd_show(int argc, char **argv)
{
	const char *dir = NULL;
	bool json = false;
	int ret;

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!dir && argv[i][0] != '-')
			dir = argv[i];
		else
			return usage(stderr);
	}
	if (!dir)
		return usage(stderr);
	ret = eng_image_show(dir, stdout, json);
	fflush(stdout);
	return exit_code(ret);
}

static int cmd_verify(int argc, char **argv)
{
	struct eng_image_stats st;
	int ret;

	if (argc != 3 || argv[2][0] == '-')
		return usage(stderr);
	ret = eng_image_verify(argv[2], &st);
	if (ret && ret != -EBADMSG && ret != -EINVAL)
		return exit_code(ret);
	if (ret)
		fprintf(stderr, "hactl image verify: %s: %u problems, the first: %s\n", argv[2],
			st.errors, eng_last_error());
	else
		printf("%s: ok: %u files, %u records, %llu data bytes checked\n", argv[2], st.files,
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
