/* mart bench generate: decoding speed of the generation engine at batch 1 and batch 64 on
 * random models, beside this machine's limits measured by the same program: the memory read
 * bandwidth (what bounds batch 1: every decoded token reads all the weights), the sgemm peak
 * (what bounds large batches with float32 products) and the BF16 dot-product peak (the same
 * with BF16 products). Models with BF16 weights are timed both with BF16 products and with
 * exact (float32) products; batch 1 also with the small-M kernel turned off (plain sgemm),
 * the figure before it existed. */
#include "cli/cli.h"
#include "mart/gen.h"
#include "mart/safetensors.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_generate(int argc, char **argv);

/* Buffer for the bandwidth test: far larger than any cache. */
#define BW_BYTES ((size_t)1 << 30)
/* Square sgemm for the peak. */
#define PEAK_N 2048
/* BF16 dot-product peak: independent accumulators per thread (enough to cover the
 * instruction's latency) and iterations over them. */
#define DP_ACCS 16
#define DP_ITERS (1 << 21)

/* CPU seconds of the whole process (all threads). On a machine shared with other jobs, a
 * single-threaded run's CPU time is the time it would take alone, which the wall time is not. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best-of-3 read bandwidth in GB/s: a vectorised sum over a 1 GiB buffer on all threads. */
static double measure_bandwidth(double *per_cpu) {
    int64_t n = (int64_t)(BW_BYTES / sizeof(float));
    float *a = mart_aligned_alloc(BW_BYTES);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++)
        a[i] = (float)(i & 7);
    double best = 0.0, best_cpu = 0.0, sink = 0.0;
    int nt = omp_get_max_threads();
    for (int rep = 0; rep < 3; rep++) {
        double t0 = mart_now(), c0 = cpu_now();
        float s = 0.0f;
#pragma omp parallel for simd schedule(static) reduction(+ : s)
        for (int64_t i = 0; i < n; i++)
            s += a[i];
        double dt = mart_now() - t0, dc = (cpu_now() - c0) / nt;
        sink += s;
        best = (double)BW_BYTES / dt / 1e9 > best ? (double)BW_BYTES / dt / 1e9 : best;
        best_cpu = (double)BW_BYTES / dc / 1e9 > best_cpu ? (double)BW_BYTES / dc / 1e9 : best_cpu;
    }
    *per_cpu = best_cpu;
    mart_aligned_free(a);
    return sink >= 0 ? best : 0.0; /* the sum is used, so the loop is not removed */
}

/* Best-of-3 sgemm GFLOP/s at PEAK_N^3 (wall, and per CPU second of each thread). */
static double measure_sgemm_peak(double *per_cpu) {
    size_t n = (size_t)PEAK_N * PEAK_N;
    float *a = mart_aligned_alloc(n * sizeof(float)), *b = mart_aligned_alloc(n * sizeof(float)),
          *c = mart_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        a[i] = b[i] = (float)(i % 13) * 0.01f;
    double best = 0.0, best_cpu = 0.0, fl = 2.0 * PEAK_N * (double)PEAK_N * PEAK_N;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = mart_now(), c0 = cpu_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, PEAK_N, PEAK_N, PEAK_N, 1.0f, a,
                    PEAK_N, b, PEAK_N, 0.0f, c, PEAK_N);
        double g = fl / (mart_now() - t0) / 1e9;
        double gc = fl / ((cpu_now() - c0) / omp_get_max_threads()) / 1e9;
        best = g > best ? g : best;
        best_cpu = gc > best_cpu ? gc : best_cpu;
    }
    *per_cpu = best_cpu;
    mart_aligned_free(a);
    mart_aligned_free(b);
    mart_aligned_free(c);
    return best;
}

/* vdpbf16ps on registers: DP_ITERS x DP_ACCS instructions of 32 multiply-adds. */
__attribute__((target("avx512f,avx512bf16"))) static float dp_loop(float seed) {
    __m512 acc[DP_ACCS];
    for (int i = 0; i < DP_ACCS; i++)
        acc[i] = _mm512_set1_ps(seed * (float)i);
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
    for (int64_t it = 0; it < DP_ITERS; it++) {
        __asm__("" : "+v"(a)); /* a loop-carried value: the loop is not folded */
        for (int i = 0; i < DP_ACCS; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
    }
    __m512 s = acc[0];
    for (int i = 1; i < DP_ACCS; i++)
        s = _mm512_add_ps(s, acc[i]);
    return _mm512_reduce_add_ps(s);
}

/* Best-of-3 GFLOP/s of BF16 dot products on all threads (wall, and per CPU second of each
 * thread); 0 when the CPU lacks them. */
static double measure_dp_peak(double *per_cpu) {
    *per_cpu = 0.0;
    if (!mart_backend_cpu()->bf16_products_supported(mart_backend_cpu())) return 0.0;
    double best = 0.0, best_cpu = 0.0, sink = 0.0;
    int nt = omp_get_max_threads();
    double fl = 64.0 * DP_ACCS * (double)DP_ITERS * nt;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = mart_now(), c0 = cpu_now();
#pragma omp parallel reduction(+ : sink)
        sink += dp_loop((float)omp_get_thread_num());
        double g = fl / (mart_now() - t0) / 1e9, gc = fl / ((cpu_now() - c0) / nt) / 1e9;
        best = g > best ? g : best;
        best_cpu = gc > best_cpu ? gc : best_cpu;
    }
    *per_cpu = best_cpu;
    return sink == sink ? best : 0.0; /* the sums are used, so the loops are not removed */
}

/* Rounds the parameters to bfloat16 (a model with BF16 weights, as loaded from such a
 * checkpoint). */
static void round_to_bf16(float *a, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)st_f32_to_bf16(a[i]) << 16;
        memcpy(&a[i], &u, sizeof u);
    }
}

/* Decoding speed is the median step: other jobs on a shared machine only ever slow steps
 * down, so the median is the steadier estimate (the bandwidth is a best of 3 likewise). */
typedef struct {
    int64_t sampled;
    int32_t batch;
    double *t_step; /* (n_steps) when each step's last token was sampled */
    double *c_step; /* (n_steps) the process CPU time then */
    int32_t n_steps, cap;
} timing;

static gen_action on_token(void *ctx, gen_seq *seq, void *user, int32_t token, float logprob,
                           gen_finish finish) {
    timing *t = ctx;
    (void)seq, (void)user, (void)token, (void)logprob, (void)finish;
    if (++t->sampled % t->batch == 0 && t->n_steps < t->cap) {
        t->c_step[t->n_steps] = cpu_now();
        t->t_step[t->n_steps++] = mart_now();
    }
    return GEN_CONTINUE;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Decode tokens/s of `batch` sequences (prompt tokens each, then n_new sampled): batch over
 * the median wall time of the steps after the prefill, and over their median CPU time per
 * thread. */
static int decode_rate(model *m, int32_t batch, int32_t prompt, int32_t n_new, bool products,
                       double *rate, double *cpu_rate, mart_err *err) {
    gen_config gc;
    gen_config_default(&gc);
    gc.bf16_products = products;
    gc.max_batch = batch;
    gc.max_len = prompt + n_new + 1;
    gen_engine *g = NULL;
    if (gen_create(m, &gc, &g, err) != MART_OK) return MART_ERR;
    int32_t *toks = mart_xmalloc((size_t)batch * prompt * sizeof(int32_t));
    gen_request *reqs = mart_xcalloc((size_t)batch, sizeof *reqs);
    gen_result *res = mart_xcalloc((size_t)batch, sizeof *res);
    mart_rng r;
    mart_rng_seed(&r, 1, 0);
    for (int32_t i = 0; i < batch * prompt; i++)
        toks[i] = (int32_t)mart_rng_range(&r, 0, m->cfg.vocab_size - 1);
    for (int32_t i = 0; i < batch; i++)
        reqs[i] = (gen_request){toks + (int64_t)i * prompt, prompt, (uint64_t)i, NULL};
    gen_params p;
    gen_params_default(&p);
    p.max_new_tokens = n_new;
    timing t = {0,
                batch,
                mart_xmalloc((size_t)n_new * sizeof(double)),
                mart_xmalloc((size_t)n_new * sizeof(double)),
                0,
                n_new};
    int rc = gen_generate(g, reqs, batch, &p, on_token, &t, res, err);
    int32_t n_dt = t.n_steps - 1; /* step 0 ends the prefill */
    double *dt = mart_xmalloc((size_t)(n_dt > 0 ? n_dt : 1) * sizeof(double));
    for (int32_t i = 0; i < n_dt; i++)
        dt[i] = t.t_step[i + 1] - t.t_step[i];
    qsort(dt, (size_t)n_dt, sizeof *dt, cmp_double);
    *rate = n_dt > 0 ? batch / dt[n_dt / 2] : 0.0;
    for (int32_t i = 0; i < n_dt; i++)
        dt[i] = (t.c_step[i + 1] - t.c_step[i]) / omp_get_max_threads();
    qsort(dt, (size_t)n_dt, sizeof *dt, cmp_double);
    *cpu_rate = n_dt > 0 ? batch / dt[n_dt / 2] : 0.0;
    free(dt);
    free(t.t_step);
    free(t.c_step);
    for (int32_t i = 0; i < batch; i++)
        gen_result_free(&res[i]);
    gen_free(g);
    free(toks);
    free(reqs);
    free(res);
    return rc;
}

/* Random weights, uniform with standard deviation 0.02 and norms 1 (what model_init_random
 * gives, in distribution terms, much faster: speed does not depend on the values). */
static void fast_random_init(model *m) {
    const float a = 0.02f * 1.7320508f;
#pragma omp parallel
    {
        mart_rng r;
        mart_rng_seed(&r, 1, (uint64_t)omp_get_thread_num());
#pragma omp for schedule(static)
        for (int64_t i = 0; i < m->n_params; i++)
            m->params[i] = a * (2.0f * (float)(mart_rng_u64(&r) >> 40) / 16777216.0f - 1.0f);
    }
    int64_t d = m->cfg.hidden_size;
    for (int64_t j = 0; j < d; j++) {
        m->final_norm[j] = 1.0f;
        for (int32_t l = 0; l < m->cfg.n_layers; l++)
            m->layers[l].attn_norm[j] = m->layers[l].mlp_norm[j] = 1.0f;
    }
}

/* Bytes of weights one decoding step reads (every matrix product, the LM head included), at
 * 2 bytes per weight for BF16 models and 4 otherwise. */
static double weight_bytes(const model_config *c, bool bf16) {
    double d = c->hidden_size, qd = (double)c->n_heads * c->head_dim,
           kvd = (double)c->n_kv_heads * c->head_dim, f = c->intermediate_size;
    double n = c->n_layers * (d * (qd + 2 * kvd) + qd * d + 3 * d * f) + d * c->vocab_size;
    return n * (bf16 ? 2.0 : 4.0);
}

/* Decode rates of one setting: batch 1 and the large batch, wall clock and per CPU second. */
typedef struct {
    double r1, c1, rb, cb;
} rates;

static int measure_rates(model *m, int32_t big, int32_t prompt, int32_t n_new, bool products,
                         rates *r, mart_err *err) {
    int rc = decode_rate(m, 1, prompt, n_new, products, &r->r1, &r->c1, err);
    if (rc == MART_OK)
        rc = decode_rate(m, big, prompt, n_new / 2 > 3 ? n_new / 2 : 3, products, &r->rb, &r->cb,
                         err);
    return rc;
}

/* Prints one setting's rates beside the bandwidth bound (batch 1) and the compute bound of
 * the large batch (peak GFLOP/s over the flops of a token), wall clock [per CPU second]. */
static void print_rates(const char *label, const rates *r, int32_t big, double bound1,
                        double bound1c, const char *peak_name, double boundb, double boundbc) {
    printf("  %-15s batch 1:  %8.1f tok/s [%.1f] = %3.0f%% [%.0f%%] of the bandwidth bound "
           "%.1f [%.1f]\n",
           label, r->r1, r->c1, 100.0 * r->r1 / bound1, 100.0 * r->c1 / bound1c, bound1, bound1c);
    printf("  %-15s batch %-3d %8.1f tok/s [%.1f] = %4.1fx [%.1fx] batch 1; %3.0f%% [%.0f%%] of "
           "the %s bound %.0f [%.0f]\n",
           "", big, r->rb, r->cb, r->rb / r->r1, r->cb / r->c1, 100.0 * r->rb / boundb,
           100.0 * r->cb / boundbc, peak_name, boundb, boundbc);
}

int bench_generate(int argc, char **argv) {
    const char *configs = "small,qwen2.5-0.5b";
    int32_t n_new = 16, prompt = 16, big = 64;
    cli_opt opts[] = {
        {"configs", CLI_STR, &configs, "comma-separated built-in shapes (random weights)"},
        {"tokens", CLI_INT, &n_new, "new tokens per sequence"},
        {"prompt", CLI_INT, &prompt, "prompt tokens per sequence"},
        {"batch", CLI_INT, &big, "the large batch"},
    };
    int pr = cli_parse("bench generate", "[options]",
                       "Decode tokens/s at batch 1 and a large batch on random models (BF16 "
                       "weights when the shape's dtype is BF16: then with BF16 products and "
                       "with exact products), beside the memory read bandwidth, sgemm peak and "
                       "BF16 dot-product peak of this machine measured here.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    if (n_new < 2 || prompt < 1 || big < 1) {
        fprintf(stderr, "mart bench generate: --tokens > 1, --prompt and --batch positive\n");
        return 2;
    }
    double bw_cpu, bw = measure_bandwidth(&bw_cpu), peak_cpu, peak = measure_sgemm_peak(&peak_cpu);
    double dp_cpu, dp = measure_dp_peak(&dp_cpu);
    printf("machine: %d threads, memory read %.1f [%.1f] GB/s (1 GiB sum), sgemm peak %.0f "
           "[%.0f] GFLOP/s (%d^3), ",
           omp_get_max_threads(), bw, bw_cpu, peak, peak_cpu, PEAK_N);
    if (dp > 0)
        printf("BF16 dot-product peak %.0f [%.0f] GFLOP/s (vdpbf16ps on registers)\n", dp, dp_cpu);
    else
        printf("no BF16 dot products (AVX512_BF16) on this CPU\n");
    printf("(wall clock [per CPU second of each thread: steadier when the machine is shared]; "
           "decode rates from the median step)\n");
    fflush(stdout);
    char *list = mart_xstrdup(configs);
    int status = 0;
    for (char *name = strtok(list, ","); name && !status; name = strtok(NULL, ",")) {
        mart_err err = {{0}};
        model_config cfg;
        if (model_config_builtin(name, &cfg, &err) != MART_OK) {
            status = cli_error("bench generate", &err);
            break;
        }
        model *m = model_create(&cfg, false, false);
        fast_random_init(m);
        bool bf16 = cfg.dtype == MART_DTYPE_BF16, products = bf16 && dp > 0;
        if (bf16) round_to_bf16(m->params, m->n_params);
        double bytes = weight_bytes(&cfg, bf16);
        double flops = bytes / (bf16 ? 2.0 : 4.0) * 2.0; /* per token */
        double r1_sgemm = 0, c1_sgemm = 0;
        rates exact = {0}, bp = {0};
        m->be = mart_backend_cpu_sgemm_only(); /* the CPU tables share their buffers */
        int rc = decode_rate(m, 1, prompt, n_new / 4 > 3 ? n_new / 4 : 3, false, &r1_sgemm,
                             &c1_sgemm, &err);
        m->be = mart_backend_cpu();
        if (rc == MART_OK) rc = measure_rates(m, big, prompt, n_new, false, &exact, &err);
        if (rc == MART_OK && products) rc = measure_rates(m, big, prompt, n_new, true, &bp, &err);
        if (rc != MART_OK) {
            status = cli_error("bench generate", &err);
        } else {
            double bound1 = bw * 1e9 / bytes, bound1c = bw_cpu * 1e9 / bytes;
            printf("%-13s %6.1fM params, %s weights, %.0f MB read per step\n", name,
                   (double)m->n_params / 1e6, bf16 ? "BF16" : "F32", bytes / 1e6);
            if (products) {
                print_rates("BF16 products", &bp, big, bound1, bound1c, "BF16-dot-peak",
                            dp * 1e9 / flops, dp_cpu * 1e9 / flops);
                printf("  %-15s batch 1 and %d: %.2fx [%.2fx] and %.2fx [%.2fx] the exact "
                       "products' rates\n",
                       "", big, bp.r1 / exact.r1, bp.c1 / exact.c1, bp.rb / exact.rb,
                       bp.cb / exact.cb);
            }
            print_rates("exact products", &exact, big, bound1, bound1c, "sgemm-peak",
                        peak * 1e9 / flops, peak_cpu * 1e9 / flops);
            printf("  %-15s batch 1:  %8.1f tok/s [%.1f]\n", "sgemm path", r1_sgemm, c1_sgemm);
        }
        fflush(stdout);
        model_free(m);
    }
    free(list);
    return status;
}
