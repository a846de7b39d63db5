/* mart data: the data directory's known sets: list them, fetch them (checked), and build the
 * training sets from MATH and GSM8K. */
#include "cli/cli.h"
#include "mart/data.h"

#include <stdlib.h>
#include <string.h>

static int data_list(int argc, char **argv) {
    const char *dir_opt = NULL;
    cli_opt opts[] = {
        {"data-dir", CLI_STR, &dir_opt,
         "data directory (default: $MART_DATA, else "
         "~/.cache/mart/data)"},
    };
    int pr = cli_parse("data list", "[--data-dir DIR]",
                       "Lists the known sets, their files and whether each is in the data "
                       "directory with the expected sha256.",
                       opts, 1, argc, argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    char dir[4096];
    if (data_dir_resolve(dir_opt, dir, sizeof dir, &err) != MART_OK)
        return cli_error("data list", &err);
    printf("data directory: %s\n", dir);
    int32_t n;
    const data_set *sets = data_sets(&n);
    for (int32_t i = 0; i < n; i++) {
        printf("%-14s %s\n", sets[i].name, sets[i].what);
        for (int32_t j = 0; j < sets[i].n_files; j++) {
            char path[8192], have[65];
            snprintf(path, sizeof path, "%s/%s", dir, sets[i].files[j].path);
            const char *state = "missing";
            if (mart_path_exists(path))
                state = data_sha256_file(path, have, &err) == MART_OK &&
                                !strcmp(have, sets[i].files[j].sha256)
                            ? "ok"
                            : "sha256 differs";
            printf("  %-26s %s\n", sets[i].files[j].path, state);
        }
    }
    return 0;
}

/* `get` takes set names and options in any order: names are split off before cli_parse. */
static int data_get_cmd(int argc, char **argv) {
    const char *dir_opt = NULL, *base = getenv("MART_DATA_URL");
    cli_opt opts[] = {
        {"data-dir", CLI_STR, &dir_opt,
         "data directory (default: $MART_DATA, else "
         "~/.cache/mart/data)"},
        {"base-url", CLI_STR, &base,
         "fetch every file from BASE/<path> instead of its public URL (a mirror; default: "
         "$MART_DATA_URL)"},
    };
    char **rest = mart_xcalloc((size_t)argc + 1, sizeof *rest);
    const char **names = mart_xcalloc((size_t)argc + 1, sizeof *names);
    int n_rest = 0, n_names = 0;
    for (int i = 0; i < argc; i++) {
        bool value =
            i > 0 && (!strcmp(argv[i - 1], "--data-dir") || !strcmp(argv[i - 1], "--base-url"));
        if (i > 0 && argv[i][0] != '-' && !value)
            names[n_names++] = argv[i];
        else
            rest[n_rest++] = argv[i];
    }
    int pr = cli_parse("data get", "NAME... [--data-dir DIR] [--base-url URL]",
                       "Downloads the files of the named sets (see mart data list; \"all\" for "
                       "every one) over HTTPS into the data directory. Each file's sha256 is "
                       "checked before it is renamed into place; files already there with the "
                       "right sha256 are kept.",
                       opts, 2, n_rest, rest);
    int status = pr ? (pr == 1 ? 0 : 2) : 0;
    mart_err err = {{0}};
    char dir[4096];
    if (!pr && n_names == 0) {
        fprintf(stderr, "mart data get: name at least one set (see mart data list)\n");
        status = 2;
    } else if (!pr && data_dir_resolve(dir_opt, dir, sizeof dir, &err) != MART_OK) {
        status = cli_error("data get", &err);
    }
    for (int i = 0; !pr && !status && i < n_names; i++) {
        int32_t n = 1;
        const data_set *sets = data_sets(&n);
        bool all = !strcmp(names[i], "all");
        for (int32_t k = 0; k < (all ? n : 1) && !status; k++)
            if (data_get(dir, all ? sets[k].name : names[i], base, stderr, &err) != MART_OK)
                status = cli_error("data get", &err);
    }
    free(rest);
    free(names);
    return status;
}

static void print_stats(const char *out, const data_prepare_stats *st) {
    fprintf(stderr,
            "%s: %lld problems written (of %lld read; %lld excluded as benchmark problems, "
            "%lld outside the levels, %lld without an extractable answer)\n",
            out, (long long)st->written, (long long)st->read, (long long)st->excluded,
            (long long)st->off_level, (long long)st->no_answer);
    if (st->bench_size)
        fprintf(stderr, "benchmark problems found in the sources: %lld of %lld\n",
                (long long)st->bench_hits, (long long)st->bench_size);
}

static int data_prepare(int argc, char **argv) {
    const char *what = argc >= 2 && argv[1][0] != '-' ? argv[1] : NULL;
    const char *dir_opt = NULL, *out = NULL, *levels = "3-5", *exclude = "math500",
               *split = "train";
    cli_opt opts[] = {
        {"data-dir", CLI_STR, &dir_opt,
         "data directory (default: $MART_DATA, else "
         "~/.cache/mart/data)"},
        {"out", CLI_STR, &out, "output JSONL file (required)"},
        {"levels", CLI_STR, &levels, "math: levels to keep, LO-HI or N (1..5)"},
        {"exclude", CLI_STR, &exclude,
         "math: drop the problems of this benchmark (\"none\": keep all)"},
        {"split", CLI_STR, &split, "gsm8k: train or test"},
    };
    int pr = cli_parse("data prepare", "math|gsm8k --out FILE [options]",
                       "math: MATH train + test, levels --levels, the problems of --exclude "
                       "removed (matched by text), each answer the solution's last \\boxed{} "
                       "by mart's extractor: {\"problem\", \"answer\", \"level\", \"type\", "
                       "\"id\"} lines. gsm8k: the --split file as {\"problem\", \"answer\"}, "
                       "the answer after \"#### \".",
                       opts, 5, what ? argc - 1 : argc, what ? argv + 1 : argv);
    if (pr) return pr == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!what || (strcmp(what, "math") && strcmp(what, "gsm8k")) || !out) {
        fprintf(stderr, "mart data prepare: expected math or gsm8k, and --out FILE\n");
        return 2;
    }
    char dir[4096];
    if (data_dir_resolve(dir_opt, dir, sizeof dir, &err) != MART_OK)
        return cli_error("data prepare", &err);
    data_prepare_stats st;
    if (!strcmp(what, "gsm8k")) {
        if (data_prepare_gsm8k(dir, split, out, &st, &err) != MART_OK)
            return cli_error("data prepare", &err);
        print_stats(out, &st);
        return 0;
    }
    int lo = 0, hi = 0, used = 0;
    if (sscanf(levels, "%d-%d%n", &lo, &hi, &used) != 2 || levels[used]) {
        used = 0;
        if (sscanf(levels, "%d%n", &lo, &used) != 1 || levels[used]) {
            fprintf(stderr, "mart data prepare: --levels '%s': expected LO-HI or N\n", levels);
            return 2;
        }
        hi = lo;
    }
    if (data_prepare_math(dir, lo, hi, strcmp(exclude, "none") ? exclude : NULL, out, stderr, &st,
                          &err) != MART_OK)
        return cli_error("data prepare", &err);
    print_stats(out, &st);
    return 0;
}

int cmd_data(int argc, char **argv) {
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
        const char *summary;
    } subs[] = {
        {"list", data_list, "the known sets and which are in the data directory"},
        {"get", data_get_cmd, "download sets (sha256-checked) into the data directory"},
        {"prepare", data_prepare, "build the MATH (levels 3-5, no MATH-500) or GSM8K set"},
    };
    int n = (int)(sizeof subs / sizeof subs[0]);
    if (argc >= 2)
        for (int i = 0; i < n; i++)
            if (!strcmp(argv[1], subs[i].name)) return subs[i].run(argc - 1, argv + 1);
    FILE *f = argc >= 2 && strcmp(argv[1], "--help") && strcmp(argv[1], "-h") ? stderr : stdout;
    fprintf(f, "usage: mart data <list|get|prepare> [options]   (mart data <sub> --help)\n\n"
               "The data directory is --data-dir, else $MART_DATA, else ~/.cache/mart/data.\n\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-8s %s\n", subs[i].name, subs[i].summary);
    return f == stdout ? 0 : 2;
}
