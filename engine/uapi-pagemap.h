/*
 * uapi-pagemap.h: the PAGEMAP_SCAN ioctl and userfaultfd async write-protect, from the
 * kernel uapi (linux/fs.h and linux/userfaultfd.h of 6.7+).
 *
 * Why a copy: Debian 12 ships 6.1 kernel headers, which predate both. The values are
 * kernel ABI and never change, so defining them here is safe; each is guarded so that
 * newer headers win. Shared by the kernel probe (kerndat-mm.c) and incremental tracking.
 */
#ifndef HA_ENGINE_UAPI_PAGEMAP_H
#define HA_ENGINE_UAPI_PAGEMAP_H

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#ifndef PAGEMAP_SCAN
/* Categories: set in pm_scan_arg's masks, reported in page_region.categories. */
#define PAGE_IS_WPALLOWED	(1 << 0)	/* registered for uffd async WP */
#define PAGE_IS_WRITTEN		(1 << 1)	/* written since last write-protected */
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)	/* maps the shared zero page */
#define PAGE_IS_HUGE		(1 << 6)
#define PAGE_IS_SOFT_DIRTY	(1 << 7)

struct page_region {
	__u64 start;
	__u64 end;		/* exclusive */
	__u64 categories;
};

/* Write-protect the pages the scan reports (re-arms tracking atomically with the read). */
#define PM_SCAN_WP_MATCHING	(1 << 0)
/* Fail with EPERM on a page not registered for async WP, instead of skipping it. */
#define PM_SCAN_CHECK_WPASYNC	(1 << 1)

struct pm_scan_arg {
	__u64 size;		/* sizeof(struct pm_scan_arg) */
	__u64 flags;		/* PM_SCAN_* */
	__u64 start;
	__u64 end;
	__u64 walk_end;		/* out: where the walk stopped (vec full, max_pages) */
	__u64 vec;		/* struct page_region[vec_len] */
	__u64 vec_len;
	__u64 max_pages;	/* 0: no limit */
	__u64 category_inverted;
	__u64 category_mask;	/* page must have all of these (after inversion) */
	__u64 category_anyof_mask;
	__u64 return_mask;	/* categories copied into page_region */
};

#define PAGEMAP_SCAN		_IOWR('f', 16, struct pm_scan_arg)
#endif

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED	(1 << 13)	/* 6.4: WP also never-touched pages */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
/* 6.7: the kernel resolves WP faults itself (no handler), marking the page written. */
#define UFFD_FEATURE_WP_ASYNC		(1 << 15)
#endif

/* pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_ENTRY_SOFT_DIRTY	(1ULL << 55)
#define PM_ENTRY_UFFD_WP	(1ULL << 57)
#define PM_ENTRY_PRESENT	(1ULL << 63)

_Static_assert(sizeof(struct pm_scan_arg) == 96, "pm_scan_arg is kernel ABI");
_Static_assert(sizeof(struct page_region) == 24, "page_region is kernel ABI");

#endif
