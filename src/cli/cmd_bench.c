/* mart bench: benchmarks, one subcommand per subsystem (each in src/cli/bench_<name>.c). */
#include "cli/cli.h"

#include <string.h>

int bench_train(int argc, char **argv);
int bench_generate(int argc, char **argv);
int bench_tokenize(int argc, char **argv);
int bench_grade(int argc, char **argv);
int bench_rl(int argc, char **argv);

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} bench_command;

static const bench_command benches[] = {
    {"train", bench_train, "forward+backward+AdamW steps: tokens/s, GFLOP/s, memory"},
    {"generate", bench_generate, "decode tokens/s at batch 1 and 64 beside the machine's limits"},
    {"tokenize", bench_tokenize, "tokenizer load time and encode MB/s"},
    {"grade", bench_grade, "grader comparisons per second"},
    {"rl", bench_rl, "time per PPO step split into generation, scoring and update"},
};

int cmd_bench(int argc, char **argv) {
    int n = (int)(sizeof benches / sizeof benches[0]);
    if (argc >= 2)
        for (int i = 0; i < n; i++)
            if (!strcmp(argv[1], benches[i].name)) return benches[i].run(argc - 1, argv + 1);
    FILE *f = argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? stderr : stdout;
    fprintf(f, "usage: mart bench <name> [options]   (mart bench <name> --help)\n\n");
    for (int i = 0; i < n; i++) fprintf(f, "  %-9s %s\n", benches[i].name, benches[i].summary);
    return f == stdout ? 0 : 2;
}
