/*
 * The one header the engine and the parasite share: the blob descriptor, the command ABI
 * and the argument structs. Everything here is plain fixed-size types so that the
 * freestanding parasite and the host agree byte for byte; _Static_asserts pin the sizes.
 *
 * Conversation (all in the shared command area, see struct par_area):
 *   injector writes {abi, cmd, args}  ->  runs __export_head(area) in the target
 *   parasite writes {ret, results}    ->  stops on int3; injector reads them back
 * A command that moves file descriptors also uses the parasite's socket (PAR_CMD_SEND_FD),
 * which the injector creates in the target and closes again at cure.
 */
#ifndef HA_PARASITE_H
#define HA_PARASITE_H

#include <stdint.h>

/* A freestanding blob as produced by ha_blobgen. */
struct ha_blob {
	const char *name;
	const unsigned char *data;
	unsigned long size;		/* bytes of data */
	unsigned long mem_size;		/* size in memory, .bss included */
	const unsigned long *relocs;	/* offsets of 64-bit words that need the load base added */
	unsigned long nr_relocs;
};

/* Bump when any struct below or the meaning of a command changes. */
#define PAR_ABI_VERSION 1u

enum par_cmd {
	PAR_CMD_INIT = 1,	/* args.init: remember the socket fd */
	PAR_CMD_SIGACTIONS,	/* results.sigactions: all 64 */
	PAR_CMD_ITIMERS,	/* results.itimers: REAL, VIRTUAL, PROF */
	PAR_CMD_SEND_FD,	/* args.send_fd: send that fd over the socket with SCM_RIGHTS */
	PAR_CMD_NR,
};

#define PAR_NSIG 64

/* The kernel's struct sigaction for rt_sigaction on x86-64 (not glibc's). */
struct par_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};
_Static_assert(sizeof(struct par_sigaction) == 32, "par_sigaction ABI");

struct par_itimer {
	int64_t interval_sec, interval_usec;
	int64_t value_sec, value_usec;
};
_Static_assert(sizeof(struct par_itimer) == 32, "par_itimer ABI");

struct par_area {
	uint32_t abi;		/* PAR_ABI_VERSION, checked by the parasite */
	uint32_t cmd;		/* enum par_cmd */
	int64_t ret;		/* 0 or -errno, written by the parasite */
	union {
		struct { int32_t sock; int32_t pad; } init;
		struct { int32_t fd; int32_t pad; } send_fd;
		int32_t sv[2];			/* socketpair() result, written by the kernel */
	} args;
	union {
		struct par_sigaction sigactions[PAR_NSIG];	/* [i] is signal i + 1 */
		struct par_itimer itimers[3];
	} res;
};
_Static_assert(sizeof(struct par_area) == 16 + 8 + 64 * 32, "par_area ABI");

/* Where things live in the target's parasite mapping, after the blob itself. */
#define PAR_AREA_SIZE 4096ul
#define PAR_STACK_SIZE (64ul << 10)

#endif
