/* cmd_probe.c — `tracc probe MODEL [--program FILE.rasp] --sop NAME --at I`: read an s-op
 * from the residual after every sub-layer, through its labels and with a trained linear
 * probe (analysis/probe.h). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/coords.h"
#include "analysis/probe.h"
#include "analysis/readout.h"
#include "analysis/report.h"
#include "cli/cli.h"
#include "compiler/front/diag.h"

#define MAX_SOPS 256

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc probe [options] MODEL [--sop NAME]...\n"
            "\n"
            "Is an s-op still computed? For each residual stage (the embedding, then each\n"
            "block's attention and MLP) report, on fresh sampled inputs:\n"
            "  direct read    the s-op decoded through the residual labels the compiler gave it\n"
            "                 (only with the model's own program), against the interpreter;\n"
            "  linear probe   a multinomial logistic regression trained on the residual with\n"
            "                 AdamW (peak lr 1e-3, tenfold decays at 50/75/87.5%% of the steps),\n"
            "                 accuracy on training and on test inputs.\n"
            "Each input gives one example: the residual at one position, drawn from --at.\n"
            "\n"
            "With --neurons, instead: how each block's MLP hidden units behave on the --test\n"
            "inputs, at every --at index (or every position): how many never fire\n"
            "(pre-activation <= 0 on every example: dead), always fire (linear there) or\n"
            "change sign, per map the compiler built and for the unused units.\n"
            "\n"
            "options:\n"
            "  --program FILE   the program whose s-op is probed (default: the model's own; another\n"
            "                   program over the same vocab gets linear probes only)\n"
            "  --sop NAME       the s-op (repeatable; default: every named s-op and the output)\n"
            "  --at I[,J,K-L]   RASP indices to read at (default: every position)\n"
            "  --len N|MIN-MAX  input lengths (default: the model's max_len)\n"
            "  --train N        training inputs (default: 2000)\n"
            "  --test N         test inputs (default: 1000)\n"
            "  --steps N        AdamW steps; 0 = direct read only (default: 4000)\n"
            "  --batch N        examples per step (default: 128)\n"
            "  --lr LR          peak learning rate (default: 0.001)\n"
            "  --weight-decay W (default: 0.01)\n"
            "  --seed S         inputs and batches (default: 1)\n"
            "  --neurons        MLP unit activity instead of s-op probes (no --sop, no probe training)\n"
            "  --json           one JSON object per line, one per s-op (--neurons: one object)\n"
            "  --check-only   check the options and exit 0 (no file is loaded or\n"
            "                 written; used by `tracc sweep plan`)\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 done, 1 error, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("probe", msg, arg); }

/* ", length N[-M], at index I,J" / ", every position" */
static void print_inputs(const ProbeOptions *o)
{
    printf(", length %d", o->len_min);
    if (o->len_max != o->len_min) printf("-%d", o->len_max);
    if (o->nat) {
        printf(", at index");
        for (int i = 0; i < o->nat; i++) printf("%s%d", i ? "," : " ", o->at[i]);
    } else {
        printf(", every position");
    }
}

static void print_result(const ProbeResult *r, const char *model, const char *prog, const ProbeOptions *o, int own)
{
    printf("probe %s (%s, %d value%s seen in training) in %s; program: %s\n", r->sop,
           r->categorical ? "categorical" : "numerical", r->nclasses, r->nclasses == 1 ? "" : "s", model,
           own ? "the model's own" : prog);
    printf("  %ld training / %ld test inputs", r->n_train, r->n_test);
    print_inputs(o);
    char pct[32];
    rep_pct(r->majority, pct, sizeof pct);
    printf(", seed %llu; always answering the commonest value scores %s\n", (unsigned long long)o->seed, pct);
    if (r->direct_ok) {
        char w[48];
        dec_stage_name(r->written_stage, w, sizeof w);
        printf("  written by %s%s (marked *)\n", w, r->isvirtual ? ", read through the compiler's linear form" : "");
    } else if (own) {
        printf("  not in the residual stream (fused into the operations that read it): linear probes only\n");
    }
    printf("  %-22s %-13s %s\n", "residual after", "direct read", o->steps > 0 ? "linear probe (train / test)" : "");
    for (int i = 0; i < r->nstages; i++) {
        const ProbeStage *s = &r->st[i];
        char d[32], lt[32], ls[32], where[64];
        rep_pct(s->direct, d, sizeof d);
        rep_pct(s->linear_train, lt, sizeof lt);
        rep_pct(s->linear_test, ls, sizeof ls);
        snprintf(where, sizeof where, "%s%s", s->where, s->stage == r->written_stage ? " *" : "");
        if (o->steps > 0)
            printf("  %-22s %-13s %s / %s\n", where, d, lt, ls);
        else
            printf("  %-22s %s\n", where, d);
    }
}

/* Units of block l's MLP owned by map k (k == nmaps: the unused ones): count, dead, always
 * on, varying over n examples. */
static void unit_counts(const Coords *co, const ProbeNeurons *r, int l, int k, long c[4])
{
    c[0] = c[1] = c[2] = c[3] = 0;
    for (int j = 0; j < r->M; j++) {
        int mk = co->neuron_map[(size_t)l * r->M + j];
        if ((mk < 0 ? co->nmaps[l] : mk) != k) continue;
        long f = r->fire[(size_t)l * r->M + j];
        c[0]++;
        c[f == 0 ? 1 : f == r->n_examples ? 2 : 3]++;
    }
}

static int run_neurons(const Model *m, const RaspProgram *p, const char *path, const ProbeOptions *o, int json,
                       StrBuf *err)
{
    ProbeNeurons r;
    if (probe_neurons(m, p, o, &r, err)) {
        fprintf(stderr, "tracc probe: %s\n", err->s);
        return 1;
    }
    Coords co;
    coord_init(&co, m);
    json_t *j = json ? json_object() : NULL, *blocks = json ? json_array() : NULL;
    if (json) {
        json_object_set_new(j, "model", json_string(path));
        json_object_set_new(j, "inputs", json_integer(r.n_inputs));
        json_object_set_new(j, "examples", json_integer(r.n_examples));
        json_object_set_new(j, "len", json_pack("[ii]", o->len_min, o->len_max));
        json_t *at = o->nat ? json_array() : json_null();
        for (int i = 0; i < o->nat; i++) json_array_append_new(at, json_integer(o->at[i]));
        json_object_set_new(j, "at", at);
        json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    } else {
        printf("MLP units of %s on %ld inputs", path, r.n_inputs);
        print_inputs(o);
        printf(" (%ld examples), seed %llu\n", r.n_examples, (unsigned long long)o->seed);
        printf("a unit fires on an example when its pre-activation is > 0; dead: on none, always: on all\n");
        printf("  %-6s %-6s %-6s %-7s %-8s %s\n", "block", "units", "dead", "always", "varying", "map");
    }
    for (int l = 0; l < r.L; l++) {
        json_t *groups = json ? json_array() : NULL;
        for (int k = 0; k <= co.nmaps[l]; k++) {
            long c[4];
            unit_counts(&co, &r, l, k, c);
            if (!c[0]) continue;
            const CoordMap *mp = k < co.nmaps[l] ? &co.maps[l][k] : NULL;
            if (json) {
                json_t *g = json_pack("{s:o,s:I,s:I,s:I,s:I}", "map", mp ? json_string(mp->desc) : json_null(),
                                      "units", (json_int_t)c[0], "dead", (json_int_t)c[1], "always",
                                      (json_int_t)c[2], "varying", (json_int_t)c[3]);
                if (mp) json_object_set_new(g, "neurons", json_pack("[ii]", mp->first, mp->last - 1));
                json_array_append_new(groups, g);
            } else {
                char what[256];
                if (mp && mp->last - mp->first > 1)
                    snprintf(what, sizeof what, "%s [neurons %d-%d]", mp->desc, mp->first, mp->last - 1);
                else if (mp)
                    snprintf(what, sizeof what, "%s [neuron %d]", mp->desc, mp->first);
                else
                    snprintf(what, sizeof what, "(unused)");
                printf("  %-6d %-6ld %-6ld %-7ld %-8ld %s\n", l, c[0], c[1], c[2], c[3], what);
            }
        }
        if (json) {
            json_t *fire = json_array();
            for (int u = 0; u < r.M; u++)
                json_array_append_new(fire, json_real(r.n_examples ? (double)r.fire[(size_t)l * r.M + u] / r.n_examples : 0));
            json_array_append_new(blocks, json_pack("{s:i,s:o,s:o}", "block", l, "groups", groups, "fire", fire));
        }
    }
    if (json) {
        json_object_set_new(j, "blocks", blocks);
        char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
        printf("%s\n", s);
        free(s);
        json_decref(j);
    }
    coord_free(&co);
    probe_neurons_free(&r);
    return 0;
}

int cmd_probe(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"program", required_argument, NULL, 'p'}, {"sop", required_argument, NULL, 's'},
        {"at", required_argument, NULL, 'a'},      {"len", required_argument, NULL, 'l'},
        {"train", required_argument, NULL, 'T'},   {"test", required_argument, NULL, 'E'},
        {"steps", required_argument, NULL, 'S'},   {"batch", required_argument, NULL, 'B'},
        {"lr", required_argument, NULL, 'r'},      {"weight-decay", required_argument, NULL, 'w'},
        {"seed", required_argument, NULL, 'e'},    {"json", no_argument, NULL, 'j'}, {"check-only", no_argument, NULL, 1000},
        {"neurons", no_argument, NULL, 1001},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0}};
    ProbeOptions o = PROBE_OPTIONS_DEFAULT;
    const char *prog_path = NULL, *at_s = NULL, *len_s = NULL;
    const char *sops[MAX_SOPS];
    int nsops = 0, json = 0, check_only = 0, neurons = 0, c;
    long v;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': prog_path = optarg; break;
        case 's':
            if (nsops == MAX_SOPS) return bad_usage("at most 256 --sop%s", "");
            sops[nsops++] = optarg;
            break;
        case 'a': at_s = optarg; break;
        case 'l': len_s = optarg; break;
        case 'T':
            if (cli_parse_long(optarg, 1, 10000000, &v)) return bad_usage("--train expects a positive count, got '%s'", optarg);
            o.train_n = v;
            break;
        case 'E':
            if (cli_parse_long(optarg, 1, 10000000, &v)) return bad_usage("--test expects a positive count, got '%s'", optarg);
            o.test_n = v;
            break;
        case 'S':
            if (cli_parse_long(optarg, 0, 100000000, &v)) return bad_usage("--steps expects a count, got '%s'", optarg);
            o.steps = (int)v;
            break;
        case 'B':
            if (cli_parse_long(optarg, 1, 1000000, &v)) return bad_usage("--batch expects a positive count, got '%s'", optarg);
            o.batch = (int)v;
            break;
        case 'r':
            if (rep_parse_double(optarg, 1e-12, 1e3, &o.lr)) return bad_usage("--lr expects a positive number, got '%s'", optarg);
            break;
        case 'w':
            if (rep_parse_double(optarg, 0, 1e3, &o.weight_decay))
                return bad_usage("--weight-decay expects a number >= 0, got '%s'", optarg);
            break;
        case 'e':
            if (cli_parse_u64(optarg, &o.seed)) return bad_usage("--seed expects a non-negative integer, got '%s'", optarg);
            break;
        case 'j': json = 1; break;
        case 1000: check_only = 1; break;
        case 1001: neurons = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("probe", c, argv);
        }
    }
    if (argc - optind != 1) return bad_usage("expected one model file%s", "");
    if (neurons && nsops) return bad_usage("--neurons reads MLP units, not s-ops: drop --sop%s", "");
    if ((c = cli_check_len_at("probe", len_s, at_s))) return c;
    if (check_only) return 0;
    const char *path = argv[optind];
    if (cli_check_input("probe", NULL, path, CLI_WANT_MODEL) ||
        (prog_path && cli_check_input("probe", "--program", prog_path, CLI_WANT_PROGRAM)))
        return 1;
    StrBuf err;
    sb_init(&err);
    int rc = 1;
    Model *m = NULL;
    RaspProgram *p = NULL;
    Diag *d = diag_new();
    int *at = NULL;
    ProbeResult *results = NULL;
    if (!(m = model_load(path, &err))) {
        fprintf(stderr, "tracc probe: %s\n", err.s);
        goto done;
    }
    int maxlen = m->cfg.n_ctx - 1;
    at = xmalloc(sizeof(int) * (size_t)(maxlen + 1));
    if ((len_s && ro_parse_len(len_s, maxlen, &o.len_min, &o.len_max, &err)) ||
        (at_s && (o.nat = ro_parse_at(at_s, maxlen, at, &err)) < 0)) {
        fprintf(stderr, "tracc probe: %s\n", err.s);
        goto done;
    }
    o.at = at;
    if (!(p = rep_load_program(m, prog_path, d, &err))) {
        diag_print(d, stderr);
        if (err.len) fprintf(stderr, "tracc probe: %s\n", err.s);
        goto done;
    }
    if (o.len_min == 0) o.len_min = o.len_max = p->max_len;
    if (neurons) {
        rc = run_neurons(m, p, path, &o, json, &err);
        goto done;
    }
    if (nsops == 0)
        for (int i = 0; i < p->nsops && nsops < MAX_SOPS; i++)
            if (p->sops[i].named || i == p->output) sops[nsops++] = p->sops[i].label;
    results = xcalloc((size_t)nsops + 1, sizeof *results);
    if (probe_run_many(m, p, sops, nsops, &o, results, &err)) {
        fprintf(stderr, "tracc probe: %s\n", err.s);
        goto done;
    }
    for (int i = 0; i < nsops; i++) {
        ProbeResult r = results[i];
        if (json) {
            json_t *j = probe_json(&r);
            json_object_set_new(j, "model", json_string(path));
            json_object_set_new(j, "program", prog_path ? json_string(prog_path) : json_null());
            char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
            printf("%s\n", s);
            free(s);
            json_decref(j);
        } else {
            if (i) printf("\n");
            print_result(&r, path, prog_path, &o, r.own_program);
        }
        fflush(stdout);
        probe_result_free(&r);
    }
    rc = 0;
done:
    free(results);
    free(at);
    if (p) rasp_free(p);
    diag_free(d);
    model_free(m);
    sb_free(&err);
    return rc;
}
