/* cmd_attn.c — `tracc attn [options] MODEL [MODEL2] TOKENS...`: every head's
 * attention pattern on one input, for one model or two side by side, with the program's own
 * selection marked (analysis/attn.h). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/attn.h"
#include "analysis/diff.h"
#include "analysis/report.h"
#include "cli/cli.h"
#include "cli/clio.h"
#include "common/outfile.h"
#include "compiler/front/diag.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc attn [options] MODEL [MODEL2] TOKENS...\n"
            "\n"
            "Print the attention pattern of every head the program uses (rows: the attending\n"
            "query position, columns: the key it attends to; weights in percent, '.' below 0.5%%)\n"
            "for one input, with '*' where the program's selector selects (from the reference\n"
            "interpreter). A second argument that is a model file (its name ends in .safetensors,\n"
            "or it is a file in that format) is a second model (e.g. the\n"
            "fine-tuned copy), shown after the first with the largest change. Without TOKENS the\n"
            "input is the first line of standard input. Options go before MODEL.\n"
            "\n"
            "options:\n"
            "  --block L        only block L (0-based)\n"
            "  --head H         only head H of each block (with neither: every head the\n"
            "                   model's `layers` metadata describes)\n"
            "  --hard           hard attention (as `tracc run --hard`)\n"
            "  --program FILE   the program whose selectors are marked (default: the one the\n"
            "                   model carries); --no-program: mark nothing\n"
            "  --svg FILE       also draw the patterns as heatmaps (tokens on both axes)\n"
            "  --json           print the patterns as one JSON object\n"
            "  --check-only   check the options and exit 0 (no file is loaded or\n"
            "                 written; used by `tracc sweep plan`)\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 done, 1 error, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("attn", msg, arg); }

static void print_matrix(const AttnMaps *am, int w, int i, FILE *f)
{
    int width = 4;
    for (int t = 0; t < am->T; t++) {
        int l = (int)strlen(am->labels[t]) + 1;
        if (l > width) width = l;
    }
    if (width > 12) width = 12;
    fprintf(f, "  %-*s", width, "");
    for (int k = 0; k < am->T; k++) fprintf(f, "%*.*s", width + 1, width, am->labels[k]);
    fprintf(f, "\n");
    for (int q = 0; q < am->T; q++) {
        fprintf(f, "  %-*.*s", width, width, am->labels[q]);
        for (int k = 0; k < am->T; k++) {
            float a = attn_weight(am, w, i, q, k);
            int sel = am->selected[i] && am->selected[i][(size_t)q * am->T + k];
            char cell[32];
            if (a < 0.005f)
                snprintf(cell, sizeof cell, ".%s", sel ? "*" : "");
            else
                snprintf(cell, sizeof cell, "%d%s", (int)lrintf(100 * a), sel ? "*" : "");
            fprintf(f, "%*s", width + 1, cell);
        }
        fprintf(f, "\n");
    }
}

int cmd_attn(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"block", required_argument, NULL, 'b'}, {"head", required_argument, NULL, 'H'},
        {"hard", no_argument, NULL, 'x'},        {"program", required_argument, NULL, 'p'},
        {"no-program", no_argument, NULL, 'P'},  {"svg", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'}, {"check-only", no_argument, NULL, 1000},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    long block = -1, head = -1;
    int hard = 0, json = 0, noprog = 0, check_only = 0, c;
    const char *svg = NULL, *prog_path = NULL;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (cli_parse_long(optarg, 0, 65535, &block)) return bad_usage("--block expects a block index, got '%s'", optarg);
            break;
        case 'H':
            if (cli_parse_long(optarg, 0, 1 << 30, &head)) return bad_usage("--head expects a head index, got '%s'", optarg);
            break;
        case 'x': hard = 1; break;
        case 'p': prog_path = optarg; break;
        case 'P': noprog = 1; break;
        case 'g': svg = optarg; break;
        case 'j': json = 1; break;
        case 1000: check_only = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return bad_usage("expected a model file%s", "");
    if (noprog && prog_path) return bad_usage("--program and --no-program exclude each other%s", "");
    if (check_only) return 0;
    if (svg && cli_check_output("attn", "--svg", svg)) return 1;   /* before any work */
    const char *pa = argv[optind++], *pb = NULL;
    if (optind < argc && (cli_ends_with(argv[optind], ".safetensors") || cli_is_model_file(argv[optind])))
        pb = argv[optind++];

    StrBuf err;
    sb_init(&err);
    int rc = 1;
    Model *a = NULL, *b = NULL;
    RaspProgram *p = NULL;
    Diag *d = NULL;
    AttnMaps am;
    memset(&am, 0, sizeof am);
    InputReader in;
    input_init(&in, argc - optind, argv + optind, stdin);
    char **toks = NULL;
    int ntoks = 0;
    if (!(a = model_load(pa, &err)) || (pb && !(b = model_load(pb, &err)))) {
        fprintf(stderr, "tracc attn: %s\n", err.s);
        goto done;
    }
    if (b) {
        StrBuf why;
        sb_init(&why);
        if (diff_compatible(a, b, &why)) {
            fprintf(stderr, "tracc attn: %s and %s do not share their compiled structure:\n", pa, pb);
            for (char *line = strtok(why.s, "\n"); line; line = strtok(NULL, "\n")) fprintf(stderr, "  %s\n", line);
            sb_free(&why);
            goto done;
        }
        sb_free(&why);
    }
    if (!input_next(&in, &toks, &ntoks) || ntoks == 0) {
        fprintf(stderr, "tracc attn: no input tokens (give them after the model, or on standard input)\n");
        goto done;
    }
    if (in.has_nul) {
        fprintf(stderr, "tracc attn: line %d: the input holds a NUL byte\n", in.lineno);
        goto done;
    }
    if (!noprog) {
        d = diag_new();
        p = rep_load_program(a, prog_path, d, &err);
        if (!p && prog_path) {
            diag_print(d, stderr);
            if (err.len) fprintf(stderr, "tracc attn: %s\n", err.s);
            goto done;
        }
        sb_clear(&err);   /* a model without a program: no overlay */
    }
    if (attn_run(&am, a, b, p, toks, ntoks, (int)block, (int)head, hard, &err)) {
        fprintf(stderr, "tracc attn: %s\n", err.s);
        goto done;
    }
    const char *names[2] = {pa, pb ? pb : ""};
    if (svg) {
        StrBuf doc, title;
        sb_init(&doc);
        sb_init(&title);
        sb_puts(&title, "attention on:");
        for (int i = 0; i < ntoks; i++) sb_printf(&title, " %s", toks[i]);
        attn_svg(&am, names, title.s, &doc);
        int wr = of_write(svg, doc.s, doc.len, &err);
        sb_free(&doc);
        sb_free(&title);
        if (wr) {
            fprintf(stderr, "tracc attn: %s\n", err.s);
            goto done;
        }
    }
    if (json) {
        json_t *j = attn_json(&am, names);
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        for (int i = 0; i < am.nheads; i++) {
            printf("%s%s\n", i ? "\n" : "", am.head_names[i]);
            for (int w = 0; w < am.nmodels; w++) {
                printf(" %s\n", names[w]);
                print_matrix(&am, w, i, stdout);
            }
            if (am.nmodels == 2) {
                double mx = 0, tv = 0;
                int mq = 0, mk = 0;
                for (int q = 1; q < am.T; q++) {
                    double rowtv = 0;
                    for (int k = 0; k < am.T; k++) {
                        double dd = fabs((double)attn_weight(&am, 1, i, q, k) - attn_weight(&am, 0, i, q, k));
                        rowtv += dd;
                        if (dd > mx) {
                            mx = dd;
                            mq = q;
                            mk = k;
                        }
                    }
                    tv += rowtv / 2;
                }
                if (mx < 1e-4)
                    printf(" unchanged (no attention weight moves by 0.01 points or more)\n");
                else
                    printf(" largest change: query %d (%s), key %d (%s): %.1f%% -> %.1f%%; mean total-variation "
                           "distance per query %.4f\n",
                           mq, am.labels[mq], mk, am.labels[mk], 100 * attn_weight(&am, 0, i, mq, mk),
                           100 * attn_weight(&am, 1, i, mq, mk), am.T > 1 ? tv / (am.T - 1) : 0);
            }
        }
        if (am.nheads == 0) printf("no heads to show\n");
    }
    rc = 0;
done:
    attn_free(&am);
    input_free(&in);
    if (p) rasp_free(p);
    if (d) diag_free(d);
    model_free(a);
    model_free(b);
    sb_free(&err);
    return rc;
}
