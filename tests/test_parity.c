/* Parity with an independent PyTorch implementation (tests/ref/torch_ref.py): random
 * Qwen2 (biases, tied embeddings) and Llama (no biases, untied) models, in F32 and BF16
 * files, at a tiny and a small size, are loaded with model_load; per-token log-probs and
 * entropies, and the gradients of the weighted objectives sum_t w_t * logprob_t and
 * sum_t u_t * entropy_t must match the float64 reference (entropy is held to the same
 * absolute tolerance as log-probs). Skipped, with the reason printed, only when /usr/bin/python3
 * has no torch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mart/model.h"
#include "mart/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PYTHON "/usr/bin/python3"
/* The tolerances: log-probs within 1e-4 absolute, gradients within 1e-3 relative. */
#define LOGPROB_ABS_TOL 1e-4
#define GRAD_REL_TOL 1e-3
/* Elementwise: |g - g_ref| <= GRAD_REL_TOL * |g_ref| + floor, floor = GRAD_FLOOR * max|g_ref|
 * of that tensor, so elements that are tiny next to their tensor's scale (where float32
 * cancellation dominates) do not fail a correct gradient. */
#define GRAD_FLOOR 1e-4

static char ref_dir[256];
static bool have_torch = false;

static int generate_references(void **state) {
    (void)state;
    if (system(PYTHON " -c 'import torch' >/dev/null 2>&1") != 0) {
        printf("parity tests skipped: " PYTHON " cannot import torch\n");
        return 0;
    }
    have_torch = true;
    snprintf(ref_dir, sizeof ref_dir, "/tmp/mart_test_parity_XXXXXX");
    if (!mkdtemp(ref_dir)) return -1;
    const char *src = getenv("MART_SOURCE_DIR");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, PYTHON " %s/tests/ref/torch_ref.py %s >/dev/null",
             src ? src : ".", ref_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "reference generation failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

static int remove_references(void **state) {
    (void)state;
    mart_err err;
    return ref_dir[0] ? mart_remove_tree(ref_dir, &err) : 0;
}

typedef struct {
    int32_t n_seqs, n_tokens;
    int32_t *tokens, *offsets, *targets;
    float *weights, *ent_weights; /* (n_tokens) of sum w*logprob and of sum u*entropy */
} parity_batch;

static int32_t *json_ints(const cJSON *a, int32_t *n) {
    *n = cJSON_GetArraySize(a);
    int32_t *v = mart_xmalloc((size_t)*n * sizeof *v + 1);
    int32_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next)
        v[i++] = (int32_t)e->valuedouble;
    return v;
}

static float *json_floats(const cJSON *a, int32_t n) {
    assert_int_equal(cJSON_GetArraySize(a), n);
    float *v = mart_xmalloc((size_t)n * sizeof *v + 1);
    int32_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next)
        v[i++] = (float)e->valuedouble;
    return v;
}

static void load_batch(const char *dir, parity_batch *b) {
    char path[512], *text;
    mart_err err;
    assert_int_equal(
        mart_read_file(mart_path_join(path, sizeof path, dir, "batch.json"), &text, NULL, &err),
        MART_OK);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    int32_t n_off;
    b->tokens = json_ints(cJSON_GetObjectItem(root, "tokens"), &b->n_tokens);
    b->offsets = json_ints(cJSON_GetObjectItem(root, "offsets"), &n_off);
    b->n_seqs = n_off - 1;
    b->weights = json_floats(cJSON_GetObjectItem(root, "weights"), b->n_tokens);
    b->ent_weights = json_floats(cJSON_GetObjectItem(root, "ent_weights"), b->n_tokens);
    cJSON_Delete(root);
    /* next-token targets inside each sequence; none at a sequence's last token */
    b->targets = mart_xmalloc((size_t)b->n_tokens * sizeof *b->targets);
    for (int32_t s = 0; s < b->n_seqs; s++)
        for (int32_t t = b->offsets[s]; t < b->offsets[s + 1]; t++)
            b->targets[t] = t + 1 < b->offsets[s + 1] ? b->tokens[t + 1] : -1;
}

static void free_batch(parity_batch *b) {
    free(b->tokens);
    free(b->offsets);
    free(b->targets);
    free(b->weights);
    free(b->ent_weights);
}

static float *ref_tensor(const st_file *ref, const char *name, int64_t numel) {
    const st_view *v = st_find(ref, name);
    if (!v) fail_msg("reference has no tensor \"%s\"", name);
    int64_t n = 1;
    for (int32_t i = 0; i < v->ndim; i++)
        n *= v->shape[i];
    assert_int_equal(n, numel);
    float *out = mart_xmalloc((size_t)n * sizeof *out);
    st_to_f32(v, out);
    return out;
}

/* Largest |x - ref| over the positions where mask is NULL or mask[t] >= 0. */
static double max_abs_diff(const char *label, const float *x, const st_file *ref, const char *name,
                           int32_t n, const int32_t *mask) {
    float *r = ref_tensor(ref, name, n);
    double worst = 0;
    int32_t at = -1;
    for (int32_t t = 0; t < n; t++) {
        if (mask && mask[t] < 0) continue;
        double e = fabs((double)x[t] - (double)r[t]);
        if (!(e <= worst)) worst = e, at = t;
    }
    free(r);
    printf("%s: max |%s - ref| = %.3g (token %d)\n", label, name, worst, at);
    return worst;
}

/* Compares m->grads with the reference tensors "<prefix><name>"; returns the worst
 * per-tensor relative error ||g - g_ref|| / ||g_ref|| and checks every element. */
static double compare_grads(const char *label, const model *m, const st_file *ref,
                            const char *prefix, bool *elem_ok) {
    double worst_rel = 0;
    const char *worst_name = "";
    for (int32_t i = 0; i < m->n_tensors; i++) {
        const model_tensor *t = &m->tensors[i];
        if (m->cfg.tie_word_embeddings && !strcmp(t->name, "lm_head.weight")) continue;
        char gname[160];
        snprintf(gname, sizeof gname, "%s%s", prefix, t->name);
        float *g_ref = ref_tensor(ref, gname, t->numel);
        const float *g = m->grads + t->offset;
        double diff2 = 0, ref2 = 0, max_ref = 0;
        for (int64_t k = 0; k < t->numel; k++) {
            double d = (double)g[k] - (double)g_ref[k];
            diff2 += d * d;
            ref2 += (double)g_ref[k] * g_ref[k];
            if (fabs(g_ref[k]) > max_ref) max_ref = fabs(g_ref[k]);
        }
        double rel = sqrt(diff2) / (sqrt(ref2) + 1e-30);
        if (!(rel <= worst_rel)) worst_rel = rel, worst_name = t->name;
        for (int64_t k = 0; k < t->numel; k++) {
            double d = fabs((double)g[k] - (double)g_ref[k]);
            if (!(d <= GRAD_REL_TOL * fabs(g_ref[k]) + GRAD_FLOOR * max_ref)) {
                if (*elem_ok)
                    printf("%s: %s[%lld] = %.6g, reference %.6g\n", label, gname, (long long)k,
                           (double)g[k], (double)g_ref[k]);
                *elem_ok = false;
                break;
            }
        }
        free(g_ref);
    }
    printf("%s: max ||%s* - ref|| / ||ref|| = %.3g (%s)\n", label, prefix, worst_rel, worst_name);
    return worst_rel;
}

static void check_case(const char *name) {
    if (!have_torch) skip();
    char dir[512], path[512];
    mart_path_join(dir, sizeof dir, ref_dir, name);
    mart_err err = {{0}};
    model *m = NULL;
    if (model_load(dir, true, &m, &err) != MART_OK) fail_msg("model_load: %s", err.msg);
    parity_batch b;
    load_batch(dir, &b);
    st_file *ref;
    if (st_open(mart_path_join(path, sizeof path, dir, "ref.safetensors"), &ref, &err) != MART_OK)
        fail_msg("%s", err.msg);

    float *lp = mart_xcalloc((size_t)b.n_tokens, sizeof *lp);
    float *ent = mart_xcalloc((size_t)b.n_tokens, sizeof *ent);
    model_batch batch = {.n_seqs = b.n_seqs, .tokens = b.tokens, .offsets = b.offsets};
    model_out out = {.targets = b.targets, .logprobs = lp, .entropy = ent};
    if (model_forward(m, &batch, NULL, &out, true, &err) != MART_OK)
        fail_msg("model_forward: %s", err.msg);
    double lp_err = max_abs_diff(name, lp, ref, "logprobs", b.n_tokens, b.targets);
    double ent_err = max_abs_diff(name, ent, ref, "entropy", b.n_tokens, NULL);
    bool elem_ok = true;
    model_zero_grads(m);
    model_backward(m, b.weights, NULL, NULL);
    double rel = compare_grads(name, m, ref, "grad.", &elem_ok);
    /* the entropy objective, from a fresh forward pass */
    if (model_forward(m, &batch, NULL, &out, true, &err) != MART_OK)
        fail_msg("model_forward: %s", err.msg);
    model_zero_grads(m);
    model_backward(m, NULL, b.ent_weights, NULL);
    double rel_ent = compare_grads(name, m, ref, "grad_entropy.", &elem_ok);

    free(lp);
    free(ent);
    st_close(ref);
    free_batch(&b);
    model_free(m);
    assert_true(lp_err <= LOGPROB_ABS_TOL);
    assert_true(ent_err <= LOGPROB_ABS_TOL);
    assert_true(rel <= GRAD_REL_TOL);
    assert_true(rel_ent <= GRAD_REL_TOL);
    assert_true(elem_ok);
}

static void qwen2_tiny_f32_sharded_matches_pytorch(void **state) {
    (void)state;
    check_case("qwen2_tiny_f32");
}
static void qwen2_tiny_bf16_matches_pytorch(void **state) {
    (void)state;
    check_case("qwen2_tiny_bf16");
}
static void llama_tiny_f32_matches_pytorch(void **state) {
    (void)state;
    check_case("llama_tiny_f32");
}
static void llama_tiny_bf16_matches_pytorch(void **state) {
    (void)state;
    check_case("llama_tiny_bf16");
}
static void qwen2_small_f32_matches_pytorch(void **state) {
    (void)state;
    check_case("qwen2_small_f32");
}
static void qwen2_small_bf16_matches_pytorch(void **state) {
    (void)state;
    check_case("qwen2_small_bf16");
}
static void llama_small_f32_matches_pytorch(void **state) {
    (void)state;
    check_case("llama_small_f32");
}
static void llama_small_bf16_matches_pytorch(void **state) {
    (void)state;
    check_case("llama_small_bf16");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qwen2_tiny_f32_sharded_matches_pytorch),
        cmocka_unit_test(qwen2_tiny_bf16_matches_pytorch),
        cmocka_unit_test(llama_tiny_f32_matches_pytorch),
        cmocka_unit_test(llama_tiny_bf16_matches_pytorch),
        cmocka_unit_test(qwen2_small_f32_matches_pytorch),
        cmocka_unit_test(qwen2_small_bf16_matches_pytorch),
        cmocka_unit_test(llama_small_f32_matches_pytorch),
        cmocka_unit_test(llama_small_bf16_matches_pytorch),
    };
    return cmocka_run_group_tests(tests, generate_references, remove_references);
}
