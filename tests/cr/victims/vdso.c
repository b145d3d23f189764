/*
 * The vDSO: the loop keeps calling clock_gettime (MONOTONIC, REALTIME, BOOTTIME,
 * COARSE), gettimeofday and time through the vDSO. After restore: the vDSO is mapped
 * where glibc found it at start (AT_SYSINFO_EHDR), its answers agree with the raw
 * syscalls, and CLOCK_MONOTONIC did not go backwards from the last value seen before.
 */
#include <sys/auxv.h>
#include <sys/time.h>

#include "../zdtm.h"

static const clockid_t clocks[] = { CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME, CLOCK_MONOTONIC_COARSE,
				    CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_RAW };
#define NR (sizeof(clocks) / sizeof(clocks[0]))

static double ts(const struct timespec *t)
{
	return t->tv_sec + t->tv_nsec / 1e9;
}

static void vdso_range(unsigned long *start, unsigned long *end)
{
	char line[256];
	FILE *f = fopen("/proc/self/maps", "re");

	*start = *end = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, "[vdso]"))
			sscanf(line, "%lx-%lx", start, end);
	if (f)
		fclose(f);
}

int main(void)
{
	unsigned long ehdr = getauxval(AT_SYSINFO_EHDR), s, e;
	struct timespec last[NR], t, k;
	struct timeval tv;
	uint64_t n = 0;

	zdtm_init();
	vdso_range(&s, &e);
	if (!ehdr || ehdr != s)
		zdtm_fail("AT_SYSINFO_EHDR %#lx, [vdso] at %#lx", ehdr, s);
	zdtm_ready("vdso=%#lx", ehdr);

	while (!zdtm_stop) {
		for (size_t i = 0; i < NR; i++)
			clock_gettime(clocks[i], &last[i]);
		gettimeofday(&tv, NULL);
		n += time(NULL) & 1;
		zdtm_sleep_ms(1);
	}

	vdso_range(&s, &e);
	zdtm_check(s == ehdr, "[vdso] at %#lx after restore, glibc uses %#lx", s, ehdr);
	for (size_t i = 0; i < NR; i++) {
		zdtm_check(!clock_gettime(clocks[i], &t), "clock %d: %m", clocks[i]);
		zdtm_check(!syscall(SYS_clock_gettime, clocks[i], &k), "clock %d syscall: %m", clocks[i]);
		zdtm_check(ts(&t) > ts(&k) - 5 && ts(&t) < ts(&k) + 5, "clock %d: vDSO says %.3f, kernel %.3f",
			   clocks[i], ts(&t), ts(&k));
		if (clocks[i] == CLOCK_MONOTONIC || clocks[i] == CLOCK_BOOTTIME || clocks[i] == CLOCK_MONOTONIC_RAW)
			zdtm_check(ts(&t) >= ts(&last[i]), "clock %d went backwards: %.6f after %.6f", clocks[i],
				   ts(&t), ts(&last[i]));
	}
	gettimeofday(&tv, NULL);
	syscall(SYS_clock_gettime, CLOCK_REALTIME, &k);
	zdtm_check(tv.tv_sec > k.tv_sec - 5 && tv.tv_sec < k.tv_sec + 5, "gettimeofday %ld, kernel %ld",
		   (long)tv.tv_sec, (long)k.tv_sec);
	zdtm_check(time(NULL) > k.tv_sec - 5 && time(NULL) < k.tv_sec + 5, "time() disagrees with the kernel");
	zdtm_pass();
}
