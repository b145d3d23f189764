/*
 * Registers in use: three threads each hold 8 general-purpose registers and ymm0-ymm14
 * (xmm0-xmm14 without AVX) with distinct patterns in an assembly loop that checks them
 * all, then sleeps 1 ms with a raw nanosleep syscall, until told to stop. They also run
 * with a non-default MXCSR (round toward zero, flush-to-zero, DAZ) and x87 control word.
 * A dump stops them at any instruction; a restore that loses any of it (upper ymm
 * halves included) makes the loop report the first register that changed.
 */
#include <cpuid.h>
#include <pthread.h>

#include "../zdtm.h"

#define NR 3

struct xpat {
	uint64_t gpr[8];		/* rbx rdx r8 r9 r10 r12 r13 r14 */
	uint64_t pad[4];
	unsigned char vec[15][32];	/* at offset 96: ymm0-14 */
	volatile int *stop;		/* offset 576 */
	struct timespec *ts;		/* offset 584 */
	uint64_t loops;			/* offset 592 */
} __attribute__((aligned(32)));

_Static_assert(__builtin_offsetof(struct xpat, vec) == 96, "asm offsets");
_Static_assert(__builtin_offsetof(struct xpat, stop) == 576, "asm offsets");
_Static_assert(__builtin_offsetof(struct xpat, loops) == 592, "asm offsets");

static struct xpat pats[NR];
static volatile int stop_flag, started;
static int use_avx;
static struct timespec one_ms = { 0, 1000000 };
static int results[NR];
static unsigned int mxcsr_after[NR];
static unsigned short fcw_after[NR];

#define LD(i) "vmovdqu " #i "*32+96(%%r15), %%ymm" #i "\n"
#define CK(i) "vpxor " #i "*32+96(%%r15), %%ymm" #i ", %%ymm15\n vptest %%ymm15, %%ymm15\n jnz 9f\n"
#define LDX(i) "movdqu " #i "*32+96(%%r15), %%xmm" #i "\n"
#define CKX(i) "movdqu " #i "*32+96(%%r15), %%xmm15\n pcmpeqb %%xmm" #i ", %%xmm15\n pmovmskb %%xmm15, %%eax\n cmp $0xffff, %%eax\n jne 9f\n"
#define GPR_LOAD "mov 0(%%r15), %%rbx\n mov 8(%%r15), %%rdx\n mov 16(%%r15), %%r8\n mov 24(%%r15), %%r9\n" \
		 "mov 32(%%r15), %%r10\n mov 40(%%r15), %%r12\n mov 48(%%r15), %%r13\n mov 56(%%r15), %%r14\n"
#define GPR_CHECK "cmp 0(%%r15), %%rbx\n jne 9f\n cmp 8(%%r15), %%rdx\n jne 9f\n cmp 16(%%r15), %%r8\n jne 9f\n" \
		  "cmp 24(%%r15), %%r9\n jne 9f\n cmp 32(%%r15), %%r10\n jne 9f\n cmp 40(%%r15), %%r12\n jne 9f\n" \
		  "cmp 48(%%r15), %%r13\n jne 9f\n cmp 56(%%r15), %%r14\n jne 9f\n"
#define SLEEP_AND_LOOP "mov $35, %%eax\n mov 584(%%r15), %%rdi\n xor %%esi, %%esi\n syscall\n" \
		       "incq 592(%%r15)\n mov 576(%%r15), %%rax\n cmpl $0, (%%rax)\n je 1b\n" \
		       "xor %%eax, %%eax\n jmp 8f\n 9: mov $1, %%eax\n 8:\n"
#define CLOBBERS "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "xmm0", \
		 "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",     \
		 "xmm12", "xmm13", "xmm14", "xmm15", "memory", "cc"

static int loop_avx(struct xpat *p)
{
	register struct xpat *r15 asm("r15") = p;
	int ret;

	asm volatile(GPR_LOAD LD(0) LD(1) LD(2) LD(3) LD(4) LD(5) LD(6) LD(7) LD(8) LD(9) LD(10) LD(11) LD(12)
		     LD(13) LD(14) "1:\n" GPR_CHECK CK(0) CK(1) CK(2) CK(3) CK(4) CK(5) CK(6) CK(7) CK(8) CK(9)
		     CK(10) CK(11) CK(12) CK(13) CK(14) SLEEP_AND_LOOP "vzeroupper\n"
		     : "=a"(ret), "+r"(r15)
		     :
		     : CLOBBERS);
	return ret;
}

static int loop_sse(struct xpat *p)
{
	register struct xpat *r15 asm("r15") = p;
	int ret;

	asm volatile(GPR_LOAD LDX(0) LDX(1) LDX(2) LDX(3) LDX(4) LDX(5) LDX(6) LDX(7) LDX(8) LDX(9) LDX(10) LDX(11)
		     LDX(12) LDX(13) LDX(14) "1:\n" GPR_CHECK CKX(0) CKX(1) CKX(2) CKX(3) CKX(4) CKX(5) CKX(6) CKX(7)
		     CKX(8) CKX(9) CKX(10) CKX(11) CKX(12) CKX(13) CKX(14) SLEEP_AND_LOOP
		     : "=a"(ret), "+r"(r15)
		     :
		     : CLOBBERS);
	return ret;
}

static void *worker(void *arg)
{
	int i = (int)(long)arg;
	unsigned int mxcsr = 0x1f80 | 0x6000 | 0x8000 | 0x40;	/* masks, RZ, FTZ, DAZ */
	unsigned short fcw = 0x0c7f;				/* all masked, 24-bit, RZ */

	asm volatile("ldmxcsr %0" : : "m"(mxcsr));
	asm volatile("fldcw %0" : : "m"(fcw));
	__atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
	results[i] = use_avx ? loop_avx(&pats[i]) : loop_sse(&pats[i]);
	asm volatile("stmxcsr %0" : "=m"(mxcsr_after[i]));
	asm volatile("fnstcw %0" : "=m"(fcw_after[i]));
	return NULL;
}

static int have_avx(void)
{
	unsigned int a, b, c, d, lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_AVX) || !(c & bit_OSXSAVE))
		return 0;
	asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 6) == 6;
}

int main(void)
{
	pthread_t th[NR];

	zdtm_init();
	use_avx = have_avx();
	for (int i = 0; i < NR; i++) {
		for (int g = 0; g < 8; g++)
			pats[i].gpr[g] = zdtm_mix(i * 100 + g);
		zdtm_fill(pats[i].vec, sizeof(pats[i].vec), 1000 + i);
		pats[i].stop = &stop_flag;
		pats[i].ts = &one_ms;
		pthread_create(&th[i], NULL, worker, (void *)(long)i);
	}
	while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < NR)
		zdtm_sleep_ms(1);
	zdtm_ready("threads=%d vector=%s", NR + 1, use_avx ? "ymm" : "xmm");
	while (!zdtm_stop)
		zdtm_sleep_ms(5);
	stop_flag = 1;
	for (int i = 0; i < NR; i++) {
		pthread_join(th[i], NULL);
		zdtm_check(!results[i], "thread %d: a register changed under it (after %lu loops)", i,
			   (unsigned long)pats[i].loops);
		zdtm_check(pats[i].loops > 0, "thread %d never looped", i);
		zdtm_check((mxcsr_after[i] & ~0x3fu) == 0xffc0,
			   "thread %d: MXCSR %#x", i, mxcsr_after[i]);
		zdtm_check(fcw_after[i] == 0x0c7f, "thread %d: x87 control word %#x", i, fcw_after[i]);
	}
	zdtm_pass();
}
