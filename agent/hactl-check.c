/* hactl check: placeholder until the kernel probes land (engine/kerndat.c). */
#include <stdio.h>

#include "hactl.h"

int ctl_cmd_check(int argc, char **argv)
{
	fprintf(stderr, "hactl check: not built yet\n");
	return CTL_EXIT_FAIL;
}
