/* mart generate: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_generate(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart generate: not implemented yet\n");
    return 1;
}
