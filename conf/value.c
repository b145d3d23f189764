/*
 * value.c: the syntax of configuration values, with no libconfuse and no I/O.
 *
 * Every checker returns 0 or -errno and, for the user, a short reason that the caller
 * puts after "file:line: section: bad KEY "VALUE": ". Being pure functions they are
 * also what the unit tests and the fuzzer hit hardest.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#include "conf-int.h"

/* Decimal digits into *n; sets *big instead of overflowing past limit. */
static const char *parse_digits(const char *s, uint64_t limit, uint64_t *n, bool *big)
{
	*n = 0;
	*big = false;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int d = *s - '0';

		if (*n > (limit - d) / 10)
			*big = true;
		else
			*n = *n * 10 + d;
	}
	return s;
}

static int scale(const char *s, const char *end, uint64_t n, bool big, uint64_t mult,
		 uint64_t *out)
{
	if (end == s)
		return -EINVAL;
	if (big)
		return -ERANGE;
	if (n == 0)
		return -EDOM;
	if (n > INT64_MAX / mult)
		return -ERANGE;
	*out = n * mult;
	return 0;
}

int conf_parse_duration(const char *s, uint64_t *usec)
{
	static const struct { const char *unit; uint64_t mult; } units[] = {
		{ "ms", 1000 }, { "s", 1000000 }, { "m", 60000000 }, { "h", 3600000000ULL },
	};
	const char *end;
	uint64_t n;
	bool big;

	if (!s)
		return -EINVAL;
	end = parse_digits(s, INT64_MAX, &n, &big);
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (!strcmp(end, units[i].unit))
			return scale(s, end, n, big, units[i].mult, usec);
	return -EINVAL;
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
	static const char suffixes[] = "KMGT";
	const char *end, *p;
	uint64_t n, mult = 1;
	bool big;

	if (!s)
		return -EINVAL;
	end = parse_digits(s, INT64_MAX, &n, &big);
	if (*end) {
		p = strchr(suffixes, toupper((unsigned char)*end));
		if (!p || end[1])
			return -EINVAL;
		mult = 1ULL << (10 * (p - suffixes + 1));
	}
	return scale(s, end, n, big, mult, bytes);
}

const char conf__name_rules[] = "names may contain only letters, digits, '_', '.' and "
				"'-', may not start with '.' or '-', and have at most 64 "
				"characters";

bool conf_name_valid(const char *name)
{
	size_t len = name ? strlen(name) : 0;

	if (len == 0 || len > CONF_NAME_MAX || name[0] == '.' || name[0] == '-')
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789_.-") == len;
}

int conf__parse_bool(const char *v)
{
	static const char *const yes[] = { "true", "yes", "on" };
	static const char *const no[] = { "false", "no", "off" };

	for (int i = 0; i < 3; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -EINVAL;
}

int conf__parse_count(const char *v, unsigned int *out)
{
	const char *end;
	uint64_t n;
	bool big;

	end = parse_digits(v, UINT64_MAX, &n, &big);
	if (end == v || *end)
		return -EINVAL;
	if (big || n > CONF__COUNT_MAX)
		return -ERANGE;
	*out = n;
	return 0;
}

int conf__choice(const struct conf__key *key, const char *v)
{
	for (int i = 0; key->choices[i]; i++)
		if (!strcmp(key->choices[i], v))
			return i;
	return -EINVAL;
}

/* "restore, scratch or none" */
static void list_choices(const struct conf__key *key, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = 0;
	for (int i = 0; key->choices[i] && off < n; i++) {
		const char *sep = !i ? "" : key->choices[i + 1] ? ", " : " or ";

		off += snprintf(buf + off, n - off, "%s%s", sep, key->choices[i]);
	}
}

static const char *duration_why(int rc)
{
	if (rc == -EDOM)
		return "must be greater than zero";
	if (rc == -ERANGE)
		return "too large";
	return "expected a number followed by ms, s, m or h";
}

static const char *size_why(int rc)
{
	if (rc == -EDOM)
		return "must be greater than zero";
	if (rc == -ERANGE)
		return "too large";
	return "expected a number, optionally followed by K, M, G or T";
}

static const char *count_why(const struct conf__key *key, const char *v)
{
	unsigned int n;

	if (conf__parse_count(v, &n) == 0 && !(key->type == CONF__T_COUNT1 && n == 0))
		return NULL;
	return key->type == CONF__T_COUNT1 ? "expected a whole number from 1 to 1000000" :
					     "expected a whole number from 0 to 1000000";
}

static const char *path_why(const struct conf__key *key, const char *v)
{
	if (v[0] != '/')
		return "expected an absolute path";
	if (strlen(v) >= PATH_MAX)
		return "path too long";
	if (key->type == CONF__T_SOCKET && strlen(v) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return "too long for a unix socket path (at most 107 bytes)";
	return NULL;
}

static const char *address_why(const struct conf__key *key, const char *v)
{
	const char *why = NULL;
	char *host = NULL;
	uint16_t port;

	conf__parse_hostport(v, key->type == CONF__T_LISTEN, &host, &port, &why);
	free(host);
	return why;
}

/* Fills why with the reason value is not valid for key; 0 or -EINVAL (or -ENOMEM). */
int conf__check_value(const struct conf__key *key, const char *v, char *why, size_t n)
{
	const char *msg = NULL;
	uint64_t u;
	char **argv;
	size_t argc;
	int rc;

	switch (key->type) {
	case CONF__T_NAME:
	case CONF__T_ACCOUNT:
		if (!conf_name_valid(v))
			msg = conf__name_rules;
		break;
	case CONF__T_PATH:
	case CONF__T_SOCKET:
		msg = path_why(key, v);
		break;
	case CONF__T_DURATION:
		rc = conf_parse_duration(v, &u);
		msg = rc ? duration_why(rc) : NULL;
		break;
	case CONF__T_SIZE:
		rc = conf_parse_size(v, &u);
		msg = rc ? size_why(rc) : NULL;
		break;
	case CONF__T_COUNT:
	case CONF__T_COUNT1:
		msg = count_why(key, v);
		break;
	case CONF__T_BOOL:
		if (conf__parse_bool(v) < 0)
			msg = "expected true or false (or yes/no, on/off)";
		break;
	case CONF__T_ENUM:
		if (conf__choice(key, v) < 0) {
			char list[128];

			list_choices(key, list, sizeof(list));
			snprintf(why, n, "expected %s", list);
			return -EINVAL;
		}
		break;
	case CONF__T_ADDRESS:
	case CONF__T_LISTEN:
		msg = address_why(key, v);
		break;
	case CONF__T_COMMAND:
		rc = conf__split_command(v, &argv, &argc, &msg);
		if (rc == -ENOMEM)
			return rc;
		if (!rc)
			free(argv);
		break;
	}
	if (!msg)
		return 0;
	snprintf(why, n, "%s", msg);
	return -EINVAL;
}

/* RFC 1123 host name; an all-digit last label would be a mistyped IPv4 address. */
static bool hostname_valid(const char *h)
{
	size_t len = strlen(h), label = 0;
	bool digits = true;

	if (len == 0 || len > 253)
		return false;
	for (const char *p = h; ; p++) {
		if (*p == '.' || !*p) {
			if (label == 0 || p[-1] == '-')
				return false;
			if (!*p)
				return !digits;
			label = 0;
			digits = true;
			continue;
		}
		if (!isalnum((unsigned char)*p) && *p != '-')
			return false;
		if (label == 0 && *p == '-')
			return false;
		if (++label > 63)
			return false;
		if (!isdigit((unsigned char)*p))
			digits = false;
	}
}

static const char *check_host(const char *h, bool wildcard, bool bracketed)
{
	struct in6_addr a6;
	struct in_addr a4;

	if (bracketed)
		return inet_pton(AF_INET6, h, &a6) == 1 ? NULL : "bad IPv6 address";
	if (!*h)
		return "expected HOST:PORT";
	if (!strcmp(h, "*"))
		return wildcard ? NULL : "'*' (every address) is only allowed for listen";
	if (strchr(h, ':'))
		return "IPv6 addresses go in brackets, as in [2001:db8::1]:7788";
	if (inet_pton(AF_INET, h, &a4) == 1 || hostname_valid(h))
		return NULL;
	return "bad host name or address";
}

/*
 * "host:port", "1.2.3.4:port", "[v6]:port", and "*:port" when wildcard. *host gets
 * the host without brackets (NULL for "*"). 0, -EINVAL with *why, or -ENOMEM.
 */
int conf__parse_hostport(const char *s, bool wildcard, char **host, uint16_t *port,
			 const char **why)
{
	const char *hs = s, *he, *ps, *end;
	char buf[256];
	uint64_t n;
	bool big;

	*host = NULL;
	if (s[0] == '[') {
		hs = s + 1;
		he = strchr(hs, ']');
		*why = "missing ']' after an IPv6 address";
		if (!he)
			return -EINVAL;
		ps = he + 1;
	} else {
		he = strrchr(s, ':');
		ps = he ? he : s + strlen(s);
	}
	*why = "expected HOST:PORT";
	if (*ps != ':' || (size_t)(he - hs) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, hs, he - hs);
	buf[he - hs] = 0;
	*why = check_host(buf, wildcard, s[0] == '[');
	if (*why)
		return -EINVAL;
	ps++;
	end = parse_digits(ps, UINT64_MAX, &n, &big);
	if (end == ps || *end || big || n < 1 || n > 65535) {
		*why = "port must be a number from 1 to 65535";
		return -EINVAL;
	}
	*port = n;
	*why = NULL;
	if (!strcmp(buf, "*") && s[0] != '[')
		return 0;
	*host = strdup(buf);
	return *host ? 0 : -ENOMEM;
}

/*
 * Splits a command into words the way sh would for plain words, quotes and
 * backslashes, but expands nothing: hacd execs the program directly, so syntax a shell
 * would interpret (pipes, redirections, variables) is refused instead of being passed
 * on as literal arguments. *argv is one allocation (pointers, then the words).
 */
int conf__split_command(const char *cmd, char ***argvp, size_t *argcp, const char **why)
{
	size_t len = strlen(cmd), maxw = len / 2 + 2, argc = 0;
	char **argv = malloc(maxw * sizeof(char *) + len + 1);
	char *out = (char *)(argv + maxw);
	bool inword = false;
	char q = 0;

	if (!argv)
		return -ENOMEM;
	*why = NULL;
	for (const char *p = cmd; *p && !*why; p++) {
		char c = *p;

		if (q == '\'') {
			if (c == '\'')
				q = 0;
			else
				*out++ = c;
			continue;
		}
		if (q == '"') {
			if (c == '"')
				q = 0;
			else if (c == '\\' && p[1] && strchr("\"\\$`", p[1]))
				*out++ = *++p;
			else
				*out++ = c;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\n') {
			if (inword)
				*out++ = 0;
			inword = false;
			continue;
		}
		if (strchr("|&;<>()$`", c)) {
			*why = "shell syntax is not supported (no shell runs the command): "
			       "use a wrapper script";
			break;
		}
		if (!inword)
			argv[argc++] = out;
		inword = true;
		if (c == '\'' || c == '"')
			q = c;
		else if (c == '\\' && !p[1])
			*why = "trailing backslash";
		else
			*out++ = c == '\\' ? *++p : c;
	}
	if (!*why && q)
		*why = "unterminated quote";
	if (!*why && !argc)
		*why = "empty command";
	if (*why) {
		free(argv);
		return -EINVAL;
	}
	if (inword)
		*out = 0;
	argv[argc] = NULL;
	*argvp = argv;
	*argcp = argc;
	return 0;
}
