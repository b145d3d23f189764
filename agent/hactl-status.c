/*
 * hactl-status.c: `hactl status [SERVICE] [--json] [-s SOCKET]`, the agent's view.
 *
 * A tree like drbdadm status: per service its state, pid, newest generation with
 * its age, pause and size, and the next checkpoint. The socket client is in
 * hactl-client.c. Exit codes: 0 ok, 1 refused by hacd, 64 usage, 69 hacd unreachable.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ha/agent.h"
#include "ha/conf.h"
#include "hactl.h"


/* 1.5 KiB, 12.0 MiB: small generations would all read 0.0 MiB. */
static void fmt_size(uint64_t b, char *buf, size_t len)
{
	if (b < 1048576)
		snprintf(buf, len, "%.1f KiB", b / 1024.0);
	else
		snprintf(buf, len, "%.1f MiB", b / 1048576.0);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl status [SERVICE] [--json] [-s SOCKET] [-f CONFIG]\n"
		   "  show hacd's node, config, uptime and guarded services\n"
		   "  -s SOCKET  hacd's control socket (default: $HACD_SOCKET, the config's\n"
		   "             control_socket, %s)\n", CONF_DEFAULT_CONTROL_SOCKET);
}

static void print_text(const Hactl__CtlStatus *st)
{
	char up[32], iv[32];

	ctl_fmt_duration(st->uptime_us, up, sizeof(up));
	printf("%s pid:%u uptime:%s\n", st->node ? st->node : "?", st->pid, up);
	printf("  config: %s\n", st->config_path ? st->config_path : "?");
	if (!st->n_services)
		printf("  (no services)\n");
	for (size_t i = 0; i < st->n_services; i++) {
		const Hactl__CtlService *s = st->services[i];

		ctl_fmt_duration(s->interval_us, iv, sizeof(iv));
		printf("  %s %s:%s\n", i + 1 < st->n_services ? "|-" : "`-",
		       s->name, s->target ? s->target : "?");
		const char *bar = i + 1 < st->n_services ? "|" : " ";

		printf("  %s   interval:%s keep:%u %s\n", bar, iv, s->keep, s->what ? s->what : "");
		if (s->role)
			printf("  %s   role:%s disk:%s replication:%s\n", bar, s->role,
			       s->disk ? s->disk : "?", s->replication ? s->replication : "?");
		if (s->state)
			printf("  %s   state:%s pid:%u checkpoints:%llu failed:%llu missed:%llu\n",
			       bar, s->state, s->pid, (unsigned long long)s->checkpoints,
			       (unsigned long long)s->failed, (unsigned long long)s->missed);
		for (size_t j = 0; j < s->n_peers; j++)
			printf("  %s   %s connection:%s role:%s peer-disk:%s\n", bar,
			       s->peers[j]->name, s->peers[j]->connection, s->peers[j]->role,
			       s->peers[j]->peer_disk);
		if (s->sync_state)
			printf("  %s   sync: %s (safe generation %lld)\n", bar, s->sync_state,
			       (long long)s->safe_generation);
		if (s->has_last_generation) {
			char age[32];

			ctl_fmt_duration(s->last_age_us, age, sizeof(age));
			char bn[32], bt[32];

			/* New against total: what incremental checkpoints save. */
			fmt_size(s->last_bytes_new, bn, sizeof(bn));
			fmt_size(s->last_bytes, bt, sizeof(bt));
			printf("  %s   last: generation %lld, %s ago, pause %.1f ms, %s new of %s\n",
			       bar, (long long)s->last_generation, age, s->last_pause_us / 1000.0, bn,
			       bt);
		}
		if (s->has_next_checkpoint_us) {
			ctl_fmt_duration(s->next_checkpoint_us, iv, sizeof(iv));
			printf("  %s   next checkpoint in %s\n", bar, iv);
		}
		if (s->has_newest_consistent_generation)
			printf("  %s   replication: newest consistent generation %lld, lag %u "
			       "generation(s), %.3f s\n", bar,
			       (long long)s->newest_consistent_generation, s->lag_generations,
			       s->lag_seconds);
		if (s->error)
			printf("  %s   error: %s\n", bar, s->error);
	}
	for (size_t i = 0; i < st->n_peers; i++) {
		const Hactl__CtlPeer *p = st->peers[i];

		printf("  peer %s %s connection:%s%s queued:%llu acked:%lld sent:%.1fMiB\n",
		       p->name, p->address ? p->address : "?",
		       p->connection ? p->connection : "StandAlone",
		       p->standby_of ? " (sending to us)" : "", (unsigned long long)p->queued,
		       (long long)p->acked_generation, p->bytes_sent / 1048576.0);
	}
}

static void print_json(const Hactl__CtlReply *rep)
{
	const Hactl__CtlStatus *st = rep->status_info;

	printf("{\"api_version\":%u,\"node\":", rep->api_version);
	ctl_json_str(stdout, st->node);
	ctl_json_field("config", st->config_path);
	printf(",\"pid\":%u,\"uptime_ms\":%llu,\"services\":[", st->pid,
	       (unsigned long long)(st->uptime_us / 1000));
	for (size_t i = 0; i < st->n_services; i++) {
		const Hactl__CtlService *s = st->services[i];

		printf("%s{\"name\":", i ? "," : "");
		ctl_json_str(stdout, s->name);
		ctl_json_field("target", s->target);
		ctl_json_field("what", s->what);
		printf(",\"interval_ms\":%llu,\"keep\":%u",
		       (unsigned long long)(s->interval_us / 1000), s->keep);
		if (s->state) {
			ctl_json_field("state", s->state);
			printf(",\"pid\":%u,\"checkpoints\":%llu,\"failed\":%llu,\"missed\":%llu,"
			       "\"worker_restarts\":%u,\"late_p50_us\":%llu,\"late_p99_us\":%llu",
			       s->pid, (unsigned long long)s->checkpoints,
			       (unsigned long long)s->failed, (unsigned long long)s->missed,
			       s->worker_restarts, (unsigned long long)s->late_p50_us,
			       (unsigned long long)s->late_p99_us);
		}
		if (s->has_last_generation)
			printf(",\"last_generation\":%lld,\"last_age_ms\":%llu,"
			       "\"last_pause_us\":%llu,\"last_bytes\":%llu",
			       (long long)s->last_generation,
			       (unsigned long long)(s->last_age_us / 1000),
			       (unsigned long long)s->last_pause_us,
			       (unsigned long long)s->last_bytes);
		if (s->has_last_bytes_new)
			printf(",\"last_bytes_new\":%llu", (unsigned long long)s->last_bytes_new);
		if (s->checkpoint)
			ctl_json_field("checkpoint", s->checkpoint);
		if (s->has_next_checkpoint_us)
			printf(",\"next_checkpoint_ms\":%llu",
			       (unsigned long long)(s->next_checkpoint_us / 1000));
		if (s->error)
			ctl_json_field("error", s->error);
		if (s->has_newest_consistent_generation)
			printf(",\"newest_consistent_generation\":%lld,\"lag_generations\":%u,"
			       "\"lag_seconds\":%.3f", (long long)s->newest_consistent_generation,
			       s->lag_generations, s->lag_seconds);
		if (s->role) {
			printf(",\"role\":");
			/* "active (asking peers)" is active to a script */
			ctl_json_str(stdout, !strncmp(s->role, "active", 6) ? "active" : s->role);
			ctl_json_field("disk", s->disk);
			ctl_json_field("replication", s->replication);
		}
		if (s->has_safe_generation)
			printf(",\"safe_generation\":%lld", (long long)s->safe_generation);
		if (s->sync_state)
			ctl_json_field("sync_state", s->sync_state);
		printf(",\"peers\":[");
		for (size_t j = 0; j < s->n_peers; j++) {
			printf("%s{\"name\":", j ? "," : "");
			ctl_json_str(stdout, s->peers[j]->name);
			ctl_json_field("connection", s->peers[j]->connection);
			ctl_json_field("role", s->peers[j]->role);
			ctl_json_field("peer_disk", s->peers[j]->peer_disk);
			printf("}");
		}
		printf("]}");
	}
	printf("],\"peers\":[");
	for (size_t i = 0; i < st->n_peers; i++) {
		const Hactl__CtlPeer *p = st->peers[i];

		printf("%s{\"name\":", i ? "," : "");
		ctl_json_str(stdout, p->name);
		ctl_json_field("address", p->address);
		ctl_json_field("connection", p->connection ? p->connection : "StandAlone");
		printf(",\"queued\":%llu,\"acked_generation\":%lld,\"bytes_sent\":%llu,"
		       "\"standby_of\":%s}", (unsigned long long)p->queued,
		       (long long)p->acked_generation, (unsigned long long)p->bytes_sent,
		       p->standby_of ? "true" : "false");
	}
	printf("]}\n");
}

static int parse_args(int argc, char **argv, const char **sock, const char **conf,
		      const char **service, bool *json)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "config", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "s:f:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			*json = true;
			break;
		case 's':
			*sock = optarg;
			break;
		case 'f':
			*conf = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			return -EINVAL;
		}
	}
	if (argc - optind > 1)
		return -EINVAL;
	*service = optind < argc ? argv[optind] : NULL;
	return 0;
}

int ctl_cmd_status(int argc, char **argv)
{
	Hactl__CtlRequest req = HACTL__CTL_REQUEST__INIT;
	Hactl__CtlReply *rep = NULL;
	const char *sock = ctl_opt_socket, *conf = ctl_opt_config, *service = NULL;
	bool json = ctl_opt_json;
	int ret;

	ret = parse_args(argc, argv, &sock, &conf, &service, &json);
	if (ret) {
		if (ret < 0)
			usage(stderr);
		return ret < 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
	}
	if (service && !conf_name_valid(service)) {
		fprintf(stderr, "hactl status: invalid service name '%s'\n", service);
		return CTL_EXIT_USAGE;
	}
	req.type = HACTL__CTL_TYPE__CTL_TYPE_STATUS;
	req.service = (char *)service;
	ret = ctl_request(sock, conf, &req, CTL_TIMEOUT_S, &rep);
	if (ret)
		return ret;
	if (rep->status || !rep->status_info) {
		fprintf(stderr, "hactl: hacd: %s\n", rep->error ? rep->error : "no status");
		ret = CTL_EXIT_FAIL;
	} else if (json) {
		print_json(rep);
	} else {
		print_text(rep->status_info);
	}
	hactl__ctl_reply__free_unpacked(rep, NULL);
	return ret;
}
