/* mart bench rl: time per PPO step split into generation, reference/critic scoring and the
 * update, with tokens/s for each. Runs the real trainer (rl_train) on problems of the
 * built-in task, with a random model of a built-in shape or a given model directory. */
#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "mart/rl.h"
#include "mart/task.h"
#include "mart/tok.h"

int bench_rl(int argc, char **argv);

/* Writes DIR/base (random model of shape `config` over the byte tokenizer) unless a model
 * directory is given, and DIR/data.jsonl with n built-in task problems. */
static int bench_inputs(const char *dir, const char *config, int32_t n, mart_err *err) {
    char p[4096];
    model_config cfg;
    if (model_config_builtin(config, &cfg, err) != MART_OK) return MART_ERR;
    tok_tokenizer *tok;
    if (tok_build_bytes(NULL, 0, 0, &tok, err) != MART_OK) return MART_ERR;
    if (cfg.vocab_size < tok_vocab_size(tok)) cfg.vocab_size = tok_vocab_size(tok);
    model *m = model_create(&cfg, false, false);
    model_init_random(m, 1);
    snprintf(p, sizeof p, "%s/base", dir);
    int rc = model_save(m, p, err);
    model_free(m);
    snprintf(p, sizeof p, "%s/base/tokenizer.json", dir);
    if (rc == MART_OK) rc = tok_save(tok, p, err);
    tok_free(tok);
    if (rc != MART_OK) return MART_ERR;
    snprintf(p, sizeof p, "%s/data.jsonl", dir);
    FILE *f = fopen(p, "w");
    if (!f) return mart_fail(err, "%s: cannot write", p);
    mart_rng r;
    mart_rng_seed(&r, 0, 0);
    for (int32_t i = 0; i < n; i++) {
        task_item it;
        task_generate_one(&r, (task_kind)(i % TASK_N_KINDS), 1 + i % TASK_MAX_LEVEL, &it);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "problem", it.problem);
        cJSON_AddStringToObject(o, "answer", it.answer);
        mart_json_print_line(f, o);
        cJSON_Delete(o);
        task_item_free(&it);
    }
    fclose(f);
    return MART_OK;
}

int bench_rl(int argc, char **argv) {
    const char *config = "tiny", *model_dir = NULL, *algo = "ppo";
    int32_t steps = 3, rollout = 16, max_tokens = 128, micro = 8, mini = 16, gen_batch = 16;
    cli_opt opts[] = {
        {"config", CLI_STR, &config, "built-in shape of the random model (tiny, small, 40m, ...)"},
        {"model", CLI_STR, &model_dir, "benchmark this model directory instead of a random one"},
        {"algo", CLI_STR, &algo, "ppo or grpo"},
        {"steps", CLI_INT, &steps, "PPO steps timed (the first one included)"},
        {"rollout-batch", CLI_INT, &rollout, "episodes per step"},
        {"mini-batch", CLI_INT, &mini, "episodes per optimiser step"},
        {"micro-batch", CLI_INT, &micro, "episodes per forward/backward"},
        {"max-tokens", CLI_INT, &max_tokens, "sampled tokens per episode"},
        {"gen-batch", CLI_INT, &gen_batch, "sequences decoded together"},
    };
    int rc = cli_parse("bench rl", "[options]",
                       "Times PPO steps of the real trainer on built-in task problems: "
                       "generation, scoring (reference log-probs + critic values) and update "
                       "(actor + critic forward/backward + AdamW), each with tokens/s.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    char tmpl[] = "/tmp/mart_bench_rl_XXXXXX";
    if (!mkdtemp(tmpl)) {
        mart_fail(&err, "cannot create a temporary directory");
        return cli_error("bench rl", &err);
    }
    char base[4096], data[4096], out[4096];
    snprintf(base, sizeof base, "%s/base", tmpl);
    snprintf(data, sizeof data, "%s/data.jsonl", tmpl);
    snprintf(out, sizeof out, "%s/run", tmpl);
    rl_config c;
    rl_config_default(&c);
    c.model_dir = model_dir ? model_dir : base;
    c.data_path = data;
    c.out_dir = out;
    c.algo = strcmp(algo, "grpo") ? RL_ALGO_PPO : RL_ALGO_GRPO;
    c.n_samples = c.algo == RL_ALGO_GRPO ? 4 : 1;
    c.rollout_batch = c.algo == RL_ALGO_GRPO ? (rollout + 3) / 4 : rollout;
    c.steps = steps;
    c.mini_batch = mini;
    c.micro_batch = micro;
    c.max_tokens = max_tokens;
    c.gen_batch = gen_batch;
    c.max_prompt = 512;
    c.actor_lr = 1e-5;
    c.critic_lr = 1e-5;
    c.quiet = true;
    c.save_every = 0;
    rc = bench_inputs(tmpl, config, c.rollout_batch * steps, &err);
    if (rc == MART_OK) {
        printf("mart bench rl: %s, %s model, %d episodes/step, <= %d sampled tokens each, "
               "%d threads\n",
               algo, model_dir ? model_dir : config, c.rollout_batch * c.n_samples, max_tokens,
               mart_threads());
        rc = rl_train(&c, &err);
    }
    if (rc == MART_OK) {
        char mpath[4200];
        mart_path_join(mpath, sizeof mpath, out, "metrics.jsonl");
        cJSON **lines = NULL;
        int64_t n = 0;
        rc = mart_jsonl_load(mpath, &lines, &n, &err);
        const char *keys[] = {"gen_s", "rollout_tok_s", "score_s", "score_tok_s", "update_s",
                              "train_tok_s", "response_length"};
        enum { NK = sizeof keys / sizeof keys[0] };
        printf("%5s %9s %12s %9s %12s %9s %12s %9s\n", "step", "gen s", "gen tok/s", "score s",
               "score tok/s", "update s", "upd tok/s", "total s");
        double sum[NK] = {0};
        for (int64_t i = 0; rc == MART_OK && i < n; i++) {
            double v[NK];
            for (int k = 0; k < NK; k++) {
                const cJSON *x = cJSON_GetObjectItemCaseSensitive(lines[i], keys[k]);
                v[k] = cJSON_IsNumber(x) ? x->valuedouble : 0;
                if (i > 0 || n == 1) sum[k] += v[k];
            }
            printf("%5lld %9.2f %12.0f %9.2f %12.0f %9.2f %12.0f %9.2f\n", (long long)i + 1, v[0],
                   v[1], v[2], v[3], v[4], v[5], v[0] + v[2] + v[4]);
        }
        double m = n > 1 ? (double)(n - 1) : 1;
        double tot = (sum[0] + sum[2] + sum[4]) / m;
        if (n > 0)
            printf("mean%s: generation %.2f s (%.0f%%, %.0f tok/s), scoring %.2f s (%.0f%%, %.0f "
                   "tok/s), update %.2f s (%.0f%%, %.0f tok/s); %.2f s per step\n",
                   n > 1 ? " after step 1" : "", sum[0] / m, 100 * sum[0] / m / tot, sum[1] / m,
                   sum[2] / m, 100 * sum[2] / m / tot, sum[3] / m, sum[4] / m,
                   100 * sum[4] / m / tot, sum[5] / m, tot);
        mart_jsonl_free(lines, n);
    }
    mart_remove_tree(tmpl, NULL);
    if (rc != MART_OK) return cli_error("bench rl", &err);
    return 0;
}
