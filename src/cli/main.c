/* mart: Multi-Attempt Reinforcement Training. The command-line entry point: dispatches to
 * the subcommands in src/cli/cmd_*.c. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "the whole method on a tiny model: pretrain, RL single vs multi, eval"},
    {"tasks", cmd_tasks, "write the built-in synthetic math task (train/test JSONL)"},
    {"pretrain", cmd_pretrain, "supervised pretraining of a fresh model on worked solutions"},
    {"train", cmd_train, "RL training (PPO or GRPO) on the multi-attempt or single-turn task"},
    {"eval", cmd_eval, "accuracy by number of attempts on math benchmarks"},
    {"generate", cmd_generate, "batched sampling from a model (JSONL in, JSONL out)"},
    {"chat", cmd_chat, "interactive multi-turn chat with streamed output"},
    {"score", cmd_score, "per-token log-probabilities of token sequences"},
    {"grade", cmd_grade, "math answer extraction and equivalence"},
    {"tokenize", cmd_tokenize, "text to token ids with a tokenizer.json"},
    {"detokenize", cmd_detokenize, "token ids to text"},
    {"export", cmd_export, "a model folder to one GGUF file (llama.cpp, ollama)"},
    {"import", cmd_import, "a GGUF file back to a model folder"},
    {"data", cmd_data, "the data directory: list, get (download, sha256-checked), prepare"},
    {"plot", cmd_plot, "accuracy-vs-attempts and learning-curve plots (SVG and PNG)"},
    {"bench", cmd_bench, "benchmarks: train, generate, tokenize, grade, machine limits"},
};
static const int n_commands = (int)(sizeof commands / sizeof commands[0]);

static void usage(FILE *f) {
    fprintf(f, "mart %s: Multi-Attempt Reinforcement Training\n\nusage: mart <command> "
               "[options]   (mart <command> --help for its options)\n\ncommands:\n",
            MART_VERSION);
    for (int i = 0; i < n_commands; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "  %-11s %s\n", "help", "this message");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "help") || !strcmp(name, "--help") || !strcmp(name, "-h")) {
        if (argc > 2)
            for (int i = 0; i < n_commands; i++)
                if (!strcmp(commands[i].name, argv[2])) {
                    char *sub[] = {argv[2], "--help", NULL};
                    return commands[i].run(2, sub);
                }
        usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version")) {
        printf("mart %s\n", MART_VERSION);
        return 0;
    }
    for (int i = 0; i < n_commands; i++)
        if (!strcmp(commands[i].name, name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "mart: unknown command '%s'\n\n", name);
    usage(stderr);
    return 2;
}
