/* tracc.c — the only main: dispatch to a subcommand. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "runtime/forward.h"

#define FALLBACK_ENV "TRACC_OPENBLAS_FALLBACK"

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
    {"sweep", cmd_sweep, "plan and run grids of fine-tuning and analysis runs (local, GNU parallel, Slurm)"},
    {"report", cmd_report, "tables, pictures and JSON over sweep directories (tracc sweep)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: tracc COMMAND [options] ...\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`tracc COMMAND --help` describes each command and its defaults.\n");
}

/* Standard output is checked in one place, after the command: a result that could not be
 * written (a full disk, a closed pipe with SIGPIPE ignored) is an error, never a silent exit 0.
 * fclose reports what a buffered write or the final flush could not do. */
static int close_stdout(const char *cmd, int rc)
{
    errno = 0;
    int e = 0;
    if (fflush(stdout) != 0) e = errno ? errno : EIO;
    else if (ferror(stdout)) e = -1;   /* an earlier write failed; its errno is gone */
    errno = 0;
    if (fclose(stdout) != 0 && !e) e = errno ? errno : EIO;
    if (!e) return rc;
    fprintf(stderr, "tracc%s%s: error writing standard output%s%s; the output is incomplete\n", cmd ? " " : "",
            cmd ? cmd : "", e > 0 ? ": " : "", e > 0 ? strerror(e) : "");
    return rc ? rc : 1;
}

static int dispatch(int argc, char **argv, const char **cmd)
{
    *cmd = NULL;
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        /* the second line is what `sweep plan` reads to check a sweep's blas-core can run here */
        printf("tracc %s\nOpenBLAS kernels: %s\n", TRACC_VERSION, fwd_blas_core());
        const char *fell = getenv(FALLBACK_ENV), *set = getenv("OPENBLAS_CORETYPE");
        if (fell && *fell && set && !strcmp(set, "Haswell"))   /* not when a sweep set another since */
            printf("(OpenBLAS took this CPU for an unknown one and picked its %s kernels; tracc chose Haswell's, "
                   "as the CPU has AVX2 and FMA. OPENBLAS_CORETYPE=NAME chooses.)\n",
                   fell);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) {
            *cmd = commands[i].name;
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "tracc: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

/* OpenBLAS 0.3.21 gives a CPU model it does not know its SSE3 "Prescott" kernels, whatever the
 * CPU can do (seen on an Intel Xeon, family 6 model 207, with AVX-512). They cost about twice the
 * CPU time of the Haswell kernels there (docs/benchmarks.md) and round differently from them, and every documented result
 * (README, docs/, the paper sweeps) is the Haswell kernels' output. OpenBLAS reads
 * OPENBLAS_CORETYPE once, when it is loaded, so tracc runs itself again with it set. Only that
 * fallback is overridden, only on a CPU that can run Haswell's kernels, and never a
 * OPENBLAS_CORETYPE the user set; FALLBACK_ENV tells `--version` (and the child processes) why. */
static void leave_fallback_kernels(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || strcmp(fwd_blas_core(), "Prescott")) return;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    if (setenv("OPENBLAS_CORETYPE", "Haswell", 1) || setenv(FALLBACK_ENV, "Prescott", 1)) return;
    execv("/proc/self/exe", argv);
    /* no exec (no /proc): carry on with the kernels OpenBLAS picked */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(FALLBACK_ENV);
#else
    (void)argv;
#endif
}

int main(int argc, char **argv)
{
    leave_fallback_kernels(argv);
    const char *cmd;
    int rc = dispatch(argc, argv, &cmd);
    return close_stdout(cmd, rc);
}
