/* cmd_check.c — placeholder until the subcommand lands; exits 1 so nothing mistakes it for working. */
#include <stdio.h>

#include "cli/cli.h"

int cmd_check(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "tracc check: not built yet\n");
    return 1;
}
