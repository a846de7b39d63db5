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

/* Reads a whole regular file into a NUL-terminated malloc'd buffer; anything else (a
 * directory, a FIFO, a device) is refused without blocking. */
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
int mart_remove_tree(const char *path, mart_err *err);

/* ---- UTF-8 and JSON text --------------------------------------------------------------- */

struct cJSON;

/* Reads one unit of s[0..n) (n >= 1): returns the length of the well-formed UTF-8 character at
 * s with *valid = true, or the length of the maximal ill-formed subpart that starts at s (>= 1)
 * with *valid = false. Such a subpart is what one U+FFFD replaces under the Unicode standard's
 * "substitution of maximal subparts" (WHATWG's decoder, Python's errors="replace"): e.g.
 * E2 82 41 is one U+FFFD then 'A'; ED A0 80 (a surrogate) is three. */
size_t mart_utf8_next(const char *s, size_t n, bool *valid);
/* Appends s[0..n) to out with every maximal ill-formed subpart replaced by U+FFFD, so that out
 * gains valid UTF-8. Returns the number of replacements. */
size_t mart_utf8_repair(mart_buf *out, const char *s, size_t n);
/* Appends s[0..n) to out as a quoted JSON string: '"', '\\' and control characters escaped
 * (NUL as \u0000, so bytes are never cut short), ill-formed UTF-8 repaired as
 * mart_utf8_repair. The result is valid JSON and valid UTF-8 whatever the bytes. */
void mart_json_quote(mart_buf *out, const char *s, size_t n);
/* Appends x as a JSON number with `digits` significant digits, or `null` when x is NaN or
 * infinite (JSON has neither). Returns whether x was finite, so the caller can report it. */
bool mart_json_number(mart_buf *out, double x, int digits);
/* Adds the string member key: s to obj with ill-formed UTF-8 repaired; every text that did not
 * come from mart itself goes into cJSON output through this. s is a C string. */
void mart_json_add_string(struct cJSON *obj, const char *key, const char *s);

/* ---- JSONL ----------------------------------------------------------------------------- */

/* One policy for every JSONL reader:
 *   - a record is one line holding one JSON value; "\n" and "\r\n" endings are both accepted;
 *   - blank lines (only spaces, tabs, '\r') are not records: every reader skips them, so a
 *     trailing blank line changes nothing, and output line k answers the k-th record;
 *   - a line is refused when it is malformed JSON, holds a raw NUL byte, a lone surrogate
 *     escape (\ud800 alone), or a \u0000 escape in any string (cJSON's strings end at NUL, so
 *     the string would be cut short silently; the message names the field);
 *   - batch commands (tokenize, detokenize, score, generate, grade) answer every record, in
 *     order: a result, or {"line": N, "error": "<path:line: message>"} for a refused or failed
 *     record (mart_jsonl_answer_error); they go on to the end and exit 1 if any record failed.
 *     A --n of k samples answers a failed prompt with one error object, not k;
 *   - data loaders (task files, eval benches, train and pretrain data) refuse the whole file
 *     up front at its first bad record, naming path:line, before any work starts. */
typedef struct {
    FILE *f;
    const char *path; /* for messages */
    int64_t line;     /* 1-based number of the line last read */
    int64_t n_failed; /* records answered with an error object */
    char *buf;
    size_t cap;
    bool owns;
    bool io_error; /* reading failed (not a bad line): the reader cannot go on */
} mart_jsonl;
/* Opens path (stdin when path is NULL or "-"); a directory or unreadable file is an error. */
int mart_jsonl_open(mart_jsonl *r, const char *path, mart_err *err);
/* Reads the next record, skipping blank lines. Returns 1 with *obj set (caller frees with
 * cJSON_Delete), 0 at end of input, MART_ERR on a refused line (message names path:line and,
 * where one is at fault, the field); the next call goes on with the next line unless
 * r->io_error, set when reading itself failed. */
int mart_jsonl_next(mart_jsonl *r, struct cJSON **obj, mart_err *err);
void mart_jsonl_close(mart_jsonl *r);
/* A batch command's answer to the record on line `line` that failed: prints {"line": line,
 * "error": err->msg} to out, the message to stderr as "mart <command>: msg", and counts it
 * in r->n_failed. */
void mart_jsonl_answer_error(mart_jsonl *r, FILE *out, const char *command, int64_t line,
                             const mart_err *err);
/* Loads a whole JSONL file into an array of objects (the data loaders' policy: the first bad
 * record fails the load, naming path:line). */
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
/* Bytes this process can still allocate: MemAvailable from /proc/meminfo, lowered to what the
 * address-space limit (RLIMIT_AS) leaves when one is set; -1 when neither is known. */
int64_t mart_mem_available(void);
/* Refuses work before it starts when it would need more memory than mart_mem_available():
 * MART_ERR with "<what> would need X GiB of memory, but Y GiB is available". need_bytes is a
 * double so that absurd settings cannot overflow the estimate. */
int mart_check_memory(double need_bytes, const char *what, mart_err *err);

#endif
