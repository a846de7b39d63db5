/* cli: the `mart` program's subcommands and their shared option parser. Each command lives
 * in src/cli/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)` returning the process
 * exit status; the library can call them in-process (the demo chains them). */
#ifndef MART_CLI_H
#define MART_CLI_H

#include "mart/core.h"

typedef enum { CLI_STR, CLI_INT, CLI_INT64, CLI_FLOAT, CLI_DOUBLE, CLI_FLAG } cli_kind;

/* One option: `--name VALUE` (or `--name` alone for CLI_FLAG). The value of *dst when
 * cli_parse is called is the default shown in --help. */
typedef struct {
    const char *name;
    cli_kind kind;
    void *dst; /* const char **, int32_t *, int64_t *, float *, double *, bool * */
    const char *help;
} cli_opt;

/* Parses argv[1..] (argv[0] is the command name). Returns 0 to go on, 1 when --help was
 * printed (exit 0), MART_ERR on a bad option (message printed, exit 2). */
int cli_parse(const char *command, const char *synopsis, const char *about, cli_opt *opts,
              int n_opts, int argc, char **argv);
/* Prints "mart <command>: <msg>" to stderr and returns 1 (the exit status for errors). */
int cli_error(const char *command, const mart_err *err);
/* A batch command's exit status once every record is answered (the JSONL policy in core.h):
 * 0 when none failed, else 1 with a count on stderr. */
int cli_batch_status(const char *command, const mart_jsonl *r);
/* The exit status of a command that stopped cleanly on a signal after saving its work:
 * 128 + the signal (130 for Ctrl-C, 143 for SIGTERM), as shells report it; 0 without one. */
int cli_stop_status(void);

int cmd_score(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_grade(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_tasks(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

#endif
