/*
 * hactl-status.c: `hactl status [SERVICE] [--json] [-s SOCKET]`, the agent's view.
 *
 * The one hactl command that talks to a running hacd so far; the socket client below
 * is what list, checkpoint and rollback will share. The socket is, in order: -s,
 * $HACD_SOCKET, the control_socket of the config (-f, default /etc/hacd/hacd.conf),
 * /run/hacd/hactl.sock. Exit codes: 0 ok, 1 refused by hacd, 64 usage, 69 hacd
 * unreachable.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "ha/agent.h"
#include "ha/conf.h"
#include "hactl.h"

/* hacd answers from its loop at once; a stuck one is as good as unreachable. */
#define CTL_TIMEOUT_S	10

static void usage(FILE *f)
{
	fprintf(f, "usage: hactl status [SERVICE] [--json] [-s SOCKET] [-f CONFIG]\n"
		   "  show hacd's node, config, uptime and guarded services\n"
		   "  -s SOCKET  hacd's control socket (default: $HACD_SOCKET, the config's\n"
		   "             control_socket, %s)\n", CONF_DEFAULT_CONTROL_SOCKET);
}

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* The socket to use, copied into buf: see the file comment for the order. */
static void socket_path(const char *opt, const char *conf_path, char *buf, size_t len)
{
	const char *env = getenv("HACD_SOCKET");
	struct conf *conf;

	if (opt || (env && *env)) {
		snprintf(buf, len, "%s", opt ? opt : env);
		return;
	}
	/* No host checks: hactl only wants one path out of it, not a verdict. */
	if (!conf_load(conf_path, CONF_NO_HOST_CHECKS, &conf, NULL, 0)) {
		snprintf(buf, len, "%s", conf->control_socket);
		conf_free(conf);
		return;
	}
	snprintf(buf, len, "%s", CONF_DEFAULT_CONTROL_SOCKET);
}

static int ctl_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int ret = -errno;

		close(fd);
		return ret;
	}
	return fd;
}

/* One request, one reply. 0, or -errno with err saying what failed. */
static int ctl_call(const char *path, const Hactl__CtlRequest *req, Hactl__CtlReply **rep,
		    char *err, size_t errlen)
{
	uint8_t out[CTL_REQ_MAX];
	uint8_t *in = NULL;
	size_t len = hactl__ctl_request__get_packed_size(req);
	ssize_t n = -1;
	int fd, ret;

	if (len > sizeof(out)) {
		snprintf(err, errlen, "request too large");
		return -EMSGSIZE;
	}
	fd = ctl_connect(path);
	if (fd < 0) {
		snprintf(err, errlen, "cannot reach hacd at %s: %s", path, strerror(-fd));
		return fd;
	}
	hactl__ctl_request__pack(req, out);
	in = malloc(CTL_REPLY_MAX + 1);
	if (!in) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/*
	 * A refused client finds hacd's error reply queued and the connection closed:
	 * the send then fails with EPIPE, but the reply is still there to read.
	 */
	if (send(fd, out, len, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
		n = -1;
	else
		n = recv(fd, in, CTL_REPLY_MAX + 1, 0);
	if (n <= 0) {
		ret = n == 0 ? -ECONNRESET : -errno;
		snprintf(err, errlen, "hacd at %s: %s", path,
			 n == 0 ? "closed the connection" : strerror(errno));
		goto out;
	}
	ret = ctl_reply_decode(in, (size_t)n, rep, err, errlen);
out:
	free(in);
	close(fd);
	return ret;
}

/* "1h 02m 03s", "4m 05s", "250ms": compact, like drbdadm's ages. */
static void fmt_duration(uint64_t us, char *buf, size_t len)
{
	uint64_t s = us / 1000000;

	if (s == 0)
		snprintf(buf, len, "%llums", (unsigned long long)(us / 1000));
	else if (s < 60)
		snprintf(buf, len, "%llus", (unsigned long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%llum %02llus", (unsigned long long)(s / 60),
			 (unsigned long long)(s % 60));
	else
		snprintf(buf, len, "%lluh %02llum %02llus", (unsigned long long)(s / 3600),
			 (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
}

static void print_text(const Hactl__CtlStatus *st)
{
	char up[32], iv[32];

	fmt_duration(st->uptime_us, up, sizeof(up));
	printf("%s pid:%u uptime:%s\n", st->node ? st->node : "?", st->pid, up);
	printf("  config: %s\n", st->config_path ? st->config_path : "?");
	if (!st->n_services)
		printf("  (no services)\n");
	for (size_t i = 0; i < st->n_services; i++) {
		const Hactl__CtlService *s = st->services[i];

		fmt_duration(s->interval_us, iv, sizeof(iv));
		printf("  %s %s:%s\n", i + 1 < st->n_services ? "|-" : "`-",
		       s->name, s->target ? s->target : "?");
		printf("  %s   interval:%s keep:%u %s\n", i + 1 < st->n_services ? "|" : " ",
		       iv, s->keep, s->what ? s->what : "");
	}
}

static void print_json(const Hactl__CtlReply *rep)
{
	const Hactl__CtlStatus *st = rep->status_info;

	printf("{\"api_version\":%u,\"node\":", rep->api_version);
	json_str(stdout, st->node);
	printf(",\"config\":");
	json_str(stdout, st->config_path);
	printf(",\"pid\":%u,\"uptime_ms\":%llu,\"services\":[", st->pid,
	       (unsigned long long)(st->uptime_us / 1000));
	for (size_t i = 0; i < st->n_services; i++) {
		const Hactl__CtlService *s = st->services[i];

		printf("%s{\"name\":", i ? "," : "");
		json_str(stdout, s->name);
		printf(",\"target\":");
		json_str(stdout, s->target);
		printf(",\"what\":");
		json_str(stdout, s->what);
		printf(",\"interval_ms\":%llu,\"keep\":%u}",
		       (unsigned long long)(s->interval_us / 1000), s->keep);
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
	const char *sock = NULL, *conf = CONF_DEFAULT_PATH, *service = NULL;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], err[512];
	bool json = false;
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
	socket_path(sock, conf, path, sizeof(path));
	req.has_version = req.has_type = 1;
	req.version = CTL_API_VERSION;
	req.type = HACTL__CTL_TYPE__CTL_TYPE_STATUS;
	req.service = (char *)service;
	ret = ctl_call(path, &req, &rep, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "hactl: %s\n", err);
		return CTL_EXIT_UNAVAILABLE;
	}
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
