/* data: the known sets, the data directory, downloads (libcurl + OpenSSL's sha256) and the
 * training sets built from MATH and GSM8K. */
#include "mart/data.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mart/grade.h"

/* ---- the known sets -------------------------------------------------------------------- */

/* The evaluation kit the study used (Qwen2.5-Math's evaluation data), one test.jsonl per
 * benchmark; the hashes are those of the files the tests read. */
#define QWEN_EVAL "https://raw.githubusercontent.com/QwenLM/Qwen2.5-Math/main/evaluation/data/"
#define GSM8K_DATA                                                                                 \
    "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data/"

static const data_file aime24_files[] = {
    {"bench/aime24.jsonl", QWEN_EVAL "aime24/test.jsonl",
     "af2b8bd2aa911b6333ad0df32f3ca05c7ae8ed10f1731f4372c8ae26990bf7ac"}};
static const data_file amc23_files[] = {
    {"bench/amc23.jsonl", QWEN_EVAL "amc23/test.jsonl",
     "43707e1ca784602d8479de24ee8ce36609dbebc46dd152b0b12a46611aa898a4"}};
static const data_file math500_files[] = {
    {"bench/math500.jsonl", QWEN_EVAL "math500/test.jsonl",
     "35dc41080a3680858b27fa7e0533d2d547825316fc5dafe5d316f4ccc5a06132"}};
static const data_file minerva_files[] = {
    {"bench/minerva_math.jsonl", QWEN_EVAL "minerva_math/test.jsonl",
     "0e656b430d3a0a1dab6aa853f453ba3805e28e2cabe4fc72486a897cc09d8ba2"}};
static const data_file olympiad_files[] = {
    {"bench/olympiadbench.jsonl", QWEN_EVAL "olympiadbench/test.jsonl",
     "bb8c1e38a16ea9eacb77530315a674d883f267fbff79183effc53681b4fcc416"}};
static const data_file gsm8k_files[] = {
    {"bench/gsm8k.jsonl", QWEN_EVAL "gsm8k/test.jsonl",
     "9f098df7ff4522078d6ccec27a5c38a454790fdb51131bedfaa0e490070d5394"},
    {"gsm8k/train.jsonl", GSM8K_DATA "train.jsonl",
     "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465"},
    {"gsm8k/test.jsonl", GSM8K_DATA "test.jsonl",
     "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14"}};
/* MATH is published as a tar of one JSON file per problem; these JSONL files (one record per
 * problem with its "id" = the path in that tar) come from a mirror given with --base-url. */
static const data_file math_files[] = {
    {"math/train.jsonl", NULL, "de0f643c7adf9d13a58ab745dbdc767230aa77b863c7d91c0a333b9b73dc4fbc"},
    {"math/test.jsonl", NULL, "021684d49ed6ca5547088591a79b77fcc159ddc7a0a3defdef353575414efa6f"}};

#define N_OF(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))
static const data_set known_sets[] = {
    {"aime24", "AIME 2024 (30 problems)", aime24_files, N_OF(aime24_files)},
    {"amc23", "AMC 2023 (40 problems)", amc23_files, N_OF(amc23_files)},
    {"math500", "MATH-500 (500 problems of MATH's test split)", math500_files, N_OF(math500_files)},
    {"minerva_math", "Minerva Math (272 problems)", minerva_files, N_OF(minerva_files)},
    {"olympiadbench", "OlympiadBench (675 problems)", olympiad_files, N_OF(olympiad_files)},
    {"gsm8k", "GSM8K: the evaluation-kit test file, and the train/test splits", gsm8k_files,
     N_OF(gsm8k_files)},
    {"math", "MATH (Hendrycks et al.): train and test splits, 7,500 + 5,000 problems", math_files,
     N_OF(math_files)},
};

const data_set *data_sets(int32_t *n) {
    *n = N_OF(known_sets);
    return known_sets;
}

/* ---- the data directory ---------------------------------------------------------------- */

int data_dir_resolve(const char *dir, char *buf, size_t cap, mart_err *err) {
    const char *env = getenv("MART_DATA"), *home = getenv("HOME");
    int n;
    if (dir)
        n = snprintf(buf, cap, "%s", dir);
    else if (env && *env)
        n = snprintf(buf, cap, "%s", env);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.cache/mart/data", home);
    else
        return mart_fail(err, "no data directory: give --data-dir or set MART_DATA (HOME is "
                              "not set either)");
    if (n < 0 || (size_t)n >= cap) return mart_fail(err, "data directory path too long");
    return MART_OK;
}

int data_bench_path(const char *data_dir, const char *name, char *buf, size_t cap, mart_err *err) {
    static const char *const benches[] = {"aime24",       "amc23",         "math500",
                                          "minerva_math", "olympiadbench", "gsm8k"};
    int n = -1;
    if (!strcmp(name, "math")) n = snprintf(buf, cap, "%s/math/test.jsonl", data_dir);
    for (int i = 0; i < N_OF(benches) && n < 0; i++)
        if (!strcmp(name, benches[i])) n = snprintf(buf, cap, "%s/bench/%s.jsonl", data_dir, name);
    if (n < 0)
        return mart_fail(err,
                         "benchmark '%s' is not known (aime24, amc23, math500, minerva_math, "
                         "olympiadbench, gsm8k, math; or give a FILE.jsonl)",
                         name);
    if ((size_t)n >= cap) return mart_fail(err, "data directory path too long");
    return MART_OK;
}

/* ---- downloads ------------------------------------------------------------------------- */

static void hex_of(const unsigned char *d, unsigned n, char *hex) {
    for (unsigned i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

int data_sha256_file(const char *path, char hex[65], mart_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return mart_fail(err, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) abort();
    char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(ctx, buf, got);
    bool bad = ferror(f);
    fclose(f);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    if (bad) return mart_fail(err, "%s: read error", path);
    hex_of(d, n, hex);
    return MART_OK;
}

/* Where a download is written: the temporary file and the running hash. */
typedef struct {
    FILE *f;
    EVP_MD_CTX *md;
    bool write_failed;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *user) {
    sink *s = user;
    size_t len = size * n;
    if (fwrite(p, 1, len, s->f) != len) {
        s->write_failed = true;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    EVP_DigestUpdate(s->md, p, len);
    return len;
}

/* Downloads url into a temporary file beside target; checks sha256; renames into place. */
static int fetch_file(const char *url, const char *target, const char *want, mart_err *err) {
    size_t tl = strlen(target);
    char *tmp = mart_xmalloc(tl + 16);
    snprintf(tmp, tl + 16, "%s.part.XXXXXX", target);
    int fd = mkstemp(tmp);
    mode_t mask = umask(0); /* mkstemp makes 0600; give the file the usual permissions */
    umask(mask);
    if (fd >= 0) fchmod(fd, 0666 & ~mask);
    if (fd < 0) {
        mart_fail(err, "%s: cannot create a temporary file: %s", tmp, strerror(errno));
        free(tmp);
        return MART_ERR;
    }
    sink s = {fdopen(fd, "wb"), EVP_MD_CTX_new(), false};
    if (!s.f || !s.md || !EVP_DigestInit_ex(s.md, EVP_sha256(), NULL)) abort();
    CURL *c = curl_easy_init();
    if (!c) abort();
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(s.md, d, &n);
    EVP_MD_CTX_free(s.md);
    char got[65];
    hex_of(d, n, got);
    bool closed = fflush(s.f) == 0 && fsync(fileno(s.f)) == 0;
    closed = fclose(s.f) == 0 && closed;
    int status = MART_OK;
    if (rc != CURLE_OK)
        status = mart_fail(err, "%s: download failed: %s", url,
                           s.write_failed ? "cannot write the temporary file"
                           : cerr[0]      ? cerr
                                          : curl_easy_strerror(rc));
    else if (!closed)
        status = mart_fail(err, "%s: cannot write: %s", tmp, strerror(errno));
    else if (strcmp(got, want))
        status = mart_fail(err,
                           "%s: sha256 %s, expected %s (a changed or corrupt file; nothing "
                           "stored)",
                           url, got, want);
    else if (rename(tmp, target) != 0)
        status = mart_fail(err, "%s: cannot rename into place: %s", target, strerror(errno));
    if (status != MART_OK) unlink(tmp);
    free(tmp);
    return status;
}

int data_get(const char *data_dir, const char *name, const char *base_url, FILE *log,
             mart_err *err) {
    const data_set *set = NULL;
    for (int32_t i = 0; i < N_OF(known_sets); i++)
        if (!strcmp(known_sets[i].name, name)) set = &known_sets[i];
    if (!set) return mart_fail(err, "'%s' is not a known set (see mart data list)", name);
    for (int32_t i = 0; i < set->n_files; i++) {
        const data_file *f = &set->files[i];
        char target[8192], url[8192], have[65], dir[8192];
        snprintf(target, sizeof target, "%s/%s", data_dir, f->path);
        if (access(target, F_OK) == 0) {
            if (data_sha256_file(target, have, err) != MART_OK) return MART_ERR;
            if (!strcmp(have, f->sha256)) {
                if (log) fprintf(log, "%s: present, sha256 checked\n", target);
                continue;
            }
            if (log) fprintf(log, "%s: sha256 differs, fetching again\n", target);
        }
        if (base_url)
            snprintf(url, sizeof url, "%s%s%s", base_url,
                     base_url[0] && base_url[strlen(base_url) - 1] == '/' ? "" : "/", f->path);
        else if (f->url)
            snprintf(url, sizeof url, "%s", f->url);
        else
            return mart_fail(err,
                             "%s: no single public file holds it (MATH is published as a tar of "
                             "per-problem JSON files); give a mirror with --base-url",
                             f->path);
        snprintf(dir, sizeof dir, "%s", target);
        *strrchr(dir, '/') = 0;
        if (mart_mkdirs(dir, err) != MART_OK) return MART_ERR;
        if (log) fprintf(log, "%s <- %s\n", target, url);
        if (fetch_file(url, target, f->sha256, err) != MART_OK) return MART_ERR;
    }
    return MART_OK;
}

/* ---- training sets --------------------------------------------------------------------- */

/* s with leading/trailing whitespace removed and inner runs as one space (malloc'd). */
static char *squeeze_spaces(const char *s) {
    char *o = mart_xmalloc(strlen(s) + 1);
    size_t w = 0;
    bool space = false;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = w > 0;
            continue;
        }
        if (space) o[w++] = ' ';
        space = false;
        o[w++] = *s;
    }
    o[w] = 0;
    return o;
}

/* The level number of "Level N", or 0 ("Level ?" and anything else). */
static int32_t level_of(const cJSON *rec) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(rec, "level");
    int v = 0;
    if (cJSON_IsString(l) && sscanf(l->valuestring, "Level %d", &v) == 1 && v >= 1 && v <= 5)
        return v;
    return 0;
}

static void append_line(mart_buf *out, cJSON *o) {
    char *line = cJSON_PrintUnformatted(o);
    if (!line) abort();
    mart_buf_append(out, line, strlen(line));
    mart_buf_append(out, "\n", 1);
    free(line);
}

/* Copies string field `key` of rec into o (when it is a string). */
static void copy_string(cJSON *o, const cJSON *rec, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (cJSON_IsString(v)) mart_json_add_string(o, key, v->valuestring);
}

/* How many solutions without an answer are shown on the log. */
#define DATA_NO_ANSWER_SHOWN 5

int data_prepare_math(const char *data_dir, int32_t lo, int32_t hi, const char *exclude,
                      const char *out_path, FILE *log, data_prepare_stats *st, mart_err *err) {
    memset(st, 0, sizeof *st);
    if (lo < 1 || hi > 5 || lo > hi) return mart_fail(err, "levels %d-%d: expected 1..5", lo, hi);
    char path[8192];
    char **skip = NULL;
    bool *hit = NULL;
    int rc = MART_OK;
    if (exclude) {
        if (data_bench_path(data_dir, exclude, path, sizeof path, err) != MART_OK) return MART_ERR;
        cJSON **recs;
        if (mart_jsonl_load(path, &recs, &st->bench_size, err) != MART_OK) return MART_ERR;
        skip = mart_xcalloc((size_t)st->bench_size + 1, sizeof *skip);
        hit = mart_xcalloc((size_t)st->bench_size + 1, sizeof *hit);
        for (int64_t i = 0; i < st->bench_size && rc == MART_OK; i++) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(recs[i], "problem");
            if (!cJSON_IsString(p))
                rc = mart_fail(err, "%s:%lld: no string field \"problem\"", path, (long long)i + 1);
            else
                skip[i] = squeeze_spaces(p->valuestring);
        }
        mart_jsonl_free(recs, st->bench_size);
    }
    mart_buf out = {0};
    static const char *const splits[] = {"train", "test"};
    for (int s = 0; s < 2 && rc == MART_OK; s++) {
        snprintf(path, sizeof path, "%s/math/%s.jsonl", data_dir, splits[s]);
        mart_jsonl r;
        if (mart_jsonl_open(&r, path, err) != MART_OK) {
            rc = MART_ERR;
            break;
        }
        for (;;) {
            cJSON *rec;
            int got = mart_jsonl_next(&r, &rec, err);
            if (got <= 0) {
                rc = got < 0 ? MART_ERR : MART_OK;
                break;
            }
            st->read++;
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(rec, "problem");
            const cJSON *sol = cJSON_GetObjectItemCaseSensitive(rec, "solution");
            if (!cJSON_IsString(p) || !cJSON_IsString(sol)) {
                rc = mart_fail(err, "%s:%lld: needs string fields \"problem\" and \"solution\"",
                               path, (long long)r.line);
                cJSON_Delete(rec);
                break;
            }
            char *key = skip ? squeeze_spaces(p->valuestring) : NULL;
            int64_t k = 0;
            while (key && k < st->bench_size && strcmp(skip[k], key))
                k++;
            free(key);
            int32_t level = level_of(rec);
            char *answer = NULL;
            if (skip && k < st->bench_size) {
                st->excluded++;
                hit[k] = true;
            } else if (level < lo || level > hi) {
                st->off_level++;
            } else if (!(answer =
                             grade_extract(sol->valuestring, strlen(sol->valuestring), NULL))) {
                st->no_answer++;
                const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "id");
                size_t sl = strlen(sol->valuestring);
                if (log && st->no_answer <= DATA_NO_ANSWER_SHOWN)
                    fprintf(log, "no answer in %s: ...%s\n",
                            cJSON_IsString(id) ? id->valuestring : "?",
                            sol->valuestring + (sl > 160 ? sl - 160 : 0));
            } else {
                cJSON *o = cJSON_CreateObject();
                mart_json_add_string(o, "problem", p->valuestring);
                mart_json_add_string(o, "answer", answer);
                cJSON_AddNumberToObject(o, "level", level);
                copy_string(o, rec, "type");
                copy_string(o, rec, "id");
                append_line(&out, o);
                cJSON_Delete(o);
                st->written++;
            }
            free(answer);
            cJSON_Delete(rec);
        }
        mart_jsonl_close(&r);
    }
    for (int64_t i = 0; i < st->bench_size; i++) {
        st->bench_hits += hit[i];
        free(skip[i]);
    }
    free(skip);
    free(hit);
    if (rc == MART_OK && st->written == 0) rc = mart_fail(err, "no problem left to write");
    if (rc == MART_OK) rc = mart_write_file_atomic(out_path, out.data, out.len, err);
    mart_buf_free(&out);
    return rc;
}

int data_prepare_gsm8k(const char *data_dir, const char *split, const char *out_path,
                       data_prepare_stats *st, mart_err *err) {
    memset(st, 0, sizeof *st);
    if (strcmp(split, "train") && strcmp(split, "test"))
        return mart_fail(err, "split '%s': expected train or test", split);
    char path[8192];
    snprintf(path, sizeof path, "%s/gsm8k/%s.jsonl", data_dir, split);
    mart_jsonl r;
    if (mart_jsonl_open(&r, path, err) != MART_OK) return MART_ERR;
    mart_buf out = {0};
    int rc = MART_OK;
    for (;;) {
        cJSON *rec;
        int got = mart_jsonl_next(&r, &rec, err);
        if (got <= 0) {
            rc = got < 0 ? MART_ERR : MART_OK;
            break;
        }
        st->read++;
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(rec, "question");
        char *answer = NULL;
        if (!cJSON_IsString(q))
            rc = mart_fail(err, "%s:%lld: no string field \"question\"", path, (long long)r.line);
        else if (grade_gold_answer(rec, "gsm8k", NULL, &answer, err) != MART_OK)
            rc = mart_fail_wrap(err, "%s:%lld", path, (long long)r.line);
        if (rc == MART_OK) {
            cJSON *o = cJSON_CreateObject();
            mart_json_add_string(o, "problem", q->valuestring);
            mart_json_add_string(o, "answer", answer);
            append_line(&out, o);
            cJSON_Delete(o);
            st->written++;
        }
        free(answer);
        cJSON_Delete(rec);
        if (rc != MART_OK) break;
    }
    mart_jsonl_close(&r);
    if (rc == MART_OK) rc = mart_write_file_atomic(out_path, out.data, out.len, err);
    mart_buf_free(&out);
    return rc;
}
