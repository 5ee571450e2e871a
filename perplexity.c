// perplexity.c: chunked (llama.cpp) and sliding-window (Hugging Face) perplexity, in one pass
// over one or two models. All sums run in a fixed order in double precision, so figures do
// not depend on the thread count.
#include "perplexity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// log-softmax pieces of one logits row: returns log(sum exp(l - max)) and sets *mx.
static double log_sum_exp(const float *l, int V, double *mx) {
    double m = l[0];
    for (int i = 1; i < V; i++)
        if (l[i] > m) m = l[i];
    double s = 0.0;
    for (int i = 0; i < V; i++) s += exp((double)l[i] - m);
    *mx = m;
    return log(s);
}

static int argmax_f(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

// KL(p_ref || p) for one position.
static double kld_row(const float *ref, const float *q, int V) {
    double mr, mq;
    double lr = log_sum_exp(ref, V, &mr), lq = log_sum_exp(q, V, &mq), kl = 0.0;
    for (int i = 0; i < V; i++) {
        double a = (double)ref[i] - mr - lr, b = (double)q[i] - mq - lq;
        kl += exp(a) * (a - b);
    }
    return kl > 0.0 ? kl : 0.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Percentile of sorted v[0..n-1] by linear interpolation between the two nearest ranks at
// f*(n-1): llama.cpp's KLD percentiles (and NumPy's default), so the median of an even count
// is the mean of the two middle values.
static double percentile_sorted(const double *v, size_t n, double f) {
    double p = f * (double)(n - 1);
    size_t i = (size_t)p;
    if (i + 1 >= n) return v[n - 1];
    double w = p - (double)i;
    return (1.0 - w) * v[i] + w * v[i + 1];
}

// Windows: [begin, begin+len) fed from an empty cache; positions score_from..len-2 predict
// the next token. For chunks the first token is replaced by BOS.
typedef struct window {
    size_t begin;
    int len, score_from, bos_first;
} window;

static int plan_windows(const dq_ppl_opts *o, size_t n, window **out, int *count, dq_err *e) {
    int cap = 0, k = 0;
    window *w = NULL;
    if (o->method == DQ_PPL_CHUNKS) {
        size_t nc = n / (size_t)o->ctx;
        if (o->max_chunks > 0 && nc > (size_t)o->max_chunks) nc = (size_t)o->max_chunks;
        if (nc == 0) return DQ_ERR(e, DQ_EUSAGE, "text has %zu tokens, fewer than one chunk of %d (use a smaller --ctx)", n, o->ctx);
        cap = (int)nc;
        w = malloc(sizeof *w * (size_t)cap);
        if (!w) return DQ_ERR(e, DQ_ENOMEM, "out of memory");
        for (size_t i = 0; i < nc; i++) w[k++] = (window){i * (size_t)o->ctx, o->ctx, o->ctx / 2, 1};
    } else {
        // Hugging Face: windows start every `stride` tokens; each scores the tokens no earlier
        // window scored (the first scores all but its first token).
        if (n < 2) return DQ_ERR(e, DQ_EUSAGE, "text has %zu tokens, too few to score", n);
        size_t prev_end = 0;
        for (size_t begin = 0;; begin += (size_t)o->stride) {
            size_t end = begin + (size_t)o->ctx < n ? begin + (size_t)o->ctx : n;
            size_t trg = end - prev_end;
            if (k == cap) {
                cap = cap * 2 + 16;
                window *nw = realloc(w, sizeof *nw * (size_t)cap);
                if (!nw) {
                    free(w);
                    return DQ_ERR(e, DQ_ENOMEM, "out of memory");
                }
                w = nw;
            }
            int len = (int)(end - begin);
            int from = len - (int)trg - 1;  // logit at `from` predicts token from+1 = first target
            if (from < 0) from = 0;
            w[k++] = (window){begin, len, from, 0};
            prev_end = end;
            if (end == n || (o->max_chunks > 0 && k >= o->max_chunks)) break;
        }
    }
    *out = w;
    *count = k;
    return DQ_OK;
}

int dq_perplexity(const dq_model *m, dq_state *s, const dq_model *ref, dq_state *rs, const int32_t *tokens, size_t n,
                  const dq_ppl_opts *o, dq_ppl_result *r, dq_err *e) {
    memset(r, 0, sizeof *r);
    int V = (int)m->c.vocab, C = (int)m->c.dim, L = (int)m->c.n_layers;
    if (o->ctx < 4 || o->ctx > s->ctx || o->ctx > s->max_batch || (ref && (o->ctx > rs->ctx || o->ctx > rs->max_batch)))
        return DQ_ERR(e, DQ_EUSAGE, "--ctx %d is outside 4..%d", o->ctx, s->ctx);
    if (o->method == DQ_PPL_SLIDING && (o->stride < 1 || o->stride > o->ctx))
        return DQ_ERR(e, DQ_EUSAGE, "--stride must be between 1 and --ctx");
    if (ref && (ref->c.vocab != m->c.vocab || ref->c.dim != m->c.dim || ref->c.n_layers != m->c.n_layers))
        return DQ_ERR(e, DQ_EUSAGE, "%s and %s differ in vocabulary or shape: cannot compare them", m->path, ref->path);
    window *w = NULL;
    int nw = 0, rc = plan_windows(o, n, &w, &nw, e);
    if (rc) return rc;
    size_t max_scored = (size_t)nw * (size_t)o->ctx;
    double *nll = malloc(sizeof(double) * max_scored), *rnll = ref ? malloc(sizeof(double) * max_scored) : NULL;
    double *kld = ref ? malloc(sizeof(double) * max_scored) : NULL;
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)o->ctx);
    float *cap = ref ? malloc(sizeof(float) * (size_t)L * o->ctx * C) : NULL;
    float *mcap = ref ? malloc(sizeof(float) * (size_t)L * o->ctx * C) : NULL;
    double *lerr = ref ? calloc((size_t)L, sizeof(double)) : NULL, *lref = ref ? calloc((size_t)L, sizeof(double)) : NULL;
    if (!nll || !buf || (ref && (!rnll || !kld || !cap || !mcap || !lerr || !lref))) {
        rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
        goto done;
    }
    long cnt = 0, agree = 0;
    int bos = dq_tok_bos(m->tok);
    for (int wi = 0; wi < nw; wi++) {
        const window *W = &w[wi];
        memcpy(buf, tokens + W->begin, sizeof(int32_t) * (size_t)W->len);
        if (W->bos_first && bos >= 0) buf[0] = bos;
        if (ref) {
            rs->capture = cap;
            rc = dq_forward(ref, rs, buf, W->len, 0, DQ_LOGITS_ALL, e);
            rs->capture = NULL;
            if (rc) goto done;
            s->capture = mcap;
        }
        rc = dq_forward(m, s, buf, W->len, 0, DQ_LOGITS_ALL, e);
        s->capture = NULL;
        if (rc) goto done;
        if (ref) {
            for (int l = 0; l < L; l++) {
                const float *a = mcap + (size_t)l * W->len * C, *b = cap + (size_t)l * W->len * C;
                for (size_t i = 0; i < (size_t)W->len * C; i++) {
                    double d = (double)a[i] - b[i];
                    lerr[l] += d * d;
                    lref[l] += (double)b[i] * b[i];
                }
            }
        }
        for (int j = W->score_from; j <= W->len - 2; j++) {
            const float *lg = s->logits + (size_t)j * V;
            int tgt = buf[j + 1];
            double mx, lse = log_sum_exp(lg, V, &mx);
            nll[cnt] = lse - ((double)lg[tgt] - mx);
            if (ref) {
                const float *rl = rs->logits + (size_t)j * V;
                double rmx, rlse = log_sum_exp(rl, V, &rmx);
                rnll[cnt] = rlse - ((double)rl[tgt] - rmx);
                kld[cnt] = kld_row(rl, lg, V);
                agree += argmax_f(rl, V) == argmax_f(lg, V);
            }
            cnt++;
        }
        if (o->progress) o->progress(o->progress_ud, wi + 1, nw);
    }
    if (cnt == 0) {
        rc = DQ_ERR(e, DQ_EUSAGE, "no token was scored (text too short for --ctx)");
        goto done;
    }
    // Sums in index order: the same figures for every thread count.
    double sum = 0, sum2 = 0;
    for (long i = 0; i < cnt; i++) sum += nll[i], sum2 += nll[i] * nll[i];
    double N = (double)cnt, mean = sum / N, var = sum2 / N - mean * mean;
    if (var < 0) var = 0;
    r->n_tokens = cnt;
    r->n_windows = nw;
    r->nll_sum = sum;
    r->ppl = exp(mean);
    r->ppl_stderr = cnt > 1 ? r->ppl * sqrt(var / (N - 1)) : 0.0;
    if (ref) {
        double rsum = 0, rsum2 = 0, dsum = 0, dsum2 = 0, cov = 0, ksum = 0;
        for (long i = 0; i < cnt; i++) {
            rsum += rnll[i], rsum2 += rnll[i] * rnll[i];
            double d = nll[i] - rnll[i];
            dsum += d, dsum2 += d * d;
            ksum += kld[i];
        }
        double rmean = rsum / N, rvar = rsum2 / N - rmean * rmean;
        if (rvar < 0) rvar = 0;
        for (long i = 0; i < cnt; i++) cov += (nll[i] - mean) * (rnll[i] - rmean);
        cov /= N;
        r->has_ref = 1;
        r->ref_nll_sum = rsum;
        r->ref_ppl = exp(rmean);
        r->ref_ppl_stderr = cnt > 1 ? r->ref_ppl * sqrt(rvar / (N - 1)) : 0.0;
        r->delta_ppl = r->ppl - r->ref_ppl;
        // Delta method on the two correlated means.
        double vd = (r->ppl * r->ppl * var + r->ref_ppl * r->ref_ppl * rvar - 2 * r->ppl * r->ref_ppl * cov) /
                    (N > 1 ? N - 1 : 1);
        r->delta_ppl_ci95 = 1.96 * sqrt(vd > 0 ? vd : 0);
        double dmean = dsum / N, dvar = dsum2 / N - dmean * dmean;
        double dse = cnt > 1 ? sqrt((dvar > 0 ? dvar : 0) / (N - 1)) : 0.0;
        r->ppl_ratio = exp(dmean);
        r->ppl_ratio_lo = exp(dmean - 1.96 * dse);
        r->ppl_ratio_hi = exp(dmean + 1.96 * dse);
        r->kld_mean = ksum / N;
        r->top1_agree = (double)agree / N;
        qsort(kld, (size_t)cnt, sizeof(double), cmp_double);
        r->kld_median = percentile_sorted(kld, (size_t)cnt, 0.5);
        r->kld_p99 = percentile_sorted(kld, (size_t)cnt, 0.99);
        r->kld_max = kld[cnt - 1];
        r->n_layers = L;
        r->layer_rel_rms = malloc(sizeof(double) * (size_t)L);
        if (!r->layer_rel_rms) {
            rc = DQ_ERR(e, DQ_ENOMEM, "out of memory");
            goto done;
        }
        for (int l = 0; l < L; l++) r->layer_rel_rms[l] = lref[l] > 0 ? sqrt(lerr[l] / lref[l]) : 0.0;
    }
done:
    free(w), free(nll), free(rnll), free(kld), free(buf), free(cap), free(mcap), free(lerr), free(lref);
    return rc;
}

void dq_ppl_result_free(dq_ppl_result *r) {
    free(r->layer_rel_rms);
    r->layer_rel_rms = NULL;
}
