/* hacd's private header: the daemon's state and the calls between its files. */
#ifndef HA_HACD_H
#define HA_HACD_H

#include <stdint.h>
#include <syslog.h>

struct event_base;
struct conf;
struct cat;
struct hacd_ctl;

/* Exit codes of hacd (sysexits). */
enum {
	HACD_EXIT_OK = 0,
	HACD_EXIT_FAIL = 1,
	HACD_EXIT_USAGE = 64,
	HACD_EXIT_CONFIG = 78,
};

struct hacd {
	struct event_base *base;
	const char *conf_path;
	struct conf *conf;		/* the current config; replaced whole on reload */
	struct cat *cat;
	struct hacd_ctl *ctl;
	uint64_t started_us;		/* CLOCK_MONOTONIC, for the uptime */
};

/* hacd-log.c: stderr with <N> priority prefixes (journald reads them), and sd_notify. */
void hacd_log_set_level(int level);
/* Routes libevent's messages through hacd_log(). */
void hacd_log_libevent(void);
__attribute__((format(printf, 2, 3)))
void hacd_log(int prio, const char *fmt, ...);
/* Sends "state" to $NOTIFY_SOCKET when set; 0 or -errno (logged once at debug). */
int hacd_notify(const char *state);
__attribute__((format(printf, 1, 2)))
int hacd_notifyf(const char *fmt, ...);
uint64_t hacd_now_us(void);

/* hacd-ctl.c: the control socket. */
int hacd_ctl_open(struct hacd *d, struct hacd_ctl **out);
void hacd_ctl_close(struct hacd_ctl *ctl);
/* The path it listens on: a reload does not move it. */
const char *hacd_ctl_path(const struct hacd_ctl *ctl);

/* hacd.c: reload the config (SIGHUP, or a reload request); 0 or -errno. */
int hacd_reload(struct hacd *d);

#endif
