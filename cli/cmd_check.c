/* cmd_check.c — `tracc check`: read, parse and check a program; report every error, or
 * one summary line (and with --list every s-op and selector). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "compiler/front/ast.h"
#include "compiler/front/frontend.h"

#define LIST_VALUES 20   /* value sets longer than this are abbreviated */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tracc check [options] FILE.rasp\n"
            "\n"
            "Check a program: syntax, names, encodings, value sets, every lambda on every input.\n"
            "Prints every error (exit 1), or one summary line (exit 0).\n"
            "\n"
            "options:\n"
            "  --vocab A,B,C   use this vocab instead of the file's (entries that read as\n"
            "                  integers are integers; default: the file's `vocab`)\n"
            "  --max-len N     use this max_len, 1..%d (default: the file's `max_len`)\n"
            "  --table-budget N entries all tables of the program may hold together (default: 2^25)\n"
            "  --causal        check as a causal program (default: the file's `causal;`)\n"
            "  --list          also list every s-op and selector: label, operation, encoding,\n"
            "                  value set (first %d values), and whether the output uses it\n"
            "  -h, --help      show this help\n",
            RASP_MAX_LEN, LIST_VALUES);
}

static const char *sop_op(const RaspSop *s)
{
    switch (s->op) {
    case SOP_TOKENS: return "tokens";
    case SOP_INDICES: return "indices";
    case SOP_CONST: return "constant";
    case SOP_MAP: return s->linear ? "linear_map" : "map";
    case SOP_SEQMAP: return s->linear ? "linear_sequence_map" : "sequence_map";
    case SOP_AGGREGATE: return "aggregate";
    case SOP_SELWIDTH: return "selector_width";
    }
    return "?";
}

static void print_values(const RaspSop *s)
{
    StrBuf b;
    sb_init(&b);
    sb_putc(&b, '{');
    int n = s->nvals < LIST_VALUES ? s->nvals : LIST_VALUES;
    for (int i = 0; i < n; i++) {
        if (i) sb_puts(&b, ", ");
        val_format_quoted(s->vals[i], &b);
    }
    if (s->nvals > n) sb_printf(&b, ", ... (%d values)", s->nvals);
    sb_putc(&b, '}');
    if (s->may_none) sb_puts(&b, " or None");
    fputs(b.s, stdout);
    sb_free(&b);
}

static void list_program(const RaspProgram *p)
{
    int w = 5;
    for (int i = 0; i < p->nsops; i++) {
        int l = (int)strlen(p->sops[i].label);
        if (l > w) w = l;
    }
    for (int i = 0; i < p->nsels; i++) {
        int l = (int)strlen(p->sels[i].label);
        if (l > w) w = l;
    }
    for (int i = 0; i < p->nsops; i++) {
        const RaspSop *s = &p->sops[i];
        printf("s-op      %-*s  %-19s %-11s %-6s ", w, s->label, sop_op(s),
               s->enc == ENC_NUMERICAL ? "numerical" : "categorical", s->used ? "used" : "unused");
        print_values(s);
        putchar('\n');
    }
    for (int i = 0; i < p->nsels; i++) {
        const RaspSel *s = &p->sels[i];
        printf("selector  %-*s  ", w, s->label);
        switch (s->op) {
        case SEL_SELECT: {
            /* cmp is a comparison, or OP_NONE for a lambda or constant (rasp.h) */
            const char *c = s->cmp == OP_NONE ? "predicate" : ast_op_name(s->cmp);
            printf("select(%s, %s, %s)", p->sops[s->keys].label, p->sops[s->queries].label, c);
            break;
        }
        case SEL_AND: printf("%s and %s", p->sels[s->a].label, p->sels[s->b].label); break;
        case SEL_OR: printf("%s or %s", p->sels[s->a].label, p->sels[s->b].label); break;
        case SEL_NOT: printf("not %s", p->sels[s->a].label); break;
        }
        printf("  %s\n", s->used ? "used" : "unused");
    }
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"vocab", required_argument, NULL, 'v'},
        {"table-budget", required_argument, NULL, CLI_TABLE_BUDGET_OPT},
        {"max-len", required_argument, NULL, 'm'},
        {"causal", no_argument, NULL, 'c'},
        {"list", no_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    FrontOptions fo = FRONT_OPTIONS_DEFAULT;
    int list = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': fo.vocab = optarg; break;
        case 'm': {
            long v;
            if (cli_parse_long(optarg, 1, RASP_MAX_LEN, &v))
                return cli_usage_error("check", "--max-len must be an integer from 1 to %d, got '%s'", RASP_MAX_LEN, optarg);
            fo.max_len = (int)v;
            break;
        }
        case 'c': fo.causal = 1; break;
        case CLI_TABLE_BUDGET_OPT:
            if (cli_table_budget("check", optarg, &fo.table_budget)) return 2;
            break;
        case 'l': list = 1; break;
        case 'h': usage(stdout); return 0;
        default: return cli_bad_option("check", c, argv);
        }
    }
    if (optind >= argc) return cli_usage_error("check", "%s", "no input file");
    if (optind != argc - 1) return cli_usage_error("check", "expected one input file, got also '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    if (cli_check_input("check", NULL, path, CLI_WANT_PROGRAM)) return 1;
    Diag *d = diag_new();
    RaspProgram *p = rasp_load_file(path, &fo, d);
    if (!p) {
        diag_print(d, stderr);
        diag_free(d);
        return 1;
    }
    const RaspSop *out = &p->sops[p->output];
    printf("%s: ok (%d s-op%s, %d selector%s; output %s: %s, %d value%s%s)\n", path, p->nsops,
           p->nsops == 1 ? "" : "s", p->nsels, p->nsels == 1 ? "" : "s", out->label,
           out->enc == ENC_NUMERICAL ? "numerical" : "categorical", out->nvals, out->nvals == 1 ? "" : "s",
           out->may_none ? " or None" : "");
    if (rasp_warn_mixing(p, d)) diag_print(d, stderr);
    if (list) list_program(p);
    rasp_free(p);
    diag_free(d);
    return 0;
}
