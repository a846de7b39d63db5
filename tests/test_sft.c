/* sft: supervised training as a library module. A run stopped at any step and resumed gives
 * the bytes of an uninterrupted run; Ctrl-C in `mart pretrain` writes a checkpoint and exits
 * 130, and --resume finishes the run exactly; a folder that holds a run is not trained over;
 * a non-finite learning rate is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mart/sft.h"
#include "mart/task.h"

/* A temporary folder with sft.jsonl: 60 worked solutions and transcripts of `mart tasks`. */
static void make_data(char *dir, size_t cap) {
    char tmpl[] = "/tmp/mart_sft_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    snprintf(dir, cap, "%s", tmpl);
    task_config tc;
    task_config_default(&tc);
    tc.n_train = 4;
    tc.n_test = 4;
    tc.n_sft = 60;
    tc.seed = 3;
    task_splits sp;
    mart_err err = {{0}};
    assert_int_equal(task_generate_splits(&tc, &sp, &err), MART_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/sft.jsonl", dir);
    assert_int_equal(task_write_jsonl(p, sp.sft, sp.n_sft, &err), MART_OK);
    task_splits_free(&sp);
}

static void config(sft_config *c, const char *dir, char *data, char *out, const char *name) {
    sft_config_default(c);
    sprintf(data, "%s/sft.jsonl", dir);
    sprintf(out, "%s/%s", dir, name);
    c->data_path = data;
    c->out_dir = out;
    c->steps = 7;
    c->batch = 6;
    c->merges = 40;
    c->seq_len = 384;
    c->seed = 11;
    c->quiet = true;
}

static char *slurp(const char *dir, const char *name, size_t *len) {
    char path[600], *data = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    mart_err err;
    return mart_read_file(path, &data, len, &err) == MART_OK ? data : NULL;
}

static void assert_same_file(const char *a, const char *b, const char *name) {
    size_t la, lb;
    char *x = slurp(a, name, &la), *y = slurp(b, name, &lb);
    if (!x || !y) fail_msg("%s missing in %s or %s", name, a, b);
    assert_int_equal(la, lb);
    if (memcmp(x, y, la)) fail_msg("%s differs between %s and %s", name, a, b);
    free(x);
    free(y);
}

/* metrics.jsonl without its timing fields (tokens_per_s, elapsed_s). */
static char *metrics_without_timings(const char *dir) {
    size_t n;
    char *m = slurp(dir, "metrics.jsonl", &n);
    assert_non_null(m);
    char *out = malloc(n + 1), *o = out;
    for (char *p = m; *p;) {
        char *t = strstr(p, ",\"tokens_per_s\"");
        char *nl = strchr(p, '\n');
        if (t && (!nl || t < nl)) {
            memcpy(o, p, (size_t)(t - p));
            o += t - p;
            *o++ = '\n';
            p = nl ? nl + 1 : p + strlen(p);
        } else {
            size_t k = nl ? (size_t)(nl - p) + 1 : strlen(p);
            memcpy(o, p, k);
            o += k;
            p += k;
        }
    }
    *o = 0;
    free(m);
    return out;
}

static void a_run_stopped_and_resumed_gives_the_bytes_of_an_uninterrupted_run(void **state) {
    (void)state;
    char dir[256], data[300], a[300], b[300];
    make_data(dir, sizeof dir);
    sft_config c;
    bool stopped;
    mart_err err = {{0}};
    config(&c, dir, data, a, "whole");
    if (sft_train(&c, &stopped, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_false(stopped);
    config(&c, dir, data, b, "pieces");
    c.save_every = 3;
    for (int stop = 2; stop <= 5; stop += 3) {
        c.stop_after = stop;
        if (sft_train(&c, &stopped, &err) != MART_OK) fail_msg("%s", err.msg);
        assert_true(stopped);
        c.resume = true;
    }
    c.stop_after = 0;
    if (sft_train(&c, &stopped, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_false(stopped);
    assert_same_file(a, b, "model.safetensors");
    assert_same_file(a, b, "tokenizer.json");
    assert_same_file(a, b, "config.json");
    char *ma = metrics_without_timings(a), *mb = metrics_without_timings(b);
    assert_string_equal(ma, mb);
    free(ma);
    free(mb);
    char ck[400];
    snprintf(ck, sizeof ck, "%s/checkpoint", b);
    assert_false(mart_path_exists(ck)); /* gone once the model is written */
    /* a finished folder is not trained over without being asked; a NaN rate is refused */
    c.resume = false;
    assert_int_equal(sft_train(&c, &stopped, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "metrics.jsonl"));
    /* --resume of a finished run (killed after its model was written): done, nothing changed */
    c.resume = true;
    if (sft_train(&c, &stopped, &err) != MART_OK) fail_msg("%s", err.msg);
    assert_same_file(a, b, "model.safetensors");
    config(&c, dir, data, b, "nan");
    c.lr = 0.0 / 0.0;
    assert_int_equal(sft_train(&c, &stopped, &err), MART_ERR);
    assert_non_null(strstr(err.msg, "--lr"));
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
}

/* Pretraining on a backend whose memory is not the host's (and which stops the process if
 * handed host memory): the CPU backend's model, bytes for bytes. */
static void a_device_memory_backend_trains_to_the_cpu_bytes(void **state) {
    (void)state;
    char dir[256], data[300], a[300], b[300];
    make_data(dir, sizeof dir);
    sft_config c;
    bool stopped;
    mart_err err = {{0}};
    for (int k = 0; k < 2; k++) {
        config(&c, dir, data, k ? b : a, k ? "staged" : "cpu");
        c.steps = 3;
        c.backend = k ? mart_backend_cpu_staged() : NULL;
        if (sft_train(&c, &stopped, &err) != MART_OK) fail_msg("%s", err.msg);
    }
    assert_same_file(a, b, "model.safetensors");
    char *ma = metrics_without_timings(a), *mb = metrics_without_timings(b);
    assert_string_equal(ma, mb);
    free(ma);
    free(mb);
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
}

/* Counts the lines of a file (0 when missing). */
static int count_lines(const char *dir, const char *name) {
    size_t n;
    char *t = slurp(dir, name, &n);
    int k = 0;
    for (size_t i = 0; t && i < n; i++)
        k += t[i] == '\n';
    free(t);
    return k;
}

/* Runs `mart pretrain` with args; with interrupt, sends SIGINT once `metrics.jsonl` shows a
 * step and returns the exit status. */
static int run_pretrain(const char *out, const char *data, bool resume, bool interrupt) {
    const char *bin = getenv("MART_BIN");
    if (!bin) fail_msg("MART_BIN is not set (run through ctest)");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", 1);
        dup2(null, 2);
        execl(bin, bin, "pretrain", "--data", data, "--out", out, "--steps", "40", "--batch", "6",
              "--merges", "40", "--seq-len", "384", "--seed", "2", resume ? "--resume" : "--quiet",
              "--quiet", (char *)NULL);
        _exit(127);
    }
    if (interrupt) {
        for (int i = 0; i < 6000 && count_lines(out, "metrics.jsonl") < 2; i++)
            usleep(5000);
        kill(pid, SIGINT);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void ctrl_c_writes_a_checkpoint_exits_130_and_resume_finishes_exactly(void **state) {
    (void)state;
    char dir[256], data[300], a[300], b[300];
    make_data(dir, sizeof dir);
    snprintf(data, sizeof data, "%s/sft.jsonl", dir);
    snprintf(a, sizeof a, "%s/whole", dir);
    snprintf(b, sizeof b, "%s/interrupted", dir);
    assert_int_equal(run_pretrain(a, data, false, false), 0);
    int rc = run_pretrain(b, data, false, true);
    char ck[400];
    snprintf(ck, sizeof ck, "%s/checkpoint", b);
    if (rc == 0) {
        /* the run finished before the signal came: nothing to resume, nothing lost */
        assert_false(mart_path_exists(ck));
    } else {
        assert_int_equal(rc, 130);
        assert_true(mart_is_dir(ck));
        assert_true(count_lines(b, "metrics.jsonl") < 40);
        assert_int_equal(run_pretrain(b, data, true, false), 0);
    }
    assert_same_file(a, b, "model.safetensors");
    assert_int_equal(count_lines(b, "metrics.jsonl"), 40);
    mart_err err = {{0}};
    assert_int_equal(mart_remove_tree(dir, &err), MART_OK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_run_stopped_and_resumed_gives_the_bytes_of_an_uninterrupted_run),
        cmocka_unit_test(a_device_memory_backend_trains_to_the_cpu_bytes),
        cmocka_unit_test(ctrl_c_writes_a_checkpoint_exits_130_and_resume_finishes_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
