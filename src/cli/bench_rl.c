/* mart bench rl: not built yet (its issue is open). */
#include "cli/cli.h"

int bench_rl(int argc, char **argv);

int bench_rl(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench rl: not implemented yet\n");
    return 1;
}
