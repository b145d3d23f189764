/* hactl's subcommands, one file each (hactl-<name>.c), dispatched from hactl.c. */
#ifndef HA_HACTL_H
#define HA_HACTL_H

/* Exit codes shared by every subcommand (sysexits where they fit). */
enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_FAIL = 1,
	CTL_EXIT_NOT_RUNNING = 3,
	CTL_EXIT_USAGE = 64,
	CTL_EXIT_DATAERR = 65,
	CTL_EXIT_UNAVAILABLE = 69,
	CTL_EXIT_CONFIG = 78,
};

/* hactl-client.c: the control socket client. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "ha/agent.h"

/* hacd answers from its loop at once; a stuck one is as good as unreachable. */
#define CTL_TIMEOUT_S	10
/* checkpoint and rollback wait for the engine: a dump of a big service takes a while. */
#define CTL_WAIT_TIMEOUT_S	300

/* Global options (before the command): -s SOCKET, -f CONFIG, --json. */
extern const char *ctl_opt_socket;
extern const char *ctl_opt_config;
extern bool ctl_opt_json;

/*
 * One request to hacd at the socket chosen from sock and conf (see hactl-client.c),
 * its version set here; hacd's reply in *rep. 0, or the exit code (3 or 69) with the
 * reason printed. The reply's own status is the caller's to judge.
 */
int ctl_request(const char *sock, const char *conf, Hactl__CtlRequest *req, int timeout_s,
		Hactl__CtlReply **rep);
void ctl_json_str(FILE *f, const char *s);
/* ,"key":"s" on stdout: one more string member of the object being printed. */
void ctl_json_field(const char *key, const char *s);
void ctl_fmt_duration(uint64_t us, char *buf, size_t len);

/* Each gets argv with argv[0] = the subcommand name. */
int ctl_cmd_check(int argc, char **argv);
int ctl_cmd_inject(int argc, char **argv);
int ctl_cmd_restore(int argc, char **argv);
int ctl_cmd_image(int argc, char **argv);
int ctl_cmd_dump(int argc, char **argv);
/* hactl-dump.c: count generations of tracker t, one every interval_ms, one JSON line
 * each on stdout; closes t. CTL_EXIT_*. */
struct eng_track;
int ctl_track_run(struct eng_track *t, long count, long interval_ms);
int ctl_cmd_status(int argc, char **argv);
int ctl_cmd_run(int argc, char **argv);
/* hactl-svc.c */
int ctl_cmd_list(int argc, char **argv);
int ctl_cmd_checkpoint(int argc, char **argv);
int ctl_cmd_rollback(int argc, char **argv);
int ctl_cmd_promote(int argc, char **argv);
int ctl_cmd_failover(int argc, char **argv);
int ctl_cmd_demote(int argc, char **argv);
int ctl_cmd_log(int argc, char **argv);
int ctl_cmd_reload(int argc, char **argv);
/* hactl-catalog.c */
int ctl_cmd_catalog(int argc, char **argv);

#endif
