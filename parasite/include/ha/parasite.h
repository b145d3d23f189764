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
#define PAR_ABI_VERSION 2u

enum par_cmd {
	PAR_CMD_INIT = 1,	/* args.init: remember the socket fd */
	PAR_CMD_SIGACTIONS,	/* results.sigactions: all 64 */
	PAR_CMD_ITIMERS,	/* results.itimers: REAL, VIRTUAL, PROF */
	PAR_CMD_SEND_FD,	/* args.send_fd: send that fd over the socket with SCM_RIGHTS */
	PAR_CMD_DUMP,		/* res.dump: all a dump asks, in one run (each run is a round
				 * trip through the scheduler while the process is frozen) */
	PAR_CMD_THREAD,		/* res.dump.th only, of the thread it runs in */
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

/* What a thread knows only of itself. */
struct par_thread {
	uint64_t ss_sp;		/* sigaltstack: the kernel's stack_t */
	int32_t ss_flags, pad;
	uint64_t ss_size;
	uint64_t clear_tid;	/* prctl(PR_GET_TID_ADDRESS) */
	int64_t securebits;	/* prctl(PR_GET_SECUREBITS) */
};
_Static_assert(sizeof(struct par_thread) == 40, "par_thread ABI");

/* Steps of PAR_CMD_DUMP and PAR_CMD_THREAD, named in res.dump.failed on an error. */
enum par_dump_step {
	PAR_DUMP_SIGACTION = 1,
	PAR_DUMP_ITIMER,
	PAR_DUMP_SIGALTSTACK,
	PAR_DUMP_TID_ADDRESS,
	PAR_DUMP_SECUREBITS,
	PAR_DUMP_SUBREAPER,
	PAR_DUMP_PDEATHSIG,
};

struct par_dump {
	struct par_sigaction sigactions[PAR_NSIG];	/* [i] is signal i + 1 */
	struct par_itimer itimers[3];
	struct par_thread th;
	int32_t subreaper, pdeathsig;
	uint64_t brk;		/* brk(0) */
	int32_t failed;		/* enum par_dump_step */
	int32_t pad;
};
_Static_assert(sizeof(struct par_dump) == 64 * 32 + 3 * 32 + 40 + 8 + 8 + 8, "par_dump ABI");

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
		struct par_dump dump;
	} res;
};
_Static_assert(sizeof(struct par_area) == 16 + 8 + sizeof(struct par_dump), "par_area ABI");

/* Where things live in the target's parasite mapping, after the blob itself. */
#define PAR_AREA_SIZE 4096ul
#define PAR_STACK_SIZE (64ul << 10)

/*
 * The restorer: the last stage of a restore, run inside the new process once its
 * future memory is premapped. It unmaps everything of hactl, moves vdso and premapped
 * VMAs into place, sets the mm fields, creates the threads with their TIDs and stops
 * each thread on int3 with everything but its registers restored. The tracing hactl
 * then unmaps the restorer with a syscall run from the vdso, puts back each thread's
 * registers, xstate and signal mask with ptrace and detaches: no byte of ours stays
 * mapped, and the kernel itself restarts interrupted syscalls.
 *
 * All pointers are addresses inside the restorer region or the premap area.
 */
#define RST_ABI_VERSION 1u
#define RST_STACK_SIZE (32ul << 10)

struct rst_range {
	uint64_t start, end;
};

struct rst_move {		/* mremap(src, len) to dst, then mprotect(dst, prot) */
	uint64_t src, dst, len;
};

struct rst_thread {
	int32_t tid;
	int32_t pad;
	uint64_t stack_top;	/* its restorer stack */
	uint64_t rseq_addr;	/* 0: none */
	uint32_t rseq_len, rseq_sig;
	char comm[16];
	uint64_t clear_tid;	/* set_tid_address(); pthread_join waits on it */
	uint64_t ss_sp, ss_size;	/* sigaltstack */
	int32_t ss_flags, pad3;
	uint64_t sigq;		/* 128-byte siginfos pending for this thread */
	uint64_t nr_sigq;
	uint64_t seccomp;	/* struct rst_filter[nr_seccomp], oldest first */
	uint64_t nr_seccomp;
	int32_t started;	/* set by the thread once running (debug aid) */
	int32_t pad2;
};

struct rst_filter {
	uint64_t len;		/* sock_filter instructions */
	uint64_t insns;		/* address of them */
	uint32_t flags;		/* SECCOMP_FILTER_FLAG_* */
	uint32_t pad;
};

/* Credentials, applied by every thread to itself (they are per thread in the kernel). */
struct rst_creds {
	uint32_t uid, euid, suid, fsuid, gid, egid, sgid, fsgid;
	uint64_t groups;	/* uint32_t[nr_groups] */
	uint32_t nr_groups;
	uint32_t securebits;
	uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
	uint32_t last_cap;	/* /proc/sys/kernel/cap_last_cap */
	uint32_t no_new_privs;
};

/* struct prctl_mm_map, spelled out so that the blob needs no kernel headers. */
struct rst_mm_map {
	uint64_t start_code, end_code, start_data, end_data, start_brk, brk, start_stack;
	uint64_t arg_start, arg_end, env_start, env_end;
	uint64_t auxv;		/* address of the auxv words */
	uint32_t auxv_size;	/* bytes */
	uint32_t exe_fd;
};
_Static_assert(sizeof(struct rst_mm_map) == 104, "prctl_mm_map ABI");

struct rst_args {
	uint32_t abi;
	int32_t failed_step;	/* written before exit_group on failure */
	uint64_t unmap;		/* struct rst_range[nr_unmap]: all of hactl */
	uint64_t nr_unmap;
	struct rst_range post_unmap;	/* premap leftovers, once everything has moved */
	uint64_t moves;		/* struct rst_move[nr_moves]: vdso parts, then VMAs */
	uint64_t nr_moves;
	uint64_t nr_vdso_moves;	/* the first ones, done in two hops, see restorer.c */
	uint64_t vdso_scratch;	/* free address range for those hops */
	struct rst_mm_map mm;
	uint64_t threads;	/* struct rst_thread[nr_threads], [0] is the leader */
	uint64_t nr_threads;
	struct par_itimer itimers[3];
	struct rst_creds creds;
	uint64_t sigq;		/* 128-byte siginfos pending for the whole process */
	uint64_t nr_sigq;
	uint64_t timers;	/* struct rst_timer[nr_timers] */
	uint64_t nr_timers;
};

/* A POSIX timer, created again with its id (PR_TIMER_CREATE_RESTORE_IDS). */
struct rst_timer {
	int32_t id, clock;
	int32_t notify, signo;
	uint64_t value;		/* sigev_value */
	int32_t tid, pad;	/* SIGEV_THREAD_ID */
	int64_t interval_sec, interval_nsec, value_sec, value_nsec;
};

/* Steps the restorer reports in failed_step and, + 100, as its exit status. */
enum rst_step {
	RST_STEP_ABI = 1,
	RST_STEP_UNMAP,
	RST_STEP_VDSO,
	RST_STEP_MOVE,
	RST_STEP_MM,
	RST_STEP_CLONE,
	RST_STEP_RSEQ_ON,
	RST_STEP_ITIMER,
	RST_STEP_SIGNALS,
	RST_STEP_CREDS,
	RST_STEP_SECCOMP,
	RST_STEP_ALTSTACK,
	RST_STEP_TIMERS,
};

#endif
