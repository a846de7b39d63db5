/* ckpt: what the trainers (rl, sft) share to make runs that survive a stop or a crash:
 * checkpoint folders swapped in atomically, AdamW moments in a safetensors file, state.json
 * fields read with their ranges checked, metrics.jsonl trimmed back to a checkpoint, and
 * refusing to start a run over silently. Owns no run state of its own. */
#ifndef MART_CKPT_H
#define MART_CKPT_H

#include "mart/core.h"
#include "mart/model.h"

struct cJSON;

/* Replaces folder dst by folder src so that at every instant dst is either the old complete
 * folder or the new complete one (renameat2 RENAME_EXCHANGE, then the old one, now at src, is
 * removed; the parent folder is fsync'ed). Where the filesystem cannot exchange, falls back
 * to two renames; ckpt_recover then finds a folder stranded between them. src's files must
 * already be durable (mart_write_file_atomic / st_save fsync them). */
int ckpt_commit(const char *src, const char *dst, mart_err *err);
/* Before resuming from RUN_DIR/name: a folder left as name.old.* by an interrupted fallback
 * commit is moved back when name is missing. Returns whether RUN_DIR/name exists now. */
bool ckpt_recover(const char *run_dir, const char *name);
/* Refuses to start a fresh run (no --resume) in a folder that holds one: a checkpoint, or
 * metrics of earlier steps. With resume and no checkpoint, refuses when the metrics go past
 * the step of the first checkpoint (save_every > 0 and a step > save_every: a step's metrics
 * line is written before its checkpoint, so the checkpoint existed and has been lost, and
 * starting over would overwrite its run); a run killed before its first checkpoint was
 * complete starts again from step 0. what names the command for the message. */
int ckpt_check_fresh_start(const char *run_dir, bool resume, bool have_checkpoint,
                           int64_t save_every, const char *what, mart_err *err);

/* Takes RUN_DIR/.lock (an flock held until ckpt_unlock or the process ends, also by a kill),
 * so that two processes never write one run folder at once; the second gets an error. */
int ckpt_lock(const char *run_dir, int *fd, mart_err *err);
void ckpt_unlock(int fd);

/* The largest "step" in RUN_DIR/metrics.jsonl (0 when there is none). */
int64_t ckpt_last_step(const char *run_dir);

/* Writes m to dir in dtype (F32 for exact resumes) without changing m->cfg. */
int ckpt_save_model(model *m, const char *dir, mart_dtype dtype, mart_err *err);
/* AdamW moments of n states as tensors "<prefix>.m" / "<prefix>.v" (prefix[i] for s[i]);
 * load checks each tensor's presence, dtype and length. */
int ckpt_save_moments(const char *path, const adamw_state *const *s, const char *const *prefix,
                      int32_t n, mart_err *err);
int ckpt_load_moments(const char *path, adamw_state *const *s, const char *const *prefix,
                      int32_t n, mart_err *err);
/* Writes a JSON object to path atomically (pretty-printed). */
int ckpt_write_json(const char *path, const struct cJSON *o, mart_err *err);
/* Reads path as a JSON object (caller frees with cJSON_Delete). */
int ckpt_read_json(const char *path, struct cJSON **o, mart_err *err);
/* An integer field of a state file in [lo, hi]; errors name the file and the field. */
int ckpt_json_int(const struct cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *v,
                  const char *path, mart_err *err);
/* Keeps the lines of metrics.jsonl whose "step" is <= last_step (a crash may have left lines
 * after the checkpoint); a missing file is fine. */
int ckpt_trim_metrics(const char *path, int64_t last_step, mart_err *err);

#endif
