/* mart bench generate: not built yet (its issue is open). */
#include "cli/cli.h"

int bench_generate(int argc, char **argv);

int bench_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench generate: not implemented yet\n");
    return 1;
}
