/* cmd_compile.c — `tracc compile FILE.rasp -o OUT`: compile a program to a model file,
 * check the model against the interpreter, and only then write it (atomically). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/outfile.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc compile [options] FILE.rasp -o OUT.safetensors\n"
            "\n"
            "Compile a .rasp program to exact transformer weights, check them against the\n"
            "reference interpreter, and write the model file (only if the check passes;\n"
            "an existing OUT is replaced atomically).\n"
            "\n"
            "options:\n"
            "  -o, --output OUT     the model file to write (required)\n"
            "  --vocab A,B,C        override the file's vocab (entries that read as integers\n"
            "                       are integers; default: the file's `vocab`)\n"
            "  --max-len N          override the file's max_len, 1..%d (default: the file's)\n"
            "  --table-budget N     entries all tables of the program may hold together (default: 2^25)\n"
            "  --causal             compile a causal model (default: as the file says)\n"
            "  --no-fuse            keep every named s-op in the residual stream, each written by\n"
            "                       its own MLP (default: maps that are linear in what the model\n"
            "                       already holds are read in place, maps of maps are fused)\n"
            "  --conditioning C     tracr: Tracr's constructions and gains; balanced: the same\n"
            "                       functions with every ReLU unit's input and output weights,\n"
            "                       and every head's Q/K and V/O columns, rescaled to equal\n"
            "                       norms, and selector widths counted by uniform attention\n"
            "                       where they allow it (robust to weight noise; see\n"
            "                       docs/compiler.md section 10) (default: tracr)\n"
            "  --verify MODE        auto: every input when there are at most 100000, else a\n"
            "                       sample; exhaustive; sample; none (default: auto)\n"
            "  --samples N          sample exactly N inputs (default: 10000, or fewer when\n"
            "                       --verify-seconds runs out; at least %d)\n"
            "  --verify-seconds S   time budget of the default sample: no new round of inputs\n"
            "                       starts after S seconds; 0: none (default: %g)\n"
            "  --seed S             sample seed (default: 1)\n"
            "  --threads N          verification threads; the report does not depend on it\n"
            "                       (default: the number of CPUs, at most 8)\n"
            "  --json               print the summary as one JSON object\n"
            "  -h, --help           show this help\n"
            "\n"
            "Exit status: 0 written, 1 error or disagreement (nothing written), 2 usage.\n",
            RASP_MAX_LEN, VERIFY_MIN_SAMPLES, CLI_VERIFY_SECONDS);
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("compile", msg, arg); }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Print the first counterexample of a failed check (shared with `tracc verify`). */
void cli_print_counterexample(FILE *f, const VerifyReport *r)
{
    fprintf(f, "  input:    ");
    for (int i = 0; i < r->cx_n; i++) fprintf(f, "%s%s", i ? " " : "", r->cx_tokens[i]);
    fprintf(f, "\n  position: %d\n  expected: %s\n  got:      %s\n", r->cx_pos, r->cx_expected, r->cx_got);
    if (r->cx_culprit) fprintf(f, "  first wrong s-op: %s\n", r->cx_culprit);
    else fprintf(f, "  first wrong s-op: (every labelled s-op in the residual holds the right value)\n");
}

/* A seed as JSON: an integer, or its decimal text above what a JSON integer here holds. */
static json_t *seed_json(uint64_t s)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)s);
    return s <= (uint64_t)INT64_MAX ? json_integer((json_int_t)s) : json_string(buf);
}

int cli_verify_seconds(const char *cmd, const char *arg, double *out)
{
    char *end;
    double x = strtod(arg, &end);
    if (!*arg || *end || !(x >= 0) || x > 1e9)
        return cli_usage_error(cmd, "--verify-seconds must be a number of seconds, 0 or more, got '%s'", arg);
    *out = x;
    return 0;
}

int cli_verify_threads(const char *cmd, const char *arg, int *out)
{
    long v;
    if (cli_parse_long(arg, 1, 64, &v))
        return cli_usage_error(cmd, "--threads must be an integer from 1 to 64, got '%s'", arg);
    *out = (int)v;
    return 0;
}

void cli_verify_sample_note(char *buf, size_t n, const VerifyReport *r)
{
    if (r->exhaustive) snprintf(buf, n, "%s", "");
    else if (r->budget_cut)
        snprintf(buf, n, " in %.0f s (time budget %g s; seed %llu)", r->seconds, r->budget,
                 (unsigned long long)r->seed);
    else snprintf(buf, n, " (seed %llu)", (unsigned long long)r->seed);
}

json_t *cli_verify_json(const VerifyReport *r)
{
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:b}", "mode",
                          r->exhaustive ? "exhaustive" : "sample", "max_len", r->max_n, "inputs",
                          (json_int_t)r->inputs, "positions", (json_int_t)r->positions, "agree",
                          (json_int_t)r->agree, "dont_care", (json_int_t)r->dontcare, "failed_inputs",
                          (json_int_t)r->failed_inputs, "ok", r->failed_inputs == 0);
    if (!r->exhaustive) {
        json_object_set_new(o, "seed", seed_json(r->seed));
        json_object_set_new(o, "time_budget_s", r->budget > 0 ? json_real(r->budget) : json_null());
        json_object_set_new(o, "budget_cut", json_boolean(r->budget_cut));
    }
    if (r->failed_inputs) {
        json_t *in = json_array();
        for (int i = 0; i < r->cx_n; i++) json_array_append_new(in, json_string(r->cx_tokens[i]));
        json_t *cx = json_pack("{s:o, s:i, s:s, s:s}", "input", in, "position", r->cx_pos, "expected",
                               r->cx_expected, "got", r->cx_got);
        json_object_set_new(cx, "culprit", r->cx_culprit ? json_string(r->cx_culprit) : json_null());
        json_object_set_new(o, "counterexample", cx);
    }
    return o;
}

int cmd_compile(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"vocab", required_argument, NULL, 'v'},
        {"table-budget", required_argument, NULL, CLI_TABLE_BUDGET_OPT},
        {"max-len", required_argument, NULL, 'm'},
        {"causal", no_argument, NULL, 'c'},
        {"no-fuse", no_argument, NULL, 'F'},
        {"conditioning", required_argument, NULL, 'C'},
        {"verify", required_argument, NULL, 'V'},
        {"samples", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"verify-seconds", required_argument, NULL, 'B'},
        {"threads", required_argument, NULL, 'T'},
        {"json", no_argument, NULL, 'j'},
        /* testing only: force every head's sharpness (a small value makes a wrong model) */
        {"sharpness", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    VerifyOptions vo = VERIFY_OPTIONS_DEFAULT;
    const char *out = NULL;
    int json = 0, vnone = 0, c, budget_given = 0, samples_given = 0;
    vo.threads = 0;
    vo.seconds = CLI_VERIFY_SECONDS;
    long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'v': fo.vocab = ao.vocab = optarg; break;
        case 'm':
            if (cli_parse_long(optarg, 1, RASP_MAX_LEN, &v))
                return bad_usage("--max-len must be an integer from 1 to 4096, got '%s'", optarg);
            fo.max_len = ao.max_len = (int)v;
            break;
        case 'c': fo.causal = ao.causal = 1; break;
        case CLI_TABLE_BUDGET_OPT:
            if (cli_table_budget("compile", optarg, &fo.table_budget)) return 2;
            break;
        case 'F': ao.fuse = 0; break;
        case 'C':
            if (!strcmp(optarg, "tracr")) ao.conditioning = ASM_COND_TRACR;
            else if (!strcmp(optarg, "balanced")) ao.conditioning = ASM_COND_BALANCED;
            else return bad_usage("--conditioning must be tracr or balanced, got '%s'", optarg);
            break;
        case 'V':
            if (!strcmp(optarg, "auto")) vo.mode = VERIFY_AUTO;
            else if (!strcmp(optarg, "exhaustive")) vo.mode = VERIFY_EXHAUSTIVE;
            else if (!strcmp(optarg, "sample")) vo.mode = VERIFY_SAMPLE;
            else if (!strcmp(optarg, "none")) vnone = 1;
            else return bad_usage("--verify must be auto, exhaustive, sample or none, got '%s'", optarg);
            break;
        case 'n':
            if (cli_parse_long(optarg, 1, 1000000000L, &v))
                return bad_usage("--samples must be a positive integer, got '%s'", optarg);
            vo.samples = v;
            samples_given = 1;
            break;
        case 'B':
            if (cli_verify_seconds("compile", optarg, &vo.seconds)) return 2;
            budget_given = 1;
            break;
        case 'T':
            if (cli_verify_threads("compile", optarg, &vo.threads)) return 2;
            break;
        case 's':
            if (cli_parse_u64(optarg, &vo.seed)) return bad_usage("--seed must be a non-negative integer, got '%s'", optarg);
            break;
        case 'j': json = 1; break;
        case 'S': {
            char *end;
            double x = strtod(optarg, &end);
            if (!*optarg || *end || !(x > 0) || x > 1e4) return bad_usage("--sharpness must be a positive number, got '%s'", optarg);
            ao.sharpness = x;
            break;
        }
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("compile", c, argv);
        }
    }
    if (optind >= argc) return bad_usage("%s", "no input file");
    if (optind != argc - 1) return bad_usage("expected one input file, got also '%s'", argv[optind + 1]);
    if (!out) return bad_usage("%s", "no output file: give -o OUT.safetensors");
    if (budget_given && samples_given)
        return bad_usage("%s", "--samples N checks exactly N inputs: drop --verify-seconds");
    if (samples_given) vo.seconds = 0;   /* an explicit sample size is exact */
    if (cli_check_output("compile", "-o", out)) return 1;   /* before any work */
    if (of_same_file(out, argv[optind])) {
        fprintf(stderr, "tracc compile: -o %s: is the input program; give the model another name\n", out);
        return 1;
    }
    const char *path = argv[optind];
    if (cli_check_input("compile", NULL, path, CLI_WANT_PROGRAM)) return 1;
    ao.version = TRACC_VERSION;

    double t0 = now_ms();
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file(path, &fo, d);
    if (!p) {
        diag_print(d, stderr);
        diag_free(d);
        return 1;
    }
    diag_free(d);
    StrBuf err;
    sb_init(&err);
    AsmSummary sum;
    Model *m = asm_compile(p, &ao, &sum, &err);
    double t1 = now_ms();
    if (!m) {
        fprintf(stderr, "tracc compile: %s: %s\n", path, err.s);
        sb_free(&err);
        rasp_free(p);
        return 1;
    }
    if (!sum.exact && sum.mix_sop >= 0)
        fprintf(stderr, "tracc compile: warning: %s: the error bounds do not prove this model exact: "
                        "aggregate '%s' can select positions with different values (no value in the "
                        "interpreter, a mixture in the model) and another op reads it; the check against "
                        "the interpreter decides\n",
                path, p->sops[sum.mix_sop].label);
    else if (!sum.exact)
        fprintf(stderr, "tracc compile: warning: %s: the error bounds do not prove this model exact "
                        "(smallest margin %.3g); the check against the interpreter decides\n",
                path, sum.min_margin);
    VerifyReport rep;
    memset(&rep, 0, sizeof rep);
    int rc = 0;
    double t2 = t1;
    if (!vnone) {
        if (verify_model(m, p, &vo, &rep, &err)) {
            fprintf(stderr, "tracc compile: %s: cannot check the model: %s\n", path, err.s);
            rc = 1;
        } else if (rep.failed_inputs) {
            fprintf(stderr, "tracc compile: %s: the compiled model disagrees with the interpreter at "
                            "input %ld of the check (it stops at the first disagreement); nothing "
                            "written. First counterexample:\n",
                    path, rep.inputs);
            cli_print_counterexample(stderr, &rep);
            rc = 1;
        }
        t2 = now_ms();
    }
    if (!rc && json_is_object(m->compiler)) {
        /* what was checked, so that `tracc verify --samples N --seed S` checks it again */
        json_t *vj = vnone ? json_pack("{s:s}", "mode", "none")
                           : json_pack("{s:s, s:i, s:I}", "mode", rep.exhaustive ? "exhaustive" : "sample",
                                       "max_len", rep.max_n, "inputs", (json_int_t)rep.inputs);
        if (!vnone && !rep.exhaustive) {
            json_object_set_new(vj, "seed", seed_json(vo.seed));
            json_object_set_new(vj, "time_budget_s", rep.budget > 0 ? json_real(rep.budget) : json_null());
            json_object_set_new(vj, "budget_cut", json_boolean(rep.budget_cut));
        }
        json_object_set_new(m->compiler, "verification", vj);
    }
    if (!rc && model_save(m, out, &err)) {
        fprintf(stderr, "tracc compile: %s\n", err.s);
        rc = 1;
    }
    double t3 = now_ms();
    if (!rc) {
        if (json) {
            json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:b, s:f, s:f}", "input", path,
                                  "output", out, "n_layers", sum.n_layers, "d_model", sum.d_model, "n_heads",
                                  sum.n_heads, "d_head", sum.d_head, "d_mlp", sum.d_mlp, "params",
                                  (json_int_t)sum.params, "nonzero", (json_int_t)sum.nonzero, "exact_by_bounds",
                                  sum.exact, "compile_ms", t1 - t0, "verify_ms", t2 - t1);
            json_object_set_new(o, "write_ms", json_real(t3 - t2));
            json_object_set_new(o, "unembed_params", json_integer((json_int_t)sum.unembed_params));
            json_object_set_new(o, "unembed_nonzero", json_integer((json_int_t)sum.unembed_nonzero));
            json_object_set_new(o, "min_margin", isinf(sum.min_margin) ? json_string("inf") : json_real(sum.min_margin));
            json_object_set_new(o, "verify", vnone ? json_null() : cli_verify_json(&rep));
            char *s = json_dumps(o, JSON_COMPACT);
            printf("%s\n", s);
            free(s);
            json_decref(o);
        } else {
            printf("%s: %d layer%s, d_model %d, %d head%s (d_head %d), d_mlp %d, %zu params (%zu nonzero)",
                   out, sum.n_layers, sum.n_layers == 1 ? "" : "s", sum.d_model, sum.n_heads,
                   sum.n_heads == 1 ? "" : "s", sum.d_head, sum.d_mlp, sum.params, sum.nonzero);
            if (vnone) printf("; not verified\n");
            else {
                char note[128];
                cli_verify_sample_note(note, sizeof note, &rep);
                printf("; verified %s: %ld inputs%s, %ld positions agree (%ld don't care)\n",
                       rep.exhaustive ? "on every input" : "on a sample", rep.inputs, note, rep.agree,
                       rep.dontcare);
            }
        }
    }
    verify_report_free(&rep);
    model_free(m);
    rasp_free(p);
    sb_free(&err);
    return rc;
}
