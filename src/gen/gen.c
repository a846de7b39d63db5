/* gen: the generation engine (see mart/gen.h).
 *
 * One step of the scheduler:
 *   1. admission: every free KV slot takes the next waiting request (input order); a
 *      request whose prompt equals a live sequence's prompt shares that prefill;
 *   2. every live sequence with tokens not yet in its cache (a prompt, appended tokens, or
 *      the token sampled last step) puts them into one packed model_batch with its slot;
 *   3. one model_forward with last_only logits;
 *   4. every sequence whose pending tokens are all in now samples one token from its row
 *      (in parallel: each has its own RNG stream), then the callbacks run one at a time;
 *   5. finished sequences free their slots.
 * A sequence samples from its own (seed, stream) generator, one uniform number per token,
 * so its output does not depend on the rest of the batch. */
#include "gen/gen_sample.h"

#include <assert.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Tokens packed into one forward pass at most: long prompts are prefilled in chunks so the
 * activation buffers stay bounded (~70 KB per token for a 0.5B model). */
#define GEN_STEP_TOKENS 4096

struct gen_seq {
    gen_engine *g;
    const gen_request *req;
    gen_result *res;
    int32_t res_cap;
    int32_t slot;
    int32_t len;   /* tokens in the sequence: prompt + res->n_tokens */
    int32_t *pend; /* (n_pend) tokens not yet in the KV cache */
    int32_t n_pend, cap_pend;
    int32_t budget; /* sampled tokens left */
    mart_rng rng;
    struct gen_seq *leader; /* live sequence with the same prompt whose prefill this one
                               waits for, or NULL */
    int32_t row;            /* logits row this step, or -1 (nothing to sample) */
    int32_t group;          /* first request index with the same prompt */
    bool live, in_callback;
    int32_t tok; /* sampled this step */
    float lp;
};

struct gen_engine {
    model *m;
    gen_config cfg;
    int32_t n_slots;
    model_kv_cache kv;
    float *logits;     /* (n_slots, vocab) */
    gen_cand *scratch; /* (n_threads, vocab) sampler work space */
    int32_t n_threads;
    int32_t *tokens, *offsets, *slots; /* the packed batch: (GEN_STEP_TOKENS), (n_slots + 1) */
};

void gen_config_default(gen_config *c) {
    c->max_batch = 64;
    c->kv_budget_mb = 4096;
    c->max_len = 2048;
    c->bf16_weights = true;
    c->bf16_products = true;
}

void gen_params_default(gen_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->top_k = 0;
    p->seed = 0;
    p->max_new_tokens = 256;
}

void gen_result_free(gen_result *r) {
    if (!r) return;
    free(r->tokens);
    free(r->logprobs);
    free(r->sampled);
    memset(r, 0, sizeof *r);
}

/* Bytes of KV cache one position takes (keys and values, every layer, float32). */
static int64_t kv_bytes_per_token(const model_config *c) {
    return 2 * (int64_t)c->n_layers * c->n_kv_heads * c->head_dim * (int64_t)sizeof(float);
}

int gen_create(model *m, const gen_config *c, gen_engine **out, mart_err *err) {
    *out = NULL;
    if (c->max_batch <= 0 || c->max_len <= 1)
        return mart_fail(err, "generation: max_batch (%d) must be positive and max_len (%d) > 1",
                         c->max_batch, c->max_len);
    int64_t per_slot = kv_bytes_per_token(&m->cfg) * c->max_len;
    int64_t budget = c->kv_budget_mb * 1024 * 1024;
    int64_t fit = per_slot > 0 ? budget / per_slot : c->max_batch;
    if (fit < 1)
        return mart_fail(err,
                         "generation: KV-cache budget of %lld MB cannot hold one sequence of "
                         "max_len %d (needs %.1f MB); raise the budget or lower max_len",
                         (long long)c->kv_budget_mb, c->max_len,
                         (double)per_slot / (1024.0 * 1024.0));
    gen_engine *g = mart_xcalloc(1, sizeof *g);
    g->m = m;
    g->cfg = *c;
    g->n_slots = fit < c->max_batch ? (int32_t)fit : c->max_batch;
    if (model_kv_create(&g->kv, m, g->n_slots, c->max_len, err) != MART_OK) {
        free(g);
        return mart_fail_wrap(err, "generation");
    }
    int64_t V = m->cfg.vocab_size;
    g->logits = mart_aligned_alloc((size_t)(g->n_slots * V) * sizeof(float));
    g->n_threads = omp_get_max_threads();
    g->scratch = mart_xmalloc((size_t)(g->n_threads * V) * sizeof(gen_cand));
    g->tokens = mart_xmalloc((size_t)GEN_STEP_TOKENS * sizeof(int32_t));
    g->offsets = mart_xmalloc((size_t)(g->n_slots + 1) * sizeof(int32_t));
    g->slots = mart_xmalloc((size_t)g->n_slots * sizeof(int32_t));
    if (c->bf16_weights) model_bf16_acquire(m);
    *out = g;
    return MART_OK;
}

void gen_free(gen_engine *g) {
    if (!g) return;
    if (g->cfg.bf16_weights) model_bf16_release(g->m);
    model_kv_free(&g->kv);
    mart_aligned_free(g->logits);
    free(g->scratch);
    free(g->tokens);
    free(g->offsets);
    free(g->slots);
    free(g);
}

/* Number of sequences decoded together (max_batch, or fewer when the KV budget is smaller). */
int32_t gen_slots(const gen_engine *g) {
    return g->n_slots;
}

/* ---- sequences ---- */

static void pend_push(gen_seq *s, const int32_t *t, int32_t n) {
    if (s->n_pend + n > s->cap_pend) {
        s->cap_pend = 2 * (s->n_pend + n) + 16;
        s->pend = mart_xrealloc(s->pend, (size_t)s->cap_pend * sizeof(int32_t));
    }
    memcpy(s->pend + s->n_pend, t, (size_t)n * sizeof(int32_t));
    s->n_pend += n;
}

static void result_push(gen_seq *s, int32_t tok, float lp, bool sampled) {
    gen_result *r = s->res;
    if (r->n_tokens == s->res_cap) {
        s->res_cap = 2 * s->res_cap + 16;
        r->tokens = mart_xrealloc(r->tokens, (size_t)s->res_cap * sizeof(int32_t));
        r->logprobs = mart_xrealloc(r->logprobs, (size_t)s->res_cap * sizeof(float));
        r->sampled = mart_xrealloc(r->sampled, (size_t)s->res_cap);
    }
    r->tokens[r->n_tokens] = tok;
    r->logprobs[r->n_tokens] = lp;
    r->sampled[r->n_tokens] = sampled;
    r->n_tokens++;
    r->n_sampled += sampled;
    s->len++;
}

int gen_seq_append(gen_seq *seq, const int32_t *tokens, int32_t n) {
    assert(seq->in_callback && n >= 0);
    const model_config *c = &seq->g->m->cfg;
    if ((int64_t)seq->len + n > seq->g->cfg.max_len) return MART_ERR;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= c->vocab_size) return MART_ERR;
    for (int32_t i = 0; i < n; i++)
        result_push(seq, tokens[i], 0.0f, false);
    pend_push(seq, tokens, n);
    return MART_OK;
}

int32_t gen_seq_budget_left(const gen_seq *seq) {
    return seq->budget;
}

/* ---- requests ---- */

static bool same_prompt(const gen_request *a, const gen_request *b) {
    return a->n_prompt == b->n_prompt &&
           !memcmp(a->prompt, b->prompt, (size_t)a->n_prompt * sizeof(int32_t));
}

static uint64_t prompt_hash(const gen_request *r) {
    return mart_fnv1a(MART_FNV_OFFSET, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
}

static int hash_cmp(const void *pa, const void *pb) {
    const uint64_t *a = pa, *b = pb; /* (hash, index) pairs */
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

/* group[i] = the first request with the same prompt as request i. */
static void group_prompts(const gen_request *reqs, int32_t n, int32_t *group) {
    uint64_t *hs = mart_xmalloc((size_t)n * 2 * sizeof(uint64_t));
    for (int32_t i = 0; i < n; i++) {
        hs[2 * i] = prompt_hash(&reqs[i]);
        hs[2 * i + 1] = (uint64_t)i;
        group[i] = i;
    }
    qsort(hs, (size_t)n, 2 * sizeof(uint64_t), hash_cmp);
    for (int32_t a = 0; a < n;) {
        int32_t b = a;
        while (b < n && hs[2 * b] == hs[2 * a])
            b++;
        for (int32_t i = a; i < b; i++) {
            int32_t ri = (int32_t)hs[2 * i + 1];
            for (int32_t j = a; j < i; j++) {
                int32_t rj = (int32_t)hs[2 * j + 1];
                if (group[rj] == rj && same_prompt(&reqs[ri], &reqs[rj])) {
                    group[ri] = rj;
                    break;
                }
            }
        }
        a = b;
    }
    free(hs);
}

static int check_request(const gen_engine *g, const gen_request *r, int32_t i, mart_err *err) {
    const model_config *c = &g->m->cfg;
    if (r->n_prompt < 1) return mart_fail(err, "generation: request %d has an empty prompt", i);
    if (r->n_prompt >= g->cfg.max_len)
        return mart_fail(err,
                         "generation: request %d: prompt of %d tokens does not fit max_len %d "
                         "(room is needed for at least one new token)",
                         i, r->n_prompt, g->cfg.max_len);
    for (int32_t t = 0; t < r->n_prompt; t++)
        if (r->prompt[t] < 0 || r->prompt[t] >= c->vocab_size)
            return mart_fail(err,
                             "generation: request %d position %d: token id %d is outside the "
                             "vocabulary [0, %d)",
                             i, t, r->prompt[t], c->vocab_size);
    return MART_OK;
}

static int check_params(const gen_params *p, mart_err *err) {
    if (!(p->temperature >= 0.0f))
        return mart_fail(err, "generation: temperature %g must be >= 0", (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return mart_fail(err, "generation: top_p %g must be in (0, 1]", (double)p->top_p);
    if (p->top_k < 0) return mart_fail(err, "generation: top_k %d must be >= 0", p->top_k);
    if (p->max_new_tokens < 1)
        return mart_fail(err, "generation: max_new_tokens %d must be >= 1", p->max_new_tokens);
    if (p->n_stop_ids > 0 && !p->stop_ids)
        return mart_fail(err, "generation: %d stop ids given without an array", p->n_stop_ids);
    return MART_OK;
}

/* Puts request i into slot; shares the prefill of a live sequence with the same prompt. */
static void admit(gen_engine *g, gen_seq *seqs, gen_seq **by_slot, int32_t i, int32_t slot,
                  const gen_params *p) {
    gen_seq *s = &seqs[i];
    s->slot = slot;
    s->live = true;
    s->len = s->req->n_prompt;
    s->budget = p->max_new_tokens;
    s->row = -1;
    mart_rng_seed(&s->rng, p->seed, s->req->stream);
    g->kv.len[slot] = 0;
    by_slot[slot] = s;
    for (int32_t k = 0; k < g->n_slots; k++) {
        gen_seq *o = by_slot[k];
        if (!o || o == s || o->group != s->group || o->leader) continue;
        int32_t np = s->req->n_prompt;
        if (o->res->n_tokens == 0 && g->kv.len[o->slot] < np) {
            s->leader = o; /* o is still prefilling: take its cache and logits when done */
            return;
        }
        if (g->kv.len[o->slot] >= np - 1) {
            model_kv_copy(&g->kv, slot, o->slot, np - 1);
            pend_push(s, s->req->prompt + np - 1, 1);
            return;
        }
    }
    pend_push(s, s->req->prompt, s->req->n_prompt);
}

static bool is_stop(const gen_params *p, int32_t tok) {
    for (int32_t i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] == tok) return true;
    return false;
}

/* Records the token sampled for s, runs the callback; returns true when s is finished. */
static bool after_sample(gen_seq *s, const gen_params *p, gen_callback cb, void *ctx) {
    const int32_t max_len = s->g->cfg.max_len;
    result_push(s, s->tok, s->lp, true);
    s->budget--;
    gen_finish fin = is_stop(p, s->tok)                    ? GEN_FINISH_STOP
                     : s->budget == 0 || s->len >= max_len ? GEN_FINISH_LENGTH
                                                           : GEN_FINISH_NONE;
    pend_push(s, &s->tok, 1);
    int32_t before = s->res->n_tokens;
    gen_action act = GEN_CONTINUE;
    if (cb) {
        s->in_callback = true;
        act = cb(ctx, s, s->req->user, s->tok, s->lp, fin);
        s->in_callback = false;
    }
    bool appended = s->res->n_tokens > before;
    if (act == GEN_STOP) {
        s->res->finish = fin != GEN_FINISH_NONE ? fin : GEN_FINISH_STOP;
        return true;
    }
    if (appended && fin == GEN_FINISH_STOP) fin = GEN_FINISH_NONE; /* a new turn follows */
    if (s->budget == 0 || s->len >= max_len) fin = GEN_FINISH_LENGTH;
    if (fin != GEN_FINISH_NONE) {
        s->res->finish = fin;
        return true;
    }
    return false;
}

/* Builds the packed batch of this step; returns the number of sequences in it. */
static int32_t pack_batch(gen_engine *g, gen_seq **by_slot, gen_seq **fed) {
    int32_t n = 0, T = 0;
    g->offsets[0] = 0;
    for (int32_t k = 0; k < g->n_slots && T < GEN_STEP_TOKENS; k++) {
        gen_seq *s = by_slot[k];
        s = s && s->live && !s->leader && s->n_pend > 0 ? s : NULL;
        if (!s) continue;
        int32_t take = s->n_pend < GEN_STEP_TOKENS - T ? s->n_pend : GEN_STEP_TOKENS - T;
        memcpy(g->tokens + T, s->pend, (size_t)take * sizeof(int32_t));
        T += take;
        s->n_pend -= take;
        memmove(s->pend, s->pend + take, (size_t)s->n_pend * sizeof(int32_t));
        s->row = s->n_pend == 0 ? n : -1;
        g->slots[n] = s->slot;
        fed[n++] = s;
        g->offsets[n] = T;
    }
    return n;
}

int gen_generate(gen_engine *g, const gen_request *reqs, int32_t n, const gen_params *p,
                 gen_callback cb, void *ctx, gen_result *results, mart_err *err) {
    assert(n >= 0 && (n == 0 || (reqs && results)));
    for (int32_t i = 0; i < n; i++)
        memset(&results[i], 0, sizeof results[i]);
    if (n <= 0) return MART_OK;
    if (check_params(p, err) != MART_OK) return MART_ERR;
    for (int32_t i = 0; i < n; i++)
        if (check_request(g, &reqs[i], i, err) != MART_OK) return MART_ERR;

    const int64_t V = g->m->cfg.vocab_size;
    gen_seq *seqs = mart_xcalloc((size_t)n, sizeof *seqs);
    gen_seq **by_slot = mart_xcalloc((size_t)g->n_slots, sizeof *by_slot);
    gen_seq **fed = mart_xcalloc((size_t)g->n_slots, sizeof *fed);
    gen_seq **ready = mart_xcalloc((size_t)g->n_slots, sizeof *ready);
    int32_t *group = mart_xmalloc((size_t)n * sizeof(int32_t));
    group_prompts(reqs, n, group);
    for (int32_t i = 0; i < n; i++)
        seqs[i] = (gen_seq){.g = g, .req = &reqs[i], .res = &results[i], .group = group[i]};
    free(group);

    int rc = MART_OK;
    int32_t next = 0, done = 0;
    while (done < n) {
        for (int32_t k = 0; k < g->n_slots && next < n; k++)
            if (!by_slot[k]) admit(g, seqs, by_slot, next++, k, p);

        int32_t nb = pack_batch(g, by_slot, fed);
        assert(nb > 0);
        model_batch b = {nb, g->tokens, g->offsets, g->slots};
        model_out o = {.last_only = true,
                       .logits = g->logits,
                       .products = g->cfg.bf16_products ? MART_PRODUCTS_BF16
                                                        : MART_PRODUCTS_EXACT};
        rc = model_forward(g->m, &b, &g->kv, &o, false, err);
        if (rc != MART_OK) {
            rc = mart_fail_wrap(err, "generation");
            break;
        }
        /* Who samples now: sequences whose pending tokens are all in, and the followers of a
         * leader that has just finished its prompt (they copy its cache and share its row). */
        int32_t nr = 0;
        for (int32_t j = 0; j < nb; j++)
            if (fed[j]->row >= 0) ready[nr++] = fed[j];
        for (int32_t k = 0; k < g->n_slots; k++) {
            gen_seq *s = by_slot[k];
            if (!s || !s->leader) continue;
            gen_seq *l = s->leader;
            if (l->row < 0 || l->res->n_tokens != 0) continue;
            model_kv_copy(&g->kv, s->slot, l->slot, s->req->n_prompt);
            s->row = l->row;
            s->leader = NULL;
            ready[nr++] = s;
        }
#pragma omp parallel for schedule(dynamic, 1) if (nr > 1)
        for (int32_t j = 0; j < nr; j++) {
            gen_seq *s = ready[j];
            gen_cand *scr = g->scratch + (int64_t)omp_get_thread_num() * V;
            double u = mart_rng_uniform(&s->rng);
            s->tok = gen_sample_row(g->logits + (int64_t)s->row * V, (int32_t)V, p, u, scr, &s->lp);
        }
        for (int32_t j = 0; j < nr; j++) {
            gen_seq *s = ready[j];
            s->row = -1;
            if (after_sample(s, p, cb, ctx)) {
                s->live = false;
                by_slot[s->slot] = NULL;
                free(s->pend);
                s->pend = NULL;
                s->n_pend = s->cap_pend = 0;
                done++;
            }
        }
    }
    for (int32_t i = 0; i < n; i++) {
        free(seqs[i].pend);
        if (rc != MART_OK) gen_result_free(&results[i]);
    }
    free(seqs);
    free(by_slot);
    free(fed);
    free(ready);
    return rc;
}
