/* libFuzzer target for the grader: the input is "pred\ngold" (no newline: pred = gold = the
 * whole input). Exercises extraction, the box test and the full comparison; any crash, leak,
 * hang or sanitizer report is a bug. Built only with clang (see tests/grade.cmake). */
#include "mart/grade.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    grade_config cfg;
    grade_config_default(&cfg);
    cfg.fallback_extract = size % 2 == 1;
    (void)grade_has_boxed(s, size);
    char *ex = grade_extract(s, size, &cfg);
    free(ex);
    char *nl = memchr(s, '\n', strlen(s));
    const char *pred = s, *gold = s;
    if (nl) {
        *nl = 0;
        gold = nl + 1;
    }
    (void)grade_equal(pred, gold, &cfg);
    (void)grade_equal(gold, pred, &cfg);
    free(s);
    return 0;
}
