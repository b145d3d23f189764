/* bench_memcpy: this machine's memcpy bandwidth (bench.h), the reference figure that
 * scripted benchmarks (tests/bench/replica.sh) print beside their own. */
#include "bench.h"

int main(void)
{
	printf("memcpy reference: %.2f GB/s (256 MiB buffers, best of 5)\n", bench_memcpy_gbps());
	return 0;
}
