/* cmd_run.c — `tracc run`: run a model file on inputs, with the input and output
 * conventions of `tracc eval` (cli/clio.h) so that the two can be diffed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clio.h"
#include "runtime/decode.h"
#include "runtime/forward.h"
#include "runtime/model.h"

#define RUN_BATCH 256   /* stdin inputs run through the model together */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc run [options] MODEL [TOKENS...]\n"
            "\n"
            "Run a model file (.safetensors written by tracc) on inputs. The tokens on the\n"
            "command line form one input; without them, each line of standard input is one\n"
            "input (tokens separated by spaces, or one JSON array with --input-format json).\n"
            "Prints the decoded output at every input\n"
            "position, one line per input: values separated by spaces, None for no value.\n"
            "BOS is added in front of every input; BOS and PAD cannot be given as tokens.\n"
            "\n"
            "options:\n"
            "  --json        one JSON array per input (null where there is no value)\n"
            "  --trace       after the embedding and after every block, decode every s-op\n"
            "                named in the residual labels, and every s-op the compiler fused\n"
            "                into its readers, through its linear form (marked 'virtual');\n"
            "                a table per input; with --json, one object per input\n"
            "  --hard        hard attention: uniform over the keys with the largest logit\n"
            "                (default: softmax)\n"
            "  --blocks K    run only the first K blocks and decode the output there\n"
            "                (default: all blocks)\n"
            "  --input-format text|json\n"
            "                how standard input gives the inputs: text, whitespace-separated\n"
            "                tokens; json, one JSON array of tokens per line, e.g.\n"
            "                [\"x y\", \"a\\\"b\"] or [1, 2] (strings are tokens as they are,\n"
            "                numbers stand for their text) (default: text)\n"
            "  -h, --help    show this help\n"
            "\n"
            "Options may come anywhere; tokens that begin with '-' (negative integers) go\n"
            "after `--` (tracc run MODEL -- -1 2).\n"
            "\n"
            "Exit status: 0 ok, 1 error in the model or an input, 2 usage.\n");
}

typedef struct {
    int json, trace, hard, blocks;
    int injson;         /* --input-format json */
} RunOpts;

/* One pending input: its tokens' rows (BOS first) and, for --trace, their text. */
typedef struct {
    int n;              /* input tokens, BOS excluded */
    int32_t *ids;       /* (n + 1) */
} Pending;

typedef struct {
    const Model *m;
    RunOpts o;
    FwdState fwd;
    DecLayout layout;
    Pending *items;
    int count;
    int32_t *tokens;    /* (RUN_BATCH, n_ctx) */
    int *lens;
    Value *row;         /* (n_ctx) */
    int printed;        /* inputs printed so far (for the blank line between traces) */
} Runner;

/* The typed value of a categorical label's value text, for --json --trace. Tokens and
 * the output take their types from the vocab and output values; other s-ops' values are
 * read back from their text (integers, floats, true/false, else strings). */
static Value typed_value(const Model *m, const DecSop *s, Value text)
{
    if (text.kind != VAL_STR) return text;
    const char *t = text.u.s;
    StrBuf b;
    sb_init(&b);
    Value found = val_none();
    int hit = 0;
    if (!strcmp(s->name, "tokens")) {
        int row = model_token_row(m, t);
        if (row >= 0) found = m->vocab[row], hit = 1;
    } else if (!strcmp(s->name, m->output_name) && !m->output_numerical) {
        for (int i = 0; i < m->cfg.d_vocab_out && !hit; i++) {
            sb_clear(&b);
            model_value_text(m->output_values[i], &b);
            if (!strcmp(b.s, t)) found = m->output_values[i], hit = 1;
        }
    }
    sb_free(&b);
    if (hit) return found;
    if (!strcmp(t, "true") || !strcmp(t, "false")) return val_bool(t[0] == 't');
    char *end;
    long long i = strtoll(t, &end, 10);
    if (*t && !*end) return val_int(i);
    double d = strtod(t, &end);
    if (*t && !*end && strpbrk(t, ".eEn")) return val_float(d);
    return text;
}

/* ---------------------------------------------------------------- running */

static void print_trace_text(Runner *r, int b, const Pending *p, Value *vals)
{
    const Model *m = r->m;
    TraceTable t = {0};
    for (int i = 0; i < p->n; i++) vals[i] = val_int(i);
    trace_table_row(&t, "", vals, p->n);
    for (int i = 0; i < p->n; i++) vals[i] = m->vocab[p->ids[i + 1]];
    trace_table_row(&t, "input", vals, p->n);
    for (int k = 0; k <= r->fwd.n_blocks; k++) {
        char title[64];
        if (k == 0) snprintf(title, sizeof title, "after the embedding:");
        else snprintf(title, sizeof title, "after block %d:", k - 1);
        trace_table_section(&t, title);
        const float *res = fwd_resid_stage(&r->fwd, 2 * k) + (size_t)b * r->fwd.T * m->cfg.d_model;
        for (int s = 0; s < r->layout.nsops; s++) {
            const DecSop *sop = &r->layout.sops[s];
            for (int i = 0; i < p->n; i++) vals[i] = dec_sop_value(sop, res + (size_t)(i + 1) * m->cfg.d_model);
            char label[256];
            snprintf(label, sizeof label, "  %s%s", sop->name, sop->isvirtual ? " (virtual)" : "");
            trace_table_row(&t, label, vals, p->n);
        }
    }
    trace_table_section(&t, "decoded:");
    for (int i = 0; i < p->n; i++)
        vals[i] = dec_output(m, r->fwd.logits + ((size_t)b * r->fwd.T + i + 1) * m->cfg.d_vocab_out);
    char label[256];
    snprintf(label, sizeof label, "  %s (output)", m->output_name);
    trace_table_row(&t, label, vals, p->n);
    if (r->printed > 0) fputc('\n', stdout);
    trace_table_print(&t, stdout);
    trace_table_free(&t);
}

static void print_trace_json(Runner *r, int b, const Pending *p, Value *vals)
{
    const Model *m = r->m;
    for (int i = 0; i < p->n; i++) vals[i] = m->vocab[p->ids[i + 1]];
    fputs("{\"input\": ", stdout);
    print_json_array(stdout, vals, p->n);
    for (int i = 0; i < p->n; i++)
        vals[i] = dec_output(m, r->fwd.logits + ((size_t)b * r->fwd.T + i + 1) * m->cfg.d_vocab_out);
    fputs(", \"output\": ", stdout);
    print_json_array(stdout, vals, p->n);
    /* which of the s-ops below are read through a linear form (compiler.virtual) */
    fputs(", \"virtual\": [", stdout);
    for (int s = 0, k = 0; s < r->layout.nsops; s++) {
        if (!r->layout.sops[s].isvirtual) continue;
        if (k++) fputs(", ", stdout);
        print_json_value(stdout, val_str(r->layout.sops[s].name));
    }
    fputs("], \"stages\": [", stdout);
    for (int k = 0; k <= r->fwd.n_blocks; k++) {
        char title[64];
        if (k == 0) snprintf(title, sizeof title, "embed");
        else snprintf(title, sizeof title, "block %d", k - 1);
        fputs(k ? ", {\"after\": " : "{\"after\": ", stdout);
        print_json_value(stdout, val_str(title));
        fputs(", \"sops\": {", stdout);
        const float *res = fwd_resid_stage(&r->fwd, 2 * k) + (size_t)b * r->fwd.T * m->cfg.d_model;
        for (int s = 0; s < r->layout.nsops; s++) {
            const DecSop *sop = &r->layout.sops[s];
            for (int i = 0; i < p->n; i++)
                vals[i] = typed_value(m, sop, dec_sop_value(sop, res + (size_t)(i + 1) * m->cfg.d_model));
            if (s) fputs(", ", stdout);
            print_json_value(stdout, val_str(sop->name));
            fputs(": ", stdout);
            print_json_array(stdout, vals, p->n);
        }
        fputs("}}", stdout);
    }
    fputs("]}\n", stdout);
}

/* Run and print every pending input. Returns 0, or 1 after an error message. */
static int flush(Runner *r)
{
    if (r->count == 0) return 0;
    const Model *m = r->m;
    int T = 1;
    for (int b = 0; b < r->count; b++)
        if (r->items[b].n + 1 > T) T = r->items[b].n + 1;
    for (int b = 0; b < r->count; b++) {
        r->lens[b] = r->items[b].n + 1;
        for (int t = 0; t < T; t++)
            r->tokens[(size_t)b * T + t] = t < r->lens[b] ? r->items[b].ids[t] : m->pad;
    }
    FwdOptions fo = FWD_OPTIONS_DEFAULT;
    fo.hard = r->o.hard;
    fo.n_blocks = r->o.blocks;
    fo.record_resid = r->o.trace;
    StrBuf err;
    sb_init(&err);
    if (fwd_forward(&r->fwd, m, r->tokens, r->lens, r->count, T, &fo, &err)) {
        fprintf(stderr, "tracc run: %s\n", err.s);
        sb_free(&err);
        return 1;
    }
    sb_free(&err);
    for (int b = 0; b < r->count; b++) {
        const Pending *p = &r->items[b];
        if (r->o.trace && r->o.json) {
            print_trace_json(r, b, p, r->row);
        } else if (r->o.trace) {
            print_trace_text(r, b, p, r->row);
        } else {
            for (int i = 0; i < p->n; i++)
                r->row[i] = dec_output(m, r->fwd.logits + ((size_t)b * T + i + 1) * m->cfg.d_vocab_out);
            print_row(stdout, r->row, p->n, r->o.json);
        }
        r->printed++;
        free(r->items[b].ids);
    }
    r->count = 0;
    fflush(stdout);
    return 0;
}

static int run_inputs(const Model *m, const RunOpts *o, int ntok, char **toks)
{
    Runner r;
    memset(&r, 0, sizeof r);
    r.m = m;
    r.o = *o;
    fwd_init(&r.fwd);
    if (o->trace) {
        dec_layout_init(&r.layout, m);
        StrBuf verr;
        sb_init(&verr);
        int skipped = dec_layout_add_virtual(&r.layout, m, &verr);
        if (skipped)
            fprintf(stderr, "tracc run: warning: %d fused s-op%s of the metadata not traced: %s\n", skipped,
                    skipped == 1 ? "" : "s", verr.s);
        sb_free(&verr);
    }
    int N = m->cfg.n_ctx;
    r.items = xcalloc(RUN_BATCH, sizeof *r.items);
    r.tokens = xmalloc(sizeof(int32_t) * RUN_BATCH * (size_t)N);
    r.lens = xmalloc(sizeof(int) * RUN_BATCH);
    r.row = xmalloc(sizeof(Value) * (size_t)N);

    InputReader in;
    input_init(&in, ntok, toks, stdin);
    in.json = o->injson;
    char **t;
    int n, rc = 0;
    StrBuf err;
    sb_init(&err);
    while (!rc && input_next(&in, &t, &n)) {
        const char *bad = input_problem(&in, n);
        if (bad) {
            rc = flush(&r);
            if (!rc) {
                sb_clear(&err);
                input_where(&in, &err);
                fprintf(stderr, "tracc run: %s%s%s\n", err.s, in.bad ? ": " : " ", bad);
            }
            rc = 1;
            break;
        }
        int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
        sb_clear(&err);
        if (model_encode(m, t, n, ids, &err)) {
            free(ids);
            rc = flush(&r);
            if (!rc) {
                if (ntok > 0) fprintf(stderr, "tracc run: %s\n", err.s);
                else fprintf(stderr, "tracc run: input line %d: %s\n", in.lineno, err.s);
            }
            rc = 1;
            break;
        }
        r.items[r.count].n = n;
        r.items[r.count].ids = ids;
        if (++r.count == RUN_BATCH) rc = flush(&r);
    }
    if (!rc) rc = flush(&r);
    for (int b = 0; b < r.count; b++) free(r.items[b].ids);
    sb_free(&err);
    input_free(&in);
    free(r.items);
    free(r.tokens);
    free(r.lens);
    free(r.row);
    if (o->trace) dec_layout_free(&r.layout);
    fwd_free(&r.fwd);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},  {"trace", no_argument, NULL, 't'},
        {"hard", no_argument, NULL, 'H'},  {"blocks", required_argument, NULL, 'b'},
        {"input-format", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},  {NULL, 0, NULL, 0},
    };
    RunOpts o = {0, 0, 0, -1, 0};
    long k;
    int c;
    optind = 0;
    opterr = 0;
    /* options anywhere (getopt permutes); tokens that begin with '-' go after "--" */
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': o.json = 1; break;
        case 't': o.trace = 1; break;
        case 'H': o.hard = 1; break;
        case 'b':
            if (cli_parse_long(optarg, 0, 1000000, &k))
                return cli_usage_error("run", "--blocks wants a number of blocks (0 or more), got '%s'", optarg);
            o.blocks = (int)k;
            break;
        case 'I':
            if ((o.injson = input_format_parse(optarg)) < 0)
                return cli_usage_error("run", "--input-format wants text or json, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("run", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("run", "%s", "no MODEL given");
    const char *path = argv[optind++];
    if (cli_check_input("run", NULL, path, CLI_WANT_MODEL)) return 1;
    StrBuf err;
    sb_init(&err);
    Model *m = model_load(path, &err);
    if (!m) {
        fprintf(stderr, "tracc run: %s\n", err.s);
        sb_free(&err);
        return 1;
    }
    sb_free(&err);
    if (o.blocks > m->cfg.n_layers) {
        fprintf(stderr, "tracc run: --blocks %d: the model has %d block%s\n", o.blocks, m->cfg.n_layers,
                m->cfg.n_layers == 1 ? "" : "s");
        model_free(m);
        return 1;
    }
    int rc = run_inputs(m, &o, argc - optind, argv + optind);
    model_free(m);
    return rc;
}
