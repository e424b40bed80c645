/* cmd_attn.c — `tracc attn [options] MODEL [MODEL2] TOKENS...`: every head's
 * attention pattern on one input, for one model or two side by side, with the program's own
 * selection marked (analysis/attn.h). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analysis/attn.h"
#include "analysis/diff.h"
#include "analysis/readout.h"
#include "analysis/report.h"
#include "cli/cli.h"
#include "cli/clio.h"
#include "common/outfile.h"
#include "compiler/front/diag.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc attn [options] MODEL [MODEL2] TOKENS...\n"
            "       tracc attn --inputs N [options] MODEL MODEL2\n"
            "\n"
            "Print the attention pattern of every head the program uses (rows: the attending\n"
            "query position, columns: the key it attends to, each labelled I:TOKEN with the\n"
            "token's RASP index; weights in percent, '.' below 0.5%%) for one input, with '*'\n"
            "where the program's selector selects (from the reference interpreter). A second\n"
            "argument that is a model file (by its first bytes or its .safetensors name) is a\n"
            "second model (e.g. the fine-tuned copy), shown after the first with the largest\n"
            "change. Without TOKENS the input is the first line of standard input.\n"
            "Options may come anywhere; tokens that begin with '-' go after `--`.\n"
            "\n"
            "With --inputs N, instead: how each head's attention moved from MODEL to MODEL2 over\n"
            "N sampled inputs of the training length (the program's max_len), measured as\n"
            "`tracc diff --inputs` measures it: per query row the total-variation distance\n"
            "between the two rows (0 the same, 1 disjoint), its mean and max over the rows, and\n"
            "the share of rows whose most-attended key moved.\n"
            "\n"
            "options:\n"
            "  --block L        only block L (0-based)\n"
            "  --head H         only head H of each block (with neither: every head the\n"
            "                   model's `layers` metadata describes)\n"
            "  --hard           hard attention (as `tracc run --hard`)\n"
            "  --program FILE   the program whose selectors are marked (default: the one the\n"
            "                   model carries); --no-program: mark nothing\n"
            "  --svg FILE       also draw the patterns as heatmaps (positions on both axes)\n"
            "  --inputs N       summarise every head over N sampled inputs (two models)\n"
            "  --len N|MIN-MAX  with --inputs: input lengths (default: the program's max_len)\n"
            "  --at I[,J,K-L]   with --inputs: compare only the query rows at these RASP\n"
            "                   indices (default: every position)\n"
            "  --seed S         with --inputs: sample seed (default: 1, as diff's)\n"
            "  --json           print the patterns (or the summary) as one JSON object\n"
            "  --check-only     check the options and exit 0 (no file is loaded or\n"
            "                   written; used by `tracc sweep plan`)\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 done, 1 error in a file or an input, 2 usage (no input tokens included).\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("attn", msg, arg); }

static void print_matrix(const AttnMaps *am, int w, int i, FILE *f)
{
    char **lab = xcalloc((size_t)am->T, sizeof(char *));
    StrBuf b;
    sb_init(&b);
    int width = 4;
    for (int t = 0; t < am->T; t++) {
        sb_clear(&b);
        attn_axis_label(am, t, &b);
        lab[t] = xstrdup(b.s);
        int l = (int)strlen(lab[t]) + 1;
        if (l > width) width = l;
    }
    sb_free(&b);
    if (width > 12) width = 12;
    fprintf(f, "  %-*s", width, "");
    for (int k = 0; k < am->T; k++) fprintf(f, "%*.*s", width + 1, width, lab[k]);
    fprintf(f, "\n");
    for (int q = 0; q < am->T; q++) {
        fprintf(f, "  %-*.*s", width, width, lab[q]);
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
    for (int t = 0; t < am->T; t++) free(lab[t]);
    free(lab);
}

static void print_summary(const AttnSummary *s, const char *pa, const char *pb, FILE *f)
{
    fprintf(f, "attention change from %s to %s over %ld sampled inputs of length %d", pa, pb, s->ninputs, s->len_min);
    if (s->len_max != s->len_min) fprintf(f, "-%d", s->len_max);
    fprintf(f, " (seed %llu, ", (unsigned long long)s->seed);
    if (s->nat == 0) {
        fprintf(f, "every position)\n");
    } else {
        fprintf(f, "queries at index");
        for (int i = 0; i < s->nat; i++) fprintf(f, "%s%d", i ? "," : " ", s->at[i]);
        fprintf(f, ")\n");
    }
    fprintf(f, "per query row: total-variation distance between the two models' rows (0 the same, 1 disjoint),\n"
               "mean and max over the rows; and the share of rows whose most-attended key moved\n");
    fprintf(f, "  %-8s %-8s %-8s %s\n", "mean TV", "max TV", "moved", "head");
    for (int i = 0; i < s->nheads; i++) {
        char pct[32];
        rep_pct(s->moved[i], pct, sizeof pct);
        fprintf(f, "  %-8.4f %-8.4f %-8s %s\n", s->mean_tv[i], s->max_tv[i], pct, s->head_names[i]);
    }
    if (s->nheads == 0) fprintf(f, "no heads to show\n");
}

/* --inputs: the summary of the two models over sampled inputs. */
static int run_summary(const Model *a, const Model *b, const char *pa, const char *pb, long block, long head,
                       long n, const char *len_s, const char *at_s, uint64_t seed, int json)
{
    StrBuf err;
    sb_init(&err);
    Diag *d = diag_new();
    RaspProgram *p = NULL;
    AttnSummary s;
    memset(&s, 0, sizeof s);
    int rc = 1;
    DiffInputOptions io = DIFF_INPUT_OPTIONS_DEFAULT;
    int *at = NULL;
    if (!(p = rep_load_program(a, NULL, d, &err))) {
        diag_print(d, stderr);
        fprintf(stderr, "tracc attn: --inputs needs the program %s carries%s%s\n", pa, err.len ? ": " : "", err.s);
        goto done;
    }
    at = xmalloc(sizeof(int) * (size_t)(p->max_len + 1));
    if ((len_s && ro_parse_len(len_s, p->max_len, &io.len_min, &io.len_max, &err)) ||
        (at_s && (io.nat = ro_parse_at(at_s, p->max_len, at, &err)) < 0)) {
        fprintf(stderr, "tracc attn: %s\n", err.s);
        goto done;
    }
    io.n = n;
    io.seed = seed;
    io.at = at;
    if (attn_summary(&s, a, b, p, (int)block, (int)head, &io, &err)) {
        fprintf(stderr, "tracc attn: %s\n", err.s);
        goto done;
    }
    const char *names[2] = {pa, pb};
    if (json) {
        print_json_object(stdout, attn_summary_json(&s, names), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    } else {
        print_summary(&s, pa, pb, stdout);
    }
    rc = 0;
done:
    free(at);
    attn_summary_free(&s);
    if (p) rasp_free(p);
    diag_free(d);
    sb_free(&err);
    return rc;
}

int cmd_attn(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"block", required_argument, NULL, 'b'}, {"head", required_argument, NULL, 'H'},
        {"hard", no_argument, NULL, 'x'},        {"program", required_argument, NULL, 'p'},
        {"no-program", no_argument, NULL, 'P'},  {"svg", required_argument, NULL, 'g'},
        {"inputs", required_argument, NULL, 'n'}, {"len", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},  {"at", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'}, {"check-only", no_argument, NULL, 1000},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    long block = -1, head = -1, ninputs = 0;
    uint64_t seed = 1;
    int hard = 0, json = 0, noprog = 0, seed_given = 0, check_only = 0, c;
    const char *svg = NULL, *prog_path = NULL, *len_s = NULL, *at_s = NULL;
    opterr = 0;
    optind = 1;
    /* options anywhere (getopt permutes); tokens that begin with '-' go after "--" */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
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
        case 'n':
            if (cli_parse_long(optarg, 1, 100000000, &ninputs))
                return bad_usage("--inputs expects a positive count, got '%s'", optarg);
            break;
        case 'l': len_s = optarg; break;
        case 'a': at_s = optarg; break;
        case 's':
            if (cli_parse_u64(optarg, &seed)) return bad_usage("--seed expects a non-negative integer, got '%s'", optarg);
            seed_given = 1;
            break;
        case 'j': json = 1; break;
        case 1000: check_only = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("attn", c, argv);
        }
    }
    if (optind >= argc) return bad_usage("expected a model file%s", "");
    if (noprog && prog_path) return bad_usage("--program and --no-program exclude each other%s", "");
    if (!ninputs && (len_s || at_s || seed_given)) return bad_usage("--len, --at and --seed need --inputs N%s", "");
    if ((c = cli_check_len_at("attn", len_s, at_s))) return c;
    if (ninputs && (svg || hard || prog_path || noprog))
        return bad_usage("--inputs summarises heads: --svg, --hard, --program and --no-program apply to one input%s", "");
    if (ninputs && argc - optind != 2)
        return bad_usage("--inputs N compares two models: give MODEL and MODEL2, and no tokens%s", "");
    if (check_only) return 0;
    if (svg && cli_check_output("attn", "--svg", svg)) return 1;   /* before any work */
    const char *pa = argv[optind++], *pb = NULL;
    if (cli_check_input("attn", NULL, pa, CLI_WANT_MODEL)) return 1;
    if (ninputs) {
        pb = argv[optind++];
        if (cli_check_input("attn", NULL, pb, CLI_WANT_MODEL)) return 1;
    } else if (optind < argc && (cli_ends_with(argv[optind], ".safetensors") || cli_is_model_file(argv[optind]))) {
        pb = argv[optind++];
        if (cli_check_input("attn", NULL, pb, CLI_WANT_MODEL)) return 1;
    }
    if (!ninputs && optind >= argc && isatty(STDIN_FILENO))
        return bad_usage("no input tokens: give them after the model%s, or on standard input", pb ? "s" : "");
    if (prog_path && cli_check_input("attn", "--program", prog_path, CLI_WANT_PROGRAM)) return 1;

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
    if (ninputs) {
        rc = run_summary(a, b, pa, pb, block, head, ninputs, len_s, at_s, seed, json);
        goto done;
    }
    if (!input_next(&in, &toks, &ntoks) || (ntoks == 0 && !in.has_nul)) {
        rc = bad_usage("no input tokens: give them after the model%s, or on standard input", pb ? "s" : "");
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
        print_json_object(stdout, attn_json(&am, names), JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
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
                if (mx < 1e-4) {
                    printf(" unchanged on this input (no attention weight moves by 0.01 points or more;\n"
                           " --inputs N measures the change over N sampled inputs of the training length)\n");
                } else {
                    StrBuf lq, lk;
                    sb_init(&lq);
                    sb_init(&lk);
                    attn_axis_label(&am, mq, &lq);
                    attn_axis_label(&am, mk, &lk);
                    printf(" largest change: query %s, key %s: %.1f%% -> %.1f%%; mean total-variation "
                           "distance per query %.4f\n",
                           lq.s, lk.s, 100 * attn_weight(&am, 0, i, mq, mk), 100 * attn_weight(&am, 1, i, mq, mk),
                           am.T > 1 ? tv / (am.T - 1) : 0);
                    sb_free(&lq);
                    sb_free(&lk);
                }
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
