/*
 * hactl-client.c: hactl's side of hacd's control socket, shared by status, list,
 * checkpoint, rollback, log and reload.
 *
 * The socket is, in order: -s (global or the command's), $HACD_SOCKET, the
 * control_socket of the config (-f, default /etc/hacd/hacd.conf), /run/hacd/hactl.sock.
 */
#include <errno.h>
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

const char *ctl_opt_socket;
const char *ctl_opt_config = CONF_DEFAULT_PATH;
bool ctl_opt_json;

/* Exit code for a failed ctl_call(): 3 when no hacd listens there, else 69. */
static int ctl_exit_unreachable(int err)
{
	/* No socket file, or a file nobody listens on (a crashed hacd's): not running. */
	if (err == -ENOENT || err == -ECONNREFUSED)
		return CTL_EXIT_NOT_RUNNING;
	return CTL_EXIT_UNAVAILABLE;
}

void ctl_json_str(FILE *f, const char *s)
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

void ctl_json_field(const char *key, const char *s)
{
	printf(",\"%s\":", key);
	ctl_json_str(stdout, s);
}

/* The socket to use, copied into buf: see the file comment for the order. */
static void ctl_socket_path(const char *opt, const char *conf_path, char *buf, size_t len)
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

static int ctl_connect(const char *path, int timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
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
		    int timeout_s, char *err, size_t errlen)
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
	fd = ctl_connect(path, timeout_s);
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

int ctl_request(const char *sock, const char *conf, Hactl__CtlRequest *req, int timeout_s,
		Hactl__CtlReply **rep)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], err[512];
	int ret;

	ctl_socket_path(sock, conf, path, sizeof(path));
	req->has_version = req->has_type = 1;
	req->version = CTL_API_VERSION;
	ret = ctl_call(path, req, rep, timeout_s, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "hactl: %s\n", err);
		return ctl_exit_unreachable(ret);
	}
	return CTL_EXIT_OK;
}

/* "1h 02m 03s", "4m 05s", "250ms": compact, like drbdadm's ages. */
void ctl_fmt_duration(uint64_t us, char *buf, size_t len)
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

