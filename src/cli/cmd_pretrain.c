/* mart pretrain: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_pretrain(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart pretrain: not implemented yet\n");
    return 1;
}
