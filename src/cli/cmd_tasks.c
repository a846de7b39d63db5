/* mart tasks: writes the built-in synthetic math task as three disjoint JSONL splits in the
 * MATH format: train.jsonl (RL prompts), test.jsonl (evaluation), sft.jsonl (worked
 * solutions for pretraining). */
#include "cli/cli.h"
#include "mart/task.h"

int cmd_tasks(int argc, char **argv) {
    task_config c;
    task_config_default(&c);
    const char *out = NULL;
    int64_t seed = 0;
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "output folder (created) for train/test/sft.jsonl"},
        {"seed", CLI_INT64, &seed, "random seed: the same seed gives the same files"},
        {"n-train", CLI_INT64, &c.n_train, "problems in train.jsonl (RL prompts)"},
        {"n-test", CLI_INT64, &c.n_test, "problems in test.jsonl (evaluation)"},
        {"n-sft", CLI_INT64, &c.n_sft, "worked solutions in sft.jsonl (pretraining)"},
        {"sft-retry-frac", CLI_DOUBLE, &c.sft_retry_frac,
         "fraction of sft items that are multi-attempt transcripts of an imperfect solver that "
         "mostly repeats a wrong answer when told it is wrong (see docs/DEMO.md)"},
        {"sft-repeat", CLI_DOUBLE, &c.sft_repeat,
         "probability that the transcripts' solver, told it is wrong, repeats its last attempt "
         "word for word (otherwise it solves again)"},
    };
    int rc = cli_parse("tasks", "--out DIR [options]",
                       "Generates the built-in math task (arithmetic, remainders, linear equations, "
                       "word problems; levels 1-3) as disjoint train/test/sft splits with fields "
                       "problem, answer, solution (ending in \\boxed{answer}), type, level.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!out) {
        mart_fail(&err, "--out DIR is required");
        return cli_error("tasks", &err);
    }
    if (c.n_train < 0 || c.n_test < 0 || c.n_sft < 0 || c.sft_retry_frac < 0 ||
        c.sft_retry_frac > 1 || !(c.sft_repeat >= 0 && c.sft_repeat <= 1)) {
        mart_fail(&err, "split sizes must be >= 0, --sft-retry-frac and --sft-repeat in [0, 1]");
        return cli_error("tasks", &err);
    }
    c.seed = (uint64_t)seed;
    rc = task_write_splits(&c, out, &err);
    if (rc == MART_OK)
        fprintf(stderr, "mart tasks: wrote %lld train, %lld test, %lld sft problems to %s\n",
                (long long)c.n_train, (long long)c.n_test, (long long)c.n_sft, out);
    return rc == MART_OK ? 0 : cli_error("tasks", &err);
}
