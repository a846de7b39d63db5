/* mart bench: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_bench(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench: not implemented yet\n");
    return 1;
}
