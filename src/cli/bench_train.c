/* mart bench train: times training steps (forward + backward + clipping + AdamW) of the
 * engine on the built-in benchmark shapes, with the batch shapes of issue #2, and prints
 * tokens/s, GFLOP/s (model FLOPs, counted as bench/torch_train_step.py counts them) and the
 * peak resident memory. bench/train_vs_torch.sh runs it beside the same step in PyTorch. */
#include "cli/cli.h"
#include "mart/model.h"

#include <stdlib.h>
#include <string.h>

int bench_train(int argc, char **argv);

typedef struct {
    const char *config;
    int32_t batch, seq_len;
} train_shape;

/* The benchmark shapes of issue #2. */
static const train_shape shapes[] = {{"small", 8, 256}, {"40m", 4, 512}};

/* Model FLOPs of one training step: 3 x forward (backward = 2 x forward), with the forward
 * counted as 2 FLOPs per multiply-add of every matrix product: the linear layers, the LM
 * head, and causal attention (q k^T and p v over the visible half: 2 L^2 hd per head). */
static double step_flops(const model_config *c, int32_t batch, int32_t len) {
    double d = c->hidden_size, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd;
    double per_layer = d * (qd + 2 * kvd) + qd * d + 3 * d * c->intermediate_size;
    double tokens = (double)batch * len;
    double linear = 2.0 * tokens * (c->n_layers * per_layer + d * c->vocab_size);
    double attn = 2.0 * c->n_layers * c->n_heads * hd * (double)len * len * batch;
    return 3.0 * (linear + attn);
}

static int run_shape(const train_shape *s, int32_t steps, uint64_t seed) {
    mart_err err = {{0}};
    model_config cfg;
    if (model_config_builtin(s->config, &cfg, &err)) return cli_error("bench train", &err);
    model *m = model_create(&cfg, false, true);
    model_init_random(m, seed);
    adamw_state opt;
    adamw_init(&opt, m->be, m->n_params);
    adamw_config ac = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
    int64_t T = (int64_t)s->batch * s->seq_len;
    int32_t *tokens = mart_xmalloc((size_t)T * sizeof(int32_t));
    int32_t *targets = mart_xmalloc((size_t)T * sizeof(int32_t));
    int32_t *offsets = mart_xmalloc((size_t)(s->batch + 1) * sizeof(int32_t));
    float *lp = mart_xmalloc((size_t)T * sizeof(float));
    float *dlp = mart_xmalloc((size_t)T * sizeof(float));
    mart_rng r;
    mart_rng_seed(&r, seed, 1);
    for (int64_t t = 0; t < T; t++)
        tokens[t] = (int32_t)mart_rng_range(&r, 0, cfg.vocab_size - 1);
    for (int32_t i = 0; i <= s->batch; i++)
        offsets[i] = i * s->seq_len;
    for (int64_t t = 0; t < T; t++) {
        bool last = (t + 1) % s->seq_len == 0;
        targets[t] = last ? -1 : tokens[t + 1];
        dlp[t] = last ? 0.0f : -1.0f / (float)(T - s->batch); /* mean cross-entropy */
    }
    model_batch b = {s->batch, tokens, offsets, NULL};
    model_out out = {0};
    out.targets = targets;
    out.logprobs = lp;

    /* Step 0 is a warm-up (first-touch page faults, BLAS buffers); steps 1.. are timed. */
    double t0 = 0, loss = 0;
    for (int32_t step = 0; step <= steps; step++) {
        if (step == 1) t0 = mart_now();
        model_zero_grads(m);
        if (model_forward(m, &b, NULL, &out, true, &err)) return cli_error("bench train", &err);
        model_backward(m, dlp, NULL, NULL);
        model_clip_grad_norm(m, 1.0f);
        model_adamw_step(m, &opt, &ac);
        loss = 0;
        for (int64_t t = 0; t < T; t++)
            loss += dlp[t] * lp[t];
    }
    double dt = (mart_now() - t0) / steps;
    double flops = step_flops(&cfg, s->batch, s->seq_len);
    printf("%-6s params %5.1fM  batch %dx%d  %8.1f ms/step  %9.0f tokens/s  %6.1f GFLOP/s  "
           "loss %.3f  peak RSS %.0f MiB\n",
           s->config, (double)m->n_params / 1e6, s->batch, s->seq_len, dt * 1e3, (double)T / dt,
           flops / dt / 1e9, loss, (double)mart_rss_bytes(true) / (1 << 20));
    fflush(stdout);
    free(tokens);
    free(targets);
    free(offsets);
    free(lp);
    free(dlp);
    adamw_free(&opt);
    model_free(m);
    return 0;
}

int bench_train(int argc, char **argv) {
    const char *config = "all";
    int32_t steps = 5;
    int64_t seed = 1;
    cli_opt opts[] = {
        {"config", CLI_STR, &config,
         "small (d 256, batch 8x256), 40m (d 512, vocab 32000, "
         "batch 4x512) or all"},
        {"steps", CLI_INT, &steps, "timed steps per config, after one warm-up step"},
        {"seed", CLI_INT64, &seed, "seed of the random weights and tokens"},
    };
    int rc = cli_parse("bench train", "[--config small|40m|all] [--steps N]",
                       "Times training steps (forward, backward, gradient clipping, AdamW) in FP32 "
                       "on random tokens and prints ms/step, tokens/s, model GFLOP/s (3 x forward "
                       "matrix-product FLOPs) and peak resident memory. Threads: OMP_NUM_THREADS.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    if (steps < 1) {
        fprintf(stderr, "mart bench train: --steps must be at least 1\n");
        return 2;
    }
    int n = (int)(sizeof shapes / sizeof shapes[0]), known = !strcmp(config, "all");
    for (int i = 0; i < n; i++)
        known |= !strcmp(config, shapes[i].config);
    if (!known) {
        fprintf(stderr, "mart bench train: unknown --config \"%s\" (small, 40m or all)\n", config);
        return 2;
    }
    printf("threads %d\n", mart_threads());
    for (int i = 0; i < n; i++)
        if (!strcmp(config, "all") || !strcmp(config, shapes[i].config))
            if (run_shape(&shapes[i], steps, (uint64_t)seed)) return 1;
    return 0;
}
