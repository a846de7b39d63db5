/* mart demo: the whole method on a tiny model, end to end, through the library with typed
 * configs (the equivalent command line of each stage is printed first):
 *
 *   tasks    (task_write_splits) -> DIR/data/{train,test,sft}.jsonl
 *   pretrain (sft_train)         -> DIR/base            (the shared base model)
 *   train    (rl_train)          -> DIR/single, DIR/multi (identical settings except the task)
 *   eval     (eval_run)          -> DIR/eval_single, DIR/eval_multi, DIR/eval_base (greedy,
 *                                   1..5 attempts, test split)
 *
 * then DIR/results.json, the table on stdout, DIR/attempts.svg/.png (accuracy vs attempts,
 * both models and their base) and DIR/learning_curves.svg/.png (training reward and accuracy
 * of both runs).
 *
 * Nothing differs between the two RL runs but the task, and nothing in the evaluation differs
 * between the models: the comparison is the paper's, at toy scale. */
#include "cli/cli.h"
#include "mart/eval.h"
#include "mart/plot.h"
#include "mart/rl.h"
#include "mart/sft.h"
#include "mart/task.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The stage settings of one demo size. PLAN_FULL is the configuration measured in
 * docs/DEMO.md; --quick exercises every stage in seconds. */
typedef struct {
    int64_t n_train, n_test, n_sft;           /* tasks */
    double sft_repeat;
    int64_t pt_steps;                         /* pretrain */
    int32_t pt_batch, pt_merges;
    double pt_lr;
    int32_t rl_steps, rl_batch, rl_samples, rl_mini, max_tokens; /* train */
    double rl_lr, critic_lr, kl, temperature;
    int32_t eval_tokens;                      /* eval */
} demo_plan;

static const demo_plan PLAN_FULL = {
    .n_train = 4000, .n_test = 500, .n_sft = 20000, .sft_repeat = 0.8,
    .pt_steps = 2000, .pt_batch = 32, .pt_merges = 512, .pt_lr = 3e-3,
    .rl_steps = 100, .rl_batch = 64, .rl_samples = 4, .rl_mini = 64, .max_tokens = 200,
    .rl_lr = 3e-4, .critic_lr = 1e-3, .kl = 0.05, .temperature = 1.0,
    .eval_tokens = 200,
};

static const demo_plan PLAN_QUICK = {
    .n_train = 16, .n_test = 4, .n_sft = 100, .sft_repeat = 0.8,
    .pt_steps = 6, .pt_batch = 4, .pt_merges = 64, .pt_lr = 3e-3,
    .rl_steps = 1, .rl_batch = 2, .rl_samples = 2, .rl_mini = 4, .max_tokens = 32,
    .rl_lr = 3e-4, .critic_lr = 1e-3, .kl = 0.0, .temperature = 1.0,
    .eval_tokens = 32,
};

/* Ends a stage: its time, and whether to go on (an error, or a stop asked by Ctrl-C). */
static bool stage_done(const char *name, int rc, double t0, double *seconds, mart_err *err) {
    *seconds = mart_now() - t0;
    if (rc == MART_OK && mart_stop_requested())
        rc = mart_fail(err, "stopped during %s (its checkpoint, if any, is in its folder)", name);
    if (rc != MART_OK) return false;
    fprintf(stderr, "mart demo: %s done in %.1fs\n", name, *seconds);
    return true;
}

static int plot_attempts(const char *out, const double base[5], const double single[5],
                         const double multi[5], mart_err *err) {
    double ks[5] = {1, 2, 3, 4, 5};
    plot_series s[3] = {{"multi-attempt RL", ks, multi, 5},
                        {"single-turn RL", ks, single, 5},
                        {"base (before RL)", ks, base, 5}};
    char path[4096];
    return plot_accuracy_vs_attempts(
        "mart demo: accuracy on the test split vs attempts allowed (greedy)", s, 3,
        mart_path_join(path, sizeof path, out, "attempts"), err);
}

static int plot_curves(const char *out, const char *run_single, const char *run_multi,
                       mart_err *err) {
    const char *runs[2] = {run_multi, run_single};
    char base[4096];
    return plot_learning_curves(runs, 2, mart_path_join(base, sizeof base, out, "learning_curves"),
                                err);
}

static void print_table(FILE *f, const double base[5], const double single[5],
                        const double multi[5]) {
    fprintf(f, "\naccuracy on the test split (greedy), by attempts allowed\n");
    fprintf(f, "%-22s", "trained on");
    for (int k = 1; k <= 5; k++) fprintf(f, " %7d", k);
    fprintf(f, "   gain 1->2\n");
    const double *rows[3] = {multi, single, base};
    const char *names[3] = {"multi-attempt task", "single-turn task", "(base, before RL)"};
    for (int r = 0; r < 3; r++) {
        fprintf(f, "%-22s", names[r]);
        for (int k = 0; k < 5; k++) fprintf(f, " %6.1f%%", 100 * rows[r][k]);
        fprintf(f, "   %+6.1f\n", 100 * (rows[r][1] - rows[r][0]));
    }
}

static cJSON *acc_json(const double acc[5]) {
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddObjectToObject(o, "accuracy");
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k + 1);
        if (isfinite(acc[k])) cJSON_AddNumberToObject(a, key, acc[k]);
        else cJSON_AddNullToObject(a, key);
    }
    return o;
}

/* Evaluates the model folder dir on the test split with 1..5 attempts into out_dir;
 * acc[k-1] = the accuracy within k attempts. */
static int evaluate(const char *dir, const char *name, const char *test, int32_t max_tokens,
                    const char *out_dir, double acc[5], mart_err *err) {
    tok_tokenizer *tok = NULL;
    model *m = NULL;
    if (tok_load(dir, &tok, err) != MART_OK) return MART_ERR;
    if (model_load(dir, false, &m, err) != MART_OK) {
        tok_free(tok);
        return MART_ERR;
    }
    eval_config ec;
    eval_config_default(&ec);
    const char *benches[1] = {test};
    static const int32_t ks[5] = {1, 2, 3, 4, 5};
    ec.benches = benches;
    ec.n_benches = 1;
    ec.question_key = "problem";
    ec.answer_key = "answer";
    ec.ks = ks;
    ec.n_ks = 5;
    ec.env.max_tokens = max_tokens;
    ec.env.repeat_question = true;
    ec.model_name = name;
    ec.progress = true;
    ec.quiet = true;
    eval_results res;
    char fig[4096];
    int rc = eval_run(m, tok, &ec, out_dir, &res, err);
    if (rc == MART_OK) {
        for (int k = 0; k < 5; k++)
            acc[k] = res.average[k];
        rc = plot_eval_attempts(&res, mart_path_join(fig, sizeof fig, out_dir, "attempts"), err);
        eval_results_free(&res);
    }
    model_free(m);
    tok_free(tok);
    return rc;
}

int cmd_demo(int argc, char **argv) {
    const char *out = "mart-demo", *algo = "grpo";
    int64_t seed = 0;
    bool quick = false;
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "output folder (created; the demo's own: its stage folders are "
                               "replaced on every run)"},
        {"seed", CLI_INT64, &seed, "seed of every stage: the same seed gives the same table"},
        {"quick", CLI_FLAG, &quick, "a seconds-long run through every stage (CI); the result "
                                    "means nothing"},
        {"algo", CLI_STR, &algo, "RL algorithm of both runs: ppo or grpo"},
    };
    int rc = cli_parse("demo", "[--out DIR] [--seed S] [--quick]",
                       "Reproduces the paper's finding with a tiny model on a CPU: builds the "
                       "synthetic math task, pretrains a base model, trains it with RL once on the "
                       "single-turn task and once on the multi-attempt task (1..5 attempts), and "
                       "evaluates both and their base with 1..5 attempts (docs/DEMO.md: what it "
                       "shows and how long it takes).",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    const demo_plan *p = quick ? &PLAN_QUICK : &PLAN_FULL;
    rl_algo ralgo;
    if (!strcmp(algo, "grpo")) ralgo = RL_ALGO_GRPO;
    else if (!strcmp(algo, "ppo")) ralgo = RL_ALGO_PPO;
    else return cli_error("demo", (mart_fail(&err, "--algo: 'ppo' or 'grpo', not '%s'", algo), &err));
    if (mart_mkdirs(out, &err) != MART_OK) return cli_error("demo", &err);
    char d_data[4096], f_train[4096], f_test[4096], f_sft[4096], d_base[4096];
    char d_run[2][4096], d_final[3][4096], d_eval[3][4096];
    mart_path_join(d_data, sizeof d_data, out, "data");
    mart_path_join(f_train, sizeof f_train, d_data, "train.jsonl");
    mart_path_join(f_test, sizeof f_test, d_data, "test.jsonl");
    mart_path_join(f_sft, sizeof f_sft, d_data, "sft.jsonl");
    mart_path_join(d_base, sizeof d_base, out, "base");
    const char *tasks[2] = {"single", "multi"};
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "%s", tasks[i]);
        mart_path_join(d_run[i], sizeof d_run[i], out, name);
        mart_path_join(d_final[i], sizeof d_final[i], d_run[i], "final");
        snprintf(name, sizeof name, "eval_%s", tasks[i]);
        mart_path_join(d_eval[i], sizeof d_eval[i], out, name);
    }
    snprintf(d_final[2], sizeof d_final[2], "%s", d_base);
    mart_path_join(d_eval[2], sizeof d_eval[2], out, "eval_base");
    /* The demo's folder is its own: every run starts its stages afresh (the trainers refuse to
     * train over an earlier run's folder). */
    const char *stage_dirs[] = {d_base, d_run[0], d_run[1], d_eval[0], d_eval[1], d_eval[2]};
    for (size_t i = 0; i < sizeof stage_dirs / sizeof stage_dirs[0]; i++)
        if (mart_path_exists(stage_dirs[i]) && mart_remove_tree(stage_dirs[i], &err) != MART_OK)
            return cli_error("demo", &err);
    mart_install_stop_handler();
    double t_all = mart_now(), t_tasks = 0, t_pre = 0, t_rl[2] = {0}, t_eval[3] = {0}, t0;

    task_config tc;
    task_config_default(&tc);
    tc.seed = (uint64_t)seed;
    tc.n_train = p->n_train;
    tc.n_test = p->n_test;
    tc.n_sft = p->n_sft;
    tc.sft_repeat = p->sft_repeat;
    fprintf(stderr, "\n$ mart tasks --out %s --seed %lld --n-train %lld --n-test %lld --n-sft %lld "
                    "--sft-repeat %g\n",
            d_data, (long long)seed, (long long)tc.n_train, (long long)tc.n_test,
            (long long)tc.n_sft, tc.sft_repeat);
    t0 = mart_now();
    if (!stage_done("tasks", task_write_splits(&tc, d_data, &err), t0, &t_tasks, &err))
        return cli_error("demo", &err);

    sft_config sc;
    sft_config_default(&sc);
    sc.data_path = f_sft;
    sc.out_dir = d_base;
    sc.config = "tiny";
    sc.steps = p->pt_steps;
    sc.batch = p->pt_batch;
    sc.lr = p->pt_lr;
    sc.merges = p->pt_merges;
    sc.seed = (uint64_t)seed;
    sc.repeat_question = true;
    fprintf(stderr, "\n$ mart pretrain --data %s --out %s --config tiny --steps %lld --batch %d "
                    "--lr %g --merges %d --seed %lld --repeat-question\n",
            f_sft, d_base, (long long)sc.steps, sc.batch, sc.lr, sc.merges, (long long)seed);
    bool stopped = false;
    t0 = mart_now();
    if (!stage_done("pretrain", sft_train(&sc, &stopped, &err), t0, &t_pre, &err))
        return cli_error("demo", &err);

    for (int i = 0; i < 2; i++) {
        rl_config rc_;
        rl_config_default(&rc_);
        rc_.model_dir = d_base;
        rc_.data_path = f_train;
        rc_.out_dir = d_run[i];
        rc_.multi = i == 1;
        rc_.algo = ralgo;
        rc_.steps = p->rl_steps;
        rc_.rollout_batch = p->rl_batch;
        rc_.n_samples = p->rl_samples;
        rc_.mini_batch = p->rl_mini;
        rc_.max_tokens = p->max_tokens;
        rc_.actor_lr = p->rl_lr;
        rc_.critic_lr = p->critic_lr;
        rc_.loss.kl_coef = (float)p->kl;
        rc_.temperature = rc_.loss.temperature = (float)p->temperature;
        rc_.seed = (uint64_t)seed;
        /* the demo's measured settings: a schedule fitted to its 100 steps (a 160-pass one
         * would never leave its warm-up) and mart's KL clamp */
        rc_.lr_horizon = 0;
        rc_.loss.kl_clamp = RL_KL_CLAMP_MART;
        rc_.repeat_question = true;
        fprintf(stderr, "\n$ mart train --model %s --data %s --task %s --algo %s --out %s "
                        "--steps %d --rollout-batch %d --n-samples %d --mini-batch %d "
                        "--max-tokens %d --actor-lr %g --critic-lr %g --kl-coef %g "
                        "--temperature %g --seed %lld --lr-horizon 0 --kl-clamp %g "
                        "--repeat-question\n",
                d_base, f_train, tasks[i], algo, d_run[i], rc_.steps, rc_.rollout_batch,
                rc_.n_samples, rc_.mini_batch, rc_.max_tokens, rc_.actor_lr, rc_.critic_lr,
                (double)rc_.loss.kl_coef, (double)rc_.temperature, (long long)seed,
                (double)RL_KL_CLAMP_MART);
        t0 = mart_now();
        if (!stage_done(tasks[i], rl_train(&rc_, &err), t0, &t_rl[i], &err))
            return cli_error("demo", &err);
    }
    /* the two RL models, and their shared base for reference */
    double acc[3][5];
    const char *eval_names[3] = {"single", "multi", "base"};
    for (int i = 0; i < 3; i++) {
        fprintf(stderr, "\n$ mart eval --model %s --bench %s --question-key problem --answer-key "
                        "answer --attempts 1-5 --max-tokens %d --out %s --name %s "
                        "--repeat-question\n",
                d_final[i], f_test, p->eval_tokens, d_eval[i], eval_names[i]);
        t0 = mart_now();
        rc = evaluate(d_final[i], eval_names[i], f_test, p->eval_tokens, d_eval[i], acc[i], &err);
        if (!stage_done("eval", rc, t0, &t_eval[i], &err)) return cli_error("demo", &err);
    }

    if (plot_attempts(out, acc[2], acc[0], acc[1], &err) != MART_OK ||
        plot_curves(out, d_run[0], d_run[1], &err) != MART_OK)
        return cli_error("demo", &err);
    double total = mart_now() - t_all;
    cJSON *res = cJSON_CreateObject();
    cJSON_AddItemToObject(res, "single", acc_json(acc[0]));
    cJSON_AddItemToObject(res, "multi", acc_json(acc[1]));
    cJSON_AddItemToObject(res, "base", acc_json(acc[2]));
    cJSON_AddNumberToObject(res, "seed", (double)seed);
    cJSON_AddBoolToObject(res, "quick", quick);
    cJSON_AddStringToObject(res, "algo", algo);
    cJSON *sec = cJSON_AddObjectToObject(res, "seconds");
    cJSON_AddNumberToObject(sec, "tasks", t_tasks);
    cJSON_AddNumberToObject(sec, "pretrain", t_pre);
    cJSON_AddNumberToObject(sec, "train_single", t_rl[0]);
    cJSON_AddNumberToObject(sec, "train_multi", t_rl[1]);
    cJSON_AddNumberToObject(sec, "eval_single", t_eval[0]);
    cJSON_AddNumberToObject(sec, "eval_multi", t_eval[1]);
    cJSON_AddNumberToObject(sec, "eval_base", t_eval[2]);
    cJSON_AddNumberToObject(sec, "total", total);
    char *text = cJSON_Print(res);
    cJSON_Delete(res);
    char path[4096];
    rc = mart_write_file_atomic(mart_path_join(path, sizeof path, out, "results.json"), text,
                                strlen(text), &err);
    free(text);
    if (rc != MART_OK) return cli_error("demo", &err);

    print_table(stdout, acc[2], acc[0], acc[1]);
    printf("\nstage times: tasks %.0fs, pretrain %.0fs, RL single %.0fs, RL multi %.0fs, eval "
           "%.0fs + %.0fs + %.0fs; total %.1f min\n", t_tasks, t_pre, t_rl[0], t_rl[1],
           t_eval[0], t_eval[1], t_eval[2], total / 60);
    printf("wrote %s/results.json, attempts.svg/.png, learning_curves.svg/.png\n", out);
    return 0;
}
