/* cmd_eval.c — `tracc eval [options] FILE [TOKENS...]`: run a .rasp program on inputs with
 * the reference interpreter and print the output s-op (or, with --trace, every named s-op)
 * at every position. Input and output conventions are shared with `tracc run` (cli/clio.h)
 * so the two can be diffed. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/clio.h"
#include "common/util.h"
#include "compiler/front/frontend.h"
#include "compiler/interp/interp.h"

#define VOCAB_SHOWN 30  /* longer vocabs are abbreviated in error messages */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc eval [options] FILE [TOKENS...]\n"
            "\n"
            "Run the .rasp program FILE on inputs with the reference interpreter.\n"
            "TOKENS after FILE form one input; without them, every line of standard input\n"
            "is one input (tokens separated by whitespace, or one JSON array with\n"
            "--input-format json). Each token is matched against the vocab by its text form.\n"
            "Prints one line per input: the output s-op's value at every position,\n"
            "space-separated, None where it has no value.\n"
            "Options may come anywhere; tokens that begin with '-' go after `--`\n"
            "(tracc eval FILE -- -1 2).\n"
            "\n"
            "options:\n"
            "  --vocab LIST    override the file's vocab: comma-separated tokens, those that\n"
            "                  read as integers are integers (default: the file's `vocab`)\n"
            "  --max-len N     override the file's max_len, 1..%d (default: the file's)\n"
            "  --table-budget N entries all tables of the program may hold together (default: 2^25)\n"
            "  --causal        evaluate as a causal program, every selector masked to keys at\n"
            "                  or before the query (default: as the file says)\n"
            "  --json          one JSON array per input, null for no value (default: text)\n"
            "  --input-format text|json\n"
            "                  how standard input gives the inputs: text, whitespace-separated\n"
            "                  tokens; json, one JSON array of tokens per line, e.g.\n"
            "                  [\"x y\", \"a\\\"b\"] or [1, 2] (strings are tokens as they are,\n"
            "                  numbers stand for their text) (default: text)\n"
            "  --trace         every named s-op (and tokens, indices, length, the output)\n"
            "                  at every position, as a table; with --json one object per\n"
            "                  input: {\"input\": [...], \"output\": [...], \"sops\": {...}}\n"
            "                  (default: off)\n"
            "  -h, --help      show this help and exit\n"
            "\n"
            "Exit status: 0 ok, 1 error in the program or an input, 2 usage.\n",
            RASP_MAX_LEN);
}

/* A token or vocab entry as shown in a message: printable bytes as they are, the rest as
 * \xNN, so a stray control byte in the input cannot garble the terminal. */
static void put_shown(StrBuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c < 0x7f) sb_putc(b, (char)c);
        else sb_printf(b, "\\x%02x", c);
    }
}

/* A vocab entry bare when it reads back unambiguously (as the .rasp `vocab` line would
 * accept it), quoted otherwise ("c d", "", "{"). */
static void put_vocab_entry(StrBuf *b, Value v)
{
    if (v.kind == VAL_STR) {
        int plain = v.u.s[0] != 0;
        for (const char *s = v.u.s; *s; s++)
            if (isspace((unsigned char)*s) || strchr(",{}\"", *s)) plain = 0;
        if (plain) {
            put_shown(b, v.u.s);
            return;
        }
        StrBuf q;
        sb_init(&q);
        val_format_quoted(v, &q);
        put_shown(b, q.s);
        sb_free(&q);
        return;
    }
    val_format(v, b);
}

static void put_vocab(StrBuf *b, const RaspProgram *p)
{
    sb_putc(b, '{');
    for (int i = 0; i < p->nvocab && i < VOCAB_SHOWN; i++) {
        if (i) sb_puts(b, ", ");
        put_vocab_entry(b, p->vocab[i]);
    }
    if (p->nvocab > VOCAB_SHOWN) sb_printf(b, ", ... (%d tokens)", p->nvocab);
    sb_putc(b, '}');
}

/* Turn one input's token texts into vocab indices; on a bad input print why and return -1. */
static int read_tokens(const RaspProgram *p, const InputReader *r, char **toks, int ntoks,
                       int32_t *out)
{
    StrBuf b;
    sb_init(&b);
    sb_puts(&b, "tracc eval: ");
    input_where(r, &b);
    int rc = 0;
    const char *bad = input_problem(r, ntoks);
    if (bad) {
        sb_printf(&b, "%s%s", r->bad ? ": " : " ", bad);
        rc = -1;
    } else if (ntoks > p->max_len) {
        sb_printf(&b, ": %d tokens, longer than max_len %d", ntoks, p->max_len);
        rc = -1;
    } else {
        for (int i = 0; i < ntoks; i++) {
            int t = rasp_token_index(p, toks[i]);
            if (t < 0) {
                sb_puts(&b, ": token '");
                put_shown(&b, toks[i]);
                sb_puts(&b, "' is not in the vocab ");
                put_vocab(&b, p);
                rc = -1;
                break;
            }
            out[i] = t;
        }
    }
    if (rc) {
        fflush(stdout);     /* earlier outputs first when both go to a terminal */
        fprintf(stderr, "%s\n", b.s);
    }
    sb_free(&b);
    return rc;
}

/* The value an s-op holds at each position, as Values. */
static void sop_row(const RaspProgram *p, const Interp *it, int sop, int n, Value *out)
{
    const RaspSop *s = &p->sops[sop];
    const int32_t *v = interp_values(it, sop);
    for (int i = 0; i < n; i++)
        out[i] = v && v[i] >= 0 && v[i] < s->nvals ? s->vals[v[i]] : val_none();
}

/* What --trace shows: every s-op the user named, the built-in names the program uses
 * (tokens, indices, and length, whose label is reserved for the prelude's s-op), and the
 * output even when unnamed. */
static int traced(const RaspProgram *p, int sop)
{
    const RaspSop *s = &p->sops[sop];
    return s->named || s->op == SOP_TOKENS || s->op == SOP_INDICES || sop == p->output ||
           (s->op == SOP_SELWIDTH && !strcmp(s->label, "length"));
}

/* {"input": [...], "output": [...], "sops": {"label": [...], ...}} on one line, s-ops in
 * id order. Written by hand (not built with jansson) so numbers print exactly as in the
 * plain --json rows (Python's repr, via print_json_value). */
static void trace_json(const RaspProgram *p, const Interp *it, const int32_t *toks, int n,
                       Value *row)
{
    for (int i = 0; i < n; i++) row[i] = p->vocab[toks[i]];
    fputs("{\"input\": ", stdout);
    print_json_array(stdout, row, n);
    fputs(", \"output\": ", stdout);
    sop_row(p, it, p->output, n, row);
    print_json_array(stdout, row, n);
    fputs(", \"sops\": {", stdout);
    int first = 1;
    for (int s = 0; s < p->nsops; s++) {
        if (!traced(p, s)) continue;
        if (!first) fputs(", ", stdout);
        first = 0;
        print_json_value(stdout, val_str(p->sops[s].label));
        fputs(": ", stdout);
        sop_row(p, it, s, n, row);
        print_json_array(stdout, row, n);
    }
    fputs("}}\n", stdout);
}

/* The trace as a table (cli/clio.h), the same printer as `tracc run --trace`. */
static void trace_text(const RaspProgram *p, const Interp *it, int n, Value *row)
{
    TraceTable t = {0};
    for (int i = 0; i < n; i++) row[i] = val_int(i);
    trace_table_row(&t, "", row, n);
    for (int s = 0; s < p->nsops; s++) {
        if (!traced(p, s)) continue;
        sop_row(p, it, s, n, row);
        trace_table_row(&t, p->sops[s].label, row, n);
    }
    trace_table_print(&t, stdout);
    trace_table_free(&t);
}

int cmd_eval(int argc, char **argv)
{
    enum { OPT_VOCAB = 256, OPT_MAXLEN, OPT_CAUSAL, OPT_JSON, OPT_TRACE, OPT_INFMT };
    static const struct option longopts[] = {
        {"vocab", required_argument, NULL, OPT_VOCAB},
        {"table-budget", required_argument, NULL, CLI_TABLE_BUDGET_OPT},
        {"max-len", required_argument, NULL, OPT_MAXLEN},
        {"causal", no_argument, NULL, OPT_CAUSAL},
        {"json", no_argument, NULL, OPT_JSON},
        {"trace", no_argument, NULL, OPT_TRACE},
        {"input-format", required_argument, NULL, OPT_INFMT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    int json = 0, trace = 0, injson = 0;
    long v;
    opterr = 0;     /* our own messages, prefixed `tracc eval:` */
    optind = 1;
    /* options anywhere (getopt permutes); tokens that begin with '-' go after "--" */
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1) break;
        switch (c) {
        case OPT_VOCAB: fo.vocab = optarg; break;
        case OPT_MAXLEN:
            if (cli_parse_long(optarg, 1, RASP_MAX_LEN, &v))
                return cli_usage_error("eval", "--max-len wants an integer in 1..%d, got '%s'", RASP_MAX_LEN, optarg);
            fo.max_len = (int)v;
            break;
        case CLI_TABLE_BUDGET_OPT:
            if (cli_table_budget("eval", optarg, &fo.table_budget)) return 2;
            break;
        case OPT_CAUSAL: fo.causal = 1; break;
        case OPT_JSON: json = 1; break;
        case OPT_TRACE: trace = 1; break;
        case OPT_INFMT:
            if ((injson = input_format_parse(optarg)) < 0)
                return cli_usage_error("eval", "--input-format wants text or json, got '%s'", optarg);
            break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("eval", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("eval", "%s", "no FILE given");
    const char *path = argv[optind++];
    if (cli_check_input("eval", NULL, path, CLI_WANT_PROGRAM)) return 1;

    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file(path, &fo, d);
    if (!p) {
        diag_print(d, stderr);
        if (!diag_errors(d)) fprintf(stderr, "tracc eval: cannot load '%s'\n", path);
        diag_free(d);
        return 1;
    }
    diag_free(d);

    Interp *it = interp_new(p, trace);
    int32_t *toks = xmalloc((size_t)p->max_len * sizeof *toks);
    Value *row = xmalloc((size_t)p->max_len * sizeof *row);
    InputReader r;
    input_init(&r, argc - optind, argv + optind, stdin);
    r.json = injson;
    char **tt;
    int nt, rc = 0, count = 0;
    while (input_next(&r, &tt, &nt)) {
        if (read_tokens(p, &r, tt, nt, toks)) {
            rc = 1;
            break;
        }
        if (interp_eval(it, toks, nt)) {
            StrBuf b;
            sb_init(&b);
            input_where(&r, &b);
            fflush(stdout);
            fprintf(stderr, "tracc eval: %s: %s\n", b.s, interp_error(it));
            sb_free(&b);
            rc = 1;
            break;
        }
        if (trace && json) {
            trace_json(p, it, toks, nt, row);
        } else if (trace) {
            if (count) putchar('\n');
            trace_text(p, it, nt, row);
        } else {
            sop_row(p, it, p->output, nt, row);
            print_row(stdout, row, nt, json);
        }
        count++;
    }
    if (!rc && !r.argv && ferror(stdin)) {
        fprintf(stderr, "tracc eval: error reading standard input: %s\n", strerror(errno));
        rc = 1;
    }
    input_free(&r);
    free(toks);
    free(row);
    interp_free(it);
    rasp_free(p);
    return rc;
}
