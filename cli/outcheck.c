/* outcheck.c — the pre-check every command runs on its output paths before any work. */
#include <stdio.h>

#include "cli/cli.h"
#include "common/outfile.h"

int cli_check_output(const char *cmd, const char *flag, const char *path)
{
    StrBuf err;
    sb_init(&err);
    int bad = of_check(path, flag, &err) != 0;
    if (bad) fprintf(stderr, "tracc %s: %s\n", cmd, err.s);
    sb_free(&err);
    return bad;
}
