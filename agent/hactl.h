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

/* Each gets argv with argv[0] = the subcommand name. */
int ctl_cmd_check(int argc, char **argv);
int ctl_cmd_inject(int argc, char **argv);
int ctl_cmd_restore(int argc, char **argv);
int ctl_cmd_image(int argc, char **argv);
int ctl_cmd_dump(int argc, char **argv);
int ctl_cmd_status(int argc, char **argv);
int ctl_cmd_run(int argc, char **argv);

#endif
