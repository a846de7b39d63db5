/* cli option parsing with --help generated from the option table (defaults included). */
#include "cli/cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void print_default(const cli_opt *o) {
    switch (o->kind) {
    case CLI_STR: {
        const char *s = *(const char **)o->dst;
        if (s) printf(" (default: %s)", s);
        break;
    }
    case CLI_INT: printf(" (default: %d)", *(int32_t *)o->dst); break;
    case CLI_INT64: printf(" (default: %lld)", (long long)*(int64_t *)o->dst); break;
    case CLI_FLOAT: printf(" (default: %g)", (double)*(float *)o->dst); break;
    case CLI_DOUBLE: printf(" (default: %g)", *(double *)o->dst); break;
    case CLI_FLAG: break;
    }
}

static void print_help(const char *command, const char *synopsis, const char *about,
                       const cli_opt *opts, int n_opts) {
    printf("usage: mart %s %s\n\n%s\n\noptions:\n", command, synopsis, about);
    for (int i = 0; i < n_opts; i++) {
        const cli_opt *o = &opts[i];
        const char *arg = o->kind == CLI_FLAG ? "" : o->kind == CLI_STR ? " S" : " N";
        printf("  --%s%s\n      %s", o->name, arg, o->help);
        print_default(o);
        printf("\n");
    }
    printf("  --help\n      show this message\n");
}

static int bad(const char *command, const char *name, const char *value, const char *what) {
    fprintf(stderr, "mart %s: --%s: %s '%s'\n", command, name, what, value);
    return MART_ERR;
}

int cli_parse(const char *command, const char *synopsis, const char *about, cli_opt *opts,
              int n_opts, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_help(command, synopsis, about, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "mart %s: unexpected argument '%s' (see mart %s --help)\n", command,
                    a, command);
            return MART_ERR;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == nlen && !strncmp(opts[k].name, name, nlen)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "mart %s: unknown option '%s' (see mart %s --help)\n", command, a,
                    command);
            return MART_ERR;
        }
        if (o->kind == CLI_FLAG) {
            *(bool *)o->dst = true;
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mart %s: --%s needs a value\n", command, o->name);
                return MART_ERR;
            }
            v = argv[++i];
        }
        char *end = NULL;
        errno = 0;
        switch (o->kind) {
        case CLI_STR: *(const char **)o->dst = v; break;
        case CLI_INT: {
            long x = strtol(v, &end, 10);
            if (errno || !*v || *end || x < INT32_MIN || x > INT32_MAX)
                return bad(command, o->name, v, "not an integer");
            *(int32_t *)o->dst = (int32_t)x;
            break;
        }
        case CLI_INT64: {
            long long x = strtoll(v, &end, 10);
            if (errno || !*v || *end) return bad(command, o->name, v, "not an integer");
            *(int64_t *)o->dst = x;
            break;
        }
        case CLI_FLOAT:
        case CLI_DOUBLE: {
            double x = strtod(v, &end);
            if (errno || !*v || *end) return bad(command, o->name, v, "not a number");
            if (o->kind == CLI_FLOAT) *(float *)o->dst = (float)x;
            else *(double *)o->dst = x;
            break;
        }
        case CLI_FLAG: break;
        }
    }
    return 0;
}

int cli_stop_status(void) {
    int sig = mart_stop_signal();
    return sig ? 128 + sig : 0;
}

int cli_error(const char *command, const mart_err *err) {
    fprintf(stderr, "mart %s: %s\n", command, err->msg[0] ? err->msg : "failed");
    return 1;
}

int cli_batch_status(const char *command, const mart_jsonl *r) {
    if (r->n_failed == 0) return 0;
    fprintf(stderr, "mart %s: %lld record(s) of %s failed and were answered with an error object\n",
            command, (long long)r->n_failed, r->path);
    return 1;
}
