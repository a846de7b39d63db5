/* Tests for reading and writing models: safetensors (validation of every header field,
 * conversions), config.json, checkpoints (round trips, shards, bad files) and the
 * `mart score` command's handling of bad input. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp_root[256];

static int make_tmp_root(void **state) {
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/mart_test_io_XXXXXX");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int remove_tmp_root(void **state) {
    (void)state;
    mart_err err;
    return mart_remove_tree(tmp_root, &err);
}

/* A path inside this run's temporary directory (a few rotating buffers). */
static const char *tmp_path(const char *name) {
    static char bufs[8][512];
    static int k = 0;
    char *b = bufs[k++ % 8];
    return mart_path_join(b, 512, tmp_root, name);
}

/* Writes a safetensors file by hand: header length, header JSON, then data_len bytes. */
static void write_raw_st(const char *path, const char *header, const void *data, size_t data_len) {
    size_t h = strlen(header);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char)((uint64_t)h >> (8 * i));
    fwrite(len, 1, 8, f);
    fwrite(header, 1, h, f);
    if (data_len) fwrite(data, 1, data_len, f);
    fclose(f);
}

static void write_text(const char *path, const char *text) {
    mart_err err;
    assert_int_equal(mart_write_file_atomic(path, text, strlen(text), &err), MART_OK);
}

/* Asserts that msg contains every one of the given substrings. */
static void assert_msg_has(const char *msg, const char *a, const char *b) {
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("error message \"%s\" should mention \"%s\"%s%s", msg, a, b ? " and " : "",
                 b ? b : "");
}

/* Opens a file expected to be rejected and checks the message names file and detail. */
static void expect_st_error(const char *path, const char *detail) {
    st_file *f = NULL;
    mart_err err = {{0}};
    assert_int_equal(st_open(path, &f, &err), MART_ERR);
    assert_null(f);
    assert_msg_has(err.msg, path, detail);
}

/* ---- safetensors ---- */

static void safetensors_round_trip_keeps_names_shapes_dtypes_data_and_metadata(void **state) {
    (void)state;
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    uint16_t b[3] = {0x3f80, 0xc000, 0x7f80};
    uint16_t h[2] = {0x3c00, 0x8001};
    st_view t[3] = {
        {"a.weight", MART_DTYPE_F32, 2, {2, 3}, a},
        {"b", MART_DTYPE_BF16, 1, {3}, b},
        {"c", MART_DTYPE_F16, 2, {1, 2}, h},
    };
    const char *keys[] = {"format"}, *vals[] = {"pt"};
    const char *path = tmp_path("rt.safetensors");
    mart_err err;
    assert_int_equal(st_save(path, t, 3, keys, vals, 1, &err), MART_OK);
    st_file *f;
    assert_int_equal(st_open(path, &f, &err), MART_OK);
    assert_int_equal(st_count(f), 3);
    assert_string_equal(st_metadata(f, "format"), "pt");
    assert_null(st_metadata(f, "nope"));
    assert_null(st_find(f, "nope"));
    const st_view *v = st_find(f, "a.weight");
    assert_non_null(v);
    assert_int_equal(v->dtype, MART_DTYPE_F32);
    assert_int_equal(v->ndim, 2);
    assert_int_equal(v->shape[0], 2);
    assert_int_equal(v->shape[1], 3);
    float out[6];
    st_to_f32(v, out);
    assert_memory_equal(out, a, sizeof a);
    st_to_f32(st_find(f, "b"), out);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && isinf(out[2]));
    st_to_f32(st_find(f, "c"), out);
    assert_true(out[0] == 1.0f);
    assert_true(out[1] == -0x1p-24f); /* smallest F16 subnormal */
    st_close(f);
}

static void bf16_conversion_rounds_to_nearest_even(void **state) {
    (void)state;
    /* 1 + 2^-8 lies halfway between BF16 neighbours 1 and 1 + 2^-7: ties go to even (1). */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    /* 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up. */
    assert_int_equal(st_f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
    /* just above halfway rounds up, just below rounds down */
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
    assert_int_equal(st_f32_to_bf16(1.0f + 0x1p-8f - 0x1p-20f), 0x3f80);
    assert_int_equal(st_f32_to_bf16(-2.0f), 0xc000);
    assert_int_equal(st_f32_to_bf16(INFINITY), 0x7f80);
    assert_true((st_f32_to_bf16(NAN) & 0x7fff) > 0x7f80); /* NaN stays NaN */
    /* F16: 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1). */
    assert_int_equal(st_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
    assert_int_equal(st_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    assert_int_equal(st_f32_to_f16(65504.0f), 0x7bff);
    assert_int_equal(st_f32_to_f16(1e6f), 0x7c00);
    assert_int_equal(st_f32_to_f16(0x1p-24f), 0x0001);
    assert_int_equal(st_f32_to_f16(-0x1p-14f), 0x8400);
}

static void truncated_file_is_rejected_naming_the_file(void **state) {
    (void)state;
    const char *p = tmp_path("short.safetensors");
    write_text(p, "\x10\x00\x00");
    expect_st_error(p, "truncated");
    /* header length says 200 bytes but the file ends after 20 */
    write_raw_st(p, "{\"a\":{\"dtype\":\"F32\"", NULL, 0);
    FILE *f = fopen(p, "r+b");
    fputc(200, f);
    fclose(f);
    expect_st_error(p, "truncated");
    /* a valid header whose data was cut short */
    float d[4] = {1, 2, 3, 4};
    write_raw_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 12);
    expect_st_error(p, "\"w\"");
}

static void offsets_past_the_end_are_rejected_naming_the_tensor(void **state) {
    (void)state;
    const char *p = tmp_path("past.safetensors");
    float d[2] = {1, 2};
    write_raw_st(p,
                 "{\"ok\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"far\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[64,72]}}",
                 d, sizeof d);
    expect_st_error(p, "\"far\"");
    expect_st_error(p, "past the end");
}

static void overlapping_offsets_are_rejected_naming_both_tensors(void **state) {
    (void)state;
    const char *p = tmp_path("overlap.safetensors");
    float d[4] = {1, 2, 3, 4};
    write_raw_st(p,
                 "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                 "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                 d, sizeof d);
    expect_st_error(p, "overlap");
    expect_st_error(p, "\"x\"");
    expect_st_error(p, "\"y\"");
}

static void unknown_dtype_is_rejected_naming_the_tensor(void **state) {
    (void)state;
    const char *p = tmp_path("dtype.safetensors");
    float d[2] = {1, 2};
    write_raw_st(p, "{\"odd\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 8);
    expect_st_error(p, "\"odd\"");
    expect_st_error(p, "unknown dtype \"Q7\"");
    write_raw_st(p, "{\"ints\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", d, 8);
    expect_st_error(p, "\"ints\"");
}

static void size_not_matching_shape_is_rejected_naming_the_tensor(void **state) {
    (void)state;
    const char *p = tmp_path("size.safetensors");
    float d[4] = {0};
    write_raw_st(p, "{\"m\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", d, 16);
    expect_st_error(p, "\"m\"");
    write_raw_st(p, "{\"m\":{\"dtype\":\"F32\",\"shape\":[4]}}", d, 16);
    expect_st_error(p, "data_offsets");
    write_raw_st(p, "{\"m\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]", d, 16);
    expect_st_error(p, "JSON");
}

/* Random corruptions of a valid file (bytes of the header flipped, the file cut anywhere)
 * must never crash: st_open either rejects the file naming it, or accepts a file whose
 * every tensor can be read (the sanitizer run checks the reads stay inside the mapping). */
static void corrupted_files_are_rejected_or_read_safely_never_crash(void **state) {
    (void)state;
    float a[6] = {1, 2, 3, 4, 5, 6};
    uint16_t b[4] = {1, 2, 3, 4};
    st_view t[2] = {{"alpha", MART_DTYPE_F32, 2, {2, 3}, a}, {"beta", MART_DTYPE_BF16, 1, {4}, b}};
    const char *good = tmp_path("good.safetensors"), *bad = tmp_path("bad.safetensors");
    mart_err err;
    assert_int_equal(st_save(good, t, 2, NULL, NULL, 0, &err), MART_OK);
    char *orig;
    size_t len;
    assert_int_equal(mart_read_file(good, &orig, &len, &err), MART_OK);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | (unsigned char)orig[i];
    char *buf = mart_xmalloc(len);
    mart_rng rng;
    mart_rng_seed(&rng, 42, 0);
    int rejected = 0;
    for (int iter = 0; iter < 400; iter++) {
        memcpy(buf, orig, len);
        size_t n = len;
        if (iter % 4 == 0) {
            n = (size_t)mart_rng_range(&rng, 0, (int64_t)len - 1);
        } else {
            int flips = (int)mart_rng_range(&rng, 1, 3);
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)mart_rng_range(&rng, 0, (int64_t)(8 + hlen) - 1);
                /* digits, quotes and brackets are where the header's meaning lives */
                static const char pool[] = "0123456789\"[]{},:-9e.FBI ";
                buf[at] = pool[mart_rng_range(&rng, 0, (int64_t)sizeof pool - 2)];
            }
        }
        assert_int_equal(mart_write_file_atomic(bad, buf, n, &err), MART_OK);
        st_file *f = NULL;
        mart_err e = {{0}};
        if (st_open(bad, &f, &e) != MART_OK) {
            assert_null(f);
            assert_msg_has(e.msg, bad, NULL);
            rejected++;
            continue;
        }
        for (int32_t i = 0; i < st_count(f); i++) {
            const st_view *v = st_get(f, i);
            int64_t numel = 1;
            for (int32_t k = 0; k < v->ndim; k++)
                numel *= v->shape[k];
            float *out = mart_xmalloc((size_t)numel * sizeof *out + 4);
            st_to_f32(v, out);
            free(out);
        }
        st_close(f);
    }
    assert_true(rejected > 100); /* most corruptions must be caught */
    free(buf);
    free(orig);
}

/* ---- config.json ---- */

static void assert_config_equal(const model_config *a, const model_config *b) {
    assert_int_equal(a->arch, b->arch);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->hidden_size, b->hidden_size);
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->n_heads, b->n_heads);
    assert_int_equal(a->n_kv_heads, b->n_kv_heads);
    assert_int_equal(a->head_dim, b->head_dim);
    assert_int_equal(a->intermediate_size, b->intermediate_size);
    assert_int_equal(a->max_position_embeddings, b->max_position_embeddings);
    assert_true(a->rms_norm_eps == b->rms_norm_eps);
    assert_true(a->rope_theta == b->rope_theta);
    assert_int_equal(a->tie_word_embeddings, b->tie_word_embeddings);
    assert_int_equal(a->attention_bias, b->attention_bias);
    assert_int_equal(a->bos_token_id, b->bos_token_id);
    assert_int_equal(a->eos_token_id, b->eos_token_id);
    assert_int_equal(a->dtype, b->dtype);
}

static const char *qwen_cfg =
    "{\"architectures\":[\"Qwen2ForCausalLM\"],\"model_type\":\"qwen2\",\"vocab_size\":151936,"
    "\"hidden_size\":1536,\"intermediate_size\":8960,\"num_hidden_layers\":28,"
    "\"num_attention_heads\":12,\"num_key_value_heads\":2,\"max_position_embeddings\":131072,"
    "\"rms_norm_eps\":1e-06,\"rope_theta\":1000000.0,\"tie_word_embeddings\":true,"
    "\"torch_dtype\":\"bfloat16\",\"bos_token_id\":151643,\"eos_token_id\":151645,"
    "\"hidden_act\":\"silu\",\"use_sliding_window\":false,\"sliding_window\":131072,"
    "\"rope_scaling\":null}";

static void qwen2_config_loads_with_head_dim_and_bias_derived(void **state) {
    (void)state;
    const char *p = tmp_path("qwen.json");
    write_text(p, qwen_cfg);
    model_config c;
    mart_err err;
    assert_int_equal(model_config_load(p, &c, &err), MART_OK);
    assert_int_equal(c.arch, MART_ARCH_QWEN2);
    assert_int_equal(c.vocab_size, 151936);
    assert_int_equal(c.hidden_size, 1536);
    assert_int_equal(c.n_layers, 28);
    assert_int_equal(c.n_heads, 12);
    assert_int_equal(c.n_kv_heads, 2);
    assert_int_equal(c.head_dim, 128);
    assert_int_equal(c.intermediate_size, 8960);
    assert_true(c.attention_bias);
    assert_true(c.tie_word_embeddings);
    assert_int_equal(c.dtype, MART_DTYPE_BF16);
    assert_true(c.rope_theta == 1e6);
    assert_true(c.rms_norm_eps == 1e-6f);
    assert_int_equal(c.eos_token_id, 151645);
}

static void llama_config_defaults_to_no_bias_and_saves_back_identically(void **state) {
    (void)state;
    const char *p = tmp_path("llama.json");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":32000,"
                  "\"hidden_size\":512,\"intermediate_size\":1408,\"num_hidden_layers\":8,"
                  "\"num_attention_heads\":8,\"num_key_value_heads\":4,"
                  "\"eos_token_id\":[128001,128009]}");
    model_config c, d;
    mart_err err;
    assert_int_equal(model_config_load(p, &c, &err), MART_OK);
    assert_int_equal(c.arch, MART_ARCH_LLAMA);
    assert_false(c.attention_bias);
    assert_false(c.tie_word_embeddings);
    assert_int_equal(c.head_dim, 64);
    assert_int_equal(c.bos_token_id, -1);
    assert_int_equal(c.eos_token_id, 128001);
    assert_int_equal(c.dtype, MART_DTYPE_F32);
    assert_true(c.rope_theta == 10000.0);
    const char *q = tmp_path("llama2.json");
    assert_int_equal(model_config_save(q, &c, &err), MART_OK);
    assert_int_equal(model_config_load(q, &d, &err), MART_OK);
    assert_config_equal(&c, &d);
}

static void config_missing_a_field_is_rejected_naming_file_and_field(void **state) {
    (void)state;
    const char *p = tmp_path("missing.json");
    write_text(p, "{\"architectures\":[\"Qwen2ForCausalLM\"],\"vocab_size\":64,"
                  "\"hidden_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":4}");
    model_config c;
    mart_err err = {{0}};
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "\"intermediate_size\"");
    assert_msg_has(err.msg, "missing", NULL);
    write_text(p, "{\"architectures\":[\"GPT2LMHeadModel\"]}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "GPT2LMHeadModel");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":64,"
                  "\"hidden_size\":\"big\",\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                  "\"intermediate_size\":8}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "\"hidden_size\"");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":64,"
                  "\"hidden_size\":32,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                  "\"intermediate_size\":8,\"rope_scaling\":{\"rope_type\":\"llama3\"}}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "\"rope_scaling\"");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":2000000000,"
                  "\"hidden_size\":2000000000,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                  "\"intermediate_size\":8}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, "\"hidden_size\" is 2000000000", "limit");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":16000000,"
                  "\"hidden_size\":65536,\"num_hidden_layers\":2,\"num_attention_heads\":64,"
                  "\"intermediate_size\":8}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "parameters");
}

/* Sizes under every bound but beyond this machine's memory are refused with the figure. */
static void config_beyond_available_memory_is_refused_with_the_figure(void **state) {
    (void)state;
    model_config c;
    mart_err err = {{0}};
    if (mart_mem_available() > 700LL << 30) skip(); /* 660 GB would be available */
    const char *p = tmp_path("huge.json");
    write_text(p, "{\"architectures\":[\"LlamaForCausalLM\"],\"vocab_size\":1000000,"
                  "\"hidden_size\":65536,\"num_hidden_layers\":2,\"num_attention_heads\":64,"
                  "\"intermediate_size\":8}");
    assert_int_equal(model_config_load(p, &c, &err), MART_ERR);
    assert_msg_has(err.msg, p, "GiB of memory");
}

/* ---- checkpoints ---- */

static model_config test_config(mart_arch arch, mart_dtype dtype) {
    model_config c = {.arch = arch,
                      .vocab_size = 64,
                      .hidden_size = 32,
                      .n_layers = 2,
                      .n_heads = 4,
                      .n_kv_heads = 2,
                      .head_dim = 8,
                      .intermediate_size = 48,
                      .max_position_embeddings = 256,
                      .rms_norm_eps = 1e-6f,
                      .rope_theta = 10000.0,
                      .tie_word_embeddings = arch == MART_ARCH_QWEN2,
                      .attention_bias = arch == MART_ARCH_QWEN2,
                      .bos_token_id = -1,
                      .eos_token_id = 1,
                      .dtype = dtype};
    return c;
}

/* A random model saved in DIR (under the temporary root); returned for comparison. */
static model *saved_model(const char *name, mart_arch arch, mart_dtype dtype, bool value_head) {
    model_config c = test_config(arch, dtype);
    model *m = model_create(&c, value_head, false);
    model_init_random(m, 7);
    if (value_head) /* make the head non-zero so that a lost head would show */
        for (int64_t i = 0; i < c.hidden_size; i++)
            m->value_head[i] = 0.01f * (float)i;
    mart_err err;
    if (model_save(m, tmp_path(name), &err) != MART_OK) fail_msg("%s", err.msg);
    return m;
}

static void saving_where_the_directory_cannot_be_created_names_the_path(void **state) {
    (void)state;
    model_config c = test_config(MART_ARCH_LLAMA, MART_DTYPE_F32);
    model *m = model_create(&c, false, false);
    const char *blocker = tmp_path("blocker");
    write_text(blocker, "a file, not a directory");
    char dir[600];
    snprintf(dir, sizeof dir, "%s/model", blocker);
    mart_err err = {{0}};
    assert_int_equal(model_save(m, dir, &err), MART_ERR);
    assert_msg_has(err.msg, "blocker", NULL);
    model_free(m);
}

static void f32_checkpoint_round_trip_gives_identical_weights(void **state) {
    (void)state;
    model *a = saved_model("rt_f32/sub", MART_ARCH_LLAMA, MART_DTYPE_F32, true);
    model *b = NULL;
    mart_err err;
    if (model_load(tmp_path("rt_f32/sub"), false, &b, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_config_equal(&a->cfg, &b->cfg);
    assert_true(b->has_value_head);
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, (size_t)a->n_params * sizeof(float));
    model_free(a);
    model_free(b);
}

/* Saves in dtype d, loads back: every weight must equal its rounding to d. */
static void check_rounded_round_trip(const char *name, mart_dtype d) {
    model *a = saved_model(name, MART_ARCH_QWEN2, d, false);
    model *b = NULL;
    mart_err err;
    if (model_load(tmp_path(name), false, &b, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_int_equal(b->cfg.dtype, d);
    assert_true(b->cfg.tie_word_embeddings);
    for (int64_t i = 0; i < a->n_params; i++) {
        uint16_t h;
        float want;
        st_from_f32(&a->params[i], 1, d, &h);
        st_view v = {"x", d, 1, {1}, &h};
        st_to_f32(&v, &want);
        if (b->params[i] != want)
            fail_msg("param %lld: %.9g loaded as %.9g, expected %.9g", (long long)i,
                     (double)a->params[i], (double)b->params[i], (double)want);
    }
    model_free(a);
    model_free(b);
}

static void bf16_checkpoint_round_trip_matches_rounding(void **state) {
    (void)state;
    check_rounded_round_trip("rt_bf16", MART_DTYPE_BF16);
    /* the rounding itself, independently of st_from_f32: round to nearest even */
    uint32_t u = (uint32_t)st_f32_to_bf16(1.0f + 0x1p-8f + 0x1p-9f) << 16;
    float x;
    memcpy(&x, &u, 4);
    assert_true(x == 1.0f + 0x1p-7f);
}

static void f16_checkpoint_round_trip_matches_rounding(void **state) {
    (void)state;
    check_rounded_round_trip("rt_f16", MART_DTYPE_F16);
}

/* Rewrites DIR/model.safetensors through an editor that may drop or reshape tensors. */
typedef bool (*tensor_edit)(st_view *v);

/* ... and appends `extra` when not NULL (edit NULL keeps every tensor as it is). */
static void rewrite_weights_plus(const char *dir, tensor_edit edit, const st_view *extra) {
    char path[512];
    mart_path_join(path, sizeof path, dir, "model.safetensors");
    st_file *f;
    mart_err err;
    assert_int_equal(st_open(path, &f, &err), MART_OK);
    int32_t n = st_count(f), k = 0;
    st_view *v = calloc((size_t)n + 1, sizeof *v);
    for (int32_t i = 0; i < n; i++) {
        v[k] = *st_get(f, i);
        if (!edit || edit(&v[k])) k++;
    }
    if (extra) v[k++] = *extra;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    assert_int_equal(st_save(tmp, v, k, NULL, NULL, 0, &err), MART_OK);
    st_close(f);
    free(v);
    assert_int_equal(rename(tmp, path), 0);
}

static void rewrite_weights(const char *dir, tensor_edit edit) {
    rewrite_weights_plus(dir, edit, NULL);
}

static bool drop_up_proj_1(st_view *v) {
    return strcmp(v->name, "model.layers.1.mlp.up_proj.weight") != 0;
}

static bool transpose_k_proj_0(st_view *v) {
    if (!strcmp(v->name, "model.layers.0.self_attn.k_proj.weight")) {
        int64_t t = v->shape[0];
        v->shape[0] = v->shape[1];
        v->shape[1] = t;
    }
    return true;
}

static void missing_tensor_is_rejected_naming_file_and_tensor(void **state) {
    (void)state;
    model_free(saved_model("missing", MART_ARCH_LLAMA, MART_DTYPE_F32, false));
    rewrite_weights(tmp_path("missing"), drop_up_proj_1);
    model *m = NULL;
    mart_err err = {{0}};
    assert_int_equal(model_load(tmp_path("missing"), false, &m, &err), MART_ERR);
    assert_null(m);
    assert_msg_has(err.msg, "missing/model.safetensors", "\"model.layers.1.mlp.up_proj.weight\"");
    assert_msg_has(err.msg, "missing", NULL);
}

static void tensor_of_wrong_shape_is_rejected_naming_file_and_tensor(void **state) {
    (void)state;
    model_free(saved_model("shape", MART_ARCH_QWEN2, MART_DTYPE_BF16, false));
    rewrite_weights(tmp_path("shape"), transpose_k_proj_0);
    model *m = NULL;
    mart_err err = {{0}};
    assert_int_equal(model_load(tmp_path("shape"), false, &m, &err), MART_ERR);
    assert_msg_has(err.msg, "shape/model.safetensors",
                   "\"model.layers.0.self_attn.k_proj.weight\"");
    assert_msg_has(err.msg, "[32, 16]", "[16, 32]");
}

/* A config.json whose layer count or sizes the weights beside it do not hold is refused
 * before the model is allocated. */
static void config_asking_more_than_the_weights_hold_is_refused_before_allocating(void **state) {
    (void)state;
    model_free(saved_model("layers", MART_ARCH_LLAMA, MART_DTYPE_F32, false));
    char cfg[600];
    mart_path_join(cfg, sizeof cfg, tmp_path("layers"), "config.json");
    model_config c;
    mart_err err = {{0}};
    assert_int_equal(model_config_load(cfg, &c, &err), MART_OK);
    int32_t layers = c.n_layers;
    c.n_layers = 1000;
    assert_int_equal(model_config_save(cfg, &c, &err), MART_OK);
    model *m = NULL;
    assert_int_equal(model_load(tmp_path("layers"), false, &m, &err), MART_ERR);
    assert_null(m);
    char want[64];
    snprintf(want, sizeof want, "holds %d layer(s)", layers);
    assert_msg_has(err.msg, "\"num_hidden_layers\" is 1000", want);
    c.n_layers = layers;
    c.vocab_size *= 2;
    assert_int_equal(model_config_save(cfg, &c, &err), MART_OK);
    assert_int_equal(model_load(tmp_path("layers"), false, &m, &err), MART_ERR);
    assert_msg_has(err.msg, "\"model.embed_tokens.weight\"", "from config.json");
}

/* A FIFO or a directory named model.safetensors is refused at once, never waited on. */
static void weights_that_are_a_fifo_or_a_directory_are_refused_without_blocking(void **state) {
    (void)state;
    const char *fifo = tmp_path("fifo.safetensors"), *dir = tmp_path("dir.safetensors");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    st_file *f = NULL;
    mart_err err = {{0}};
    assert_int_equal(st_open(fifo, &f, &err), MART_ERR);
    assert_msg_has(err.msg, fifo, "not a regular file");
    assert_int_equal(st_open(dir, &f, &err), MART_ERR);
    assert_msg_has(err.msg, dir, "not a regular file");
    char *text = NULL;
    assert_int_equal(mart_read_file(fifo, &text, NULL, &err), MART_ERR);
    assert_msg_has(err.msg, fifo, "not a regular file");
}

/* The duplicate-name check sorts: 200k tensors are read in well under a second. */
static void header_of_many_tensors_is_checked_in_n_log_n(void **state) {
    (void)state;
    const int32_t n = 200000;
    static const float x[1] = {1};
    st_view *v = calloc((size_t)n, sizeof *v);
    char(*names)[24] = calloc((size_t)n, sizeof *names);
    for (int32_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof names[i], "t%d", i);
        v[i] = (st_view){names[i], MART_DTYPE_F32, 1, {1}, x};
    }
    const char *p = tmp_path("many.safetensors");
    mart_err err = {{0}};
    assert_int_equal(st_save(p, v, n, NULL, NULL, 0, &err), MART_OK);
    double t0 = mart_now();
    st_file *f = NULL;
    assert_int_equal(st_open(p, &f, &err), MART_OK);
    assert_non_null(st_find(f, "t199999"));
    assert_null(st_find(f, "t200000"));
    st_close(f);
    assert_true(mart_now() - t0 < 5.0);
    snprintf(names[n - 1], sizeof names[n - 1], "t7");
    assert_int_equal(st_save(p, v, n, NULL, NULL, 0, &err), MART_OK);
    assert_int_equal(st_open(p, &f, &err), MART_ERR);
    assert_msg_has(err.msg, "\"t7\"", "twice");
    free(v);
    free(names);
}

static void tensor_the_config_does_not_describe_is_rejected(void **state) {
    (void)state;
    model_free(saved_model("extra", MART_ARCH_LLAMA, MART_DTYPE_F32, false));
    /* a q_proj bias in a Llama checkpoint whose config says attention_bias: false */
    static const float zeros[32];
    st_view bias = {"model.layers.0.self_attn.q_proj.bias", MART_DTYPE_F32, 1, {32}, zeros};
    rewrite_weights_plus(tmp_path("extra"), NULL, &bias);
    model *m = NULL;
    mart_err err = {{0}};
    assert_int_equal(model_load(tmp_path("extra"), false, &m, &err), MART_ERR);
    assert_null(m);
    assert_msg_has(err.msg, "extra/model.safetensors", "\"model.layers.0.self_attn.q_proj.bias\"");
    assert_msg_has(err.msg, "unexpected", NULL);
}

static void sharded_checkpoint_loads_and_a_shard_missing_its_tensor_is_named(void **state) {
    (void)state;
    model *a = saved_model("sharded", MART_ARCH_LLAMA, MART_DTYPE_F32, false);
    char path[512], shard[512];
    const char *dir = tmp_path("sharded");
    mart_path_join(path, sizeof path, dir, "model.safetensors");
    st_file *f;
    mart_err err = {{0}};
    assert_int_equal(st_open(path, &f, &err), MART_OK);
    /* two shards: the first 5 tensors, then the rest; index written by hand */
    int32_t n = st_count(f);
    st_view *v = calloc((size_t)n, sizeof *v);
    mart_buf idx = {0};
    mart_buf_printf(&idx, "{\"metadata\":{},\"weight_map\":{");
    for (int32_t i = 0; i < n; i++) {
        v[i] = *st_get(f, i);
        mart_buf_printf(&idx, "%s\"%s\":\"part-%d.safetensors\"", i ? "," : "", v[i].name,
                        i < 5 ? 1 : 2);
    }
    mart_buf_printf(&idx, "}}");
    assert_int_equal(st_save(mart_path_join(shard, sizeof shard, dir, "part-1.safetensors"), v, 5,
                             NULL, NULL, 0, &err),
                     MART_OK);
    assert_int_equal(st_save(mart_path_join(shard, sizeof shard, dir, "part-2.safetensors"), v + 5,
                             n - 5, NULL, NULL, 0, &err),
                     MART_OK);
    write_text(mart_path_join(shard, sizeof shard, dir, "model.safetensors.index.json"), idx.data);
    /* f stays open (v points into it); unlinking keeps the mapping valid */
    unlink(path);
    model *b = NULL;
    if (model_load(dir, false, &b, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_memory_equal(a->params, b->params, (size_t)a->n_params * sizeof(float));
    model_free(b);
    /* part-2 without its last tensor, though the index still lists it there */
    assert_int_equal(st_save(mart_path_join(shard, sizeof shard, dir, "part-2.safetensors"), v + 5,
                             n - 6, NULL, NULL, 0, &err),
                     MART_OK);
    assert_int_equal(model_load(dir, false, &b, &err), MART_ERR);
    assert_msg_has(err.msg, "part-2.safetensors", v[n - 1].name);
    st_close(f);
    free(v);
    mart_buf_free(&idx);
    model_free(a);
}

/* ---- mart score ---- */

/* Runs `$MART_BIN score --model DIR --input FILE` (extra args appended); returns the exit
 * status, with stdout in *out and stderr in *errtext (both malloc'd). */
static int run_score(const char *dir, const char *input_text, const char *extra, char **out,
                     char **errtext) {
    const char *bin = getenv("MART_BIN");
    if (!bin) fail_msg("MART_BIN is not set (run through ctest)");
    const char *in = tmp_path("score_in.jsonl"), *o = tmp_path("score_out.txt"),
               *e = tmp_path("score_err.txt");
    write_text(in, input_text);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' score --model '%s' --input '%s' %s >'%s' 2>'%s'", bin, dir, in,
             extra, o, e);
    int st = system(cmd);
    mart_err err;
    assert_int_equal(mart_read_file(o, out, NULL, &err), MART_OK);
    assert_int_equal(mart_read_file(e, errtext, NULL, &err), MART_OK);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *score_model_dir(void) {
    const char *dir = tmp_path("score_model");
    char cfg[512];
    if (!mart_path_exists(mart_path_join(cfg, sizeof cfg, dir, "config.json")))
        model_free(saved_model("score_model", MART_ARCH_QWEN2, MART_DTYPE_F32, false));
    return dir;
}

/* Bad input must exit non-zero with a message naming the line (and say what is wrong). */
static void expect_score_error(const char *input, const char *where, const char *what) {
    char *out, *err;
    int st = run_score(score_model_dir(), input, "", &out, &err);
    if (st == 0) fail_msg("mart score accepted bad input %s", input);
    assert_msg_has(err, where, what);
    free(out);
    free(err);
}

static void score_prints_n_minus_1_logprobs_per_line_the_same_in_any_batching(void **state) {
    (void)state;
    const char *in = "{\"tokens\":[1,2,3,4]}\n{\"tokens\":[5]}\n{\"tokens\":[63,0,7]}\n";
    char *out1, *err1, *out2, *err2;
    assert_int_equal(run_score(score_model_dir(), in, "", &out1, &err1), 0);
    assert_int_equal(run_score(score_model_dir(), in, "--batch-tokens 1", &out2, &err2), 0);
    const char *line = out1;
    int32_t expect[3] = {3, 0, 2};
    for (int i = 0; i < 3; i++) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(end - line));
        assert_non_null(j);
        const cJSON *lp = cJSON_GetObjectItem(j, "logprobs");
        assert_int_equal(cJSON_GetArraySize(lp), expect[i]);
        for (const cJSON *x = lp->child; x; x = x->next)
            assert_true(x->valuedouble <= 0 && x->valuedouble > -50);
        cJSON_Delete(j);
        line = end + 1;
    }
    assert_string_equal(line, "");
    /* packed with the others or alone, a sequence scores the same (up to float rounding) */
    const char *p = out1, *q = out2;
    while (*p && *q) {
        char *ep, *eq;
        if ((*p == '-' || (*p >= '0' && *p <= '9')) && (*q == '-' || (*q >= '0' && *q <= '9'))) {
            double x = strtod(p, &ep), y = strtod(q, &eq);
            assert_true(fabs(x - y) < 1e-5);
            p = ep;
            q = eq;
        } else {
            assert_int_equal(*p, *q);
            p++;
            q++;
        }
    }
    free(out1);
    free(err1);
    free(out2);
    free(err2);
}

static void score_reads_standard_input_without_input_option(void **state) {
    (void)state;
    const char *bin = getenv("MART_BIN");
    if (!bin) fail_msg("MART_BIN is not set (run through ctest)");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "printf '{\"tokens\":[3,1,4]}\\n' | '%s' score --model '%s'", bin,
             score_model_dir());
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[512] = "";
    assert_non_null(fgets(line, sizeof line, f));
    assert_int_equal(pclose(f), 0);
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "logprobs")), 2);
    cJSON_Delete(j);
}

static void score_token_outside_the_vocabulary_names_the_line(void **state) {
    (void)state;
    expect_score_error("{\"tokens\":[1,2]}\n{\"tokens\":[3,64]}\n", "score_in.jsonl:2",
                       "vocabulary");
    expect_score_error("{\"tokens\":[-1]}\n", "score_in.jsonl:1", "vocabulary");
}

/* The JSONL policy: blank lines are not records; a bad record is answered in its place with
 * an error object, the later ones still scored, and the exit status is 1. */
static void score_skips_blank_lines_and_answers_a_bad_line_in_its_place(void **state) {
    (void)state;
    char *out, *err;
    assert_int_equal(run_score(score_model_dir(), "{\"tokens\":[1,2]}\n\r\n{\"tokens\":[3]}\n\n",
                               "", &out, &err),
                     0);
    assert_string_equal(strchr(out, '\n') + 1, "{\"logprobs\":[]}\n");
    free(out);
    free(err);
    assert_int_equal(run_score(score_model_dir(),
                               "{\"tokens\":[1,2]}\n{\"tokens\":[\"x\"]}\n{\"tokens\":[3]}\n", "",
                               &out, &err),
                     1);
    const char *second = strchr(out, '\n') + 1;
    assert_true(!strncmp(second, "{\"line\":2,\"error\":\"", 19));
    assert_non_null(strstr(second, "score_in.jsonl:2: tokens[0] is not an integer\"}\n"
                                   "{\"logprobs\":[]}\n"));
    free(out);
    free(err);
}

static void score_malformed_or_incomplete_lines_name_the_line(void **state) {
    (void)state;
    expect_score_error("{\"tokens\":[1,2]\n", "score_in.jsonl:1", "JSON");
    expect_score_error("{\"tokens\":[1]}\n{\"toks\":[1,2]}\n", "score_in.jsonl:2", "\"tokens\"");
    expect_score_error("{\"tokens\":[]}\n", "score_in.jsonl:1", "empty");
    expect_score_error("{\"tokens\":[1,2.5]}\n", "score_in.jsonl:1", "integer");
}

static void score_missing_model_directory_is_an_error(void **state) {
    (void)state;
    char *out, *err;
    assert_int_not_equal(run_score(tmp_path("no_such_model"), "{\"tokens\":[1]}\n", "", &out, &err),
                         0);
    assert_msg_has(err, "no_such_model", "config.json");
    free(out);
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(safetensors_round_trip_keeps_names_shapes_dtypes_data_and_metadata),
        cmocka_unit_test(bf16_conversion_rounds_to_nearest_even),
        cmocka_unit_test(truncated_file_is_rejected_naming_the_file),
        cmocka_unit_test(offsets_past_the_end_are_rejected_naming_the_tensor),
        cmocka_unit_test(overlapping_offsets_are_rejected_naming_both_tensors),
        cmocka_unit_test(unknown_dtype_is_rejected_naming_the_tensor),
        cmocka_unit_test(size_not_matching_shape_is_rejected_naming_the_tensor),
        cmocka_unit_test(corrupted_files_are_rejected_or_read_safely_never_crash),
        cmocka_unit_test(qwen2_config_loads_with_head_dim_and_bias_derived),
        cmocka_unit_test(llama_config_defaults_to_no_bias_and_saves_back_identically),
        cmocka_unit_test(config_missing_a_field_is_rejected_naming_file_and_field),
        cmocka_unit_test(config_beyond_available_memory_is_refused_with_the_figure),
        cmocka_unit_test(config_asking_more_than_the_weights_hold_is_refused_before_allocating),
        cmocka_unit_test(weights_that_are_a_fifo_or_a_directory_are_refused_without_blocking),
        cmocka_unit_test(header_of_many_tensors_is_checked_in_n_log_n),
        cmocka_unit_test(saving_where_the_directory_cannot_be_created_names_the_path),
        cmocka_unit_test(f32_checkpoint_round_trip_gives_identical_weights),
        cmocka_unit_test(bf16_checkpoint_round_trip_matches_rounding),
        cmocka_unit_test(f16_checkpoint_round_trip_matches_rounding),
        cmocka_unit_test(missing_tensor_is_rejected_naming_file_and_tensor),
        cmocka_unit_test(tensor_of_wrong_shape_is_rejected_naming_file_and_tensor),
        cmocka_unit_test(tensor_the_config_does_not_describe_is_rejected),
        cmocka_unit_test(sharded_checkpoint_loads_and_a_shard_missing_its_tensor_is_named),
        cmocka_unit_test(score_prints_n_minus_1_logprobs_per_line_the_same_in_any_batching),
        cmocka_unit_test(score_reads_standard_input_without_input_option),
        cmocka_unit_test(score_token_outside_the_vocabulary_names_the_line),
        cmocka_unit_test(score_skips_blank_lines_and_answers_a_bad_line_in_its_place),
        cmocka_unit_test(score_malformed_or_incomplete_lines_name_the_line),
        cmocka_unit_test(score_missing_model_directory_is_an_error),
    };
    return cmocka_run_group_tests(tests, make_tmp_root, remove_tmp_root);
}
