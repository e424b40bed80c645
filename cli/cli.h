/* cli.h — the subcommands of `tracc`, one file each (cli/cmd_*.c), and helpers they share.
 * Each returns the process exit status: 0 ok, 1 error, 2 usage. */
#ifndef TRACC_CLI_H
#define TRACC_CLI_H

int cmd_check(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_explain(int argc, char **argv);

#define TRACC_VERSION "0.1.0"

#endif
