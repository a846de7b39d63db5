/* mart demo: the whole method on a tiny model, end to end, by chaining the stage commands
 * in-process exactly as a user would type them (each command line is printed first):
 *
 *   mart tasks    -> DIR/data/{train,test,sft}.jsonl
 *   mart pretrain -> DIR/base            (the shared base model)
 *   mart train    -> DIR/single, DIR/multi (identical arguments except --task)
 *   mart eval     -> DIR/eval_single, DIR/eval_multi (greedy, 1..5 attempts, test split)
 *
 * then DIR/results.json, the table on stdout, DIR/attempts.svg/.png (accuracy vs attempts,
 * both models) and DIR/learning_curves.svg/.png (training reward and accuracy of both runs).
 *
 * Nothing differs between the two RL runs but --task, and nothing in the evaluation differs
 * between the two models: the comparison is the paper's, at toy scale. */
#include "cli/cli.h"
#include "mart/plot.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The stage settings of one demo size. PLAN_FULL is the configuration measured in
 * docs/DEMO.md (about 12 minutes on 2 idle cores); --quick exercises every stage in
 * seconds. */
typedef struct {
    const char *n_train, *n_test, *n_sft, *sft_repeat;    /* mart tasks */
    const char *pt_steps, *pt_batch, *pt_lr, *pt_merges;  /* mart pretrain */
    const char *rl_steps, *rl_batch, *rl_samples, *rl_mini, *rl_lr, *critic_lr, *kl,
        *temperature, *max_tokens;                         /* mart train */
    const char *eval_tokens;                               /* mart eval */
} demo_plan;

static const demo_plan PLAN_FULL = {
    .n_train = "4000", .n_test = "500", .n_sft = "20000", .sft_repeat = "0.8",
    .pt_steps = "2000", .pt_batch = "32", .pt_lr = "3e-3", .pt_merges = "512",
    .rl_steps = "100", .rl_batch = "64", .rl_samples = "4", .rl_mini = "64", .rl_lr = "3e-4",
    .critic_lr = "1e-3", .kl = "0.05", .temperature = "1.0", .max_tokens = "200",
    .eval_tokens = "200",
};

static const demo_plan PLAN_QUICK = {
    .n_train = "16", .n_test = "4", .n_sft = "100", .sft_repeat = "0.8",
    .pt_steps = "6", .pt_batch = "4", .pt_lr = "3e-3", .pt_merges = "64",
    .rl_steps = "1", .rl_batch = "2", .rl_samples = "2", .rl_mini = "4", .rl_lr = "3e-4",
    .critic_lr = "1e-3", .kl = "0", .temperature = "1.0", .max_tokens = "32",
    .eval_tokens = "32",
};

/* Runs one stage: prints the command line, calls the command, times it. */
static int stage(const char *name, int (*run)(int, char **), char **argv, double *seconds) {
    int argc = 0;
    fprintf(stderr, "\n$ mart");
    while (argv[argc]) fprintf(stderr, " %s", argv[argc++]);
    fprintf(stderr, "\n");
    double t0 = mart_now();
    int rc = run(argc, argv);
    *seconds = mart_now() - t0;
    if (rc != 0) fprintf(stderr, "mart demo: stage '%s' failed (exit %d)\n", name, rc);
    else fprintf(stderr, "mart demo: %s done in %.1fs\n", name, *seconds);
    return rc;
}

/* Reads "average" {"1":..,"5":..} of an eval results.json into acc[0..4] (NaN if absent). */
static int read_eval(const char *dir, double acc[5], mart_err *err) {
    char path[4096], *text = NULL;
    size_t len;
    for (int k = 0; k < 5; k++) acc[k] = NAN;
    if (mart_read_file(mart_path_join(path, sizeof path, dir, "results.json"), &text, &len,
                       err) != MART_OK)
        return MART_ERR;
    cJSON *o = cJSON_Parse(text);
    free(text);
    const cJSON *avg = o ? cJSON_GetObjectItem(o, "average") : NULL;
    if (!cJSON_IsObject(avg)) {
        cJSON_Delete(o);
        return mart_fail(err, "%s: no \"average\" object", path);
    }
    for (int k = 0; k < 5; k++) {
        char key[16];
        snprintf(key, sizeof key, "%d", k + 1);
        const cJSON *v = cJSON_GetObjectItem(avg, key);
        if (cJSON_IsNumber(v)) acc[k] = v->valuedouble;
    }
    cJSON_Delete(o);
    return MART_OK;
}

/* Loads one metrics.jsonl column (NaN where missing) as a series over "step". */
static int read_curve(const char *run_dir, const char *key, double **x, double **y, int32_t *n,
                      mart_err *err) {
    char path[4096];
    cJSON **objs;
    int64_t m;
    if (mart_jsonl_load(mart_path_join(path, sizeof path, run_dir, "metrics.jsonl"), &objs, &m,
                        err) != MART_OK)
        return MART_ERR;
    *x = mart_xmalloc((size_t)(m ? m : 1) * sizeof(double));
    *y = mart_xmalloc((size_t)(m ? m : 1) * sizeof(double));
    for (int64_t i = 0; i < m; i++) {
        const cJSON *s = cJSON_GetObjectItem(objs[i], "step"), *v = cJSON_GetObjectItem(objs[i], key);
        (*x)[i] = cJSON_IsNumber(s) ? s->valuedouble : (double)(i + 1);
        (*y)[i] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    }
    *n = (int32_t)m;
    mart_jsonl_free(objs, m);
    return MART_OK;
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
    double *x[4] = {0}, *y[4] = {0};
    int32_t n[4] = {0};
    int rc = read_curve(run_multi, "reward_mean", &x[0], &y[0], &n[0], err);
    if (rc == MART_OK) rc = read_curve(run_single, "reward_mean", &x[1], &y[1], &n[1], err);
    if (rc == MART_OK) rc = read_curve(run_multi, "accuracy", &x[2], &y[2], &n[2], err);
    if (rc == MART_OK) rc = read_curve(run_single, "accuracy", &x[3], &y[3], &n[3], err);
    if (rc == MART_OK) {
        plot_series s[4] = {{"multi-attempt: reward", x[0], y[0], n[0]},
                            {"single-turn: reward", x[1], y[1], n[1]},
                            {"multi-attempt: solved", x[2], y[2], n[2]},
                            {"single-turn: solved", x[3], y[3], n[3]}};
        plot_spec spec;
        plot_spec_default(&spec);
        spec.title = "mart demo: RL training curves (reward and fraction of episodes solved)";
        spec.xlabel = "RL step";
        spec.ylabel = "mean reward / fraction solved";
        spec.x_integer = true;
        char base[4096];
        rc = plot_write_svg_png(&spec, s, 4,
                                mart_path_join(base, sizeof base, out, "learning_curves"), err);
    }
    for (int i = 0; i < 4; i++) free(x[i]), free(y[i]);
    return rc;
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

int cmd_demo(int argc, char **argv) {
    const char *out = "mart-demo", *algo = "grpo";
    int64_t seed = 0;
    bool quick = false;
    cli_opt opts[] = {
        {"out", CLI_STR, &out, "output folder (created)"},
        {"seed", CLI_INT64, &seed, "seed of every stage: the same seed gives the same table"},
        {"quick", CLI_FLAG, &quick, "a seconds-long run through every stage (CI); the result "
                                    "means nothing"},
        {"algo", CLI_STR, &algo, "RL algorithm of both runs: ppo or grpo"},
    };
    int rc = cli_parse("demo", "[--out DIR] [--seed S] [--quick]",
                       "Reproduces the paper's finding with a tiny model on a CPU: builds the "
                       "synthetic math task, pretrains a base model, trains it with RL once on the "
                       "single-turn task and once on the multi-attempt task (1..5 attempts), and "
                       "evaluates both with 1..5 attempts. About 12 minutes on two idle cores.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    const demo_plan *p = quick ? &PLAN_QUICK : &PLAN_FULL;
    if (mart_mkdirs(out, &err) != MART_OK) return cli_error("demo", &err);
    char s_seed[32], d_data[4096], f_train[4096], f_test[4096], f_sft[4096], d_base[4096];
    char d_run[2][4096], d_final[3][4096], d_eval[3][4096];
    snprintf(s_seed, sizeof s_seed, "%lld", (long long)seed);
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
    double t_all = mart_now(), t_tasks = 0, t_pre = 0, t_rl[2] = {0}, t_eval[3] = {0};

    char *a_tasks[] = {"tasks", "--out", d_data, "--seed", s_seed, "--n-train", (char *)p->n_train,
                       "--n-test", (char *)p->n_test, "--n-sft", (char *)p->n_sft,
                       "--sft-repeat", (char *)p->sft_repeat, NULL};
    if (stage("tasks", cmd_tasks, a_tasks, &t_tasks)) return 1;
    char *a_pre[] = {"pretrain", "--data", f_sft, "--out", d_base, "--config", "tiny",
                     "--steps", (char *)p->pt_steps, "--batch", (char *)p->pt_batch,
                     "--lr", (char *)p->pt_lr, "--merges", (char *)p->pt_merges,
                     "--seed", s_seed, "--repeat-question", NULL};
    if (stage("pretrain", cmd_pretrain, a_pre, &t_pre)) return 1;
    for (int i = 0; i < 2; i++) {
        char *a_rl[] = {"train", "--model", d_base, "--data", f_train, "--task", (char *)tasks[i],
                        "--algo", (char *)algo, "--out", d_run[i],
                        "--steps", (char *)p->rl_steps, "--rollout-batch", (char *)p->rl_batch,
                        "--n-samples", (char *)p->rl_samples, "--mini-batch", (char *)p->rl_mini,
                        "--max-tokens", (char *)p->max_tokens, "--actor-lr", (char *)p->rl_lr,
                        "--critic-lr", (char *)p->critic_lr, "--kl-coef", (char *)p->kl,
                        "--temperature", (char *)p->temperature, "--seed", s_seed,
                        "--lr-horizon", "0", "--kl-clamp", "10", "--repeat-question", NULL};
        if (stage(tasks[i], cmd_train, a_rl, &t_rl[i])) return 1;
    }
    /* the two RL models, and their shared base for reference */
    double acc[3][5];
    const char *eval_names[3] = {"eval single", "eval multi", "eval base"};
    for (int i = 0; i < 3; i++) {
        char *a_ev[] = {"eval", "--model", d_final[i], "--bench", f_test, "--question-key",
                        "problem", "--answer-key", "answer", "--attempts", "1-5",
                        "--max-tokens", (char *)p->eval_tokens, "--out", d_eval[i],
                        "--repeat-question", NULL};
        if (stage(eval_names[i], cmd_eval, a_ev, &t_eval[i])) return 1;
        if (read_eval(d_eval[i], acc[i], &err) != MART_OK) return cli_error("demo", &err);
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
