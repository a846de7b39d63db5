/* mart detokenize: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_detokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart detokenize: not implemented yet\n");
    return 1;
}
