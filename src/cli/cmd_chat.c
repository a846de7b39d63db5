/* mart chat: not built yet (its issue is open). */
#include "cli/cli.h"

int cmd_chat(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart chat: not implemented yet\n");
    return 1;
}
