/* ckpt: checkpoint folders, moments, state files and metrics shared by the trainers (see
 * mart/ckpt.h). */
#include "mart/ckpt.h"
#include "mart/safetensors.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* Makes the renames inside dir durable. */
static void fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    fsync(fd);
    close(fd);
}

static void parent_of(const char *path, char *buf, size_t cap) {
    snprintf(buf, cap, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == buf) buf[1] = 0;
    else *slash = 0;
}

int ckpt_commit(const char *src, const char *dst, mart_err *err) {
    char parent[4096];
    parent_of(dst, parent, sizeof parent);
    if (!mart_path_exists(dst)) {
        if (rename(src, dst) != 0)
            return mart_fail(err, "%s: cannot move into place: %s", dst, strerror(errno));
        fsync_dir(parent);
        return MART_OK;
    }
    if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_EXCHANGE) == 0) {
        fsync_dir(parent);
        return mart_remove_tree(src, err); /* the old folder, now at src */
    }
    if (errno != EINVAL && errno != ENOSYS)
        return mart_fail(err, "%s: cannot swap in %s: %s", dst, src, strerror(errno));
    /* No exchange on this filesystem: two renames; ckpt_recover covers the moment between. */
    char old[4160];
    snprintf(old, sizeof old, "%s.old.%d", dst, (int)getpid());
    if (rename(dst, old) != 0)
        return mart_fail(err, "%s: cannot move aside: %s", dst, strerror(errno));
    if (rename(src, dst) != 0) {
        int e = errno;
        rename(old, dst);
        return mart_fail(err, "%s: cannot move into place: %s", dst, strerror(e));
    }
    fsync_dir(parent);
    return mart_remove_tree(old, err);
}

bool ckpt_recover(const char *run_dir, const char *name) {
    char dst[4096];
    mart_path_join(dst, sizeof dst, run_dir, name);
    if (mart_is_dir(dst)) return true;
    DIR *d = opendir(run_dir);
    if (!d) return false;
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s.old.", name);
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (strncmp(e->d_name, prefix, strlen(prefix))) continue;
        char old[4096];
        mart_path_join(old, sizeof old, run_dir, e->d_name);
        found = mart_is_dir(old) && rename(old, dst) == 0;
    }
    closedir(d);
    if (found) fsync_dir(run_dir);
    return found;
}

/* Whether metrics.jsonl in run_dir holds at least one line. */
static bool has_metrics(const char *run_dir) {
    char path[4096];
    FILE *f = fopen(mart_path_join(path, sizeof path, run_dir, "metrics.jsonl"), "rb");
    if (!f) return false;
    int c = fgetc(f);
    fclose(f);
    return c != EOF;
}

int64_t ckpt_last_step(const char *run_dir) {
    char path[4096], *text = NULL;
    size_t len;
    mart_err e;
    if (mart_read_file(mart_path_join(path, sizeof path, run_dir, "metrics.jsonl"), &text, &len,
                       &e) != MART_OK)
        return 0;
    int64_t last = 0;
    for (char *p = text; (p = strstr(p, "\"step\":")) != NULL; p += 7) {
        long long v = strtoll(p + 7, NULL, 10);
        if (v > last) last = v;
    }
    free(text);
    return last;
}

int ckpt_check_fresh_start(const char *run_dir, bool resume, bool have_checkpoint,
                           int64_t save_every, const char *what, mart_err *err) {
    if (!resume && have_checkpoint)
        return mart_fail(err,
                         "%s already holds a run (checkpoint/): pass --resume to continue it, "
                         "or choose another output folder",
                         run_dir);
    if (!resume && has_metrics(run_dir))
        return mart_fail(err,
                         "%s/metrics.jsonl already holds a run's metrics: choose another "
                         "output folder (or remove it) to start %s afresh",
                         run_dir, what);
    int64_t last = resume && !have_checkpoint ? ckpt_last_step(run_dir) : 0;
    /* a step's metrics line comes before its checkpoint: a line of step save_every + 1 or
     * later means the first checkpoint was written */
    if (save_every > 0 && last > save_every)
        return mart_fail(err,
                         "%s: no checkpoint to resume from, but metrics.jsonl reaches step %lld, "
                         "past the first checkpoint (--save-every %lld); refusing to start %s "
                         "over in that folder",
                         run_dir, (long long)last, (long long)save_every, what);
    return MART_OK;
}

int ckpt_lock(const char *run_dir, int *fd, mart_err *err) {
    char path[4096];
    mart_path_join(path, sizeof path, run_dir, ".lock");
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0) return mart_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return mart_fail(err, "%s: %s", run_dir,
                         e == EWOULDBLOCK ? "another mart process is writing this folder"
                                          : strerror(e));
    }
    return MART_OK;
}

void ckpt_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing releases the flock */
}

int ckpt_save_model(model *m, const char *dir, mart_dtype dtype, mart_err *err) {
    mart_dtype keep = m->cfg.dtype;
    m->cfg.dtype = dtype;
    int rc = model_save(m, dir, err);
    m->cfg.dtype = keep;
    return rc;
}

int ckpt_save_moments(const char *path, const adamw_state *const *s, const char *const *prefix,
                      int32_t n, mart_err *err) {
    st_view *v = mart_xcalloc((size_t)(2 * n + 1), sizeof *v);
    char(*names)[128] = mart_xcalloc((size_t)(2 * n + 1), sizeof *names);
    float **host = mart_xcalloc((size_t)(2 * n + 1), sizeof *host); /* device backends */
    for (int32_t i = 0; i < n; i++) {
        const mart_backend *be = s[i]->be;
        for (int j = 0; j < 2; j++) {
            float *mom = j ? s[i]->v : s[i]->m;
            if (!be->host_memory) {
                host[2 * i + j] = mart_xmalloc((size_t)(s[i]->n > 0 ? s[i]->n : 1) * sizeof(float));
                be->download(be, host[2 * i + j], mom, s[i]->n);
                mom = host[2 * i + j];
            }
            snprintf(names[2 * i + j], sizeof names[0], "%s.%s", prefix[i], j ? "v" : "m");
            v[2 * i + j] = (st_view){.name = names[2 * i + j], .dtype = MART_DTYPE_F32,
                                     .ndim = 1, .shape = {s[i]->n}, .data = mom};
        }
    }
    int rc = st_save(path, v, 2 * n, NULL, NULL, 0, err);
    for (int32_t i = 0; i < 2 * n; i++)
        free(host[i]);
    free(host);
    free(v);
    free(names);
    return rc;
}

int ckpt_load_moments(const char *path, adamw_state *const *s, const char *const *prefix,
                      int32_t n, mart_err *err) {
    st_file *f;
    if (st_open(path, &f, err) != MART_OK) return MART_ERR;
    int rc = MART_OK;
    for (int32_t i = 0; i < n && rc == MART_OK; i++)
        for (int j = 0; j < 2 && rc == MART_OK; j++) {
            char name[128];
            snprintf(name, sizeof name, "%s.%s", prefix[i], j ? "v" : "m");
            const st_view *tv = st_find(f, name);
            if (!tv || tv->dtype != MART_DTYPE_F32 || tv->ndim != 1 || tv->shape[0] != s[i]->n)
                rc = mart_fail(err, "%s: tensor %s missing or of the wrong shape (want F32 [%lld])",
                               path, name, (long long)s[i]->n);
            else if (s[i]->be->host_memory)
                st_to_f32(tv, j ? s[i]->v : s[i]->m);
            else {
                float *h = mart_xmalloc((size_t)(s[i]->n > 0 ? s[i]->n : 1) * sizeof(float));
                st_to_f32(tv, h);
                s[i]->be->upload(s[i]->be, j ? s[i]->v : s[i]->m, h, s[i]->n);
                free(h);
            }
        }
    st_close(f);
    return rc;
}

int ckpt_write_json(const char *path, const cJSON *o, mart_err *err) {
    char *s = cJSON_Print(o);
    int rc = mart_write_file_atomic(path, s, strlen(s), err);
    free(s);
    return rc;
}

int ckpt_read_json(const char *path, cJSON **o, mart_err *err) {
    char *text = NULL;
    size_t len;
    *o = NULL;
    if (mart_read_file(path, &text, &len, err) != MART_OK) return MART_ERR;
    *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(*o)) {
        cJSON_Delete(*o);
        *o = NULL;
        return mart_fail(err, "%s: not a JSON object", path);
    }
    return MART_OK;
}

int ckpt_json_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *v,
                  const char *path, mart_err *err) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(x)) return mart_fail(err, "%s: field '%s' missing or not a number", path, key);
    double d = x->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        return mart_fail(err, "%s: field '%s' is %g, outside [%lld, %lld] or not an integer",
                         path, key, d, (long long)lo, (long long)hi);
    *v = (int64_t)d;
    return MART_OK;
}

int ckpt_trim_metrics(const char *path, int64_t last_step, mart_err *err) {
    if (!mart_path_exists(path)) return MART_OK;
    char *text = NULL;
    size_t len;
    if (mart_read_file(path, &text, &len, err) != MART_OK) return MART_ERR;
    mart_buf keep = {0};
    for (char *line = text, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *s = o ? cJSON_GetObjectItemCaseSensitive(o, "step") : NULL;
        if (cJSON_IsNumber(s) && s->valuedouble <= (double)last_step) {
            mart_buf_append(&keep, line, strlen(line));
            mart_buf_append(&keep, "\n", 1);
        }
        cJSON_Delete(o);
    }
    int rc = mart_write_file_atomic(path, keep.data ? keep.data : "", keep.len, err);
    mart_buf_free(&keep);
    free(text);
    return rc;
}
