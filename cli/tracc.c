/* tracc.c — the only main: dispatch to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} Command;

static const Command commands[] = {
    {"check", cmd_check, "check a .rasp program and report every error"},
    {"eval", cmd_eval, "run a .rasp program on inputs with the reference interpreter"},
    {"run", cmd_run, "run a model file on inputs"},
    {"compile", cmd_compile, "compile a .rasp program to a model file, checked against the interpreter"},
    {"verify", cmd_verify, "check a model (or a program, compiled in memory) against the interpreter"},
    {"finetune", cmd_finetune, "fine-tune a model file on a target written as a .rasp program"},
    {"explain", cmd_explain, "describe a model file: blocks, heads, neurons, residual layout"},
    {"diff", cmd_diff, "what fine-tuning changed between two models, in the program's terms"},
    {"decompile", cmd_decompile, "read a model back as a .rasp program, with its measured fidelity"},
    {"prune", cmd_prune, "prune (or roll back) the weights that a task's gradient points at"},
    {"probe", cmd_probe, "read an s-op from the residual stream: through its labels and by a linear probe"},
    {"attn", cmd_attn, "attention patterns of every head on one input (one or two models)"},
    {"plot", cmd_plot, "training curves from a fine-tuning log (JSONL) as SVG"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tracc COMMAND [options] ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`tracc COMMAND --help` describes each command and its defaults.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("tracc %s\n", TRACC_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "tracc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
