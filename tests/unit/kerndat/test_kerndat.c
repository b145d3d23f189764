/*
 * eng_kerndat_probe(): what it reports must agree with itself and with sources the
 * probes do not use (auxv, the thread pointer, statfs, a second run). These hold for
 * any user on any kernel: they do not require features to be present.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/prctl.h>
#include <sys/rseq.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/magic.h>
#include <linux/prctl.h>

#include <cmocka.h>

#include "ha/engine.h"

#define UFFD_FEATURE_WP_ASYNC (1ULL << 15)

static struct eng_kerndat kd;

static int group_setup(void **state)
{
	return eng_kerndat_probe(&kd) ? -1 : 0;
}

static void test_items(void **state)
{
	static const bool required[ENG_KD_NR] = {
		[ENG_KD_DIRTY] = true, [ENG_KD_CLONE3_SET_TID] = true, [ENG_KD_MM_MAP] = true,
		[ENG_KD_RSEQ] = true, [ENG_KD_VDSO] = true, [ENG_KD_XSTATE] = true,
	};
	int missing = 0;

	for (int i = 0; i < ENG_KD_NR; i++) {
		const struct eng_kerndat_item *it = &kd.items[i];

		assert_non_null(it->name);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(it->name, kd.items[j].name);
		assert_int_equal(it->ok, it->err == 0);
		assert_true(it->err <= 0);
		/* -ENODATA is "not probed": every probe must have set its item. */
		assert_int_not_equal(it->err, -ENODATA);
		assert_true(it->value[0]);
		assert_int_equal(it->required, required[i]);
		if (!it->ok)
			assert_true(strstr(it->detail, it->required ? "required: " : "optional: "));
		missing += it->required && !it->ok;
	}
	assert_int_equal(eng_kerndat_nr_missing(&kd), missing);
	assert_string_equal(kd.items[ENG_KD_CAP_SYS_RESOURCE].name, "cap-sys-resource");
	assert_int_equal(kd.items[ENG_KD_CAP_SYS_RESOURCE].ok, kd.cap_sys_resource);
}

static void test_dirty_method(void **state)
{
	enum eng_dirty_method want = kd.uffd_wp_scan ? ENG_DIRTY_UFFD_WP :
				     kd.soft_dirty ? ENG_DIRTY_SOFT_DIRTY : ENG_DIRTY_HASH;

	assert_int_equal(kd.dirty_method, want);
	assert_true(kd.items[ENG_KD_DIRTY].ok);
	assert_string_equal(kd.items[ENG_KD_DIRTY].value, eng_dirty_method_name(want));
	/* Two probes, one kernel: if async WP worked, plain UFFDIO_API must offer it. */
	if (kd.uffd_wp_scan && kd.uffd)
		assert_true(kd.uffd_features & UFFD_FEATURE_WP_ASYNC);
	assert_int_equal(kd.items[ENG_KD_UFFD].ok, kd.uffd);
}

static void test_vdso(void **state)
{
	uint64_t psz = sysconf(_SC_PAGESIZE);
	const struct eng_kd_map *maps[] = { &kd.vvar, &kd.vvar_vclock, &kd.vdso };

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(maps[i]->start % psz, 0);
		assert_int_equal(maps[i]->size % psz, 0);
	}
	if (!getauxval(AT_SYSINFO_EHDR)) {
		assert_int_equal(kd.vdso.size, 0);
		return;
	}
	assert_true(kd.vdso.size > 0);
	assert_int_equal(kd.vdso.start, getauxval(AT_SYSINFO_EHDR));
	if (kd.vvar_vclock.size)
		assert_true(kd.vvar.size > 0);
	assert_true(kd.items[ENG_KD_VDSO].ok);
}

static void test_xstate(void **state)
{
#if defined(__x86_64__)
	if (!kd.items[ENG_KD_XSTATE].ok) {
		assert_int_equal(kd.xcr0, 0);
		return;
	}
	/* Linux on x86-64 always enables x87 and SSE state when it uses XSAVE. */
	assert_int_equal(kd.xcr0 & 3, 3);
	/* 512-byte legacy area + 64-byte header; AVX adds 256 bytes of YMM halves. */
	assert_true(kd.xstate_size >= 576);
	if (kd.xcr0 & 4)
		assert_true(kd.xstate_size >= 832);
	if (kd.xstate_regset_size)
		assert_true(kd.xstate_regset_size >= 576);
#endif
}

static void test_rseq(void **state)
{
	uintptr_t mine = (uintptr_t)__builtin_thread_pointer() + __rseq_offset;

	if (!kd.rseq || !__rseq_size)
		return;
	/* The tracee was forked from this thread: it must show this thread's area. */
	assert_int_equal(kd.rseq_addr, mine);
	assert_int_equal(kd.rseq_sig, RSEQ_SIG);
	assert_true(kd.rseq_len >= 32);
}

static void test_mm_map(void **state)
{
	if (kd.mm_map)
		assert_int_equal(kd.mm_map_size, sizeof(struct prctl_mm_map));
}

static void test_cgroup2(void **state)
{
	char probe_dir[64];
	struct statfs st;
	struct dirent *de;
	DIR *d;

	assert_int_equal(kd.items[ENG_KD_CGROUP2].ok, kd.cgroup2_mnt[0] != 0);
	if (kd.cgroup2_freezer)
		assert_true(kd.items[ENG_KD_CGROUP2].ok);
	if (!kd.cgroup2_mnt[0])
		return;
	assert_int_equal(statfs(kd.cgroup2_mnt, &st), 0);
	assert_int_equal(st.f_type, CGROUP2_SUPER_MAGIC);
	/* The probe cgroup must be gone. */
	snprintf(probe_dir, sizeof(probe_dir), "hacd-kd-%d", getpid());
	d = opendir(kd.cgroup2_mnt);
	assert_non_null(d);
	while ((de = readdir(d)))
		assert_string_not_equal(de->d_name, probe_dir);
	closedir(d);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* A second run: same answers, no fd or child left behind. */
static void test_repeatable(void **state)
{
	struct eng_kerndat again;
	int fds = count_fds();

	assert_int_equal(eng_kerndat_probe(&again), 0);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(again.dirty_method, kd.dirty_method);
	for (int i = 0; i < ENG_KD_NR; i++)
		assert_int_equal(again.items[i].ok, kd.items[i].ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_items),
		cmocka_unit_test(test_dirty_method),
		cmocka_unit_test(test_vdso),
		cmocka_unit_test(test_xstate),
		cmocka_unit_test(test_rseq),
		cmocka_unit_test(test_mm_map),
		cmocka_unit_test(test_cgroup2),
		cmocka_unit_test(test_repeatable),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}
