/* libFuzzer target for config.json: any text is a model_config with sane sizes or a message
 * naming the file; an accepted config saves and loads back to the same config. Built only
 * with clang (see tests/fuzz.cmake). */
#include "fuzz_util.h"
#include "mart/model.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    model_config c;
    mart_err err = {{0}};
    if (model_config_load(path, &c, &err) == MART_OK) {
        FUZZ_CHECK(c.n_layers > 0 && c.hidden_size > 0 && c.head_dim % 2 == 0);
        FUZZ_CHECK(c.n_heads % c.n_kv_heads == 0);
        char saved[] = "/tmp/mart_fuzz_config_XXXXXX";
        int sfd = mkstemp(saved);
        if (sfd >= 0) {
            close(sfd);
            model_config back;
            if (model_config_save(saved, &c, &err) == MART_OK &&
                model_config_load(saved, &back, &err) == MART_OK) {
                FUZZ_CHECK(back.n_layers == c.n_layers && back.vocab_size == c.vocab_size);
                FUZZ_CHECK(back.hidden_size == c.hidden_size && back.head_dim == c.head_dim);
            }
            unlink(saved);
        }
    } else {
        FUZZ_CHECK(err.msg[0] != 0);
    }
    close(fd);
    return 0;
}
