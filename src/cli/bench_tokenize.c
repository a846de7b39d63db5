/* mart bench tokenize: not built yet (its issue is open). */
#include "cli/cli.h"

int bench_tokenize(int argc, char **argv);

int bench_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench tokenize: not implemented yet\n");
    return 1;
}
