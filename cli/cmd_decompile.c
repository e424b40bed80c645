/* cmd_decompile.c — `tracc decompile MODEL [-o OUT.rasp] [--diff] [--json]`: the program a
 * (fine-tuned) model now computes, in its original program's structure, with its measured
 * fidelity (analysis/decompile.h). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analysis/decompile.h"
#include "common/outfile.h"
#include "cli/cli.h"
#include "runtime/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc decompile MODEL [-o OUT.rasp] [--diff] [--json] [options]\n"
            "\n"
            "Read a model back as a .rasp program of its original program's structure: for\n"
            "every op, what the weights now compute on the op's finite domain (a map's table,\n"
            "a select's predicate, an aggregate's value mapping and default, a selector\n"
            "width's counts), printed in the nearest readable form that agrees with it exactly\n"
            "(the original text when nothing changed, a comparison, x + k, a constant), else\n"
            "as a lookup lambda. The program is then run by the interpreter against the model\n"
            "on sampled inputs (the training distribution recorded in the model's provenance,\n"
            "when its files can be read, and uniform inputs): the agreement per s-op and at\n"
            "the output is the fidelity, printed as comments above the program. Each\n"
            "component the program does not use (a head, MLP units) that has weights is\n"
            "zeroed on its own, and the share of answers that changes is reported (JSON\n"
            "\"idle\"; a comment from 1%%): an answer built there is not in the program.\n"
            "\n"
            "options:\n"
            "  --program FILE   read the model as this program's structure (default: the\n"
            "                   program in the model's metadata)\n"
            "  -o, --output F   write the program (with its fidelity comments) to F\n"
            "  --diff           print a unified diff of the decompiled program against the\n"
            "                   original (empty when nothing changed)\n"
            "  --json           print one JSON object: program, diff, fidelity, sops, idle\n"
            "  --at I[,J,K-L]   answer positions (RASP indices): tables and fidelities count\n"
            "                   only what can influence the output there (default: the\n"
            "                   positions the model was fine-tuned at, from its provenance;\n"
            "                   every position for a model that was not fine-tuned)\n"
            "  --all-positions  every position, even for a fine-tuned model\n"
            "  --inputs N       sampled inputs per distribution (default: 300)\n"
            "  --seed S         sampling seed (default: 1)\n"
            "  -h, --help       show this help\n"
            "\n"
            "Exit status: 0 done (also when the program does not reproduce the model: the\n"
            "fidelity says so), 1 error, 2 usage.\n");
}

static int bad_usage(const char *msg, const char *arg) { return cli_usage_error("decompile", msg, arg); }

int cmd_decompile(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"program", required_argument, NULL, 'p'}, {"output", required_argument, NULL, 'o'},
        {"diff", no_argument, NULL, 'd'},          {"json", no_argument, NULL, 'j'},
        {"inputs", required_argument, NULL, 'n'},  {"seed", required_argument, NULL, 's'},
        {"at", required_argument, NULL, 'a'},      {"all-positions", no_argument, NULL, 'A'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    DcOptions o = DC_OPTIONS_DEFAULT;
    const char *out = NULL;
    int diff = 0, json = 0, c;
    long n;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': o.program_path = optarg; break;
        case 'o': out = optarg; break;
        case 'd': diff = 1; break;
        case 'j': json = 1; break;
        case 'n':
            if (cli_parse_long(optarg, 1, 1000000, &n)) return bad_usage("--inputs must be an integer from 1 to 1000000, got '%s'", optarg);
            o.n = n;
            break;
        case 's':
            if (cli_parse_u64(optarg, &o.seed)) return bad_usage("--seed must be a non-negative integer, got '%s'", optarg);
            break;
        case 'a': o.at = optarg; break;
        case 'A': o.all_positions = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc) return bad_usage("%s", "missing MODEL");
    if (optind + 1 < argc) return bad_usage("unexpected argument '%s'", argv[optind + 1]);
    if (o.at && o.all_positions) return bad_usage("%s", "--at and --all-positions cannot be combined");
    if (diff && json) return bad_usage("%s", "--diff and --json cannot be combined (the JSON holds the diff)");
    const char *path = argv[optind];
    StrBuf err;
    sb_init(&err);
    Model *m = model_load(path, &err);
    if (!m) {
        fprintf(stderr, "tracc decompile: %s\n", err.s);
        sb_free(&err);
        return 1;
    }
    DcResult r;
    if (dc_decompile(m, &o, &r, &err)) {
        fprintf(stderr, "tracc decompile: %s: %s\n", path, err.s);
        sb_free(&err);
        model_free(m);
        return 1;
    }
    int rc = 0;
    if (out) {
        StrBuf f;
        sb_init(&f);
        sb_puts(&f, r.comments);
        sb_puts(&f, r.program);
        if (of_write(out, f.s, f.len, &err)) {
            fprintf(stderr, "tracc decompile: %s\n", err.s);
            rc = 1;
        }
        sb_free(&f);
    }
    if (!rc) {
        if (json) {
            char *s = json_dumps(r.report, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            printf("%s\n", s);
            free(s);
        } else if (diff) {
            fputs(r.diff, stdout);
        } else if (!out) {
            fputs(r.comments, stdout);
            fputs(r.program, stdout);
        }
        if (!r.reproduces)
            fprintf(stderr, "tracc decompile: note: the decompiled program does not reproduce the model on every sampled position (see its fidelity)\n");
    }
    dc_result_free(&r);
    model_free(m);
    sb_free(&err);
    return rc;
}
