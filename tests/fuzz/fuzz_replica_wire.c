/*
 * fuzz_replica_wire.c: the replication stream as a standby (or sender) reads it: frames
 * of a u32 big-endian length and a RepMsg, each through the checks of replica/wire.c
 * that run before any handler sees a field.
 *
 * Beyond "no crash, no leak": a refused frame always says why; a length above
 * REP_FRAME_MAX ends the stream as rep__recv() does, before its payload is buffered.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ha/replica.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];

	while (size >= 4) {
		size_t len = (size_t)data[0] << 24 | (size_t)data[1] << 16 |
			     (size_t)data[2] << 8 | data[3];

		if (len > REP_FRAME_MAX || len > size - 4)
			break;
		err[0] = 0;
		if (rep_wire_check(data + 4, len, err, sizeof(err)) && !err[0])
			abort();
		data += 4 + len;
		size -= 4 + len;
	}
	return 0;
}
