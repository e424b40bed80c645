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
            "(anything not ending in .rasp) is checked against the program in its metadata.\n"
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
            "  --json           print the report as one JSON object\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 every checked position agrees, 1 a disagreement or an error, 2 usage.\n",
            VERIFY_MIN_SAMPLES, CLI_VERIFY_SECONDS, RASP_MAX_LEN);
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("verify", msg, arg); }

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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    AsmOptions ao = ASM_OPTIONS_DEFAULT;
    VerifyOptions vo = VERIFY_OPTIONS_DEFAULT;
    int json = 0, c, exhaustive = 0, sampled = 0, max_len = 0, prog_only = 0, budget_given = 0;
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
            if (cli_parse_long(optarg, 1, 64, &v)) return bad_usage("--threads must be an integer from 1 to 64, got '%s'", optarg);
            vo.threads = (int)v;
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
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return bad_usage("%s", "no input file");
    if (optind != argc - 1) return bad_usage("expected one input file, got also '%s'", argv[optind + 1]);
    if (exhaustive && sampled) return bad_usage("%s", "--exhaustive and --samples exclude each other");
    if (budget_given && sampled) return bad_usage("%s", "--samples N checks exactly N inputs: drop --verify-seconds");
    if (sampled) vo.seconds = 0;
    vo.mode = exhaustive ? VERIFY_EXHAUSTIVE : sampled ? VERIFY_SAMPLE : VERIFY_AUTO;
    const char *path = argv[optind];
    int is_prog = cli_ends_with(path, ".rasp");
    if (!is_prog && prog_only)
        return bad_usage("--vocab, --causal and --no-fuse apply to a .rasp program, not to the model '%s'", path);

    StrBuf err;
    sb_init(&err);
    Diag *d = diag_new();
    RaspProgram *p = NULL;
    Model *m = NULL;
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
        char note[128];
        cli_verify_sample_note(note, sizeof note, &rep);
        printf("%s: %s, lengths 1..%d: %ld inputs, %ld positions: %ld agree, %ld don't care, %ld "
               "disagree (%ld input%s)%s%s\n",
               path, rep.exhaustive ? "every input" : "sample", rep.max_n, rep.inputs, rep.positions,
               rep.agree, rep.dontcare, rep.positions - rep.agree - rep.dontcare, rep.failed_inputs,
               rep.failed_inputs == 1 ? "" : "s", rep.exhaustive ? "" : "; sample", note);
    }
    if (rep.failed_inputs) {
        fprintf(stderr, "tracc verify: %s: the model disagrees with the interpreter at input %ld of the check "
                        "(it stops at the first disagreement). First counterexample:\n", path, rep.inputs);
        cli_print_counterexample(stderr, &rep);
    }
    rc = rep.failed_inputs ? 1 : 0;
    verify_report_free(&rep);
done:
    model_free(m);
    rasp_free(p);
    diag_free(d);
    sb_free(&err);
    return rc;
}
