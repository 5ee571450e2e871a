// sample.c: the sampler chain, in llama.cpp's order: repetition penalty, then (unless
// greedy) top-k, top-p, min-p, and last the temperature: a draw from softmax(logits/temp)
// over what is left. top-p and min-p cut on the temperature-1 probabilities, as in llama.cpp.
#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int dq_argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

int dq_sampler_init(dq_sampler *s, int vocab, const dq_sampler_params *p) {
    memset(s, 0, sizeof *s);
    s->p = *p;
    s->vocab = vocab;
    s->rng = p->seed ? p->seed : 0x9e3779b97f4a7c15ULL;
    s->cand = malloc(sizeof *s->cand * (size_t)vocab);
    s->seen = calloc((size_t)vocab, 1);
    return s->cand && s->seen ? DQ_OK : DQ_ENOMEM;
}

void dq_sampler_free(dq_sampler *s) {
    free(s->cand);
    free(s->seen);
    s->cand = NULL;
    s->seen = NULL;
}

// xorshift64* : small, fast, and the same sequence on every platform.
static double rng_uniform(uint64_t *st) {
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return (double)((*st * 0x2545F4914F6CDD1DULL) >> 11) * (1.0 / 9007199254740992.0);
}

static int cand_desc(const void *a, const void *b) {
    const struct dq_cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->id - y->id;
}

int dq_sample(dq_sampler *s, float *logits, const int32_t *history, int n_hist) {
    const dq_sampler_params *p = &s->p;
    int V = s->vocab;
    if (p->repeat_penalty != 1.0f && p->repeat_last_n != 0 && n_hist > 0) {
        // Each distinct recent token is penalised once (CTRL-style: divide positive, multiply
        // negative); `seen` marks the ids done and is cleared again on the way out.
        int from = p->repeat_last_n > 0 && n_hist > p->repeat_last_n ? n_hist - p->repeat_last_n : 0;
        for (int i = from; i < n_hist; i++) {
            int id = history[i];
            if (id < 0 || id >= V || s->seen[id]) continue;
            s->seen[id] = 1;
            logits[id] = logits[id] > 0 ? logits[id] / p->repeat_penalty : logits[id] * p->repeat_penalty;
        }
        for (int i = from; i < n_hist; i++)
            if (history[i] >= 0 && history[i] < V) s->seen[history[i]] = 0;
    }
    if (p->temp <= 0.0f) return dq_argmax(logits, V);
    int n = V;
    for (int i = 0; i < V; i++) s->cand[i] = (struct dq_cand){logits[i], i};
    qsort(s->cand, (size_t)V, sizeof *s->cand, cand_desc);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    // Softmax at temperature 1 over the survivors (sorted, so cand[0] is the max); the
    // logits stay in `logits` for the temperature applied at the end.
    double mx = s->cand[0].v, sum = 0.0;
    for (int i = 0; i < n; i++) {
        double e = exp((double)s->cand[i].v - mx);
        s->cand[i].v = (float)e;
        sum += e;
    }
    for (int i = 0; i < n; i++) s->cand[i].v = (float)(s->cand[i].v / sum);
    if (p->top_p < 1.0f) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += s->cand[i].v;
            if (cum >= p->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0.0f) {
        float thr = s->cand[0].v * p->min_p;
        int keep = 1;
        while (keep < n && s->cand[keep].v >= thr) keep++;
        n = keep;
    }
    double tot = 0.0;
    for (int i = 0; i < n; i++) {
        s->cand[i].v = (float)exp(((double)logits[s->cand[i].id] - mx) / p->temp);
        tot += s->cand[i].v;
    }
    double r = rng_uniform(&s->rng) * tot, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].v;
        if (r < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}
