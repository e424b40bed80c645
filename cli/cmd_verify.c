/* cmd_verify.c — `tracc verify FILE.rasp|MODEL`: check a model against the reference
 * interpreter (a .rasp file is compiled in memory first; a model file is checked against the
 * program it carries) and report how many inputs and positions agree. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clio.h"
#include "compiler/back/assemble.h"
#include "compiler/front/frontend.h"
#include "compiler/back/verify.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc verify [options] FILE.rasp|MODEL\n"
            "\n"
            "Check a model against the reference interpreter at every position of every input\n"
            "(or of a seeded sample): a .rasp program is compiled in memory first; a model file\n"
            "(told apart by its first bytes) is checked against the program in its metadata.\n"
            "Positions where the interpreter has no value are \"don't care\".\n"
            "\n"
            "options:\n"
            "  --exhaustive     every input of lengths 1..max_len (default: every input when\n"
            "                   there are at most 100000, else a sample)\n"
            "  --samples N      check a sample of exactly N inputs (default when sampling:\n"
            "                   10000, or fewer when --verify-seconds runs out; at least %d)\n"
            "  --verify-seconds S\n"
            "                   time budget of the default sample: no new round of inputs\n"
            "                   starts after S seconds; 0: none (default: %g)\n"
            "  --seed S         sample seed (default: 1)\n"
            "  --threads N      worker threads; the report does not depend on it (default:\n"
            "                   the number of CPUs, at most 8)\n"
            "  --max-len N      a program: compile with this max_len (1..%d); a model: check\n"
            "                   inputs up to N tokens (default: the program's / model's)\n"
            "  --vocab A,B,C    a program: override its vocab (default: the file's)\n"
            "  --table-budget N entries all tables of the program may hold together (default: 2^25)\n"
            "  --causal         a program: compile a causal model (default: as the file says)\n"
            "  --no-fuse        a program: compile with --no-fuse\n"
            "  --inputs FILE    check exactly the inputs in FILE ('-': standard input), one\n"
            "                   per line (instead of every input or a sample)\n"
            "  --input-format text|json\n"
            "                   how --inputs gives them: text, whitespace-separated tokens;\n"
            "                   json, one JSON array of tokens per line, e.g. [\"x y\", \"a\\\"b\"]\n"
            "                   or [1, 2] (strings are tokens as they are, numbers stand for\n"
            "                   their text) (default: text)\n"
            "  --json           print the report as one JSON object\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 every checked position agrees, 1 a disagreement or an error, 2 usage.\n",
            VERIFY_MIN_SAMPLES, CLI_VERIFY_SECONDS, RASP_MAX_LEN);
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("verify", msg, arg); }

/* The inputs of --inputs, as vocab indices of the program. */
typedef struct {
    long n;
    size_t cap, lcap;
    int32_t **toks;
    int *lens;
} InputList;

static void input_list_free(InputList *l)
{
    for (long i = 0; i < l->n; i++) free(l->toks[i]);
    free(l->toks);
    free(l->lens);
}

/* Returns 0, or 1 after a message naming the line. */
static int read_inputs(const char *path, int json, const RaspProgram *p, InputList *l)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
    if (!f) {
        fprintf(stderr, "tracc verify: --inputs %s: cannot open: %s\n", path, strerror(errno));
        return 1;
    }
    InputReader r;
    input_init(&r, 0, NULL, f);
    r.json = json;
    char **t;
    int n, rc = 0;
    StrBuf b;
    sb_init(&b);
    while (!rc && input_next(&r, &t, &n)) {
        const char *bad = input_problem(&r, n);
        sb_clear(&b);
        if (bad) {
            sb_printf(&b, "%s%s", r.bad ? ": " : " ", bad);
        } else if (n > p->max_len) {
            sb_printf(&b, ": %d tokens, longer than max_len %d", n, p->max_len);
        } else {
            XGROW(l->toks, l->cap, (size_t)l->n + 1);
            XGROW(l->lens, l->lcap, (size_t)l->n + 1);
            int32_t *ids = xmalloc(sizeof(int32_t) * (size_t)n);
            for (int i = 0; i < n && !b.len; i++)
                if ((ids[i] = rasp_token_index(p, t[i])) < 0) sb_printf(&b, ": token '%s' is not in the vocab", t[i]);
            l->toks[l->n] = ids;
            l->lens[l->n++] = n;
        }
        if (b.len) {
            fprintf(stderr, "tracc verify: --inputs %s: input line %d%s\n", path, r.lineno, b.s);
            rc = 1;
        }
    }
    if (!rc && ferror(f)) {
        fprintf(stderr, "tracc verify: --inputs %s: read error: %s\n", path, strerror(errno));
        rc = 1;
    }
    if (!rc && l->n == 0) {
        fprintf(stderr, "tracc verify: --inputs %s: no inputs\n", path);
        rc = 1;
    }
    sb_free(&b);
    input_free(&r);
    if (f != stdin) fclose(f);
    return rc;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"exhaustive", no_argument, NULL, 'E'},
        {"samples", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"verify-seconds", required_argument, NULL, 'B'},
        {"threads", required_argument, NULL, 'T'},
        {"table-budget", required_argument, NULL, CLI_TABLE_BUDGET_OPT},
        {"max-len", required_argument, NULL, 'm'},
        {"vocab", required_argument, NULL, 'v'},
        {"causal", no_argument, NULL, 'c'},
        {"no-fuse", no_argument, NULL, 'F'},
        {"json", no_argument, NULL, 'j'},
        {"inputs", required_argument, NULL, 'i'},
        {"input-format", required_argument, NULL, 'I'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    VerifyOptions vo = VERIFY_OPTIONS_DEFAULT;
    int json = 0, c, exhaustive = 0, sampled = 0, max_len = 0, prog_only = 0, injson = 0, budget_given = 0;
    const char *inputs_path = NULL;
    vo.threads = 0;
    vo.seconds = CLI_VERIFY_SECONDS;
    long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'E': exhaustive = 1; break;
        case 'n':
            if (cli_parse_long(optarg, 1, 1000000000L, &v))
                return bad_usage("--samples must be a positive integer, got '%s'", optarg);
            vo.samples = v;
            sampled = 1;
            break;
        case 's': {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-')
                return bad_usage("--seed must be a non-negative integer, got '%s'", optarg);
            vo.seed = s;
            break;
        }
        case 'B':
            if (cli_verify_seconds("verify", optarg, &vo.seconds)) return 2;
            budget_given = 1;
            break;
        case 'T':
            if (cli_verify_threads("verify", optarg, &vo.threads)) return 2;
            break;
        case 'm':
            if (cli_parse_long(optarg, 1, RASP_MAX_LEN, &v))
                return bad_usage("--max-len must be an integer from 1 to 4096, got '%s'", optarg);
            max_len = (int)v;
            break;
        case 'v': fo.vocab = ao.vocab = optarg; prog_only = 1; break;
        case 'c': fo.causal = ao.causal = 1; prog_only = 1; break;
        case CLI_TABLE_BUDGET_OPT:
            if (cli_table_budget("verify", optarg, &fo.table_budget)) return 2;
            prog_only = 1;
            break;
        case 'F': ao.fuse = 0; prog_only = 1; break;
        case 'j': json = 1; break;
        case 'i': inputs_path = optarg; break;
        case 'I':
            if ((injson = input_format_parse(optarg)) < 0)
                return bad_usage("--input-format wants text or json, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("verify", c, argv);
        }
    }
    if (optind >= argc) return bad_usage("%s", "no input file");
    if (optind != argc - 1) return bad_usage("expected one input file, got also '%s'", argv[optind + 1]);
    if (exhaustive && sampled) return bad_usage("%s", "--exhaustive and --samples exclude each other");
    if (inputs_path && (exhaustive || sampled))
        return bad_usage("--inputs and %s exclude each other", exhaustive ? "--exhaustive" : "--samples");
    if (budget_given && sampled) return bad_usage("%s", "--samples N checks exactly N inputs: drop --verify-seconds");
    if (sampled) vo.seconds = 0;
    vo.mode = exhaustive ? VERIFY_EXHAUSTIVE : sampled ? VERIFY_SAMPLE : VERIFY_AUTO;
    const char *path = argv[optind];
    CliFileKind kind = cli_sniff(path);
    int is_prog = kind != CLI_FILE_MODEL;
    if (is_prog && cli_check_input("verify", NULL, path, CLI_WANT_PROGRAM)) return 1;
    if (!is_prog && prog_only) {
        /* the file decides, so an input error (1) by the rule in cli.h */
        fprintf(stderr, "tracc verify: --vocab, --causal and --no-fuse apply to a RASP program; %s is a model file\n", path);
        return 1;
    }

    StrBuf err;
    sb_init(&err);
    Diag *d = diag_new();
    RaspProgram *p = NULL;
    Model *m = NULL;
    InputList list = {0};
    int rc = 1;
    if (is_prog) {
        if (max_len) fo.max_len = ao.max_len = max_len;
        p = rasp_load_file(path, &fo, d);
        if (!p) {
            diag_print(d, stderr);
            goto done;
        }
        ao.version = TRACC_VERSION;
        m = asm_compile(p, &ao, NULL, &err);
        if (!m) {
            fprintf(stderr, "tracc verify: %s: %s\n", path, err.s);
            goto done;
        }
    } else {
        m = model_load(path, &err);
        if (!m) {
            fprintf(stderr, "tracc verify: %s\n", err.s);
            goto done;
        }
        p = verify_program_of(m, d, &err);
        if (!p) {
            if (diag_errors(d)) {
                fprintf(stderr, "tracc verify: %s: the program in the model does not load:\n", path);
                diag_print(d, stderr);
            } else {
                fprintf(stderr, "tracc verify: %s: %s\n", path, err.s);
            }
            goto done;
        }
        vo.max_n = max_len;
    }
    if (inputs_path && read_inputs(inputs_path, injson, p, &list)) goto done;
    vo.ninputs = list.n;
    vo.inputs = (const int32_t *const *)list.toks;
    vo.lens = list.lens;
    VerifyReport rep;
    if (verify_model(m, p, &vo, &rep, &err)) {
        fprintf(stderr, "tracc verify: %s: %s\n", path, err.s);
        goto done;
    }
    if (json) {
        json_t *o = cli_verify_json(&rep);
        json_object_set_new(o, "file", json_string(path));
        char *s = json_dumps(o, JSON_COMPACT);
        printf("%s\n", s);
        free(s);
        json_decref(o);
    } else {
        StrBuf what;
        sb_init(&what);
        char note[128] = "";
        if (inputs_path) sb_printf(&what, "the inputs of --inputs %s", inputs_path);
        else {
            sb_printf(&what, "%s, lengths 1..%d", rep.exhaustive ? "every input" : "sample", rep.max_n);
            cli_verify_sample_note(note, sizeof note, &rep);
        }
        printf("%s: %s: %ld inputs, %ld positions: %ld agree, %ld don't care, %ld "
               "disagree (%ld input%s)%s%s\n",
               path, what.s, rep.inputs, rep.positions,
               rep.agree, rep.dontcare, rep.positions - rep.agree - rep.dontcare, rep.failed_inputs,
               rep.failed_inputs == 1 ? "" : "s", rep.exhaustive || inputs_path ? "" : "; sample", note);
        sb_free(&what);
    }
    if (rep.failed_inputs) {
        fprintf(stderr, "tracc verify: %s: the model disagrees with the interpreter at input %ld of the check "
                        "(it stops at the first disagreement). First counterexample:\n", path, rep.inputs);
        cli_print_counterexample(stderr, &rep);
    }
    rc = rep.failed_inputs ? 1 : 0;
    verify_report_free(&rep);
done:
    input_list_free(&list);
    model_free(m);
    rasp_free(p);
    diag_free(d);
    sb_free(&err);
    return rc;
}
