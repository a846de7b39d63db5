/* mart bench train: not built yet (its issue is open). */
#include "cli/cli.h"

int bench_train(int argc, char **argv);

int bench_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench train: not implemented yet\n");
    return 1;
}
