/* mart tasks: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_tasks(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart tasks: not implemented yet\n");
    return 1;
}
