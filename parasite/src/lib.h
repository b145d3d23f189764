/*
 * What the freestanding blobs use instead of libc: raw syscalls returning -errno, and the
 * few memory helpers the compiler may emit calls to.
 */
#ifndef HA_BLOB_LIB_H
#define HA_BLOB_LIB_H

#include <stddef.h>
#include <stdint.h>
#include <asm/unistd.h>

#define EPROTO 71
#define EINVAL 22

static inline long sys6(long nr, long a, long b, long c, long d, long e, long f)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	register long r9 __asm__("r9") = f;
	long ret;

	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define sys0(n) sys6(n, 0, 0, 0, 0, 0, 0)
#define sys1(n, a) sys6(n, (long)(a), 0, 0, 0, 0, 0)
#define sys2(n, a, b) sys6(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define sys3(n, a, b, c) sys6(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define sys4(n, a, b, c, d) sys6(n, (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* Kernel ABI structs for sendmsg with SCM_RIGHTS. */
struct blob_iovec {
	void *base;
	size_t len;
};
struct blob_msghdr {
	void *name;
	int namelen;
	struct blob_iovec *iov;
	size_t iovlen;
	void *control;
	size_t controllen;
	unsigned flags;
};
struct blob_cmsg_fd {
	size_t len;
	int level;
	int type;
	int fd;
	int pad;
};
#define BLOB_SOL_SOCKET 1
#define BLOB_SCM_RIGHTS 1

#endif
