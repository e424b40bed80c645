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
int cmd_decompile(int argc, char **argv);

/* Shared by `tracc compile` and `tracc verify` (defined in cli/cmd_compile.c): the first
 * counterexample of a failed check as text, and a check's report as JSON. */
struct VerifyReport;
struct json_t;
void cli_print_counterexample(FILE *f, const struct VerifyReport *r);
struct json_t *cli_verify_json(const struct VerifyReport *r);

/* Shared by the subcommands (defined in cli/clio.c). A usage error, the same for every
 * subcommand: "tracc CMD: <fmt with arg>" and a pointer to `tracc CMD --help` on stderr.
 * Returns 2, the usage exit status. */
int cli_usage_error(const char *cmd, const char *fmt, const char *arg);

/* Whole-string decimal integers: 0 and *out set, or -1 (empty, trailing text, overflow,
 * outside lo..hi; cli_parse_u64 also refuses a leading '-'). */
int cli_parse_long(const char *s, long lo, long hi, long *out);
int cli_parse_u64(const char *s, uint64_t *out);

/* 1 if PATH is a regular file that begins like a safetensors file (an 8-byte little-endian
 * header length, then '{'), whatever its name: how a command tells a model argument from a
 * token or a program. */
int cli_is_model_file(const char *path);

/* 1 if s ends with suffix. */
int cli_ends_with(const char *s, const char *suffix);

#define TRACC_VERSION "0.1.0"

#endif
