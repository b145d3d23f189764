/* hactl inject: placeholder until engine/infect.c lands. */
#include <stdio.h>

#include "hactl.h"

int ctl_cmd_inject(int argc, char **argv)
{
	fprintf(stderr, "hactl inject: not built yet\n");
	return CTL_EXIT_FAIL;
}
