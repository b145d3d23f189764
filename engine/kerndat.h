/*
 * kerndat.h: private to the kernel feature probes (kerndat.c, kerndat-mm.c,
 * kerndat-task.c). kerndat.c owns the item table and the order; the other two files
 * hold the probes that need memory tricks or extra processes.
 */
#ifndef HA_ENGINE_KERNDAT_H
#define HA_ENGINE_KERNDAT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/engine.h"

/* What a probe run in a child sends back: its -errno, a few numbers, a message. */
struct kd_res {
	int err;
	uint64_t val[4];
	char msg[192];
};

/*
 * Run fn in a forked child, so that whatever it changes (namespaces, mm fields,
 * mappings, registrations) dies with the child. Returns 0 with fn's outcome in *res, or
 * -errno when the child could not be run at all (res->msg says why).
 */
typedef int (*kd_child_fn)(void *arg, struct kd_res *res);
int eng__kd_in_child(kd_child_fn fn, void *arg, struct kd_res *res);

/* A syscall failed: "<what>: <strerror>" into res->msg; returns err.
 * `return eng__kd_fail(res, -errno, "mkdir %s", path);` */
int eng__kd_fail(struct kd_res *res, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Everything ran but the result is wrong: the message alone says it; returns err. */
int eng__kd_wrong(struct kd_res *res, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * Record item i's outcome: ok when err is 0; value NULL means "yes"/"missing". The
 * detail is what the try found; kerndat.c prefixes what a missing item costs.
 */
void eng__kd_set(struct eng_kerndat *kd, enum eng_kd_item i, int err, const char *value,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Each fills its fields and item(s); returns 0, or -errno if it could not run. */
int eng__kd_dirty(struct eng_kerndat *kd);		/* kerndat-mm.c */
int eng__kd_uffd(struct eng_kerndat *kd);
int eng__kd_mm_map(struct eng_kerndat *kd);
int eng__kd_vdso(struct eng_kerndat *kd);
int eng__kd_clone3(struct eng_kerndat *kd);		/* kerndat-task.c */
int eng__kd_pidfd_getfd(struct eng_kerndat *kd);
int eng__kd_timens(struct eng_kerndat *kd);
int eng__kd_rseq(struct eng_kerndat *kd);		/* also xstate_regset_size */
int eng__kd_cgroup2(struct eng_kerndat *kd);		/* mount point and freezer */

/* Exit status of a grandchild that reports a -errno (1..199) or a KD_EXIT_* code. */
#define KD_EXIT_WRONG	200	/* it ran, but saw the wrong thing */

#endif
