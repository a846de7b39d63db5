/* mart train: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_train(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart train: not implemented yet\n");
    return 1;
}
