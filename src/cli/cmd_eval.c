/* mart eval: accuracy by number of allowed attempts on math benchmarks (SPEC §5). */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mart/plot.h"
#include "mart/eval.h"

/* Splits a comma-separated list in place into a malloc'd array of pointers into s. */
static const char **split_commas(char *s, int32_t *n) {
    const char **a = NULL;
    *n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        if (!*tok) continue;
        a = mart_xrealloc(a, (size_t)(*n + 1) * sizeof *a);
        a[(*n)++] = tok;
    }
    return a;
}

int cmd_eval(int argc, char **argv) {
    eval_config cfg;
    eval_config_default(&cfg);
    const char *model_dir = NULL, *tok_path = NULL,
               *bench = "aime24,amc23,math500,minerva_math,"
                        "olympiadbench";
    const char *attempts = "1-7", *out = "eval-out", *name = NULL;
    int32_t max_tokens = cfg.env.max_tokens, limit = 0, batch = cfg.batch, chunk = cfg.env.chunk;
    int64_t kv_mb = 0, seed = 0;
    float temperature = 0;
    bool baseline = false, repeat = false;
    cli_opt opts[] = {
        {"model", CLI_STR, &model_dir, "model directory (config.json, model.safetensors)"},
        {"tokenizer", CLI_STR, &tok_path, "tokenizer.json or its directory (default: --model)"},
        {"bench", CLI_STR, &bench,
         "comma-separated benchmarks: aime24, amc23, math500, minerva_math, olympiadbench, "
         "gsm8k, math (MATH's test split), or FILE.jsonl"},
        {"data-dir", CLI_STR, &cfg.data_dir,
         "data directory (default: $MART_DATA, else ~/.cache/mart/data; mart data get fills "
         "it)"},
        {"question-key", CLI_STR, &cfg.question_key, "question field of FILE.jsonl records"},
        {"answer-key", CLI_STR, &cfg.answer_key,
         "gold-answer field of FILE.jsonl (default answer)"},
        {"attempts", CLI_STR, &attempts, "numbers of attempts k to evaluate: 1-7, 1,2,5 or 3"},
        {"out", CLI_STR, &out,
         "output folder: results.json, transcripts.jsonl, attempts.svg/.png (resumable)"},
        {"max-tokens", CLI_INT, &max_tokens, "generated tokens per episode, all attempts"},
        {"limit", CLI_INT, &limit, "first N problems of each benchmark (0 = all)"},
        {"batch", CLI_INT, &batch, "episodes decoded together"},
        {"chunk", CLI_INT, &chunk, "check for a boxed answer every N tokens (reference: 64)"},
        {"kv-mb", CLI_INT64, &kv_mb, "KV-cache memory budget in MiB (0 = default)"},
        {"temperature", CLI_FLOAT, &temperature, "sampling temperature (0 = greedy)"},
        {"seed", CLI_INT64, &seed, "sampling seed"},
        {"baseline-prompt", CLI_FLAG, &baseline, "plain Qwen math system prompt (single-turn)"},
        {"repeat-question", CLI_FLAG, &repeat, "repeat-question prompt/feedback variant"},
        {"name", CLI_STR, &name, "model name in results.json (default: the model folder)"},
    };
    int pr = cli_parse("eval", "--model DIR [options]",
                       "Greedy evaluation by number of allowed attempts: for each k, every "
                       "problem is an episode of k attempts with the \"incorrect, try again\" "
                       "feedback; prints accuracy per benchmark and the average. Rerunning the "
                       "same command resumes.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr != 0) return pr > 0 ? 0 : 2;
    mart_err err = {0};
    if (!model_dir) {
        fprintf(stderr, "mart eval: --model is required (see mart eval --help)\n");
        return 2;
    }
    if (max_tokens <= 0 || batch <= 0 || chunk <= 0 || limit < 0) {
        fprintf(stderr, "mart eval: --max-tokens, --batch and --chunk must be positive\n");
        return 2;
    }
    int32_t *ks = NULL, n_ks = 0;
    if (eval_parse_ks(attempts, &ks, &n_ks, &err) != MART_OK) return cli_error("eval", &err);
    char *bench_copy = mart_xstrdup(bench);
    int32_t n_benches = 0;
    const char **benches = split_commas(bench_copy, &n_benches);
    char model_name[512];
    if (!name) {
        size_t l = strlen(model_dir);
        while (l > 1 && model_dir[l - 1] == '/')
            l--;
        const char *b = model_dir + l;
        while (b > model_dir && b[-1] != '/')
            b--;
        snprintf(model_name, sizeof model_name, "%.*s", (int)(model_dir + l - b), b);
        name = model_name;
    }
    cfg.benches = benches;
    cfg.n_benches = n_benches;
    cfg.ks = ks;
    cfg.n_ks = n_ks;
    cfg.limit = limit;
    cfg.batch = batch;
    cfg.kv_budget_mb = kv_mb;
    cfg.env.max_tokens = max_tokens;
    cfg.env.chunk = chunk;
    cfg.env.baseline_prompt = baseline;
    cfg.env.repeat_question = repeat;
    cfg.env.grade.fallback_extract = false; /* the environment only accepts boxed answers */
    cfg.sampling.temperature = temperature;
    cfg.sampling.seed = (uint64_t)seed;
    cfg.model_name = name;

    int status = 0;
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    eval_results res;
    char fig[4096];
    mart_install_stop_handler();
    if (tok_load(tok_path ? tok_path : model_dir, &tok, &err) != MART_OK ||
        model_load(model_dir, false, &m, &err) != MART_OK ||
        eval_run(m, tok, &cfg, out, &res, &err) != MART_OK) {
        status = cli_error("eval", &err);
    } else if (plot_eval_attempts(&res, mart_path_join(fig, sizeof fig, out, "attempts"), &err) !=
               MART_OK) {
        status = cli_error("eval", &err);
        eval_results_free(&res);
    } else {
        fprintf(stderr,
                "mart eval: %lld episodes generated (%lld resumed), %lld tokens in "
                "%.1f s; results in %s/results.json\n",
                (long long)res.episodes_run, (long long)res.episodes_resumed,
                (long long)res.tokens_sampled, res.seconds, out);
        eval_results_free(&res);
    }
    if (status != 0 && mart_stop_signal()) status = cli_stop_status(); /* resumable: 130/143 */
    if (m) model_free(m);
    if (tok) tok_free(tok);
    free(benches);
    free(bench_copy);
    free(ks);
    return status;
}
