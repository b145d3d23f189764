/*
 * madvise()d regions: MADV_DONTDUMP, MADV_DONTFORK, MADV_WIPEONFORK, MADV_HUGEPAGE and
 * MADV_NOHUGEPAGE, each on its own 64-page mapping with data. The advice shows in
 * VmFlags (dd dc wf hg nh), which the runner compares. The content is the process's
 * memory whatever the advice says about core dumps: it must be restored. After restore
 * a forked child must not see the DONTFORK region and must see the WIPEONFORK one
 * zeroed, which proves the advice is still in force, not just displayed.
 */
#include <sys/mman.h>
#include <sys/wait.h>

#include "../zdtm.h"

#define PG 4096ul
#define LEN (64 * PG)

static const struct { int advice; const char *name; } adv[] = {
	{ MADV_DONTDUMP, "dontdump" }, { MADV_DONTFORK, "dontfork" }, { MADV_WIPEONFORK, "wipeonfork" },
	{ MADV_HUGEPAGE, "hugepage" }, { MADV_NOHUGEPAGE, "nohugepage" },
};
#define NR (sizeof(adv) / sizeof(adv[0]))

int main(void)
{
	unsigned char *m[NR];
	uint64_t sums[NR], n = 0;
	pid_t child;
	int st;

	zdtm_init();
	zdtm_probe_init();
	for (size_t i = 0; i < NR; i++) {
		m[i] = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m[i] == MAP_FAILED || madvise(m[i], LEN, adv[i].advice))
			zdtm_fail("%s: %m", adv[i].name);
		zdtm_fill(m[i], LEN, 70 + i);
		sums[i] = zdtm_csum(m[i], LEN);
	}
	zdtm_ready("regions=%zu", NR);

	while (!zdtm_stop) {
		for (size_t i = 0; i < NR; i++)
			n += m[i][(n * 4096 + i) % LEN];
		zdtm_sleep_ms(1);
	}

	for (size_t i = 0; i < NR; i++)
		zdtm_check(zdtm_csum(m[i], LEN) == sums[i], "%s region content differs", adv[i].name);
	child = fork();
	if (child == 0) {
		/* 0: both hold; 3: DONTFORK region present; 4: WIPEONFORK not wiped. */
		if (!zdtm_probe((char *)m[1], 0))
			_exit(3);
		for (size_t b = 0; b < LEN; b += 512)
			if (m[2][b])
				_exit(4);
		_exit(0);
	}
	zdtm_check(child > 0 && waitpid(child, &st, 0) == child, "fork/wait: %m");
	zdtm_check(WIFEXITED(st) && WEXITSTATUS(st) != 3, "MADV_DONTFORK lost: the child has the region");
	zdtm_check(WIFEXITED(st) && WEXITSTATUS(st) != 4, "MADV_WIPEONFORK lost: the child sees the data");
	zdtm_check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
	zdtm_check(zdtm_csum(m[2], LEN) == sums[2], "WIPEONFORK region wiped in the parent");
	zdtm_pass();
}
