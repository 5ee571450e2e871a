// sample.h: choosing the next token from logits: greedy, temperature, top-k, top-p,
// min-p and repetition penalty, with a seeded generator for reproducible runs.
#ifndef DYNQ_SAMPLE_H
#define DYNQ_SAMPLE_H

#include <stdint.h>

typedef struct dq_sampler_params {
    float temp;            // 0 = greedy
    int top_k;             // <= 0: off
    float top_p;           // >= 1: off
    float min_p;           // <= 0: off
    float repeat_penalty;  // 1: off
    int repeat_last_n;     // window of history the penalty looks at: 0 off, -1 all (llama.cpp)
    uint64_t seed;
} dq_sampler_params;

typedef struct dq_sampler {
    dq_sampler_params p;
    int vocab;
    uint64_t rng;
    struct dq_cand { float v; int id; } *cand;  // (V) scratch
    unsigned char *seen;                         // (V) zero between calls
} dq_sampler;

int dq_sampler_init(dq_sampler *s, int vocab, const dq_sampler_params *p);  // 0 or DQ_ENOMEM
void dq_sampler_free(dq_sampler *s);
// Picks a token from logits (V), modified in place; history: ids so far (for the penalty).
int dq_sample(dq_sampler *s, float *logits, const int32_t *history, int n_hist);
int dq_argmax(const float *v, int n);

#endif
