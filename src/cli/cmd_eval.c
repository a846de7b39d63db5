/* mart eval: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_eval(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart eval: not implemented yet\n");
    return 1;
}
