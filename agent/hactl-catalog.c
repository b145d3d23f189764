/*
 * hactl catalog verify [-f CONFIG | DB]: check hacd's catalog (sqlite integrity, foreign
 * keys, and every invariant listed in catalog/catalog.c). Safe while hacd runs: WAL
 * readers do not block it. Exit 0 when consistent, 1 with the first problem otherwise.
 */
#include <stdio.h>
#include <string.h>

#include "ha/catalog.h"
#include "ha/conf.h"
#include "hactl.h"

int ctl_cmd_catalog(int argc, char **argv)
{
	char path[4096];
	struct cat *c;
	struct conf *conf;
	char err[512];

	if (argc < 2 || argc > 3 || strcmp(argv[1], "verify")) {
		fprintf(stderr, "usage: hactl catalog verify [DB]  (default: the config's "
			"state_dir/catalog.db)\n");
		return CTL_EXIT_USAGE;
	}
	if (argc == 3) {
		snprintf(path, sizeof(path), "%s", argv[2]);
	} else {
		if (conf_load(ctl_opt_config, CONF_NO_HOST_CHECKS, &conf, err, sizeof(err))) {
			fprintf(stderr, "hactl: %s\n", err);
			return CTL_EXIT_CONFIG;
		}
		snprintf(path, sizeof(path), "%s/catalog.db", conf->state_dir);
		conf_free(conf);
	}
	if (cat_open(path, &c)) {
		fprintf(stderr, "hactl: catalog %s: %s\n", path, cat_errmsg(NULL));
		return CTL_EXIT_FAIL;
	}
	if (cat_verify(c)) {
		fprintf(stderr, "hactl: catalog %s: %s\n", path, cat_errmsg(c));
		cat_close(c);
		return CTL_EXIT_FAIL;
	}
	cat_close(c);
	printf("catalog %s: consistent\n", path);
	return CTL_EXIT_OK;
}
