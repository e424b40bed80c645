/* cmd_report.c — `tracc report DIR... [-o OUTDIR] [--json]`: the report over sweep directories
 * (analysis/sweeprep.h, docs/report.md). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/sweeprep.h"
#include "cli/cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc report [options] DIR [DIR2 ...]\n"
            "\n"
            "Aggregate whatever has finished in sweep directories written by `tracc sweep plan`\n"
            "(plan.json, runs/<id>/result.json, failed.json, the fine-tuning logs): jobs done /\n"
            "failed / pending; per cell (the grid parameters without seed) every accuracy as mean\n"
            "± sample std (n-1) over seeds with the per-run values; the paper's Table 3 beside the\n"
            "cells with the regime of each run (learned / wrapper / unchanged / collapsed / ...)\n"
            "and whether it matches the paper's; learning curves; pruning and rollback; reverse\n"
            "fine-tuning vs Scr.+FT; attention; the labelled diff; probes (each when the runs have\n"
            "it). Several DIRs make one report (e.g. the Counter and the Max-identifier sweeps).\n"
            "See docs/report.md.\n"
            "\n"
            "options:\n"
            "  -o, --output OUTDIR  write OUTDIR/report.md with its SVG pictures, OUTDIR/report.html\n"
            "                       (one self-contained page) and OUTDIR/report.json (created if\n"
            "                       missing; default: print the Markdown tables, no pictures)\n"
            "  --json               print the report as one JSON object (also with -o)\n"
            "  --paper-table FILE   the paper's numbers, in the format of paper/jain2023_table3.tsv\n"
            "                       (default: that file, built into tracc)\n"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 done, 1 error (not a sweep directory, a malformed result), 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("report", msg, arg); }

int cmd_report(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"json", no_argument, NULL, 'j'},
                                             {"paper-table", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *out = NULL, *paper = NULL;
    int json = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': json = 1; break;
        case 'p': paper = optarg; break;
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return bad_usage("expected a sweep directory%s", "");
    if (out && !*out) return bad_usage("-o needs a directory name%s", "");
    StrBuf err;
    sb_init(&err);
    char *ptext = NULL;
    int rc = 1;
    SrepReport *r = NULL;
    if (paper) {
        size_t len;
        ptext = read_file(paper, &len);
        if (!ptext) {
            fprintf(stderr, "tracc report: %s: cannot read: %s\n", paper, strerror(errno));
            goto done;
        }
        if (strlen(ptext) != len) {
            fprintf(stderr, "tracc report: %s: not a text table (it holds a NUL byte)\n", paper);
            goto done;
        }
    }
    r = srep_load((const char *const *)(argv + optind), argc - optind, ptext, paper, &err);
    if (!r) {
        fprintf(stderr, "tracc report: %s\n", err.s);
        goto done;
    }
    if (out && srep_write(r, out, &err)) {
        fprintf(stderr, "tracc report: %s\n", err.s);
        goto done;
    }
    if (json) {
        json_t *j = srep_json(r);
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else if (!out) {
        StrBuf md;
        sb_init(&md);
        srep_markdown(r, &md);
        fputs(md.s, stdout);
        sb_free(&md);
    }
    if (out) fprintf(stderr, "tracc report: wrote %s/report.md, report.html, report.json and the pictures\n", out);
    rc = 0;
done:
    srep_free(r);
    free(ptext);
    sb_free(&err);
    return rc;
}
