/* gen_sample: turning one row of logits into a token. Private to src/gen (and its tests).
 *
 * The sampling distribution, in this order (as Hugging Face's generate applies them):
 *   1. s = logits / temperature;
 *   2. top-k: keep the k largest s (ties go to the lower id);
 *   3. top-p: over the kept tokens sorted by probability (renormalised after top-k), keep
 *      the shortest prefix whose mass reaches top_p (at least one token);
 *   4. renormalise over what is kept and draw by inverse CDF with one uniform number.
 *
 * The log-prob returned is that of the sampled token under this final, renormalised
 * distribution: the probability with which the token was actually drawn, which is what PPO's
 * importance ratio needs. Without truncation (top-k 0, top-p 1) that is the model's
 * log-softmax at that temperature (max-shifted log-sum-exp, as kern_logsoftmax_forward), so
 * at temperature 1 the first PPO ratio is 1 up to the forward passes' rounding. Greedy
 * decoding (temperature 0) is deterministic; its log-prob is reported as the model's plain
 * log-softmax (temperature 1) of the chosen token, since log 1 = 0 would carry nothing. */
#ifndef MART_GEN_SAMPLE_H
#define MART_GEN_SAMPLE_H

#include "mart/gen.h"

/* One candidate token: its unnormalised weight exp(s - max s) and its id. */
typedef struct {
    float w;
    int32_t id;
} gen_cand;

/* Draws a token from logits z (V) under p with the uniform number u in [0, 1). scratch
 * holds V candidates. Writes the log-prob (see above) to *logprob. */
int32_t gen_sample_row(const float *z, int32_t V, const gen_params *p, double u, gen_cand *scratch,
                       float *logprob);

/* The whole sampling distribution of z under p: probs (V), zero for truncated tokens, one
 * for the argmax when greedy. scratch holds V candidates. For tests and for reading. */
void gen_sample_dist(const float *z, int32_t V, const gen_params *p, gen_cand *scratch,
                     double *probs);

#endif
