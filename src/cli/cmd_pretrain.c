/* mart pretrain: supervised training of a fresh model (or fine-tuning of --init DIR) on worked
 * solutions; the CLI over sft_train (mart/sft.h). */
#include "cli/cli.h"
#include "mart/sft.h"

int cmd_pretrain(int argc, char **argv) {
    sft_config c;
    sft_config_default(&c);
    int64_t seed = 0;
    cli_opt opts[] = {
        {"data", CLI_STR, &c.data_path, "JSONL with fields problem and solution (e.g. sft.jsonl)"},
        {"out", CLI_STR, &c.out_dir, "model folder to write (config.json, model.safetensors, "
                                     "tokenizer.json, metrics.jsonl; checkpoint/ while running)"},
        {"config", CLI_STR, &c.config, "built-in model shape (tiny, small, 40m); default tiny"},
        {"init", CLI_STR, &c.init_dir,
         "start from this model folder (weights and tokenizer.json) instead of a fresh "
         "model: supervised fine-tuning; --config and --merges do not apply"},
        {"steps", CLI_INT64, &c.steps, "optimiser steps"},
        {"batch", CLI_INT, &c.batch, "examples per step"},
        {"lr", CLI_DOUBLE, &c.lr, "peak learning rate (warm-up 5%, cosine to 10%)"},
        {"weight-decay", CLI_DOUBLE, &c.weight_decay, "AdamW decoupled weight decay"},
        {"seq-len", CLI_INT, &c.seq_len, "longest example in tokens (longer ones are left out)"},
        {"merges", CLI_INT, &c.merges, "BPE merges learned for the byte tokenizer (fresh models)"},
        {"min-attempts", CLI_INT, &c.min_attempts, "smallest N written in the system prompt"},
        {"max-attempts", CLI_INT, &c.max_attempts, "largest N written in the system prompt"},
        {"seed", CLI_INT64, &seed, "random seed (initialisation, order, N)"},
        {"repeat-question", CLI_FLAG, &c.repeat_question,
         "the \"repeat question\" variant of SPEC §1 (prompt and feedback turns), as "
         "`mart train --repeat-question` uses it"},
        {"train-slips", CLI_FLAG, &c.train_slips,
         "every attempt of a transcript is a target, wrong ones written from scratch too (by "
         "default they are context: see docs/DEMO.md)"},
        {"resume", CLI_FLAG, &c.resume, "continue from OUT/checkpoint (same options)"},
        {"save-every", CLI_INT, &c.save_every,
         "steps between checkpoints (0 = only on Ctrl-C / SIGTERM)"},
        {"quiet", CLI_FLAG, &c.quiet, "no progress bar or console lines"},
    };
    int rc = cli_parse("pretrain", "--data FILE.jsonl --out DIR [options]",
                       "Trains a fresh model from scratch (or fine-tunes --init DIR) on worked "
                       "solutions (supervised, loss on the response only) with the "
                       "multi-attempt prompt of SPEC §1, N drawn per example; writes a Hugging "
                       "Face model folder. Ctrl-C or SIGTERM writes OUT/checkpoint and exits "
                       "130 / 143; --resume continues exactly.",
                       opts, (int)(sizeof opts / sizeof opts[0]), argc, argv);
    if (rc) return rc == 1 ? 0 : 2;
    mart_err err = {{0}};
    if (!c.data_path || !c.out_dir) {
        mart_fail(&err, "--data FILE and --out DIR are required");
        return cli_error("pretrain", &err);
    }
    c.seed = (uint64_t)seed;
    bool stopped = false;
    if (sft_train(&c, &stopped, &err) != MART_OK) return cli_error("pretrain", &err);
    return stopped ? cli_stop_status() : 0;
}
