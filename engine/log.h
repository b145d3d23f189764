/* Engine-internal logging helpers; see log.c. */
#ifndef HA_ENGINE_LOG_H
#define HA_ENGINE_LOG_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>

void eng__log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Between on and off, errors and warnings of this thread are expected and harmless
 * (a live pass racing the process's munmap): logged as debug, not kept. Nests. */
void eng__log_quiet(bool on);
/* Keep msg as this thread's error when it has none, without logging it again (the
 * thread that met it did): for errors met by a helper thread. */
void eng__keep_error(const char *msg);
/* Forget the kept error: called at the start of each public operation. */
void eng__clear_error(void);
/* Where the pause goes: eng__tmark() notes the time of a step (a static string) in
 * memory, eng__tmarks_take() sums them by step into a dump's stats, and with debug
 * logging on eng__tmarks_print() logs every step's share (our CPU time too) once the
 * process runs again, so that the printing itself is not paid frozen. */
struct eng_pause_steps;
void eng__tmarks_reset(void);
void eng__tmark(const char *what);
void eng__tmarks_take(struct eng_pause_steps *out);
void eng__tmarks_print(int pid);

#define pr_err(fmt, ...) eng__log(3, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) eng__log(4, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) eng__log(6, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) eng__log(7, fmt, ##__VA_ARGS__)
/* Log with strerror of a -errno value and return it. */
#define pr_errno(err, fmt, ...) \
	(eng__log(3, fmt ": %s", ##__VA_ARGS__, strerror(-(err))), (err))

#endif
