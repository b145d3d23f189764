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
/* Forget the kept error: called at the start of each public operation. */
void eng__clear_error(void);

#define pr_err(fmt, ...) eng__log(3, fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) eng__log(4, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) eng__log(6, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) eng__log(7, fmt, ##__VA_ARGS__)
/* Log with strerror of a -errno value and return it. */
#define pr_errno(err, fmt, ...) \
	(eng__log(3, fmt ": %s", ##__VA_ARGS__, strerror(-(err))), (err))

#endif
