/* mart demo: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_demo(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart demo: not implemented yet\n");
    return 1;
}
