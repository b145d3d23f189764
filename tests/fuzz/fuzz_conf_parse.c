/*
 * fuzz_conf_parse.c: hacd.conf text through conf_load_string(), the whole pipeline
 * (prescan, libconfuse, records, build), with CONF_NO_HOST_CHECKS so nothing is looked
 * up on this host; conf_load_string() refuses include(), so no file is ever opened.
 *
 * Beyond "no crash, no leak": a refused input always gets a message, and an accepted
 * one satisfies what the agent relies on (one target per service, valid unique names,
 * non-zero periods, argv for commands), and conf_service_equal() is reflexive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/conf.h"

#define MAX_INPUT (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_service(const struct conf *c, const struct conf_service *s)
{
	int targets = !!s->argv + !!s->pidfile + !!s->cgroup;

	if (!conf_name_valid(s->name) || conf_service_find(c, s->name) != s)
		abort();
	if (targets != 1 || s->interval_us == 0 || s->stop_timeout_us == 0 || s->keep == 0 ||
	    s->checkpoint_timeout_us == 0)
		abort();
	if (s->target == CONF_TARGET_COMMAND &&
	    (!s->argc || !s->argv[0] || s->argv[s->argc] || !s->program || !s->command))
		abort();
	if (s->user && s->target != CONF_TARGET_COMMAND)
		abort();
	if (!conf_service_equal(s, s))
		abort();
}

static void check_conf(const struct conf *c)
{
	if (!conf_name_valid(c->node) || c->state_dir[0] != '/' || c->control_socket[0] != '/')
		abort();
	for (size_t i = 0; i < c->n_services; i++)
		check_service(c, &c->services[i]);
	for (size_t i = 0; i < c->n_peers; i++) {
		const struct conf_peer *p = &c->peers[i];

		if (!conf_name_valid(p->name) || conf_peer_find(c, p->name) != p ||
		    !p->host || !p->port || !strcmp(p->name, c->node))
			abort();
	}
	if ((c->listen || c->n_peers) && !(c->tls_ca && c->tls_cert && c->tls_key))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conf *c = NULL;
	char err[512] = "";
	uint64_t v;
	char *text;
	int rc;

	if (size > MAX_INPUT)
		return 0;
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;
	rc = conf_load_string(text, "fuzz.conf", CONF_NO_HOST_CHECKS, &c, err, sizeof(err));
	if (rc && (c || !err[0]))
		abort();
	if (!rc)
		check_conf(c);
	conf_free(c);
	/* The value parsers take arbitrary strings too. */
	conf_parse_duration(text, &v);
	conf_parse_size(text, &v);
	conf_name_valid(text);
	free(text);
	return 0;
}
