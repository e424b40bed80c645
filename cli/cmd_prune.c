/* cmd_prune.c — `tracc prune` (in progress). */
#include <stdio.h>

#include "cli/cli.h"

int cmd_prune(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tracc prune: not implemented yet\n");
    return 1;
}
