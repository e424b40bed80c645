/* cli.h — the subcommands of `tracc`, one file each (cli/cmd_*.c), and helpers they share.
 * Each returns the process exit status: 0 ok, 1 error, 2 usage. */
#ifndef TRACC_CLI_H
#define TRACC_CLI_H

#include <stdint.h>
#include <stdio.h>

int cmd_check(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_explain(int argc, char **argv);
int cmd_compile(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_probe(int argc, char **argv);
int cmd_attn(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_decompile(int argc, char **argv);

/* Shared by `tracc compile` and `tracc verify` (defined in cli/cmd_compile.c): the first
 * counterexample of a failed check as text, and a check's report as JSON. */
struct VerifyReport;
struct json_t;
void cli_print_counterexample(FILE *f, const struct VerifyReport *r);
struct json_t *cli_verify_json(const struct VerifyReport *r);
#define CLI_VERIFY_SECONDS 60.0   /* the default sample's time budget */
/* --verify-seconds S (0 or more; 0: no budget); 2 after a usage error. */
int cli_verify_seconds(const char *cmd, const char *arg, double *out);
/* --threads N for the check (1..64); 2 after a usage error. */
int cli_verify_threads(const char *cmd, const char *arg, int *out);
/* How a sample was taken, for the summary lines: "" when exhaustive, else e.g.
 * " in 61 s (time budget 60 s, seed 1)" or " (seed 1)". */
void cli_verify_sample_note(char *buf, size_t n, const struct VerifyReport *r);

/* Shared by the subcommands (defined in cli/clio.c). A usage error, the same for every
 * subcommand: "tracc CMD: <fmt, printf-style>" and a pointer to `tracc CMD --help` on stderr.
 * Returns 2, the usage exit status.
 *
 * The exit-status rule of every subcommand: 2 when the command line is wrong in itself,
 * whatever the files hold (an unknown option, a missing or extra operand, an option value
 * that is malformed or outside its fixed range, options that exclude each other); 1 when an
 * input (a file, a program, a model, standard input) is wrong or does not fit the options
 * (e.g. --at 50 for a model of max_len 10), or the work fails. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usual getopt_long failures ('?' and ':' returned with opterr = 0) as a usage error. */
int cli_bad_option(const char *cmd, int c, char **argv);

/* Whole-string decimal integers: 0 and *out set, or -1 (empty, trailing text, overflow,
 * outside lo..hi; cli_parse_u64 also refuses a leading '-'). */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_u64(const char *s, uint64_t *out);

/* --table-budget N for the commands that read a .rasp program (FrontOptions.table_budget):
 * 0 or a usage error (exit 2) printed as `tracc CMD: ...`. */
#define CLI_TABLE_BUDGET_OPT 0x7462
int cli_table_budget(const char *cmd, const char *arg, long long *out);

/* What a file holds, judged from its first bytes (never its name alone). */
typedef enum {
    CLI_FILE_MISSING,   /* cannot be opened (errno says why) */
    CLI_FILE_DIR,
    CLI_FILE_EMPTY,
    CLI_FILE_MODEL,     /* an 8-byte little-endian header length, then '{' (safetensors) */
    CLI_FILE_RASP,      /* text that reads like a RASP program (name or keywords) */
    CLI_FILE_JSONL,     /* text whose first non-blank byte is '{' or '[' */
    CLI_FILE_TEXT,      /* other text */
    CLI_FILE_BINARY,    /* NUL or control bytes in its first 4 KiB */
    CLI_FILE_SPECIAL,   /* not a regular file (a pipe, a device): not read, so the loader
                           still gets every byte; the loader decides */
} CliFileKind;

CliFileKind cli_sniff(const char *path);

/* What a command reads from a path. */
typedef enum { CLI_WANT_PROGRAM, CLI_WANT_MODEL, CLI_WANT_JSONL } CliWant;

/* Sniff PATH before handing it to a loader: 0 when it can be what the command wants (for a
 * program: text, or any bytes in a file named *.rasp, which the lexer then reports); else
 * one line "tracc CMD: PATH is ..., not ... (what takes it)" on stderr and 1. `what`
 * names the argument in the message when it is an option's value ("--task"), or NULL. */
int cli_check_input(const char *cmd, const char *what, const char *path, CliWant want);

/* 1 if PATH is a model file (cli_sniff says CLI_FILE_MODEL): how a command tells a model
 * argument from a token or a program. */
int cli_is_model_file(const char *path);

/* --len and --at (either may be NULL) checked for their form, before the model says which
 * values fit: 0, or a usage error (2) for a malformed value. The model's range is checked
 * after loading it (an input error, 1). */
int cli_check_len_at(const char *cmd, const char *len_s, const char *at_s);

/* Check an output path before any work (common/outfile.h: its folder exists and is writable,
 * it is absent or a regular file). On failure prints "tracc CMD: FLAG PATH: ..." and returns 1
 * (the error exit status); else 0. Defined in cli/outcheck.c. */
int cli_check_output(const char *cmd, const char *flag, const char *path);

/* 1 if s ends with suffix. */
int cli_ends_with(const char *s, const char *suffix);

#define TRACC_VERSION "0.1.0"

#endif
