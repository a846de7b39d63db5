/* mart tokenize: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart tokenize: not implemented yet\n");
    return 1;
}
