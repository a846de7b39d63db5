/* mart plot: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_plot(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart plot: not implemented yet\n");
    return 1;
}
