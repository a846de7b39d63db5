/* mart score: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_score(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart score: not implemented yet\n");
    return 1;
}
