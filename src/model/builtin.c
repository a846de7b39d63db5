/* builtin: the model shapes mart knows by name (see model_config_builtin in mart/model.h).
 * "tiny" is the demo model; "small" and "40m" are the benchmark shapes of issue #2; the
 * Qwen2.5 entries match the published config.json files so random models of that shape can
 * test memory and speed without downloading weights. */
#include "mart/model.h"

#include <string.h>

typedef struct {
    const char *name;
    model_config cfg;
} builtin_entry;

/* Fields: arch, vocab, d, layers, heads, kv heads, head_dim, ffn, max_pos, eps, theta, tied,
 * bias, bos, eos, dtype. */
static const builtin_entry builtins[] = {
    {"tiny",
     {MART_ARCH_QWEN2, 512, 128, 4, 4, 2, 32, 352, 2048, 1e-6f, 10000.0, true, true, -1, -1,
      MART_DTYPE_F32}},
    {"small",
     {MART_ARCH_QWEN2, 512, 256, 4, 4, 2, 64, 704, 2048, 1e-6f, 10000.0, true, true, -1, -1,
      MART_DTYPE_F32}},
    {"40m",
     {MART_ARCH_QWEN2, 32000, 512, 8, 8, 4, 64, 1408, 2048, 1e-6f, 10000.0, true, true, -1, -1,
      MART_DTYPE_F32}},
    {"qwen2.5-0.5b",
     {MART_ARCH_QWEN2, 151936, 896, 24, 14, 2, 64, 4864, 32768, 1e-6f, 1000000.0, true, true,
      151643, 151643, MART_DTYPE_BF16}},
    {"qwen2.5-1.5b",
     {MART_ARCH_QWEN2, 151936, 1536, 28, 12, 2, 128, 8960, 32768, 1e-6f, 1000000.0, true, true,
      151643, 151643, MART_DTYPE_BF16}},
};

int model_config_builtin(const char *name, model_config *cfg, mart_err *err) {
    int n = (int)(sizeof builtins / sizeof builtins[0]);
    for (int i = 0; i < n; i++)
        if (name && !strcmp(name, builtins[i].name)) {
            *cfg = builtins[i].cfg;
            return MART_OK;
        }
    return mart_fail(err,
                     "unknown built-in model config \"%s\" (known: tiny, small, 40m, qwen2.5-0.5b, "
                     "qwen2.5-1.5b)",
                     name ? name : "(null)");
}
