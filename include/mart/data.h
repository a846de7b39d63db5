/* data: benchmark and training data from public sources, kept out of the repository in a data
 * directory (--data-dir, else $MART_DATA, else ~/.cache/mart/data) laid out as
 * bench/<name>.jsonl, math/{train,test}.jsonl and gsm8k/{train,test}.jsonl. Owns the table
 * of known sets (files, public URLs, sha256), their download (libcurl, checked, atomic) and
 * the training sets built from them. */
#ifndef MART_DATA_H
#define MART_DATA_H

#include <stdio.h>

#include "mart/core.h"

/* One file of a known set: its path in the data directory, where it is published, and the
 * sha256 (hex) of the bytes mart expects. url is NULL where no single public file exists. */
typedef struct {
    const char *path;
    const char *url;
    const char *sha256;
} data_file;

typedef struct {
    const char *name; /* what `mart data get` takes */
    const char *what; /* one line for `mart data list` */
    const data_file *files;
    int32_t n_files;
} data_set;

/* The known sets, in a fixed order; *n receives their number. */
const data_set *data_sets(int32_t *n);

/* The data directory: dir when not NULL, else $MART_DATA when set and not empty, else
 * $HOME/.cache/mart/data. Writes it to buf; fails only when none of those is known or the
 * path does not fit. */
int data_dir_resolve(const char *dir, char *buf, size_t cap, mart_err *err);

/* The file holding benchmark `name` in data_dir: bench/<name>.jsonl for aime24, amc23,
 * math500, minerva_math, olympiadbench and gsm8k (GSM8K's test split), math/test.jsonl for
 * "math" (MATH's test split). Unknown names are an error listing the known ones. */
int data_bench_path(const char *data_dir, const char *name, char *buf, size_t cap, mart_err *err);

/* Fetches every file of set `name` into data_dir: downloaded to a temporary file beside the
 * target, its sha256 checked, then renamed into place, so a failed or corrupt download never
 * leaves a file under the real name. A file already there with the right sha256 is kept.
 * base_url NULL: each file's public URL (HTTPS); otherwise BASE/<path> (a mirror, or a local
 * server in tests). Progress lines go to log (may be NULL). Errors name the file and URL. */
int data_get(const char *data_dir, const char *name, const char *base_url, FILE *log,
             mart_err *err);

/* sha256 of a whole file as 64 hex digits plus NUL. */
int data_sha256_file(const char *path, char hex[65], mart_err *err);

/* What a prepare call did; printed by `mart data prepare`. */
typedef struct {
    int64_t read;       /* records in the source files */
    int64_t written;    /* lines in the output */
    int64_t excluded;   /* dropped because they are in the excluded benchmark */
    int64_t off_level;  /* dropped for their level (outside the range, or "Level ?") */
    int64_t no_answer;  /* dropped because no final answer could be extracted */
    int64_t bench_size; /* problems in the excluded benchmark */
    int64_t bench_hits; /* of those, found in the source files */
} data_prepare_stats;

/* Builds the MATH training set: math/train.jsonl + math/test.jsonl, levels lo..hi (1..5),
 * without the problems of benchmark `exclude` (e.g. "math500"; NULL: none) matched by their
 * problem text (whitespace runs compared as one space), each answer the last \boxed{} of the
 * solution by grade_extract. Writes {"problem", "answer", "level", "type", "id"} lines to
 * out_path atomically. Solutions with no extractable answer are dropped and the first few
 * are described on log (may be NULL). */
int data_prepare_math(const char *data_dir, int32_t lo, int32_t hi, const char *exclude,
                      const char *out_path, FILE *log, data_prepare_stats *st, mart_err *err);

/* Builds a GSM8K set from gsm8k/<split>.jsonl (split "train" or "test"): {"problem",
 * "answer"} lines, the answer being the number after "#### " without thousands commas. */
int data_prepare_gsm8k(const char *data_dir, const char *split, const char *out_path,
                       data_prepare_stats *st, mart_err *err);

#endif
