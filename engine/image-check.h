/* image-check.h: shared by the field checks (image-check.c, image-check-task.c). */
#ifndef HA_ENGINE_IMAGE_CHECK_H
#define HA_ENGINE_IMAGE_CHECK_H

#include "image.h"

#define ENG__PID_MAX (4u << 20)			/* PID_MAX_LIMIT on 64-bit */
#define ENG__USER_END ((1ull << 56) - 4096)	/* TASK_SIZE with 5-level paging */
#define ENG__XSTATE_MIN 576u			/* legacy area + XSAVE header */
#define ENG__XSTATE_MAX (64u << 10)
#define ENG__PAGE_ALIGNED(x) (((x) & (IMG_PAGE_SIZE - 1)) == 0)

/* Field `f` of message `m` must be set (proto2 has_ flag). */
#define NEED(img, m, f)							\
	do {								\
		if (!(m)->has_##f)					\
			return eng__img_bad(img, #f, "missing");	\
	} while (0)

/* Set and an absolute path. */
int eng__check_path(struct eng_img *img, const char *field, const char *path);
/* Set and a possible pid. */
int eng__check_pid(struct eng_img *img, const char *field, bool has, uint32_t pid);

#endif
