/* libFuzzer target for the safetensors reader: any header (huge lengths, out-of-range or
 * overlapping offsets, dtype/shape mismatches, duplicate names) is refused with a message or
 * read safely; every view st_open accepts is converted to float32 to prove its bytes are
 * inside the file. Built only with clang (see tests/fuzz.cmake). */
#include "fuzz_util.h"
#include "mart/safetensors.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[64];
    int fd = fuzz_file(data, size, path, sizeof path);
    if (fd < 0) return 0;
    st_file *f = NULL;
    mart_err err = {{0}};
    if (st_open(path, &f, &err) == MART_OK) {
        for (int32_t i = 0; i < st_count(f); i++) {
            const st_view *v = st_get(f, i);
            FUZZ_CHECK(st_find(f, v->name) == v);
            int64_t n = 1;
            for (int32_t k = 0; k < v->ndim; k++)
                n *= v->shape[k];
            if (n > (1 << 20)) continue; /* bytes were checked against the file size already */
            float *out = malloc((size_t)(n > 0 ? n : 1) * sizeof *out);
            st_to_f32(v, out);
            free(out);
        }
        st_close(f);
    } else {
        FUZZ_CHECK(err.msg[0] != 0);
    }
    close(fd);
    return 0;
}
