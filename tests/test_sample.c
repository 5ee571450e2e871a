// tests/test_sample.c: the sampler chain of sample.c against distributions worked out from the
// math (llama.cpp semantics): greedy = argmax (lowest id on ties); repetition penalty (CTRL rule,
// each distinct id in the last repeat_last_n once); then top-k, top-p (keeps the token that
// crosses p), min-p (p >= min_p * p_max), all three on temperature-1 probabilities renormalised
// over what the previous step left, and last the temperature: a draw from softmax(l/T) over the
// survivors. Seeds: same seed, same sequence.
//
// Frequency checks: 4 seeds x 50000 = 200000 draws per configuration. An id the expectation
// excludes must never appear (exact). For a kept id with probability p the count c must satisfy
// |c - N p| <= 6 sqrt(N p (1-p)); for a correct sampler a bin fails with probability ~2e-9
// (normal tail at 6 sigma; the smallest expected count here is ~200, where the normal
// approximation of the binomial is good), so over the < 150 bins of this file < 1e-6 in all.
// Resolution: for p ~ 0.15 the bound is ~1000 counts (0.5% of N), so the plausible bugs below
// (each noted at its check) move a bin by 5-25x the bound or make an excluded id appear.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "sample.h"

#define NSEED 4
#define PER_SEED 50000
#define NDRAW (NSEED * PER_SEED)
#define MAXV 16

static const uint64_t seeds[NSEED] = {1, 2, 3, 0xdeadbeefULL};

// The base distribution, on purpose not in id order. Sorted: id5 .40, id2 .30, id7 .15,
// id0 .10, id3 .03, id6 .015, id1 .004, id4 .001 (sum 1). Logits = ln p + 1.7 (softmax is
// shift-invariant; the offset makes some logits positive and some negative).
#define V8 8
static const double base_p[V8] = {0.10, 0.004, 0.30, 0.03, 0.001, 0.40, 0.015, 0.15};
static float base_l[V8];

static dq_sampler_params params(float temp, int top_k, float top_p, float min_p) {
    return (dq_sampler_params){.temp = temp, .top_k = top_k, .top_p = top_p, .min_p = min_p,
                               .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 1};
}

// Draws NDRAW tokens (fresh copy of the logits each time) and counts them; -1 on an id out of range.
static int draw(const float *logits, int V, dq_sampler_params p, long *counts) {
    memset(counts, 0, sizeof *counts * (size_t)V);
    for (int s = 0; s < NSEED; s++) {
        p.seed = seeds[s];
        dq_sampler smp;
        if (dq_sampler_init(&smp, V, &p)) return -1;
        float l[MAXV];
        for (int i = 0; i < PER_SEED; i++) {
            memcpy(l, logits, sizeof *l * (size_t)V);
            int id = dq_sample(&smp, l, NULL, 0);
            if (id < 0 || id >= V) {
                dq_sampler_free(&smp);
                return -1;
            }
            counts[id]++;
        }
        dq_sampler_free(&smp);
    }
    return 0;
}

// Expected distribution: p_i proportional to exp(l_i / T) over the ids in `keep` (-1 ends the
// list), 0 elsewhere. The kept set is written out by hand at each call from the math.
static void expect(const float *logits, int V, double T, const int *keep, double *pe) {
    double z = 0.0;
    for (int i = 0; i < V; i++) pe[i] = 0.0;
    for (const int *k = keep; *k >= 0; k++) z += pe[*k] = exp((double)logits[*k] / T);
    for (int i = 0; i < V; i++) pe[i] /= z;
}

static void check_freq(const char *name, const float *logits, int V, dq_sampler_params p, const double *pe) {
    long c[MAXV];
    if (draw(logits, V, p, c)) {
        CHECK(name, 0, "sampler init failed or returned an id out of [0, %d)", V);
        return;
    }
    char why[256] = "";
    for (int i = 0; i < V && !why[0]; i++) {
        double mean = NDRAW * pe[i], sd = sqrt(NDRAW * pe[i] * (1.0 - pe[i]));
        if (pe[i] == 0.0 && c[i] != 0)
            snprintf(why, sizeof why, "id %d drawn %ld times, but it should have been cut", i, c[i]);
        else if (pe[i] > 0.0 && fabs((double)c[i] - mean) > 6.0 * sd)
            snprintf(why, sizeof why, "id %d drawn %ld of %d times, expected %.0f +- %.0f (p %.5f)", i, c[i], NDRAW,
                     mean, 6.0 * sd, pe[i]);
    }
    CHECK(name, !why[0], "%s", why);
}

// One dq_sample call on a copy of `logits` with history; returns the id, copies the modified logits out.
static int sample_once(const float *logits, int V, dq_sampler_params p, const int32_t *hist, int n_hist, float *out) {
    dq_sampler smp;
    if (dq_sampler_init(&smp, V, &p)) return -1;
    float l[MAXV];
    memcpy(l, logits, sizeof *l * (size_t)V);
    int id = dq_sample(&smp, l, hist, n_hist);
    dq_sampler_free(&smp);
    if (out) memcpy(out, l, sizeof *l * (size_t)V);
    return id;
}

static void test_greedy(void) {
    const float l[5] = {0.1f, 0.7f, 0.3f, 0.7f, 0.7f};
    CHECK("argmax_ties_lowest_id", dq_argmax(l, 5) == 1, "dq_argmax = %d, want 1", dq_argmax(l, 5));
    const float l2[4] = {-3.0f, -1.0f, -2.0f, -1.5f};
    CHECK("argmax_all_negative", dq_argmax(l2, 4) == 1, "dq_argmax = %d, want 1", dq_argmax(l2, 4));
    int id = sample_once(l, 5, params(0.0f, 0, 1.0f, 0.0f), NULL, 0, NULL);
    CHECK("greedy_temp0_ties_lowest_id", id == 1, "dq_sample(temp 0) = %d, want 1", id);
    // Greedy ignores the other filters: the argmax of the base distribution is id 5.
    int ok = 1;
    for (int k = 0; k < 100 && ok; k++) ok = sample_once(base_l, V8, params(0.0f, 3, 0.5f, 0.2f), NULL, 0, NULL) == 5;
    CHECK("greedy_temp0_is_argmax", ok, "temp 0 did not return id 5 every time");
    // top_k = 1 at temp > 0 is greedy too, with the same tie rule.
    ok = 1;
    for (int s = 1; s <= 50 && ok; s++) {
        dq_sampler_params p = params(1.0f, 1, 1.0f, 0.0f);
        p.seed = (uint64_t)s;
        ok = sample_once(l, 5, p, NULL, 0, NULL) == 1;
    }
    CHECK("topk1_ties_lowest_id", ok, "top_k 1 at temp 1 did not always return id 1");
    const float ninf[4] = {-INFINITY, -INFINITY, -2.0f, -INFINITY};
    id = sample_once(ninf, 4, params(0.0f, 0, 1.0f, 0.0f), NULL, 0, NULL);
    CHECK("greedy_neg_inf", id == 2, "dq_sample(temp 0) over -inf logits = %d, want 2", id);
}

static void test_temperature(void) {
    double pe[V8];
    const int all[] = {0, 1, 2, 3, 4, 5, 6, 7, -1};
    // T = 1: the base probabilities themselves.
    expect(base_l, V8, 1.0, all, pe);
    for (int i = 0; i < V8; i++)
        if (fabs(pe[i] - base_p[i]) > 1e-6) {
            CHECK("expect_sanity", 0, "softmax(ln p) != p at id %d", i);
            return;
        }
    check_freq("temp1_full_distribution", base_l, V8, params(1.0f, 0, 1.0f, 0.0f), pe);
    // T = 0.5: p^2 renormalised (id5 .40^2/.2536 = .631 instead of .40).
    expect(base_l, V8, 0.5, all, pe);
    check_freq("temp0.5_softmax_l_over_T", base_l, V8, params(0.5f, 0, 1.0f, 0.0f), pe);
    // T = 2: sqrt(p) renormalised (id5 .278 instead of .40; a sampler ignoring T is off by ~250 sd).
    expect(base_l, V8, 2.0, all, pe);
    check_freq("temp2_softmax_l_over_T", base_l, V8, params(2.0f, 0, 1.0f, 0.0f), pe);
}

static void test_top_k(void) {
    double pe[V8];
    const int top3[] = {5, 2, 7, -1}, all[] = {0, 1, 2, 3, 4, 5, 6, 7, -1};
    // Kept: the 3 best ids, renormalised: .40/.85, .30/.85, .15/.85. Off-by-one k makes id 0
    // appear; no renormalisation (r drawn in [0,1) over .85 of mass, rest to the last kept)
    // gives id 7 .30 instead of .176 (~24000 counts vs a bound of ~1000).
    expect(base_l, V8, 1.0, top3, pe);
    check_freq("topk3_only_best_renormalized", base_l, V8, params(1.0f, 3, 1.0f, 0.0f), pe);
    // Temperature applies to the survivors: sqrt weights over the same 3.
    expect(base_l, V8, 2.0, top3, pe);
    check_freq("topk3_temp2", base_l, V8, params(2.0f, 3, 1.0f, 0.0f), pe);
    // top_k >= V and top_k = 0 are off.
    expect(base_l, V8, 1.0, all, pe);
    check_freq("topk_gt_vocab_is_off", base_l, V8, params(1.0f, 100, 1.0f, 0.0f), pe);
    check_freq("topk_eq_vocab_is_off", base_l, V8, params(1.0f, V8, 1.0f, 0.0f), pe);
}

static void test_top_p(void) {
    double pe[V8];
    const int top2[] = {5, 2, -1}, top3[] = {5, 2, 7, -1}, all[] = {0, 1, 2, 3, 4, 5, 6, 7, -1};
    // p = .75: cumulative .40, .70, .85: the smallest prefix reaching .75 has 3 ids (id 7
    // crosses p and is kept). A cut that drops the crossing token never draws id 7 (expected .176).
    expect(base_l, V8, 1.0, top3, pe);
    check_freq("topp0.75_keeps_crossing_token", base_l, V8, params(1.0f, 0, 0.75f, 0.0f), pe);
    // p = .65: .70 crosses at the second id: 2 kept.
    expect(base_l, V8, 1.0, top2, pe);
    check_freq("topp0.65_two_kept", base_l, V8, params(1.0f, 0, 0.65f, 0.0f), pe);
    // Temperature last (llama.cpp): at T = 2 the cut is still on the T = 1 probabilities (3 ids),
    // then sqrt weights over them. Cutting on softmax(l/2) instead (.278, .241, .170, .139 ->
    // cumulative .689 < .75 at 3) would keep id 0 as well.
    expect(base_l, V8, 2.0, top3, pe);
    check_freq("topp0.75_temp2_cut_before_temperature", base_l, V8, params(2.0f, 0, 0.75f, 0.0f), pe);
    // top_p = 1 is off: even the .001 id is drawn (~200 times).
    expect(base_l, V8, 1.0, all, pe);
    check_freq("topp1_is_off", base_l, V8, params(1.0f, 0, 1.0f, 0.0f), pe);
}

static void test_min_p(void) {
    double pe[V8];
    const int top3[] = {5, 2, 7, -1}, all[] = {0, 1, 2, 3, 4, 5, 6, 7, -1};
    // min_p .3: threshold .3 * .40 = .12: .15 stays, .10 goes.
    expect(base_l, V8, 1.0, top3, pe);
    check_freq("minp0.3_threshold_of_pmax", base_l, V8, params(1.0f, 0, 1.0f, 0.3f), pe);
    // Temperature last: at T = 2 the ratio test uses T = 1 probabilities (id 0: .10/.40 = .25
    // < .3, cut); on softmax(l/2) the ratio would be sqrt(.25) = .5 and id 0 would stay.
    expect(base_l, V8, 2.0, top3, pe);
    check_freq("minp0.3_temp2_cut_before_temperature", base_l, V8, params(2.0f, 0, 1.0f, 0.3f), pe);
    expect(base_l, V8, 1.0, all, pe);
    check_freq("minp0_is_off", base_l, V8, params(1.0f, 0, 1.0f, 0.0f), pe);
    // The bound is inclusive (p >= min_p * p_max): min_p = 1 keeps the two tied best ids.
    const float tie[4] = {0.5f, 1.0f, -0.5f, 1.0f};
    const int tied[] = {1, 3, -1};
    double pt[4];
    expect(tie, 4, 1.0, tied, pt);
    check_freq("minp1_keeps_ties_inclusive", tie, 4, params(1.0f, 0, 1.0f, 1.0f), pt);
}

static void test_chain_order(void) {
    double pe[V8];
    // top-k then top-p on the renormalised survivors: top_k 2 -> .571, .429; top_p .5 keeps 1.
    // (top-p on the full distribution first would need .40 + .30 and keep 2.)
    const int only5[] = {5, -1};
    expect(base_l, V8, 1.0, only5, pe);
    check_freq("chain_topk_then_topp_renormalized", base_l, V8, params(1.0f, 2, 0.5f, 0.0f), pe);
    // top-p then min-p: top_p .8 keeps 3 (cum .85), min_p .3 keeps 3 (.15 >= .12).
    // Min-p first would keep 3, renormalise to .471, .353, .176, and top-p .8 would stop at 2.
    const int top3[] = {5, 2, 7, -1};
    expect(base_l, V8, 1.0, top3, pe);
    check_freq("chain_topp_then_minp", base_l, V8, params(1.0f, 0, 0.8f, 0.3f), pe);
    // All of it at T = 0.7: top_k 4 -> {5,2,7,0} renormalised by .95: .421 .316 .158 .105;
    // top_p .85 -> cumulative .737, .895: 3 kept; min_p .45 -> threshold .189: {5, 2};
    // then weights p^(1/0.7) over those two.
    const int top2[] = {5, 2, -1};
    expect(base_l, V8, 0.7, top2, pe);
    check_freq("chain_topk_topp_minp_temp", base_l, V8, params(0.7f, 4, 0.85f, 0.45f), pe);
}

static void test_penalty(void) {
    float out[4];
    dq_sampler_params p = params(0.0f, 0, 1.0f, 0.0f);
    p.repeat_penalty = 1.5f;
    // Positive logit divided: 2.0 -> 1.333 < 1.8, so greedy moves from id 0 to id 1.
    const float lp[4] = {2.0f, 1.8f, -1.0f, 0.5f};
    const int32_t h0[1] = {0};
    int id = sample_once(lp, 4, p, h0, 1, out);
    CHECK("penalty_positive_divided", id == 1 && out[0] == 2.0f / 1.5f && out[1] == 1.8f && out[3] == 0.5f,
          "id %d (want 1), logit0 %g (want %g)", id, out[0], 2.0f / 1.5f);
    // Negative logit multiplied: -0.5 -> -0.75 < -0.6 (dividing would give -0.333 and keep id 0).
    const float ln[4] = {-0.5f, -0.6f, -3.0f, -2.0f};
    id = sample_once(ln, 4, p, h0, 1, out);
    CHECK("penalty_negative_multiplied", id == 1 && out[0] == -0.5f * 1.5f, "id %d (want 1), logit0 %g (want -0.75)",
          id, out[0]);
    // Window: history {0, 2, 2, 2}. Last 3 = {2, 2, 2}: only id 2, penalised once (1.9/1.5, not
    // 1.9/1.5^3), id 0 untouched and still the argmax.
    const float lw[4] = {2.0f, 1.5f, 1.9f, 0.0f};
    const int32_t hw[4] = {0, 2, 2, 2};
    p.repeat_last_n = 3;
    id = sample_once(lw, 4, p, hw, 4, out);
    CHECK("penalty_last_n_window_once", id == 0 && out[0] == 2.0f && out[2] == 1.9f / 1.5f,
          "id %d (want 0), logit0 %g (want 2), logit2 %g (want %g)", id, out[0], out[2], 1.9f / 1.5f);
    // Last 4 (and a window longer than the history) reach id 0 as well: 1.333, 1.5, 1.267 -> id 1.
    int ok = 1;
    for (int n = -1; n <= 100 && ok; n = n < 0 ? 4 : n + 96) {  // -1: the whole history
        p.repeat_last_n = n;
        id = sample_once(lw, 4, p, hw, 4, out);
        ok = id == 1 && out[0] == 2.0f / 1.5f && out[2] == 1.9f / 1.5f && out[1] == 1.5f;
    }
    CHECK("penalty_whole_window", ok, "id %d (want 1), logits %g %g %g", id, out[0], out[1], out[2]);
    // repeat_last_n 0 turns the penalty off (llama.cpp): nothing changes, id 0 stays the argmax.
    p.repeat_last_n = 0;
    id = sample_once(lw, 4, p, hw, 4, out);
    CHECK("penalty_last_n_0_is_off", id == 0 && out[0] == 2.0f && out[2] == 1.9f, "id %d (want 0), logits %g %g", id,
          out[0], out[2]);
    // Penalty 1 is off.
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    id = sample_once(lp, 4, p, h0, 1, out);
    CHECK("penalty_1_is_off", id == 0 && out[0] == 2.0f, "id %d (want 0), logit0 %g", id, out[0]);
    // The penalty comes before the stochastic chain: top_k 1 at temp 1 picks the penalised argmax.
    p = params(1.0f, 1, 1.0f, 0.0f);
    p.repeat_penalty = 1.5f;
    id = sample_once(lp, 4, p, h0, 1, NULL);
    CHECK("penalty_before_topk", id == 1, "top_k 1 after penalty gave %d, want 1", id);
}

static void run_seq(uint64_t seed, int *seq, int n) {
    dq_sampler_params p = params(1.0f, 0, 1.0f, 0.0f);
    p.seed = seed;
    dq_sampler smp;
    if (dq_sampler_init(&smp, V8, &p)) {
        for (int i = 0; i < n; i++) seq[i] = -1;
        return;
    }
    float l[V8];
    for (int i = 0; i < n; i++) {
        memcpy(l, base_l, sizeof l);
        seq[i] = dq_sample(&smp, l, NULL, 0);
    }
    dq_sampler_free(&smp);
}

static void test_seeds(void) {
    enum { N = 2000 };
    static int a[N], b[N], c[N];
    run_seq(42, a, N);
    run_seq(42, b, N);
    run_seq(43, c, N);
    int same = !memcmp(a, b, sizeof a), diff = 0, valid = 1;
    for (int i = 0; i < N; i++) {
        diff += a[i] != c[i];
        valid &= a[i] >= 0 && a[i] < V8;
    }
    CHECK("seed_same_sequence", same && valid, "two runs with seed 42 differ (or gave bad ids)");
    // Two independent draws from base_p agree with probability sum p^2 = .2836, so ~1433 of 2000
    // positions differ (sd ~20); 1000 or fewer would be ~20 sd away.
    CHECK("seed_different_sequence", diff > 1000, "seeds 42 and 43 differ at only %d of %d draws", diff, N);
}

static void test_edges(void) {
    // V = 1: always id 0, whatever the filters.
    const float one[1] = {-7.0f};
    int ok = 1;
    for (int s = 1; s <= 200 && ok; s++) {
        dq_sampler_params p = params(s % 2 ? 1.0f : 0.0f, 1 + s % 3, 0.5f, 0.5f);
        p.seed = (uint64_t)s;
        ok = sample_once(one, 1, p, NULL, 0, NULL) == 0;
    }
    CHECK("vocab1_always_0", ok, "V = 1 gave a nonzero id");
    // All logits equal: uniform at any temperature; greedy picks id 0; min_p keeps them all.
    const float eq[6] = {0.25f, 0.25f, 0.25f, 0.25f, 0.25f, 0.25f};
    double pu[6];
    for (int i = 0; i < 6; i++) pu[i] = 1.0 / 6.0;
    check_freq("equal_logits_uniform", eq, 6, params(0.6f, 0, 1.0f, 0.0f), pu);
    check_freq("equal_logits_minp_keeps_all", eq, 6, params(1.0f, 0, 1.0f, 0.9f), pu);
    int id = sample_once(eq, 6, params(0.0f, 0, 1.0f, 0.0f), NULL, 0, NULL);
    CHECK("equal_logits_greedy_0", id == 0, "greedy over equal logits gave %d, want 0", id);
    // -inf logits are never drawn; the rest follow softmax(l/T).
    const float ni[6] = {1.0f, -INFINITY, 0.0f, -INFINITY, -1.0f, 0.5f};
    const int fin[] = {0, 2, 4, 5, -1};
    double pn[6];
    expect(ni, 6, 1.0, fin, pn);
    check_freq("neg_inf_never_drawn", ni, 6, params(1.0f, 0, 1.0f, 0.0f), pn);
    expect(ni, 6, 1.5, fin, pn);
    check_freq("neg_inf_never_drawn_topk_gt_finite", ni, 6, params(1.5f, 5, 1.0f, 0.0f), pn);
}

int main(void) {
    for (int i = 0; i < V8; i++) base_l[i] = (float)(log(base_p[i]) + 1.7);
    test_greedy();
    test_temperature();
    test_top_k();
    test_top_p();
    test_min_p();
    test_chain_order();
    test_penalty();
    test_seeds();
    test_edges();
    return failures ? 1 : 0;
}
