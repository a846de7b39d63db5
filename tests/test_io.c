/* Tests for reading and writing models: safetensors (validation of every header field,
 * conversions), config.json, checkpoints (round trips, shards, bad files) and the
 * `mart score` command's handling of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "mart/model.h"
#include "mart/safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)h >> (8 * i));
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

/* ---- config.json ---- */

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
    assert_memory_equal(&c, &d, sizeof c);
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
        cmocka_unit_test(qwen2_config_loads_with_head_dim_and_bias_derived),
        cmocka_unit_test(llama_config_defaults_to_no_bias_and_saves_back_identically),
        cmocka_unit_test(config_missing_a_field_is_rejected_naming_file_and_field),
    };
    return cmocka_run_group_tests(tests, make_tmp_root, remove_tmp_root);
}
