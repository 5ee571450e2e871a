// perplexity.h: perplexity of a model over a token stream, and (with a reference model run
// on the same chunks in the same pass) what quantization costs: ΔPPL, KL divergence,
// top-1 agreement and per-layer hidden-state error.
#ifndef DYNQ_PERPLEXITY_H
#define DYNQ_PERPLEXITY_H

#include "model.h"

enum { DQ_PPL_CHUNKS = 0, DQ_PPL_SLIDING = 1 };

typedef struct dq_ppl_opts {
    int method;    // DQ_PPL_CHUNKS (llama.cpp llama-perplexity) or DQ_PPL_SLIDING (Hugging Face)
    int ctx;       // window length in tokens
    int stride;    // sliding only
    int max_chunks;  // <= 0: all
    dq_progress_fn progress;
    void *progress_ud;
} dq_ppl_opts;

typedef struct dq_ppl_result {
    long n_tokens;          // tokens scored
    int n_windows;
    double nll_sum, ppl, ppl_stderr;
    // with a reference model:
    int has_ref;
    double ref_nll_sum, ref_ppl, ref_ppl_stderr;
    // ppl - ref_ppl, and 1.96 x its standard error by the delta method on the two correlated
    // mean NLLs: var = (ppl^2 var(nll) + ref^2 var(rnll) - 2 ppl ref cov) / (n - 1), population moments
    double delta_ppl, delta_ppl_ci95;
    // exp(mean(nll - rnll)) and exp(mean -/+ 1.96 x standard error of that mean)
    double ppl_ratio, ppl_ratio_lo, ppl_ratio_hi;
    // KL(P_ref || P_model) per scored token; median and p99 by linear interpolation (llama.cpp)
    double kld_mean, kld_median, kld_p99, kld_max;
    double top1_agree;                      // fraction 0..1
    int n_layers;
    double *layer_rel_rms;                  // (L) RMS relative error of each block's output (malloc'd)
} dq_ppl_result;

// tokens: the whole text, tokenized once with BOS. s (and rs for ref) must have ctx >= opts->ctx
// and max_batch >= opts->ctx. ref may be NULL.
int dq_perplexity(const dq_model *m, dq_state *s, const dq_model *ref, dq_state *rs, const int32_t *tokens, size_t n,
                  const dq_ppl_opts *o, dq_ppl_result *r, dq_err *e);
void dq_ppl_result_free(dq_ppl_result *r);

#endif
