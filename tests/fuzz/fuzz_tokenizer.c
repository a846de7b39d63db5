/* libFuzzer target for tokenizer.json: any text loads or is refused with a message; a loaded
 * tokenizer encodes a fixed text and the input itself, and decoding gives back bytes (ids out
 * of range are errors, not reads past the vocabulary). Built only with clang (see
 * tests/fuzz.cmake). */
#include "fuzz_util.h"
#include "mart/tok.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void round_trip(const tok_tokenizer *t, const char *text, size_t len) {
    int32_t *ids = NULL;
    int64_t n = 0;
    mart_err err = {{0}};
    if (tok_encode(t, text, len, &ids, &n, &err) == MART_OK) {
        mart_buf out = {0};
        (void)tok_decode(t, ids, n, &out, &err);
        mart_buf_free(&out);
    }
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    tok_tokenizer *t = NULL;
    mart_err err = {{0}};
    if (tok_load(path, &t, &err) == MART_OK) {
        static const char text[] = "Hello, world! 12+34=46 <|im_end|> caf\xc3\xa9 \xe2\x82";
        round_trip(t, text, sizeof text - 1);
        round_trip(t, (const char *)data, size < 512 ? size : 512);
        int32_t bad[3] = {-1, tok_vocab_size(t), 0};
        mart_buf out = {0};
        (void)tok_decode(t, bad, 3, &out, &err);
        mart_buf_free(&out);
        tok_free(t);
    } else {
        FUZZ_CHECK(err.msg[0] != 0);
    }
    close(fd);
    return 0;
}
