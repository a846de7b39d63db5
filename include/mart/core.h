/* core: what every other module stands on. Errors, allocation, random numbers, time,
 * progress bars, files (atomic writes), JSONL reading. Owns no model or task state.
 *
 * Conventions (all modules):
 *   - functions that can fail on *input* return MART_OK (0) or MART_ERR (-1) and fill a
 *     mart_err with a message naming the file, line, field or tensor;
 *   - programmer errors are assert()s; out of memory aborts loudly in mart_xmalloc. */
#ifndef MART_CORE_H
#define MART_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define MART_OK 0
#define MART_ERR (-1)

/* ---- errors ---------------------------------------------------------------------------- */

typedef struct {
    char msg[1024]; /* human-readable, names the file/line/field/tensor; "" when none */
} mart_err;

/* Sets err->msg (printf-style) and returns MART_ERR, so callers can `return mart_fail(...)`.
 * err may be NULL (message dropped). */
int mart_fail(mart_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an existing message (adds context as the error travels up). */
int mart_fail_wrap(mart_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- allocation: never returns NULL; aborts with a message on out of memory ------------- */

void *mart_xmalloc(size_t n);
void *mart_xcalloc(size_t count, size_t size);
void *mart_xrealloc(void *p, size_t n);
char *mart_xstrdup(const char *s);
/* a followed by b, malloc'd (aborts when out of memory, as mart_xmalloc). */
char *mart_xstrcat(const char *a, const char *b);
/* 64-byte aligned (for SIMD kernels); free with mart_aligned_free. Contents undefined. */
void *mart_aligned_alloc(size_t n);
void mart_aligned_free(void *p);

/* Growable byte buffer. */
typedef struct {
    char *data;
    size_t len, cap;
} mart_buf;
void mart_buf_append(mart_buf *b, const void *data, size_t n);
void mart_buf_printf(mart_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mart_buf_free(mart_buf *b);

/* ---- fault injection (tests) ----------------------------------------------------------- */

/* In builds with MART_FAULTS, the N-th allocation (N = $MART_FAULT_ALLOC) and the N-th file
 * write (N = $MART_FAULT_WRITE, writes of checkpoints, models, results and transcripts) fail
 * as if memory or disk had run out, so that tests can check every failure point; unset or 0:
 * never. Without MART_FAULTS, never. */
typedef enum { MART_FAULT_ALLOC = 0, MART_FAULT_WRITE = 1 } mart_fault_kind;
bool mart_fault(mart_fault_kind kind);
/* write(2) of all len bytes to fd, retrying short writes and EINTR; 0, or -1 with errno (a
 * fault injected as ENOSPC). */
int mart_write_all(int fd, const void *data, size_t len);

/* ---- random numbers: xoshiro256**, splittable by (seed, stream) ------------------------- */

typedef struct {
    uint64_t s[4];
} mart_rng;

/* Seeds a generator for one independent stream; the same (seed, stream) always gives the
 * same sequence, whatever else runs. Used so that a sequence samples identically alone or
 * in a batch: its stream is its request id. */
void mart_rng_seed(mart_rng *r, uint64_t seed, uint64_t stream);
uint64_t mart_rng_u64(mart_rng *r);
double mart_rng_uniform(mart_rng *r);        /* [0, 1) */
float mart_rng_normal(mart_rng *r);          /* N(0, 1) */
int64_t mart_rng_range(mart_rng *r, int64_t lo, int64_t hi); /* uniform in [lo, hi] */
void mart_rng_shuffle_i32(mart_rng *r, int32_t *a, int64_t n);

/* ---- hashing ---------------------------------------------------------------------------- */

#define MART_FNV_OFFSET 1469598103934665603ull
/* FNV-1a: h (start from MART_FNV_OFFSET) folded with n bytes. The same on every machine and
 * run, so it may seed random streams. */
uint64_t mart_fnv1a(uint64_t h, const void *data, size_t n);

/* ---- time and progress ----------------------------------------------------------------- */

double mart_now(void); /* monotonic seconds */

/* A one-line progress bar on stderr with rate and ETA: "label [####    ] 12/40 30% 3.1 it/s
 * ETA 9s | extra". Redraws at most ~10 times a second; silent when stderr is not a tty
 * unless MART_PROGRESS=1, in which case it prints a line every few seconds. */
typedef struct {
    const char *label;
    int64_t total, done;
    double t_start, t_last_draw;
    char extra[160];
    bool tty, enabled;
} mart_progress;
void mart_progress_start(mart_progress *p, const char *label, int64_t total);
/* Advances to `done` and sets the free-form suffix (may be NULL). */
void mart_progress_update(mart_progress *p, int64_t done, const char *extra);
void mart_progress_finish(mart_progress *p);

/* ---- files ----------------------------------------------------------------------------- */

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int mart_read_file(const char *path, char **data, size_t *len, mart_err *err);
/* Writes `path` atomically: temporary file in the same directory, fsync, rename. On any
 * failure (full disk included) the old file is untouched and the error names the path. */
int mart_write_file_atomic(const char *path, const void *data, size_t len, mart_err *err);
/* mkdir -p. */
int mart_mkdirs(const char *path, mart_err *err);
bool mart_path_exists(const char *path);
bool mart_is_dir(const char *path);
/* Joins a directory and a file name into buf; returns buf. */
char *mart_path_join(char *buf, size_t cap, const char *dir, const char *name);
/* Replaces directory `dst` by directory `src` as atomically as the filesystem allows
 * (rename dst aside, rename src into place, remove the old one). */
int mart_replace_dir(const char *src, const char *dst, mart_err *err);
int mart_remove_tree(const char *path, mart_err *err);

/* ---- JSONL ----------------------------------------------------------------------------- */

struct cJSON;
/* Reads a JSONL file (or stdin when path is NULL or "-") line by line. Blank lines are
 * errors only when `strict`; malformed JSON is an error naming path:line. */
typedef struct {
    FILE *f;
    const char *path; /* for messages */
    int64_t line;     /* 1-based number of the line last read */
    char *buf;
    size_t cap;
    bool owns;
} mart_jsonl;
int mart_jsonl_open(mart_jsonl *r, const char *path, mart_err *err);
/* Returns 1 with *obj set (caller frees with cJSON_Delete), 0 at end of file, MART_ERR on a
 * malformed or empty line (message names path:line). */
int mart_jsonl_next(mart_jsonl *r, struct cJSON **obj, mart_err *err);
void mart_jsonl_close(mart_jsonl *r);
/* Loads a whole JSONL file into an array of objects. */
int mart_jsonl_load(const char *path, struct cJSON ***objs, int64_t *n, mart_err *err);
void mart_jsonl_free(struct cJSON **objs, int64_t n);
/* Prints one compact JSON line (with '\n') to f and frees nothing. */
void mart_json_print_line(FILE *f, const struct cJSON *obj);

/* ---- misc ------------------------------------------------------------------------------ */

/* Number of worker threads (OMP_NUM_THREADS or all cores). */
int mart_threads(void);
/* Installs SIGINT/SIGTERM handlers that only set a flag; long loops poll it to stop cleanly
 * (e.g. to write a checkpoint). A second signal exits at once. */
void mart_install_stop_handler(void);
bool mart_stop_requested(void);
/* The signal that requested the stop (SIGINT, SIGTERM), or 0. */
int mart_stop_signal(void);
/* Resident set size of this process in bytes (peak when peak is true). */
int64_t mart_rss_bytes(bool peak);

#endif
