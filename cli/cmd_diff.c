/* cmd_diff.c — `tracc diff BEFORE AFTER`: what changed between a compiled model and its
 * fine-tuned descendant, in the program's terms (analysis/diff.h does the work). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/diff.h"
#include "analysis/readout.h"
#include "analysis/report.h"
#include "cli/cli.h"
#include "common/outfile.h"
#include "compiler/front/diag.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc diff [options] BEFORE AFTER\n"
            "\n"
            "What changed between two models with the same compiled structure (typically a\n"
            "compiled model and a fine-tuned copy), named in the program's terms: each head's\n"
            "QK form (query label x key label) and OV map (source label -> destination label),\n"
            "each MLP map's reads and writes, embeddings by token and position, the unembed by\n"
            "output value. Lists the components by size of change, the largest changed entries,\n"
            "the new pathways (entries exactly zero in BEFORE), and how much of the change reads\n"
            "from and writes into each s-op's residual dimensions. See docs/analysis.md.\n"
            "\n"
            "options:\n"
            "  --top N          entries in each list (default: 20)\n"
            "  --inputs N       also run both models on N sampled inputs: per s-op, agreement\n"
            "                   with the interpreter when read from the residual; per head, the\n"
            "                   change of the attention pattern; output agreement (default: 0)\n"
            "  --len N|MIN-MAX  input lengths for --inputs (default: the model's max_len)\n"
            "  --at I[,J,K-L]   compare only at these RASP indices (default: every position)\n"
            "  --seed S         input sampling seed (default: 1)\n"
            "  --svg FILE       heatmaps (BEFORE, AFTER, change) of the most changed components\n"
            "  --svg-components N  how many components the SVG shows (default: 6)\n"
            "  --tensors        the raw weights only, tensor by tensor (||dW||, ||W||, max|d|), for\n"
            "                   any two models of the same sizes: e.g. two programs compiled to one\n"
            "                   layout, whose labels differ (no other option but --json)\n"
            "  --json           print the result as one JSON object\n"
            "  --check-only   check the options and exit 0 (no file is loaded or\n"
            "                 written; used by `tracc sweep plan`)\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 done, 1 error (unreadable files, different structures), 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("diff", msg, arg); }

static void print_num(FILE *f, double x)
{
    if (x == 0)
        fprintf(f, "0");
    else
        fprintf(f, "%.4g", x);
}

static void short_sha(const char *s, char *buf)
{
    snprintf(buf, 13, "%.12s", s && s[0] ? s : "?");
}

static void print_tensors(const DiffResult *r, FILE *f)
{
    fprintf(f, "\nby tensor (TransformerLens names; only those that changed)\n");
    fprintf(f, "  %-24s %-10s %-10s %s\n", "tensor", "||dW||", "||W||", "max|d|");
    for (int t = 0; t < r->ntensors; t++) {
        const DiffTensor *dt = &r->tensors[t];
        if (dt->norm_delta == 0) continue;
        fprintf(f, "  %-24s %-10.4g %-10.4g ", dt->name, dt->norm_delta, dt->norm_before);
        print_num(f, dt->max_abs);
        fprintf(f, "\n");
    }
}

/* --tensors: the raw weights only */
static void print_tensor_norms(const DiffResult *r, const char *pa, const char *pb, FILE *f)
{
    char s1[16], s2[16], pct[32];
    short_sha(r->before_sha, s1);
    short_sha(r->after_sha, s2);
    fprintf(f, "BEFORE   %s  (sha256 %s...)\nAFTER    %s  (sha256 %s...)\n", pa, s1, pb, s2);
    rep_pct(r->norm_before > 0 ? r->norm_delta / r->norm_before : NAN, pct, sizeof pct);
    fprintf(f, "\nweights: %ld of %ld parameters differ; ||dW|| %.4g, ||W|| %.4g (relative %s)\n", r->nchanged,
            r->nparams, r->norm_delta, r->norm_before, pct);
    if (r->nchanged) print_tensors(r, f);
}

static void print_text(const DiffResult *r, const Model *a, const char *pa, const char *pb, int top, FILE *f)
{
    char s1[16], s2[16], pct[32];
    short_sha(r->before_sha, s1);
    short_sha(r->after_sha, s2);
    fprintf(f, "BEFORE   %s  (sha256 %s...)\n", pa, s1);
    fprintf(f, "AFTER    %s  (sha256 %s...", pb, s2);
    if (r->provenance_names_before == 1)
        fprintf(f, ", trained from BEFORE");
    else if (r->provenance_names_before == 0)
        fprintf(f, ", trained from another file");
    else
        fprintf(f, ", no training provenance");
    fprintf(f, ")\n");
    char ps[16];
    short_sha(a->program_sha256, ps);
    fprintf(f, "program  sha256 %s..., output %s; %d blocks, d_model %d, %d head%s per block, d_mlp %d\n",
            ps, a->output_name ? a->output_name : "?", a->cfg.n_layers, a->cfg.d_model, a->cfg.n_heads,
            a->cfg.n_heads == 1 ? "" : "s", a->cfg.d_mlp);
    rep_pct(r->norm_before > 0 ? r->norm_delta / r->norm_before : NAN, pct, sizeof pct);
    fprintf(f, "\nweights: %ld of %ld parameters changed; ||dW|| %.4g, ||W|| %.4g (relative %s)\n", r->nchanged,
            r->nparams, r->norm_delta, r->norm_before, pct);
    if (r->nchanged == 0) {
        fprintf(f, "the two models have identical weights\n");
        return;
    }

    fprintf(f, "\ncomponents, most changed first (QK in attention-logit units)\n");
    fprintf(f, "  %-10s %-10s %-8s %-9s %-10s %-8s %-8s %s\n", "||dW||", "||W||", "rel", "cosine", "max|d|",
            "changed", "new", "component");
    int unchanged = 0;
    for (int i = 0; i < r->ncomp; i++) {
        const DiffComponent *c = &r->comp[r->order[i]];
        if (c->norm_delta == 0) {
            unchanged++;
            continue;
        }
        rep_pct(c->norm_before > 0 ? c->norm_delta / c->norm_before : NAN, pct, sizeof pct);
        if (c->norm_before == 0) snprintf(pct, sizeof pct, "new");
        fprintf(f, "  %-10.4g %-10.4g %-8s %-9.6f %-10.4g %-8ld %-8ld %s\n", c->norm_delta, c->norm_before, pct,
                c->cosine, c->max_abs, c->changed, c->new_paths, c->name);
    }
    if (unchanged) fprintf(f, "  (%d component%s unchanged)\n", unchanged, unchanged == 1 ? "" : "s");

    StrBuf b;
    sb_init(&b);
    fprintf(f, "\nlargest changes in program coordinates (%ld changed entries in all)\n", r->nentries);
    fprintf(f, "  %4s  %-11s %-11s %-11s %s\n", "#", "before", "after", "change", "entry");
    for (int i = 0; i < r->ntop && i < top; i++) {
        const DiffEntry *e = &r->top[i];
        sb_clear(&b);
        diff_entry_name(r, e, &b);
        fprintf(f, "  %4d  %-11.5g %-11.5g %-+11.4g %s\n", i + 1, e->before, e->after, e->after - e->before, b.s);
    }
    fprintf(f, "\nnew pathways: entries exactly 0 in BEFORE, largest first (%ld in all)\n", r->nfresh_all);
    if (r->nfresh == 0) fprintf(f, "  (none: every change is on a pathway the program already has)\n");
    for (int i = 0; i < r->nfresh && i < top; i++) {
        const DiffEntry *e = &r->fresh[i];
        sb_clear(&b);
        diff_entry_name(r, e, &b);
        fprintf(f, "  %4d  0 -> %-11.5g %s\n", i + 1, e->after, b.s);
    }
    sb_free(&b);

    fprintf(f, "\nwhere the change lies: share of the summed squared change that reads from /\n"
               "writes into each s-op's residual dimensions ((bias): bias rows)\n");
    fprintf(f, "  %-20s %-9s %s\n", "s-op", "reads", "writes");
    for (int i = 0; i < r->nsub; i++) {
        char rp[32], wp[32];
        rep_pct(r->read_total > 0 ? r->sub[i].read_sq / r->read_total : 0, rp, sizeof rp);
        rep_pct(r->write_total > 0 ? r->sub[i].write_sq / r->write_total : 0, wp, sizeof wp);
        fprintf(f, "  %-20s %-9s %s\n", r->sub[i].name, rp, wp);
    }

    print_tensors(r, f);

    if (r->inputs) {
        const DiffInputs *in = r->inputs;
        fprintf(f, "\non %ld sampled inputs (length %d", in->ninputs, in->len_min);
        if (in->len_max != in->len_min) fprintf(f, "-%d", in->len_max);
        fprintf(f, ", seed %llu, ", (unsigned long long)in->seed);
        if (in->nat == 0) {
            fprintf(f, "every position)\n");
        } else {
            fprintf(f, "at index");
            for (int i = 0; i < in->nat; i++) fprintf(f, "%s%d", i ? "," : " ", in->at[i]);
            fprintf(f, ")\n");
        }
        fprintf(f, "  does the model still compute each s-op? (decoded from the residual where it is\n"
                   "  written, compared with the interpreter)\n");
        fprintf(f, "  %-20s %-20s %-9s %s\n", "s-op", "read after", "BEFORE", "AFTER");
        for (int i = 0; i < in->nsops; i++) {
            const DiffSopStat *s = &in->sops[i];
            if (!s->readable) {
                fprintf(f, "  %-20s %-20s (not in the residual: fused into the ops that read it)\n", s->name, "-");
                continue;
            }
            char b1[32], b2[32];
            rep_pct(s->n ? (double)s->agree_before / s->n : NAN, b1, sizeof b1);
            rep_pct(s->n ? (double)s->agree_after / s->n : NAN, b2, sizeof b2);
            char where[64];
            snprintf(where, sizeof where, "%s%s", s->where, s->isvirtual ? " (form)" : "");
            fprintf(f, "  %-20s %-20s %-9s %s\n", s->name, where, b1, b2);
        }
        char o1[32], o2[32], o3[32];
        rep_pct(in->out_n ? (double)in->out_before / in->out_n : NAN, o1, sizeof o1);
        rep_pct(in->out_n ? (double)in->out_after / in->out_n : NAN, o2, sizeof o2);
        rep_pct(in->out_n ? (double)in->out_models / in->out_n : NAN, o3, sizeof o3);
        fprintf(f, "  output: BEFORE agrees with the program at %s of %ld positions, AFTER at %s;\n"
                   "          AFTER gives BEFORE's answer at %s\n",
                o1, in->out_n, o2, o3);
        fprintf(f, "  attention change per head (total-variation distance per query row: mean, max;\n"
                   "  share of rows whose most-attended key moved)\n");
        for (int i = 0; i < in->nheads; i++) {
            const DiffHeadStat *h = &in->heads[i];
            char mv[32];
            rep_pct(h->rows ? (double)h->argmax_moved / (double)h->rows : NAN, mv, sizeof mv);
            fprintf(f, "    %-8.4f %-8.4f %-8s %s\n", h->mean_tv, h->max_tv, mv, h->name);
        }
    }
}

/* AFTER was fine-tuned from BEFORE with initial noise: its weight changes are mostly that noise.
 * One line (stderr) naming how to get the noised start to diff against instead. */
static void init_noise_notice(const Model *b, const char *sha_a, const char *pa, const char *pb)
{
    json_t *prov = b->provenance;
    json_t *noise = json_object_get(json_object_get(prov, "config"), "init_noise");
    const char *parent = json_string_value(json_object_get(prov, "parent_sha256"));
    if (!json_is_number(noise) || !(json_number_value(noise) > 0) || !parent || strcmp(parent, sha_a)) return;
    fprintf(stderr,
            "tracc diff: note: %s was fine-tuned from %s after adding init noise (sigma %g), so these changes are "
            "mostly that noise; to see what training changed, diff against the noised start: rerun its `tracc "
            "finetune` command with --save-init START.safetensors (or --steps 0 -o START.safetensors: the noise "
            "depends only on --seed) and run `tracc diff START.safetensors %s`\n",
            pb, pa, json_number_value(noise), pb);
}

/* BEFORE is AFTER's noised start (finetune --save-init, or --steps 0 with the same noise):
 * no steps, the same parent, and the settings the noise depends on. */
static int is_noised_start(const Model *a, const Model *b)
{
    json_t *pa = a->provenance, *pb = b->provenance;
    json_t *ca = json_object_get(pa, "config"), *cb = json_object_get(pb, "config");
    const char *keys[] = {"seed", "init_noise", "train", "freeze"};
    if (!json_is_object(ca) || !json_is_object(cb) || json_integer_value(json_object_get(pa, "steps")) != 0 ||
        !json_is_integer(json_object_get(pa, "steps")) ||
        !json_equal(json_object_get(pa, "parent_sha256"), json_object_get(pb, "parent_sha256")))
        return 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!json_equal(json_object_get(ca, keys[i]), json_object_get(cb, keys[i]))) return 0;
    return 1;
}

int cmd_diff(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"top", required_argument, NULL, 't'},   {"inputs", required_argument, NULL, 'n'},
        {"len", required_argument, NULL, 'l'},   {"at", required_argument, NULL, 'a'},
        {"seed", required_argument, NULL, 's'},  {"svg", required_argument, NULL, 'g'},
        {"svg-components", required_argument, NULL, 'G'},
        {"json", no_argument, NULL, 'j'}, {"check-only", no_argument, NULL, 1000}, {"tensors", no_argument, NULL, 1001},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    long top = 20, ninputs = 0, svgn = 6;
    uint64_t seed = 1;
    const char *len_s = NULL, *at_s = NULL, *svg = NULL;
    int json = 0, check_only = 0, tensors = 0, c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (cli_parse_long(optarg, 1, 1000000, &top)) return bad_usage("--top expects a positive count, got '%s'", optarg);
            break;
        case 'n':
            if (cli_parse_long(optarg, 0, 100000000, &ninputs))
                return bad_usage("--inputs expects a count, got '%s'", optarg);
            break;
        case 'l': len_s = optarg; break;
        case 'a': at_s = optarg; break;
        case 's':
            if (cli_parse_u64(optarg, &seed)) return bad_usage("--seed expects a non-negative integer, got '%s'", optarg);
            break;
        case 'g': svg = optarg; break;
        case 'G':
            if (cli_parse_long(optarg, 1, 1000, &svgn))
                return bad_usage("--svg-components expects a count 1..1000, got '%s'", optarg);
            break;
        case 'j': json = 1; break;
        case 1000: check_only = 1; break;
        case 1001: tensors = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("diff", c, argv);
        }
    }
    if (argc - optind != 2) return bad_usage("expected two model files, BEFORE and AFTER%s", "");
    if (tensors && (ninputs || len_s || at_s || svg))
        return bad_usage("--tensors compares raw weights only: no --inputs, --len, --at or --svg%s", "");
    if ((len_s || at_s) && ninputs == 0) return bad_usage("--len and --at need --inputs N%s", "");
    if ((c = cli_check_len_at("diff", len_s, at_s))) return c;
    if (check_only) return 0;
    if (svg && cli_check_output("diff", "--svg", svg)) return 1;   /* before any work */
    const char *pa = argv[optind], *pb = argv[optind + 1];
    if (cli_check_input("diff", NULL, pa, CLI_WANT_MODEL) || cli_check_input("diff", NULL, pb, CLI_WANT_MODEL)) return 1;

    StrBuf err;
    sb_init(&err);
    int rc = 1;
    Model *a = NULL, *b = NULL;
    DiffResult *r = NULL;
    RaspProgram *p = NULL;
    Diag *d = NULL;
    char sha_a[65], sha_b[65];
    if (!(a = model_load_hashed(pa, sha_a, &err)) || !(b = model_load_hashed(pb, sha_b, &err))) {
        fprintf(stderr, "tracc diff: %s\n", err.s);
        goto done;
    }
    if (tensors) {
        DiffOptions o = DIFF_OPTIONS_DEFAULT;
        o.before_sha = sha_a;
        o.after_sha = sha_b;
        if (!(r = diff_tensor_norms(a, b, &o, &err))) {
            fprintf(stderr, "tracc diff: %s and %s: %s\n", pa, pb, err.s);
            goto done;
        }
        if (json) {
            json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:f, s:f, s:o}", "before", pa, "after", pb,
                                  "before_sha256", sha_a, "after_sha256", sha_b, "params", (json_int_t)r->nparams,
                                  "params_changed", (json_int_t)r->nchanged, "norm_before", r->norm_before,
                                  "norm_delta", r->norm_delta, "tensors", diff_tensors_json(r));
            char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
            printf("%s\n", s);
            free(s);
            json_decref(j);
        } else {
            print_tensor_norms(r, pa, pb, stdout);
        }
        rc = 0;
        goto done;
    }
    StrBuf why;
    sb_init(&why);
    if (diff_compatible(a, b, &why)) {
        fprintf(stderr, "tracc diff: %s and %s do not share their compiled structure:\n", pa, pb);
        for (char *line = strtok(why.s, "\n"); line; line = strtok(NULL, "\n")) fprintf(stderr, "  %s\n", line);
        sb_free(&why);
        goto done;
    }
    sb_free(&why);
    /* option values that depend on the model */
    int maxlen = a->cfg.n_ctx - 1, lo = 0, hi = 0, nat = 0;
    int *at = xmalloc(sizeof(int) * (size_t)(maxlen + 1));
    if ((len_s && ro_parse_len(len_s, maxlen, &lo, &hi, &err)) ||
        (at_s && (nat = ro_parse_at(at_s, maxlen, at, &err)) < 0)) {
        fprintf(stderr, "tracc diff: %s\n", err.s);
        free(at);
        goto done;
    }
    DiffOptions o = DIFF_OPTIONS_DEFAULT;
    o.top = (int)top;
    o.before_sha = sha_a;
    o.after_sha = sha_b;
    if (!(r = diff_weights(a, b, &o, &err))) {
        fprintf(stderr, "tracc diff: %s\n", err.s);
        free(at);
        goto done;
    }
    if (r->provenance_names_before == 0 && is_noised_start(a, b))
        fprintf(stderr, "tracc diff: note: %s is the noised start of %s's run (same parent, --seed and "
                        "--init-noise): the changes are training's\n", pa, pb);
    else if (r->provenance_names_before == 0)
        fprintf(stderr, "tracc diff: warning: %s was trained from a file with sha256 %.12s..., not from %s (%.12s...)\n",
                pb, r->provenance_parent, pa, sha_a);
    else if (r->provenance_names_before < 0)
        fprintf(stderr, "tracc diff: warning: %s has no training provenance naming %s\n", pb, pa);
    init_noise_notice(b, sha_a, pa, pb);
    if (r->program_differs)
        fprintf(stderr, "tracc diff: warning: the two models carry different program texts (same structure)\n");
    if (ninputs > 0) {
        d = diag_new();
        if (!(p = rep_load_program(a, NULL, d, &err))) {
            diag_print(d, stderr);
            fprintf(stderr, "tracc diff: --inputs needs the program %s carries%s%s\n", pa, err.len ? ": " : "", err.s);
            free(at);
            goto done;
        }
        DiffInputOptions io = DIFF_INPUT_OPTIONS_DEFAULT;
        io.n = ninputs;
        io.seed = seed;
        io.len_min = lo;
        io.len_max = hi;
        io.nat = nat;
        io.at = at;
        if (diff_inputs(r, a, b, p, &io, &err)) {
            fprintf(stderr, "tracc diff: %s\n", err.s);
            free(at);
            goto done;
        }
    }
    free(at);
    if (svg) {
        StrBuf doc, title;
        sb_init(&doc);
        sb_init(&title);
        sb_printf(&title, "tracc diff %s -> %s", pa, pb);
        diff_svg(r, (int)svgn, title.s, &doc);
        int wr = of_write(svg, doc.s, doc.len, &err);
        sb_free(&doc);
        sb_free(&title);
        if (wr) {
            fprintf(stderr, "tracc diff: %s\n", err.s);
            goto done;
        }
    }
    if (json) {
        json_t *j = diff_json(r);
        json_object_set_new(j, "before", json_string(pa));
        json_object_set_new(j, "after", json_string(pb));
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    } else {
        print_text(r, a, pa, pb, (int)top, stdout);
    }
    rc = 0;
done:
    if (d) diag_free(d);
    if (p) rasp_free(p);
    diff_free(r);
    model_free(a);
    model_free(b);
    sb_free(&err);
    return rc;
}
