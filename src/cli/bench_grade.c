/* mart bench grade: not built yet (its issue is open). */
#include "cli/cli.h"

int bench_grade(int argc, char **argv);

int bench_grade(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mart bench grade: not implemented yet\n");
    return 1;
}
