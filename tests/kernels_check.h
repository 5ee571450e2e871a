// tests/kernels_check.h: checks one kernel table against the scalar spec (scalar.c), shared by
// test_kernels.c (tables this CPU runs natively) and the emulated builds (SIMDe, AMX model).
// Each check prints "ok NAME" or "FAIL NAME: why" with the first failing index.
#ifndef DYNQ_KERNELS_CHECK_H
#define DYNQ_KERNELS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// 1 in a build with AddressSanitizer (GCC's macro, or clang's feature test).
#if defined(__SANITIZE_ADDRESS__)
#define KC_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KC_SANITIZED 1
#endif
#endif
#ifndef KC_SANITIZED
#define KC_SANITIZED 0
#endif

#include "ggml_like/kernels.h"

static int kc_failures;

static uint64_t kc_rng = 0x9e3779b97f4a7c15ull;
static uint32_t kc_u32(void) {
    kc_rng ^= kc_rng << 13;
    kc_rng ^= kc_rng >> 7;
    kc_rng ^= kc_rng << 17;
    return (uint32_t)(kc_rng >> 16);
}
static float kc_unif(void) { return (float)(kc_u32() & 0xffffff) / 16777216.0f * 2.0f - 1.0f; }

// A test weight matrix with its own storage.
typedef struct kc_w {
    dq_qweight w;
    int8_t *q;
    float *s;
    int32_t *rs;
    int8_t *pan;  // the same values in the .dynq panel layout, when kc_w_panels made them
} kc_w;

// kind: 0 random, 1 extremes (-128/127 only), 2 some all-zero rows and a zero scale
static void kc_w_make(kc_w *t, int n, int k, int kind) {
    t->q = malloc((size_t)n * k);
    t->pan = NULL;
    t->s = malloc((size_t)n * sizeof(float));
    t->rs = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) {
        int zero_row = kind == 2 && i % 3 == 1;
        int32_t rs = 0;
        for (int j = 0; j < k; j++) {
            int v = kind == 1 ? ((kc_u32() & 1) ? 127 : -128) : (int)(kc_u32() % 256) - 128;
            if (zero_row) v = 0;
            t->q[(size_t)i * k + j] = (int8_t)v;
            rs += v;
        }
        t->rs[i] = rs;
        t->s[i] = (kind == 2 && i % 5 == 2) ? 0.0f : 0.001f + 0.01f * (float)(kc_u32() % 100) / 100.0f;
    }
    memset(&t->w, 0, sizeof t->w);
    t->w.n = n;
    t->w.k = k;
    t->w.w = t->q;
    t->w.scale = t->s;
    t->w.rowsum = t->rs;
}

// Gives t to the kernels as a .dynq file holds it: in panels (docs/FORMAT.md, written out here
// from that text: value (i, j) at byte (i / 16) * 16 * kp + (j / 4) * 64 + (i % 16) * 4 + j % 4,
// kp = k rounded up to 64, n rounded up to 16, zero padded), no row-major copy.
static void kc_w_panels(kc_w *t) {
    int n = t->w.n, k = t->w.k, np = (n + 15) / 16 * 16, kp = (k + 63) / 64 * 64;
    t->pan = calloc((size_t)np * kp, 1);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            t->pan[(size_t)(i / 16) * 16 * kp + (size_t)(j / 4) * 64 + (i % 16) * 4 + j % 4] = t->q[(size_t)i * k + j];
    t->w.w = NULL;
    t->w.panels = t->pan;
}

static void kc_w_free(kc_w *t) {
    dq_qweight_release(&t->w);
    free(t->pan);
    free(t->q);
    free(t->s);
    free(t->rs);
}

// kind: 0 gaussian-ish, 1 extremes (every |x| equal, some tokens all zero), 2 with outliers
static float *kc_x_make(int m, int k, int kind) {
    float *x = malloc((size_t)m * k * sizeof(float));
    for (int t = 0; t < m; t++)
        for (int j = 0; j < k; j++) {
            float v = kc_unif() + kc_unif() + kc_unif();
            if (kind == 1) v = (t % 4 == 3) ? 0.0f : ((kc_u32() & 1) ? 3.0f : -3.0f);
            if (kind == 2 && kc_u32() % 50 == 0) v *= 40.0f;
            if (kind == 2 && t % 2 == 1) v = fabsf(v) + 0.5f;  // all positive: zero point at the end
            x[(size_t)t * k + j] = v;
        }
    return x;
}

// Independent reference for one output: codes from the scheme's definition, exact int64 dot.
static float kc_ref_out(const dq_qact *qa, const kc_w *t, int tok, int i) {
    const int8_t *xq = qa->q + (size_t)tok * qa->kp;
    const int8_t *wr = t->q + (size_t)i * t->w.k;
    if (qa->scheme == DQ_ACT_GROUP) {
        float sum = 0.0f;
        for (int g = 0; g < qa->ngroup; g++) {
            int64_t acc = 0;
            for (int j = g * 64; j < t->w.k && j < g * 64 + 64; j++) acc += (int64_t)(xq[j] - qa->bias) * wr[j];
            float p = qa->scale[(size_t)tok * qa->ngroup + g] * (float)acc;
            sum += p;
        }
        return sum * t->s[i];
    }
    int64_t acc = 0;
    for (int j = 0; j < t->w.k; j++) acc += (int64_t)(int8_t)(xq[j] - qa->bias) * wr[j];
    acc -= (int64_t)qa->off[tok] * t->rs[i];
    float sxw = qa->scale[tok] * t->s[i];
    return (float)(int32_t)acc * sxw;
}

#define KC_FAIL(name, ...)                   \
    do {                                     \
        printf("FAIL %s: ", name);           \
        printf(__VA_ARGS__);                 \
        printf("\n");                        \
        kc_failures++;                       \
    } while (0)

static const char *kc_scheme_name[] = {"sym", "asym", "group", "tensor"};

// One shape, one scheme: K against scalar (codes, scales, outputs bit for bit) and against the
// independent reference. Returns 0 if all equal, printing the first difference. pan: bit 0, K
// reads the weights from panels (as from a .dynq file) instead of packing a row-major copy; bit
// 1, so does scalar.
static int kc_one(const dq_kernels *K, dq_pool *pool, int m, int n, int k, int wkind, int xkind,
                  dq_act_scheme sch, int pan, char *why, size_t cap) {
    const dq_kernels *S = dq_kernels_scalar();
    kc_w ws, wk;
    uint64_t seed = kc_rng;
    kc_w_make(&ws, n, k, wkind);
    kc_rng = seed;
    kc_w_make(&wk, n, k, wkind);
    if (pan & 1) kc_w_panels(&wk);
    if (pan & 2) kc_w_panels(&ws);
    float *x = kc_x_make(m, k, xkind);
    float *ys = malloc((size_t)m * n * sizeof(float)), *yk = malloc((size_t)m * n * sizeof(float));
    dq_err e;
    int bad = 0;
    if (dq_qweight_prepare_with(S, &ws.w, &e) || dq_qweight_prepare_with(K, &wk.w, &e)) {
        snprintf(why, cap, "prepare: %.200s", e.msg);
        bad = 1;
        goto out;
    }
    // scalar: quantize, keep a copy of the codes, multiply
    dq_qact qs, qk;
    dq_quantize_act_with(S, pool, &qs, x, m, k, sch, NULL);
    size_t qbytes = (size_t)m * qs.kp;
    int8_t *codes = malloc(qbytes);
    float *scales = malloc((size_t)m * qs.ngroup * sizeof(float));
    int32_t *offs = malloc((size_t)m * sizeof(int32_t));
    memcpy(codes, qs.q, qbytes);
    memcpy(scales, qs.scale, (size_t)m * qs.ngroup * sizeof(float));
    memcpy(offs, qs.off, (size_t)m * sizeof(int32_t));
    dq_matmul_q8_pre_with(S, pool, ys, &qs, &ws.w);
    // independent reference on a sample of outputs (all when small)
    for (int t = 0; t < m && !bad; t++)
        for (int i = 0; i < n; i += (m * n > 20000 ? 7 : 1)) {
            float r = kc_ref_out(&qs, &ws, t, i);
            if (memcmp(&r, &ys[(size_t)t * n + i], 4) != 0) {
                snprintf(why, cap, "scalar vs reference at [%d][%d]: %.9g vs %.9g", t, i, ys[(size_t)t * n + i], r);
                bad = 1;
                break;
            }
        }
    dq_quantize_act_with(K, pool, &qk, x, m, k, sch, NULL);
    for (size_t j = 0; j < qbytes && !bad; j++)
        if (j % qs.kp < (size_t)k && (int8_t)(qk.q[j] - qk.bias) != codes[j]) {
            snprintf(why, cap, "activation code [%zu][%zu]: %d vs scalar %d", j / qs.kp, j % qs.kp,
                     (int8_t)(qk.q[j] - qk.bias), codes[j]);
            bad = 1;
        }
    if (!bad && (memcmp(qk.scale, scales, (size_t)m * qs.ngroup * 4) || memcmp(qk.off, offs, (size_t)m * 4))) {
        snprintf(why, cap, "activation scales/offsets differ");
        bad = 1;
    }
    if (!bad) {
        dq_matmul_q8_pre_with(K, pool, yk, &qk, &wk.w);
        for (size_t j = 0; j < (size_t)m * n; j++)
            if (memcmp(&yk[j], &ys[j], 4) != 0) {
                snprintf(why, cap, "y[%zu][%zu] = %.9g, scalar %.9g", j / n, j % n, yk[j], ys[j]);
                bad = 1;
                break;
            }
    }
    free(codes);
    free(scales);
    free(offs);
out:
    kc_w_free(&ws);
    kc_w_free(&wk);
    free(x);
    free(ys);
    free(yk);
    return bad;
}

// absmax: exact, NaNs ignored, like the scalar spec; every length 0..70.
static void kc_check_absmax(const dq_kernels *K, const char *label) {
    const dq_kernels *S = dq_kernels_scalar();
    float x[70];
    char name[128];
    snprintf(name, sizeof name, "%s_absmax", label);
    for (int kind = 0; kind < 3; kind++)
        for (int k = 0; k <= 70; k++) {
            for (int j = 0; j < k; j++) x[j] = kc_unif() * 10.0f;
            if (kind >= 1 && k > 3) x[k / 2] = NAN, x[0] = -0.0f;
            if (kind == 2 && k > 5) x[k - 1] = -INFINITY;
            float a = K->absmax(x, k), b = S->absmax(x, k);
            if (memcmp(&a, &b, 4) != 0) {
                KC_FAIL(name, "k=%d kind=%d: %g vs scalar %g", k, kind, a, b);
                return;
            }
        }
    printf("ok %s (lengths 0..70, NaN, -0, -inf)\n", name);
}

// The GEMV (M = 1) reads one panel at a time or four side by side (dq_gemv_streams, set by CPU
// vendor; the x86 GEMVs), and with four, rows shorter than dq_gemv4_min_kp as one stream (the
// AVX-512 VNNI GEMV's sums form; set on the Zen 4): every form, whatever this CPU, on shapes with
// several groups of four panels and a ragged rest, symmetric and asymmetric activations.
static void kc_check_gemv_streams(const dq_kernels *K, const char *label, dq_pool *pool) {
    static const int shapes[][2] = {{64, 65}, {97, 768}, {300, 129}, {1000, 300}, {1024, 2048}, {47, 200}};
    static const int forms[][2] = {{1, 0}, {4, 0}, {4, 1 << 30}, {4, 1024}};  // streams, min kp
    const int nshapes = (int)(sizeof shapes / sizeof *shapes), saved = dq_gemv_streams, saved_kp = dq_gemv4_min_kp;
    char name[128], why[600];
    int bad = 0;
    for (int f = 0; f < 4 && !bad; f++) {
        dq_gemv_streams = forms[f][0], dq_gemv4_min_kp = forms[f][1];
        for (int i = 0; i < nshapes && !bad; i++) {
            int n = shapes[i][0], k = shapes[i][1];
            if (kc_one(K, pool, 1, n, k, i % 3, (i + 1) % 3, (dq_act_scheme)(i % 2), i % 4, why, sizeof why)) {
                snprintf(name, sizeof name, "%s_gemv_streams", label);
                KC_FAIL(name, "streams=%d min_kp=%d n=%d k=%d: %s", forms[f][0], forms[f][1], n, k, why);
                bad = 1;
            }
        }
    }
    dq_gemv_streams = saved, dq_gemv4_min_kp = saved_kp;
    if (!bad)
        printf("ok %s_gemv_streams (M = 1, one and four panel streams, short rows as one stream, %d shapes each, "
               "bit-identical to scalar)\n", label, nshapes);
}

// Long rows, K 8193-11008 (Llama-2-7B's FFN is 11008): the AVX2 GEMM prepares panels of that
// size on the heap for M > 3 and reads the weights directly for M = 3 (until 2026-12-01, K above
// 8192 always took the second path); blocks of three tokens and fewer, symmetric and asymmetric.
static void kc_check_long_k(const dq_kernels *K, const char *label, dq_pool *pool) {
    static const int shapes[][3] = {{3, 40, 8193}, {7, 33, 8257}, {5, 17, 11008}};
    char name[128], why[600];
    for (int i = 0; i < 3; i++)
        if (kc_one(K, pool, shapes[i][0], shapes[i][1], shapes[i][2], i % 3, (i + 1) % 3, (dq_act_scheme)(i % 2), i % 2,
                   why, sizeof why)) {
            snprintf(name, sizeof name, "%s_long_k", label);
            KC_FAIL(name, "m=%d n=%d k=%d: %s", shapes[i][0], shapes[i][1], shapes[i][2], why);
            return;
        }
    printf("ok %s_long_k (K 8193-11008, M 3-7, bit-identical to scalar)\n", label);
}

// The sweep: M = 1..97 tokens, odd N, K not a multiple of 64, extremes, zero rows/scales.
static void kc_check_table(const dq_kernels *K, const char *label, dq_pool *pool, int quick) {
    static const int ms[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 64, 97};
    static const int ns[] = {1, 15, 16, 17, 33, 47, 64, 97};
    static const int ks[] = {1, 3, 4, 63, 64, 65, 129, 200, 256, 300};
    char name[128], why[600];
    kc_check_absmax(K, label);
    if (!quick) kc_check_gemv_streams(K, label, pool);
    if (!quick) kc_check_long_k(K, label, pool);
    for (int sch = 0; sch < 4; sch++) {
        int bad = 0, cases = 0;
        for (int a = 0; a < (int)(sizeof ms / sizeof *ms) && !bad; a++) {
            for (int r = 0; r < (quick ? 1 : 3) && !bad; r++) {
                int m = ms[a], n = ns[kc_u32() % 8], k = ks[kc_u32() % 10];
                int wkind = (a + r) % 3, xkind = (a + 2 * r) % 3;
                cases++;
                int pan = (a + r) % 4;
                if (kc_one(K, pool, m, n, k, wkind, xkind, (dq_act_scheme)sch, pan, why, sizeof why)) {
                    snprintf(name, sizeof name, "%s_%s", label, kc_scheme_name[sch]);
                    KC_FAIL(name, "m=%d n=%d k=%d wkind=%d xkind=%d panels=%d: %s", m, n, k, wkind, xkind, pan, why);
                    bad = 1;
                }
            }
        }
        // A bigger one: real-model-like k, several row blocks
        if (!bad && !quick) {
            cases++;
            if (kc_one(K, pool, 37, 300, 768, 0, 2, (dq_act_scheme)sch, 1, why, sizeof why)) {
                snprintf(name, sizeof name, "%s_%s", label, kc_scheme_name[sch]);
                KC_FAIL(name, "m=37 n=300 k=768: %s", why);
                bad = 1;
            }
        }
        if (!bad)
            printf("ok %s_%s (%d shapes, bit-identical to scalar; weights row-major or in file panels)\n", label,
                   kc_scheme_name[sch], cases);
    }
}

// The VNNI four-stream GEMVs prefetch each stream 2048 bytes ahead on Intel and not on AMD
// (dq_gemv4_prefetch_bytes): K's table again with the form this CPU does not take, as
// LABEL_pf0 or LABEL_pf2048.
__attribute__((unused)) static void kc_check_table_other_pf(const dq_kernels *K, const char *label, dq_pool *pool) {
    const int saved = dq_gemv4_prefetch_bytes;
    char name[128];
    dq_gemv4_prefetch_bytes = saved ? 0 : 2048;
    snprintf(name, sizeof name, "%s_pf%d", label, dq_gemv4_prefetch_bytes);
    kc_check_table(K, name, pool, 0);
    dq_gemv4_prefetch_bytes = saved;
}

// FP32 kernels: against a double-precision reference, relative tolerance.
static void kc_check_f32(const dq_kernels *K, const char *label, dq_pool *pool) {
    static const int shapes[][3] = {{1, 1, 1}, {1, 17, 65}, {3, 33, 100}, {7, 64, 256}, {16, 31, 17}, {97, 47, 300},
                                    {5, 200, 768}};
    char name[128];
    snprintf(name, sizeof name, "%s_f32", label);
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *x = kc_x_make(m, k, 0), *w = kc_x_make(n, k, 0), *y = malloc((size_t)m * n * 4);
        dq_matmul_f32_with(K, pool, y, x, m, w, n, k);
        for (int t = 0; t < m; t++)
            for (int i = 0; i < n; i++) {
                double r = 0, mag = 0;
                for (int j = 0; j < k; j++) {
                    r += (double)x[(size_t)t * k + j] * w[(size_t)i * k + j];
                    mag += fabs((double)x[(size_t)t * k + j] * w[(size_t)i * k + j]);
                }
                if (fabs(y[(size_t)t * n + i] - r) > 1e-5 * mag + 1e-6) {
                    KC_FAIL(name, "m=%d n=%d k=%d y[%d][%d] = %.7g, expected %.7g", m, n, k, t, i,
                            y[(size_t)t * n + i], r);
                    free(x), free(w), free(y);
                    return;
                }
            }
        free(x), free(w), free(y);
    }
    printf("ok %s (vs double reference, rel 1e-5)\n", name);
}

// q8_0 codes of n values, as ops.h specifies dq_q8_row, written plainly (lrintf rounds to
// nearest even in the default mode; the kernels add and subtract 1.5 * 2^23 instead).
static void kc_q8_ref(int8_t *q, size_t qs, float *sc, size_t ss, const float *x, int n) {
    for (int j0 = 0; j0 < n; j0 += DQ_Q8_BLOCK) {
        int m = n - j0 < DQ_Q8_BLOCK ? n - j0 : DQ_Q8_BLOCK;
        float amax = 0.0f;
        for (int i = 0; i < m; i++)
            if (fabsf(x[j0 + i]) > amax) amax = fabsf(x[j0 + i]);
        float s = amax / 127.0f, inv = s != 0.0f ? 1.0f / s : 0.0f;
        sc[(size_t)(j0 / DQ_Q8_BLOCK) * ss] = s;
        for (int i = 0; i < m; i++) {
            float r = x[j0 + i] * inv;
            q[(size_t)(j0 + i) * qs] = (int8_t)(isnan(r) ? 0 : r >= 127.0f ? 127 : r <= -127.0f ? -127 : lrintf(r));
        }
    }
}

// FP32 key block (kblock): every (j, d) of the block from src[j * lds + d], nothing else written;
// the same bytes as the scalar table's
static void kc_check_kblock(const dq_kernels *K, const char *label) {
    const dq_kernels *S = dq_kernels_scalar();
    char name[128];
    int ok = 1;
    snprintf(name, sizeof name, "%s_kblock", label);
    static const int khds[] = {1, 2, 3, 4, 6, 14, 16, 18, 62, 64, 66, 128, 130, 256};
    int done = 0;
    for (size_t b = 0; b < sizeof khds / sizeof *khds && ok; b++)
        for (int extra = 0; extra <= 37 && ok; extra += 37) {
            const int hd = khds[b];
            const size_t lds = (size_t)hd * (1 + b % 3) + (size_t)extra, nsrc = 15 * lds + (size_t)hd + 3;
            float *src = malloc(nsrc * 4), *k1 = malloc(((size_t)16 * hd + 16) * 4), *k2 = malloc(((size_t)16 * hd + 16) * 4);
            for (size_t i = 0; i < nsrc; i++) src[i] = kc_unif() * 100.0f;
            src[0] = -0.0f, src[lds + (size_t)hd - 1] = NAN;
            for (size_t i = 0; i < (size_t)16 * hd + 16; i++) k1[i] = k2[i] = 12345.0f;
            K->kblock(k1 + 1, src + 1, lds, hd);  // unaligned on purpose
            S->kblock(k2 + 1, src + 1, lds, hd);
            if (memcmp(k1, k2, ((size_t)16 * hd + 16) * 4) != 0) {
                KC_FAIL(name, "hd=%d lds=%zu: not bit-identical to scalar", hd, lds);
                ok = 0;
            }
            for (int j = 0; j < 16 && ok; j++)
                for (int d = 0; d < hd && ok; d++)
                    if (memcmp(&k1[1 + dq_kt_index(j, d, hd)], &src[1 + (size_t)j * lds + d], 4) != 0) {
                        KC_FAIL(name, "hd=%d lds=%zu: position %d dim %d = %a, expected %a", hd, lds, j, d,
                                k1[1 + dq_kt_index(j, d, hd)], src[1 + (size_t)j * lds + d]);
                        ok = 0;
                    }
            if (ok && (k1[0] != 12345.0f || k1[1 + (size_t)16 * hd] != 12345.0f)) {
                KC_FAIL(name, "hd=%d lds=%zu: wrote outside the block", hd, lds);
                ok = 0;
            }
            free(src), free(k1), free(k2);
            done++;
        }
    if (ok) printf("ok %s (%d blocks, hd 1..256, row strides hd..3 hd + 37: bit-identical to scalar and to the layout)\n", name, done);
}

// FP32 kernels of vec_f32.h (attention, SwiGLU): bit-identical to the scalar table's copy on
// every shape (np and hd with tails of every size), and near a double-precision reference.
static void kc_check_vec(const dq_kernels *K, const char *label) {
    const dq_kernels *S = dq_kernels_scalar();
    static const int nps[] = {1, 2, 3, 4, 5, 15, 16, 17, 33, 100, 257};
    static const int hds[] = {1, 7, 16, 24, 32, 48, 64, 80, 128};
    char name[128];
    snprintf(name, sizeof name, "%s_attn", label);
    int cases = 0, ok = 1;
    // Every nq (1-DQ_ATTN_NQ) with consecutive positions (dnp 1, prefill) or one position (dnp 0, heads of a
    // KV group); cache slots past the last position hold NaN, which must not reach any output.
    // Under the sanitizers (where this loop took ~100 of test_kernels' ~110 s) a third of the (np,
    // hd) pairs, every np and every hd still among them: they look for memory errors, which the
    // ragged ends show; the plain run checks every pair's arithmetic.
    for (size_t a = 0; a < sizeof nps / sizeof *nps && ok; a++)
        for (size_t b = 0; b < sizeof hds / sizeof *hds && ok; b++)
            for (int nq = 1; nq <= DQ_ATTN_NQ && ok && (!KC_SANITIZED || (a + b) % 3 == 0); nq++)
                for (int dnp = 0; dnp <= 1 && ok; dnp++) {
                    int np0 = nps[a], hd = hds[b], npm = np0 + (nq - 1) * dnp, npp = (npm + 15) & ~15;
                    float *q = kc_x_make(nq, hd, 0), *k = kc_x_make(npm, hd, 0), *v = kc_x_make(npp, hd, 0);
                    for (int j = 0; j < nq * hd; j++) q[j] *= 3.0f;  // spread the scores: a peaked softmax
                    float *kt = malloc((size_t)npp * hd * 4);
                    for (size_t j = 0; j < (size_t)npp * hd; j++) kt[j] = NAN;
                    for (int p = 0; p < npm; p++)
                        for (int d = 0; d < hd; d++) kt[dq_kt_index(p, d, hd)] = k[(size_t)p * hd + d];
                    for (size_t j = (size_t)npm * hd; j < (size_t)npp * hd; j++) v[j] = NAN;
                    // value rows ldv apart (the model: hd; a stride as if other heads sat between);
                    // the other heads' slots hold NaN
                    int ldv = (a + b) % 2 ? hd : 3 * hd + 1;
                    float *vs = malloc((size_t)npp * ldv * 4);
                    for (size_t j = 0; j < (size_t)npp * ldv; j++) vs[j] = NAN;
                    for (int p = 0; p < npp; p++) memcpy(vs + (size_t)p * ldv, v + (size_t)p * hd, (size_t)hd * 4);
                    float *o1 = malloc((size_t)nq * hd * 4), *o2 = malloc((size_t)nq * hd * 4), *o3 = malloc((size_t)hd * 4);
                    float *att = malloc(dq_attn_scratch(npm) * 4);
                    float scale = 1.0f / sqrtf((float)hd);
                    K->attn(o1, hd, q, hd, nq, np0, dnp, kt, DQ_KV_F32, vs, DQ_KV_F32, ldv, hd, scale, att);
                    S->attn(o2, hd, q, hd, nq, np0, dnp, kt, DQ_KV_F32, vs, DQ_KV_F32, ldv, hd, scale, att);
                    cases++;
                    if (memcmp(o1, o2, (size_t)nq * hd * 4) != 0) {
                        KC_FAIL(name, "np0=%d hd=%d nq=%d dnp=%d: not bit-identical to scalar", np0, hd, nq, dnp);
                        ok = 0;
                    }
                    for (int i = 0; i < nq && ok; i++) {
                        int np = np0 + i * dnp;
                        K->attn(o3, hd, q + (size_t)i * hd, hd, 1, np, 0, kt, DQ_KV_F32, vs, DQ_KV_F32, ldv, hd, scale, att);
                        if (memcmp(o1 + (size_t)i * hd, o3, (size_t)hd * 4) != 0) {
                            KC_FAIL(name, "np0=%d hd=%d nq=%d dnp=%d: query %d differs from its own one-query call",
                                    np0, hd, nq, dnp, i);
                            ok = 0;
                        }
                        // double reference: softmax of the scaled scores, then the weighted sum
                        double *w = malloc((size_t)np * sizeof(double)), mx = -INFINITY, sum = 0;
                        const float *qi = q + (size_t)i * hd;
                        for (int p = 0; p < np; p++) {
                            double d = 0;
                            for (int j = 0; j < hd; j++) d += (double)qi[j] * k[(size_t)p * hd + j];
                            w[p] = d * scale;
                            mx = w[p] > mx ? w[p] : mx;
                        }
                        for (int p = 0; p < np; p++) sum += (w[p] = exp(w[p] - mx));
                        for (int j = 0; j < hd && ok; j++) {
                            double r = 0, mag = 0;
                            for (int p = 0; p < np; p++) {
                                r += w[p] / sum * v[(size_t)p * hd + j];
                                mag += w[p] / sum * fabs(v[(size_t)p * hd + j]);
                            }
                            float got = o1[(size_t)i * hd + j];
                            if (!(fabs(got - r) <= 2e-5 * mag + 1e-7)) {
                                KC_FAIL(name, "np=%d hd=%d nq=%d query %d out[%d] = %.7g, expected %.7g", np, hd, nq,
                                        i, j, got, r);
                                ok = 0;
                            }
                        }
                        free(w);
                    }
                    // FP16 or q8_0 keys, values or both: bit-identical to scalar on the same cache, and
                    // to the FP32 kernel over that cache's values widened (what such a cache means:
                    // binary16 widened exactly, q8_0 code * scale), built here by the test's own
                    // conversions (kc_q8_ref) in the layout ops.h documents; past the last position
                    // the q8_0 slots hold codes with NaN scales, which must not reach any output
                    static const dq_kv_type kvs[][2] = {{DQ_KV_F16, DQ_KV_F32}, {DQ_KV_F32, DQ_KV_F16}, {DQ_KV_F16, DQ_KV_F16},
                                                        {DQ_KV_Q8, DQ_KV_F32},  {DQ_KV_F32, DQ_KV_Q8},  {DQ_KV_Q8, DQ_KV_Q8},
                                                        {DQ_KV_F16, DQ_KV_Q8}};
                    for (size_t kv = 0; kv < sizeof kvs / sizeof *kvs && ok; kv++) {
                        const dq_kv_type kty = kvs[kv][0], vty = kvs[kv][1];
                        const size_t nk = (size_t)npp * hd, nv = (size_t)npp * ldv, krow = dq_kv_row_bytes(DQ_KV_Q8, hd);
                        const int ldv8 = (int)krow * (ldv == hd ? 1 : 3) + (ldv == hd ? 0 : 5);  // bytes
                        uint16_t *k16 = malloc(nk * 2), *v16 = malloc(nv * 2);
                        int8_t *k8 = malloc((size_t)npp * krow), *v8 = malloc((size_t)npp * ldv8);
                        float *kw = malloc(nk * 4), *vw = malloc(nv * 4), *o4 = malloc((size_t)nq * hd * 4);
                        for (size_t j = 0; j < nk; j++)
                            k16[j] = dq_f32_to_f16(kt[j]), kw[j] = kty == DQ_KV_F16 ? dq_f16_to_f32(k16[j]) : kt[j];
                        for (size_t j = 0; j < nv; j++)
                            v16[j] = dq_f32_to_f16(vs[j]), vw[j] = vty == DQ_KV_F16 ? dq_f16_to_f32(v16[j]) : vs[j];
                        memset(k8, 0x7f, (size_t)npp * krow), memset(v8, 0xff, (size_t)npp * ldv8);  // 0xffffffff: a NaN scale
                        for (int p = 0; p < npp; p++) {
                            int8_t *blk = k8 + (size_t)(p / 16) * 16 * krow;
                            float *ksc = (float *)(blk + 16 * dq_q8_codes(hd)), kq[256 / DQ_Q8_BLOCK];
                            int8_t *vrow = v8 + (size_t)p * ldv8, kc[256];
                            float vsc[256 / DQ_Q8_BLOCK];
                            if (p < npm) {
                                kc_q8_ref(kc, 1, kq, 1, k + (size_t)p * hd, hd);
                                for (int d = 0; d < hd; d++) blk[d * 16 + p % 16] = kc[d];
                                for (int j = 0; j * DQ_Q8_BLOCK < hd; j++) ksc[j * 16 + p % 16] = kq[j];
                                kc_q8_ref(vrow, 1, vsc, 1, v + (size_t)p * hd, hd);
                                memcpy(vrow + dq_q8_codes(hd), vsc, 4 * dq_q8_blocks(hd));
                            } else {
                                for (int j = 0; j * DQ_Q8_BLOCK < hd; j++) ksc[j * 16 + p % 16] = NAN;
                            }
                            for (int d = 0; d < hd; d++) {
                                float sk, sv;
                                memcpy(&sk, blk + 16 * dq_q8_codes(hd) + 4 * ((d / DQ_Q8_BLOCK) * 16 + p % 16), 4);
                                memcpy(&sv, vrow + dq_q8_codes(hd) + 4 * (d / DQ_Q8_BLOCK), 4);
                                if (kty == DQ_KV_Q8) kw[dq_kt_index(p, d, hd)] = (float)blk[d * 16 + p % 16] * sk;
                                if (vty == DQ_KV_Q8) vw[(size_t)p * ldv + d] = (float)vrow[d] * sv;
                            }
                        }
                        const void *kp = kty == DQ_KV_Q8 ? (const void *)k8 : kty == DQ_KV_F16 ? (const void *)k16 : kt;
                        const void *vp = vty == DQ_KV_Q8 ? (const void *)v8 : vty == DQ_KV_F16 ? (const void *)v16 : vs;
                        const int ldvt = vty == DQ_KV_Q8 ? ldv8 : ldv;
                        K->attn(o1, hd, q, hd, nq, np0, dnp, kp, kty, vp, vty, ldvt, hd, scale, att);
                        S->attn(o2, hd, q, hd, nq, np0, dnp, kp, kty, vp, vty, ldvt, hd, scale, att);
                        K->attn(o4, hd, q, hd, nq, np0, dnp, kw, DQ_KV_F32, vw, DQ_KV_F32, ldv, hd, scale, att);
                        cases++;
                        if (memcmp(o1, o2, (size_t)nq * hd * 4) != 0 || memcmp(o1, o4, (size_t)nq * hd * 4) != 0) {
                            KC_FAIL(name, "np0=%d hd=%d nq=%d dnp=%d cache %s/%s: differs from %s", np0, hd, nq, dnp,
                                    dq_kv_name(kty), dq_kv_name(vty),
                                    memcmp(o1, o2, (size_t)nq * hd * 4) ? "scalar" : "FP32 over the widened cache");
                            ok = 0;
                        }
                        free(k16), free(v16), free(k8), free(v8), free(kw), free(vw), free(o4);
                    }
                    free(q), free(k), free(v), free(vs), free(kt), free(o1), free(o2), free(o3), free(att);
                }
    if (ok)
        printf("ok %s (%d cases, FP32, FP16 and q8_0 caches: bit-identical to scalar, to one query at a time and to "
               "FP32 over the widened values, within 2e-5 of a double reference)\n", name, cases);

    // to_f16 (the FP16 cache's stores): bit-identical to the software conversion of ops.h on the
    // values where conversions go wrong (ties to even at every scale, subnormals, the overflow
    // edge, NaNs signalling or quiet) and on random bit patterns, every tail length
    snprintf(name, sizeof name, "%s_to_f16", label);
    ok = 1;
    {
        enum { NS = 4096 };
        static const uint32_t special[] = {0x00000000, 0x80000000, 0x3f800000, 0x477fe000, 0x477fefff, 0x477ff000,
                                           0x477ff001, 0x47800000, 0x7f7fffff, 0x7f800000, 0xff800000, 0x7fc00000,
                                           0xffc00001, 0x7f800001, 0x7fa00000, 0xff812345, 0x33800000, 0x33000000,
                                           0x33000001, 0x33c00000, 0x387fc000, 0x387fe000, 0x387ff000, 0x38800000,
                                           0x38801000, 0x38803000, 0x00000001, 0x807fffff, 0x3f801000, 0x3f803000};
        uint32_t *bits = malloc(NS * 4);
        float *src = malloc(NS * 4);
        uint16_t *h1 = malloc(NS * 2);
        int nsp = (int)(sizeof special / sizeof *special);
        for (int i = 0; i < NS; i++) {
            uint32_t b = i < nsp ? special[i] : kc_u32();
            if (i >= nsp && i % 3 == 0)  // a tie: the 13 bits below the binary16 mantissa are 1000...0
                b = (b & ~0x1fffu) | 0x1000u;
            if (i >= nsp && i % 5 == 0)  // within binary16's range, where most values live
                b = (b & 0x807fffffu) | ((uint32_t)(103 + kc_u32() % 40) << 23);
            bits[i] = b;
            memcpy(&src[i], &b, 4);
        }
        for (int n = 0; n <= 40 && ok; n++) {
            memset(h1, 0xab, 2 * 64);
            K->to_f16(h1, src + n, (size_t)n);
            for (int i = 0; i < n && ok; i++)
                if (h1[i] != dq_f32_to_f16(src[n + i])) {
                    KC_FAIL(name, "n=%d: 0x%08x -> 0x%04x, expected 0x%04x", n, bits[n + i], h1[i],
                            dq_f32_to_f16(src[n + i]));
                    ok = 0;
                }
            if (ok && h1[n] != 0xabab) {
                KC_FAIL(name, "n=%d: wrote past the end", n);
                ok = 0;
            }
        }
        K->to_f16(h1, src, NS);
        for (int i = 0; i < NS && ok; i++)
            if (h1[i] != dq_f32_to_f16(src[i])) {
                KC_FAIL(name, "0x%08x -> 0x%04x, expected 0x%04x", bits[i], h1[i], dq_f32_to_f16(src[i]));
                ok = 0;
            }
        if (ok) printf("ok %s (%d values: ties, subnormals, overflow edge, NaNs; tails 0-40)\n", name, NS);
        free(bits), free(src), free(h1);
    }
    // to_f32 (widening an FP16 cache): every binary16 value, bit-identical to dq_f16_to_f32, every tail
    snprintf(name, sizeof name, "%s_to_f32", label);
    ok = 1;
    {
        uint16_t *hs = malloc(65536 * 2);
        float *f = malloc((65536 + 1) * 4);
        for (int i = 0; i < 65536; i++) hs[i] = (uint16_t)(i * 40503u);  // every value, shuffled
        for (int n = 0; n <= 40 && ok; n++) {
            f[n] = 12345.0f;
            K->to_f32(f, hs + 7 * n, (size_t)n);
            for (int i = 0; i < n && ok; i++) {
                float r = dq_f16_to_f32(hs[7 * n + i]);
                if (memcmp(&f[i], &r, 4) != 0) {
                    KC_FAIL(name, "n=%d: 0x%04x widened wrongly", n, hs[7 * n + i]);
                    ok = 0;
                }
            }
            if (ok && f[n] != 12345.0f) {
                KC_FAIL(name, "n=%d: wrote past the end", n);
                ok = 0;
            }
        }
        K->to_f32(f, hs, 65536);
        for (int i = 0; i < 65536 && ok; i++) {
            float r = dq_f16_to_f32(hs[i]);
            if (memcmp(&f[i], &r, 4) != 0) {
                KC_FAIL(name, "0x%04x widened to %a, expected %a", hs[i], f[i], r);
                ok = 0;
            }
        }
        if (ok) printf("ok %s (all 65536 values, tails 0-40)\n", name);
        free(hs), free(f);
    }
    // to_q8 (the q8_0 cache's stores): the codes and scales of kc_q8_ref, bit for bit, on rows of
    // every length 0-100 at strides 1 (value rows) and 16 (key blocks), nothing written between
    // or past them; rows with ties at every code (scale exactly 1: x = k + 0.5), all zeros,
    // a -0, a NaN (ignored by the maximum, code 0) and an infinity (every code 0)
    snprintf(name, sizeof name, "%s_to_q8", label);
    ok = 1;
    {
        enum { NX = 101 };
        float *x = malloc(NX * 4), s1[8], s2[8 * 16];
        int8_t *q1 = malloc(NX * 16 + 16), *q2 = malloc(NX * 16 + 16);
        int rows = 0;
        for (int kind = 0; kind < 6 && ok; kind++)
            for (int n = 0; n <= 100 && ok; n++) {
                for (int i = 0; i < NX; i++) {
                    x[i] = kc_unif() * (kind == 1 ? 1e-30f : kind == 2 ? 3e4f : 2.0f);
                    if (kind == 3) x[i] = i % 32 == 5 ? 127.0f : (float)((int)(kc_u32() % 255) - 127) + 0.5f;
                    if (kind == 4) x[i] = i % 32 < 16 ? 0.0f : (i % 7 ? x[i] : -0.0f);
                    if (kind == 5) x[i] = i % 29 == 3 ? NAN : i % 37 == 9 ? -INFINITY : x[i];
                }
                for (size_t st = 1; st <= 16 && ok; st += 15) {
                    memset(q1, 0x55, NX * 16 + 16), memset(q2, 0x55, NX * 16 + 16);
                    for (int j = 0; j < 8 * 16; j++) s1[j % 8] = s2[j] = -1.0f;
                    K->to_q8(q1, st, s2, st, x, n);
                    kc_q8_ref(q2, st, s1, 1, x, n);
                    rows++;
                    for (int j = 0; j * DQ_Q8_BLOCK < n && ok; j++)
                        if (memcmp(&s1[j], &s2[j * st], 4) != 0) {
                            KC_FAIL(name, "kind %d n=%d stride %zu: scale %d = %a, expected %a", kind, n, st, j, s2[j * st], s1[j]);
                            ok = 0;
                        }
                    for (size_t j = 0; j < 8 * 16 && ok; j++)
                        if ((j % st || j / st >= dq_q8_blocks(n)) && s2[j] != -1.0f) {
                            KC_FAIL(name, "kind %d n=%d stride %zu: wrote scale slot %zu", kind, n, st, j);
                            ok = 0;
                        }
                    for (int j = 0; j < NX * 16 + 16 && ok; j++)
                        if (q1[j] != q2[j]) {
                            KC_FAIL(name, "kind %d n=%d stride %zu: byte %d = %d, expected %d", kind, n, st, j, q1[j], q2[j]);
                            ok = 0;
                        }
                }
            }
        if (ok) printf("ok %s (%d rows: random, tiny, large, ties, zeros, NaN and infinity; lengths 0-100, strides 1 and 16)\n", name, rows);
        free(x), free(q1), free(q2);
    }
    // q8_to_f32 (prefill's widening of a q8_0 cache): every value (float)code * scale, placed as
    // dq_kt_index (keys) or row by row (values), for head sizes with every tail; nothing past n
    snprintf(name, sizeof name, "%s_q8_to_f32", label);
    ok = 1;
    {
        static const int hds8[] = {2, 6, 8, 16, 24, 32, 40, 64, 80, 96, 128};
        int done = 0;
        for (size_t hi = 0; hi < sizeof hds8 / sizeof *hds8 && ok; hi++)
            for (int keys = 0; keys <= 1 && ok; keys++)
                for (int n = 0; n <= 5 && ok; n++) {
                    const int hd = hds8[hi], pos = keys ? 16 * n : n;
                    const size_t row = dq_kv_row_bytes(DQ_KV_Q8, hd), bytes = (size_t)(keys ? 16 : 1) * row * (size_t)n;
                    int8_t *src = malloc(bytes + 1);
                    float *o = malloc(((size_t)pos * hd + 1) * 4);
                    for (size_t j = 0; j < bytes; j++) src[j] = (int8_t)kc_u32();
                    for (int p = 0; p < pos; p++)  // the scales: random magnitudes, some zero
                        for (int j = 0; j * DQ_Q8_BLOCK < hd; j++) {
                            float sc = (kc_u32() % 7 == 0) ? 0.0f : fabsf(kc_unif()) * 0.05f;
                            size_t at = keys ? (size_t)(p / 16) * 16 * row + 16 * dq_q8_codes(hd) + 4 * ((size_t)j * 16 + p % 16)
                                             : (size_t)p * row + dq_q8_codes(hd) + 4 * (size_t)j;
                            memcpy(src + at, &sc, 4);
                        }
                    o[(size_t)pos * hd] = 12345.0f;
                    K->q8_to_f32(o, src, n, hd, keys);
                    done++;
                    for (int p = 0; p < pos && ok; p++)
                        for (int d = 0; d < hd && ok; d++) {
                            float sc, want;
                            size_t blk = (size_t)(p / 16) * 16 * row;
                            memcpy(&sc, src + (keys ? blk + 16 * dq_q8_codes(hd) + 4 * ((size_t)(d / DQ_Q8_BLOCK) * 16 + p % 16)
                                                    : (size_t)p * row + dq_q8_codes(hd) + 4 * (size_t)(d / DQ_Q8_BLOCK)), 4);
                            want = (float)src[keys ? blk + (size_t)d * 16 + p % 16 : (size_t)p * row + d] * sc;
                            float got = o[keys ? dq_kt_index(p, d, hd) : (size_t)p * hd + d];
                            if (memcmp(&got, &want, 4) != 0) {
                                KC_FAIL(name, "hd=%d %s n=%d: position %d dim %d = %a, expected %a", hd, keys ? "keys" : "values", n, p, d, got, want);
                                ok = 0;
                            }
                        }
                    if (ok && o[(size_t)pos * hd] != 12345.0f) {
                        KC_FAIL(name, "hd=%d %s n=%d: wrote past the end", hd, keys ? "keys" : "values", n);
                        ok = 0;
                    }
                    free(src), free(o);
                }
        if (ok) printf("ok %s (%d layouts: keys and values, head sizes 2-128, 0-5 blocks or rows)\n", name, done);
    }

    // RoPE: bit-identical to scalar and to the textbook pair rotation with the same float cos/sin
    snprintf(name, sizeof name, "%s_rope", label);
    ok = 1;
    {
        static const int rhds[] = {2, 6, 16, 18, 32, 34, 64, 80, 128};
        float *xr = malloc(3 * 128 * 4), *x1 = malloc(3 * 128 * 4), *x2 = malloc(3 * 128 * 4), *c = malloc(128 * 4),
              *sn = malloc(128 * 4);
        for (size_t b = 0; b < sizeof rhds / sizeof *rhds && ok; b++)
            for (int halves = 0; halves <= 1 && ok; halves++)
                for (int pos = 0; pos < 3000 && ok; pos += 997) {
                    int hd = rhds[b], n_h = 1 + (int)b % 3, half = hd / 2;
                    for (int i = 0; i < n_h * hd; i++) xr[i] = kc_unif() * 4.0f;
                    dq_rope_tables(c, sn, pos, hd, halves, 10000.0f);
                    memcpy(x1, xr, (size_t)n_h * hd * 4);
                    memcpy(x2, xr, (size_t)n_h * hd * 4);
                    K->rope(x1, n_h, hd, halves, c, sn);
                    S->rope(x2, n_h, hd, halves, c, sn);
                    if (memcmp(x1, x2, (size_t)n_h * hd * 4) != 0) {
                        KC_FAIL(name, "hd=%d halves=%d pos=%d: not bit-identical to scalar", hd, halves, pos);
                        ok = 0;
                    }
                    for (int h = 0; h < n_h && ok; h++)
                        for (int i = 0; i < half && ok; i++) {
                            double a = pos * pow(10000.0, -2.0 * i / hd);
                            float cs = (float)cos(a), si = (float)sin(a);
                            int j0 = h * hd + (halves ? i : 2 * i), j1 = h * hd + (halves ? i + half : 2 * i + 1);
                            float e0 = xr[j0] * cs - xr[j1] * si, e1 = xr[j0] * si + xr[j1] * cs;
                            if (x1[j0] != e0 || x1[j1] != e1) {
                                KC_FAIL(name, "hd=%d halves=%d pos=%d pair %d: (%.9g, %.9g), expected (%.9g, %.9g)", hd,
                                        halves, pos, i, x1[j0], x1[j1], e0, e1);
                                ok = 0;
                            }
                        }
                }
        if (ok) printf("ok %s (pairs and halves, hd 2..128: bit-identical to scalar and to x0 cos - x1 sin, x0 sin + x1 cos)\n", name);
        free(xr), free(x1), free(x2), free(c), free(sn);
    }

    kc_check_kblock(K, label);

    snprintf(name, sizeof name, "%s_swiglu", label);
    ok = 1;
    enum { N = 2000 };
    float *g = malloc(N * 4), *u = malloc(N * 4), *h1 = malloc(N * 4), *h2 = malloc(N * 4);
    for (int i = 0; i < N; i++) g[i] = (float)(i - N / 2) * 0.09f + kc_unif() * 0.01f, u[i] = 1.0f + kc_unif();
    // -inf gives -inf / (1 + inf) = NaN, as the formula does with libm's expf.
    g[0] = NAN, g[1] = INFINITY, g[2] = -INFINITY, g[3] = -0.0f, g[4] = 1e-30f, g[5] = -200.0f, g[6] = 200.0f;
    for (int n = 0; n <= 40 && ok; n++) {  // every tail length, in place too
        float m1 = K->swiglu(h1, g + 7, u, (size_t)n);
        float m2 = S->swiglu(h2, g + 7, u, (size_t)n);
        if (memcmp(h1, h2, (size_t)n * 4) != 0) {
            KC_FAIL(name, "n=%d: not bit-identical to scalar", n);
            ok = 0;
        }
        // the returned max |h| is the one the quantizer's absmax kernel finds in h
        if (ok && (m1 != m2 || m1 != S->absmax(h1, n))) {
            KC_FAIL(name, "n=%d: returned max %.9g (scalar %.9g), absmax of the output %.9g", n, m1, m2, S->absmax(h1, n));
            ok = 0;
        }
    }
    memcpy(h1, g, N * 4);
    float mk = K->swiglu(h1, h1, u, N);  // in place, as the forward pass calls it (NaN in g[0])
    float ms = S->swiglu(h2, g, u, N);
    if (ok && (memcmp(h1, h2, N * 4) != 0 || mk != ms || mk != S->absmax(h1, N))) {
            KC_FAIL(name, "n=%d: not bit-identical to scalar", N);
            ok = 0;
        }
    // e^x is within 2 ulp for -87 <= x <= 88, so silu(g) * u is within a few ulp of the double value;
    // below g = -88, e^-g is +inf by design and silu(g) = -0 where the true value is under 1e-35.
    for (int i = 7; i < N && ok; i++) {
        double r = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        if (fabs(h1[i] - r) > 4e-7 * fabs(r) + 1e-35) {
            KC_FAIL(name, "g=%.9g: %.9g, expected %.9g", g[i], h1[i], r);
            ok = 0;
        }
    }
    if (ok && !(isnan(h1[0]) && h1[1] == INFINITY * u[1] && isnan(h1[2]) && h1[3] == 0.0f && h1[5] == 0.0f &&
                h1[6] == 200.0f * u[6]))
        {
            KC_FAIL(name, "special values: NaN->%g inf->%g -inf->%g -0->%g -200->%g 200->%g", h1[0], h1[1], h1[2], h1[3],
                h1[5], h1[6]);
            ok = 0;
        }
    if (ok) printf("ok %s (tails 0..40 and %d values bit-identical to scalar, within 4e-7 of double, NaN/inf)\n", name, N);

    snprintf(name, sizeof name, "%s_rmsnorm", label);
    ok = 1;
    float *x1 = malloc(N * 4), *x2 = malloc(N * 4), *r = malloc(N * 4), *h3 = malloc(N * 4);
    for (int n = 1; n <= 800 && ok; n += n < 40 ? 1 : 97) {  // every tail, and model widths
        for (int i = 0; i < n; i++)
            g[i] = kc_unif() * (i % 7 == 0 ? 30.0f : 1.0f), u[i] = 1.0f + kc_unif(), r[i] = kc_unif();
        memcpy(x1, g, (size_t)n * 4);
        float m1 = K->rmsnorm(h1, x1, NULL, u, n, 1e-5f);
        float m2 = S->rmsnorm(h2, g, NULL, u, n, 1e-5f);
        if (memcmp(h1, h2, (size_t)n * 4) != 0 || memcmp(x1, g, (size_t)n * 4) != 0) {
            KC_FAIL(name, "n=%d: not bit-identical to scalar (or x changed)", n);
            ok = 0;
        }
        if (ok && (m1 != m2 || m1 != S->absmax(h1, n))) {
            KC_FAIL(name, "n=%d: returned max %.9g (scalar %.9g), absmax of the output %.9g", n, m1, m2, S->absmax(h1, n));
            ok = 0;
        }
        double ss = 0;
        for (int i = 0; i < n; i++) ss += (double)g[i] * g[i];
        double inv = 1.0 / sqrt(ss / n + 1e-5);
        for (int i = 0; i < n && ok; i++)
            if (fabs(h1[i] - u[i] * inv * g[i]) > 2e-6 * fabs(u[i] * inv * g[i]) + 1e-30) {
                KC_FAIL(name, "n=%d o[%d] = %.9g, expected %.9g", n, i, h1[i], u[i] * inv * g[i]);
                ok = 0;
            }
        // with the residual: x becomes x + r (one float addition per element), o = rmsnorm(x + r)
        memcpy(x1, g, (size_t)n * 4);
        memcpy(x2, g, (size_t)n * 4);
        m1 = K->rmsnorm(h1, x1, r, u, n, 1e-5f);
        m2 = S->rmsnorm(h2, x2, r, u, n, 1e-5f);
        for (int i = 0; i < n; i++) g[i] += r[i];
        float m3 = S->rmsnorm(h3, g, NULL, u, n, 1e-5f);
        if (ok && (memcmp(x1, g, (size_t)n * 4) != 0 || memcmp(x2, g, (size_t)n * 4) != 0 ||
                   memcmp(h1, h3, (size_t)n * 4) != 0 || memcmp(h2, h3, (size_t)n * 4) != 0 || m1 != m3 || m2 != m3)) {
            KC_FAIL(name, "n=%d: with a residual, x or o differ from adding first and normalizing", n);
            ok = 0;
        }
    }
    if (ok)
        printf("ok %s (n = 1..40 and widths to 800, with and without residual: bit-identical to scalar, within 2e-6 "
               "of double, returned max = absmax of the output)\n", name);
    free(x1), free(x2), free(r), free(h3);
    free(g), free(u), free(h1), free(h2);
}

#endif
