/*
 * Thread pointers: in the main thread and three others, __thread variables with
 * per-thread values, the fs base (glibc's TCB: pthread_self()), and a gs base each
 * thread sets to its own buffer (ARCH_SET_GS). After restore, in every thread: the TLS
 * values, ARCH_GET_FS == pthread_self(), ARCH_GET_GS == the buffer, %gs:0 reads the
 * buffer's first word, and with FSGSBASE rdfsbase/rdgsbase agree.
 */
#include <asm/prctl.h>
#include <pthread.h>
#include <sys/auxv.h>

#include "../zdtm.h"

#define NR 4

static __thread uint64_t tls_val[16];
static __thread int tls_index = -1;
static uint64_t gs_buf[NR][8];
static volatile int started;
static int fsgsbase;
static char errs[NR][160];

static unsigned long arch_get(int code)
{
	unsigned long v = 0;

	syscall(SYS_arch_prctl, code, &v);
	return v;
}

static void setup(int i)
{
	tls_index = i;
	for (int k = 0; k < 16; k++)
		tls_val[k] = zdtm_mix(i * 16 + k);
	gs_buf[i][0] = 0x6500000000000000ull + i;
	if (syscall(SYS_arch_prctl, ARCH_SET_GS, (unsigned long)gs_buf[i]))
		zdtm_fail("ARCH_SET_GS: %m");
}

static void check(int i)
{
	unsigned long fs = arch_get(ARCH_GET_FS), gs = arch_get(ARCH_GET_GS), viags;

	if (tls_index != i) {
		snprintf(errs[i], sizeof(errs[i]), "TLS index %d", tls_index);
		return;
	}
	for (int k = 0; k < 16; k++)
		if (tls_val[k] != zdtm_mix(i * 16 + k)) {
			snprintf(errs[i], sizeof(errs[i]), "TLS value %d differs", k);
			return;
		}
	if (fs != (unsigned long)pthread_self()) {
		snprintf(errs[i], sizeof(errs[i]), "fs base %#lx, pthread_self %#lx", fs, (unsigned long)pthread_self());
		return;
	}
	if (gs != (unsigned long)gs_buf[i]) {
		snprintf(errs[i], sizeof(errs[i]), "gs base %#lx, want %p", gs, (void *)gs_buf[i]);
		return;
	}
	asm volatile("mov %%gs:0, %0" : "=r"(viags));
	if (viags != gs_buf[i][0]) {
		snprintf(errs[i], sizeof(errs[i]), "%%gs:0 reads %#lx", viags);
		return;
	}
	if (fsgsbase) {
		unsigned long rf, rg;

		asm volatile("rdfsbase %0; rdgsbase %1" : "=r"(rf), "=r"(rg));
		if (rf != fs || rg != gs)
			snprintf(errs[i], sizeof(errs[i]), "rdfsbase %#lx rdgsbase %#lx", rf, rg);
	}
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;

	setup(i);
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	check(i);
	return NULL;
}

int main(void)
{
	pthread_t th[NR];

	zdtm_init();
	fsgsbase = !!(getauxval(AT_HWCAP2) & 2);	/* HWCAP2_FSGSBASE */
	setup(0);
	for (int i = 1; i < NR; i++)
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR - 1)
		zdtm_sleep_ms(1);
	check(0);
	zdtm_check(!errs[0][0], "before: %s", errs[0]);
	zdtm_ready("threads=%d fsgsbase=%d", NR, fsgsbase);
	while (!zdtm_stop)
		zdtm_sleep_ms(2);
	check(0);
	for (int i = 1; i < NR; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < NR; i++)
		zdtm_check(!errs[i][0], "thread %d: %s", i, errs[i]);
	zdtm_pass();
}
