/*
 * Engine-internal view of a seized process: its threads' saved state and the remote
 * execution primitives the dump code builds on (remote syscalls, parasite commands).
 */
#ifndef HA_ENGINE_INFECT_H
#define HA_ENGINE_INFECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

#include "ha/engine.h"
#include "ha/parasite.h"

struct eng_thread {
	pid_t tid;
	struct user_regs_struct regs;	/* as seized: put back at release */
	void *xstate;			/* NT_X86_XSTATE, xstate_len bytes */
	size_t xstate_len;
	uint64_t sigmask;		/* blocked signals as seized */
	bool stopped;			/* reached its interrupt stop */
	bool dirty;			/* we changed its registers or mask */
	bool masked;			/* all signals blocked by us */
};

struct eng_victim {
	pid_t pid;
	int pidfd;
	struct eng_thread *th;		/* th[0] is the thread that runs our code */
	int nr_threads;
	int cap_threads;

	/* Infection: valid while `infected`. */
	bool infected;
	unsigned long syscall_ip;	/* a `syscall` instruction in the target */
	unsigned long remote_base;	/* parasite mapping */
	unsigned long remote_len;
	unsigned long area_addr;	/* struct par_area in the target */
	unsigned long stack_top;
	int sock;			/* our end of the parasite's socket */
	int remote_sock;		/* its end, an fd number in the target */
	/* brk(0), when PAR_CMD_DUMP asked it (task-dump.c) */
	bool has_brk;
	unsigned long brk;
};

/* Run one syscall in th[0] (or th[idx]). Returns 0 with the syscall's own result in
 * *ret, or -errno when the injection itself failed. Works without eng_infect(); a
 * buffer argument must point into the target (the parasite area once infected). */
int eng__remote_syscall_on(struct eng_victim *v, int idx, long *ret, long nr, long a1, long a2, long a3,
			   long a4, long a5, long a6);
int eng__remote_syscall(struct eng_victim *v, long *ret, long nr, long a1, long a2, long a3,
			long a4, long a5, long a6);
/* Run one parasite command; args/results go through v's par_area copy `a`. */
int eng__par_call(struct eng_victim *v, struct par_area *a, uint32_t cmd);
/* The parasite's socket, made on first use (infect.c); 0 once it is there. */
int eng__par_channel(struct eng_victim *v);

/* A `syscall` instruction for v without reading its maps: its [vdso] at vdso_start,
 * vdso_len bytes, whose contents hash (XXH3-64) to vdso_hash, is the image ours is when
 * the hashes agree, with the instruction at the same offset. Nothing when they differ:
 * eng_infect() looks for one itself. */
void eng__syscall_ip_hint(struct eng_victim *v, uint64_t vdso_start, uint64_t vdso_len, uint64_t vdso_hash);

int eng__remote_read(struct eng_victim *v, unsigned long addr, void *buf, size_t len);
int eng__remote_write(struct eng_victim *v, unsigned long addr, const void *buf, size_t len);

#endif
