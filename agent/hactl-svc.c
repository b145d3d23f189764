/*
 * hactl-svc.c: the commands that act on one guarded service through hacd:
 *
 *   hactl list SERVICE [-n N]                generations, newest first
 *   hactl checkpoint SERVICE                 one now; waits, prints the generation
 *   hactl rollback SERVICE [-g G | G]        stop it, restore G (default: the newest
 *                                            complete generation), keep guarding it
 *   hactl log SERVICE [-n N]                 hacd's events about it, newest first
 *   hactl reload                             same as SIGHUP to hacd
 *   hactl promote|failover SERVICE [--force] this node runs it (docs/cluster.md)
 *   hactl demote SERVICE                     a last checkpoint, acked, then standby
 *
 * Each takes -s SOCKET, -f CONFIG and --json (also accepted before the command).
 * Exit codes: 0 ok, 1 hacd refused or the operation failed (its reason printed),
 * 64 usage, 69 hacd unreachable.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ha/conf.h"
#include "hactl.h"

struct svc_args {
	const char *sock, *conf, *service;
	bool json;
	int64_t generation;
	uint32_t limit;
	bool force;
};

static int usage(const char *cmd, FILE *f)
{
	const char *what = "SERVICE";

	if (!strcmp(cmd, "reload"))
		what = "";
	else if (!strcmp(cmd, "rollback"))
		what = "SERVICE [-g GENERATION | GENERATION]";
	else if (!strcmp(cmd, "list") || !strcmp(cmd, "log"))
		what = "SERVICE [-n N]";
	else if (!strcmp(cmd, "promote") || !strcmp(cmd, "failover"))
		what = "SERVICE [--force]";
	fprintf(f, "usage: hactl %s %s [--json] [-s SOCKET] [-f CONFIG]\n", cmd, what);
	return f == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

static int parse_num(const char *s, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* 0, 1 for --help done, or an exit code for a usage error (negative). */
static int parse(int argc, char **argv, struct svc_args *a, bool want_service)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'f' },
		{ "generation", required_argument, NULL, 'g' },
		{ "limit", required_argument, NULL, 'n' },
		{ "force", no_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int64_t v;
	int opt;

	a->sock = ctl_opt_socket;
	a->conf = ctl_opt_config;
	a->json = ctl_opt_json;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:f:g:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			a->json = true;
			break;
		case 's':
			a->sock = optarg;
			break;
		case 'f':
			a->conf = optarg;
			break;
		case 'g':
			if (parse_num(optarg, INT64_MAX, &a->generation) || !a->generation) {
				fprintf(stderr, "hactl %s: bad generation '%s'\n", argv[0], optarg);
				return -1;
			}
			break;
		case 'n':
			if (parse_num(optarg, 100000, &v) || !v) {
				fprintf(stderr, "hactl %s: bad count '%s'\n", argv[0], optarg);
				return -1;
			}
			a->limit = (uint32_t)v;
			break;
		case 'F':
			if (strcmp(argv[0], "promote") && strcmp(argv[0], "failover"))
				return -1;
			a->force = true;
			break;
		case 'h':
			usage(argv[0], stdout);
			return 1;
		default:
			return -1;
		}
	}
	if (want_service) {
		if (optind >= argc)
			return -1;
		a->service = argv[optind++];
		if (!conf_name_valid(a->service)) {
			fprintf(stderr, "hactl %s: invalid service name '%s'\n", argv[0], a->service);
			return -1;
		}
	}
	/* rollback SERVICE GENERATION, as the synopsis has it. */
	if (!strcmp(argv[0], "rollback") && optind < argc && !a->generation) {
		if (parse_num(argv[optind], INT64_MAX, &a->generation) || !a->generation) {
			fprintf(stderr, "hactl rollback: bad generation '%s'\n", argv[optind]);
			return -1;
		}
		optind++;
	}
	return optind == argc ? 0 : -1;
}

static void fmt_time(int64_t us, char *buf, size_t len)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;

	if (!us || !localtime_r(&t, &tm)) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us / 1000 % 1000));
}

static void gen_json(const Hactl__CtlGeneration *g)
{
	printf("{\"id\":%" PRId64 ",\"state\":", g->id);
	ctl_json_str(stdout, g->state);
	printf(",\"started_us\":%" PRId64, g->started_us);
	if (g->has_committed_us)
		printf(",\"committed_us\":%" PRId64 ",\"pause_us\":%" PRId64 ",\"bytes_new\":%" PRId64
		       ",\"bytes_total\":%" PRId64 ",\"pages\":%" PRId64, g->committed_us, g->pause_us,
		       g->bytes_new, g->bytes_total, g->pages);
	if (g->has_store_gen)
		printf(",\"store_gen\":%" PRId64, g->store_gen);
	printf("}");
}

static void gen_text_header(void)
{
	printf("%-8s %-9s %-23s %10s %11s %11s %8s %6s\n", "ID", "STATE", "TIME", "PAUSE", "NEW",
	       "TOTAL", "PAGES", "STORE");
}

static void gen_text(const Hactl__CtlGeneration *g)
{
	char t[80];

	fmt_time(g->has_committed_us ? g->committed_us : g->started_us, t, sizeof(t));
	printf("%-8" PRId64 " %-9s %-23s", g->id, g->state, t);
	if (g->has_committed_us)
		printf(" %8.2fms %9.1fKi %9.1fKi %8" PRId64, g->pause_us / 1000.0,
		       g->bytes_new / 1024.0, g->bytes_total / 1024.0, g->pages);
	if (g->has_store_gen && g->store_gen)
		printf(" %6" PRId64, g->store_gen);
	else if (g->has_committed_us)
		printf(" %6s", "-");
	printf("\n");
}

/*
 * What every command here shares: its arguments parsed into *a, a request of this
 * type carrying them sent, and hacd's reply judged. On success *rep is the reply
 * (status 0), or NULL after --help. Returns an exit code.
 */
static int request(int argc, char **argv, bool want_service, Hactl__CtlType type,
		   int timeout_s, struct svc_args *a, Hactl__CtlReply **rep)
{
	Hactl__CtlRequest req = HACTL__CTL_REQUEST__INIT;
	int ret = parse(argc, argv, a, want_service);

	*rep = NULL;
	if (ret)
		return ret > 0 ? CTL_EXIT_OK : usage(argv[0], stderr);
	req.type = type;
	req.service = (char *)a->service;
	req.has_limit = a->limit > 0;
	req.limit = a->limit;
	req.has_generation = a->generation > 0;
	req.generation = a->generation;
	req.has_force = a->force;
	req.force = a->force;
	ret = ctl_request(a->sock, a->conf, &req, timeout_s, rep);
	if (ret)
		return ret;
	if ((*rep)->status) {
		if (a->json) {
			printf("{\"api_version\":%u,\"status\":%d,\"error\":", (*rep)->api_version,
			       (*rep)->status);
			ctl_json_str(stdout, (*rep)->error);
			printf("}\n");
		}
		fprintf(stderr, "hactl: hacd: %s%s%s\n", a->service ? a->service : "",
			a->service ? ": " : "", (*rep)->error ? (*rep)->error : "failed");
		hactl__ctl_reply__free_unpacked(*rep, NULL);
		*rep = NULL;
		return CTL_EXIT_FAIL;
	}
	return CTL_EXIT_OK;
}

/* The opening of a --json answer about the service, up to its name. */
static void json_head(const Hactl__CtlReply *rep, const struct svc_args *a)
{
	printf("{\"api_version\":%u,\"service\":", rep->api_version);
	ctl_json_str(stdout, a->service);
}

int ctl_cmd_list(int argc, char **argv)
{
	Hactl__CtlReply *rep;
	struct svc_args a = { 0 };
	int ret = request(argc, argv, true, HACTL__CTL_TYPE__CTL_TYPE_LIST, CTL_TIMEOUT_S, &a,
			  &rep);

	if (!rep)
		return ret;
	if (a.json) {
		json_head(rep, &a);
		printf(",\"generations\":[");
		for (size_t i = 0; i < rep->n_generations; i++) {
			printf("%s", i ? "," : "");
			gen_json(rep->generations[i]);
		}
		printf("]}\n");
	} else {
		gen_text_header();
		for (size_t i = 0; i < rep->n_generations; i++)
			gen_text(rep->generations[i]);
	}
	hactl__ctl_reply__free_unpacked(rep, NULL);
	return CTL_EXIT_OK;
}

static int wait_cmd(int argc, char **argv, Hactl__CtlType type)
{
	struct timespec t0, t1;
	Hactl__CtlReply *rep;
	struct svc_args a = { 0 };
	int ret;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = request(argc, argv, true, type, CTL_WAIT_TIMEOUT_S, &a, &rep);
	if (!rep)
		return ret;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (a.json) {
		json_head(rep, &a);
		printf(",\"generation\":");
		if (rep->generation)
			gen_json(rep->generation);
		else
			printf("null");
		printf("}\n");
	} else if (!rep->generation && (type == HACTL__CTL_TYPE__CTL_TYPE_PROMOTE ||
					type == HACTL__CTL_TYPE__CTL_TYPE_DEMOTE)) {
		printf("%s: %s here\n", a.service, type == HACTL__CTL_TYPE__CTL_TYPE_DEMOTE ?
		       "standby" : "active");
	} else if (rep->generation && !strcmp(argv[0], "failover")) {
		struct timespec now;
		int64_t wall;

		clock_gettime(CLOCK_REALTIME, &now);
		wall = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
		printf("%s: failed over to this node: generation %" PRId64 ", taken %.3f s before "
		       "the failover, restored and guarded in %.3f s\n", a.service,
		       rep->generation->id, (wall - rep->generation->committed_us) / 1e6 -
		       ((t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9),
		       (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	} else if (rep->generation) {
		printf("%s: %s generation %" PRId64 "\n", a.service,
		       type == HACTL__CTL_TYPE__CTL_TYPE_CHECKPOINT ? "checkpointed as" :
		       type == HACTL__CTL_TYPE__CTL_TYPE_PROMOTE ? "promoted, restored" :
		       type == HACTL__CTL_TYPE__CTL_TYPE_DEMOTE ? "demoted after" :
		       "rolled back to", rep->generation->id);
		gen_text_header();
		gen_text(rep->generation);
	}
	hactl__ctl_reply__free_unpacked(rep, NULL);
	return CTL_EXIT_OK;
}

int ctl_cmd_checkpoint(int argc, char **argv)
{
	return wait_cmd(argc, argv, HACTL__CTL_TYPE__CTL_TYPE_CHECKPOINT);
}

int ctl_cmd_rollback(int argc, char **argv)
{
	return wait_cmd(argc, argv, HACTL__CTL_TYPE__CTL_TYPE_ROLLBACK);
}

/* docs/cluster.md: promote for cluster managers, failover for people (a report). */
int ctl_cmd_promote(int argc, char **argv)
{
	return wait_cmd(argc, argv, HACTL__CTL_TYPE__CTL_TYPE_PROMOTE);
}

int ctl_cmd_failover(int argc, char **argv)
{
	return wait_cmd(argc, argv, HACTL__CTL_TYPE__CTL_TYPE_PROMOTE);
}

int ctl_cmd_demote(int argc, char **argv)
{
	return wait_cmd(argc, argv, HACTL__CTL_TYPE__CTL_TYPE_DEMOTE);
}

int ctl_cmd_log(int argc, char **argv)
{
	static const char *const levels[] = { "emerg", "alert", "crit", "err", "warning",
					      "notice", "info", "debug" };
	Hactl__CtlReply *rep;
	struct svc_args a = { 0 };
	int ret = request(argc, argv, true, HACTL__CTL_TYPE__CTL_TYPE_LOG, CTL_TIMEOUT_S, &a,
			  &rep);
	char t[80];

	if (!rep)
		return ret;
	if (a.json) {
		json_head(rep, &a);
		printf(",\"events\":[");
	}
	for (size_t i = 0; i < rep->n_events; i++) {
		const Hactl__CtlEvent *e = rep->events[i];
		int lv = e->level >= 0 && e->level <= 7 ? e->level : 7;

		if (a.json) {
			printf("%s{\"ts_us\":%" PRId64 ",\"level\":", i ? "," : "", e->ts_us);
			ctl_json_str(stdout, levels[lv]);
			ctl_json_field("kind", e->kind);
			ctl_json_field("message", e->message);
			printf("}");
			continue;
		}
		fmt_time(e->ts_us, t, sizeof(t));
		/* Messages come from hacd, but a terminal deserves no control characters. */
		printf("%s %-7s %-10s ", t, levels[lv], e->kind ? e->kind : "");
		for (const char *p = e->message ? e->message : ""; *p; p++)
			putchar((unsigned char)*p < 0x20 ? '?' : *p);
		putchar('\n');
	}
	if (a.json)
		printf("]}\n");
	hactl__ctl_reply__free_unpacked(rep, NULL);
	return CTL_EXIT_OK;
}

int ctl_cmd_reload(int argc, char **argv)
{
	Hactl__CtlReply *rep;
	struct svc_args a = { 0 };
	int ret = request(argc, argv, false, HACTL__CTL_TYPE__CTL_TYPE_RELOAD, CTL_TIMEOUT_S, &a,
			  &rep);

	if (!rep)
		return ret;
	if (a.json)
		printf("{\"api_version\":%u,\"status\":0}\n", rep->api_version);
	else
		printf("reloaded\n");
	hactl__ctl_reply__free_unpacked(rep, NULL);
	return CTL_EXIT_OK;
}
