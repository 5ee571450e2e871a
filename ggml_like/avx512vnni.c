// ggml_like/avx512vnni.c: AVX-512 VNNI kernels (zmm), vpdpbusd u8 x s8 -> int32.
//   gemm_u8s8_6x64c4__avx512vnni   int8 GEMM: 6 tokens x 4 weight panels (64 rows) per step
//                                  (8 x 32 for the last < 64 rows, one panel per step for GEMV)
//   gemm_f32_4x4__avx512f          FP32 GEMM/GEMV, one 16-lane accumulator per output
// vpdpbusd multiplies unsigned activations by signed weights, so codes c in [-127, 127] are
// stored as c + 128 in [1, 255] (act_bias = 128) and the epilogue removes the offset exactly:
// sum (c+128) w = sum c w + 128 * rowsum, so acc - (128 + off) * rowsum is the spec's integer.
// vpdpbusd adds 4 products of at most 255 * 128 to an int32 without saturation (the saturating
// form is vpdpbusds), and k <= 65536 keeps the sum inside int32.
// Weights come in the 16-row panels of kernels.h: one zmm load = 16 rows x 4 inputs.
// Built with -mavx512f -mavx512bw -mavx512vl -mavx512vnni (ggml_like.mk); the tests also build
// it against SIMDe (DQ_SIMDE_HEADER) so it runs on CPUs without AVX-512.
#include <string.h>

#include "kernels.h"
#define DQ_ATTN_WIDE 1  // 32 zmm: eight accumulator chains in the attention kernel
#define DQ_VEC_BYTES 64
#define DQ_EXP_ILP 4  // e^x chains interleaved (SwiGLU)
#include "vec_f32.h"

#ifdef DQ_SIMDE_HEADER
#include DQ_SIMDE_HEADER
#else
#include <immintrin.h>
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))

// ---------------------------------------------------------------- activation codes
// max(v, a) returns a when v is NaN: NaNs are ignored, as in the scalar spec.
static float absmax_avx512(const float *x, int k) {
    const __m512i mag = _mm512_set1_epi32(0x7fffffff);
    __m512 a = _mm512_setzero_ps();
    for (int j = 0; j < k; j += 16) {
        __mmask16 mk = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 v = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(mk, x + j)), mag));
        a = _mm512_max_ps(v, a);
    }
    float t[16], r = 0.0f;
    _mm512_storeu_ps(t, a);
    for (int i = 0; i < 16; i++) r = t[i] > r ? t[i] : r;
    return r;
}

static void quant_avx512(int8_t *q, const float *x, int k, float inv, int32_t off) {
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i voff = _mm512_set1_epi32(off + 0), lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127),
                  bias = _mm512_set1_epi32(128);
    for (int j = 0; j < k; j += 16) {
        __mmask16 mk = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, x + j), vinv);
        __m512i c = _mm512_add_epi32(_mm512_cvtps_epi32(v), voff);  // nearest-even, like lrintf
        c = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(c, lo), hi), bias);
        _mm512_mask_cvtepi32_storeu_epi8(q + j, mk, c);
    }
}

// ---------------------------------------------------------------- int8 GEMM
static inline int32_t load4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// MR tokens x NP panels (16 rows each), whole k. x: first token's codes (stride kp);
// wp: first panel (panel stride 16 * kp). Writes y rows [i, i + 16 * NP) masked to n.
// pf, npf: npf cache lines from pf to prefetch into L2 on the way (dq_prefetch_step).
ALWAYS_INLINE void ukernel(const int MR, const int NP, float *y, int ldy, const int8_t *x, int kp, const int8_t *wp,
                           const dq_wpack *p, int i, int n, const float *sx, const int32_t *off, const int8_t *pf,
                           int npf) {
    __m512i acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_si512();
    const size_t ps = (size_t)16 * kp;
    const int ng = kp / 4;
    for (int s = 0; s < ng; s++) {
        __m512i wv[4];
#pragma GCC unroll 4
        for (int q = 0; q < NP; q++) wv[q] = _mm512_loadu_si512((const void *)(wp + q * ps + (size_t)s * 64));
        dq_prefetch_step(pf, npf, s);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512i xb = _mm512_set1_epi32(load4(x + (size_t)r * kp + 4 * s));
#pragma GCC unroll 4
            for (int q = 0; q < NP; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], xb, wv[q]);
        }
    }
#pragma GCC unroll 4
    for (int q = 0; q < NP; q++) {
        int row = i + 16 * q;
        if (row >= n) break;
        __mmask16 mk = n - row >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - row)) - 1);
        __m512i rs = _mm512_loadu_si512((const void *)(p->rowsum + row));
        __m512 sw = _mm512_loadu_ps(p->scale + row);
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512i corr = _mm512_mullo_epi32(_mm512_set1_epi32(128 + off[r]), rs);
            __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][q], corr));
            __m512 sc = _mm512_mul_ps(_mm512_set1_ps(sx[r]), sw);
            _mm512_mask_storeu_ps(y + (size_t)r * ldy + row, mk, _mm512_mul_ps(f, sc));
        }
    }
}

// The dequantizing epilogue of one panel's 16 rows (masked to n).
ALWAYS_INLINE void store_panel(float *y, __m512i acc, int row, int n, const dq_wpack *p, float sx, int32_t off) {
    __mmask16 mk = n - row >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - row)) - 1);
    __m512i corr = _mm512_mullo_epi32(_mm512_set1_epi32(128 + off), _mm512_loadu_si512((const void *)(p->rowsum + row)));
    __m512 f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, corr));
    __m512 sc = _mm512_mul_ps(_mm512_set1_ps(sx), _mm512_loadu_ps(p->scale + row));
    _mm512_mask_storeu_ps(y + row, mk, _mm512_mul_ps(f, sc));
}

// One panel's int32 sums (one token): 4 accumulators over consecutive 4-input groups hide
// vpdpbusd latency; kp is a multiple of 64, so groups come in 16s. pf: prefetch the lines
// dq_gemv_prefetch_bytes ahead (kernels.h), or nothing.
ALWAYS_INLINE __m512i panel_sums(const int8_t *x, int kp, const int8_t *wp, const int pf) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (int j = 0; j < kp; j += 16) {
        const int8_t *w = wp + (size_t)j * 16;
        if (pf) dq_gemv_prefetch(w, 4);
        a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(load4(x + j)), _mm512_loadu_si512((const void *)w));
        a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(load4(x + j + 4)), _mm512_loadu_si512((const void *)(w + 64)));
        a2 = _mm512_dpbusd_epi32(a2, _mm512_set1_epi32(load4(x + j + 8)), _mm512_loadu_si512((const void *)(w + 128)));
        a3 = _mm512_dpbusd_epi32(a3, _mm512_set1_epi32(load4(x + j + 12)), _mm512_loadu_si512((const void *)(w + 192)));
    }
    return _mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3));
}

// GEMV (one token): one panel at a time, so the whole matrix is read as one sequential stream
// (measured faster on Intel than interleaving two panel streams), prefetched
// dq_gemv_prefetch_bytes ahead, each panel with its epilogue.
static void gemv_panel(float *y, const int8_t *x, int kp, const int8_t *wp, const dq_wpack *p, int row, int n,
                       float sx, int32_t off) {
    store_panel(y, panel_sums(x, kp, wp, 1), row, n, p, sx, off);
}

// GEMV over four panels side by side (run j of the tile at i0, kernels.h: dq_gemv_runs): four
// weight streams, one 4-input group of each per step (the broadcast shared). The int32 sums go to
// y as they are, and epilogue_rows applies the offsets and scales once all four runs are done, as
// in the AVX2 GEMV: reading the rows' sums and scales panel by panel beside the weights made eight
// more small streams. AMD Zen 4 (family 25 model 17), scripts/ab_decode.c, both forms alternating
// token by token: stories110M decode 1.28x at one thread, 1.06x at two; TinyLlama 1.10x, 1.04x.
// Each stream's line dq_gemv4_prefetch_bytes ahead is prefetched (Intel: 2048; AMD: 0, the
// hardware prefetchers alone). Intel Xeon family 6 model 207, ab_decode against none, medians of
// 15 (stories110M shape) or 7-9 (TinyLlama) sequences: 2048 bytes 1.013-1.025x / 1.014-1.039x
// (stories110M, one / two threads, four sets), 1.016-1.017x / 0.997-1.019x (TinyLlama, three);
// 1024 bytes 1.013-1.017x / 1.003-1.034x, 4096 1.008-1.025x / 0.995-1.024x (stories110M).
ALWAYS_INLINE void gemv_panels4(float *y, const int8_t *x, int kp, int i0, int run, int j, const dq_wpack *p) {
    int rows[4];
    dq_gemv_run_rows(i0, run, j, rows);
    const int8_t *w[4];
    __m512i a[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) a[q] = _mm512_setzero_si512(), w[q] = p->panels + (size_t)rows[q] * kp;
    const uintptr_t pfd = (uintptr_t)dq_gemv4_prefetch_bytes;
    for (int s = 0; s < kp / 4; s++) {
        const __m512i xb = _mm512_set1_epi32(load4(x + 4 * s));
        if (pfd) dq_gemv4_prefetch(w, (size_t)s * 64, pfd);
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) a[q] = _mm512_dpbusd_epi32(a[q], xb, _mm512_loadu_si512((const void *)(w[q] + (size_t)s * 64)));
    }
#pragma GCC unroll 4
    for (int q = 0; q < 4; q++) _mm512_storeu_si512((void *)(y + rows[q]), a[q]);  // every row of a run is under n
}

// GEMV over the whole panels of rows [i0, i1) one after another, as one stream (short rows:
// dq_gemv_one_by_kp, kernels.h): the int32 sums to y as gemv_panels4 leaves them, and no software
// prefetch, the hardware prefetchers alone (on the Zen 4, the one stream 1024 bytes ahead read
// 21 GB/s against 27 without, k = 768, the harness of dq_gemv4_min_kp).
static void gemv_panels1(float *y, const int8_t *x, int kp, int i0, int i1, const dq_wpack *p) {
    for (int i = i0; i < i1; i += 16) _mm512_storeu_si512((void *)(y + i), panel_sums(x, kp, p->panels + (size_t)i * kp, 0));
}

// y[r0, r1) (r1 - r0 a multiple of 16, all rows of the matrix) holds gemv_panels4's (or
// gemv_panels1's) int32 sums as they are (their bit patterns): turn them into what store_panel
// would have stored, reading the rows' sums and scales as one sequential pass.
static void epilogue_rows(float *y, int r0, int r1, const dq_wpack *p, float sx, int32_t off) {
    DQ_ASSERT((r1 - r0) % 16 == 0);
    for (int r = r0; r < r1; r += 16) store_panel(y, _mm512_loadu_si512((const void *)(y + r)), r, r1, p, sx, off);
}

#define UK(MR, NP) ukernel(MR, NP, yt, ldy, xt, kp, wp, p, i, n, qa->scale + t, qa->off + t, pf, npf_b)

static void gemm_q8_avx512vnni(float *y, int ldy, const dq_qact *qa, int t0, int t1, const dq_qweight *w, int i0,
                               int i1) {
    const dq_wpack *p = w->packed;
    const int kp = p->kp, n = i1;
    DQ_ASSERT(qa->bias == 128 && qa->kp == kp && i0 % 16 == 0);
    if (t1 - t0 == 1) {
        float *yt = y + (size_t)t0 * ldy;
        const int8_t *xt = qa->q + (size_t)t0 * kp;
        const int run = dq_gemv_runs(i0, i1, kp);  // four streams: the tile's panels in four runs
        // or, for short rows, the tile's whole panels as one stream; then the rest (a ragged last
        // panel, fewer than 64 rows, or DYNQ_GEMV_STREAMS=1) one panel at a time with its epilogue
        const int one = dq_gemv_one_by_kp(kp), sums_to = one ? i0 + (i1 - i0) / 16 * 16 : i0 + 64 * run;
        for (int j = 0; j < run; j++) gemv_panels4(yt, xt, kp, i0, run, j, p);
        if (one) gemv_panels1(yt, xt, kp, i0, sums_to, p);
        epilogue_rows(yt, i0, sums_to, p, qa->scale[t0], qa->off[t0]);
        for (int i = sums_to; i < i1; i += 16)
            gemv_panel(yt, xt, kp, p->panels + (size_t)i * kp, p, i, n, qa->scale[t0], qa->off[t0]);
        return;
    }
    int i = i0;
    for (; i1 - i > 48; i += 64) {  // 4 panels x 6 tokens: 24 accumulators, 10 loads per 24 vpdpbusd
        const int8_t *wp = p->panels + (size_t)i * kp;
        // the next 64 rows (one contiguous run of 64 kp bytes, kp lines) into L2, a slice per token
        // block (kernels.h)
        const int nblk = (t1 - t0 + 5) / 6, lines = i + 128 <= p->np ? kp : 0;
        // Token blocks of at most 6, evened out (128 = 18 x 6 + 4 x 5, not 21 x 6 + 2).
        for (int t = t0, left = nblk; t < t1; left--) {
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            int mr = (t1 - t + left - 1) / left;
            int npf_b;
            const int8_t *pf = dq_prefetch_slice(wp, (size_t)64 * kp, lines, nblk, nblk - left, &npf_b);
            switch (mr) {
            case 1: UK(1, 4); break;
            case 2: UK(2, 4); break;
            case 3: UK(3, 4); break;
            case 4: UK(4, 4); break;
            case 5: UK(5, 4); break;
            default: UK(6, 4); break;
            }
            t += mr;
        }
    }
    for (; i < i1; i += 32) {
        const int8_t *wp = p->panels + (size_t)i * kp;
        int two = i1 - i > 16;
        const int8_t *pf = NULL;
        const int npf_b = 0;
        for (int t = t0; t < t1; t += 8) {
            const int8_t *xt = qa->q + (size_t)t * kp;
            float *yt = y + (size_t)t * ldy;
            int mr = t1 - t < 8 ? t1 - t : 8;
            if (two) {
                switch (mr) {
                case 1: UK(1, 2); break;
                case 2: UK(2, 2); break;
                case 3: UK(3, 2); break;
                case 4: UK(4, 2); break;
                case 5: UK(5, 2); break;
                case 6: UK(6, 2); break;
                case 7: UK(7, 2); break;
                default: UK(8, 2); break;
                }
            } else {
                switch (mr) {
                case 1: UK(1, 1); break;
                case 2: UK(2, 1); break;
                case 3: UK(3, 1); break;
                case 4: UK(4, 1); break;
                case 5: UK(5, 1); break;
                case 6: UK(6, 1); break;
                case 7: UK(7, 1); break;
                default: UK(8, 1); break;
                }
            }
        }
    }
}
#undef UK

// ---------------------------------------------------------------- FP32 GEMM
// Each output keeps one 16-lane accumulator over k (masked tail) reduced at the end, whatever
// MR/NR: so a token's outputs do not depend on the batch it is in.
ALWAYS_INLINE void ukernel_f32(const int MR, const int NR, float *y, int ldy, const float *x, const float *w, int k) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_ps();
    for (int j = 0; j < k; j += 16) {
        __mmask16 mk = k - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - j)) - 1);
        __m512 wv[4];
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) wv[c] = _mm512_maskz_loadu_ps(mk, w + (size_t)c * k + j);
#pragma GCC unroll 4
        for (int r = 0; r < MR; r++) {
            __m512 xv = _mm512_maskz_loadu_ps(mk, x + (size_t)r * k + j);
#pragma GCC unroll 4
            for (int c = 0; c < NR; c++) acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
        for (int c = 0; c < NR; c++) y[(size_t)r * ldy + c] = _mm512_reduce_add_ps(acc[r][c]);
}

#define UKF(MR, NR) ukernel_f32(MR, NR, y + (size_t)t * n + i, n, x + (size_t)t * k, w + (size_t)i * k, k)
#define UKF_ROW(MR)                            \
    switch (nr) {                              \
    case 1: UKF(MR, 1); break;                 \
    case 2: UKF(MR, 2); break;                 \
    case 3: UKF(MR, 3); break;                 \
    default: UKF(MR, 4); break;                \
    }

static void gemm_f32_avx512(float *y, const float *x, int t0, int t1, const float *w, int n, int k, int i0, int i1) {
    for (int i = i0; i < i1; i += 4) {
        int nr = i1 - i < 4 ? i1 - i : 4;
        for (int t = t0; t < t1; t += 4) {
            int mr = t1 - t < 4 ? t1 - t : 4;
            switch (mr) {
            case 1: UKF_ROW(1); break;
            case 2: UKF_ROW(2); break;
            case 3: UKF_ROW(3); break;
            default: UKF_ROW(4); break;
            }
        }
    }
}
#undef UKF
#undef UKF_ROW

// ---------------------------------------------------------------- roofline loop
// 12 independent vpdpbusd chains (enough to cover latency x throughput), operands in registers.
static int64_t int8_peak_avx512vnni(int64_t iters, int32_t *sink) {
    __m512i a[12];
    for (int r = 0; r < 12; r++) a[r] = _mm512_set1_epi32(r);
    __m512i u = _mm512_set1_epi32(*sink | 0x01010101), s = _mm512_set1_epi32(0x02fe03fd);
    for (int64_t i = 0; i < iters; i++) {
#pragma GCC unroll 12
        for (int r = 0; r < 12; r++) a[r] = _mm512_dpbusd_epi32(a[r], u, s);
    }
    __m512i t = a[0];
    for (int r = 1; r < 12; r++) t = _mm512_add_epi32(t, a[r]);
    // the lanes wrapped long ago: an unsigned sum (_mm512_reduce_add_epi32 adds in int, which
    // UBSan reports as overflow)
    int32_t v[16];
    _mm512_storeu_si512((void *)v, t);
    *sink = (int32_t)((uint32_t)v[0] + (uint32_t)v[15]);
    return iters * 12 * 64 * 2;
}

static const dq_kernels table = {
    .isa = DQ_ISA_AVX512VNNI,
    .name = "gemm_u8s8_6x64c4__avx512vnni, gemm_f32_4x4__avx512f",
    .use_panels = 1,
    .act_bias = 128,
    .absmax = absmax_avx512,
    .quant = quant_avx512,
    .gemm_q8 = gemm_q8_avx512vnni,
    .gemm_f32 = gemm_f32_avx512,
    .int8_peak = int8_peak_avx512vnni,
    DQ_VEC_F32_MEMBERS,
};
const dq_kernels *dq_kernels_avx512vnni(void) { return &table; }
