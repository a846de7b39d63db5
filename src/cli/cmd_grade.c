/* mart grade: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_grade(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart grade: not implemented yet\n");
    return 1;
}
