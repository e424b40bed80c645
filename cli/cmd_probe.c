/* cmd_probe.c — `tracc probe` (in progress). */
#include <stdio.h>

#include "cli/cli.h"

int cmd_probe(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tracc probe: not implemented yet\n");
    return 1;
}
